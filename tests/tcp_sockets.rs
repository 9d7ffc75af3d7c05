//! The TCP socket API end to end: two tunstack stacks back to back on an
//! in-memory link, a server (10.0.0.2) and a client (10.0.0.1).
//!
//! Some tests put a [`Relay`] between the two stacks instead of linking them
//! directly: it moves packets between the links, records every TCP segment,
//! and can drop every Nth data segment (loss) or everything (a blackholed
//! host).
//!
//! Every blocking call is bounded (read/write timeouts, `connect_timeout`,
//! `accept` on a helper thread), so a failing test fails instead of hanging.

mod tcp_support;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use tcp_support::*;
use tunstack::tcp::{ConnInfo, State, TcpConfig};
use tunstack::{TcpListener, TcpStream};

#[test]
fn connect_and_accept_agree_on_addresses_and_the_client_port_is_ephemeral() {
    let (server, client) = direct(TcpConfig::default());
    let listener = Arc::new(TcpListener::bind(&server, ("0.0.0.0", 80)).expect("bind"));
    assert_eq!(
        listener.local_addr().unwrap(),
        SocketAddr::from(([0, 0, 0, 0], 80))
    );
    let c = connect(&client, 80);
    let (s, accepted_from) = accept_within(&listener);

    let c_local = c.local_addr().unwrap();
    assert_eq!(c.peer_addr().unwrap(), at(80));
    assert_eq!(s.local_addr().unwrap(), at(80));
    assert_eq!(s.peer_addr().unwrap(), c_local);
    assert_eq!(accepted_from, c_local);
    assert_eq!(c_local.ip(), CLIENT);
    assert!(
        (32768..=60999).contains(&c_local.port()),
        "client port {} is not ephemeral",
        c_local.port()
    );

    let ci = c.info().unwrap();
    let si = s.info().unwrap();
    assert_eq!(
        (ci.state, si.state),
        (State::Established, State::Established)
    );
    assert_eq!(ci.local, c_local);
    assert_eq!(ci.remote, at(80));
    assert_eq!((si.local, si.remote), (ci.remote, ci.local));
}

#[test]
fn one_mib_echoes_both_ways_concurrently_byte_exact() {
    let (server, client) = direct(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);
    exchange_both_ways(&c, &s, 1 << 20);
}

/// Offload (issue 11): between two devices that take segmentation and
/// checksum offload, data crosses in super-segments of up to 64 KiB with
/// partial checksums, both ways, byte-exact; both stacks count them, and
/// each super-segment stands for several MSS-sized segments.
#[test]
fn with_offload_data_crosses_in_super_segments_byte_exact() {
    let (server, client) = direct_offload(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);
    exchange_both_ways(&c, &s, 4 << 20);
    for stack in [&server, &client] {
        let t = stack.stats().expect("stats").tcp;
        assert!(t.super_segments_out > 0, "no super-segments: {t:?}");
        assert!(
            t.super_segments_in > 0 && t.segments_in > t.super_segments_in * 2,
            "super-segments in, counted as the segments they stand for: {t:?}"
        );
        assert!(
            t.segments_out > t.super_segments_out * 2,
            "super-segments stand for several segments: {t:?}"
        );
        assert_eq!(t.bad_checksum, 0);
        assert!(stack.offload());
    }
}

/// Dropping a listener stops it before `drop` returns, as `close()` on a
/// kernel listener does: the next attempt is refused, every time.
#[test]
fn a_dropped_listener_refuses_the_next_connection_at_once() {
    let (server, client) = direct(TcpConfig::default());
    for _ in 0..5 {
        let listener = TcpListener::bind(&server, at(7)).expect("bind");
        drop(listener);
        let err = TcpStream::connect_timeout(&client, &at(7), WAIT).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    }
}

#[test]
fn transfer_over_a_lossy_path_is_byte_exact_and_retransmits() {
    // Every 20th data segment each way (5%) is dropped.
    let (server, client, relay) = relayed(fast_tcp(), 20);
    let (_l, c, s) = connected(&server, &client, 7);
    exchange_both_ways(&c, &s, 512 * 1024);

    let dropped = relay.seen().iter().filter(|x| x.dropped).count();
    assert!(dropped > 0, "the relay dropped nothing");
    let retransmits =
        server.stats().unwrap().tcp.retransmits + client.stats().unwrap().tcp.retransmits;
    assert!(
        retransmits > 0,
        "{dropped} segments lost but none retransmitted"
    );
}

