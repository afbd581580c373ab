//! One claimed batch: make its call (or, in a dry run, describe it),
//! apply what a whole-call error means for its lane, record every row's
//! outcome under the lease, and count it in the metrics.

use std::sync::Arc;
use std::time::Duration;

use tracing::{Instrument, debug, error, info, info_span, warn};

use super::gates::{GateChange, Target};
use super::outcome::Evidence;
use super::{Shared, outcome};
use crate::store::{ClaimedBatch, LaneKey, Operation, PausedScope, RequestState, Strategy};
use crate::zoho::{BIN_LOOKUP_IDS, Call, CallSlot, ZohoError};

/// Make one call for a claimed batch and record every row's outcome.
///
/// `lease_ends`: when the rows' lease runs out (the claim's time plus the
/// lease): the call is not sent if it could not be answered by then.
pub(super) async fn run_batch(
    shared: Arc<Shared>,
    batch: ClaimedBatch,
    slot: CallSlot,
    lease_ends: tokio::time::Instant,
) {
    let attempt = batch.rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let strategy = shared.settings.effective_strategy(&batch.lane);
    let span = info_span!(
        "batch",
        operation = batch.lane.operation.as_str(),
        strategy = strategy.as_str(),
        module = %batch.lane.module,
        wf_trigger = batch.lane.wf_trigger,
        size = batch.rows.len(),
        attempt,
    );
    async move {
        if shared.settings.dry_run {
            info!(call = %call_for(&batch, strategy).describe(), "dry run: would send");
            drop(slot);
            shared.gates.calls_ended(batch.rows.len());
            shared.batch_done.notify_one();
            return;
        }
        let started = std::time::Instant::now();
        let sent = shared.clock().now();
        let result = shared
            .client
            .send(&slot, &call_for(&batch, strategy), lease_ends)
            .await;
        drop(slot);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(answer) => debug!(
                http_status = answer.http_status,
                results = answer.results.len(),
                elapsed_ms,
                "call answered"
            ),
            Err(e) => warn!(code = e.code(), error = %e, elapsed_ms, "call failed"),
        }
        let target = Target {
            module: &batch.lane.module,
            operation: scope_operation(&batch.lane, strategy),
        };
        if !matches!(result, Err(ZohoError::RateLimited { .. })) {
            shared.gates.answered(shared.org(), sent);
        }
        match &result {
            Err(e) => apply_error_effects(&shared, target, e).await,
            Ok(answer) => match outcome::gate_effect(answer) {
                Some(effect) => apply_error_effects(&shared, target, &effect).await,
                None if target.operation == MASS_DELETE => {
                    shared.gates.mass_delete_answered(shared.org())
                }
                None => {}
            },
        }
        if let Err(e) = &result
            && matches!(
                e,
                ZohoError::Transient { .. } | ZohoError::RateLimited { .. }
            )
        {
            metrics::counter!("zdel_batch_retries_total", "code" => e.code().to_string())
                .increment(1);
        }
        let evidence = match &result {
            Ok(answer)
                if shared.settings.verify_ambiguous
                    && batch.lane.operation == Operation::Delete =>
            {
                recycle_bin_evidence(&shared, &outcome::ambiguous_invalid_data(&batch, answer))
                    .await
            }
            Ok(answer) if batch.lane.operation == Operation::Restore => {
                let ids = outcome::ambiguous_invalid_data(&batch, answer);
                live_evidence(&shared, &batch.lane.module, &ids).await
            }
            _ => Evidence::NotAsked,
        };
        let now = shared.clock().now_ms();
        let outcomes = outcome::plan(
            &batch,
            &result,
            &evidence,
            &shared.settings.retry,
            shared.waits(),
            now,
            rand::random::<f64>,
        );
        if record_with_retries(&shared, &batch, &outcomes).await {
            count_outcomes(batch.lane.operation, &outcomes);
        }
        shared.gates.calls_ended(batch.rows.len());
        shared.batch_done.notify_one();
    }
    .instrument(span)
    .await
}

