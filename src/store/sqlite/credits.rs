//! The credit ledger (`credit_ledger`, per minute) and Zoho's last
//! remaining-credits figure (`credits_seen`), so that a restart neither
//! forgets what zdel spent nor what Zoho last said.

use super::Store;
use crate::org::OrgId;
use crate::store::StoreError;
use crate::store::types::CreditLedger;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Add `spent` credits at `now_ms` and, if Zoho sent one, its last
    /// remaining figure `(remaining, seen_at_ms)`. Prunes minutes older than
    /// two days in the same write.
    pub async fn record_credits(
        &self,
        org: &OrgId,
        spent: u64,
        remaining: Option<(i64, i64)>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if spent > 0 {
            sqlx::query(
                "INSERT INTO credit_ledger (minute, credits) VALUES (?1, ?2)
                 ON CONFLICT (minute) DO UPDATE SET credits = credits + excluded.credits",
            )
            .bind(now_ms.div_euclid(MINUTE_MS))
            .bind(i64::try_from(spent).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM credit_ledger WHERE minute < ?1")
                .bind((now_ms - 2 * DAY_MS).div_euclid(MINUTE_MS))
                .execute(&mut *tx)
                .await?;
        }
        if let Some((remaining, seen_at)) = remaining {
            sqlx::query(
                "INSERT INTO credits_seen (org, remaining, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org) DO UPDATE SET remaining = excluded.remaining, seen_at = excluded.seen_at
                 WHERE excluded.seen_at >= credits_seen.seen_at",
            )
            .bind(org.as_str())
            .bind(remaining)
            .bind(seen_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Credits spent in the 24 hours before `now_ms` (whole minutes: the
    /// oldest minute counts in full, so the sum never undercounts), and
    /// Zoho's last remaining figure.
    pub async fn credits(&self, org: &OrgId, now_ms: i64) -> Result<CreditLedger, StoreError> {
        let spent_24h: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(credits), 0) FROM credit_ledger WHERE minute >= ?1",
        )
        .bind((now_ms - DAY_MS).div_euclid(MINUTE_MS))
        .fetch_one(&self.pool)
        .await?;
        let seen: Option<(i64, i64)> =
            sqlx::query_as("SELECT remaining, seen_at FROM credits_seen WHERE org = ?1")
                .bind(org.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(CreditLedger {
            spent_24h,
            remaining: seen.map(|s| s.0),
            remaining_seen_at: seen.map(|s| s.1),
        })
    }
}
