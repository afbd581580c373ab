//! The scheduler: the only place that joins the store and the Zoho client.
//!
//! One dispatcher loop takes a call slot (the concurrency cap), claims a
//! batch of one lane under a lease, and hands both to a task that makes the
//! call and records each row's outcome. Retries go back through the queue
//! (`next_attempt_at`), so a backoff survives a restart and never holds a
//! slot. Every poll interval it also reaps expired leases and rereads the
//! pauses, so `zdel resume` and rows INSERTed by other processes take effect
//! within `worker.poll_interval_ms`.

pub mod outcome;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

pub use outcome::RetryPolicy;

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{ClaimedBatch, LaneKey, PAUSE_ALL, Store, StoreError};
use crate::zoho::{CallSlot, ZohoClient, ZohoError};

/// The worker's knobs, from `[worker]` and `[retry]`.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub batch_size: u32,
    pub lease_ms: i64,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub auth_probe_interval: Duration,
    pub retry: RetryPolicy,
}

impl WorkerSettings {
    pub fn from_config(config: &Config) -> WorkerSettings {
        WorkerSettings {
            batch_size: config.worker.batch_size,
            lease_ms: config.worker.lease_ms as i64,
            poll_interval: Duration::from_millis(config.worker.poll_interval_ms),
            shutdown_grace: Duration::from_millis(config.worker.shutdown_grace_ms),
            auth_probe_interval: Duration::from_millis(config.worker.auth_probe_interval_ms),
            retry: RetryPolicy {
                max_attempts: config.retry.max_attempts,
                base_delay_ms: config.retry.base_delay_ms,
                max_delay_ms: config.retry.max_delay_ms,
            },
        }
    }
}

/// `serve` runs until shut down; `drain` stops once nothing is left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Serve,
    Drain,
}

/// Why the worker stopped, and what it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM/SIGINT (or the caller's token).
    Shutdown,
    /// Drain: every row that can run has run.
    Drained,
    /// Drain: rows remain, but only in paused lanes.
    DrainedExceptPaused { paused_rows: i64 },
    /// Drain: Zoho rejects the credentials, so nothing can run.
    CredentialsRejected { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub reason: StopReason,
    pub batches: u64,
    /// Rows released back to pending because the grace period cut their call off.
    pub released_on_shutdown: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the dispatcher and the batch tasks share.
struct Shared {
    store: Store,
    client: Arc<ZohoClient>,
    settings: WorkerSettings,
    /// Lanes slowed by a 429, until the instant given. Read by the
    /// dispatcher before each claim, written by the task that saw the 429.
    cooldowns: Mutex<HashMap<LaneKey, Instant>>,
    /// Modules paused in this process (mirrors the `pauses` table, which is
    /// reread every poll interval), so a pause takes effect before the next claim.
    paused_modules: Mutex<HashSet<String>>,
    /// Set when the credentials are rejected; cleared when a probe succeeds.
    paused_all: Mutex<bool>,
    /// Wakes the idle dispatcher when a batch finishes.
    batch_done: Notify,
}

/// Run the worker until `shutdown` is cancelled (serve) or the queue is done (drain).
pub async fn run(
    store: Store,
    client: Arc<ZohoClient>,
    settings: WorkerSettings,
    mode: RunMode,
    shutdown: CancellationToken,
) -> Result<RunSummary, WorkerError> {
    let owner = format!("zdel-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let shared = Arc::new(Shared {
        store,
        client,
        settings,
        cooldowns: Mutex::new(HashMap::new()),
        paused_modules: Mutex::new(HashSet::new()),
        paused_all: Mutex::new(false),
        batch_done: Notify::new(),
    });
    info!(owner = %owner, mode = ?mode, "worker started");
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut batches = 0u64;
    let mut cursor: Option<LaneKey> = None;
    let mut next_maintenance = Instant::now();
    let mut next_auth_probe = Instant::now();
    let poll = shared.settings.poll_interval;

    let reason = loop {
        while let Some(joined) = tasks.try_join_next() {
            if let Err(e) = joined {
                error!(error = %e, "a batch task panicked; its rows return to pending when their lease expires");
            }
        }
        if shutdown.is_cancelled() {
            break StopReason::Shutdown;
        }
        if Instant::now() >= next_maintenance {
            if let Err(e) = maintenance(&shared).await {
                warn!(error = %e, "queue maintenance failed; will try again");
            }
            next_maintenance = Instant::now() + poll;
        }
        if lock(&shared.paused_all).to_owned() {
            if Instant::now() >= next_auth_probe {
                next_auth_probe = Instant::now() + shared.settings.auth_probe_interval;
                match probe_credentials(&shared).await {
                    Ok(()) => continue,
                    Err(message) if mode == RunMode::Drain && tasks.is_empty() => {
                        break StopReason::CredentialsRejected { message };
                    }
                    Err(_) => {}
                }
            }
            if !idle_wait(&shared, &shutdown, poll).await {
                break StopReason::Shutdown;
            }
            continue;
        }

        let slot = tokio::select! {
            slot = shared.client.acquire_slot() => slot,
            _ = shutdown.cancelled() => break StopReason::Shutdown,
        };
        let skip_modules: Vec<String> = lock(&shared.paused_modules).iter().cloned().collect();
        let skip_lanes: Vec<LaneKey> = {
            let now = Instant::now();
            let mut cooldowns = lock(&shared.cooldowns);
            cooldowns.retain(|_, until| *until > now);
            cooldowns.keys().cloned().collect()
        };
        let claimed = shared
            .store
            .claim_batch(
                now_ms(),
                cursor.as_ref(),
                &skip_modules,
                &skip_lanes,
                &owner,
                shared.settings.lease_ms,
                shared.settings.batch_size,
            )
            .await;
        match claimed {
            Ok(Some(batch)) => {
                cursor = Some(batch.lane.clone());
                batches += 1;
                let task_shared = shared.clone();
                tasks.spawn(async move { run_batch(task_shared, batch, slot).await });
            }
            Ok(None) => {
                drop(slot);
                if mode == RunMode::Drain && tasks.is_empty() {
                    match shared.store.pending_outlook(&skip_modules).await {
                        Ok((0, _)) => {
                            let paused_rows = paused_rows(&shared, &skip_modules).await;
                            break if paused_rows > 0 {
                                StopReason::DrainedExceptPaused { paused_rows }
                            } else {
                                StopReason::Drained
                            };
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "could not count pending rows"),
                    }
                }
                if !idle_wait(&shared, &shutdown, poll).await {
                    break StopReason::Shutdown;
                }
            }
            Err(e) => {
                drop(slot);
                warn!(error = %e, "could not claim a batch; will try again");
                if !idle_wait(&shared, &shutdown, poll).await {
                    break StopReason::Shutdown;
                }
            }
        }
    };

    let released_on_shutdown = finish_in_flight(&shared, &mut tasks, &owner).await?;
    info!(batches, released_on_shutdown, reason = ?reason, "worker stopped");
    Ok(RunSummary {
        reason,
        batches,
        released_on_shutdown,
    })
}

