//! A whole stack (runtime thread, sockets, services) on an in-memory link;
//! the test holds the link's other end and plays the kernel.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tunstack::device::memory;
use tunstack::stats::DropReason;
use tunstack::wire::{icmp::IcmpMessage, udp::UdpDatagram};
use tunstack::{services, Config, Stack, UdpSocket};

const WAIT: Duration = Duration::from_secs(5);

fn stack() -> (Stack, memory::MemoryDevice) {
    let (ours, theirs) = memory::link(1500);
    let config = Config {
        seed: Some(7),
        ..Config::default()
    };
    (
        Stack::with_device(config, ours).expect("stack starts"),
        theirs,
    )
}

/// Collects the stack's packets until `n` whole datagrams are reassembled.
fn replies(link: &memory::MemoryDevice, n: usize) -> Vec<(u8, Vec<u8>)> {
    let mut packets = Vec::new();
    loop {
        let whole = reassemble(&packets);
        if whole.len() >= n {
            return whole;
        }
        let p = link
            .recv_packet_timeout(WAIT)
            .expect("the stack answers in time");
        packets.push(p);
    }
}

#[test]
fn ping_is_answered_with_the_same_id_sequence_and_data() {
    let (_stack, link) = stack();
    link.send_packet(echo_request(0x1234, 1, b"abcdefgh"));
    let (proto, icmp) = replies(&link, 1).remove(0);
    assert_eq!(proto, 1);
    let m = IcmpMessage::parse(&icmp).expect("valid ICMP");
    assert_eq!((m.kind(), m.code()), (0, 0));
    assert_eq!(m.rest_of_header(), [0x12, 0x34, 0, 1]);
    assert_eq!(m.body(), b"abcdefgh");
}

#[test]
fn an_8000_byte_ping_in_fragments_is_answered_in_fragments() {
    let (stack, link) = stack();
    let data: Vec<u8> = (0..8000u32).map(|i| (i * 7) as u8).collect();
    let frags = fragments(&echo_request(9, 3, &data), 1500);
    assert_eq!(frags.len(), 6);
    // Out of order, as a network may deliver them.
    for f in frags.iter().rev() {
        link.send_packet(f.clone());
    }
    let mut packets = Vec::new();
    while reassemble(&packets).is_empty() {
        packets.push(link.recv_packet_timeout(WAIT).expect("reply fragments"));
    }
    assert!(packets.len() > 1, "the reply is fragmented");
    assert!(packets.iter().all(|p| p.len() <= 1500));
    let (_, icmp) = reassemble(&packets).remove(0);
    let m = IcmpMessage::parse(&icmp).expect("valid ICMP");
    assert_eq!(m.body(), &data[..]);
    let s = stack.stats().unwrap();
    assert_eq!(s.ip_reassembled, 1);
    assert_eq!(s.ip_fragmented, 1);
}

#[test]
fn udp_echo_service_echoes_small_and_fragmented_datagrams() {
    let (stack, link) = stack();
    let _echo = services::udp_echo(&stack, 7).unwrap();
    link.send_packet(udp(40000, 7, b"hello"));
    let big = vec![0x5a; 3000];
    for f in fragments(&udp(40001, 7, &big), 1500) {
        link.send_packet(f);
    }
    let got = replies(&link, 2);
    let mut payloads = Vec::new();
    for (proto, bytes) in got {
        assert_eq!(proto, 17);
        let d = UdpDatagram::parse(STACK, HOST, &bytes).expect("valid UDP with a good checksum");
        assert_eq!(d.src_port, 7);
        payloads.push((d.dst_port, d.payload.to_vec()));
    }
    payloads.sort();
    assert_eq!(payloads, vec![(40000, b"hello".to_vec()), (40001, big)]);
}

#[test]
fn time_service_answers_in_the_requested_format() {
    let (stack, link) = stack();
    let _time = services::udp_time(&stack, 9000).unwrap();
    link.send_packet(udp(40000, 9000, b"%Y"));
    let (_, bytes) = replies(&link, 1).remove(0);
    let d = UdpDatagram::parse(STACK, HOST, &bytes).unwrap();
    let year: i32 = std::str::from_utf8(d.payload)
        .unwrap()
        .parse()
        .expect("a year");
    assert!((2024..2200).contains(&year));
}

