//! NewReno's window rules: RFC 5681 slow start and congestion avoidance
//! with byte counting (RFC 3465), halving on loss.
//!
//! Standard slow start only: HyStart++ runs for CUBIC, as in Linux, so
//! "reno" stays the RFC 5681 reference.

use super::{AckSample, Window};

/// NewReno's own state: the byte counter of congestion avoidance.
#[derive(Clone, Debug, Default)]
pub(super) struct NewReno {
    /// RFC 3465 §2.1: bytes acknowledged in congestion avoidance since cwnd
    /// last grew.
    bytes_acked: u32,
}

/// RFC 5681 §3.1 eq. 4 (and §3.2 step 2): ssthresh = max(FlightSize / 2,
/// 2*SMSS).
fn half_flight(flight: u32, mss: u32) -> u32 {
    (flight / 2).max(mss.saturating_mul(2))
}

impl NewReno {
    /// Fresh state.
    pub(super) fn new() -> NewReno {
        NewReno::default()
    }

    /// An ACK advanced SND.UNA outside recovery.
    pub(super) fn on_ack(&mut self, w: &mut Window, s: &AckSample) {
        // RFC 7661 (New CWV): an application-limited flow has not used its
        // cwnd, so an ACK tells nothing about a larger one; no growth.
        if !s.cwnd_limited {
            return;
        }
        if w.in_slow_start() {
            w.slow_start(s.acked, 1);
            return;
        }
        // RFC 3465 §2.1 (RFC 5681 §3.1's recommended way): count acked bytes;
        // once a whole cwnd is acknowledged, grow by one SMSS.
        self.bytes_acked = self.bytes_acked.saturating_add(s.acked);
        if self.bytes_acked >= w.cwnd {
            self.bytes_acked -= w.cwnd;
            w.cwnd = w.cwnd.saturating_add(w.mss);
        }
    }

    /// Loss recovery begins: RFC 5681 §3.2 step 2 sets ssthresh to half the
    /// flight; RFC 6675 §5 (and RFC 5681 §3.2 step 3 without its inflation)
    /// sets cwnd = ssthresh.
    pub(super) fn on_loss(&mut self, w: &mut Window, flight: u32) {
        w.ssthresh = half_flight(flight, w.mss);
        w.cwnd = w.ssthresh;
        self.bytes_acked = 0;
    }

    /// Loss recovery ended (the caller deflated cwnd to ssthresh).
    pub(super) fn on_recovery_end(&mut self) {
        self.bytes_acked = 0;
    }

    /// Retransmission timeout: RFC 5681 §3.1 eq. 4 on the `first` timeout
    /// of an episode; the caller sets cwnd to the loss window.
    pub(super) fn on_rto(&mut self, w: &mut Window, flight: u32, first: bool) {
        if first {
            w.ssthresh = half_flight(flight, w.mss);
        }
        self.bytes_acked = 0;
    }

    /// Restart after idle (the caller applied the restart window).
    pub(super) fn on_idle_restart(&mut self) {
        self.bytes_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::{ack, MSS};
    use super::super::{Algorithm, Congestion};
    use crate::time::Instant;

    /// A NewReno window in congestion avoidance at `segments` segments.
    fn in_ca(segments: u32) -> Congestion {
        let mut c = Congestion::new(Algorithm::NewReno, MSS);
        c.window.cwnd = segments * MSS;
        c.window.ssthresh = segments * MSS;
        c
    }

    #[test]
    fn congestion_avoidance_grows_one_mss_per_cwnd_of_acked_bytes() {
        let mut c = in_ca(10);
        assert!(!c.in_slow_start());
        for i in 0..9 {
            c.on_ack(&ack(Instant::from_millis(i), MSS, true));
        }
        assert_eq!(c.cwnd(), 10 * MSS, "nine tenths of a window: no growth");
        c.on_ack(&ack(Instant::from_millis(9), MSS, true));
        assert_eq!(c.cwnd(), 11 * MSS, "a whole window: one MSS");
        // The next MSS takes a whole (larger) window again.
        for i in 0..10 {
            c.on_ack(&ack(Instant::from_millis(10 + i), MSS, true));
        }
        assert_eq!(c.cwnd(), 11 * MSS);
        c.on_ack(&ack(Instant::from_millis(20), MSS, true));
        assert_eq!(c.cwnd(), 12 * MSS);
    }

    #[test]
    fn slow_start_grows_by_the_acked_bytes() {
        let mut c = Congestion::new(Algorithm::NewReno, MSS);
        let iw = c.cwnd();
        for i in 0..10 {
            c.on_ack(&ack(Instant::from_millis(i), MSS, true));
        }
        assert_eq!(c.cwnd(), 2 * iw, "one round of ACKs doubles cwnd");
    }

    #[test]
    fn slow_start_stops_at_ssthresh() {
        let mut c = Congestion::new(Algorithm::NewReno, MSS);
        c.window.ssthresh = c.cwnd() + MSS / 2;
        c.on_ack(&ack(Instant::ZERO, MSS, true));
        assert_eq!(c.cwnd(), c.ssthresh());
        assert!(!c.in_slow_start());
    }

    #[test]
    fn loss_halves_the_flight_with_a_floor_of_two_segments() {
        let mut c = in_ca(20);
        c.on_loss(Instant::ZERO, 20 * MSS);
        assert_eq!((c.ssthresh(), c.cwnd()), (10 * MSS, 10 * MSS));
        c.on_loss(Instant::ZERO, 3 * MSS);
        assert_eq!((c.ssthresh(), c.cwnd()), (2 * MSS, 2 * MSS), "2*MSS floor");
        c.on_recovery_end(Instant::ZERO);
        assert_eq!(c.cwnd(), 2 * MSS);
    }

    #[test]
    fn loss_is_measured_by_flight_not_cwnd() {
        let mut c = in_ca(40);
        c.on_loss(Instant::ZERO, 10 * MSS);
        assert_eq!(c.ssthresh(), 5 * MSS);
    }

    #[test]
    fn rto_leaves_one_segment_and_half_the_flight_as_ssthresh() {
        let mut c = in_ca(20);
        c.on_rto(Instant::ZERO, 16 * MSS);
        assert_eq!((c.cwnd(), c.ssthresh()), (MSS, 8 * MSS));
        assert!(c.in_slow_start());
    }

    #[test]
    fn no_growth_while_application_limited() {
        let mut c = Congestion::new(Algorithm::NewReno, MSS);
        let iw = c.cwnd();
        for i in 0..20 {
            c.on_ack(&ack(Instant::from_millis(i), MSS, false));
        }
        assert_eq!(c.cwnd(), iw, "slow start");
        let mut c = in_ca(10);
        for i in 0..30 {
            c.on_ack(&ack(Instant::from_millis(i), MSS, false));
        }
        assert_eq!(c.cwnd(), 10 * MSS, "congestion avoidance");
        // Nor do application-limited ACKs count towards the next MSS.
        for i in 0..9 {
            c.on_ack(&ack(Instant::from_millis(100 + i), MSS, true));
        }
        assert_eq!(c.cwnd(), 10 * MSS);
    }
}
