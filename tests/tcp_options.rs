//! TCP socket options with socket2's names, each seen on the wire or in the
//! API's behaviour: two tunstack stacks with a relay between them that
//! records every segment (see `tcp_support`).

mod tcp_support;

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tcp_support::*;
use tunstack::tcp::State;
use tunstack::{TcpListener, TcpStream};

/// Segments from the server to the client, after `from` segments seen.
fn to_client(relay: &Relay, from: usize) -> Vec<Seen> {
    relay.seen()[from..]
        .iter()
        .filter(|s| s.dir == Dir::ToClient)
        .cloned()
        .collect()
}

/// RFC 9293 MUST-48/49: the application sets the DS field; TTL likewise.
/// Both show in the IP header of every segment the connection sends from
/// then on.
#[test]
fn ttl_and_tos_set_on_a_stream_show_in_its_segments() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let (_l, c, s) = connected(&server, &client, 7);
    assert_eq!((s.ttl().unwrap(), s.tos().unwrap()), (64, 0));
    s.set_ttl(9).unwrap();
    s.set_tos(0x28).unwrap(); // DSCP AF11
    assert_eq!((s.ttl().unwrap(), s.tos().unwrap()), (9, 0x28));
    assert_eq!(kind(s.set_ttl(0)), ErrorKind::InvalidInput);
    assert_eq!(kind(s.set_tos(256)), ErrorKind::InvalidInput);
    let mark = relay.seen().len();
    (&s).write_all(b"marked").unwrap();
    assert_eq!(read_n(&c, 6), b"marked");
    let segs = to_client(&relay, mark);
    assert!(!segs.is_empty());
    assert!(segs.iter().all(|g| g.ttl == 9 && g.tos == 0x28), "{segs:?}");
}

/// Options set on a listener are the ones its connections start with: the
/// SYN-ACK already carries the TTL, TOS and a window sized by the receive
/// buffer (with the window scale that buffer needs).
#[test]
fn a_listeners_options_are_inherited_by_the_connections_it_accepts() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let listener = Arc::new(TcpListener::bind(&server, at(80)).unwrap());
    listener.set_ttl(33).unwrap();
    listener.set_tos(0xb8).unwrap();
    listener.set_recv_buffer_size(1 << 20).unwrap();
    assert_eq!(
        (listener.ttl().unwrap(), listener.tos().unwrap()),
        (33, 0xb8)
    );
    let c = connect(&client, 80);
    let (s, _) = accept_within(&listener);
    let syn_ack = relay
        .seen()
        .into_iter()
        .find(|g| g.dir == Dir::ToClient && g.syn)
        .expect("a SYN-ACK");
    assert_eq!((syn_ack.ttl, syn_ack.tos), (33, 0xb8));
    assert_eq!(syn_ack.wscale, Some(5), "1 MiB needs a shift of 5");
    assert_eq!((s.ttl().unwrap(), s.tos().unwrap()), (33, 0xb8));
    assert_eq!(s.recv_buffer_size().unwrap(), 1 << 20);
    let mark = relay.seen().len();
    (&c).write_all(b"x").unwrap();
    assert_eq!(read_n(&s, 1), b"x");
    let wide = eventually(Duration::from_secs(5), || {
        to_client(&relay, mark)
            .iter()
            .any(|g| u32::from(g.win) << 5 > 512 * 1024)
    });
    assert!(wide, "{:?}", to_client(&relay, mark));
}

