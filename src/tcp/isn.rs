//! Initial sequence numbers, RFC 6528 §3:
//! `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`,
//! where `M` is a timer ticking every 4 µs and `F` is a keyed hash
//! (SipHash-2-4 here), so ISNs are unpredictable to off-path attackers but
//! still increase over time for any one 4-tuple (RFC 9293 §3.4.1, MUST-8).

use crate::time::Instant;
use std::net::SocketAddr;

use super::seq::SeqNum;

/// Generates RFC 6528 initial sequence numbers from a secret key.
#[derive(Clone)]
pub struct IsnGenerator {
    key: [u8; 16],
}

impl std::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IsnGenerator { .. }") // never print the secret
    }
}

impl IsnGenerator {
    /// A generator keyed with `secret` (pick it at random at stack start-up).
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator { key: secret }
    }

    /// The ISN for a connection `local` ↔ `remote` opened at `now`.
    pub fn isn(&self, now: Instant, local: SocketAddr, remote: SocketAddr) -> SeqNum {
        let mut msg = [0u8; 36];
        let mut at = put_endpoint(&mut msg, 0, local);
        at = put_endpoint(&mut msg, at, remote);
        let f = siphash24(&self.key, &msg[..at]) as u32;
        // RFC 6528: M is a 4-microsecond timer.
        let m = (now.total_micros() / 4) as u32;
        SeqNum(m.wrapping_add(f))
    }
}

/// SipHash-2-4 (Aumasson & Bernstein), 64-bit output.
/// Writes `ep`'s address and port into `msg` at `at` (6 bytes for IPv4,
/// 18 for IPv6), for the keyed hashes; returns where the next field goes.
pub(crate) fn put_endpoint(msg: &mut [u8], at: usize, ep: SocketAddr) -> usize {
    let len = match ep.ip() {
        std::net::IpAddr::V4(a) => {
            msg[at..at + 4].copy_from_slice(&a.octets());
            4
        }
        std::net::IpAddr::V6(a) => {
            msg[at..at + 16].copy_from_slice(&a.octets());
            16
        }
    };
    msg[at + len..at + len + 2].copy_from_slice(&ep.port().to_be_bytes());
    at + len + 2
}

pub(crate) fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key_half(key, 0));
    let k1 = u64::from_le_bytes(key_half(key, 8));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = msg.chunks_exact(8);
    for chunk in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let m = u64::from_le_bytes(b);
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = msg.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn key_half(key: &[u8; 16], at: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..at + 8]);
    b
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key() -> [u8; 16] {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        k
    }

    #[test]
    fn siphash_matches_reference_vectors() {
        // Vectors from the SipHash paper's reference implementation.
        assert_eq!(siphash24(&key(), &[]), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash24(&key(), &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn isn_advances_with_the_4us_clock_and_depends_on_the_tuple() {
        let g = IsnGenerator::new(key());
        let l = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 7));
        let r = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40000));
        let r2 = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 40001));
        let a = g.isn(Instant::ZERO, l, r);
        let b = g.isn(Instant::from_micros(400), l, r);
        assert_eq!(b - a, 100);
        assert_ne!(g.isn(Instant::ZERO, l, r2), a);
        let other = IsnGenerator::new([7; 16]);
        assert_ne!(other.isn(Instant::ZERO, l, r), a);
    }
}
