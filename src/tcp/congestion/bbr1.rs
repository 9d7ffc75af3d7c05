//! BBR version 1, as Linux's mainline `tcp_bbr.c` runs it (the kernel's
//! `bbr`, described in draft-cardwell-iccrg-bbr-congestion-control-00):
//! the same model of the path as [`super::bbr`] (`max_bw`, `min_rtt`, from
//! the same delivery rate samples), without version 3's loss-driven
//! bounds. Random loss does not lower its model; only the bandwidth it
//! measures does.
//!
//! ```text
//!  Startup ──► Drain ──► ProbeBW: eight phases of one min_rtt each,
//!  (2.885×)   (1/2.885×)          pacing gain 1.25, 0.75, then 1.0 six times
//!  any state ──► ProbeRTT (cwnd = 4 segments for 200 ms and a round,
//!                          when min_rtt is 10 s old) ──► back
//! ```
//!
//! - `max_bw` is the windowed maximum of the delivery rate over ten
//!   rounds; cwnd is `2 × BDP` plus what ACK aggregation needs, and grows
//!   by what each ACK delivers up to that target.
//! - Startup ends when the bandwidth grew by less than 25 % in three
//!   rounds, never on loss. A round held back by the peer's receive
//!   window does not count (tunstack's addition, see
//!   `check_full_bw_reached`).
//! - Loss recovery: the first round of fast recovery conserves packets
//!   (cwnd = in flight + newly delivered); data marked lost comes off
//!   cwnd; cwnd is restored when recovery ends.
//!
//! Left out, each with its reason:
//! - The long-term ("policer") bandwidth model, `lt_bw`: it takes over
//!   only after intervals losing 20 % and more, which no path of the
//!   project's tests or benchmarks has.
//! - ProbeBW's phase is chosen at random among the seven that do not
//!   drain, as Linux does, from a seeded generator: the core is
//!   deterministic.
//!
//! Pure: time comes in as [`Instant`].

use std::time::Duration;

use super::bbr::{Delivery, HoldStep, Mode, ProbeRttHold};
use super::rate::{RateSample, RateSampler};
use super::Window;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// Startup's pacing and cwnd gain, 2/ln 2 (`bbr_high_gain`).
const HIGH_GAIN: f64 = 2.885;
/// Drain's pacing gain, its inverse (`bbr_drain_gain`).
const DRAIN_GAIN: f64 = 1.0 / HIGH_GAIN;
/// ProbeBW's cwnd gain (`bbr_cwnd_gain`).
const CWND_GAIN: f64 = 2.0;
/// ProbeBW's pacing gains, one phase each (`bbr_pacing_gain`).
const PACING_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The max_bw filter's length in rounds (`bbr_bw_rtts`: a cycle and two).
const BW_RTTS: u64 = PACING_GAINS.len() as u64 + 2;
/// How long a min_rtt sample lasts (`bbr_min_rtt_win_sec`).
const MIN_RTT_WIN: Duration = Duration::from_secs(10);
/// Startup's bandwidth growth test (`bbr_full_bw_thresh`,
/// `bbr_full_bw_cnt`).
const FULL_BW_THRESH: f64 = 1.25;
const FULL_BW_CNT: u32 = 3;
/// The least cwnd, in segments (`bbr_cwnd_min_target`).
const CWND_MIN_SEGMENTS: u32 = 4;
/// Pacing runs this fraction below the bandwidth (`bbr_pacing_margin_percent`).
const PACING_MARGIN: f64 = 0.01;
/// ACK aggregation: its filter's length in rounds
/// (`bbr_extra_acked_win_rtts`), the most cwnd it adds in time at `bw`
/// (`bbr_extra_acked_max_us`), and the epoch's reset threshold in
/// segments (`bbr_ack_epoch_acked_reset_thresh`).
const EXTRA_ACKED_WIN_RTTS: u32 = 5;
const EXTRA_ACKED_MAX: Duration = Duration::from_millis(100);
const ACK_EPOCH_RESET_SEGMENTS: u64 = 1 << 20;

/// The state machine's states (`enum bbr_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

/// The connection's loss recovery state as BBR sees it, Linux's
/// `icsk_ca_state` in the order BBR compares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CaState {
    Open,
    /// Fast recovery.
    Recovery,
    /// After a retransmission timeout.
    Loss,
}

/// A windowed maximum that keeps the best three samples of its window
/// (Kathleen Nichols' algorithm, as Linux's `win_minmax`), the window
/// counted in rounds.
#[derive(Clone, Copy, Debug, Default)]
struct WindowedMax {
    /// (round, value): the best, the second best after it, the third.
    s: [(u64, f64); 3],
}

impl WindowedMax {
    fn get(&self) -> f64 {
        self.s[0].1
    }

