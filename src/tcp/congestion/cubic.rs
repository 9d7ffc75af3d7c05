//! CUBIC (RFC 9438): after a congestion event cwnd follows
//! `W_cubic(t) = C*(t - K)^3 + W_max`, concave up to the window where the
//! loss happened (W_max) and convex beyond it, but never slower than an
//! estimate of what Reno would have (the Reno-friendly region).
//!
//! The first slow start runs HyStart++ ([`super::hystart`], RFC 9406),
//! which may end it before any loss; later slow starts are standard ones.
//!
//! The curve is computed in segments and seconds with `f64`, as the RFC
//! writes it; cwnd stays in bytes, with the fraction of a byte that per-ACK
//! growth leaves carried over.

use std::time::Duration;

use super::hystart::HyStart;
use super::{AckSample, Window};
use crate::time::Instant;

/// RFC 9438 §5.1: "C SHOULD be set to 0.4" (segments / second^3).
const C: f64 = 0.4;
/// RFC 9438 §4.6: beta_cubic = 0.7 = `BETA_NUM / BETA_DEN`, the fraction
/// for byte arithmetic.
const BETA_NUM: u64 = 7;
/// See [`BETA_NUM`].
const BETA_DEN: u64 = 10;
/// beta_cubic as a float, for the formulas in segments.
const BETA: f64 = BETA_NUM as f64 / BETA_DEN as f64;
/// RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC's own state.
#[derive(Clone, Debug, Default)]
pub(super) struct Cubic {
    /// HyStart++ in the first slow start (RFC 9438 §4.10, RFC 9406).
    hystart: HyStart,
    /// W_max in segments: cwnd just before the last window reduction, as
    /// fast convergence left it (RFC 9438 §4.7). `None` until the first
    /// congestion event, and after a timeout (§4.8).
    w_max: Option<f64>,
    /// cwnd_prior in segments: cwnd when ssthresh was last set (RFC 9438
    /// §4.1.2), where W_est's slope goes up to Reno's (§4.3).
    cwnd_prior: f64,
    /// The current congestion avoidance stage; `None` until its first ACK
    /// (or until loss recovery ends).
    epoch: Option<Epoch>,
}

/// One congestion avoidance stage: the curve, fixed at its start.
#[derive(Clone, Debug)]
struct Epoch {
    /// t_epoch (RFC 9438 §4.2), moved later by the time the flow spent
    /// application-limited, which `t` must not include.
    start: Instant,
    /// The previous ACK of the stage (or its start).
    last_ack: Instant,
    /// K in seconds (RFC 9438 §4.2).
    k: f64,
    /// W_max of this stage's curve, in segments.
    w_max: f64,
    /// W_est in segments (RFC 9438 §4.3).
    w_est: f64,
    /// Bytes of growth below one byte not yet added to cwnd.
    carry: f64,
}

impl Epoch {
    /// A stage starting at `now` with cwnd_epoch = `cwnd` segments; updates
    /// `w_max` when the stage redefines it.
    fn start(now: Instant, cwnd: f64, w_max: &mut Option<f64>) -> Epoch {
        // RFC 9438 §4.8 (after a timeout) and §4.10 (slow start left
        // without a loss): with no W_max known, K = 0 and W_max is the
        // cwnd at the start of the stage. Likewise when cwnd is already at
        // or past W_max: the curve starts at cwnd and is convex from there.
        let top = match *w_max {
            Some(w) if w > cwnd => w,
            _ => cwnd,
        };
        *w_max = Some(top);
        Epoch {
            start: now,
            last_ack: now,
            // RFC 9438 §4.2: K = cubic_root((W_max - cwnd_epoch) / C).
            k: ((top - cwnd) / C).cbrt(),
            w_max: top,
            // RFC 9438 §4.3: W_est starts at cwnd_epoch.
            w_est: cwnd,
            carry: 0.0,
        }
    }

