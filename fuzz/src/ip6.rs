//! The IPv6 harness: a TUN-mode `Interface` with an IPv6 address, and a
//! TAP-mode one behind an `EthernetLink` with neighbour discovery, fed
//! IPv6 packets and frames with a virtual clock. The TUN one has a TCP
//! listener on `[::]:80` and a UDP socket on `[::]:7`, so TCP and UDP over
//! IPv6 are reached too. Everything either sends must be valid IPv6 from
//! one of our addresses, within the MTU, with an ICMPv6, TCP or UDP
//! checksum that verifies, never TCP or UDP to a group; neighbour
//! discovery messages carry hop limit 255; frames come from our MAC; the
//! neighbour cache stays within its bound and no timer stays due after
//! `poll`.

use std::net::Ipv6Addr;
use std::time::Duration;

use tunstack::iface::Interface;
use tunstack::link::ethernet::{
    EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV6, HEADER_LEN,
};
use tunstack::link::{EthernetLink, NeighbourConfig};
use tunstack::time::Instant;
use tunstack::wire::icmpv6::{self, Icmpv6Message};
use tunstack::wire::ipv6::{self, Ipv6Header};
use tunstack::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpSegment};
use tunstack::wire::udp::{self, UdpDatagram};
use tunstack::{Config, Medium};

use super::*;

/// Next Header values of TCP and UDP.
const TCP: u8 = 6;
const UDP: u8 = 17;

/// The stack's IPv6 address.
pub const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The peer's IPv6 address.
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
/// The stack's MAC in TAP mode.
pub const US_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
/// The peer's MAC.
pub const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
/// A small cache, so that eviction is reached.
const CACHE: usize = 8;

/// `ipv6` record kinds (`ctl >> 6`): the body is an IPv6 packet for the
/// TUN-mode interface (its version nibble forced to 6).
pub const TUN_PACKET: u8 = 0;
/// The body is an IPv6 packet framed to our MAC (TAP mode).
pub const FRAMED_TO_US: u8 = 1;
/// The body is an IPv6 packet framed to our solicited-node group.
pub const FRAMED_TO_GROUP: u8 = 2;
/// A valid echo request from fd00::`body[0]`, framed to us: the reply
/// needs that neighbour resolved.
pub const ECHO_FROM: u8 = 3;

struct Harness6 {
    tun: Interface,
    tap: Interface,
    link: EthernetLink,
    link_local: Ipv6Addr,
    now: Instant,
}

impl Harness6 {
    fn new() -> Self {
        let config = Config {
            seed: Some(1),
            addr6: Some((US6, 64)),
            ..Config::default()
        };
        let mut tun = Interface::new(&config, MTU, 1);
        let any6 = |port| std::net::SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        tun.tcp_listen(any6(80), 8).expect("listen on [::]:80");
        tun.udp_bind(any6(7)).expect("bind [::]:7");
        let tap_config = Config {
            medium: Medium::Ethernet,
            mac: Some(US_MAC),
            ..config.clone()
        };
        let tap = Interface::new(&tap_config, MTU, 1);
        let neighbours = NeighbourConfig {
            capacity: CACHE,
            ..NeighbourConfig::default()
        };
        let link = EthernetLink::new(US_MAC, US, 24, neighbours).with_ipv6(US6, neighbours);
        Harness6 {
            tun,
            tap,
            link,
            link_local: US_MAC.link_local6(),
            now: Instant::ZERO,
        }
    }

    fn tun_packet(&mut self, body: &[u8]) {
        let mut p = body.to_vec();
        if let Some(b) = p.first_mut() {
            *b = 0x60 | (*b & 0x0f);
        }
        self.tun.receive(self.now, &p);
        self.tun.poll(self.now);
        while let Some(out) = self.tun.pop_transmit() {
            self.check_packet(&out, false);
            self.tun.recycle(out);
        }
        while self.tun.pop_event().is_some() {}
        assert_eq!(self.tun.stats().ip_packets_out, 0, "IPv4 sent in answer");
    }

