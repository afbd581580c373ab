//! `zdel retry`: failed (or cancelled) requests go back to pending with a
//! fresh attempt budget.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{OutcomeFilter, RequestState};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RetryState {
    Failed,
    Cancelled,
}

#[derive(Debug, Args)]
pub struct Opts {
    /// Which terminal state to requeue.
    #[arg(long, value_enum, default_value = "failed")]
    state: RetryState,
    /// Only this module.
    #[arg(long, value_parser = super::parse_module)]
    module: Option<String>,
    /// Only rows that ended with one of these codes (e.g. HTTP_503,RECORD_LOCKED;
    /// compared without case; the flag may be repeated).
    #[arg(long, value_delimiter = ',')]
    code: Vec<String>,
    /// Only rows queued by this selection (`zdel selections`).
    #[arg(long, value_name = "N")]
    selection: Option<i64>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
}

pub async fn run(config: Config, opts: Opts) -> anyhow::Result<ExitCode> {
    let state = match opts.state {
        RetryState::Failed => RequestState::Failed,
        RetryState::Cancelled => RequestState::Cancelled,
    };
    let store = super::open_existing_store(&config).await?;
    let filter = OutcomeFilter {
        state: Some(state),
        module: opts.module,
        codes: (!opts.code.is_empty()).then_some(opts.code),
        record_ids: None,
        selection: opts.selection,
    };
    let n = store.count_matching(&filter).await?;
    if n == 0 {
        println!("no {state} requests match: nothing to retry");
        return Ok(ExitCode::SUCCESS);
    }
    super::confirm(
        &format!("{n} {state} request(s) will go back to pending"),
        opts.yes,
    )?;
    let requeued = store.requeue(&filter, now_ms()).await?;
    store.close().await;
    let skipped = n as u64 - requeued.min(n as u64);
    println!(
        "requeued {requeued} request(s){}",
        if skipped > 0 {
            format!("; {skipped} skipped because the same target is already queued again")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
