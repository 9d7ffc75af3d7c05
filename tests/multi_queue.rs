//! Multi-queue (issue 11): a stack with two shards, each on its own queue,
//! against a single-queue stack, with a queue selector in between that
//! does what the kernel's multi-queue TUN does: a packet for the sharded
//! stack goes to the queue its flow last left on (the "automq" flow
//! table), or, for a flow it has not seen, to the queue its flow hash
//! picks. A second selector misroutes on purpose (the table forgotten,
//! as after a few idle seconds) so the shards must hand packets over.

mod tcp_support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tcp_support::*;
use tunstack::device::memory::{self, MemoryDevice};
use tunstack::device::Device;
use tunstack::tcp::TcpConfig;
use tunstack::{Stack, TcpListener, TcpStream};

/// One test of this file at a time. Each runs three stacks (five
/// threads) on this 2-CPU machine; side by side they starve each other
/// for tens of milliseconds, long enough for a tail loss probe (10 ms at
/// least) to resend a FIN whose ACK is only late, and the second ACK then
/// finds the connection closed and is answered with a RST (RFC 9293
/// §3.10.7.2, as Linux does), which the misrouting test counts as a
/// misrouted segment. With two CPU hogs beside the file: about one run
/// in ten with the tests side by side, one in sixty one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A flow, as (address, port) pairs from the sharded stack's side.
type Flow = (SocketAddrV4, SocketAddrV4);

/// Source and destination of an IPv4 TCP or UDP packet (ports 0 otherwise).
fn endpoints(p: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4)> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    let ip = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
    if p.len() < 20 {
        return None;
    }
    let ports = match p.get(9) {
        Some(6 | 17) if p.len() >= ihl + 4 => (
            u16::from_be_bytes([p[ihl], p[ihl + 1]]),
            u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]),
        ),
        _ => (0, 0),
    };
    Some((
        SocketAddrV4::new(ip(12), ports.0),
        SocketAddrV4::new(ip(16), ports.1),
    ))
}

/// Moves packets between the single-queue stack's link and the sharded
/// stack's queues, one thread, until dropped.
struct QueueSelector {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl QueueSelector {
    /// `misroute`: never use the flow table, and send each packet to the
    /// queue after the one its hash picks.
    fn start(single: MemoryDevice, queues: Vec<MemoryDevice>, misroute: bool) -> QueueSelector {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let n = queues.len();
            let mut table: HashMap<Flow, usize> = HashMap::new();
            while !flag.load(Ordering::Relaxed) {
                let mut moved = false;
                for (q, dev) in queues.iter().enumerate() {
                    while let Some(p) = dev.try_recv_packet() {
                        if let Some(flow) = endpoints(&p) {
                            table.insert(flow, q);
                        }
                        single.send_packet(p);
                        moved = true;
                    }
                }
                while let Some(p) = single.try_recv_packet() {
                    let (src, dst) = endpoints(&p).unwrap_or((
                        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                    ));
                    // The flow from the sharded stack's side.
                    let flow = (dst, src);
                    let hash = (u32::from(*src.ip())
                        ^ (u32::from(src.port()) * 31)
                        ^ (u32::from(dst.port()) * 17)) as usize;
                    let q = match table.get(&flow) {
                        // Misrouted: never the shard that owns an
                        // ephemeral port, always the same for a flow.
                        _ if misroute => (usize::from(dst.port()) + 1) % n,
                        Some(&q) => q,
                        None => hash % n,
                    };
                    queues[q].send_packet(p);
                    moved = true;
                }
                if !moved {
                    thread::sleep(Duration::from_micros(200));
                }
            }
        });
        QueueSelector {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for QueueSelector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A two-shard server (10.0.0.2) and a single-queue client (10.0.0.1).
fn sharded(misroute: bool) -> (Stack, Stack, QueueSelector) {
    let tcp = TcpConfig::default();
    let (q0, q0_peer) = memory::link(1500);
    let (q1, q1_peer) = memory::link(1500);
    let (c, c_peer) = memory::link(1500);
    let devices: Vec<Box<dyn Device>> = vec![Box::new(q0), Box::new(q1)];
    let server = Stack::with_devices(config(SERVER, 1, tcp.clone()), devices).expect("sharded");
    let client = start(CLIENT, 2, &tcp, c);
    let selector = QueueSelector::start(c_peer, vec![q0_peer, q1_peer], misroute);
    (server, client, selector)
}

/// Echoes every accepted connection until it closes, on a thread each.
fn echo_server(listener: Arc<TcpListener>, count: usize) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..count {
            let (s, _) = accept_within(&listener);
            workers.push(thread::spawn(move || {
                let data = read_all(&s);
                write_all_and_shut(&s, &data);
            }));
        }
        for w in workers {
            w.join().expect("echo worker");
        }
    })
}

