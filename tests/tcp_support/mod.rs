//! What the TCP socket tests share: two tunstack stacks back to back on an
//! in-memory link, a server (10.0.0.2) and a client (10.0.0.1), optionally
//! with a [`Relay`] between them that records every TCP segment and can drop
//! some (loss) or all (a blackholed host); and socket helpers whose every
//! blocking call is bounded.
#![allow(dead_code)]
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tunstack::device::memory::{self, MemoryDevice};
use tunstack::tcp::{ConnInfo, TcpConfig};
use tunstack::{Config, Stack, TcpListener, TcpStream};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Bound on any single blocking call; only reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn at(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(SERVER, port))
}

// ---- stacks ----

pub fn config(addr: Ipv4Addr, seed: u64, tcp: TcpConfig) -> Config {
    Config {
        addr,
        seed: Some(seed),
        tcp,
        ..Config::default()
    }
}

pub fn start(addr: Ipv4Addr, seed: u64, tcp: &TcpConfig, dev: MemoryDevice) -> Stack {
    Stack::with_device(config(addr, seed, tcp.clone()), dev).expect("the stack starts")
}

/// A server and a client stack linked directly; with offload at both ends
/// (super-segments and partial checksums across the link) when
/// `TUNSTACK_OFFLOAD=on`, as the second CI pass runs the suites.
pub fn direct(tcp: TcpConfig) -> (Stack, Stack) {
    if std::env::var("TUNSTACK_OFFLOAD").as_deref() == Ok("on") {
        direct_offload(tcp)
    } else {
        let (a, b) = memory::link(1500);
        (start(SERVER, 1, &tcp, a), start(CLIENT, 2, &tcp, b))
    }
}

/// A server and a client stack linked directly, both with offload.
pub fn direct_offload(tcp: TcpConfig) -> (Stack, Stack) {
    let (a, b) = memory::link_with_offload(1500);
    (start(SERVER, 1, &tcp, a), start(CLIENT, 2, &tcp, b))
}

/// A server and a client stack with a relay between them.
pub fn relayed(tcp: TcpConfig, drop_every: usize) -> (Stack, Stack, Relay) {
    let (a, a_peer) = memory::link(1500);
    let (b, b_peer) = memory::link(1500);
    let relay = Relay::start(a_peer, b_peer, drop_every);
    (start(SERVER, 1, &tcp, a), start(CLIENT, 2, &tcp, b), relay)
}

/// Timers short enough for tests: quick retransmission and TIME-WAIT.
pub fn fast_tcp() -> TcpConfig {
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
pub enum Dir {
    ToServer,
    ToClient,
}

/// A TCP segment the relay saw.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub dir: Dir,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub seq: u32,
    pub len: usize,
    pub dropped: bool,
    /// The window field, unscaled.
    pub win: u16,
    /// The window scale option (SYNs only).
    pub wscale: Option<u8>,
    /// The IPv4 TTL and type-of-service byte.
    pub ttl: u8,
    pub tos: u8,
}

impl Seen {
    /// The sequence number after this segment (SYN and FIN count one).
    pub fn next_seq(&self) -> u32 {
        self.seq
            .wrapping_add(self.len as u32)
            .wrapping_add(u32::from(self.syn) + u32::from(self.fin))
    }
}

pub fn parse_tcp(packet: &[u8], dir: Dir) -> Option<Seen> {
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
        win: tcp.window_size(),
        wscale: tcp.options_iterator().find_map(|o| match o {
            Ok(etherparse::TcpOptionElement::WindowScale(s)) => Some(s),
            _ => None,
        }),
        ttl: ip.header().ttl(),
        tos: ip.header().slice()[1],
    })
}

/// Moves packets between the server's link and the client's, one thread
/// per direction.
pub struct Relay {
    stop: Arc<AtomicBool>,
    blackhole: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying; with `drop_every > 0`, every `drop_every`th
    /// data-carrying segment in each direction is dropped.
    pub fn start(server_end: MemoryDevice, client_end: MemoryDevice, drop_every: usize) -> Relay {
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
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.store(on, Ordering::Relaxed);
    }

    /// Every TCP segment seen so far, in the order seen (per direction).
    pub fn seen(&self) -> Vec<Seen> {
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
pub fn bounded(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(WAIT)).expect("read timeout");
    s.set_write_timeout(Some(WAIT)).expect("write timeout");
    s
}

/// `accept`, failing the test instead of hanging if nothing arrives.
pub fn accept_within(listener: &Arc<TcpListener>) -> (TcpStream, SocketAddr) {
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

pub fn connect(client: &Stack, port: u16) -> TcpStream {
    bounded(TcpStream::connect_timeout(client, &at(port), WAIT).expect("connect succeeds"))
}

/// A listener on `port` and one connection through it: (listener, client
/// end, server end).
pub fn connected(
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
pub fn pattern(seed: u64, from: usize, len: usize) -> Vec<u8> {
    (from..from + len)
        .map(|i| {
            let x = (i as u64 ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8
        })
        .collect()
}

/// Reads until end of stream.
pub fn read_all(s: &TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = s;
    r.read_to_end(&mut out).expect("reading to end of stream");
    out
}

/// Reads exactly `n` bytes.
pub fn read_n(s: &TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut r = s;
    r.read_exact(&mut out).expect("reading the expected bytes");
    out
}

/// Writes everything, then shuts down writing.
pub fn write_all_and_shut(s: &TcpStream, data: &[u8]) {
    let mut w = s;
    w.write_all(data).expect("writing");
    s.shutdown(Shutdown::Write).expect("shutdown(Write)");
}

/// Polls `f` every millisecond until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
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

pub fn conns(stack: &Stack) -> Vec<ConnInfo> {
    stack.tcp_connections().expect("tcp_connections")
}

pub fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> ErrorKind {
    r.expect_err("the call should fail").kind()
}

/// Sends `len` bytes each way at once (a writer and a reader thread per
/// side) and checks that both arrive byte-exact.
pub fn exchange_both_ways(c: &TcpStream, s: &TcpStream, len: usize) {
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
