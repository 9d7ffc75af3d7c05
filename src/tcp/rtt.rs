//! Round-trip time estimation and the retransmission timeout, RFC 6298.

use std::time::Duration;

/// Clock granularity G in RFC 6298 §2 terms (we measure in microseconds).
const GRANULARITY: Duration = Duration::from_millis(1);

/// SRTT / RTTVAR / RTO state of one connection.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    backoff: u32,
}

impl RttEstimator {
    /// A fresh estimator: RTO = `initial` (1 s per RFC 6298 §2.1), clamped to
    /// `[min_rto, max_rto]` (Linux: 200 ms and 120 s).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial,
            min_rto,
            max_rto,
            backoff: 0,
        }
    }

    /// Feeds one RTT measurement. Callers follow Karn's algorithm (RFC 6298
    /// §3): never sample a segment that was retransmitted.
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            // RFC 6298 §2.2: first measurement.
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            // RFC 6298 §2.3: alpha = 1/8, beta = 1/4.
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        let rto = srtt + GRANULARITY.max(self.rttvar * 4);
        // RFC 6298 §2.4 (minimum; Linux uses 200 ms) and §2.5 (maximum).
        self.rto = rto.clamp(self.min_rto, self.max_rto);
        // A new sample after backoff collapses it (RFC 6298 §5.7 note).
        self.backoff = 0;
    }

    /// RFC 6298 §5.5: double the RTO after a retransmission timeout.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
        self.rto = (self.rto * 2).min(self.max_rto);
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// The smoothed RTT, once a sample has been taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn initial_rto_is_one_second_and_backoff_doubles_up_to_max() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(2));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
    }

    #[test]
    fn first_and_later_samples_follow_rfc6298() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        // 100 + 4*50 = 300 ms
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100));
        // rttvar = 3/4*50 + 0 = 37.5; rto = 100 + 150 = 250
        assert_eq!(e.rto(), Duration::from_micros(250_000));
    }

    #[test]
    fn tiny_rtts_are_clamped_to_min_rto() {
        let mut e = est();
        e.sample(Duration::from_micros(50));
        assert_eq!(e.rto(), Duration::from_millis(200));
    }
}
