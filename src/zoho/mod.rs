//! The Zoho CRM API client: auth, the delete endpoints, and turning answers
//! into per-ID results or a classified [`ZohoError`]. It knows nothing of the
//! queue.
//!
//! Every API call passes two gates, in this order: a [`CallSlot`] (the
//! concurrency cap, `limits.max_concurrency`) and then a token from the rate
//! limiter (`limits.requests_per_second`, `limits.burst`). The delete methods
//! take a `&CallSlot`, so no call can skip the cap, and wait on the limiter
//! themselves, so none can skip the rate — including the repeat after a 401.

mod auth;
mod error;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use auth::{AccessToken, TokenSource};
pub use error::{PERMISSION_CODES, TOKEN_CODES, ZohoError};

use crate::config::Config;

/// Permission to have one call in flight. Hold it for the whole call.
pub struct CallSlot {
    _permit: OwnedSemaphorePermit,
}

/// One ID's result from a batch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdResult {
    pub id: String,
    pub code: String,
    pub message: String,
}

/// A batch answer that listed per-ID results (whatever its HTTP status).
#[derive(Debug, Clone)]
pub struct BatchAnswer {
    pub http_status: u16,
    pub results: Vec<IdResult>,
}

pub struct ZohoClient {
    http: reqwest::Client,
    auth: TokenSource,
    api_domain: Option<String>,
    api_version: String,
    /// The rate gate: shared by every task, so the org's rate holds whatever
    /// the number of workers.
    limiter: DefaultDirectRateLimiter,
    /// The concurrency gate: `max_concurrency` permits.
    slots: Arc<Semaphore>,
}

impl ZohoClient {
    /// Build a client from config. Fails if the credentials are not set.
    pub fn from_config(config: &Config) -> Result<ZohoClient, crate::config::ConfigError> {
        config.require_credentials()?;
        let http = reqwest::Client::builder()
            // A call with no answer in this time is abandoned and retried as ambiguous.
            .timeout(Duration::from_millis(config.zoho.request_timeout_ms))
            // A connect failure is not ambiguous: nothing reached Zoho.
            .connect_timeout(Duration::from_millis(config.zoho.connect_timeout_ms))
            .user_agent(concat!("zdel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::config::ConfigError::Load(format!("HTTP client: {e}")))?;
        let auth = TokenSource::new(
            http.clone(),
            &config.zoho.accounts_url,
            config.zoho.client_id.clone(),
            config.zoho.client_secret.clone(),
            config.zoho.refresh_token.clone(),
            Duration::from_millis(config.zoho.token_refresh_margin_ms),
            Duration::from_millis(config.zoho.token_retry_ms),
        );
        let rate = NonZeroU32::new(config.limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.limits.burst).unwrap_or(NonZeroU32::MIN);
        let slots = config.limits.max_concurrency.max(1) as usize;
        Ok(ZohoClient {
            http,
            auth,
            api_domain: Some(config.zoho.api_domain.trim_end_matches('/').to_string())
                .filter(|d| !d.is_empty()),
            api_version: config.zoho.api_version.clone(),
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            slots: Arc::new(Semaphore::new(slots)),
        })
    }

    /// A free call slot now, if there is one.
    pub fn try_acquire_slot(&self) -> Option<CallSlot> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| CallSlot { _permit: p })
    }

    /// Wait for a free call slot (the concurrency cap).
    pub async fn acquire_slot(&self) -> CallSlot {
        let permit = self.slots.clone().acquire_owned().await;
        match permit {
            Ok(p) => CallSlot { _permit: p },
            // The semaphore is never closed; if it were, waiting forever is wrong too.
            Err(_) => unreachable!("the call-slot semaphore is never closed"),
        }
    }

    pub fn token_refreshes(&self) -> u64 {
        self.auth.refresh_count()
    }

    /// Fetch a fresh token now: checks that the credentials work.
    pub async fn check_credentials(&self) -> Result<(), ZohoError> {
        self.auth.force_refresh().await
    }

    /// `DELETE /{module}?ids=…&wf_trigger=…`, up to 100 IDs. `module` and
    /// `ids` are validated before they are queued (the store's CHECK
    /// constraints); they still go in as a path segment and query
    /// parameters, never spliced raw.
    pub async fn delete_records(
        &self,
        _slot: &CallSlot,
        module: &str,
        ids: &[&str],
        wf_trigger: bool,
    ) -> Result<BatchAnswer, ZohoError> {
        let ids = ids.join(",");
        let wf = if wf_trigger { "true" } else { "false" };
        let (status, body) = self
            .call("delete", |base| {
                let url = with_segments(base, &[module]);
                self.http
                    .delete(url)
                    .query(&[("ids", ids.as_str()), ("wf_trigger", wf)])
            })
            .await?;
        batch_answer(status, &body)
    }

