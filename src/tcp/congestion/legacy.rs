//! The connection's current congestion control: NewReno-style slow start,
//! congestion avoidance, and fast retransmit / fast recovery with window
//! inflation (RFC 5681, RFC 6582), all in one struct.
//!
//! It stays only until the connection uses [`super::Congestion`], which
//! leaves loss recovery (the recovery point, duplicate ACK counting, window
//! inflation) to the connection; then this file goes.

use crate::tcp::seq::SeqNum;

/// Congestion window state of one connection, in bytes.
#[derive(Clone, Debug)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    mss: u32,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew.
    acked_in_ca: u32,
    /// `Some(recover)` while in fast recovery (RFC 6582 §3.2).
    recover: Option<SeqNum>,
}

impl NewReno {
    /// RFC 5681 §3.1: IW = min(4*MSS, max(2*MSS, 4380)) (RFC 3390); ssthresh
    /// starts "arbitrarily high".
    pub fn new(mss: u32) -> Self {
        let mss = mss.max(1);
        NewReno {
            cwnd: (4 * mss).min((2 * mss).max(4380)),
            ssthresh: u32::MAX,
            mss,
            acked_in_ca: 0,
            recover: None,
        }
    }

    /// Updates the MSS once options are known, keeping the initial window rule.
    pub fn set_mss(&mut self, mss: u32) {
        *self = NewReno::new(mss);
    }

    /// The congestion window.
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// The slow start threshold.
    pub fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    /// True while in fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.recover.is_some()
    }

    /// A new ACK covered `acked` bytes; `snd_una` is the new left edge.
    /// Returns true when a partial ACK in fast recovery asks for the next
    /// hole to be retransmitted (RFC 6582 §3.2 step 5).
    pub fn on_ack(&mut self, acked: u32, snd_una: SeqNum) -> bool {
        if let Some(recover) = self.recover {
            if snd_una >= recover {
                // Full ACK: deflate (RFC 6582 §3.2 step 3).
                self.recover = None;
                self.cwnd = self.ssthresh;
                return false;
            }
            // Partial ACK: deflate by the amount acked, add back one MSS.
            self.cwnd = self.cwnd.saturating_sub(acked).saturating_add(self.mss);
            return true;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start: cwnd += min(N, SMSS).
            self.cwnd = self.cwnd.saturating_add(acked.min(self.mss));
        } else {
            // Congestion avoidance: about one MSS per RTT.
            self.acked_in_ca = self.acked_in_ca.saturating_add(acked);
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        }
        false
    }

    /// The third duplicate ACK: enter fast recovery (RFC 5681 §3.2 steps 2-3).
    /// Returns false if already recovering (no second retransmission).
    pub fn on_triple_dup_ack(&mut self, flight: u32, snd_max: SeqNum) -> bool {
        if self.recover.is_some() {
            self.cwnd = self.cwnd.saturating_add(self.mss); // step 4: inflate
            return false;
        }
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.ssthresh + 3 * self.mss;
        self.recover = Some(snd_max);
        true
    }

    /// Further duplicate ACKs while in recovery inflate the window.
    pub fn on_extra_dup_ack(&mut self) {
        if self.recover.is_some() {
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    /// Retransmission timeout (RFC 5681 §3.1 eq. 4): ssthresh = max(flight/2,
    /// 2*SMSS), cwnd = 1 SMSS (the loss window).
    pub fn on_rto(&mut self, flight: u32) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.acked_in_ca = 0;
        self.recover = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_congestion_avoidance() {
        let mut c = NewReno::new(1000);
        assert_eq!(c.cwnd(), 4000);
        c.on_ack(1000, SeqNum(1000));
        assert_eq!(c.cwnd(), 5000);
        c.on_rto(10_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 5000));
        for _ in 0..4 {
            c.on_ack(1000, SeqNum(0));
        }
        assert_eq!(c.cwnd(), 5000);
        // Now in CA: need a full cwnd of ACKs to grow by one MSS.
        for _ in 0..4 {
            c.on_ack(1000, SeqNum(0));
        }
        assert_eq!(c.cwnd(), 5000);
        c.on_ack(1000, SeqNum(0));
        assert_eq!(c.cwnd(), 6000);
    }

    #[test]
    fn fast_recovery_inflates_and_deflates() {
        let mut c = NewReno::new(1000);
        assert!(c.on_triple_dup_ack(8000, SeqNum(9000)));
        assert_eq!((c.ssthresh(), c.cwnd()), (4000, 7000));
        assert!(!c.on_triple_dup_ack(8000, SeqNum(9000)));
        c.on_extra_dup_ack();
        assert_eq!(c.cwnd(), 9000);
        assert!(c.on_ack(2000, SeqNum(3000)), "partial ACK");
        c.on_ack(6000, SeqNum(9000));
        assert!(!c.in_recovery());
        assert_eq!(c.cwnd(), 4000);
    }
}