    /// Takes the sample `v` of round `t`, forgetting what is older than
    /// `win` rounds.
    fn update(&mut self, win: u64, t: u64, v: f64) {
        let new = (t, v);
        if v >= self.s[0].1 || t.saturating_sub(self.s[2].0) > win {
            self.s = [new; 3];
            return;
        }
        if v >= self.s[1].1 {
            self.s[1] = new;
            self.s[2] = new;
        } else if v >= self.s[2].1 {
            self.s[2] = new;
        }
        // The best is older than the window: the next best moves up.
        let age = t.saturating_sub(self.s[0].0);
        if age > win {
            self.s = [self.s[1], self.s[2], new];
            if t.saturating_sub(self.s[0].0) > win {
                self.s = [self.s[1], self.s[2], new];
            }
        } else if self.s[1].0 == self.s[0].0 && age > win / 4 {
            // A quarter of the window passed with one best: a second
            // choice from the rest of it.
            self.s[1] = new;
            self.s[2] = new;
        } else if self.s[2].0 == self.s[1].0 && age > win / 2 {
            self.s[2] = new;
        }
    }
}

/// The state of one BBRv1 flow.
#[derive(Clone, Debug)]
pub(super) struct Bbr1 {
    rate: RateSampler,
    state: State,
    pacing_gain: f64,
    cwnd_gain: f64,
    /// Bytes per second.
    pacing_rate: f64,
    send_quantum: u32,
    initial_cwnd: u32,
    pacing_from_rtt: bool,
    mss: u32,
    // Rounds.
    next_round_delivered: u64,
    round_start: bool,
    round_count: u64,
    max_bw: WindowedMax,
    // min_rtt and ProbeRTT.
    min_rtt: Option<Duration>,
    min_rtt_stamp: Option<Instant>,
    probe_rtt_hold: ProbeRttHold,
    idle_restart: bool,
    prior_cwnd: u32,
    /// Loss recovery as the connection reports it, and as it was at the
    /// last ACK that delivered data (`bbr->prev_ca_state`): BBR acts on
    /// the change between the two.
    ca_state: CaState,
    prev_ca_state: CaState,
    packet_conservation: bool,
    /// Bytes marked lost since the last ACK was taken in (`rs->losses`).
    losses: u64,
    // Startup.
    full_bw_reached: bool,
    full_bw: f64,
    full_bw_count: u32,
    // ProbeBW.
    cycle_idx: usize,
    cycle_stamp: Instant,
    // ACK aggregation.
    ack_epoch_start: Option<Instant>,
    ack_epoch_acked: u64,
    extra_acked: [u64; 2],
    extra_acked_idx: usize,
    extra_acked_win_rounds: u32,
    rng: u64,
}

impl Bbr1 {
    /// `bbr_init`: Startup, paced at the high gain over a 1 ms RTT until
    /// the first RTT sample.
    pub fn new(w: &Window) -> Bbr1 {
        let mut b = Bbr1 {
            rate: RateSampler::default(),
            state: State::Startup,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            pacing_rate: 0.0,
            send_quantum: 2 * w.mss,
            initial_cwnd: w.cwnd,
            pacing_from_rtt: false,
            mss: w.mss,
            next_round_delivered: 0,
            round_start: false,
            round_count: 0,
            max_bw: WindowedMax::default(),
            min_rtt: None,
            min_rtt_stamp: None,
            probe_rtt_hold: ProbeRttHold::default(),
            idle_restart: false,
            prior_cwnd: 0,
            ca_state: CaState::Open,
            prev_ca_state: CaState::Open,
            packet_conservation: false,
            losses: 0,
            full_bw_reached: false,
            full_bw: 0.0,
            full_bw_count: 0,
            cycle_idx: 0,
            cycle_stamp: Instant::ZERO,
            ack_epoch_start: None,
            ack_epoch_acked: 0,
            extra_acked: [0; 2],
            extra_acked_idx: 0,
            extra_acked_win_rounds: 0,
            rng: 0x2545_f491_4f6c_dd1d ^ u64::from(w.cwnd),
        };
        b.init_pacing_rate(None);
        b
    }

    /// The state, in the terms of [`Mode`]: ProbeBW's phases by their gain
    /// (1.25 is `ProbeBwUp`, 0.75 `ProbeBwDown`, 1.0 `ProbeBwCruise`).
    pub fn mode(&self) -> Mode {
        match self.state {
            State::Startup => Mode::Startup,
            State::Drain => Mode::Drain,
            State::ProbeRtt => Mode::ProbeRtt,
            State::ProbeBw => match self.cycle_idx {
                0 => Mode::ProbeBwUp,
                1 => Mode::ProbeBwDown,
                _ => Mode::ProbeBwCruise,
            },
        }
    }

    /// Bytes per second.
    pub fn pacing_rate(&self) -> f64 {
        self.pacing_rate
    }

    pub fn send_quantum(&self) -> u32 {
        self.send_quantum
    }

