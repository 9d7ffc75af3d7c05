//! Deadlines that tasks wait for ([`crate::aio::sleep`], timeouts).
//!
//! A map ordered by deadline: the runtime sleeps no longer than the
//! earliest one and wakes the tasks whose deadlines passed, so the cost
//! follows the timers that are due, not the number of them.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant;

#[derive(Default)]
struct Inner {
    entries: BTreeMap<(Instant, u64), Waker>,
    next_key: u64,
}

/// The runtime's task timers.
#[derive(Default)]
pub(crate) struct TimerQueue {
    inner: Mutex<Inner>,
}

/// Identifies a registered timer, to move or cancel it.
pub(crate) type TimerKey = (Instant, u64);

impl TimerQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes `waker` at `at`.
    pub(crate) fn insert(&self, at: Instant, waker: Waker) -> TimerKey {
        let mut inner = self.lock();
        inner.next_key += 1;
        let key = (at, inner.next_key);
        inner.entries.insert(key, waker);
        key
    }

    /// Replaces the waker of a registered timer (false if it fired).
    pub(crate) fn update(&self, key: TimerKey, waker: &Waker) -> bool {
        match self.lock().entries.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    /// Cancels a timer.
    pub(crate) fn remove(&self, key: TimerKey) {
        self.lock().entries.remove(&key);
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.lock().entries.keys().next().map(|k| k.0)
    }

    /// Wakes (and forgets) every timer due at `now`.
    pub(crate) fn fire(&self, now: Instant) -> usize {
        let due = {
            let mut inner = self.lock();
            let later = inner.entries.split_off(&(now, u64::MAX));
            std::mem::replace(&mut inner.entries, later)
        };
        let n = due.len();
        for w in due.into_values() {
            w.wake();
        }
        n
    }
}
