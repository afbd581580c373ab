//! Mass-delete jobs over custom views (`mass_delete_jobs`).
//!
//! ```text
//!  INSERT / `zdel mass-delete`
//!        │
//!        ▼
//!     pending ── next_job_action (intent recorded under a lease) ──► scheduling
//!        ▲                                                            │  POST …/actions/mass_delete
//!        │  ALREADY_SCHEDULED, 429, connect failure                   │
//!        └────────────────────────────────────────────────────────────┤
//!                                                    job_id stored ──►├──► running ── poll … ──► completed | failed
//!                      timeout / 5xx / crash before the answer ──────►└──► uncertain
//!  running ── max_unknown_polls polls in a row say nothing (404, 204, unreadable) ──► uncertain
//!  uncertain ── `zdel jobs --reschedule ID` (after checking Zoho) ──► pending
//!  pending, uncertain ── `zdel jobs --cancel ID` ──► cancelled
//! ```
//!
//! Never twice: a job is posted only from `pending`, and only an operator
//! moves a job back to `pending`. A restart resumes polling every `running`
//! job by its stored `job_id`. The one window ordering cannot close — the
//! POST reached Zoho but zdel died (or the answer was lost) before storing
//! the `job_id` — leaves the job `scheduling` with an expiring lease; the
//! reaper turns it `uncertain`, never back to `pending`: re-posting could
//! delete a view's records twice (a view is a query, and new records may
//! match it by then), while waiting costs only an operator's look. If the
//! answer does arrive after the lease ran out, its `job_id` is still stored
//! and the job runs on.

use super::Store;
use crate::store::StoreError;
use crate::store::types::*;

const JOB_COLUMNS: &str = "id, module, cvid, territory_id, include_child, state, job_id, zoho_status, \
     total_count, deleted_count, failed_count, post_attempts, polls, unknown_polls, next_action_at, \
     last_error, created_at, updated_at, scheduled_at, finished_at";

