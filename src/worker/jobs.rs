//! Custom-view mass-delete jobs: schedule with one POST, then poll the
//! stored `job_id` until Zoho says COMPLETED or FAILED. The store's
//! `sqlite/jobs.rs` documents the states and the never-twice rule; this file
//! only decides, from Zoho's answer, which update to record.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use super::Shared;
use super::batch::{MASS_DELETE, apply_error_effects};
use super::gates::Target;
use crate::store::{JobAction, JobCounts, JobRow, JobState, JobUpdate, StoreError};
use crate::zoho::{CallCode, CallSlot, JobPhase, JobStatus, ScheduleAnswer, ZohoError};

/// Start every due job action, each in its own task with a call slot.
/// Returns how many were started.
pub(super) async fn start_due_jobs(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> Result<u64, StoreError> {
    let reaped = shared
        .store
        .reap_stale_scheduling(shared.clock().now_ms())
        .await?;
    if reaped > 0 {
        error!(
            jobs = reaped,
            "mass-delete jobs were left mid-POST by a stopped zdel: marked uncertain; see `zdel jobs`"
        );
    }
    let mut started = 0;
    loop {
        let skip: Vec<String> = shared.gates.paused_modules(shared.org());
        let Some(action) = shared
            .store
            .next_job_action(
                shared.clock().now_ms(),
                &shared.owner,
                shared.settings.lease_ms,
                &skip,
            )
            .await?
        else {
            return Ok(started);
        };
        let slot = tokio::select! {
            slot = shared.client.acquire_slot() => slot,
            _ = shutdown.cancelled() => {
                // Leave it: a leased schedule turns uncertain only if its lease
                // expires, so hand it back now, before anything was sent.
                if let JobAction::Schedule(job) = &action {
                    let back = JobUpdate::NotScheduled { retry_at: 0, error: "zdel shut down before sending".into() };
                    shared.store.update_job(job.id, &shared.owner, &back, shared.clock().now_ms()).await?;
                }
                return Ok(started);
            }
        };
        if matches!(action, JobAction::Schedule(_)) {
            // Zoho takes one mass delete at a time: hold ID-list ones back now.
            shared
                .view_job_at_zoho
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let task_shared = shared.clone();
        tasks.spawn(async move { run_job(task_shared, action, slot).await });
        started += 1;
    }
}

/// Dry run: say which custom-view jobs would be posted or polled, once a tick.
pub(super) async fn log_jobs_in_dry_run(shared: &Shared) {
    if let Ok(jobs) = shared.store.jobs().await {
        for j in jobs
            .iter()
            .filter(|j| matches!(j.state, JobState::Pending | JobState::Running))
        {
            info!(id = j.id, module = %j.module, cvid = %j.cvid, state = %j.state, "dry run: would {} this mass-delete job", if j.state == JobState::Pending { "post" } else { "poll" });
        }
    }
}

async fn run_job(shared: Arc<Shared>, action: JobAction, slot: CallSlot) {
    let (job, kind) = match &action {
        JobAction::Schedule(job) => (job, "schedule"),
        JobAction::Poll(job) => (job, "poll"),
    };
    let span = info_span!("mass_delete_job", id = job.id, module = %job.module, cvid = %job.cvid, action = kind);
    async {
        let now = shared.clock().now_ms();
        let update = match &action {
            JobAction::Schedule(job) => {
                let territory = job.territory_id.as_deref().map(|t| (t, job.include_child));
                let answer = shared
                    .client
                    .schedule_mass_delete(&slot, &job.module, &job.cvid, territory)
                    .await;
                drop(slot);
                if let Err(e) = &answer {
                    apply_error_effects(&shared, job_target(job), e).await;
                }
                schedule_update(job, answer, &shared.settings, now)
            }
            JobAction::Poll(job) => {
                let job_id = job.job_id.clone().unwrap_or_default();
                let answer = shared
                    .client
                    .mass_delete_status(&slot, &job.module, &job_id)
                    .await;
                drop(slot);
                if let Err(e) = &answer {
                    apply_error_effects(&shared, job_target(job), e).await;
                }
                poll_update(job, answer, &shared.settings, now)
            }
        };
        match &update {
            JobUpdate::Scheduled { job_id, .. } => info!(job_id = %job_id, "mass delete scheduled"),
            JobUpdate::Finished { completed, status, counts, .. } => info!(completed, status = %status, total = counts.total, deleted = counts.deleted, failed = counts.failed, "mass delete finished"),
            JobUpdate::Uncertain { error } => error!(error = %error, "mass delete outcome unknown: job marked uncertain, needs an operator"),
            JobUpdate::Refused { error } => error!(error = %error, "mass delete refused"),
            JobUpdate::PollsExhausted { error } => error!(error = %error, "mass-delete job's status unknown: job marked uncertain, needs an operator"),
            JobUpdate::NotScheduled { error, .. }
            | JobUpdate::PollFailed { error, .. }
            | JobUpdate::PollUnknown { error, .. } => warn!(error = %error, "will try again"),
            JobUpdate::Progress { .. } => {}
        }
        match shared.store.update_job(job.id, &shared.owner, &update, shared.clock().now_ms()).await {
            Ok(true) => {}
            Ok(false) => warn!("the job changed meanwhile (cancelled, or its lease ran out); update not applied"),
            Err(e) => error!(error = %e, "could not record the job's update; it is retried from the stored state"),
        }
        shared.batch_done.notify_one();
    }
    .instrument(span)
    .await
}

/// A job's calls, for the gates they may close: mass deletes of its module.
fn job_target(job: &JobRow) -> Target<'_> {
    Target {
        module: &job.module,
        operation: MASS_DELETE,
    }
}

fn schedule_update(
    job: &JobRow,
    answer: Result<ScheduleAnswer, ZohoError>,
    settings: &super::WorkerSettings,
    now: i64,
) -> JobUpdate {
    let retry_at = now
        + settings
            .retry
            .backoff_ms(job.post_attempts.max(1) as u32, 1.0)
            .max(settings.job_poll_interval_ms);
    match answer {
        Ok(ScheduleAnswer::Scheduled { job_id }) => JobUpdate::Scheduled {
            job_id,
            next_poll_at: now + settings.job_poll_interval_ms,
        },
        // Another mass action runs in this module: wait and try again.
        Ok(ScheduleAnswer::AlreadyScheduled { message }) | Err(ZohoError::Busy { message, .. }) => {
            JobUpdate::NotScheduled {
                retry_at,
                error: format!("{}: {message}", CallCode::AlreadyScheduled),
            }
        }
        // An empty view: nothing to delete is a finished job, not a failure.
        Ok(ScheduleAnswer::NoRecords { message }) => JobUpdate::Finished {
            completed: true,
            status: CallCode::NoRecordsFound.to_string(),
            counts: JobCounts {
                total: Some(0),
                deleted: Some(0),
                failed: Some(0),
            },
            error: Some(format!("{}: {message}", CallCode::NoRecordsFound)),
        },
        Ok(ScheduleAnswer::Refused { code, message }) => JobUpdate::Refused {
            error: format!("{code}: {message}"),
        },
        Err(ZohoError::Transient {
            ambiguous: true,
            code,
            message,
            ..
        }) => JobUpdate::Uncertain {
            error: format!(
                "{code}: {message}. Zoho may have scheduled the job: check its mass-delete status in Zoho CRM, then `zdel jobs --reschedule {}` or `zdel jobs --cancel {}`",
                job.id, job.id
            ),
        },
        // Nothing reached Zoho, or it refused to look: certainly not scheduled.
        Err(
            e @ (ZohoError::Transient { .. }
            | ZohoError::Unavailable { .. }
            | ZohoError::RateLimited { .. }
            | ZohoError::LanePaused { .. }
            | ZohoError::NotSent { .. }
            | ZohoError::CredentialsRejected { .. }),
        ) => JobUpdate::NotScheduled {
            retry_at,
            error: e.to_string(),
        },
        Err(e @ ZohoError::Rejected { .. }) => JobUpdate::Refused {
            error: e.to_string(),
        },
    }
}

fn poll_update(
    job: &JobRow,
    answer: Result<JobStatus, ZohoError>,
    settings: &super::WorkerSettings,
    now: i64,
) -> JobUpdate {
    match answer {
        Ok(status) => {
            let counts = JobCounts {
                total: status.total,
                deleted: status.deleted,
                failed: status.failed,
            };
            if status.phase.is_final() {
                let completed = status.phase == JobPhase::Completed;
                JobUpdate::Finished {
                    completed,
                    error: (!completed).then(|| format!("Zoho reports the job {}", status.phase)),
                    status: status.phase.to_string(),
                    counts,
                }
            } else {
                JobUpdate::Progress {
                    status: status.phase.to_string(),
                    counts,
                    next_poll_at: now + poll_interval_ms(job.polls + 1, settings),
                }
            }
        }
        // The poll never ran: it says nothing, and is not counted.
        Err(
            e @ (ZohoError::RateLimited { .. }
            | ZohoError::Unavailable { .. }
            | ZohoError::LanePaused { .. }
            | ZohoError::CredentialsRejected { .. }
            | ZohoError::Busy { .. }
            // Nothing reached Zoho (a connect failure): try again.
            | ZohoError::Transient {
                http_status: None,
                ambiguous: false,
                ..
            }),
        ) => JobUpdate::PollFailed {
            next_poll_at: now + poll_interval_ms(job.polls + 1, settings),
            error: e.to_string(),
        },
        // Answered, but with nothing about the job (404 unknown or expired
        // job, 204, an unreadable body, a 5xx): counted, and bounded.
        Err(e) => {
            let job_id = job.job_id.as_deref().unwrap_or("?");
            let unknown = job.unknown_polls + 1;
            if unknown >= i64::from(settings.job_max_unknown_polls.max(1)) {
                JobUpdate::PollsExhausted {
                    error: format!(
                        "Zoho's answers to {unknown} status polls in a row said nothing about mass-delete job {job_id} (last: {e}): it may have finished, failed or expired. Check the module's records (or its recycle bin) in Zoho CRM, then `zdel jobs --reschedule {}` to post it again or `zdel jobs --cancel {}`",
                        job.id, job.id
                    ),
                }
            } else {
                JobUpdate::PollUnknown {
                    next_poll_at: now + poll_interval_ms(job.polls + 1, settings),
                    error: format!(
                        "status poll {unknown} of at most {} without news of job {job_id}: {e}",
                        settings.job_max_unknown_polls
                    ),
                }
            }
        }
    }
}

/// The wait before poll number `polls + 1`: the base interval, doubled every
/// five polls, capped.
pub(super) fn poll_interval_ms(polls: i64, settings: &super::WorkerSettings) -> i64 {
    let doublings = (polls / 5).clamp(0, 20) as u32;
    settings
        .job_poll_interval_ms
        .saturating_mul(1 << doublings)
        .min(settings.job_max_poll_interval_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::{RetryPolicy, WorkerSettings};
    use std::time::Duration;

    fn settings() -> WorkerSettings {
        WorkerSettings {
            batch_size: 100,
            lease_ms: 60_000,
            daemon_lease_ms: 30_000,
            poll_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(1),
            auth_probe_interval: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay_ms: 1_000,
                max_delay_ms: 60_000,
            },
            default_strategy: crate::config::DeleteStrategy::Delete,
            job_poll_interval_ms: 5_000,
            job_max_poll_interval_ms: 60_000,
            job_max_unknown_polls: 3,
            max_throttle_backoff: Duration::from_secs(60),
            max_credits_per_day: 0,
            min_credits_remaining: 0,
            dry_run: false,
            max_deletions_per_day: 0,
            heartbeat: Default::default(),
            clock: crate::clock::Clock::new(),
            verify_ambiguous: true,
        }
    }

    fn job() -> JobRow {
        JobRow {
            id: 7,
            module: "Leads".into(),
            cvid: "1".into(),
            territory_id: None,
            include_child: false,
            state: JobState::Running,
            job_id: Some("9".into()),
            zoho_status: None,
            total_count: None,
            deleted_count: None,
            failed_count: None,
            post_attempts: 1,
            polls: 0,
            unknown_polls: 0,
            next_action_at: 0,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            scheduled_at: None,
            finished_at: None,
        }
    }

    fn status(s: &str) -> Result<JobStatus, ZohoError> {
        Ok(JobStatus {
            phase: JobPhase::parse(s),
            total: Some(10),
            deleted: Some(4),
            failed: Some(0),
        })
    }

    #[test]
    fn unknown_statuses_mean_still_running() {
        for s in [
            "SCHEDULED",
            "QUEUED",
            "RUNNING",
            "SUSPENDED",
            "PAUSED_FOR_REVIEW",
            "",
        ] {
            assert!(
                matches!(
                    poll_update(&job(), status(s), &settings(), 0),
                    JobUpdate::Progress { .. }
                ),
                "{s}"
            );
        }
        assert!(matches!(
            poll_update(&job(), status(JobPhase::Completed.as_str()), &settings(), 0),
            JobUpdate::Finished {
                completed: true,
                ..
            }
        ));
        assert!(matches!(
            poll_update(&job(), status(JobPhase::Failed.as_str()), &settings(), 0),
            JobUpdate::Finished {
                completed: false,
                ..
            }
        ));
    }

    #[test]
    fn polls_back_off_to_the_cap() {
        let s = settings();
        assert_eq!(poll_interval_ms(1, &s), 5_000);
        assert_eq!(poll_interval_ms(5, &s), 10_000);
        assert_eq!(poll_interval_ms(10, &s), 20_000);
        assert_eq!(poll_interval_ms(100, &s), 60_000);
    }

    #[test]
    fn schedule_answers_map_to_the_safe_update() {
        let s = settings();
        let refused = |code: &str| {
            Ok(ScheduleAnswer::Refused {
                code: CallCode::parse(code),
                message: "m".into(),
            })
        };
        let already = Ok(ScheduleAnswer::AlreadyScheduled {
            message: "m".into(),
        });
        assert!(matches!(
            schedule_update(&job(), already, &s, 0),
            JobUpdate::NotScheduled { .. }
        ));
        let empty = Ok(ScheduleAnswer::NoRecords {
            message: "m".into(),
        });
        assert!(matches!(
            schedule_update(&job(), empty, &s, 0),
            JobUpdate::Finished {
                completed: true,
                ..
            }
        ));
        assert!(matches!(
            schedule_update(&job(), refused("NOT_SUPPORTED"), &s, 0),
            JobUpdate::Refused { .. }
        ));
        let timeout = Err(ZohoError::Transient {
            code: "TIMEOUT".into(),
            message: "m".into(),
            http_status: None,
            ambiguous: true,
        });
        assert!(matches!(
            schedule_update(&job(), timeout, &s, 0),
            JobUpdate::Uncertain { .. }
        ));
        let refused_conn = Err(ZohoError::Transient {
            code: "CONNECT_FAILED".into(),
            message: "m".into(),
            http_status: None,
            ambiguous: false,
        });
        assert!(matches!(
            schedule_update(&job(), refused_conn, &s, 0),
            JobUpdate::NotScheduled { .. }
        ));
    }
}
