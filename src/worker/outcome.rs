//! From a call's result to each row's next state. Pure: no I/O, no clock.
//!
//! Per-ID codes (the answer listed the ID):
//! * `SUCCESS` → succeeded.
//! * `INVALID_DATA` → failed (never existed or already gone) — unless an
//!   earlier attempt of that row ended without an answer: that attempt
//!   probably deleted it, so → succeeded, saying it was confirmed on retry.
//! * `RECORD_LOCKED` → pending again after a backoff (counts an attempt).
//! * anything else → failed with Zoho's code.
//! * not mentioned → pending again after a backoff (counts an attempt,
//!   and is ambiguous: we cannot tell what Zoho did with it).
//!
//! Whole-call errors: see [`ZohoError`]; transient ones retry the batch with
//! backoff until `retry.max_attempts`, then fail the rows with the last error.

use crate::store::{ClaimedBatch, ClaimedRow, RowChange, RowOutcome};
use crate::zoho::{BatchAnswer, IdResult, ResultCode, ZohoError};

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

/// Delay for a lane after a 429 that named no `Retry-After`.
pub const DEFAULT_RATE_LIMIT_COOLDOWN_MS: i64 = 2_000;

/// Plan every claimed row's next state from the call's result.
/// `unit` gives random numbers in [0, 1) for the jitter.
pub fn plan(
    batch: &ClaimedBatch,
    result: &Result<BatchAnswer, ZohoError>,
    policy: &RetryPolicy,
    now_ms: i64,
    mut unit: impl FnMut() -> f64,
) -> Vec<RowOutcome> {
    // One jitter draw per batch: rows retried together stay due together, so
    // they are claimed again as one full batch instead of scattering.
    let jitter = unit();
    batch
        .rows
        .iter()
        .map(|row| RowOutcome {
            id: row.id,
            change: match result {
                Ok(answer) => per_id(row, answer, policy, now_ms, jitter),
                Err(e) => whole_call(row, e, policy, now_ms, jitter),
            },
        })
        .collect()
}

fn per_id(
    row: &ClaimedRow,
    answer: &BatchAnswer,
    policy: &RetryPolicy,
    now_ms: i64,
    unit: f64,
) -> RowChange {
    let http_status = Some(answer.http_status);
    let Some(IdResult { code, message, .. }) =
        answer.results.iter().find(|r| r.id == row.answer_id())
    else {
        return retry_or_fail(
            row,
            "NOT_IN_ANSWER",
            "Zoho's answer did not mention this ID",
            http_status,
            true,
            policy,
            now_ms,
            unit,
        );
    };
    match code {
        ResultCode::Success => RowChange::Succeeded {
            code: code.to_string(),
            message: message.clone(),
            http_status,
        },
        ResultCode::InvalidData if row.ambiguous_attempts > 0 => RowChange::Succeeded {
            code: code.to_string(),
            message: format!(
                "confirmed on retry: an earlier attempt ended without an answer and Zoho no longer has this record, so that attempt deleted it (Zoho said: {message})"
            ),
            http_status,
        },
        ResultCode::RecordLocked => retry_or_fail(
            row,
            code.as_str(),
            message,
            http_status,
            false,
            policy,
            now_ms,
            unit,
        ),
        _ => RowChange::Failed {
            code: code.to_string(),
            message: message.clone(),
            http_status,
            count_attempt: true,
            ambiguous: false,
        },
    }
}

fn whole_call(
    row: &ClaimedRow,
    error: &ZohoError,
    policy: &RetryPolicy,
    now_ms: i64,
    unit: f64,
) -> RowChange {
    let code = error.code().to_string();
    let message = error.to_string();
    let http_status = error.http_status();
    match error {
        ZohoError::Transient { ambiguous, .. } => retry_or_fail(
            row,
            &code,
            &message,
            http_status,
            *ambiguous,
            policy,
            now_ms,
            unit,
        ),
        ZohoError::Unavailable { retry_after, .. } => RowChange::Retry {
            code,
            message,
            http_status,
            next_attempt_at: now_ms + retry_after.as_millis() as i64,
            count_attempt: false,
            ambiguous: false,
        },
        ZohoError::RateLimited { retry_after, .. } => RowChange::Retry {
            code,
            message,
            http_status,
            next_attempt_at: now_ms
                + retry_after
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN_MS),
            count_attempt: false,
            ambiguous: false,
        },
        // The rows are not at fault: they wait, unchanged, for the lane to resume.
        ZohoError::LanePaused { .. } | ZohoError::CredentialsRejected { .. } => RowChange::Retry {
            code,
            message,
            http_status,
            next_attempt_at: now_ms,
            count_attempt: false,
            ambiguous: false,
        },
        ZohoError::Rejected { .. } => RowChange::Failed {
            code,
            message,
            http_status,
            count_attempt: true,
            ambiguous: false,
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn retry_or_fail(
    row: &ClaimedRow,
    code: &str,
    message: &str,
    http_status: Option<u16>,
    ambiguous: bool,
    policy: &RetryPolicy,
    now_ms: i64,
    unit: f64,
) -> RowChange {
    let attempts = u32::try_from(row.attempts)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    if attempts >= policy.max_attempts {
        let maybe = if ambiguous || row.ambiguous_attempts > 0 {
            " Some attempts ended without an answer: Zoho may have deleted it anyway."
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
        next_attempt_at: now_ms + policy.backoff_ms(attempts, unit),
        count_attempt: true,
        ambiguous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LaneKey, LeaseToken, Operation, Strategy};
    use std::time::Duration;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay_ms: 100,
        max_delay_ms: 1_000,
    };

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
        let plan = plan(&b, &r, &POLICY, 1_000, || 0.5);
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
        let plan = plan(&b, &e, &POLICY, 0, || 0.5);
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
        let plan_429 = plan(&b, &limited, &POLICY, 1_000, || 0.5);
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
        let plan_paused = plan(&b, &paused, &POLICY, 1_000, || 0.5);
        assert!(
            matches!(&plan_paused[0].change, RowChange::Retry { code, count_attempt: false, .. } if code == "NO_PERMISSION")
        );
        let unavailable = Err(ZohoError::Unavailable {
            code: "HTTP_503".into(),
            message: "token endpoint down".into(),
            retry_after: Duration::from_secs(15),
        });
        let plan_unavailable = plan(&b, &unavailable, &POLICY, 1_000, || 0.5);
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
        let plan_rejected = plan(&b, &rejected, &POLICY, 1_000, || 0.5);
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
        let planned = plan(&b, &e, &POLICY, clock.now_ms(), || 0.5);
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