/// What the recycle bin holds of `ids` (INVALID_DATA after an unanswered
/// attempt): one call per 200 IDs; if a call fails, the evidence is
/// unavailable and the old rule decides (the message says so).
async fn recycle_bin_evidence(shared: &Shared, ids: &[&str]) -> Evidence {
    if ids.is_empty() {
        return Evidence::NotAsked;
    }
    let slot = shared.client.acquire_slot().await;
    let mut bin = std::collections::HashMap::new();
    for chunk in ids.chunks(BIN_LOOKUP_IDS) {
        match shared.client.in_recycle_bin(&slot, chunk).await {
            Ok(found) => {
                for r in found {
                    bin.insert(r.id, (r.deleted_time, r.deleted_by));
                }
            }
            Err(e) => {
                warn!(error = %e, "the recycle bin could not be checked; the old rule decides");
                return Evidence::Unavailable(e.to_string());
            }
        }
    }
    Evidence::Checked(bin)
}

/// Which of `ids` (a restore's INVALID_DATA after a SCHEDULED or unanswered
/// attempt: no longer in the bin) are live records again: one look-up for
/// the batch (`GET /{module}?ids=`).
async fn live_evidence(shared: &Shared, module: &str, ids: &[&str]) -> Evidence {
    if ids.is_empty() {
        return Evidence::NotAsked;
    }
    let slot = shared.client.acquire_slot().await;
    match shared.client.live_records(&slot, module, ids).await {
        Ok(live) => Evidence::Checked(
            live.into_iter()
                .map(|id| (id, ("live".to_string(), String::new())))
                .collect(),
        ),
        Err(e) => {
            warn!(error = %e, "could not look the restored records up; the old rule decides");
            Evidence::Unavailable(e.to_string())
        }
    }
}

/// The one call that carries `batch`, chosen by its operation and strategy.
fn call_for(batch: &ClaimedBatch, strategy: Strategy) -> Call<'_> {
    let lane = &batch.lane;
    let module = lane.module.as_str();
    let ids: Vec<&str> = batch.rows.iter().map(|r| r.answer_id()).collect();
    // Delinks are claimed per parent (every row shares record_id and
    // related_list) and photos one at a time. A claim is never empty.
    let first = batch.rows.first();
    let record_id = first.map_or("", |r| r.record_id.as_str());
    match lane.operation {
        Operation::Delete if strategy == Strategy::MassDelete => {
            Call::MassDeleteIds { module, ids }
        }
        Operation::Delete => Call::DeleteRecords {
            module,
            ids,
            wf_trigger: lane.wf_trigger,
        },
        Operation::Delink => Call::Delink {
            module,
            record_id,
            related_list: first
                .and_then(|r| r.related_list.as_deref())
                .unwrap_or_default(),
            ids,
        },
        Operation::DeleteContactRole => Call::DeleteContactRoles { ids },
        Operation::DeletePhoto => Call::DeletePhoto { module, record_id },
        Operation::Restore => Call::Restore { ids },
    }
}

/// The operation as OAuth scopes name it, for a lane sent with `strategy`:
/// a token may hold the scope to delete records but not to mass-delete them.
pub(super) fn scope_operation(lane: &LaneKey, strategy: Strategy) -> &'static str {
    match lane.operation {
        Operation::Delete if strategy == Strategy::MassDelete => MASS_DELETE,
        Operation::Delete => "delete",
        Operation::Delink => "delink",
        Operation::DeleteContactRole => "contact_role",
        Operation::DeletePhoto => "photo",
        Operation::Restore => "restore",
    }
}

/// The scope operation of ID-list mass deletes and custom-view jobs.
pub(super) const MASS_DELETE: &str = "mass_delete";

