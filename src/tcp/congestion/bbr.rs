//! BBR (draft-ietf-ccwg-bbr-06, BBRv3): congestion control from a model of
//! the path, its bottleneck bandwidth (`max_bw`) and round-trip
//! propagation time (`min_rtt`), measured by delivery rate samples
//! ([`super::rate`]), rather than from loss alone.
//!
//! BBR paces: the connection sends no faster than `pacing_rate`
//! (`pacing_gain × bw`, 1 % below it), in quanta of `send_quantum`, and
//! keeps at most `cwnd` (`cwnd_gain × BDP` plus what ACK aggregation
//! needs) in flight. A state machine varies the gains to probe the path:
//!
//! ```text
//!  Startup ──► Drain ──► ProbeBW: DOWN ─► CRUISE ─► REFILL ─► UP ─┐
//!  (2.77×)     (0.5×)            (0.9×)   (1.0×)    (1.0×)   (1.25×)
//!                          ▲                                      │
//!                          └──────────────────────────────────────┘
//!  any state ──► ProbeRTT (cwnd = BDP/2 for 200 ms, every 5 s without a
//!                          new min_rtt) ──► back
//! ```
//!
//! Loss shapes the model in two ways (§5.5.10): while probing, a round
//! losing more than 2 % of what was in flight caps the long-term inflight
//! (`inflight_longterm`); otherwise each round with loss brings the
//! short-term bounds (`bw_shortterm`, `inflight_shortterm`) down to what
//! was just delivered, by at most 30 % per round.
//!
//! Simplifications, each with its reason:
//! - The max_bw filter keeps the two ProbeBW cycles the draft asks for as
//!   two slots (as Linux's `bbr_max_bw` does); the extra_acked filter keeps
//!   its 10 rounds as two slots of 5.
//! - The loss that decides "inflight too high" is checked per ACK from the
//!   rate sample (RS.lost against RS.tx_in_flight), not per lost packet;
//!   InflightAtLoss's refinement within a super-segment is left out.
//! - C.lost counts data resent because it was deemed lost (the connection
//!   reports it when it retransmits), which is when tunstack marks it.
//!
//! Pure: time comes in as [`Instant`].

use std::time::Duration;

use super::rate::{RateSample, RateSampler};
use super::Window;
use crate::tcp::seq::SeqNum;
use crate::time::Instant;

/// BBR.StartupPacingGain: 4·ln 2, the least gain that doubles the
/// sending rate each round (§2.6).
const STARTUP_PACING_GAIN: f64 = 2.77;
/// BBR.DrainPacingGain (§2.6).
const DRAIN_PACING_GAIN: f64 = 0.5;
/// BBR.DefaultCwndGain (§2.7).
const DEFAULT_CWND_GAIN: f64 = 2.0;
/// ProbeBW_UP's gains (§5.3.3.4).
const UP_PACING_GAIN: f64 = 1.25;
const UP_CWND_GAIN: f64 = 2.25;
/// ProbeBW_DOWN's pacing gain (§5.3.3.1).
const DOWN_PACING_GAIN: f64 = 0.90;
/// BBR.PacingMarginPercent (§2.6).
const PACING_MARGIN: f64 = 0.01;
/// BBR.LossThresh (§2.9).
const LOSS_THRESH: f64 = 0.02;
/// BBR.Beta (§2.9).
const BETA: f64 = 0.7;
/// BBR.Headroom (§2.9).
const HEADROOM: f64 = 0.15;
/// BBR.ProbeRTTCwndGain (§2.16.2).
const PROBE_RTT_CWND_GAIN: f64 = 0.5;
/// BBR.ProbeRTTDuration (§2.16.2), Linux's `bbr_probe_rtt_mode_ms` in
/// version 1 too.
const PROBE_RTT_DURATION: Duration = Duration::from_millis(200);
/// BBR.ProbeRTTInterval (§2.16.2).
const PROBE_RTT_INTERVAL: Duration = Duration::from_secs(5);
/// BBR.MinRTTFilterLen (§2.16.1).
const MIN_RTT_FILTER_LEN: Duration = Duration::from_secs(10);
/// BBRStartupFullLossCnt (§5.3.1.3).
const STARTUP_FULL_LOSS_CNT: u32 = 6;
/// BBR.ExtraAckedFilterLen, in rounds (§2.12).
const EXTRA_ACKED_FILTER_LEN: u64 = 10;
/// "Infinity" for volumes.
const INF: u64 = u64::MAX;

/// BBR.state (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Exponential search for the bandwidth.
    Startup,
    /// Draining the queue Startup built.
    Drain,
    /// ProbeBW_DOWN: below the bandwidth, to drain.
    ProbeBwDown,
    /// ProbeBW_CRUISE: at the bandwidth.
    ProbeBwCruise,
    /// ProbeBW_REFILL: refilling the pipe before probing.
    ProbeBwRefill,
    /// ProbeBW_UP: above the bandwidth, probing for more.
    ProbeBwUp,
    /// Draining in-flight data to measure min_rtt.
    ProbeRtt,
}

impl Mode {
    /// The name Linux's `ss -ti` would use for the mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Startup => "startup",
            Mode::Drain => "drain",
            Mode::ProbeBwDown => "probe_bw_down",
            Mode::ProbeBwCruise => "probe_bw_cruise",
            Mode::ProbeBwRefill => "probe_bw_refill",
            Mode::ProbeBwUp => "probe_bw_up",
            Mode::ProbeRtt => "probe_rtt",
        }
    }

    fn is_probe_bw(self) -> bool {
        matches!(
            self,
            Mode::ProbeBwDown | Mode::ProbeBwCruise | Mode::ProbeBwRefill | Mode::ProbeBwUp
        )
    }
}

/// BBR.ack_phase (§2.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckPhase {
    Init,
    Refilling,
    ProbeStarting,
    ProbeFeedback,
    ProbeStopping,
}

/// ProbeRTT's hold, the same in both BBRs: once in flight is down to the
/// ProbeRTT target, it lasts `PROBE_RTT_DURATION` and at least one round
/// trip (§5.3.4.4 HandleProbeRTT; Linux's `bbr_update_min_rtt` for
/// version 1).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ProbeRttHold {
    /// BBR.probe_rtt_done_stamp: when the hold may end.
    done_stamp: Option<Instant>,
    /// BBR.probe_rtt_round_done: a round trip has passed since it began.
    round_done: bool,
}