    /// RFC 9438 §4.2, Figure 1: W_cubic(t) = C*(t - K)^3 + W_max, with `t`
    /// in seconds since the start of the stage.
    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    /// Moves the start of the stage so that the time since the previous ACK
    /// counts only as far as the sender was cwnd-limited.
    ///
    /// RFC 9438 §4.2 and §5.8: `t` MUST NOT include application-limited
    /// periods. We shift the epoch rather than freeze it: an interval
    /// between ACKs in which the sender was never cwnd-limited does not
    /// count at all, and of an interval in which it was, at most one
    /// smoothed RTT counts (a longer gap means nothing was in flight for
    /// part of it, i.e. the sender idled).
    fn skip_app_limited(&mut self, now: Instant, cwnd_limited: bool, srtt: Option<Duration>) {
        let gap = now - self.last_ack;
        let counted = match (cwnd_limited, srtt) {
            (false, _) => Duration::ZERO,
            (true, Some(srtt)) => gap.min(srtt),
            (true, None) => gap,
        };
        self.start += gap - counted;
        self.last_ack = now;
    }
}

impl Cubic {
    /// Fresh state: no congestion event yet.
    pub(super) fn new() -> Cubic {
        Cubic::default()
    }

    /// An ACK advanced SND.UNA outside recovery.
    pub(super) fn on_ack(&mut self, w: &mut Window, s: &AckSample) {
        if w.in_slow_start() {
            // RFC 9438 §4.10: slow start, with HyStart++ (RFC 9406 §4.2)
            // watching the RTT; §5.8: no growth while application-limited.
            let step = self.hystart.on_ack(s.ack, s.snd_nxt, s.rtt);
            if s.cwnd_limited {
                w.slow_start(s.acked, step.growth_divisor);
            }
            if step.enter_ca {
                // RFC 9406 §4.2: after CSS, ssthresh = cwnd. RFC 9438 §4.10:
                // cwnd_prior = cwnd, and with no W_max the curve starts at
                // cwnd with K = 0.
                w.ssthresh = w.cwnd;
                self.cwnd_prior = w.cwnd_segments();
                self.w_max = None;
            }
            return;
        }
        self.congestion_avoidance(w, s);
    }

    /// RFC 9438 §4.2 - §4.5: one ACK in congestion avoidance.
    fn congestion_avoidance(&mut self, w: &mut Window, s: &AckSample) {
        let mss = f64::from(w.mss);
        let w_max = &mut self.w_max;
        let e = self
            .epoch
            .get_or_insert_with(|| Epoch::start(s.now, w.cwnd_segments(), w_max));
        e.skip_app_limited(s.now, s.cwnd_limited, s.srtt);
        // RFC 9438 §5.8: no growth while application-limited.
        if !s.cwnd_limited || s.acked == 0 {
            return;
        }
        let cwnd = (f64::from(w.cwnd) + e.carry) / mss;
        // A stretch ACK counts as the segments it covers.
        let segments_acked = f64::from(s.acked) / mss;
        let t = (s.now - e.start).as_secs_f64();

        // RFC 9438 §4.3, Figure 4: W_est += alpha_cubic * segments_acked /
        // cwnd, with alpha_cubic = 1 once W_est reaches cwnd_prior.
        let alpha = if e.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        e.w_est += alpha * segments_acked / cwnd;

        let next = if e.w_cubic(t) < e.w_est {
            // RFC 9438 §4.3: the Reno-friendly region, cwnd = W_est (never
            // lowered by an ACK).
            e.w_est.max(cwnd)
        } else {
            // RFC 9438 §4.2: target = W_cubic(t + RTT), RTT the smoothed
            // RTT, bounded to [cwnd, 1.5*cwnd].
            let rtt = s.srtt.or(s.rtt).unwrap_or_default().as_secs_f64();
            let target = e.w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
            // RFC 9438 §4.4 (concave) and §4.5 (convex): cwnd grows by
            // (target - cwnd) / cwnd for each segment acknowledged.
            cwnd + (target - cwnd) / cwnd * segments_acked
        };
        let bytes = (next * mss).min(f64::from(u32::MAX));
        // `bytes` is at least the current cwnd, so this never shrinks it.
        w.cwnd = bytes as u32;
        e.carry = bytes - f64::from(w.cwnd);
    }

