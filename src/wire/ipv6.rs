//! IPv6 headers (RFC 8200): the fixed 40-byte header, read and written by
//! hand (eight fixed fields, no options), and the walk over the extension
//! headers that may follow it, every length checked against the bytes
//! present.

use std::net::Ipv6Addr;

use super::checksum::Checksum;
use crate::stats::DropReason;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU every IPv6 link has (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;
/// Next Header: Hop-by-Hop Options (RFC 8200 §4.3).
pub const NEXT_HOP_BY_HOP: u8 = 0;
/// Next Header: Routing (RFC 8200 §4.4).
pub const NEXT_ROUTING: u8 = 43;
/// Next Header: Fragment (RFC 8200 §4.5).
pub const NEXT_FRAGMENT: u8 = 44;
/// Next Header: ICMPv6 (RFC 4443).
pub const NEXT_ICMPV6: u8 = 58;
/// Next Header: No Next Header (RFC 8200 §4.7).
pub const NEXT_NONE: u8 = 59;
/// Next Header: Destination Options (RFC 8200 §4.6).
pub const NEXT_DEST_OPTS: u8 = 60;
/// Most extension headers walked before the packet is given up on: a
/// bound on the work one packet can cause (Linux has no fixed bound, but
/// real packets carry two or three at most).
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The fixed header of an IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Length of what follows the fixed header.
    pub payload_len: u16,
    /// The first extension header or the upper-layer protocol.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Reads the header at the front of `packet` and returns it with the
    /// packet cut to its payload length (bytes past it, such as Ethernet
    /// padding, are not part of the packet).
    pub fn parse(packet: &[u8]) -> Result<(Ipv6Header, &[u8]), DropReason> {
        let h: &[u8; HEADER_LEN] = packet
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(DropReason::Ipv6Truncated)?;
        // RFC 8200 §3: Version = 6.
        if h[0] >> 4 != 6 {
            return Err(DropReason::Ipv6BadVersion);
        }
        let payload_len = u16::from_be_bytes([h[4], h[5]]);
        // RFC 8200 §3: Payload Length counts what follows the header. A
        // zero length with a Jumbo Payload option (RFC 2675) is not
        // served: the walk drops it as an unrecognised option.
        let end = HEADER_LEN + usize::from(payload_len);
        let packet = packet.get(..end).ok_or(DropReason::Ipv6BadPayloadLength)?;
        let addr = |at: usize| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&h[at..at + 16]);
            Ipv6Addr::from(a)
        };
        let header = Ipv6Header {
            traffic_class: (h[0] << 4) | (h[1] >> 4),
            flow_label: u32::from_be_bytes([0, h[1] & 0x0f, h[2], h[3]]),
            payload_len,
            next_header: h[6],
            hop_limit: h[7],
            src: addr(8),
            dst: addr(24),
        };
        Ok((header, packet))
    }

    /// The header's 40 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let flow = self.flow_label & 0x000f_ffff;
        h[0] = 0x60 | (self.traffic_class >> 4);
        h[1] = (self.traffic_class << 4) | ((flow >> 16) as u8);
        h[2..4].copy_from_slice(&(flow as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        h[6] = self.next_header;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&self.src.octets());
        h[24..40].copy_from_slice(&self.dst.octets());
        h
    }
}

/// Writes a packet (header and `payload`) into `out`, replacing its
/// contents. The payload must be at most 65,535 bytes.
pub fn write(
    out: &mut Vec<u8>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) {
    let header = Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
        next_header,
        hop_limit,
        src,
        dst,
    };
    write_with(out, &header, payload);
}

/// Writes `header` (its Payload Length as given) and `payload` into
/// `out`, replacing its contents.
pub fn write_with(out: &mut Vec<u8>, header: &Ipv6Header, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
}

/// The IPv6 pseudo-header (RFC 8200 §8.1) of an upper-layer message of
/// `len` bytes, as a [`Checksum`] to continue with the message.
pub fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> Checksum {
    let mut c = Checksum::new();
    c.add(&src.octets());
    c.add(&dst.octets());
    c.add_u32(u32::try_from(len).unwrap_or(u32::MAX));
    c.add_u32(u32::from(next_header));
    c
}

