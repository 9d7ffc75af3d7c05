//! Congestion control: how large the congestion window (cwnd) is, and how
//! ACKs, losses, timeouts and idle periods change it.
//!
//! [`Congestion`] holds cwnd and ssthresh for one connection and runs the
//! [`Algorithm`] chosen for it: [`Algorithm::NewReno`] (RFC 5681) or
//! [`Algorithm::Cubic`] (RFC 9438, with HyStart++ from RFC 9406 in the first
//! slow start), or [`Algorithm::Bbr`] (draft-ietf-ccwg-bbr, BBRv3). The
//! first two share slow start with appropriate byte counting (RFC 3465);
//! all three start from the initial window of RFC 6928.
//!
//! BBR works from a model of the path instead of from loss alone: it
//! samples the delivery rate of every ACK ([`Congestion::on_sent`],
//! [`Congestion::on_delivery`]) and paces what it sends
//! ([`Congestion::pacing_delay`], [`Congestion::on_paced`]).
//!
//! The window-based algorithms are paced too, unless the stack turns it
//! off ([`Congestion::set_pacing`]): at Linux's rates under the fq qdisc,
//! twice cwnd per smoothed RTT in slow start and 1.2 times in congestion
//! avoidance (`tcp_pacing_ss_ratio`, `tcp_pacing_ca_ratio`), in quanta of
//! about a millisecond (`tcp_tso_autosize`). Pacing spreads each round's
//! data over the round trip instead of sending it in one burst.
//!
//! Loss recovery is the connection's business, not this module's: the
//! recovery point, duplicate ACK counting, window inflation or the SACK
//! pipe live there. The connection only reports events:
//! [`Congestion::on_ack`] for each ACK that advances SND.UNA outside loss
//! recovery, [`Congestion::on_loss`] once per recovery episode,
//! [`Congestion::on_recovery_end`], [`Congestion::on_rto`] and
//! [`Congestion::on_idle_restart`].
//!
//! Pure: time is passed in as [`Instant`], no clock is read.

mod bbr;
mod bbr1;
mod cubic;
mod hystart;
mod newreno;
mod rate;
#[cfg(test)]
mod testpath;

pub use bbr::{Delivery, Mode as BbrMode};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// A congestion control algorithm, named as Linux's `TCP_CONGESTION` names
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// NewReno (RFC 5681 window rules; the connection does RFC 6582
    /// recovery). Linux calls it "reno".
    NewReno,
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406), the Linux default.
    #[default]
    Cubic,
    /// BBR (draft-ietf-ccwg-bbr, version 3), with pacing.
    Bbr,
    /// BBR version 1, as Linux's mainline `bbr` (the kernel's `bbr` here
    /// is this one): the same path model without version 3's loss bounds,
    /// so random loss does not slow it. Named `bbr1`.
    Bbr1,
}

impl Algorithm {
    /// Every algorithm, in the order of its declaration.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::NewReno,
        Algorithm::Cubic,
        Algorithm::Bbr,
        Algorithm::Bbr1,
    ];

    /// The names [`Algorithm::from_str`] accepts (case-insensitively).
    const ACCEPTED: [&'static str; 5] = ["reno", "newreno", "cubic", "bbr", "bbr1"];

    /// The algorithm's name: `"reno"`, `"cubic"`, `"bbr"` or `"bbr1"`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::NewReno => "reno",
            Algorithm::Cubic => "cubic",
            Algorithm::Bbr => "bbr",
            Algorithm::Bbr1 => "bbr1",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error [`Algorithm::from_str`] returns for a name it does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseAlgorithmError {
    name: String,
}

impl fmt::Display for ParseAlgorithmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown congestion control algorithm {:?} (expected one of: {})",
            self.name,
            Algorithm::ACCEPTED.join(", ")
        )
    }
}

impl std::error::Error for ParseAlgorithmError {}

impl FromStr for Algorithm {
    type Err = ParseAlgorithmError;

    /// Parses `"reno"`, `"newreno"`, `"cubic"`, `"bbr"` or `"bbr1"`, in
    /// any case.
    fn from_str(s: &str) -> Result<Algorithm, ParseAlgorithmError> {
        if s.eq_ignore_ascii_case("reno") || s.eq_ignore_ascii_case("newreno") {
            Ok(Algorithm::NewReno)
        } else if s.eq_ignore_ascii_case("cubic") {
            Ok(Algorithm::Cubic)
        } else if s.eq_ignore_ascii_case("bbr") {
            Ok(Algorithm::Bbr)
        } else if s.eq_ignore_ascii_case("bbr1") {
            Ok(Algorithm::Bbr1)
        } else {
            Err(ParseAlgorithmError { name: s.to_owned() })
        }
    }
}

