//! The sandbox's HTTP side: the token endpoint and every delete endpoint,
//! each wrapped by [`gated`] (auth, counting, latency, injected faults).

use std::collections::HashMap;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

use super::{
    CLIENT_ID, CLIENT_SECRET, Faults, Inner, Job, JobPollAnswer, MAX_IDS_PER_CALL, REFRESH_TOKEN,
    Sandbox,
};

pub(super) fn router(sandbox: Sandbox) -> Router {
    Router::new()
        .route("/oauth/v2/token", post(token))
        .route("/crm/bulk/{version}/read", post(super::bulk::create))
        .route(
            "/crm/{version}/settings/recycle_bin/actions/restore",
            post(restore),
        )
        .route("/crm/bulk/{version}/read/{job}", get(super::bulk::status))
        .route(
            "/crm/bulk/{version}/read/{job}/{what}",
            get(super::bulk::result),
        )
        .route(
            "/crm/{version}/{module}",
            delete(delete_records).get(get_records).post(post_coql),
        )
        .route(
            "/crm/{version}/{module}/{sub}",
            delete(delete_contact_roles).get(get_settings),
        )
        .route(
            "/crm/{version}/{module}/{a}/{b}",
            delete(delete_nested)
                .post(post_mass_delete)
                .get(get_mass_delete_status),
        )
        .with_state(sandbox)
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

async fn token(State(sb): State<Sandbox>, Form(form): Form<TokenForm>) -> Response {
    let mut inner = sb.lock();
    inner.stats.token_requests += 1;
    if inner.token_endpoint_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    // Zoho answers token errors with HTTP 200: the body says what went wrong.
    if form.grant_type.as_deref() != Some("refresh_token") {
        return axum::Json(json!({"error": "unsupported_grant_type"})).into_response();
    }
    if form.client_id.as_deref() != Some(CLIENT_ID)
        || form.client_secret.as_deref() != Some(CLIENT_SECRET)
    {
        return axum::Json(json!({"error": "invalid_client"})).into_response();
    }
    if inner.credentials_revoked || form.refresh_token.as_deref() != Some(REFRESH_TOKEN) {
        return axum::Json(json!({"error": "invalid_code"})).into_response();
    }
    if inner.token_throttled {
        return axum::Json(json!({
            "error_description": "You have made too many requests continuously. Please try again after some time.",
            "error": "Access Denied",
            "status": "failure",
        }))
        .into_response();
    }
    inner.token_counter += 1;
    let access = format!(
        "1000.sandbox{}.{:016x}",
        inner.token_counter,
        rand::random::<u64>()
    );
    let ttl = inner.faults.token_ttl;
    inner.tokens.insert(access.clone(), Instant::now() + ttl);
    inner.stats.tokens_issued += 1;
    let mut answer = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs().max(1),
    });
    if !inner.omit_api_domain {
        answer["api_domain"] = json!(sb.base_url);
    }
    if let Some(scope) = &inner.token_scope {
        answer["scope"] = json!(scope);
    }
    axum::Json(answer).into_response()
}

#[derive(Deserialize)]
struct IdsQuery {
    ids: Option<String>,
    wf_trigger: Option<String>,
    job_id: Option<String>,
}

fn split_ids(ids: Option<&str>) -> Vec<String> {
    ids.unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Undoes the in-flight bookkeeping of one call however it ends.
struct InFlight {
    sandbox: Sandbox,
    ids: Vec<String>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.sandbox.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
        for id in &self.ids {
            if let Some(n) = inner.in_flight_ids.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    inner.in_flight_ids.remove(id);
                }
            }
        }
    }
}

pub(super) fn zoho_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "details": {}, "message": message, "status": "error"})),
    )
        .into_response()
}

/// What an endpoint did: its answer, and whether it changed anything (only
/// then can the "fail after acting" faults fire).
pub(super) struct Acted {
    response: Response,
    mutated: bool,
}

pub(super) fn answered(response: Response) -> Acted {
    Acted {
        response,
        mutated: false,
    }
}

