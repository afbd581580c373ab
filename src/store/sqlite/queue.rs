//! The queue's write paths: enqueue, claim under a lease, record outcomes
//! (fenced by the lease), reap expired leases, release on shutdown.
//!
//! ID lists are passed to SQLite as one JSON array and expanded with
//! `json_each`, so each statement is prepared once and cached, whatever the
//! batch size.

use super::{Recording, Store};
use crate::store::StoreError;
use crate::store::types::*;
use crate::sync::lock;

/// IDs to enqueue, gathered one by one (on any thread) for one statement.
/// Inside, a JSON array of strings, which `json_each` expands: built while
/// the IDs are read, it costs no second pass.
#[derive(Debug, Clone)]
pub struct IdChunk {
    json: String,
    len: usize,
}

impl IdChunk {
    /// Room for about `ids` record IDs.
    pub fn with_capacity(ids: usize) -> IdChunk {
        let mut json = String::with_capacity(ids.saturating_mul(22) + 2);
        json.push('[');
        IdChunk { json, len: 0 }
    }

    pub fn push(&mut self, id: &str) {
        if self.len > 0 {
            self.json.push(',');
        }
        // Record IDs are digits and need no escaping; anything else is
        // escaped, so a bad ID reaches the table's checks intact.
        if id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            self.json.push('"');
            self.json.push_str(id);
            self.json.push('"');
        } else {
            self.json.push_str(&serde_json::Value::from(id).to_string());
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn finish(mut self) -> String {
        self.json.push(']');
        self.json
    }
}

/// `next_attempt_at` of a staged row: never due, so never claimed, and at
/// the far end of its lane's index (migration 0010).
pub const STAGED: i64 = i64::MAX;

/// What one [`Enqueuer::add_chunk`] did with its IDs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    /// Rows inserted.
    pub inserted: u64,
    /// IDs skipped because zdel already deleted their target (a succeeded row).
    pub already_deleted: u64,
    /// When the first and the last of those were deleted (epoch ms).
    pub deleted_between: Option<(i64, i64)>,
}

impl Added {
    /// Add `other`'s counts to these.
    pub fn absorb(&mut self, other: Added) {
        self.inserted += other.inserted;
        self.already_deleted += other.already_deleted;
        self.deleted_between = match (self.deleted_between, other.deleted_between) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, None) | (None, x) => x,
        };
    }
}

/// An open enqueue transaction: everything added commits together or not at all.
pub struct Enqueuer {
    tx: super::WriteTx,
    /// The selection the rows belong to (`None`: none recorded).
    selection: Option<i64>,
    /// Rows are staged ([`STAGED`]) until the selection is released.
    staged: bool,
    /// Skip IDs whose target zdel already deleted (selections, unless `--again`).
    skip_deleted: bool,
    /// created_at / updated_at of every row added (epoch ms): given, not
    /// left to the column default, which computes julianday() per row.
    now_ms: i64,
}

impl Enqueuer {
    /// Insert one request per ID of `ids`, all shaped by `template`. IDs
    /// already live (pending or running) are skipped. Returns how many were
    /// inserted.
    pub async fn add(
        &mut self,
        template: &RequestTemplate,
        ids: &[&str],
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut chunk = IdChunk::with_capacity(ids.len());
        for id in ids {
            chunk.push(id);
        }
        Ok(self.add_chunk(template, chunk).await?.inserted)
    }

