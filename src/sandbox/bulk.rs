//! The sandbox's Bulk Read (`/crm/bulk/{version}/read`) and Record Count
//! (`GET /{module}/actions/count`), as `../shared/zoho-api.md` describes
//! them: jobs that go ADDED → IN PROGRESS → COMPLETED over polls (or
//! FAILURE), results of at most 200,000 records a job as a real ZIP of
//! `{job}.csv` with an `id` column, `next_page_token` for the next job,
//! at most 10 downloads a minute (then 429), 50 credits a job.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::{answered, gated, zoho_error};
use super::coql::{self, Expr, Op};
use super::{Inner, Sandbox};

/// Bulk Read's state in a sandbox.
#[derive(Debug)]
pub(super) struct BulkReads {
    jobs: HashMap<String, BulkJob>,
    /// token → where the next job starts: (the job's query, offset).
    tokens: HashMap<String, (String, usize)>,
    downloads: Vec<Instant>,
    counter: u64,
    /// Records a job holds: Zoho's 200,000.
    pub(super) page_size: usize,
    /// Polls a job answers IN PROGRESS before it is COMPLETED (read at
    /// each poll: a test can hold a job, then let it finish).
    pub(super) polls_in_progress: u32,
    /// The next this many jobs end in FAILURE.
    pub(super) failing_jobs: u32,
    /// How many results were downloaded, and turned away for the limit.
    pub(super) downloads_served: u64,
    pub(super) downloads_refused: u64,
}