#[test]
fn udp_to_a_closed_port_gets_port_unreachable_quoting_the_datagram() {
    let (stack, link) = stack();
    let sent = udp(40000, 5555, b"anyone?");
    link.send_packet(sent.clone());
    let (proto, icmp) = replies(&link, 1).remove(0);
    assert_eq!(proto, 1);
    let m = IcmpMessage::parse(&icmp).unwrap();
    assert_eq!((m.kind(), m.code()), (3, 3));
    assert_eq!(m.body(), &sent[..], "the whole small datagram is quoted");
    assert_eq!(stack.stats().unwrap().dropped(DropReason::UdpNoSocket), 1);
}

#[test]
fn port_unreachable_is_rate_limited() {
    let (ours, link) = memory::link(1500);
    let config = Config {
        icmp_errors_per_sec: 1,
        icmp_error_burst: 3,
        ..Config::default()
    };
    let stack = Stack::with_device(config, ours).unwrap();
    for i in 0..20 {
        link.send_packet(udp(40000 + i, 5555, b"x"));
    }
    // Wait until the stack has seen all 20.
    let deadline = std::time::Instant::now() + WAIT;
    while stack.stats().unwrap().dropped(DropReason::UdpNoSocket) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "stack processed the datagrams"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = stack.stats().unwrap();
    assert!(
        s.icmp_unreachables_sent >= 3 && s.icmp_unreachables_sent <= 5,
        "{s}"
    );
    assert_eq!(s.icmp_unreachables_sent + s.icmp_rate_limited, 20);
}

#[test]
fn socket_api_sends_receives_connects_and_times_out() {
    let (stack, link) = stack();
    let sock = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    assert!((32768..=60999).contains(&port));
    sock.send_to(b"out", "10.0.0.1:9999").unwrap();
    let (_, bytes) = replies(&link, 1).remove(0);
    let d = UdpDatagram::parse(STACK, HOST, &bytes).unwrap();
    assert_eq!(
        (d.src_port, d.dst_port, d.payload),
        (port, 9999, &b"out"[..])
    );

    link.send_packet(udp(9999, port, b"back at you"));
    let mut buf = [0u8; 4];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(n, 4, "a datagram longer than the buffer is truncated");
    assert_eq!(&buf, b"back");
    assert_eq!(from, "10.0.0.1:9999".parse::<SocketAddr>().unwrap());

    sock.connect("10.0.0.1:9999").unwrap();
    assert_eq!(sock.peer_addr().unwrap(), from);
    link.send_packet(udp(1111, port, b"stranger"));
    link.send_packet(udp(9999, port, b"peer"));
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"peer",
        "a connected socket ignores other senders"
    );

    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let err = sock.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(sock.set_read_timeout(Some(Duration::ZERO)).is_err());
}

#[test]
fn socket_errors_are_the_ones_std_users_expect() {
    let (stack, _link) = stack();
    let a = UdpSocket::bind(&stack, "0.0.0.0:5000").unwrap();
    let err = UdpSocket::bind(&stack, "10.0.0.2:5000").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let err = UdpSocket::bind(&stack, "10.0.0.9:5001").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrNotAvailable);
    let err = a.send_to(&vec![0u8; 65_508], "10.0.0.1:1").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(a.send_to(&vec![0u8; 65_507], "10.0.0.1:1").is_ok());
    let err = a.send(b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    drop(a);
    // The port is free again once the socket is dropped.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match UdpSocket::bind(&stack, "0.0.0.0:5000") {
            Ok(_) => break,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("rebinding a closed port: {e}"),
        }
    }
}

