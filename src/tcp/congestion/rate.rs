//! Delivery rate sampling (draft-ietf-ccwg-bbr §4.1, "Delivery Rate
//! Samples"; first written up as draft-cheng-iccrg-delivery-rate-estimation).
//!
//! Each transmission records how much had been delivered when it left
//! (P.delivered, P.delivered_time, P.first_send_time). When the peer
//! acknowledges it, cumulatively or in a SACK block, the data delivered
//! since, divided by the longer of the send and the ACK intervals, is a
//! sample of the path's delivery rate. The ACK interval keeps a burst of
//! ACKs from inflating the rate; the send interval keeps a burst of sends.
//!
//! Records are kept per segment (or super-segment, as the draft recommends
//! with offload: §4.1.2 "Offload Mechanisms"), sorted by sequence number;
//! a SACK or cumulative ACK of part of one splits it. Only BBR keeps them.

use std::collections::VecDeque;
use std::time::Duration;

use crate::tcp::seq::{split_span_at, SeqNum, SeqSpan};
use crate::time::Instant;

/// The per-packet (P) state of §4.1.2.2, for `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packet {
    start: SeqNum,
    end: SeqNum,
    /// P.send_time.
    send_time: Instant,
    /// P.delivered: C.delivered when it was sent.
    delivered: u64,
    /// P.delivered_time.
    delivered_time: Instant,
    /// P.first_send_time.
    first_send_time: Instant,
    /// P.is_app_limited.
    app_limited: bool,
    /// It left while the sender was held back by the peer's window (or
    /// before what was in flight then was delivered).
    rwnd_limited: bool,
    /// P.tx_in_flight: C.inflight just after it was sent.
    tx_in_flight: u32,
    /// P.lost: C.lost when it was sent.
    lost: u64,
    /// It is a retransmission (its RTT is ambiguous, RFC 6298 §3).
    rexmit: bool,
}

impl Packet {
    fn len(&self) -> u64 {
        u64::from(self.end - self.start)
    }
}

impl SeqSpan for Packet {
    fn span(&self) -> (SeqNum, SeqNum) {
        (self.start, self.end)
    }
    fn set_span(&mut self, start: SeqNum, end: SeqNum) {
        (self.start, self.end) = (start, end);
    }
}

/// The rate sample (RS) one ACK gives (§4.1.2.3, with the per-ACK state
/// of §2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct RateSample {
    /// RS.delivery_rate in bytes per second; 0 when the ACK gave no
    /// reliable sample (nothing newly delivered, or an interval shorter
    /// than min_rtt).
    pub delivery_rate: f64,
    /// RS.is_app_limited: the newest delivered packet left while the
    /// sender was application-limited.
    pub is_app_limited: bool,
    /// The newest delivered packet left while the sender was held back by
    /// the peer's receive window (tunstack's addition, kept as the draft
    /// keeps RS.is_app_limited).
    pub is_rwnd_limited: bool,
    /// RS.interval.
    pub interval: Duration,
    /// RS.delivered: data delivered over the interval.
    pub delivered: u64,
    /// RS.prior_delivered: P.delivered of the newest delivered packet.
    pub prior_delivered: u64,
    /// RS.rtt: the round trip of the newest delivered packet, if it was
    /// not a retransmission.
    pub rtt: Option<Duration>,
    /// RS.newly_acked: bytes newly delivered (cumulatively or SACKed).
    pub newly_acked: u64,
    /// RS.tx_in_flight: C.inflight when the newest delivered packet left.
    pub tx_in_flight: u32,
    /// RS.lost: data marked lost between that packet's transmission and
    /// now.
    pub lost: u64,
    /// Something was delivered (RS.prior_time != 0).
    pub has_data: bool,
}

/// The per-connection (C) state of §4.1.2.1, and the records.
#[derive(Clone, Debug, Default)]
pub(crate) struct RateSampler {
    sent: VecDeque<Packet>,
    /// C.delivered.
    pub delivered: u64,
    /// C.delivered_time.
    delivered_time: Option<Instant>,
    /// C.first_send_time.
    first_send_time: Option<Instant>,
    /// C.app_limited: the application-limited phase.
    app_limited: Bubble,
    /// The same for the peer's receive window (tunstack's addition).
    rwnd_limited: Bubble,
    /// C.lost.
    pub lost: u64,
}

