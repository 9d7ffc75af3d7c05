//! TAP mode on an in-memory Ethernet link: a whole stack (runtime thread,
//! sockets, services) speaks Ethernet II and ARP; the test holds the
//! link's other end and plays the kernel, frame by frame.

mod common;

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use tunstack::device::memory::{self, MemoryDevice};
use tunstack::link::arp::{ArpPacket, Operation};
use tunstack::link::ethernet::{
    EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN,
};
use tunstack::stats::DropReason;
use tunstack::wire::icmp::IcmpMessage;
use tunstack::{Config, Medium, Stack, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);
const STACK_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
const HOST_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
const PHANTOM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

fn stack() -> (Stack, MemoryDevice) {
    let (ours, theirs) = memory::ethernet_link(1500);
    let config = Config {
        seed: Some(7),
        medium: Medium::Ethernet,
        mac: Some(STACK_MAC),
        ..Config::default()
    };
    let stack = Stack::with_device(config, ours).expect("stack starts");
    assert_eq!(stack.mac(), Some(STACK_MAC));
    (stack, theirs)
}

fn frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = EthernetHeader {
        dst,
        src,
        ethertype,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(payload);
    f
}

fn arp(op: Operation, target_mac: MacAddr, target_ip: Ipv4Addr) -> Vec<u8> {
    ArpPacket {
        op,
        sender_mac: HOST_MAC,
        sender_ip: HOST,
        target_mac,
        target_ip,
    }
    .to_bytes()
    .to_vec()
}

/// The next frame from the stack that `keep` accepts (others are skipped),
/// parsed.
fn next_frame(
    link: &MemoryDevice,
    keep: impl Fn(&EthernetHeader, &[u8]) -> bool,
) -> (EthernetHeader, Vec<u8>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = link
            .recv_packet_timeout(left)
            .expect("the stack sends the frame in time");
        let h = EthernetHeader::parse(&f).expect("a whole Ethernet header");
        assert_eq!(h.src, STACK_MAC, "every frame comes from the stack's MAC");
        if keep(&h, &f[HEADER_LEN..]) {
            return (h, f[HEADER_LEN..].to_vec());
        }
    }
}

fn is_arp(h: &EthernetHeader, _: &[u8]) -> bool {
    h.ethertype == ETHERTYPE_ARP
}

#[test]
fn the_stack_announces_itself_answers_arp_and_ping_over_ethernet() {
    let (_stack, link) = stack();
    // RFC 5227 §2.3: sender and target are both our address.
    let (h, body) = next_frame(&link, is_arp);
    assert_eq!(h.dst, MacAddr::BROADCAST);
    let a = ArpPacket::parse(&body).expect("valid ARP");
    assert_eq!(
        (a.op, a.sender_ip, a.target_ip),
        (Operation::Request, STACK, STACK)
    );
    assert_eq!(a.sender_mac, STACK_MAC);

    link.send_packet(frame(
        MacAddr::BROADCAST,
        HOST_MAC,
        ETHERTYPE_ARP,
        &arp(Operation::Request, MacAddr::ZERO, STACK),
    ));
    let (h, body) = next_frame(&link, |h, b| {
        h.ethertype == ETHERTYPE_ARP && ArpPacket::parse(b).is_ok_and(|p| p.op == Operation::Reply)
    });
    assert_eq!(h.dst, HOST_MAC);
    let reply = ArpPacket::parse(&body).expect("valid ARP");
    assert_eq!(
        (
            reply.sender_mac,
            reply.sender_ip,
            reply.target_mac,
            reply.target_ip
        ),
        (STACK_MAC, STACK, HOST_MAC, HOST)
    );

    link.send_packet(frame(
        STACK_MAC,
        HOST_MAC,
        ETHERTYPE_IPV4,
        &echo_request(0x77, 1, b"over ethernet"),
    ));
    // The stack learned our MAC from the request: no ARP of its own.
    let (h, ip) = next_frame(&link, |h, _| h.ethertype == ETHERTYPE_IPV4);
    assert_eq!(h.dst, HOST_MAC);
    let (ip_header, payload) = etherparse::Ipv4Header::from_slice(&ip).expect("IPv4");
    assert_eq!(ip_header.destination, HOST.octets());
    let m = IcmpMessage::parse(payload).expect("valid ICMP");
    assert_eq!((m.kind(), m.body()), (0, &b"over ethernet"[..]));
}

