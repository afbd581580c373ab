//! The one place zdel reads the wall clock. Queue times are epoch
//! milliseconds (INTEGER in SQLite); store functions take `now_ms` as an
//! argument so tests can choose it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
