//! `zdel cancel`: pending requests become cancelled. Running ones finish.

use std::process::ExitCode;

use clap::Args;

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{OutcomeFilter, RequestState};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true))]
pub struct Opts {
    /// Cancel pending requests of this module.
    #[arg(long, group = "which", value_parser = super::parse_module)]
    module: Option<String>,
    /// Cancel the pending requests of this selection (`zdel selections`).
    #[arg(long, group = "which", value_name = "N")]
    selection: Option<i64>,
    /// Only these record IDs (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "file")]
    ids: Option<Vec<String>>,
    /// Only the record IDs in this file, one per line as for enqueue (`-`:
    /// standard input).
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

/// The IDs of `--file`, every line checked first: a bad one names its line.
fn read_ids(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    use std::io::BufRead;
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            super::UsageError(format!("--file {}: cannot open it ({e})", path.display()))
        })?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut ids = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|e| anyhow::anyhow!("--file {}: line {}: {e}", path.display(), n + 1))?;
        let id = line.trim().trim_start_matches('\u{feff}');
        if id.is_empty() {
            continue;
        }
        if !super::is_record_id(id) {
            return Err(super::UsageError(format!(
                "{}:{}: {id:?} is not a record ID ({}); nothing was cancelled",
                path.display(),
                n + 1,
                super::RECORD_ID_RULE
            ))
            .into());
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

pub async fn run(config: Config, mut opts: Opts) -> anyhow::Result<ExitCode> {
    if let Some(path) = &opts.file {
        opts.ids = Some(read_ids(path)?);
    }
    if let Some(bad) = opts
        .ids
        .iter()
        .flatten()
        .find(|id| !super::is_record_id(id))
    {
        return Err(super::UsageError(format!(
            "--ids: {bad:?} is not a record ID ({})",
            super::RECORD_ID_RULE
        ))
        .into());
    }
    let store = super::open_existing_store(&config).await?;
    let filter = OutcomeFilter {
        state: Some(RequestState::Pending),
        module: opts.module.clone(),
        record_ids: opts.ids,
        selection: opts.selection,
        ..OutcomeFilter::default()
    };
    let n = store.count_matching(&filter).await?;
    if n == 0 {
        println!("no pending requests match: nothing to cancel");
        return Ok(ExitCode::SUCCESS);
    }
    let of = match (&opts.module, opts.selection) {
        (Some(m), Some(s)) => format!("{m} in selection {s}"),
        (Some(m), None) => m.clone(),
        (None, Some(s)) => format!("selection {s}"),
        (None, None) => String::new(),
    };
    super::confirm(
        &format!("{n} pending request(s) of {of} will be cancelled"),
        opts.yes,
    )?;
    let cancelled = store.cancel(&filter, now_ms()).await?;
    store.close().await;
    println!("cancelled {cancelled} request(s)");
    Ok(ExitCode::SUCCESS)
}