impl Default for BulkReads {
    fn default() -> Self {
        BulkReads {
            jobs: HashMap::new(),
            tokens: HashMap::new(),
            downloads: Vec::new(),
            counter: 0,
            page_size: 200_000,
            polls_in_progress: 1,
            failing_jobs: 0,
            downloads_served: 0,
            downloads_refused: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct BulkJob {
    /// The job's matching IDs, this page of them.
    ids: Vec<String>,
    page: usize,
    more: bool,
    next_token: Option<String>,
    /// Polls it answered so far.
    polls: u32,
    state: &'static str,
}

/// Downloads allowed in a minute.
const DOWNLOADS_PER_MINUTE: usize = 10;

/// The IDs of `module`'s live records matching `criteria`, in id order;
/// a view's, in its order.
pub(super) fn matching(
    inner: &Inner,
    module: &str,
    criteria: Option<&Expr>,
    view: Option<&[String]>,
) -> Vec<String> {
    let Some(records) = inner.records.get(module) else {
        return Vec::new();
    };
    let fields = inner.fields.get(module);
    let keep = |id: &String| {
        records.contains(id)
            && criteria.is_none_or(|c| {
                coql::matches(
                    c,
                    &coql::Row {
                        id,
                        fields: fields.and_then(|f| f.get(id)),
                    },
                )
            })
    };
    match view {
        Some(view) => view.iter().filter(|id| keep(id)).cloned().collect(),
        None => inner
            .ordered
            .get(module)
            .into_iter()
            .flatten()
            .map(u64::to_string)
            .filter(keep)
            .collect(),
    }
}

/// A value of criteria that carry no types: a number if it reads as one.
fn typed(v: &str) -> coql::Value {
    if v.parse::<f64>().is_ok() {
        coql::Value::Number(v.to_string())
    } else {
        coql::Value::Text(v.to_string())
    }
}

/// Bulk Read's criteria JSON as an expression.
fn from_bulk(value: &Value) -> Result<Expr, String> {
    if let Some(group) = value.get("group").and_then(Value::as_array) {
        let or = value.get("group_operator").and_then(Value::as_str) == Some("or");
        let mut exprs = group.iter().map(from_bulk).collect::<Result<Vec<_>, _>>()?;
        let mut expr = exprs.pop().ok_or("an empty group")?;
        while let Some(before) = exprs.pop() {
            expr = if or {
                Expr::Or(Box::new(before), Box::new(expr))
            } else {
                Expr::And(Box::new(before), Box::new(expr))
            };
        }
        return Ok(expr);
    }
    let field = value
        .pointer("/field/api_name")
        .and_then(Value::as_str)
        .ok_or("a condition without field.api_name")?
        .to_string();
    let comparator = value
        .get("comparator")
        .and_then(Value::as_str)
        .unwrap_or("");
    let text = |v: &Value| match v {
        Value::String(s) => typed(s),
        other => coql::Value::Number(other.to_string()),
    };
    let v = value.get("value").cloned().unwrap_or(Value::Null);
    let empty = v.as_str() == Some("${EMPTY}");
    let compare = |op| Ok(Expr::Compare(field.clone(), op, text(&v)));
    let like = |pattern: String, not| Ok(Expr::Like(field.clone(), not, pattern));
    let s = v.as_str().unwrap_or_default().to_string();
    match comparator {
        "equal" if empty => Ok(Expr::IsNull(field, false)),
        "not_equal" if empty => Ok(Expr::IsNull(field, true)),
        "equal" => compare(Op::Eq),
        "not_equal" => compare(Op::Ne),
        "less_than" => compare(Op::Lt),
        "less_equal" => compare(Op::Le),
        "greater_than" => compare(Op::Gt),
        "greater_equal" => compare(Op::Ge),
        "starts_with" => like(format!("{s}%"), false),
        "ends_with" => like(format!("%{s}"), false),
        "contains" => like(format!("%{s}%"), false),
        "not_contains" => like(format!("%{s}%"), true),
        "in" | "not_in" => Ok(Expr::In(
            field,
            comparator == "not_in",
            v.as_array()
                .ok_or("in without an array")?
                .iter()
                .map(text)
                .collect(),
        )),
        other => Err(format!("the comparator {other:?}")),
    }
}

/// Search criteria (`((A:equals:x)and(B:starts_with:y))`) as an expression.
fn from_search(text: &str) -> Result<Expr, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let expr = search_group(&chars, &mut at)?;
    if at != chars.len() {
        return Err(format!("text after the criteria at {at}"));
    }
    Ok(expr)
}

fn search_group(chars: &[char], at: &mut usize) -> Result<Expr, String> {
    if chars.get(*at) != Some(&'(') {
        return Err(format!("no ( at {}", *at));
    }
    *at += 1;
    let expr = if chars.get(*at) == Some(&'(') {
        let mut expr = search_group(chars, at)?;
        loop {
            let rest: String = chars[*at..].iter().take(3).collect();
            if rest.starts_with("and") {
                *at += 3;
                expr = Expr::And(Box::new(expr), Box::new(search_group(chars, at)?));
            } else if rest.starts_with("or") {
                *at += 2;
                expr = Expr::Or(Box::new(expr), Box::new(search_group(chars, at)?));
            } else {
                break;
            }
        }
        expr
    } else {
        // field:operator:value, the value's \-escapes undone, up to `)`.
        let mut parts = vec![String::new()];
        loop {
            match chars.get(*at) {
                None => return Err("an unclosed (".into()),
                Some('\\') => {
                    if let Some(p) = parts.last_mut() {
                        p.push(*chars.get(*at + 1).unwrap_or(&'\\'));
                    }
                    *at += 2;
                    continue;
                }
                Some(')') => break,
                Some(':') if parts.len() < 3 => parts.push(String::new()),
                Some(',') if parts.len() == 3 => parts.push(String::new()),
                Some(c) => {
                    if let Some(p) = parts.last_mut() {
                        p.push(*c);
                    }
                }
            }
            *at += 1;
        }
        if parts.len() < 3 {
            return Err("a condition without field:operator:value".into());
        }
        let field = parts[0].clone();
        let values: Vec<coql::Value> = parts[2..].iter().map(|v| typed(v)).collect();
        let one = values[0].clone();
        let empty = parts[2] == "${EMPTY}";
        match parts[1].as_str() {
            "equals" if empty => Expr::IsNull(field, false),
            "not_equal" if empty => Expr::IsNull(field, true),
            "equals" => Expr::Compare(field, Op::Eq, one),
            "not_equal" => Expr::Compare(field, Op::Ne, one),
            "less_than" => Expr::Compare(field, Op::Lt, one),
            "less_equal" => Expr::Compare(field, Op::Le, one),
            "greater_than" => Expr::Compare(field, Op::Gt, one),
            "greater_equal" => Expr::Compare(field, Op::Ge, one),
            "starts_with" => Expr::Like(field, false, format!("{}%", parts[2])),
            "in" => Expr::In(field, false, values),
            "not_in" => Expr::In(field, true, values),
            other => return Err(format!("the operator {other:?}")),
        }
    };
    if chars.get(*at) != Some(&')') {
        return Err(format!("no ) at {}", *at));
    }
    *at += 1;
    Ok(expr)
}

/// `GET /{module}/actions/count?criteria=…|cvid=…` → `{"count":"N"}`.
pub(super) fn record_count(
    inner: &mut Inner,
    module: &str,
    params: &HashMap<String, String>,
) -> Response {
    if !inner.modules.contains(module) {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        );
    }
    let criteria = match params.get("criteria").map(|c| from_search(c)) {
        Some(Err(why)) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"code": "INVALID_QUERY", "details": {"reason": why}, "message": "invalid query formed", "status": "error"})),
            )
                .into_response();
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let view = match params.get("cvid") {
        Some(cvid) => match inner.views.get(&(module.to_string(), cvid.clone())) {
            Some(v) => Some(v.clone()),
            None => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_DATA",
                    "the given cvid seems to be invalid",
                );
            }
        },
        None => None,
    };
    let n = matching(inner, module, criteria.as_ref(), view.as_deref()).len();
    Json(json!({ "count": n.to_string() })).into_response()
}

