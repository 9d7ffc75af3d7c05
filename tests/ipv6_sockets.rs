//! TCP and UDP over IPv6, between two whole stacks (runtime threads,
//! sockets) on an in-memory link: one at 10.0.0.2 and fd00::2 (the
//! "server"), one at 10.0.0.1 and fd00::1 (the "client"), the socket API
//! on both sides.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tunstack::device::memory;
use tunstack::{Config, Stack, TcpListener, TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(10);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const SERVER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn config(addr: Ipv4Addr, addr6: Ipv6Addr, seed: u64) -> Config {
    Config {
        addr,
        addr6: Some((addr6, 64)),
        seed: Some(seed),
        ..Config::default()
    }
}

/// The two stacks: (server, client).
fn pair() -> (Stack, Stack) {
    let (a, b) = memory::link(1500);
    let server = Stack::with_device(config(SERVER4, SERVER6, 1), a).expect("server starts");
    let client = Stack::with_device(config(CLIENT4, CLIENT6, 2), b).expect("client starts");
    (server, client)
}

fn v6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(ip), port)
}

fn connect(client: &Stack, to: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(client, &to, WAIT)
}

#[test]
fn tcp_over_ipv6_moves_a_megabyte_each_way() {
    let (server, client) = pair();
    let listener = TcpListener::bind(&server, v6(SERVER6, 7000)).expect("bind [fd00::2]:7000");
    assert_eq!(listener.local_addr().unwrap(), v6(SERVER6, 7000));
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    let echo = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read to the FIN");
        s.write_all(&got).expect("echo");
        (peer, s.local_addr().unwrap(), got.len())
    });
    let mut s = connect(&client, v6(SERVER6, 7000)).expect("connect over IPv6");
    let local = s.local_addr().unwrap();
    assert_eq!(
        local.ip(),
        IpAddr::V6(CLIENT6),
        "the source is our IPv6 address"
    );
    assert_eq!(s.peer_addr().unwrap(), v6(SERVER6, 7000));
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&data).expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("FIN");
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("read the echo");
    assert!(back == data, "{} bytes came back, not the same", back.len());
    let (peer, server_local, n) = echo.join().expect("server thread");
    assert_eq!(
        (peer, server_local, n),
        (local, v6(SERVER6, 7000), data.len())
    );
    // The segments were IPv6 with an MSS to fit the link: 1500 - 60.
    let info = s.info().expect("info");
    assert_eq!(info.mss, 1440, "{info:?}");
}

