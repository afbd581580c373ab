//! The org's API credits: zdel's own share (`limits.max_credits_per_day`,
//! counted in the store's rolling ledger) and the headroom it leaves the
//! org's other integrations (`limits.min_credits_remaining`, against Zoho's
//! last `X-API-CREDITS-REMAINING`). Pure decisions here; the dispatcher
//! moves the client's counts into the ledger once a poll interval.

use crate::store::CreditLedger;

/// How long Zoho's last remaining figure holds claiming back. Zoho sends
/// the header only once half the day's credits are used, and zdel learns a
/// new figure only by calling: after this, one round of calls finds out.
pub const REMAINING_HOLDS_MS: i64 = 10 * 60 * 1000;

/// Why claiming stopped for credits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditStop {
    /// zdel spent its share of the day.
    ShareSpent { spent: i64, cap: u64 },
    /// Zoho's remaining credits are below the headroom left for others.
    BelowHeadroom { remaining: i64, min: u64 },
}

impl CreditStop {
    /// The `reason` label of `zdel_claiming_stopped`.
    pub fn reason(&self) -> &'static str {
        match self {
            CreditStop::ShareSpent { .. } => "credit_share",
            CreditStop::BelowHeadroom { .. } => "credit_headroom",
        }
    }
}

/// Every `reason` of `zdel_claiming_stopped`.
pub const STOP_REASONS: [&str; 3] = ["credit_share", "credit_headroom", "daily_cap"];

/// Set `zdel_claiming_stopped{reason}`: 1 for `reason` (if any), 0 for the rest.
pub fn report_stop(reason: Option<&str>) {
    for r in STOP_REASONS {
        metrics::gauge!("zdel_claiming_stopped", "reason" => r).set(if Some(r) == reason {
            1.0
        } else {
            0.0
        });
    }
}

impl std::fmt::Display for CreditStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreditStop::ShareSpent { spent, cap } => write!(
                f,
                "zdel spent {spent} API credits in the last 24 hours, counting calls in flight (limits.max_credits_per_day = {cap}): no new claims until the rolling count drops"
            ),
            CreditStop::BelowHeadroom { remaining, min } => write!(
                f,
                "Zoho reports {remaining} API credits left (limits.min_credits_remaining = {min}, kept for the org's other integrations): no new claims for now"
            ),
        }
    }
}

/// How many more calls the credits allow now (`None`: no limit set), or
/// why claiming must stop. `in_flight`: calls that will cost a credit
/// each; `unrecorded`: answered calls not in the ledger yet (a call may be
/// counted twice, never missed).
pub fn calls_left(
    ledger: &CreditLedger,
    in_flight: u64,
    unrecorded: u64,
    max_per_day: u64,
    min_remaining: u64,
    now_ms: i64,
) -> Result<Option<u64>, CreditStop> {
    let mut left: Option<u64> = None;
    if max_per_day > 0 {
        let spent = ledger.spent_24h.max(0);
        let committed = spent as u64 + in_flight + unrecorded;
        if committed >= max_per_day {
            return Err(CreditStop::ShareSpent {
                spent: i64::try_from(committed).unwrap_or(i64::MAX),
                cap: max_per_day,
            });
        }
        left = Some(max_per_day - committed);
    }
    if min_remaining > 0
        && let (Some(remaining), Some(seen_at)) = (ledger.remaining, ledger.remaining_seen_at)
        && now_ms - seen_at < REMAINING_HOLDS_MS
    {
        let spare = (remaining.max(0) as u64).saturating_sub(in_flight);
        if spare <= min_remaining {
            return Err(CreditStop::BelowHeadroom {
                remaining,
                min: min_remaining,
            });
        }
        let above = spare - min_remaining;
        left = Some(left.map_or(above, |l| l.min(above)));
    }
    Ok(left)
}

/// Whether claiming must stop at `now_ms` (see [`calls_left`]).
pub fn credit_stop(
    ledger: &CreditLedger,
    in_flight: u64,
    max_per_day: u64,
    min_remaining: u64,
    now_ms: i64,
) -> Option<CreditStop> {
    calls_left(ledger, in_flight, 0, max_per_day, min_remaining, now_ms).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(spent: i64, remaining: Option<(i64, i64)>) -> CreditLedger {
        CreditLedger {
            spent_24h: spent,
            remaining: remaining.map(|r| r.0),
            remaining_seen_at: remaining.map(|r| r.1),
        }
    }

    #[test]
    fn claiming_stops_at_zdel_s_share_counting_calls_in_flight() {
        assert_eq!(credit_stop(&ledger(95, None), 4, 100, 0, 0), None);
        assert_eq!(
            credit_stop(&ledger(95, None), 5, 100, 0, 0),
            Some(CreditStop::ShareSpent {
                spent: 100,
                cap: 100
            })
        );
        assert_eq!(credit_stop(&ledger(1_000_000, None), 5, 0, 0, 0), None);
        assert_eq!(calls_left(&ledger(90, None), 3, 1, 100, 0, 0), Ok(Some(6)));
        assert_eq!(calls_left(&ledger(90, None), 4, 0, 0, 0, 0), Ok(None));
    }

    #[test]
    fn claiming_stops_below_the_headroom_while_the_figure_is_fresh() {
        let low = ledger(0, Some((400, 1_000)));
        assert_eq!(
            credit_stop(&low, 0, 0, 500, 2_000),
            Some(CreditStop::BelowHeadroom {
                remaining: 400,
                min: 500
            })
        );
        assert_eq!(credit_stop(&low, 0, 0, 0, 2_000), None, "no headroom asked");
        assert_eq!(
            credit_stop(&low, 0, 0, 500, 1_000 + REMAINING_HOLDS_MS),
            None,
            "a stale figure lets one round of calls find out"
        );
        assert_eq!(
            credit_stop(&ledger(0, Some((600, 1_000))), 0, 0, 500, 2_000),
            None
        );
        // Calls in flight will spend some of what is left.
        assert_eq!(
            calls_left(&ledger(0, Some((600, 1_000))), 40, 7, 0, 500, 2_000),
            Ok(Some(60))
        );
        assert!(credit_stop(&ledger(0, Some((600, 1_000))), 100, 0, 500, 2_000).is_some());
    }
}
