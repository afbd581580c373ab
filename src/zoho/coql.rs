//! COQL (`POST /coql`): selecting records by criteria, for `zdel select`.
//!
//! A query's answer is a page of rows (`data`, each with the selected
//! fields, `id` always) and `info.more_records`; 204 when nothing matches.
//! A query Zoho refuses (`SYNTAX_ERROR`, `INVALID_QUERY`,
//! `LIMIT_EXCEEDED`, `INVALID_MODULE`) comes back as
//! [`ZohoError::Rejected`] with Zoho's details (clause, line, column, near,
//! the column name) in its message. Credits: 1 for LIMIT ≤ 200, 2 for
//! ≤ 1,000, 3 for ≤ 2,000 (Zoho's table); the client counts them.

use serde_json::Value;

use super::{CallSlot, ZohoClient, ZohoError, answer};

/// The most rows one COQL call returns.
pub const COQL_PAGE: u32 = 2_000;

/// One page of a COQL query.
#[derive(Debug, Clone, Default)]
pub struct CoqlPage {
    /// The record IDs, in the answer's order.
    pub ids: Vec<String>,
    /// Each row as Zoho sent it (the selected fields).
    pub rows: Vec<serde_json::Map<String, Value>>,
    /// Zoho says more rows match past this page.
    pub more_records: bool,
}

/// Credits Zoho charges for a COQL call with this LIMIT.
pub fn coql_credits(limit: u32) -> u64 {
    match limit {
        0..=200 => 1,
        201..=1_000 => 2,
        _ => 3,
    }
}

impl ZohoClient {
    /// Run one COQL query (`select_query`), whose LIMIT is `limit` (for
    /// the credits it costs). Through the same rate limiter, token handling
    /// and credit count as every call.
    pub async fn coql(
        &self,
        _slot: &CallSlot,
        select_query: &str,
        limit: u32,
    ) -> Result<CoqlPage, ZohoError> {
        let body = serde_json::json!({ "select_query": select_query });
        let (status, answer) = self
            .call("coql", |base| {
                self.http
                    .post(super::call::with_segments(base, &["coql"]))
                    .json(&body)
            })
            .await?;
        // The call itself was counted as one credit.
        let extra = coql_credits(limit).saturating_sub(1);
        if extra > 0 && status < 400 {
            self.credits
                .spent
                .fetch_add(extra, std::sync::atomic::Ordering::Relaxed);
        }
        coql_page(status, &answer)
    }
}

/// Read a COQL answer.
fn coql_page(status: u16, answer: &Value) -> Result<CoqlPage, ZohoError> {
    if status == 204 {
        return Ok(CoqlPage::default());
    }
    if status != 200 {
        return Err(refused(status, answer));
    }
    let Some(data) = answer.get("data").and_then(Value::as_array) else {
        return Err(answer::whole_call_error(status, answer));
    };
    let mut page = CoqlPage {
        more_records: answer
            .pointer("/info/more_records")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..CoqlPage::default()
    };
    for row in data {
        let Some(row) = row.as_object() else {
            return Err(unreadable(status));
        };
        // Zoho sends IDs as strings; a number would lose digits past 2^53.
        let id = match row.get("id") {
            Some(Value::String(id)) if is_id(id) => id.clone(),
            _ => return Err(unreadable(status)),
        };
        page.ids.push(id);
        page.rows.push(row.clone());
    }
    Ok(page)
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit())
}

fn unreadable(status: u16) -> ZohoError {
    ZohoError::Transient {
        code: "UNREADABLE_ANSWER".into(),
        message: format!(
            "Zoho answered a COQL query with HTTP {status} and rows zdel cannot read (a row without a string id)"
        ),
        http_status: Some(status),
        ambiguous: false,
    }
}

/// A refused query, with Zoho's details in the message (`near 'form' (line
/// 1, column 11)`, `clause: where`, `column: Lead_Stat`).
fn refused(status: u16, answer: &Value) -> ZohoError {
    let code = answer
        .get("code")
        .and_then(Value::as_str)
        .map(str::to_string);
    let Some(code) = code else {
        return answer::whole_call_error(status, answer);
    };
    if !matches!(
        code.as_str(),
        "SYNTAX_ERROR" | "INVALID_QUERY" | "LIMIT_EXCEEDED" | "INVALID_MODULE"
    ) {
        return answer::whole_call_error(status, answer);
    }
    let message = answer
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the query was refused")
        .to_string();
    let mut details = Vec::new();
    if let Some(d) = answer.get("details").and_then(Value::as_object) {
        for key in [
            "near",
            "clause",
            "line",
            "column",
            "column_name",
            "value",
            "limit",
        ] {
            if let Some(v) = d.get(key) {
                let v = match v {
                    Value::String(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                details.push(format!("{key} {v}"));
            }
        }
    }
    let message = if details.is_empty() {
        message
    } else {
        format!("{message} ({})", details.join(", "))
    };
    ZohoError::Rejected {
        code,
        message,
        http_status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_errors_and_credits() {
        let page = coql_page(
            200,
            &json!({"data": [{"id": "3652397000000000001", "Email": "a@b.c"}], "info": {"count": 1, "more_records": true}}),
        )
        .unwrap();
        assert_eq!(page.ids, ["3652397000000000001"]);
        assert!(page.more_records);
        assert_eq!(page.rows[0]["Email"], "a@b.c");
        assert!(coql_page(204, &Value::Null).unwrap().ids.is_empty());
        // A numeric id would have lost digits: unreadable, not guessed.
        assert_eq!(
            coql_page(200, &json!({"data": [{"id": 3652397000000000001u64}]}))
                .unwrap_err()
                .code(),
            "UNREADABLE_ANSWER"
        );
        let e = coql_page(
            400,
            &json!({"code": "SYNTAX_ERROR", "details": {"near": "form", "line": 1, "column": 11}, "message": "error occured while parsing the query", "status": "error"}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "SYNTAX_ERROR: error occured while parsing the query (near \"form\", line 1, column 11)"
        );
        let e = coql_page(
            400,
            &json!({"code": "INVALID_QUERY", "details": {"column_name": "Lead_Stat"}, "message": "column given seems to be invalid", "status": "error"}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "INVALID_QUERY: column given seems to be invalid (column_name \"Lead_Stat\")"
        );
        assert_eq!(
            (
                coql_credits(1),
                coql_credits(200),
                coql_credits(201),
                coql_credits(2000)
            ),
            (1, 1, 2, 3)
        );
    }
}
