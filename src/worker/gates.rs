//! The gates a claim must pass, in one place: pauses (a module's lane, or
//! everything after the credentials were rejected), 429 cool-downs, a
//! token-endpoint outage, and the daily cap's IDs in flight. Every key
//! carries the org. Read by the dispatcher before each claim, written by
//! the tasks that saw Zoho's answer and by maintenance (the `pauses`
//! table, reread every poll interval, is the durable copy of the pauses).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::outcome::DEFAULT_RATE_LIMIT_COOLDOWN_MS;
use crate::org::OrgId;
use crate::store::{LaneKey, PAUSE_ALL, Pause};
use crate::sync::lock;
use crate::zoho::ZohoError;

/// What a whole-call error asks of the gates, for the caller to log and
/// make durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateChange {
    /// A permission error: the module's lane is paused until resumed.
    PausedModule { module: String },
    /// The credentials were rejected: every lane of the org is paused.
    PausedAll,
    /// The token endpoint is down: no claims of the org for `retry_after`.
    TokenOutage { retry_after: Duration },
    /// A 429: this lane cools down.
    CooledDown { cooldown: Duration },
}

#[derive(Default)]
struct State {
    paused_modules: HashSet<(OrgId, String)>,
    paused_orgs: HashSet<OrgId>,
    cooldowns: HashMap<LaneKey, Instant>,
    token_outage_until: HashMap<OrgId, Instant>,
}

/// The gates of every lane. Cheap to read; never held across an await.
#[derive(Default)]
pub struct Gates {
    state: Mutex<State>,
    /// IDs in calls in flight: they count against the daily cap before they succeed.
    in_flight: AtomicU64,
}

impl Gates {
    /// Apply what a whole-call error means for `org`, `module` and (for a
    /// 429) `lane`, at `now`. Returns the change, if any.
    pub fn on_error(
        &self,
        org: &OrgId,
        module: &str,
        lane: Option<&LaneKey>,
        error: &ZohoError,
        now: Instant,
    ) -> Option<GateChange> {
        let mut state = lock(&self.state);
        match error {
            ZohoError::LanePaused { .. } => {
                state
                    .paused_modules
                    .insert((org.clone(), module.to_string()));
                Some(GateChange::PausedModule {
                    module: module.to_string(),
                })
            }
            ZohoError::CredentialsRejected { .. } => {
                state.paused_orgs.insert(org.clone());
                Some(GateChange::PausedAll)
            }
            ZohoError::Unavailable { retry_after, .. } => {
                state
                    .token_outage_until
                    .insert(org.clone(), now + *retry_after);
                Some(GateChange::TokenOutage {
                    retry_after: *retry_after,
                })
            }
            ZohoError::RateLimited { retry_after, .. } => {
                let lane = lane?;
                let cooldown = retry_after
                    .unwrap_or(Duration::from_millis(DEFAULT_RATE_LIMIT_COOLDOWN_MS as u64));
                state.cooldowns.insert(lane.clone(), now + cooldown);
                Some(GateChange::CooledDown { cooldown })
            }
            ZohoError::Transient { .. } | ZohoError::Rejected { .. } => None,
        }
    }

    /// Replace the pauses with the durable ones (the `pauses` table, which
    /// holds the default org's).
    pub fn set_pauses(&self, org: &OrgId, pauses: &[Pause]) {
        let mut state = lock(&self.state);
        state.paused_modules.retain(|(o, _)| o != org);
        state.paused_modules.extend(
            pauses
                .iter()
                .filter(|p| p.scope != PAUSE_ALL)
                .map(|p| (org.clone(), p.scope.clone())),
        );
        if pauses.iter().any(|p| p.scope == PAUSE_ALL) {
            state.paused_orgs.insert(org.clone());
        } else {
            state.paused_orgs.remove(org);
        }
    }

    /// Every lane of `org` is paused (its credentials were rejected).
    pub fn all_paused(&self, org: &OrgId) -> bool {
        lock(&self.state).paused_orgs.contains(org)
    }

    /// The credentials work again.
    pub fn lift_all_pause(&self, org: &OrgId) {
        lock(&self.state).paused_orgs.remove(org);
    }

    /// When claims of `org` may start again after a token-endpoint outage
    /// (`None`: they may now).
    pub fn token_outage_until(&self, org: &OrgId, now: Instant) -> Option<Instant> {
        let mut state = lock(&self.state);
        match state.token_outage_until.get(org) {
            Some(&until) if until > now => Some(until),
            Some(_) => {
                state.token_outage_until.remove(org);
                None
            }
            None => None,
        }
    }

    /// The paused modules of `org`.
    pub fn paused_modules(&self, org: &OrgId) -> Vec<String> {
        let mut modules: Vec<String> = lock(&self.state)
            .paused_modules
            .iter()
            .filter(|(o, _)| o == org)
            .map(|(_, m)| m.clone())
            .collect();
        modules.sort();
        modules
    }

