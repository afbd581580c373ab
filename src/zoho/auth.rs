//! OAuth refresh-token grant and the access-token cache.
//!
//! Zoho allows 10 access tokens per refresh token per 10 minutes and 15
//! live ones, so the token is cached and refreshed by one task at a time:
//! the cache sits behind an async mutex held across the refresh, and every
//! other caller waits for that refresh instead of starting its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::ZohoError;

/// A cached access token. `generation` tells tokens apart without comparing secrets.
pub struct AccessToken {
    pub secret: SecretString,
    pub generation: u64,
    /// The API host named by the token answer, e.g. `https://www.zohoapis.eu`;
    /// if the answer names none, the host of the accounts server's data
    /// centre ([`api_domain_for`]).
    pub api_domain: String,
    /// The scopes the token answer names, when it names them.
    pub scope: Option<String>,
    /// Refresh from here on...
    refresh_at: Instant,
    /// ...but keep using it until here if refreshes fail.
    expires_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[REDACTED]")
            .field("generation", &self.generation)
            .field("api_domain", &self.api_domain)
            .field("scope", &self.scope)
            .finish()
    }
}

/// What a token answer said, besides the secret: for `zdel check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The API host calls go to (named by the answer, or the data centre's).
    pub api_domain: String,
    /// The scopes the answer names, if it names them.
    pub scope: Option<String>,
}

pub struct TokenSource {
    http: reqwest::Client,
    token_url: String,
    /// Where the API is when the token answer does not say.
    fallback_api_domain: String,
    client_id: String,
    client_secret: SecretString,
    refresh_token: SecretString,
    refresh_margin: Duration,
    /// Held across a refresh so that only one task refreshes at a time.
    cache: Mutex<Option<Arc<AccessToken>>>,
    /// After the token endpoint failed, further refreshes fail fast until
    /// this instant instead of hammering it (Zoho throttles token requests).
    unavailable_until: std::sync::Mutex<Option<(Instant, ZohoError)>>,
    retry_after_failure: Duration,
    refreshes: AtomicU64,
}

/// The token endpoint's answer. Errors come back with HTTP 200 too, so the
/// body decides: no `access_token` means failure.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    api_domain: Option<String>,
    expires_in: Option<u64>,
    /// Old form: seconds here, and `expires_in` in milliseconds.
    expires_in_sec: Option<u64>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Lifetime assumed when the answer names none: Zoho's documented one hour.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Wait after the token endpoint says "too many requests" ("Access Denied",
/// or a 429): it counts a window of minutes (10 tokens per 10 minutes), so
/// retrying sooner only extends the block. Every token request of the
/// process waits it out together.
const TOKEN_THROTTLE_BACKOFF: Duration = Duration::from_secs(60);

/// The data centre `accounts_url` names (`US`, `EU`, `IN`, `AU`, `JP`,
/// `CN`, `CA`, `SA`, `UK`), if it is one of Zoho's.
pub fn data_centre_of(accounts_url: &str) -> Option<&'static str> {
    let host = url::Url::parse(accounts_url.trim_end_matches('/'))
        .ok()?
        .host_str()?
        .to_string();
    Some(match host.as_str() {
        "accounts.zoho.com" => "US",
        "accounts.zoho.eu" => "EU",
        "accounts.zoho.in" => "IN",
        "accounts.zoho.com.au" => "AU",
        "accounts.zoho.jp" => "JP",
        "accounts.zoho.com.cn" => "CN",
        "accounts.zohocloud.ca" => "CA",
        "accounts.zoho.sa" => "SA",
        "accounts.zoho.uk" => "UK",
        _ => return None,
    })
}

/// The API host of the data centre whose accounts server is `accounts_url`
/// (accounts.zoho.eu → https://www.zohoapis.eu, accounts.zohocloud.ca →
/// https://www.zohoapis.ca, …). An accounts URL of no known data centre (a
/// proxy, a test server) is taken to serve the API too: its own origin.
pub fn api_domain_for(accounts_url: &str) -> String {
    let trimmed = accounts_url.trim_end_matches('/');
    let Ok(url) = url::Url::parse(trimmed) else {
        return trimmed.to_string();
    };
    let host = url.host_str().unwrap_or_default();
    let tld = host
        .strip_prefix("accounts.zoho.")
        .or_else(|| host.strip_prefix("accounts.zohocloud."));
    match tld {
        Some(tld) if !tld.is_empty() => format!("https://www.zohoapis.{tld}"),
        _ => url.origin().ascii_serialization(),
    }
}

