//! Goodput of one bulk transfer through a lossy bottleneck, on the
//! simulation's virtual clock.
//!
//! Unlike the sweeps, whose scenarios a seed draws at random, this builds
//! its [`Scenario`] by hand: one connection on which the client (the
//! sender) writes [`Transfer::bytes`] and the server (the receiver) only
//! reads, over a link with
//!
//! - a fixed one-way delay of [`ONE_WAY_DELAY_US`] each way (20 ms RTT),
//!   no jitter, reordering, duplication or corruption;
//! - a bottleneck of [`RATE`] bytes/s (100 Mbit/s) each way, serializing
//!   packets one after the other;
//! - a drop-tail queue of [`QUEUE`] packets per direction. The link counts
//!   every packet from its send to its delivery, those on the wire
//!   included: 10 ms at 100 Mbit/s holds about 83 full-size packets, so
//!   256 leaves about 173 waiting to be serialized, one bandwidth-delay
//!   product (20 ms × 12.5 MB/s = 250 KB, 167 packets of 1500 bytes). One
//!   BDP is the classic buffer for one flow (Villamizar and Song): a
//!   sender that halves its window after a drop-tail loss still keeps the
//!   link busy, and a slow start that overshoots is cut short by drops as
//!   it would be on a real path; it is also one of the queue sizes the
//!   sweeps draw;
//! - random loss of [`Transfer::loss`] on each direction, data and ACKs
//!   alike.
//!
//! Goodput is the bytes the receiving application read divided by the
//! virtual time from `connect` to its last read; the run itself checks,
//! as every sweep does, that each byte arrived exactly once and in order
//! and that both ends closed cleanly. Best case: the link carries 1448
//! payload bytes (with timestamps) per 1500-byte packet, so no sender can
//! beat [`ceiling_mbps`] (96.5 Mbit/s), less its handshake and slow start.

use std::fmt::Write as _;
use std::time::Duration;

use tunstack::tcp::congestion::Algorithm;
use tunstack::tcp::{KeepaliveConfig, TcpConfig};
use tunstack::time::Instant;
use tunstack::Config;

use super::link::{FaultParams, LinkCounters};
use super::rng::mix;
use super::scenario::{
    host_addr, ConnPlan, Ending, EndpointPlan, Family, Pairing, Scenario, ShutRule,
};
use super::smol::SmolParams;
use super::world::{self, Hooks};

/// One-way propagation delay, µs (10 ms each way: a 20 ms RTT).
pub const ONE_WAY_DELAY_US: u64 = 10_000;
/// Bottleneck rate each way, bytes per second (100 Mbit/s).
pub const RATE: u64 = 12_500_000;
/// Packets in flight per direction before tail drop (about one BDP queued
/// behind about half a BDP on the wire; see the module docs).
pub const QUEUE: usize = 256;
/// The link MTU.
pub const MTU: usize = 1500;
/// Socket buffers of a smoltcp peer, each way: tunstack's default starting
/// buffers (256 KiB), just over one BDP, so a smoltcp receiver's window
/// does not cap it below the bottleneck at 0 % loss.
pub const SMOLTCP_BUFFER: usize = 256 * 1024;

/// The tunstack senders of the full table, by [`Peer::parse`] name: the
/// stack before issue 12 (NewReno without SACK), then each algorithm with
/// SACK, and CUBIC without.
pub const TABLE_SENDERS: [&str; 6] = [
    "reno-nosack",
    "reno",
    "cubic-nosack",
    "cubic",
    "bbr",
    "bbr1",
];

/// One end of the transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// tunstack with this congestion control, SACK on or off (timestamps
    /// and RACK as by default).
    Tunstack { congestion: Algorithm, sack: bool },
    /// smoltcp 0.14 with its default features: no congestion control.
    Smoltcp,
}

impl Peer {
    /// tunstack with `congestion` and SACK.
    pub const fn tunstack(congestion: Algorithm) -> Peer {
        Peer::Tunstack {
            congestion,
            sack: true,
        }
    }