/// Sends `len` bytes on `s` and checks the echo.
fn echo_round(s: TcpStream, seed: u64, len: usize) {
    let data = pattern(seed, 0, len);
    write_all_and_shut(&s, &data);
    assert!(read_all(&s) == data, "echo {seed} differs");
}

fn exercise(server: &Stack, client: &Stack) {
    // Passive: connections from the client spread over both shards.
    let listener = Arc::new(TcpListener::bind(server, at(7)).expect("bind on every shard"));
    let echo = echo_server(listener.clone(), 8);
    let clients: Vec<_> = (0..8u64)
        .map(|i| {
            let c = connect(client, 7);
            thread::spawn(move || echo_round(c, i, 100_000))
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    echo.join().expect("echo server");

    // Active: connections the sharded stack opens, one shard after the other.
    let theirs = Arc::new(
        TcpListener::bind(client, SocketAddrV4::new(CLIENT, 9000)).expect("client listens"),
    );
    let echo = echo_server(theirs, 4);
    let to_client = SocketAddrV4::new(CLIENT, 9000);
    let opened: Vec<_> = (0..4u64)
        .map(|i| {
            let s = bounded(
                TcpStream::connect_timeout(server, &to_client.into(), WAIT).expect("connect"),
            );
            let port = s.local_addr().expect("local").port();
            (thread::spawn(move || echo_round(s, 100 + i, 50_000)), port)
        })
        .collect();
    let ports: Vec<u16> = opened.iter().map(|(_, p)| *p).collect();
    for (t, _) in opened {
        t.join().expect("active client");
    }
    echo.join().expect("client's echo server");
    // Each shard took its own share of the ephemeral ports, in turn.
    let shards: Vec<usize> = ports.iter().map(|p| usize::from(*p) % 2).collect();
    assert_eq!(shards, [0, 1, 0, 1], "ports {ports:?}");
}

#[test]
fn two_shards_serve_and_open_connections_byte_exact() {
    let _one = one_at_a_time();
    let (server, client, _selector) = sharded(false);
    assert_eq!(server.queues(), 2);
    exercise(&server, &client);
    let stats = server.stats().expect("stats");
    assert_eq!(stats.shards.len(), 2);
    assert!(
        stats.shards.iter().all(|q| q.packets_read > 0),
        "both queues carried traffic: {:?}",
        stats.shards
    );
    assert_eq!(stats.tcp.bad_checksum + stats.tcp.resets_sent, 0, "{stats}");
}

#[test]
fn packets_on_the_wrong_queue_are_handed_to_their_shard() {
    let _one = one_at_a_time();
    let (server, client, _selector) = sharded(true);
    exercise(&server, &client);
    let stats = server.stats().expect("stats");
    let handed: u64 = stats.shards.iter().map(|q| q.handed_over).sum();
    assert!(handed > 0, "nothing handed over: {:?}", stats.shards);
    assert_eq!(stats.tcp.resets_sent, 0, "{stats}");
}

#[test]
fn connections_of_every_shard_are_listed_and_a_closed_listener_refuses_everywhere() {
    let _one = one_at_a_time();
    let (server, client, _selector) = sharded(false);
    let listener = Arc::new(TcpListener::bind(&server, at(7)).expect("bind"));
    let held: Vec<(TcpStream, TcpStream)> = (0..6)
        .map(|_| {
            let c = connect(&client, 7);
            let (s, _) = accept_within(&listener);
            (c, s)
        })
        .collect();
    let conns = server.tcp_connections().expect("connections");
    assert_eq!(conns.len(), 6, "{conns:?}");
    assert!(server
        .stats()
        .expect("stats")
        .shards
        .iter()
        .all(|q| q.packets_read > 0));
    drop(held);
    // The accept helper's thread may still hold a clone for a moment.
    assert!(eventually(WAIT, || Arc::strong_count(&listener) == 1));
    drop(listener);
    // Closing reaches each shard as a command, a moment later; then no
    // shard listens any more: every attempt is refused, whichever queue
    // its SYN lands on.
    let refused = |c: &Stack| {
        TcpStream::connect_timeout(c, &at(7), WAIT)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    };
    assert!(eventually(WAIT, || refused(&client)));
    for _ in 0..4 {
        let err = TcpStream::connect_timeout(&client, &at(7), WAIT).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    }
}
