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

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tunstack::device::memory::{self, MemoryDevice};
use tunstack::tcp::{ConnInfo, State, TcpConfig};
use tunstack::{Config, Stack, TcpListener, TcpStream};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Bound on any single blocking call; only reached when something is broken.
const WAIT: Duration = Duration::from_secs(10);

fn at(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER, port))
}

// ---- stacks ----

fn config(addr: Ipv4Addr, seed: u64, tcp: TcpConfig) -> Config {
    Config {
        addr,
        seed: Some(seed),
        tcp,
        ..Config::default()
    }
}

fn start(addr: Ipv4Addr, seed: u64, tcp: &TcpConfig, dev: MemoryDevice) -> Stack {
    Stack::with_device(config(addr, seed, tcp.clone()), dev).expect("the stack starts")
}

/// A server and a client stack linked directly.
fn direct(tcp: TcpConfig) -> (Stack, Stack) {
    let (a, b) = memory::link(1500);
    (start(SERVER, 1, &tcp, a), start(CLIENT, 2, &tcp, b))
}

/// A server and a client stack with a relay between them.
fn relayed(tcp: TcpConfig, drop_every: usize) -> (Stack, Stack, Relay) {
    let (a, a_peer) = memory::link(1500);
    let (b, b_peer) = memory::link(1500);
    let relay = Relay::start(a_peer, b_peer, drop_every);
    (start(SERVER, 1, &tcp, a), start(CLIENT, 2, &tcp, b), relay)
}

/// Timers short enough for tests: quick retransmission and TIME-WAIT.
fn fast_tcp() -> TcpConfig {
    TcpConfig {
        initial_rto: Duration::from_millis(100),
        min_rto: Duration::from_millis(20),
        msl: Duration::from_millis(50),
        fin_wait2_timeout: Duration::from_secs(2),
        delayed_ack: Duration::from_millis(20),
        ..TcpConfig::default()
    }
}

// ---- the relay ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

/// A TCP segment the relay saw.
#[derive(Clone, Copy, Debug)]
struct Seen {
    dir: Dir,
    syn: bool,
    fin: bool,
    rst: bool,
    seq: u32,
    len: usize,
    dropped: bool,
}

impl Seen {
    /// The sequence number after this segment (SYN and FIN count one).
    fn next_seq(&self) -> u32 {
        self.seq
            .wrapping_add(self.len as u32)
            .wrapping_add(u32::from(self.syn) + u32::from(self.fin))
    }
}

fn parse_tcp(packet: &[u8], dir: Dir) -> Option<Seen> {
    let ip = etherparse::Ipv4Slice::from_slice(packet).ok()?;
    if ip.payload_ip_number() != etherparse::IpNumber::TCP || ip.payload().fragmented {
        return None;
    }
    let tcp = etherparse::TcpSlice::from_slice(ip.payload().payload).ok()?;
    Some(Seen {
        dir,
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        seq: tcp.sequence_number(),
        len: tcp.payload().len(),
        dropped: false,
    })
}

/// Moves packets between the server's link and the client's, one thread
/// per direction.
struct Relay {
    stop: Arc<AtomicBool>,
    blackhole: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying; with `drop_every > 0`, every `drop_every`th
    /// data-carrying segment in each direction is dropped.
    fn start(server_end: MemoryDevice, client_end: MemoryDevice, drop_every: usize) -> Relay {
        let stop = Arc::new(AtomicBool::new(false));
        let blackhole = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server_end = Arc::new(server_end);
        let client_end = Arc::new(client_end);
        let mut threads = Vec::new();
        for (dir, from, to) in [
            (Dir::ToClient, server_end.clone(), client_end.clone()),
            (Dir::ToServer, client_end, server_end),
        ] {
            let (stop, blackhole, seen) = (stop.clone(), blackhole.clone(), seen.clone());
            threads.push(thread::spawn(move || {
                let mut data_segments = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let Some(packet) = from.recv_packet_timeout(Duration::from_millis(10)) else {
                        continue;
                    };
                    let mut pass = !blackhole.load(Ordering::Relaxed);
                    if let Some(mut s) = parse_tcp(&packet, dir) {
                        if s.len > 0 {
                            data_segments += 1;
                            if drop_every > 0 && data_segments % drop_every == 0 {
                                pass = false;
                            }
                        }
                        s.dropped = !pass;
                        seen.lock().unwrap_or_else(PoisonError::into_inner).push(s);
                    }
                    if pass {
                        to.send_packet(packet);
                    }
                }
            }));
        }
        Relay {
            stop,
            blackhole,
            seen,
            threads,
        }
    }

    /// Drops everything from now on (`true`), or passes traffic again.
    fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::Relaxed);
    }

    /// Every TCP segment seen so far, in the order seen (per direction).
    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---- socket helpers ----

