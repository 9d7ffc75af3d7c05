//! What one seed runs: the stacks' configuration, the link's faults, and
//! for each connection what each application sends, how it paces its reads
//! and writes, and how the connection ends.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tunstack::link::{MacAddr, NeighbourConfig};
use tunstack::tcp::congestion::Algorithm;
use tunstack::tcp::{KeepaliveConfig, TcpConfig};
use tunstack::time::Instant;
use tunstack::{Config, Medium};

use super::link::FaultParams;
use super::rng::{mix, Rng};
use super::smol::SmolParams;

/// Which stacks face each other. Host 0 (10.0.0.1, fd00::1 over IPv6) is
/// always the client, host 1 (10.0.0.2, fd00::2) the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// tunstack client ↔ tunstack server.
    Tunstack,
    /// tunstack client ↔ smoltcp server.
    SmolServer,
    /// smoltcp client ↔ tunstack server.
    SmolClient,
}

impl Pairing {
    /// Every pairing.
    pub const ALL: [Pairing; 3] = [Pairing::Tunstack, Pairing::SmolServer, Pairing::SmolClient];

    /// The name used in messages and in `TUNSTACK_SIM_PAIR`.
    pub fn name(self) -> &'static str {
        match self {
            Pairing::Tunstack => "tunstack",
            Pairing::SmolServer => "smoltcp-server",
            Pairing::SmolClient => "smoltcp-client",
        }
    }

    /// Whether host `side` runs smoltcp.
    pub fn is_smoltcp(self, side: usize) -> bool {
        matches!(
            (self, side),
            (Pairing::SmolServer, 1) | (Pairing::SmolClient, 0)
        )
    }
}

/// The server's port.
pub const SERVER_PORT: u16 = 80;

impl Pairing {
    /// The port connection `conn` goes to. A tunstack server takes every
    /// connection on one listener; a smoltcp server gets one listening
    /// socket per port, because smoltcp hands a SYN to the first socket
    /// listening on its port even when another socket of the same port
    /// already holds that 4-tuple (smoltcp-server seed 1859, before this rule:
    /// a retransmitted SYN
    /// went to a second listener, whose SYN-ACK/RST then reset the client).
    pub fn server_port(self, conn: usize) -> u16 {
        if self.is_smoltcp(1) {
            SERVER_PORT + conn as u16
        } else {
            SERVER_PORT
        }
    }
}

/// The IPv4 address of host `side`.
pub fn host_addr(side: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1 + side as u8)
}

/// The IPv6 address of host `side` (a unique local address, RFC 4193, on
/// the link's /64).
pub fn host_addr6(side: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1 + side as u16)
}

/// The MAC of host `side` over Ethernet: unicast and locally administered
/// (the second-lowest bit of the first octet set, IEEE 802 / RFC 7042
/// §2.1), like a TAP's.
pub fn host_mac(side: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, 1 + side as u8])
}

/// The neighbour cache of a tunstack host over Ethernet: Linux's timers,
/// but 12 requests before a neighbour is given up rather than 3, for the
/// reason `syn_retries` is 12: at 20 % loss each way one request and its
/// answer fail 36 % of the time, so 3 would fail one resolution in twenty
/// and the connection with it (`HostUnreachable`); 12 fail about one in
/// 200,000.
pub fn neighbour_config() -> NeighbourConfig {
    NeighbourConfig {
        max_probes: 12,
        ..NeighbourConfig::default()
    }
}

/// The name of a medium in a replay's first line.
pub fn medium_name(m: Medium) -> &'static str {
    match m {
        Medium::Ip => "IP",
        Medium::Ethernet => "Ethernet",
    }
}

/// The prefix length of the link's IPv6 subnet.
pub const PREFIX6: u8 = 64;

/// The smallest link MTU IPv6 allows (RFC 8200 §5).
pub const IPV6_MIN_MTU: usize = 1280;

