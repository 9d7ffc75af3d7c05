//! Where a sender's time goes, as Linux's TCP chronographs count it
//! (`tcp_chrono_start`/`tcp_chrono_stop`; `ss -ti`'s `busy`,
//! `rwnd_limited` and `sndbuf_limited`):
//!
//! - **busy**: data was queued or in flight;
//! - **rwnd_limited**: busy, with data to send and room in cwnd for it,
//!   but none in the peer's receive window;
//! - **sndbuf_limited**: busy, everything queued sent, cwnd not full,
//!   and a writer waiting for room in the full send buffer.
//!
//! One clock runs at a time; the more specific limit takes over from
//! `busy`, and when it ends `busy` runs again (or nothing, once all data
//! is acknowledged). `busy` as reported is the sum of all three. The
//! figures say what held a transfer back: the network (neither limit),
//! the receiver (`rwnd_limited`) or the sending application's buffer
//! (`sndbuf_limited`).
//!
//! Pure: time comes in as [`Instant`].

use std::time::Duration;

use crate::time::Instant;

/// What a sender's time is counted as, in rising order of precedence
/// (Linux's `enum tcp_chrono`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Limit {
    /// Data queued or in flight.
    Busy = 0,
    /// Held back by the peer's receive window.
    Rwnd = 1,
    /// Held back by the send buffer.
    Sndbuf = 2,
}

/// The chronographs of one connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Chrono {
    /// The clock that runs, and since when.
    running: Option<(Limit, Instant)>,
    /// Time counted by clocks that stopped, by [`Limit`].
    totals: [Duration; 3],
}

/// A connection's sending time by what limited it: `ss -ti`'s `busy`,
/// `rwnd_limited` and `sndbuf_limited` (Linux's `tcpi_busy_time`,
/// `tcpi_rwnd_limited`, `tcpi_sndbuf_limited`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendTimes {
    /// Time with data queued or in flight; it includes the other two.
    pub busy: Duration,
    /// Part of `busy` held back by the peer's receive window.
    pub rwnd_limited: Duration,
    /// Part of `busy` held back by a full send buffer.
    pub sndbuf_limited: Duration,
}

impl SendTimes {
    /// As `ss -ti` prints them: `busy:860ms rwnd_limited:88ms(10.2%)`,
    /// each limit with its share of `busy`, shown when it is not zero;
    /// nothing before the connection has sent.
    pub(crate) fn ss(&self) -> Option<String> {
        if self.busy.is_zero() {
            return None;
        }
        let mut s = format!("busy:{}ms", self.busy.as_millis());
        for (name, t) in [
            ("rwnd_limited", self.rwnd_limited),
            ("sndbuf_limited", self.sndbuf_limited),
        ] {
            if !t.is_zero() {
                let share = 100.0 * t.as_secs_f64() / self.busy.as_secs_f64();
                s += &format!(" {name}:{}ms({share:.1}%)", t.as_millis());
            }
        }
        Some(s)
    }
}

impl Chrono {
    /// `limit` holds from `now`, unless a clock of higher precedence runs
    /// (`tcp_chrono_start`).
    pub fn start(&mut self, limit: Limit, now: Instant) {
        if self.running.is_none_or(|(l, _)| limit > l) {
            self.set(Some(limit), now);
        }
    }

    /// `limit` is over at `now` (`tcp_chrono_stop`): with data still
    /// queued or in flight (`busy`), the busy clock runs again if `limit`
    /// was the one running; without, every clock stops.
    pub fn stop(&mut self, limit: Limit, busy: bool, now: Instant) {
        if !busy {
            self.set(None, now);
        } else if self.running.is_some_and(|(l, _)| l == limit) {
            self.set(Some(Limit::Busy), now);
        }
    }

    /// Whether `limit`'s clock runs.
    pub fn runs(&self, limit: Limit) -> bool {
        self.running.is_some_and(|(l, _)| l == limit)
    }

    fn set(&mut self, limit: Option<Limit>, now: Instant) {
        if let Some((l, since)) = self.running {
            self.totals[l as usize] += now.saturating_duration_since(since);
        }
        self.running = limit.map(|l| (l, now));
    }

    /// The times so far, the running clock counted up to `now`
    /// (`tcp_get_info_chrono_stats`).
    pub fn times(&self, now: Instant) -> SendTimes {
        let mut t = self.totals;
        if let Some((l, since)) = self.running {
            t[l as usize] += now.saturating_duration_since(since);
        }
        SendTimes {
            busy: t.iter().sum(),
            rwnd_limited: t[Limit::Rwnd as usize],
            sndbuf_limited: t[Limit::Sndbuf as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn a_limit_takes_over_from_busy_and_hands_back() {
        let mut c = Chrono::default();
        c.start(Limit::Busy, ms(0));
        c.start(Limit::Rwnd, ms(10));
        // Busy does not take over from the receive window's limit.
        c.start(Limit::Busy, ms(15));
        c.stop(Limit::Rwnd, true, ms(30));
        assert!(c.runs(Limit::Busy));
        let t = c.times(ms(50));
        assert_eq!(t.busy, Duration::from_millis(50));
        assert_eq!(t.rwnd_limited, Duration::from_millis(20));
        assert_eq!(t.sndbuf_limited, Duration::ZERO);
    }

    #[test]
    fn stopping_a_limit_that_does_not_run_changes_nothing() {
        let mut c = Chrono::default();
        c.start(Limit::Sndbuf, ms(0));
        c.stop(Limit::Rwnd, true, ms(5));
        assert!(c.runs(Limit::Sndbuf));
        assert_eq!(c.times(ms(8)).sndbuf_limited, Duration::from_millis(8));
    }

    #[test]
    fn every_clock_stops_when_nothing_is_left_to_send() {
        let mut c = Chrono::default();
        c.start(Limit::Busy, ms(0));
        c.start(Limit::Sndbuf, ms(4));
        // All acknowledged: nothing runs, whichever limit is named.
        c.stop(Limit::Busy, false, ms(10));
        let t = c.times(ms(100));
        assert_eq!(t.busy, Duration::from_millis(10));
        assert_eq!(t.sndbuf_limited, Duration::from_millis(6));
        // And idle time is not busy time: a new transfer adds to it.
        c.start(Limit::Busy, ms(200));
        assert_eq!(c.times(ms(203)).busy, Duration::from_millis(13));
    }
}
