//! IPv4 header view (validated) and header builder.

use std::net::Ipv4Addr;

use etherparse::{IpNumber, Ipv4Header, Ipv4HeaderSlice};

use super::checksum;
use crate::stats::DropReason;

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// The largest IPv4 datagram.
pub const MAX_PACKET: usize = 65_535;

/// A structurally valid IPv4 packet: version 4, sane IHL, total length within
/// the buffer, header checksum verified (RFC 791 §3.1, RFC 1122 §3.2.1.1-2).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<'a> {
    header: Ipv4HeaderSlice<'a>,
    payload: &'a [u8],
}

impl<'a> Ipv4Packet<'a> {
    /// Validates `bytes` (a whole packet from the link). Bytes past the total
    /// length (link padding) are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<Ipv4Packet<'a>, DropReason> {
        let first = *bytes.first().ok_or(DropReason::Truncated)?;
        // RFC 1122 §3.2.1.1: a datagram whose version is not 4 MUST be discarded.
        if first >> 4 != 4 {
            return Err(DropReason::NotIpv4);
        }
        if bytes.len() < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < HEADER_LEN || header_len > bytes.len() {
            return Err(DropReason::BadHeaderLength);
        }
        let total_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if total_len < header_len || total_len > bytes.len() {
            return Err(DropReason::BadTotalLength);
        }
        // RFC 1122 §3.2.1.2: a datagram with a bad header checksum MUST be discarded.
        if !checksum::verifies(0, &bytes[..header_len]) {
            return Err(DropReason::BadHeaderChecksum);
        }
        let header = Ipv4HeaderSlice::from_slice(&bytes[..header_len])
            .map_err(|_| DropReason::BadHeaderLength)?;
        Ok(Ipv4Packet {
            header,
            payload: &bytes[header_len..total_len],
        })
    }

    /// The header bytes, options included.
    pub fn header_bytes(&self) -> &'a [u8] {
        self.header.slice()
    }

    /// The etherparse header view.
    pub fn header(&self) -> &Ipv4HeaderSlice<'a> {
        &self.header
    }

    /// The payload (up to the total length).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        self.header.source_addr()
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        self.header.destination_addr()
    }

    /// Protocol number.
    pub fn protocol(&self) -> u8 {
        self.header.protocol().0
    }

    /// Identification field.
    pub fn id(&self) -> u16 {
        self.header.identification()
    }

    /// True for a fragment: MF set or a nonzero offset.
    pub fn is_fragment(&self) -> bool {
        self.header.more_fragments() || self.frag_offset() != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(self.header.fragments_offset().value()) * 8
    }

    /// The More-Fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.header.more_fragments()
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.header.ttl()
    }
}

/// A header for a datagram we originate. The checksum and total length are
/// filled in by [`crate::ip::frag::fragment`] / [`write_header`].
pub fn header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    id: u16,
    payload_len: usize,
) -> Ipv4Header {
    header_with_tos(src, dst, protocol, ttl, 0, id, payload_len)
}

/// [`header`] with the type-of-service byte (DSCP and ECN, RFC 2474 §3,
/// RFC 3168 §5) set to `tos`.
pub fn header_with_tos(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    tos: u8,
    id: u16,
    payload_len: usize,
) -> Ipv4Header {
    let mut h =
        Ipv4Header::new(0, ttl, IpNumber(protocol), src.octets(), dst.octets()).unwrap_or_default();
    h.dscp = etherparse::IpDscp::try_new(tos >> 2).unwrap_or_default();
    h.ecn = etherparse::IpEcn::try_new(tos & 3).unwrap_or_default();
    // The length is re-set per packet; a too-long payload is refused earlier.
    let _ = h.set_payload_len(payload_len.min(MAX_PACKET - HEADER_LEN));
    h.identification = id;
    h.dont_fragment = false;
    h
}

/// Writes a 20-byte IPv4 header (no options, not a fragment) with its
/// checksum into `out` (RFC 791 §3.1).
#[allow(clippy::too_many_arguments)]
pub fn write_header(
    out: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    tos: u8,
    id: u16,
    payload_len: usize,
    dont_fragment: bool,
) {
    let total = (HEADER_LEN + payload_len).min(MAX_PACKET) as u16;
    out[0] = 0x45;
    out[1] = tos;
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[4..6].copy_from_slice(&id.to_be_bytes());
    out[6] = if dont_fragment { 0x40 } else { 0 };
    out[7] = 0;
    out[8] = ttl;
    out[9] = protocol;
    out[10] = 0;
    out[11] = 0;
    out[12..16].copy_from_slice(&src.octets());
    out[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::checksum(&out[..HEADER_LEN]);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_header_matches_etherparse() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
        for (df, tos) in [(false, 0), (true, 0), (true, 0xb8), (false, 0x03)] {
            let mut h = header_with_tos(src, dst, 6, 64, tos, 0xbeef, 1480);
            h.dont_fragment = df;
            h.header_checksum = h.calc_header_checksum();
            let mut ours = [0u8; 20];
            write_header(&mut ours, src, dst, 6, 64, tos, 0xbeef, 1480, df);
            assert_eq!(ours, h.to_bytes()[..]);
        }
    }

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut h = header(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            17,
            64,
            7,
            payload.len(),
        );
        h.header_checksum = h.calc_header_checksum();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_good_packet_parses_and_padding_is_ignored() {
        let mut p = packet(b"hello");
        p.extend_from_slice(&[0, 0, 0]);
        let v = Ipv4Packet::parse(&p).unwrap();
        assert_eq!(v.payload(), b"hello");
        assert_eq!(v.src(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(v.protocol(), 17);
        assert!(!v.is_fragment());
    }

    #[test]
    fn each_malformation_has_its_reason() {
        let good = packet(b"hello");
        assert_eq!(Ipv4Packet::parse(&[]).unwrap_err(), DropReason::Truncated);
        assert_eq!(
            Ipv4Packet::parse(&good[..19]).unwrap_err(),
            DropReason::Truncated
        );
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(Ipv4Packet::parse(&v6).unwrap_err(), DropReason::NotIpv4);
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::parse(&ihl).unwrap_err(),
            DropReason::BadHeaderLength
        );
        ihl[0] = 0x4f; // 60-byte header in a 25-byte packet
        assert_eq!(
            Ipv4Packet::parse(&ihl).unwrap_err(),
            DropReason::BadHeaderLength
        );
        let mut long = good.clone();
        long[3] = 200;
        assert_eq!(
            Ipv4Packet::parse(&long).unwrap_err(),
            DropReason::BadTotalLength
        );
        long[3] = 10;
        assert_eq!(
            Ipv4Packet::parse(&long).unwrap_err(),
            DropReason::BadTotalLength
        );
        let mut sum = good.clone();
        sum[8] ^= 1; // TTL changed, checksum now wrong
        assert_eq!(
            Ipv4Packet::parse(&sum).unwrap_err(),
            DropReason::BadHeaderChecksum
        );
    }
}