/// What one ACK that advanced SND.UNA (outside loss recovery) tells the
/// algorithm.
#[derive(Clone, Copy, Debug)]
pub struct AckSample {
    /// When the ACK arrived.
    pub now: Instant,
    /// Bytes newly acknowledged (cumulatively).
    pub acked: u32,
    /// SEG.ACK. HyStart++ rounds end when it reaches the SND.NXT recorded
    /// at the round's start (RFC 9406 §4.2).
    pub ack: SeqNum,
    /// SND.NXT when the ACK arrived (before anything it lets us send).
    pub snd_nxt: SeqNum,
    /// The RTT sample this ACK gave, if any (HyStart++ takes the minimum
    /// per round).
    pub rtt: Option<Duration>,
    /// The smoothed RTT so far, if known (CUBIC's `t + RTT`, and its bound
    /// on how much of a gap between ACKs counts as sending time).
    pub srtt: Option<Duration>,
    /// The sender was limited by cwnd (it had more to send than cwnd
    /// allowed) at some point since the previous ACK. When false the flow
    /// is application-limited and cwnd does not grow (RFC 7661, RFC 9438
    /// §5.8).
    pub cwnd_limited: bool,
}

/// NewReno and CUBIC pace at this many times cwnd per SRTT while cwnd is
/// under half of ssthresh (Linux's `tcp_pacing_ss_ratio`, 200 %): the
/// window doubles each round trip, and the data goes out in the first half.
const WINDOW_PACING_SS_RATIO: f64 = 2.0;
/// ... and at this many times after (`tcp_pacing_ca_ratio`, 120 %).
const WINDOW_PACING_CA_RATIO: f64 = 1.2;
/// The most a paced sender sends at once (Linux's GSO limit).
const MAX_SEND_QUANTUM: u64 = 64 * 1024;

/// The send quantum of every paced algorithm: a millisecond at `rate`
/// (bytes per second), at least two segments and at most 64 KiB. BBR's
/// C.send_quantum (draft-ietf-ccwg-bbr §5.6.3; Linux's `bbr_tso_segs_goal`)
/// and, for NewReno and CUBIC, Linux's `tcp_tso_autosize` with
/// `tcp_min_tso_segs` 2.
fn send_quantum_at(rate: f64, mss: u32) -> u32 {
    let q = (rate / 1000.0) as u64;
    q.min(MAX_SEND_QUANTUM).max(2 * u64::from(mss)) as u32
}

/// RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)).
fn initial_window(mss: u32) -> u32 {
    mss.saturating_mul(10)
        .min(mss.saturating_mul(2).max(14_600))
}

/// The window state both algorithms act on, in bytes.
#[derive(Clone, Copy, Debug)]
struct Window {
    cwnd: u32,
    ssthresh: u32,
    /// SMSS.
    mss: u32,
}

impl Window {
    /// IW10 (RFC 6928 §2) and ssthresh "arbitrarily high" (RFC 5681 §3.1).
    fn new(mss: u32) -> Window {
        let mss = mss.max(1);
        Window {
            cwnd: initial_window(mss),
            ssthresh: u32::MAX,
            mss,
        }
    }

    /// RFC 5681 §3.1: slow start while cwnd < ssthresh.
    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// Slow start growth for an ACK of `acked` bytes, divided by `divisor`
    /// (HyStart++'s conservative slow start divides by 4). cwnd stops at
    /// ssthresh, where congestion avoidance takes over (as Linux does).
    fn slow_start(&mut self, acked: u32, divisor: u32) {
        // RFC 3465 (ABC): cwnd grows by the bytes acknowledged. §2.2 asks
        // for a limit L = 2*SMSS per ACK; like Linux (tcp_slow_start) every
        // acknowledged byte counts instead: a receiver with GRO acknowledges
        // forty segments and more at once, and L = 2 turned slow start
        // linear (tunstack -> kernel over a 20 ms path reached 95 Mbit/s
        // where the kernel's sender reached 540; docs/PERFORMANCE.md).
        let grow = acked / divisor.max(1);
        self.cwnd = self.cwnd.saturating_add(grow).min(self.ssthresh);
    }

    /// cwnd in segments, for the algorithms that compute in segments.
    fn cwnd_segments(&self) -> f64 {
        f64::from(self.cwnd) / f64::from(self.mss)
    }
}

/// The algorithm-specific state, one variant per [`Algorithm`].
#[derive(Clone, Debug)]
enum State {
    NewReno(newreno::NewReno),
    Cubic(cubic::Cubic),
    /// Boxed: BBR's model is large, and most connections run CUBIC.
    Bbr(Box<bbr::Bbr>),
    Bbr1(Box<bbr1::Bbr1>),
}

