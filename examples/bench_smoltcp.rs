//! The smoltcp rival of `scripts/bench.sh`: the same three services as
//! `tunstack run` (TCP echo on 7, discard on 9, the bulk source on 5001) on
//! smoltcp over a TUN device, written the way smoltcp's own examples are:
//! one thread, a poll loop (`iface.poll`, serve the sockets,
//! `phy_wait(fd, iface.poll_delay(..))`).
//!
//! ```text
//! bench_smoltcp --tun tun0 [--addr 10.0.0.2/24] [--gateway 10.0.0.1] [--listeners 64]
//! ```
//!
//! The TUN device must exist (`ip tuntap add dev tun0 mode tun`, kernel side
//! 10.0.0.1/24, up); its MTU is the interface's. smoltcp has no listen
//! backlog, so each port keeps `--listeners` sockets listening: a socket
//! that takes a connection is replaced (by a closed one listening again, a
//! recycled one, or a new one), so concurrency is not capped by the pool
//! and the socket set stays small when idle. TCP buffers are 256 KiB
//! each way, like tunstack's defaults. Nagle, delayed ACK and the other TCP
//! settings are smoltcp's defaults.
//!
//! The bulk source: the client sends an ASCII decimal byte count and "\n";
//! the server sends that many bytes (byte i = i % 251) and closes.
//! Prints "bench_smoltcp: ready ..." once the sockets listen; runs until
//! killed.

use std::os::unix::io::AsRawFd;
use std::process::ExitCode;

use clap::Parser;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{wait as phy_wait, Medium, TunTapInterface};
use smoltcp::socket::{tcp, Socket};
use smoltcp::time::Instant;
use smoltcp::wire::{HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// Period of the bulk source's pattern.
const PERIOD: usize = 251;
/// Longest request line the source accepts (a decimal count and "\n").
const MAX_REQUEST: usize = 32;
/// Size of the source's pattern copies and of echo's bounce buffer.
const CHUNK: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "bench_smoltcp",
    about = "smoltcp echo/discard/source server for scripts/bench.sh"
)]
struct Args {
    /// TUN device to attach to (must exist).
    #[arg(long, default_value = "tun0")]
    tun: String,
    /// The stack's address and prefix.
    #[arg(long, default_value = "10.0.0.2/24", value_parser = parse_cidr)]
    addr: Ipv4Cidr,
    /// Default IPv4 gateway (the kernel side of the TUN).
    #[arg(long, default_value = "10.0.0.1")]
    gateway: Ipv4Address,
    /// TCP echo port (0 disables it).
    #[arg(long, default_value_t = 7)]
    echo_port: u16,
    /// TCP discard port (0 disables it).
    #[arg(long, default_value_t = 9)]
    discard_port: u16,
    /// TCP bulk source port (0 disables it).
    #[arg(long, default_value_t = 5001)]
    source_port: u16,
    /// Sockets kept listening on each port (smoltcp has no backlog): a
    /// socket that accepts a connection is replaced by another.
    #[arg(long, default_value_t = 64)]
    listeners: usize,
    /// TCP receive and send buffer size of every socket, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    buffer: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Echo,
    Discard,
    Source,
}

/// The bulk source's progress on one connection.
#[derive(Debug)]
enum Source {
    /// Reading the request line.
    Request(Vec<u8>),
    /// Sending: `sent` of `total` bytes so far.
    Sending { sent: u64, total: u64 },
    /// All sent (or a bad request): FIN queued.
    Done,
}

