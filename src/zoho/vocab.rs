//! Zoho's vocabulary as types: the codes its answers carry, the answers to
//! scheduling a mass delete, a job's status, and the API's hard limits.
//!
//! A code Zoho sends that is not listed here is kept verbatim in an
//! `Other` arm: zdel records it as Zoho said it, and never guesses.
//! Adding a new answer from Zoho: a variant here (with its spelling in
//! `as_str`), then the decision for it in `worker/outcome.rs`.

/// Most IDs one `DELETE /{module}?ids=…` (and a delink, a contact-role
/// delete) may carry.
pub const MAX_IDS_PER_DELETE: u32 = 100;
/// Most IDs one `POST /{module}/actions/mass_delete {"ids":[…]}` may carry.
pub const MAX_IDS_PER_MASS_DELETE: u32 = 500;
/// Most records one custom-view mass-delete job deletes.
pub const MAX_RECORDS_PER_VIEW_JOB: u32 = 50_000;

/// Declares a code enum: each listed variant with Zoho's spelling, plus
/// `Other(String)` for anything else, kept verbatim.
macro_rules! zoho_codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code not listed here, exactly as Zoho sent it.
            Other(String),
        }

        impl $name {
            /// Read Zoho's spelling; anything unlisted is kept in `Other`.
            pub fn parse(code: &str) -> $name {
                match code {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }

            /// Zoho's spelling (verbatim for `Other`).
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(code) => code,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

zoho_codes! {
    /// The code of one ID's entry in a batch answer (`data[].code`).
    ResultCode {
        /// The record is deleted (or unlinked).
        Success = "SUCCESS",
        /// "record not deleted": already gone, or never existed.
        InvalidData = "INVALID_DATA",
        /// Being merged or under review: try again later.
        RecordLocked = "RECORD_LOCKED",
        /// The record may not be deleted (a rule, a dependency).
        CannotDelete = "CANNOT_DELETE",
        /// The record awaits approval.
        NotApproved = "NOT_APPROVED",
        /// The record is in a blueprint transition.
        RecordInBlueprint = "RECORD_IN_BLUEPRINT",
        /// A fault on Zoho's side, reported for this ID.
        InternalError = "INTERNAL_ERROR",
        /// A limit was reached while processing this ID.
        LimitReached = "LIMIT_REACHED",
        /// Zoho could not process this ID now.
        CannotProcess = "CANNOT_PROCESS",
        /// Another mass action runs in this module.
        AlreadyScheduled = "ALREADY_SCHEDULED",
        /// The token's user may not delete this record.
        NoPermission = "NO_PERMISSION",
        /// A restore: Zoho will restore it later (a big restore; no job id).
        Scheduled = "SCHEDULED",
        /// A restore: the record's parent is still in the recycle bin.
        CannotRestoreWithoutParent = "CANNOT_RESTORE_WITHOUT_PARENT",
    }
}

zoho_codes! {
    /// The code of a whole-call answer: one that is about the call, not
    /// about an ID (top-level `code`, or the only entry naming no record).
    CallCode {
        /// The access token is expired or unknown: refresh and repeat.
        InvalidToken = "INVALID_TOKEN",
        /// The same, as some endpoints spell it.
        InvalidOauthToken = "INVALID_OAUTHTOKEN",
        /// The same, as other endpoints spell it.
        AuthenticationFailure = "AUTHENTICATION_FAILURE",
        /// The token lacks the scope this call needs.
        OauthScopeMismatch = "OAUTH_SCOPE_MISMATCH",
        /// The token's user may not do this.
        NoPermission = "NO_PERMISSION",
        /// The same, as some endpoints spell it.
        AuthorizationFailed = "AUTHORIZATION_FAILED",
        /// No such module.
        InvalidModule = "INVALID_MODULE",
        /// No such endpoint.
        InvalidUrlPattern = "INVALID_URL_PATTERN",
        /// Another mass delete runs in this module.
        AlreadyScheduled = "ALREADY_SCHEDULED",
        /// The custom view is empty.
        NoRecordsFound = "NO_RECORDS_FOUND",
        /// A fault on Zoho's side, reported for the whole call.
        InternalError = "INTERNAL_ERROR",
        /// Success, for answers that carry a whole-call code.
        Success = "SUCCESS",
    }
}

impl CallCode {
    /// The access token is expired or unknown: refresh it and repeat the call once.
    pub fn is_token_rejected(&self) -> bool {
        matches!(
            self,
            CallCode::InvalidToken | CallCode::InvalidOauthToken | CallCode::AuthenticationFailure
        )
    }

    /// The token may not do this here: pause, fail no row.
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            CallCode::OauthScopeMismatch | CallCode::NoPermission | CallCode::AuthorizationFailed
        )
    }

    /// The call names something Zoho does not have (a module, an endpoint).
    pub fn is_bad_target(&self) -> bool {
        matches!(self, CallCode::InvalidModule | CallCode::InvalidUrlPattern)
    }
}

zoho_codes! {
    /// A mass-delete job's `Status` in a status poll.
    JobPhase {
        Scheduled = "SCHEDULED",
        Queued = "QUEUED",
        Running = "RUNNING",
        Suspended = "SUSPENDED",
        /// The job ended; its counts are final.
        Completed = "COMPLETED",
        /// The job ended without finishing.
        Failed = "FAILED",
    }
}

impl JobPhase {
    /// Only `COMPLETED` and `FAILED` end a job; anything else, listed or
    /// not, means it is still running.
    pub fn is_final(&self) -> bool {
        matches!(self, JobPhase::Completed | JobPhase::Failed)
    }
}

/// What Zoho said to scheduling a custom-view mass delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleAnswer {
    /// The job is scheduled.
    Scheduled { job_id: String },
    /// Another mass delete runs in this module: nothing was scheduled.
    AlreadyScheduled { message: String },
    /// The view is empty: there is nothing to delete.
    NoRecords { message: String },
    /// Zoho refused it with this code (`NOT_SUPPORTED`, …).
    Refused { code: CallCode, message: String },
}

/// A mass-delete job's status. Keys are capitalised in Zoho's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub phase: JobPhase,
    pub total: Option<i64>,
    pub deleted: Option<i64>,
    pub failed: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept_verbatim() {
        for code in ["SUCCESS", "INVALID_DATA", "RECORD_LOCKED", "NOT_APPROVED"] {
            assert_eq!(ResultCode::parse(code).as_str(), code);
        }
        assert_eq!(ResultCode::parse("SUCCESS"), ResultCode::Success);
        assert_eq!(
            ResultCode::parse("SOMETHING_NEW"),
            ResultCode::Other("SOMETHING_NEW".into())
        );
        assert_eq!(ResultCode::parse("something_new").as_str(), "something_new");
        assert!(JobPhase::parse("FAILED").is_final());
        assert!(!JobPhase::parse("PAUSED_FOR_REVIEW").is_final());
        assert!(CallCode::parse("INVALID_OAUTHTOKEN").is_token_rejected());
        assert!(CallCode::parse("OAUTH_SCOPE_MISMATCH").is_permission_denied());
        assert!(!CallCode::parse("INVALID_MODULE").is_permission_denied());
    }
}