/// The congestion window of one connection and the algorithm that moves it.
///
/// Holds no loss recovery state: the connection decides when recovery
/// starts and ends and reports it here.
#[derive(Clone, Debug)]
pub struct Congestion {
    window: Window,
    state: State,
    /// A retransmission timeout fired and nothing has been acknowledged
    /// since: a further timeout keeps ssthresh (RFC 5681 §3.1).
    timed_out: bool,
    /// C.next_send_time: the earliest a paced segment may leave.
    next_send: Option<Instant>,
    /// NewReno and CUBIC pace (BBR always does).
    window_pacing: bool,
}

impl Congestion {
    /// A fresh window for `algorithm`: IW10 (RFC 6928 §2:
    /// min(10*MSS, max(2*MSS, 14600))) and ssthresh "arbitrarily high"
    /// (`u32::MAX`, RFC 5681 §3.1).
    pub fn new(algorithm: Algorithm, mss: u32) -> Congestion {
        let window = Window::new(mss);
        let state = match algorithm {
            Algorithm::NewReno => State::NewReno(newreno::NewReno::new()),
            Algorithm::Cubic => State::Cubic(cubic::Cubic::new()),
            Algorithm::Bbr => State::Bbr(Box::new(bbr::Bbr::new(&window))),
            Algorithm::Bbr1 => State::Bbr1(Box::new(bbr1::Bbr1::new(&window))),
        };
        Congestion {
            window,
            state,
            timed_out: false,
            next_send: None,
            window_pacing: false,
        }
    }