#[test]
fn read_returns_zero_after_peer_shutdown_write_and_the_peer_can_still_receive() {
    let (server, client) = direct(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);

    write_all_and_shut(&c, b"request");
    assert_eq!(read_all(&s), b"request");
    // EOF stays EOF.
    assert_eq!((&s).read(&mut [0u8; 16]).unwrap(), 0);
    // The client's write half is closed...
    assert_eq!(kind((&c).write(b"more")), ErrorKind::BrokenPipe);

    // ...but its read half is open: the half-closed server still sends.
    let reply = pattern(3, 0, 100_000);
    write_all_and_shut(&s, &reply);
    let got = read_all(&c);
    assert_eq!(got.len(), reply.len());
    assert!(got == reply, "reply bytes differ");
    assert_eq!((&c).read(&mut [0u8; 16]).unwrap(), 0);
}

#[test]
fn dropping_a_stream_closes_gracefully_through_time_wait() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let (_l, c, s) = connected(&server, &client, 7);
    let c_local = c.local_addr().unwrap();

    let data = pattern(4, 0, 100_000);
    (&c).write_all(&data).unwrap();
    drop(c);
    let got = read_all(&s);
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
    drop(s);

    // The client closed first, so it waits out 2×MSL (100 ms) in TIME-WAIT.
    let mine = |i: &ConnInfo| i.local == c_local;
    assert!(
        eventually(Duration::from_secs(2), || conns(&client)
            .iter()
            .any(|i| mine(i) && i.state == State::TimeWait)),
        "the client never showed TIME-WAIT: {:?}",
        conns(&client)
    );
    assert_eq!(State::TimeWait.to_string(), "TIME-WAIT");
    assert!(
        eventually(Duration::from_secs(2), || conns(&client).is_empty()),
        "TIME-WAIT never ended: {:?}",
        conns(&client)
    );
    // The server, having closed second, is gone once its FIN is acknowledged.
    assert!(
        eventually(Duration::from_secs(2), || conns(&server).is_empty()),
        "the server connection lingers: {:?}",
        conns(&server)
    );
    // Graceful: a FIN each way and no RST.
    let seen = relay.seen();
    assert!(!seen.iter().any(|x| x.rst), "an RST was sent: {seen:?}");
    for dir in [Dir::ToServer, Dir::ToClient] {
        assert!(seen.iter().any(|x| x.dir == dir && x.fin), "no FIN {dir:?}");
    }
}

#[test]
fn closing_with_unread_data_resets_the_connection() {
    let (server, client, relay) = relayed(TcpConfig::default(), 0);
    let (_l, c, s) = connected(&server, &client, 7);

    (&c).write_all(&[7u8; 1000]).unwrap();
    // Once the server acknowledged the bytes, they sit unread at the server.
    assert!(
        eventually(WAIT, || c.info().is_ok_and(|i| i.send_queue == 0)),
        "the server never acknowledged the data"
    );
    drop(s);

    // Either the next read or a later write reports the reset.
    match (&c).read(&mut [0u8; 64]) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => {
            let mut last = Ok(0);
            for _ in 0..100 {
                last = (&c).write(b"x");
                if last.is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(
                kind(last),
                ErrorKind::ConnectionReset,
                "read gave {other:?} and no write saw the reset"
            );
        }
    }
    assert!(server.stats().unwrap().tcp.resets_sent > 0);
    // An RST, not a FIN, went to the client.
    let to_client: Vec<Seen> = relay
        .seen()
        .into_iter()
        .filter(|x| x.dir == Dir::ToClient)
        .collect();
    assert!(to_client.iter().any(|x| x.rst), "no RST: {to_client:?}");
    assert!(!to_client.iter().any(|x| x.fin), "a FIN: {to_client:?}");
}

#[test]
fn connect_to_a_port_without_listener_is_refused() {
    let (_server, client) = direct(TcpConfig::default());
    let r = TcpStream::connect_timeout(&client, &at(81), WAIT);
    assert_eq!(kind(r), ErrorKind::ConnectionRefused);
    let r = TcpStream::connect(&client, at(81));
    assert_eq!(kind(r), ErrorKind::ConnectionRefused);
}

