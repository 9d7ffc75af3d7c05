//! HyStart++ (RFC 9406): leave slow start before it overshoots, when the
//! RTT starts to rise, instead of at the first loss.
//!
//! Slow start is watched in rounds (one window of data). When the minimum
//! RTT of a round exceeds the previous round's by a threshold, the queue is
//! building: growth drops to a quarter (Conservative Slow Start, CSS) for at
//! most `CSS_ROUNDS` rounds, after which ssthresh is set to cwnd. If the
//! RTT falls back during CSS the rise was noise and slow start resumes.
//!
//! Used for CUBIC's first slow start only (RFC 9406 §4.3); the growth
//! itself is the caller's (byte counting without RFC 3465's limit L, as
//! Linux; RFC 9406 §4.3 would allow L = 8 for an unpaced sender).

use std::time::Duration;

use crate::tcp::seq::SeqNum;

/// RFC 9406 §4.3: lower bound of RttThresh.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
/// RFC 9406 §4.3: upper bound of RttThresh.
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
/// RFC 9406 §4.3: RttThresh is lastRoundMinRTT / MIN_RTT_DIVISOR.
const MIN_RTT_DIVISOR: u32 = 8;
/// RFC 9406 §4.3: RTT samples a round needs before it is judged.
const N_RTT_SAMPLE: u32 = 8;
/// RFC 9406 §4.3: CSS grows cwnd this many times slower than slow start.
pub(super) const CSS_GROWTH_DIVISOR: u32 = 4;
/// RFC 9406 §4.3: CSS lasts at most this many rounds.
const CSS_ROUNDS: u32 = 5;

/// Where HyStart++ is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Standard slow start, watching the RTT.
    SlowStart,
    /// Conservative Slow Start.
    Css {
        /// cssBaselineMinRtt: the round minimum that triggered CSS.
        baseline: Duration,
        /// Rounds of CSS so far, the one it began in included.
        rounds: u32,
    },
    /// Not running: slow start ended, or the first slow start is over.
    Done,
}

/// What HyStart++ says about one ACK in slow start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Step {
    /// Divide this ACK's slow start growth by this: 1, or
    /// [`CSS_GROWTH_DIVISOR`] in CSS.
    pub(super) growth_divisor: u32,
    /// CSS has run its rounds with this ACK: after growing, set ssthresh to
    /// cwnd and go to congestion avoidance (RFC 9406 §4.2).
    pub(super) enter_ca: bool,
}

/// HyStart++ state (RFC 9406 §4.2's variables).
#[derive(Clone, Debug)]
pub(super) struct HyStart {
    phase: Phase,
    /// windowEnd: the round ends when this is acknowledged. `None` until
    /// the first ACK.
    window_end: Option<SeqNum>,
    /// lastRoundMinRTT; `None` is infinity.
    last_round_min_rtt: Option<Duration>,
    /// currentRoundMinRTT; `None` is infinity.
    current_round_min_rtt: Option<Duration>,
    /// rttSampleCount of the current round.
    rtt_sample_count: u32,
}

impl Default for HyStart {
    fn default() -> HyStart {
        HyStart::new()
    }
}

impl HyStart {
    /// Watching the first slow start.
    pub(super) fn new() -> HyStart {
        HyStart {
            phase: Phase::SlowStart,
            window_end: None,
            last_round_min_rtt: None,
            current_round_min_rtt: None,
            rtt_sample_count: 0,
        }
    }

    /// The phase.
    #[cfg(test)]
    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    /// Stops for good: a loss or timeout ended the first slow start
    /// (RFC 9406 §4.2), and later slow starts are standard ones, bounded by
    /// the ssthresh the loss gave (RFC 9406 §4.3).
    pub(super) fn stop(&mut self) {
        self.phase = Phase::Done;
    }