    /// The algorithm this window runs.
    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            State::NewReno(_) => Algorithm::NewReno,
            State::Cubic(_) => Algorithm::Cubic,
            State::Bbr(_) => Algorithm::Bbr,
            State::Bbr1(_) => Algorithm::Bbr1,
        }
    }

    /// How many congestion windows the send buffer provisions (Linux's
    /// `tcp_sndbuf_expand`: 2, room for fast recovery; BBR's
    /// `bbr_sndbuf_expand`: 3, since it may slow-start even in recovery).
    pub fn sndbuf_expand(&self) -> usize {
        match self.state {
            State::Bbr(_) | State::Bbr1(_) => 3,
            State::NewReno(_) | State::Cubic(_) => 2,
        }
    }

    /// Whether the algorithm wants every transmission and every ACK
    /// reported ([`Congestion::on_sent`], [`Congestion::on_delivery`]):
    /// BBR's delivery rate sampling.
    pub fn samples_delivery(&self) -> bool {
        matches!(self.state, State::Bbr(_) | State::Bbr1(_))
    }

    /// BBR's state machine state, when BBR runs.
    pub fn bbr_mode(&self) -> Option<BbrMode> {
        match &self.state {
            State::Bbr(b) => Some(b.mode()),
            State::Bbr1(b) => Some(b.mode()),
            _ => None,
        }
    }

    /// BBR's model (state, bandwidth, min_rtt), when BBR runs.
    pub fn bbr_info(&self) -> Option<crate::tcp::api::BbrInfo> {
        match &self.state {
            State::Bbr(b) => Some(crate::tcp::api::BbrInfo {
                mode: b.mode(),
                bw: b.bw() as u64,
                min_rtt: b.min_rtt(),
            }),
            State::Bbr1(b) => Some(crate::tcp::api::BbrInfo {
                mode: b.mode(),
                bw: b.bw() as u64,
                min_rtt: b.min_rtt(),
            }),
            _ => None,
        }
    }

    /// Whether NewReno and CUBIC pace (BBR always paces). Off by default
    /// here; the connection sets it from `TcpConfig::pacing`.
    pub fn set_pacing(&mut self, on: bool) {
        self.window_pacing = on;
    }

    /// The pacing rate in bytes per second, when the algorithm paces.
    /// NewReno and CUBIC (with pacing on) need the smoothed RTT `srtt`:
    /// `ratio * cwnd / srtt`, the ratio 2 while cwnd is under half of
    /// ssthresh and 1.2 after (Linux's `tcp_update_pacing_rate` with its
    /// default `tcp_pacing_ss_ratio` 200 and `tcp_pacing_ca_ratio` 120).
    /// Before the first RTT sample nothing is paced, as in Linux.
    pub fn pacing_rate(&self, srtt: Option<Duration>) -> Option<f64> {
        match &self.state {
            State::Bbr(b) => Some(b.pacing_rate()),
            State::Bbr1(b) => Some(b.pacing_rate()),
            _ if self.window_pacing => {
                let srtt = srtt.filter(|r| !r.is_zero())?.as_secs_f64();
                let ratio = if self.window.cwnd < self.window.ssthresh / 2 {
                    WINDOW_PACING_SS_RATIO
                } else {
                    WINDOW_PACING_CA_RATIO
                };
                Some(ratio * f64::from(self.window.cwnd) / srtt)
            }
            _ => None,
        }
    }

    /// The largest burst to send at once, when the algorithm paces: BBR's
    /// C.send_quantum; for NewReno and CUBIC a millisecond at the pacing
    /// rate, at least two segments and at most 64 KiB (Linux's
    /// `tcp_tso_autosize` with `tcp_min_tso_segs` 2).
    pub fn send_quantum(&self, srtt: Option<Duration>) -> Option<u32> {
        match &self.state {
            State::Bbr(b) => Some(b.send_quantum()),
            State::Bbr1(b) => Some(b.send_quantum()),
            _ => Some(send_quantum_at(self.pacing_rate(srtt)?, self.window.mss)),
        }
    }

    /// When pacing holds the next segment back: the instant it may leave,
    /// if that is after `now`.
    ///
    /// A paced sender may run one send quantum ahead of its schedule: the
    /// draft sends a quantum as one unit (§5.6.3), and tunstack without
    /// offload sends it as separate segments, which must not each wait
    /// for a timer (one every 12 µs at 1 Gbit/s).
    pub fn pacing_delay(&self, now: Instant, srtt: Option<Duration>) -> Option<Instant> {
        let next = self.next_send?;
        let rate = self.pacing_rate(srtt).filter(|&r| r > 0.0)?;
        let quantum = f64::from(self.send_quantum(srtt).unwrap_or(0));
        let ahead = Duration::from_secs_f64(quantum / rate);
        let at = next - ahead;
        (at > now).then_some(at)
    }

    /// `bytes` left at `now`: the next departure is `bytes / pacing_rate`
    /// later (draft-ietf-ccwg-bbr §5.6.2: C.next_send_time =
    /// max(Now(), C.next_send_time) + size / pacing_rate).
    pub fn on_paced(&mut self, now: Instant, bytes: u32, srtt: Option<Duration>) {
        let Some(rate) = self.pacing_rate(srtt).filter(|&r| r > 0.0) else {
            return;
        };
        let base = self.next_send.map_or(now, |t| t.max(now));
        let gap = Duration::from_secs_f64(f64::from(bytes) / rate);
        self.next_send = Some(base + gap);
    }

    /// `[start, end)` was sent at `now` (a retransmission if `rexmit`)
    /// with `inflight_before` bytes already in flight, SRTT `srtt`: BBR
    /// records it for delivery rate sampling (draft-ietf-ccwg-bbr
    /// §4.1.2.4).
    pub fn on_sent(
        &mut self,
        now: Instant,
        (start, end): (SeqNum, SeqNum),
        inflight_before: u32,
        rexmit: bool,
        srtt: Option<Duration>,
    ) {
        let w = &mut self.window;
        match &mut self.state {
            State::Bbr(b) => b.on_sent(now, start, end, inflight_before, rexmit, srtt, w),
            State::Bbr1(b) => b.on_sent(now, start, end, inflight_before, rexmit, srtt, w),
            _ => {}
        }
    }

    /// `[start, end)`, deemed lost, is being sent again (BBR's C.lost and
    /// its per-round loss signal).
    pub fn on_lost(&mut self, start: SeqNum, end: SeqNum) {
        match &mut self.state {
            State::Bbr(b) => b.on_lost(start, end, &self.window),
            State::Bbr1(b) => b.on_lost(start, end),
            _ => {}
        }
    }

    /// Every ACK, in and out of recovery, for the algorithms that sample
    /// delivery (BBR's UpdateOnACK, draft-ietf-ccwg-bbr §5.2.3).
    pub fn on_delivery(&mut self, d: &Delivery<'_>) {
        match &mut self.state {
            State::Bbr(b) => b.on_ack(d, &mut self.window),
            State::Bbr1(b) => b.on_ack(d, &mut self.window),
            _ => return,
        }
        self.timed_out = false;
    }

    /// Sets the MSS once options are known, before data flows:
    /// re-initialises everything with the same algorithm.
    pub fn set_mss(&mut self, mss: u32) {
        let pacing = self.window_pacing;
        *self = Congestion::new(self.algorithm(), mss);
        self.window_pacing = pacing;
    }

    /// Switches to `algorithm` (`TCP_CONGESTION` on a running
    /// connection): cwnd and ssthresh are kept, the new algorithm starts
    /// from its initial state, as Linux's `tcp_set_congestion_control`.
    pub fn set_algorithm(&mut self, algorithm: Algorithm) {
        if algorithm != self.algorithm() {
            let (window, pacing) = (self.window, self.window_pacing);
            *self = Congestion::new(algorithm, window.mss);
            self.window = window;
            self.window_pacing = pacing;
        }
    }

    /// The congestion window, in bytes.
    pub fn cwnd(&self) -> u32 {
        self.window.cwnd
    }

    /// The slow start threshold, in bytes (`u32::MAX` until the first
    /// congestion event or HyStart++ exit).
    pub fn ssthresh(&self) -> u32 {
        self.window.ssthresh
    }

    /// True while cwnd < ssthresh (RFC 5681 §3.1), including HyStart++'s
    /// conservative slow start.
    pub fn in_slow_start(&self) -> bool {
        self.window.in_slow_start()
    }

    /// An ACK advanced SND.UNA outside loss recovery: slow start (with
    /// ABC, RFC 3465, every acknowledged byte counting, as Linux) or the algorithm's congestion
    /// avoidance. cwnd does not grow when `!s.cwnd_limited`.
    pub fn on_ack(&mut self, s: &AckSample) {
        self.timed_out = false;
        match &mut self.state {
            State::NewReno(r) => r.on_ack(&mut self.window, s),
            State::Cubic(c) => c.on_ack(&mut self.window, s),
            // The model moves on every ACK, in on_delivery.
            State::Bbr(_) | State::Bbr1(_) => {}
        }
    }

    /// The connection enters loss recovery (fast retransmit, or loss that
    /// SACK revealed); called once per recovery episode. `flight` is
    /// FlightSize, the bytes outstanding. Sets ssthresh and cwnd = ssthresh
    /// without inflation: the connection accounts for what has left the
    /// network (RFC 5681 §3.2 step 2, RFC 6675 §5).
    pub fn on_loss(&mut self, now: Instant, flight: u32) {
        self.timed_out = false;
        match &mut self.state {
            State::NewReno(r) => r.on_loss(&mut self.window, flight),
            State::Cubic(c) => c.on_loss(&mut self.window, now),
            // draft-ietf-ccwg-bbr §5.6.4.4 OnEnterFastRecovery: cwnd is
            // kept (the model bounds it), the last good one saved.
            State::Bbr(b) => b.on_enter_recovery(&self.window),
            // Linux's bbr_ssthresh saves cwnd; the next ACK begins packet
            // conservation.
            State::Bbr1(b) => b.on_enter_recovery(&self.window),
        }
    }

    /// The recovery point was cumulatively acknowledged: cwnd = ssthresh
    /// (RFC 6582 §3.2 step 3, "deflate"); CUBIC starts its congestion
    /// avoidance epoch now.
    pub fn on_recovery_end(&mut self, now: Instant) {
        self.timed_out = false;
        match &mut self.state {
            State::Bbr(b) => {
                // draft-ietf-ccwg-bbr §5.6.4.4: RestoreCwnd.
                b.on_exit_recovery(&mut self.window);
                return;
            }
            // Linux's BBR restores cwnd at the next ACK that delivers data.
            State::Bbr1(b) => {
                b.on_exit_recovery();
                return;
            }
            _ => {}
        }
        // RFC 6582 §3.2 step 3, option (2): set cwnd to ssthresh.
        self.window.cwnd = self.window.ssthresh;
        match &mut self.state {
            State::NewReno(r) => r.on_recovery_end(),
            State::Cubic(c) => c.on_recovery_end(&self.window, now),
            State::Bbr(_) | State::Bbr1(_) => {}
        }
    }

    /// A loss recovery or timeout turned out spurious (RFC 3522 §3.2,
    /// RFC 3708 §3): `before` is this window as it was when it began. As
    /// Linux's `tcp_undo_cwnd_reduction`: cwnd and ssthresh go back to at
    /// least what they were (RFC 4015 §3's "reverse the congestion control
    /// state"), a loss-based algorithm's own state (CUBIC's W_max and epoch)
    /// too; BBR undoes its bounds and mode (draft-ietf-ccwg-bbr §5.5.11.2,
    /// HandleSpuriousLossDetection) and keeps its model.
    pub fn undo(&mut self, now: Instant, before: &Congestion) {
        self.timed_out = false;
        match (&mut self.state, &before.state) {
            (State::Bbr(b), _) => b.on_spurious_recovery(now, &mut self.window),
            (State::Bbr1(b), _) => b.on_spurious_recovery(),
            (state, old) if std::mem::discriminant(state) == std::mem::discriminant(old) => {
                *state = old.clone();
            }
            // The algorithm was switched meanwhile: only the window.
            _ => {}
        }
        self.window.cwnd = self.window.cwnd.max(before.window.cwnd);
        self.window.ssthresh = self.window.ssthresh.max(before.window.ssthresh);
    }

    /// What was outstanding at the last retransmission timeout has been
    /// acknowledged: the timeout's recovery is over. BBR restores the cwnd
    /// it had before (draft-ietf-ccwg-bbr §5.6.4.4: "upon exiting loss
    /// recovery (RTO recovery or Fast Recovery)"); the loss-based
    /// algorithms go on from their slow start.
    pub fn on_rto_recovery_end(&mut self) {
        match &mut self.state {
            State::Bbr(b) => b.on_exit_recovery(&mut self.window),
            State::Bbr1(b) => b.on_exit_recovery(),
            _ => {}
        }
    }

    /// The retransmission timer expired. `flight` is FlightSize before the
    /// timeout. Sets ssthresh (NewReno: RFC 5681 §3.1 eq. 4,
    /// max(flight/2, 2*SMSS); CUBIC: RFC 9438 §4.8, its multiplicative
    /// decrease) and cwnd = 1 SMSS, the loss window.
    ///
    /// A timeout with no ACK reported ([`Congestion::on_ack`]) since the
    /// previous one retransmits data the timer already retransmitted: it
    /// keeps ssthresh (RFC 5681 §3.1) and only sets cwnd.
    pub fn on_rto(&mut self, now: Instant, flight: u32) {
        let first = !self.timed_out;
        match &mut self.state {
            State::NewReno(r) => r.on_rto(&mut self.window, flight, first),
            State::Cubic(c) => c.on_rto(&mut self.window, now, first),
            // draft-ietf-ccwg-bbr §5.6.4.4 OnEnterRTO: save, then one
            // segment (C.inflight + 1: nothing counts in flight now).
            State::Bbr(b) => b.on_rto(&self.window),
            State::Bbr1(b) => b.on_rto(&self.window),
        }
        self.next_send = None;
        // RFC 5681 §3.1: cwnd = LW, the loss window, one segment.
        self.window.cwnd = self.window.mss;
        self.timed_out = true;
    }

    /// The sender starts sending after an idle period longer than the RTO:
    /// cwnd = min(cwnd, IW), the restart window (RFC 5681 §4.1; RFC 7661
    /// simplified). CUBIC starts a new epoch at its next ACK.
    pub fn on_idle_restart(&mut self, now: Instant) {
        if matches!(self.state, State::Bbr(_) | State::Bbr1(_)) {
            // draft-ietf-ccwg-bbr §5.4: BBR keeps cwnd and paces at bw.
            return;
        }
        // RFC 5681 §4.1: RW = min(IW, cwnd).
        self.window.cwnd = self.window.cwnd.min(initial_window(self.window.mss));
        match &mut self.state {
            State::NewReno(r) => r.on_idle_restart(),
            State::Cubic(c) => c.on_idle_restart(now),
            State::Bbr(_) | State::Bbr1(_) => {}
        }
    }
}