#[test]
fn the_stack_resolves_the_peer_with_arp_before_its_syn_goes_out() {
    let (stack, link) = stack();
    let connecting = std::thread::spawn(move || {
        let r = TcpStream::connect(&stack, "10.0.0.1:80");
        (stack, r.map(|_| ()))
    });
    let (h, body) = next_frame(&link, |_, b| {
        ArpPacket::parse(b).is_ok_and(|p| p.target_ip == HOST)
    });
    assert_eq!((h.dst, h.ethertype), (MacAddr::BROADCAST, ETHERTYPE_ARP));
    let req = ArpPacket::parse(&body).expect("ARP");
    assert_eq!((req.op, req.sender_ip), (Operation::Request, STACK));
    link.send_packet(frame(
        STACK_MAC,
        HOST_MAC,
        ETHERTYPE_ARP,
        &arp(Operation::Reply, STACK_MAC, STACK),
    ));
    let (h, ip) = next_frame(&link, |h, _| h.ethertype == ETHERTYPE_IPV4);
    assert_eq!(h.dst, HOST_MAC, "the SYN goes to the MAC the reply gave");
    let (_, tcp) = etherparse::Ipv4Header::from_slice(&ip).expect("IPv4");
    let tcp = etherparse::TcpHeader::from_slice(tcp).expect("TCP").0;
    assert!(tcp.syn && !tcp.ack && tcp.destination_port == 80);
    // Refuse it, so the connect returns.
    let mut rst = Vec::new();
    etherparse::PacketBuilder::ipv4(HOST.octets(), STACK.octets(), 64)
        .tcp(80, tcp.source_port, 0, 0)
        .rst()
        .ack(tcp.sequence_number.wrapping_add(1))
        .write(&mut rst, &[])
        .expect("RST");
    link.send_packet(frame(STACK_MAC, HOST_MAC, ETHERTYPE_IPV4, &rst));
    let (_stack, r) = connecting.join().expect("connect thread");
    assert_eq!(
        r.expect_err("refused").kind(),
        io::ErrorKind::ConnectionRefused
    );
}

#[test]
fn connecting_to_a_silent_neighbour_fails_with_host_unreachable() {
    let (stack, link) = stack();
    let started = Instant::now();
    let err = TcpStream::connect(&stack, (PHANTOM, 80)).expect_err("nobody answers");
    let took = started.elapsed();
    assert_eq!(err.kind(), io::ErrorKind::HostUnreachable, "{err}");
    // Three requests a second apart, then the failure (not the ~2 minutes
    // of SYN retries).
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let requests = std::iter::from_fn(|| link.try_recv_packet())
        .filter_map(|f| ArpPacket::parse(f.get(HEADER_LEN..)?).ok())
        .filter(|p| p.target_ip == PHANTOM)
        .count();
    assert_eq!(requests, 3);
    let stats = stack.stats().expect("stats");
    assert!(
        stats.dropped(DropReason::NeighbourUnreachable) >= 1,
        "{stats}"
    );
    let link_stats = stats.device.link.expect("TAP mode reports link counters");
    assert_eq!(link_stats.resolutions_failed, 1);
}

