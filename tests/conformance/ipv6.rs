//! TCP and UDP over IPv6 through the whole sans-IO core ([`Interface`]),
//! with real IPv6 packets: the MSS rules of RFC 8200 §5 and RFC 9293
//! §3.7.1 (MUST-15), RSTs for closed ports, ICMPv6 errors passed to the
//! transport (RFC 4443 §2.4 (a), §3.1; MUST-54), Packet Too Big (RFC 8201
//! §4), and the UDP checksum that IPv6 makes mandatory (RFC 8200 §8.1).

use std::net::{Ipv6Addr, SocketAddr};

use tunstack::iface::{Event, Interface};
use tunstack::stats::DropReason;
use tunstack::tcp::{ConnId, ListenerId, State, TcpError, TcpEvent};
use tunstack::time::Instant;
use tunstack::wire::icmpv6;
use tunstack::wire::ipv6::{self, Ipv6Header, HEADER_LEN};
use tunstack::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpOptionsRepr, TcpSegment};
use tunstack::wire::udp;
use tunstack::Config;

const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const PORT: u16 = 80;
const PEER_PORT: u16 = 40000;
const PEER_ISS: u32 = 1_000_000;

/// A segment the core sent, with its IPv6 addresses.
#[derive(Debug)]
struct Sent6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    header: TcpHeaderRepr,
    data: Vec<u8>,
}

/// The core at fd00::2 (and 10.0.0.2), listening on `[::]:80`.
struct Ip6 {
    iface: Interface,
    listener: ListenerId,
    now: Instant,
}

impl Ip6 {
    fn new() -> Ip6 {
        let config = Config {
            addr6: Some((US6, 64)),
            ..Config::default()
        };
        let mut iface = Interface::new(&config, 1500, 7);
        let listener = iface
            .tcp_listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT)), 8)
            .expect("listen");
        Ip6 {
            iface,
            listener,
            now: Instant::ZERO,
        }
    }

    fn packet(&mut self, next: u8, body: &[u8]) {
        let mut p = Vec::new();
        ipv6::write(&mut p, PEER6, US6, next, 64, body);
        self.iface.receive(self.now, &p);
    }

    /// Sends a segment from the peer (port 40000) to `dst_port`.
    fn tcp(&mut self, dst_port: u16, flags: TcpFlags, seq: u32, ack: u32, opts: TcpOptionsRepr) {
        let h = TcpHeaderRepr {
            src_port: PEER_PORT,
            dst_port,
            seq,
            ack,
            flags,
            window: 65535,
            urgent: 0,
            options: opts,
        };
        let mut t = Vec::new();
        h.emit(PEER6, US6, [&[], &[]], &mut t);
        self.packet(6, &t);
    }

    /// What the core sent: IPv6 only, TCP checksums verified over the
    /// IPv6 pseudo-header.
    fn sent(&mut self) -> (Vec<Sent6>, Vec<Vec<u8>>) {
        let (mut tcp, mut other) = (Vec::new(), Vec::new());
        while let Some(p) = self.iface.pop_transmit() {
            let (h, whole) = Ipv6Header::parse(&p).expect("IPv6 out");
            let body = &whole[HEADER_LEN..];
            if h.next_header == 6 {
                let seg =
                    TcpSegment::parse(h.src, h.dst, body).expect("a TCP checksum that verifies");
                tcp.push(Sent6 {
                    src: h.src,
                    dst: h.dst,
                    header: seg.header,
                    data: seg.payload.to_vec(),
                });
            } else {
                other.push(whole.to_vec());
            }
            self.iface.recycle(p);
        }
        (tcp, other)
    }

    /// A passive open from the peer with `mss` (none: no option).
    fn establish(&mut self, mss: Option<u16>) -> (ConnId, Sent6) {
        let syn = TcpFlags {
            syn: true,
            ..TcpFlags::default()
        };
        let opts = TcpOptionsRepr {
            mss,
            ..TcpOptionsRepr::default()
        };
        self.tcp(PORT, syn, PEER_ISS, 0, opts);
        let synack = self.sent().0.pop().expect("a SYN-ACK");
        let ack = TcpFlags {
            ack: true,
            ..TcpFlags::default()
        };
        self.tcp(
            PORT,
            ack,
            PEER_ISS + 1,
            synack.header.seq.wrapping_add(1),
            TcpOptionsRepr::default(),
        );
        let conns = self.iface.tcp_connections();
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].state, State::Established);
        let id = conns[0].id;
        while self.iface.pop_event().is_some() {}
        assert_eq!(self.iface.tcp_accept(self.listener), Ok(id));
        (id, synack)
    }
}