/// Bounds every blocking read and write on `s`.
fn bounded(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    s
}

/// `accept`, failing the test instead of hanging if nothing arrives.
fn accept_within(listener: &Arc<TcpListener>) -> (TcpStream, SocketAddr) {
    let (tx, rx) = mpsc::channel();
    let l = listener.clone();
    thread::spawn(move || {
        let _ = tx.send(l.accept());
    });
    let (s, peer) = rx
        .recv_timeout(WAIT)
        .expect("accept returns in time")
        .expect("accept succeeds");
    (bounded(s), peer)
}

fn connect(client: &Stack, port: u16) -> TcpStream {
    bounded(TcpStream::connect_timeout(client, &at(port), WAIT).expect("connect succeeds"))
}

/// A listener on `port` and one connection through it: (listener, client
/// end, server end).
fn connected(
    server: &Stack,
    client: &Stack,
    port: u16,
) -> (Arc<TcpListener>, TcpStream, TcpStream) {
    let listener = Arc::new(TcpListener::bind(server, at(port)).expect("bind"));
    let c = connect(client, port);
    let (s, _) = accept_within(&listener);
    (listener, c, s)
}

/// Deterministic test data: `len` bytes starting at stream offset `from`,
/// different for each `seed`.
fn pattern(seed: u64, from: usize, len: usize) -> Vec<u8> {
    (from..from + len)
        .map(|i| {
            let x = (i as u64 ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

/// Reads until end of stream.
fn read_all(s: &TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = s;
    r.read_to_end(&mut out).expect("reading to end of stream");
    out
}

/// Reads exactly `n` bytes.
fn read_n(s: &TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut r = s;
    r.read_exact(&mut out).expect("reading the expected bytes");
    out
}

/// Writes everything, then shuts down writing.
fn write_all_and_shut(s: &TcpStream, data: &[u8]) {
    let mut w = s;
    w.write_all(data).expect("writing");
    s.shutdown(Shutdown::Write).expect("shutdown(Write)");
}

/// Polls `f` every millisecond until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn conns(stack: &Stack) -> Vec<ConnInfo> {
    stack.tcp_connections().expect("tcp_connections")
}

fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> ErrorKind {
    r.expect_err("the call should fail").kind()
}

/// Sends `len` bytes each way at once (a writer and a reader thread per
/// side) and checks that both arrive byte-exact.
fn exchange_both_ways(c: &TcpStream, s: &TcpStream, len: usize) {
    let up = pattern(1, 0, len);
    let down = pattern(2, 0, len);
    thread::scope(|scope| {
        scope.spawn(|| write_all_and_shut(c, &up));
        scope.spawn(|| write_all_and_shut(s, &down));
        let at_server = scope.spawn(|| read_all(s));
        let at_client = scope.spawn(|| read_all(c));
        let at_server = at_server.join().expect("server reader");
        let at_client = at_client.join().expect("client reader");
        assert_eq!(at_server.len(), len, "client->server length");
        assert!(at_server == up, "client->server bytes differ");
        assert_eq!(at_client.len(), len, "server->client length");
        assert!(at_client == down, "server->client bytes differ");
    });
}

// ---- tests ----

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
    assert_eq!(SocketAddr::V4(ci.local), c_local);
    assert_eq!(SocketAddr::V4(ci.remote), at(80));
    assert_eq!((si.local, si.remote), (ci.remote, ci.local));
}

#[test]
fn one_mib_echoes_both_ways_concurrently_byte_exact() {
    let (server, client) = direct(TcpConfig::default());
    let (_l, c, s) = connected(&server, &client, 7);
    exchange_both_ways(&c, &s, 1 << 20);
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
    let mine = |i: &ConnInfo| SocketAddr::V4(i.local) == c_local;
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
