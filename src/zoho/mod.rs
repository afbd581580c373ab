//! The Zoho CRM API client: auth, the delete endpoints, and turning answers
//! into per-ID results or a classified [`ZohoError`]. It knows nothing of the
//! queue.
//!
//! * `vocab.rs`: Zoho's codes, job phases and hard limits as types;
//! * `call.rs`: one [`Call`] per batch — what is sent and what a dry run shows;
//! * `answer.rs`: answers → [`BatchAnswer`] or a [`ZohoError`];
//! * `auth.rs`: the refresh-token grant and the token cache;
//! * here: the client of one org ([`ZohoClient::new`]): slots, rate, the
//!   401 repeat, and what every endpoint's answer shares (429, 5xx, token
//!   and permission codes).
//!
//! Adding a Zoho operation: a [`Call`] variant. Adding an answer: its code
//! in `vocab.rs`, its reading in `answer.rs`, its decision in the worker's
//! `outcome.rs`. An org setting: a key of `[zoho]` or `[limits]`, read in
//! [`ZohoClient::new`].
//!
//! Every API call passes two gates, in this order: a [`CallSlot`] (the
//! concurrency cap, `limits.max_concurrency`) and then a token from the rate
//! limiter (`limits.requests_per_second`, `limits.burst`). The delete methods
//! take a `&CallSlot`, so no call can skip the cap, and wait on the limiter
//! themselves, so none can skip the rate — including the repeat after a 401.

mod answer;
mod auth;
mod bulk;
mod call;
mod coql;
pub mod criteria;
mod error;
mod modules;
mod recycle;
mod view;
pub mod vocab;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use answer::{BatchAnswer, EMPTY_ANSWER, IdResult};
pub use auth::{AccessToken, TokenInfo, TokenSource, api_domain_for, data_centre_of};
pub use bulk::{
    BULK_JOB_CREDITS, BULK_PAGE, BulkDownload, BulkFrom, BulkJob, BulkResult, BulkState, CountOf,
    read_result_ids,
};
pub use call::Call;
pub use coql::{COQL_PAGE, CoqlPage, coql_credits};
pub use error::ZohoError;
pub use recycle::{BIN_LOOKUP_IDS, DELETED_PAGE, DELETED_PAGE_CREDITS, DeletedPage, DeletedRecord};
pub use view::{VIEW_PAGE, VIEW_PAGE_CREDITS, ViewCursor, ViewPage};
pub use vocab::{
    CallCode, JobPhase, JobStatus, MAX_IDS_PER_DELETE, MAX_IDS_PER_MASS_DELETE,
    MAX_RECORDS_PER_VIEW_JOB, ResultCode, ScheduleAnswer,
};

use answer::{bare_answer, batch_answer, job_status, schedule_answer};
use call::with_segments;

use crate::config::{ConfigError, LimitsConfig, ZohoConfig};
use crate::org::OrgId;

/// Permission to have one call in flight. Hold it for the whole call.
pub struct CallSlot {
    _permit: OwnedSemaphorePermit,
}

/// One org's client: its token cache, its rate limiter and its call slots
/// are the org's own, so each is keyed by the org that keys the client.
pub struct ZohoClient {
    org: OrgId,
    http: reqwest::Client,
    auth: TokenSource,
    api_domain: Option<String>,
    api_version: String,
    /// The rate gate: shared by every task, so the org's rate holds whatever
    /// the number of workers.
    limiter: DefaultDirectRateLimiter,
    /// The concurrency gate: `max_concurrency` permits.
    slots: Arc<Semaphore>,
    credits: Credits,
    /// How long a call may take (`zoho.request_timeout_ms`): a batch's call
    /// starts no later than this before its lease runs out.
    request_timeout: Duration,
    /// Requests sent to the CRM API (token requests not included).
    calls: std::sync::atomic::AtomicU64,
}