    /// [`Enqueuer::add`] with the IDs gathered in an [`IdChunk`], as a
    /// reader thread can build it while the database works on the previous
    /// one. In a selection, IDs already deleted are skipped and counted
    /// (unless it was begun with `again`).
    pub async fn add_chunk(
        &mut self,
        template: &RequestTemplate,
        ids: IdChunk,
    ) -> Result<Added, StoreError> {
        if ids.is_empty() {
            return Ok(Added::default());
        }
        let (parent, related_list) = match &template.parent {
            Some(p) => (Some(p.record_id.as_str()), Some(p.related_list.as_str())),
            None => (None, None),
        };
        let len = ids.len() as u64;
        let ids = ids.finish();
        // The target each ID names, as deletion_requests_succeeded_target
        // indexes it.
        const TARGET: &str = "FROM deletion_requests s
             WHERE s.state = 'succeeded' AND s.operation = ?1 AND s.module = ?2
               AND s.record_id = coalesce(?3, value)
               AND coalesce(s.related_list, '') = coalesce(?4, '')
               AND coalesce(s.related_id, '') = CASE WHEN ?3 IS NULL THEN '' ELSE value END";
        // Every row this insert adds gets a rowid above this (the write lock
        // is held): the start of the selection's range.
        let floor: i64 = if self.selection.is_some() {
            sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM deletion_requests")
                .fetch_one(&mut *self.tx)
                .await?
        } else {
            0
        };
        // A `WHERE` (`true` at least) tells SQLite's parser that ON CONFLICT
        // belongs to the INSERT, not to a join in the SELECT.
        let keep = if self.skip_deleted {
            format!("NOT EXISTS (SELECT 1 {TARGET})")
        } else {
            "true".to_string()
        };
        let result = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO deletion_requests
                 (operation, module, record_id, related_list, related_id, wf_trigger, strategy,
                  created_at, updated_at, selection_id, next_attempt_at)
             SELECT ?1, ?2, coalesce(?3, value), ?4, CASE WHEN ?3 IS NULL THEN NULL ELSE value END,
                    ?5, ?6, ?8, ?8, ?9, ?10
             FROM json_each(?7) WHERE {keep}
             ON CONFLICT DO NOTHING"
        )))
        .bind(template.operation.as_str())
        .bind(&template.module)
        .bind(parent)
        .bind(related_list)
        .bind(template.wf_trigger)
        .bind(template.strategy.as_str())
        .bind(ids.as_str())
        .bind(self.now_ms)
        .bind(self.selection)
        .bind(if self.staged { STAGED } else { 0 })
        .execute(&mut *self.tx)
        .await?;
        let mut added = Added {
            inserted: result.rows_affected(),
            ..Added::default()
        };
        super::counts::count_inserted(&mut self.tx, template, added.inserted).await?;
        if let Some(selection) = self.selection
            && added.inserted > 0
        {
            sqlx::query(
                "UPDATE selections
                 SET ids_queued = ids_queued + ?2,
                     first_row_id = min(coalesce(first_row_id, ?3), ?3),
                     last_row_id = max(coalesce(last_row_id, 0), ?4)
                 WHERE id = ?1",
            )
            .bind(selection)
            .bind(added.inserted as i64)
            .bind(floor + 1)
            .bind(result.last_insert_rowid())
            .execute(&mut *self.tx)
            .await?;
        }
        if self.skip_deleted && added.inserted < len {
            // Some were skipped: already live, or already deleted. One
            // probe of the index per distinct ID tells which (when its
            // target was last deleted, if ever).
            let (count, first, last): (i64, Option<i64>, Option<i64>) =
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "WITH d AS MATERIALIZED (
                         SELECT (SELECT max(s.finished_at) {TARGET}) AS f
                         FROM (SELECT DISTINCT value FROM json_each(?5)))
                     SELECT count(f), min(f), max(f) FROM d"
                )))
                .bind(template.operation.as_str())
                .bind(&template.module)
                .bind(parent)
                .bind(related_list)
                .bind(&ids)
                .fetch_one(&mut *self.tx)
                .await?;
            added.already_deleted = count as u64;
            added.deleted_between = first.zip(last);
        }
        Ok(added)
    }

    /// Commit, and with it mark the selection complete
    /// ([`Store::finish_selection`]): for an input that fits in one
    /// transaction, whose rows need no staging. Returns the IDs the
    /// selection queued.
    pub async fn commit_complete(
        mut self,
        found: u64,
        already_deleted: u64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let queued = match self.selection {
            Some(id) => {
                let released = !self.staged;
                super::selections::finish(
                    &mut self.tx,
                    id,
                    true,
                    released,
                    found,
                    already_deleted,
                    now_ms,
                )
                .await?
            }
            None => 0,
        };
        self.commit().await?;
        Ok(queued)
    }

    /// A query selection's page is in: one more page, and where the next
    /// starts (`cursor`), committed with the page's rows.
    pub async fn record_page(&mut self, cursor: &str) -> Result<(), StoreError> {
        if let Some(selection) = self.selection {
            sqlx::query("UPDATE selections SET pages = pages + 1, cursor = ?2 WHERE id = ?1")
                .bind(selection)
                .bind(cursor)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        // Every row is counted now: the fold at the start counted the ones
        // before, `add` counted this transaction's.
        super::counts::move_mark_to_the_end(&mut self.tx).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct LaneRow {
    operation: String,
    module: String,
    wf_trigger: bool,
    strategy: String,
}

impl Store {
    /// Start an all-or-nothing enqueue.
    pub async fn begin_enqueue(&self) -> Result<Enqueuer, StoreError> {
        self.enqueuer(None, false, false).await
    }

    /// [`Store::begin_enqueue`], the rows belonging to `selection`
    /// ([`Store::begin_selection`]). `staged`: none is claimable until the
    /// selection is finished and released ([`Store::release_selection`]);
    /// an input that fits in one transaction needs no staging
    /// ([`Enqueuer::commit_complete`]). IDs whose target zdel already
    /// deleted are skipped, unless `again`.
    pub async fn begin_enqueue_into(
        &self,
        selection: i64,
        staged: bool,
        again: bool,
    ) -> Result<Enqueuer, StoreError> {
        self.enqueuer(Some(selection), staged, !again).await
    }

    async fn enqueuer(
        &self,
        selection: Option<i64>,
        staged: bool,
        skip_deleted: bool,
    ) -> Result<Enqueuer, StoreError> {
        let mut tx = self.begin_write().await?;
        // Rows inserted by plain SQL since the last fold are counted first,
        // so the mark can move past this enqueue's rows at commit.
        super::counts::fold_in(&mut tx).await?;
        Ok(Enqueuer {
            tx,
            selection,
            staged,
            skip_deleted,
            now_ms: crate::clock::now_ms(),
        })
    }

    /// The lanes that have pending rows, in order. Cheap (one index seek per
    /// lane), but the dispatcher still keeps the list between claims.
    pub async fn pending_lanes(&self) -> Result<Vec<LaneKey>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let lanes = lanes_with_pending(&mut tx).await?;
        tx.commit().await?;
        Ok(lanes)
    }

    /// Claim up to `max_batches` batches of due rows in one transaction, each
    /// under its own lease. Lanes are visited round robin starting after
    /// `after` (so one big module cannot starve the others), one batch per
    /// lane per pass; lanes whose module is in `skip_modules` or whose key is
    /// in `skip_lanes` are passed over. Delinks are claimed per parent record
    /// and related list, the oldest due first. Empty when nothing is due.
    ///
    /// Several batches per transaction is what lets the single SQLite writer
    /// keep up: a transaction's fixed cost (fsync, lock hand-off) is shared.
    pub async fn claim_batches(
        &self,
        req: &ClaimRequest<'_>,
    ) -> Result<Vec<ClaimedBatch>, StoreError> {
        // An idle poll must not take the write lock (an operator's INSERTs wait on it).
        if req.lanes.is_empty() || req.max_batches == 0 || req.max_ids == Some(0) {
            return Ok(Vec::new());
        }
        let lanes = req.lanes;
        let start = match req.after {
            Some(a) => lanes.iter().position(|l| l > a).unwrap_or(0),
            None => 0,
        };
        let order: Vec<&LaneKey> = lanes[start..]
            .iter()
            .chain(lanes[..start].iter())
            .filter(|l| !req.skip_modules.contains(&l.module) && !req.skip_lanes.contains(l))
            .collect();
        let mut exhausted = vec![false; order.len()];
        // Where each lane's claimed rows end, in lane order (next_attempt_at, id).
        let mut cursors = vec![(i64::MIN, i64::MIN); order.len()];
        let mut ids_left = req.max_ids;
        let mut batches = Vec::new();
        // Batches whose rows are still pending: marked running together at the end.
        let mut unmarked: Vec<(i64, Vec<i64>)> = Vec::new();
        let mut tx = self.begin_write().await?;
        if let Some(token) = req.fence {
            super::daemon::check_fence(&mut tx, token).await?;
        }
        // Each pass shares the slots left among the lanes not yet exhausted,
        // round robin from `after`, and a lane takes its whole share in one
        // statement; a lane that comes up short leaves its slots to the
        // next pass.
        loop {
            let active: Vec<usize> = (0..order.len()).filter(|&i| !exhausted[i]).collect();
            let slots_left = req.max_batches.saturating_sub(batches.len());
            if active.is_empty() || slots_left == 0 || ids_left == Some(0) {
                break;
            }
            for (k, &i) in active.iter().enumerate() {
                // The shares add up to the slots left, and a lane never takes
                // more batches than its share.
                let share = slots_left / active.len() + usize::from(k < slots_left % active.len());
                if share == 0 || ids_left == Some(0) {
                    continue;
                }
                let lane = order[i];
                let limit = (req.limit_for)(lane);
                if lane.operation == Operation::Delink {
                    // One parent per batch: each is marked running at once,
                    // so the next finds the next parent.
                    for _ in 0..share {
                        let limit = capped(limit, ids_left);
                        let lease = LeaseToken::random();
                        let rows = claim_parent(&mut tx, req, lane, lease, limit).await?;
                        if rows.is_empty() {
                            exhausted[i] = true;
                            break;
                        }
                        take(&mut ids_left, rows.len());
                        batches.push(ClaimedBatch {
                            lane: lane.clone(),
                            lease,
                            rows,
                        });
                        if ids_left == Some(0) {
                            break;
                        }
                    }
                    continue;
                }
                let wanted = capped(limit.saturating_mul(share as u32), ids_left);
                let found = claim_run(&mut tx, req, lane, None, cursors[i], wanted).await?;
                // Short (or nothing asked: a limit of 0) ends the lane for this claim.
                if found.len() < wanted as usize || wanted == 0 {
                    exhausted[i] = true;
                }
                if let Some(end) = found.iter().map(|(row, at)| (*at, row.id)).max() {
                    cursors[i] = end;
                }
                take(&mut ids_left, found.len());
                let mut found = found.into_iter().map(|(row, _)| row).peekable();
                while found.peek().is_some() {
                    let mut rows: Vec<ClaimedRow> = found.by_ref().take(limit as usize).collect();
                    rows.sort_by_key(|r| r.id);
                    let lease = LeaseToken::random();
                    unmarked.push((lease.0, rows.iter().map(|r| r.id).collect()));
                    batches.push(ClaimedBatch {
                        lane: lane.clone(),
                        lease,
                        rows,
                    });
                }
            }
        }
        if !unmarked.is_empty() {
            mark_running(&mut tx, req, &unmarked).await?;
        }
        tx.commit().await?;
        Ok(batches)
    }

    /// Move claimed rows on. Every update is fenced by the lease: rows whose
    /// lease was reaped (and perhaps claimed again) are left alone and
    /// counted in `lease_lost`.
    ///
    /// Group commit: batches finishing together are written in one
    /// transaction (one fsync). Each caller queues its outcomes; whoever gets
    /// the writer's turn writes everything queued by then and answers every
    /// caller it wrote for. If that shared transaction fails, each queued
    /// batch is written alone so every caller gets its own answer.
    pub async fn record_outcomes(
        &self,
        lease: LeaseToken,
        outcomes: &[RowOutcome],
        now_ms: i64,
    ) -> Result<Recorded, StoreError> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        lock(&self.recordings).push(Recording {
            lease,
            outcomes: outcomes.to_vec(),
            now_ms,
            reply,
        });
        let turn = self.writer_turn().await;
        // Written by the writer before us?
        if let Ok(result) = answer.try_recv() {
            return result;
        }
        let group = std::mem::take(&mut *lock(&self.recordings));
        let sets: Vec<OutcomeSet> = group
            .iter()
            .flat_map(|r| outcome_sets(r.lease, &r.outcomes, r.now_ms))
            .collect();
        let expected: u64 = group.iter().map(|r| r.outcomes.len() as u64).sum();
        let mut tx = self.begin_write_holding(turn).await?;
        let written = match write_outcomes(&mut tx, &sets).await {
            // Every row moved on, or the group is one batch: whose rows
            // moved is known.
            Ok(n) if n == expected || group.len() == 1 => tx
                .commit()
                .await
                .map(|()| Some(n))
                .map_err(StoreError::from),
            // Some batch lost its lease: which one is found by writing each
            // alone. Rolls back and gives up the writer's turn.
            Ok(_) => {
                drop(tx);
                Ok(None)
            }
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        match written {
            Ok(Some(n)) => {
                for r in group {
                    let total = r.outcomes.len() as u64;
                    // With one batch, n is its count; with several, all moved.
                    let applied = if n == expected { total } else { n };
                    let _ = r.reply.send(Ok(Recorded {
                        applied,
                        lease_lost: total - applied,
                    }));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some(r) = group.into_iter().next() {
                    let _ = r.reply.send(Err(e));
                }
            }
            Ok(None) | Err(_) => {
                for r in group {
                    let result = self.record_alone(r.lease, &r.outcomes, r.now_ms).await;
                    let _ = r.reply.send(result);
                }
            }
        }
        answer.await.unwrap_or(Err(StoreError::WriterStopped))
    }

    /// One batch's outcomes in a transaction of their own.
    async fn record_alone(
        &self,
        lease: LeaseToken,
        outcomes: &[RowOutcome],
        now_ms: i64,
    ) -> Result<Recorded, StoreError> {
        let mut tx = self.begin_write().await?;
        let applied = write_outcomes(&mut tx, &outcome_sets(lease, outcomes, now_ms)).await?;
        tx.commit().await?;
        Ok(Recorded {
            applied,
            lease_lost: outcomes.len() as u64 - applied,
        })
    }

    /// Put rows whose lease ran out back to pending: their holder died or hung.
    /// The call may have reached Zoho, so the attempt counts as ambiguous —
    /// unless the holder was a dry run, which never sends anything.
    pub async fn reap_expired_leases(&self, now_ms: i64) -> Result<u64, StoreError> {
        let query = sqlx::query(
            "UPDATE deletion_requests
             SET state = 'pending',
                 ambiguous_attempts = ambiguous_attempts + (1 - lease_dry_run),
                 outcome_code = 'LEASE_EXPIRED',
                 outcome_message = 'the worker holding this row stopped answering (crash or hang); returned to the queue',
                 updated_at = ?1,
                 lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, lease_dry_run = 0
             WHERE state = 'running' AND lease_expires_at < ?1",
        )
        .bind(now_ms);
        self.write_alone(query).await
    }

    /// On shutdown: rows still claimed by `owner` (their calls were cut off by
    /// the grace period) go back to pending, as ambiguous attempts.
    pub async fn release_owned(&self, owner: &str, now_ms: i64) -> Result<u64, StoreError> {
        let query = sqlx::query(
            "UPDATE deletion_requests
             SET state = 'pending', ambiguous_attempts = ambiguous_attempts + 1,
                 outcome_code = 'SHUTDOWN',
                 outcome_message = 'zdel shut down before this call answered; returned to the queue',
                 updated_at = ?1,
                 lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, lease_dry_run = 0
             WHERE state = 'running' AND lease_owner = ?2",
        )
        .bind(now_ms)
        .bind(owner);
        self.write_alone(query).await
    }

    /// End of a dry run: rows it claimed go back to pending exactly as they were.
    pub async fn release_dry_run(&self, owner: &str) -> Result<u64, StoreError> {
        let query = sqlx::query(
            "UPDATE deletion_requests
             SET state = 'pending', lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL,
                 lease_dry_run = 0
             WHERE state = 'running' AND lease_owner = ?1 AND lease_dry_run = 1",
        )
        .bind(owner);
        self.write_alone(query).await
    }

    /// Pending rows that could run now or later, leaving out those of
    /// `skip_modules` and of `skip_lanes` (paused ones), and the staged rows
    /// of unfinished selections (as those counted them going in). For
    /// messages; [`Store::any_runnable`] answers whether work is left.
    pub async fn pending_rows(
        &self,
        skip_modules: &[String],
        skip_lanes: &[LaneKey],
    ) -> Result<i64, StoreError> {
        let kept = |operation: Operation, module: &str, wf_trigger: bool, strategy: Strategy| {
            !skipped(
                skip_modules,
                skip_lanes,
                operation,
                module,
                wf_trigger,
                strategy,
            )
        };
        let pending: i64 = self
            .lane_state_counts()
            .await?
            .iter()
            .filter(|l| l.state == RequestState::Pending)
            .filter(|l| kept(l.operation, &l.module, l.wf_trigger, l.strategy))
            .map(|l| l.count)
            .sum();
        if pending == 0 {
            return Ok(0);
        }
        let staged: i64 = self
            .staged_counts()
            .await?
            .iter()
            // A complete selection's rows are being released: they count.
            .filter(|s| s.selection_state != "complete")
            .filter(|s| kept(s.operation, &s.module, s.wf_trigger, s.strategy))
            .map(|s| s.count)
            .sum();
        Ok((pending - staged).max(0))
    }

    /// Whether any pending row outside `skip_modules` and `skip_lanes`
    /// could run now or later: not staged, or staged by a complete
    /// selection (being released). One index seek per lane, plus the
    /// selections being released.
    pub async fn any_runnable(
        &self,
        skip_modules: &[String],
        skip_lanes: &[LaneKey],
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        for lane in lanes_with_pending(&mut conn).await? {
            if skip_modules.contains(&lane.module) || skip_lanes.contains(&lane) {
                continue;
            }
            let unstaged: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM deletion_requests
                                WHERE state = 'pending' AND operation = ?1 AND module = ?2
                                  AND wf_trigger = ?3 AND strategy = ?4 AND next_attempt_at < ?5)",
            )
            .bind(lane.operation.as_str())
            .bind(&lane.module)
            .bind(lane.wf_trigger)
            .bind(lane.strategy.as_str())
            .bind(STAGED)
            .fetch_one(&mut *conn)
            .await?;
            if unstaged {
                return Ok(true);
            }
        }
        drop(conn);
        Ok(self.staged_counts().await?.iter().any(|s| {
            s.selection_state == "complete"
                && s.count > 0
                && !skipped(
                    skip_modules,
                    skip_lanes,
                    s.operation,
                    &s.module,
                    s.wf_trigger,
                    s.strategy,
                )
        }))
    }

    /// Rows in `running` state held by anyone but `owner`.
    pub async fn running_elsewhere(&self, owner: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM deletion_requests WHERE state = 'running' AND lease_owner <> ?1",
        )
        .bind(owner)
        .fetch_one(&self.pool)
        .await?)
    }
}

