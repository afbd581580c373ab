//! The scheduler: the only place that joins the store and the Zoho client.
//!
//! One dispatcher loop takes a call slot (the concurrency cap), claims a
//! batch of one lane under a lease, and hands both to a task that makes the
//! call and records each row's outcome. Retries go back through the queue
//! (`next_attempt_at`), so a backoff survives a restart and never holds a
//! slot. Every poll interval it also reaps expired leases and rereads the
//! pauses, so `zdel resume` and rows INSERTed by other processes take effect
//! within `worker.poll_interval_ms`.

mod batch;
mod jobs;
pub mod outcome;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use outcome::RetryPolicy;

use crate::clock::now_ms;
use crate::config::{Config, DeleteStrategy};
use crate::store::{ClaimRequest, LaneKey, Operation, PAUSE_ALL, Store, StoreError, Strategy};
use crate::sync::lock;
use crate::zoho::{MAX_IDS_PER_MASS_DELETE, ZohoClient};

/// The worker's knobs, from `[worker]` and `[retry]`.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub batch_size: u32,
    pub lease_ms: i64,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub auth_probe_interval: Duration,
    pub retry: RetryPolicy,
    /// How `auto` record deletes are sent.
    pub default_strategy: DeleteStrategy,
    /// First and longest wait between polls of a custom-view job.
    pub job_poll_interval_ms: i64,
    pub job_max_poll_interval_ms: i64,
    /// Claim and group as for real, log each call, send nothing, leave rows pending.
    pub dry_run: bool,
    /// Stop claiming once this many deletions succeeded in 24 hours (0: no cap).
    pub max_deletions_per_day: u64,
    /// Epoch ms of the dispatcher's last turn: a systemd watchdog pings only
    /// while this moves.
    pub heartbeat: Arc<std::sync::atomic::AtomicI64>,
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
            default_strategy: config.zoho.delete_strategy,
            job_poll_interval_ms: config.mass_delete.poll_interval_ms as i64,
            job_max_poll_interval_ms: config.mass_delete.max_poll_interval_ms as i64,
            dry_run: false,
            max_deletions_per_day: config.limits.max_deletions_per_day,
            heartbeat: Arc::new(std::sync::atomic::AtomicI64::new(now_ms())),
        }
    }

    /// How a lane's record deletes are sent: its own strategy, else the
    /// config's; never mass delete when workflows are to be suppressed.
    pub fn effective_strategy(&self, lane: &LaneKey) -> Strategy {
        let wanted = match lane.strategy {
            Strategy::Auto => match self.default_strategy {
                DeleteStrategy::Delete => Strategy::Delete,
                DeleteStrategy::MassDelete => Strategy::MassDelete,
            },
            explicit => explicit,
        };
        if lane.wf_trigger {
            wanted
        } else {
            Strategy::Delete
        }
    }

    /// Most rows one call of this lane may carry.
    pub fn batch_limit(&self, lane: &LaneKey) -> u32 {
        match lane.operation {
            Operation::DeletePhoto => 1,
            Operation::Delete if self.effective_strategy(lane) == Strategy::MassDelete => {
                MAX_IDS_PER_MASS_DELETE
            }
            _ => self.batch_size,
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
    /// Drain: custom-view jobs wait for an operator (`uncertain`).
    DrainedExceptUncertainJobs { jobs: i64 },
    /// Drain: `limits.max_deletions_per_day` is reached with rows left.
    DailyCapReached { pending: i64 },
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
    /// No claims before this instant: the token endpoint is unavailable, so
    /// every call would fail before it is sent.
    claims_resume_at: Mutex<Option<Instant>>,
    /// Wakes the idle dispatcher when a batch finishes.
    batch_done: Notify,
    /// Identifies this process's leases.
    owner: String,
    /// IDs in calls in flight: they count against the daily cap before they succeed.
    ids_in_flight: std::sync::atomic::AtomicU64,
}

/// A dry run holds its claims for the whole run: it never records an
/// outcome, so the rows must not return to pending (and be shown again)
/// before it ends.
/// The most batches claimed in one transaction (when that many call slots
/// are free at once).
const MAX_BATCHES_PER_CLAIM: usize = 32;

const DRY_RUN_LEASE_MS: i64 = 24 * 3600 * 1000;
/// The daily cap's rolling window.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Run the worker until `shutdown` is cancelled (serve) or the queue is done (drain).
pub async fn run(
    store: Store,
    client: Arc<ZohoClient>,
    settings: WorkerSettings,
    mode: RunMode,
    shutdown: CancellationToken,
) -> Result<RunSummary, WorkerError> {
    let owner = format!("zdel-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let lease_ms = if settings.dry_run {
        DRY_RUN_LEASE_MS
    } else {
        settings.lease_ms
    };
    let shared = Arc::new(Shared {
        store,
        client,
        settings,
        cooldowns: Mutex::new(HashMap::new()),
        paused_modules: Mutex::new(HashSet::new()),
        paused_all: Mutex::new(false),
        claims_resume_at: Mutex::new(None),
        batch_done: Notify::new(),
        owner: owner.clone(),
        ids_in_flight: std::sync::atomic::AtomicU64::new(0),
    });
    if shared.settings.dry_run {
        info!(
            "dry run: claiming and grouping as for real; nothing is sent to Zoho and every row stays pending"
        );
    }
    let mut cap_reported = false;
    let mut dry_run_jobs_logged = false;
    info!(owner = %owner, mode = ?mode, "worker started");
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut batches = 0u64;
    let mut cursor: Option<LaneKey> = None;
    // Lanes with pending rows, rediscovered when a claim finds nothing and
    // at every poll interval (so lanes INSERTed by SQL are picked up).
    let mut lanes: Vec<LaneKey> = Vec::new();
    let mut next_maintenance = Instant::now();
    let mut next_auth_probe = Instant::now();
    let poll = shared.settings.poll_interval;

    let reason = loop {
        shared
            .settings
            .heartbeat
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
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
            lanes.clear();
            let cap_reached = matches!(daily_budget(&shared).await, Ok(Some(0)));
            if shared.settings.dry_run {
                if !dry_run_jobs_logged {
                    jobs::log_jobs_in_dry_run(&shared).await;
                    dry_run_jobs_logged = true;
                }
            } else if !lock(&shared.paused_all).to_owned() && !cap_reached {
                match jobs::start_due_jobs(&shared, &mut tasks, &shutdown).await {
                    Ok(started) => batches += started,
                    Err(e) => warn!(error = %e, "could not start mass-delete jobs; will try again"),
                }
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

        let resume_at = *lock(&shared.claims_resume_at);
        if let Some(at) = resume_at
            && Instant::now() < at
        {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = shutdown.cancelled() => break StopReason::Shutdown,
            }
            continue;
        }
        let slot = tokio::select! {
            slot = shared.client.acquire_slot() => slot,
            _ = shutdown.cancelled() => break StopReason::Shutdown,
        };
        let budget = match daily_budget(&shared).await {
            Ok(budget) => budget,
            Err(e) => {
                warn!(error = %e, "could not count today's deletions; not claiming until it can");
                Some(0)
            }
        };
        if budget == Some(0) {
            drop(slot);
            if !cap_reported {
                warn!(
                    cap = shared.settings.max_deletions_per_day,
                    "limits.max_deletions_per_day reached: no new claims until the rolling 24-hour count drops"
                );
                cap_reported = true;
            }
            if mode == RunMode::Drain && tasks.is_empty() {
                let pending = shared.store.pending_rows(&[]).await.unwrap_or(0);
                if pending > 0 {
                    break StopReason::DailyCapReached { pending };
                }
            }
            if !idle_wait(&shared, &shutdown, poll).await {
                break StopReason::Shutdown;
            }
            continue;
        }
        cap_reported = false;
        let skip_modules: Vec<String> = lock(&shared.paused_modules).iter().cloned().collect();
        let skip_lanes: Vec<LaneKey> = {
            let now = Instant::now();
            let mut cooldowns = lock(&shared.cooldowns);
            cooldowns.retain(|_, until| *until > now);
            cooldowns.keys().cloned().collect()
        };
        // Every call slot free right now: their batches are claimed in one
        // transaction (the writer's fixed cost per transaction is shared).
        let mut slots = vec![slot];
        while slots.len() < MAX_BATCHES_PER_CLAIM {
            match shared.client.try_acquire_slot() {
                Some(more) => slots.push(more),
                None => break,
            }
        }
        let limit_for = |lane: &LaneKey| shared.settings.batch_limit(lane);
        let mut claimed = Ok(Vec::new());
        for attempt in 0..2 {
            if lanes.is_empty() || attempt == 1 {
                match shared.store.pending_lanes().await {
                    Ok(found) => lanes = found,
                    Err(e) => {
                        claimed = Err(e);
                        break;
                    }
                }
            }
            claimed = shared
                .store
                .claim_batches(&ClaimRequest {
                    now_ms: now_ms(),
                    lanes: &lanes,
                    after: cursor.as_ref(),
                    skip_modules: &skip_modules,
                    skip_lanes: &skip_lanes,
                    owner: &owner,
                    dry_run: shared.settings.dry_run,
                    lease_ms,
                    limit_for: &limit_for,
                    max_batches: slots.len(),
                    max_ids: budget,
                })
                .await;
            if !matches!(&claimed, Ok(b) if b.is_empty()) {
                break;
            }
        }
        match claimed.map(|b| (!b.is_empty()).then_some(b)) {
            Ok(Some(claimed)) => {
                for batch in claimed {
                    let Some(slot) = slots.pop() else {
                        // claim_batches returns at most one batch per slot.
                        break;
                    };
                    cursor = Some(batch.lane.clone());
                    batches += 1;
                    shared
                        .ids_in_flight
                        .fetch_add(batch.rows.len() as u64, std::sync::atomic::Ordering::SeqCst);
                    let task_shared = shared.clone();
                    tasks.spawn(async move { batch::run_batch(task_shared, batch, slot).await });
                }
            }
            Ok(None) => {
                drop(slots);
                if mode == RunMode::Drain && tasks.is_empty() {
                    match drain_outlook(&shared, &skip_modules).await {
                        Ok(Some(reason)) => break reason,
                        Ok(None) => {}
                        Err(e) => warn!(error = %e, "could not count pending work"),
                    }
                }
                if !idle_wait(&shared, &shutdown, poll).await {
                    break StopReason::Shutdown;
                }
            }
            Err(e) => {
                drop(slots);
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
    if shared.settings.dry_run {
        let released = shared.store.release_dry_run(owner).await?;
        info!(
            rows = released,
            "dry run over: every claimed row is pending again, untouched"
        );
        return Ok(0);
    }
    Ok(shared.store.release_owned(owner, now_ms()).await?)
}

/// How many more deletions the daily cap allows now (`None`: no cap).
/// Calls in flight count as if they will succeed, so the cap is never overshot.
async fn daily_budget(shared: &Shared) -> Result<Option<u64>, StoreError> {
    let cap = shared.settings.max_deletions_per_day;
    if cap == 0 {
        return Ok(None);
    }
    // In-flight first, then the database: a batch that records its outcome
    // between the two reads is then counted twice (safe), never missed.
    // (Only this task claims, so nothing joins the in-flight count meanwhile.)
    let in_flight = shared
        .ids_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    let done = shared
        .store
        .succeeded_since(now_ms() - DAY_MS)
        .await?
        .max(0) as u64;
    Ok(Some(cap.saturating_sub(done + in_flight)))
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
    metrics::gauge!("zdel_lanes_paused").set(pauses.len() as f64);
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

/// For drain: `Some(reason)` once nothing runnable is left.
async fn drain_outlook(
    shared: &Shared,
    paused_modules: &[String],
) -> Result<Option<StopReason>, StoreError> {
    let runnable = shared.store.pending_rows(paused_modules).await?;
    if runnable > 0 {
        return Ok(None);
    }
    // Rows running under another owner's lease (say, a killed zdel's) are
    // not done: wait until they finish or their lease expires and the
    // reaper hands them back.
    if shared.store.running_elsewhere(&shared.owner).await? > 0 {
        return Ok(None);
    }
    let jobs = shared.store.live_jobs().await?;
    if jobs.live > jobs.uncertain {
        return Ok(None);
    }
    let uncertain_jobs = jobs.uncertain;
    let paused_rows = shared.store.pending_rows(&[]).await?;
    Ok(Some(if paused_rows > 0 {
        StopReason::DrainedExceptPaused { paused_rows }
    } else if uncertain_jobs > 0 {
        StopReason::DrainedExceptUncertainJobs {
            jobs: uncertain_jobs,
        }
    } else {
        StopReason::Drained
    }))
}
