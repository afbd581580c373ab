//! What can go wrong with a whole call, sorted by what the caller should do.
//! The worker matches on these variants; it never parses strings.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZohoError {
    /// No usable answer: a 5xx, a timeout, a dropped connection. Retry the
    /// call later. `ambiguous`: Zoho may have carried it out before failing.
    #[error("{code}: {message}")]
    Transient {
        code: String,
        message: String,
        http_status: Option<u16>,
        ambiguous: bool,
    },
    /// Nothing was sent to the CRM API: the token endpoint could not be
    /// reached or failed. Retry after `retry_after`; it costs no attempt.
    #[error("{code}: {message}")]
    Unavailable {
        code: String,
        message: String,
        retry_after: Duration,
    },
    /// Over a limit (HTTP 429, or the token endpoint throttling us). Slow down;
    /// the call never ran, so it costs no attempt.
    #[error("rate limited by Zoho: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The token may not touch this module (`OAUTH_SCOPE_MISMATCH`,
    /// `NO_PERMISSION`, `AUTHORIZATION_FAILED`). Pause the module's lane
    /// until an operator resumes it; the rows are not at fault.
    #[error("{code}: {message}")]
    LanePaused {
        code: String,
        message: String,
        http_status: Option<u16>,
    },
    /// Zoho is running another mass action for this org or module
    /// (`ALREADY_SCHEDULED`): nothing was done. Put the work back without
    /// spending an attempt and try again later.
    #[error("ALREADY_SCHEDULED: {message}")]
    Busy {
        message: String,
        http_status: Option<u16>,
    },
    /// Zoho rejected the OAuth client or refresh token (`invalid_client`,
    /// `invalid_code`). Nothing can run until the credentials are fixed:
    /// pause all work, fail no row.
    #[error("Zoho rejected the OAuth credentials ({code}): {message}")]
    CredentialsRejected { code: String, message: String },
    /// Not sent: the batch's lease would run out before Zoho could answer
    /// (the worker was held up after claiming it — frozen, or waiting for
    /// the rate limiter), so another worker may hold its rows by now.
    /// Nothing reached Zoho: it costs no attempt.
    #[error("NOT_SENT: {message}")]
    NotSent { message: String },
    /// The call was refused for a reason no retry fixes (`INVALID_MODULE`,
    /// `INVALID_URL_PATTERN`, ...): fail the rows with this code.
    #[error("{code}: {message}")]
    Rejected {
        code: String,
        message: String,
        http_status: Option<u16>,
    },
}

impl ZohoError {
    /// Zoho's code, or ours (`HTTP_503`, `TIMEOUT`, `CONNECTION_DROPPED`, ...).
    pub fn code(&self) -> &str {
        match self {
            ZohoError::Transient { code, .. }
            | ZohoError::Unavailable { code, .. }
            | ZohoError::LanePaused { code, .. }
            | ZohoError::CredentialsRejected { code, .. }
            | ZohoError::Rejected { code, .. } => code,
            ZohoError::RateLimited { .. } => "TOO_MANY_REQUESTS",
            ZohoError::Busy { .. } => "ALREADY_SCHEDULED",
            ZohoError::NotSent { .. } => "NOT_SENT",
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            ZohoError::Transient { http_status, .. }
            | ZohoError::LanePaused { http_status, .. }
            | ZohoError::Busy { http_status, .. }
            | ZohoError::Rejected { http_status, .. } => *http_status,
            ZohoError::RateLimited { .. } => Some(429),
            ZohoError::CredentialsRejected { .. }
            | ZohoError::Unavailable { .. }
            | ZohoError::NotSent { .. } => None,
        }
    }
}