/// Whether the lane (operation, module, wf_trigger, strategy) is left out:
/// its module is in `skip_modules` or its key in `skip_lanes`.
fn skipped(
    skip_modules: &[String],
    skip_lanes: &[LaneKey],
    operation: Operation,
    module: &str,
    wf_trigger: bool,
    strategy: Strategy,
) -> bool {
    skip_modules.iter().any(|m| m == module)
        || skip_lanes.iter().any(|k| {
            k.operation == operation
                && k.module == module
                && k.wf_trigger == wf_trigger
                && k.strategy == strategy
        })
}

/// `limit` rows, or fewer if the daily cap leaves fewer.
fn capped(limit: u32, ids_left: Option<u64>) -> u32 {
    ids_left.map_or(limit, |left| {
        limit.min(u32::try_from(left).unwrap_or(u32::MAX))
    })
}

fn take(ids_left: &mut Option<u64>, n: usize) {
    if let Some(left) = ids_left.as_mut() {
        *left = left.saturating_sub(n as u64);
    }
}

/// Up to `limit` due rows of a lane (of one delink parent, if given) after
/// `cursor`, oldest due first, each with its next_attempt_at. Nothing is
/// marked: the caller marks them running ([`mark_running`]), every batch of
/// a claim in one statement.
///
/// The rows come back as one JSON text rather than as a row stream: with
/// sqlx each streamed row is a hand-off between threads, and measured,
/// those hand-offs cost more than the claim itself. The cursor is two
/// seeks (the rest of its next_attempt_at, then later ones) rather than a
/// row-value comparison, which SQLite answers by stepping through the lane.
async fn claim_run(
    conn: &mut sqlx::SqliteConnection,
    req: &ClaimRequest<'_>,
    lane: &LaneKey,
    parent: Option<(&str, &str)>,
    cursor: (i64, i64),
    limit: u32,
) -> Result<Vec<(ClaimedRow, i64)>, StoreError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(json_array(id, record_id, related_list, related_id,
                                            attempts, ambiguous_attempts, next_attempt_at))
         FROM (SELECT * FROM (SELECT id, record_id, related_list, related_id, attempts,
                                     ambiguous_attempts, next_attempt_at
                              FROM deletion_requests
                              WHERE state = 'pending' AND operation = ?1 AND module = ?2
                                AND wf_trigger = ?3 AND strategy = ?4
                                AND next_attempt_at = ?5 AND id > ?6
                                AND (?9 IS NULL OR (record_id = ?9 AND related_list = ?10))
                              ORDER BY id LIMIT ?8)
               UNION ALL
               SELECT * FROM (SELECT id, record_id, related_list, related_id, attempts,
                                     ambiguous_attempts, next_attempt_at
                              FROM deletion_requests
                              WHERE state = 'pending' AND operation = ?1 AND module = ?2
                                AND wf_trigger = ?3 AND strategy = ?4
                                AND next_attempt_at > ?5 AND next_attempt_at <= ?7
                                AND (?9 IS NULL OR (record_id = ?9 AND related_list = ?10))
                              ORDER BY next_attempt_at, id LIMIT ?8)
               LIMIT ?8)",
    )
    .bind(lane.operation.as_str())
    .bind(&lane.module)
    .bind(lane.wf_trigger)
    .bind(lane.strategy.as_str())
    .bind(cursor.0)
    .bind(cursor.1)
    .bind(req.now_ms)
    .bind(limit)
    .bind(parent.map(|(record_id, _)| record_id))
    .bind(parent.map(|(_, related_list)| related_list))
    .fetch_one(&mut *conn)
    .await?;
    type Found = (i64, String, Option<String>, Option<String>, i64, i64, i64);
    let found: Vec<Found> = serde_json::from_str(found.as_deref().unwrap_or("[]"))
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(found
        .into_iter()
        .map(
            |(id, record_id, related_list, related_id, attempts, ambiguous_attempts, next_at)| {
                (
                    ClaimedRow {
                        id,
                        record_id,
                        related_list,
                        related_id,
                        attempts,
                        ambiguous_attempts,
                    },
                    next_at,
                )
            },
        )
        .collect())
}