    fn frame(&mut self, dst: MacAddr, packet: &[u8]) {
        let mut f = EthernetHeader {
            dst,
            src: PEER_MAC,
            ethertype: ETHERTYPE_IPV6,
        }
        .to_bytes()
        .to_vec();
        f.extend_from_slice(packet);
        if let Some(ip) = self.link.receive(self.now, &f) {
            let packet = f.get(ip).expect("the range lies in the frame");
            self.tap.receive(self.now, packet);
        }
        self.settle();
    }

    fn echo_from(&mut self, host: u8) {
        let src = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(host));
        let mut msg = Vec::new();
        icmpv6::write(
            &mut msg,
            src,
            US6,
            icmpv6::ECHO_REQUEST,
            0,
            [0, 1, 0, 1],
            b"ping",
        );
        let mut p = Vec::new();
        ipv6::write(&mut p, src, US6, ipv6::NEXT_ICMPV6, 64, &msg);
        self.frame(US_MAC, &p);
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut rounds = 0;
        while let Some(at) = self.link.poll_at().filter(|&t| t <= target) {
            self.now = self.now.max(at);
            self.link.poll(self.now);
            self.tap.poll(self.now);
            if let Some(still) = self.link.poll_at() {
                assert!(still > self.now, "the link left a deadline in the past");
            }
            self.settle();
            rounds += 1;
            assert!(rounds < 100_000, "timers never settle");
        }
        self.now = self.now.max(target);
    }

    fn settle(&mut self) {
        while let Some(p) = self.tap.pop_transmit() {
            self.check_packet(&p, false);
            self.link.send_ip(self.now, &p);
            self.tap.recycle(p);
        }
        while let Some(p) = self.link.pop_unreachable() {
            self.tap.next_hop_unreachable(self.now, &p);
        }
        while self.tap.pop_event().is_some() {}
        while let Some(f) = self.link.pop_frame() {
            let h = EthernetHeader::parse(&f).expect("a sent frame has a whole header");
            assert_eq!(h.src, US_MAC, "sent from a foreign MAC");
            match h.ethertype {
                ETHERTYPE_IPV6 => self.check_packet(&f[HEADER_LEN..], true),
                ETHERTYPE_ARP => {}
                other => panic!("sent EtherType {other:#06x}"),
            }
            self.link.recycle(f);
        }
        assert!(
            self.link.stats().neighbours <= CACHE as u64,
            "the neighbour cache outgrew its bound"
        );
    }

    fn check_packet(&self, p: &[u8], on_link: bool) {
        let (h, whole) = Ipv6Header::parse(p).expect("everything sent is valid IPv6");
        assert_eq!(whole.len(), p.len(), "sent with trailing bytes");
        assert!(p.len() <= MTU, "sent past the MTU");
        // From our addresses; from :: only a DAD probe (RFC 4862 §5.4.2).
        let probe = on_link
            && h.src.is_unspecified()
            && whole.get(ipv6::HEADER_LEN) == Some(&icmpv6::NEIGHBOR_SOLICITATION);
        assert!(
            h.src == US6 || (on_link && h.src == self.link_local) || probe,
            "sent from {}",
            h.src
        );
        assert!(!h.dst.is_unspecified(), "sent to ::");
        if h.next_header == ipv6::NEXT_FRAGMENT {
            // A piece of a reply too big for the MTU (RFC 8200 §4.5):
            // pieces with more to come carry a multiple of 8 bytes.
            let more = whole.get(43).is_some_and(|b| b & 1 == 1);
            let data = whole.len().saturating_sub(48);
            assert!(data > 0 && (!more || data % 8 == 0), "a bad fragment");
            assert!(!h.dst.is_multicast(), "a fragment sent to a group");
            return;
        }
        let body = &whole[ipv6::HEADER_LEN..];
        match h.next_header {
            TCP => {
                assert!(!h.dst.is_multicast(), "TCP sent to a group");
                TcpSegment::parse(h.src, h.dst, body).expect("TCP sent with a bad checksum");
                return;
            }
            UDP => {
                assert!(!h.dst.is_multicast(), "UDP sent to a group");
                UdpDatagram::parse(h.src, h.dst, body).expect("UDP sent with a bad checksum");
                return;
            }
            next => assert_eq!(next, ipv6::NEXT_ICMPV6, "sent next header {next}"),
        }
        let m = Icmpv6Message::parse(h.src, h.dst, &whole[ipv6::HEADER_LEN..])
            .expect("ICMPv6 sent with a bad checksum");
        if matches!(
            m.kind(),
            icmpv6::NEIGHBOR_SOLICITATION | icmpv6::NEIGHBOR_ADVERTISEMENT
        ) {
            assert_eq!(h.hop_limit, 255, "RFC 4861: ND with hop limit 255");
        } else {
            assert!(!h.dst.is_multicast(), "ICMPv6 sent to a group");
        }
    }
}

