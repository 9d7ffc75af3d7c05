//! Requirements met at the TCP/IP boundary, tested through the whole
//! sans-IO core ([`Interface`]) with real IPv4 packets: checksums in real
//! packets (MUST-2), configurable TTL (MUST-49), unknown IP options
//! (MUST-50), ICMP handling (MUST-54..56) and address validation (MUST-57,
//! MUST-63). RFC 9293 §3.9.2.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

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

    /// [`Ip::establish`], and the application accepts the connection.
    fn establish_accepted(&mut self) -> ConnId {
        let id = self.establish();
        let lid = self.iface.tcp_listeners()[0].0;
        assert_eq!(self.iface.tcp_accept(lid), Ok(id));
        id
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

/// An ICMP error from `from` about our segment `local` -> `remote` with
/// sequence number `seq`; `rest` is the rest of the ICMP header (the
/// next-hop MTU of Fragmentation Needed).
fn icmp_about(
    kind: u8,
    code: u8,
    rest: [u8; 4],
    (local, remote): (SocketAddrV4, SocketAddrV4),
    seq: u32,
) -> Vec<u8> {
    let mut quoted_tcp = Vec::new();
    quoted_tcp.extend_from_slice(&local.port().to_be_bytes());
    quoted_tcp.extend_from_slice(&remote.port().to_be_bytes());
    quoted_tcp.extend_from_slice(&seq.to_be_bytes());
    let quoted_ip = ipv4(*local.ip(), *remote.ip(), 6, &[], &quoted_tcp);
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(&quoted_ip);
    let sum = inet_checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(*remote.ip(), *local.ip(), 1, &[], &m)
}

/// An active open to the peer's port 80: the connection, our address and
/// the SYN's sequence number.
fn connecting(ip: &mut Ip) -> (ConnId, SocketAddrV4, u32) {
    let remote = SocketAddrV4::new(PEER_IP, 80);
    let (id, local) = ip.iface.tcp_connect(ip.now, remote).expect("connect");
    let SocketAddr::V4(local) = local else {
        panic!("an IPv4 connection got the local address {local}");
    };
    let syn = ip.sent().pop().and_then(|s| s.tcp).expect("a SYN");
    (id, local, syn.seq)
}

/// MUST-54, RFC 1122 §4.2.3.9: Port (or Protocol) Unreachable about our SYN
/// aborts the connection attempt with ConnectionRefused.
#[test]
fn must_54_port_unreachable_refuses_a_connection_attempt() {
    let mut ip = Ip::new(Config::default());
    let (id, local, iss) = connecting(&mut ip);
    let remote = SocketAddrV4::new(PEER_IP, 80);
    ip.iface
        .receive(ip.now, &icmp_about(3, 3, [0; 4], (local, remote), iss));
    let events: Vec<_> = std::iter::from_fn(|| ip.iface.pop_event()).collect();
    assert!(
        events.contains(&tunstack::iface::Event::Tcp(
            tunstack::tcp::TcpEvent::Closed(id, Some(tunstack::tcp::TcpError::ConnectionRefused))
        )),
        "{events:?}"
    );
    assert_eq!(ip.iface.stats().tcp.icmp_errors, 1);
}

/// RFC 5927 §4.1: an ICMP error whose quoted sequence number is not in
/// flight (what a blind attacker sends) is ignored and counted.
#[test]
fn icmp_errors_about_sequence_numbers_not_in_flight_are_ignored() {
    let mut ip = Ip::new(Config::default());
    let (id, local, iss) = connecting(&mut ip);
    let remote = SocketAddrV4::new(PEER_IP, 80);
    for seq in [
        iss.wrapping_add(1),
        iss.wrapping_sub(1),
        iss.wrapping_add(99_999),
    ] {
        ip.iface
            .receive(ip.now, &icmp_about(3, 3, [0; 4], (local, remote), seq));
    }
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.state), Some(State::SynSent));
    assert_eq!(ip.iface.stats().tcp.icmp_ignored, 3);
}