/// What [`ProbeRttHold::on_ack`] asks of the algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HoldStep {
    /// Nothing yet.
    Waiting,
    /// The hold began with this ACK: start a round.
    Started,
    /// A round trip has passed: end ProbeRTT if the hold has expired.
    RoundDone,
}

impl ProbeRttHold {
    /// Not holding (entering ProbeRTT).
    pub fn clear(&mut self) {
        *self = ProbeRttHold::default();
    }

    /// One ACK in ProbeRTT with `inflight` bytes out and a ProbeRTT cwnd
    /// of `target`.
    pub fn on_ack(
        &mut self,
        now: Instant,
        inflight: u64,
        target: u64,
        round_start: bool,
    ) -> HoldStep {
        if self.done_stamp.is_none() && inflight <= target {
            self.done_stamp = Some(now + PROBE_RTT_DURATION);
            self.round_done = false;
            return HoldStep::Started;
        }
        if self.done_stamp.is_none() {
            return HoldStep::Waiting;
        }
        self.round_done |= round_start;
        if self.round_done {
            HoldStep::RoundDone
        } else {
            HoldStep::Waiting
        }
    }

    /// The hold began and its time is up (CheckProbeRTTDone).
    pub fn expired(&self, now: Instant) -> bool {
        self.done_stamp.is_some_and(|t| now > t)
    }

    /// The hold has begun.
    #[cfg(test)]
    pub fn started(&self) -> bool {
        self.done_stamp.is_some()
    }
}

/// What one ACK tells BBR beyond the rate sample.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    /// When the ACK arrived.
    pub now: Instant,
    /// SND.UNA after the ACK.
    pub una: SeqNum,
    /// The SACKed ranges above SND.UNA.
    pub sacked: &'a [(SeqNum, SeqNum)],
    /// C.inflight after the ACK (RFC 6675's pipe in recovery).
    pub inflight: u32,
    /// The sender has nothing more to send and room in cwnd: the
    /// connection is application-limited (§4.1.2.5
    /// CheckIfApplicationLimited).
    pub app_limited: bool,
    /// C.is_cwnd_limited.
    pub cwnd_limited: bool,
    /// The sender is held back by the peer's receive window: data to send
    /// and room in cwnd, none in the window (`ss -ti`'s rwnd_limited).
    pub rwnd_limited: bool,
    /// The connection is in loss recovery.
    pub in_recovery: bool,
    /// C.has_selective_acks.
    pub has_sack: bool,
    /// C.srtt, for the initial pacing rate.
    pub srtt: Option<Duration>,
}

/// The state of one BBR flow (the BBR.* variables of §2).
#[derive(Clone, Debug)]
pub(super) struct Bbr {
    rate: RateSampler,
    mode: Mode,
    pacing_gain: f64,
    cwnd_gain: f64,
    /// C.pacing_rate, bytes per second.
    pacing_rate: f64,
    /// C.send_quantum.
    send_quantum: u32,
    /// C.InitialCwnd.
    initial_cwnd: u32,
    /// The initial pacing rate was computed from an RTT sample (not the
    /// 1 ms default).
    pacing_from_rtt: bool,
    /// C.SMSS.
    mss: u32,
    // Round counting (§5.5.1).
    next_round_delivered: u64,
    round_start: bool,
    round_count: u64,
    // Bandwidth (§5.5.2-5.5.4): two slots, the current and the previous
    // ProbeBW cycle.
    max_bw_slots: [f64; 2],
    cycle_count: u64,
    max_bw: f64,
    bw_shortterm: f64,
    bw: f64,
    bw_latest: f64,
    inflight_latest: u64,
    // Volume.
    inflight_longterm: u64,
    inflight_shortterm: u64,
    extra_acked: u64,
    extra_acked_interval_start: Option<Instant>,
    extra_acked_delivered: u64,
    extra_acked_slots: [u64; 2],
    extra_acked_slot_round: u64,
    // min_rtt and ProbeRTT (§5.3.4, §5.5.6).
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    probe_rtt_min_delay: Option<Duration>,
    probe_rtt_min_stamp: Instant,
    probe_rtt_expired: bool,
    probe_rtt_hold: ProbeRttHold,
    prior_cwnd: u32,
    idle_restart: bool,
    // Startup (§5.3.1).
    full_bw_reached: bool,
    full_bw_now: bool,
    full_bw: f64,
    full_bw_count: u32,
    drain_start_round: u64,
    // ProbeBW (§5.3.3).
    ack_phase: AckPhase,
    is_bw_probe_sample: bool,
    bw_probe_up_acked: u64,
    probe_up_acked_per_inc: u64,
    bw_probe_up_rounds: u32,
    rounds_since_probe_up: u64,
    bw_probe_wait: Duration,
    cycle_stamp: Instant,
    prev_probe_too_high: bool,
    prev_probe_precautionary: bool,
    // Loss (§5.5.10).
    is_loss_in_round: bool,
    loss_round_delivered: u64,
    loss_round_start: bool,
    /// Discontiguous lost ranges in the current loss round (Startup's exit
    /// on loss, §5.3.1.3), and where the last one ended.
    round_loss_events: u32,
    last_lost_end: Option<SeqNum>,
    /// round_count when loss recovery began.
    recovery_round: Option<u64>,
    // Undo (§2.15).
    undo_mode: Option<Mode>,
    undo_bw_shortterm: f64,
    undo_inflight_shortterm: u64,
    undo_inflight_longterm: u64,
    /// A small generator for PickProbeWait's randomness.
    rng: u64,
}