/// A test flow: a sender that keeps its window full, one flight per round
/// trip.
#[cfg(test)]
mod sim {
    use std::time::Duration;

    use super::{AckSample, Congestion};
    use crate::tcp::seq::SeqNum;
    use crate::time::Instant;

    /// The MSS of the tests.
    pub const MSS: u32 = 1460;

    /// An ACK sample carrying only time, bytes and whether cwnd was the
    /// limit (what NewReno looks at).
    pub fn ack(now: Instant, acked: u32, cwnd_limited: bool) -> AckSample {
        AckSample {
            now,
            acked,
            ack: SeqNum(0),
            snd_nxt: SeqNum(0),
            rtt: None,
            srtt: None,
            cwnd_limited,
        }
    }

    /// Sequence space and time of a sender with unlimited data.
    pub struct Flow {
        pub now: Instant,
        pub una: SeqNum,
        pub nxt: SeqNum,
        /// When false the sender only ever fills half of cwnd.
        pub cwnd_limited: bool,
    }

    impl Flow {
        /// A flow with nothing in flight yet, starting near the wrap of the
        /// sequence space.
        pub fn new(now: Instant) -> Flow {
            let isn = SeqNum(u32::MAX - 20_000);
            Flow {
                now,
                una: isn,
                nxt: isn,
                cwnd_limited: true,
            }
        }