/// Mark the rows of `batches` (lease, row ids) running under their leases,
/// in one statement. Inside the claim's transaction they are still pending;
/// if any is not, the claim is rolled back rather than handed out.
async fn mark_running(
    conn: &mut sqlx::SqliteConnection,
    req: &ClaimRequest<'_>,
    batches: &[(i64, Vec<i64>)],
) -> Result<(), StoreError> {
    let expected: usize = batches.iter().map(|(_, ids)| ids.len()).sum();
    let batches = serde_json::to_string(batches).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let marked = sqlx::query(
        "WITH b AS MATERIALIZED (
             SELECT value ->> 0 AS lease, value -> '$[1]' AS ids FROM json_each(?1))
         UPDATE deletion_requests AS d
         SET state = 'running', lease_token = c.lease, lease_owner = ?2,
             lease_expires_at = ?3, updated_at = ?4, lease_dry_run = ?5
         FROM (SELECT b.lease, i.value AS id FROM b, json_each(b.ids) AS i) AS c
         WHERE d.id = c.id AND d.state = 'pending'",
    )
    .bind(batches)
    .bind(req.owner)
    .bind(req.now_ms + req.lease_ms)
    .bind(req.now_ms)
    .bind(req.dry_run)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if marked != expected as u64 {
        return Err(StoreError::ClaimChanged {
            expected: expected as u64,
            marked,
        });
    }
    Ok(())
}