/// The address family of a run's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// When an endpoint sends its FIN (once it has sent everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutRule {
    /// As soon as everything is sent.
    WhenDone,
    /// Only after reading the peer's FIN (the peer closes first; data keeps
    /// flowing this way over the half-closed connection).
    AfterPeerEof,
    /// At this instant (both ends use the same one: simultaneous close).
    At(Instant),
}

/// How an endpoint cuts the connection short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortKind {
    /// `abort`: RST at once.
    Abort,
    /// `close` before the end (tunstack only: RST if data is left unread,
    /// otherwise FIN, then RST when more data arrives).
    CloseEarly,
}

/// When and how an endpoint aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortPlan {
    pub kind: AbortKind,
    /// Abort once this much is sent and `after_recv` received...
    pub after_sent: u64,
    pub after_recv: u64,
    /// ...or at this instant, whichever comes first.
    pub at: Instant,
}

/// One application endpoint's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPlan {
    /// Bytes to send.
    pub total: u64,
    /// Largest `send` call, bytes (each call is uniform in 1..=this).
    pub write_chunk: usize,
    /// Largest `recv` call, bytes.
    pub read_chunk: usize,
    /// `send` calls per wake-up.
    pub write_ops: u32,
    /// `recv` calls per wake-up.
    pub read_ops: u32,
    /// Longest pause when it stops with work left, µs.
    pub pace_us: u64,
    pub shut: ShutRule,
    /// Send the FIN with `close` rather than `shutdown` when the peer's FIN
    /// has already been read.
    pub fin_via_close: bool,
    /// Delay between finishing and releasing the handle, µs.
    pub linger_us: u64,
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    pub abort: Option<AbortPlan>,
}

/// How a connection is meant to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Client sends FIN first; the server keeps sending, then closes.
    ClientFirst,
    /// Server sends FIN first.
    ServerFirst,
    /// Both send FIN at the same instant.
    Simultaneous,
    /// Each sends FIN when done.
    Natural,
    /// One side (0 client, 1 server) aborts.
    Abort(usize),
}

/// One connection.
#[derive(Debug, Clone)]
pub struct ConnPlan {
    pub start: Instant,
    pub ending: Ending,
    /// `[client, server]`.
    pub ends: [EndpointPlan; 2],
}

/// Everything one seed runs.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub pairing: Pairing,
    pub seed: u64,
    /// The family every connection uses (both hosts keep their IPv4
    /// address; over IPv6 each also has its IPv6 one).
    pub family: Family,
    /// What the link carries: bare IP packets, or Ethernet frames between
    /// hosts that resolve each other with ARP or neighbour discovery.
    pub medium: Medium,
    /// The server listens on the unspecified address of the family rather
    /// than its own: a tunstack server on `[::]` (dual-stack) over IPv6, a
    /// smoltcp server on any address. Over IPv4 it is as it always was: a
    /// tunstack server on 10.0.0.2, a smoltcp server on any address.
    pub wildcard_listener: bool,
    pub mtu: usize,
    /// `faults[d]`: direction `d` (0: client → server).
    pub faults: [FaultParams; 2],
    /// tunstack configuration of each host (unused for a smoltcp host).
    pub tun: [Config; 2],
    pub keepalive: KeepaliveConfig,
    pub smol: SmolParams,
    pub conns: Vec<ConnPlan>,
}