/// Let calls in flight finish within the grace period; abort the rest and
/// put their rows back to pending.
async fn finish_in_flight(
    shared: &Shared,
    tasks: &mut JoinSet<()>,
    owner: &str,
) -> Result<u64, WorkerError> {
    if !tasks.is_empty() {
        info!(
            in_flight = tasks.len(),
            grace_ms = shared.settings.shutdown_grace.as_millis() as u64,
            "waiting for calls in flight"
        );
    }
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.settings.shutdown_grace, all_done)
        .await
        .is_err()
    {
        warn!(
            cut_off = tasks.len(),
            "grace period over: cutting off calls still in flight"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(shared.store.release_owned(owner, now_ms()).await?)
}

/// Wait for a poll interval, a finished batch, or shutdown. False on shutdown.
async fn idle_wait(shared: &Shared, shutdown: &CancellationToken, poll: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(poll) => true,
        _ = shared.batch_done.notified() => true,
        _ = shutdown.cancelled() => false,
    }
}

async fn maintenance(shared: &Shared) -> Result<(), StoreError> {
    let reaped = shared.store.reap_expired_leases(now_ms()).await?;
    if reaped > 0 {
        warn!(
            rows = reaped,
            "leases expired (a worker died or hung mid-call): rows returned to pending"
        );
    }
    let pauses = shared.store.pauses().await?;
    *lock(&shared.paused_modules) = pauses
        .iter()
        .filter(|p| p.scope != PAUSE_ALL)
        .map(|p| p.scope.clone())
        .collect();
    *lock(&shared.paused_all) = pauses.iter().any(|p| p.scope == PAUSE_ALL);
    Ok(())
}

/// Try a token refresh; on success lift the global pause.
async fn probe_credentials(shared: &Shared) -> Result<(), String> {
    match shared.client.check_credentials().await {
        Ok(()) => {
            if let Err(e) = shared.store.resume(PAUSE_ALL).await {
                warn!(error = %e, "credentials work again, but the pause could not be lifted");
                return Err(e.to_string());
            }
            *lock(&shared.paused_all) = false;
            info!("Zoho accepts the credentials again: resuming all lanes");
            Ok(())
        }
        Err(e) => {
            error!(error = %e, "Zoho still rejects the credentials: all lanes stay paused");
            Err(e.to_string())
        }
    }
}

