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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use serde::Deserialize;
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

/// Counters for the summary and metrics.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub calls: AtomicU64,
    pub rate_wait_micros: AtomicU64,
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
    pub stats: ClientStats,
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
            stats: ClientStats::default(),
        })
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

    /// Calls that can start right now without waiting for a slot.
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    pub fn token_refreshes(&self) -> u64 {
        self.auth.refresh_count()
    }

    /// Fetch a fresh token now: checks that the credentials work.
    pub async fn check_credentials(&self) -> Result<(), ZohoError> {
        self.auth.force_refresh().await
    }

    /// `DELETE /crm/{version}/{module}?ids=…&wf_trigger=…` for up to 100 IDs.
    /// `module` and `ids` must already be validated (the store's CHECK
    /// constraints guarantee it for queued rows); they are still passed as
    /// URL path segment and query parameters, never spliced raw.
    pub async fn delete_records(
        &self,
        _slot: &CallSlot,
        module: &str,
        ids: &[&str],
        wf_trigger: bool,
    ) -> Result<BatchAnswer, ZohoError> {
        let ids = ids.join(",");
        let wf = if wf_trigger { "true" } else { "false" };
        self.call_with_token(|base| {
            let mut url = base.clone();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.push(module);
            }
            url.query_pairs_mut()
                .append_pair("ids", &ids)
                .append_pair("wf_trigger", wf);
            self.http.delete(url)
        })
        .await
    }

    /// Send a request built by `build` (given the `/crm/{version}` base URL),
    /// repeating it once after a token refresh if Zoho says the token is invalid.
    async fn call_with_token(
        &self,
        build: impl Fn(&url::Url) -> reqwest::RequestBuilder,
    ) -> Result<BatchAnswer, ZohoError> {
        let mut token = self.auth.token().await?;
        let mut refreshed = false;
        loop {
            let base = self.base_url(&token)?;
            let started = Instant::now();
            self.limiter.until_ready().await;
            self.stats
                .rate_wait_micros
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            let request = build(&base).header(
                reqwest::header::AUTHORIZATION,
                format!("Zoho-oauthtoken {}", token.secret.expose_secret()),
            );
            match send_and_read(request).await {
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

/// The envelope of a batch answer or a whole-call error.
#[derive(Deserialize, Default)]
struct Envelope {
    data: Option<Vec<Entry>>,
    contact_roles: Option<Vec<Entry>>,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    code: Option<String>,
    message: Option<String>,
    details: Option<EntryDetails>,
}

#[derive(Deserialize)]
struct EntryDetails {
    id: Option<serde_json::Value>,
}

async fn send_and_read(request: reqwest::RequestBuilder) -> Result<BatchAnswer, CallError> {
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
    let envelope: Envelope = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(entries) = envelope.data.or(envelope.contact_roles) {
        let results: Vec<IdResult> = entries
            .into_iter()
            .filter_map(|e| {
                let id = match e.details?.id? {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(IdResult {
                    id,
                    code: e.code.unwrap_or_else(|| "UNKNOWN".into()),
                    message: e.message.unwrap_or_default(),
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
    let code = envelope.code.unwrap_or_else(|| format!("HTTP_{status}"));
    let message = envelope
        .message
        .unwrap_or_else(|| format!("Zoho answered HTTP {status} without per-ID results"));
    if TOKEN_CODES.contains(&code.as_str()) {
        return Err(CallError::TokenRejected(code));
    }
    if PERMISSION_CODES.contains(&code.as_str()) {
        return Err(ZohoError::LanePaused {
            code,
            message,
            http_status: Some(status),
        }
        .into());
    }
    if (200..300).contains(&status) {
        // A success status without readable results: we cannot tell what happened.
        return Err(ZohoError::Transient {
            code: "UNREADABLE_ANSWER".into(),
            message: format!("Zoho answered HTTP {status} with a body zdel cannot read"),
            http_status: Some(status),
            ambiguous: true,
        }
        .into());
    }
    Err(ZohoError::Rejected {
        code,
        message,
        http_status: Some(status),
    }
    .into())
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
