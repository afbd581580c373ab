//! Selections: each set of IDs put in the queue and how it was chosen
//! (migration 0009). A request names its selection.

use super::Store;
use crate::store::StoreError;
use crate::store::types::{NewSelection, SelectionRow};

impl Store {
    /// Record a selection about to be queued (state `queueing`); its id.
    pub async fn begin_selection(
        &self,
        selection: &NewSelection,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO selections (module, operation, method, source, source_hash, os_user, host, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        )
        .bind(&selection.module)
        .bind(selection.operation.as_str())
        .bind(selection.method.as_str())
        .bind(&selection.source)
        .bind(&selection.source_hash)
        .bind(&selection.os_user)
        .bind(&selection.host)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The selection `id` ended: `complete` (every ID in) or not, with how
    /// many IDs its source held and how many of them were queued.
    pub async fn finish_selection(
        &self,
        id: i64,
        complete: bool,
        found: u64,
        queued: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE selections SET state = ?2, ids_found = ?3, ids_queued = ?4, finished_at = ?5
             WHERE id = ?1",
        )
        .bind(id)
        .bind(if complete { "complete" } else { "interrupted" })
        .bind(found as i64)
        .bind(queued as i64)
        .bind(now_ms);
        self.write_alone(query).await?;
        Ok(())
    }

    /// Every selection, newest first.
    pub async fn selections(&self) -> Result<Vec<SelectionRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, module, operation, method, source, source_hash, state, ids_found,
                    ids_queued, os_user, host, created_at, finished_at
             FROM selections ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
