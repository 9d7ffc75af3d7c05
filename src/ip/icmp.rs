//! ICMP: echo replies, destination-unreachable errors and their rate limit.

use crate::time::Instant;
use crate::wire::icmp;

/// Largest ICMP error datagram we send (RFC 1812 §4.3.2.3, as Linux does).
const MAX_ERROR_DATAGRAM: usize = 576;

/// Builds the echo reply for an echo request: same identifier, sequence and
/// data, byte for byte (RFC 792, RFC 1122 §3.2.2.6).
pub fn echo_reply(request: &icmp::IcmpMessage<'_>, out: &mut Vec<u8>) {
    icmp::write(
        out,
        icmp::ECHO_REPLY,
        0,
        request.rest_of_header(),
        request.body(),
    );
}

/// Builds an ICMP error (destination unreachable, time exceeded) quoting the
/// offending datagram: its IP header and as much of its payload as fits in
/// 576 bytes (RFC 792 requires at least 64 bits; RFC 1812 §4.3.2.3).
pub fn error(kind: u8, code: u8, header: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    let room = MAX_ERROR_DATAGRAM.saturating_sub(20 + 8 + header.len());
    let quoted = &payload[..payload.len().min(room)];
    out.clear();
    let mut body = Vec::with_capacity(header.len() + quoted.len());
    body.extend_from_slice(header);
    body.extend_from_slice(quoted);
    icmp::write(out, kind, code, [0; 4], &body);
}

/// A token bucket for ICMP errors (RFC 1812 §4.3.2.8, RFC 1122 §3.2.2:
/// a host SHOULD limit the rate of ICMP error messages).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_sec: u64,
    burst: u64,
    /// Tokens scaled by 1,000,000 so refills are exact in microseconds.
    tokens: u64,
    last: Option<Instant>,
}

impl RateLimiter {
    /// `per_sec` sustained, `burst` at once.
    pub fn new(per_sec: u32, burst: u32) -> RateLimiter {
        let burst = u64::from(burst.max(1));
        RateLimiter {
            per_sec: u64::from(per_sec),
            burst,
            tokens: burst * 1_000_000,
            last: None,
        }
    }

    /// Takes a token if one is available.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_micros();
            let refill = u64::try_from(elapsed)
                .unwrap_or(u64::MAX)
                .saturating_mul(self.per_sec);
            self.tokens = self
                .tokens
                .saturating_add(refill)
                .min(self.burst * 1_000_000);
        }
        self.last = Some(now);
        if self.tokens >= 1_000_000 {
            self.tokens -= 1_000_000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn echo_reply_echoes_id_sequence_and_data() {
        let mut req = Vec::new();
        icmp::write(
            &mut req,
            icmp::ECHO_REQUEST,
            0,
            [0x12, 0x34, 0, 9],
            &[7u8; 100],
        );
        let msg = icmp::IcmpMessage::parse(&req).unwrap();
        let mut out = Vec::new();
        echo_reply(&msg, &mut out);
        let reply = icmp::IcmpMessage::parse(&out).unwrap();
        assert_eq!(reply.kind(), icmp::ECHO_REPLY);
        assert_eq!(reply.rest_of_header(), [0x12, 0x34, 0, 9]);
        assert_eq!(reply.body(), &[7u8; 100][..]);
    }

    #[test]
    fn errors_quote_header_and_stays_within_576_bytes() {
        let header = [0x45u8; 20];
        let mut out = Vec::new();
        error(
            icmp::DEST_UNREACHABLE,
            icmp::CODE_PORT_UNREACHABLE,
            &header,
            &[1u8; 2000],
            &mut out,
        );
        assert!(20 + out.len() <= 576);
        let m = icmp::IcmpMessage::parse(&out).unwrap();
        assert_eq!((m.kind(), m.code()), (3, 3));
        assert_eq!(&m.body()[..20], &header);
        error(
            icmp::DEST_UNREACHABLE,
            icmp::CODE_PORT_UNREACHABLE,
            &header,
            &[1u8; 8],
            &mut out,
        );
        assert_eq!(out.len(), 8 + 20 + 8);
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_refills_with_time() {
        let mut r = RateLimiter::new(10, 3);
        let t = Instant::from_secs(1);
        assert!((0..3).all(|_| r.allow(t)));
        assert!(!r.allow(t));
        assert!(!r.allow(t + Duration::from_millis(50)));
        assert!(r.allow(t + Duration::from_millis(150)));
        assert!(!r.allow(t + Duration::from_millis(150)));
        // A long pause refills only up to the burst.
        let later = t + Duration::from_secs(100);
        assert!((0..3).all(|_| r.allow(later)));
        assert!(!r.allow(later));
    }
}