    /// tunstack with `congestion` and SACK off (neither offered nor taken).
    pub const fn tunstack_no_sack(congestion: Algorithm) -> Peer {
        Peer::Tunstack {
            congestion,
            sack: false,
        }
    }

    /// Parses a name of `TUNSTACK_GOODPUT_REPLAY`: `reno`, `cubic`, `bbr`, …
    /// (tunstack with SACK), `tunstack` (its default, CUBIC), each with
    /// `-nosack` for SACK off, or `smoltcp`.
    pub fn parse(name: &str) -> Option<Peer> {
        let (cc, sack) = match name.strip_suffix("-nosack") {
            Some(cc) => (cc, false),
            None => (name, true),
        };
        let congestion = match cc {
            "smoltcp" if sack => return Some(Peer::Smoltcp),
            "tunstack" => Algorithm::default(),
            cc => cc.parse().ok()?,
        };
        Some(Peer::Tunstack { congestion, sack })
    }

    /// The name [`Peer::parse`] reads back (for a replay command). The
    /// receiver's own congestion control plays no part here.
    pub fn spec(self) -> String {
        match self {
            Peer::Tunstack {
                congestion,
                sack: true,
            } => congestion.to_string(),
            Peer::Tunstack {
                congestion,
                sack: false,
            } => format!("{congestion}-nosack"),
            Peer::Smoltcp => "smoltcp".to_string(),
        }
    }

    /// The name of a receiving peer (its congestion control plays no part).
    pub fn receiver_name(self) -> String {
        match self {
            Peer::Tunstack { sack: true, .. } => "tunstack".to_string(),
            Peer::Tunstack { sack: false, .. } => "tunstack, no SACK".to_string(),
            Peer::Smoltcp => "smoltcp".to_string(),
        }
    }

    /// A short name for the table.
    pub fn name(self) -> String {
        match self {
            Peer::Tunstack {
                congestion,
                sack: true,
            } => format!("tunstack {congestion}"),
            Peer::Tunstack {
                congestion,
                sack: false,
            } => format!("tunstack {congestion}, no SACK"),
            Peer::Smoltcp => "smoltcp".to_string(),
        }
    }
}

/// One measured transfer: who sends to whom, how much, through what loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    pub sender: Peer,
    pub receiver: Peer,
    /// Random loss on each direction (0.01 is 1 %).
    pub loss: f64,
    /// Bytes the sender writes.
    pub bytes: u64,
    /// Seeds the link's loss draws, the stacks' ISNs and the stream.
    pub seed: u64,
}

/// What one transfer achieved.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Application bytes read by the receiver (all of them: the run
    /// fails otherwise).
    pub bytes: u64,
    /// Virtual time from `connect` to the last byte read.
    pub elapsed: Duration,
    /// Both directions of the link, counted.
    pub link: LinkCounters,
}

