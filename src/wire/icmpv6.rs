//! ICMPv6 messages (RFC 4443) and the neighbour discovery messages the
//! stack speaks (RFC 4861 §4.3, §4.4), read and written by hand: a 4-byte
//! header, a 4-byte field, a body; the checksum covers the IPv6
//! pseudo-header (RFC 4443 §2.3).

use std::net::Ipv6Addr;

use super::ipv6::{pseudo_header_sum, NEXT_ICMPV6};

/// Destination Unreachable (RFC 4443 §3.1).
pub const DEST_UNREACHABLE: u8 = 1;
/// Packet Too Big (RFC 4443 §3.2).
pub const PACKET_TOO_BIG: u8 = 2;
/// Time Exceeded (RFC 4443 §3.3).
pub const TIME_EXCEEDED: u8 = 3;
/// Parameter Problem (RFC 4443 §3.4).
pub const PARAMETER_PROBLEM: u8 = 4;
/// Echo Request (RFC 4443 §4.1).
pub const ECHO_REQUEST: u8 = 128;
/// Echo Reply (RFC 4443 §4.2).
pub const ECHO_REPLY: u8 = 129;
/// Router Solicitation (RFC 4861 §4.1).
pub const ROUTER_SOLICITATION: u8 = 133;
/// Router Advertisement (RFC 4861 §4.2).
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Neighbor Solicitation (RFC 4861 §4.3).
pub const NEIGHBOR_SOLICITATION: u8 = 135;
/// Neighbor Advertisement (RFC 4861 §4.4).
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Redirect (RFC 4861 §4.5).
pub const REDIRECT: u8 = 137;
/// Header length: type, code, checksum, and the 4-byte field.
pub const HEADER_LEN: usize = 8;

/// ND option: Source Link-Layer Address (RFC 4861 §4.6.1).
pub const OPT_SOURCE_LLA: u8 = 1;
/// ND option: Target Link-Layer Address (RFC 4861 §4.6.1).
pub const OPT_TARGET_LLA: u8 = 2;

/// A checksummed ICMPv6 message.
#[derive(Clone, Copy, Debug)]
pub struct Icmpv6Message<'a> {
    bytes: &'a [u8],
}

/// Why an ICMPv6 message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Error {
    /// Shorter than its 8-byte header.
    Truncated,
    /// The checksum (with the pseudo-header) does not verify.
    BadChecksum,
}

impl<'a> Icmpv6Message<'a> {
    /// Checks length and checksum of the message in `bytes`, sent from
    /// `src` to `dst`.
    pub fn parse(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        bytes: &'a [u8],
    ) -> Result<Icmpv6Message<'a>, Icmpv6Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Icmpv6Error::Truncated);
        }
        // RFC 4443 §2.3: the checksum covers the pseudo-header and the
        // whole message; a message whose sum does not verify is dropped.
        let mut c = pseudo_header_sum(src, dst, NEXT_ICMPV6, bytes.len());
        c.add(bytes);
        if !c.verifies() {
            return Err(Icmpv6Error::BadChecksum);
        }
        Ok(Icmpv6Message { bytes })
    }

    /// Type.
    pub fn kind(&self) -> u8 {
        self.bytes[0]
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.bytes[1]
    }

    /// The 4-byte field after the checksum (identifier and sequence of an
    /// echo, the pointer of a Parameter Problem, the flags of an NA).
    pub fn field(&self) -> [u8; 4] {
        [self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]]
    }

    /// What follows the 8-byte header.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Writes an ICMPv6 message from `src` to `dst` with its checksum into
/// `out`, replacing its contents.
pub fn write(
    out: &mut Vec<u8>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    kind: u8,
    code: u8,
    field: [u8; 4],
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(&[kind, code, 0, 0]);
    out.extend_from_slice(&field);
    out.extend_from_slice(body);
    let mut c = pseudo_header_sum(src, dst, NEXT_ICMPV6, out.len());
    c.add(out);
    out[2..4].copy_from_slice(&c.finish().to_be_bytes());
}

/// The target and link-layer address option of a Neighbor Solicitation
/// or Advertisement (RFC 4861 §4.3, §4.4), validated as RFC 4861
/// §7.1.1 / §7.1.2 ask of the message itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborMessage {
    /// The Target Address.
    pub target: Ipv6Addr,
    /// The Source (NS) or Target (NA) Link-Layer Address option, if present.
    pub link_addr: Option<[u8; 6]>,
    /// The four flag bits of an NA: Router, Solicited, Override (and the
    /// reserved rest), in the first byte of the field.
    pub flags: u8,
}

/// NA flag: Router (RFC 4861 §4.4).
pub const NA_ROUTER: u8 = 0x80;
/// NA flag: Solicited.
pub const NA_SOLICITED: u8 = 0x40;
/// NA flag: Override.
pub const NA_OVERRIDE: u8 = 0x20;