    /// `DELETE /{module}/{record_id}/{related_list}?ids=…`, up to 100 related IDs.
    pub async fn delink(
        &self,
        _slot: &CallSlot,
        module: &str,
        record_id: &str,
        related_list: &str,
        related_ids: &[&str],
    ) -> Result<BatchAnswer, ZohoError> {
        let ids = related_ids.join(",");
        let (status, body) = self
            .call("delink", |base| {
                let url = with_segments(base, &[module, record_id, related_list]);
                self.http.delete(url).query(&[("ids", ids.as_str())])
            })
            .await?;
        batch_answer(status, &body)
    }

    /// `DELETE /Contacts/roles?ids=…`, up to 100 role IDs; the answer is
    /// under `contact_roles`, not `data`.
    pub async fn delete_contact_roles(
        &self,
        _slot: &CallSlot,
        role_ids: &[&str],
    ) -> Result<BatchAnswer, ZohoError> {
        let ids = role_ids.join(",");
        let (status, body) = self
            .call("contact_roles", |base| {
                let url = with_segments(base, &["Contacts", "roles"]);
                self.http.delete(url).query(&[("ids", ids.as_str())])
            })
            .await?;
        batch_answer(status, &body)
    }

    /// `DELETE /{module}/{record_id}/photo`: one record; the answer is a bare object.
    pub async fn delete_photo(
        &self,
        _slot: &CallSlot,
        module: &str,
        record_id: &str,
    ) -> Result<BatchAnswer, ZohoError> {
        let (status, body) = self
            .call("photo", |base| {
                self.http
                    .delete(with_segments(base, &[module, record_id, "photo"]))
            })
            .await?;
        bare_answer(status, &body, record_id)
    }

    /// `POST /{module}/actions/mass_delete {"ids":[…]}`, up to 500 IDs, deleted at once.
    pub async fn mass_delete_ids(
        &self,
        _slot: &CallSlot,
        module: &str,
        ids: &[&str],
    ) -> Result<BatchAnswer, ZohoError> {
        let body = serde_json::json!({ "ids": ids });
        let (status, answer) = self
            .call("mass_delete_ids", |base| {
                self.http
                    .post(with_segments(base, &[module, "actions", "mass_delete"]))
                    .json(&body)
            })
            .await?;
        batch_answer(status, &answer)
    }

    /// `POST /{module}/actions/mass_delete {"cvid":…}`: schedule the deletion
    /// of a custom view's records as a Zoho job.
    pub async fn schedule_mass_delete(
        &self,
        _slot: &CallSlot,
        module: &str,
        cvid: &str,
        territory: Option<(&str, bool)>,
    ) -> Result<ScheduleAnswer, ZohoError> {
        let mut body = serde_json::json!({ "cvid": cvid });
        if let Some((id, include_child)) = territory {
            body["territory"] = serde_json::json!({ "id": id, "include_child": include_child });
        }
        let (status, answer) = self
            .call("mass_delete_view", |base| {
                self.http
                    .post(with_segments(base, &[module, "actions", "mass_delete"]))
                    .json(&body)
            })
            .await?;
        schedule_answer(status, &answer)
    }

    /// `GET /{module}/actions/mass_delete?job_id=…`.
    pub async fn mass_delete_status(
        &self,
        _slot: &CallSlot,
        module: &str,
        job_id: &str,
    ) -> Result<JobStatus, ZohoError> {
        let (status, answer) = self
            .call("mass_delete_status", |base| {
                self.http
                    .get(with_segments(base, &[module, "actions", "mass_delete"]))
                    .query(&[("job_id", job_id)])
            })
            .await?;
        job_status(status, &answer)
    }

