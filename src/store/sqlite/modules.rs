//! The org's modules as Zoho named them (`org_modules`), cached for the
//! `--module` check of `zdel enqueue` and `zdel select`.

use super::Store;
use crate::org::OrgId;
use crate::store::StoreError;

impl Store {
    /// The cached module API names of `org` and when they were fetched
    /// (ms since the epoch); `None` when never fetched.
    pub async fn org_modules(&self, org: &OrgId) -> Result<Option<(Vec<String>, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT api_name, fetched_at FROM org_modules WHERE org = ?1 ORDER BY api_name",
        )
        .bind(org.as_str())
        .fetch_all(&self.pool)
        .await?;
        let fetched_at = rows.iter().map(|(_, at)| *at).min();
        Ok(fetched_at.map(|at| (rows.into_iter().map(|(name, _)| name).collect(), at)))
    }

    /// Replace `org`'s cached modules with `names`, fetched at `now_ms`.
    pub async fn replace_org_modules(
        &self,
        org: &OrgId,
        names: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM org_modules WHERE org = ?1")
            .bind(org.as_str())
            .execute(&mut *tx)
            .await?;
        for name in names {
            sqlx::query(
                "INSERT INTO org_modules (org, api_name, fetched_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(org.as_str())
            .bind(name)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