/// Everything every API call shares: the token check, counting, in-flight
/// and overlap bookkeeping, latency, and the injected faults around `act`.
pub(super) async fn gated(
    sb: &Sandbox,
    headers: &HeaderMap,
    endpoint: &str,
    module: &str,
    ids: &[String],
    act: impl FnOnce(&mut Inner, &Faults) -> Acted,
) -> Response {
    let (faults, _guard) = {
        let mut inner = sb.lock();
        inner.stats.calls += 1;
        *inner
            .stats
            .calls_by_endpoint
            .entry(endpoint.to_string())
            .or_default() += 1;
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Zoho-oauthtoken "))
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|expiry| Instant::now() < *expiry)
            && !inner.reject_fresh_tokens;
        if !authorized {
            inner.stats.unauthorized += 1;
            *inner.stats.statuses.entry(401).or_default() += 1;
            return zoho_error(
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                "invalid oauth token",
            );
        }
        let scope = match endpoint {
            "mass_delete_ids" | "mass_delete_view" | "mass_delete_status" => "mass_delete",
            "delete_one" => "delete",
            other => other,
        };
        if inner.missing_scopes.contains(scope) {
            *inner.stats.statuses.entry(401).or_default() += 1;
            return zoho_error(
                StatusCode::UNAUTHORIZED,
                "OAUTH_SCOPE_MISMATCH",
                "invalid oauth scope to access this URL",
            );
        }
        if let Some(budget) = inner.faults.credit_budget
            && inner.stats.credits_used >= budget
        {
            inner.stats.credit_429_at.push(Instant::now());
            *inner.stats.statuses.entry(429).or_default() += 1;
            let mut response = zoho_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "API credits for the 24-hour period exceeded",
            );
            response
                .headers_mut()
                .insert(CREDITS_HEADER, header::HeaderValue::from(0));
            return response;
        }
        super::recycle::finish_scheduled(&mut inner);
        inner.stats.call_starts.push(Instant::now());
        inner.stats.call_times.push(Instant::now());
        inner.stats.ids_per_call.push(ids.len());
        inner.in_flight += 1;
        inner.stats.peak_concurrency = inner.stats.peak_concurrency.max(inner.in_flight);
        for id in ids {
            let n = inner.in_flight_ids.entry(id.clone()).or_default();
            *n += 1;
            if *n > 1 {
                inner.stats.overlapping_ids += 1;
            }
        }
        (
            inner.faults.clone(),
            InFlight {
                sandbox: sb.clone(),
                ids: ids.to_vec(),
            },
        )
    };
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let mut response = faulty(sb, &faults, module, act);
    let mut inner = sb.lock();
    let status = response.status().as_u16();
    *inner.stats.statuses.entry(status).or_default() += 1;
    let extra_credits = std::mem::take(&mut inner.extra_credits);
    if let Some(budget) = faults.credit_budget
        && status != 429
    {
        inner.stats.credits_used += 1 + extra_credits;
        let used = inner.stats.credits_used;
        // Zoho adds the header once half the day's credits are used.
        if used * 2 >= budget {
            response.headers_mut().insert(
                CREDITS_HEADER,
                header::HeaderValue::from(budget.saturating_sub(used)),
            );
        }
    }
    response
}

/// Zoho's remaining-credits header.
const CREDITS_HEADER: &str = "x-api-credits-remaining";

fn faulty(
    sb: &Sandbox,
    faults: &Faults,
    module: &str,
    act: impl FnOnce(&mut Inner, &Faults) -> Acted,
) -> Response {
    if rand::random::<f64>() < faults.rate_429 {
        let mut response = zoho_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "too many requests",
        );
        if let Some(secs) = faults.retry_after_secs
            && let Ok(v) = secs.to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    if rand::random::<f64>() < faults.error_5xx_rate {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let acted = {
        let mut inner = sb.lock();
        if inner.denied_modules.contains(module) {
            return zoho_error(
                StatusCode::FORBIDDEN,
                "NO_PERMISSION",
                "permission denied to delete records",
            );
        }
        // (An empty module: the call names its module in its body; it checks.)
        if !faults.every_id_exists
            && !module.is_empty()
            && !inner.modules.contains(module)
            && module != "Contacts"
        {
            return zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_MODULE",
                "the module name given seems to be invalid",
            );
        }
        act(&mut inner, faults)
    };
    if !acted.mutated {
        return acted.response;
    }
    let roll = rand::random::<f64>();
    if roll < faults.error_5xx_after_delete_rate {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    }
    if roll < faults.error_5xx_after_delete_rate + faults.drop_after_delete_rate {
        // Headers go out, then the body fails: the connection is cut mid-answer.
        let body = Body::from_stream(futures_util::stream::once(async {
            Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
                "sandbox drops the connection",
            ))
        }));
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    acted.response
}

