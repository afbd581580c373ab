//! From a call's result to each row's next state. Pure: no I/O, no clock.
//!
//! The decision table lives here, once: [`for_id`] decides a per-ID code,
//! [`for_call`] a whole-call answer (each an [`Answer`] → [`Decision`]),
//! and [`plan`] turns decisions into row changes. The README's "What zdel
//! does with each answer" table is the same table in words; a test holds
//! the two together.

use crate::store::{ClaimedBatch, ClaimedRow, RowChange, RowOutcome};
use crate::zoho::{BatchAnswer, CallCode, IdResult, ResultCode, ZohoError};

/// `retry.*` from the config.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl RetryPolicy {
    /// Full-jitter exponential backoff before attempt `attempt + 1`, given
    /// `attempt` attempts made: a uniformly random delay in
    /// `[0, min(max_delay_ms, base_delay_ms * 2^(attempt-1))]`. The jitter
    /// spreads the retries of a 503 storm instead of sending them in step.
    /// `unit` is a random number in [0, 1).
    pub fn backoff_ms(&self, attempt: u32, unit: f64) -> i64 {
        let exponent = attempt.saturating_sub(1).min(32);
        let cap = self
            .base_delay_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_delay_ms);
        (cap as f64 * unit.clamp(0.0, 1.0)) as i64
    }
}

/// What zdel does with a row, given what Zoho answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The record is gone.
    Succeed,
    /// Fail the row with Zoho's code (verbatim, even one zdel does not know).
    Fail,
    /// Try again after a backoff, spending an attempt; at `retry.max_attempts`
    /// the row fails with the last code. `maybe_done`: Zoho may have carried
    /// the call out, so a later "no such record" means this attempt deleted it.
    Retry { maybe_done: bool },
    /// Try again once the wait is over, spending no attempt: the call never ran.
    Wait,
    /// Put the row back unchanged and pause `scope` until an operator resumes it.
    Pause(PauseScope),
}

/// What a pause stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseScope {
    /// One operation of one module (the token lacks that operation's scope):
    /// the module's other operations go on.
    Operation,
    /// Every operation of one module (the token's user may not touch it).
    Module,
    /// All work of the org: the credentials themselves are refused.
    Credentials,
}

impl Decision {
    /// The decision in the README table's words.
    pub fn describe(&self) -> &'static str {
        match self {
            Decision::Succeed => "succeed",
            Decision::Fail => "fail with the code",
            Decision::Retry { maybe_done: false } => "retry, counting an attempt",
            Decision::Retry { maybe_done: true } => {
                "retry, counting an attempt; may have been deleted"
            }
            Decision::Wait => "wait, no attempt spent",
            Decision::Pause(PauseScope::Operation) => "pause the operation in this module",
            Decision::Pause(PauseScope::Module) => "pause the module",
            Decision::Pause(PauseScope::Credentials) => "pause all work (credentials)",
        }
    }
}

/// The decision for one ID's code. `earlier_unanswered`: an earlier attempt
/// of this row ended without an answer (it may have deleted the record).
pub fn for_id(code: &ResultCode, earlier_unanswered: bool) -> Decision {
    match code {
        ResultCode::Success => Decision::Succeed,
        // "No such record": gone — by that earlier attempt, if there was one.
        ResultCode::InvalidData if earlier_unanswered => Decision::Succeed,
        // A server fault reported for this ID: Zoho may have deleted it.
        ResultCode::InternalError => Decision::Retry { maybe_done: true },
        ResultCode::RecordLocked
        | ResultCode::LimitReached
        | ResultCode::CannotProcess
        // A restore whose parent is still in the bin: the parent's lane
        // restores it meanwhile, so asking again later brings the child back.
        | ResultCode::CannotRestoreWithoutParent => Decision::Retry { maybe_done: false },
        // A restore Zoho does later, with no job id: asked again later, an
        // `INVALID_DATA` (no longer in the bin) then means it came back.
        ResultCode::Scheduled => Decision::Retry { maybe_done: true },
        // Another mass action runs: nothing was done for this ID.
        ResultCode::AlreadyScheduled => Decision::Wait,
        // The token's user may not delete it: the same answer as a whole-call one.
        ResultCode::NoPermission => Decision::Pause(PauseScope::Module),
        ResultCode::InvalidData
        | ResultCode::CannotDelete
        | ResultCode::NotApproved
        | ResultCode::RecordInBlueprint
        | ResultCode::Other(_) => Decision::Fail,
    }
}