    /// RFC 9438 §4.6 multiplicative decrease with §4.7 fast convergence, for
    /// a loss or (the first of) a timeout.
    fn reduce(&mut self, w: &mut Window) {
        let cwnd = w.cwnd_segments();
        // RFC 9438 §4.7: a loss below the previous W_max means another flow
        // took bandwidth: release some, W_max = cwnd * (1 + beta) / 2.
        self.w_max = Some(match self.w_max {
            Some(w_max) if cwnd < w_max => cwnd * (1.0 + BETA) / 2.0,
            _ => cwnd,
        });
        // RFC 9438 §4.6: cwnd_prior = cwnd; ssthresh = max(cwnd * beta_cubic,
        // 2 segments). The RFC allows cwnd in place of FlightSize when cwnd
        // cannot grow while application-limited, which holds here.
        self.cwnd_prior = cwnd;
        // RFC 9406 §4.2: a loss in slow start or CSS ends it; §4.3: later
        // slow starts are standard ones.
        self.hystart.stop();
        let reduced = u64::from(w.cwnd) * BETA_NUM / BETA_DEN;
        w.ssthresh = (reduced as u32).max(w.mss.saturating_mul(2));
        self.epoch = None;
    }

    /// Loss recovery begins: RFC 9438 §4.6, cwnd = ssthresh.
    pub(super) fn on_loss(&mut self, w: &mut Window, _now: Instant) {
        self.reduce(w);
        w.cwnd = w.ssthresh;
    }

    /// Loss recovery ended (the caller set cwnd = ssthresh): the congestion
    /// avoidance stage starts now (RFC 9438 §4.2, t_epoch).
    pub(super) fn on_recovery_end(&mut self, w: &Window, now: Instant) {
        self.epoch = None;
        if !w.in_slow_start() {
            self.epoch = Some(Epoch::start(now, w.cwnd_segments(), &mut self.w_max));
        }
    }

    /// Retransmission timeout (the caller sets cwnd to one segment): RFC
    /// 9438 §4.8, ssthresh as for a loss on the `first` timeout, and the
    /// next stage's curve starts from its own cwnd (K = 0).
    pub(super) fn on_rto(&mut self, w: &mut Window, _now: Instant, first: bool) {
        if first {
            self.reduce(w);
            // RFC 9438 §4.8: W_max is set at the start of the next congestion
            // avoidance stage, to the cwnd of that moment.
            self.w_max = None;
        }
        self.epoch = None;
    }