#[test]
fn a_connected_udp_socket_hears_host_unreachable_when_arp_gets_no_answer() {
    let (stack, _link) = stack();
    let socket = UdpSocket::bind(&stack, "0.0.0.0:0").expect("bind");
    socket.connect((PHANTOM, 53)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    socket.send(b"anyone?").expect("send");
    let mut buf = [0u8; 64];
    let err = socket.recv(&mut buf).expect_err("no answer");
    assert_eq!(err.kind(), io::ErrorKind::HostUnreachable, "{err}");
}

#[test]
fn frames_not_for_us_runts_and_other_ethertypes_are_dropped_and_counted() {
    let (stack, link) = stack();
    let ping = echo_request(1, 1, b"x");
    let other = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
    link.send_packet(frame(other, HOST_MAC, ETHERTYPE_IPV4, &ping));
    link.send_packet(vec![0xff; 13]);
    link.send_packet(frame(STACK_MAC, HOST_MAC, ETHERTYPE_IPV6, &ping));
    link.send_packet(frame(STACK_MAC, HOST_MAC, 0x8100, &ping));
    link.send_packet(frame(
        MacAddr::BROADCAST,
        HOST_MAC,
        ETHERTYPE_ARP,
        &arp(Operation::Request, MacAddr::ZERO, PHANTOM),
    ));
    link.send_packet(frame(STACK_MAC, HOST_MAC, ETHERTYPE_ARP, &[0, 1, 8, 0]));
    // A ping after them all: its reply means every frame before it was seen.
    link.send_packet(frame(
        MacAddr::BROADCAST,
        HOST_MAC,
        ETHERTYPE_ARP,
        &arp(Operation::Request, MacAddr::ZERO, STACK),
    ));
    link.send_packet(frame(STACK_MAC, HOST_MAC, ETHERTYPE_IPV4, &ping));
    next_frame(&link, |h, _| h.ethertype == ETHERTYPE_IPV4);
    let stats = stack.stats().expect("stats");
    for (reason, n) in [
        (DropReason::EthernetNotForUs, 1),
        (DropReason::EthernetRunt, 1),
        (DropReason::EthernetUnknownType, 2),
        (DropReason::ArpNotForUs, 1),
        (DropReason::ArpMalformed, 1),
    ] {
        assert_eq!(stats.dropped(reason), n, "{reason}\n{stats}");
    }
    assert!(stats.to_string().contains("eth-unknown-type"), "{stats}");
    assert!(stats.to_string().contains("link: "), "{stats}");
    assert_eq!(stats.icmp_echo_replies, 1);
}

#[test]
fn a_frame_padded_to_the_ethernet_minimum_is_taken() {
    let (stack, link) = stack();
    link.send_packet(frame(
        STACK_MAC,
        HOST_MAC,
        ETHERTYPE_ARP,
        &arp(Operation::Reply, STACK_MAC, STACK),
    ));
    // 14 + 20 + 8 + 2 = 44 bytes, padded with zeros to 60 as a NIC does.
    let mut padded = frame(
        STACK_MAC,
        HOST_MAC,
        ETHERTYPE_IPV4,
        &echo_request(5, 6, b"hi"),
    );
    padded.resize(60, 0);
    link.send_packet(padded);
    let (h, ip) = next_frame(&link, |h, _| h.ethertype == ETHERTYPE_IPV4);
    assert_eq!(h.dst, HOST_MAC);
    let (_, payload) = etherparse::Ipv4Header::from_slice(&ip).expect("IPv4");
    assert_eq!(IcmpMessage::parse(payload).expect("ICMP").body(), b"hi");
    assert_eq!(stack.stats().expect("stats").dropped_total(), 0);
}

#[test]
fn capture_and_fault_injection_work_on_frames() {
    let (ours, link) = memory::ethernet_link(1500);
    let pcap = std::env::temp_dir().join(format!("tunstack-tap-{}.pcap", std::process::id()));
    let mut config = Config {
        seed: Some(7),
        medium: Medium::Ethernet,
        mac: Some(STACK_MAC),
        pcap: Some(pcap.clone()),
        ..Config::default()
    };
    // The first frame out (the first announcement) is lost on the way.
    config.faults.drop_tx.insert(1);
    let stack = Stack::with_device(config, ours).expect("stack starts");
    link.send_packet(frame(
        MacAddr::BROADCAST,
        HOST_MAC,
        ETHERTYPE_ARP,
        &arp(Operation::Request, MacAddr::ZERO, STACK),
    ));
    let (_, body) = next_frame(&link, is_arp);
    let first = ArpPacket::parse(&body).expect("ARP");
    assert_eq!(first.op, Operation::Reply, "the announcement was dropped");
    let faults = stack
        .stats()
        .expect("stats")
        .device
        .faults
        .expect("faults on");
    drop(stack);
    let bytes = std::fs::read(&pcap).expect("the capture");
    let _ = std::fs::remove_file(&pcap);
    // LINKTYPE_ETHERNET, and the records are whole frames: the dropped
    // announcement first (the capture sits above the fault injector), then
    // the request and the reply.
    assert_eq!(
        u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
        1
    );
    let mut records = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        let start = at + 16;
        let end = start + len as usize;
        records.push(bytes[start..end].to_vec());
        at = end;
    }
    let arp_ops: Vec<_> = records
        .iter()
        .filter_map(|r| ArpPacket::parse(r.get(HEADER_LEN..)?).ok())
        .map(|p| (p.op, p.sender_ip, p.target_ip))
        .take(3)
        .collect();
    assert_eq!(
        arp_ops,
        vec![
            (Operation::Request, STACK, STACK),
            (Operation::Request, HOST, STACK),
            (Operation::Reply, STACK, HOST),
        ]
    );
    assert_eq!((faults.tx_dropped, faults.rx_dropped), (1, 0), "{faults:?}");
}