/// RFC 9293 MUST-39: a small receive buffer bounds the window; an
/// application that stops reading sees it close to zero, and the sender
/// waits (probing) until it reads again.
#[test]
fn a_small_receive_buffer_closes_the_window_when_the_reader_stops() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let listener = Arc::new(TcpListener::bind(&server, at(7)).unwrap());
    listener.set_recv_buffer_size(8192).unwrap();
    let c = connect(&client, 7);
    let (s, _) = accept_within(&listener);
    assert_eq!(s.recv_buffer_size().unwrap(), 8192);
    // On a running connection the buffer never shrinks below the window
    // already offered (RFC 9293 §3.8.6.2.2).
    s.set_recv_buffer_size(1024).unwrap();
    assert_eq!(s.recv_buffer_size().unwrap(), 8192);
    let data = pattern(5, 0, 64 * 1024);
    let writer = {
        let c = Arc::new(c);
        let w = c.clone();
        let data = data.clone();
        (c, thread::spawn(move || (&*w).write_all(&data)))
    };
    let closed = eventually(Duration::from_secs(5), || {
        relay
            .seen()
            .iter()
            .any(|g| g.dir == Dir::ToClient && !g.syn && !g.rst && g.win == 0)
    });
    assert!(closed, "the window never closed: {:?}", relay.seen());
    let held = s.info().unwrap().recv_queue;
    assert_eq!(held, 8192, "a closed window: the buffer is full");
    // The writer's side counts the time as held back by the window
    // (`ss -ti`'s rwnd_limited).
    let limited = eventually(Duration::from_secs(5), || {
        writer
            .0
            .info()
            .is_ok_and(|i| i.send_times.rwnd_limited > Duration::ZERO)
    });
    assert!(limited, "{:?}", writer.0.info());
    assert!(writer
        .0
        .info()
        .unwrap()
        .ss_options()
        .contains(" rwnd_limited:"));
    // Reading again reopens the window and everything arrives.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < data.len() {
        let n = (&s).read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == data);
    writer.1.join().unwrap().unwrap();
    drop(writer.0);
}

/// RFC 5482 / MUST-20/21: with a user timeout, data unacknowledged for that
/// long ends the connection with `TimedOut`, long before R2's fifteen
/// retransmissions would.
#[test]
fn the_user_timeout_gives_up_on_a_dead_path_in_its_own_time() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let (_l, c, _s) = connected(&server, &client, 7);
    c.set_tcp_user_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    assert_eq!(
        c.tcp_user_timeout().unwrap(),
        Some(Duration::from_millis(400))
    );
    relay.set_blackhole(true);
    let start = Instant::now();
    (&c).write_all(b"into the void").unwrap();
    let dead = eventually(Duration::from_secs(5), || {
        c.info().map(|i| i.state == State::Closed).unwrap_or(true)
    });
    let took = start.elapsed();
    assert!(dead, "still open after 5 s");
    // (The stack's clock and the test's differ by a few microseconds.)
    assert!(took >= Duration::from_millis(390), "gave up after {took:?}");
    assert_eq!(kind((&c).read(&mut [0u8; 4])), ErrorKind::TimedOut);
}

/// SO_LINGER zero: dropping the stream resets the connection (RST), as on
/// Linux, instead of the FIN handshake.
#[test]
fn linger_zero_turns_close_into_a_reset() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let (_l, c, s) = connected(&server, &client, 7);
    c.set_linger(Some(Duration::ZERO)).unwrap();
    assert_eq!(c.linger().unwrap(), Some(Duration::ZERO));
    drop(c);
    assert_eq!(kind((&s).read(&mut [0u8; 4])), ErrorKind::ConnectionReset);
    let seen = relay.seen();
    assert!(seen.iter().any(|g| g.dir == Dir::ToServer && g.rst));
    assert!(!seen.iter().any(|g| g.dir == Dir::ToServer && g.fin));
}

/// SO_LINGER with a timeout: dropping waits until what was written has
/// been acknowledged.
#[test]
fn linger_with_a_timeout_waits_for_the_data_to_arrive() {
    let (server, client) = direct(fast_tcp());
    let listener = Arc::new(TcpListener::bind(&server, at(9)).unwrap());
    let c = connect(&client, 9);
    let (s, _) = accept_within(&listener);
    c.set_linger(Some(Duration::from_secs(5))).unwrap();
    (&c).write_all(&pattern(1, 0, 200_000)).unwrap();
    let reader = thread::spawn(move || read_all(&s).len());
    drop(c); // returns once the FIN (after all the data) is acknowledged
    let state = eventually(Duration::from_millis(100), || {
        client
            .tcp_connections()
            .unwrap()
            .iter()
            .all(|i| matches!(i.state, State::FinWait2 | State::TimeWait | State::Closed))
    });
    assert!(state, "{:?}", client.tcp_connections());
    assert_eq!(reader.join().unwrap(), 200_000);
}

