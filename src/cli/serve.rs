//! `zdel serve` and `zdel drain`: run the workers. `serve` also runs the
//! HTTP endpoints (health, readiness, metrics) and speaks systemd's notify
//! protocol: READY once the database is migrated and the endpoints are up,
//! watchdog pings while the dispatcher turns, STOPPING on shutdown.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::config::Config;
use crate::http::Health;
use crate::store::{JobState, Operation, RequestState, Store};
use crate::worker::{self, RunMode, StopReason, WorkerSettings};

#[derive(Debug, Args)]
pub struct Opts {
    /// Claim and group as for real and log every call it would make, but
    /// send nothing to Zoho and leave every row pending.
    #[arg(long)]
    dry_run: bool,
}

/// Latency buckets for Zoho calls and rate-limiter waits, in seconds: a
/// delete answers in tens of milliseconds to a few seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// How often histogram upkeep runs (the exporter's own advice: periodically).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

pub async fn run(config: Config, mode: RunMode, opts: Opts) -> anyhow::Result<ExitCode> {
    if mode == RunMode::Serve && !config.http.listen.is_empty() {
        config.http.check_console(&config.http.listen)?;
    }
    let client = Arc::new(super::zoho_client(&config)?);
    let store = super::open_store(&config).await?;
    let settings = WorkerSettings {
        dry_run: opts.dry_run,
        ..super::worker_settings(&config)
    };
    // One working zdel per database: refuse before listening, naming the holder.
    let lease = worker::take_lease(&store, mode, &settings).await?;
    let shutdown = CancellationToken::new();
    let http_stop = CancellationToken::new();
    let health = if mode == RunMode::Serve {
        let health = Health::new(
            store.clone(),
            install_metrics(),
            config.limits.clone(),
            Some(config.http.console_token.clone()),
        );
        start_http(&config, health.clone(), http_stop.clone()).await?;
        spawn_gauges(
            store.clone(),
            Duration::from_millis(config.http.queue_depth_interval_ms),
            http_stop.clone(),
        );
        Some(health)
    } else {
        None
    };
    spawn_signal_listener(shutdown.clone(), health.clone());
    if mode == RunMode::Serve {
        // Migrated (open_store) and listening: ready as far as systemd is concerned.
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        spawn_watchdog(settings.heartbeat.clone(), http_stop.clone());
    }
    let started_ms = crate::clock::now_ms();
    let dry_run = settings.dry_run;
    let summary = run_worker(
        &config,
        &store,
        client.clone(),
        settings,
        mode,
        shutdown,
        lease,
    )
    .await?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    http_stop.cancel();
    let failed_this_run = match summary.reason {
        StopReason::Drained => {
            store
                .finished_since(RequestState::Failed, started_ms)
                .await?
        }
        _ => 0,
    };
    let mut not_in_bin = 0;
    if mode == RunMode::Drain
        && config.verify.after_run
        && !dry_run
        && matches!(summary.reason, StopReason::Drained)
    {
        let scope = crate::store::VerifyScope {
            since_ms: Some(started_ms),
            ..Default::default()
        };
        match worker::verify::verify(&store, &client, &scope, "after drain").await {
            Ok((run, _)) => {
                println!(
                    "verified {} of {} deleted this run in the recycle bin; {} not there",
                    run.verified, run.checked, run.not_in_bin
                );
                not_in_bin = run.not_in_bin;
            }
            Err(e) => eprintln!(
                "zdel: the check against the recycle bin failed ({e}); run `zdel verify --since` the run's start"
            ),
        }
        let spent = client.credits().take_spent();
        let _ = store
            .record_credits(
                client.org(),
                spent,
                client.credits().last_remaining(),
                crate::clock::now_ms(),
            )
            .await;
    }
    store.close().await;
    let status = exit_status(&summary.reason, failed_this_run, &config);
    if status == super::exit::DONE && not_in_bin > 0 {
        return Ok(ExitCode::from(super::exit::ROWS_FAILED));
    }
    Ok(ExitCode::from(status))
}

/// Run the worker. A drain shows its progress meanwhile (a bar on a
/// terminal, a log line every `log.progress_interval_ms` off one) and
/// prints what this run did when it ends.
async fn run_worker(
    config: &Config,
    store: &Store,
    client: Arc<crate::zoho::ZohoClient>,
    settings: WorkerSettings,
    mode: RunMode,
    shutdown: CancellationToken,
    lease: crate::store::DaemonLease,
) -> anyhow::Result<worker::RunSummary> {
    if mode == RunMode::Serve {
        return Ok(
            worker::run_with_lease(store.clone(), client, settings, mode, shutdown, lease).await?,
        );
    }
    let started_ms = crate::clock::now_ms();
    let started = std::time::Instant::now();
    let progress = super::progress::Progress::start(
        store,
        Duration::from_millis(config.log.progress_interval_ms),
        std::io::stderr().is_terminal(),
    )
    .await;
    let summary = worker::run_with_lease(
        store.clone(),
        client.clone(),
        settings.clone(),
        mode,
        shutdown,
        lease,
    )
    .await;
    progress.finish();
    let summary = summary?;
    super::progress::RunReport::read(
        store,
        started_ms,
        client.calls_made(),
        &settings,
        started.elapsed(),
    )
    .await?
    .print(super::progress::meaning);
    Ok(summary)
}