/// Per-ID answers for a batch; `remove` deletes one ID and says whether it existed.
fn per_id_answer(
    inner: &mut Inner,
    ids: &[String],
    max: usize,
    key: &str,
    success_message: &str,
    mut remove: impl FnMut(&mut Inner, &str) -> bool,
) -> Acted {
    if ids.is_empty() {
        return answered(zoho_error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "ids is required",
        ));
    }
    if ids.len() > max {
        return answered(zoho_error(
            StatusCode::BAD_REQUEST,
            "LIMIT_EXCEEDED",
            &format!("more than {max} ids in one call"),
        ));
    }
    let mut entries = Vec::with_capacity(ids.len());
    let mut successes = 0;
    let by_path = inner.faults.answer_by_json_path;
    for (index, id) in ids.iter().enumerate() {
        let details = if by_path {
            json!({"json_path": format!("$.ids[{index}]")})
        } else {
            json!({"id": id})
        };
        if let Some(n) = inner.locked.get_mut(id)
            && *n > 0
        {
            *n -= 1;
            entries.push(json!({"code": "RECORD_LOCKED", "details": details, "message": "the record is locked", "status": "error"}));
            continue;
        }
        if inner.fail_after_delete.remove(id.as_str()) {
            let _ = remove(inner, id);
            entries.push(json!({"code": "INTERNAL_ERROR", "details": details, "message": "Internal Server Error", "status": "error"}));
            continue;
        }
        if let Some(n) = inner.internal_errors.get_mut(id)
            && *n > 0
        {
            *n -= 1;
            entries.push(json!({"code": "INTERNAL_ERROR", "details": details, "message": "Internal Server Error", "status": "error"}));
            continue;
        }
        if remove(inner, id) {
            successes += 1;
            entries.push(json!({"code": "SUCCESS", "details": details, "message": success_message, "status": "success"}));
        } else {
            entries.push(json!({"code": "INVALID_DATA", "details": details, "message": "the id given seems to be invalid", "status": "error"}));
        }
    }
    inner.stats.deleted += successes as u64;
    // The status of a mixed batch is not reliably documented: 200, 207 and 400 are seen.
    let status = if successes == ids.len() {
        StatusCode::OK
    } else if successes > 0 {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::BAD_REQUEST
    };
    Acted {
        response: (status, Json(json!({ key: entries }))).into_response(),
        mutated: successes > 0,
    }
}

/// Delete a record of `module` (every ID exists once, in benchmark mode).
fn remove_record(inner: &mut Inner, every_id_exists: bool, module: &str, id: &str) -> bool {
    if every_id_exists {
        inner
            .records
            .entry(format!("{module}#deleted"))
            .or_default()
            .insert(id.to_string())
    } else {
        let removed = inner
            .records
            .get_mut(module)
            .is_some_and(|set| set.remove(id));
        if removed {
            put_in_bin(inner, module, id);
        }
        removed
    }
}

/// A record zdel's user deleted goes to the recycle bin, as in Zoho.
fn put_in_bin(inner: &mut Inner, module: &str, id: &str) {
    inner.recycle.put(
        module,
        id,
        super::recycle::Deleted {
            at_ms: crate::clock::now_ms(),
            by: super::recycle::ZDEL_USER,
        },
    );
}

async fn delete_records(
    State(sb): State<Sandbox>,
    Path((_version, module)): Path<(String, String)>,
    Query(query): Query<IdsQuery>,
    headers: HeaderMap,
) -> Response {
    let ids = split_ids(query.ids.as_deref());
    delete_ids(
        &sb,
        &headers,
        "delete",
        &module,
        &ids,
        query.wf_trigger.as_deref(),
    )
    .await
}