#[test]
fn connect_timeout_to_a_blackholed_peer_times_out() {
    let (server, client, relay) = relayed(TcpConfig::default(), 0);
    relay.set_blackhole(true);
    let _l = TcpListener::bind(&server, at(7)).unwrap();
    let start = Instant::now();
    let r = TcpStream::connect_timeout(&client, &at(7), Duration::from_millis(300));
    assert_eq!(kind(r), ErrorKind::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(5));
    // The abandoned attempt is cleaned up.
    assert!(
        eventually(Duration::from_secs(2), || conns(&client).is_empty()),
        "the timed-out connection lingers: {:?}",
        conns(&client)
    );
    assert!(relay.seen().iter().all(|s| s.dir == Dir::ToServer && s.syn));
}

#[test]
fn connect_to_a_blackholed_peer_times_out_after_syn_retries() {
    let tcp = TcpConfig {
        initial_rto: Duration::from_millis(50),
        syn_retries: 2,
        ..TcpConfig::default()
    };
    let (server, client, relay) = relayed(tcp, 0);
    relay.set_blackhole(true);
    let _l = TcpListener::bind(&server, at(7)).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        scope.spawn(|| {
            let _ = tx.send(TcpStream::connect(&client, at(7)).map(|_| ()));
        });
        let r = rx.recv_timeout(WAIT).expect("connect gives up in time");
        assert_eq!(kind(r), ErrorKind::TimedOut);
    });
    // The first SYN and two retries.
    let syns = relay.seen().iter().filter(|s| s.syn).count();
    assert_eq!(syns, 3, "{:?}", relay.seen());
}

#[test]
fn binding_a_port_already_listening_fails_with_addr_in_use() {
    let (server, _client) = direct(TcpConfig::default());
    let _l = TcpListener::bind(&server, at(80)).unwrap();
    let e = TcpListener::bind(&server, at(80)).expect_err("second bind");
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    let e = TcpListener::bind(&server, ("0.0.0.0", 80)).expect_err("wildcard bind");
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    // Another port is fine.
    TcpListener::bind(&server, at(81)).unwrap();
}

#[test]
fn a_port_rebinds_while_its_old_connection_is_in_time_wait() {
    // Default timers: TIME-WAIT lasts 60 s, far longer than the test.
    let (server, client) = direct(TcpConfig::default());
    let (listener, c, s) = connected(&server, &client, 80);

    // The server closes first, so its end goes to TIME-WAIT.
    drop(s);
    assert_eq!(read_all(&c), b"");
    drop(c);
    assert!(
        eventually(WAIT, || conns(&server)
            .iter()
            .any(|i| i.local.port() == 80 && i.state == State::TimeWait)),
        "the server never reached TIME-WAIT: {:?}",
        conns(&server)
    );
    drop(listener);

    let listener = Arc::new(TcpListener::bind(&server, at(80)).expect("rebind in TIME-WAIT"));
    let c = connect(&client, 80);
    let (s, _) = accept_within(&listener);
    write_all_and_shut(&c, b"again");
    assert_eq!(read_all(&s), b"again");
}

#[test]
fn write_blocks_while_the_peer_does_not_read_and_resumes_after_it_does() {
    let (server, client) = direct(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);
    c.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let chunk = 64 * 1024;
    let mut written = 0usize;
    let end = Instant::now() + WAIT;
    let stalled = loop {
        assert!(
            Instant::now() < end,
            "write never blocked ({written} bytes)"
        );
        match (&c).write(&pattern(5, written, chunk)) {
            Ok(n) => {
                assert!(n > 0);
                written += n;
            }
            Err(e) => break e,
        }
        assert!(written < 4 << 20, "write accepted {written} bytes");
    };
    assert_eq!(stalled.kind(), ErrorKind::WouldBlock, "{stalled}");
    assert!(written > 0 && written < 4 << 20, "accepted {written} bytes");

    // The server reads what was accepted; the client can write again.
    let got = read_n(&s, written);
    assert!(got == pattern(5, 0, written), "stalled bytes differ");
    c.set_write_timeout(Some(WAIT)).unwrap();
    let more = pattern(5, written, 300_000);
    write_all_and_shut(&c, &more);
    let got = read_all(&s);
    assert_eq!(got.len(), more.len());
    assert!(got == more, "resumed bytes differ");
}