impl Bbr {
    /// OnInit (§5.2.1).
    pub fn new(w: &Window) -> Bbr {
        let mut b = Bbr {
            rate: RateSampler::default(),
            mode: Mode::Startup,
            pacing_gain: STARTUP_PACING_GAIN,
            cwnd_gain: DEFAULT_CWND_GAIN,
            pacing_rate: 0.0,
            send_quantum: 2 * w.mss,
            initial_cwnd: w.cwnd,
            pacing_from_rtt: false,
            mss: w.mss,
            next_round_delivered: 0,
            round_start: false,
            round_count: 0,
            max_bw_slots: [0.0; 2],
            cycle_count: 0,
            max_bw: 0.0,
            bw_shortterm: f64::INFINITY,
            bw: 0.0,
            bw_latest: 0.0,
            inflight_latest: 0,
            inflight_longterm: INF,
            inflight_shortterm: INF,
            extra_acked: 0,
            extra_acked_interval_start: None,
            extra_acked_delivered: 0,
            extra_acked_slots: [0; 2],
            extra_acked_slot_round: 0,
            min_rtt: None,
            min_rtt_stamp: Instant::ZERO,
            probe_rtt_min_delay: None,
            probe_rtt_min_stamp: Instant::ZERO,
            probe_rtt_expired: false,
            probe_rtt_hold: ProbeRttHold::default(),
            prior_cwnd: 0,
            idle_restart: false,
            full_bw_reached: false,
            full_bw_now: false,
            full_bw: 0.0,
            full_bw_count: 0,
            drain_start_round: 0,
            ack_phase: AckPhase::Init,
            is_bw_probe_sample: false,
            bw_probe_up_acked: 0,
            probe_up_acked_per_inc: INF,
            bw_probe_up_rounds: 0,
            rounds_since_probe_up: 0,
            bw_probe_wait: Duration::ZERO,
            cycle_stamp: Instant::ZERO,
            prev_probe_too_high: false,
            prev_probe_precautionary: false,
            is_loss_in_round: false,
            loss_round_delivered: 0,
            loss_round_start: false,
            round_loss_events: 0,
            last_lost_end: None,
            recovery_round: None,
            undo_mode: None,
            undo_bw_shortterm: f64::INFINITY,
            undo_inflight_shortterm: INF,
            undo_inflight_longterm: INF,
            rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(w.cwnd),
        };
        b.init_pacing_rate(None);
        b
    }

    /// The state machine's current state.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// C.pacing_rate in bytes per second.
    pub fn pacing_rate(&self) -> f64 {
        self.pacing_rate
    }

    /// C.send_quantum in bytes.
    pub fn send_quantum(&self) -> u32 {
        self.send_quantum
    }

    /// BBR.bw in bytes per second (0 before the first sample).
    pub fn bw(&self) -> f64 {
        self.bw
    }

