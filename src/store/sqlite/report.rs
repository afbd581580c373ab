//! Reading the queue for people (status, outcomes) and the operator's
//! bulk changes (retry, cancel, pause, resume).

use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;

use super::Store;
use crate::store::StoreError;
use crate::store::types::*;

/// How far back `status` looks for each lane's current rate.
const RATE_WINDOW_MS: i64 = 5 * 60_000;

/// The rows an [`OutcomeFilter`] matches, as a SQL condition over
/// `?1` state, `?2` module, `?3` outcome code, `?4` record IDs (a JSON
/// array), `?5` selection; bound by [`bind_filter`].
macro_rules! outcome_filter {
    () => {
        "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR module = ?2)
         AND (?3 IS NULL OR upper(outcome_code) IN (SELECT upper(value) FROM json_each(?3)))
         AND (?4 IS NULL OR record_id IN (SELECT value FROM json_each(?4)))
         AND (?5 IS NULL OR selection_id = ?5)"
    };
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Bind `?1`–`?5` of [`outcome_filter!`].
fn bind_filter<'q>(
    query: SqliteQuery<'q>,
    filter: &OutcomeFilter,
) -> Result<SqliteQuery<'q>, StoreError> {
    let as_json = |list: &Option<Vec<String>>| {
        list.as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| sqlx::Error::Encode(e.into()))
    };
    let ids = as_json(&filter.record_ids)?;
    let codes = as_json(&filter.codes)?;
    Ok(query
        .bind(filter.state.map(RequestState::as_str))
        .bind(filter.module.clone())
        .bind(codes)
        .bind(ids)
        .bind(filter.selection))
}