    /// One ACK in slow start: `ack` is SEG.ACK, `snd_nxt` SND.NXT as the ACK
    /// arrived, `rtt` its RTT sample.
    pub(super) fn on_ack(&mut self, ack: SeqNum, snd_nxt: SeqNum, rtt: Option<Duration>) -> Step {
        if self.phase == Phase::Done {
            return Step {
                growth_divisor: 1,
                enter_ca: false,
            };
        }
        // RFC 9406 §4.2: keep the round's minimum RTT.
        if let Some(rtt) = rtt {
            self.current_round_min_rtt =
                Some(self.current_round_min_rtt.map_or(rtt, |m| m.min(rtt)));
            self.rtt_sample_count += 1;
        }
        self.judge_round();
        let growth_divisor = match self.phase {
            Phase::Css { .. } => CSS_GROWTH_DIVISOR,
            _ => 1,
        };
        // RFC 9406 §4.2: the round ends when windowEnd is acknowledged; this
        // ACK's sample belongs to the round it ends.
        let enter_ca = match self.window_end {
            None => {
                self.window_end = Some(snd_nxt);
                false
            }
            Some(end) if ack >= end => self.end_round(snd_nxt),
            Some(_) => false,
        };
        Step {
            growth_divisor,
            enter_ca,
        }
    }

    /// The RFC 9406 §4.2 checks, once the round has N_RTT_SAMPLE samples.
    fn judge_round(&mut self) {
        if self.rtt_sample_count < N_RTT_SAMPLE {
            return;
        }
        let Some(current) = self.current_round_min_rtt else {
            return;
        };
        match self.phase {
            Phase::SlowStart => {
                let Some(last) = self.last_round_min_rtt else {
                    return;
                };
                // RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT /
                // MIN_RTT_DIVISOR, MAX_RTT_THRESH)).
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + thresh {
                    // The RTT rose: exit slow start into CSS. A partial
                    // round counts towards CSS_ROUNDS.
                    self.phase = Phase::Css {
                        baseline: current,
                        rounds: 1,
                    };
                }
            }
            Phase::Css { baseline, .. } => {
                // The RTT fell below the baseline: the exit was spurious,
                // resume slow start (cssBaselineMinRtt = infinity).
                if current < baseline {
                    self.phase = Phase::SlowStart;
                }
            }
            Phase::Done => {}
        }
    }

