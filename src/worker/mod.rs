//! The scheduler: the only place that joins the store and the Zoho client.
//!
//! One dispatcher loop ([`run`]) turns through named steps: keep the
//! heartbeat, collect finished tasks, do the poll interval's maintenance
//! (reap expired leases, reread the pauses, start due mass-delete jobs),
//! check the [`gates`] (pauses, token outage, daily cap, 429 cool-downs),
//! take every free call slot, claim a batch per slot under a lease, and
//! hand each batch to a task that makes the call and records each row's
//! outcome ([`batch`]). Retries go back through the queue
//! (`next_attempt_at`), so a backoff survives a restart and never holds a
//! slot; `zdel resume` and rows INSERTed by other processes take effect
//! within `worker.poll_interval_ms`. Time comes from one [`Clock`].
//!
//! Where things go: a new answer from Zoho is decided in [`outcome`]
//! (per-ID and whole-call) and, if it closes a lane, in [`gates`]; a new
//! Zoho operation is a `zoho::Call` variant built in `batch::call_for`.

mod batch;
pub mod credits;
pub mod gates;
mod jobs;
pub mod outcome;
mod settings;
pub mod verify;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use gates::Gates;
pub use outcome::RetryPolicy;
pub use settings::WorkerSettings;

use crate::clock::Clock;
use crate::org::OrgId;
use crate::store::{
    ClaimRequest, ClaimedBatch, DaemonHolder, DaemonLease, LaneKey, PAUSE_ALL, Store, StoreError,
};
use crate::zoho::{CallCode, CallSlot, ZohoClient};

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
    /// Another zdel took this one's database lease (this one was frozen or
    /// cut off longer than `worker.daemon_lease_ms`): it stopped claiming.
    LeaseLost { holder: String },
    /// Drain: the disk holding the database is full; nothing more can be
    /// recorded. `message` names the file.
    DiskFull { message: String },
    /// Drain: zdel's share of the day's API credits is spent, or Zoho's
    /// remaining credits are below the headroom, with rows left.
    CreditsReached { pending: i64, why: String },
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
    gates: Gates,
    /// Wakes the idle dispatcher when a batch finishes.
    batch_done: Notify,
    /// Identifies this process's leases.
    owner: String,
    /// A custom-view job of the org is being posted or runs at Zoho (as of
    /// the last maintenance): Zoho takes no ID-list mass delete meanwhile.
    view_job_at_zoho: std::sync::atomic::AtomicBool,
    /// The credit ledger as of the last maintenance.
    ledger: std::sync::Mutex<crate::store::CreditLedger>,
}

impl Shared {
    fn clock(&self) -> Clock {
        self.settings.clock
    }

    /// How long rows that wait without an attempt wait, now.
    fn waits(&self) -> outcome::Waits {
        let now = self.clock().now();
        let throttled = match self.gates.throttle(self.org(), now).0 {
            Some(until) => until.duration_since(now).as_millis() as i64,
            None => gates::THROTTLE_BASE_MS as i64,
        };
        let busy = match self.gates.mass_delete_busy(self.org(), now) {
            Some(until) => until.duration_since(now).as_millis() as i64,
            None => self.settings.job_poll_interval_ms,
        };
        outcome::Waits {
            rate_limited_ms: throttled,
            busy_ms: busy,
        }
    }

    /// The org this worker serves: its client's.
    fn org(&self) -> &OrgId {
        self.client.org()
    }
}

/// The most batches claimed in one transaction (when that many call slots
/// are free at once).
const MAX_BATCHES_PER_CLAIM: usize = 32;
/// A dry run holds its claims for the whole run: it never records an
/// outcome, so the rows must not return to pending (and be shown again)
/// before it ends.
const DRY_RUN_LEASE_MS: i64 = 24 * 3600 * 1000;
/// The daily cap's rolling window.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a step of the dispatcher leads to.
enum Step {
    /// Go round again.
    Next,
    Stop(StopReason),
}