impl Scenario {
    /// The scenario of `seed` for `pairing`.
    pub fn generate(pairing: Pairing, seed: u64) -> Scenario {
        let salt = match pairing {
            Pairing::Tunstack => 0,
            Pairing::SmolServer => 0x5301,
            Pairing::SmolClient => 0x5302,
        };
        let mut rng = Rng::new(mix(seed) ^ salt);
        let mtu = rng.pick(&[576, 1280, 1500, 1500]);
        let mut faults = [
            FaultParams::random(&mut rng.fork(1)),
            FaultParams::random(&mut rng.fork(2)),
        ];
        for (dir, f) in faults.iter_mut().enumerate() {
            if pairing.is_smoltcp(dir) {
                // smoltcp's default features have no congestion control: it
                // sends its whole window at once, and a 16-packet queue then
                // drops most of every burst, so it advances one 60 s RTO at
                // a time and runs out of virtual time (seen in
                // smoltcp-server seed 5586 of a 50,000-seed sweep). That
                // tests nothing in tunstack: give its bursts room.
                f.queue = f.queue.max(256);
            }
        }
        let mut tun = [tun_config(&mut rng, 0), tun_config(&mut rng, 1)];
        // Each host's congestion control, from the seed alone (no draw from
        // `rng`, so the rest of every scenario stays what it was).
        for (side, t) in tun.iter_mut().enumerate() {
            let pick = mix(seed ^ salt ^ (0xCC_0000 + side as u64)) % 3;
            t.tcp.congestion =
                [Algorithm::Cubic, Algorithm::NewReno, Algorithm::Bbr][pick as usize];
            if let Some(cc) = forced_congestion() {
                t.tcp.congestion = cc;
            }
        }
        let smol = SmolParams {
            rx_buffer: rng.pick(&[4096, 16384, 65535]),
            tx_buffer: rng.pick(&[4096, 16384, 65535]),
            nagle: rng.chance(0.5),
            ack_delay_ms: rng.pick(&[None, Some(10), Some(100)]),
            keepalive_ms: 10_000,
        };
        let n = rng.range_usize(1, 3);
        let mut conns = Vec::with_capacity(n);
        for c in 0..n {
            let mut r = rng.fork(100 + c as u64);
            conns.push(conn_plan(&mut r, pairing));
        }
        let scenario = Scenario {
            pairing,
            seed,
            family: Family::V4,
            medium: Medium::Ip,
            wildcard_listener: pairing.is_smoltcp(1),
            mtu,
            faults,
            tun,
            keepalive: KeepaliveConfig {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(2),
                count: 12,
            },
            smol,
            conns,
        };
        // The family and the listener, like the congestion control, from
        // the seed alone: every other draw stays what it was, so an IPv4
        // seed runs exactly as before IPv6 was drawn. One seed in three
        // runs over IPv6, half of those to a wildcard listener.
        let scenario = if mix(seed ^ salt ^ 0xFA_0006) % 3 == 0 {
            let wildcard = mix(seed ^ salt ^ 0xFA_0001) % 2 == 0;
            scenario.over_ipv6(wildcard)
        } else {
            scenario
        };
        // The medium the same way, from its own hash: one seed in three
        // runs over Ethernet, and an IP seed runs exactly as before the
        // medium was drawn.
        if mix(seed ^ salt ^ 0xE7_0002) % 3 == 0 {
            scenario.over_ethernet()
        } else {
            scenario
        }
    }

    /// This scenario over Ethernet: each host has its MAC
    /// ([`host_mac`]) and resolves the other with ARP (IPv4) or neighbour
    /// discovery (IPv6), a tunstack host through an `EthernetLink` with
    /// [`neighbour_config`]. Duplicate address detection is off
    /// (`dad_transmits` 0, as `nodad`): each address is the only one of its
    /// kind on the link by construction, and the probe would hold every
    /// IPv6 connection back a second for nothing. The MTU stays the IP
    /// MTU: frames are 14 bytes longer.
    pub fn over_ethernet(mut self) -> Scenario {
        self.medium = Medium::Ethernet;
        for (side, t) in self.tun.iter_mut().enumerate() {
            t.medium = Medium::Ethernet;
            t.mac = Some(host_mac(side));
            t.neighbours = neighbour_config();
            t.dad_transmits = 0;
        }
        self
    }

    /// This scenario with its connections over IPv6: each tunstack host
    /// gets its IPv6 address, the MTU is raised to IPv6's minimum, and the
    /// server listens on its IPv6 address or (`wildcard`) on the
    /// unspecified one.
    pub fn over_ipv6(mut self, wildcard: bool) -> Scenario {
        self.family = Family::V6;
        self.wildcard_listener = wildcard;
        // RFC 8200 §5: every link carrying IPv6 has an MTU of 1280 or more.
        self.mtu = self.mtu.max(IPV6_MIN_MTU);
        for (side, t) in self.tun.iter_mut().enumerate() {
            t.addr6 = Some((host_addr6(side), PREFIX6));
        }
        self
    }