impl Store {
    /// What `status` shows, without scanning the queue (the maintained
    /// counts, and index ranges bounded by what is recent or waiting).
    pub async fn status(&self, now_ms: i64) -> Result<StatusReport, StoreError> {
        let lanes = self.lane_state_counts().await?;
        let mut counts: Vec<CountRow> = Vec::new();
        for lane in &lanes {
            match counts.iter_mut().find(|c| {
                c.state == lane.state && c.operation == lane.operation && c.module == lane.module
            }) {
                Some(c) => c.count += lane.count,
                None => counts.push(CountRow {
                    state: lane.state,
                    operation: lane.operation,
                    module: lane.module.clone(),
                    count: lane.count,
                }),
            }
        }
        counts.sort_by(|a, b| {
            (&a.module, a.operation, a.state).cmp(&(&b.module, b.operation, b.state))
        });
        let mass_delete_without_workflow = lanes
            .iter()
            .filter(|l| {
                !l.state.is_terminal() && l.strategy == Strategy::MassDelete && !l.wf_trigger
            })
            .map(|l| l.count)
            .sum();
        // Per pending lane, the rows due later: a range of its index each.
        let waiting_to_retry = sqlx::query_scalar(
            "SELECT coalesce(sum((SELECT count(*) FROM deletion_requests d
                                  WHERE d.state = 'pending' AND d.operation = l.operation
                                    AND d.module = l.module AND d.wf_trigger = l.wf_trigger
                                    AND d.strategy = l.strategy AND d.next_attempt_at > ?1
                                    AND d.next_attempt_at < ?2)), 0)
             FROM (SELECT operation, module, wf_trigger, strategy FROM lane_counts
                   WHERE state = 'live' AND rows > 0
                   UNION
                   SELECT operation, module, wf_trigger, strategy FROM deletion_requests NOT INDEXED
                   WHERE id > (SELECT counted_up_to FROM lane_count_mark) AND state = 'pending') l",
        )
        .bind(now_ms)
        .bind(super::queue::STAGED)
        .fetch_one(&self.pool)
        .await?;
        // The newest five of each kind, each from its own index.
        let recent_errors = sqlx::query_as(
            "SELECT * FROM (
                 SELECT id, module, record_id, state, outcome_code AS code,
                        outcome_message AS message, attempts, updated_at
                 FROM deletion_requests
                 WHERE state = 'failed' AND finished_at IS NOT NULL
                 ORDER BY finished_at DESC, id DESC LIMIT 5)
             UNION ALL
             SELECT * FROM (
                 SELECT id, module, record_id, state, outcome_code AS code,
                        outcome_message AS message, attempts, updated_at
                 FROM deletion_requests
                 WHERE state = 'pending' AND outcome_code IS NOT NULL
                 ORDER BY updated_at DESC, id DESC LIMIT 5)
             ORDER BY updated_at DESC, id DESC LIMIT 5",
        )
        .fetch_all(&self.pool)
        .await?;
        let (rates, rates_since) = self.lane_rates(now_ms, RATE_WINDOW_MS).await?;
        let holder = self
            .daemon_holder()
            .await?
            .filter(|h| h.expires_at > now_ms);
        Ok(StatusReport {
            staged: self.staged_counts().await?,
            counts,
            rates,
            rates_since,
            holder,
            waiting_to_retry,
            mass_delete_without_workflow,
            pauses: self.pauses().await?,
            recent_errors,
            verifications: self.verifications(3).await?,
        })
    }

    /// Rows by state, from the maintained counts.
    pub async fn state_totals(&self) -> Result<TerminalCounts, StoreError> {
        let mut totals = TerminalCounts::default();
        for lane in self.lane_state_counts().await? {
            match lane.state {
                RequestState::Pending => totals.pending += lane.count,
                RequestState::Running => totals.running += lane.count,
                RequestState::Succeeded => totals.succeeded += lane.count,
                RequestState::Failed => totals.failed += lane.count,
                RequestState::Cancelled => totals.cancelled += lane.count,
            }
        }
        Ok(totals)
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

    /// Rows that finished at or after `since_ms`, by lane, state and code
    /// (what one run did): the finished index's range, then those rows.
    pub async fn finished_since_by_lane(
        &self,
        since_ms: i64,
    ) -> Result<Vec<FinishedGroup>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT operation, module, wf_trigger, strategy, state, outcome_code AS code,
                    count(*) AS count
             FROM deletion_requests
             WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at >= ?1
             GROUP BY operation, module, wf_trigger, strategy, state, outcome_code
             ORDER BY state, count(*) DESC",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
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
                    outcome_message AS message, http_status, attempts, finished_at,
                    verification, deleted_time, deleted_by, related_list, related_id,
                    coalesce((SELECT s.os_user FROM selections s WHERE s.id = selection_id), 'sql') AS queued_by,
                    coalesce((SELECT s.how FROM selections s WHERE s.id = selection_id), 'sql') AS queued_how,
                    (SELECT s.config_hash FROM selections s WHERE s.id = selection_id) AS config_hash
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
                 updated_at = ?6
             WHERE state IN ('failed', 'cancelled') AND ",
            outcome_filter!()
        ));
        self.write_alone(bind_filter(query, &filter)?.bind(now_ms))
            .await
    }

    /// Pending rows matching `filter` become cancelled. Running rows are left
    /// to finish. Returns how many were cancelled.
    ///
    /// Staged rows are pending too: cancelling an unfinished selection
    /// drops them, and marks the selection `cancelled` so that no rerun
    /// resumes it.
    pub async fn cancel(&self, filter: &OutcomeFilter, now_ms: i64) -> Result<u64, StoreError> {
        let query = sqlx::query(concat!(
            "UPDATE deletion_requests
             SET state = 'cancelled', outcome_code = 'CANCELLED',
                 outcome_message = 'cancelled by an operator', finished_at = ?6, updated_at = ?6
             WHERE state = 'pending' AND ",
            outcome_filter!()
        ));
        let mut tx = self.begin_write().await?;
        let cancelled = bind_filter(query, filter)?
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if let Some(selection) = filter.selection {
            sqlx::query(
                "UPDATE selections SET state = 'cancelled', finished_at = ?2
                 WHERE id = ?1 AND (state = 'queueing' OR state = 'interrupted')",
            )
            .bind(selection)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(cancelled)
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