/// MUST-56, SHLD-25: Host Unreachable never aborts by itself; when the
/// attempt finally times out, that is the error the application sees.
#[test]
fn must_56_soft_errors_are_reported_when_the_attempt_times_out() {
    let mut ip = Ip::new(Config::default());
    let (id, local, iss) = connecting(&mut ip);
    let remote = SocketAddrV4::new(PEER_IP, 80);
    ip.iface
        .receive(ip.now, &icmp_about(3, 1, [0; 4], (local, remote), iss));
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.state), Some(State::SynSent));
    let mut closed = None;
    for _ in 0..20 {
        let Some(at) = ip.iface.poll_at() else { break };
        ip.now = at;
        ip.iface.poll(at);
        ip.sent();
        while let Some(e) = ip.iface.pop_event() {
            if let tunstack::iface::Event::Tcp(tunstack::tcp::TcpEvent::Closed(c, err)) = e {
                if c == id {
                    closed = Some(err);
                }
            }
        }
        if closed.is_some() {
            break;
        }
    }
    assert_eq!(
        closed,
        Some(Some(tunstack::tcp::TcpError::HostUnreachable)),
        "the SYN retries ran out with the ICMP error as the reason"
    );
}

/// RFC 1191: Fragmentation Needed lowers the MSS to fit the next-hop MTU
/// and the data in flight is sent again in smaller segments; a message that
/// asks for less than 552 bytes is held to that floor.
#[test]
fn fragmentation_needed_lowers_the_mss_and_resends() {
    let mut ip = Ip::new(Config::default());
    let id = ip.establish_accepted();
    ip.iface.tcp_set_nodelay(ip.now, id, true).unwrap();
    ip.iface.tcp_send(ip.now, id, &[7u8; 3000]).unwrap();
    let first: Vec<Out> = ip.sent().into_iter().filter_map(|s| s.tcp).collect();
    assert_eq!(first[0].data.len(), 1460);
    let (us, peer) = (
        SocketAddrV4::new(US_IP, PORT),
        SocketAddrV4::new(PEER_IP, PEER.port()),
    );
    let mtu = 1000u16.to_be_bytes();
    ip.iface.receive(
        ip.now,
        &icmp_about(3, 4, [0, 0, mtu[0], mtu[1]], (us, peer), first[0].seq),
    );
    let again: Vec<Out> = ip.sent().into_iter().filter_map(|s| s.tcp).collect();
    assert!(!again.is_empty(), "the data in flight is sent again");
    assert_eq!(again[0].seq, first[0].seq);
    assert!(again.iter().all(|o| o.data.len() <= 960), "{again:?}");
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.mss), Some(960));
    let tiny = 100u16.to_be_bytes();
    ip.iface.receive(
        ip.now,
        &icmp_about(3, 4, [0, 0, tiny[0], tiny[1]], (us, peer), first[0].seq),
    );
    assert_eq!(
        ip.iface.tcp_info(id).map(|i| i.mss),
        Some(512),
        "the 552-byte floor"
    );
    assert_eq!(ip.iface.stats().tcp.pmtu_reductions, 2);
}

/// MUST-55, MUST-56: ICMP Source Quench is discarded silently (RFC 6633),
/// and soft errors (Destination Unreachable codes 0, 1, 5; Time Exceeded;
/// Parameter Problem), and hard ones about an established connection (RFC
/// 5927 §5.2), do not abort it, even quoting data in flight.
#[test]
fn must_55_56_source_quench_and_soft_errors_do_not_abort() {
    let mut ip = Ip::new(Config::default());
    let id = ip.establish_accepted();
    ip.iface.tcp_send(ip.now, id, b"in flight").unwrap();
    let data = ip.sent().into_iter().find_map(|s| s.tcp).expect("data");
    let conn = (
        SocketAddrV4::new(US_IP, PORT),
        SocketAddrV4::new(PEER_IP, PEER.port()),
    );
    for (kind, code) in [
        (4, 0),
        (3, 0),
        (3, 1),
        (3, 5),
        (11, 0),
        (11, 1),
        (12, 0),
        (3, 3),
    ] {
        ip.iface.receive(ip.now, &icmp_error(kind, code));
        ip.iface
            .receive(ip.now, &icmp_about(kind, code, [0; 4], conn, data.seq));
    }
    assert!(ip.sent().is_empty());
    assert_eq!(
        ip.iface.tcp_info(id).map(|i| i.state),
        Some(State::Established)
    );
    assert!(std::iter::from_fn(|| ip.iface.pop_event()).next().is_none());
}
