//! The gates a claim must pass, in one place: pauses (one operation of a
//! module, a whole module, or everything after the credentials were
//! rejected), the org's 429 back-off, a token-endpoint outage, another mass
//! action running, and the daily cap's IDs in flight. Every key carries the
//! org. Read by the dispatcher before each claim, written by the tasks that
//! saw Zoho's answer and by maintenance (the `pauses` table, reread every
//! poll interval, is the durable copy of the pauses). Which answer closes
//! which gate is the decision table's ([`super::outcome::for_call`]).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::outcome::{Decision, PauseScope, for_call};
use crate::org::OrgId;
use crate::store::{Pause, PausedScope};
use crate::sync::lock;
use crate::zoho::ZohoError;

/// The first back-off after a 429 that names no `Retry-After`; it doubles
/// with every 429 in a row, up to `limits.max_throttle_backoff_ms`.
pub const THROTTLE_BASE_MS: u64 = 2_000;

/// The longest wait after `ALREADY_SCHEDULED` answers in a row.
pub const MAX_BUSY_WAIT: Duration = Duration::from_secs(300);

/// What a whole-call error asks of the gates, for the caller to log and
/// make durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateChange {
    /// A scope error: this operation of the module is paused until resumed.
    PausedOperation { module: String, operation: String },
    /// A permission error: the module is paused until resumed.
    PausedModule { module: String },
    /// The credentials were rejected: every lane of the org is paused.
    PausedAll,
    /// The token endpoint is down or throttling: no claims of the org for `retry_after`.
    TokenOutage { retry_after: Duration },
    /// A 429: the whole org backs off; `streak` 429s in a row so far.
    Throttled { backoff: Duration, streak: u32 },
    /// Another mass action runs: no ID-list mass delete of the org for `wait`.
    MassDeleteBusy { wait: Duration },
}

/// What a call was about, for the gates it may close.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub module: &'a str,
    /// The operation as scopes name it: `delete`, `mass_delete`, `delink`,
    /// `contact_role`, `photo`.
    pub operation: &'a str,
}

#[derive(Debug, Clone, Copy)]
struct Throttle {
    streak: u32,
    until: Instant,
    /// When the last 429 came: only a call sent after it can show that
    /// the limit has lifted.
    last_429: Instant,
}

#[derive(Default)]
struct State {
    paused_operations: HashSet<(OrgId, String, String)>,
    paused_modules: HashSet<(OrgId, String)>,
    paused_orgs: HashSet<OrgId>,
    throttles: HashMap<OrgId, Throttle>,
    token_outage_until: HashMap<OrgId, Instant>,
    /// ALREADY_SCHEDULED answers in a row, and until when mass deletes wait.
    mass_delete_busy: HashMap<OrgId, (u32, Instant)>,
}

/// The gates of every lane. Cheap to read; never held across an await.
pub struct Gates {
    state: Mutex<State>,
    /// The longest 429 back-off (`limits.max_throttle_backoff_ms`).
    max_throttle_backoff: Duration,
    /// How long an `ALREADY_SCHEDULED` holds ID-list mass deletes back.
    busy_wait: Duration,
    /// IDs in calls in flight: they count against the daily cap before they succeed.
    in_flight: AtomicU64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates::new(Duration::from_secs(60), Duration::from_secs(5))
    }
}

impl Gates {
    pub fn new(max_throttle_backoff: Duration, busy_wait: Duration) -> Gates {
        Gates {
            state: Mutex::new(State::default()),
            max_throttle_backoff,
            busy_wait,
            in_flight: AtomicU64::new(0),
        }
    }