impl Measurement {
    /// Goodput in Mbit/s.
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// The best goodput the bottleneck allows: [`RATE`] times the share of
/// payload in a full-size packet with the timestamps option (1448 of 1500
/// bytes).
pub fn ceiling_mbps() -> f64 {
    RATE as f64 * 8.0 / 1e6 * 1448.0 / MTU as f64
}

fn tunstack_config(side: usize, seed: u64, peer: Peer) -> Config {
    let (congestion, sack) = match peer {
        Peer::Tunstack { congestion, sack } => (congestion, sack),
        Peer::Smoltcp => (Algorithm::default(), true),
    };
    Config {
        addr: host_addr(side),
        tcp: TcpConfig {
            congestion,
            sack,
            // Short TIME-WAIT: the run ends soon after the transfer (the
            // goodput stops at the last read anyway).
            msl: Duration::from_secs(1),
            max_connections: 16,
            ..TcpConfig::default()
        },
        // A fixed ISN secret, so runs repeat.
        seed: Some(mix(seed ^ (0x600d + side as u64))),
        ..Config::default()
    }
}

/// The application at one end: a greedy writer or a greedy reader.
fn endpoint(total: u64, shut: ShutRule) -> EndpointPlan {
    EndpointPlan {
        total,
        write_chunk: 65536,
        read_chunk: 65536,
        write_ops: 64,
        read_ops: 64,
        pace_us: 0,
        shut,
        fin_via_close: false,
        linger_us: 0,
        nodelay: false,
        abort: None,
    }
}

/// The scenario of `t` (see the module docs).
pub fn scenario(t: &Transfer) -> Scenario {
    let pairing = match (t.sender, t.receiver) {
        (Peer::Tunstack { .. }, Peer::Tunstack { .. }) => Pairing::Tunstack,
        (Peer::Tunstack { .. }, Peer::Smoltcp) => Pairing::SmolServer,
        (Peer::Smoltcp, Peer::Tunstack { .. }) => Pairing::SmolClient,
        (Peer::Smoltcp, Peer::Smoltcp) => panic!("the simulation has no smoltcp ↔ smoltcp pairing"),
    };
    let faults = FaultParams {
        loss: t.loss,
        delay_us: ONE_WAY_DELAY_US,
        rate: Some(RATE),
        queue: QUEUE,
        ..FaultParams::perfect()
    };
    Scenario {
        pairing,
        seed: t.seed,
        // Over IPv4: the ceiling counts its 20-byte header.
        family: Family::V4,
        medium: tunstack::Medium::Ip,
        wildcard_listener: pairing.is_smoltcp(1),
        mtu: MTU,
        faults: [faults.clone(), faults],
        tun: [
            tunstack_config(0, t.seed, t.sender),
            tunstack_config(1, t.seed, t.receiver),
        ],
        // Keepalive stays idle through any transfer here.
        keepalive: KeepaliveConfig {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        },
        smol: SmolParams {
            rx_buffer: SMOLTCP_BUFFER,
            tx_buffer: SMOLTCP_BUFFER,
            nagle: true,
            // smoltcp's default delayed ACK.
            ack_delay_ms: Some(10),
            keepalive_ms: 0,
        },
        conns: vec![ConnPlan {
            start: Instant::ZERO,
            // The sender closes when done; the receiver after reading its
            // FIN.
            ending: Ending::ClientFirst,
            ends: [
                endpoint(t.bytes, ShutRule::WhenDone),
                endpoint(0, ShutRule::AfterPeerEof),
            ],
        }],
    }
}

impl Transfer {
    /// Parses `SENDER,RECEIVER,LOSS%,SEED[,MIB]` (as `bbr,tunstack,1,3`;
    /// the peers as [`Peer::parse`] reads them; 4 MiB unless given).
    pub fn parse(spec: &str) -> Result<Transfer, String> {
        let f: Vec<&str> = spec.split(',').map(str::trim).collect();
        let usage =
            || format!("{spec:?}: expected SENDER,RECEIVER,LOSS%,SEED[,MIB] as bbr,tunstack,1,3");
        if !(4..=5).contains(&f.len()) {
            return Err(usage());
        }
        let peer = |s: &str| Peer::parse(s).ok_or_else(usage);
        let loss: f64 = f[2].trim_end_matches('%').parse().map_err(|_| usage())?;
        let mib: u64 = f.get(4).map_or(Ok(4), |m| m.parse()).map_err(|_| usage())?;
        Ok(Transfer {
            sender: peer(f[0])?,
            receiver: peer(f[1])?,
            loss: loss / 100.0,
            bytes: mib << 20,
            seed: f[3].parse().map_err(|_| usage())?,
        })
    }
}

/// Runs `t` with the per-packet trace and the stacks' log on stderr.
pub fn replay(t: &Transfer) -> Result<Measurement, String> {
    let s = scenario(t);
    eprintln!("{s}");
    run(&s, true)
}

/// Runs `t`; fails as a sweep's seed does (a byte lost, duplicated or out
/// of order, an unclean close, a stall), with the scenario appended.
pub fn measure(t: &Transfer) -> Result<Measurement, String> {
    let s = scenario(t);
    run(&s, false).map_err(|e| format!("{e}\n{s}"))
}

fn run(s: &Scenario, verbose: bool) -> Result<Measurement, String> {
    let o = world::run(s, verbose, Hooks::default())?;
    Ok(Measurement {
        bytes: o.bytes,
        elapsed: o.last_read.saturating_duration_since(s.conns[0].start),
        link: o.link,
    })
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// How one run of a sweep ended.
#[derive(Debug, Clone)]
pub enum Run {
    /// Every byte delivered once, in order, and both ends closed.
    Done(Measurement),
    /// Still transferring when the run's virtual-time budget
    /// ([`world::BUDGET`], 30 minutes) ran out: a goodput below
    /// `bytes / BUDGET`, and nothing wrong seen so far (every read is
    /// checked as it happens).
    Unfinished(String),
    /// A broken invariant: a byte lost, duplicated or out of order, an
    /// unclean close, a stall with nothing scheduled, a panic.
    Failed(String),
}

impl Run {
    fn classify(r: Result<Measurement, String>) -> Run {
        match r {
            Ok(m) => Run::Done(m),
            // world.rs's words for a run out of virtual time.
            Err(e) if e.contains("STALL: not finished within") => Run::Unfinished(e),
            Err(e) => Run::Failed(e),
        }
    }
}

/// One cell of the table: every seed's run of one pairing at one loss.
#[derive(Debug, Clone)]
pub struct Cell {
    pub sender: Peer,
    pub receiver: Peer,
    pub loss: f64,
    /// Bytes per transfer.
    pub bytes: u64,
    /// Each seed's run.
    pub runs: Vec<(u64, Run)>,
}

impl Cell {
    /// The completed runs.
    pub fn measured(&self) -> impl Iterator<Item = &Measurement> {
        self.runs.iter().filter_map(|(_, r)| match r {
            Run::Done(m) => Some(m),
            _ => None,
        })
    }

    /// Runs out of virtual time.
    pub fn unfinished(&self) -> usize {
        self.runs
            .iter()
            .filter(|(_, r)| matches!(r, Run::Unfinished(_)))
            .count()
    }

    /// The failed runs: `(seed, why)`.
    pub fn failures(&self) -> impl Iterator<Item = (u64, &str)> {
        self.runs.iter().filter_map(|(seed, r)| match r {
            Run::Failed(e) => Some((*seed, e.as_str())),
            _ => None,
        })
    }

    /// The median goodput over the seeds, Mbit/s, an unfinished run
    /// counting as `bytes / BUDGET` (an upper bound of its goodput); NaN
    /// with no run to count.
    pub fn median_mbps(&self) -> f64 {
        let bound = self.bytes as f64 * 8.0 / world::BUDGET.as_secs_f64() / 1e6;
        let mut v: Vec<f64> = self.measured().map(Measurement::mbps).collect();
        v.extend(std::iter::repeat_n(bound, self.unfinished()));
        median(&v)
    }

    fn min_max(&self) -> (f64, f64) {
        self.measured()
            .map(Measurement::mbps)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), m| {
                (lo.min(m), hi.max(m))
            })
    }