/// The decision for a whole-call answer (the call was not answered per ID).
pub fn for_call(error: &ZohoError) -> Decision {
    match error {
        ZohoError::Transient { ambiguous, .. } => Decision::Retry {
            maybe_done: *ambiguous,
        },
        ZohoError::Unavailable { .. }
        | ZohoError::RateLimited { .. }
        | ZohoError::Busy { .. }
        | ZohoError::NotSent { .. } => Decision::Wait,
        ZohoError::LanePaused { code, .. }
            if CallCode::parse(code) == CallCode::OauthScopeMismatch =>
        {
            Decision::Pause(PauseScope::Operation)
        }
        ZohoError::LanePaused { .. } => Decision::Pause(PauseScope::Module),
        ZohoError::CredentialsRejected { .. } => Decision::Pause(PauseScope::Credentials),
        ZohoError::Rejected { .. } => Decision::Fail,
    }
}

/// What an answer asks of the gates besides its rows: a per-ID permission
/// code pauses like a whole-call one, a per-ID `ALREADY_SCHEDULED` holds
/// mass deletes back like a whole-call one.
pub fn gate_effect(answer: &BatchAnswer) -> Option<ZohoError> {
    let with = |code: &ResultCode| answer.results.iter().find(|r| &r.code == code);
    if let Some(r) = with(&ResultCode::NoPermission) {
        return Some(ZohoError::LanePaused {
            code: r.code.to_string(),
            message: r.message.clone(),
            http_status: Some(answer.http_status),
        });
    }
    with(&ResultCode::AlreadyScheduled).map(|r| ZohoError::Busy {
        message: r.message.clone(),
        http_status: Some(answer.http_status),
    })
}

/// Our code for a row the answer did not mention.
pub const NOT_IN_ANSWER: &str = "NOT_IN_ANSWER";

/// The decision for an ID the answer did not mention (other IDs were
/// answered): Zoho may have deleted it, so it counts as maybe deleted.
pub const NOT_MENTIONED: Decision = Decision::Retry { maybe_done: true };

/// How long rows that [`Decision::Wait`] wait, when the answer names no time.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// After a 429 (the org's throttle back-off).
    pub rate_limited_ms: i64,
    /// After `ALREADY_SCHEDULED` (another mass action runs).
    pub busy_ms: i64,
}

/// What the recycle bin said of the IDs whose `INVALID_DATA` followed an
/// unanswered attempt (`verify.ambiguous`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Evidence {
    /// Not asked (the setting is off, or no such ID in the batch).
    #[default]
    NotAsked,
    /// The bin was read: the IDs it holds, with (deleted_time, deleted_by).
    Checked(std::collections::HashMap<String, (String, String)>),
    /// The bin could not be read (no scope, no answer): why.
    Unavailable(String),
}

/// Plan every claimed row's next state from the call's result.
/// `unit` gives random numbers in [0, 1) for the jitter.
pub fn plan(
    batch: &ClaimedBatch,
    result: &Result<BatchAnswer, ZohoError>,
    evidence: &Evidence,
    policy: &RetryPolicy,
    waits: Waits,
    now_ms: i64,
    mut unit: impl FnMut() -> f64,
) -> Vec<RowOutcome> {
    // One jitter draw per batch: rows retried together stay due together, so
    // they are claimed again as one full batch instead of scattering.
    let jitter = unit();
    let ctx = Context {
        policy,
        waits,
        now_ms,
        jitter,
        evidence,
        restore: batch.lane.operation == crate::store::Operation::Restore,
    };
    batch
        .rows
        .iter()
        .map(|row| RowOutcome {
            id: row.id,
            change: match result {
                Ok(answer) => per_id(row, answer, &ctx),
                Err(e) => whole_call(row, e, &ctx),
            },
        })
        .collect()
}

struct Context<'a> {
    policy: &'a RetryPolicy,
    waits: Waits,
    now_ms: i64,
    jitter: f64,
    evidence: &'a Evidence,
    /// The batch restores records (out of the recycle bin) instead of deleting them.
    restore: bool,
}