/// A phase in which the sender did not fill the pipe (§4.1.2.5's "bubble"):
/// the C.delivered value that ends it, 0 when none. What is sent during it
/// is marked, and it ends once what was in flight at its start has been
/// delivered.
#[derive(Clone, Copy, Debug, Default)]
struct Bubble(u64);

impl Bubble {
    fn mark(&mut self, delivered: u64, inflight: u32) {
        self.0 = (delivered + u64::from(inflight)).max(1);
    }

    fn active(self) -> bool {
        self.0 != 0
    }

    /// Ends the phase once more than its bubble has been delivered.
    fn end_if_delivered(&mut self, delivered: u64) {
        if self.0 != 0 && delivered > self.0 {
            self.0 = 0;
        }
    }
}

impl RateSampler {
    /// Whether the connection is marked application-limited.
    pub fn app_limited(&self) -> bool {
        self.app_limited.active()
    }

    /// MarkConnectionAppLimited (§4.1.2.5): the phase lasts until what is
    /// in flight now has been delivered.
    pub fn mark_app_limited(&mut self, inflight: u32) {
        self.app_limited.mark(self.delivered, inflight);
    }

    /// The peer's window holds the sender back: as an application-limited
    /// phase, it lasts until what is in flight now has been delivered.
    pub fn mark_rwnd_limited(&mut self, inflight: u32) {
        self.rwnd_limited.mark(self.delivered, inflight);
    }

    /// Whether the connection is marked receiver-limited.
    #[cfg(test)]
    pub fn rwnd_limited(&self) -> bool {
        self.rwnd_limited.active()
    }

    /// Data marked lost (C.lost grows; BBR's loss rate reads it).
    pub fn on_lost(&mut self, bytes: u32) {
        self.lost += u64::from(bytes);
    }

    /// OnPacketSent (§4.1.2.4): `[start, end)` left at `now`;
    /// `inflight_before` was in flight before it. A retransmission
    /// replaces the records of what it covers.
    pub fn on_sent(
        &mut self,
        now: Instant,
        start: SeqNum,
        end: SeqNum,
        inflight_before: u32,
        rexmit: bool,
    ) {
        if end <= start {
            return;
        }
        if inflight_before == 0 {
            self.first_send_time = Some(now);
            self.delivered_time = Some(now);
        }
        let p = Packet {
            start,
            end,
            send_time: now,
            delivered: self.delivered,
            delivered_time: self.delivered_time.unwrap_or(now),
            first_send_time: self.first_send_time.unwrap_or(now),
            app_limited: self.app_limited.active(),
            rwnd_limited: self.rwnd_limited.active(),
            tx_in_flight: inflight_before.saturating_add(end - start),
            lost: self.lost,
            rexmit,
        };
        if self.sent.back().is_none_or(|b| b.end <= start) {
            self.sent.push_back(p);
            return;
        }
        // A retransmission: what it covers is sent anew.
        self.split_at(start);
        self.split_at(end);
        let first = self.sent.partition_point(|s| s.end <= start);
        let last = self.sent.partition_point(|s| s.start < end);
        self.sent.drain(first..last.max(first));
        self.sent.insert(first, p);
    }

    /// Splits the record holding `at` (if one does) in two at `at`.
    fn split_at(&mut self, at: SeqNum) {
        split_span_at(&mut self.sent, at);
    }