/// Non-blocking mode, peek, take_error and the send buffer size, as in
/// std and socket2.
#[test]
fn nonblocking_peek_take_error_and_send_buffer_behave_as_in_std() {
    let (server, client) = direct(fast_tcp());
    let (_l, c, s) = connected(&server, &client, 7);
    s.set_nonblocking(true).unwrap();
    assert_eq!(kind((&s).read(&mut [0u8; 4])), ErrorKind::WouldBlock);
    (&c).write_all(b"peek-a-boo").unwrap();
    s.set_nonblocking(false).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(s.peek(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"peek");
    assert_eq!(read_n(&s, 10), b"peek-a-boo", "peek took nothing");

    // A small send buffer: a non-blocking write fills it, then WouldBlock.
    c.set_send_buffer_size(4096).unwrap();
    assert_eq!(c.send_buffer_size().unwrap(), 4096);
    c.set_nonblocking(true).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let mut wrote = 0;
    let full = loop {
        match (&c).write(&[7u8; 1024]) {
            Ok(n) => wrote += n,
            Err(e) => break e.kind(),
        }
        assert!(wrote < 1 << 20, "the send buffer never filled");
    };
    assert_eq!(full, ErrorKind::WouldBlock);

    // take_error reports the reset once.
    assert!(s.take_error().unwrap().is_none());
    c.set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
    let reset = eventually(Duration::from_secs(5), || {
        s.info().map(|i| i.state == State::Closed).unwrap_or(true)
    });
    assert!(reset);
    assert_eq!(
        s.take_error().unwrap().map(|e| e.kind()),
        Some(ErrorKind::ConnectionReset)
    );
    assert!(s.take_error().unwrap().is_none(), "reported once");
}

/// A listener's accept timeout and non-blocking mode.
#[test]
fn accept_times_out_or_does_not_wait_when_asked() {
    let (server, _client) = direct(fast_tcp());
    let listener = TcpListener::bind(&server, at(7)).unwrap();
    listener.set_nonblocking(true).unwrap();
    assert_eq!(kind(listener.accept()), ErrorKind::WouldBlock);
    listener.set_nonblocking(false).unwrap();
    listener
        .set_accept_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(kind(listener.accept()), ErrorKind::WouldBlock);
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(
        kind(listener.set_accept_timeout(Some(Duration::ZERO))),
        ErrorKind::InvalidInput
    );
    let _: Option<TcpStream> = None;
}

/// Urgent data end to end: sent with `send_urgent`, read in line, and the
/// reader is told how many of the next octets are urgent (MUST-30..33).
#[test]
fn urgent_data_arrives_in_line_and_the_reader_learns_how_much() {
    let (server, client) = direct(fast_tcp());
    let (_l, c, s) = connected(&server, &client, 7);
    c.set_nodelay(true).unwrap();
    (&c).write_all(b"normal ").unwrap();
    assert_eq!(c.send_urgent(b"URGENT").unwrap(), 6);
    assert_eq!(read_n(&s, 7), b"normal ");
    let told = eventually(Duration::from_secs(5), || {
        s.urgent_remaining().unwrap() == 6
    });
    assert!(told, "urgent_remaining: {}", s.urgent_remaining().unwrap());
    assert_eq!(read_n(&s, 6), b"URGENT");
    assert_eq!(s.urgent_remaining().unwrap(), 0);
}

/// Issue 10: the built-in services turn keepalive on, so a client that
/// vanished (its FIN and RST lost) does not keep its connection forever.
#[test]
fn a_service_reaps_a_connection_whose_peer_vanished() {
    use tunstack::services::{self, ServiceOptions};
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let opts = ServiceOptions {
        keepalive: Some(tunstack::tcp::KeepaliveConfig {
            idle: Duration::from_millis(100),
            interval: Duration::from_millis(50),
            count: 3,
        }),
        user_timeout: Some(Duration::from_millis(400)),
        ..ServiceOptions::default()
    };
    services::tcp_echo_with(&server, 7, &opts).unwrap();
    let c = connect(&client, 7);
    (&c).write_all(b"hi").unwrap();
    assert_eq!(read_n(&c, 2), b"hi");
    assert_eq!(server.tcp_connections().unwrap().len(), 1);
    relay.set_blackhole(true); // the client is gone, without a word
    let reaped = eventually(Duration::from_secs(5), || {
        server.tcp_connections().unwrap().is_empty()
    });
    assert!(reaped, "{:?}", server.tcp_connections());
}
