//! Selections: each set of IDs put in the queue and how it was chosen
//! (migrations 0009, 0010). A request names its selection; a selection's
//! rows are staged (never claimed) until all of its IDs are in, then
//! released.
//!
//! Staged rows have no index of their own: a selection records the rowid
//! range its rows went into (`first_row_id`..=`last_row_id`), and its
//! release walks that range (`released_up_to`).

use super::Store;
use super::queue::STAGED;
use crate::store::StoreError;
use crate::store::types::{NewSelection, Released, SelectionReport, SelectionRow, StagedCount};

/// The columns of [`SelectionRow`].
const COLUMNS: &str = "id, module, operation, method, source, source_hash, state, ids_found,
     ids_queued, ids_already_deleted, pages, cursor, os_user, host, created_at, finished_at,
     how, config_hash";

impl Store {
    /// Record a selection about to be queued (state `queueing`); its id.
    pub async fn begin_selection(
        &self,
        selection: &NewSelection,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO selections (module, operation, method, source, source_hash, shape,
                                     os_user, host, created_at, wf_trigger, strategy,
                                     how, config_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
        )
        .bind(&selection.module)
        .bind(selection.operation.as_str())
        .bind(selection.method.as_str())
        .bind(&selection.source)
        .bind(&selection.source_hash)
        .bind(&selection.shape)
        .bind(&selection.os_user)
        .bind(&selection.host)
        .bind(now_ms)
        .bind(selection.wf_trigger)
        .bind(selection.strategy.as_str())
        .bind(&selection.how)
        .bind(&selection.config_hash)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The newest unfinished (`queueing` or `interrupted`) selection that
    /// `selection` would repeat: same method, source hash, module,
    /// operation and request shape. A rerun of the same command resumes it.
    pub async fn unfinished_selection(
        &self,
        selection: &NewSelection,
    ) -> Result<Option<SelectionRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM selections
             WHERE (state = 'queueing' OR state = 'interrupted') AND source_hash = ?1
               AND method = ?2 AND module = ?3 AND operation = ?4 AND shape IS ?5
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(&selection.source_hash)
        .bind(selection.method.as_str())
        .bind(&selection.module)
        .bind(selection.operation.as_str())
        .bind(&selection.shape)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Take up the unfinished selection `id` again (state `queueing`).
    pub async fn resume_selection(&self, id: i64) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE selections SET state = 'queueing', finished_at = NULL
             WHERE id = ?1 AND (state = 'queueing' OR state = 'interrupted')",
        )
        .bind(id);
        self.write_alone(query).await?;
        Ok(())
    }

    /// The selection `id` ended: `complete` (every ID in; its rows can now
    /// be released) or `interrupted` (they stay staged), with how many IDs
    /// its source held and how many were skipped as already deleted.
    /// Returns the IDs it queued, counted as they went in (a resumed
    /// selection counts those of every run).
    pub async fn finish_selection(
        &self,
        id: i64,
        complete: bool,
        found: u64,
        already_deleted: u64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let queued = finish(&mut tx, id, complete, false, found, already_deleted, now_ms).await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Walk the next `max_rows` rowids of the complete selection `id`'s
    /// range, making its staged rows there claimable, in one transaction.
    /// Called until it says the range is done.
    pub async fn release_selection(&self, id: i64, max_rows: u32) -> Result<Released, StoreError> {
        let mut tx = self.begin_write().await?;
        let range: Option<(i64, i64)> = sqlx::query_as(
            "SELECT released_up_to, last_row_id FROM selections
             WHERE id = ?1 AND state = 'complete' AND released_up_to <= last_row_id",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((from, last)) = range else {
            return Ok(Released {
                rows: 0,
                walked: 0,
                done: true,
            });
        };
        let to = from.saturating_add(i64::from(max_rows.max(1)));
        let rows = sqlx::query(
            "UPDATE deletion_requests SET next_attempt_at = 0
             WHERE id >= ?2 AND id < ?3 AND selection_id = ?1 AND state = 'pending'
               AND next_attempt_at = ?4",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(STAGED)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE selections SET released_up_to = ?2 WHERE id = ?1")
            .bind(id)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Released {
            rows,
            walked: u64::from(max_rows.max(1)),
            done: to > last,
        })
    }

    /// Go on releasing every complete selection a command stopped
    /// releasing part-way, walking at most `max_rows` rowids in all; how
    /// many rows became claimable.
    pub async fn release_completed(&self, max_rows: u32) -> Result<u64, StoreError> {
        let waiting: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM selections
             WHERE state = 'complete' AND released_up_to <= last_row_id ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        let (mut walked, mut released) = (0u64, 0u64);
        for id in waiting {
            while walked < u64::from(max_rows) {
                let left = u64::from(max_rows) - walked;
                let step = self
                    .release_selection(id, u32::try_from(left).unwrap_or(max_rows))
                    .await?;
                walked += step.walked;
                released += step.rows;
                if step.done {
                    break;
                }
            }
        }
        Ok(released)
    }

    /// Staged rows, by selection: those of unfinished selections as
    /// counted while they went in, and those of a complete one still being
    /// released counted in what is left of its range.
    pub async fn staged_counts(&self) -> Result<Vec<StagedCount>, StoreError> {
        let mut staged: Vec<StagedCount> = sqlx::query_as(
            "SELECT id AS selection, state AS selection_state, operation, module,
                    coalesce(wf_trigger, 1) AS wf_trigger, coalesce(strategy, 'auto') AS strategy,
                    ids_queued AS count
             FROM selections
             WHERE ((state = 'queueing' OR state = 'interrupted') AND ids_queued > 0)
                OR (state = 'complete' AND released_up_to <= last_row_id)
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for s in staged
            .iter_mut()
            .filter(|s| s.selection_state == "complete")
        {
            s.count = sqlx::query_scalar(
                "SELECT count(*) FROM deletion_requests
                 WHERE id >= (SELECT released_up_to FROM selections WHERE id = ?1)
                   AND id <= (SELECT last_row_id FROM selections WHERE id = ?1)
                   AND selection_id = ?1 AND state = 'pending' AND next_attempt_at = ?2",
            )
            .bind(s.selection)
            .bind(STAGED)
            .fetch_one(&self.pool)
            .await?;
        }
        Ok(staged)
    }

    /// One selection and where its rows are: how many in each state and
    /// code (`staged` for pending rows not yet released). Reads the rows'
    /// rowid range only (a selection recorded before migration 0010 has
    /// none: the whole queue is read). `None` if there is no such selection.
    pub async fn selection_report(&self, id: i64) -> Result<Option<SelectionReport>, StoreError> {
        let Some(selection) = sqlx::query_as::<_, SelectionRow>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM selections WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let counts = sqlx::query_as(
            "SELECT CASE WHEN state = 'pending' AND next_attempt_at = ?2 THEN 'staged'
                         ELSE state END AS state,
                    outcome_code AS code, count(*) AS count
             FROM deletion_requests
             WHERE id >= coalesce((SELECT first_row_id FROM selections WHERE id = ?1), 0)
               AND id <= coalesce((SELECT last_row_id FROM selections WHERE id = ?1
                                   AND first_row_id IS NOT NULL), 9223372036854775807)
               AND selection_id = ?1
             GROUP BY 1, 2 ORDER BY 1, 3 DESC",
        )
        .bind(id)
        .bind(STAGED)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(SelectionReport { selection, counts }))
    }

    /// The selection `id`, if there is one.
    pub async fn selection(&self, id: i64) -> Result<Option<SelectionRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM selections WHERE id = ?1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every selection, newest first.
    /// The newest `n` selections, newest first.
    pub async fn recent_selections(&self, n: i64) -> Result<Vec<SelectionRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM selections ORDER BY id DESC LIMIT ?1"
        )))
        .bind(n)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn selections(&self) -> Result<Vec<SelectionRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM selections ORDER BY id DESC"
        )))
        .fetch_all(&self.pool)
        .await?)
    }
}

/// [`Store::finish_selection`] inside the caller's transaction;
/// `released`: its rows were never staged, so there is nothing to release.
pub(super) async fn finish(
    conn: &mut sqlx::SqliteConnection,
    id: i64,
    complete: bool,
    released: bool,
    found: u64,
    already_deleted: u64,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let queued: Option<i64> = sqlx::query_scalar(
        "UPDATE selections SET state = ?2, ids_found = ?3, ids_already_deleted = ?4,
                               finished_at = ?5,
                               released_up_to = CASE WHEN ?6 THEN last_row_id + 1
                                                     ELSE first_row_id END
         WHERE id = ?1 AND state = 'queueing'
         RETURNING ids_queued",
    )
    .bind(id)
    .bind(if complete { "complete" } else { "interrupted" })
    .bind(found as i64)
    .bind(already_deleted as i64)
    .bind(now_ms)
    .bind(released)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(queued.unwrap_or(0) as u64)
}
