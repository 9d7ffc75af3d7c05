//! Segmentation offload on the wire: the virtio-net header a TUN device
//! puts in front of each packet when it speaks offload (`IFF_VNET_HDR`),
//! and the software fallbacks for what a device cannot do itself: cutting a
//! TCP super-segment into segments and completing a partial checksum.
//!
//! The header is Linux's `struct virtio_net_hdr` (include/uapi/linux/
//! virtio_net.h), 10 bytes in the host's byte order for a TUN device (the
//! "legacy" layout). A super-segment is one IPv4 or IPv6 packet whose TCP
//! payload is longer than `gso_size`; it stands for the segments of
//! `gso_size` bytes (the last one shorter) that a TSO NIC would put on the
//! wire, each with the same headers but for the IP length (IPv4's Total
//! Length, IPv6's Payload Length), IPv4's ID and header checksum, and the
//! TCP sequence number, checksum, and FIN/PSH (on the last segment only).
//!
//! IPv6 is taken only with TCP or UDP right after its fixed 40-byte header
//! (RFC 8200 §3); a packet with extension headers is not described here,
//! and its caller falls back to software.

use super::checksum::Checksum;
use super::ipv6;

/// Length of the virtio-net header.
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at `csum_start +
/// csum_offset` holds only the pseudo-header sum; the rest is to be added.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel has verified the checksum.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: an IPv4 TCP super-segment.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: an IPv6 TCP super-segment.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`: a flag on the GSO type (the segments carry CWR).
pub const GSO_ECN: u8 = 0x80;

/// IP protocol numbers whose checksum field offset we know.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// What the device says about one received packet (a TUN's virtio-net
/// header, when offload is on). The default is a plain packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The transport (TCP or UDP) checksum need not be verified: the kernel
    /// verified it, or built the packet on this host and left its checksum
    /// to "hardware" (`NEEDS_CSUM`), so the field holds only a partial sum.
    pub checksum_trusted: bool,
    /// A TCP super-segment (the kernel's TSO): the payload bytes of each
    /// segment it stands for. 0 for a plain packet.
    pub gso_size: u16,
}

/// What the stack says about one packet it sends. The default is a plain
/// packet, which every device carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxMeta {
    /// The packet is a TCP super-segment: the device (or the kernel behind
    /// it) cuts its payload into segments of this many bytes. 0: one
    /// packet as it is.
    pub gso_size: u16,
    /// The TCP or UDP checksum field holds only the pseudo-header sum; the
    /// device completes the checksum.
    pub checksum_partial: bool,
}

impl TxMeta {
    /// A packet any device carries as it is.
    pub fn is_plain(&self) -> bool {
        self.gso_size == 0 && !self.checksum_partial
    }
}

/// Linux's `struct virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_NONE`, `GSO_TCPV4`, ... possibly with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of the headers (IP and TCP) in front of the payload.
    pub hdr_len: u16,
    /// Payload bytes per segment of a super-segment.
    pub gso_size: u16,
    /// Where the checksummed part starts (the transport header).
    pub csum_start: u16,
    /// Where the checksum field lies, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header at the start of `buf`, or `None` if it is shorter.
    pub fn decode(buf: &[u8]) -> Option<VnetHdr> {
        let b = buf.get(..VNET_HDR_LEN)?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The header for an IPv4 or IPv6 `packet` the stack sends: a TCP
    /// super-segment (`gso_size` > 0 and a payload longer than it) or a
    /// packet whose transport checksum is partial (`partial`), or a plain
    /// packet (all zero). `None` when `packet` is not what the metadata
    /// says (not TCP/UDP right after an IPv4 or a bare IPv6 header): the
    /// caller falls back to software.
    pub fn for_packet(packet: &[u8], gso_size: u16, partial: bool) -> Option<VnetHdr> {
        if gso_size == 0 && !partial {
            return Some(VnetHdr::default());
        }
        let l = Layout::of(packet)?;
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: l.ip_len as u16,
            csum_offset: l.csum_field as u16,
            ..VnetHdr::default()
        };
        if gso_size > 0
            && l.protocol == PROTO_TCP
            && packet.len() - l.l4_hdr_end() > gso_size.into()
        {
            h.gso_type = if l.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
            h.gso_size = gso_size;
            h.hdr_len = l.l4_hdr_end() as u16;
        }
        Some(h)
    }
}

/// Where the headers of an IPv4 or IPv6 TCP or UDP packet lie.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// IPv6 (a fixed 40-byte header, no extension headers), else IPv4.
    v6: bool,
    ip_len: usize,
    protocol: u8,
    /// Offset of the checksum field within the transport header.
    csum_field: usize,
    /// Transport header length (20-60 for TCP, 8 for UDP).
    l4_len: usize,
}

impl Layout {
    fn of(packet: &[u8]) -> Option<Layout> {
        let first = *packet.first()?;
        // One branch on the version nibble; IPv4's path is as it was.
        let (v6, ip_len, protocol) = match first >> 4 {
            4 => (false, usize::from(first & 0x0f) * 4, *packet.get(9)?),
            // RFC 8200 §3: a fixed 40-byte header whose Next Header (byte
            // 6) is here TCP or UDP itself; an extension header (RFC 8200
            // §4) is none of those, so the packet is not described.
            6 => (true, ipv6::HEADER_LEN, *packet.get(6)?),
            _ => return None,
        };
        if ip_len < 20 {
            return None;
        }
        let (csum_field, l4_len) = match protocol {
            PROTO_TCP => {
                let l4_len = usize::from(packet.get(ip_len + 12)? >> 4) * 4;
                // RFC 9293 §3.1: the Data Offset is at least 5 words; a
                // shorter header would put the checksum field, flags and
                // all, in the payload.
                if l4_len < 20 {
                    return None;
                }
                (16, l4_len)
            }
            PROTO_UDP => (6, 8),
            _ => return None,
        };
        if packet.len() < ip_len + l4_len {
            return None;
        }
        Some(Layout {
            v6,
            ip_len,
            protocol,
            csum_field,
            l4_len,
        })
    }

    fn l4_hdr_end(&self) -> usize {
        self.ip_len + self.l4_len
    }
}

/// The folded sum of the pseudo-header for a transport segment of `l4_len`
/// bytes, as a partial checksum field holds it (not complemented).
fn pseudo_sum(packet: &[u8], l: &Layout, l4_len: usize) -> Checksum {
    let mut c = Checksum::new();
    if l.v6 {
        // RFC 8200 §8.1: source and destination addresses, the
        // upper-layer packet length as 32 bits, three zero bytes and the
        // Next Header value.
        c.add(&packet[8..40]);
        c.add_u32(l4_len as u32);
        c.add_u32(u32::from(l.protocol));
    } else {
        // RFC 9293 §3.1: source and destination addresses, a zero byte,
        // the protocol, the TCP (or UDP, RFC 768) length as 16 bits.
        c.add(&packet[12..20]);
        c.add_u16(u16::from(l.protocol));
        c.add_u16(l4_len as u16);
    }
    c
}

/// Completes the transport checksum of an IPv4 or IPv6 TCP or UDP
/// `packet` whose checksum field holds the pseudo-header sum
/// (`F_NEEDS_CSUM`), as the kernel or a NIC would. A checksum that already
/// verifies (`F_DATA_VALID`: the kernel checked it) is left as it is. False
/// (packet untouched) if it is neither TCP nor UDP.
pub fn complete_checksum(packet: &mut [u8]) -> bool {
    let Some(l) = Layout::of(packet) else {
        return false;
    };
    let l4_len = packet.len() - l.ip_len;
    let mut c = Checksum::new();
    c.add(&packet[l.ip_len..]);
    // Where the pseudo-header and the segment already sum to all ones, the
    // completed checksum would be what the field holds: a full checksum
    // stays, and a partial one is never left half done.
    let mut whole = pseudo_sum(packet, &l, l4_len);
    whole.add_u16(c.sum());
    if whole.verifies() {
        return true;
    }
    let mut sum = c.finish();
    // RFC 768, RFC 8200 §8.1: a computed UDP checksum of zero is sent as
    // all ones.
    if sum == 0 && l.protocol == PROTO_UDP {
        sum = 0xffff;
    }
    let at = l.ip_len + l.csum_field;
    packet[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Completes a partial checksum where a virtio-net header says it lies
/// (`csum_start`, `csum_offset`), whatever the protocol: the sum from
/// `csum_start` to the end, complemented, stored at `csum_start +
/// csum_offset`. False (packet untouched) if that lies outside the packet.
pub fn complete_checksum_at(packet: &mut [u8], csum_start: u16, csum_offset: u16) -> bool {
    let start = usize::from(csum_start);
    let at = start + usize::from(csum_offset);
    if at + 2 > packet.len() {
        return false;
    }
    let mut c = Checksum::new();
    c.add(&packet[start..]);
    let sum = c.finish();
    packet[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// Writes the full checksums of an IPv4 packet's header and of its TCP
/// segment (IPv6: of its TCP segment; RFC 8200 §3 has no header
/// checksum), whatever the TCP checksum field held.
fn finish_tcp(seg: &mut [u8], l: &Layout) {
    let ip_len = l.ip_len;
    if !l.v6 {
        seg[10..12].fill(0);
        let mut ip = Checksum::new();
        ip.add(&seg[..ip_len]);
        seg[10..12].copy_from_slice(&ip.finish().to_be_bytes());
    }
    let l4_len = seg.len() - ip_len;
    seg[ip_len + 16..ip_len + 18].fill(0);
    let mut c = pseudo_sum(seg, l, l4_len);
    c.add(&seg[ip_len..]);
    seg[ip_len + 16..ip_len + 18].copy_from_slice(&c.finish().to_be_bytes());
}

/// Cuts an IPv4 or IPv6 TCP super-segment into segments of at most
/// `gso_size` payload bytes, as a TSO NIC or the kernel's GSO does, handing
/// each to `emit` with full checksums. Each segment keeps the headers
/// (options, traffic class and flow label too), with the IP length
/// rewritten, the sequence number advanced, the IPv4 ID incremented (IPv6
/// has none), and FIN and PSH only on the last. A packet that is not a TCP
/// segment right after an IPv4 or a bare IPv6 header, or whose payload fits
/// one segment, goes out whole (its checksum completed). Returns how many
/// packets were emitted.
pub fn segment(packet: &[u8], gso_size: u16, emit: &mut dyn FnMut(&[u8])) -> usize {
    let mut scratch = Vec::with_capacity(packet.len().min(usize::from(gso_size) + 120));
    let Some(l) = Layout::of(packet).filter(|l| l.protocol == PROTO_TCP) else {
        scratch.extend_from_slice(packet);
        complete_checksum(&mut scratch);
        emit(&scratch);
        return 1;
    };
    let hdr_end = l.l4_hdr_end();
    let payload = &packet[hdr_end..];
    let size = if gso_size == 0 {
        payload.len().max(1)
    } else {
        usize::from(gso_size)
    };
    let seq = u32::from_be_bytes([
        packet[l.ip_len + 4],
        packet[l.ip_len + 5],
        packet[l.ip_len + 6],
        packet[l.ip_len + 7],
    ]);
    // IPv4's Identification; IPv6 has none outside a Fragment header.
    let id = u16::from_be_bytes([packet[4], packet[5]]);
    let flags = packet[l.ip_len + 13];
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(size).collect()
    };
    let count = pieces.len();
    for (i, piece) in pieces.into_iter().enumerate() {
        scratch.clear();
        scratch.extend_from_slice(&packet[..hdr_end]);
        scratch.extend_from_slice(piece);
        if l.v6 {
            // RFC 8200 §3: Payload Length counts what follows the fixed
            // header (here the TCP segment alone).
            let payload_len = (scratch.len() - l.ip_len) as u16;
            scratch[4..6].copy_from_slice(&payload_len.to_be_bytes());
        } else {
            let total = scratch.len() as u16;
            scratch[2..4].copy_from_slice(&total.to_be_bytes());
            scratch[4..6].copy_from_slice(&id.wrapping_add(i as u16).to_be_bytes());
        }
        let seg_seq = seq.wrapping_add((i * size) as u32);
        scratch[l.ip_len + 4..l.ip_len + 8].copy_from_slice(&seg_seq.to_be_bytes());
        if i + 1 < count {
            // FIN (0x01) and PSH (0x08) belong to the last segment.
            scratch[l.ip_len + 13] = flags & !0x09;
        }
        finish_tcp(&mut scratch, &l);
        emit(&scratch);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpSegment};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

    /// An IPv6 TCP packet from A6 to B6 with `payload` and a timestamps
    /// option (a 32-byte TCP header), traffic class 0xba and flow label
    /// 0x12345 (outside the pseudo-header), built by etherparse with its
    /// full checksum.
    fn tcp6_packet(seq: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv6(A6.octets(), B6.octets(), 64)
            .tcp(80, 40000, seq, 1000)
            .ack(7)
            .psh();
        let b = if fin { b.fin() } else { b };
        let b = b
            .options_raw(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
            .expect("12 bytes of options");
        let mut p = Vec::new();
        b.write(&mut p, payload).expect("fits");
        p[..4].copy_from_slice(&[0x6b, 0xa1, 0x23, 0x45]);
        p
    }

    /// An IPv6 UDP datagram from A6 to B6, built by etherparse with its
    /// full checksum.
    fn udp6_packet(payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        etherparse::PacketBuilder::ipv6(A6.octets(), B6.octets(), 64)
            .udp(5353, 53)
            .write(&mut p, payload)
            .expect("fits");
        p
    }

    /// `p` with its transport checksum field (at `at`) holding the IPv6
    /// pseudo-header sum, as a sender with offload writes it; computed by
    /// the IP layer's own code, not this module's.
    fn partial6(p: &[u8], next_header: u8, at: usize) -> Vec<u8> {
        let mut q = p.to_vec();
        let sum = crate::wire::ipv6::pseudo_header_sum(A6, B6, next_header, p.len() - 40).sum();
        q[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        q
    }

    /// `p` with an 8-byte extension header of kind `kind` (Hop-by-Hop 0,
    /// Destination Options 60: a PadN option) between the IPv6 header and
    /// the transport header.
    fn with_extension(p: &[u8], kind: u8) -> Vec<u8> {
        let mut q = p[..40].to_vec();
        let upper = q[6];
        q[6] = kind;
        let len = u16::from_be_bytes([q[4], q[5]]) + 8;
        q[4..6].copy_from_slice(&len.to_be_bytes());
        q.extend_from_slice(&[upper, 0, 1, 4, 0, 0, 0, 0]);
        q.extend_from_slice(&p[40..]);
        q
    }

    /// An IPv4 TCP packet from A to B with `payload`, full checksums.
    fn tcp_packet(seq: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
        let h = TcpHeaderRepr {
            src_port: 80,
            dst_port: 40000,
            seq,
            ack: 7,
            flags: TcpFlags {
                ack: true,
                psh: true,
                fin,
                ..Default::default()
            },
            window: 1000,
            ..Default::default()
        };
        let mut seg = Vec::new();
        h.emit(A, B, [payload, &[]], &mut seg);
        let mut p = vec![0u8; 20];
        crate::wire::ipv4::write_header(&mut p, A, B, 6, 64, 0, 100, seg.len(), true);
        p.extend_from_slice(&seg);
        p
    }

    #[test]
    fn the_header_round_trips_in_host_order() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 52,
            gso_size: 1448,
            csum_start: 20,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::decode(&h.encode()), Some(h));
        assert_eq!(VnetHdr::decode(&[0; 9]), None);
    }

    #[test]
    fn a_super_segment_is_cut_into_valid_segments_with_flags_on_the_last() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let big = tcp_packet(1_000, true, &payload);
        let mut got = Vec::new();
        let n = segment(&big, 1448, &mut |p| got.push(p.to_vec()));
        assert_eq!(n, 7);
        let mut joined = Vec::new();
        for (i, p) in got.iter().enumerate() {
            let ip = etherparse::Ipv4HeaderSlice::from_slice(p).expect("IPv4");
            assert_eq!(usize::from(ip.total_len()), p.len());
            assert_eq!(ip.identification(), 100 + i as u16);
            assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
            let seg = TcpSegment::parse(A, B, &p[20..]).expect("checksum verifies");
            assert_eq!(seg.header.seq, 1_000 + 1448 * i as u32);
            let last = i == got.len() - 1;
            assert_eq!(seg.header.flags.fin, last);
            assert_eq!(seg.header.flags.psh, last);
            assert!(seg.payload.len() <= 1448);
            joined.extend_from_slice(seg.payload);
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn partial_checksums_are_completed() {
        let mut p = tcp_packet(5, false, b"hello, world");
        let good = p.clone();
        // What the stack writes with offload: the pseudo-header sum.
        let l4 = p.len() - 20;
        let l = Layout::of(&p).expect("TCP");
        let partial = pseudo_sum(&p, &l, l4).sum();
        p[36..38].copy_from_slice(&partial.to_be_bytes());
        assert!(TcpSegment::parse(A, B, &p[20..]).is_err());
        assert!(complete_checksum(&mut p));
        assert_eq!(p, good);
        // A super-segment with a partial checksum is cut the same way.
        let mut out = Vec::new();
        segment(&p, 4, &mut |s| out.push(s.to_vec()));
        assert_eq!(out.len(), 3);
        assert!(out
            .iter()
            .all(|s| TcpSegment::parse(A, B, &s[20..]).is_ok()));
        // Not TCP or UDP: left alone.
        let mut icmp = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        icmp.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
        assert!(!complete_checksum(&mut icmp));
    }

    #[test]
    fn headers_for_sends_describe_the_packet() {
        let payload = vec![1u8; 3000];
        let p = tcp_packet(0, false, &payload);
        let h = VnetHdr::for_packet(&p, 1448, true).expect("TCP");
        assert_eq!(
            h,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                hdr_len: 40,
                gso_size: 1448,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        // One segment's worth: no GSO, still a partial checksum.
        let small = tcp_packet(0, false, b"abc");
        let h = VnetHdr::for_packet(&small, 1448, true).expect("TCP");
        assert_eq!((h.gso_type, h.flags), (GSO_NONE, F_NEEDS_CSUM));
        assert_eq!(
            VnetHdr::for_packet(&small, 0, false),
            Some(VnetHdr::default())
        );
        assert_eq!(VnetHdr::for_packet(&[0x60; 40], 1448, true), None);
    }

    #[test]
    fn a_tcp_header_shorter_than_20_bytes_is_not_tcp() {
        // Data Offset 2 (8 bytes) and 13 bytes of TCP: the flags and the
        // checksum field would lie past the end (this used to panic).
        let mut p = vec![
            0x45, 0, 0, 33, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        p.extend_from_slice(&[0, 80, 0, 81, 0, 0, 0, 1, 0, 0, 0, 0, 0x20]);
        let mut out = Vec::new();
        assert_eq!(segment(&p, 8, &mut |s| out.push(s.to_vec())), 1);
        assert_eq!(out, [p.clone()]);
        let mut q = p.clone();
        assert!(!complete_checksum(&mut q));
        assert_eq!(VnetHdr::for_packet(&p, 8, true), None);
    }

    #[test]
    fn a_v6_super_segment_is_cut_into_valid_segments_with_flags_on_the_last() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let big = tcp6_packet(1_000, true, &payload);
        // As the stack sends it with offload: a partial checksum. The
        // segments are the same either way.
        for sent in [big.clone(), partial6(&big, PROTO_TCP, 56)] {
            let mut got = Vec::new();
            let n = segment(&sent, 1428, &mut |p| got.push(p.to_vec()));
            assert_eq!(n, 8);
            assert_eq!(got.len(), 8);
            let mut joined = Vec::new();
            for (i, p) in got.iter().enumerate() {
                let ip = etherparse::Ipv6HeaderSlice::from_slice(p).expect("IPv6");
                assert_eq!(usize::from(ip.payload_length()), p.len() - 40);
                // Version, traffic class, flow label, next header, hop
                // limit and addresses are the super-segment's: IPv6 has no
                // ID and no header checksum to rewrite.
                assert_eq!(p[..4], big[..4]);
                assert_eq!(p[6..40], big[6..40]);
                let tcp = etherparse::TcpSlice::from_slice(&p[40..]).expect("TCP");
                let want = tcp
                    .calc_checksum_ipv6(A6.octets(), B6.octets())
                    .expect("fits");
                assert_eq!(tcp.checksum(), want, "segment {i}'s checksum");
                assert_eq!(tcp.sequence_number(), 1_000 + 1428 * i as u32);
                assert_eq!(tcp.acknowledgment_number(), 7);
                assert_eq!(tcp.options(), [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
                let last = i == got.len() - 1;
                assert_eq!(tcp.fin(), last);
                assert_eq!(tcp.psh(), last);
                assert!(tcp.ack());
                assert!(tcp.payload().len() <= 1428);
                joined.extend_from_slice(tcp.payload());
            }
            assert_eq!(joined, payload);
        }
    }

    #[test]
    fn v6_partial_checksums_are_completed() {
        let good = tcp6_packet(5, false, b"hello, world");
        let mut p = partial6(&good, PROTO_TCP, 56);
        assert_ne!(p, good);
        assert!(complete_checksum(&mut p));
        assert_eq!(p, good);
        // Where a virtio-net header says the field lies.
        let mut p = partial6(&good, PROTO_TCP, 56);
        assert!(complete_checksum_at(&mut p, 40, 16));
        assert_eq!(p, good);
        // UDP: the field at 6 of its header.
        let good = udp6_packet(b"a question");
        let mut p = partial6(&good, PROTO_UDP, 46);
        assert_ne!(p, good);
        assert!(complete_checksum(&mut p));
        assert_eq!(p, good);
        // A partial UDP datagram "cut" goes out whole, completed.
        let mut out = Vec::new();
        segment(&partial6(&good, PROTO_UDP, 46), 4, &mut |s| {
            out.push(s.to_vec())
        });
        assert_eq!(out, [good]);
    }

    #[test]
    fn a_checksum_that_already_verifies_is_left_as_it_is() {
        // What a device marks `F_DATA_VALID` (the kernel verified it) and
        // the stack trusts: completing it again must not spoil it.
        let v4 = tcp_packet(5, false, b"hello, world");
        let v6 = tcp6_packet(5, false, b"hello, world");
        let udp = udp6_packet(b"a question");
        for good in [v4, v6, udp] {
            let mut p = good.clone();
            assert!(complete_checksum(&mut p));
            assert_eq!(p, good);
        }
    }

    #[test]
    fn headers_for_v6_sends_describe_the_packet() {
        let p = tcp6_packet(0, false, &[1u8; 3000]);
        let h = VnetHdr::for_packet(&p, 1428, true).expect("TCP");
        assert_eq!(
            h,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV6,
                hdr_len: 72,
                gso_size: 1428,
                csum_start: 40,
                csum_offset: 16,
            }
        );
        // One segment's worth: no GSO, still a partial checksum.
        let small = tcp6_packet(0, false, b"abc");
        let h = VnetHdr::for_packet(&small, 1428, true).expect("TCP");
        assert_eq!(
            (h.gso_type, h.flags, h.csum_start, h.csum_offset),
            (GSO_NONE, F_NEEDS_CSUM, 40, 16)
        );
        assert_eq!(
            VnetHdr::for_packet(&small, 0, false),
            Some(VnetHdr::default())
        );
        // UDP: a partial checksum, never GSO.
        let udp = udp6_packet(&[2u8; 3000]);
        let h = VnetHdr::for_packet(&udp, 1428, true).expect("UDP");
        assert_eq!(
            (h.gso_type, h.flags, h.csum_start, h.csum_offset),
            (GSO_NONE, F_NEEDS_CSUM, 40, 6)
        );
    }

    #[test]
    fn a_v6_packet_with_an_extension_header_falls_back() {
        // The sequence number's top byte lies 12 bytes after the
        // extension header's start: read as TCP from there, it would be a
        // plausible Data Offset of 5. Only Next Header tells them apart.
        let p = tcp6_packet(0x5000_0000, true, &[1u8; 3000]);
        for kind in [0, 60] {
            let ext = with_extension(&partial6(&p, PROTO_TCP, 56), kind);
            assert_eq!(VnetHdr::for_packet(&ext, 1428, true), None);
            assert_eq!(VnetHdr::for_packet(&ext, 0, true), None);
            let mut q = ext.clone();
            assert!(!complete_checksum(&mut q));
            assert_eq!(q, ext);
            // Software cannot cut it either: it goes out as it is.
            let mut out = Vec::new();
            assert_eq!(segment(&ext, 1428, &mut |s| out.push(s.to_vec())), 1);
            assert_eq!(out, [ext]);
        }
        // A Next Header that is neither TCP nor UDP (ICMPv6).
        let mut icmp = udp6_packet(b"ping");
        icmp[6] = 58;
        assert_eq!(VnetHdr::for_packet(&icmp, 0, true), None);
    }

    #[test]
    fn garbage_never_panics() {
        for len in 0..64 {
            for top in [0x40, 0x60] {
                let p: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37) | top).collect();
                let _ = segment(&p, 8, &mut |_| {});
                let mut q = p.clone();
                let _ = complete_checksum(&mut q);
                let _ = VnetHdr::for_packet(&p, 8, true);
            }
        }
        // Headers that parse, then anything: IPv4 (IHL 5) and IPv6 with
        // TCP or UDP, every Data Offset, cut short anywhere.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        for round in 0..20_000 {
            let len = usize::from(next()) % 120;
            let mut p: Vec<u8> = (0..len).map(|_| next()).collect();
            let (version, proto_at) = if round % 2 == 0 { (0x45, 9) } else { (0x60, 6) };
            if let Some(b) = p.first_mut() {
                *b = version;
            }
            if let Some(b) = p.get_mut(proto_at) {
                *b = if round % 4 < 2 { PROTO_TCP } else { PROTO_UDP };
            }
            for gso_size in [0, 1, 8] {
                let _ = segment(&p, gso_size, &mut |_| {});
                let _ = VnetHdr::for_packet(&p, gso_size, true);
            }
            let mut q = p.clone();
            let _ = complete_checksum(&mut q);
            let (start, offset) = (u16::from(next()), u16::from(next()));
            let _ = complete_checksum_at(&mut q, start, offset);
        }
    }
}