/// The solicited-node multicast address of `addr`: ff02::1:ff and its
/// low 24 bits (RFC 4291 §2.7.1).
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The link-scope all-nodes multicast address ff02::1 (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Whether `addr` is link-local unicast, fe80::/10 (RFC 4291 §2.5.6).
pub fn is_link_local(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// Where the upper-layer header of a packet lies, after its extension
/// headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upper {
    /// The upper-layer protocol (or an unrecognised header type).
    pub next_header: u8,
    /// Offset of the upper-layer header in the packet.
    pub offset: usize,
    /// Offset of the Next Header field that named it (6 for the fixed
    /// header), for a Parameter Problem's pointer (RFC 4443 §3.4).
    pub next_header_field: usize,
}

/// Why the extension headers stopped the packet, and the Parameter
/// Problem (RFC 4443 §3.4) to send about it, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionError {
    /// The drop reason to count.
    pub reason: DropReason,
    /// `(code, pointer)` of the Parameter Problem to send, if one is due.
    pub problem: Option<(u8, u32)>,
    /// Whether the problem is sent even when the packet went to a
    /// multicast address (RFC 4443 §2.4 (e.3): an unrecognised option
    /// whose type's top bits are 10).
    pub even_to_multicast: bool,
}

impl ExtensionError {
    fn silent(reason: DropReason) -> ExtensionError {
        ExtensionError {
            reason,
            problem: None,
            even_to_multicast: false,
        }
    }

    fn problem(reason: DropReason, code: u8, pointer: usize) -> ExtensionError {
        ExtensionError {
            reason,
            problem: Some((code, u32::try_from(pointer).unwrap_or(u32::MAX))),
            even_to_multicast: false,
        }
    }
}

/// Parameter Problem code 0: erroneous header field (RFC 4443 §3.4).
pub const PROBLEM_FIELD: u8 = 0;
/// Parameter Problem code 1: unrecognised Next Header type.
pub const PROBLEM_NEXT_HEADER: u8 = 1;
/// Parameter Problem code 2: unrecognised IPv6 option.
pub const PROBLEM_OPTION: u8 = 2;

/// Walks the extension headers of `packet` (whole, header included, cut
/// to its payload length) to the upper-layer header. `dst_multicast`
/// says whether the packet went to a multicast address (it decides one
/// option rule). The walk also stops at the Fragment header of a fragment
/// (not an atomic one): then [`Upper::next_header`] is [`NEXT_FRAGMENT`]
/// and [`Upper::offset`] is where that header starts, for reassembly.
pub fn walk_extensions(packet: &[u8], dst_multicast: bool) -> Result<Upper, ExtensionError> {
    let mut next = *packet
        .get(6)
        .ok_or(ExtensionError::silent(DropReason::Ipv6Truncated))?;
    let mut field = 6;
    let mut at = HEADER_LEN;
    for walked in 0..=MAX_EXTENSION_HEADERS {
        let header_len = match next {
            NEXT_HOP_BY_HOP | NEXT_ROUTING | NEXT_DEST_OPTS => {
                // RFC 8200 §4.3/§4.4/§4.6: Hdr Ext Len in 8-octet units,
                // not counting the first 8 octets.
                let len = packet
                    .get(at + 1)
                    .map(|l| (usize::from(*l) + 1) * 8)
                    .ok_or(ExtensionError::silent(DropReason::Ipv6BadExtension))?;
                if at + len > packet.len() {
                    return Err(ExtensionError::silent(DropReason::Ipv6BadExtension));
                }
                len
            }
            NEXT_FRAGMENT => 8,
            _ => {
                return Ok(Upper {
                    next_header: next,
                    offset: at,
                    next_header_field: field,
                })
            }
        };
        if walked == MAX_EXTENSION_HEADERS {
            break;
        }
        let Some(header) = packet.get(at..at + header_len) else {
            return Err(ExtensionError::silent(DropReason::Ipv6BadExtension));
        };
        match next {
            NEXT_HOP_BY_HOP if at != HEADER_LEN => {
                // RFC 8200 §4.1: the Hop-by-Hop Options header must
                // immediately follow the IPv6 header; elsewhere it is an
                // unrecognised Next Header (as Linux treats it).
                return Err(ExtensionError::problem(
                    DropReason::Ipv6UnknownNextHeader,
                    PROBLEM_NEXT_HEADER,
                    field,
                ));
            }
            NEXT_HOP_BY_HOP | NEXT_DEST_OPTS => options(header, at, dst_multicast)?,
            NEXT_ROUTING => {
                let (kind, segments_left) = (header[2], header[3]);
                // RFC 8200 §4.4: a Routing header with Segments Left zero
                // is ignored and the packet processed on. With segments
                // left we would have to forward it, and we recognise no
                // routing type: discard and send Parameter Problem code 0
                // pointing at the Routing Type. RFC 5095 §3: type 0 is
                // treated as unrecognised, never processed.
                if segments_left != 0 {
                    let reason = if kind == 0 {
                        DropReason::Ipv6RoutingType0
                    } else {
                        DropReason::Ipv6RoutingUnsupported
                    };
                    return Err(ExtensionError::problem(reason, PROBLEM_FIELD, at + 2));
                }
            }
            _ => {
                // NEXT_FRAGMENT. RFC 8200 §4.5: offset in 8-octet units in
                // the top 13 bits, M flag in the lowest bit.
                let offset_and_m = u16::from_be_bytes([header[2], header[3]]);
                let offset = offset_and_m >> 3;
                let more = offset_and_m & 1 == 1;
                // RFC 8021 §3 / RFC 6946 §4: an atomic fragment (offset 0,
                // M 0) is processed in isolation, as if unfragmented; a
                // real fragment goes to reassembly.
                if offset != 0 || more {
                    return Ok(Upper {
                        next_header: NEXT_FRAGMENT,
                        offset: at,
                        next_header_field: field,
                    });
                }
            }
        }
        field = at;
        next = header[0];
        at += header_len;
    }
    Err(ExtensionError::silent(DropReason::Ipv6BadExtension))
}

