//! A connection's timers as plain deadlines: when each is due, nothing
//! about what happens then (that is `timers.rs`, which runs them on a
//! connection).

use crate::time::Instant;

/// The deadlines of one connection; `None` means stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timers {
    /// Retransmission (also of SYN and SYN-ACK).
    pub rtx: Option<Instant>,
    /// Zero-window probe / sender SWS override.
    pub persist: Option<Instant>,
    /// Delayed ACK.
    pub delack: Option<Instant>,
    /// Next keepalive probe.
    pub keepalive: Option<Instant>,
    /// End of TIME-WAIT (2×MSL) or of an orphaned FIN-WAIT-2.
    pub linger: Option<Instant>,
    /// RACK's reordering timer (RFC 8985 §6.3).
    pub reorder: Option<Instant>,
    /// The tail loss probe timeout (RFC 8985 §7.2).
    pub tlp: Option<Instant>,
    /// The next paced departure (draft-ietf-ccwg-bbr §5.6.2 for BBR; NewReno
    /// and CUBIC with `TcpConfig::pacing`).
    pub pace: Option<Instant>,
}

impl Timers {
    /// Stops everything.
    pub fn clear(&mut self) {
        *self = Timers::default();
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        [
            self.rtx,
            self.persist,
            self.delack,
            self.keepalive,
            self.linger,
            self.reorder,
            self.tlp,
            self.pace,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// Whether a deadline is set and has passed at `now`.
pub(crate) fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}