    /// Restart after idle (the caller applied the restart window): a new
    /// stage starts at the next ACK in congestion avoidance, so the idle
    /// time is not part of `t` (RFC 9438 §5.8).
    pub(super) fn on_idle_restart(&mut self, _now: Instant) {
        self.epoch = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::hystart::Phase;
    use super::super::sim::{Flow, MSS};
    use super::super::{Algorithm, Congestion, State};
    use super::{Cubic, BETA, C};
    use crate::time::Instant;

    /// A CUBIC window in congestion avoidance at `segments` segments.
    fn in_ca(segments: u32) -> Congestion {
        let mut c = Congestion::new(Algorithm::Cubic, MSS);
        c.window.cwnd = segments * MSS;
        c.window.ssthresh = segments * MSS;
        c
    }

    fn cubic(c: &Congestion) -> &Cubic {
        match &c.state {
            State::Cubic(cubic) => cubic,
            _ => panic!("not CUBIC"),
        }
    }

    fn cubic_mut(c: &mut Congestion) -> &mut Cubic {
        match &mut c.state {
            State::Cubic(cubic) => cubic,
            _ => panic!("not CUBIC"),
        }
    }

    fn segments(c: &Congestion) -> f64 {
        f64::from(c.cwnd()) / f64::from(MSS)
    }

    #[test]
    fn loss_cuts_cwnd_to_beta_and_sets_k() {
        let mut c = in_ca(100);
        c.on_loss(Instant::ZERO, 100 * MSS);
        assert_eq!(c.cwnd(), 70 * MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        assert_eq!(cubic(&c).w_max, Some(100.0));
        c.on_recovery_end(Instant::from_millis(50));
        let epoch = cubic(&c)
            .epoch
            .clone()
            .expect("recovery end starts the epoch");
        assert_eq!(epoch.start, Instant::from_millis(50));
        // K = cbrt(W_max * (1 - beta) / C): seconds, with W_max in segments.
        let k = (100.0 * (1.0 - BETA) / C).cbrt();
        assert!((epoch.k - k).abs() < 1e-9, "K = {} against {k}", epoch.k);
        assert!((k - 4.2172).abs() < 1e-3);
    }

    #[test]
    fn loss_keeps_two_segments() {
        let mut c = in_ca(2);
        c.on_loss(Instant::ZERO, 2 * MSS);
        assert_eq!((c.cwnd(), c.ssthresh()), (2 * MSS, 2 * MSS));
    }

    #[test]
    fn fast_convergence_lowers_w_max_after_a_loss_below_the_previous_one() {
        let mut c = in_ca(100);
        c.on_loss(Instant::ZERO, 100 * MSS);
        c.on_recovery_end(Instant::ZERO);
        // Lost again at 80 segments, below W_max = 100.
        c.window.cwnd = 80 * MSS;
        c.on_loss(Instant::from_secs(1), 80 * MSS);
        let w_max = cubic(&c).w_max.expect("set by the loss");
        assert!((w_max - 80.0 * (1.0 + BETA) / 2.0).abs() < 1e-9, "{w_max}");
        assert_eq!(c.cwnd(), 56 * MSS);
        // K follows from the lowered W_max and cwnd_epoch = 56.
        c.on_recovery_end(Instant::from_secs(1));
        let k = cubic(&c).epoch.as_ref().map(|e| e.k).unwrap_or(f64::NAN);
        assert!((k - ((68.0 - 56.0) / C).cbrt()).abs() < 1e-9, "{k}");
        // A loss above W_max sets W_max to cwnd.
        c.window.cwnd = 90 * MSS;
        c.on_loss(Instant::from_secs(2), 90 * MSS);
        assert_eq!(cubic(&c).w_max, Some(90.0));
    }

    /// When loss recovery ends, 10 s into the tests that use it.
    const RECOVERY_END: Instant = Instant::from_secs(10);

    /// Ends recovery at [`RECOVERY_END`] and drives round trips of `rtt`
    /// until cwnd is back at `w_max` segments: the flow, and the time that
    /// took.
    fn back_to_w_max(c: &mut Congestion, rtt: Duration, w_max: u32, per_ack: u32) -> (Flow, f64) {
        c.on_recovery_end(RECOVERY_END);
        let mut flow = Flow::new(RECOVERY_END);
        while c.cwnd() < w_max * MSS {
            flow.round(c, rtt, per_ack);
            assert!(
                flow.now < RECOVERY_END + Duration::from_secs(100),
                "never got there"
            );
        }
        let took = (flow.now - RECOVERY_END).as_secs_f64();
        (flow, took)
    }

    #[test]
    fn cwnd_returns_to_w_max_at_about_k_and_grows_convexly_after() {
        // At 10 ms the cubic curve only governs a large window: W_max = 10,000
        // segments (K = 19.6 s; Reno would need about 57 s).
        const W_MAX: u32 = 10_000;
        let rtt = Duration::from_millis(10);
        let mut c = in_ca(W_MAX);
        c.on_loss(Instant::ZERO, W_MAX * MSS);
        assert_eq!(c.cwnd(), 7_000 * MSS);
        let k = (f64::from(W_MAX) * (1.0 - BETA) / C).cbrt();
        let (mut flow, reached) = back_to_w_max(&mut c, rtt, W_MAX, 50 * MSS);
        assert!(
            (reached - k).abs() <= 2.0 * rtt.as_secs_f64(),
            "reached W_max at {reached:.3} s, K = {k:.3} s"
        );
        // Beyond W_max: convex, each second adds more than the one before,
        // and cwnd stays near W_cubic(t) = C*(t - K)^3 + W_max.
        let mut last = segments(&c);
        let mut last_gain = 0.0;
        for second in 1..=5 {
            let t = k + f64::from(second);
            while flow.now < RECOVERY_END + Duration::from_secs_f64(t) {
                flow.round(&mut c, rtt, 50 * MSS);
            }
            let now = segments(&c);
            let gain = now - last;
            assert!(
                gain > last_gain,
                "second {second}: +{gain:.2} after +{last_gain:.2}"
            );
            let curve = C * f64::from(second).powi(3) + f64::from(W_MAX);
            assert!((now - curve).abs() < 0.5, "{now:.2} against {curve:.2}");
            (last, last_gain) = (now, gain);
        }
    }

    #[test]
    fn reno_friendly_region_governs_small_windows_on_short_paths() {
        // W_max = 100 segments at 10 ms: W_cubic(t) stays under W_est, so
        // cwnd grows like Reno (alpha = 0.53 segments per RTT up to 100) and
        // is back at W_max long before K = 4.2 s.
        let rtt = Duration::from_millis(10);
        let mut c = in_ca(100);
        c.on_loss(Instant::ZERO, 100 * MSS);
        let (_, reached) = back_to_w_max(&mut c, rtt, 100, MSS);
        let reno = 30.0 / (3.0 * (1.0 - BETA) / (1.0 + BETA)) * rtt.as_secs_f64();
        assert!(
            (reached - reno).abs() < 0.05,
            "reached W_max at {reached:.3} s, Reno-like {reno:.3} s"
        );
        let epoch = cubic(&c).epoch.clone().expect("in congestion avoidance");
        assert!(
            epoch.w_cubic(reached) < 95.0,
            "the curve itself is far below"
        );
        // The same W_max at 100 ms follows the curve: reached near K.
        let mut c = in_ca(100);
        c.on_loss(Instant::ZERO, 100 * MSS);
        let (_, reached) = back_to_w_max(&mut c, Duration::from_millis(100), 100, MSS);
        let k = (100.0 * (1.0 - BETA) / C).cbrt();
        assert!(
            (reached - k).abs() < 0.25,
            "reached W_max at {reached:.3} s, K = {k:.3} s"
        );
    }

    #[test]
    fn target_is_clamped_to_one_and_a_half_cwnd() {
        let mut c = in_ca(10);
        c.on_recovery_end(Instant::ZERO);
        // Thirty seconds into a K = 0 curve from 10 segments, W_cubic is
        // 10,810 segments; one window of ACKs may still only add half.
        let now = Instant::from_secs(30);
        if let Some(e) = cubic_mut(&mut c).epoch.as_mut() {
            e.last_ack = now;
        }
        let mut flow = Flow::new(now);
        flow.round(&mut c, Duration::from_millis(10), MSS);
        assert_eq!(c.cwnd(), 15 * MSS);
    }

    #[test]
    fn no_growth_and_no_curve_time_while_application_limited() {
        let rtt = Duration::from_millis(100);
        let mut limited = in_ca(100);
        let mut steady = in_ca(100);
        for c in [&mut limited, &mut steady] {
            c.on_loss(Instant::ZERO, 100 * MSS);
            c.on_recovery_end(Instant::ZERO);
        }
        let mut a = Flow::new(Instant::ZERO);
        let mut b = Flow::new(Instant::ZERO);
        for _ in 0..10 {
            a.round(&mut limited, rtt, MSS);
            b.round(&mut steady, rtt, MSS);
        }
        assert_eq!(limited.cwnd(), steady.cwnd());
        // Five seconds of application-limited ACKs: cwnd stays.
        let before = limited.cwnd();
        a.cwnd_limited = false;
        for _ in 0..50 {
            a.round(&mut limited, rtt, MSS);
        }
        assert_eq!(limited.cwnd(), before);
        // Then the curve resumes where it paused: the same windows as a flow
        // that was never limited, not a jump five seconds along the curve.
        a.cwnd_limited = true;
        for _ in 0..20 {
            a.round(&mut limited, rtt, MSS);
            b.round(&mut steady, rtt, MSS);
            assert!(
                limited.cwnd().abs_diff(steady.cwnd()) <= MSS,
                "{} against {}",
                limited.cwnd(),
                steady.cwnd()
            );
        }
        assert!(limited.cwnd() > before);
    }

    #[test]
    fn an_idle_gap_counts_as_at_most_one_rtt_of_curve_time() {
        let rtt = Duration::from_millis(100);
        // `idle` pauses; `steady` does not; `ahead` does not either and has
        // run one round more.
        let mut c = [in_ca(100), in_ca(100), in_ca(100)];
        let mut f = [(); 3].map(|_| Flow::new(Instant::ZERO));
        for (c, f) in c.iter_mut().zip(&mut f) {
            c.on_loss(Instant::ZERO, 100 * MSS);
            c.on_recovery_end(Instant::ZERO);
            f.round(c, rtt, MSS);
        }
        f[2].round(&mut c[2], rtt, MSS);
        // Nothing sent for ten seconds (less than an RTO, so no restart),
        // then cwnd-limited rounds: of the first ACK's gap, one SRTT counts.
        f[0].now += Duration::from_secs(10);
        for _ in 0..5 {
            for (c, f) in c.iter_mut().zip(&mut f) {
                f.round(c, rtt, MSS);
            }
            let [idle, steady, ahead] = c.each_ref().map(Congestion::cwnd);
            assert!(
                steady <= idle && idle <= ahead,
                "{idle} outside [{steady}, {ahead}]: the curve jumped"
            );
        }
    }

    #[test]
    fn rto_gives_one_segment_and_a_curve_from_the_next_stage() {
        let mut c = in_ca(100);
        c.on_rto(Instant::ZERO, 100 * MSS);
        assert_eq!((c.cwnd(), c.ssthresh()), (MSS, 70 * MSS));
        assert_eq!(cubic(&c).w_max, None);
        // Slow start back to ssthresh, then the first ACK of congestion
        // avoidance starts a K = 0 curve at cwnd (RFC 9438 §4.8).
        let mut flow = Flow::new(Instant::ZERO);
        while c.in_slow_start() {
            flow.round(&mut c, Duration::from_millis(10), MSS);
        }
        flow.round(&mut c, Duration::from_millis(10), MSS);
        let e = cubic(&c).epoch.clone().expect("in congestion avoidance");
        assert_eq!(e.k, 0.0);
        assert_eq!(e.w_max, 70.0);
    }

    fn phase(c: &Congestion) -> Phase {
        cubic(c).hystart.phase()
    }

    const BASE_RTT: Duration = Duration::from_millis(50);
    /// 20 ms more: past RttThresh (50 ms / 8 = 6.25 ms).
    const QUEUED_RTT: Duration = Duration::from_millis(70);

    /// A CUBIC flow after `rounds` rounds of slow start at [`BASE_RTT`].
    fn slow_started(rounds: u32) -> (Congestion, Flow) {
        let mut c = Congestion::new(Algorithm::Cubic, MSS);
        let mut flow = Flow::new(Instant::ZERO);
        for round in 1..=rounds {
            flow.round(&mut c, BASE_RTT, MSS);
            assert_eq!(c.cwnd(), (10 << round) * MSS, "round {round} doubles");
        }
        (c, flow)
    }

    #[test]
    fn slow_start_keeps_doubling_while_the_rtt_is_flat() {
        let (c, _) = slow_started(7);
        assert!(c.in_slow_start());
        assert_eq!(c.ssthresh(), u32::MAX);
        assert_eq!(phase(&c), Phase::SlowStart);
    }

    #[test]
    fn a_rising_rtt_slows_growth_to_a_quarter_then_ends_slow_start() {
        let (mut c, mut flow) = slow_started(4);
        // Rounds of a HyStart++ round trip lag the test's by an ACK or two,
        // so CSS begins in the first or second round of the higher RTT.
        let mut rounds = 0;
        while !matches!(phase(&c), Phase::Css { .. }) {
            flow.round(&mut c, QUEUED_RTT, MSS);
            rounds += 1;
            assert!(rounds <= 2, "no CSS after {rounds} rounds");
        }
        // Whole rounds in CSS grow by a quarter, not double.
        let mut css_rounds = 0;
        for round in 1.. {
            assert!(round <= 6, "slow start never ended");
            if !c.in_slow_start() {
                break;
            }
            let before = c.cwnd();
            let was_css = matches!(phase(&c), Phase::Css { .. });
            flow.round(&mut c, QUEUED_RTT, MSS);
            if was_css && matches!(phase(&c), Phase::Css { .. }) {
                css_rounds += 1;
                let growth = f64::from(c.cwnd()) / f64::from(before);
                assert!(
                    (1.2..=1.26).contains(&growth),
                    "CSS round grew x{growth:.3}"
                );
            }
        }
        assert!(css_rounds >= 3, "{css_rounds} whole CSS rounds");
        // RFC 9406 §4.2: ssthresh = cwnd, into congestion avoidance (which
        // the round's remaining ACKs grew a little).
        assert_eq!(phase(&c), Phase::Done);
        assert!(!c.in_slow_start());
        assert!(c.cwnd() - c.ssthresh() < c.ssthresh() / 100);
        let before = c.cwnd();
        flow.round(&mut c, QUEUED_RTT, MSS);
        let growth = f64::from(c.cwnd()) / f64::from(before);
        assert!(growth < 1.05, "congestion avoidance grew x{growth:.3}");
    }

    #[test]
    fn an_rtt_back_below_the_css_baseline_resumes_slow_start() {
        let (mut c, mut flow) = slow_started(4);
        while !matches!(phase(&c), Phase::Css { .. }) {
            flow.round(&mut c, QUEUED_RTT, MSS);
        }
        flow.round(&mut c, BASE_RTT, MSS);
        assert_eq!(phase(&c), Phase::SlowStart);
        let before = c.cwnd();
        flow.round(&mut c, BASE_RTT, MSS);
        assert_eq!(c.cwnd(), 2 * before, "doubling again");
        assert_eq!(c.ssthresh(), u32::MAX);
    }

    #[test]
    fn a_loss_ends_hystart_for_good() {
        let (mut c, mut flow) = slow_started(4);
        c.on_loss(flow.now, c.cwnd());
        assert_eq!(phase(&c), Phase::Done);
        c.on_recovery_end(flow.now);
        // A timeout later: slow start up to ssthresh is standard, even with
        // the RTT rising.
        c.on_rto(flow.now, c.cwnd());
        flow.nxt = flow.una; // go back N, as the connection does
        let ssthresh = c.ssthresh();
        let mut rtt = BASE_RTT;
        while c.in_slow_start() {
            let before = c.cwnd();
            flow.round(&mut c, rtt, MSS);
            assert!(
                c.cwnd() == 2 * before || (c.cwnd() < 2 * before && c.cwnd() >= ssthresh),
                "{before} to {}",
                c.cwnd()
            );
            rtt += Duration::from_millis(30);
        }
    }
}
