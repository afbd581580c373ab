//! The maintained counts (migration 0008): rows per lane and state, and
//! rows finished per minute, so `status`, the gauges and the daily cap
//! never scan the queue. Triggers keep them as rows change; inserts are
//! counted by whoever made them (`zdel enqueue`) or folded in later
//! ([`Store::fold_counts`]), and until then read from the table above the
//! mark.

use super::Store;
use crate::store::StoreError;
use crate::store::types::*;

/// Rows per lane and state: the counts ('live' rows are pending, less the
/// running ones, counted from their partial index), plus the rows above the
/// mark (inserted by plain SQL and not folded in yet: a rowid range).
const LANE_STATE_COUNTS: &str = "
    SELECT operation, module, wf_trigger, strategy, state, sum(rows) AS count FROM (
        SELECT operation, module, wf_trigger, strategy,
               CASE state WHEN 'live' THEN 'pending' ELSE state END AS state, rows
        FROM lane_counts WHERE rows <> 0
        UNION ALL
        SELECT operation, module, wf_trigger, strategy, s.state, s.sign * count(*)
        FROM deletion_requests INDEXED BY deletion_requests_running,
             (SELECT 'running' AS state, 1 AS sign UNION ALL SELECT 'pending', -1) s
        WHERE deletion_requests.state = 'running'
          AND id <= (SELECT counted_up_to FROM lane_count_mark)
        GROUP BY operation, module, wf_trigger, strategy, s.state
        UNION ALL
        SELECT operation, module, wf_trigger, strategy, state, count(*) FROM deletion_requests NOT INDEXED
        WHERE id > (SELECT counted_up_to FROM lane_count_mark)
        GROUP BY operation, module, wf_trigger, strategy, state)
    GROUP BY operation, module, wf_trigger, strategy, state HAVING sum(rows) <> 0
    ORDER BY operation, module, wf_trigger, strategy, state";

const MINUTE_MS: i64 = 60_000;

impl Store {
    /// Rows per lane and state, without scanning the queue.
    pub async fn lane_state_counts(&self) -> Result<Vec<LaneStateCount>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        lane_state_counts(&mut conn).await
    }

    /// Count the rows inserted by plain SQL since the last fold into the
    /// maintained counts; how many. A no-op (no write lock taken) when
    /// there are none.
    pub async fn fold_counts(&self) -> Result<u64, StoreError> {
        let behind: bool = sqlx::query_scalar(
            "SELECT coalesce(max(id), 0) > (SELECT counted_up_to FROM lane_count_mark)
             FROM deletion_requests",
        )
        .fetch_one(&self.pool)
        .await?;
        if !behind {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let folded = fold_in(&mut tx).await?;
        tx.commit().await?;
        Ok(folded)
    }

    /// Rows that succeeded or failed per lane from the start of the minute
    /// `window_ms` before `now_ms` on, and that start.
    pub async fn lane_rates(
        &self,
        now_ms: i64,
        window_ms: i64,
    ) -> Result<(Vec<LaneRate>, i64), StoreError> {
        let since_minute = (now_ms - window_ms).div_euclid(MINUTE_MS);
        let rates = sqlx::query_as(
            "SELECT operation, module, sum(rows) AS finished FROM finished_per_minute
             WHERE minute >= ?1 AND (state = 'succeeded' OR state = 'failed')
             GROUP BY operation, module ORDER BY operation, module",
        )
        .bind(since_minute)
        .fetch_all(&self.pool)
        .await?;
        Ok((rates, since_minute * MINUTE_MS))
    }

    /// Rows that succeeded at or after `since_ms` (the daily cap's window):
    /// whole minutes from the per-minute counts, the first minute's part
    /// from the table (the finished index: at most a minute of rows), and
    /// rows not folded in yet.
    pub async fn succeeded_since(&self, since_ms: i64) -> Result<i64, StoreError> {
        let next_minute = since_ms.div_euclid(MINUTE_MS) + 1;
        Ok(sqlx::query_scalar(
            "SELECT (SELECT coalesce(sum(rows), 0) FROM finished_per_minute
                     WHERE minute >= ?2 AND state = 'succeeded')
                  + (SELECT count(*) FROM deletion_requests
                     WHERE state = 'succeeded' AND finished_at >= ?1 AND finished_at < ?2 * 60000)
                  + (SELECT count(*) FROM deletion_requests NOT INDEXED
                     WHERE id > (SELECT counted_up_to FROM lane_count_mark)
                       AND state = 'succeeded' AND finished_at >= ?2 * 60000)",
        )
        .bind(since_ms)
        .bind(next_minute)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Forget minutes that finished before `before_ms` (the worker keeps two
    /// days: the daily cap looks back one).
    pub async fn prune_finished_minutes(&self, before_ms: i64) -> Result<u64, StoreError> {
        let stale: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM finished_per_minute WHERE minute < ?1)",
        )
        .bind(before_ms.div_euclid(MINUTE_MS))
        .fetch_one(&self.pool)
        .await?;
        if !stale {
            return Ok(0);
        }
        let query = sqlx::query("DELETE FROM finished_per_minute WHERE minute < ?1")
            .bind(before_ms.div_euclid(MINUTE_MS));
        self.write_alone(query).await
    }
}