    /// Apply what a whole-call error means for `org` and `target`, at `now`
    /// (`unit`: a random number in [0, 1) for the 429 jitter). Returns the
    /// change, if any.
    pub fn on_error(
        &self,
        org: &OrgId,
        target: Target,
        error: &ZohoError,
        now: Instant,
        unit: f64,
    ) -> Option<GateChange> {
        let mut state = lock(&self.state);
        match (for_call(error), error) {
            (Decision::Pause(PauseScope::Operation), _) => {
                state.paused_operations.insert((
                    org.clone(),
                    target.module.to_string(),
                    target.operation.to_string(),
                ));
                Some(GateChange::PausedOperation {
                    module: target.module.to_string(),
                    operation: target.operation.to_string(),
                })
            }
            (Decision::Pause(PauseScope::Module), _) => {
                state
                    .paused_modules
                    .insert((org.clone(), target.module.to_string()));
                Some(GateChange::PausedModule {
                    module: target.module.to_string(),
                })
            }
            (Decision::Pause(PauseScope::Credentials), _) => {
                state.paused_orgs.insert(org.clone());
                Some(GateChange::PausedAll)
            }
            (_, ZohoError::Unavailable { retry_after, .. }) => {
                state
                    .token_outage_until
                    .insert(org.clone(), now + *retry_after);
                Some(GateChange::TokenOutage {
                    retry_after: *retry_after,
                })
            }
            (_, ZohoError::RateLimited { retry_after, .. }) => {
                let previous = state.throttles.get(org).copied();
                let streak = previous.map_or(0, |t| t.streak).saturating_add(1);
                let backoff = retry_after.unwrap_or_else(|| {
                    let doubled = THROTTLE_BASE_MS.saturating_mul(1 << (streak - 1).min(20));
                    let capped = Duration::from_millis(doubled).min(self.max_throttle_backoff);
                    // Jitter in [½, 1] of the step: spread, but never shorter than half.
                    capped.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
                });
                let until = previous.map_or(now, |t| t.until).max(now + backoff);
                let last_429 = now;
                state.throttles.insert(
                    org.clone(),
                    Throttle {
                        streak,
                        until,
                        last_429,
                    },
                );
                Some(GateChange::Throttled { backoff, streak })
            }
            (_, ZohoError::Busy { .. }) => {
                // Doubling while Zoho keeps saying so: another integration's
                // long mass action costs a few calls an hour, not 12 a minute.
                let streak = state
                    .mass_delete_busy
                    .get(org)
                    .map_or(0, |b| b.0)
                    .saturating_add(1);
                let wait = self
                    .busy_wait
                    .saturating_mul(1 << (streak - 1).min(16))
                    .min(MAX_BUSY_WAIT.max(self.busy_wait));
                state
                    .mass_delete_busy
                    .insert(org.clone(), (streak, now + wait));
                Some(GateChange::MassDeleteBusy { wait })
            }
            _ => None,
        }
    }

    /// A call of `org` sent at `sent` was answered by something other than
    /// a 429: if it was sent after the last 429, the throttle streak is over
    /// (an answer to a call sent before it shows nothing).
    pub fn answered(&self, org: &OrgId, sent: Instant) {
        let mut state = lock(&self.state);
        if let Some(t) = state.throttles.get_mut(org)
            && sent >= t.last_429
        {
            t.streak = 0;
        }
    }

    /// When `org` may call again after 429s (`None`: now), and how many
    /// 429s came in a row (while non-zero, the dispatcher sends one call at
    /// a time to find out whether the limit has lifted).
    pub fn throttle(&self, org: &OrgId, now: Instant) -> (Option<Instant>, u32) {
        let state = lock(&self.state);
        match state.throttles.get(org) {
            Some(t) => ((t.until > now).then_some(t.until), t.streak),
            None => (None, 0),
        }
    }

    /// Until when ID-list mass deletes of `org` are held back at `now`
    /// (Zoho said another mass action runs), if they are.
    pub fn mass_delete_busy(&self, org: &OrgId, now: Instant) -> Option<Instant> {
        lock(&self.state)
            .mass_delete_busy
            .get(org)
            .map(|b| b.1)
            .filter(|until| *until > now)
    }

    /// An ID-list mass delete of `org` was answered per ID: the other mass
    /// action is over.
    pub fn mass_delete_answered(&self, org: &OrgId) {
        lock(&self.state).mass_delete_busy.remove(org);
    }

    /// Replace the pauses with the durable ones (the `pauses` table, which
    /// holds the default org's).
    pub fn set_pauses(&self, org: &OrgId, pauses: &[Pause]) {
        let mut state = lock(&self.state);
        state.paused_modules.retain(|(o, _)| o != org);
        state.paused_operations.retain(|(o, _, _)| o != org);
        state.paused_orgs.remove(org);
        for pause in pauses {
            match PausedScope::parse(&pause.scope) {
                PausedScope::All => {
                    state.paused_orgs.insert(org.clone());
                }
                PausedScope::Module(module) => {
                    state.paused_modules.insert((org.clone(), module));
                }
                PausedScope::Operation { module, operation } => {
                    state
                        .paused_operations
                        .insert((org.clone(), module, operation));
                }
            }
        }
    }

    /// The (module, operation) pairs of `org` paused for a missing scope.
    pub fn paused_operations(&self, org: &OrgId) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = lock(&self.state)
            .paused_operations
            .iter()
            .filter(|(o, _, _)| o == org)
            .map(|(_, m, op)| (m.clone(), op.clone()))
            .collect();
        pairs.sort();
        pairs
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
    use crate::store::PAUSE_ALL;