/// What a decision is about: its code, message and HTTP status.
struct About<'a> {
    code: &'a str,
    message: &'a str,
    http_status: Option<u16>,
}

fn per_id(row: &ClaimedRow, answer: &BatchAnswer, ctx: &Context) -> RowChange {
    let http_status = Some(answer.http_status);
    let Some(IdResult { code, message, .. }) =
        answer.results.iter().find(|r| r.id == row.answer_id())
    else {
        let about = About {
            code: NOT_IN_ANSWER,
            message: "Zoho's answer did not mention this ID",
            http_status,
        };
        return apply(row, NOT_MENTIONED, &about, None, ctx);
    };
    let mut decision = for_id(code, row.ambiguous_attempts > 0);
    let confirmed;
    let message = if ctx.restore && *code == ResultCode::InvalidData {
        confirmed = if decision == Decision::Succeed {
            match ctx.evidence {
                Evidence::Checked(live) if !live.contains_key(row.answer_id()) => {
                    decision = Decision::Fail;
                    format!(
                        "neither in the recycle bin nor live after an earlier attempt that was SCHEDULED or ended without an answer (Zoho said: {message})"
                    )
                }
                Evidence::Checked(_) => format!(
                    "restored: live again, no longer in the recycle bin after an earlier attempt that was SCHEDULED or ended without an answer (Zoho said: {message})"
                ),
                Evidence::Unavailable(why) => format!(
                    "restored: no longer in the recycle bin after an earlier attempt that was SCHEDULED or ended without an answer; whether it is live could not be checked ({why}) (Zoho said: {message})"
                ),
                Evidence::NotAsked => format!(
                    "restored: no longer in the recycle bin after an earlier attempt that ended without an answer or was SCHEDULED (Zoho said: {message})"
                ),
            }
        } else {
            format!(
                "not in the recycle bin: purged after 60 days, restored already, or never deleted (Zoho said: {message})"
            )
        };
        confirmed.as_str()
    } else if decision == Decision::Succeed && *code == ResultCode::InvalidData {
        let (settled, said) = settle(row.answer_id(), message, ctx.evidence);
        decision = settled;
        confirmed = said;
        confirmed.as_str()
    } else {
        message.as_str()
    };
    let about = About {
        code: code.as_str(),
        message,
        http_status,
    };
    let wait = (decision == Decision::Wait).then_some(ctx.waits.busy_ms);
    apply(row, decision, &about, wait, ctx)
}

/// An `INVALID_DATA` after an unanswered attempt: the recycle bin's
/// evidence decides, and the message says which evidence did.
fn settle(id: &str, zoho_said: &str, evidence: &Evidence) -> (Decision, String) {
    match evidence {
        Evidence::Checked(bin) => match bin.get(id) {
            Some((time, by)) => (
                Decision::Succeed,
                format!(
                    "confirmed by the recycle bin: deleted at {time} by {by}; an earlier attempt ended without an answer (Zoho said: {zoho_said})"
                ),
            ),
            None => (
                Decision::Fail,
                format!(
                    "not in the recycle bin either: the record did not exist when zdel first tried, although that attempt ended without an answer (Zoho said: {zoho_said})"
                ),
            ),
        },
        Evidence::Unavailable(why) => (
            Decision::Succeed,
            format!(
                "confirmed on retry: Zoho no longer has this record; an earlier attempt ended without an answer and most likely deleted it — the recycle bin could not be checked ({why}), so the old rule decided (Zoho said: {zoho_said})"
            ),
        ),
        Evidence::NotAsked => (
            Decision::Succeed,
            format!(
                "confirmed on retry: Zoho no longer has this record; an earlier attempt ended without an answer and most likely deleted it (Zoho said: {zoho_said})"
            ),
        ),
    }
}

/// The IDs whose answer would be settled by [`settle`]: an `INVALID_DATA`
/// for a row with an unanswered attempt before.
pub fn ambiguous_invalid_data<'a>(batch: &'a ClaimedBatch, answer: &BatchAnswer) -> Vec<&'a str> {
    batch
        .rows
        .iter()
        .filter(|row| row.ambiguous_attempts > 0)
        .filter(|row| {
            answer
                .results
                .iter()
                .any(|r| r.id == row.answer_id() && r.code == ResultCode::InvalidData)
        })
        .map(ClaimedRow::answer_id)
        .collect()
}