/// `wf_trigger` as Zoho takes it: `true`/`false` in any case (the Python
/// SDK sends `True`).
fn wf_trigger_ok(value: Option<&str>) -> bool {
    value.is_none_or(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"))
}

/// Delete `ids` of `module`, the way `DELETE /{module}?ids=` and
/// `DELETE /{module}/{id}` both answer.
async fn delete_ids(
    sb: &Sandbox,
    headers: &HeaderMap,
    endpoint: &str,
    module: &str,
    ids: &[String],
    wf_trigger: Option<&str>,
) -> Response {
    let wf_ok = wf_trigger_ok(wf_trigger);
    let module = module.to_string();
    gated(sb, headers, endpoint, &module, ids, |inner, faults| {
        if rand::random::<f64>() < faults.no_content_rate {
            return answered(StatusCode::NO_CONTENT.into_response());
        }
        if !wf_ok {
            return answered(zoho_error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "wf_trigger must be true or false",
            ));
        }
        let every = faults.every_id_exists;
        per_id_answer(
            inner,
            ids,
            MAX_IDS_PER_CALL,
            "data",
            "record deleted",
            |inner, id| remove_record(inner, every, &module, id),
        )
    })
    .await
}

/// `GET /{module}?fields=id&per_page=N`: the first records' IDs (the read
/// `zdel check` probes with); 204 when the module has none. With `cvid`:
/// the view's live records in pages of `per_page` (≤ 200): `page` 1–10
/// without a token, then `page_token` from `info.next_page_token`, up to
/// 100,000 records (Zoho's limits and error codes); 3 credits a call.
async fn get_records(
    State(sb): State<Sandbox>,
    Path((_version, module)): Path<(String, String)>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    gated(&sb, &headers, "read", &module, &[], |inner, _| {
        if let Some(cvid) = params.get("cvid") {
            return answered(view_page(inner, &module, cvid, &params));
        }
        if let Some(ids) = params.get("ids") {
            // `?ids=…`: those of the records that are live; 204 when none.
            let live: Vec<serde_json::Value> = ids
                .split(',')
                .filter(|id| inner.records.get(&module).is_some_and(|r| r.contains(*id)))
                .map(|id| json!({ "id": id }))
                .collect();
            if live.is_empty() {
                return answered(StatusCode::NO_CONTENT.into_response());
            }
            let n = live.len();
            return answered(
                Json(json!({"data": live, "info": {"per_page": n, "count": n, "page": 1, "more_records": false}}))
                    .into_response(),
            );
        }
        let mut ids: Vec<&String> = inner.records.get(&module).into_iter().flatten().collect();
        ids.sort();
        match ids.first() {
            Some(id) => answered(
                Json(json!({"data": [{"id": id}], "info": {"per_page": 1, "count": 1, "page": 1, "more_records": ids.len() > 1}}))
                    .into_response(),
            ),
            None => answered(StatusCode::NO_CONTENT.into_response()),
        }
    })
    .await
}

/// Records of a view reachable by Get Records: 100,000 (Zoho's limit).
const VIEW_PAGING_LIMIT: usize = 100_000;
/// Pages reachable without a page token.
const DISCRETE_PAGES: usize = 10;