    /// The lanes still cooling down after a 429 at `now`.
    pub fn cooling_lanes(&self, now: Instant) -> Vec<LaneKey> {
        let mut state = lock(&self.state);
        state.cooldowns.retain(|_, until| *until > now);
        state.cooldowns.keys().cloned().collect()
    }

    /// `ids` more are in a call.
    pub fn calls_started(&self, ids: usize) {
        self.in_flight.fetch_add(ids as u64, Ordering::SeqCst);
    }

    /// `ids` are no longer in a call (answered, or given up).
    pub fn calls_ended(&self, ids: usize) {
        self.in_flight.fetch_sub(ids as u64, Ordering::SeqCst);
    }

    /// IDs in calls now.
    pub fn ids_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// How many more deletions the daily cap allows (`None`: no cap), given
/// `in_flight` IDs in calls (read first) and `done` deletions in the last
/// 24 hours (read after): a batch finishing between the two reads is then
/// counted twice (safe), never missed, so the cap is never overshot.
pub fn daily_budget(cap: u64, in_flight: u64, done: u64) -> Option<u64> {
    (cap > 0).then(|| cap.saturating_sub(done + in_flight))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Operation, Strategy};

    fn lane(module: &str) -> LaneKey {
        LaneKey {
            org: OrgId::default(),
            operation: Operation::Delete,
            module: module.into(),
            wf_trigger: true,
            strategy: Strategy::Auto,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cools_its_lane_down_for_retry_after_then_reopens() {
        let gates = Gates::default();
        let (leads, deals) = (lane("Leads"), lane("Deals"));
        let limited = ZohoError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            message: "slow".into(),
        };
        let change = gates.on_error(
            &OrgId::default(),
            "Leads",
            Some(&leads),
            &limited,
            Instant::now(),
        );
        assert_eq!(
            change,
            Some(GateChange::CooledDown {
                cooldown: Duration::from_secs(7)
            })
        );
        assert_eq!(
            gates.cooling_lanes(Instant::now()),
            std::slice::from_ref(&leads)
        );
        tokio::time::advance(Duration::from_millis(6_999)).await;
        assert_eq!(
            gates.cooling_lanes(Instant::now()),
            std::slice::from_ref(&leads)
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(gates.cooling_lanes(Instant::now()).is_empty());

        // No Retry-After: the default cool-down, for that lane only.
        let bare = ZohoError::RateLimited {
            retry_after: None,
            message: "slow".into(),
        };
        gates.on_error(
            &OrgId::default(),
            "Deals",
            Some(&deals),
            &bare,
            Instant::now(),
        );
        tokio::time::advance(Duration::from_millis(
            DEFAULT_RATE_LIMIT_COOLDOWN_MS as u64 - 1,
        ))
        .await;
        assert_eq!(gates.cooling_lanes(Instant::now()), [deals]);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(gates.cooling_lanes(Instant::now()).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_outage_stops_claims_of_its_org_until_retry_after() {
        let gates = Gates::default();
        let org = OrgId::default();
        let other = OrgId::new("other");
        let down = ZohoError::Unavailable {
            code: "HTTP_503".into(),
            message: "token endpoint down".into(),
            retry_after: Duration::from_secs(15),
        };
        let start = Instant::now();
        gates.on_error(&org, "Leads", None, &down, start);
        assert_eq!(
            gates.token_outage_until(&org, Instant::now()),
            Some(start + Duration::from_secs(15))
        );
        assert_eq!(gates.token_outage_until(&other, Instant::now()), None);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(gates.token_outage_until(&org, Instant::now()), None);
    }

    #[test]
    fn pauses_are_per_org_and_follow_the_table() {
        let gates = Gates::default();
        let org = OrgId::default();
        let pause = |scope: &str| Pause {
            scope: scope.into(),
            code: "NO_PERMISSION".into(),
            message: "m".into(),
            paused_at: 0,
        };
        gates.set_pauses(&org, &[pause("Leads"), pause(PAUSE_ALL)]);
        assert_eq!(gates.paused_modules(&org), ["Leads"]);
        assert!(gates.all_paused(&org));
        assert!(!gates.all_paused(&OrgId::new("other")));
        gates.set_pauses(&org, &[]);
        assert!(gates.paused_modules(&org).is_empty());
        assert!(!gates.all_paused(&org));
    }

    #[test]
    fn the_daily_budget_counts_calls_in_flight() {
        assert_eq!(daily_budget(0, 50, 10), None);
        assert_eq!(daily_budget(100, 30, 60), Some(10));
        assert_eq!(daily_budget(100, 30, 90), Some(0));
    }
}