    #[tokio::test(start_paused = true)]
    async fn repeated_429s_back_the_whole_org_off_exponentially_up_to_the_cap() {
        let gates = Gates::new(Duration::from_secs(60), Duration::from_secs(5));
        let org = OrgId::default();
        let target = Target {
            module: "Leads",
            operation: "delete",
        };
        let bare = ZohoError::RateLimited {
            retry_after: None,
            message: "slow".into(),
        };
        // unit 1.0: the full step, 2 s, 4 s, 8 s, ... capped at 60 s.
        let mut steps = Vec::new();
        for _ in 0..8 {
            let now = Instant::now();
            match gates.on_error(&org, target, &bare, now, 1.0) {
                Some(GateChange::Throttled { backoff, .. }) => steps.push(backoff.as_secs()),
                other => panic!("expected a throttle, got {other:?}"),
            }
            let (until, _) = gates.throttle(&org, now);
            tokio::time::advance(until.unwrap() - now).await;
        }
        assert_eq!(steps, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(gates.throttle(&org, Instant::now()), (None, 8));
        // unit 0: half the step, never less.
        let now = Instant::now();
        gates.on_error(&org, target, &bare, now, 0.0);
        assert_eq!(
            gates.throttle(&org, now).0,
            Some(now + Duration::from_secs(30))
        );
        // Another org is not held back; an answer ends the streak.
        assert_eq!(gates.throttle(&OrgId::new("other"), now), (None, 0));
        // An answer to a call sent before the last 429 shows nothing...
        gates.answered(&org, now - Duration::from_millis(1));
        assert_eq!(gates.throttle(&org, now).1, 9);
        // ...one sent after it ends the streak.
        gates.answered(&org, now);
        assert_eq!(gates.throttle(&org, now).1, 0);
        // Retry-After, when Zoho names one, is the wait.
        let named = ZohoError::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
            message: "slow".into(),
        };
        tokio::time::advance(Duration::from_secs(30)).await;
        let now = Instant::now();
        gates.on_error(&org, target, &named, now, 0.3);
        assert_eq!(
            gates.throttle(&org, now).0,
            Some(now + Duration::from_secs(7))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn already_scheduled_holds_mass_deletes_back_doubling_until_an_answer() {
        let gates = Gates::new(Duration::from_secs(60), Duration::from_secs(5));
        let org = OrgId::default();
        let target = Target {
            module: "Leads",
            operation: "mass_delete",
        };
        let busy = ZohoError::Busy {
            message: "another mass action".into(),
            http_status: Some(400),
        };
        let mut waits = Vec::new();
        for _ in 0..8 {
            match gates.on_error(&org, target, &busy, Instant::now(), 0.5) {
                Some(GateChange::MassDeleteBusy { wait }) => waits.push(wait.as_secs()),
                other => panic!("expected a busy gate, got {other:?}"),
            }
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        let now = Instant::now();
        assert_eq!(
            gates.mass_delete_busy(&org, now),
            Some(now + Duration::from_secs(300))
        );
        gates.mass_delete_answered(&org);
        assert_eq!(gates.mass_delete_busy(&org, now), None);
        match gates.on_error(&org, target, &busy, now, 0.5) {
            Some(GateChange::MassDeleteBusy { wait }) => assert_eq!(wait.as_secs(), 5),
            other => panic!("{other:?}"),
        }
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
        let target = Target {
            module: "Leads",
            operation: "delete",
        };
        gates.on_error(&org, target, &down, start, 0.5);
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
        gates.set_pauses(
            &org,
            &[pause("Leads"), pause(PAUSE_ALL), pause("Deals/mass_delete")],
        );
        assert_eq!(gates.paused_modules(&org), ["Leads"]);
        assert_eq!(
            gates.paused_operations(&org),
            [("Deals".to_string(), "mass_delete".to_string())]
        );
        assert!(gates.all_paused(&org));
        assert!(!gates.all_paused(&OrgId::new("other")));
        gates.set_pauses(&org, &[]);
        assert!(gates.paused_modules(&org).is_empty());
        assert!(gates.paused_operations(&org).is_empty());
        assert!(!gates.all_paused(&org));
    }

    #[test]
    fn the_daily_budget_counts_calls_in_flight() {
        assert_eq!(daily_budget(0, 50, 10), None);
        assert_eq!(daily_budget(100, 30, 60), Some(10));
        assert_eq!(daily_budget(100, 30, 90), Some(0));
    }
}
