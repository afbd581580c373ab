//! The worker's knobs, built from the config sections it needs.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use super::RetryPolicy;
use crate::clock::Clock;
use crate::config::{DeleteStrategy, LimitsConfig, MassDeleteConfig, RetryConfig, WorkerConfig};
use crate::store::{LaneKey, Operation, Strategy};
use crate::zoho::MAX_IDS_PER_MASS_DELETE;

/// The worker's knobs, from `[worker]`, `[retry]`, `[mass_delete]`,
/// `[limits]` and `zoho.delete_strategy`.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub batch_size: u32,
    pub lease_ms: i64,
    /// The one-working-zdel lease: its length (renewed every third).
    pub daemon_lease_ms: i64,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    pub auth_probe_interval: Duration,
    pub retry: RetryPolicy,
    /// How `auto` record deletes are sent.
    pub default_strategy: DeleteStrategy,
    /// First and longest wait between polls of a custom-view job.
    pub job_poll_interval_ms: i64,
    pub job_max_poll_interval_ms: i64,
    /// Status polls in a row that say nothing before a job turns uncertain.
    pub job_max_unknown_polls: u32,
    /// The longest wait after 429s in a row.
    pub max_throttle_backoff: Duration,
    /// zdel's own cap on credits spent in 24 hours (0: none).
    pub max_credits_per_day: u64,
    /// Stop claiming while Zoho's remaining credits are below this (0: never).
    pub min_credits_remaining: u64,
    /// Claim and group as for real, log each call, send nothing, leave rows pending.
    pub dry_run: bool,
    /// Stop claiming once this many deletions succeeded in 24 hours (0: no cap).
    pub max_deletions_per_day: u64,
    /// Epoch ms of the dispatcher's last turn: a systemd watchdog pings only
    /// while this moves.
    pub heartbeat: Arc<AtomicI64>,
    /// Where the worker reads the time.
    pub clock: Clock,
    /// Settle an `INVALID_DATA` after an unanswered attempt by the recycle
    /// bin (`verify.ambiguous`) instead of assuming the first call deleted it.
    pub verify_ambiguous: bool,
}

impl WorkerSettings {
    pub fn new(
        worker: &WorkerConfig,
        retry: &RetryConfig,
        mass_delete: &MassDeleteConfig,
        limits: &LimitsConfig,
        default_strategy: DeleteStrategy,
    ) -> WorkerSettings {
        let clock = Clock::new();
        WorkerSettings {
            batch_size: worker.batch_size,
            lease_ms: worker.lease_ms as i64,
            daemon_lease_ms: worker.daemon_lease_ms as i64,
            poll_interval: Duration::from_millis(worker.poll_interval_ms),
            shutdown_grace: Duration::from_millis(worker.shutdown_grace_ms),
            auth_probe_interval: Duration::from_millis(worker.auth_probe_interval_ms),
            retry: RetryPolicy {
                max_attempts: retry.max_attempts,
                base_delay_ms: retry.base_delay_ms,
                max_delay_ms: retry.max_delay_ms,
            },
            default_strategy,
            job_poll_interval_ms: mass_delete.poll_interval_ms as i64,
            job_max_poll_interval_ms: mass_delete.max_poll_interval_ms as i64,
            job_max_unknown_polls: mass_delete.max_unknown_polls,
            max_throttle_backoff: Duration::from_millis(limits.max_throttle_backoff_ms),
            max_credits_per_day: limits.max_credits_per_day,
            min_credits_remaining: limits.min_credits_remaining,
            dry_run: false,
            max_deletions_per_day: limits.max_deletions_per_day,
            heartbeat: Arc::new(AtomicI64::new(clock.now_ms())),
            clock,
            verify_ambiguous: true,
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