fn whole_call(row: &ClaimedRow, error: &ZohoError, ctx: &Context) -> RowChange {
    let message = error.to_string();
    let about = About {
        code: error.code(),
        message: &message,
        http_status: error.http_status(),
    };
    let wait = match error {
        ZohoError::Unavailable { retry_after, .. } => Some(retry_after.as_millis() as i64),
        ZohoError::RateLimited { retry_after, .. } => Some(
            retry_after
                .map(|d| d.as_millis() as i64)
                .unwrap_or(ctx.waits.rate_limited_ms),
        ),
        ZohoError::Busy { .. } => Some(ctx.waits.busy_ms),
        // Due again at once: whoever holds the rows now sends them.
        ZohoError::NotSent { .. } => Some(0),
        _ => None,
    };
    apply(row, for_call(error), &about, wait, ctx)
}

/// A row's change for `decision`. `wait_ms`: how long a `Wait` waits.
fn apply(
    row: &ClaimedRow,
    decision: Decision,
    about: &About,
    wait_ms: Option<i64>,
    ctx: &Context,
) -> RowChange {
    match decision {
        Decision::Succeed => RowChange::Succeeded {
            code: about.code.to_string(),
            message: about.message.to_string(),
            http_status: about.http_status,
        },
        Decision::Fail => RowChange::Failed {
            code: about.code.to_string(),
            message: about.message.to_string(),
            http_status: about.http_status,
            count_attempt: true,
            ambiguous: false,
        },
        Decision::Retry { maybe_done } => retry_or_fail(row, about, maybe_done, ctx),
        // The rows are not at fault: they wait, unchanged, for the gate to open.
        Decision::Wait | Decision::Pause(_) => RowChange::Retry {
            code: about.code.to_string(),
            message: about.message.to_string(),
            http_status: about.http_status,
            next_attempt_at: ctx.now_ms + wait_ms.unwrap_or(0).max(0),
            count_attempt: false,
            ambiguous: false,
        },
    }
}

