//! `zdel mass-delete`: queue the deletion of every record in a custom view
//! (optionally within a territory) as one Zoho mass-delete job. It shows
//! what it will delete and asks; off a terminal it needs `--yes`.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::store::NewJob;
use crate::zoho::MAX_RECORDS_PER_VIEW_JOB;

#[derive(Debug, Args)]
pub struct Opts {
    /// The module API name, e.g. Leads.
    #[arg(long, value_parser = super::parse_module)]
    module: String,
    /// The custom view's ID: every record it lists is deleted (up to 50,000 a job).
    #[arg(long)]
    cvid: String,
    /// Only records of this territory.
    #[arg(long, value_name = "ID")]
    territory: Option<String>,
    /// With --territory: include its child territories.
    #[arg(long, requires = "territory")]
    include_child: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    if !super::is_record_id(&opts.cvid) {
        return Err(super::UsageError(format!(
            "--cvid {:?} is not a custom view ID ({})",
            opts.cvid,
            super::RECORD_ID_RULE
        ))
        .into());
    }
    if let Some(t) = &opts.territory
        && !super::is_record_id(t)
    {
        return Err(super::UsageError(format!(
            "--territory {t:?} is not a territory ID ({})",
            super::RECORD_ID_RULE
        ))
        .into());
    }
    let territory = match &opts.territory {
        Some(t) => format!(
            ", territory {t}{}",
            if opts.include_child {
                " and its child territories"
            } else {
                ""
            }
        ),
        None => String::new(),
    };
    println!("module:    {}", opts.module);
    println!("view:      {}", opts.cvid);
    if let Some(t) = &opts.territory {
        println!(
            "territory: {t}{}",
            if opts.include_child {
                " (with child territories)"
            } else {
                ""
            }
        );
    }
    println!(
        "limit:     Zoho deletes at most {MAX_RECORDS_PER_VIEW_JOB} records a job; if the view holds more, queue it again once this job completes"
    );
    super::confirm(
        &format!(
            "EVERY record in custom view {} of {}{territory} will be deleted (they stay in Zoho's recycle bin for 60 days)",
            opts.cvid, opts.module
        ),
        opts.yes,
    )?;
    let store = super::open_store(&config).await?;
    let job = NewJob {
        module: opts.module.clone(),
        cvid: opts.cvid.clone(),
        territory_id: opts.territory.clone(),
        include_child: opts.include_child,
    };
    let id = match store.insert_job(&job).await {
        Ok(id) => id,
        Err(e) if e.is_constraint_violation() => {
            return Err(super::UsageError(format!(
                "a job for view {} of {} is already queued or running: see `zdel jobs`",
                opts.cvid, opts.module
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    println!(
        "queued mass-delete job {id}; `zdel serve` or `zdel drain` runs it; watch it with `zdel jobs`"
    );
    Ok(ExitCode::SUCCESS)
}