struct Conn {
    handle: SocketHandle,
    port: u16,
    service: Service,
    /// Index of the service's port in the list of ports.
    service_index: usize,
    source: Source,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_smoltcp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or("expected IPV4/PREFIX, e.g. 10.0.0.2/24")?;
    let addr: Ipv4Address = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    let prefix: u8 = prefix.parse().map_err(|e| format!("{prefix:?}: {e}"))?;
    if prefix > 32 {
        return Err(format!("prefix {prefix} is longer than 32"));
    }
    Ok(Ipv4Cidr::new(addr, prefix))
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn run(args: Args) -> Result<(), String> {
    let mut device = TunTapInterface::new(&args.tun, Medium::Ip)
        .map_err(|e| format!("cannot attach to TUN device {}: {e}", args.tun))?;
    let fd = device.as_raw_fd();

    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = random_seed();
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        addrs
            .push(IpCidr::Ipv4(args.addr))
            .expect("room for one address");
    });
    iface
        .routes_mut()
        .add_default_ipv4_route(args.gateway)
        .map_err(|e| format!("default route via {}: {e:?}", args.gateway))?;

    let services: Vec<(u16, Service)> = [
        (args.echo_port, Service::Echo),
        (args.discard_port, Service::Discard),
        (args.source_port, Service::Source),
    ]
    .into_iter()
    .filter(|(port, _)| *port != 0)
    .collect();
    let mut pool = Pool {
        sockets: SocketSet::new(Vec::with_capacity(services.len() * args.listeners * 2)),
        conns: Vec::with_capacity(services.len() * args.listeners * 2),
        free: Vec::new(),
        buffer: args.buffer,
    };
    let listeners = args.listeners.max(1);
    let mut listening = vec![0usize; services.len()];
    pool.top_up(&services, &mut listening, listeners)?;
    println!(
        "bench_smoltcp: ready on {} ({}, mtu {}): echo {}, discard {}, source {}; {} listening sockets per port",
        args.addr,
        args.tun,
        iface_mtu(&device),
        args.echo_port,
        args.discard_port,
        args.source_port,
        listeners
    );

    // The source's pattern, one period longer than a chunk so a chunk can
    // start at any phase; echo's bounce buffer.
    let pattern: Vec<u8> = (0..CHUNK + PERIOD).map(|i| (i % PERIOD) as u8).collect();
    let mut bounce = vec![0u8; CHUNK];
    let mut closed = Vec::new();

    loop {
        let timestamp = Instant::now();
        iface.poll(timestamp, &mut device, &mut pool.sockets);

        listening.fill(0);
        closed.clear();
        for (i, conn) in pool.conns.iter_mut().enumerate() {
            let socket = pool.sockets.get_mut::<tcp::Socket>(conn.handle);
            match socket.state() {
                tcp::State::Closed => {
                    // Its connection is over (closed, reset, TIME-WAIT
                    // expired): listen again, or back to the free list.
                    closed.push(i);
                    continue;
                }
                tcp::State::Listen => {
                    listening[conn.service_index] += 1;
                    continue;
                }
                _ => {}
            }
            if !socket.may_recv() && !socket.may_send() {
                // Handshaking, or closed both ways and waiting for the
                // last ACK or in TIME-WAIT: nothing to serve.
                continue;
            }
            match conn.service {
                Service::Discard => discard(socket),
                Service::Echo => echo(socket, &mut bounce),
                Service::Source => source(socket, &mut conn.source, &pattern),
            }
        }
        // Keep `--listeners` sockets listening on each port: the closed
        // ones first, new (or recycled) ones if connections hold the rest.
        for &i in closed.iter().rev() {
            let conn = &mut pool.conns[i];
            if listening[conn.service_index] < listeners {
                listening[conn.service_index] += 1;
                conn.source = Source::Request(Vec::with_capacity(MAX_REQUEST));
                let port = conn.port;
                pool.sockets
                    .get_mut::<tcp::Socket>(conn.handle)
                    .listen(port)
                    .map_err(|e| format!("listen again on port {port}: {e:?}"))?;
            } else {
                let conn = pool.conns.swap_remove(i);
                if let Socket::Tcp(socket) = pool.sockets.remove(conn.handle) {
                    pool.free.push(socket);
                }
            }
        }
        pool.top_up(&services, &mut listening, listeners)?;

        phy_wait(fd, iface.poll_delay(timestamp, &pool.sockets))
            .map_err(|e| format!("wait: {e}"))?;
    }
}

/// The sockets: those in the set (listening or connected) and closed ones
/// kept for reuse, with their buffers.
struct Pool {
    sockets: SocketSet<'static>,
    conns: Vec<Conn>,
    free: Vec<tcp::Socket<'static>>,
    buffer: usize,
}

impl Pool {
    /// Adds listening sockets until each port has `listeners`.
    fn top_up(
        &mut self,
        services: &[(u16, Service)],
        listening: &mut [usize],
        listeners: usize,
    ) -> Result<(), String> {
        for (service_index, &(port, service)) in services.iter().enumerate() {
            while listening[service_index] < listeners {
                let mut socket = self.free.pop().unwrap_or_else(|| {
                    tcp::Socket::new(
                        tcp::SocketBuffer::new(vec![0u8; self.buffer]),
                        tcp::SocketBuffer::new(vec![0u8; self.buffer]),
                    )
                });
                socket
                    .listen(port)
                    .map_err(|e| format!("listen on port {port}: {e:?}"))?;
                self.conns.push(Conn {
                    handle: self.sockets.add(socket),
                    port,
                    service,
                    service_index,
                    source: Source::Request(Vec::with_capacity(MAX_REQUEST)),
                });
                listening[service_index] += 1;
            }
        }
        Ok(())
    }
}

