//! Builders for well-formed packets from `PEER`: the wrapping the
//! harnesses put around fuzzed bytes, and the seed corpus.

use std::net::Ipv4Addr;

use tunstack::wire::checksum;
use tunstack::wire::icmp;
use tunstack::wire::udp;

use super::*;

/// An IPv4 packet with a correct header checksum. `offset` is in bytes.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    id: u16,
    offset: usize,
    more: bool,
    dont_fragment: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + payload.len()).min(65535) as u16;
    let flags_frag = ((offset / 8) as u16 & 0x1fff)
        | if more { 0x2000 } else { 0 }
        | if dont_fragment { 0x4000 } else { 0 };
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&flags_frag.to_be_bytes());
    p.extend_from_slice(&[64, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum::checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&payload[..usize::from(total) - 20]);
    p
}

/// A whole (unfragmented) packet from `PEER` to `dst`.
pub fn packet_to(dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_packet(PEER, dst, protocol, 0x4242, 0, false, false, payload)
}

/// `payload` from `PEER` to `dst` as fragments of at most `per` payload
/// bytes (rounded down to a multiple of 8, at least 8).
pub fn fragments_to(
    dst: Ipv4Addr,
    protocol: u8,
    id: u16,
    payload: &[u8],
    per: usize,
) -> Vec<Vec<u8>> {
    let per = (per / 8 * 8).max(8);
    let mut out = Vec::new();
    let mut offset = 0;
    for chunk in payload.chunks(per) {
        let more = offset + chunk.len() < payload.len();
        out.push(ipv4_packet(
            PEER, dst, protocol, id, offset, more, false, chunk,
        ));
        offset += chunk.len();
    }
    out
}

/// An ICMP message with its checksum.
pub fn icmp_message(kind: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    icmp::write(&mut out, kind, code, rest, body);
    out
}

/// A UDP datagram from `PEER:src_port` to `dst:dst_port` with its checksum.
pub fn udp_datagram(dst: Ipv4Addr, src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    udp::write(&mut out, (PEER, src_port), (dst, dst_port), payload);
    out
}

/// Sets the UDP checksum of `dgram` (sent `PEER` -> `dst`) to the correct
/// value for its first `len` bytes, where `len` is its length field clamped
/// to what is there.
pub(crate) fn fix_udp_checksum(dgram: &mut [u8], dst: Ipv4Addr) {
    if dgram.len() < 8 {
        return;
    }
    let len = usize::from(u16::from_be_bytes([dgram[4], dgram[5]])).min(dgram.len());
    if len < 8 {
        return;
    }
    dgram[6] = 0;
    dgram[7] = 0;
    let acc = checksum::pseudo_header(PEER, dst, udp::PROTOCOL, len as u16);
    let mut c = checksum::finish(checksum::sum(acc, &dgram[..len]));
    if c == 0 {
        c = 0xffff;
    }
    dgram[6..8].copy_from_slice(&c.to_be_bytes());
}

/// A raw TCP segment from `PEER:src_port` to `US:dst_port` whose options
/// area is `options` (zero-padded to a multiple of 4, cut at 40 bytes),
/// with a correct checksum.
#[allow(clippy::too_many_arguments)]
pub fn raw_tcp_segment(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let options = &options[..options.len().min(40)];
    let opt_len = options.len().div_ceil(4) * 4;
    let data_offset = ((20 + opt_len) / 4) as u8;
    let mut s = Vec::with_capacity(20 + opt_len + payload.len());
    s.extend_from_slice(&src_port.to_be_bytes());
    s.extend_from_slice(&dst_port.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.push(data_offset << 4);
    s.push(flags & 0x3f);
    s.extend_from_slice(&window.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(options);
    s.resize(20 + opt_len, 0);
    s.extend_from_slice(payload);
    let acc = checksum::pseudo_header(PEER, US, 6, s.len() as u16);
    let c = checksum::finish(checksum::sum(acc, &s));
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// TCP flag bits as on the wire.
pub mod flag {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// The options area of a SYN offering everything: MSS 1460, window scale 7,
/// SACK permitted, timestamps (Linux's layout).
pub const ALL_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];
