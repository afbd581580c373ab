//! Which Zoho org a piece of work belongs to. Lanes, pauses and cool-downs,
//! the token cache, the rate limiter and the client are keyed by it. One
//! org, [`OrgId::default`], for now: the queue has no org column yet, and
//! every lane the store finds belongs to it.
//!
//! Adding an org setting: a field of the config section it belongs to,
//! read where that section is handed over (`ZohoClient::new`,
//! `WorkerSettings::new`); per-org values will come from a `[orgs.NAME]`
//! table keyed by this identifier.

use std::fmt;

/// An org's identifier, as the config names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgId(String);

impl OrgId {
    /// The name of the one org a database holds today.
    pub const DEFAULT: &'static str = "default";

    pub fn new(name: impl Into<String>) -> OrgId {
        OrgId(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for OrgId {
    fn default() -> OrgId {
        OrgId(OrgId::DEFAULT.to_string())
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}