/// One page of the view `cvid` (see [`get_records`]).
fn view_page(
    inner: &mut Inner,
    module: &str,
    cvid: &str,
    params: &std::collections::HashMap<String, String>,
) -> Response {
    let Some(view) = inner.views.get(&(module.to_string(), cvid.to_string())) else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the given cvid seems to be invalid",
        );
    };
    let per_page: usize = params
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    // A token says where its page starts: "{cvid}:{offset}" (Zoho's are
    // opaque and bound to the request's parameters).
    let start = match (params.get("page_token"), params.get("page")) {
        (Some(token), _) => match token
            .strip_prefix(&format!("{cvid}:"))
            .and_then(|o| o.parse::<usize>().ok())
        {
            Some(offset) => offset,
            None => {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "TOKEN_BOUND_DATA_MISMATCH",
                    "the page token does not belong to this request",
                );
            }
        },
        (None, page) => {
            let page: usize = page.and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
            if page > DISCRETE_PAGES {
                return zoho_error(
                    StatusCode::BAD_REQUEST,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "use page_token to fetch more than 2000 records",
                );
            }
            (page - 1) * per_page
        }
    };
    if start + per_page > VIEW_PAGING_LIMIT {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "PAGINATION_LIMIT_EXCEEDED",
            "pagination limit exceeded: at most 100000 records can be fetched this way",
        );
    }
    inner.extra_credits = 2;
    let records = inner.records.get(module);
    let live: Vec<&String> = view
        .iter()
        .filter(|id| records.is_some_and(|r| r.contains(*id)))
        .collect();
    let page: Vec<&&String> = live.iter().skip(start).take(per_page).collect();
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let more = live.len() > start + page.len();
    let mut info = json!({
        "per_page": per_page,
        "count": page.len(),
        "more_records": more,
    });
    if more {
        info["next_page_token"] = json!(format!("{cvid}:{}", start + page.len()));
    }
    let data: Vec<serde_json::Value> = page.iter().map(|id| json!({ "id": id })).collect();
    Json(json!({ "data": data, "info": info })).into_response()
}

/// `POST /coql {"select_query": "…"}`: the COQL subset of [`super::coql`],
/// over the records' fields; 204 when nothing matches; 1–3 credits by LIMIT.
async fn post_coql(
    State(sb): State<Sandbox>,
    Path((_version, path)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if path != "coql" {
        return zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "the url is invalid",
        );
    }
    let query = body["select_query"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    gated(&sb, &headers, "coql", "", &[], |inner, _| {
        answered(coql_answer(inner, &query))
    })
    .await
}

fn coql_answer(inner: &mut Inner, query: &str) -> Response {
    use super::coql;
    let refused = |e: coql::CoqlError| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": e.code, "details": e.details, "message": e.message, "status": "error"})),
        )
            .into_response()
    };
    let q = match coql::parse(query) {
        Ok(q) => q,
        Err(e) => return refused(e),
    };
    if !inner.modules.contains(&q.module) {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        );
    }
    let known = inner.module_fields.get(&q.module);
    let is_known = |f: &str| known.is_some_and(|k| k.contains(f));
    let unknown = q
        .fields
        .iter()
        .find(|f| !f.eq_ignore_ascii_case("id") && !is_known(f))
        .map(String::as_str)
        .or_else(|| coql::unknown_field(&q.criteria, &is_known));
    if let Some(column) = unknown {
        return refused(coql::CoqlError {
            code: "INVALID_QUERY",
            message: "column given seems to be invalid".into(),
            details: json!({ "column_name": column }),
        });
    }
    inner.extra_credits = coql::credits(q.limit) - 1;
    // Keyset paging (`id > last`) starts past the records before it.
    let floor = coql::id_floor(&q.criteria).unwrap_or(0);
    let (Some(ordered), Some(records)) =
        (inner.ordered.get(&q.module), inner.records.get(&q.module))
    else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let in_order: Box<dyn Iterator<Item = &u64>> = if q.descending {
        Box::new(ordered.range(floor..).rev())
    } else {
        Box::new(ordered.range(floor..))
    };
    let fields = inner.fields.get(&q.module);
    let mut page = in_order
        .map(u64::to_string)
        .filter(|id| records.contains(id))
        .filter(|id| {
            let row = coql::Row {
                id,
                fields: fields.and_then(|f| f.get(id)),
            };
            coql::matches(&q.criteria, &row)
        })
        .skip(q.offset)
        .take(q.limit + 1)
        .collect::<Vec<_>>();
    let more = page.len() > q.limit;
    page.truncate(q.limit);
    if page.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let data: Vec<serde_json::Value> = page
        .iter()
        .map(|id| {
            let fields = fields.and_then(|f| f.get(id));
            let row: serde_json::Map<String, serde_json::Value> = q
                .fields
                .iter()
                .map(|f| {
                    let v = if f.eq_ignore_ascii_case("id") {
                        json!(id)
                    } else {
                        fields
                            .and_then(|m| m.get(f))
                            .map_or(serde_json::Value::Null, |v| json!(v))
                    };
                    (f.clone(), v)
                })
                .collect();
            serde_json::Value::Object(row)
        })
        .collect();
    Json(json!({"data": data, "info": {"count": page.len(), "more_records": more}})).into_response()
}

