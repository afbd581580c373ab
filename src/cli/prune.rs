//! `zdel prune --before DATE`: delete finished requests (succeeded, failed,
//! cancelled) that finished before DATE, after showing the count and
//! asking. Pending and running ones are never touched; nothing is pruned
//! unless this is run.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct Opts {
    /// Rows finished before this: RFC 3339 (2026-06-01T00:00:00Z) or an
    /// age (90days).
    #[arg(long, value_name = "DATE")]
    before: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

/// Rows deleted a transaction.
const PER_TX: i64 = 10_000;

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let before = super::verify::parse_time("--before", &opts.before)?;
    let store = super::open_existing_store(&config).await?;
    let n = store.prunable(before).await?;
    if n == 0 {
        println!(
            "no finished requests finished before {}: nothing to prune",
            opts.before
        );
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(e) = super::confirm(
        &format!(
            "{n} finished request(s) (succeeded, failed, cancelled) that finished before {} will be deleted from the database, their outcomes with them",
            super::status::time_of(before)
        ),
        opts.yes,
    ) {
        store.close().await;
        return Err(e);
    }
    let mut pruned = 0u64;
    loop {
        let some = store.prune_some(before, PER_TX).await?;
        if some == 0 {
            break;
        }
        pruned += some;
    }
    store.close().await;
    println!("pruned {pruned} finished request(s); pending and running ones were not touched");
    Ok(ExitCode::SUCCESS)
}
