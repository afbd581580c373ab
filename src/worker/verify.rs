//! `zdel verify` (and `drain` with `verify.after_run`): are the succeeded
//! deletes really in Zoho's recycle bin? Per module, the bin is paged —
//! Get Deleted Records since the earliest of the rows was queued, 200 a
//! page, 2 credits a page — into a set of the IDs it holds with when and by
//! whom each was deleted; then the rows are marked, 1,000 a transaction:
//! `verified` (with Zoho's `deleted_time` and `deleted_by`) or
//! `not_in_recycle_bin`. IDs are never looked up one call at a time: about
//! 100 credits per 10,000 deletions, whatever their number.

use std::collections::HashMap;

use crate::store::{Store, StoreError, VerifyRun, VerifyScope};
use crate::zoho::{CallSlot, ZohoClient, ZohoError};

/// Rows marked a transaction.
const MARKS_PER_TX: i64 = 1_000;
/// Deletions can be stamped a little before our clock says they were queued.
const CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;
/// Failed calls in a row before verify gives up (it can simply be run again).
const MAX_TRIES: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the recycle bin of {module} could not be read: {source}")]
    Zoho {
        module: String,
        #[source]
        source: ZohoError,
    },
}

/// What one module's check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleVerified {
    pub module: String,
    pub checked: i64,
    pub verified: i64,
    pub not_in_bin: i64,
    pub pages: i64,
}

/// Check `scope`'s succeeded deletes against the recycle bin and mark them.
pub async fn verify(
    store: &Store,
    client: &ZohoClient,
    scope: &VerifyScope,
    describe: &str,
) -> Result<(VerifyRun, Vec<ModuleVerified>), VerifyError> {
    let now = crate::clock::now_ms();
    let mut run = VerifyRun {
        id: store.begin_verification(describe, now).await?,
        scope: describe.to_string(),
        started_at: now,
        ..VerifyRun::default()
    };
    let mut modules = Vec::new();
    let slot = client.acquire_slot().await;
    for lane in store.verify_lanes(scope).await? {
        let bin = read_bin(client, &slot, &lane.module, lane.earliest - CLOCK_SLACK_MS).await;
        let (bin, pages) = bin.map_err(|source| VerifyError::Zoho {
            module: lane.module.clone(),
            source,
        })?;
        let mut found = ModuleVerified {
            module: lane.module.clone(),
            pages,
            ..ModuleVerified::default()
        };
        let mut after = 0;
        loop {
            let rows = store
                .verify_chunk(scope, &lane.module, after, MARKS_PER_TX)
                .await?;
            let Some((last, _)) = rows.last() else { break };
            after = *last;
            let marks: Vec<(i64, Option<(String, String)>)> = rows
                .into_iter()
                .map(|(row, id)| (row, bin.get(&id).cloned()))
                .collect();
            found.checked += marks.len() as i64;
            found.verified += marks.iter().filter(|(_, m)| m.is_some()).count() as i64;
            store.mark_verified(&marks, crate::clock::now_ms()).await?;
        }
        found.not_in_bin = found.checked - found.verified;
        run.checked += found.checked;
        run.verified += found.verified;
        run.not_in_bin += found.not_in_bin;
        run.pages += found.pages;
        modules.push(found);
    }
    drop(slot);
    store
        .finish_verification(&run, crate::clock::now_ms())
        .await?;
    Ok((run, modules))
}

/// Every record of `module` the bin holds deleted since `since_ms`: id →
/// (deleted_time, deleted_by); and the pages it took.
async fn read_bin(
    client: &ZohoClient,
    slot: &CallSlot,
    module: &str,
    since_ms: i64,
) -> Result<(HashMap<String, (String, String)>, i64), ZohoError> {
    let mut bin = HashMap::new();
    let mut page = 1;
    loop {
        let answer = crate::zoho::retrying(MAX_TRIES, || {
            client.deleted_records(slot, module, since_ms, page)
        })
        .await?;
        for record in answer.records {
            bin.insert(record.id, (record.deleted_time, record.deleted_by));
        }
        if !answer.more {
            return Ok((bin, i64::from(page)));
        }
        page += 1;
    }
}