/// Close the gates a whole-call error asks for (a scope error pauses the
/// operation, a permission error the module, rejected credentials
/// everything; a token outage stops claims; a 429 backs the org off;
/// `ALREADY_SCHEDULED` holds mass deletes back), log it, and record pauses
/// durably.
pub(super) async fn apply_error_effects(shared: &Shared, target: Target<'_>, error: &ZohoError) {
    let clock = shared.clock();
    let Some(change) = shared.gates.on_error(
        shared.org(),
        target,
        error,
        clock.now(),
        rand::random::<f64>(),
    ) else {
        return;
    };
    let message = match error {
        ZohoError::LanePaused { message, .. }
        | ZohoError::CredentialsRejected { message, .. }
        | ZohoError::Unavailable { message, .. } => message.as_str(),
        _ => "",
    };
    let module = target.module;
    let scope = match change {
        GateChange::PausedOperation { module, operation } => {
            error!(module = %module, operation = %operation, code = %error.code(), "the token lacks the scope for this operation: pausing {operation} in {module} (its other operations go on); grant the scope (see the README's scope table), then `zdel resume --module {module}`");
            PausedScope::Operation { module, operation }
        }
        GateChange::PausedModule { .. } => {
            error!(module = %module, code = %error.code(), "permission error: pausing this module's lane; run `zdel resume --module {module}` once fixed");
            PausedScope::Module(module.to_string())
        }
        GateChange::PausedAll => {
            error!(code = %error.code(), "{message}: pausing all work until the credentials are fixed");
            PausedScope::All
        }
        GateChange::TokenOutage { retry_after } => {
            warn!(
                retry_after_ms = retry_after.as_millis() as u64,
                "{message}: no claims meanwhile"
            );
            return;
        }
        GateChange::Throttled { backoff, streak } => {
            warn!(
                backoff_ms = backoff.as_millis() as u64,
                streak,
                "429: the whole org backs off, then sends one call at a time until Zoho answers"
            );
            return;
        }
        GateChange::MassDeleteBusy { wait } => {
            warn!(
                wait_ms = wait.as_millis() as u64,
                "ALREADY_SCHEDULED: another mass action runs; ID-list mass deletes wait (no attempt spent)"
            );
            return;
        }
    };
    if let Err(e) = shared
        .store
        .pause(&scope.as_scope(), error.code(), message, clock.now_ms())
        .await
    {
        warn!(error = %e, "could not record the pause; it holds in this process only");
    }
}

/// `zdel_ids_total{operation, outcome, code}`: one increment per distinct
/// (outcome, code) of a batch, not per ID.
fn count_outcomes(operation: Operation, outcomes: &[crate::store::RowOutcome]) {
    use crate::store::RowChange;
    let mut counts: Vec<((&'static str, &str), u64)> = Vec::new();
    for o in outcomes {
        let key = match &o.change {
            RowChange::Succeeded { code, .. } => (RequestState::Succeeded.as_str(), code.as_str()),
            RowChange::Failed { code, .. } => (RequestState::Failed.as_str(), code.as_str()),
            RowChange::Retry { code, .. } => ("retry", code.as_str()),
        };
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    for ((outcome, code), n) in counts {
        metrics::counter!("zdel_ids_total", "operation" => operation.as_str(), "outcome" => outcome, "code" => code.to_string())
            .increment(n);
    }
}

/// Writes of outcomes retry a few times (the database may be busy); if they
/// still fail, the lease expires and the rows are retried as ambiguous, so
/// nothing is lost.
async fn record_with_retries(
    shared: &Shared,
    batch: &ClaimedBatch,
    outcomes: &[crate::store::RowOutcome],
) -> bool {
    const TRIES: u32 = 5;
    for try_no in 1..=TRIES {
        let now = shared.clock().now_ms();
        match shared
            .store
            .record_outcomes(batch.lease, outcomes, now)
            .await
        {
            Ok(recorded) => {
                if recorded.lease_lost > 0 {
                    warn!(
                        rows = recorded.lease_lost,
                        "lease lost before the outcome was written: another claim owns these rows now"
                    );
                }
                return true;
            }
            Err(e) if try_no < TRIES => {
                warn!(error = %e, try_no, "could not record outcomes; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(try_no))).await;
            }
            Err(e) => {
                error!(error = %e, "could not record outcomes; the rows return to pending when their lease expires");
            }
        }
    }
    false
}
