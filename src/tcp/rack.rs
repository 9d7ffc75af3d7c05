//! RACK-TLP (RFC 8985): loss detection by time, and the tail loss probe.
//!
//! RACK keeps when each range of sequence space was last sent. Once the
//! peer reports (cumulatively or in a SACK block) a segment sent at time
//! T delivered, any segment still unacknowledged that was sent before T
//! is lost when it has been out longer than RACK.rtt plus a reordering
//! window (§6.2): one delivery after a hole is enough, where RFC 6675's
//! DupThresh needs three, and a lost retransmission is found again the
//! same way. The tail loss probe (§7) covers the case with nothing after
//! the hole: two round trips after the last transmission, one segment goes
//! out (new data, or the last one again) to draw an ACK whose SACK
//! information lets RACK find the losses, instead of waiting for the RTO.
//!
//! Pure data and rules; the connection calls them (`input.rs`, `output.rs`,
//! `timers.rs`). Used only with SACK (RFC 8985 §2: RACK-TLP needs it).

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Instant;

use super::scoreboard::{RackVerdict, Scoreboard, DUP_THRESH};
use super::seq::{split_span_at, SeqNum, SeqSpan};

/// RFC 8985 §7.2: WCDelAckT, the worst case of the peer's delayed-ACK
/// timer that a lone segment's probe waits out (200 ms, the RECOMMENDED
/// value; our own delayed-ACK timeout says nothing about the peer's).
const WC_DEL_ACK: Duration = Duration::from_millis(200);

/// One transmission of `[start, end)` (RFC 8985 §5.2's per-segment state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub start: SeqNum,
    pub end: SeqNum,
    /// When it was (last) sent: Segment.xmit_ts.
    pub at: Instant,
    /// It was sent more than once.
    pub rexmit: bool,
    /// The peer SACKed all of it.
    pub sacked: bool,
    /// RACK deemed it lost, and it has not been sent again since.
    pub lost: bool,
    /// RACK deemed some transmission of it lost (Linux's `TCPCB_LOST`,
    /// which a retransmission keeps): its original no longer counts as in
    /// the network, only a retransmission not itself deemed lost does.
    pub was_lost: bool,
}

impl SeqSpan for Sent {
    fn span(&self) -> (SeqNum, SeqNum) {
        (self.start, self.end)
    }
    fn set_span(&mut self, start: SeqNum, end: SeqNum) {
        (self.start, self.end) = (start, end);
    }
}

/// RACK-TLP state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Rack {
    /// Transmissions not yet cumulatively acknowledged, in sequence order.
    /// Bounded by what is in flight (the send buffer, at most
    /// `send_buffer_max`), one entry per segment or super-segment sent.
    pub sent: VecDeque<Sent>,
    /// RACK.xmit_ts and RACK.end_seq (§5.2): the latest-sent segment known
    /// delivered.
    pub xmit_ts: Option<Instant>,
    pub end_seq: SeqNum,
    /// RACK.rtt: that segment's round trip.
    pub rtt: Duration,
    /// RACK.min_RTT: the smallest round trip seen.
    pub min_rtt: Option<Duration>,
    /// The last ACK's round trip of the earliest-sent segment it delivered
    /// (cumulatively or SACKed) that was never sent again: a sample Karn's
    /// algorithm allows (Linux's `seq_rtt_us`, else `sack_rtt_us`).
    pub clean_rtt: Option<Duration>,
    /// TLP.end_seq (§7.3): a probe is out; no other until it is acknowledged.
    pub tlp_end: Option<SeqNum>,
    /// The probe was a retransmission (so its ACK may show a repaired loss,
    /// §7.4).
    pub tlp_rexmit: bool,
    /// RACK.reo_wnd_mult (§6.2 step 4): how many quarters of min_RTT the
    /// reordering window spans, raised by D-SACKs (0 stands for 1).
    pub reo_wnd_mult: u32,
    /// RACK.reo_wnd_persist: recoveries left before the multiplier resets.
    pub reo_wnd_persist: u32,
    /// RACK.dsack_round: one raise per round trip; set to SND.MAX at a
    /// raise, over once SND.UNA passes it.
    pub dsack_round: Option<SeqNum>,
    /// RACK.fack (§6.2 step 3): the highest end of a segment delivered.
    pub fack: Option<SeqNum>,
    /// RACK.reordering_seen (§6.2 step 3): an original segment was
    /// delivered below RACK.fack, or a D-SACK came. Until then the
    /// reordering window is zero in recovery (step 4).
    pub reordering_seen: bool,
}