/// `ipv6`: the input is a sequence of records `[ctl, len_hi, len_lo,
/// body...]`: wait `time_step(ctl & 0x3f)`, then by `ctl >> 6`: give the
/// body to the TUN-mode interface ([`TUN_PACKET`]), frame it to our MAC
/// ([`FRAMED_TO_US`]) or to our solicited-node group ([`FRAMED_TO_GROUP`]),
/// or send an echo request from fd00::`body[0]` ([`ECHO_FROM`]). Finally
/// two minutes pass, so every resolution times out.
pub fn ipv6(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness6::new();
    let group = MacAddr::ipv6_multicast(ipv6::solicited_node(US6));
    while !input.is_empty() {
        let ctl = input.u8();
        let len = usize::from(input.u16() & 0x07ff);
        let body = input.bytes(len);
        h.advance(time_step(ctl & 0x3f));
        match ctl >> 6 {
            TUN_PACKET => h.tun_packet(body),
            FRAMED_TO_US => h.frame(US_MAC, body),
            FRAMED_TO_GROUP => h.frame(group, body),
            _ => h.echo_from(body.first().copied().unwrap_or(1)),
        }
    }
    h.advance(Duration::from_secs(120));
}

/// `ipv6` seeds: ping on the TUN, with extension headers and in
/// fragments, a neighbour solicitation then a ping on the TAP once its
/// addresses passed duplicate address detection, echoes from more
/// neighbours than the cache holds.
pub fn seeds(add: &mut impl FnMut(&'static str, &str, Vec<u8>)) {
    // A first wait of `time_step(16)`, 1,024 ms: duplicate address
    // detection is done and the TAP addresses answer.
    const DAD_DONE: u8 = 16;
    fn record(kind: u8, wait: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind << 6 | (wait & 0x3f)];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }
    let packet = |src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, body: &[u8]| {
        let mut p = Vec::new();
        ipv6::write(&mut p, src, dst, next, hop, body);
        p
    };
    let mut echo = Vec::new();
    icmpv6::write(
        &mut echo,
        PEER6,
        US6,
        icmpv6::ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 1],
        b"abcdefgh01234567",
    );
    let ping = packet(PEER6, US6, ipv6::NEXT_ICMPV6, 64, &echo);
    add("ipv6", "ping", record(TUN_PACKET, 0, &ping));
    let mut with_ext = vec![ipv6::NEXT_DEST_OPTS, 0, 1, 4, 0, 0, 0, 0];
    with_ext.extend_from_slice(&[ipv6::NEXT_FRAGMENT, 0, 0x1e, 2, 0, 0, 1, 0]);
    with_ext.extend_from_slice(&[ipv6::NEXT_ICMPV6, 0, 0, 0, 0, 0, 0, 9]);
    with_ext.extend_from_slice(&echo);
    add(
        "ipv6",
        "ping_behind_extension_headers",
        record(
            TUN_PACKET,
            0,
            &packet(PEER6, US6, ipv6::NEXT_HOP_BY_HOP, 64, &with_ext),
        ),
    );
    add(
        "ipv6",
        "unknown_next_header",
        record(TUN_PACKET, 0, &packet(PEER6, US6, 253, 64, &[0; 20])),
    );
    // TCP: a SYN to the listener and one to a closed port (a RST), then
    // the handshake's ACK and data; a datagram to the UDP socket and one
    // to a closed port (Port Unreachable).
    let segment = |dst_port: u16, seq: u32, ack: Option<u32>, syn: bool, data: &[u8]| {
        let h = TcpHeaderRepr {
            src_port: 40000,
            dst_port,
            seq,
            ack: ack.unwrap_or(0),
            flags: TcpFlags {
                syn,
                ack: ack.is_some(),
                ..TcpFlags::default()
            },
            window: 65535,
            ..TcpHeaderRepr::default()
        };
        let mut t = Vec::new();
        h.emit(PEER6, US6, [data, &[]], &mut t);
        packet(PEER6, US6, TCP, 64, &t)
    };
    add(
        "ipv6",
        "tcp_syn_then_data_and_a_closed_port",
        [
            record(TUN_PACKET, 0, &segment(80, 1000, None, true, &[])),
            record(TUN_PACKET, 1, &segment(81, 1000, None, true, &[])),
            record(
                TUN_PACKET,
                1,
                &segment(80, 1001, Some(1), false, b"GET / HTTP/1.0\r\n\r\n"),
            ),
        ]
        .concat(),
    );
    let datagram = |dst_port: u16| {
        let mut u = Vec::new();
        udp::write(&mut u, (PEER6, 5000), (US6, dst_port), b"hello");
        packet(PEER6, US6, UDP, 64, &u)
    };
    add(
        "ipv6",
        "udp_to_a_socket_and_a_closed_port",
        [
            record(TUN_PACKET, 0, &datagram(7)),
            record(TUN_PACKET, 0, &datagram(9)),
        ]
        .concat(),
    );
    let mut big = Vec::new();
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    icmpv6::write(
        &mut big,
        PEER6,
        US6,
        icmpv6::ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 2],
        &data,
    );
    let pieces: Vec<u8> = big
        .chunks(1448)
        .enumerate()
        .flat_map(|(i, chunk)| {
            let offset = i * 1448;
            let more = offset + chunk.len() < big.len();
            let field = (offset as u16) | u16::from(more);
            let mut body = vec![ipv6::NEXT_ICMPV6, 0];
            body.extend_from_slice(&field.to_be_bytes());
            body.extend_from_slice(&7u32.to_be_bytes());
            body.extend_from_slice(chunk);
            record(
                TUN_PACKET,
                0,
                &packet(PEER6, US6, ipv6::NEXT_FRAGMENT, 64, &body),
            )
        })
        .collect();
    add("ipv6", "ping_fragmented", pieces);
    let group = ipv6::solicited_node(US6);
    let mut ns = Vec::new();
    icmpv6::write_neighbor_solicitation(&mut ns, PEER6, group, US6, PEER_MAC.0);
    add(
        "ipv6",
        "solicitation_then_ping",
        [
            record(
                FRAMED_TO_GROUP,
                DAD_DONE,
                &packet(PEER6, group, ipv6::NEXT_ICMPV6, 255, &ns),
            ),
            record(FRAMED_TO_US, 1, &ping),
        ]
        .concat(),
    );
    let mut na = Vec::new();
    icmpv6::write_neighbor_advertisement(
        &mut na,
        PEER6,
        US6,
        PEER6,
        icmpv6::NA_SOLICITED,
        PEER_MAC.0,
    );
    add(
        "ipv6",
        "ping_resolved_by_advertisement",
        [
            record(ECHO_FROM, DAD_DONE, &[1]),
            record(
                FRAMED_TO_US,
                1,
                &packet(PEER6, US6, ipv6::NEXT_ICMPV6, 255, &na),
            ),
        ]
        .concat(),
    );
    let many: Vec<u8> = (10..30u8)
        .flat_map(|h| record(ECHO_FROM, if h == 10 { DAD_DONE } else { 1 }, &[h]))
        .collect();
    add("ipv6", "more_neighbours_than_the_cache", many);
}