    /// BBR.min_rtt, once measured.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// InitPacingRate (§5.6.2): the initial window over SRTT (1 ms before
    /// any sample), times the Startup gain.
    fn init_pacing_rate(&mut self, srtt: Option<Duration>) {
        let rtt = srtt
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_millis(1));
        let nominal = f64::from(self.initial_cwnd) / rtt.as_secs_f64();
        self.pacing_rate = STARTUP_PACING_GAIN * nominal;
    }

    /// OnPacketSent (§4.1.2.4) and OnTransmit (§5.2.2). `srtt` is the
    /// connection's SRTT (the handshake's sample before any data): the
    /// first data goes at the initial pacing rate it gives (§5.6.2).
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
        if !self.pacing_from_rtt && self.max_bw == 0.0 {
            if let Some(srtt) = srtt {
                self.init_pacing_rate(Some(srtt));
                self.pacing_from_rtt = true;
            }
        }
        if inflight_before == 0 && self.rate.app_limited() {
            self.handle_restart_from_idle(now, w);
        }
        self.rate.on_sent(now, start, end, inflight_before, rexmit);
    }

    /// Data deemed lost and sent again: C.lost grows, and the round has a
    /// loss (NoteLoss, §5.5.10.2).
    pub fn on_lost(&mut self, start: SeqNum, end: SeqNum, w: &Window) {
        if end <= start {
            return;
        }
        self.rate.on_lost(end - start);
        if !self.is_loss_in_round {
            self.loss_round_delivered = self.rate.delivered;
            self.save_state_upon_loss(w, true);
        }
        self.is_loss_in_round = true;
        // Startup's exit counts discontiguous lost ranges (§5.3.1.3): a
        // run of lost segments is one event.
        if self.last_lost_end != Some(start) {
            self.round_loss_events += 1;
        }
        self.last_lost_end = Some(end);
    }

    /// UpdateOnACK (§5.2.3).
    pub fn on_ack(&mut self, d: &Delivery<'_>, w: &mut Window) {
        if d.app_limited {
            self.rate.mark_app_limited(d.inflight);
        }
        let rs = self.rate.on_ack(d.now, d.una, d.sacked, self.min_rtt);
        if !rs.has_data {
            return;
        }
        let was = self.mode;
        if !self.pacing_from_rtt && self.max_bw == 0.0 {
            if let Some(srtt) = d.srtt {
                self.init_pacing_rate(Some(srtt));
                self.pacing_from_rtt = true;
            }
        }
        // UpdateModelAndState.
        self.update_latest_delivery_signals(&rs);
        self.update_congestion_signals(&rs, w);
        self.update_ack_aggregation(d.now, &rs, w);
        self.check_full_bw_reached(&rs);
        self.check_startup_done(d, &rs);
        self.check_drain_done(d);
        self.update_probe_bw_cycle_phase(d, &rs, w);
        self.update_min_rtt(d.now, &rs);
        self.check_probe_rtt(d, &rs, w);
        self.advance_latest_delivery_signals(&rs);
        self.bw = self.max_bw.min(self.bw_shortterm); // BoundBWForModel
                                                      // UpdateControlParameters.
        self.set_pacing_rate(self.pacing_gain);
        self.set_send_quantum(w.mss);
        self.set_cwnd(&rs, w);
        if self.mode != was {
            log::debug!(
                "bbr {} -> {}: bw {:.1} Mbit/s, min_rtt {:?}, cwnd {}, inflight {}, \
                 inflight_longterm {}, round {}, lost {}",
                was.name(),
                self.mode.name(),
                self.bw * 8e-6,
                self.min_rtt,
                w.cwnd,
                d.inflight,
                self.inflight_longterm,
                self.round_count,
                self.rate.lost
            );
        }
    }

    /// OnEnterFastRecovery (§5.6.4.4).
    pub fn on_enter_recovery(&mut self, w: &Window) {
        self.save_cwnd(w, false);
        self.recovery_round = Some(self.round_count);
    }

    /// Leaving loss recovery: RestoreCwnd (§5.6.4.4).
    pub fn on_exit_recovery(&mut self, w: &mut Window) {
        self.recovery_round = None;
        w.cwnd = w.cwnd.max(self.prior_cwnd);
    }

    /// OnEnterRTO (§5.6.4.4): the caller then sets cwnd to one segment
    /// (C.inflight + 1 packet: after a timeout nothing counts in flight).
    pub fn on_rto(&mut self, w: &Window) {
        self.save_cwnd(w, self.recovery_round.is_some());
        self.save_state_upon_loss(w, false);
        self.recovery_round = Some(self.round_count);
    }

    /// SaveCwnd (§5.6.4.4).
    fn save_cwnd(&mut self, w: &Window, in_recovery: bool) {
        if !in_recovery && self.mode != Mode::ProbeRtt {
            self.prior_cwnd = w.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(w.cwnd);
        }
    }

    /// SaveStateUponLoss (§5.5.11.1).
    fn save_state_upon_loss(&mut self, w: &Window, save_cwnd: bool) {
        if save_cwnd {
            self.save_cwnd(w, self.recovery_round.is_some());
        }
        self.undo_mode = None;
        self.undo_bw_shortterm = self.bw_shortterm;
        self.undo_inflight_shortterm = self.inflight_shortterm;
        self.undo_inflight_longterm = self.inflight_longterm;
    }

    /// HandleSpuriousLossDetection (§5.5.11.2): a recovery turned out
    /// needless (the connection's Eifel or D-SACK detection said so).
    pub fn on_spurious_recovery(&mut self, now: Instant, w: &mut Window) {
        w.cwnd = w.cwnd.max(self.prior_cwnd);
        self.is_loss_in_round = false;
        self.reset_full_bw();
        self.bw_shortterm = self.bw_shortterm.max(self.undo_bw_shortterm);
        self.inflight_shortterm = self.inflight_shortterm.max(self.undo_inflight_shortterm);
        self.inflight_longterm = self.inflight_longterm.max(self.undo_inflight_longterm);
        match self.undo_mode {
            Some(Mode::Startup) if self.mode != Mode::Startup => {
                self.full_bw_reached = false;
                if self.mode != Mode::ProbeRtt {
                    self.enter_startup();
                }
            }
            Some(Mode::ProbeBwUp) if !matches!(self.mode, Mode::ProbeBwUp | Mode::ProbeRtt) => {
                self.start_probe_bw_refill(now);
            }
            _ => {}
        }
        self.undo_mode = None;
    }

    /// HandleRestartFromIdle (§5.4.1).
    fn handle_restart_from_idle(&mut self, now: Instant, w: &mut Window) {
        self.idle_restart = true;
        self.extra_acked_interval_start = Some(now);
        if self.mode.is_probe_bw() {
            self.set_pacing_rate(1.0);
        } else if self.mode == Mode::ProbeRtt {
            self.check_probe_rtt_done(now, w);
        }
    }

    fn enter_startup(&mut self) {
        self.mode = Mode::Startup;
        self.pacing_gain = STARTUP_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn enter_drain(&mut self) {
        self.mode = Mode::Drain;
        self.pacing_gain = DRAIN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
        self.drain_start_round = self.round_count;
    }

    // -- Round counting, §5.5.1 ------------------------------------------

    fn start_round(&mut self) {
        self.next_round_delivered = self.rate.delivered;
    }

    fn update_round(&mut self, rs: &RateSample) {
        if rs.prior_delivered >= self.next_round_delivered {
            self.start_round();
            self.round_count += 1;
            self.rounds_since_probe_up += 1;
            self.round_start = true;
        } else {
            self.round_start = false;
        }
    }

    // -- Bandwidth, §5.5.2-5.5.4 -----------------------------------------

    fn update_max_bw(&mut self, rs: &RateSample) {
        self.update_round(rs);
        if rs.delivery_rate > 0.0 && (rs.delivery_rate >= self.max_bw || !rs.is_app_limited) {
            let slot = (self.cycle_count & 1) as usize;
            self.max_bw_slots[slot] = self.max_bw_slots[slot].max(rs.delivery_rate);
            self.max_bw = self.max_bw_slots[0].max(self.max_bw_slots[1]);
        }
    }

    /// AdvanceMaxBwFilter: the older of the two cycles is forgotten.
    fn advance_max_bw_filter(&mut self) {
        self.cycle_count += 1;
        self.max_bw_slots[(self.cycle_count & 1) as usize] = 0.0;
        self.max_bw = self.max_bw_slots[0].max(self.max_bw_slots[1]);
    }

    // -- Loss signals, §5.5.10 -------------------------------------------

    fn update_latest_delivery_signals(&mut self, rs: &RateSample) {
        self.loss_round_start = false;
        self.bw_latest = self.bw_latest.max(rs.delivery_rate);
        self.inflight_latest = self.inflight_latest.max(rs.delivered);
        if rs.prior_delivered >= self.loss_round_delivered {
            self.loss_round_delivered = self.rate.delivered;
            self.loss_round_start = true;
        }
    }

    fn advance_latest_delivery_signals(&mut self, rs: &RateSample) {
        if self.loss_round_start {
            self.bw_latest = rs.delivery_rate;
            self.inflight_latest = rs.delivered;
        }
    }

    fn reset_congestion_signals(&mut self) {
        self.is_loss_in_round = false;
        self.bw_latest = 0.0;
        self.inflight_latest = 0;
    }

    fn update_congestion_signals(&mut self, rs: &RateSample, w: &Window) {
        self.update_max_bw(rs);
        if !self.loss_round_start {
            return;
        }
        // AdaptLowerBoundsFromCongestion: once per round, and not while
        // probing.
        if !self.is_probing_bw() && self.is_loss_in_round {
            // InitLowerBounds.
            if self.bw_shortterm.is_infinite() {
                self.bw_shortterm = self.max_bw;
            }
            if self.inflight_shortterm == INF {
                self.inflight_shortterm = u64::from(w.cwnd);
            }
            // LossLowerBounds.
            self.bw_shortterm = self.bw_latest.max(BETA * self.bw_shortterm);
            self.inflight_shortterm = self
                .inflight_latest
                .max((BETA * self.inflight_shortterm as f64) as u64);
        }
        self.is_loss_in_round = false;
    }

    fn reset_short_term_model(&mut self) {
        self.bw_shortterm = f64::INFINITY;
        self.inflight_shortterm = INF;
    }

    fn is_probing_bw(&self) -> bool {
        matches!(
            self.mode,
            Mode::Startup | Mode::ProbeBwRefill | Mode::ProbeBwUp
        )
    }

    /// IsInflightTooHigh (§5.5.10.1).
    fn is_inflight_too_high(rs: &RateSample, has_sack: bool) -> bool {
        (rs.lost as f64 > f64::from(rs.tx_in_flight) * LOSS_THRESH) || (rs.lost > 0 && !has_sack)
    }

    /// HandleInflightTooHigh (§5.5.10.1).
    fn handle_inflight_too_high(&mut self, now: Instant, rs: &RateSample, w: &Window) {
        self.prev_probe_too_high = true;
        self.is_bw_probe_sample = false;
        if !rs.is_app_limited {
            let target = (self.target_inflight(w) as f64 * BETA) as u64;
            self.inflight_longterm = u64::from(rs.tx_in_flight).max(target);
        }
        if self.mode == Mode::ProbeBwUp {
            self.undo_mode = Some(Mode::ProbeBwUp);
            self.start_probe_bw_down(now);
        }
    }

    // -- ACK aggregation, §5.5.9 -----------------------------------------

    fn update_ack_aggregation(&mut self, now: Instant, rs: &RateSample, w: &Window) {
        let start = *self.extra_acked_interval_start.get_or_insert(now);
        let interval = now - start;
        let mut expected = (self.bw * interval.as_secs_f64()) as u64;
        if self.extra_acked_delivered <= expected {
            self.extra_acked_delivered = 0;
            self.extra_acked_interval_start = Some(now);
            expected = 0;
        }
        self.extra_acked_delivered += rs.newly_acked;
        let extra = self
            .extra_acked_delivered
            .saturating_sub(expected)
            .min(u64::from(w.cwnd));
        // The windowed max over ExtraAckedFilterLen rounds (1 in Startup),
        // kept as two slots of half the window each.
        let len = if self.full_bw_reached {
            EXTRA_ACKED_FILTER_LEN / 2
        } else {
            1
        };
        if self.round_count >= self.extra_acked_slot_round + len {
            self.extra_acked_slot_round = self.round_count;
            self.extra_acked_slots = [self.extra_acked_slots[1], 0];
        }
        self.extra_acked_slots[1] = self.extra_acked_slots[1].max(extra);
        self.extra_acked = self.extra_acked_slots[0].max(self.extra_acked_slots[1]);
    }

    // -- Startup and Drain, §5.3.1-5.3.2 ---------------------------------

    fn reset_full_bw(&mut self) {
        self.full_bw = 0.0;
        self.full_bw_count = 0;
        self.full_bw_now = false;
    }

    /// CheckFullBWReached (§5.3.1.2): three rounds without 25 % growth.
    fn check_full_bw_reached(&mut self, rs: &RateSample) {
        if self.full_bw_now || !self.round_start || rs.is_app_limited {
            return;
        }
        if rs.delivery_rate >= self.full_bw * 1.25 {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_now = self.full_bw_count >= 3;
        if self.full_bw_now {
            self.full_bw_reached = true;
        }
    }

    /// CheckStartupDone with CheckStartupHighLoss (§5.3.1.3): in recovery
    /// for a full round, more than LossThresh of what was in flight lost
    /// over the round (the rate sample's RS.lost against RS.tx_in_flight,
    /// as Linux's `bbr_check_loss_too_high_in_startup`), in at least six
    /// discontiguous ranges (any loss without SACK).
    fn check_startup_done(&mut self, d: &Delivery<'_>, rs: &RateSample) {
        if self.mode == Mode::Startup && self.loss_round_start {
            let full_round = self.recovery_round.is_some_and(|r| self.round_count > r);
            let high_loss = Self::is_inflight_too_high(rs, d.has_sack)
                && (self.round_loss_events >= STARTUP_FULL_LOSS_CNT || !d.has_sack);
            if d.in_recovery && full_round && high_loss {
                self.undo_mode = Some(Mode::Startup);
                self.full_bw_reached = true;
                self.inflight_longterm = self.bdp().max(self.inflight_latest);
            }
        }
        if self.loss_round_start {
            self.round_loss_events = 0;
        }
        if self.mode == Mode::Startup && self.full_bw_reached {
            self.enter_drain();
        }
    }

    /// CheckDrainDone (§5.3.2).
    fn check_drain_done(&mut self, d: &Delivery<'_>) {
        if self.mode == Mode::Drain
            && (u64::from(d.inflight) <= self.inflight_at(1.0)
                || self.round_count > self.drain_start_round + 3)
        {
            self.enter_probe_bw(d.now);
        }
    }

    // -- ProbeBW, §5.3.3 ---------------------------------------------------

    fn enter_probe_bw(&mut self, now: Instant) {
        self.cwnd_gain = DEFAULT_CWND_GAIN;
        self.start_probe_bw_down(now);
    }

    fn start_probe_bw_down(&mut self, now: Instant) {
        self.reset_congestion_signals();
        self.probe_up_acked_per_inc = INF;
        self.pick_probe_wait();
        self.cycle_stamp = now;
        self.ack_phase = AckPhase::ProbeStopping;
        self.start_round();
        self.mode = Mode::ProbeBwDown;
        self.pacing_gain = DOWN_PACING_GAIN;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_cruise(&mut self) {
        self.mode = Mode::ProbeBwCruise;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_refill(&mut self, _now: Instant) {
        self.reset_short_term_model();
        self.bw_probe_up_rounds = 0;
        self.bw_probe_up_acked = 0;
        self.prev_probe_precautionary = false;
        self.ack_phase = AckPhase::Refilling;
        self.start_round();
        self.mode = Mode::ProbeBwRefill;
        self.pacing_gain = 1.0;
        self.cwnd_gain = DEFAULT_CWND_GAIN;
    }

    fn start_probe_bw_up(&mut self, rs: &RateSample, w: &Window) {
        self.ack_phase = AckPhase::ProbeStarting;
        self.start_round();
        self.reset_full_bw();
        self.full_bw = rs.delivery_rate;
        self.mode = Mode::ProbeBwUp;
        self.pacing_gain = UP_PACING_GAIN;
        self.cwnd_gain = UP_CWND_GAIN;
        self.raise_inflight_longterm_slope(w);
    }

    /// PickProbeWait: 0 or 1 extra rounds, and 2-3 s of wall clock.
    fn pick_probe_wait(&mut self) {
        // xorshift64*: deterministic, as everything in the core is.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        self.rounds_since_probe_up = r & 1;
        let frac = ((r >> 11) % 1000) as f64 / 1000.0;
        self.bw_probe_wait = Duration::from_secs_f64(2.0 + frac);
    }

    /// UpdateProbeBWCyclePhase (§5.3.3.6).
    fn update_probe_bw_cycle_phase(&mut self, d: &Delivery<'_>, rs: &RateSample, w: &Window) {
        if !self.full_bw_reached {
            return;
        }
        if self.adapt_long_term_model(d, rs, w) {
            return;
        }
        let mode = self.mode;
        match mode {
            Mode::ProbeBwDown => {
                if self.is_time_to_probe_bw(d.now, w) {
                    return;
                }
                if self.is_time_to_cruise(d.inflight) {
                    self.start_probe_bw_cruise();
                }
            }
            Mode::ProbeBwCruise => {
                self.is_time_to_probe_bw(d.now, w);
            }
            // After one round of REFILL, start UP.
            Mode::ProbeBwRefill if self.round_start => {
                self.is_bw_probe_sample = true;
                self.start_probe_bw_up(rs, w);
            }
            Mode::ProbeBwUp if self.is_time_to_go_down(d, rs, w) => {
                self.prev_probe_too_high = false; // no high loss (yet)
                self.start_probe_bw_down(d.now);
            }
            _ => {}
        }
    }

    /// IsTimeToProbeBW: the wall clock (2-3 s) or Reno's time scale.
    fn is_time_to_probe_bw(&mut self, now: Instant, w: &Window) -> bool {
        let elapsed = now > self.cycle_stamp + self.bw_probe_wait;
        // IsRenoCoexistenceProbeTime: TargetInflight in packets, capped.
        let reno_rounds = (self.target_inflight(w) / u64::from(w.mss.max(1))).min(63);
        if elapsed || self.rounds_since_probe_up >= reno_rounds {
            self.start_probe_bw_refill(now);
            return true;
        }
        false
    }

    /// IsTimeToCruise.
    fn is_time_to_cruise(&self, inflight: u32) -> bool {
        let inflight = u64::from(inflight);
        inflight <= self.inflight_with_headroom() && inflight <= self.bdp_multiple_max_bw(1.0)
    }

    /// IsTimeToGoDown.
    fn is_time_to_go_down(&mut self, d: &Delivery<'_>, rs: &RateSample, w: &Window) -> bool {
        // Precautionary bandwidth probing: deceleration.
        if self.prev_probe_too_high && u64::from(d.inflight) >= self.inflight_longterm {
            self.prev_probe_precautionary = true;
            return true;
        }
        if d.cwnd_limited && u64::from(w.cwnd) >= self.inflight_longterm {
            self.reset_full_bw();
            self.full_bw = rs.delivery_rate;
        } else if self.full_bw_now {
            return true;
        }
        false
    }

    /// InflightWithHeadroom.
    fn inflight_with_headroom(&self) -> u64 {
        if self.inflight_longterm == INF {
            return INF;
        }
        let mss = self.mss;
        let headroom = (HEADROOM * self.inflight_longterm as f64) as u64;
        let headroom = headroom.max(u64::from(mss));
        self.inflight_longterm
            .saturating_sub(headroom)
            .max(4 * u64::from(mss))
    }

    /// RaiseInflightLongtermSlope.
    fn raise_inflight_longterm_slope(&mut self, w: &Window) {
        let growth = 1u64 << self.bw_probe_up_rounds;
        self.bw_probe_up_rounds = (self.bw_probe_up_rounds + 1).min(30);
        self.probe_up_acked_per_inc = (u64::from(w.cwnd) / growth).max(u64::from(w.mss));
    }

    /// ProbeInflightLongtermUpward.
    fn probe_inflight_longterm_upward(&mut self, d: &Delivery<'_>, rs: &RateSample, w: &Window) {
        if !d.cwnd_limited || u64::from(w.cwnd) < self.inflight_longterm {
            return;
        }
        self.bw_probe_up_acked += rs.newly_acked;
        if self.bw_probe_up_acked >= self.probe_up_acked_per_inc {
            let delta = self.bw_probe_up_acked / self.probe_up_acked_per_inc;
            self.bw_probe_up_acked -= delta * self.probe_up_acked_per_inc;
            self.inflight_longterm = self
                .inflight_longterm
                .saturating_add(delta * u64::from(w.mss));
        }
        if self.round_start {
            self.raise_inflight_longterm_slope(w);
        }
    }

    /// AdaptLongTermModel; true if it decided a state transition.
    fn adapt_long_term_model(&mut self, d: &Delivery<'_>, rs: &RateSample, w: &Window) -> bool {
        if self.ack_phase == AckPhase::ProbeStarting && self.round_start {
            self.ack_phase = AckPhase::ProbeFeedback;
        }
        if self.ack_phase == AckPhase::ProbeStopping && self.round_start {
            self.is_bw_probe_sample = false;
            self.ack_phase = AckPhase::Init;
            if self.mode.is_probe_bw() && !rs.is_app_limited {
                self.advance_max_bw_filter();
            }
            if self.mode.is_probe_bw() && self.prev_probe_precautionary && !self.prev_probe_too_high
            {
                self.start_probe_bw_refill(d.now);
                return true;
            }
        }
        // HandleLostPacket's test, per ACK (see the module notes).
        if self.is_bw_probe_sample && rs.lost > 0 && Self::is_inflight_too_high(rs, d.has_sack) {
            let was = self.mode;
            self.handle_inflight_too_high(d.now, rs, w);
            return was != self.mode;
        }
        if self.inflight_longterm == INF {
            return false;
        }
        if u64::from(rs.tx_in_flight) > self.inflight_longterm && rs.lost == 0 {
            self.inflight_longterm = u64::from(rs.tx_in_flight);
        }
        if self.mode == Mode::ProbeBwUp {
            self.probe_inflight_longterm_upward(d, rs, w);
        }
        false
    }

    // -- min_rtt and ProbeRTT, §5.3.4 ------------------------------------

    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        self.probe_rtt_expired = now > self.probe_rtt_min_stamp + PROBE_RTT_INTERVAL;
        if let Some(rtt) = rs.rtt {
            if self.probe_rtt_min_delay.is_none_or(|m| rtt < m) || self.probe_rtt_expired {
                self.probe_rtt_min_delay = Some(rtt);
                self.probe_rtt_min_stamp = now;
            }
        }
        let min_rtt_expired = now > self.min_rtt_stamp + MIN_RTT_FILTER_LEN;
        if let Some(delay) = self.probe_rtt_min_delay {
            if self.min_rtt.is_none_or(|m| delay < m) || min_rtt_expired {
                self.min_rtt = Some(delay);
                self.min_rtt_stamp = self.probe_rtt_min_stamp;
            }
        }
    }

    fn check_probe_rtt(&mut self, d: &Delivery<'_>, rs: &RateSample, w: &mut Window) {
        if self.mode != Mode::ProbeRtt && self.probe_rtt_expired && !self.idle_restart {
            // EnterProbeRTT.
            self.save_cwnd(w, d.in_recovery);
            self.mode = Mode::ProbeRtt;
            self.pacing_gain = 1.0;
            self.cwnd_gain = PROBE_RTT_CWND_GAIN;
            self.probe_rtt_hold.clear();
            self.ack_phase = AckPhase::ProbeStopping;
            self.start_round();
        }
        if self.mode == Mode::ProbeRtt {
            // HandleProbeRTT: ignore low rate samples meanwhile.
            self.rate.mark_app_limited(d.inflight);
            let target = self.probe_rtt_cwnd(w);
            let inflight = u64::from(d.inflight);
            match self
                .probe_rtt_hold
                .on_ack(d.now, inflight, target, self.round_start)
            {
                HoldStep::Started => self.start_round(),
                HoldStep::RoundDone => self.check_probe_rtt_done(d.now, w),
                HoldStep::Waiting => {}
            }
        }
        if rs.delivered > 0 {
            self.idle_restart = false;
        }
    }

    fn check_probe_rtt_done(&mut self, now: Instant, w: &mut Window) {
        if self.probe_rtt_hold.expired(now) {
            self.probe_rtt_min_stamp = now; // schedule the next one
            w.cwnd = w.cwnd.max(self.prior_cwnd); // RestoreCwnd
                                                  // ExitProbeRTT.
            self.reset_short_term_model();
            if self.full_bw_reached {
                self.start_probe_bw_down(now);
                self.start_probe_bw_cruise();
            } else {
                self.enter_startup();
            }
        }
    }

    fn probe_rtt_cwnd(&self, w: &Window) -> u64 {
        self.bdp_multiple(PROBE_RTT_CWND_GAIN)
            .unwrap_or(u64::from(self.initial_cwnd))
            .max(4 * u64::from(w.mss))
    }

    // -- Control parameters, §5.6 -----------------------------------------

    /// SetPacingRateWithGain.
    fn set_pacing_rate(&mut self, gain: f64) {
        let rate = gain * self.bw * (1.0 - PACING_MARGIN);
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// SetSendQuantum: a millisecond at the pacing rate, 2 segments to
    /// 64 KiB.
    fn set_send_quantum(&mut self, mss: u32) {
        self.send_quantum = super::send_quantum_at(self.pacing_rate, mss);
    }

    /// BBR.bdp = bw × min_rtt, `None` before any RTT sample.
    fn bdp_multiple(&self, gain: f64) -> Option<u64> {
        let rtt = self.min_rtt?;
        Some((gain * self.bw * rtt.as_secs_f64()) as u64)
    }

    /// The BDP with max_bw rather than bw (IsTimeToCruise's
    /// `Inflight(BBR.max_bw, 1.0)`).
    fn bdp_multiple_max_bw(&self, gain: f64) -> u64 {
        match self.min_rtt {
            Some(rtt) => (gain * self.max_bw * rtt.as_secs_f64()) as u64,
            None => u64::from(self.initial_cwnd),
        }
    }

    fn bdp(&self) -> u64 {
        self.bdp_multiple(1.0)
            .unwrap_or(u64::from(self.initial_cwnd))
    }

    /// TargetInflight: the BDP, unless congestion cut cwnd.
    fn target_inflight(&self, w: &Window) -> u64 {
        self.bdp().min(u64::from(w.cwnd))
    }

    /// QuantizationBudget: room for three send quanta (the offload budget,
    /// §5.5.8), at least MinPipeCwnd, and 2 more segments in ProbeBW_UP.
    fn quantization_budget(&self, cap: u64, mss: u32) -> u64 {
        let offload = 3 * u64::from(self.send_quantum);
        let mut cap = cap.max(offload).max(4 * u64::from(mss));
        if self.mode == Mode::ProbeBwUp {
            cap += 2 * u64::from(mss);
        }
        cap
    }

    /// Inflight(gain): the BDP times `gain` plus the quantization budget.
    fn inflight_at(&self, gain: f64) -> u64 {
        let cap = self
            .bdp_multiple(gain)
            .unwrap_or(u64::from(self.initial_cwnd));
        self.quantization_budget(cap, self.mss)
    }

    /// SetCwnd (§5.6.4.6) with BoundCwndForProbeRTT and BoundCwndForModel.
    fn set_cwnd(&mut self, rs: &RateSample, w: &mut Window) {
        // UpdateMaxInflight.
        let cap = self
            .bdp_multiple(self.cwnd_gain)
            .unwrap_or(u64::from(self.initial_cwnd))
            + self.extra_acked;
        let max_inflight = self.quantization_budget(cap, w.mss);
        let min_pipe = 4 * u64::from(w.mss);
        let mut cwnd = u64::from(w.cwnd);
        if self.full_bw_reached {
            cwnd = (cwnd + rs.newly_acked).min(max_inflight);
        } else if cwnd < max_inflight || self.rate.delivered < u64::from(self.initial_cwnd) {
            cwnd += rs.newly_acked;
        }
        cwnd = cwnd.max(min_pipe);
        if self.mode == Mode::ProbeRtt {
            cwnd = cwnd.min(self.probe_rtt_cwnd(w));
        }
        // BoundCwndForModel.
        let mut bound = INF;
        if self.mode.is_probe_bw() && self.mode != Mode::ProbeBwCruise {
            bound = self.inflight_longterm;
        } else if matches!(self.mode, Mode::ProbeRtt | Mode::ProbeBwCruise) {
            bound = self.inflight_with_headroom();
        }
        bound = bound.min(self.inflight_shortterm).max(min_pipe);
        cwnd = cwnd.min(bound);
        w.cwnd = u32::try_from(cwnd).unwrap_or(u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testpath::{Path, MSS};
    use super::*;

    fn window() -> Window {
        Window::new(MSS)
    }

    #[test]
    fn startup_finds_the_bottleneck_then_drains_and_cruises() {
        let (mut w, mut path) = (window(), Path::new(100.0, 20));
        let mut b = Bbr::new(&w);
        assert_eq!(b.mode(), Mode::Startup);
        path.run(&mut b, &mut w, Duration::from_secs(2));
        assert!(b.full_bw_reached, "{:?}", b.mode());
        assert!(b.mode().is_probe_bw(), "{:?}", b.mode());
        let bw_mbit = b.bw() * 8.0 / 1e6;
        assert!((90.0..=110.0).contains(&bw_mbit), "bw {bw_mbit} Mbit/s");
        let min_rtt = b.min_rtt().unwrap_or_default();
        assert!(min_rtt >= Duration::from_millis(20) && min_rtt < Duration::from_millis(22));
        // cwnd about 2 BDP (250 kB) plus aggregation and quanta.
        let bdp = 100e6 / 8.0 * 0.020;
        assert!(
            f64::from(w.cwnd) >= bdp && f64::from(w.cwnd) <= 3.0 * bdp,
            "cwnd {} bdp {bdp}",
            w.cwnd
        );
        // The queue Startup built is gone: paced near the bottleneck.
        let rate_mbit = b.pacing_rate() * 8.0 / 1e6;
        assert!((80.0..=130.0).contains(&rate_mbit), "pacing {rate_mbit}");
    }

    #[test]
    fn probe_rtt_comes_every_five_seconds_and_cuts_cwnd() {
        let (mut w, mut path) = (window(), Path::new(50.0, 10));
        let mut b = Bbr::new(&w);
        let mut saw_probe_rtt = false;
        let mut min_cwnd_in_probe = u32::MAX;
        for _ in 0..800 {
            path.run(&mut b, &mut w, Duration::from_millis(10));
            if b.mode() == Mode::ProbeRtt {
                saw_probe_rtt = true;
                min_cwnd_in_probe = min_cwnd_in_probe.min(w.cwnd);
            }
        }
        assert!(saw_probe_rtt, "8 s of a steady flow include a ProbeRTT");
        let bdp = (50e6 / 8.0 * 0.010) as u32;
        assert!(min_cwnd_in_probe <= bdp, "{min_cwnd_in_probe} vs BDP {bdp}");
        assert!(b.mode() != Mode::ProbeRtt || b.probe_rtt_hold.started());
    }

    #[test]
    fn probe_bw_cycles_through_its_phases() {
        let (mut w, mut path) = (window(), Path::new(100.0, 20));
        let mut b = Bbr::new(&w);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4000 {
            path.run(&mut b, &mut w, Duration::from_millis(1));
            seen.insert(b.mode().name());
        }
        for m in [
            "probe_bw_down",
            "probe_bw_cruise",
            "probe_bw_refill",
            "probe_bw_up",
        ] {
            assert!(seen.contains(m), "{m} never seen: {seen:?}");
        }
    }

    #[test]
    fn loss_when_not_probing_lowers_the_short_term_bounds() {
        let (mut w, mut path) = (window(), Path::new(100.0, 20));
        let mut b = Bbr::new(&w);
        path.run(&mut b, &mut w, Duration::from_secs(1));
        b.start_probe_bw_down(path.now);
        b.start_probe_bw_cruise();
        // A loss in this round; the next round start adapts the bounds.
        b.on_lost(SeqNum(0), SeqNum(MSS), &w);
        path.run(&mut b, &mut w, Duration::from_millis(60));
        assert!(b.bw_shortterm.is_finite(), "bw_shortterm set");
        assert!(b.inflight_shortterm < INF, "inflight_shortterm set");
        // At most a 30 % cut a round: still near the path's rate.
        assert!(
            b.bw_shortterm >= 0.69 * b.max_bw,
            "{} {}",
            b.bw_shortterm,
            b.max_bw
        );
    }

    #[test]
    fn heavy_loss_while_probing_caps_inflight_longterm() {
        let (mut w, mut path) = (window(), Path::new(100.0, 20));
        let mut b = Bbr::new(&w);
        path.run(&mut b, &mut w, Duration::from_secs(1));
        let rs = RateSample {
            delivery_rate: b.max_bw,
            tx_in_flight: 300_000,
            lost: 30_000, // 10 % > 2 %
            has_data: true,
            ..RateSample::default()
        };
        b.start_probe_bw_up(&rs, &w);
        b.handle_inflight_too_high(path.now, &rs, &w);
        assert_eq!(b.inflight_longterm, 300_000);
        assert!(b.prev_probe_too_high);
        assert_eq!(b.mode(), Mode::ProbeBwDown);
        assert_eq!(b.undo_mode, Some(Mode::ProbeBwUp));
    }

    #[test]
    fn a_spurious_recovery_is_undone() {
        let (mut w, mut path) = (window(), Path::new(100.0, 20));
        let mut b = Bbr::new(&w);
        path.run(&mut b, &mut w, Duration::from_millis(100));
        assert_eq!(b.mode(), Mode::Startup);
        let before = w.cwnd;
        b.on_lost(SeqNum(0), SeqNum(MSS), &w);
        b.on_enter_recovery(&w);
        b.undo_mode = Some(Mode::Startup);
        b.full_bw_reached = true;
        b.enter_drain();
        w.cwnd = 4 * MSS;
        b.on_spurious_recovery(path.now, &mut w);
        assert_eq!(b.mode(), Mode::Startup);
        assert!(!b.full_bw_reached);
        assert!(w.cwnd >= before);
    }

    #[test]
    fn send_quantum_is_a_millisecond_of_pacing_between_two_segments_and_64k() {
        let w = window();
        let mut b = Bbr::new(&w);
        b.pacing_rate = 1e6; // 1 MB/s: 1000 B per ms
        b.set_send_quantum(MSS);
        assert_eq!(b.send_quantum(), 2 * MSS);
        b.pacing_rate = 1e9;
        b.set_send_quantum(MSS);
        assert_eq!(b.send_quantum(), 64 * 1024);
        b.pacing_rate = 10e6;
        b.set_send_quantum(MSS);
        assert_eq!(b.send_quantum(), 10_000);
    }
}