impl Rack {
    /// Records a transmission of `[start, end)` at `now` (RFC 8985 §6.1).
    /// New data is appended; a retransmission updates the time of the
    /// ranges it covers (split at its edges) and clears their lost mark.
    pub fn on_sent(&mut self, now: Instant, start: SeqNum, end: SeqNum, rexmit: bool) {
        if end <= start {
            return;
        }
        if !rexmit || self.sent.back().is_none_or(|b| b.end <= start) {
            self.sent.push_back(Sent {
                start,
                end,
                at: now,
                rexmit,
                sacked: false,
                lost: false,
                was_lost: false,
            });
            return;
        }
        // Split the entries holding `start` and `end`, then restamp the
        // ones between.
        self.split_at(start);
        self.split_at(end);
        for s in self.sent.iter_mut() {
            if s.start >= start && s.end <= end {
                s.at = now;
                s.rexmit = true;
                s.lost = false;
            }
        }
    }

    /// The index of the entry holding `seq`, if one does (the entries are
    /// in sequence order and disjoint).
    fn index_of(&self, seq: SeqNum) -> Option<usize> {
        let i = self.sent.partition_point(|s| s.end <= seq);
        self.sent.get(i).filter(|s| s.start <= seq).map(|_| i)
    }

    fn split_at(&mut self, at: SeqNum) {
        split_span_at(&mut self.sent, at);
    }

    /// Takes in an ACK (RFC 8985 §6.2 steps 1-2): drops what `una` covers,
    /// marks what `sb` shows SACKed, and advances RACK.xmit_ts/end_seq/rtt
    /// to the latest-sent segment among those newly delivered. A
    /// retransmitted segment delivered sooner than min_RTT after its last
    /// transmission was the original's delivery and says nothing (§6.2
    /// step 2).
    pub fn on_ack(&mut self, now: Instant, una: SeqNum, sb: &Scoreboard, rtt: Option<Duration>) {
        if let Some(r) = rtt {
            self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        }
        let mut delivered = Vec::new();
        while let Some(front) = self.sent.front_mut() {
            if front.end <= una {
                let s = self.sent.pop_front();
                if let Some(s) = s.filter(|s| !s.sacked) {
                    delivered.push(s);
                }
            } else {
                if front.start < una {
                    front.start = una;
                }
                break;
            }
        }
        if !sb.is_empty() {
            // A super-segment (offload) may be SACKed in part: its SACKed
            // pieces become entries of their own.
            for &(start, end) in sb.ranges() {
                self.split_at(start);
                self.split_at(end);
                let first = self.sent.partition_point(|s| s.end <= start);
                for s in self.sent.range_mut(first..) {
                    if s.start >= end {
                        break;
                    }
                    if !s.sacked {
                        s.sacked = true;
                        s.lost = false;
                        delivered.push(*s);
                    }
                }
            }
        }
        // §6.2 step 3: an original (never resent) segment delivered below
        // the highest delivered one came out of order. `delivered` is in
        // sequence order: what the cumulative ACK covers, then the SACKed.
        for s in &delivered {
            match self.fack {
                Some(f) if s.end <= f => {
                    if s.end < f && !s.rexmit {
                        self.reordering_seen = true;
                    }
                }
                _ => self.fack = Some(s.end),
            }
        }
        self.clean_rtt = None;
        let min_rtt = self.min_rtt.unwrap_or_default();
        for s in delivered {
            let rtt = now - s.at;
            if !s.rexmit {
                self.clean_rtt = Some(self.clean_rtt.map_or(rtt, |r| r.max(rtt)));
            }
            if s.rexmit && rtt < min_rtt {
                continue;
            }
            let newer = match self.xmit_ts {
                None => true,
                Some(t) => s.at > t || (s.at == t && s.end > self.end_seq),
            };
            if newer {
                self.xmit_ts = Some(s.at);
                self.end_seq = s.end;
                self.rtt = rtt;
            }
        }
    }

