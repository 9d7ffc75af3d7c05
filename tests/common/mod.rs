//! Packet crafting shared by the in-memory integration tests.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const STACK: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(HOST.octets(), STACK.octets(), 64)
        .udp(src_port, dst_port)
        .write(&mut out, payload)
        .expect("building a UDP packet");
    out
}

pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(HOST.octets(), STACK.octets(), 64)
        .icmpv4_echo_request(id, seq)
        .write(&mut out, payload)
        .expect("building an echo request");
    out
}

/// Splits a whole IPv4 packet into fragments of at most `mtu` bytes.
pub fn fragments(packet: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let (mut header, payload) = etherparse::Ipv4Header::from_slice(packet).expect("a valid packet");
    header.dont_fragment = false;
    let payload = &payload[..usize::from(header.total_len) - header.header_len()];
    let mut out = Vec::new();
    tunstack::ip::frag::fragment(&header, payload, mtu, &mut |p: &[u8]| out.push(p.to_vec()))
        .expect("fragmenting");
    out
}

/// Reassembles the stack's output (possibly fragmented) back into whole
/// IP payloads, with their protocol numbers.
pub fn reassemble(packets: &[Vec<u8>]) -> Vec<(u8, Vec<u8>)> {
    let mut r = tunstack::ip::frag::Reassembler::new(Default::default());
    let mut out = Vec::new();
    for p in packets {
        let v = tunstack::wire::ipv4::Ipv4Packet::parse(p).expect("the stack sends valid IPv4");
        assert_eq!(v.src(), STACK);
        assert_eq!(v.dst(), HOST);
        if !v.is_fragment() {
            out.push((v.protocol(), v.payload().to_vec()));
            continue;
        }
        let key = tunstack::ip::frag::FragKey {
            src: v.src(),
            dst: v.dst(),
            protocol: v.protocol(),
            id: v.id(),
        };
        if let Some(whole) = r
            .push(
                tunstack::time::Instant::ZERO,
                key,
                v.frag_offset(),
                v.more_fragments(),
                v.payload(),
            )
            .expect("the stack's fragments reassemble")
        {
            out.push((v.protocol(), whole.payload));
        }
    }
    out
}

/// An IPv4 packet from the host to the stack carrying `payload` as `protocol`.
pub fn ip_packet(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(HOST.octets(), STACK.octets(), 64)
        .write(&mut out, etherparse::IpNumber(protocol), payload)
        .expect("building an IPv4 packet");
    out
}

/// The ICMP port unreachable a host would send about `offending` (a packet the stack sent).
pub fn port_unreachable_about(offending: &[u8]) -> Vec<u8> {
    let mut icmp = Vec::new();
    let quoted = &offending[..offending.len().min(28)];
    tunstack::wire::icmp::write(&mut icmp, 3, 3, [0; 4], quoted);
    ip_packet(1, &icmp)
}