#[test]
fn a_full_receive_buffer_drops_and_counts_instead_of_growing() {
    let (ours, link) = memory::link(1500);
    let config = Config {
        udp_recv_buffer: 4096,
        ..Config::default()
    };
    let stack = Stack::with_device(config, ours).unwrap();
    let sock = UdpSocket::bind(&stack, "0.0.0.0:6000").unwrap();
    for _ in 0..100 {
        link.send_packet(udp(1, 6000, &[0u8; 1000]));
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = stack.stats().unwrap();
        if s.udp_datagrams_in == 100 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let dropped = stack
        .stats()
        .unwrap()
        .dropped(DropReason::UdpReceiveBufferFull);
    assert!(
        dropped >= 96,
        "only ~3 datagrams of 1064 bytes fit in 4096: {dropped}"
    );
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = 0;
    while sock.recv_from(&mut [0u8; 2000]).is_ok() {
        got += 1;
    }
    assert_eq!(got + dropped, 100);
}

#[test]
fn dropping_the_stack_fails_open_sockets_cleanly() {
    let (stack, _link) = stack();
    let sock = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
    drop(stack);
    let err = sock.recv_from(&mut [0u8; 10]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert!(sock.send_to(b"x", "10.0.0.1:1").is_err());
}

#[test]
fn a_connected_socket_learns_of_port_unreachable_as_connection_refused() {
    let (stack, link) = stack();
    let sock = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let unconnected = UdpSocket::bind(&stack, "0.0.0.0:0").unwrap();
    unconnected
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    // An unconnected socket is not told (Linux without IP_RECVERR).
    unconnected.send_to(b"hello?", "10.0.0.1:4444").unwrap();
    let sent = link.recv_packet_timeout(WAIT).expect("datagram out");
    link.send_packet(port_unreachable_about(&sent));
    let err = unconnected.recv_from(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);

    sock.connect("10.0.0.1:4444").unwrap();
    sock.send(b"hello?").unwrap();
    let sent = link.recv_packet_timeout(WAIT).expect("datagram out");
    link.send_packet(port_unreachable_about(&sent));
    let err = sock.recv(&mut [0u8; 16]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // The error is reported once; the socket keeps working.
    link.send_packet(udp(4444, sock.local_addr().unwrap().port(), b"late reply"));
    let mut buf = [0u8; 16];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"late reply");
}

/// socket2's options on a UDP socket, seen on the wire: TTL and the
/// type-of-service byte (RFC 9293 MUST-48/49 for TCP; the IP header is the
/// same), broadcast only with SO_BROADCAST, and the receive buffer size.
#[test]
fn udp_socket_options_show_on_the_wire_and_in_the_api() {
    let (stack, link) = stack();
    let sock = UdpSocket::bind(&stack, "0.0.0.0:4000").unwrap();
    assert_eq!(sock.ttl().unwrap(), 64, "the stack's default");
    sock.set_ttl(7).unwrap();
    sock.set_tos(0xb8).unwrap(); // DSCP EF
    assert_eq!((sock.ttl().unwrap(), sock.tos().unwrap()), (7, 0xb8));
    assert!(
        sock.set_ttl(0).is_err(),
        "TTL 0 is never sent (RFC 1122 §3.2.1.7)"
    );
    sock.send_to(b"marked", "10.0.0.1:9999").unwrap();
    let p = link.recv_packet_timeout(WAIT).expect("the datagram");
    assert_eq!((p[8], p[1]), (7, 0xb8), "TTL and TOS in the IPv4 header");

    // Broadcast needs SO_BROADCAST, as on Linux (EACCES otherwise).
    let err = sock.send_to(b"all", "10.0.0.255:9999").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    let err = sock.send_to(b"all", "255.255.255.255:9999").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    sock.set_broadcast(true).unwrap();
    assert!(sock.broadcast().unwrap());
    sock.send_to(b"all", "10.0.0.255:9999").unwrap();
    let p = link.recv_packet_timeout(WAIT).expect("the broadcast");
    assert_eq!(&p[16..20], &[10, 0, 0, 255]);

    // A small receive buffer holds one datagram; the next is dropped and counted.
    sock.set_recv_buffer_size(200).unwrap();
    assert_eq!(sock.recv_buffer_size().unwrap(), 200);
    let before = stack
        .stats()
        .unwrap()
        .dropped(DropReason::UdpReceiveBufferFull);
    link.send_packet(udp(9999, 4000, &[1; 100]));
    link.send_packet(udp(9999, 4000, &[2; 100]));
    let deadline = std::time::Instant::now() + WAIT;
    while stack
        .stats()
        .unwrap()
        .dropped(DropReason::UdpReceiveBufferFull)
        == before
    {
        assert!(std::time::Instant::now() < deadline, "no drop counted");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut buf = [0u8; 200];
    assert_eq!(sock.recv(&mut buf).unwrap(), 100);
    assert_eq!(buf[0], 1);
}

#[test]
fn udp_peek_and_nonblocking_behave_as_in_std() {
    let (stack, link) = stack();
    let sock = UdpSocket::bind(&stack, "0.0.0.0:4001").unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        sock.recv_from(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing queued: WouldBlock at once"
    );
    link.send_packet(udp(9999, 4001, b"look"));
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let (n, from) = sock.peek_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.port()), (&b"look"[..], 9999));
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"look", "the peeked datagram is still there");
    sock.set_nonblocking(true).unwrap();
    assert_eq!(
        sock.peek_from(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}