#[test]
fn read_timeout_fails_with_would_block_and_the_stream_stays_usable() {
    let (server, client) = direct(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(100)));
    let start = Instant::now();
    assert_eq!(kind((&c).read(&mut [0u8; 16])), ErrorKind::WouldBlock);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        kind(c.set_read_timeout(Some(Duration::ZERO))),
        ErrorKind::InvalidInput
    );

    c.set_read_timeout(Some(WAIT)).unwrap();
    (&s).write_all(b"late").unwrap();
    assert_eq!(read_n(&c, 4), b"late");
}

#[test]
fn keepalive_drops_a_connection_whose_peer_vanished() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let (_l, c, _s) = connected(&server, &client, 7);
    c.set_keepalive(Duration::from_millis(100), Duration::from_millis(50), 3)
        .unwrap();
    relay.set_blackhole(true);

    let start = Instant::now();
    let r = (&c).read(&mut [0u8; 16]);
    assert_eq!(kind(r), ErrorKind::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(kind((&c).write(b"x")), ErrorKind::TimedOut);
    assert!(client.stats().unwrap().tcp.timeouts > 0);
    // Three unanswered probes were sent.
    let probes = keepalive_probes(&relay.seen());
    assert!(probes >= 3, "{probes} probes seen");
}

/// Client-to-server segments without data or flags whose sequence number
/// is one less than the client's next: keepalive probes (RFC 9293 §3.8.4).
fn keepalive_probes(seen: &[Seen]) -> usize {
    let mut next: Option<u32> = None;
    let mut probes = 0;
    for s in seen.iter().filter(|s| s.dir == Dir::ToServer) {
        let is_probe = s.len == 0
            && !(s.syn || s.fin || s.rst)
            && next.is_some_and(|n| s.seq == n.wrapping_sub(1));
        if is_probe {
            probes += 1;
        }
        let n = s.next_seq();
        // Sequence space only moves forward (wrapping).
        if next.is_none_or(|cur| (n.wrapping_sub(cur) as i32) > 0) {
            next = Some(n);
        }
    }
    probes
}

#[test]
fn keepalive_keeps_an_idle_connection_with_a_live_peer_up() {
    let (server, client, relay) = relayed(fast_tcp(), 0);
    let (_l, c, s) = connected(&server, &client, 7);
    c.set_nodelay(true).unwrap();
    (&c).write_all(b"hello").unwrap();
    assert_eq!(read_n(&s, 5), b"hello");
    c.set_keepalive(Duration::from_millis(100), Duration::from_millis(50), 3)
        .unwrap();

    // Idle for a second: well past idle + count × interval.
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(kind((&c).read(&mut [0u8; 16])), ErrorKind::WouldBlock);

    assert_eq!(c.info().unwrap().state, State::Established);
    assert_eq!(s.info().unwrap().state, State::Established);
    let probes = keepalive_probes(&relay.seen());
    assert!(probes > 0, "no keepalive probes: {:?}", relay.seen());

    // Still works.
    c.set_read_timeout(Some(WAIT)).unwrap();
    (&s).write_all(b"still here").unwrap();
    assert_eq!(read_n(&c, 10), b"still here");
}

#[test]
fn fifty_concurrent_clients_each_echo_10_kb() {
    const CLIENTS: usize = 50;
    const LEN: usize = 10_000;
    let (server, client) = direct(TcpConfig::default());
    let listener = Arc::new(TcpListener::bind_with_backlog(&server, at(7), 64).expect("bind"));

    // The server: a thread per accepted connection, echoing until EOF.
    let (done_tx, done_rx) = mpsc::channel();
    let l = listener.clone();
    thread::spawn(move || {
        let mut echoes = Vec::new();
        for _ in 0..CLIENTS {
            let Ok((s, _)) = l.accept() else { break };
            echoes.push(thread::spawn(move || {
                let s = bounded(s);
                let mut buf = [0u8; 4096];
                loop {
                    match (&s).read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => (&s).write_all(&buf[..n]).expect("echo write"),
                        Err(e) => panic!("echo read: {e}"),
                    }
                }
            }));
        }
        // Join every echo thread, even after one failed.
        let joined: Vec<bool> = echoes.into_iter().map(|t| t.join().is_ok()).collect();
        let ok = joined.iter().all(|&ok| ok);
        let _ = done_tx.send(ok);
    });

    thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let client = &client;
                scope.spawn(move || {
                    let c = connect(client, 7);
                    let data = pattern(100 + i as u64, 0, LEN);
                    write_all_and_shut(&c, &data);
                    read_all(&c) == data
                })
            })
            .collect();
        for (i, t) in clients.into_iter().enumerate() {
            assert!(t.join().expect("client thread"), "client {i}: echo differs");
        }
    });
    assert!(
        done_rx.recv_timeout(WAIT).expect("the server finishes"),
        "an echo thread failed"
    );
}