fn iface_mtu(device: &TunTapInterface) -> usize {
    use smoltcp::phy::Device;
    device.capabilities().max_transmission_unit
}

/// Discard: drop whatever arrived, without copying; close once the peer has.
fn discard(socket: &mut tcp::Socket) {
    drain(socket);
    // Checked after draining: a FIN that came with the last data must close
    // now, not when the next packet or timer wakes the loop.
    if !socket.may_recv() && socket.may_send() {
        socket.close();
    }
}

/// Drops everything in the receive buffer. `recv` hands out the contiguous
/// part only, so a wrapped ring takes two calls: leaving the rest there
/// would keep the window shut until the next packet or timer.
fn drain(socket: &mut tcp::Socket) {
    while socket.can_recv() {
        match socket.recv(|buffer| (buffer.len(), buffer.len())) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Echo: move the received bytes to the send buffer, as many as it has room
/// for; close once the peer has and everything is echoed.
fn echo(socket: &mut tcp::Socket, bounce: &mut [u8]) {
    while socket.can_recv() && socket.can_send() {
        let room = (socket.send_capacity() - socket.send_queue()).min(bounce.len());
        let n = match socket.recv_slice(&mut bounce[..room]) {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        // There is room for all of it: checked above.
        let _ = socket.send_slice(&bounce[..n]);
    }
    if !socket.may_recv() && socket.may_send() {
        socket.close();
    }
}

/// The bulk source: read "N\n", send N bytes of the pattern, close.
fn source(socket: &mut tcp::Socket, state: &mut Source, pattern: &[u8]) {
    // Read the request; `recv` hands out the contiguous part of the ring
    // only, so keep going while there is more.
    while let Source::Request(line) = state {
        let parsed = socket.recv(|buffer| {
            let room = MAX_REQUEST - line.len();
            match buffer.iter().take(room).position(|&b| b == b'\n') {
                Some(end) => {
                    line.extend_from_slice(&buffer[..end]);
                    (end + 1, Some(true))
                }
                None => {
                    let n = buffer.len().min(room);
                    line.extend_from_slice(&buffer[..n]);
                    (n, (line.len() >= MAX_REQUEST).then_some(false))
                }
            }
        });
        match parsed {
            Ok(Some(true)) => {
                let total = std::str::from_utf8(line)
                    .ok()
                    .and_then(|l| l.trim().parse::<u64>().ok());
                *state = match total {
                    Some(total) => Source::Sending { sent: 0, total },
                    None => Source::Done,
                };
            }
            Ok(None) if socket.can_recv() => {}
            Ok(None) if socket.may_recv() => return,
            // Too long without a newline, or the peer closed (or reset)
            // before a whole request: give up on it.
            _ => *state = Source::Done,
        }
        if matches!(state, Source::Done) {
            socket.close();
            return;
        }
    }
    // Nothing more is expected from the client: drop whatever it sends.
    drain(socket);
    if let Source::Sending { sent, total } = state {
        // Twice at most: the free space may wrap around the ring buffer.
        while *sent < *total && socket.can_send() {
            let n = socket
                .send(|buffer| {
                    let n = (buffer.len() as u64).min(*total - *sent) as usize;
                    fill(&mut buffer[..n], *sent, pattern);
                    (n, n)
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            *sent += n as u64;
        }
        if *sent == *total {
            socket.close();
            *state = Source::Done;
        } else if !socket.may_send() {
            // The peer reset or the connection is otherwise done.
            *state = Source::Done;
        }
    }
}

/// Fills `buffer` with the pattern bytes from stream offset `offset` on.
fn fill(buffer: &mut [u8], offset: u64, pattern: &[u8]) {
    let mut phase = (offset % PERIOD as u64) as usize;
    for chunk in buffer.chunks_mut(CHUNK) {
        chunk.copy_from_slice(&pattern[phase..phase + chunk.len()]);
        phase = (phase + chunk.len()) % PERIOD;
    }
}