        /// Sends what the window allows.
        fn fill(&mut self, c: &Congestion) {
            let allowed = if self.cwnd_limited {
                c.cwnd()
            } else {
                c.cwnd() / 2
            };
            let limit = self.una + allowed.max(1);
            self.nxt = self.nxt.max(limit);
        }

        /// One round trip: the flight in flight at its start is acknowledged
        /// `per_ack` bytes at a time, the ACKs spread evenly over `rtt`, each
        /// with `rtt` as its sample and as SRTT; each ACK's freed window is
        /// refilled at once.
        pub fn round(&mut self, c: &mut Congestion, rtt: Duration, per_ack: u32) {
            self.fill(c);
            let start = self.now;
            let end = self.nxt;
            let flight = end - self.una;
            let mut done = 0u32;
            while self.una < end {
                let acked = per_ack.min(end - self.una);
                done += acked;
                self.now = start + rtt.mul_f64(f64::from(done) / f64::from(flight));
                self.una += acked;
                c.on_ack(&AckSample {
                    now: self.now,
                    acked,
                    ack: self.una,
                    snd_nxt: self.nxt,
                    rtt: Some(rtt),
                    srtt: Some(rtt),
                    cwnd_limited: self.cwnd_limited,
                });
                self.fill(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::{ack, MSS};
    use super::*;

    /// The algorithms whose window follows loss and slow start.
    const LOSS_BASED: [Algorithm; 2] = [Algorithm::NewReno, Algorithm::Cubic];

    #[test]
    fn initial_window_is_iw10() {
        for algorithm in Algorithm::ALL {
            for (mss, iw) in [(1460, 14_600), (536, 5_360), (9000, 18_000)] {
                let c = Congestion::new(algorithm, mss);
                assert_eq!(c.cwnd(), iw, "{algorithm} MSS {mss}");
                assert_eq!(c.ssthresh(), u32::MAX);
                assert!(c.in_slow_start());
                assert_eq!(c.algorithm(), algorithm);
            }
        }
    }

    #[test]
    fn set_mss_starts_over_with_the_same_algorithm() {
        let mut c = Congestion::new(Algorithm::NewReno, 536);
        c.on_rto(Instant::ZERO, 10_000);
        c.set_mss(1460);
        assert_eq!((c.cwnd(), c.ssthresh()), (14_600, u32::MAX));
        assert_eq!(c.algorithm(), Algorithm::NewReno);
    }

    #[test]
    fn a_stretch_ack_in_slow_start_grows_cwnd_by_all_it_acknowledges() {
        for algorithm in LOSS_BASED {
            let mut c = Congestion::new(algorithm, MSS);
            c.on_ack(&ack(Instant::ZERO, 10 * MSS, true));
            assert_eq!(c.cwnd(), 20 * MSS, "{algorithm}: ABC without L, as Linux");
            c.on_ack(&ack(Instant::ZERO, MSS / 2, true));
            assert_eq!(
                c.cwnd(),
                20 * MSS + MSS / 2,
                "{algorithm}: smaller ACKs count bytes"
            );
        }
    }

    #[test]
    fn a_repeated_timeout_keeps_ssthresh() {
        for algorithm in LOSS_BASED {
            let mut c = Congestion::new(algorithm, MSS);
            c.window.cwnd = 40 * MSS;
            c.on_rto(Instant::ZERO, 40 * MSS);
            let ssthresh = c.ssthresh();
            assert!(ssthresh >= 20 * MSS, "{algorithm}: {ssthresh}");
            // The retransmission times out too: one segment was in flight.
            c.on_rto(Instant::from_secs(1), MSS);
            assert_eq!((c.cwnd(), c.ssthresh()), (MSS, ssthresh), "{algorithm}");
            // After an ACK, a new timeout is a new congestion event.
            c.on_ack(&ack(Instant::from_secs(2), MSS, true));
            c.on_rto(Instant::from_secs(3), 2 * MSS);
            assert_eq!(c.ssthresh(), 2 * MSS, "{algorithm}");
        }
    }

    #[test]
    fn idle_restart_cuts_cwnd_to_the_initial_window() {
        for algorithm in LOSS_BASED {
            let mut c = Congestion::new(algorithm, MSS);
            c.window.cwnd = 50 * MSS;
            c.window.ssthresh = 30 * MSS;
            c.on_idle_restart(Instant::from_secs(5));
            assert_eq!(c.cwnd(), 10 * MSS, "{algorithm}");
            assert_eq!(c.ssthresh(), 30 * MSS, "{algorithm}");
            // A window already below IW stays.
            c.window.cwnd = 4 * MSS;
            c.on_idle_restart(Instant::from_secs(9));
            assert_eq!(c.cwnd(), 4 * MSS, "{algorithm}");
        }
    }

    #[test]
    fn recovery_end_deflates_to_ssthresh() {
        for algorithm in LOSS_BASED {
            let mut c = Congestion::new(algorithm, MSS);
            c.window.cwnd = 40 * MSS;
            c.on_loss(Instant::ZERO, 40 * MSS);
            let ssthresh = c.ssthresh();
            assert_eq!(c.cwnd(), ssthresh, "{algorithm}: no inflation");
            c.on_recovery_end(Instant::from_millis(30));
            assert_eq!(c.cwnd(), ssthresh, "{algorithm}");
            assert!(!c.in_slow_start(), "{algorithm}");
        }
    }

    /// Window pacing (Linux's rates under fq): 2 x cwnd / SRTT while cwnd
    /// is under half of ssthresh, 1.2 x after; nothing without an RTT
    /// sample or with pacing off; quanta of a millisecond at the rate,
    /// within [2 MSS, 64 KiB]. The flag survives set_mss and
    /// set_algorithm.
    #[test]
    fn window_pacing_follows_linux_rates() {
        let srtt = Some(Duration::from_millis(10));
        for algorithm in LOSS_BASED {
            let mut c = Congestion::new(algorithm, MSS);
            assert_eq!(c.pacing_rate(srtt), None, "{algorithm}: off by default");
            c.set_pacing(true);
            c.set_mss(MSS);
            c.set_algorithm(if algorithm == Algorithm::Cubic {
                Algorithm::NewReno
            } else {
                Algorithm::Cubic
            });
            c.set_algorithm(algorithm);
            assert_eq!(c.pacing_rate(None), None, "{algorithm}: no RTT yet");
            // Slow start: IW10 over 10 ms at twice the window rate.
            let rate = c.pacing_rate(srtt).expect("paced");
            assert!(
                (rate - 2.0 * 14_600.0 / 0.010).abs() < 1.0,
                "{algorithm}: {rate}"
            );
            assert_eq!(
                c.send_quantum(srtt),
                Some(2_920),
                "{algorithm}: 1 ms of 2.92 MB/s"
            );
            // Congestion avoidance (cwnd at ssthresh): 1.2 times.
            c.window.cwnd = 100 * MSS;
            c.window.ssthresh = 100 * MSS;
            let rate = c.pacing_rate(srtt).expect("paced");
            assert!(
                (rate - 1.2 * f64::from(100 * MSS) / 0.010).abs() < 1.0,
                "{algorithm}: {rate}"
            );
            assert_eq!(c.send_quantum(srtt), Some(17_520), "{algorithm}");
            // Small and large windows: the quantum's bounds.
            c.window.cwnd = 2 * MSS;
            assert_eq!(c.send_quantum(srtt), Some(2 * MSS), "{algorithm}");
            c.window.cwnd = 10_000 * MSS;
            assert_eq!(c.send_quantum(srtt), Some(64 * 1024), "{algorithm}");
            c.set_pacing(false);
            assert_eq!(c.pacing_rate(srtt), None, "{algorithm}");
            assert_eq!(c.send_quantum(srtt), None, "{algorithm}");
        }
    }

    /// A paced window sender runs one quantum ahead of its schedule, then
    /// waits: after a quantum and a half at 1 MB/s, the next departure is
    /// half a quantum's time away; without pacing nothing ever waits.
    #[test]
    fn window_pacing_spaces_departures_by_size_over_rate() {
        let srtt = Some(Duration::from_millis(100));
        let mut c = Congestion::new(Algorithm::Cubic, MSS);
        c.set_pacing(true);
        c.window.cwnd = 50_000; // 2 x 50 kB / 100 ms = 1 MB/s, quantum 2 920
        let now = Instant::from_secs(1);
        assert_eq!(c.pacing_delay(now, srtt), None, "nothing sent yet");
        c.on_paced(now, 2_920, srtt);
        assert_eq!(
            c.pacing_delay(now, srtt),
            None,
            "one quantum ahead is allowed"
        );
        c.on_paced(now, 1_460, srtt);
        let at = c.pacing_delay(now, srtt).expect("held back");
        let wait = (at - now).as_secs_f64();
        assert!((wait - 0.001_460).abs() < 1e-6, "1 460 B at 1 MB/s: {wait}");
        let mut off = Congestion::new(Algorithm::Cubic, MSS);
        off.window.cwnd = 50_000;
        off.on_paced(now, 100_000, srtt);
        assert_eq!(off.pacing_delay(now, srtt), None);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.name().parse::<Algorithm>(), Ok(algorithm));
            assert_eq!(algorithm.to_string(), algorithm.name());
        }
        assert_eq!("NewReno".parse::<Algorithm>(), Ok(Algorithm::NewReno));
        assert_eq!("CUBIC".parse::<Algorithm>(), Ok(Algorithm::Cubic));
        assert_eq!(Algorithm::default(), Algorithm::Cubic);
        assert_eq!("BBR".parse::<Algorithm>(), Ok(Algorithm::Bbr));
        let err = "vegas".parse::<Algorithm>().unwrap_err().to_string();
        assert!(err.contains("\"vegas\""), "{err}");
        for name in ["reno", "newreno", "cubic", "bbr"] {
            assert!(err.contains(name), "{err}");
        }
    }
}