/// `POST /settings/recycle_bin/actions/restore`.
async fn restore(
    State(sb): State<Sandbox>,
    Path(_version): Path<String>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let ids: Vec<String> = body["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    gated(&sb, &headers, "restore", "", &ids, |inner, _| {
        super::recycle::finish_scheduled(inner);
        Acted {
            response: super::recycle::restore(inner, &body),
            mutated: true,
        }
    })
    .await
}

/// Modules every org has, as `GET /settings/modules` names them.
const STANDARD_MODULES: [&str; 19] = [
    "Leads",
    "Contacts",
    "Accounts",
    "Deals",
    "Campaigns",
    "Tasks",
    "Events",
    "Calls",
    "Cases",
    "Solutions",
    "Products",
    "Vendors",
    "Price_Books",
    "Quotes",
    "Sales_Orders",
    "Purchase_Orders",
    "Invoices",
    "Notes",
    "Attachments",
];

/// `GET /settings/modules`: the standard modules and every seeded one;
/// `GET /{module}/deleted`: the recycle bin.
async fn get_settings(
    State(sb): State<Sandbox>,
    Path((_version, settings, what)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if settings == "settings" && what == "recycle_bin" {
        return gated(&sb, &headers, "recycle_bin", "", &[], |inner, _| {
            answered(super::recycle::bin_lookup(inner, &params))
        })
        .await;
    }
    if what == "deleted" {
        let module = settings;
        return gated(
            &sb,
            &headers,
            "deleted_records",
            &module,
            &[],
            |inner, _| {
                answered(super::recycle::deleted_records(
                    inner, &module, &params, &headers,
                ))
            },
        )
        .await;
    }
    if settings != "settings" || what != "modules" {
        return zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "the url is invalid",
        );
    }
    gated(&sb, &headers, "modules", "", &[], |inner, _| {
        let mut names: std::collections::BTreeSet<String> =
            STANDARD_MODULES.iter().map(|m| m.to_string()).collect();
        names.extend(inner.modules.iter().cloned());
        let modules: Vec<serde_json::Value> = names
            .iter()
            .map(|n| json!({"api_name": n, "module_name": n, "plural_label": n, "api_supported": true, "deletable": true}))
            .collect();
        answered(Json(json!({ "modules": modules })).into_response())
    })
    .await
}

/// `DELETE /Contacts/roles?ids=…`
async fn delete_contact_roles(
    State(sb): State<Sandbox>,
    Path((_version, module, sub)): Path<(String, String, String)>,
    Query(query): Query<IdsQuery>,
    headers: HeaderMap,
) -> Response {
    if !sub.is_empty() && sub.bytes().all(|b| b.is_ascii_digit()) {
        // `DELETE /{module}/{id}`: one record, the same envelope.
        let ids = vec![sub];
        return delete_ids(
            &sb,
            &headers,
            "delete_one",
            &module,
            &ids,
            query.wf_trigger.as_deref(),
        )
        .await;
    }
    if module != "Contacts" || sub != "roles" {
        return zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "the url is invalid",
        );
    }
    let ids = split_ids(query.ids.as_deref());
    let response = gated(&sb, &headers, "contact_roles", &module, &ids, |inner, _| {
        per_id_answer(
            inner,
            &ids,
            MAX_IDS_PER_CALL,
            "contact_roles",
            "contact role deleted",
            |inner, id| inner.contact_roles.remove(id),
        )
    })
    .await;
    wrap_in(response, "contact_roles").await
}

