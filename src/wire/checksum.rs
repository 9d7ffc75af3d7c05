//! The Internet checksum (RFC 1071), over headers and pseudo-headers.
//!
//! [`Checksum`] accumulates data in pieces of any length (a payload that
//! lies in two pieces of a ring, say) and sums eight bytes per step: RFC 1071
//! §2 (B) and (C) allow summing in native byte order with a wide
//! accumulator and folding at the end, and §2 (A) says a piece that starts
//! at an odd offset contributes its sum byte-swapped.

use std::net::{IpAddr, Ipv4Addr};

/// A running ones'-complement sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Sum of native-order 16-bit words, not yet folded.
    acc: u64,
    /// An odd number of bytes has been added so far.
    odd: bool,
}

/// Sum of `data` as native-order 16-bit words (a trailing odd byte padded
/// with zero), folded to 16 bits.
fn sum_native(data: &[u8]) -> u64 {
    // Four independent accumulators of 32-bit halves: no carries to track,
    // and 2^32 eight-byte steps before any could overflow.
    let mut acc = [0u64; 4];
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[i * 8..i * 8 + 8]);
            let w = u64::from_ne_bytes(w);
            *a += (w & 0xffff_ffff) + (w >> 32);
        }
    }
    let mut sum = acc
        .iter()
        .fold(0u64, |s, &a| s + (a & 0xffff_ffff) + (a >> 32));
    let mut rest = chunks.remainder();
    while rest.len() >= 2 {
        sum += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        sum += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    fold(sum)
}

/// Folds a wide sum to 16 bits (end-around carry).
fn fold(mut sum: u64) -> u64 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Checksum {
        Checksum { acc: 0, odd: false }
    }

    /// Adds `data`, which follows what was added before.
    pub fn add(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut s = sum_native(data);
        if self.odd {
            // RFC 1071 §2 (A): a piece starting at an odd offset is
            // summed with its bytes swapped.
            s = u64::from((s as u16).swap_bytes());
        }
        self.acc += s;
        if data.len() % 2 == 1 {
            self.odd = !self.odd;
        }
    }

    /// Adds a 16-bit value in network order (a header field), at an even
    /// offset.
    pub fn add_u16(&mut self, v: u16) {
        self.add(&v.to_be_bytes());
    }

    /// Adds a 32-bit value in network order.
    pub fn add_u32(&mut self, v: u32) {
        self.add(&v.to_be_bytes());
    }

    /// The folded sum in network order, not complemented.
    pub fn sum(&self) -> u16 {
        let native = fold(self.acc) as u16;
        u16::from_be_bytes(native.to_ne_bytes())
    }

    /// The checksum to store: the complemented sum.
    pub fn finish(&self) -> u16 {
        !self.sum()
    }

    /// True when data that carries its own checksum field sums to all ones.
    pub fn verifies(&self) -> bool {
        self.sum() == 0xffff
    }
}

/// Adds `data` to a running ones'-complement sum of big-endian 16-bit
/// words (RFC 1071 §4.1), with an odd trailing byte padded with zero.
pub fn sum(acc: u32, data: &[u8]) -> u32 {
    let mut c = Checksum::new();
    c.add(data);
    acc + u32::from(c.sum())
}

/// Folds a sum to 16 bits and complements it: the checksum to store.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum of `data` alone.
pub fn checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add(data);
    c.finish()
}

/// The IPv4 pseudo-header sum for TCP/UDP (RFC 768, RFC 9293 §3.1).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc.wrapping_add(u32::from(protocol))
        .wrapping_add(u32::from(len))
}

/// The IPv4 pseudo-header (RFC 9293 §3.1) as a [`Checksum`] to continue.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> Checksum {
    let mut c = Checksum::new();
    c.add(&src.octets());
    c.add(&dst.octets());
    c.add_u16(u16::from(protocol));
    c.add_u16(len as u16);
    c
}

/// The pseudo-header of either family as a [`Checksum`] to continue:
/// IPv4's (RFC 9293 §3.1, RFC 768) or IPv6's (RFC 8200 §8.1, a 32-bit
/// length). The addresses are of one family; a pair that is not (which no
/// caller builds) is summed as IPv6 with the IPv4 one mapped.
pub fn pseudo_header_sum_ip(src: IpAddr, dst: IpAddr, protocol: u8, len: usize) -> Checksum {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_sum(s, d, protocol, len),
        (s, d) => super::ipv6::pseudo_header_sum(v6(s), v6(d), protocol, len),
    }
}

fn v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// True when `data`, which carries its own checksum field, verifies.
pub fn verifies(acc: u32, data: &[u8]) -> bool {
    finish(sum(acc, data)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook loop, RFC 1071 §4.1: big-endian words, folded.
    fn reference(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut acc: u64 = 0;
        for c in bytes.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example_sums_correctly() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
        let mut c = Checksum::new();
        c.add(&data);
        assert_eq!(c.sum(), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), checksum(&[0x12, 0x00]));
    }

    #[test]
    fn the_wide_sum_matches_the_textbook_loop_for_every_length_and_split() {
        // A deterministic byte soup with runs of 0xff (carries) in it.
        let data: Vec<u8> = (0..2000u32)
            .map(|i| {
                if i % 97 < 40 {
                    0xff
                } else {
                    (i.wrapping_mul(2654435761) >> 13) as u8
                }
            })
            .collect();
        for len in (0..200).chain([1459, 1460, 1461, 1999, 2000]) {
            let d = &data[..len];
            let mut c = Checksum::new();
            c.add(d);
            assert_eq!(c.sum(), reference(&[d]), "length {len}");
            for split in [0, 1, 2, 3, 7, 8, 33, len / 2] {
                let split = split.min(len);
                let (a, b) = d.split_at(split);
                let mut c = Checksum::new();
                c.add(a);
                c.add(b);
                assert_eq!(c.sum(), reference(&[a, b]), "length {len} split {split}");
            }
        }
    }

    #[test]
    fn a_message_with_its_checksum_verifies_and_a_flipped_bit_does_not() {
        let mut msg = vec![
            0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x01, 0, 0, 10, 0, 0, 1, 10, 0,
            0, 2,
        ];
        let c = checksum(&msg);
        msg[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(0, &msg));
        let mut sum = Checksum::new();
        sum.add(&msg);
        assert!(sum.verifies());
        msg[3] ^= 0x01;
        assert!(!verifies(0, &msg));
    }
}