    /// Packets the bottleneck queue dropped, mean per successful run.
    pub fn mean_tail_drops(&self) -> f64 {
        let (n, sum) = self
            .measured()
            .fold((0u64, 0u64), |(n, s), m| (n + 1, s + m.link.tail_dropped));
        sum as f64 / n.max(1) as f64
    }
}

/// Runs every `(sender, receiver)` pair at every loss on `seeds`, `bytes`
/// each. A failed run (a broken delivery, a stall) is kept in its cell,
/// not fatal: the caller reports them all ([`failure_report`]).
pub fn sweep(
    pairs: &[(Peer, Peer)],
    losses: &[f64],
    seeds: std::ops::RangeInclusive<u64>,
    bytes: u64,
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &(sender, receiver) in pairs {
        for &loss in losses {
            let runs = seeds
                .clone()
                .map(|seed| {
                    let t = Transfer {
                        sender,
                        receiver,
                        loss,
                        bytes,
                        seed,
                    };
                    (seed, Run::classify(measure(&t)))
                })
                .collect();
            cells.push(Cell {
                sender,
                receiver,
                loss,
                bytes,
                runs,
            });
        }
    }
    cells
}

/// The replay command of one run.
pub fn replay_command(c: &Cell, seed: u64) -> String {
    format!(
        "TUNSTACK_GOODPUT_REPLAY={},{},{},{seed},{} cargo test --release --test simulation goodput_replay -- --nocapture",
        c.sender.spec(),
        c.receiver.spec(),
        c.loss * 100.0,
        c.bytes >> 20
    )
}