/// One delink batch: the rows of the parent record (and related list) whose
/// oldest row is due first, marked running at once so that the claim's next
/// delink batch finds the next parent.
async fn claim_parent(
    conn: &mut sqlx::SqliteConnection,
    req: &ClaimRequest<'_>,
    lane: &LaneKey,
    lease: LeaseToken,
    limit: u32,
) -> Result<Vec<ClaimedRow>, StoreError> {
    let parent: Option<(String, String)> = sqlx::query_as(
        "SELECT record_id, related_list FROM deletion_requests
         WHERE state = 'pending' AND operation = 'delink' AND module = ?1
           AND wf_trigger = ?2 AND strategy = ?3 AND next_attempt_at <= ?4
         ORDER BY next_attempt_at, id LIMIT 1",
    )
    .bind(&lane.module)
    .bind(lane.wf_trigger)
    .bind(lane.strategy.as_str())
    .bind(req.now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((record_id, related_list)) = parent else {
        return Ok(Vec::new());
    };
    let found = claim_run(
        conn,
        req,
        lane,
        Some((&record_id, &related_list)),
        (i64::MIN, i64::MIN),
        limit,
    )
    .await?;
    let mut rows: Vec<ClaimedRow> = found.into_iter().map(|(row, _)| row).collect();
    rows.sort_by_key(|r| r.id);
    mark_running(conn, req, &[(lease.0, rows.iter().map(|r| r.id).collect())]).await?;
    Ok(rows)
}

/// Rows of one lease that move on the same way: one element of the JSON
/// array [`write_outcomes`] sends, its keys named as the statement reads them.
#[derive(serde::Serialize)]
struct OutcomeSet<'a> {
    lease: i64,
    state: &'static str,
    code: &'a str,
    message: &'a str,
    http_status: Option<i64>,
    /// Attempts to add.
    add_attempt: i64,
    /// Ambiguous attempts to add.
    add_ambiguous: i64,
    /// next_attempt_at, for retries.
    next_at: Option<i64>,
    /// finished_at, for terminal rows.
    finished: Option<i64>,
    now_ms: i64,
    ids: Vec<i64>,
}