    /// Upon receiving an ACK (§4.1.2.4, UpdateRateSample for each newly
    /// delivered packet, then GenerateRateSample): `una` is the cumulative
    /// ACK, `sacked` the SACKed ranges above it; `min_rtt` the smallest
    /// round trip seen (a shorter interval gives no rate).
    pub fn on_ack(
        &mut self,
        now: Instant,
        una: SeqNum,
        sacked: &[(SeqNum, SeqNum)],
        min_rtt: Option<Duration>,
    ) -> RateSample {
        let mut rs = RateSample::default();
        let mut newest: Option<Packet> = None;
        // Cumulatively acknowledged.
        self.split_at(una);
        while self.sent.front().is_some_and(|p| p.end <= una) {
            if let Some(p) = self.sent.pop_front() {
                self.deliver(now, p, &mut rs, &mut newest);
            }
        }
        // SACKed.
        for &(start, end) in sacked {
            let first = self.sent.partition_point(|s| s.end <= start);
            if self.sent.get(first).is_none_or(|s| s.start >= end) {
                continue;
            }
            self.split_at(start);
            self.split_at(end);
            let first = self.sent.partition_point(|s| s.end <= start);
            let last = self.sent.partition_point(|s| s.start < end);
            for p in self.sent.drain(first..last.max(first)).collect::<Vec<_>>() {
                self.deliver(now, p, &mut rs, &mut newest);
            }
        }
        // GenerateRateSample: the bubble is gone once it is delivered.
        self.app_limited.end_if_delivered(self.delivered);
        self.rwnd_limited.end_if_delivered(self.delivered);
        let Some(p) = newest else {
            return rs;
        };
        rs.has_data = true;
        rs.prior_delivered = p.delivered;
        rs.is_app_limited = p.app_limited;
        rs.is_rwnd_limited = p.rwnd_limited;
        rs.tx_in_flight = p.tx_in_flight;
        rs.lost = self.lost.saturating_sub(p.lost);
        rs.rtt = (!p.rexmit).then(|| now - p.send_time);
        let send_elapsed = p.send_time - p.first_send_time;
        let ack_elapsed = now - p.delivered_time;
        // "Use the longer of the send_elapsed and ack_elapsed."
        rs.interval = send_elapsed.max(ack_elapsed);
        rs.delivered = self.delivered - p.delivered;
        // "Normally we expect interval >= MinRTT": a shorter one is no
        // reliable sample.
        if min_rtt.is_some_and(|m| rs.interval < m) || rs.interval.is_zero() {
            return rs;
        }
        rs.delivery_rate = rs.delivered as f64 / rs.interval.as_secs_f64();
        rs
    }

    /// UpdateRateSample for one packet: counts it delivered, and keeps
    /// the most recently sent one (IsNewestPacket).
    fn deliver(
        &mut self,
        now: Instant,
        p: Packet,
        rs: &mut RateSample,
        newest: &mut Option<Packet>,
    ) {
        self.delivered += p.len();
        self.delivered_time = Some(now);
        rs.newly_acked += p.len();
        let is_newest = newest.is_none_or(|n| {
            p.send_time > n.send_time || (p.send_time == n.send_time && p.end > n.end)
        });
        if is_newest {
            *newest = Some(p);
            self.first_send_time = Some(p.send_time);
        }
    }