/// MUST-15 over IPv6 (RFC 9293 §3.7.1, RFC 8200 §5): our SYN-ACK announces
/// the MTU less 60 bytes of headers (1440), and a peer that sends no MSS
/// option is assumed to take 1220 (IPv6's 1280-byte minimum less 60), not
/// IPv4's 536.
#[test]
fn must_15_over_ipv6_announces_1440_and_assumes_1220_without_an_option() {
    let mut ip = Ip6::new();
    let (id, synack) = ip.establish(None);
    assert_eq!((synack.src, synack.dst), (US6, PEER6));
    assert!(synack.header.flags.syn && synack.header.flags.ack);
    assert_eq!(synack.header.options.mss, Some(1440));
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.mss), Some(1220));
    // With an option, the smaller of the two.
    let mut ip = Ip6::new();
    let (id, _) = ip.establish(Some(9000));
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.mss), Some(1440));
}

/// RFC 9293 §3.10.7.1 over IPv6: a SYN to a closed port gets
/// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`, from the address it was
/// sent to, with a checksum over the IPv6 pseudo-header.
#[test]
fn a_syn_to_a_closed_ipv6_port_is_reset() {
    let mut ip = Ip6::new();
    let syn = TcpFlags {
        syn: true,
        ..TcpFlags::default()
    };
    ip.tcp(81, syn, PEER_ISS, 0, TcpOptionsRepr::default());
    let (tcp, _) = ip.sent();
    assert_eq!(tcp.len(), 1, "{tcp:?}");
    let rst = &tcp[0];
    assert_eq!((rst.src, rst.dst), (US6, PEER6));
    assert!(rst.header.flags.rst && rst.header.flags.ack);
    assert_eq!((rst.header.seq, rst.header.ack), (0, PEER_ISS + 1));
}

/// RFC 8201 §4 (with RFC 1191's resend, as IPv4's Fragmentation Needed):
/// Packet Too Big about data in flight lowers the MSS to the MTU it names
/// less 60 and resends smaller; an MTU below 1280 is taken as 1280 (RFC
/// 8201 §4: "MUST NOT reduce ... below the IPv6 minimum link MTU").
#[test]
fn rfc_8201_packet_too_big_lowers_the_mss_and_never_below_1280() {
    let mut ip = Ip6::new();
    let (id, _) = ip.establish(Some(1440));
    ip.iface.tcp_set_nodelay(ip.now, id, true).unwrap();
    ip.iface.tcp_send(ip.now, id, &[7u8; 4000]).unwrap();
    let first = ip.sent().0;
    assert_eq!(first[0].data.len(), 1440);
    let quote = |seq: u32| {
        let h = TcpHeaderRepr {
            src_port: PORT,
            dst_port: PEER_PORT,
            seq,
            flags: TcpFlags {
                ack: true,
                ..TcpFlags::default()
            },
            ..TcpHeaderRepr::default()
        };
        let mut t = Vec::new();
        h.emit(US6, PEER6, [&[0u8; 1000], &[]], &mut t);
        let mut q = Vec::new();
        ipv6::write(&mut q, US6, PEER6, 6, 64, &t);
        q
    };
    let too_big = |ip: &mut Ip6, mtu: u32, seq: u32| {
        let q = quote(seq);
        let mut m = Vec::new();
        icmpv6::write(
            &mut m,
            PEER6,
            US6,
            icmpv6::PACKET_TOO_BIG,
            0,
            mtu.to_be_bytes(),
            &q,
        );
        ip.packet(58, &m);
    };
    too_big(&mut ip, 1400, first[0].header.seq);
    let again = ip.sent().0;
    assert!(!again.is_empty(), "the data in flight is sent again");
    assert_eq!(again[0].header.seq, first[0].header.seq);
    assert!(again.iter().all(|s| s.data.len() <= 1340), "{again:?}");
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.mss), Some(1340));
    too_big(&mut ip, 600, first[0].header.seq);
    assert_eq!(
        ip.iface.tcp_info(id).map(|i| i.mss),
        Some(1220),
        "the 1280-byte floor"
    );
    assert_eq!(ip.iface.stats().tcp.pmtu_reductions, 2);
}