/// One batch's outcomes grouped by change: a batch that simply succeeded is
/// one set, not a hundred rows.
fn outcome_sets(lease: LeaseToken, outcomes: &[RowOutcome], now_ms: i64) -> Vec<OutcomeSet<'_>> {
    let mut groups: Vec<(&RowChange, Vec<i64>)> = Vec::new();
    for o in outcomes {
        match groups.iter_mut().find(|(c, _)| *c == &o.change) {
            Some((_, ids)) => ids.push(o.id),
            None => groups.push((&o.change, vec![o.id])),
        }
    }
    groups
        .into_iter()
        .map(|(change, ids)| {
            let (state, code, message, http_status, count_attempt, ambiguous, next_at) =
                match change {
                    RowChange::Succeeded {
                        code,
                        message,
                        http_status,
                    } => (
                        RequestState::Succeeded,
                        code,
                        message,
                        http_status,
                        true,
                        false,
                        None,
                    ),
                    RowChange::Failed {
                        code,
                        message,
                        http_status,
                        count_attempt,
                        ambiguous,
                    } => (
                        RequestState::Failed,
                        code,
                        message,
                        http_status,
                        *count_attempt,
                        *ambiguous,
                        None,
                    ),
                    RowChange::Retry {
                        code,
                        message,
                        http_status,
                        next_attempt_at,
                        count_attempt,
                        ambiguous,
                    } => (
                        RequestState::Pending,
                        code,
                        message,
                        http_status,
                        *count_attempt,
                        *ambiguous,
                        Some(*next_attempt_at),
                    ),
                };
            OutcomeSet {
                lease: lease.0,
                state: state.as_str(),
                code: code.as_str(),
                message: message.as_str(),
                http_status: http_status.map(i64::from),
                add_attempt: i64::from(count_attempt),
                add_ambiguous: i64::from(ambiguous),
                next_at,
                finished: state.is_terminal().then_some(now_ms),
                now_ms,
                ids,
            }
        })
        .collect()
}