#[test]
fn tap_mode_refuses_more_than_one_queue() {
    let (a, _x) = memory::ethernet_link(1500);
    let (b, _y) = memory::ethernet_link(1500);
    let config = Config {
        medium: Medium::Ethernet,
        ..Config::default()
    };
    let err = Stack::with_devices(config, vec![Box::new(a), Box::new(b)])
        .err()
        .expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("one queue"), "{err}");
}

/// IPv6 on the whole stack: duplicate address detection, then a
/// neighbour solicitation answered and a ping -6 echoed, in frames.
#[test]
fn with_ipv6_the_stack_probes_its_addresses_then_answers_nd_and_ping6() {
    use std::net::Ipv6Addr;
    use tunstack::wire::icmpv6::{self, Icmpv6Message, NeighborMessage};
    use tunstack::wire::ipv6::{self, Ipv6Header};

    let us: Ipv6Addr = "fd00::2".parse().expect("address");
    let host: Ipv6Addr = "fd00::1".parse().expect("address");
    let (ours, link) = memory::ethernet_link(1500);
    let config = Config {
        seed: Some(7),
        medium: Medium::Ethernet,
        mac: Some(STACK_MAC),
        addr6: Some((us, 64)),
        ..Config::default()
    };
    let _stack = Stack::with_device(config, ours).expect("stack starts");
    let ipv6_of = |b: &[u8]| -> (Ipv6Header, Vec<u8>) {
        let (h, p) = Ipv6Header::parse(b).expect("valid IPv6");
        (h, p[40..].to_vec())
    };
    // RFC 4862 §5.4.2: both addresses probed from :: first.
    let mut probed = Vec::new();
    while probed.len() < 2 {
        let (_, body) = next_frame(&link, |h, _| h.ethertype == ETHERTYPE_IPV6);
        let (h, msg) = ipv6_of(&body);
        assert!(h.src.is_unspecified());
        let m = Icmpv6Message::parse(h.src, h.dst, &msg).expect("checksum");
        probed.push(NeighborMessage::parse(&m).expect("a probe").target);
    }
    assert!(probed.contains(&us) && probed.contains(&STACK_MAC.link_local6()));
    // Ask for fd00::2 until DAD is done (about a second) and it answers.
    let group = ipv6::solicited_node(us);
    let mut ns = Vec::new();
    icmpv6::write_neighbor_solicitation(&mut ns, host, group, us, HOST_MAC.0);
    let mut solicit = Vec::new();
    ipv6::write(&mut solicit, host, group, 58, 255, &ns);
    let deadline = Instant::now() + WAIT;
    let advert = loop {
        assert!(Instant::now() < deadline, "no advertisement");
        link.send_packet(frame(
            MacAddr::ipv6_multicast(group),
            HOST_MAC,
            ETHERTYPE_IPV6,
            &solicit,
        ));
        std::thread::sleep(Duration::from_millis(200));
        let found = std::iter::from_fn(|| link.try_recv_packet()).find_map(|f| {
            let h = EthernetHeader::parse(&f)?;
            (h.ethertype == ETHERTYPE_IPV6).then(|| (h, f[HEADER_LEN..].to_vec()))
        });
        if let Some(found) = found {
            break found;
        }
    };
    assert_eq!(advert.0.dst, HOST_MAC);
    let (h, msg) = ipv6_of(&advert.1);
    assert_eq!((h.src, h.dst, h.hop_limit), (us, host, 255));
    let m = Icmpv6Message::parse(h.src, h.dst, &msg).expect("checksum");
    let na = NeighborMessage::parse(&m).expect("an advertisement");
    assert_eq!((na.target, na.link_addr), (us, Some(STACK_MAC.0)));
    // ping -6: the reply goes straight to the MAC it learned.
    let mut echo = Vec::new();
    icmpv6::write(
        &mut echo,
        host,
        us,
        icmpv6::ECHO_REQUEST,
        0,
        [0, 9, 0, 1],
        b"six",
    );
    let mut ping = Vec::new();
    ipv6::write(&mut ping, host, us, 58, 64, &echo);
    link.send_packet(frame(STACK_MAC, HOST_MAC, ETHERTYPE_IPV6, &ping));
    let (eth, body) = next_frame(&link, |h, _| h.ethertype == ETHERTYPE_IPV6);
    assert_eq!(eth.dst, HOST_MAC);
    let (h, msg) = ipv6_of(&body);
    assert_eq!((h.src, h.dst), (us, host));
    let m = Icmpv6Message::parse(h.src, h.dst, &msg).expect("checksum");
    assert_eq!(
        (m.kind(), m.field(), m.body()),
        (icmpv6::ECHO_REPLY, [0, 9, 0, 1], &b"six"[..])
    );
}
