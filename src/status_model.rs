//! The one status model: what `zdel status` prints, what `zdel status
//! --json` and the console's `GET /api/status` give. Read from maintained
//! counts and bounded index ranges, never a scan of the queue.

use crate::clock::now_ms;
use crate::config::LimitsConfig;
use crate::org::OrgId;
use crate::store::{CreditLedger, JobState, SelectionRow, StatusReport, Store, StoreError};
use crate::worker::credits::{CreditStop, credit_stop};

/// What `status` shows, read once: `zdel status` prints it, `--json` and
/// the console's `GET /api/status` give [`StatusModel::json`].
pub struct StatusModel {
    pub report: StatusReport,
    pub cap: u64,
    pub last_24h: i64,
    pub jobs: Vec<(JobState, i64)>,
    pub ledger: CreditLedger,
    pub credit_stop: Option<CreditStop>,
    pub max_credits_per_day: u64,
    /// The newest selections, with their progress.
    pub selections: Vec<SelectionRow>,
}

impl StatusModel {
    /// Read it from `store`, with the limits it is measured against.
    pub async fn read(store: &Store, limits: &LimitsConfig) -> Result<StatusModel, StoreError> {
        let report = store.status(now_ms()).await?;
        let last_24h = store.succeeded_since(now_ms() - 24 * 3600 * 1000).await?;
        let ledger = store.credits(&OrgId::default(), now_ms()).await?;
        let credit_stop = credit_stop(
            &ledger,
            0,
            limits.max_credits_per_day,
            limits.min_credits_remaining,
            now_ms(),
        );
        let jobs = store
            .depth()
            .await?
            .jobs
            .into_iter()
            .map(|j| (j.state, j.count))
            .collect();
        let selections = store.recent_selections(10).await?;
        Ok(StatusModel {
            report,
            selections,
            cap: limits.max_deletions_per_day,
            last_24h,
            jobs,
            ledger,
            credit_stop,
            max_credits_per_day: limits.max_credits_per_day,
        })
    }

    /// The one status document.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        let (report, cap, last_24h, jobs) = (&self.report, self.cap, self.last_24h, &self.jobs);
        let mut value = serde_json::to_value(report)?;
        value["succeeded_last_24h"] = last_24h.into();
        value["max_deletions_per_day"] = cap.into();
        let cap_reached = cap > 0 && last_24h as u64 >= cap;
        value["daily_cap_reached"] = cap_reached.into();
        value["credits"] = serde_json::to_value(self.ledger)?;
        value["credits"]["max_credits_per_day"] = self.max_credits_per_day.into();
        let mut stopped: Vec<String> = Vec::new();
        if self
            .report
            .pauses
            .iter()
            .any(|p| p.scope == crate::store::PAUSE_ALL)
        {
            stopped.push("all work is paused (credentials)".into());
        }
        if let Some(stop) = &self.credit_stop {
            stopped.push(stop.to_string());
        }
        if cap_reached {
            stopped.push("limits.max_deletions_per_day reached".into());
        }
        value["claiming_stopped"] = stopped.into();
        value["mass_delete_jobs"] = jobs
            .iter()
            .map(|(state, n)| (state.as_str().to_string(), serde_json::Value::from(*n)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        value["selections"] = serde_json::to_value(&self.selections)?;
        Ok(value)
    }
}
