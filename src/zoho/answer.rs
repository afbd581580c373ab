//! Reading Zoho's answers: per-ID results, a whole-call code, the answer to
//! scheduling a job, a job's status. Shapes zdel cannot read become a
//! classified [`ZohoError`], never a guess about an ID.

use serde_json::Value;

use super::ZohoError;
use super::vocab::{CallCode, JobPhase, JobStatus, ResultCode, ScheduleAnswer};

/// One ID's result from a batch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdResult {
    pub id: String,
    pub code: ResultCode,
    pub message: String,
}

/// A batch answer that listed per-ID results (whatever its HTTP status).
#[derive(Debug, Clone)]
pub struct BatchAnswer {
    pub http_status: u16,
    pub results: Vec<IdResult>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The code of a whole-call answer: top level, or the only entry of `data`
/// when that entry names no record.
pub(super) fn whole_call_code(value: &Value) -> (Option<CallCode>, Option<String>) {
    if let Some(code) = text(value, "code") {
        return (Some(CallCode::parse(&code)), text(value, "message"));
    }
    if let Some([only]) = value
        .get("data")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        && only.pointer("/details/id").is_none()
    {
        return (
            text(only, "code").map(|c| CallCode::parse(&c)),
            text(only, "message"),
        );
    }
    (None, None)
}

/// A batch answer: one entry per ID in `data` (or `contact_roles`), whatever
/// the HTTP status; otherwise a whole-call error.
pub(super) fn batch_answer(status: u16, value: &Value) -> Result<BatchAnswer, ZohoError> {
    let entries = value
        .get("data")
        .or_else(|| value.get("contact_roles"))
        .and_then(Value::as_array);
    if let Some(entries) = entries {
        let results: Vec<IdResult> = entries
            .iter()
            .filter_map(|e| {
                let id = match e.pointer("/details/id")? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(IdResult {
                    id,
                    code: ResultCode::parse(
                        e.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN"),
                    ),
                    message: text(e, "message").unwrap_or_default(),
                })
            })
            .collect();
        if !results.is_empty() || (200..300).contains(&status) {
            return Ok(BatchAnswer {
                http_status: status,
                results,
            });
        }
    }
    Err(whole_call_error(status, value))
}

/// A bare answer about one record (`DELETE …/photo`): its code is that record's result.
pub(super) fn bare_answer(status: u16, value: &Value, id: &str) -> Result<BatchAnswer, ZohoError> {
    match whole_call_code(value) {
        (Some(code), message) if !code.is_bad_target() => Ok(BatchAnswer {
            http_status: status,
            results: vec![IdResult {
                id: id.to_string(),
                code: ResultCode::parse(code.as_str()),
                message: message.unwrap_or_default(),
            }],
        }),
        _ => Err(whole_call_error(status, value)),
    }
}

pub(super) fn schedule_answer(status: u16, value: &Value) -> Result<ScheduleAnswer, ZohoError> {
    let first = value.get("data").and_then(|d| d.get(0));
    if let Some(job_id) = first.and_then(|e| e.pointer("/details/job_id")) {
        let job_id = match job_id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Ok(ScheduleAnswer::Scheduled { job_id });
    }
    let source = first.unwrap_or(value);
    let message = text(source, "message").unwrap_or_default();
    match text(source, "code").map(|c| CallCode::parse(&c)) {
        Some(CallCode::Success) | None if (200..300).contains(&status) => {
            Err(ZohoError::Transient {
                code: "UNREADABLE_ANSWER".into(),
                message: format!("Zoho answered HTTP {status} to the mass delete without a job_id"),
                http_status: Some(status),
                ambiguous: true,
            })
        }
        Some(CallCode::Success) | None => Err(whole_call_error(status, value)),
        Some(CallCode::AlreadyScheduled) => Ok(ScheduleAnswer::AlreadyScheduled { message }),
        Some(CallCode::NoRecordsFound) => Ok(ScheduleAnswer::NoRecords { message }),
        Some(code) => Ok(ScheduleAnswer::Refused { code, message }),
    }
}

pub(super) fn job_status(status: u16, value: &Value) -> Result<JobStatus, ZohoError> {
    match value.get("data").and_then(|d| d.get(0)) {
        Some(entry) if entry.get("Status").is_some() => {
            let count = |k: &str| entry.get(k).and_then(Value::as_i64);
            Ok(JobStatus {
                phase: JobPhase::parse(
                    entry
                        .get("Status")
                        .and_then(Value::as_str)
                        .unwrap_or("UNKNOWN"),
                ),
                total: count("Total_Count"),
                deleted: count("Deleted_Count"),
                failed: count("Failed_Count"),
            })
        }
        _ => Err(whole_call_error(status, value)),
    }
}

/// A whole-call answer with no per-ID results.
pub(super) fn whole_call_error(status: u16, value: &Value) -> ZohoError {
    let (code, message) = whole_call_code(value);
    if (200..300).contains(&status) {
        // A success status without readable results: we cannot tell what happened.
        return ZohoError::Transient {
            code: "UNREADABLE_ANSWER".into(),
            message: format!("Zoho answered HTTP {status} with a body zdel cannot read"),
            http_status: Some(status),
            ambiguous: true,
        };
    }
    ZohoError::Rejected {
        code: code.map_or_else(|| format!("HTTP_{status}"), |c| c.as_str().to_string()),
        message: message
            .unwrap_or_else(|| format!("Zoho answered HTTP {status} without per-ID results")),
        http_status: Some(status),
    }
}