/// The contact-role endpoints wrap whole-call errors in their envelope
/// (`{"contact_roles":[{"code":…}]}`, OAS `contact_roles.json`); a 401 stays
/// bare, as every endpoint's does.
async fn wrap_in(response: Response, key: &str) -> Response {
    let status = response.status();
    if status.is_success()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return response;
    }
    let headers = response.headers().clone();
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let wrapped = if body.get("code").is_some() {
        json!({ key: [body] })
    } else {
        body
    };
    let mut out = (status, Json(wrapped)).into_response();
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// `DELETE /{module}/{record}/photo` or `DELETE /{module}/{record}/{related_list}?ids=…`
async fn delete_nested(
    State(sb): State<Sandbox>,
    Path((_version, module, record, list)): Path<(String, String, String, String)>,
    Query(query): Query<IdsQuery>,
    headers: HeaderMap,
) -> Response {
    if list == "photo" {
        let ids = vec![record.clone()];
        return gated(&sb, &headers, "photo", &module, &ids, |inner, _| {
            if inner.photos.remove(&(module.clone(), record.clone())) {
                inner.stats.deleted += 1;
                Acted {
                    response: Json(json!({"code": "SUCCESS", "details": {}, "message": "Photo deleted", "status": "success"})).into_response(),
                    mutated: true,
                }
            } else {
                answered(zoho_error(StatusCode::BAD_REQUEST, "INVALID_DATA", "No such photo exists"))
            }
        })
        .await;
    }
    let ids = split_ids(query.ids.as_deref());
    gated(&sb, &headers, "delink", &module, &ids, |inner, _| {
        let key = (module.clone(), record.clone(), list.clone());
        let parent_known = inner.relations.contains_key(&key)
            || inner.records.get(&module).is_some_and(|r| r.contains(&record));
        if !parent_known {
            // A whole-call error pointing at the path segment (OAS common.json).
            return answered((StatusCode::BAD_REQUEST, Json(json!({"data": [{"code": "INVALID_DATA", "details": {"resource_path_index": 1}, "message": "the related id given seems to be invalid", "status": "error"}]}))).into_response());
        }
        per_id_answer(
            inner,
            &ids,
            MAX_IDS_PER_CALL,
            "data",
            "relation removed",
            |inner, id| inner.relations.get_mut(&key).is_some_and(|s| s.remove(id)),
        )
    })
    .await
}

#[derive(Deserialize)]
struct MassDeleteBody {
    ids: Option<Vec<String>>,
    cvid: Option<String>,
    territory: Option<serde_json::Value>,
}

/// `POST /{module}/actions/mass_delete` with `ids` (≤ 500) or a `cvid`.
async fn post_mass_delete(
    State(sb): State<Sandbox>,
    Path((_version, module, a, b)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<MassDeleteBody>>,
) -> Response {
    if a != "actions" || b != "mass_delete" {
        return zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "the url is invalid",
        );
    }
    let Some(Json(body)) = body else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "body is not valid JSON",
        );
    };
    if let Some(ids) = body.ids {
        return gated(
            &sb,
            &headers,
            "mass_delete_ids",
            &module,
            &ids,
            |inner, faults| {
                // One mass delete at a time per org: a running view job, or
                // someone else's mass action, turns this away whole.
                let occupied = match inner.occupied.get_mut(&module) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                };
                if occupied || inner.jobs.values().any(|j| j.status != "COMPLETED" && j.status != "FAILED") {
                    inner.id_path_busy_answers += 1;
                    return answered((StatusCode::BAD_REQUEST, Json(json!({"data": [{"code": "ALREADY_SCHEDULED", "details": {}, "message": "you can schedule only one mass delete job at a time", "status": "error"}]}))).into_response());
                }
                let every = faults.every_id_exists;
                per_id_answer(
                    inner,
                    &ids,
                    500,
                    "data",
                    "record is deleted",
                    |inner, id| remove_record(inner, every, &module, id),
                )
            },
        )
        .await;
    }
    let Some(cvid) = body.cvid else {
        return zoho_error(
            StatusCode::BAD_REQUEST,
            "MANDATORY_NOT_FOUND",
            "either cvid or ids is required",
        );
    };
    let _territory = body.territory;
    gated(&sb, &headers, "mass_delete_view", &module, &[], |inner, _| {
        let occupied = match inner.occupied.get_mut(&module) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if occupied || inner.jobs.values().any(|j| j.status != "COMPLETED" && j.status != "FAILED") {
            return answered((StatusCode::BAD_REQUEST, Json(json!({"data": [{"code": "ALREADY_SCHEDULED", "details": {}, "message": "a mass delete job is already running", "status": "error"}]}))).into_response());
        }
        let Some(view) = inner.views.get(&(module.clone(), cvid.clone())).cloned() else {
            return answered(zoho_error(StatusCode::BAD_REQUEST, "INVALID_DATA", "the cvid given seems to be invalid"));
        };
        let remaining: Vec<String> = {
            let records = inner.records.get(&module);
            view.into_iter().filter(|id| records.is_some_and(|r| r.contains(id))).collect()
        };
        if remaining.is_empty() {
            return answered((StatusCode::BAD_REQUEST, Json(json!({"data": [{"code": "NO_RECORDS_FOUND", "details": {}, "message": "no records found in the view", "status": "error"}]}))).into_response());
        }
        inner.job_counter += 1;
        let job_id = format!("36523970{:011}", inner.job_counter);
        inner.stats.jobs_scheduled += 1;
        inner.jobs.insert(job_id.clone(), Job {
            module: module.clone(),
            total: remaining.len() as i64,
            remaining,
            deleted: 0,
            failed: 0,
            status: "SCHEDULED",
        });
        Acted {
            response: Json(json!({"data": [{"code": "SUCCESS", "details": {"job_id": job_id}, "message": "mass delete scheduled successfully", "status": "success"}]})).into_response(),
            mutated: true,
        }
    })
    .await
}