pub(super) async fn lane_state_counts(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Vec<LaneStateCount>, StoreError> {
    Ok(sqlx::query_as(LANE_STATE_COUNTS)
        .fetch_all(&mut *conn)
        .await?)
}

/// Inside a write transaction: count every row above the mark in the state
/// it is in, and move the mark up to the last row. How many rows.
pub(super) async fn fold_in(conn: &mut sqlx::SqliteConnection) -> Result<u64, StoreError> {
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deletion_requests NOT INDEXED WHERE id > (SELECT counted_up_to FROM lane_count_mark)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if rows == 0 {
        return Ok(0);
    }
    // (GROUP BY before ON CONFLICT: no parsing ambiguity, unlike a bare FROM.)
    sqlx::query(
        "INSERT INTO lane_counts (operation, module, wf_trigger, strategy, state, rows)
         SELECT operation, module, wf_trigger, strategy,
                CASE WHEN finished_at IS NULL THEN 'live' ELSE state END, count(*)
         FROM deletion_requests NOT INDEXED
         WHERE id > (SELECT counted_up_to FROM lane_count_mark)
         GROUP BY operation, module, wf_trigger, strategy,
                  CASE WHEN finished_at IS NULL THEN 'live' ELSE state END
         ON CONFLICT DO UPDATE SET rows = rows + excluded.rows",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO finished_per_minute (minute, operation, module, state, rows)
         SELECT finished_at / 60000, operation, module, state, count(*) FROM deletion_requests NOT INDEXED
         WHERE id > (SELECT counted_up_to FROM lane_count_mark) AND finished_at IS NOT NULL
         GROUP BY finished_at / 60000, operation, module, state
         ON CONFLICT DO UPDATE SET rows = rows + excluded.rows",
    )
    .execute(&mut *conn)
    .await?;
    move_mark_to_the_end(conn).await?;
    Ok(rows.max(0) as u64)
}

/// Inside a write transaction: every row so far is counted.
pub(super) async fn move_mark_to_the_end(
    conn: &mut sqlx::SqliteConnection,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE lane_count_mark SET counted_up_to = (SELECT coalesce(max(id), 0) FROM deletion_requests)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inside the enqueue's write transaction: `rows` new pending rows of
/// `template`'s lane, counted as they are inserted.
pub(super) async fn count_inserted(
    conn: &mut sqlx::SqliteConnection,
    template: &RequestTemplate,
    rows: u64,
) -> Result<(), StoreError> {
    if rows == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO lane_counts (operation, module, wf_trigger, strategy, state, rows)
         VALUES (?1, ?2, ?3, ?4, 'live', ?5)
         ON CONFLICT DO UPDATE SET rows = rows + excluded.rows",
    )
    .bind(template.operation.as_str())
    .bind(&template.module)
    .bind(template.wf_trigger)
    .bind(template.strategy.as_str())
    .bind(rows as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
