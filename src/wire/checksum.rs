//! The Internet checksum (RFC 1071), over headers and pseudo-headers.

use std::net::Ipv4Addr;

/// Adds `data` to a running ones'-complement sum (RFC 1071 §4.1), with
/// an odd trailing byte padded with zero.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        // Fold early so the accumulator never overflows on huge inputs.
        if acc > 0xFFFF_0000 {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
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
    finish(sum(0, data))
}

/// The IPv4 pseudo-header sum for TCP/UDP (RFC 768, RFC 9293 §3.1).
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc.wrapping_add(u32::from(protocol))
        .wrapping_add(u32::from(len))
}

/// True when `data`, which carries its own checksum field, verifies.
pub fn verifies(acc: u32, data: &[u8]) -> bool {
    finish(sum(acc, data)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_correctly() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(0, &data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), checksum(&[0x12, 0x00]));
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
        msg[3] ^= 0x01;
        assert!(!verifies(0, &msg));
    }
}