/// Walks the options of a Hop-by-Hop or Destination Options header that
/// starts at `at` in the packet (RFC 8200 §4.2).
fn options(header: &[u8], at: usize, dst_multicast: bool) -> Result<(), ExtensionError> {
    let mut i = 2;
    while i < header.len() {
        let kind = header[i];
        // Pad1 is one byte, with no length.
        if kind == 0 {
            i += 1;
            continue;
        }
        let Some(len) = header.get(i + 1).map(|l| usize::from(*l)) else {
            return Err(ExtensionError::silent(DropReason::Ipv6BadExtension));
        };
        if i + 2 + len > header.len() {
            return Err(ExtensionError::silent(DropReason::Ipv6BadExtension));
        }
        match kind {
            // PadN; Router Alert (RFC 2711: meant for routers, harmless).
            1 | 5 => {}
            // RFC 8200 §4.2: the two top bits of an unrecognised option
            // type say what to do.
            _ => match kind >> 6 {
                0 => {}
                1 => return Err(ExtensionError::silent(DropReason::Ipv6UnknownOption)),
                2 => {
                    return Err(ExtensionError {
                        even_to_multicast: true,
                        ..ExtensionError::problem(
                            DropReason::Ipv6UnknownOption,
                            PROBLEM_OPTION,
                            at + i,
                        )
                    })
                }
                _ if dst_multicast => {
                    return Err(ExtensionError::silent(DropReason::Ipv6UnknownOption))
                }
                _ => {
                    return Err(ExtensionError::problem(
                        DropReason::Ipv6UnknownOption,
                        PROBLEM_OPTION,
                        at + i,
                    ))
                }
            },
        }
        i += 2 + len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().expect("address")
    }

    fn packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(
            &mut out,
            addr("fd00::1"),
            addr("fd00::2"),
            next,
            64,
            payload,
        );
        out
    }

    #[test]
    fn header_round_trips_and_agrees_with_etherparse() {
        let h = Ipv6Header {
            traffic_class: 0xb8,
            flow_label: 0x12345,
            payload_len: 8,
            next_header: NEXT_ICMPV6,
            hop_limit: 255,
            src: addr("fe80::1"),
            dst: addr("ff02::1:ff00:2"),
        };
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(&[0; 8]);
        let (parsed, p) = Ipv6Header::parse(&bytes).expect("parses");
        assert_eq!((parsed, p.len()), (h, 48));
        let (theirs, _) = etherparse::Ipv6Header::from_slice(&bytes).expect("etherparse");
        assert_eq!(theirs.traffic_class, 0xb8);
        assert_eq!(theirs.flow_label.value(), 0x12345);
        assert_eq!(theirs.hop_limit, 255);
        assert_eq!(theirs.source, h.src.octets());
        assert_eq!(theirs.destination, h.dst.octets());
    }

    #[test]
    fn short_bad_version_and_bad_length_are_refused_and_padding_is_cut() {
        let p = packet(NEXT_NONE, &[1, 2, 3]);
        assert_eq!(
            Ipv6Header::parse(&p[..39]).err(),
            Some(DropReason::Ipv6Truncated)
        );
        let mut v4 = p.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Header::parse(&v4).err(),
            Some(DropReason::Ipv6BadVersion)
        );
        assert_eq!(
            Ipv6Header::parse(&p[..42]).err(),
            Some(DropReason::Ipv6BadPayloadLength)
        );
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(Ipv6Header::parse(&padded).map(|(_, p)| p.len()), Ok(43));
    }

    #[test]
    fn solicited_node_and_link_local() {
        assert_eq!(
            solicited_node(addr("fd00::1234:5678")),
            addr("ff02::1:ff34:5678")
        );
        assert!(is_link_local(addr("fe80::1")));
        assert!(is_link_local(addr("febf::1")));
        assert!(!is_link_local(addr("fec0::1")));
        assert!(!is_link_local(addr("fd00::2")));
    }

    #[test]
    fn extension_headers_are_walked_to_the_upper_layer() {
        // Hop-by-hop (PadN) -> destination options (Pad1s) -> atomic
        // fragment -> routing type 0 with no segments left -> ICMPv6.
        let hbh = [NEXT_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
        let dst = [NEXT_FRAGMENT, 0, 0, 0, 0, 0, 0, 0];
        let frag = [NEXT_ROUTING, 0, 0, 0, 0, 0, 0, 7];
        let rh0 = [[NEXT_ICMPV6, 2, 0, 0, 0, 0, 0, 0], [0; 8], [0; 8]].concat();
        let body = [&hbh[..], &dst, &frag, &rh0, &[128, 0, 0, 0]].concat();
        let p = packet(NEXT_HOP_BY_HOP, &body);
        assert_eq!(
            walk_extensions(&p, false),
            Ok(Upper {
                next_header: NEXT_ICMPV6,
                offset: 40 + 8 + 8 + 8 + 24,
                next_header_field: 40 + 24,
            })
        );
        assert_eq!(
            walk_extensions(&packet(NEXT_ICMPV6, &[0; 8]), false).map(|u| u.offset),
            Ok(40)
        );
    }

    #[test]
    fn extension_header_errors_name_their_reason_and_pointer() {
        let err = |p: &[u8], mcast: bool| walk_extensions(p, mcast).expect_err("refused");
        // A header past the end.
        let p = packet(NEXT_DEST_OPTS, &[NEXT_ICMPV6, 1, 1, 4, 0, 0, 0, 0]);
        assert_eq!(err(&p, false).reason, DropReason::Ipv6BadExtension);
        // An option past its header's end.
        let p = packet(NEXT_DEST_OPTS, &[NEXT_ICMPV6, 0, 1, 9, 0, 0, 0, 0]);
        assert_eq!(err(&p, false).reason, DropReason::Ipv6BadExtension);
        // Unknown options by their top bits: 00 skipped, 01 silent, 10
        // problem even to multicast, 11 problem unless multicast.
        let opt = |kind: u8| packet(NEXT_DEST_OPTS, &[NEXT_NONE, 0, kind, 2, 0, 0, 1, 0]);
        assert_eq!(
            walk_extensions(&opt(0x1e), false).map(|u| u.next_header),
            Ok(NEXT_NONE)
        );
        let e = err(&opt(0x5e), false);
        assert_eq!((e.reason, e.problem), (DropReason::Ipv6UnknownOption, None));
        let e = err(&opt(0x9e), true);
        assert_eq!((e.problem, e.even_to_multicast), (Some((2, 42)), true));
        assert_eq!(err(&opt(0xde), false).problem, Some((2, 42)));
        assert_eq!(err(&opt(0xde), true).problem, None);
        // Routing type 0 with segments left: RFC 5095.
        let rh0 = packet(NEXT_ROUTING, &[NEXT_ICMPV6, 0, 0, 1, 0, 0, 0, 0]);
        let e = err(&rh0, false);
        assert_eq!(
            (e.reason, e.problem),
            (DropReason::Ipv6RoutingType0, Some((0, 42)))
        );
        let rh4 = packet(NEXT_ROUTING, &[NEXT_ICMPV6, 0, 4, 1, 0, 0, 0, 0]);
        assert_eq!(err(&rh4, false).reason, DropReason::Ipv6RoutingUnsupported);
        // A real fragment (offset 0 with M, or an offset) stops the walk
        // at its Fragment header, for reassembly.
        let first = packet(NEXT_FRAGMENT, &[NEXT_ICMPV6, 0, 0, 1, 0, 0, 0, 1]);
        let later = packet(NEXT_FRAGMENT, &[NEXT_ICMPV6, 0, 0, 8, 0, 0, 0, 1]);
        for p in [first, later] {
            let upper = walk_extensions(&p, false).expect("a fragment");
            assert_eq!((upper.next_header, upper.offset), (NEXT_FRAGMENT, 40));
        }
        // Hop-by-hop anywhere but first.
        let p = packet(
            NEXT_DEST_OPTS,
            &[
                NEXT_HOP_BY_HOP,
                0,
                1,
                4,
                0,
                0,
                0,
                0,
                58,
                0,
                1,
                4,
                0,
                0,
                0,
                0,
            ],
        );
        let e = err(&p, false);
        assert_eq!(
            (e.reason, e.problem),
            (DropReason::Ipv6UnknownNextHeader, Some((1, 40)))
        );
        // Too many headers.
        let many: Vec<u8> = (0..10)
            .flat_map(|_| [NEXT_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0])
            .collect();
        assert_eq!(
            err(&packet(NEXT_DEST_OPTS, &many), false).reason,
            DropReason::Ipv6BadExtension
        );
    }
}