    /// The address of host `side` in this run's family.
    pub fn host_ip(&self, side: usize) -> IpAddr {
        match self.family {
            Family::V4 => host_addr(side).into(),
            Family::V6 => host_addr6(side).into(),
        }
    }

    /// The address the server listens on (the unspecified one of the
    /// family for a wildcard listener).
    pub fn listen_ip(&self) -> IpAddr {
        match (self.wildcard_listener, self.family) {
            (false, _) => self.host_ip(1),
            (true, Family::V4) => Ipv4Addr::UNSPECIFIED.into(),
            (true, Family::V6) => Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    /// Where connection `conn` connects to.
    pub fn server_addr(&self, conn: usize) -> SocketAddr {
        SocketAddr::new(self.host_ip(1), self.pairing.server_port(conn))
    }
}

fn tun_config(rng: &mut Rng, side: usize) -> Config {
    let tcp = TcpConfig {
        send_buffer: rng.pick(&[2048, 8192, 65536, 262_144]),
        recv_buffer: rng.pick(&[2048, 8192, 65536, 262_144]),
        window_scaling: rng.chance(0.85),
        max_rto: Duration::from_secs(rng.pick(&[5, 30, 60])),
        // Enough that a SYN survives 20 % loss both ways (0.36^13 ≈ 2e-6).
        syn_retries: 12,
        synack_retries: 12,
        msl: Duration::from_secs(1),
        fin_wait2_timeout: Duration::from_secs(10),
        delayed_ack: Duration::from_millis(rng.pick(&[40, 200])),
        max_connections: 16,
        ..TcpConfig::default()
    };
    Config {
        addr: host_addr(side),
        tcp,
        // A fixed seed: without one the core draws its ISN secret from the
        // system, and runs would not repeat.
        seed: Some(rng.next_u64()),
        ..Config::default()
    }
}

/// Bytes one direction carries: sometimes nothing, mostly tens of KB,
/// sometimes up to 200 KB.
fn transfer_size(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        0..=1 => 0,
        2..=7 => rng.range(1, 3000),
        8..=16 => rng.range(3000, 40_000),
        _ => rng.range(40_000, 200_000),
    }
}

fn endpoint_plan(rng: &mut Rng, total: u64, smoltcp: bool) -> EndpointPlan {
    // Keep the number of calls bounded: no 1-byte writes of 200 KB.
    let min_chunk = (total / 1000).max(1) as usize;
    let write_chunk = rng
        .pick(&[64, 536, 1460, 4096, 16384, 65536])
        .max(min_chunk);
    let style = rng.below(4);
    let (read_chunk, read_ops, pace_us) = match style {
        // Greedy.
        0 | 1 => (rng.pick(&[1460, 4096, 65536]), 64, rng.range(0, 1000)),
        // Paced.
        2 => (rng.pick(&[536, 1460, 8192]), rng.range(1, 4) as u32, 20_000),
        // Slow reader: small reads, long pauses (zero windows, persist).
        _ => (rng.pick(&[128, 512, 1024]), 1, 100_000),
    };
    let (read_chunk, read_ops, pace_us) = if smoltcp {
        // smoltcp drops unread data when its TIME-WAIT ends (socket and
        // buffer are one object): its applications read promptly.
        (read_chunk.max(1460), read_ops.max(16), pace_us.min(20_000))
    } else {
        (read_chunk.max(min_chunk), read_ops, pace_us)
    };
    EndpointPlan {
        total,
        write_chunk,
        read_chunk,
        write_ops: rng.pick(&[1, 4, 64]),
        read_ops,
        pace_us,
        shut: ShutRule::WhenDone,
        fin_via_close: rng.chance(0.5),
        linger_us: if rng.chance(0.5) {
            0
        } else {
            rng.range(0, 2_000_000)
        },
        nodelay: rng.chance(0.3),
        abort: None,
    }
}

fn conn_plan(rng: &mut Rng, pairing: Pairing) -> ConnPlan {
    let start = Instant::from_micros(rng.range(0, 500_000));
    let mut ends = [0, 1].map(|side| {
        let total = transfer_size(rng);
        endpoint_plan(rng, total, pairing.is_smoltcp(side))
    });
    let ending = match rng.below(10) {
        0..=1 => Ending::ClientFirst,
        2..=3 => Ending::ServerFirst,
        4..=5 => Ending::Simultaneous,
        6 => Ending::Natural,
        _ => Ending::Abort(rng.below(2) as usize),
    };
    let graceful = match ending {
        // The non-aborting end follows one of the graceful orders.
        Ending::Abort(_) => rng.pick(&[
            Ending::ClientFirst,
            Ending::ServerFirst,
            Ending::Simultaneous,
            Ending::Natural,
        ]),
        e => e,
    };
    let close_at = start + Duration::from_micros(rng.range(0, 2_000_000));
    let rules = match graceful {
        Ending::ClientFirst => [ShutRule::WhenDone, ShutRule::AfterPeerEof],
        Ending::ServerFirst => [ShutRule::AfterPeerEof, ShutRule::WhenDone],
        Ending::Simultaneous => [ShutRule::At(close_at), ShutRule::At(close_at)],
        _ => [ShutRule::WhenDone, ShutRule::WhenDone],
    };
    for (end, rule) in ends.iter_mut().zip(rules) {
        end.shut = rule;
    }
    if let Ending::Abort(side) = ending {
        let kind = if pairing.is_smoltcp(side) || rng.chance(0.6) {
            AbortKind::Abort
        } else {
            AbortKind::CloseEarly
        };
        let peer_total = ends[1 - side].total;
        let plan = if rng.chance(0.5) {
            AbortPlan {
                kind,
                after_sent: rng.range(0, ends[side].total),
                after_recv: rng.range(0, peer_total),
                at: start + Duration::from_secs(60),
            }
        } else {
            AbortPlan {
                kind,
                after_sent: u64::MAX,
                after_recv: u64::MAX,
                at: start + Duration::from_micros(rng.range(0, 3_000_000)),
            }
        };
        ends[side].abort = Some(plan);
    }
    ConnPlan {
        start,
        ending,
        ends,
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} pairing {} {} over {} mtu {} listener {}",
            self.seed,
            self.pairing.name(),
            self.family,
            medium_name(self.medium),
            self.mtu,
            SocketAddr::new(self.listen_ip(), SERVER_PORT)
        )?;
        for (d, p) in self.faults.iter().enumerate() {
            writeln!(f, "  link {}: {p}", if d == 0 { "A>B" } else { "B>A" })?;
        }
        for side in 0..2 {
            let mac = match self.medium {
                Medium::Ip => String::new(),
                Medium::Ethernet => format!(" mac {}", host_mac(side)),
            };
            if self.pairing.is_smoltcp(side) {
                writeln!(f, "  host {side}{mac}: smoltcp {:?}", self.smol)?;
            } else {
                let t = &self.tun[side].tcp;
                writeln!(
                    f,
                    "  host {side}{mac}: tunstack sndbuf {} rcvbuf {} wscale {} max_rto {:?} delack {:?} cc {}",
                    t.send_buffer, t.recv_buffer, t.window_scaling, t.max_rto, t.delayed_ack, t.congestion
                )?;
            }
        }
        for (i, c) in self.conns.iter().enumerate() {
            writeln!(f, "  conn {i}: start {} ending {:?}", c.start, c.ending)?;
            for (side, e) in c.ends.iter().enumerate() {
                writeln!(f, "    {}: {e:?}", ["client", "server"][side])?;
            }
        }
        Ok(())
    }
}

/// `TUNSTACK_SIM_CC`, when set: the congestion control every tunstack host
/// runs. A name tunstack does not know stops the run.
fn forced_congestion() -> Option<Algorithm> {
    let name = std::env::var("TUNSTACK_SIM_CC").ok()?;
    match name.parse() {
        Ok(cc) => Some(cc),
        Err(e) => panic!("TUNSTACK_SIM_CC: {e}"),
    }
}