    /// max_bw in bytes per second (0 before the first sample).
    pub fn bw(&self) -> f64 {
        self.max_bw.get()
    }

    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// `bbr_init_pacing_rate_from_rtt`: the initial window over SRTT (1 ms
    /// before any sample) at the high gain.
    fn init_pacing_rate(&mut self, srtt: Option<Duration>) {
        let rtt = srtt
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1));
        let bw = f64::from(self.initial_cwnd) / rtt.as_secs_f64();
        self.pacing_rate = HIGH_GAIN * bw * (1.0 - PACING_MARGIN);
    }

    /// A transmission: recorded for rate sampling; the first after idle
    /// restarts as `bbr_cwnd_event(CA_EVENT_TX_START)`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_sent(
        &mut self,
        now: Instant,
        start: SeqNum,
        end: SeqNum,
        inflight_before: u32,
        rexmit: bool,
        srtt: Option<Duration>,
        w: &mut Window,
    ) {
        if !self.pacing_from_rtt {
            if let Some(srtt) = srtt {
                self.init_pacing_rate(Some(srtt));
                self.pacing_from_rtt = true;
            }
        }
        if inflight_before == 0 && self.rate.app_limited() {
            self.idle_restart = true;
            self.ack_epoch_start = Some(now);
            self.ack_epoch_acked = 0;
            // Pace at the bandwidth, not above it, after idle.
            if self.state == State::ProbeBw {
                self.set_pacing_rate(1.0);
            } else if self.state == State::ProbeRtt {
                self.check_probe_rtt_done(now, w);
            }
        }
        self.rate.on_sent(now, start, end, inflight_before, rexmit);
    }

    /// Data deemed lost and sent again: it comes off cwnd at the next ACK
    /// (Linux's `rs->losses`, what that ACK marked lost). After a timeout
    /// it does not: Linux marks everything outstanding lost in the timer,
    /// outside any ACK, and cwnd already went down to one segment.
    pub fn on_lost(&mut self, start: SeqNum, end: SeqNum) {
        if end > start {
            self.rate.on_lost(end - start);
            if self.ca_state != CaState::Loss {
                self.losses += u64::from(end - start);
            }
        }
    }

    /// Fast recovery begins (`bbr_ssthresh` saves cwnd). The next ACK that
    /// delivers data starts packet conservation, unless the last one was
    /// in recovery too: a recovery that ended and the next that began on
    /// the same ACK are one to BBR.
    pub fn on_enter_recovery(&mut self, w: &Window) {
        self.save_cwnd(w);
        self.ca_state = CaState::Recovery;
    }

    /// Recovery (fast or after a timeout) is over; the next ACK that
    /// delivers data restores cwnd (`bbr_set_cwnd_to_recover_or_restore`).
    pub fn on_exit_recovery(&mut self) {
        self.ca_state = CaState::Open;
    }

    /// A retransmission timeout (`bbr_set_state(TCP_CA_Loss)`): cwnd is
    /// saved, and the bandwidth plateau count starts over. The caller sets
    /// cwnd to one segment; it grows by what each ACK delivers.
    pub fn on_rto(&mut self, w: &Window) {
        self.save_cwnd(w);
        self.ca_state = CaState::Loss;
        self.prev_ca_state = CaState::Loss;
        self.packet_conservation = false;
        self.losses = 0;
        self.full_bw = 0.0;
    }

    /// A recovery found spurious (`bbr_undo_cwnd`): Startup's plateau
    /// count starts over; the recovery is over (the caller puts cwnd back).
    pub fn on_spurious_recovery(&mut self) {
        self.full_bw = 0.0;
        self.full_bw_count = 0;
        self.on_exit_recovery();
    }

    /// `bbr_save_cwnd`: the cwnd to come back to, kept over a recovery
    /// and ProbeRTT.
    fn save_cwnd(&mut self, w: &Window) {
        if self.prev_ca_state < CaState::Recovery && self.state != State::ProbeRtt {
            self.prior_cwnd = w.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(w.cwnd);
        }
    }

    /// `bbr_main`: the model, then pacing rate, send quantum and cwnd.
    pub fn on_ack(&mut self, d: &Delivery<'_>, w: &mut Window) {
        if d.app_limited {
            self.rate.mark_app_limited(d.inflight);
        }
        let rs = self.rate.on_ack(d.now, d.una, d.sacked, self.min_rtt);
        if d.rwnd_limited {
            // Marked once this ACK is counted delivered: what is in flight
            // now, and what leaves next, is sent under the peer's window.
            self.rate.mark_rwnd_limited(d.inflight);
        }
        if !rs.has_data {
            return;
        }
        let losses = std::mem::take(&mut self.losses);
        if !self.pacing_from_rtt {
            if let Some(srtt) = d.srtt {
                self.init_pacing_rate(Some(srtt));
                self.pacing_from_rtt = true;
            }
        }
        let was = self.mode();
        // What was in flight before this ACK (`rs->prior_in_flight`): what
        // is now, plus what it delivered and what it found lost.
        let prior_inflight = u64::from(d.inflight) + rs.newly_acked + losses;
        // bbr_update_model.
        self.update_bw(&rs);
        self.update_ack_aggregation(d.now, &rs, w);
        self.update_cycle_phase(d.now, losses, prior_inflight);
        self.check_full_bw_reached(&rs);
        self.check_drain(d);
        self.update_min_rtt(d, &rs, w);
        self.update_gains();
        self.set_pacing_rate(self.pacing_gain);
        self.set_send_quantum();
        self.set_cwnd(d, &rs, losses, w);
        if self.round_start {
            log::trace!(
                "bbr1 round {} {}: bw {:.1} Mbit/s, pacing {:.1} Mbit/s, cwnd {}, inflight {}, \
                 delivered {}, lost {}, conservation {}",
                self.round_count,
                self.mode().name(),
                self.bw() * 8e-6,
                self.pacing_rate * 8e-6,
                w.cwnd,
                d.inflight,
                self.rate.delivered,
                self.rate.lost,
                self.packet_conservation
            );
        }
        if self.mode() != was {
            log::debug!(
                "bbr1 {} -> {}: bw {:.1} Mbit/s, min_rtt {:?}, cwnd {}, inflight {}, round {}",
                was.name(),
                self.mode().name(),
                self.bw() * 8e-6,
                self.min_rtt,
                w.cwnd,
                d.inflight,
                self.round_count
            );
        }
    }

    /// `bbr_update_bw`: round counting and the max_bw filter. An
    /// application-limited sample counts only if it raises the maximum.
    fn update_bw(&mut self, rs: &RateSample) {
        self.round_start = false;
        if rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = self.rate.delivered;
            self.round_count += 1;
            self.round_start = true;
            self.packet_conservation = false;
        }
        if rs.delivery_rate > 0.0 && (!rs.is_app_limited || rs.delivery_rate >= self.bw()) {
            self.max_bw
                .update(BW_RTTS, self.round_count, rs.delivery_rate);
        }
    }

    /// `bbr_update_ack_aggregation`: how much more than `bw` predicts has
    /// been acknowledged since the epoch began, the most of the last five
    /// to ten rounds kept.
    fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample, w: &Window) {
        if rs.newly_acked == 0 {
            return;
        }
        if self.round_start {
            self.extra_acked_win_rounds = (self.extra_acked_win_rounds + 1).min(31);
            if self.extra_acked_win_rounds >= EXTRA_ACKED_WIN_RTTS {
                self.extra_acked_win_rounds = 0;
                self.extra_acked_idx ^= 1;
                self.extra_acked[self.extra_acked_idx] = 0;
            }
        }
        let start = *self.ack_epoch_start.get_or_insert(now);
        let mut expected = (self.bw() * (now - start).as_secs_f64()) as u64;
        let reset = ACK_EPOCH_RESET_SEGMENTS * u64::from(self.mss);
        if self.ack_epoch_acked <= expected || self.ack_epoch_acked + rs.newly_acked >= reset {
            self.ack_epoch_acked = 0;
            self.ack_epoch_start = Some(now);
            expected = 0;
        }
        self.ack_epoch_acked = (self.ack_epoch_acked + rs.newly_acked).min(reset);
        let extra = self
            .ack_epoch_acked
            .saturating_sub(expected)
            .min(u64::from(w.cwnd));
        let slot = &mut self.extra_acked[self.extra_acked_idx];
        *slot = (*slot).max(extra);
    }

    /// `bbr_ack_aggregation_cwnd`: once the pipe is full, the aggregation
    /// seen, at most 100 ms at `bw`.
    fn ack_aggregation_cwnd(&self) -> u64 {
        if !self.full_bw_reached {
            return 0;
        }
        let most = (self.bw() * EXTRA_ACKED_MAX.as_secs_f64()) as u64;
        self.extra_acked[0].max(self.extra_acked[1]).min(most)
    }

    /// `bbr_update_cycle_phase` and `bbr_is_next_cycle_phase`: each phase
    /// lasts a min_rtt; probing (1.25) also waits for a loss or for
    /// in flight to reach 1.25 BDP, draining (0.75) ends early once in
    /// flight is down to the BDP.
    fn update_cycle_phase(&mut self, now: Instant, losses: u64, prior_inflight: u64) {
        if self.state != State::ProbeBw {
            return;
        }
        let full_length = self
            .min_rtt
            .is_none_or(|m| now.saturating_duration_since(self.cycle_stamp) > m);
        let gain = self.pacing_gain;
        let next = if gain == 1.0 {
            full_length
        } else if gain > 1.0 {
            full_length && (losses > 0 || prior_inflight >= self.inflight(gain))
        } else {
            full_length || prior_inflight <= self.inflight(1.0)
        };
        if next {
            self.advance_cycle_phase(now);
        }
    }

    fn advance_cycle_phase(&mut self, now: Instant) {
        self.cycle_idx = (self.cycle_idx + 1) % PACING_GAINS.len();
        self.cycle_stamp = now;
    }

    /// `bbr_check_full_bw_reached`: three rounds, not application-limited,
    /// without 25 % growth of max_bw.
    ///
    /// tunstack skips a round whose sample left while the peer's window
    /// held the sender back, as Linux skips an application-limited one: the
    /// sender did not try to fill the pipe, so a bandwidth that did not
    /// grow says nothing of the path. (Linux counts on its three rounds
    /// for the receiver's window to grow; on a lossy path a kernel
    /// receiver's window fills with out-of-order data, and Startup ended at
    /// 31.5 Mbit/s on a path of about 500.) The price: a flow that a
    /// window between one and 2.89 BDP holds back for good stays in
    /// Startup, where it would have gone to ProbeBW's cwnd of 2 BDP; what
    /// it queues stays bounded by that window.
    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_reached || !self.round_start || rs.is_app_limited || rs.is_rwnd_limited {
            return;
        }
        if self.bw() >= self.full_bw * FULL_BW_THRESH {
            self.full_bw = self.bw();
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_reached = self.full_bw_count >= FULL_BW_CNT;
    }

    /// `bbr_check_drain`: Startup's queue drained, ProbeBW begins.
    fn check_drain(&mut self, d: &Delivery<'_>) {
        if self.state == State::Startup && self.full_bw_reached {
            self.state = State::Drain;
        }
        if self.state == State::Drain && u64::from(d.inflight) <= self.inflight(1.0) {
            self.reset_probe_bw_mode(d.now);
        }
    }

    /// `bbr_reset_probe_bw_mode`: a random phase, never the draining one.
    fn reset_probe_bw_mode(&mut self, now: Instant) {
        self.state = State::ProbeBw;
        // xorshift64*: deterministic, as everything in the core is.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
        let len = PACING_GAINS.len();
        self.cycle_idx = len - 1 - (r % (len as u64 - 1)) as usize;
        self.advance_cycle_phase(now);
    }

    fn reset_mode(&mut self, now: Instant) {
        if self.full_bw_reached {
            self.reset_probe_bw_mode(now);
        } else {
            self.state = State::Startup;
        }
    }

    /// `bbr_update_min_rtt`: the least RTT of the last 10 s; when it is
    /// that old, ProbeRTT holds in flight to four segments for 200 ms and
    /// a round to measure it again.
    fn update_min_rtt(&mut self, d: &Delivery<'_>, rs: &RateSample, w: &mut Window) {
        let expired = self.min_rtt_stamp.is_some_and(|s| d.now > s + MIN_RTT_WIN);
        if let Some(rtt) = rs.rtt {
            if self.min_rtt.is_none_or(|m| rtt < m) || expired {
                self.min_rtt = Some(rtt);
                self.min_rtt_stamp = Some(d.now);
            }
        }
        if expired && !self.idle_restart && self.state != State::ProbeRtt {
            self.save_cwnd(w);
            self.state = State::ProbeRtt;
            self.probe_rtt_hold.clear();
        }
        if self.state == State::ProbeRtt {
            // Samples from this self-inflicted lull do not lower max_bw.
            self.rate.mark_app_limited(d.inflight);
            let min = u64::from(CWND_MIN_SEGMENTS * w.mss);
            let inflight = u64::from(d.inflight);
            match self
                .probe_rtt_hold
                .on_ack(d.now, inflight, min, self.round_start)
            {
                HoldStep::Started => self.next_round_delivered = self.rate.delivered,
                HoldStep::RoundDone => self.check_probe_rtt_done(d.now, w),
                HoldStep::Waiting => {}
            }
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    /// `bbr_check_probe_rtt_done`.
    fn check_probe_rtt_done(&mut self, now: Instant, w: &mut Window) {
        if self.probe_rtt_hold.expired(now) {
            self.min_rtt_stamp = Some(now);
            w.cwnd = w.cwnd.max(self.prior_cwnd);
            self.reset_mode(now);
        }
    }

    /// `bbr_update_gains`.
    fn update_gains(&mut self) {
        (self.pacing_gain, self.cwnd_gain) = match self.state {
            State::Startup => (HIGH_GAIN, HIGH_GAIN),
            State::Drain => (DRAIN_GAIN, HIGH_GAIN),
            State::ProbeBw => (PACING_GAINS[self.cycle_idx], CWND_GAIN),
            State::ProbeRtt => (1.0, 1.0),
        };
    }

    /// `bbr_set_pacing_rate`: `gain × bw`, 1 % below; in Startup it only
    /// ever rises.
    fn set_pacing_rate(&mut self, gain: f64) {
        let rate = gain * self.bw() * (1.0 - PACING_MARGIN);
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// `bbr_tso_segs_goal`: a millisecond at the pacing rate, two segments
    /// to 64 KiB.
    fn set_send_quantum(&mut self) {
        self.send_quantum = super::send_quantum_at(self.pacing_rate, self.mss);
    }

    /// `bbr_bdp`: `gain × bw × min_rtt` in whole segments, the initial
    /// window before any RTT sample.
    fn bdp(&self, gain: f64) -> u64 {
        let Some(rtt) = self.min_rtt else {
            return u64::from(self.initial_cwnd);
        };
        let mss = u64::from(self.mss);
        let bytes = gain * self.bw() * rtt.as_secs_f64();
        (bytes as u64).div_ceil(mss) * mss
    }

    /// `bbr_quantization_budget`: three send quanta more, an even number
    /// of segments, and two more in the probing phase.
    fn quantization_budget(&self, cwnd: u64) -> u64 {
        let mss = u64::from(self.mss);
        let mut cwnd = cwnd + 3 * u64::from(self.send_quantum);
        let segments = cwnd.div_ceil(mss);
        cwnd = (segments + (segments & 1)) * mss;
        if self.state == State::ProbeBw && self.cycle_idx == 0 {
            cwnd += 2 * mss;
        }
        cwnd
    }

    /// `bbr_inflight`: what `gain × BDP` keeps in flight, with the budget.
    fn inflight(&self, gain: f64) -> u64 {
        self.quantization_budget(self.bdp(gain))
    }

    /// `bbr_set_cwnd` with `bbr_set_cwnd_to_recover_or_restore`.
    fn set_cwnd(&mut self, d: &Delivery<'_>, rs: &RateSample, losses: u64, w: &mut Window) {
        let mss = u64::from(w.mss);
        let acked = rs.newly_acked;
        let mut cwnd = u64::from(w.cwnd);
        if acked > 0 {
            if losses > 0 {
                cwnd = cwnd.saturating_sub(losses).max(mss);
            }
            let (state, prev) = (self.ca_state, self.prev_ca_state);
            if state == CaState::Recovery && prev != CaState::Recovery {
                // The first round of fast recovery sends one segment for
                // each delivered (packet conservation); the round starts now.
                self.packet_conservation = true;
                self.next_round_delivered = self.rate.delivered;
                cwnd = u64::from(d.inflight) + acked;
            } else if prev >= CaState::Recovery && state < CaState::Recovery {
                // Recovery is over: back to the cwnd saved before it.
                cwnd = cwnd.max(u64::from(self.prior_cwnd));
                self.packet_conservation = false;
            }
            self.prev_ca_state = state;
            if self.packet_conservation {
                cwnd = cwnd.max(u64::from(d.inflight) + acked);
            } else {
                let target = self
                    .quantization_budget(self.bdp(self.cwnd_gain) + self.ack_aggregation_cwnd());
                if self.full_bw_reached {
                    cwnd = (cwnd + acked).min(target);
                } else if cwnd < target || self.rate.delivered < u64::from(self.initial_cwnd) {
                    cwnd += acked;
                }
                cwnd = cwnd.max(u64::from(CWND_MIN_SEGMENTS) * mss);
            }
        }
        if self.state == State::ProbeRtt {
            cwnd = cwnd.min(u64::from(CWND_MIN_SEGMENTS) * mss);
        }
        w.cwnd = u32::try_from(cwnd).unwrap_or(u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testpath::{Path, MSS};
    use super::*;

    fn steady(rate_mbit: f64, rtt_ms: u64, secs: u64) -> (Bbr1, Window, Path) {
        let (mut w, mut path) = (Window::new(MSS), Path::new(rate_mbit, rtt_ms));
        let mut b = Bbr1::new(&w);
        path.run(&mut b, &mut w, Duration::from_secs(secs));
        (b, w, path)
    }

    fn delivery(now: Instant, inflight: u32) -> Delivery<'static> {
        Delivery {
            now,
            una: SeqNum(0),
            sacked: &[],
            inflight,
            app_limited: false,
            cwnd_limited: true,
            rwnd_limited: false,
            in_recovery: false,
            has_sack: true,
            srtt: None,
        }
    }

    #[test]
    fn the_windowed_max_forgets_a_sample_older_than_its_window() {
        let mut m = WindowedMax::default();
        m.update(10, 1, 100.0);
        for round in 2..=11 {
            m.update(10, round, 50.0 + round as f64);
            assert_eq!(m.get(), 100.0, "round {round}");
        }
        // Round 12: the 100 of round 1 is 11 rounds old; the best of the
        // rest (61, round 11) takes over.
        m.update(10, 12, 40.0);
        assert_eq!(m.get(), 61.0);
        // A new maximum replaces everything at once.
        m.update(10, 13, 70.0);
        assert_eq!(m.get(), 70.0);
    }

    #[test]
    fn startup_finds_the_bottleneck_then_drains_into_probe_bw() {
        let (b, w, _) = steady(100.0, 20, 2);
        assert!(b.full_bw_reached);
        assert_eq!(b.state, State::ProbeBw);
        let bw_mbit = b.bw() * 8.0 / 1e6;
        assert!((90.0..=110.0).contains(&bw_mbit), "bw {bw_mbit} Mbit/s");
        let min_rtt = b.min_rtt().unwrap_or_default();
        assert!(min_rtt >= Duration::from_millis(20) && min_rtt < Duration::from_millis(22));
        // cwnd: 2 BDP (250 kB) plus aggregation and quanta, at most.
        let bdp = 100e6 / 8.0 * 0.020;
        let cwnd = f64::from(w.cwnd);
        assert!(cwnd >= bdp && cwnd <= 3.0 * bdp, "cwnd {cwnd} bdp {bdp}");
    }

    /// tunstack's addition to Linux's full-pipe test: rounds held back by
    /// the receiver's window do not count toward the plateau.
    #[test]
    fn startup_does_not_end_on_rounds_held_back_by_the_receivers_window() {
        let (mut w, mut path) = (Window::new(MSS), Path::new(100.0, 20));
        let mut b = Bbr1::new(&w);
        // The receiver's window holds the sender to 20 segments a round
        // trip (8 Mbit/s) for half a second, then opens (a receiver that
        // grows its buffer late, or one whose buffer out-of-order data
        // fills).
        path.rwnd = 20 * MSS;
        path.run(&mut b, &mut w, Duration::from_millis(500));
        assert_eq!(b.state, State::Startup, "bw {} Mbit/s", b.bw() * 8e-6);
        path.rwnd = u32::MAX;
        path.run(&mut b, &mut w, Duration::from_secs(1));
        // Startup went on and found the path's 100 Mbit/s. (Ending at 8,
        // ProbeBW's 1.25 probes would have reached about 30 in this
        // second.)
        assert_eq!(b.state, State::ProbeBw);
        let bw_mbit = b.bw() * 8e-6;
        assert!((90.0..=110.0).contains(&bw_mbit), "bw {bw_mbit} Mbit/s");
    }

    #[test]
    fn probe_bw_runs_its_eight_gains_in_order_a_min_rtt_each() {
        let (mut b, mut w, mut path) = steady(100.0, 20, 2);
        let mut gains = Vec::new();
        let mut since = path.now;
        for _ in 0..400 {
            let was = b.cycle_idx;
            path.run(&mut b, &mut w, Duration::from_millis(1));
            if b.cycle_idx != was {
                gains.push((PACING_GAINS[was], path.now - since));
                since = path.now;
            }
        }
        // After the first (partial) phase: 1.25, 0.75, then 1.0 six times.
        let i = gains
            .iter()
            .position(|&(g, _)| g == 1.25)
            .expect("a probing phase");
        let cycle: Vec<f64> = gains[i..i + 8].iter().map(|&(g, _)| g).collect();
        assert_eq!(
            cycle,
            [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "{gains:?}"
        );
        // Each phase but draining lasts at least min_rtt (20 ms).
        for &(g, d) in &gains[i..i + 8] {
            if g != 0.75 {
                assert!(d >= Duration::from_millis(20), "{g}: {d:?}");
            }
        }
    }

    #[test]
    fn reported_loss_lowers_neither_bandwidth_nor_startup() {
        let (mut w, mut path) = (Window::new(MSS), Path::new(100.0, 20));
        let mut b = Bbr1::new(&w);
        // 5 % of what is sent is reported lost, from the first round on.
        let mut marked = SeqNum(0);
        let mut startup_exit_bw = None;
        for _ in 0..3000 {
            path.run(&mut b, &mut w, Duration::from_millis(1));
            while path.nxt - marked >= 20 * MSS {
                b.on_lost(marked, marked + MSS);
                marked += 20 * MSS;
            }
            if b.state != State::Startup && startup_exit_bw.is_none() {
                startup_exit_bw = Some(b.bw() * 8.0 / 1e6);
            }
        }
        // Startup ended on the bandwidth plateau, not on the first loss.
        let exit_mbit = startup_exit_bw.expect("Startup ended");
        assert!(exit_mbit >= 80.0, "Startup ended at {exit_mbit} Mbit/s");
        let bw_mbit = b.bw() * 8.0 / 1e6;
        assert!(bw_mbit >= 90.0, "bw {bw_mbit} Mbit/s");
        // Losses come off cwnd, a segment each, and growth refills it.
        let bdp = 100e6 / 8.0 * 0.020;
        assert!(f64::from(w.cwnd) >= bdp, "cwnd {} bdp {bdp}", w.cwnd);
    }

    #[test]
    fn recovery_conserves_packets_for_a_round_then_restores_cwnd() {
        let (mut b, mut w, path) = steady(100.0, 20, 2);
        let before = w.cwnd;
        b.on_enter_recovery(&w);
        // An ACK delivering 2 segments with 100 in flight after it, two
        // segments found lost: cwnd = in flight + delivered.
        let sent = b.rate.delivered;
        let now = path.now + Duration::from_millis(1);
        let una = SeqNum(0) + (sent as u32);
        b.on_sent(now, una, una + 4 * MSS, 0, false, None, &mut w);
        b.on_lost(una, una + 2 * MSS);
        let mut d = delivery(now + Duration::from_millis(20), 100 * MSS);
        d.una = una + 2 * MSS;
        d.in_recovery = true;
        b.on_ack(&d, &mut w);
        assert!(b.packet_conservation);
        assert_eq!(w.cwnd, 102 * MSS);
        // Recovery ends: the next ACK that delivers data puts cwnd back to
        // at least what it was before.
        b.on_exit_recovery();
        let now = now + Duration::from_millis(21);
        b.on_sent(now, una + 4 * MSS, una + 5 * MSS, 0, false, None, &mut w);
        let mut d = delivery(now + Duration::from_millis(20), 100 * MSS);
        d.una = una + 5 * MSS;
        b.on_ack(&d, &mut w);
        assert!(!b.packet_conservation);
        assert!(w.cwnd >= before, "cwnd {} before {before}", w.cwnd);
    }

    #[test]
    fn a_recovery_that_follows_another_on_the_same_ack_is_not_a_new_one() {
        // Linux's BBR compares the recovery state at each ACK with the last
        // (`prev_ca_state`): a recovery that ended and the next that began
        // before the ACK is taken in is one long recovery, without a second
        // round of packet conservation.
        let (mut b, mut w, path) = steady(100.0, 20, 2);
        b.on_enter_recovery(&w);
        let mut now = path.now;
        let mut una = SeqNum(0) + (b.rate.delivered as u32);
        let ack = |b: &mut Bbr1, w: &mut Window, now: &mut Instant, una: &mut SeqNum| {
            *now += Duration::from_millis(21);
            b.on_sent(*now, *una, *una + 2 * MSS, 0, false, None, w);
            let mut d = delivery(*now + Duration::from_millis(20), 100 * MSS);
            *una += 2 * MSS;
            d.una = *una;
            d.in_recovery = true;
            b.on_ack(&d, w);
        };
        ack(&mut b, &mut w, &mut now, &mut una);
        assert!(b.packet_conservation);
        assert_eq!(w.cwnd, 102 * MSS);
        // A round later conservation is over and cwnd grows again.
        w.cwnd = 150 * MSS;
        b.packet_conservation = false;
        // One recovery ends and the next begins before the ACK arrives.
        b.on_exit_recovery();
        b.on_enter_recovery(&w);
        ack(&mut b, &mut w, &mut now, &mut una);
        assert!(!b.packet_conservation, "no second conservation");
        assert!(w.cwnd >= 150 * MSS, "cwnd {} cut to in flight", w.cwnd);
        // Out of recovery for an ACK, then a new one: that one conserves.
        b.on_exit_recovery();
        ack(&mut b, &mut w, &mut now, &mut una);
        b.on_enter_recovery(&w);
        ack(&mut b, &mut w, &mut now, &mut una);
        assert!(b.packet_conservation);
        assert_eq!(w.cwnd, 102 * MSS);
    }

    #[test]
    fn data_resent_after_a_timeout_does_not_come_off_cwnd() {
        let (mut b, mut w, path) = steady(100.0, 20, 2);
        b.on_rto(&w);
        // Some round trips after the timeout cwnd has grown back to ten
        // segments; the go-back-N resends two more, and an ACK delivers one.
        w.cwnd = 10 * MSS;
        let now = path.now + Duration::from_millis(300);
        let una = SeqNum(0) + (b.rate.delivered as u32);
        b.on_sent(now, una, una + 2 * MSS, 0, true, None, &mut w);
        b.on_lost(una, una + 2 * MSS);
        let mut d = delivery(now + Duration::from_millis(20), MSS);
        d.una = una + MSS;
        d.in_recovery = true;
        b.on_ack(&d, &mut w);
        // cwnd grows by what was delivered, as from any ACK: what the
        // timeout marked lost is not taken off again.
        assert_eq!(w.cwnd, 11 * MSS);
    }

    #[test]
    fn probe_rtt_comes_after_ten_seconds_at_four_segments() {
        let (mut w, mut path) = (Window::new(MSS), Path::new(50.0, 10));
        let mut b = Bbr1::new(&w);
        let mut entered = None;
        let mut left = None;
        let mut least = u32::MAX;
        for ms in 0..12_000u64 {
            path.run(&mut b, &mut w, Duration::from_millis(1));
            if b.state == State::ProbeRtt {
                entered.get_or_insert(ms);
                least = least.min(w.cwnd);
            } else if entered.is_some() && left.is_none() {
                left = Some(ms);
            }
        }
        let entered = entered.expect("a ProbeRTT within 12 s");
        assert!(entered >= 10_000, "entered at {entered} ms");
        assert_eq!(least, CWND_MIN_SEGMENTS * MSS);
        let left = left.expect("ProbeRTT ended");
        assert!(left - entered >= 200, "{entered}..{left} ms");
        // cwnd came back.
        assert!(w.cwnd > 10 * MSS, "cwnd {}", w.cwnd);
    }
}
