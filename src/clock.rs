//! Time. Queue times are epoch milliseconds (INTEGER in SQLite); store
//! functions take `now_ms` as an argument so tests can choose it.
//!
//! The worker reads time from one [`Clock`] only: epoch milliseconds that
//! move with tokio's clock, so its timing (backoff, 429 cool-downs, token
//! outages) runs under tokio's paused time in tests, and never goes
//! backwards when the wall clock is stepped back.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the wall clock (for the CLI's
/// one-off commands; the worker uses [`Clock`]).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` since the epoch as RFC 3339 UTC to the second (`2026-12-01T09:00:00Z`);
/// Zoho writes the same instant `2026-12-01T09:00:00+00:00`
/// ([`zoho_time`]).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `ms` since the epoch as Zoho writes times: `2026-12-01T09:00:00+00:00`.
pub fn zoho_time(ms: i64) -> String {
    rfc3339(ms).replace('Z', "+00:00")
}

/// The worker's clock: [`Clock::now`] is tokio's instant, and
/// [`Clock::now_ms`] the epoch milliseconds that go with it — the wall
/// clock when it is ahead (after a suspend, say), else the time measured
/// on tokio's clock since the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    started: tokio::time::Instant,
    started_ms: i64,
    /// Follow the wall clock when it is ahead (off for tests under paused
    /// time, whose instants stand still while the wall clock runs).
    follow_wall: bool,
}

impl Clock {
    /// The worker's clock, starting now.
    pub fn new() -> Clock {
        Clock {
            started: tokio::time::Instant::now(),
            started_ms: now_ms(),
            follow_wall: true,
        }
    }

    /// A clock that moves only with tokio's time, for tests under paused
    /// time (`tokio::time::advance`).
    pub fn tokio_only() -> Clock {
        Clock {
            follow_wall: false,
            ..Clock::new()
        }
    }

    /// Tokio's instant (for sleeps and deadlines).
    pub fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// Epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let measured = self.started_ms + self.started.elapsed().as_millis() as i64;
        if self.follow_wall {
            measured.max(now_ms())
        } else {
            measured
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn epoch_ms_move_with_paused_time() {
        let clock = Clock::tokio_only();
        let t0 = clock.now_ms();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.now_ms() - t0, 1_500);
    }

    #[tokio::test]
    async fn epoch_ms_follow_the_wall_clock() {
        let clock = Clock::new();
        let wall = now_ms();
        assert!((clock.now_ms() - wall).abs() < 1_000);
        assert!(clock.now_ms() >= clock.started_ms);
    }
}