/// The exit status for why the worker stopped (saying why on stderr), per
/// the table in [`super::exit`].
fn exit_status(reason: &StopReason, failed_this_run: i64, config: &Config) -> u8 {
    use super::exit;
    match reason {
        StopReason::Shutdown => exit::DONE,
        StopReason::Drained if failed_this_run > 0 => {
            eprintln!(
                "zdel: drained, but {failed_this_run} row(s) failed during this run: see `zdel outcomes --state failed`; `zdel retry` requeues them"
            );
            exit::ROWS_FAILED
        }
        StopReason::Drained => {
            info!("done");
            exit::DONE
        }
        StopReason::DrainedExceptPaused { paused_rows } => {
            eprintln!(
                "zdel: drained, but {paused_rows} pending row(s) wait in paused lanes: see `zdel status`, fix the permission, then `zdel resume --module M`"
            );
            exit::PAUSED
        }
        StopReason::CredentialsRejected { message } => {
            eprintln!("zdel: nothing can run: {message}");
            exit::PAUSED
        }
        StopReason::DrainedExceptUncertainJobs { jobs } => {
            eprintln!(
                "zdel: drained, but {jobs} mass-delete job(s) are uncertain and need an operator: see `zdel jobs`"
            );
            exit::UNCERTAIN
        }
        StopReason::DailyCapReached { pending } => {
            eprintln!(
                "zdel: limits.max_deletions_per_day ({}) reached with {pending} row(s) pending: run again tomorrow, or raise the cap",
                config.limits.max_deletions_per_day
            );
            exit::LIMIT
        }
        StopReason::CreditsReached { pending, why } => {
            eprintln!("zdel: {why}; {pending} row(s) pending: run again later (see `zdel status`)");
            exit::LIMIT
        }
        StopReason::LeaseLost { holder } => {
            eprintln!(
                "zdel: another zdel took over this database ({holder}) while this one was frozen or cut off; this one stopped claiming"
            );
            exit::HELD
        }
        StopReason::DiskFull { message } => {
            eprintln!("zdel: {message}; run `zdel drain` again then");
            exit::ERROR
        }
    }
}

fn install_metrics() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .ok()?;
    match builder.install_recorder() {
        Ok(handle) => {
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(METRICS_UPKEEP).await;
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        }
        Err(e) => {
            warn!(error = %e, "metrics are not recorded");
            None
        }
    }
}

async fn start_http(
    config: &Config,
    health: Arc<Health>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if config.http.listen.is_empty() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .map_err(|e| {
            super::UsageError(format!(
                "http.listen {}: cannot listen: {e}",
                config.http.listen
            ))
        })?;
    let addr = listener.local_addr()?;
    info!(addr = %addr, "HTTP endpoints listening: /healthz /readyz /metrics");
    tokio::spawn(crate::http::serve(listener, health, stop));
    Ok(())
}

/// Queue depth and mass-delete jobs by state, recounted every `every`.
fn spawn_gauges(store: Store, every: Duration, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match store.depth().await {
                Ok(depth) => {
                    for &state in RequestState::ALL {
                        for op in Operation::ALL {
                            let n = depth.requests_in(state, op);
                            metrics::gauge!("zdel_queue_depth", "state" => state.as_str(), "operation" => op.as_str()).set(n as f64);
                        }
                    }
                    for &state in JobState::ALL {
                        let n = depth.jobs_in(state);
                        metrics::gauge!("zdel_mass_delete_jobs", "state" => state.as_str())
                            .set(n as f64);
                    }
                }
                Err(e) => warn!(error = %e, "could not count the queue for metrics"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// With `WatchdogSec=` set, ping systemd at half the interval — but only
/// while the dispatcher's heartbeat is fresh, so a wedged worker gets
/// restarted rather than kept alive by a healthy timer.
fn spawn_watchdog(heartbeat: Arc<std::sync::atomic::AtomicI64>, stop: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            let age_ms = now_ms() - heartbeat.load(Ordering::Relaxed);
            if age_ms < interval.as_millis() as i64 {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else {
                warn!(
                    age_ms,
                    "the dispatcher has not turned for a watchdog interval: not pinging"
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(interval / 2) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// SIGTERM or SIGINT: readiness turns 503 at once, then `shutdown` is
/// cancelled: claiming stops, calls in flight get `worker.shutdown_grace_ms`.
pub fn spawn_signal_listener(shutdown: CancellationToken, health: Option<Arc<Health>>) {
    tokio::spawn(async move {
        wait_for_signal().await;
        if let Some(health) = &health {
            health.shutting_down.store(true, Ordering::SeqCst);
        }
        info!("shutdown requested: no new claims; finishing calls in flight");
        shutdown.cancel();
    });
}

#[cfg(unix)]
pub(super) async fn wait_for_signal() {
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
pub(super) async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