async fn paused_rows(shared: &Shared, paused_modules: &[String]) -> i64 {
    if paused_modules.is_empty() {
        return 0;
    }
    match shared.store.pending_outlook(&[]).await {
        Ok((n, _)) => n,
        Err(_) => 0,
    }
}

/// Make one call for a claimed batch and record every row's outcome.
async fn run_batch(shared: Arc<Shared>, batch: ClaimedBatch, slot: CallSlot) {
    let attempt = batch.rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let span = info_span!(
        "batch",
        operation = batch.lane.operation.as_str(),
        module = %batch.lane.module,
        wf_trigger = batch.lane.wf_trigger,
        size = batch.rows.len(),
        attempt,
    );
    async move {
        let ids: Vec<&str> = batch.rows.iter().map(|r| r.record_id.as_str()).collect();
        let started = Instant::now();
        let result = shared
            .client
            .delete_records(&slot, &batch.lane.module, &ids, batch.lane.wf_trigger)
            .await;
        drop(slot);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(answer) => debug!(
                http_status = answer.http_status,
                results = answer.results.len(),
                elapsed_ms,
                "call answered"
            ),
            Err(e) => warn!(code = e.code(), error = %e, elapsed_ms, "call failed"),
        }
        apply_lane_effects(&shared, &batch.lane, &result).await;
        let now = now_ms();
        let outcomes = outcome::plan(
            &batch,
            &result,
            &shared.settings.retry,
            now,
            rand::random::<f64>,
        );
        record_with_retries(&shared.store, &batch, &outcomes).await;
        shared.batch_done.notify_one();
    }
    .instrument(span)
    .await
}

/// Pauses and cooldowns that a whole-call error puts on the lane.
async fn apply_lane_effects(
    shared: &Shared,
    lane: &LaneKey,
    result: &Result<crate::zoho::BatchAnswer, ZohoError>,
) {
    match result {
        Err(ZohoError::LanePaused { code, message, .. }) => {
            error!(module = %lane.module, code = %code, "permission error: pausing this module's lane; run `zdel resume --module {}` once fixed", lane.module);
            lock(&shared.paused_modules).insert(lane.module.clone());
            if let Err(e) = shared
                .store
                .pause(&lane.module, code, message, now_ms())
                .await
            {
                warn!(error = %e, "could not record the pause; it holds in this process only");
            }
        }
        Err(ZohoError::CredentialsRejected { code, message }) => {
            error!(code = %code, "{message}: pausing all work until the credentials are fixed");
            *lock(&shared.paused_all) = true;
            if let Err(e) = shared.store.pause(PAUSE_ALL, code, message, now_ms()).await {
                warn!(error = %e, "could not record the pause; it holds in this process only");
            }
        }
        Err(ZohoError::RateLimited { retry_after, .. }) => {
            let cooldown = retry_after.unwrap_or(Duration::from_millis(
                outcome::DEFAULT_RATE_LIMIT_COOLDOWN_MS as u64,
            ));
            warn!(lane = %lane, cooldown_ms = cooldown.as_millis() as u64, "429: slowing this lane");
            lock(&shared.cooldowns).insert(lane.clone(), Instant::now() + cooldown);
        }
        _ => {}
    }
}

/// Writes of outcomes retry a few times (the database may be busy); if they
/// still fail, the lease expires and the rows are retried as ambiguous, so
/// nothing is lost.
async fn record_with_retries(
    store: &Store,
    batch: &ClaimedBatch,
    outcomes: &[crate::store::RowOutcome],
) {
    const TRIES: u32 = 5;
    for try_no in 1..=TRIES {
        match store.record_outcomes(batch.lease, outcomes, now_ms()).await {
            Ok(recorded) => {
                if recorded.lease_lost > 0 {
                    warn!(
                        rows = recorded.lease_lost,
                        "lease lost before the outcome was written: another claim owns these rows now"
                    );
                }
                return;
            }
            Err(e) if try_no < TRIES => {
                warn!(error = %e, try_no, "could not record outcomes; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(try_no))).await;
            }
            Err(e) => {
                error!(error = %e, "could not record outcomes; the rows return to pending when their lease expires");
            }
        }
    }
}

/// A poisoned lock only means another task panicked mid-update of a plain
/// map; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