impl NeighborMessage {
    /// Reads an NS or NA: `None` if it is malformed (RFC 4861 §7.1.1,
    /// §7.1.2: code 0, at least 24 bytes, a target that is not multicast,
    /// options each of non-zero length and within the message).
    pub fn parse(msg: &Icmpv6Message<'_>) -> Option<NeighborMessage> {
        if msg.code() != 0 {
            return None;
        }
        let body = msg.body();
        let target: [u8; 16] = body.get(..16)?.try_into().ok()?;
        let target = Ipv6Addr::from(target);
        if target.is_multicast() {
            return None;
        }
        let want = if msg.kind() == NEIGHBOR_SOLICITATION {
            OPT_SOURCE_LLA
        } else {
            OPT_TARGET_LLA
        };
        let mut link_addr = None;
        let mut opts = &body[16..];
        while !opts.is_empty() {
            let kind = opts[0];
            let len = usize::from(*opts.get(1)?) * 8;
            // RFC 4861 §4.6: a length of zero is invalid (discard).
            if len == 0 || len > opts.len() {
                return None;
            }
            if kind == want && len == 8 {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&opts[2..8]);
                link_addr = Some(mac);
            }
            opts = &opts[len..];
        }
        Some(NeighborMessage {
            target,
            link_addr,
            flags: msg.field()[0],
        })
    }
}

/// Writes a Neighbor Solicitation for `target` (RFC 4861 §4.3) with our
/// link-layer address as its Source Link-Layer Address option (omitted
/// when `src` is unspecified, RFC 4861 §7.2.2).
pub fn write_neighbor_solicitation(
    out: &mut Vec<u8>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    mac: [u8; 6],
) {
    let mut body = [0u8; 24];
    body[..16].copy_from_slice(&target.octets());
    let len = if src.is_unspecified() {
        16
    } else {
        body[16] = OPT_SOURCE_LLA;
        body[17] = 1;
        body[18..24].copy_from_slice(&mac);
        24
    };
    write(
        out,
        src,
        dst,
        NEIGHBOR_SOLICITATION,
        0,
        [0; 4],
        &body[..len],
    );
}

/// Writes a Neighbor Advertisement for `target` (RFC 4861 §4.4) with
/// `flags` and our link-layer address as its Target Link-Layer Address
/// option.
pub fn write_neighbor_advertisement(
    out: &mut Vec<u8>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    flags: u8,
    mac: [u8; 6],
) {
    let mut body = [0u8; 24];
    body[..16].copy_from_slice(&target.octets());
    body[16] = OPT_TARGET_LLA;
    body[17] = 1;
    body[18..24].copy_from_slice(&mac);
    write(
        out,
        src,
        dst,
        NEIGHBOR_ADVERTISEMENT,
        0,
        [flags, 0, 0, 0],
        &body,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().expect("address")
    }

    #[test]
    fn written_messages_verify_and_agree_with_etherparse() {
        let (src, dst) = (addr("fd00::2"), addr("fd00::1"));
        let mut out = Vec::new();
        write(&mut out, src, dst, ECHO_REPLY, 0, [0, 7, 0, 1], b"hello");
        let m = Icmpv6Message::parse(src, dst, &out).expect("verifies");
        assert_eq!(
            (m.kind(), m.code(), m.field()),
            (ECHO_REPLY, 0, [0, 7, 0, 1])
        );
        assert_eq!(m.body(), b"hello");
        let (theirs, _) = etherparse::Icmpv6Header::from_slice(&out).expect("etherparse");
        let want = theirs
            .icmp_type
            .calc_checksum(src.octets(), dst.octets(), &out[8..])
            .expect("checksum");
        assert_eq!(theirs.checksum, want);
        // The pseudo-header counts: another destination does not verify.
        assert_eq!(
            Icmpv6Message::parse(src, addr("fd00::3"), &out).err(),
            Some(Icmpv6Error::BadChecksum)
        );
        assert_eq!(
            Icmpv6Message::parse(src, dst, &out[..7]).err(),
            Some(Icmpv6Error::Truncated)
        );
    }

    #[test]
    fn neighbor_messages_round_trip_and_malformed_ones_are_refused() {
        let (src, dst) = (addr("fe80::1"), addr("ff02::1:ff00:2"));
        let mac = [2, 0, 0, 0, 0, 1];
        let mut out = Vec::new();
        write_neighbor_solicitation(&mut out, src, dst, addr("fd00::2"), mac);
        let m = Icmpv6Message::parse(src, dst, &out).expect("verifies");
        assert_eq!(
            NeighborMessage::parse(&m),
            Some(NeighborMessage {
                target: addr("fd00::2"),
                link_addr: Some(mac),
                flags: 0
            })
        );
        write_neighbor_advertisement(&mut out, src, dst, addr("fd00::2"), NA_SOLICITED, mac);
        let m = Icmpv6Message::parse(src, dst, &out).expect("verifies");
        let na = NeighborMessage::parse(&m).expect("parses");
        assert_eq!((na.link_addr, na.flags), (Some(mac), NA_SOLICITED));
        // Zero-length option, truncated target, multicast target, code 1.
        let mut bad = |body: &[u8], code: u8| {
            write(
                &mut out,
                src,
                dst,
                NEIGHBOR_SOLICITATION,
                code,
                [0; 4],
                body,
            );
            let m = Icmpv6Message::parse(src, dst, &out).expect("verifies");
            NeighborMessage::parse(&m)
        };
        let target = addr("fd00::2").octets();
        assert!(bad(&[&target[..], &[1, 0, 0, 0, 0, 0, 0, 0]].concat(), 0).is_none());
        assert!(bad(&[&target[..], &[1, 2, 0, 0, 0, 0, 0, 0]].concat(), 0).is_none());
        assert!(bad(&target[..15], 0).is_none());
        assert!(bad(&addr("ff02::1").octets(), 0).is_none());
        assert!(bad(&target, 1).is_none());
        assert!(bad(&target, 0).is_some());
    }
}