    /// Ends the round at an ACK when SND.NXT was `snd_nxt`; true when CSS
    /// has now run CSS_ROUNDS rounds (RFC 9406 §4.2: then enter congestion
    /// avoidance, ssthresh = cwnd).
    fn end_round(&mut self, snd_nxt: SeqNum) -> bool {
        if let Phase::Css { rounds, .. } = &mut self.phase {
            if *rounds >= CSS_ROUNDS {
                self.phase = Phase::Done;
                return true;
            }
            *rounds += 1;
        }
        // RFC 9406 §4.2: at the start of each round.
        self.window_end = Some(snd_nxt);
        self.last_round_min_rtt = self.current_round_min_rtt;
        self.current_round_min_rtt = None;
        self.rtt_sample_count = 0;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    /// Drives HyStart++ through rounds of `acks` ACKs each: round `n`
    /// acknowledges the data sent before round `n - 1` ended, and every ACK
    /// carries the round's RTT.
    struct Rounds {
        h: HyStart,
        /// The end of the data the next round acknowledges.
        end: SeqNum,
        acks: u32,
    }

    impl Rounds {
        fn new(acks: u32) -> Rounds {
            Rounds {
                h: HyStart::new(),
                end: SeqNum(u32::MAX - 3 * MSS),
                acks,
            }
        }

        /// One round; returns the steps of its ACKs.
        fn round(&mut self, rtt_ms: u64) -> Vec<Step> {
            let start = self.end;
            let next_end = start + self.acks * MSS;
            // SND.NXT while this round's ACKs arrive: the next round's data
            // has been sent.
            let snd_nxt = next_end + self.acks * MSS;
            self.end = next_end;
            (1..=self.acks)
                .map(|i| {
                    let rtt = Duration::from_millis(rtt_ms);
                    self.h.on_ack(start + i * MSS, snd_nxt, Some(rtt))
                })
                .collect()
        }

        /// The first ACK ever marks the first round's end.
        fn first(&mut self, rtt_ms: u64) -> Vec<Step> {
            let start = self.end;
            self.end = start + self.acks * MSS;
            let snd_nxt = self.end;
            let mut steps =
                vec![self
                    .h
                    .on_ack(start + MSS, snd_nxt, Some(Duration::from_millis(rtt_ms)))];
            for i in 2..=self.acks {
                let ack = start + i * MSS;
                steps.push(self.h.on_ack(
                    ack,
                    snd_nxt + self.acks * MSS,
                    Some(Duration::from_millis(rtt_ms)),
                ));
            }
            steps
        }
    }

    fn divisors(steps: &[Step]) -> Vec<u32> {
        steps.iter().map(|s| s.growth_divisor).collect()
    }

    #[test]
    fn a_flat_rtt_stays_in_slow_start() {
        let mut r = Rounds::new(10);
        r.first(50);
        for _ in 0..20 {
            let steps = r.round(50);
            assert!(steps.iter().all(|s| s.growth_divisor == 1 && !s.enter_ca));
        }
        assert_eq!(r.h.phase(), Phase::SlowStart);
    }

    #[test]
    fn a_small_rise_is_below_the_threshold() {
        // RttThresh for 100 ms is 12.5 ms; a 12 ms rise is not enough.
        let mut r = Rounds::new(10);
        r.first(100);
        r.round(100);
        r.round(112);
        assert_eq!(r.h.phase(), Phase::SlowStart);
        // The threshold has a floor of 4 ms: at 10 ms, 3 ms more is no rise,
        // 4 ms more is.
        let mut r = Rounds::new(10);
        r.first(10);
        r.round(10);
        r.round(13);
        assert_eq!(r.h.phase(), Phase::SlowStart);
        r.round(17);
        assert!(matches!(r.h.phase(), Phase::Css { .. }));
    }

    #[test]
    fn an_rtt_rise_enters_css_after_eight_samples_then_congestion_avoidance() {
        let mut r = Rounds::new(10);
        r.first(100);
        r.round(100);
        // 113 ms >= 100 ms + 12.5 ms: the eighth sample decides.
        let steps = r.round(113);
        assert_eq!(divisors(&steps), [1, 1, 1, 1, 1, 1, 1, 4, 4, 4]);
        assert_eq!(
            r.h.phase(),
            Phase::Css {
                baseline: Duration::from_millis(113),
                rounds: 2
            },
            "the partial round counted, the next one begun"
        );
        // Rounds 2 to 5 of CSS grow at a quarter; the last ACK of the fifth
        // says: congestion avoidance.
        for round in 2..=CSS_ROUNDS {
            let steps = r.round(113);
            assert!(steps.iter().all(|s| s.growth_divisor == 4));
            let exits: Vec<bool> = steps.iter().map(|s| s.enter_ca).collect();
            let last = round == CSS_ROUNDS;
            assert_eq!(exits[..9], [false; 9]);
            assert_eq!(exits[9], last, "round {round}");
        }
        assert_eq!(r.h.phase(), Phase::Done);
        assert!(r
            .round(113)
            .iter()
            .all(|s| s.growth_divisor == 1 && !s.enter_ca));
    }

    #[test]
    fn an_rtt_back_below_the_baseline_resumes_slow_start() {
        let mut r = Rounds::new(10);
        r.first(100);
        r.round(100);
        r.round(120);
        assert!(matches!(r.h.phase(), Phase::Css { .. }));
        let steps = r.round(105);
        assert_eq!(divisors(&steps), [4, 4, 4, 4, 4, 4, 4, 1, 1, 1]);
        assert_eq!(r.h.phase(), Phase::SlowStart);
        // And HyStart++ keeps watching: a new rise enters CSS again.
        r.round(105);
        r.round(125);
        assert!(matches!(r.h.phase(), Phase::Css { .. }));
    }

    #[test]
    fn rounds_with_too_few_samples_are_not_judged() {
        let mut r = Rounds::new(7);
        r.first(100);
        r.round(100);
        r.round(200);
        r.round(300);
        assert_eq!(r.h.phase(), Phase::SlowStart);
    }

    #[test]
    fn stopped_means_standard_slow_start() {
        let mut r = Rounds::new(10);
        r.first(100);
        r.round(100);
        r.h.stop();
        let steps = r.round(200);
        assert!(steps.iter().all(|s| s.growth_divisor == 1 && !s.enter_ca));
        assert_eq!(r.h.phase(), Phase::Done);
    }
}
