//! `zdel serve` and `zdel drain`: run the workers.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::worker::{self, RunMode, StopReason, WorkerSettings};
use crate::zoho::ZohoClient;

#[derive(Debug, Args)]
pub struct Opts {
    /// Claim and group as for real and log every call it would make, but
    /// send nothing to Zoho and leave every row pending.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(config: Config, mode: RunMode, opts: Opts) -> anyhow::Result<ExitCode> {
    let client = Arc::new(ZohoClient::from_config(&config)?);
    let store = super::open_store(&config).await?;
    let shutdown = CancellationToken::new();
    spawn_signal_listener(shutdown.clone());
    let settings = WorkerSettings {
        dry_run: opts.dry_run,
        ..WorkerSettings::from_config(&config)
    };
    let summary = worker::run(store.clone(), client, settings, mode, shutdown).await?;
    store.close().await;
    match summary.reason {
        StopReason::Shutdown | StopReason::Drained => {
            info!(batches = summary.batches, "done");
            Ok(ExitCode::SUCCESS)
        }
        StopReason::DrainedExceptPaused { paused_rows } => {
            eprintln!(
                "zdel: drained, but {paused_rows} pending row(s) wait in paused lanes: see `zdel status`, fix the permission, then `zdel resume --module M`"
            );
            Ok(ExitCode::from(super::EXIT_WORK_LEFT))
        }
        StopReason::DrainedExceptUncertainJobs { jobs } => {
            eprintln!(
                "zdel: drained, but {jobs} mass-delete job(s) are uncertain and need an operator: see `zdel jobs`"
            );
            Ok(ExitCode::from(super::EXIT_WORK_LEFT))
        }
        StopReason::DailyCapReached { pending } => {
            eprintln!(
                "zdel: limits.max_deletions_per_day ({}) reached with {pending} row(s) pending: run again tomorrow, or raise the cap",
                config.limits.max_deletions_per_day
            );
            Ok(ExitCode::from(super::EXIT_WORK_LEFT))
        }
        StopReason::CredentialsRejected { message } => {
            eprintln!("zdel: nothing can run: {message}");
            Ok(ExitCode::from(super::EXIT_WORK_LEFT))
        }
    }
}

/// SIGTERM or SIGINT cancels `shutdown`: claiming stops, calls in flight get
/// `worker.shutdown_grace_ms` to finish.
pub fn spawn_signal_listener(shutdown: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown requested: no new claims; finishing calls in flight");
        shutdown.cancel();
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
