//! SYN cookies (RFC 4987 §3.6).
//!
//! When a listener's SYN queue is full, a SYN is answered with a SYN-ACK
//! whose initial sequence number encodes what the connection needs, and no
//! state is kept. A real client's ACK brings the cookie back (`SEG.ACK - 1`)
//! together with its own ISN (`SEG.SEQ - 1`); if the cookie checks out, the
//! connection is created right then, established. A SYN flood, however fast,
//! then costs no memory and cannot push a real client's handshake out.
//!
//! Layout of the 32-bit cookie:
//!
//! ```text
//!  31      27 26  25 24                                  0
//! +----------+------+-------------------------------------+
//! |  period  | MSS  |  SipHash-2-4(key, 4-tuple, client   |
//! | (64 s)   | index|  ISN, period, MSS index) [25 bits]  |
//! +----------+------+-------------------------------------+
//! ```
//!
//! A cookie is valid in the 64-second period it was made in and the next,
//! as Linux's are. What a cookie cannot carry is lost, as in Linux without
//! timestamps: the MSS is rounded down to one of four values, and window
//! scaling is not offered (so the window is at most 64 KiB).

use std::net::SocketAddr;

use crate::time::Instant;

use super::isn::{put_endpoint, siphash24};
use super::seq::SeqNum;

/// The MSS values a cookie can encode (as Linux's IPv4 table, minus the
/// smallest ones).
const MSS_TABLE: [u16; 4] = [536, 1220, 1440, 1460];

/// Length of a cookie's period, in seconds.
const PERIOD_SECS: u64 = 64;

const HASH_BITS: u32 = 25;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;

/// Makes and checks SYN cookies with a secret key.
#[derive(Clone)]
pub(crate) struct SynCookies {
    key: [u8; 16],
}

impl std::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SynCookies { .. }") // never print the secret
    }
}

fn period(now: Instant) -> u32 {
    ((now.total_micros() / 1_000_000 / PERIOD_SECS) & 31) as u32
}

impl SynCookies {
    /// Cookies keyed by `secret` (derived from the ISN secret, but not equal
    /// to it, so an ISN reveals nothing about cookies or back).
    pub fn new(secret: [u8; 16]) -> SynCookies {
        let mut key = secret;
        for (i, b) in key.iter_mut().enumerate() {
            *b ^= 0x5c ^ (i as u8).wrapping_mul(0x3b);
        }
        SynCookies { key }
    }

    fn hash(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: SeqNum,
        period: u32,
        mss_idx: u32,
    ) -> u32 {
        let mut msg = [0u8; 45];
        let mut at = put_endpoint(&mut msg, 0, local);
        at = put_endpoint(&mut msg, at, remote);
        msg[at..at + 4].copy_from_slice(&client_isn.get().to_be_bytes());
        msg[at + 4..at + 8].copy_from_slice(&period.to_be_bytes());
        msg[at + 8] = mss_idx as u8;
        (siphash24(&self.key, &msg[..at + 9]) as u32) & HASH_MASK
    }

    /// The cookie (our ISN) for a SYN from `remote` with sequence number
    /// `client_isn` and MSS option `peer_mss`, and the MSS it encodes.
    pub fn make(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: SeqNum,
        peer_mss: u16,
    ) -> (SeqNum, u16) {
        let idx = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
        let p = period(now);
        let hash = self.hash(local, remote, client_isn, p, idx as u32);
        let cookie = (p << 27) | ((idx as u32) << HASH_BITS) | hash;
        (SeqNum(cookie), MSS_TABLE[idx])
    }

    /// If `cookie` is one we made for this 4-tuple and client ISN, in this
    /// period or the last, the MSS it encodes.
    pub fn check(
        &self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: SeqNum,
        cookie: SeqNum,
    ) -> Option<u16> {
        let c = cookie.get();
        let p = c >> 27;
        let idx = (c >> HASH_BITS) & 3;
        let age = period(now).wrapping_sub(p) & 31;
        if age > 1 {
            return None;
        }
        (self.hash(local, remote, client_isn, p, idx) == c & HASH_MASK)
            .then(|| MSS_TABLE[idx as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const US: SocketAddr =
        SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80));
    const THEM: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        Ipv4Addr::new(10, 0, 0, 1),
        40000,
    ));

    #[test]
    fn a_cookie_checks_out_for_its_tuple_and_isn_within_two_periods() {
        let c = SynCookies::new([7; 16]);
        let t = Instant::from_secs(1000);
        let (cookie, mss) = c.make(t, US, THEM, SeqNum(12345), 1460);
        assert_eq!(mss, 1460);
        assert_eq!(c.check(t, US, THEM, SeqNum(12345), cookie), Some(1460));
        assert_eq!(
            c.check(
                t + std::time::Duration::from_secs(64),
                US,
                THEM,
                SeqNum(12345),
                cookie
            ),
            Some(1460)
        );
        assert_eq!(
            c.check(
                t + std::time::Duration::from_secs(200),
                US,
                THEM,
                SeqNum(12345),
                cookie
            ),
            None,
            "expired"
        );
        assert_eq!(
            c.check(t, US, THEM, SeqNum(12346), cookie),
            None,
            "other client ISN"
        );
        let other = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40001));
        assert_eq!(
            c.check(t, US, other, SeqNum(12345), cookie),
            None,
            "other port"
        );
        assert_eq!(
            c.check(t, US, THEM, SeqNum(12345), cookie + 1),
            None,
            "tampered"
        );
        let other_key = SynCookies::new([8; 16]);
        assert_eq!(
            other_key.check(t, US, THEM, SeqNum(12345), cookie),
            None,
            "other key"
        );
    }

    #[test]
    fn the_mss_is_rounded_down_to_the_table() {
        let c = SynCookies::new([1; 16]);
        let t = Instant::from_secs(5);
        for (peer, want) in [
            (1460, 1460),
            (1400, 1220),
            (536, 536),
            (100, 536),
            (9000, 1460),
        ] {
            let (cookie, mss) = c.make(t, US, THEM, SeqNum(1), peer);
            assert_eq!(mss, want, "peer MSS {peer}");
            assert_eq!(c.check(t, US, THEM, SeqNum(1), cookie), Some(want));
        }
    }

    #[test]
    fn forged_cookies_almost_never_pass() {
        let c = SynCookies::new([3; 16]);
        let t = Instant::from_secs(77);
        let passed = (0..200_000u32)
            .filter(|i| {
                c.check(
                    t,
                    US,
                    THEM,
                    SeqNum(99),
                    SeqNum(i.wrapping_mul(2_654_435_761)),
                )
                .is_some()
            })
            .count();
        // 25 hash bits and 2 valid periods of 32: about 1 in 2^29 per guess.
        assert!(passed <= 1, "{passed} forged cookies passed");
    }
}