/// Become the database's one working zdel (see `store`'s `daemon_lease`),
/// or fail with [`StoreError::HeldBy`] naming who is.
pub async fn take_lease(
    store: &Store,
    mode: RunMode,
    settings: &WorkerSettings,
) -> Result<DaemonLease, WorkerError> {
    let command = match mode {
        RunMode::Serve => "serve",
        RunMode::Drain => "drain",
    };
    let owner = format!("zdel-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let me = DaemonHolder::this_process(&owner, command, crate::clock::now_ms());
    Ok(store
        .take_daemon_lease(&me, settings.daemon_lease_ms)
        .await?)
}

/// Run the worker until `shutdown` is cancelled (serve) or the queue is
/// done (drain), after taking the database's lease ([`take_lease`]).
pub async fn run(
    store: Store,
    client: Arc<ZohoClient>,
    settings: WorkerSettings,
    mode: RunMode,
    shutdown: CancellationToken,
) -> Result<RunSummary, WorkerError> {
    let lease = take_lease(&store, mode, &settings).await?;
    run_with_lease(store, client, settings, mode, shutdown, lease).await
}

/// [`run`], with the lease already taken (`serve` takes it before it
/// listens, so a second one stops before binding its port).
pub async fn run_with_lease(
    store: Store,
    client: Arc<ZohoClient>,
    settings: WorkerSettings,
    mode: RunMode,
    shutdown: CancellationToken,
    lease: DaemonLease,
) -> Result<RunSummary, WorkerError> {
    if let Some(dead) = &lease.dead_predecessor {
        // It died on this host (its OS lock was free): its claims go back now.
        let dry = store.release_dry_run(dead).await?;
        let cut = store.release_owned(dead, crate::clock::now_ms()).await?;
        if dry + cut > 0 {
            warn!(
                rows = dry + cut,
                predecessor = %dead,
                "took over from a zdel that died on this host: its claimed rows are pending again"
            );
        }
    }
    let mut dispatcher = Dispatcher::new(store, client, settings, mode, shutdown, lease);
    let reason = loop {
        if let Step::Stop(reason) = dispatcher.turn().await {
            break reason;
        }
    };
    dispatcher.finish(reason).await
}

/// The dispatcher's state between turns.
struct Dispatcher {
    shared: Arc<Shared>,
    mode: RunMode,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    batches: u64,
    lease_ms: i64,
    /// The lane claimed last: the next claim starts after it (round robin).
    cursor: Option<LaneKey>,
    /// Lanes with pending rows, rediscovered when a claim finds nothing and
    /// at every poll interval (so lanes INSERTed by SQL are picked up).
    lanes: Vec<LaneKey>,
    next_maintenance: Instant,
    next_auth_probe: Instant,
    cap_reported: bool,
    credits_reported: bool,
    dry_run_jobs_logged: bool,
    /// This process's hold on the database (`None` once released or lost).
    lease: Option<DaemonLease>,
    /// Its token, presented with every claim.
    fence: Option<i64>,
    next_lease_renewal: Instant,
}

impl Dispatcher {
    fn new(
        store: Store,
        client: Arc<ZohoClient>,
        settings: WorkerSettings,
        mode: RunMode,
        shutdown: CancellationToken,
        lease: DaemonLease,
    ) -> Dispatcher {
        let owner = lease.owner.clone();
        let lease_ms = if settings.dry_run {
            info!(
                "dry run: claiming and grouping as for real; nothing is sent to Zoho and every row stays pending"
            );
            DRY_RUN_LEASE_MS
        } else {
            settings.lease_ms
        };
        info!(owner = %owner, mode = ?mode, "worker started");
        let now = settings.clock.now();
        Dispatcher {
            shared: Arc::new(Shared {
                store,
                client,
                gates: Gates::new(
                    settings.max_throttle_backoff,
                    std::time::Duration::from_millis(settings.job_poll_interval_ms.max(0) as u64),
                ),
                settings,
                batch_done: Notify::new(),
                owner,
                view_job_at_zoho: Default::default(),
                ledger: Default::default(),
            }),
            mode,
            shutdown,
            tasks: JoinSet::new(),
            batches: 0,
            lease_ms,
            cursor: None,
            lanes: Vec::new(),
            next_maintenance: now,
            next_auth_probe: now,
            cap_reported: false,
            credits_reported: false,
            dry_run_jobs_logged: false,
            fence: Some(lease.token),
            lease: Some(lease),
            next_lease_renewal: now,
        }
    }

    /// One turn: the gates, then a claim for every free call slot.
    async fn turn(&mut self) -> Step {
        self.beat();
        self.collect_finished_tasks();
        if self.shutdown.is_cancelled() {
            return Step::Stop(StopReason::Shutdown);
        }
        if let Err(holder) = self.renew_lease_if_due().await {
            return Step::Stop(StopReason::LeaseLost { holder });
        }
        self.maintain_if_due().await;
        let org = self.shared.org();
        if self.shared.gates.all_paused(org) {
            return self.wait_for_credentials().await;
        }
        let now = self.shared.clock().now();
        if let Some(until) = self.shared.gates.token_outage_until(org, now) {
            return self.sleep_until(until).await;
        }
        let (throttled_until, streak) = self.shared.gates.throttle(org, now);
        if let Some(until) = throttled_until {
            return self.sleep_until(until).await;
        }
        // After 429s in a row, one call at a time until Zoho answers again:
        // a few calls a minute while the day's credits are gone, not one per slot.
        let probing = streak > 0;
        if probing && !self.tasks.is_empty() {
            return self.idle().await;
        }
        let Some(slots) = self.take_free_slots(probing).await else {
            return Step::Stop(StopReason::Shutdown);
        };
        let mut slots = slots;
        match self.calls_left() {
            Err(stop) => {
                drop(slots);
                return self.hold_for_credits(stop).await;
            }
            // No more calls than the share has left.
            Ok(Some(left)) => slots.truncate(usize::try_from(left).unwrap_or(usize::MAX).max(1)),
            Ok(None) => {}
        }
        if self.credits_reported || self.cap_reported {
            credits::report_stop(None);
        }
        self.credits_reported = false;
        let budget = self.daily_budget().await;
        if budget == Some(0) {
            drop(slots);
            return self.hold_at_daily_cap().await;
        }
        self.cap_reported = false;
        // The rows' lease runs from no earlier than this.
        let claimed_at = self.shared.clock().now();
        match self.claim(slots.len(), budget).await {
            Ok(claimed) if !claimed.is_empty() => {
                let lease_ends =
                    claimed_at + std::time::Duration::from_millis(self.lease_ms.max(0) as u64);
                self.dispatch(claimed, slots, lease_ends);
                Step::Next
            }
            Ok(_) => {
                drop(slots);
                self.when_nothing_is_due().await
            }
            Err(StoreError::LeaseLost { holder }) => {
                drop(slots);
                error!(holder = %holder, "another zdel holds this database now: stopping");
                self.lease = None;
                Step::Stop(StopReason::LeaseLost { holder })
            }
            Err(e) if e.is_disk_full() => {
                drop(slots);
                let message = format!(
                    "the disk holding the database {} is full: no claim can be recorded; free space (zdel carries on by itself once there is room)",
                    self.shared.store.path().display()
                );
                error!("{message}");
                if self.mode == RunMode::Drain {
                    return Step::Stop(StopReason::DiskFull { message });
                }
                self.idle().await
            }
            Err(e) => {
                drop(slots);
                warn!(error = %e, "could not claim a batch; will try again");
                self.idle().await
            }
        }
    }

    /// Renew the database lease every third of its length. `Err(holder)`:
    /// another zdel has it now, so this one must stop.
    async fn renew_lease_if_due(&mut self) -> Result<(), String> {
        let now = self.shared.clock().now();
        if now < self.next_lease_renewal {
            return Ok(());
        }
        let Some(lease) = self.lease.as_ref() else {
            return Ok(());
        };
        let lease_ms = self.shared.settings.daemon_lease_ms;
        match self
            .shared
            .store
            .renew_daemon_lease(lease, crate::clock::now_ms(), lease_ms)
            .await
        {
            Ok(true) => {
                self.next_lease_renewal =
                    now + std::time::Duration::from_millis((lease_ms / 3).max(1) as u64);
                Ok(())
            }
            Ok(false) => {
                let holder = match self.shared.store.daemon_holder().await {
                    Ok(Some(h)) => h.to_string(),
                    _ => "nobody".to_string(),
                };
                error!(holder = %holder, "another zdel took this database's lease (this one was frozen or cut off): stopping, claiming nothing more");
                self.lease = None;
                self.fence = Some(-1);
                Err(holder)
            }
            Err(e) => {
                // Not renewed this time; the lease still runs for a while.
                warn!(error = %e, "could not renew the database lease; will try again");
                self.next_lease_renewal = now + self.shared.settings.poll_interval;
                Ok(())
            }
        }
    }

    /// Tell the watchdog the dispatcher turns.
    fn beat(&self) {
        let now = self.shared.clock().now_ms();
        (self.shared.settings.heartbeat).store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn collect_finished_tasks(&mut self) {
        while let Some(joined) = self.tasks.try_join_next() {
            if let Err(e) = joined {
                error!(error = %e, "a batch task panicked; its rows return to pending when their lease expires");
            }
        }
    }

    /// Once a poll interval: reap expired leases, reread the pauses, forget
    /// the lanes, and start due mass-delete jobs.
    async fn maintain_if_due(&mut self) {
        let shared = &self.shared;
        if shared.clock().now() < self.next_maintenance {
            return;
        }
        if let Err(e) = maintenance(shared).await {
            warn!(error = %e, "queue maintenance failed; will try again");
        }
        self.lanes.clear();
        if shared.settings.dry_run {
            if !self.dry_run_jobs_logged {
                jobs::log_jobs_in_dry_run(shared).await;
                self.dry_run_jobs_logged = true;
            }
        } else if !shared.gates.all_paused(shared.org())
            && !matches!(self.daily_budget().await, Some(0))
            && self.credit_stop().is_none()
            && !self.calls_held_back()
        {
            match jobs::start_due_jobs(shared, &mut self.tasks, &self.shutdown).await {
                Ok(started) => self.batches += started,
                Err(e) => warn!(error = %e, "could not start mass-delete jobs; will try again"),
            }
        }
        self.next_maintenance = self.shared.clock().now() + self.shared.settings.poll_interval;
    }

    /// Every lane is paused: probe the credentials now and then; a drain
    /// with nothing in flight stops if they are still rejected.
    async fn wait_for_credentials(&mut self) -> Step {
        // Zoho rejected a token it had just issued: a fresh token proves
        // nothing, only a call would. A drain stops and says why once its
        // calls are in; serve lifts the pause after the probe interval and
        // lets the next call tell.
        if let Ok(Some(pause)) = self.shared.store.globally_paused().await
            && CallCode::parse(&pause.code).is_token_rejected()
        {
            if self.mode == RunMode::Drain {
                if self.tasks.is_empty() {
                    return Step::Stop(StopReason::CredentialsRejected {
                        message: format!("{}: {}", pause.code, pause.message),
                    });
                }
            } else {
                let interval = self.shared.settings.auth_probe_interval.as_millis() as i64;
                if self.shared.clock().now_ms() >= pause.paused_at + interval {
                    info!("trying one call again after the token was rejected");
                    if self.shared.store.resume(PAUSE_ALL).await.is_ok() {
                        self.shared.gates.lift_all_pause(self.shared.org());
                    }
                    return Step::Next;
                }
            }
            return self.idle().await;
        }
        let now = self.shared.clock().now();
        if now >= self.next_auth_probe {
            self.next_auth_probe = now + self.shared.settings.auth_probe_interval;
            match probe_credentials(&self.shared).await {
                Ok(()) => return Step::Next,
                Err(message) if self.mode == RunMode::Drain && self.tasks.is_empty() => {
                    return Step::Stop(StopReason::CredentialsRejected { message });
                }
                Err(_) => {}
            }
        }
        self.idle().await
    }

    /// Sleep until `until` (a token outage's end), or shutdown.
    async fn sleep_until(&self, until: Instant) -> Step {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => Step::Next,
            _ = self.shutdown.cancelled() => Step::Stop(StopReason::Shutdown),
        }
    }

    /// Wait for one call slot, then take every other slot free right now:
    /// their batches are claimed in one transaction (the writer's fixed
    /// cost per transaction is shared). `None` on shutdown.
    async fn take_free_slots(&self, only_one: bool) -> Option<Vec<CallSlot>> {
        let client = &self.shared.client;
        let first = tokio::select! {
            slot = client.acquire_slot() => slot,
            _ = self.shutdown.cancelled() => return None,
        };
        let mut slots = vec![first];
        while !only_one && slots.len() < MAX_BATCHES_PER_CLAIM {
            match client.try_acquire_slot() {
                Some(more) => slots.push(more),
                None => break,
            }
        }
        Some(slots)
    }

    /// What the daily cap leaves now; a count that cannot be read claims nothing.
    async fn daily_budget(&self) -> Option<u64> {
        match daily_budget(&self.shared).await {
            Ok(budget) => budget,
            Err(e) => {
                warn!(error = %e, "could not count today's deletions; not claiming until it can");
                Some(0)
            }
        }
    }

    /// The daily cap is reached: say so once, and a drain with nothing in
    /// flight stops if rows are left.
    async fn hold_at_daily_cap(&mut self) -> Step {
        if !self.cap_reported {
            credits::report_stop(Some("daily_cap"));
            warn!(
                cap = self.shared.settings.max_deletions_per_day,
                "limits.max_deletions_per_day reached: no new claims until the rolling 24-hour count drops"
            );
            self.cap_reported = true;
        }
        if self.mode == RunMode::Drain && self.tasks.is_empty() {
            let pending = self.shared.store.pending_rows(&[], &[]).await.unwrap_or(0);
            if pending > 0 {
                return Step::Stop(StopReason::DailyCapReached { pending });
            }
        }
        self.idle().await
    }

    /// Whether the org's 429 back-off or a token outage holds every call
    /// back now (job polls and posts too).
    fn calls_held_back(&self) -> bool {
        let (org, now) = (self.shared.org(), self.shared.clock().now());
        self.shared.gates.throttle(org, now).0.is_some()
            || self.shared.gates.token_outage_until(org, now).is_some()
    }

    /// Whether the credits stop claiming now (calls in flight count).
    fn credit_stop(&self) -> Option<credits::CreditStop> {
        self.calls_left().err()
    }

    /// How many calls the credits allow now (`None`: no limit), or why none.
    fn calls_left(&self) -> Result<Option<u64>, credits::CreditStop> {
        let settings = &self.shared.settings;
        if settings.max_credits_per_day == 0 && settings.min_credits_remaining == 0 {
            return Ok(None);
        }
        let mut ledger = *crate::sync::lock(&self.shared.ledger);
        let client_credits = self.shared.client.credits();
        // Zoho's newest figure, even if the ledger has not caught up yet.
        if let Some((remaining, at)) = client_credits.last_remaining()
            && ledger.remaining_seen_at.is_none_or(|seen| at >= seen)
        {
            ledger.remaining = Some(remaining);
            ledger.remaining_seen_at = Some(at);
        }
        credits::calls_left(
            &ledger,
            self.tasks.len() as u64,
            client_credits.unrecorded(),
            settings.max_credits_per_day,
            settings.min_credits_remaining,
            self.shared.clock().now_ms(),
        )
    }

    /// The credits stop claiming: say so once; a drain with nothing in
    /// flight stops if rows are left.
    async fn hold_for_credits(&mut self, stop: credits::CreditStop) -> Step {
        if !self.credits_reported {
            warn!("{stop}");
            credits::report_stop(Some(stop.reason()));
            self.credits_reported = true;
        }
        if self.mode == RunMode::Drain && self.tasks.is_empty() {
            let pending = self.shared.store.pending_rows(&[], &[]).await.unwrap_or(0);
            if pending > 0 {
                return Step::Stop(StopReason::CreditsReached {
                    pending,
                    why: stop.to_string(),
                });
            }
        }
        self.idle().await
    }

    /// Claim up to `slots` batches (at most `budget` IDs in all), past the
    /// gates; lanes are rediscovered once if the known ones have nothing due.
    async fn claim(
        &mut self,
        slots: usize,
        budget: Option<u64>,
    ) -> Result<Vec<ClaimedBatch>, StoreError> {
        let shared = &self.shared;
        let skip_modules = shared.gates.paused_modules(shared.org());
        let limit_for = |lane: &LaneKey| shared.settings.batch_limit(lane);
        for rediscover in [self.lanes.is_empty(), true] {
            if rediscover {
                // This worker serves its client's org only.
                self.lanes = shared.store.pending_lanes().await?;
                self.lanes.retain(|lane| &lane.org == shared.org());
            }
            let skip_lanes = held_lanes(shared, &self.lanes);
            let claimed = shared
                .store
                .claim_batches(&ClaimRequest {
                    now_ms: shared.clock().now_ms(),
                    lanes: &self.lanes,
                    after: self.cursor.as_ref(),
                    skip_modules: &skip_modules,
                    skip_lanes: &skip_lanes,
                    owner: &shared.owner,
                    dry_run: shared.settings.dry_run,
                    lease_ms: self.lease_ms,
                    limit_for: &limit_for,
                    max_batches: slots,
                    max_ids: budget,
                    fence: self.fence,
                })
                .await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        Ok(Vec::new())
    }

    /// Hand each batch and a slot to a task of its own.
    fn dispatch(
        &mut self,
        claimed: Vec<ClaimedBatch>,
        mut slots: Vec<CallSlot>,
        lease_ends: tokio::time::Instant,
    ) {
        for batch in claimed {
            // claim_batches returns at most one batch per slot.
            let Some(slot) = slots.pop() else { break };
            self.cursor = Some(batch.lane.clone());
            self.batches += 1;
            self.shared.gates.calls_started(batch.rows.len());
            let shared = self.shared.clone();
            self.tasks
                .spawn(async move { batch::run_batch(shared, batch, slot, lease_ends).await });
        }
    }

    /// Nothing was due: a drain with nothing in flight checks whether it is
    /// done; otherwise wait.
    async fn when_nothing_is_due(&mut self) -> Step {
        if self.mode == RunMode::Drain && self.tasks.is_empty() {
            let paused = self.shared.gates.paused_modules(self.shared.org());
            match drain_outlook(&self.shared, &paused).await {
                Ok(Some(reason)) => return Step::Stop(reason),
                Ok(None) => {}
                Err(e) => warn!(error = %e, "could not count pending work"),
            }
        }
        self.idle().await
    }

    /// Wait for a poll interval, a finished batch, or shutdown.
    async fn idle(&self) -> Step {
        tokio::select! {
            _ = tokio::time::sleep(self.shared.settings.poll_interval) => Step::Next,
            _ = self.shared.batch_done.notified() => Step::Next,
            _ = self.shutdown.cancelled() => Step::Stop(StopReason::Shutdown),
        }
    }

    /// Let calls in flight finish within the grace period, release what is
    /// left, and sum up.
    async fn finish(mut self, reason: StopReason) -> Result<RunSummary, WorkerError> {
        let released_on_shutdown = finish_in_flight(&self.shared, &mut self.tasks).await?;
        if let Some(lease) = self.lease.take()
            && let Err(e) = self.shared.store.release_daemon_lease(lease).await
        {
            warn!(error = %e, "could not give the database lease up; the next zdel takes it when it runs out");
        }
        if let Err(e) = keep_the_ledger(&self.shared).await {
            warn!(error = %e, "could not record the credits this run spent");
        }
        info!(batches = self.batches, released_on_shutdown, reason = ?reason, "worker stopped");
        Ok(RunSummary {
            reason,
            batches: self.batches,
            released_on_shutdown,
        })
    }
}

/// Let calls in flight finish within the grace period; abort the rest and
/// put their rows back to pending.
async fn finish_in_flight(shared: &Shared, tasks: &mut JoinSet<()>) -> Result<u64, WorkerError> {
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
        let released = shared.store.release_dry_run(&shared.owner).await?;
        info!(
            rows = released,
            "dry run over: every claimed row is pending again, untouched"
        );
        return Ok(0);
    }
    let now = shared.clock().now_ms();
    Ok(shared.store.release_owned(&shared.owner, now).await?)
}

/// How many more deletions the daily cap allows now (`None`: no cap).
async fn daily_budget(shared: &Shared) -> Result<Option<u64>, StoreError> {
    let cap = shared.settings.max_deletions_per_day;
    if cap == 0 {
        return Ok(None);
    }
    // In-flight first, then the database (see gates::daily_budget). Only
    // the dispatcher claims, so nothing joins the in-flight count meanwhile.
    let in_flight = shared.gates.ids_in_flight();
    let since = shared.clock().now_ms() - DAY_MS;
    let done = shared.store.succeeded_since(since).await?.max(0) as u64;
    Ok(gates::daily_budget(cap, in_flight, done))
}

/// Staged rows of complete selections released per maintenance pass: about
/// 0.7 s of write lock (measured at 5 M rows).
const RELEASE_PER_PASS: u32 = 50_000;

async fn maintenance(shared: &Shared) -> Result<(), StoreError> {
    let reaped = shared
        .store
        .reap_expired_leases(shared.clock().now_ms())
        .await?;
    if reaped > 0 {
        warn!(
            rows = reaped,
            "leases expired (a worker died or hung mid-call): rows returned to pending"
        );
    }
    // A selection whose command stopped while releasing it: its rows are
    // all in, so the rest is released here, a bounded share per pass.
    let released = shared.store.release_completed(RELEASE_PER_PASS).await?;
    if released > 0 {
        info!(
            rows = released,
            "released staged rows of complete selections (their command stopped while releasing them)"
        );
    }
    // Rows inserted by plain SQL join the maintained counts; minutes the
    // daily cap no longer looks at go.
    shared.store.fold_counts().await?;
    shared
        .store
        .prune_finished_minutes(shared.clock().now_ms() - 2 * DAY_MS)
        .await?;
    let pauses = shared.store.pauses().await?;
    shared.gates.set_pauses(shared.org(), &pauses);
    metrics::gauge!("zdel_lanes_paused").set(pauses.len() as f64);
    let jobs = shared.store.live_jobs().await?;
    shared
        .view_job_at_zoho
        .store(jobs.at_zoho > 0, std::sync::atomic::Ordering::Relaxed);
    keep_the_ledger(shared).await
}

/// Move what the client's calls spent (and Zoho's last remaining figure)
/// into the persistent ledger, and reread it.
async fn keep_the_ledger(shared: &Shared) -> Result<(), StoreError> {
    let credits = shared.client.credits();
    let spent = credits.take_spent();
    let now = crate::clock::now_ms();
    // Zoho's figure only if it is newer than the one already recorded.
    let seen_at = crate::sync::lock(&shared.ledger).remaining_seen_at;
    let remaining = credits
        .last_remaining()
        .filter(|(_, at)| seen_at.is_none_or(|seen| *at > seen));
    // Nothing new: no write (it would take the write lock every poll interval).
    if (spent > 0 || remaining.is_some())
        && let Err(e) = shared
            .store
            .record_credits(shared.org(), spent, remaining, now)
            .await
    {
        credits.give_back(spent);
        return Err(e);
    }
    let ledger = shared.store.credits(shared.org(), now).await?;
    metrics::gauge!("zdel_credits_spent_24h").set(ledger.spent_24h as f64);
    if let Some(remaining) = ledger.remaining {
        metrics::gauge!("zdel_credits_remaining").set(remaining as f64);
    }
    *crate::sync::lock(&shared.ledger) = ledger;
    Ok(())
}

/// Try a token refresh; on success lift the global pause.
async fn probe_credentials(shared: &Shared) -> Result<(), String> {
    match shared.client.check_credentials().await {
        Ok(_) => {
            if let Err(e) = shared.store.resume(PAUSE_ALL).await {
                warn!(error = %e, "credentials work again, but the pause could not be lifted");
                return Err(e.to_string());
            }
            shared.gates.lift_all_pause(shared.org());
            info!("Zoho accepts the credentials again: resuming all lanes");
            Ok(())
        }
        Err(e) => {
            error!(error = %e, "Zoho still rejects the credentials: all lanes stay paused");
            Err(e.to_string())
        }
    }
}

/// Lanes of `lanes` whose operation is paused in their module (the token
/// lacks its scope): they stay pending until resumed.
fn paused_lanes(shared: &Shared, lanes: &[LaneKey]) -> Vec<LaneKey> {
    let paused = shared.gates.paused_operations(shared.org());
    if paused.is_empty() {
        return Vec::new();
    }
    lanes
        .iter()
        .filter(|lane| {
            let operation = batch::scope_operation(lane, shared.settings.effective_strategy(lane));
            paused
                .iter()
                .any(|(m, op)| m == &lane.module && op == operation)
        })
        .cloned()
        .collect()
}

/// Lanes not to claim now: the paused ones, and ID-list mass deletes while
/// Zoho runs another mass action of the org (it takes one at a time).
fn held_lanes(shared: &Shared, lanes: &[LaneKey]) -> Vec<LaneKey> {
    let mut held = paused_lanes(shared, lanes);
    let now = shared.clock().now();
    let busy = shared.gates.mass_delete_busy(shared.org(), now).is_some()
        || shared
            .view_job_at_zoho
            .load(std::sync::atomic::Ordering::Relaxed);
    if busy {
        held.extend(
            lanes
                .iter()
                .filter(|lane| {
                    batch::scope_operation(lane, shared.settings.effective_strategy(lane))
                        == batch::MASS_DELETE
                })
                .cloned(),
        );
    }
    held
}

/// For drain: `Some(reason)` once nothing runnable is left.
async fn drain_outlook(
    shared: &Shared,
    paused_modules: &[String],
) -> Result<Option<StopReason>, StoreError> {
    let lanes = shared.store.pending_lanes().await?;
    let paused = paused_lanes(shared, &lanes);
    // Staged rows of an unfinished selection are not work left: no worker
    // takes them until the selection is finished (or cancelled).
    if shared.store.any_runnable(paused_modules, &paused).await? {
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
    let paused_rows = if shared.store.any_runnable(&[], &[]).await? {
        shared.store.pending_rows(&[], &[]).await?.max(1)
    } else {
        0
    };
    Ok(Some(if paused_rows > 0 {
        StopReason::DrainedExceptPaused { paused_rows }
    } else if jobs.uncertain > 0 {
        StopReason::DrainedExceptUncertainJobs {
            jobs: jobs.uncertain,
        }
    } else {
        StopReason::Drained
    }))
}