impl Store {
    /// Queue a custom-view job. Fails with a unique violation if a live job
    /// for the same module, view and territory exists.
    pub async fn insert_job(&self, job: &NewJob) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO mass_delete_jobs (module, cvid, territory_id, include_child)
             VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )
        .bind(&job.module)
        .bind(&job.cvid)
        .bind(&job.territory_id)
        .bind(job.include_child)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM mass_delete_jobs ORDER BY id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM mass_delete_jobs WHERE id = ?1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Jobs not yet in a final state, and how many of those need an operator.
    pub async fn live_jobs(&self) -> Result<LiveJobs, StoreError> {
        Ok(sqlx::query_as(
            "SELECT count(*) AS live, coalesce(sum(state = 'uncertain'), 0) AS uncertain,
                    coalesce(sum(state IN ('scheduling', 'running')), 0) AS at_zoho
             FROM mass_delete_jobs
             WHERE state IN ('pending', 'scheduling', 'running', 'uncertain')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The next due job action, if any. A poll is leased by pushing its due
    /// time `lease_ms` ahead; a schedule records the intent (`scheduling`,
    /// lease owner and expiry) before anything is sent. At most one job per
    /// module is scheduling, running or uncertain at a time.
    pub async fn next_job_action(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        skip_modules: &[String],
    ) -> Result<Option<JobAction>, StoreError> {
        let skip =
            serde_json::to_string(skip_modules).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let mut tx = self.begin_write().await?;
        let poll_sql = format!(
            "UPDATE mass_delete_jobs SET next_action_at = ?1 + ?2, updated_at = ?1
             WHERE id = (SELECT id FROM mass_delete_jobs
                         WHERE state = 'running' AND next_action_at <= ?1
                           AND module NOT IN (SELECT value FROM json_each(?3))
                         ORDER BY next_action_at, id LIMIT 1)
             RETURNING {JOB_COLUMNS}"
        );
        let poll: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(poll_sql))
            .bind(now_ms)
            .bind(lease_ms)
            .bind(&skip)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(job) = poll {
            tx.commit().await?;
            return Ok(Some(JobAction::Poll(job)));
        }
        let schedule_sql = format!(
            "UPDATE mass_delete_jobs
             SET state = 'scheduling', lease_owner = ?2, lease_expires_at = ?1 + ?3,
                 post_attempts = post_attempts + 1, updated_at = ?1
             WHERE id = (SELECT j.id FROM mass_delete_jobs j
                         WHERE j.state = 'pending' AND j.next_action_at <= ?1
                           AND j.module NOT IN (SELECT value FROM json_each(?4))
                           AND NOT EXISTS (SELECT 1 FROM mass_delete_jobs o
                                           WHERE o.module = j.module
                                             AND o.state IN ('scheduling', 'running', 'uncertain'))
                         ORDER BY j.next_action_at, j.id LIMIT 1)
             RETURNING {JOB_COLUMNS}"
        );
        let schedule: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(schedule_sql))
            .bind(now_ms)
            .bind(owner)
            .bind(lease_ms)
            .bind(&skip)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(schedule.map(JobAction::Schedule))
    }

    /// Record what happened to job `id`. Returns false if the job was no
    /// longer in a state this update applies to (e.g. cancelled meanwhile).
    pub async fn update_job(
        &self,
        id: i64,
        owner: &str,
        update: &JobUpdate,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let query = match update {
            // Also from `uncertain`: the answer arrived after the lease ran out,
            // and knowing the job_id beats guessing.
            JobUpdate::Scheduled {
                job_id,
                next_poll_at,
            } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET state = 'running', job_id = ?3, scheduled_at = ?4, next_action_at = ?5,
                     last_error = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?1 AND lease_owner = ?2 AND state IN ('scheduling', 'uncertain')",
            )
            .bind(id)
            .bind(owner)
            .bind(job_id)
            .bind(now_ms)
            .bind(next_poll_at),
            JobUpdate::NotScheduled { retry_at, error } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET state = 'pending', next_action_at = ?3, last_error = ?4,
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ?5
                 WHERE id = ?1 AND lease_owner = ?2 AND state = 'scheduling'",
            )
            .bind(id)
            .bind(owner)
            .bind(retry_at)
            .bind(error)
            .bind(now_ms),
            JobUpdate::Uncertain { error } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET state = 'uncertain', last_error = ?3, updated_at = ?4
                 WHERE id = ?1 AND lease_owner = ?2 AND state = 'scheduling'",
            )
            .bind(id)
            .bind(owner)
            .bind(error)
            .bind(now_ms),
            JobUpdate::Refused { error } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET state = 'failed', last_error = ?3, finished_at = ?4, updated_at = ?4,
                     lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = ?1 AND lease_owner = ?2 AND state = 'scheduling'",
            )
            .bind(id)
            .bind(owner)
            .bind(error)
            .bind(now_ms),
            JobUpdate::Progress {
                status,
                counts,
                next_poll_at,
            } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET zoho_status = ?2, total_count = coalesce(?3, total_count),
                     deleted_count = coalesce(?4, deleted_count), failed_count = coalesce(?5, failed_count),
                     polls = polls + 1, unknown_polls = 0, next_action_at = ?6, last_error = NULL,
                     updated_at = ?7
                 WHERE id = ?1 AND state = 'running'",
            )
            .bind(id)
            .bind(status)
            .bind(counts.total)
            .bind(counts.deleted)
            .bind(counts.failed)
            .bind(next_poll_at)
            .bind(now_ms),
            JobUpdate::PollUnknown {
                next_poll_at,
                error,
            } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET polls = polls + 1, unknown_polls = unknown_polls + 1, next_action_at = ?2,
                     last_error = ?3, updated_at = ?4
                 WHERE id = ?1 AND state = 'running'",
            )
            .bind(id)
            .bind(next_poll_at)
            .bind(error)
            .bind(now_ms),
            JobUpdate::PollsExhausted { error } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET state = 'uncertain', polls = polls + 1, unknown_polls = unknown_polls + 1,
                     last_error = ?2, updated_at = ?3
                 WHERE id = ?1 AND state = 'running'",
            )
            .bind(id)
            .bind(error)
            .bind(now_ms),
            JobUpdate::PollFailed {
                next_poll_at,
                error,
            } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET next_action_at = ?2, last_error = ?3, updated_at = ?4
                 WHERE id = ?1 AND state = 'running'",
            )
            .bind(id)
            .bind(next_poll_at)
            .bind(error)
            .bind(now_ms),
            JobUpdate::Finished {
                completed,
                status,
                counts,
                error,
            } => sqlx::query(
                "UPDATE mass_delete_jobs
                 SET state = CASE WHEN ?2 THEN 'completed' ELSE 'failed' END, zoho_status = ?3,
                     total_count = coalesce(?4, total_count), deleted_count = coalesce(?5, deleted_count),
                     failed_count = coalesce(?6, failed_count), polls = polls + (state = 'running'),
                     last_error = ?7, finished_at = ?8, updated_at = ?8,
                     lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = ?1 AND (state = 'running' OR (state = 'scheduling' AND lease_owner = ?9))",
            )
            .bind(id)
            .bind(completed)
            .bind(status)
            .bind(counts.total)
            .bind(counts.deleted)
            .bind(counts.failed)
            .bind(error)
            .bind(now_ms)
            .bind(owner),
        };
        Ok(self.write_alone(query).await? > 0)
    }

    /// Jobs left `scheduling` by a worker that died or hung: their POST may
    /// have reached Zoho, so they become `uncertain` (never `pending`).
    pub async fn reap_stale_scheduling(&self, now_ms: i64) -> Result<u64, StoreError> {
        let query = sqlx::query(
            "UPDATE mass_delete_jobs
             SET state = 'uncertain', updated_at = ?1,
                 last_error = 'zdel stopped between sending this mass delete and recording Zoho''s answer: Zoho may have scheduled it. Check the module''s mass-delete status in Zoho CRM, then `zdel jobs --reschedule ID` to send it again or `zdel jobs --cancel ID`'
             WHERE state = 'scheduling' AND lease_expires_at < ?1",
        )
        .bind(now_ms);
        self.write_alone(query).await
    }

    /// An operator's decision: send an `uncertain` or `failed` job again.
    pub async fn reschedule_job(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE OR IGNORE mass_delete_jobs
             SET state = 'pending', next_action_at = 0, job_id = NULL, finished_at = NULL,
                 unknown_polls = 0, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2,
                 last_error = 'rescheduled by an operator'
             WHERE id = ?1 AND state IN ('uncertain', 'failed')",
        )
        .bind(id)
        .bind(now_ms);
        Ok(self.write_alone(query).await? > 0)
    }

    /// An operator's decision: drop a `pending` or `uncertain` job.
    pub async fn cancel_job(&self, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE mass_delete_jobs
             SET state = 'cancelled', finished_at = ?2, updated_at = ?2,
                 lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ?1 AND state IN ('pending', 'uncertain')",
        )
        .bind(id)
        .bind(now_ms);
        Ok(self.write_alone(query).await? > 0)
    }
}
