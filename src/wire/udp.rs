//! UDP datagrams (RFC 768): validated view and builder.

use std::net::IpAddr;

use super::checksum;
use crate::stats::DropReason;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// The largest UDP payload over IPv4: 65,535 − 20 (IP) − 8 (UDP).
pub const MAX_PAYLOAD: usize = 65_507;

/// IP protocol number of UDP.
pub const PROTOCOL: u8 = 17;

/// A length- and checksum-verified UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload, as delimited by the UDP length field.
    pub payload: &'a [u8],
}

impl<'a> UdpDatagram<'a> {
    /// Validates `bytes` (the IP payload) as a UDP datagram from `src` to `dst`.
    pub fn parse(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &'a [u8],
    ) -> Result<UdpDatagram<'a>, DropReason> {
        Self::parse_with(src, dst, bytes, true)
    }

    /// [`UdpDatagram::parse`], verifying the checksum only if `verify` (a
    /// device with checksum offload vouches for it).
    pub fn parse_with(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        bytes: &'a [u8],
        verify: bool,
    ) -> Result<UdpDatagram<'a>, DropReason> {
        let (src, dst) = (src.into(), dst.into());
        if bytes.len() < HEADER_LEN {
            return Err(DropReason::UdpBadLength);
        }
        let len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        if len < HEADER_LEN || len > bytes.len() {
            return Err(DropReason::UdpBadLength);
        }
        let datagram = &bytes[..len];
        let stored = u16::from_be_bytes([bytes[6], bytes[7]]);
        // RFC 768 / RFC 1122 §4.1.3.4: a zero checksum means none was sent;
        // otherwise a datagram whose checksum fails MUST be discarded.
        // RFC 8200 §8.1: over IPv6 the checksum is mandatory, and a
        // datagram with a zero checksum MUST be discarded.
        if stored == 0 && src.is_ipv6() {
            return Err(DropReason::UdpBadChecksum);
        }
        if verify && stored != 0 {
            let c = checksum::pseudo_header_sum_ip(src, dst, PROTOCOL, len);
            let mut c = c;
            c.add(datagram);
            if c.finish() != 0 {
                return Err(DropReason::UdpBadChecksum);
            }
        }
        Ok(UdpDatagram {
            src_port: u16::from_be_bytes([bytes[0], bytes[1]]),
            dst_port: u16::from_be_bytes([bytes[2], bytes[3]]),
            payload: &datagram[HEADER_LEN..],
        })
    }
}

/// Writes a UDP datagram with its checksum (always generated, RFC 1122
/// §4.1.3.4) into `out`, replacing its contents. `payload` must be at most
/// [`MAX_PAYLOAD`] bytes.
pub fn write(
    out: &mut Vec<u8>,
    src: (impl Into<IpAddr>, u16),
    dst: (impl Into<IpAddr>, u16),
    payload: &[u8],
) {
    let len = (HEADER_LEN + payload.len()).min(usize::from(u16::MAX)) as u16;
    out.clear();
    out.extend_from_slice(&src.1.to_be_bytes());
    out.extend_from_slice(&dst.1.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let mut sum = checksum::pseudo_header_sum_ip(src.0.into(), dst.0.into(), PROTOCOL, len.into());
    sum.add(out);
    let mut c = sum.finish();
    // RFC 768: a computed checksum of zero is sent as all ones.
    if c == 0 {
        c = 0xffff;
    }
    out[6..8].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn written_datagram_parses_back() {
        let mut buf = Vec::new();
        write(&mut buf, (A, 5000), (B, 7), b"ping");
        let d = UdpDatagram::parse(A, B, &buf).unwrap();
        assert_eq!((d.src_port, d.dst_port, d.payload), (5000, 7, &b"ping"[..]));
    }

    #[test]
    fn checksum_matches_etherparse() {
        let mut buf = Vec::new();
        write(&mut buf, (A, 1234), (B, 9000), b"%Y-%m-%d");
        let h = etherparse::UdpHeader::with_ipv4_checksum(
            1234,
            9000,
            &etherparse::Ipv4Header::new(0, 64, etherparse::IpNumber::UDP, A.octets(), B.octets())
                .unwrap(),
            b"%Y-%m-%d",
        )
        .unwrap();
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), h.checksum);
    }

    #[test]
    fn bad_checksum_and_bad_lengths_are_rejected() {
        let mut buf = Vec::new();
        write(&mut buf, (A, 5000), (B, 7), b"ping");
        let mut bad = buf.clone();
        bad[9] ^= 1;
        assert_eq!(
            UdpDatagram::parse(A, B, &bad).unwrap_err(),
            DropReason::UdpBadChecksum
        );
        // Same bytes, different pseudo-header: the checksum covers addresses.
        assert_eq!(
            UdpDatagram::parse(A, Ipv4Addr::new(10, 0, 0, 3), &buf).unwrap_err(),
            DropReason::UdpBadChecksum
        );
        let mut long = buf.clone();
        long[5] = 40;
        assert_eq!(
            UdpDatagram::parse(A, B, &long).unwrap_err(),
            DropReason::UdpBadLength
        );
        long[5] = 4;
        assert_eq!(
            UdpDatagram::parse(A, B, &long).unwrap_err(),
            DropReason::UdpBadLength
        );
        assert_eq!(
            UdpDatagram::parse(A, B, &buf[..5]).unwrap_err(),
            DropReason::UdpBadLength
        );
    }

    #[test]
    fn zero_checksum_means_unchecked() {
        let mut buf = Vec::new();
        write(&mut buf, (A, 5000), (B, 7), b"ping");
        buf[6] = 0;
        buf[7] = 0;
        assert!(UdpDatagram::parse(A, B, &buf).is_ok());
    }
}