#[test]
fn socket_options_succeed_and_info_reports_established_with_an_rtt() {
    let (server, client) = direct(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);
    c.set_nodelay(true).unwrap();
    c.set_nodelay(false).unwrap();
    c.set_keepalive(Duration::from_secs(60), Duration::from_secs(5), 3)
        .unwrap();
    c.clear_keepalive().unwrap();
    assert_eq!(
        kind(c.set_keepalive(Duration::ZERO, Duration::from_secs(1), 1)),
        ErrorKind::InvalidInput
    );
    s.set_nodelay(true).unwrap();

    for round in 0..10u8 {
        (&c).write_all(&[round; 1000]).unwrap();
        assert_eq!(read_n(&s, 1000), vec![round; 1000]);
        (&s).write_all(&[round; 1000]).unwrap();
        assert_eq!(read_n(&c, 1000), vec![round; 1000]);
    }
    let info = c.info().unwrap();
    assert_eq!(info.state, State::Established);
    assert_eq!(info.state.to_string(), "ESTABLISHED");
    let srtt = info.srtt.expect("an RTT was measured");
    assert!(srtt > Duration::ZERO, "srtt {srtt:?}");
    assert!(info.mss > 0 && info.cwnd > 0);
}

#[test]
fn dropping_the_stack_unblocks_accept_read_and_write_with_not_connected() {
    let (server, client) = direct(TcpConfig::default());
    let (listener, _c, s) = connected(&server, &client, 7);
    let s = Arc::new(s);
    let (tx, rx) = mpsc::channel();

    let l = listener.clone();
    let accept_tx = tx.clone();
    thread::spawn(move || {
        let _ = accept_tx.send(("accept", l.accept().map(|_| ())));
    });
    let reader = s.clone();
    let read_tx = tx.clone();
    thread::spawn(move || {
        let _ = read_tx.send(("read", (&*reader).read(&mut [0u8; 16]).map(|_| ())));
    });
    // The client never reads, so this writer soon blocks on full buffers.
    let writer = s.clone();
    thread::spawn(move || {
        let chunk = [0u8; 64 * 1024];
        let r = loop {
            if let Err(e) = (&*writer).write(&chunk) {
                break Err::<(), _>(e);
            }
        };
        let _ = tx.send(("write", r));
    });
    // Let the calls block.
    thread::sleep(Duration::from_millis(200));
    assert!(rx.try_recv().is_err(), "a call returned before the drop");

    drop(server);
    for _ in 0..3 {
        let (what, r) = rx.recv_timeout(WAIT).expect("the blocked call returns");
        assert_eq!(kind(r), ErrorKind::NotConnected, "{what}");
    }
    // New calls fail the same way.
    assert_eq!(kind(listener.accept()), ErrorKind::NotConnected);
    assert_eq!(kind((&*s).read(&mut [0u8; 16])), ErrorKind::NotConnected);
    assert_eq!(kind(s.info()), ErrorKind::NotConnected);
}

#[test]
fn a_reset_after_end_of_stream_fails_one_read_then_reads_see_end_of_stream() {
    let (server, client) = direct(fast_tcp());
    let (_l, c, s) = connected(&server, &client, 7);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!((&c).read(&mut [0u8; 8]).unwrap(), 0, "end of stream first");
    s.abort().unwrap();
    // The RST arrives: one read reports it, as on Linux, then EOF again.
    assert!(
        eventually(WAIT, || c
            .info()
            .is_ok_and(|i| i.state.to_string() == "CLOSED")),
        "the reset never arrived"
    );
    assert_eq!(kind((&c).read(&mut [0u8; 8])), ErrorKind::ConnectionReset);
    assert_eq!((&c).read(&mut [0u8; 8]).unwrap(), 0);
    assert_eq!(kind((&c).write(b"x")), ErrorKind::ConnectionReset);
}