fn retry_or_fail(row: &ClaimedRow, about: &About, ambiguous: bool, ctx: &Context) -> RowChange {
    let attempts = u32::try_from(row.attempts)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let About {
        code,
        message,
        http_status,
    } = *about;
    if attempts >= ctx.policy.max_attempts {
        let maybe = if ambiguous || row.ambiguous_attempts > 0 {
            " Some attempts ended without an answer: Zoho may have deleted it anyway."
        } else if code == crate::zoho::EMPTY_ANSWER {
            " Zoho answered every attempt with nothing: whether it deleted the record is unknown; check it in Zoho CRM."
        } else {
            ""
        };
        return RowChange::Failed {
            code: code.to_string(),
            message: format!("{message} (gave up after {attempts} attempts).{maybe}"),
            http_status,
            count_attempt: true,
            ambiguous,
        };
    }
    RowChange::Retry {
        code: code.to_string(),
        message: message.to_string(),
        http_status,
        next_attempt_at: ctx.now_ms + ctx.policy.backoff_ms(attempts, ctx.jitter),
        count_attempt: true,
        ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recycle_bin_settles_an_invalid_data_after_a_lost_answer() {
        let bin: std::collections::HashMap<String, (String, String)> = [(
            "1".to_string(),
            (
                "2026-12-01T10:00:00+00:00".to_string(),
                "Ann (9)".to_string(),
            ),
        )]
        .into_iter()
        .collect();
        let checked = Evidence::Checked(bin);
        let (d, m) = settle("1", "gone", &checked);
        assert_eq!(d, Decision::Succeed);
        assert!(m.starts_with(
            "confirmed by the recycle bin: deleted at 2026-12-01T10:00:00+00:00 by Ann (9)"
        ));
        assert_eq!(settle("2", "gone", &checked).0, Decision::Fail);
        let (d, m) = settle("2", "gone", &Evidence::Unavailable("no scope".into()));
        assert_eq!(d, Decision::Succeed);
        assert!(m.contains("could not be checked (no scope)"));
        assert_eq!(
            settle("2", "gone", &Evidence::NotAsked).0,
            Decision::Succeed
        );
    }
    use crate::store::{LaneKey, LeaseToken, Operation, Strategy};
    use std::time::Duration;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay_ms: 100,
        max_delay_ms: 1_000,
    };

    const WAITS: Waits = Waits {
        rate_limited_ms: 2_000,
        busy_ms: 5_000,
    };

    fn transient(code: &str, status: Option<u16>, ambiguous: bool) -> ZohoError {
        ZohoError::Transient {
            code: code.into(),
            message: "m".into(),
            http_status: status,
            ambiguous,
        }
    }

    fn rejected(code: &str, status: u16) -> ZohoError {
        ZohoError::Rejected {
            code: code.into(),
            message: "m".into(),
            http_status: Some(status),
        }
    }

    fn paused(code: &str, status: u16) -> ZohoError {
        ZohoError::LanePaused {
            code: code.into(),
            message: "m".into(),
            http_status: Some(status),
        }
    }

    /// Every answer zdel can meet, in the README table's words, with the
    /// decision the code makes for it.
    fn decision_table() -> Vec<(&'static str, Decision)> {
        let id = |code: &str| for_id(&ResultCode::parse(code), false);
        vec![
            ("per-ID `SUCCESS`", id("SUCCESS")),
            ("per-ID `INVALID_DATA`", id("INVALID_DATA")),
            (
                "per-ID `INVALID_DATA` after an attempt of that ID ended without an answer",
                for_id(&ResultCode::InvalidData, true),
            ),
            ("per-ID `RECORD_LOCKED`", id("RECORD_LOCKED")),
            ("per-ID `LIMIT_REACHED`", id("LIMIT_REACHED")),
            ("per-ID `CANNOT_PROCESS`", id("CANNOT_PROCESS")),
            ("per-ID `INTERNAL_ERROR`", id("INTERNAL_ERROR")),
            ("per-ID `ALREADY_SCHEDULED`", id("ALREADY_SCHEDULED")),
            ("per-ID `NO_PERMISSION`", id("NO_PERMISSION")),
            ("per-ID `CANNOT_DELETE`", id("CANNOT_DELETE")),
            ("per-ID `NOT_APPROVED`", id("NOT_APPROVED")),
            ("per-ID `RECORD_IN_BLUEPRINT`", id("RECORD_IN_BLUEPRINT")),
            ("per-ID `SCHEDULED` (a restore)", id("SCHEDULED")),
            (
                "per-ID `CANNOT_RESTORE_WITHOUT_PARENT` (a restore)",
                id("CANNOT_RESTORE_WITHOUT_PARENT"),
            ),
            ("per-ID code zdel does not know", id("SOMETHING_NEW")),
            ("an ID the answer does not mention", NOT_MENTIONED),
            (
                "HTTP 5xx, or `INTERNAL_ERROR` for the whole call",
                for_call(&transient("HTTP_503", Some(503), true)),
            ),
            (
                "timeout, or the connection dropped mid-answer",
                for_call(&transient("TIMEOUT", None, true)),
            ),
            (
                "connect failure (nothing reached Zoho)",
                for_call(&transient("CONNECT_FAILED", None, false)),
            ),
            (
                "2xx with no body (204) or no entries",
                for_call(&transient(crate::zoho::EMPTY_ANSWER, Some(204), false)),
            ),
            (
                "2xx with a body zdel cannot read",
                for_call(&transient("UNREADABLE_ANSWER", Some(200), true)),
            ),
            (
                "HTTP 429 `TOO_MANY_REQUESTS`",
                for_call(&ZohoError::RateLimited {
                    retry_after: None,
                    message: "m".into(),
                }),
            ),
            (
                "`ALREADY_SCHEDULED` for the whole call",
                for_call(&ZohoError::Busy {
                    message: "m".into(),
                    http_status: Some(400),
                }),
            ),
            (
                "token endpoint down, failing, or throttling (`Access Denied`)",
                for_call(&ZohoError::Unavailable {
                    code: "TOKEN_THROTTLED".into(),
                    message: "m".into(),
                    retry_after: std::time::Duration::from_secs(60),
                }),
            ),
            (
                "not sent: the batch's lease would run out before an answer (zdel was held up after claiming it)",
                for_call(&ZohoError::NotSent {
                    message: "m".into(),
                }),
            ),
            (
                "token endpoint `invalid_code` / `invalid_client`",
                for_call(&ZohoError::CredentialsRejected {
                    code: "invalid_code".into(),
                    message: "m".into(),
                }),
            ),
            (
                "401 `INVALID_TOKEN` again right after zdel's own refresh",
                for_call(&ZohoError::CredentialsRejected {
                    code: "INVALID_TOKEN".into(),
                    message: "m".into(),
                }),
            ),
            (
                "`OAUTH_SCOPE_MISMATCH`",
                for_call(&paused("OAUTH_SCOPE_MISMATCH", 401)),
            ),
            (
                "`NO_PERMISSION` / `AUTHORIZATION_FAILED` for the whole call",
                for_call(&paused("NO_PERMISSION", 403)),
            ),
            (
                "`INVALID_MODULE`, `INVALID_URL_PATTERN`, `REQUIRED_PARAM_MISSING`, a delink's invalid parent, any other 4xx",
                for_call(&rejected("INVALID_MODULE", 400)),
            ),
        ]
    }

    #[test]
    fn the_readme_decision_table_is_the_code_s() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("<!-- decisions:start -->")
            .expect("README has the decision table");
        let end = readme
            .find("<!-- decisions:end -->")
            .expect("the table ends");
        let rows: Vec<(String, String)> = readme[start..end]
            .lines()
            .filter(|l| {
                l.starts_with('|') && !l.starts_with("|---") && !l.contains("zdel's decision")
            })
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
                (cells[0].to_string(), cells[1].to_string())
            })
            .collect();
        let code: Vec<(String, String)> = decision_table()
            .into_iter()
            .map(|(answer, d)| (answer.to_string(), d.describe().to_string()))
            .collect();
        assert_eq!(
            rows, code,
            "README's decision table differs from the code's"
        );
    }

    fn batch(rows: &[(&str, i64, i64)]) -> ClaimedBatch {
        ClaimedBatch {
            lane: LaneKey {
                org: Default::default(),
                operation: Operation::Delete,
                module: "Leads".into(),
                wf_trigger: true,
                strategy: Strategy::Auto,
            },
            lease: LeaseToken(7),
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, (id, attempts, ambiguous))| ClaimedRow {
                    id: i as i64 + 1,
                    record_id: id.to_string(),
                    related_list: None,
                    related_id: None,
                    attempts: *attempts,
                    ambiguous_attempts: *ambiguous,
                })
                .collect(),
        }
    }

    fn answer(entries: &[(&str, ResultCode)]) -> Result<BatchAnswer, ZohoError> {
        Ok(BatchAnswer {
            http_status: 200,
            results: entries
                .iter()
                .map(|(id, code)| IdResult {
                    id: id.to_string(),
                    code: code.clone(),
                    message: "m".into(),
                })
                .collect(),
        })
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        assert_eq!(POLICY.backoff_ms(1, 0.999_999), 99);
        assert_eq!(POLICY.backoff_ms(3, 0.5), 200);
        assert_eq!(POLICY.backoff_ms(30, 1.0), 1_000);
        assert_eq!(POLICY.backoff_ms(2, 0.0), 0);
    }

    #[test]
    fn per_id_codes_map_to_states() {
        let b = batch(&[
            ("1", 0, 0),
            ("2", 0, 0),
            ("3", 1, 1),
            ("4", 0, 0),
            ("5", 0, 0),
            ("6", 0, 0),
        ]);
        let r = answer(&[
            ("1", ResultCode::Success),
            ("2", ResultCode::InvalidData),
            ("3", ResultCode::InvalidData),
            ("4", ResultCode::RecordLocked),
            ("5", ResultCode::CannotDelete),
        ]);
        let plan = plan(&b, &r, &Evidence::NotAsked, &POLICY, WAITS, 1_000, || 0.5);
        assert!(
            matches!(&plan[0].change, RowChange::Succeeded { code, .. } if code == ResultCode::Success.as_str())
        );
        assert!(
            matches!(&plan[1].change, RowChange::Failed { code, .. } if code == ResultCode::InvalidData.as_str())
        );
        assert!(
            matches!(&plan[2].change, RowChange::Succeeded { code, message, .. } if code == ResultCode::InvalidData.as_str() && message.contains("confirmed on retry"))
        );
        assert!(
            matches!(&plan[3].change, RowChange::Retry { code, next_attempt_at: 1_050, count_attempt: true, .. } if code == ResultCode::RecordLocked.as_str())
        );
        assert!(
            matches!(&plan[4].change, RowChange::Failed { code, .. } if code == ResultCode::CannotDelete.as_str())
        );
        assert!(
            matches!(&plan[5].change, RowChange::Retry { code, ambiguous: true, .. } if code == "NOT_IN_ANSWER")
        );
    }

    #[test]
    fn transient_errors_retry_then_fail_at_max_attempts() {
        let b = batch(&[("1", 0, 0), ("2", 2, 1)]);
        let e = Err(ZohoError::Transient {
            code: "HTTP_503".into(),
            message: "down".into(),
            http_status: Some(503),
            ambiguous: true,
        });
        let plan = plan(&b, &e, &Evidence::NotAsked, &POLICY, WAITS, 0, || 0.5);
        assert!(
            matches!(&plan[0].change, RowChange::Retry { code, ambiguous: true, count_attempt: true, .. } if code == "HTTP_503")
        );
        assert!(
            matches!(&plan[1].change, RowChange::Failed { code, message, .. } if code == "HTTP_503" && message.contains("gave up after 3 attempts"))
        );
    }

    #[test]
    fn rate_limit_and_pauses_cost_no_attempt() {
        let b = batch(&[("1", 0, 0)]);
        let limited = Err(ZohoError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            message: "slow".into(),
        });
        let plan_429 = plan(
            &b,
            &limited,
            &Evidence::NotAsked,
            &POLICY,
            WAITS,
            1_000,
            || 0.5,
        );
        assert!(matches!(
            plan_429[0].change,
            RowChange::Retry {
                next_attempt_at: 8_000,
                count_attempt: false,
                ..
            }
        ));
        let paused = Err(ZohoError::LanePaused {
            code: "NO_PERMISSION".into(),
            message: "no".into(),
            http_status: Some(403),
        });
        let plan_paused = plan(
            &b,
            &paused,
            &Evidence::NotAsked,
            &POLICY,
            WAITS,
            1_000,
            || 0.5,
        );
        assert!(
            matches!(&plan_paused[0].change, RowChange::Retry { code, count_attempt: false, .. } if code == "NO_PERMISSION")
        );
        let unavailable = Err(ZohoError::Unavailable {
            code: "HTTP_503".into(),
            message: "token endpoint down".into(),
            retry_after: Duration::from_secs(15),
        });
        let plan_unavailable = plan(
            &b,
            &unavailable,
            &Evidence::NotAsked,
            &POLICY,
            WAITS,
            1_000,
            || 0.5,
        );
        assert!(matches!(
            plan_unavailable[0].change,
            RowChange::Retry {
                next_attempt_at: 16_000,
                count_attempt: false,
                ambiguous: false,
                ..
            }
        ));
        let rejected = Err(ZohoError::Rejected {
            code: "INVALID_MODULE".into(),
            message: "bad".into(),
            http_status: Some(400),
        });
        let plan_rejected = plan(
            &b,
            &rejected,
            &Evidence::NotAsked,
            &POLICY,
            WAITS,
            1_000,
            || 0.5,
        );
        assert!(
            matches!(&plan_rejected[0].change, RowChange::Failed { code, .. } if code == "INVALID_MODULE")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_row_is_due_after_its_backoff_on_the_worker_clock() {
        let clock = crate::clock::Clock::tokio_only();
        // One attempt made: the next waits up to base * 2 = 200 ms; the
        // jitter draw 0.5 makes it 100 ms.
        let b = batch(&[("1", 1, 0)]);
        let e = Err(ZohoError::Transient {
            code: "HTTP_503".into(),
            message: "down".into(),
            http_status: Some(503),
            ambiguous: false,
        });
        let planned = plan(
            &b,
            &e,
            &Evidence::NotAsked,
            &POLICY,
            WAITS,
            clock.now_ms(),
            || 0.5,
        );
        let RowChange::Retry {
            next_attempt_at, ..
        } = planned[0].change
        else {
            panic!("expected a retry, got {:?}", planned[0].change);
        };
        assert_eq!(next_attempt_at - clock.now_ms(), 100);
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(
            clock.now_ms() < next_attempt_at,
            "not due before its backoff"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            clock.now_ms() >= next_attempt_at,
            "due once its backoff is over"
        );
    }
}