impl ZohoClient {
    /// Build `org`'s client from its `[zoho]` and `[limits]` sections.
    /// Fails if the credentials are not set.
    pub fn new(
        org: OrgId,
        zoho: &ZohoConfig,
        limits: &LimitsConfig,
    ) -> Result<ZohoClient, ConfigError> {
        zoho.require_credentials()?;
        let http = reqwest::Client::builder()
            // A call with no answer in this time is abandoned and retried as ambiguous.
            .timeout(Duration::from_millis(zoho.request_timeout_ms))
            // A connect failure is not ambiguous: nothing reached Zoho.
            .connect_timeout(Duration::from_millis(zoho.connect_timeout_ms))
            .user_agent(concat!("zdel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Load(format!("HTTP client: {e}")))?;
        let auth = TokenSource::new(
            http.clone(),
            &zoho.accounts_url,
            zoho.client_id.clone(),
            zoho.client_secret.clone(),
            zoho.refresh_token.clone(),
            Duration::from_millis(zoho.token_refresh_margin_ms),
            Duration::from_millis(zoho.token_retry_ms),
        );
        let rate = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        let slots = limits.max_concurrency.max(1) as usize;
        Ok(ZohoClient {
            org,
            http,
            auth,
            api_domain: Some(zoho.api_domain.trim_end_matches('/').to_string())
                .filter(|d| !d.is_empty()),
            api_version: zoho.api_version.clone(),
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            slots: Arc::new(Semaphore::new(slots)),
            credits: Credits::default(),
            request_timeout: Duration::from_millis(zoho.request_timeout_ms),
            calls: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The org this client calls for.
    pub fn org(&self) -> &OrgId {
        &self.org
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

    /// What this client's calls spent and heard about credits.
    pub fn credits(&self) -> &Credits {
        &self.credits
    }

    /// Requests this client sent to the CRM API (a 401 repeated after a
    /// token refresh counts twice; token requests are not counted).
    pub fn calls_made(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn token_refreshes(&self) -> u64 {
        self.auth.refresh_count()
    }

    /// Fetch a fresh token now: checks that the credentials work.
    pub async fn check_credentials(&self) -> Result<TokenInfo, ZohoError> {
        self.auth.force_refresh().await
    }

    /// Send one batch's call: the call `describe` shows is the call sent.
    /// `module` and the IDs are validated before they are queued (the
    /// store's CHECK constraints); they still go in as path segments and
    /// query parameters, never spliced raw.
    ///
    /// `lease_ends`: when the rows' lease runs out. A call that could not
    /// start by then less the request timeout is not sent
    /// ([`ZohoError::NotSent`]): held up past it, this worker may have lost
    /// the rows to another, and the same IDs would go out twice.
    pub async fn send(
        &self,
        _slot: &CallSlot,
        call: &Call<'_>,
        lease_ends: tokio::time::Instant,
    ) -> Result<BatchAnswer, ZohoError> {
        let latest_start = lease_ends
            .checked_sub(self.request_timeout)
            .unwrap_or(lease_ends);
        let (status, body) = self
            .call_by(call.operation(), Some(latest_start), |base| {
                call.request(&self.http, base)
            })
            .await?;
        match call {
            Call::DeletePhoto { record_id, .. } => bare_answer(status, &body, record_id),
            _ => batch_answer(status, &body, call.ids()),
        }
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

    /// `GET /{module}?fields=id&per_page=1`: one harmless read, to learn
    /// before a run whether the token may touch `module` at all (a token
    /// without the module's scope gets `OAUTH_SCOPE_MISMATCH` here as it
    /// would on every delete). `Ok(http_status)` when Zoho answered it.
    pub async fn probe_read(&self, _slot: &CallSlot, module: &str) -> Result<u16, ZohoError> {
        let (status, answer) = self
            .call("probe_read", |base| {
                self.http
                    .get(with_segments(base, &[module]))
                    .query(&[("fields", "id"), ("per_page", "1")])
            })
            .await?;
        // 200 with records, 204 with none: both say the token may read it.
        if (200..300).contains(&status) {
            return Ok(status);
        }
        Err(answer::whole_call_error(status, &answer))
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
    /// repeating it with a replacement token if Zoho says the token is
    /// invalid (see below). Transport errors, 429, 5xx and whole-call auth and permission
    /// errors are classified here; the caller reads the rest of the answer.
    async fn call(
        &self,
        operation: &'static str,
        build: impl Fn(&url::Url) -> reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), ZohoError> {
        self.call_by(operation, None, build).await
    }

    /// [`ZohoClient::call`], sent only if it can start by `latest_start`.
    async fn call_by(
        &self,
        operation: &'static str,
        latest_start: Option<tokio::time::Instant>,
        build: impl Fn(&url::Url) -> reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), ZohoError> {
        match self
            .call_answer(operation, latest_start, false, build)
            .await?
        {
            Answer::Json(status, value) => Ok((status, value)),
            Answer::Raw(response) => Ok((response.status().as_u16(), serde_json::Value::Null)),
        }
    }

    /// [`ZohoClient::call`] for a download: a 200 that is not JSON comes
    /// back unread, for the caller to stream.
    async fn call_raw(
        &self,
        operation: &'static str,
        build: impl Fn(&url::Url) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ZohoError> {
        self.call_answer(operation, None, true, build).await
    }

    async fn call_answer(
        &self,
        operation: &'static str,
        latest_start: Option<tokio::time::Instant>,
        raw: bool,
        build: impl Fn(&url::Url) -> reqwest::RequestBuilder,
    ) -> Result<Answer, ZohoError> {
        let too_late = || {
            ZohoError::NotSent {
            message: "held up after the batch was claimed (a frozen process, or a long wait for the rate limiter) until its lease would run out before an answer could come; the rows go back to the queue".into(),
        }
        };
        let mut token = self.auth.token().await?;
        // A rejected token is replaced by whatever another task already
        // fetched, which may predate the same revocation: if that is
        // rejected too, by a refresh of our own. A token we refreshed
        // ourselves and Zoho still rejects is not a timing problem.
        let mut refreshed_ourselves = false;
        loop {
            let base = self.base_url(&token)?;
            let started = Instant::now();
            match latest_start {
                Some(latest) => {
                    tokio::time::timeout_at(latest, self.limiter.until_ready())
                        .await
                        .map_err(|_| too_late())?;
                    if tokio::time::Instant::now() > latest {
                        return Err(too_late());
                    }
                }
                None => self.limiter.until_ready().await,
            }
            let waited = started.elapsed();
            metrics::histogram!("zdel_rate_limiter_wait_seconds").record(waited.as_secs_f64());
            let request = build(&base).header(
                reqwest::header::AUTHORIZATION,
                format!("Zoho-oauthtoken {}", token.secret.expose_secret()),
            );
            let sent = Instant::now();
            self.calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (seen, answer) = send_and_read(request, raw).await;
            self.credits.note(seen);
            let status = match &answer {
                Ok(Answer::Json(status, _)) => status.to_string(),
                Ok(Answer::Raw(response)) => response.status().as_u16().to_string(),
                Err(CallError::TokenRejected(_)) => "401".to_string(),
                Err(CallError::Zoho(e)) => e
                    .http_status()
                    .map_or_else(|| "none".to_string(), |s| s.to_string()),
            };
            metrics::counter!("zdel_zoho_calls_total", "operation" => operation, "status" => status).increment(1);
            metrics::histogram!("zdel_zoho_call_duration_seconds", "operation" => operation)
                .record(sent.elapsed().as_secs_f64());
            match answer {
                Err(CallError::TokenRejected(_)) if !refreshed_ourselves => {
                    let (fresh, refreshed) = self.auth.replace_rejected(token.generation).await?;
                    token = fresh;
                    refreshed_ourselves = refreshed;
                }
                // Not a timing problem: the token is as fresh as it gets.
                // Nothing ran; every call would meet the same answer.
                Err(CallError::TokenRejected(code)) => {
                    return Err(ZohoError::CredentialsRejected {
                        code,
                        message: "Zoho rejected an access token it had just issued: the refresh token's grant is revoked or belongs to another org or data centre (check zoho.accounts_url and zoho.api_domain), then `zdel resume --all`".into(),
                    });
                }
                Err(CallError::Zoho(e)) => return Err(e),
                Ok(answer) => return Ok(answer),
            }
        }
    }

    fn base_url(&self, token: &AccessToken) -> Result<url::Url, ZohoError> {
        let domain = self.api_domain.as_deref().unwrap_or(&token.api_domain);
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

/// A call, tried again after a transient failure (timeout, 5xx, 429, the
/// token endpoint's outage), up to `tries` times in all, with a growing
/// pause (after a 429: Zoho's `Retry-After`); Zoho's last error as it came.
/// For the one-off reads (selection pages, checks, recycle-bin pages); the
/// worker's deletes retry through the queue instead.
pub async fn retrying<T, F, Fut>(tries: u32, mut call: F) -> Result<T, ZohoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ZohoError>>,
{
    let mut failed = 0;
    loop {
        match call().await {
            Ok(page) => return Ok(page),
            Err(
                e @ (ZohoError::Transient { .. }
                | ZohoError::RateLimited { .. }
                | ZohoError::Unavailable { .. }),
            ) if failed + 1 < tries => {
                failed += 1;
                let pause = match &e {
                    ZohoError::RateLimited {
                        retry_after: Some(after),
                        ..
                    } => *after,
                    _ => Duration::from_millis(200 << failed),
                };
                tracing::warn!(error = %e, try_no = failed, "a call failed; asking again");
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// An answer: JSON read, or (a download) the response still unread.
enum Answer {
    Json(u16, serde_json::Value),
    Raw(reqwest::Response),
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

/// Send, then classify what every endpoint shares: transport failures, 429,
/// 5xx, and whole-call token and permission errors.
async fn send_and_read(
    request: reqwest::RequestBuilder,
    raw: bool,
) -> (Seen, Result<Answer, CallError>) {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return (Seen::default(), Err(transport_error(e))),
    };
    let status = response.status().as_u16();
    let seen = Seen {
        // Zoho counts a call that reached it; a 429 was turned away.
        charged: status != 429,
        remaining: response
            .headers()
            .get(CREDITS_REMAINING)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok()),
    };
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if raw && status == 200 && !is_json {
        return (seen, Ok(Answer::Raw(response)));
    }
    (
        seen,
        read_answer(status, response)
            .await
            .map(|(status, value)| Answer::Json(status, value)),
    )
}

async fn read_answer(
    status: u16,
    response: reqwest::Response,
) -> Result<(u16, serde_json::Value), CallError> {
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
    let (code, message) = answer::whole_call_code(&value);
    if let Some(code) = code {
        if code.is_token_rejected() {
            return Err(CallError::TokenRejected(code.as_str().to_string()));
        }
        if code.is_permission_denied() {
            return Err(ZohoError::LanePaused {
                code: code.as_str().to_string(),
                message: message.unwrap_or_else(|| "permission denied".into()),
                http_status: Some(status),
            }
            .into());
        }
    }
    Ok((status, value))
}

/// The header Zoho adds once half the day's credits are used.
pub const CREDITS_REMAINING: &str = "x-api-credits-remaining";

/// How long a lower remaining-credits figure beats a higher one that
/// arrives after it (see [`Credits`]).
const OUT_OF_ORDER_MS: i64 = 60_000;

/// What one call's answer said about credits.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// The call reached Zoho and was not turned away: it cost a credit.
    charged: bool,
    remaining: Option<i64>,
}

/// Credits this client spent and the last remaining figure Zoho sent. The
/// worker moves the spent count into its persistent ledger.
#[derive(Default)]
pub struct Credits {
    spent: std::sync::atomic::AtomicU64,
    last_remaining: std::sync::Mutex<Option<(i64, i64)>>,
}

impl Credits {
    fn note(&self, seen: Seen) {
        if seen.charged {
            self.spent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(remaining) = seen.remaining {
            let now = crate::clock::now_ms();
            let mut last = crate::sync::lock(&self.last_remaining);
            // Answers of calls made together arrive in any order, and the
            // figure only falls within a day: a higher one right after a
            // lower one is an older answer.
            let newer = match *last {
                Some((previous, at)) => remaining <= previous || now - at > OUT_OF_ORDER_MS,
                None => true,
            };
            if newer {
                *last = Some((remaining, now));
            }
        }
    }

    /// Credits spent since the last call of this method.
    pub fn take_spent(&self) -> u64 {
        self.spent.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    /// Credits spent and not yet taken into the ledger.
    pub fn unrecorded(&self) -> u64 {
        self.spent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Put back credits [`Credits::take_spent`] took but could not record.
    pub fn give_back(&self, spent: u64) {
        self.spent
            .fetch_add(spent, std::sync::atomic::Ordering::Relaxed);
    }

    /// Zoho's last `X-API-CREDITS-REMAINING` and when it came (ms since the epoch).
    pub fn last_remaining(&self) -> Option<(i64, i64)> {
        *crate::sync::lock(&self.last_remaining)
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