/// The runs of `cells` that ran out of virtual time, one line each with
/// its replay command (empty if none).
pub fn unfinished_report(cells: &[Cell]) -> String {
    let mut out = String::new();
    for c in cells {
        for (seed, r) in &c.runs {
            if let Run::Unfinished(e) = r {
                let _ = writeln!(
                    out,
                    "  unfinished: {} -> {} loss {} % seed {seed}: {}\n    replay: {}",
                    c.sender.name(),
                    c.receiver.receiver_name(),
                    c.loss * 100.0,
                    e.lines().next().unwrap_or(""),
                    replay_command(c, *seed)
                );
            }
        }
    }
    out
}

/// Every failed run of `cells`, one line each with its replay command,
/// then the first in full; `None` if none failed.
pub fn failure_report(cells: &[Cell]) -> Option<String> {
    let mut out = String::new();
    let mut first = None;
    for c in cells {
        for (seed, e) in c.failures() {
            let _ = writeln!(
                out,
                "  {} -> {} loss {} % seed {seed}: {}\n    replay: {}",
                c.sender.name(),
                c.receiver.receiver_name(),
                c.loss * 100.0,
                e.lines().next().unwrap_or(""),
                replay_command(c, seed)
            );
            first.get_or_insert(e);
        }
    }
    first.map(|e| format!("failed runs:\n{out}\nthe first in full:\n{e}"))
}

/// The cells as markdown: one row per pair, one column per loss; each cell
/// is the median goodput in Mbit/s with the completed runs' range (and how
/// many ran out of virtual time or failed), then a second table of the
/// mean packets per run the bottleneck queue dropped.
pub fn markdown(cells: &[Cell]) -> String {
    let mut losses: Vec<f64> = Vec::new();
    let mut pairs: Vec<(Peer, Peer)> = Vec::new();
    for c in cells {
        if !losses.contains(&c.loss) {
            losses.push(c.loss);
        }
        if !pairs.contains(&(c.sender, c.receiver)) {
            pairs.push((c.sender, c.receiver));
        }
    }
    let cell = |p: &(Peer, Peer), loss: f64| {
        cells
            .iter()
            .find(|c| (c.sender, c.receiver) == *p && c.loss == loss)
    };
    let header = |out: &mut String, first: &str| {
        let _ = write!(out, "| {first} |");
        for l in &losses {
            let _ = write!(out, " {} % |", l * 100.0);
        }
        let _ = write!(out, "\n|---|");
        for _ in &losses {
            out.push_str("---:|");
        }
        out.push('\n');
    };
    let mut out = String::new();
    header(&mut out, "sender → receiver (Mbit/s: median, min–max)");
    for p in &pairs {
        let _ = write!(out, "| {} → {} |", p.0.name(), p.1.receiver_name());
        for &l in &losses {
            match cell(p, l) {
                Some(c) => {
                    let (lo, hi) = c.min_max();
                    let _ = write!(out, " **{:.2}**", c.median_mbps());
                    if c.measured().count() > 1 {
                        let _ = write!(out, " ({lo:.2}–{hi:.2})");
                    }
                    let unfinished = c.unfinished();
                    if unfinished > 0 {
                        let _ = write!(out, " {unfinished} unfinished");
                    }
                    let failed = c.failures().count();
                    if failed > 0 {
                        let _ = write!(out, " {failed} FAILED");
                    }
                    out.push_str(" |");
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    header(&mut out, "sender → receiver (queue drops per run)");
    for p in &pairs {
        let _ = write!(out, "| {} → {} |", p.0.name(), p.1.receiver_name());
        for &l in &losses {
            match cell(p, l) {
                Some(c) => {
                    let _ = write!(out, " {:.0} |", c.mean_tail_drops());
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out
}
