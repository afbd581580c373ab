//! Reading the queue for people (status, outcomes) and the operator's
//! bulk changes (retry, cancel, pause, resume).

use futures_core::stream::BoxStream;
use serde::Serialize;

use super::{PAUSE_ALL, Store, StoreError};

/// Rows by state, operation and module.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CountRow {
    pub state: String,
    pub operation: String,
    pub module: String,
    pub count: i64,
}

/// A paused lane: `scope` is a module, or `*` for everything.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct Pause {
    pub scope: String,
    pub code: String,
    pub message: String,
    pub paused_at: i64,
}

/// A recent error on a row (failed, or pending a retry).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ErrorRow {
    pub id: i64,
    pub module: String,
    pub record_id: String,
    pub state: String,
    pub code: String,
    pub message: Option<String>,
    pub attempts: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub counts: Vec<CountRow>,
    /// Pending rows waiting out a retry delay.
    pub waiting_to_retry: i64,
    pub pauses: Vec<Pause>,
    pub recent_errors: Vec<ErrorRow>,
    /// Live rows that ask for mass delete with wf_trigger = 0: they are sent
    /// as plain deletes, because mass delete cannot suppress workflows.
    pub mass_delete_without_workflow: i64,
}

/// Totals by state, for progress displays.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TerminalCounts {
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl TerminalCounts {
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.succeeded + self.failed + self.cancelled
    }
    pub fn finished(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled
    }
}

/// One row of `zdel outcomes`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutcomeRow {
    pub id: i64,
    pub operation: String,
    pub module: String,
    pub record_id: String,
    pub state: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub http_status: Option<i64>,
    pub attempts: i64,
    pub finished_at: Option<i64>,
}

/// Which rows `outcomes`, `retry` and `cancel` touch. `None` means any.
#[derive(Debug, Clone, Default)]
pub struct OutcomeFilter {
    pub state: Option<String>,
    pub module: Option<String>,
    pub code: Option<String>,
    pub record_ids: Option<Vec<String>>,
}

impl OutcomeFilter {
    fn ids_json(&self) -> Result<Option<String>, StoreError> {
        self.record_ids
            .as_ref()
            .map(|ids| serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()).into()))
            .transpose()
    }
}