    /// How many records are held (bounded by what is in flight).
    #[cfg(test)]
    pub fn records(&self) -> usize {
        self.sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    /// Ten segments of 1000 bytes sent at once from idle, acknowledged
    /// 10 ms later in one ACK: 10,000 bytes over 10 ms.
    #[test]
    fn a_flight_acknowledged_after_one_rtt_gives_its_rate() {
        let mut r = RateSampler::default();
        for i in 0..10u32 {
            r.on_sent(
                ms(0),
                SeqNum(i * 1000),
                SeqNum((i + 1) * 1000),
                i * 1000,
                false,
            );
        }
        let rs = r.on_ack(ms(10), SeqNum(10_000), &[], None);
        assert!(rs.has_data);
        assert_eq!(rs.newly_acked, 10_000);
        assert_eq!(rs.delivered, 10_000);
        assert_eq!(rs.interval, Duration::from_millis(10));
        assert!((rs.delivery_rate - 1_000_000.0).abs() < 1.0, "{rs:?}");
        assert_eq!(rs.rtt, Some(Duration::from_millis(10)));
        assert_eq!(rs.tx_in_flight, 10_000);
        assert_eq!(r.records(), 0);
    }

    /// The send interval wins when the sends were spread out more than
    /// the ACKs: C left 30 ms after the flight's first send, and its ACK
    /// came 22 ms after the ACK that opened the sample.
    #[test]
    fn the_longer_of_send_and_ack_intervals_is_used() {
        let mut r = RateSampler::default();
        r.on_sent(ms(0), SeqNum(0), SeqNum(1000), 0, false); // A, from idle
        r.on_sent(ms(5), SeqNum(1000), SeqNum(2000), 1000, false); // B
        let rs = r.on_ack(ms(10), SeqNum(1000), &[], None); // A
        assert_eq!(rs.interval, Duration::from_millis(10));
        r.on_sent(ms(30), SeqNum(2000), SeqNum(3000), 1000, false); // C
        let rs = r.on_ack(ms(32), SeqNum(3000), &[], None); // B and C
        assert_eq!(rs.interval, Duration::from_millis(30), "send_elapsed");
        assert_eq!(rs.delivered, 2000);
        assert!((rs.delivery_rate - 2000.0 / 0.030).abs() < 1.0, "{rs:?}");
    }

    /// A SACK block delivers a piece out of order; the cumulative ACK
    /// later delivers the rest, and nothing is counted twice.
    #[test]
    fn sacked_pieces_count_once() {
        let mut r = RateSampler::default();
        r.on_sent(ms(0), SeqNum(0), SeqNum(4000), 0, false); // a super-segment
        let rs = r.on_ack(ms(10), SeqNum(0), &[(SeqNum(2000), SeqNum(3000))], None);
        assert_eq!(rs.newly_acked, 1000);
        assert_eq!(r.records(), 2, "the SACKed piece is gone, the rest split");
        let rs = r.on_ack(ms(12), SeqNum(4000), &[], None);
        assert_eq!(rs.newly_acked, 3000);
        assert_eq!(r.delivered, 4000);
    }

    /// A retransmission replaces the record: its RTT is not a sample, and
    /// its P.lost snapshot is taken anew.
    #[test]
    fn a_retransmission_restamps_and_gives_no_rtt() {
        let mut r = RateSampler::default();
        r.on_sent(ms(0), SeqNum(0), SeqNum(3000), 0, false);
        r.on_lost(1000);
        r.on_sent(ms(30), SeqNum(1000), SeqNum(2000), 2000, true);
        assert_eq!(r.records(), 3);
        let rs = r.on_ack(ms(40), SeqNum(3000), &[], None);
        assert_eq!(rs.newly_acked, 3000);
        assert_eq!(rs.rtt, None, "the newest packet was a retransmission");
        assert_eq!(rs.lost, 0, "nothing lost since the retransmission left");
    }

    /// An application-limited phase marks what is sent during it, and ends
    /// once everything in flight at its start has been delivered.
    #[test]
    fn app_limited_phase_marks_samples_until_the_bubble_is_delivered() {
        let mut r = RateSampler::default();
        r.on_sent(ms(0), SeqNum(0), SeqNum(1000), 0, false);
        r.mark_app_limited(1000);
        r.on_sent(ms(1), SeqNum(1000), SeqNum(2000), 1000, false);
        let rs = r.on_ack(ms(10), SeqNum(1000), &[], None);
        assert!(!rs.is_app_limited, "sent before the phase");
        assert!(
            r.app_limited(),
            "the bubble (1000 bytes) is not delivered yet"
        );
        let rs = r.on_ack(ms(11), SeqNum(2000), &[], None);
        assert!(rs.is_app_limited, "sent during the phase");
        assert!(
            !r.app_limited(),
            "over once more than the bubble is delivered"
        );
    }

    /// A phase held back by the peer's window marks samples the same way.
    #[test]
    fn a_receiver_limited_phase_marks_samples_until_the_bubble_is_delivered() {
        let mut r = RateSampler::default();
        r.on_sent(ms(0), SeqNum(0), SeqNum(1000), 0, false);
        r.mark_rwnd_limited(1000);
        r.on_sent(ms(1), SeqNum(1000), SeqNum(2000), 1000, false);
        let rs = r.on_ack(ms(10), SeqNum(1000), &[], None);
        assert!(!rs.is_rwnd_limited, "sent before the phase");
        assert!(r.rwnd_limited(), "the bubble is not delivered yet");
        let rs = r.on_ack(ms(11), SeqNum(2000), &[], None);
        assert!(rs.is_rwnd_limited, "sent during the phase");
        assert!(!rs.is_app_limited, "a separate mark");
        assert!(!r.rwnd_limited(), "over once the bubble is delivered");
    }

    /// An interval shorter than min_rtt gives no rate (but still counts
    /// the delivery).
    #[test]
    fn an_interval_below_min_rtt_is_no_sample() {
        let mut r = RateSampler::default();
        r.on_sent(ms(0), SeqNum(0), SeqNum(1000), 0, false);
        let rs = r.on_ack(ms(2), SeqNum(1000), &[], Some(Duration::from_millis(5)));
        assert!(rs.has_data);
        assert_eq!(rs.delivery_rate, 0.0);
        assert_eq!(rs.newly_acked, 1000);
    }
}