/// `GET /{module}/actions/mass_delete?job_id=…`: each poll advances the job.
async fn get_mass_delete_status(
    State(sb): State<Sandbox>,
    Path((_version, module, a, b)): Path<(String, String, String, String)>,
    Query(counted): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let query: IdsQuery = IdsQuery {
        ids: counted.get("ids").cloned(),
        wf_trigger: counted.get("wf_trigger").cloned(),
        job_id: counted.get("job_id").cloned(),
    };
    if a == "actions" && b == "count" {
        return gated(&sb, &headers, "record_count", &module, &[], |inner, _| {
            answered(super::bulk::record_count(inner, &module, &counted))
        })
        .await;
    }
    if a == "actions" && b == "count" {
        return gated(&sb, &headers, "record_count", &module, &[], |inner, _| {
            answered(super::bulk::record_count(inner, &module, &counted))
        })
        .await;
    }
    if a != "actions" || b != "mass_delete" {
        return zoho_error(
            StatusCode::NOT_FOUND,
            "INVALID_URL_PATTERN",
            "the url is invalid",
        );
    }
    let job_id = query.job_id.unwrap_or_default();
    gated(&sb, &headers, "mass_delete_status", &module, &[], |inner, faults| {
        match inner.job_poll_answer {
            Some(JobPollAnswer::NotFound) => {
                return answered(zoho_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Empty response"));
            }
            Some(JobPollAnswer::NoContent) => return answered(StatusCode::NO_CONTENT.into_response()),
            Some(JobPollAnswer::Failed) | None => {}
        }
        let Some(mut job) = inner.jobs.get(&job_id).cloned() else {
            return answered(zoho_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Empty response"));
        };
        if inner.job_poll_answer == Some(JobPollAnswer::Failed) {
            job.status = "FAILED";
        }
        match job.status {
            "SCHEDULED" => job.status = "RUNNING",
            "RUNNING" => {
                let n = faults.job_records_per_poll.max(1).min(job.remaining.len());
                let batch: Vec<String> = job.remaining.drain(..n).collect();
                for id in batch {
                    if inner.records.get_mut(&job.module).is_some_and(|r| r.remove(&id)) {
                        put_in_bin(inner, &job.module, &id);
                        job.deleted += 1;
                        inner.stats.deleted += 1;
                    } else {
                        job.failed += 1;
                    }
                }
                if job.remaining.is_empty() {
                    job.status = "COMPLETED";
                }
            }
            _ => {}
        }
        let answer = json!({"data": [{"Status": job.status, "Total_Count": job.total, "Deleted_Count": job.deleted, "Failed_Count": job.failed}]});
        inner.jobs.insert(job_id.clone(), job);
        answered(Json(answer).into_response())
    })
    .await
}
