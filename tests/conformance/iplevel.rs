//! Requirements met at the TCP/IP boundary, tested through the whole
//! sans-IO core ([`Interface`]) with real IPv4 packets: checksums in real
//! packets (MUST-2), configurable TTL (MUST-49), unknown IP options
//! (MUST-50), ICMP handling (MUST-54..56) and address validation (MUST-57,
//! MUST-63). RFC 9293 §3.9.2.

use std::net::{Ipv4Addr, SocketAddrV4};

use tunstack::iface::Interface;
use tunstack::stats::DropReason;
use tunstack::tcp::{ConnId, State};
use tunstack::time::Instant;
use tunstack::Config;

use crate::bench::*;

/// The Internet checksum of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (DF set, TTL 64) with `options` (a multiple of 4 bytes).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let hlen = 20 + options.len();
    let total = (hlen + payload.len()) as u16;
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let sum = inet_checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A packet the core sent: its IPv4 header fields and TCP segment.
struct Sent {
    ttl: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tcp: Option<Out>,
}

/// The whole core with the peer at 10.0.0.1 (the stack is 10.0.0.2/24).
struct Ip {
    iface: Interface,
    now: Instant,
}

impl Ip {
    fn new(config: Config) -> Ip {
        let mut iface = Interface::new(&config, 1500, 7);
        iface
            .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 8)
            .unwrap();
        Ip {
            iface,
            now: Instant::ZERO,
        }
    }

    /// Sends `seg` (all fields given) in an IPv4 packet.
    fn tcp(&mut self, src: Ipv4Addr, dst: Ipv4Addr, ip_options: &[u8], seg: In) {
        let s = SocketAddrV4::new(src, PEER.port());
        let d = SocketAddrV4::new(dst, PORT);
        let bytes = seg.win(65535).encode(s, d);
        self.iface
            .receive(self.now, &ipv4(src, dst, 6, ip_options, &bytes));
    }

    /// Everything the core transmitted, parsed (IP header checksum and TCP
    /// checksum over the real addresses verified).
    fn sent(&mut self) -> Vec<Sent> {
        let mut v = Vec::new();
        while let Some(p) = self.iface.pop_transmit() {
            let hlen = usize::from(p[0] & 0x0f) * 4;
            assert_eq!(inet_checksum(&p[..hlen]), 0, "IPv4 header checksum");
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let tcp = (p[9] == 6).then(|| Out::parse(src, dst, &p[hlen..total], self.now));
            v.push(Sent {
                ttl: p[8],
                src,
                dst,
                tcp,
            });
        }
        v
    }

    /// A passive open from the peer: returns the connection.
    fn establish(&mut self) -> ConnId {
        self.tcp(PEER_IP, US_IP, &[], seg!(SYN, seq = PEER_ISS, mss = 1460));
        let sa = self.sent().pop().and_then(|s| s.tcp).expect("SYN-ACK");
        let ack = sa.seq.wrapping_add(1);
        self.tcp(
            PEER_IP,
            US_IP,
            &[],
            seg!(ACK, seq = PEER_ISS + 1, ack = ack),
        );
        let conns = self.iface.tcp_connections();
        assert_eq!(conns[0].state, State::Established);
        while self.iface.pop_event().is_some() {}
        conns[0].id
    }
}

/// MUST-2 in real packets, MUST-49: the TTL of TCP's packets is
/// configurable (default 64), and the TCP checksum verifies with the
/// addresses of the IPv4 header that carries it.
#[test]
fn must_49_ttl_is_configurable() {
    for ttl in [64u8, 17] {
        let mut ip = Ip::new(Config {
            ttl,
            ..Config::default()
        });
        ip.tcp(PEER_IP, US_IP, &[], seg!(SYN, seq = 1, mss = 1460));
        let sent = ip.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].ttl, sent[0].src, sent[0].dst),
            (ttl, US_IP, PEER_IP)
        );
        assert!(sent[0].tcp.as_ref().is_some_and(|s| s.is("SA")));
    }
}

/// MUST-50: IP options TCP does not understand (Record Route, NOPs) are
/// ignored; the SYN they carry is answered.
#[test]
fn must_50_unknown_ip_options_are_ignored() {
    let record_route = [7, 7, 4, 0, 0, 0, 0, 0];
    for opts in [&record_route[..], &[1, 1, 1, 0]] {
        let mut ip = Ip::new(Config::default());
        ip.tcp(PEER_IP, US_IP, opts, seg!(SYN, seq = 1, mss = 1460));
        let sent = ip.sent();
        assert!(sent[0]
            .tcp
            .as_ref()
            .is_some_and(|s| s.is("SA") && s.ack_no == 2));
    }
}

/// MUST-57: segments addressed to a broadcast or multicast address are
/// discarded silently — no SYN-ACK, and no RST either.
#[test]
fn must_57_segments_to_broadcast_or_multicast_are_discarded() {
    let mut ip = Ip::new(Config::default());
    for dst in [
        Ipv4Addr::new(10, 0, 0, 255),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
    ] {
        ip.tcp(PEER_IP, dst, &[], seg!(SYN, seq = 1, mss = 1460));
        ip.tcp(PEER_IP, dst, &[], seg!(ACK, seq = 1, ack = 1));
    }
    assert!(ip.sent().is_empty());
    assert!(ip.iface.tcp_connections().is_empty());
    let stats = ip.iface.stats();
    assert_eq!(
        stats.dropped(DropReason::TcpRejected) + stats.dropped(DropReason::NotForUs),
        6
    );
}

/// MUST-63: a SYN from an invalid source address (broadcast, subnet
/// broadcast, multicast, unspecified, our own) is ignored.
#[test]
fn must_63_syn_from_an_invalid_source_is_ignored() {
    let mut ip = Ip::new(Config::default());
    for src in [
        Ipv4Addr::new(10, 0, 0, 255),
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::UNSPECIFIED,
        US_IP,
    ] {
        ip.tcp(src, US_IP, &[], seg!(SYN, seq = 1, mss = 1460));
    }
    assert!(ip.sent().is_empty());
    assert!(ip.iface.tcp_connections().is_empty());
    assert_eq!(ip.iface.stats().dropped(DropReason::BadSourceAddress), 5);
}

/// An ICMP error from the peer about our segment to it.
fn icmp_error(kind: u8, code: u8) -> Vec<u8> {
    let quoted_tcp = [0, PORT as u8, 0x9c, 0x40, 0, 0, 0, 1];
    let quoted_ip = ipv4(US_IP, PEER_IP, 6, &[], &quoted_tcp);
    let mut m = vec![kind, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&quoted_ip);
    let sum = inet_checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(PEER_IP, US_IP, 1, &[], &m)
}

/// MUST-55, MUST-56: ICMP Source Quench is discarded silently, and soft
/// errors (Destination Unreachable codes 0, 1, 5; Time Exceeded; Parameter
/// Problem) do not abort the connection. (tunstack's TCP does not act on
/// ICMP at all — MUST-54 is not implemented — which satisfies these two.)
#[test]
fn must_55_56_source_quench_and_soft_errors_do_not_abort() {
    let mut ip = Ip::new(Config::default());
    let id = ip.establish();
    for (kind, code) in [(4, 0), (3, 0), (3, 1), (3, 5), (11, 0), (11, 1), (12, 0)] {
        ip.iface.receive(ip.now, &icmp_error(kind, code));
    }
    assert!(ip.sent().is_empty());
    assert_eq!(
        ip.iface.tcp_info(id).map(|i| i.state),
        Some(State::Established)
    );
    assert!(std::iter::from_fn(|| ip.iface.pop_event()).next().is_none());
}