impl TokenSource {
    pub fn new(
        http: reqwest::Client,
        accounts_url: &str,
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
        refresh_margin: Duration,
        retry_after_failure: Duration,
    ) -> TokenSource {
        TokenSource {
            http,
            fallback_api_domain: api_domain_for(accounts_url),
            token_url: format!("{}/oauth/v2/token", accounts_url.trim_end_matches('/')),
            client_id,
            client_secret,
            refresh_token,
            refresh_margin,
            cache: Mutex::new(None),
            unavailable_until: std::sync::Mutex::new(None),
            retry_after_failure,
            refreshes: AtomicU64::new(0),
        }
    }

    /// How many refreshes this source has made.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a fresh one if it is near expiry.
    /// While refreshes fail (the endpoint down or throttling us), a cached
    /// token that has not yet expired keeps being used.
    pub async fn token(&self) -> Result<Arc<AccessToken>, ZohoError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(t) = cache.as_ref()
            && now < t.refresh_at
        {
            return Ok(t.clone());
        }
        match self.refresh().await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *cache = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e @ (ZohoError::Unavailable { .. } | ZohoError::RateLimited { .. })) => {
                match cache.as_ref() {
                    Some(t) if now < t.expires_at => Ok(t.clone()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Zoho answered 401 to `rejected`. Refresh, unless another task already
    /// replaced that token, in which case use its replacement. The flag
    /// says whether this call refreshed (the token is as fresh as it gets).
    pub async fn replace_rejected(
        &self,
        rejected: u64,
    ) -> Result<(Arc<AccessToken>, bool), ZohoError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref()
            && t.generation != rejected
        {
            return Ok((t.clone(), false));
        }
        *cache = None;
        let fresh = Arc::new(self.refresh().await?);
        *cache = Some(fresh.clone());
        Ok((fresh, true))
    }

    /// Drop the cached token and fetch a new one now (used to probe whether
    /// rejected credentials have been fixed).
    pub async fn force_refresh(&self) -> Result<TokenInfo, ZohoError> {
        let mut cache = self.cache.lock().await;
        let fresh = self.refresh().await?;
        let info = TokenInfo {
            api_domain: fresh.api_domain.clone(),
            scope: fresh.scope.clone(),
        };
        *cache = Some(Arc::new(fresh));
        Ok(info)
    }

    async fn refresh(&self) -> Result<AccessToken, ZohoError> {
        {
            let failed = self
                .unavailable_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((until, error)) = failed.as_ref()
                && Instant::now() < *until
            {
                return Err(error.clone());
            }
        }
        let result = match self.refresh_once().await {
            // The endpoint is down, failing or throttling us: nothing reached
            // the CRM API, and no token request goes out until the wait is over.
            Err(failure @ (ZohoError::Transient { .. } | ZohoError::RateLimited { .. })) => {
                let (code, message, wait) = match failure {
                    ZohoError::RateLimited {
                        retry_after,
                        message,
                    } => (
                        "TOKEN_THROTTLED".to_string(),
                        message,
                        retry_after.unwrap_or(TOKEN_THROTTLE_BACKOFF),
                    ),
                    other => (
                        other.code().to_string(),
                        match other {
                            ZohoError::Transient { message, .. } => message,
                            _ => String::new(),
                        },
                        self.retry_after_failure,
                    ),
                };
                let error = ZohoError::Unavailable {
                    code,
                    message: format!(
                        "{message}; no call was made, no token is asked for in the next {} s",
                        wait.as_secs()
                    ),
                    retry_after: wait,
                };
                *self
                    .unavailable_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now() + wait, error.clone()));
                Err(error)
            }
            other => other,
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("zdel_token_refreshes_total", "result" => outcome).increment(1);
        result
    }

    async fn refresh_once(&self) -> Result<AccessToken, ZohoError> {
        let generation = self.refreshes.fetch_add(1, Ordering::Relaxed) + 1;
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
            ("refresh_token", self.refresh_token.expose_secret()),
        ];
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ZohoError::Transient {
                code: "TOKEN_ENDPOINT_UNREACHABLE".into(),
                message: format!("could not reach the token endpoint: {}", e.without_url()),
                http_status: None,
                ambiguous: false,
            })?;
        let status = response.status();
        if status.as_u16() == 429 {
            return Err(ZohoError::RateLimited {
                retry_after: Some(TOKEN_THROTTLE_BACKOFF),
                message: "the token endpoint answered 429".into(),
            });
        }
        if status.is_server_error() {
            return Err(ZohoError::Transient {
                code: format!("HTTP_{}", status.as_u16()),
                message: "the token endpoint failed".into(),
                http_status: Some(status.as_u16()),
                ambiguous: false,
            });
        }
        let body = response.bytes().await.map_err(|e| ZohoError::Transient {
            code: "TOKEN_ENDPOINT_DROPPED".into(),
            message: format!("the token answer was cut off: {}", e.without_url()),
            http_status: Some(status.as_u16()),
            ambiguous: false,
        })?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| ZohoError::Transient {
                code: "TOKEN_ANSWER_UNREADABLE".into(),
                message: format!("the token endpoint answered HTTP {status} with a body that is not a token answer"),
                http_status: Some(status.as_u16()),
                ambiguous: false,
            })?;
        match answer.access_token {
            Some(token) if !token.is_empty() => {
                let lifetime = match (answer.expires_in_sec, answer.expires_in) {
                    (Some(secs), _) => Duration::from_secs(secs),
                    (None, Some(secs)) => Duration::from_secs(secs),
                    (None, None) => DEFAULT_TOKEN_LIFETIME,
                };
                let margin = self.refresh_margin.min(lifetime / 4);
                let now = Instant::now();
                Ok(AccessToken {
                    secret: SecretString::from(token),
                    generation,
                    api_domain: answer
                        .api_domain
                        .map(|d| d.trim_end_matches('/').to_string())
                        .filter(|d| !d.is_empty())
                        .unwrap_or_else(|| self.fallback_api_domain.clone()),
                    scope: answer.scope.filter(|s| !s.is_empty()),
                    refresh_at: now + lifetime.saturating_sub(margin),
                    expires_at: now + lifetime,
                })
            }
            _ => Err(classify_token_error(
                answer
                    .error
                    .as_deref()
                    .unwrap_or("no access_token in the answer"),
                answer.error_description.as_deref(),
            )),
        }
    }
}

