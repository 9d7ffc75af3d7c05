//! A path for the BBR unit tests: fixed bandwidth and RTT, no loss, and a
//! sender that always has data.

use std::collections::VecDeque;
use std::time::Duration;

use super::bbr::{Bbr, Delivery};
use super::bbr1::Bbr1;
use super::Window;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// The segment size of the tests.
pub const MSS: u32 = 1000;

/// What the path needs of a model-based algorithm.
pub trait Model {
    fn on_ack(&mut self, d: &Delivery<'_>, w: &mut Window);
    fn on_sent(&mut self, now: Instant, start: SeqNum, end: SeqNum, inflight: u32, w: &mut Window);
    fn pacing_rate(&self) -> f64;
    fn send_quantum(&self) -> u32;
}

impl Model for Bbr {
    fn on_ack(&mut self, d: &Delivery<'_>, w: &mut Window) {
        Bbr::on_ack(self, d, w);
    }
    fn on_sent(&mut self, now: Instant, start: SeqNum, end: SeqNum, inflight: u32, w: &mut Window) {
        Bbr::on_sent(self, now, start, end, inflight, false, None, w);
    }
    fn pacing_rate(&self) -> f64 {
        Bbr::pacing_rate(self)
    }
    fn send_quantum(&self) -> u32 {
        Bbr::send_quantum(self)
    }
}

impl Model for Bbr1 {
    fn on_ack(&mut self, d: &Delivery<'_>, w: &mut Window) {
        Bbr1::on_ack(self, d, w);
    }
    fn on_sent(&mut self, now: Instant, start: SeqNum, end: SeqNum, inflight: u32, w: &mut Window) {
        Bbr1::on_sent(self, now, start, end, inflight, false, None, w);
    }
    fn pacing_rate(&self) -> f64 {
        Bbr1::pacing_rate(self)
    }
    fn send_quantum(&self) -> u32 {
        Bbr1::send_quantum(self)
    }
}

/// A path of fixed bandwidth and RTT with a sender that always has data:
/// it sends what cwnd and pacing allow, and the receiver ACKs every
/// segment one RTT after it leaves the bottleneck.
pub struct Path {
    pub now: Instant,
    pub rtt: Duration,
    /// Bytes per second at the bottleneck.
    pub rate: f64,
    pub nxt: SeqNum,
    pub una: SeqNum,
    /// (arrival time of the ACK, seq end) of segments in flight.
    acks: VecDeque<(Instant, SeqNum)>,
    /// When the bottleneck is next free.
    link_free: Instant,
    next_send: Instant,
    /// The receiver's window (unbounded unless a test sets it).
    pub rwnd: u32,
    /// The last sending stopped at the receiver's window, with room in
    /// cwnd (the connection's `rwnd_limited`).
    rwnd_blocked: bool,
}

impl Path {
    pub fn new(rate_mbit: f64, rtt_ms: u64) -> Path {
        Path {
            now: Instant::from_secs(1),
            rtt: Duration::from_millis(rtt_ms),
            rate: rate_mbit * 1e6 / 8.0,
            nxt: SeqNum(0),
            una: SeqNum(0),
            acks: Default::default(),
            link_free: Instant::ZERO,
            next_send: Instant::ZERO,
            rwnd: u32::MAX,
            rwnd_blocked: false,
        }
    }

    /// Runs `dur` of time in 100 µs steps.
    pub fn run<M: Model>(&mut self, b: &mut M, w: &mut Window, dur: Duration) {
        let end = self.now + dur;
        while self.now < end {
            self.step(b, w);
            self.now += Duration::from_micros(100);
        }
    }

    fn step<M: Model>(&mut self, b: &mut M, w: &mut Window) {
        // ACKs due.
        while self.acks.front().is_some_and(|&(t, _)| t <= self.now) {
            let Some((_, end)) = self.acks.pop_front() else {
                break;
            };
            self.una = end;
            let inflight = self.nxt - self.una;
            let d = Delivery {
                now: self.now,
                una: self.una,
                sacked: &[],
                inflight,
                app_limited: false,
                cwnd_limited: inflight + MSS > w.cwnd,
                rwnd_limited: self.rwnd_blocked,
                in_recovery: false,
                has_sack: true,
                srtt: Some(self.rtt),
            };
            b.on_ack(&d, w);
        }
        // Sends, paced, a quantum ahead at most (as Congestion paces).
        let ahead = f64::from(b.send_quantum()) / b.pacing_rate().max(1.0);
        let horizon = self.now + Duration::from_secs_f64(ahead);
        let window = w.cwnd.min(self.rwnd);
        while self.nxt - self.una + MSS <= window && self.next_send <= horizon {
            let inflight = self.nxt - self.una;
            b.on_sent(self.now, self.nxt, self.nxt + MSS, inflight, w);
            let tx = Duration::from_secs_f64(f64::from(MSS) / self.rate);
            let depart = self.link_free.max(self.now) + tx;
            self.link_free = depart;
            self.nxt += MSS;
            self.acks.push_back((depart + self.rtt, self.nxt));
            let gap = f64::from(MSS) / b.pacing_rate().max(1.0);
            self.next_send = self.now.max(self.next_send) + Duration::from_secs_f64(gap);
        }
        let next = self.nxt - self.una + MSS;
        self.rwnd_blocked = next > self.rwnd && next <= w.cwnd;
    }
}
