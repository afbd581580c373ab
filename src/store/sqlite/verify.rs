//! `zdel verify`: the succeeded deletes to check against the recycle bin,
//! and what the bin said of each (`verification`, `deleted_time`,
//! `deleted_by`), plus a row per verify run (`verifications`).

use super::Store;
use crate::store::StoreError;
use crate::store::types::{VerifyLane, VerifyRun, VerifyScope};

/// The rows a scope covers: succeeded record deletes not yet found in the
/// bin (rows marked `not_in_recycle_bin` are looked for again).
const IN_SCOPE: &str = "state = 'succeeded' AND operation = 'delete'
      AND (verification IS NULL OR verification = 'not_in_recycle_bin')
      AND (?1 IS NULL OR selection_id = ?1)
      AND (?2 IS NULL OR module = ?2)
      AND (?3 IS NULL OR finished_at >= ?3)";

impl Store {
    /// Per module: how many rows `scope` covers, and the earliest time one
    /// of them was queued (no deletion of theirs is older).
    pub async fn verify_lanes(&self, scope: &VerifyScope) -> Result<Vec<VerifyLane>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT module, count(*) AS rows, min(created_at) AS earliest
             FROM deletion_requests WHERE {IN_SCOPE}
             GROUP BY module ORDER BY module"
        )))
        .bind(scope.selection)
        .bind(scope.module.as_deref())
        .bind(scope.since_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Up to `limit` rows of `module` in `scope` past row `after`: (row id, record id).
    pub async fn verify_chunk(
        &self,
        scope: &VerifyScope,
        module: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, record_id FROM deletion_requests
             WHERE {IN_SCOPE} AND module = ?4 AND id > ?5 ORDER BY id LIMIT ?6"
        )))
        .bind(scope.selection)
        .bind(scope.module.as_deref())
        .bind(scope.since_ms)
        .bind(module)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// What the bin said of each row: `Some((deleted_time, deleted_by))`
    /// when it holds the record, `None` when it does not. One transaction.
    pub async fn mark_verified(
        &self,
        marks: &[(i64, Option<(String, String)>)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for (id, found) in marks {
            let (verification, time, by) = match found {
                Some((time, by)) => ("verified", Some(time.as_str()), Some(by.as_str())),
                None => ("not_in_recycle_bin", None, None),
            };
            sqlx::query(
                "UPDATE deletion_requests SET verification = ?2, verified_at = ?3,
                        deleted_time = ?4, deleted_by = ?5
                 WHERE id = ?1 AND state = 'succeeded'",
            )
            .bind(id)
            .bind(verification)
            .bind(now_ms)
            .bind(time)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record a verify run; its id.
    pub async fn begin_verification(&self, scope: &str, now_ms: i64) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO verifications (scope, started_at) VALUES (?1, ?2) RETURNING id",
        )
        .bind(scope)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// What a verify run found.
    pub async fn finish_verification(
        &self,
        run: &VerifyRun,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE verifications SET finished_at = ?2, checked = ?3, verified = ?4,
                    not_in_bin = ?5, pages = ?6 WHERE id = ?1",
        )
        .bind(run.id)
        .bind(now_ms)
        .bind(run.checked)
        .bind(run.verified)
        .bind(run.not_in_bin)
        .bind(run.pages)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The last `n` verify runs, newest first.
    pub async fn verifications(&self, n: i64) -> Result<Vec<VerifyRun>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, scope, started_at, finished_at, checked, verified, not_in_bin, pages
             FROM verifications ORDER BY id DESC LIMIT ?1",
        )
        .bind(n)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Store {
    /// Finished rows (succeeded, failed, cancelled) that finished before
    /// `before_ms`: what `zdel prune` would delete. Live rows never count.
    pub async fn prunable(&self, before_ms: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests
             WHERE finished_at IS NOT NULL AND finished_at < ?1",
        )
        .bind(before_ms)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Delete up to `limit` finished rows that finished before `before_ms`
    /// (one transaction; pending and running rows are never touched); how
    /// many went. Call until it returns 0.
    pub async fn prune_some(&self, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "DELETE FROM deletion_requests WHERE id IN (
                 SELECT id FROM deletion_requests
                 WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT ?2)",
        )
        .bind(before_ms)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
