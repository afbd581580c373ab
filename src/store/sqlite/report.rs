//! Reading the queue for people (status, outcomes) and the operator's
//! bulk changes (retry, cancel, pause, resume).

use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;

use super::Store;
use crate::store::StoreError;
use crate::store::types::*;

/// The rows an [`OutcomeFilter`] matches, as a SQL condition over
/// `?1` state, `?2` module, `?3` outcome code, `?4` record IDs (a JSON
/// array); bound by [`bind_filter`].
macro_rules! outcome_filter {
    () => {
        "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR module = ?2)
         AND (?3 IS NULL OR outcome_code = ?3)
         AND (?4 IS NULL OR record_id IN (SELECT value FROM json_each(?4)))"
    };
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Bind `?1`–`?4` of [`outcome_filter!`].
fn bind_filter<'q>(
    query: SqliteQuery<'q>,
    filter: &OutcomeFilter,
) -> Result<SqliteQuery<'q>, StoreError> {
    let ids = filter
        .record_ids
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    Ok(query
        .bind(filter.state.map(RequestState::as_str))
        .bind(filter.module.clone())
        .bind(filter.code.clone())
        .bind(ids))
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
            match RequestState::parse(&state) {
                Some(RequestState::Pending) => totals.pending = n,
                Some(RequestState::Running) => totals.running = n,
                Some(RequestState::Succeeded) => totals.succeeded = n,
                Some(RequestState::Failed) => totals.failed = n,
                Some(RequestState::Cancelled) => totals.cancelled = n,
                None => {}
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

    /// Rows that reached terminal `state` at or after `since_ms` (what one
    /// run finished).
    pub async fn finished_since(
        &self,
        state: RequestState,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests WHERE state = ?1 AND finished_at >= ?2",
        )
        .bind(state.as_str())
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Rows by state and outcome code, the largest groups of a state first.
    pub async fn outcome_code_counts(&self) -> Result<Vec<CodeCount>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT state, outcome_code AS code, count(*) AS count FROM deletion_requests
             GROUP BY state, outcome_code ORDER BY state, count(*) DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stream the rows matching `filter`, oldest first, without holding them all in memory.
    pub fn outcomes(
        &self,
        filter: &OutcomeFilter,
    ) -> Result<BoxStream<'_, Result<OutcomeRow, StoreError>>, StoreError> {
        let query = sqlx::query(concat!(
            "SELECT id, operation, module, record_id, state, outcome_code AS code,
                    outcome_message AS message, http_status, attempts, finished_at
             FROM deletion_requests WHERE ",
            outcome_filter!(),
            " ORDER BY id"
        ));
        let query = bind_filter(query, filter)?;
        Ok(Box::pin(
            query
                .try_map(|row| <OutcomeRow as sqlx::FromRow<_>>::from_row(&row))
                .fetch(&self.pool)
                .map_err(StoreError::from),
        ))
    }

    /// How many rows `filter` matches.
    pub async fn count_matching(&self, filter: &OutcomeFilter) -> Result<i64, StoreError> {
        let query = sqlx::query(concat!(
            "SELECT count(*) FROM deletion_requests WHERE ",
            outcome_filter!()
        ));
        let row = bind_filter(query, filter)?.fetch_one(&self.pool).await?;
        Ok(sqlx::Row::try_get(&row, 0)?)
    }

    /// Failed (or cancelled) rows matching `filter` back to pending with a
    /// fresh attempt budget (no state in the filter: failed ones).
    /// `ambiguous_attempts` is kept: it still tells how to read a later
    /// `INVALID_DATA`. A row whose target already has another live request
    /// is left as it is. Returns how many rows were requeued.
    pub async fn requeue(&self, filter: &OutcomeFilter, now_ms: i64) -> Result<u64, StoreError> {
        let filter = OutcomeFilter {
            state: Some(filter.state.unwrap_or(RequestState::Failed)),
            ..filter.clone()
        };
        let query = sqlx::query(concat!(
            "UPDATE OR IGNORE deletion_requests
             SET state = 'pending', attempts = 0, next_attempt_at = 0, finished_at = NULL,
                 outcome_code = NULL, outcome_message = NULL, http_status = NULL,
                 updated_at = ?5
             WHERE state IN ('failed', 'cancelled') AND ",
            outcome_filter!()
        ));
        self.write_alone(bind_filter(query, &filter)?.bind(now_ms))
            .await
    }

    /// Pending rows matching `filter` become cancelled. Running rows are left
    /// to finish. Returns how many were cancelled.
    pub async fn cancel(&self, filter: &OutcomeFilter, now_ms: i64) -> Result<u64, StoreError> {
        let query = sqlx::query(concat!(
            "UPDATE deletion_requests
             SET state = 'cancelled', outcome_code = 'CANCELLED',
                 outcome_message = 'cancelled by an operator', finished_at = ?5, updated_at = ?5
             WHERE state = 'pending' AND ",
            outcome_filter!()
        ));
        self.write_alone(bind_filter(query, filter)?.bind(now_ms))
            .await
    }

    pub async fn pauses(&self) -> Result<Vec<Pause>, StoreError> {
        Ok(
            sqlx::query_as("SELECT scope, code, message, paused_at FROM pauses ORDER BY scope")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Pause a [`PausedScope`] (its `as_scope()` text): an operation of a
    /// module, a module, or every lane ([`PAUSE_ALL`]). A pause that
    /// already exists keeps its first reason and time.
    pub async fn pause(
        &self,
        scope: &str,
        code: &str,
        message: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO pauses (scope, code, message, paused_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (scope) DO NOTHING",
        );
        self.write_alone(query.bind(scope).bind(code).bind(message).bind(now_ms))
            .await?;
        Ok(())
    }

    /// Lift a pause, and with a module's, the pauses of its operations
    /// (`Leads/mass_delete`). Returns whether there was one.
    pub async fn resume(&self, scope: &str) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "DELETE FROM pauses WHERE scope = ?1 OR substr(scope, 1, length(?1) + 1) = ?1 || '/'",
        )
        .bind(scope);
        Ok(self.write_alone(query).await? > 0)
    }

    /// Lift every module pause and the global one. Returns how many there were.
    pub async fn resume_all(&self) -> Result<u64, StoreError> {
        self.write_alone(sqlx::query("DELETE FROM pauses")).await
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