#[test]
fn a_dual_stack_listener_takes_both_families_until_set_only_v6() {
    let (server, client) = pair();
    let listener = TcpListener::bind(&server, "[::]:8000").expect("bind [::]:8000");
    // The same port on 0.0.0.0 clashes with the dual-stack wildcard.
    let clash = TcpListener::bind(&server, "0.0.0.0:8000").map(|_| ());
    assert_eq!(clash.unwrap_err().kind(), ErrorKind::AddrInUse);
    let _c4 = connect(&client, SocketAddr::from((SERVER4, 8000))).expect("connect over IPv4");
    let (s4, peer4) = listener.accept().expect("accept the IPv4 one");
    // Shown IPv4-mapped, as Linux does on an AF_INET6 socket.
    assert_eq!(peer4.ip(), IpAddr::V6(CLIENT4.to_ipv6_mapped()));
    assert_eq!(
        s4.local_addr().unwrap(),
        SocketAddr::from((SERVER4.to_ipv6_mapped(), 8000))
    );
    let _c6 = connect(&client, v6(SERVER6, 8000)).expect("connect over IPv6");
    let (_s6, peer6) = listener.accept().expect("accept the IPv6 one");
    assert_eq!(peer6.ip(), IpAddr::V6(CLIENT6));
    // IPV6_V6ONLY: IPv4 is refused from now on; IPv6 still taken.
    listener.set_only_v6(true).expect("set_only_v6");
    assert!(listener.only_v6().unwrap());
    let refused = connect(&client, SocketAddr::from((SERVER4, 8000))).map(|_| ());
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    let _c6b = connect(&client, v6(SERVER6, 8000)).expect("IPv6 still connects");
    listener.accept().expect("accept after set_only_v6");
    // And an IPv4 listener may now share the port.
    TcpListener::bind(&server, "0.0.0.0:8000").expect("0.0.0.0 beside a v6-only [::]");
    // IPV6_V6ONLY is for IPv6 listeners.
    let l4 = TcpListener::bind(&server, "10.0.0.2:8001").expect("bind IPv4");
    assert_eq!(
        l4.set_only_v6(true).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn tcp_to_an_ipv6_port_no_one_listens_on_is_refused() {
    let (_server, client) = pair();
    let refused = connect(&client, v6(SERVER6, 9)).map(|_| ());
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn udp_over_ipv6_round_trips_and_a_closed_port_is_reported() {
    let (server, client) = pair();
    let srv = UdpSocket::bind(&server, "[::]:9000").expect("bind [::]:9000");
    srv.set_read_timeout(Some(WAIT)).unwrap();
    let cli = UdpSocket::bind(&client, v6(CLIENT6, 0)).expect("bind [fd00::1]:0");
    cli.set_read_timeout(Some(WAIT)).unwrap();
    let local = cli.local_addr().unwrap();
    assert_eq!(local.ip(), IpAddr::V6(CLIENT6));
    cli.send_to(b"hello over IPv6", v6(SERVER6, 9000))
        .expect("send_to");
    let mut buf = [0u8; 64];
    let (n, from) = srv.recv_from(&mut buf).expect("recv_from");
    assert_eq!((&buf[..n], from), (&b"hello over IPv6"[..], local));
    srv.send_to(b"and back", from).expect("reply");
    let (n, from) = cli.recv_from(&mut buf).expect("the reply");
    assert_eq!((&buf[..n], from), (&b"and back"[..], v6(SERVER6, 9000)));
    // The dual-stack socket hears IPv4 too, the sender IPv4-mapped (as
    // on Linux), and answers it at that address.
    let cli4 = UdpSocket::bind(&client, "0.0.0.0:0").expect("bind IPv4");
    cli4.set_read_timeout(Some(WAIT)).unwrap();
    cli4.send_to(b"v4", SocketAddr::from((SERVER4, 9000)))
        .expect("send over IPv4");
    let (n, from) = srv.recv_from(&mut buf).expect("the IPv4 datagram");
    let mapped = IpAddr::V6(CLIENT4.to_ipv6_mapped());
    assert_eq!((&buf[..n], from.ip()), (&b"v4"[..], mapped));
    srv.send_to(b"v4 back", from)
        .expect("reply to a mapped address");
    let (n, back_from) = cli4.recv_from(&mut buf).expect("the reply over IPv4");
    let server = SocketAddr::from((SERVER4, 9000));
    assert_eq!((&buf[..n], back_from), (&b"v4 back"[..], server));
    // An IPv4 socket cannot send to IPv6.
    let err = cli4.send_to(b"x", v6(SERVER6, 9000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable);
    // ICMPv6 Port Unreachable reaches a connected socket (RFC 4443 §3.1).
    cli.connect(v6(SERVER6, 9001)).expect("connect");
    cli.send(b"anyone?").expect("send");
    let err = cli.recv(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn addresses_that_are_not_ours_cannot_be_bound() {
    let (server, _client) = pair();
    let other = v6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9), 80);
    let e = TcpListener::bind(&server, other).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
    let e = UdpSocket::bind(&server, other).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable);
    // A stack without IPv6 says so on connect.
    let (a, _b) = memory::link(1500);
    let v4_only = Stack::with_device(
        Config {
            seed: Some(3),
            ..Config::default()
        },
        a,
    )
    .expect("stack starts");
    let e = connect(&v4_only, v6(SERVER6, 80)).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable);
}