    /// Send a request built by `build` (given the `/crm/{version}` base URL),
    /// repeating it once after a token refresh if Zoho says the token is
    /// invalid. Transport errors, 429, 5xx and whole-call auth and permission
    /// errors are classified here; the caller reads the rest of the answer.
    async fn call(
        &self,
        operation: &'static str,
        build: impl Fn(&url::Url) -> reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), ZohoError> {
        let mut token = self.auth.token().await?;
        let mut refreshed = false;
        loop {
            let base = self.base_url(&token)?;
            let started = Instant::now();
            self.limiter.until_ready().await;
            let waited = started.elapsed();
            metrics::histogram!("zdel_rate_limiter_wait_seconds").record(waited.as_secs_f64());
            let request = build(&base).header(
                reqwest::header::AUTHORIZATION,
                format!("Zoho-oauthtoken {}", token.secret.expose_secret()),
            );
            let sent = Instant::now();
            let answer = send_and_read(request).await;
            let status = match &answer {
                Ok((status, _)) => status.to_string(),
                Err(CallError::TokenRejected(_)) => "401".to_string(),
                Err(CallError::Zoho(e)) => e
                    .http_status()
                    .map_or_else(|| "none".to_string(), |s| s.to_string()),
            };
            metrics::counter!("zdel_zoho_calls_total", "operation" => operation, "status" => status).increment(1);
            metrics::histogram!("zdel_zoho_call_duration_seconds", "operation" => operation)
                .record(sent.elapsed().as_secs_f64());
            match answer {
                Err(CallError::TokenRejected(_)) if !refreshed => {
                    token = self.auth.replace_rejected(token.generation).await?;
                    refreshed = true;
                }
                Err(CallError::TokenRejected(code)) => {
                    return Err(ZohoError::Transient {
                        code,
                        message: "Zoho rejected a freshly refreshed access token".into(),
                        http_status: Some(401),
                        ambiguous: false,
                    });
                }
                Err(CallError::Zoho(e)) => return Err(e),
                Ok(answer) => return Ok(answer),
            }
        }
    }

    fn base_url(&self, token: &AccessToken) -> Result<url::Url, ZohoError> {
        let domain = self
            .api_domain
            .as_deref()
            .or(token.api_domain.as_deref())
            .unwrap_or("https://www.zohoapis.com");
        let raw = format!("{domain}/crm/{}", self.api_version);
        url::Url::parse(&raw).map_err(|e| ZohoError::Rejected {
            code: "BAD_API_DOMAIN".into(),
            message: format!(
                "the API domain {domain:?} does not make a URL ({e}); set zoho.api_domain"
            ),
            http_status: None,
        })
    }
}

enum CallError {
    TokenRejected(String),
    Zoho(ZohoError),
}

impl From<ZohoError> for CallError {
    fn from(e: ZohoError) -> Self {
        CallError::Zoho(e)
    }
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
fn with_segments(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.extend(segments);
    }
    url
}

/// Send, then classify what every endpoint shares: transport failures, 429,
/// 5xx, and whole-call token and permission errors.
async fn send_and_read(
    request: reqwest::RequestBuilder,
) -> Result<(u16, serde_json::Value), CallError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.map_err(transport_error)?;
    if status == 429 {
        return Err(ZohoError::RateLimited {
            retry_after,
            message: "HTTP 429 TOO_MANY_REQUESTS".into(),
        }
        .into());
    }
    if status >= 500 {
        return Err(ZohoError::Transient {
            code: format!("HTTP_{status}"),
            message: format!(
                "Zoho answered HTTP {status}; the call may or may not have been carried out"
            ),
            http_status: Some(status),
            ambiguous: true,
        }
        .into());
    }
    let value: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
    };
    let (code, message) = whole_call_code(&value);
    if let Some(code) = code {
        if TOKEN_CODES.contains(&code.as_str()) {
            return Err(CallError::TokenRejected(code));
        }
        if PERMISSION_CODES.contains(&code.as_str()) {
            return Err(ZohoError::LanePaused {
                code,
                message: message.unwrap_or_else(|| "permission denied".into()),
                http_status: Some(status),
            }
            .into());
        }
    }
    Ok((status, value))
}

/// The code of a whole-call answer: top level, or the only entry of `data`
/// when that entry names no record.
fn whole_call_code(value: &serde_json::Value) -> (Option<String>, Option<String>) {
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|c| c.as_str()).map(str::to_string);
    if let Some(code) = text(value, "code") {
        return (Some(code), text(value, "message"));
    }
    if let Some([only]) = value
        .get("data")
        .and_then(|d| d.as_array())
        .map(Vec::as_slice)
        && only.pointer("/details/id").is_none()
    {
        return (text(only, "code"), text(only, "message"));
    }
    (None, None)
}

