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

/// The per-ID entries of an answer: `data`, `contact_roles` for the
/// contact-role endpoints, or `recycle_bin` for a restore.
fn entries(value: &Value) -> Option<&Vec<Value>> {
    value
        .get("data")
        .or_else(|| value.get("contact_roles"))
        .or_else(|| value.get("recycle_bin"))
        .and_then(Value::as_array)
}

/// The record ID an entry names in `details.id`, if any.
fn entry_id(entry: &Value) -> Option<String> {
    match entry.pointer("/details/id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The index an entry names in `details.json_path` (`$.ids[3]`, `$[3]`),
/// the form JSON-body APIs use to point at the item they answer for.
fn entry_path_index(entry: &Value) -> Option<usize> {
    let path = entry.pointer("/details/json_path")?.as_str()?;
    let open = path.rfind('[')?;
    let close = open + path[open..].find(']')?;
    path[open + 1..close].trim().parse().ok()
}

/// An entry about the call's path (a delink's parent record), not an ID.
fn is_about_the_path(entry: &Value) -> bool {
    entry.pointer("/details/resource_path_index").is_some()
}

/// The code of a whole-call answer: top level, or the only entry of
/// `data` / `contact_roles` when that entry names no record.
pub(super) fn whole_call_code(value: &Value) -> (Option<CallCode>, Option<String>) {
    if let Some(code) = text(value, "code") {
        return (Some(CallCode::parse(&code)), text(value, "message"));
    }
    if let Some([only]) = entries(value).map(Vec::as_slice)
        && entry_id(only).is_none()
    {
        return (
            text(only, "code").map(|c| CallCode::parse(&c)),
            text(only, "message"),
        );
    }
    (None, None)
}

/// A batch answer for the call that sent `ids`: one entry per ID in `data`
/// (or `contact_roles`), whatever the HTTP status; otherwise a whole-call
/// error.
///
/// An entry is matched to an ID by its `details.id`; else by the index in
/// its `details.json_path`; else by its position, when the answer has as
/// many entries as the call had IDs. An entry that matches no ID sent is
/// dropped (the rows it might be about are retried as not in the answer),
/// so it never fails a row. An entry about the path (`resource_path_index`,
/// a delink's invalid parent) is a whole-call answer. A 2xx with no body or
/// no entries is no evidence of anything: [`ZohoError::Transient`] with
/// code `EMPTY_ANSWER`, not ambiguous.
pub(super) fn batch_answer(
    status: u16,
    value: &Value,
    ids: &[&str],
) -> Result<BatchAnswer, ZohoError> {
    let success = (200..300).contains(&status);
    let Some(list) = entries(value) else {
        if success && value.is_null() {
            return Err(empty_answer(status));
        }
        return Err(whole_call_error(status, value));
    };
    if list.is_empty() && success {
        return Err(empty_answer(status));
    }
    if list.iter().any(is_about_the_path) {
        return Err(whole_call_error(status, value));
    }
    let by_position = list.len() == ids.len();
    let results: Vec<IdResult> = list
        .iter()
        .enumerate()
        .filter_map(|(position, entry)| {
            let id = match entry_id(entry) {
                Some(id) => id,
                None => {
                    let index =
                        entry_path_index(entry).or_else(|| by_position.then_some(position))?;
                    ids.get(index)?.to_string()
                }
            };
            ids.contains(&id.as_str()).then(|| IdResult {
                id,
                code: ResultCode::parse(
                    entry
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("UNKNOWN"),
                ),
                message: text(entry, "message").unwrap_or_default(),
            })
        })
        .collect();
    if !results.is_empty() || success {
        return Ok(BatchAnswer {
            http_status: status,
            results,
        });
    }
    Err(whole_call_error(status, value))
}

/// A 2xx without a body (204 No Content) or without entries.
fn empty_answer(status: u16) -> ZohoError {
    ZohoError::Transient {
        code: EMPTY_ANSWER.into(),
        message: format!(
            "Zoho answered HTTP {status} with no per-ID results: no evidence that anything was deleted"
        ),
        http_status: Some(status),
        ambiguous: false,
    }
}

/// Our code for a 2xx answer that carried nothing (see [`batch_answer`]).
pub const EMPTY_ANSWER: &str = "EMPTY_ANSWER";

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
    if value.is_null() && (200..300).contains(&status) {
        // 204 No Content: the job is unknown to Zoho, or its status is not ready.
        return Err(empty_answer(status));
    }
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
    match &code {
        // Another mass action runs: nothing was done, try again later.
        Some(CallCode::AlreadyScheduled) => {
            return ZohoError::Busy {
                message: message.unwrap_or_else(|| "another mass action is running".into()),
                http_status: Some(status),
            };
        }
        // A server fault reported in a 4xx body: as ambiguous as a 5xx.
        Some(CallCode::InternalError) => {
            return ZohoError::Transient {
                code: CallCode::InternalError.to_string(),
                message: message.unwrap_or_else(|| {
                    "Zoho reported an internal error; the call may or may not have been carried out".into()
                }),
                http_status: Some(status),
                ambiguous: true,
            };
        }
        _ => {}
    }
    ZohoError::Rejected {
        code: code.map_or_else(|| format!("HTTP_{status}"), |c| c.as_str().to_string()),
        message: message
            .unwrap_or_else(|| format!("Zoho answered HTTP {status} without per-ID results")),
        http_status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(answer: &BatchAnswer) -> Vec<(&str, &str)> {
        answer
            .results
            .iter()
            .map(|r| (r.id.as_str(), r.code.as_str()))
            .collect()
    }

    #[test]
    fn entries_without_an_id_are_matched_by_json_path_then_by_position() {
        let ids = ["11", "22", "33"];
        // json_path names the index; the order of the entries does not matter.
        let by_path = json!({"data": [
            {"code": "CANNOT_DELETE", "details": {"json_path": "$.ids[2]"}, "message": "m", "status": "error"},
            {"code": "SUCCESS", "details": {"id": "11"}, "message": "m", "status": "success"},
        ]});
        let answer = batch_answer(207, &by_path, &ids).unwrap();
        assert_eq!(codes(&answer), [("33", "CANNOT_DELETE"), ("11", "SUCCESS")]);
        // As many entries as IDs, none naming one: by position.
        let by_position = json!({"data": [
            {"code": "SUCCESS", "details": {}, "message": "m"},
            {"code": "RECORD_LOCKED", "details": {}, "message": "m"},
            {"code": "SUCCESS", "details": {}, "message": "m"},
        ]});
        let answer = batch_answer(207, &by_position, &ids).unwrap();
        assert_eq!(
            codes(&answer),
            [
                ("11", "SUCCESS"),
                ("22", "RECORD_LOCKED"),
                ("33", "SUCCESS")
            ]
        );
        // Fewer entries than IDs and no id: nothing can be matched, nothing fails.
        let unmatched = json!({"data": [{"code": "CANNOT_DELETE", "details": {}, "message": "m"}, {"code": "CANNOT_DELETE", "details": {}, "message": "m"}]});
        let answer = batch_answer(200, &unmatched, &ids).unwrap();
        assert!(answer.results.is_empty());
        // An entry naming an ID that was not sent, or an index out of range, is dropped.
        let stranger = json!({"data": [
            {"code": "CANNOT_DELETE", "details": {"id": "99"}, "message": "m"},
            {"code": "CANNOT_DELETE", "details": {"json_path": "$.ids[7]"}, "message": "m"},
            {"code": "SUCCESS", "details": {"id": 22}, "message": "m"},
        ]});
        let answer = batch_answer(207, &stranger, &ids).unwrap();
        assert_eq!(codes(&answer), [("22", "SUCCESS")]);
    }

    #[test]
    fn a_one_id_batch_s_id_less_entry_is_that_id_s_answer() {
        let answer = batch_answer(
            400,
            &json!({"data": [{"code": "CANNOT_DELETE", "details": {}, "message": "m", "status": "error"}]}),
            &["5"],
        )
        .unwrap();
        assert_eq!(codes(&answer), [("5", "CANNOT_DELETE")]);
    }

    #[test]
    fn whole_call_codes_are_found_in_both_envelopes_and_the_path() {
        let roles = json!({"contact_roles": [{"code": "REQUIRED_PARAM_MISSING", "details": {}, "message": "ids missing", "status": "error"}]});
        assert_eq!(
            whole_call_code(&roles).0,
            Some(CallCode::parse("REQUIRED_PARAM_MISSING"))
        );
        let token =
            json!({"contact_roles": [{"code": "INVALID_TOKEN", "details": {}, "message": "m"}]});
        assert!(whole_call_code(&token).0.unwrap().is_token_rejected());
        // A delink whose parent is invalid: about the path, not an ID.
        let parent = json!({"data": [{"code": "INVALID_DATA", "details": {"resource_path_index": 1}, "message": "the related id given seems to be invalid", "status": "error"}]});
        match batch_answer(400, &parent, &["7"]) {
            Err(ZohoError::Rejected { code, .. }) => assert_eq!(code, "INVALID_DATA"),
            other => panic!("expected a whole-call rejection, got {other:?}"),
        }
        // ALREADY_SCHEDULED for the whole call: busy, not a failure.
        let busy = json!({"data": [{"code": "ALREADY_SCHEDULED", "details": {}, "message": "m"}]});
        assert!(matches!(
            batch_answer(400, &busy, &["1", "2"]),
            Err(ZohoError::Busy { .. })
        ));
    }

    #[test]
    fn an_empty_2xx_is_no_evidence_and_not_ambiguous() {
        for body in [Value::Null, json!({"data": []})] {
            match batch_answer(204, &body, &["1"]) {
                Err(ZohoError::Transient {
                    code, ambiguous, ..
                }) => {
                    assert_eq!(code, EMPTY_ANSWER);
                    assert!(!ambiguous);
                }
                other => panic!("expected EMPTY_ANSWER, got {other:?}"),
            }
        }
        assert!(matches!(
            job_status(204, &Value::Null),
            Err(ZohoError::Transient { ref code, .. }) if code == EMPTY_ANSWER
        ));
        assert!(matches!(
            job_status(404, &json!({"code": "NOT_FOUND", "details": {}, "message": "Empty response", "status": "error"})),
            Err(ZohoError::Rejected { ref code, .. }) if code == "NOT_FOUND"
        ));
    }
}