impl Store {
    pub async fn status(&self, now_ms: i64) -> Result<StatusReport, StoreError> {
        let counts = sqlx::query_as(
            "SELECT state, operation, module, count(*) AS count FROM deletion_requests
             GROUP BY state, operation, module ORDER BY module, operation, state",
        )
        .fetch_all(&self.pool)
        .await?;
        let waiting_to_retry = sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests
             WHERE state = 'pending' AND next_attempt_at > ?1",
        )
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        let recent_errors = sqlx::query_as(
            "SELECT id, module, record_id, state, outcome_code AS code,
                    outcome_message AS message, attempts, updated_at
             FROM deletion_requests
             WHERE (state = 'failed' OR (state = 'pending' AND outcome_code IS NOT NULL))
             ORDER BY updated_at DESC, id DESC LIMIT 5",
        )
        .fetch_all(&self.pool)
        .await?;
        let mass_delete_without_workflow = sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests
             WHERE state IN ('pending', 'running') AND strategy = 'mass_delete' AND wf_trigger = 0",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StatusReport {
            counts,
            waiting_to_retry,
            mass_delete_without_workflow,
            pauses: self.pauses().await?,
            recent_errors,
        })
    }

    pub async fn state_totals(&self) -> Result<TerminalCounts, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM deletion_requests GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        let mut totals = TerminalCounts::default();
        for (state, n) in rows {
            match state.as_str() {
                "pending" => totals.pending = n,
                "running" => totals.running = n,
                "succeeded" => totals.succeeded = n,
                "failed" => totals.failed = n,
                "cancelled" => totals.cancelled = n,
                _ => {}
            }
        }
        Ok(totals)
    }

    /// Rows that succeeded at or after `since_ms` (the daily cap's window).
    pub async fn succeeded_since(&self, since_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests WHERE state = 'succeeded' AND finished_at >= ?1",
        )
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Rows by state and outcome code.
    pub async fn outcome_code_counts(
        &self,
    ) -> Result<Vec<(String, Option<String>, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT state, outcome_code, count(*) FROM deletion_requests
             GROUP BY state, outcome_code ORDER BY state, count(*) DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stream the rows matching `filter`, oldest first, without holding them all in memory.
    pub fn outcomes(
        &self,
        filter: &OutcomeFilter,
    ) -> Result<BoxStream<'_, Result<OutcomeRow, sqlx::Error>>, StoreError> {
        let ids = filter.ids_json()?;
        Ok(sqlx::query_as(
            "SELECT id, operation, module, record_id, state, outcome_code AS code,
                    outcome_message AS message, http_status, attempts, finished_at
             FROM deletion_requests
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR module = ?2)
               AND (?3 IS NULL OR outcome_code = ?3)
               AND (?4 IS NULL OR record_id IN (SELECT value FROM json_each(?4)))
             ORDER BY id",
        )
        .bind(filter.state.clone())
        .bind(filter.module.clone())
        .bind(filter.code.clone())
        .bind(ids)
        .fetch(&self.pool))
    }

    /// How many rows `filter` matches.
    pub async fn count_matching(&self, filter: &OutcomeFilter) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR module = ?2)
               AND (?3 IS NULL OR outcome_code = ?3)
               AND (?4 IS NULL OR record_id IN (SELECT value FROM json_each(?4)))",
        )
        .bind(filter.state.clone())
        .bind(filter.module.clone())
        .bind(filter.code.clone())
        .bind(filter.ids_json()?)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Failed (or cancelled) rows matching `filter` back to pending with a
    /// fresh attempt budget. `ambiguous_attempts` is kept: it still tells how
    /// to read a later `INVALID_DATA`. A row whose target already has another
    /// live request is left as it is. Returns how many rows were requeued.
    pub async fn requeue(&self, filter: &OutcomeFilter, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE OR IGNORE deletion_requests
             SET state = 'pending', attempts = 0, next_attempt_at = 0, finished_at = NULL,
                 outcome_code = NULL, outcome_message = NULL, http_status = NULL,
                 updated_at = ?5
             WHERE state = ?1 AND state IN ('failed', 'cancelled')
               AND (?2 IS NULL OR module = ?2) AND (?3 IS NULL OR outcome_code = ?3)
               AND (?4 IS NULL OR record_id IN (SELECT value FROM json_each(?4)))",
        )
        .bind(filter.state.clone().unwrap_or_else(|| "failed".into()))
        .bind(filter.module.clone())
        .bind(filter.code.clone())
        .bind(filter.ids_json()?)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    /// Pending rows matching `filter` become cancelled. Running rows are left
    /// to finish. Returns how many were cancelled.
    pub async fn cancel(&self, filter: &OutcomeFilter, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "UPDATE deletion_requests
             SET state = 'cancelled', outcome_code = 'CANCELLED',
                 outcome_message = 'cancelled by an operator', finished_at = ?4, updated_at = ?4
             WHERE state = 'pending'
               AND (?1 IS NULL OR module = ?1) AND (?2 IS NULL OR outcome_code = ?2)
               AND (?3 IS NULL OR record_id IN (SELECT value FROM json_each(?3)))",
        )
        .bind(filter.module.clone())
        .bind(filter.code.clone())
        .bind(filter.ids_json()?)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    pub async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        Ok(
            sqlx::query_as("SELECT scope, code, message, paused_at FROM pauses ORDER BY scope")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Pause a module's lane (or every lane, with [`PAUSE_ALL`]). A pause that
    /// already exists keeps its first reason and time.
    pub async fn pause(
        &self,
        scope: &str,
        code: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO pauses (scope, code, message, paused_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(code)
        .bind(message)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lift a pause. Returns whether there was one.
    pub async fn resume(&self, scope: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM pauses WHERE scope = ?1")
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    /// Lift every module pause and the global one. Returns how many there were.
    pub async fn resume_all(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let result = sqlx::query("DELETE FROM pauses").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    /// Whether every lane is paused (credentials rejected).
    pub async fn globally_paused(&self) -> Result<Option<Pause>, StoreError> {
        Ok(
            sqlx::query_as("SELECT scope, code, message, paused_at FROM pauses WHERE scope = ?1")
                .bind(PAUSE_ALL)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