/// MUST-54 over IPv6 (RFC 4443 §2.4 (a), §3.1): Destination Unreachable
/// code 4 (port unreachable) about our SYN ends the attempt with
/// ConnectionRefused; code 3 (address unreachable) is a soft error that
/// leaves it running.
#[test]
fn must_54_over_ipv6_port_unreachable_refuses_a_connection_attempt() {
    let mut ip = Ip6::new();
    let (id, local) = ip
        .iface
        .tcp_connect(ip.now, SocketAddr::from((PEER6, 8080)))
        .expect("connect over IPv6");
    assert_eq!(local.ip(), std::net::IpAddr::V6(US6));
    let syn = ip.sent().0.pop().expect("a SYN over IPv6");
    assert!(syn.header.flags.syn);
    assert_eq!(syn.header.options.mss, Some(1440));
    let unreachable = |ip: &mut Ip6, code: u8| {
        let h = TcpHeaderRepr {
            src_port: local.port(),
            dst_port: 8080,
            seq: syn.header.seq,
            flags: TcpFlags {
                syn: true,
                ..TcpFlags::default()
            },
            ..TcpHeaderRepr::default()
        };
        let mut t = Vec::new();
        h.emit(US6, PEER6, [&[], &[]], &mut t);
        let mut q = Vec::new();
        ipv6::write(&mut q, US6, PEER6, 6, 64, &t);
        let mut m = Vec::new();
        icmpv6::write(
            &mut m,
            PEER6,
            US6,
            icmpv6::DEST_UNREACHABLE,
            code,
            [0; 4],
            &q,
        );
        ip.packet(58, &m);
    };
    unreachable(&mut ip, 3);
    assert_eq!(ip.iface.tcp_info(id).map(|i| i.state), Some(State::SynSent));
    unreachable(&mut ip, 4);
    let events: Vec<_> = std::iter::from_fn(|| ip.iface.pop_event()).collect();
    assert!(
        events.contains(&Event::Tcp(TcpEvent::Closed(
            id,
            Some(TcpError::ConnectionRefused)
        ))),
        "{events:?}"
    );
    assert_eq!(ip.iface.stats().tcp.icmp_errors, 2);
}

/// RFC 8200 §8.1: over IPv6 the UDP checksum is mandatory: a datagram with
/// a zero checksum is dropped; the same datagram with its checksum reaches
/// the socket. A datagram for a port with no socket gets Port Unreachable
/// (RFC 4443 §3.1, code 4).
#[test]
fn rfc_8200_8_1_a_zero_udp_checksum_is_dropped_over_ipv6() {
    let mut ip = Ip6::new();
    let (socket, _) = ip
        .iface
        .udp_bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 7)))
        .expect("bind");
    let mut d = Vec::new();
    udp::write(&mut d, (PEER6, 5000), (US6, 7), b"hello");
    let mut zero = d.clone();
    zero[6..8].copy_from_slice(&[0, 0]);
    ip.packet(17, &zero);
    assert_eq!(ip.iface.stats().dropped(DropReason::UdpBadChecksum), 1);
    assert!(ip.iface.pop_event().is_none());
    ip.packet(17, &d);
    match ip.iface.pop_event() {
        Some(Event::UdpDatagram {
            socket: s,
            from,
            payload,
        }) => {
            assert_eq!(
                (s, from, payload),
                (socket, SocketAddr::from((PEER6, 5000)), b"hello".to_vec())
            );
        }
        other => panic!("no datagram: {other:?}"),
    }
    let mut closed = Vec::new();
    udp::write(&mut closed, (PEER6, 5000), (US6, 9), b"anyone?");
    ip.packet(17, &closed);
    let (_, other) = ip.sent();
    assert_eq!(other.len(), 1);
    let (h, whole) = Ipv6Header::parse(&other[0]).expect("IPv6");
    let m = icmpv6::Icmpv6Message::parse(h.src, h.dst, &whole[HEADER_LEN..]).expect("ICMPv6");
    assert_eq!((m.kind(), m.code()), (icmpv6::DEST_UNREACHABLE, 4));
}

/// MUST-49's IPv6 side: a socket's `IP_TTL` and `IP_TOS` choices become the
/// hop limit and the Traffic Class of what it sends over IPv6, in one
/// packet and in fragments (RFC 8200 §3, §4.5).
#[test]
fn a_sockets_ttl_and_tos_are_the_hop_limit_and_traffic_class() {
    let mut ip = Ip6::new();
    let (socket, _) = ip
        .iface
        .udp_bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 5000)))
        .expect("bind");
    let opts = tunstack::ip::IpOptions {
        ttl: Some(7),
        tos: 0xb8,
        dont_fragment: false,
    };
    for size in [100, 3000] {
        ip.iface
            .udp_send(socket, SocketAddr::from((PEER6, 9)), &vec![1; size], opts)
            .expect("send");
        let (_, out) = ip.sent();
        assert!(!out.is_empty());
        for p in out {
            let (h, _) = Ipv6Header::parse(&p).expect("IPv6");
            assert_eq!((h.hop_limit, h.traffic_class), (7, 0xb8), "{size} bytes");
        }
    }
}