/// A batch answer: one entry per ID in `data` (or `contact_roles`), whatever
/// the HTTP status; otherwise a whole-call error.
fn batch_answer(status: u16, value: &serde_json::Value) -> Result<BatchAnswer, ZohoError> {
    let entries = value
        .get("data")
        .or_else(|| value.get("contact_roles"))
        .and_then(|d| d.as_array());
    if let Some(entries) = entries {
        let results: Vec<IdResult> = entries
            .iter()
            .filter_map(|e| {
                let id = match e.pointer("/details/id")? {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(IdResult {
                    id,
                    code: e
                        .get("code")
                        .and_then(|c| c.as_str())
                        .unwrap_or("UNKNOWN")
                        .to_string(),
                    message: e
                        .get("message")
                        .and_then(|c| c.as_str())
                        .unwrap_or("")
                        .to_string(),
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
fn bare_answer(status: u16, value: &serde_json::Value, id: &str) -> Result<BatchAnswer, ZohoError> {
    match whole_call_code(value) {
        (Some(code), message) if code != "INVALID_MODULE" && code != "INVALID_URL_PATTERN" => {
            Ok(BatchAnswer {
                http_status: status,
                results: vec![IdResult {
                    id: id.to_string(),
                    code,
                    message: message.unwrap_or_default(),
                }],
            })
        }
        _ => Err(whole_call_error(status, value)),
    }
}

/// What Zoho said to a custom-view mass delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleAnswer {
    /// The job is scheduled.
    Scheduled { job_id: String },
    /// Zoho refused it with this code (`ALREADY_SCHEDULED`, `NO_RECORDS_FOUND`, `NOT_SUPPORTED`, ...).
    Refused { code: String, message: String },
}

fn schedule_answer(status: u16, value: &serde_json::Value) -> Result<ScheduleAnswer, ZohoError> {
    let first = value.get("data").and_then(|d| d.get(0));
    if let Some(job_id) = first.and_then(|e| e.pointer("/details/job_id")) {
        let job_id = match job_id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Ok(ScheduleAnswer::Scheduled { job_id });
    }
    let source = first.unwrap_or(value);
    match source.get("code").and_then(|c| c.as_str()) {
        Some(code) if code != "SUCCESS" => Ok(ScheduleAnswer::Refused {
            code: code.to_string(),
            message: source
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_string(),
        }),
        _ if (200..300).contains(&status) => Err(ZohoError::Transient {
            code: "UNREADABLE_ANSWER".into(),
            message: format!("Zoho answered HTTP {status} to the mass delete without a job_id"),
            http_status: Some(status),
            ambiguous: true,
        }),
        _ => Err(whole_call_error(status, value)),
    }
}

/// A mass-delete job's status. Keys are capitalised in Zoho's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// `SCHEDULED`, `QUEUED`, `RUNNING`, `SUSPENDED`, `COMPLETED`, `FAILED`, or anything else.
    pub status: String,
    pub total: Option<i64>,
    pub deleted: Option<i64>,
    pub failed: Option<i64>,
}

impl JobStatus {
    /// Only `COMPLETED` and `FAILED` end a job; any other value means it is still running.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "COMPLETED" | "FAILED")
    }
}

fn job_status(status: u16, value: &serde_json::Value) -> Result<JobStatus, ZohoError> {
    match value.get("data").and_then(|d| d.get(0)) {
        Some(entry) if entry.get("Status").is_some() => {
            let count = |k: &str| entry.get(k).and_then(|v| v.as_i64());
            Ok(JobStatus {
                status: entry
                    .get("Status")
                    .and_then(|s| s.as_str())
                    .unwrap_or("UNKNOWN")
                    .to_string(),
                total: count("Total_Count"),
                deleted: count("Deleted_Count"),
                failed: count("Failed_Count"),
            })
        }
        _ => Err(whole_call_error(status, value)),
    }
}

/// A whole-call answer with no per-ID results.
fn whole_call_error(status: u16, value: &serde_json::Value) -> ZohoError {
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
        code: code.unwrap_or_else(|| format!("HTTP_{status}")),
        message: message
            .unwrap_or_else(|| format!("Zoho answered HTTP {status} without per-ID results")),
        http_status: Some(status),
    }
}

fn transport_error(e: reqwest::Error) -> CallError {
    let (code, ambiguous) = if e.is_timeout() {
        ("TIMEOUT", true)
    } else if e.is_connect() {
        ("CONNECT_FAILED", false)
    } else {
        ("CONNECTION_DROPPED", true)
    };
    let http_status = e.status().map(|s| s.as_u16());
    CallError::Zoho(ZohoError::Transient {
        code: code.into(),
        message: e.without_url().to_string(),
        http_status,
        ambiguous,
    })
}