fn bulk_error(code: &str, message: &str, details: Value) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"code": code, "details": details, "message": message, "status": "error"})),
    )
        .into_response()
}

/// `POST /crm/bulk/{version}/read`.
pub(super) async fn create(
    State(sb): State<Sandbox>,
    Path(_version): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    gated(&sb, &headers, "bulk_read", "", &[], |inner, _| {
        answered(create_job(inner, &body))
    })
    .await
}

fn create_job(inner: &mut Inner, body: &Value) -> Response {
    let query = &body["query"];
    let Some(module) = query.pointer("/module/api_name").and_then(Value::as_str) else {
        return bulk_error(
            "REQUIRED_PARAM_MISSING",
            "module is required",
            json!({"api_name": "module"}),
        );
    };
    if !inner.modules.contains(module) {
        return bulk_error(
            "INVALID_DATA",
            "the module name given seems to be invalid",
            json!({"api_name": "module"}),
        );
    }
    let criteria = match query.get("criteria").map(from_bulk) {
        Some(Err(why)) => {
            return bulk_error(
                "INVALID_CRITERIA",
                "the criteria is invalid",
                json!({"reason": why}),
            );
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    if let Some(c) = &criteria {
        let known = inner.module_fields.get(module);
        if let Some(f) = coql::unknown_field(c, &|f| known.is_some_and(|k| k.contains(f))) {
            return bulk_error(
                "FIELD_IN_CRITERIA_NOT_AVAILABLE",
                "the field given in criteria is not available",
                json!({"api_name": f}),
            );
        }
    }
    let view = match query.get("cvid").and_then(Value::as_str) {
        Some(cvid) => match inner.views.get(&(module.to_string(), cvid.to_string())) {
            Some(v) => Some(v.clone()),
            None => {
                return bulk_error(
                    "INVALID_DATA",
                    "the given cvid seems to be invalid",
                    json!({"api_name": "cvid"}),
                );
            }
        },
        None => None,
    };
    // The request without its paging: what a page token is bound to.
    let mut bound = query.clone();
    if let Some(o) = bound.as_object_mut() {
        o.remove("page");
        o.remove("page_token");
    }
    let bound = bound.to_string();
    let size = inner.bulk.page_size.max(1);
    let offset = match (
        query.get("page_token").and_then(Value::as_str),
        query.get("page"),
    ) {
        (Some(token), _) => match inner.bulk.tokens.get(token) {
            Some((q, offset)) if *q == bound => *offset,
            _ => {
                return bulk_error(
                    "INVALID_DATA",
                    "the page_token is invalid or does not belong to this query",
                    json!({"api_name": "page_token"}),
                );
            }
        },
        (None, page) => (page.and_then(Value::as_u64).unwrap_or(1).max(1) as usize - 1) * size,
    };
    let all = matching(inner, module, criteria.as_ref(), view.as_deref());
    let ids: Vec<String> = all.iter().skip(offset).take(size).cloned().collect();
    let more = all.len() > offset + ids.len();
    inner.bulk.counter += 1;
    let id = format!("3652397000100{:06}", inner.bulk.counter);
    let next_token = more.then(|| {
        let token = format!("bulk-{id}-{}", offset + ids.len());
        inner
            .bulk
            .tokens
            .insert(token.clone(), (bound, offset + ids.len()));
        token
    });
    let failing = inner.bulk.failing_jobs > 0;
    inner.bulk.failing_jobs = inner.bulk.failing_jobs.saturating_sub(1);
    inner.bulk.jobs.insert(
        id.clone(),
        BulkJob {
            ids,
            page: offset / size + 1,
            more,
            next_token,
            polls: 0,
            state: if failing { "FAILING" } else { "ADDED" },
        },
    );
    inner.extra_credits = 49;
    (
        StatusCode::CREATED,
        Json(json!({"data": [{"status": "success", "code": "ADDED_SUCCESSFULLY", "message": "Added successfully.",
            "details": {"id": id, "operation": "read", "state": "ADDED", "created_by": {"id": "1", "name": "sandbox"}, "created_time": "2026-12-01T00:00:00+00:00"}}],
            "info": {}})),
    )
        .into_response()
}

/// `GET /crm/bulk/{version}/read/{job}`: each poll moves the job on.
pub(super) async fn status(
    State(sb): State<Sandbox>,
    Path((_version, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    gated(&sb, &headers, "bulk_read_status", "", &[], |inner, _| {
        let in_progress = inner.bulk.polls_in_progress;
        let Some(j) = inner.bulk.jobs.get_mut(&job) else {
            return answered(zoho_error(StatusCode::NOT_FOUND, "RESOURCE_NOT_FOUND", "the job is not found"));
        };
        j.state = match j.state {
            "FAILING" => "FAILURE",
            "ADDED" | "IN PROGRESS" if j.polls >= in_progress => "COMPLETED",
            "ADDED" | "IN PROGRESS" => "IN PROGRESS",
            s => s,
        };
        j.polls = j.polls.saturating_add(1);
        let mut details = json!({"id": job, "operation": "read", "state": j.state,
            "created_by": {"id": "1", "name": "sandbox"}, "created_time": "2026-12-01T00:00:00+00:00"});
        if j.state == "COMPLETED" {
            let mut result = json!({"page": j.page, "per_page": 200_000, "count": j.ids.len(),
                "download_url": format!("/crm/bulk/v8/read/{job}/result"), "more_records": j.more});
            if let Some(t) = &j.next_token {
                result["next_page_token"] = json!(t);
            }
            details["result"] = result;
        }
        answered(Json(json!({"data": [details]})).into_response())
    })
    .await
}

/// `GET /crm/bulk/{version}/read/{job}/result`: the ZIP.
pub(super) async fn result(
    State(sb): State<Sandbox>,
    Path((_version, job, what)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if what != "result" {
        return zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "the url is invalid",
        );
    }
    gated(&sb, &headers, "bulk_read_download", "", &[], |inner, _| {
        let now = Instant::now();
        inner
            .bulk
            .downloads
            .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if inner.bulk.downloads.len() >= DOWNLOADS_PER_MINUTE {
            inner.bulk.downloads_refused += 1;
            let mut r = zoho_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "at most 10 downloads a minute",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(60));
            return answered(r);
        }
        let ids = match inner.bulk.jobs.get(&job) {
            Some(j) if j.state == "COMPLETED" => j.ids.clone(),
            Some(_) => {
                return answered(bulk_error(
                    "JOB_NOT_COMPLETED",
                    "the job is not completed yet",
                    json!({}),
                ));
            }
            None => {
                return answered(zoho_error(
                    StatusCode::NOT_FOUND,
                    "RESOURCE_NOT_FOUND",
                    "the job is not found",
                ));
            }
        };
        inner.bulk.downloads.push(now);
        inner.bulk.downloads_served += 1;
        answered(match zip_of(&job, &ids) {
            Ok(bytes) => ([(header::CONTENT_TYPE, "application/zip")], bytes).into_response(),
            Err(e) => zoho_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                &e.to_string(),
            ),
        })
    })
    .await
}

/// A ZIP holding `{job}.csv`: an `id` column, quoted as Zoho writes it.
fn zip_of(job: &str, ids: &[String]) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(
        format!("{job}.csv"),
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated),
    )?;
    zip.write_all(b"\"id\"\n")?;
    for id in ids {
        writeln!(zip, "\"{id}\"")?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_criteria_zdel_writes_read_back_as_it_meant_them() {
        use crate::zoho::criteria::{bulk_criteria, parse_criteria, search_criteria};
        for text in [
            "Lead_Status = 'Junk (old), x' and Email is null",
            "(Score >= 4 or Score in (1, 2)) and Email like 'ann%'",
        ] {
            let e = parse_criteria(text).unwrap();
            assert_eq!(
                from_search(&search_criteria(&e).unwrap()).unwrap(),
                e,
                "{text}"
            );
        }
        let e = parse_criteria("A = 'x' and (B != 'y' or C like '%z%') and D is not null").unwrap();
        assert_eq!(from_bulk(&bulk_criteria(&e).unwrap()).unwrap(), e);
    }
}