fn classify_token_error(error: &str, description: Option<&str>) -> ZohoError {
    let detail = description.map(|d| format!(": {d}")).unwrap_or_default();
    match error {
        "invalid_code" => ZohoError::CredentialsRejected {
            code: "invalid_code".into(),
            message: "the refresh token is revoked, expired or from another data centre; generate a new one and set zoho.refresh_token".into(),
        },
        "invalid_client" | "invalid_client_secret" | "unauthorized_client" => {
            ZohoError::CredentialsRejected {
                code: error.to_string(),
                message: "the client id or secret is wrong, or zoho.accounts_url names another data centre; check zoho.client_id, zoho.client_secret and zoho.accounts_url".into(),
            }
        }
        "Access Denied" => ZohoError::RateLimited {
            retry_after: Some(TOKEN_THROTTLE_BACKOFF),
            message: format!("the token endpoint is throttling this client{detail}"),
        },
        other => ZohoError::Transient {
            code: "TOKEN_REFRESH_FAILED".into(),
            message: format!("the token endpoint answered {other:?}{detail}"),
            http_status: None,
            ambiguous: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::api_domain_for;

    #[test]
    fn data_centres_are_named_from_the_accounts_server() {
        assert_eq!(
            super::data_centre_of("https://accounts.zoho.eu/"),
            Some("EU")
        );
        assert_eq!(
            super::data_centre_of("https://accounts.zohocloud.ca"),
            Some("CA")
        );
        assert_eq!(super::data_centre_of("http://127.0.0.1:4010"), None);
    }

    #[test]
    fn the_api_host_follows_the_accounts_server_s_data_centre() {
        for (accounts, api) in [
            ("https://accounts.zoho.com", "https://www.zohoapis.com"),
            ("https://accounts.zoho.eu/", "https://www.zohoapis.eu"),
            ("https://accounts.zoho.in", "https://www.zohoapis.in"),
            (
                "https://accounts.zoho.com.au",
                "https://www.zohoapis.com.au",
            ),
            ("https://accounts.zoho.jp", "https://www.zohoapis.jp"),
            (
                "https://accounts.zoho.com.cn",
                "https://www.zohoapis.com.cn",
            ),
            ("https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
            ("https://accounts.zoho.sa", "https://www.zohoapis.sa"),
            ("https://accounts.zoho.uk", "https://www.zohoapis.uk"),
            // Not a Zoho data centre (a proxy, the sandbox): its own origin.
            ("http://127.0.0.1:4010", "http://127.0.0.1:4010"),
        ] {
            assert_eq!(api_domain_for(accounts), api, "{accounts}");
        }
    }
}