    /// RFC 8985 §6.2 step 4: the reordering window, RACK.reo_wnd_mult
    /// quarters of min_RTT, no larger than SRTT; before any sample of its
    /// own, from SRTT (the handshake's). Zero while no reordering has been
    /// seen and the sender is in (fast or RTO) recovery (`recovering`) or
    /// DupThresh segments are SACKed (`sacked_segs`), as Linux's
    /// `tcp_rack_reo_wnd`: then a loss is a loss.
    pub fn reo_wnd(&self, srtt: Option<Duration>, recovering: bool, sacked_segs: u32) -> Duration {
        if !self.reordering_seen && (recovering || sacked_segs >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let mult = self.reo_wnd_mult.max(1);
        let w = self.min_rtt.or(srtt).unwrap_or_default() / 4 * mult;
        srtt.map_or(w, |s| w.min(s))
    }

    /// RFC 8985 §6.2 step 4: an ACK with a D-SACK block (the peer got
    /// something twice: a retransmission was spurious, reordering is
    /// likely) widens the window by one more quarter of min_RTT, at most
    /// once a round trip, and keeps it for 16 recoveries.
    pub fn on_ack_dsack(&mut self, una: SeqNum, snd_max: SeqNum, dsack: bool) {
        if self.dsack_round.is_some_and(|r| una >= r) {
            self.dsack_round = None;
        }
        if dsack {
            // A spurious retransmission: the segment or its ACK was late,
            // which is reordering as far as the window goes.
            self.reordering_seen = true;
        }
        if dsack && self.dsack_round.is_none() {
            self.dsack_round = Some(snd_max);
            self.reo_wnd_mult = self.reo_wnd_mult.max(1) + 1;
            self.reo_wnd_persist = 16;
        }
    }

    /// RFC 8985 §6.2 step 4: a loss recovery ended; after 16 without a
    /// D-SACK the window is back to a quarter of min_RTT.
    pub fn on_recovery_end(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 §6.2 step 5: marks lost every unacknowledged, unSACKed
    /// segment sent before RACK.xmit_ts that has been out longer than
    /// RACK.rtt + reo_wnd. Returns how many were newly marked, and when
    /// the next one would be (the reordering timer, §6.3).
    pub fn detect(
        &mut self,
        now: Instant,
        srtt: Option<Duration>,
        recovering: bool,
        sacked_segs: u32,
    ) -> (usize, Option<Instant>) {
        let Some(xmit_ts) = self.xmit_ts else {
            return (0, None);
        };
        let wait = self.rtt + self.reo_wnd(srtt, recovering, sacked_segs);
        let (mut lost, mut timer) = (0, None::<Instant>);
        for s in self.sent.iter_mut() {
            if s.sacked || s.lost {
                continue;
            }
            let before = s.at < xmit_ts || (s.at == xmit_ts && s.end <= self.end_seq);
            if !before {
                continue;
            }
            let due = s.at + wait;
            if due <= now {
                s.lost = true;
                s.was_lost = true;
                lost += 1;
            } else {
                timer = Some(timer.map_or(due, |t| t.min(due)));
            }
        }
        (lost, timer)
    }

    /// Whether RACK marks the byte at `seq` lost.
    pub fn lost_at(&self, seq: SeqNum) -> bool {
        self.index_of(seq).is_some_and(|i| self.sent[i].lost)
    }

    /// [`Rack::lost_at`] for bytes asked about in ascending order (SetPipe
    /// asks about each hole of the scoreboard): a cursor that moves forward
    /// through the transmission record, galloping over long stretches, so
    /// a pass over H holes of N records costs about H·log(N/H) steps, not
    /// H binary searches over the whole record.
    pub fn lost_in_order(&self) -> impl FnMut(SeqNum) -> RackVerdict + '_ {
        let mut i = 0usize;
        move |seq| {
            // The first record that ends past `seq`, from `i` on.
            if self.sent.get(i).is_some_and(|s| s.end <= seq) {
                let mut step = 1;
                let mut lo = i + 1;
                while self.sent.get(i + step).is_some_and(|s| s.end <= seq) {
                    lo = i + step + 1;
                    step *= 2;
                }
                let mut hi = (i + step).min(self.sent.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if self.sent[mid].end <= seq {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                i = lo;
            }
            let verdict =
                self.sent
                    .get(i)
                    .filter(|s| s.start <= seq)
                    .map_or(RackVerdict::default(), |s| RackVerdict {
                        lost: s.lost,
                        was_lost: s.was_lost,
                    });
            debug_assert_eq!(verdict.lost, self.lost_at(seq));
            verdict
        }
    }

    /// The first byte RACK marks lost, if any.
    pub fn first_lost(&self) -> Option<SeqNum> {
        self.sent.iter().find(|s| s.lost).map(|s| s.start)
    }

    /// The round trip of the newest segment, sent only once, that the
    /// cumulative ACK `una` covers (before [`Rack::on_ack`] drops the
    /// entries): a per-ACK RTT sample for the congestion control.
    pub fn newest_acked_rtt(&self, now: Instant, una: SeqNum) -> Option<Duration> {
        self.sent
            .iter()
            .take_while(|s| s.end <= una)
            .filter(|s| !s.rexmit && !s.sacked)
            .map(|s| s.at)
            .max()
            .map(|at| now - at)
    }

    /// Bytes below `end` that RACK marks lost and that were not sent again
    /// since: not in the network (Linux's `lost_out`).
    pub fn lost_bytes_below(&self, end: SeqNum) -> u32 {
        self.sent
            .iter()
            .take_while(|s| s.start < end)
            .filter(|s| s.lost)
            .map(|s| s.end.min(end) - s.start)
            .sum()
    }

    /// The first range RACK marks lost, if any: `[start, end)` of its
    /// entry (a retransmission that was lost too is marked again, §6.2).
    pub fn first_lost_range(&self) -> Option<(SeqNum, SeqNum)> {
        self.sent.iter().find(|s| s.lost).map(|s| (s.start, s.end))
    }

    /// Forgets the transmission record (after a timeout the sender starts
    /// over from SND.UNA; RFC 8985 §6.3 marks everything lost, which the
    /// go-back-N does).
    pub fn clear_marks(&mut self) {
        for s in self.sent.iter_mut() {
            s.lost = false;
            s.was_lost = false;
        }
        self.tlp_end = None;
    }

    /// RFC 8985 §7.2: the probe timeout, two SRTTs, plus the worst-case
    /// delayed-ACK time of the peer (WCDelAckT, 200 ms) when only one
    /// segment is in flight; none without an RTT sample.
    pub fn pto(srtt: Option<Duration>, one_segment: bool) -> Option<Duration> {
        let srtt = srtt?;
        let mut pto = srtt * 2;
        if one_segment {
            pto += WC_DEL_ACK;
        }
        Some(pto.max(Duration::from_millis(10)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn rack_with(sends: &[(u32, u32, u64)]) -> Rack {
        let mut r = Rack::default();
        for &(s, e, t) in sends {
            r.on_sent(ms(t), SeqNum(s), SeqNum(e), false);
        }
        r
    }

    #[test]
    fn one_delivery_after_a_hole_makes_it_lost_after_rtt_and_reo_wnd() {
        // Segments at t = 0, 1, 2 ms; the third is SACKed at 20 ms.
        let mut r = rack_with(&[(0, 100, 0), (100, 200, 1), (200, 300, 2)]);
        let mut sb = Scoreboard::default();
        sb.on_ack(SeqNum(0), SeqNum(300), &[(200, 300)]);
        r.on_ack(ms(20), SeqNum(0), &sb, Some(Duration::from_millis(18)));
        assert_eq!(r.rtt, Duration::from_millis(18));
        // reo_wnd = 18 / 4 = 4.5 ms: the first is lost at 0 + 18 + 4.5.
        let (lost, timer) = r.detect(ms(20), None, false, 0);
        assert_eq!(lost, 0);
        assert_eq!(timer, Some(Instant::from_micros(22_500)));
        let (lost, timer) = r.detect(Instant::from_micros(23_000), None, false, 0);
        assert_eq!(lost, 1);
        assert_eq!(timer, Some(Instant::from_micros(23_500)), "the second next");
        assert!(r.lost_at(SeqNum(50)) && !r.lost_at(SeqNum(150)));
        assert_eq!(r.first_lost(), Some(SeqNum(0)));
    }

    #[test]
    fn a_retransmission_restamps_its_range_and_clears_the_mark() {
        let mut r = rack_with(&[(0, 300, 0)]);
        r.sent[0].lost = true;
        r.on_sent(ms(50), SeqNum(100), SeqNum(200), true);
        let v: Vec<_> = r
            .sent
            .iter()
            .map(|s| (s.start.get(), s.end.get(), s.lost))
            .collect();
        assert_eq!(v, [(0, 100, true), (100, 200, false), (200, 300, true)]);
        assert!(r.sent[1].rexmit && r.sent[1].at == ms(50));
    }

    #[test]
    fn the_cumulative_ack_drops_entries_and_a_fast_ack_of_a_resend_is_ignored() {
        let mut r = rack_with(&[(0, 100, 0), (100, 200, 0)]);
        r.on_ack(
            ms(10),
            SeqNum(0),
            &Scoreboard::default(),
            Some(Duration::from_millis(10)),
        );
        r.on_sent(ms(30), SeqNum(0), SeqNum(100), true);
        // Acknowledged 1 ms after the resend: the original arrived.
        r.on_ack(ms(31), SeqNum(150), &Scoreboard::default(), None);
        assert_eq!(r.xmit_ts, None);
        assert_eq!(r.sent.len(), 1);
        assert_eq!(r.sent[0].start, SeqNum(150), "trimmed to SND.UNA");
    }

    #[test]
    fn a_super_segment_sacked_in_part_is_split() {
        let mut r = rack_with(&[(0, 1000, 0)]);
        let mut sb = Scoreboard::default();
        sb.on_ack(SeqNum(0), SeqNum(1000), &[(100, 200)]);
        r.on_ack(ms(20), SeqNum(0), &sb, Some(Duration::from_millis(20)));
        let v: Vec<_> = r
            .sent
            .iter()
            .map(|s| (s.start.get(), s.end.get(), s.sacked))
            .collect();
        assert_eq!(v, [(0, 100, false), (100, 200, true), (200, 1000, false)]);
        let (lost, _) = r.detect(ms(30), None, false, 0);
        assert_eq!(lost, 1);
        assert!(r.lost_at(SeqNum(0)) && !r.lost_at(SeqNum(500)));
    }

    #[test]
    fn dsacks_widen_the_reordering_window_once_a_round_and_16_recoveries_reset_it() {
        let mut r = Rack {
            min_rtt: Some(Duration::from_millis(40)),
            ..Rack::default()
        };
        let srtt = Some(Duration::from_millis(100));
        assert_eq!(r.reo_wnd(srtt, false, 0), Duration::from_millis(10));
        r.on_ack_dsack(SeqNum(0), SeqNum(1000), true);
        assert_eq!(r.reo_wnd(srtt, false, 0), Duration::from_millis(20));
        // A second D-SACK in the same round trip does not raise it again.
        r.on_ack_dsack(SeqNum(500), SeqNum(1500), true);
        assert_eq!(r.reo_wnd(srtt, false, 0), Duration::from_millis(20));
        r.on_ack_dsack(SeqNum(1000), SeqNum(2000), true);
        assert_eq!(r.reo_wnd(srtt, false, 0), Duration::from_millis(30));
        // Never beyond SRTT.
        assert_eq!(
            r.reo_wnd(Some(Duration::from_millis(25)), false, 0),
            Duration::from_millis(25)
        );
        for _ in 0..15 {
            r.on_recovery_end();
        }
        assert_eq!(r.reo_wnd(srtt, false, 0), Duration::from_millis(30));
        r.on_recovery_end();
        assert_eq!(r.reo_wnd(srtt, false, 0), Duration::from_millis(10));
    }

    #[test]
    fn pto_is_two_srtt_plus_the_delayed_ack_for_one_segment() {
        let s = Some(Duration::from_millis(30));
        assert_eq!(Rack::pto(s, false), Some(Duration::from_millis(60)));
        assert_eq!(Rack::pto(s, true), Some(Duration::from_millis(260)));
        assert_eq!(Rack::pto(None, false), None);
    }
}
