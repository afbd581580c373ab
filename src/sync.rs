//! Small helpers for std mutexes shared by the store and the worker.

use std::sync::{Mutex, MutexGuard};

/// Lock a std mutex that is never held across an await. A poisoned lock
/// only means another task panicked mid-update of plain data (a map, a
/// queue of pending writes); the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