/// Write outcome sets (of one batch or of a group) inside an open write
/// transaction, in one statement; returns how many rows were still under
/// their set's lease and moved on.
///
/// One statement whatever the number of batches: with sqlx every statement
/// is a round trip between the async task and the connection's thread, and
/// measured, those round trips (not SQLite) were most of the time the single
/// writer was held. Each set's fields are read once (`MATERIALIZED`); the
/// `+` keeps SQLite from looking rows up by lease instead of by id.
async fn write_outcomes(
    conn: &mut sqlx::SqliteConnection,
    sets: &[OutcomeSet<'_>],
) -> Result<u64, StoreError> {
    let sets = serde_json::to_string(sets).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let result = sqlx::query(
        "WITH s AS MATERIALIZED (
             SELECT value ->> 'lease' AS lease, value ->> 'state' AS state,
                    value ->> 'code' AS code, value ->> 'message' AS message,
                    value ->> 'http_status' AS http_status,
                    value ->> 'add_attempt' AS add_attempt,
                    value ->> 'add_ambiguous' AS add_ambiguous,
                    value ->> 'next_at' AS next_at, value ->> 'finished' AS finished,
                    value ->> 'now_ms' AS now_ms, value -> '$.ids' AS ids
             FROM json_each(?1))
         UPDATE deletion_requests AS d
         SET state = c.state, outcome_code = c.code, outcome_message = c.message,
             http_status = c.http_status, attempts = d.attempts + c.add_attempt,
             ambiguous_attempts = d.ambiguous_attempts + c.add_ambiguous,
             next_attempt_at = coalesce(c.next_at, d.next_attempt_at), finished_at = c.finished,
             updated_at = c.now_ms,
             lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, lease_dry_run = 0
         FROM (SELECT s.*, i.value AS id FROM s, json_each(s.ids) AS i) AS c
         WHERE d.id = c.id AND +d.lease_token = c.lease AND d.state = 'running'",
    )
    .bind(sets)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

/// The distinct lanes that have pending rows, found by skipping through the
/// lane index one lane at a time (a loose index scan): cost grows with the
/// number of lanes, not the number of rows.
///
/// Each step is an equality prefix plus a range on the next column, which
/// SQLite answers with one index seek. (A row-value comparison
/// `(a, b, c, d) > (?, ?, ?, ?)` looks equivalent but steps through every
/// entry of the current lane: measured 100 ms per claim at 200,000 rows.)
async fn lanes_with_pending(conn: &mut sqlx::SqliteConnection) -> Result<Vec<LaneKey>, StoreError> {
    const COLUMNS: &str = "SELECT operation, module, wf_trigger, strategy FROM deletion_requests WHERE state = 'pending'";
    let mut lanes = Vec::new();
    let mut last: Option<LaneRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{COLUMNS} ORDER BY operation, module, wf_trigger, strategy LIMIT 1"
    )))
    .fetch_optional(&mut *conn)
    .await?;
    while let Some(row) = last {
        if let Some(operation) = Operation::parse(&row.operation) {
            lanes.push(LaneKey {
                // One org per database today (no org column yet).
                org: OrgId::default(),
                operation,
                module: row.module.clone(),
                wf_trigger: row.wf_trigger,
                strategy: Strategy::parse(&row.strategy).unwrap_or(Strategy::Auto),
            });
        }
        // The next lane: same (operation, module, wf_trigger) with a later
        // strategy; else a later wf_trigger; else a later module; else a
        // later operation.
        let steps = [
            "AND operation = ?1 AND module = ?2 AND wf_trigger = ?3 AND strategy > ?4 ORDER BY strategy",
            "AND operation = ?1 AND module = ?2 AND wf_trigger > ?3 ORDER BY wf_trigger, strategy",
            "AND operation = ?1 AND module > ?2 ORDER BY module, wf_trigger, strategy",
            "AND operation > ?1 ORDER BY operation, module, wf_trigger, strategy",
        ];
        let mut next = None;
        for step in steps {
            next = sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLUMNS} {step} LIMIT 1")))
                .bind(&row.operation)
                .bind(&row.module)
                .bind(row.wf_trigger)
                .bind(&row.strategy)
                .fetch_optional(&mut *conn)
                .await?;
            if next.is_some() {
                break;
            }
        }
        last = next;
    }
    lanes.sort();
    Ok(lanes)
}
