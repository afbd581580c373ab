//! `zdel jobs`: mass-delete jobs with their state, Zoho's counts and polls;
//! `--reschedule ID` and `--cancel ID` for jobs that need a decision.

use std::process::ExitCode;

use clap::Args;

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::JobState;

#[derive(Debug, Args)]
pub struct Opts {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Send an uncertain or failed job again (check in Zoho first that it did not run).
    #[arg(long, value_name = "ID", conflicts_with = "cancel")]
    reschedule: Option<i64>,
    /// Cancel a pending or uncertain job.
    #[arg(long, value_name = "ID")]
    cancel: Option<i64>,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let store = super::open_existing_store(&config).await?;
    for id in [opts.reschedule, opts.cancel].into_iter().flatten() {
        if store.job(id).await?.is_none() {
            return Err(super::UsageError(format!(
                "there is no mass-delete job {id}: `zdel jobs` lists them"
            ))
            .into());
        }
    }
    if let Some(id) = opts.reschedule {
        if !store.reschedule_job(id, now_ms()).await? {
            return Err(super::UsageError(format!("job {id} is not uncertain or failed (or another job for the same view is live): nothing changed")).into());
        }
        println!("job {id} will be sent again");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = opts.cancel {
        if !store.cancel_job(id, now_ms()).await? {
            return Err(super::UsageError(format!(
                "job {id} is not pending or uncertain: nothing changed"
            ))
            .into());
        }
        println!("job {id} cancelled");
        return Ok(ExitCode::SUCCESS);
    }
    let jobs = store.jobs().await?;
    store.close().await;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        println!("no mass-delete jobs");
        return Ok(ExitCode::SUCCESS);
    }
    let count = |n: Option<i64>| n.map_or("-".to_string(), |n| n.to_string());
    println!(
        "{:>4} {:<16} {:<20} {:<11} {:<20} {:<10} {:>7} {:>7} {:>7} {:>5}",
        "id", "module", "view", "state", "job_id", "zoho", "total", "deleted", "failed", "polls"
    );
    for j in &jobs {
        println!(
            "{:>4} {:<16} {:<20} {:<11} {:<20} {:<10} {:>7} {:>7} {:>7} {:>5}",
            j.id,
            j.module,
            j.cvid,
            j.state,
            j.job_id.as_deref().unwrap_or("-"),
            j.zoho_status.as_deref().unwrap_or("-"),
            count(j.total_count),
            count(j.deleted_count),
            count(j.failed_count),
            j.polls
        );
        if let Some(e) = &j.last_error
            && j.state != JobState::Completed
        {
            println!("     {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
