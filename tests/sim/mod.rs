//! Deterministic simulation of two TCP stacks on an in-memory link.
//!
//! Two sans-IO cores (tunstack's [`tunstack::iface::Interface`], or one of
//! them replaced by smoltcp) face each other over a [`link::Link`] with a
//! seeded fault model, driven by a virtual clock: no threads, no real time,
//! so every run is a pure function of its seed. Each seed draws a
//! [`scenario::Scenario`] — the address family, stack configuration,
//! faults, and one to three connections with their transfer sizes,
//! read/write pacing and endings (graceful in every order, half-close,
//! abort) — and [`world::run`] plays it, checking that every byte arrives
//! exactly once and in order, that both connection tables drain, that
//! memory stays bounded, that every packet is of the run's family and fits
//! the MTU whole (no stack fragments a segment or drops one as too big),
//! and that the run ends within its virtual-time budget.
//!
//! One seed in three runs over IPv6 (drawn from its own hash of the seed,
//! so IPv4 seeds replay as they did before IPv6 was drawn): tunstack hosts
//! get fd00::1 and fd00::2 (/64) beside their IPv4 addresses, smoltcp an
//! IPv6 address, every connection goes to fd00::2, and a tunstack server
//! listens either there or on a dual-stack `[::]` (a smoltcp server on its
//! address or on any); the link is at least 1280 bytes (RFC 8200 §5). The
//! replay's first line names the family and the listener.
//!
//! One seed in three, in either family, runs over Ethernet (the medium is
//! drawn from yet another hash of the seed, so IP seeds replay exactly as
//! before; the first line says `over Ethernet` or `over IP`): the link
//! carries frames, a tunstack host is its `Interface` behind a
//! `tunstack::link::EthernetLink` with a locally administered MAC (as in
//! TAP mode; 12 ARP/ND requests before a neighbour is given up, duplicate
//! address detection off), and smoltcp runs `Medium::Ethernet`. ARP or
//! neighbour discovery runs for real: the first packets wait for it, and
//! lost requests and answers are retried. Every frame must come from its
//! host's MAC and carry ARP or an IP packet that passes the checks above;
//! corruption hits only the IP packet of frames that carry TCP (see
//! [`link`]).
//!
//! Environment:
//! - `TUNSTACK_SIM_SEEDS`: seeds per pairing (default 2000);
//! - `TUNSTACK_SIM_SEED_BASE`: first seed (default 0);
//! - `TUNSTACK_SIM_SEED`: replay that one seed with a per-packet trace (the
//!   sweeps then do nothing);
//! - `TUNSTACK_SIM_PAIR`: with `TUNSTACK_SIM_SEED`, which pairing
//!   (`tunstack`, `smoltcp-server`, `smoltcp-client`; default all three);
//! - `TUNSTACK_SIM_LOG`: the stacks' log level in a replay (default `debug`);
//! - `TUNSTACK_SIM_PROBE_MS`: in a replay, every host's connections (cwnd,
//!   ssthresh, pacing rate, BBR's model, …) every that many virtual ms;
//! - `TUNSTACK_SIM_CC`: every tunstack host runs this congestion control
//!   (`reno`, `cubic`, `bbr`, `bbr1`) instead of the one its seed draws,
//!   the rest of each scenario unchanged: a sweep of one algorithm (a
//!   replay needs the same setting). Known-bug seeds are listed for the
//!   drawn algorithms only.

pub mod app;
pub mod check;
pub mod goodput;
pub mod host;
pub mod link;
pub mod rng;
pub mod scenario;
pub mod smol;
pub mod trace;
pub mod world;

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant as WallClock;

use scenario::Pairing;

/// smoltcp bug: smoltcp enters LAST-ACK as soon as the application closes,
/// with data still queued (RFC 9293 §3.10.4 enters it only once the FIN is
/// sent), yet treats LAST-ACK as if only the FIN's ACK could arrive: an ACK
/// that acknowledges nothing new gets a challenge ACK and an early return
/// (socket/tcp.rs, the `(State::LastAck, TcpControl::None)` arm, "Duplicate
/// ACK; our FIN has not been acknowledged"). The peer's window updates never
/// register and duplicate ACKs never trigger fast retransmit, so the rest of
/// its data goes out only through zero-window probes and backed-off RTOs —
/// not within the run's 30 virtual minutes (the smoltcp socket is left in
/// LAST-ACK with data queued, the tunstack peer in FIN-WAIT-2).
const SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS: &str =
    "smoltcp in LAST-ACK drops non-advancing ACKs (no window update, no fast retransmit): its queued data stalls";

/// smoltcp bug: its keep-alive is `<SEQ=SND.NXT-1>` with one garbage octet
/// 0x00 (socket/tcp.rs, `is_keep_alive`), and it is sent whenever the timer
/// is idle — which smoltcp also sets after an RTO it could not act on (zero
/// window), with data still unacknowledged. SND.NXT-1 is then a byte the peer
/// has not received yet, inside its window: the peer stores 0x00 as that
/// byte and the application reads it (each failing seed's wrong byte sits
/// exactly at the sequence number of smoltcp's 1-byte keep-alives). RFC 9293
/// §3.8.4 keep-alives are for idle connections; Linux probes only with
/// nothing in flight.
const SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW: &str =
    "smoltcp sends its garbage-byte keep-alive with data unacknowledged: the 0x00 lands in the peer's stream";

/// smoltcp bug: in SYN-RECEIVED it drops a retransmitted SYN without a
/// word (socket/tcp.rs, `process`, the `(_, _, None)` arm: "expecting an
/// ACK"): no SYN-ACK again, not even the ACK RFC 9293 §3.10.7.4 sends for
/// an unacceptable segment. Its SYN-ACK goes out again only on its own
/// timer, doubling from 1 s up to 60 s (1, 3, 7, 15, 31, 63 s after the
/// first), however often the client asks, so when those few are lost
/// (smoltcp-server seed 1274, over IPv6: 17.5 % loss and 2.9 % corruption
/// towards the client took all six sent by 31 s) the tunstack client's
/// twelve retransmitted SYNs (5 s apart at its `max_rto`) run out at 57 s,
/// before the seventh: connect fails with `TimedOut`, the smoltcp listener
/// still in SYN-RECEIVED. Linux answers a retransmitted SYN in SYN-RECV
/// with its SYN-ACK (`tcp_check_req`). Since stop 22 no seed of the
/// 20,000 hits it (seed 1274's timing moved and it passes); kept for the
/// next one.
#[allow(dead_code)]
const SMOLTCP_IGNORES_SYN_IN_SYN_RECEIVED: &str =
    "smoltcp in SYN-RECEIVED ignores a retransmitted SYN: only its own backed-off SYN-ACKs, all lost, could complete the handshake";

/// Seeds that fail because of a known bug in a stack, skipped by the sweeps
/// until it is fixed: `(pairing, seed, what goes wrong)`. They still run: a
/// notice says when one passes and can be removed.
pub const KNOWN_BUGS: &[(&str, u64, &str)] = &[
    // smoltcp's own bugs, from the 50,000-seed release sweep (seeds
    // 0..50000 of each pairing) on the code that draws IPv6 for one seed in
    // three and, apart from it, Ethernet for one in three: every smoltcp
    // failure there is one of these three bugs (a smoltcp socket left in
    // LAST-ACK with data queued and the tunstack peer in FIN-WAIT-2; a
    // wrong 0x00 at exactly the sequence number of smoltcp's 1-byte
    // keep-alives; the handshake of seed 1274). Seeds marked v6 run over
    // IPv6, those marked eth over Ethernet. The IPv4 seeds over IP run as
    // they did before IPv6 was drawn, and fail on the main branch too:
    // those above 22000 were found by the IPv6 sweep, the list before it
    // being from stop 18's code (seven of its seeds pass on main now and
    // were removed, as were six more that now run over IPv6 and pass).
    // Ten seeds that now run over Ethernet pass and were removed (client
    // 2399, 3390, 7815, 26091, 32994, 34811, 41882, 44421; server 21221,
    // 26530); four still fail the same way over Ethernet (client 32929,
    // server 7852, 13301, 25978), and the Ethernet sweep added nine
    // (3512, 9514, 44176, 7505, 8684, 13150, 15004, 36009: LAST-ACK, the
    // smoltcp socket in LAST-ACK with data queued, the tunstack peer in
    // FIN-WAIT-2; 45493: its keep-alive at SND.NXT-1 = stream byte 25783,
    // read as 0x00).
    // Stop 20 (pacing for CUBIC and NewReno, a 40 ms delayed ACK) changed
    // the timing of every seed. Its 20,000-seed sweep (seeds 0..20000 of
    // each pairing) passes tunstack <-> tunstack; six smoltcp seeds fail,
    // every one the LAST-ACK bug (client 2407, 8834, 10624, 19683; server
    // 5537, 18401: the smoltcp socket in LAST-ACK with data queued, the
    // tunstack peer in FIN-WAIT-2 answering its keep-alives), and three
    // listed seeds pass now and were removed (client 17581; server 10410,
    // 13301). Seeds from 20000 up were not run again.
    // Stop 21 (RACK's zero reordering window in recovery, RFC 8985 §6.2)
    // moved the timing again: its 20,000-seed sweep passes tunstack <->
    // tunstack; smoltcp client 3539 (the keep-alive's 0x00 at stream byte
    // 88942, the FIN's place) and 5649 (LAST-ACK with 659 bytes queued, the
    // tunstack peer in FIN-WAIT-2) fail now and were added; server 5537
    // passes and was removed.
    // Stop 22 (the larger SACK scoreboard; loss detection before BBR takes
    // the ACK in) moved it again: client 3539 passes and was removed. The
    // send buffer set to two or three windows at once (808eb50's change)
    // moved it once more: client 391 and server 13951, 16449 (LAST-ACK with
    // 22128, 64149 and 8073 bytes queued, the tunstack peer in FIN-WAIT-2)
    // and server 6412 (the keep-alive's 0x00 at stream byte 38185) fail
    // and were added; server 1274 and 18401 pass and were removed.
    // Stop 23 (SetPipe counts a segment RACK found lost and resent once)
    // moved it again: client 241 (eth) and 8415 (v6) and server 2296 (eth)
    // fail with LAST-ACK (11839, 16136 and 29538 bytes queued, the tunstack
    // peer in FIN-WAIT-2 answering keep-alives), each replayed, and were
    // added; client 10624 and server 6412 pass and were removed.
    ("smoltcp-client", 241, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-client", 8415, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-server", 2296, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-client", 391, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 13951, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-server", 16449, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 5649, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 2407, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-client", 8834, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-client", 19683, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-client", 3512, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-client", 8968, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 9514, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6 eth
    ("smoltcp-client", 23825, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 26770, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 28287, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 32929, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-client", 34079, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 41275, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-client", 43455, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 44176, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6 eth
    ("smoltcp-client", 46024, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 47025, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-server", 7505, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),  // eth
    ("smoltcp-server", 7852, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),  // eth
    ("smoltcp-server", 8684, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),  // v6 eth
    ("smoltcp-server", 9195, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 13150, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-server", 13250, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 15004, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-server", 22959, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-server", 25978, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-server", 31765, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // v6
    ("smoltcp-server", 36009, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS), // eth
    ("smoltcp-client", 37907, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
    ("smoltcp-client", 46118, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
    ("smoltcp-server", 29568, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW), // v6
    ("smoltcp-server", 41122, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
    ("smoltcp-server", 41621, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW), // v6
    ("smoltcp-server", 45493, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW), // v6 eth
    ("smoltcp-server", 48257, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW), // v6
];

/// Seeds per pairing when `TUNSTACK_SIM_SEEDS` is not set.
pub const DEFAULT_SEEDS: u64 = 2000;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

/// The command that replays `seed` of `pairing` with a trace.
pub fn replay_command(pairing: Pairing, seed: u64) -> String {
    let cc = std::env::var("TUNSTACK_SIM_CC")
        .map(|cc| format!("TUNSTACK_SIM_CC={cc} "))
        .unwrap_or_default();
    format!(
        "{cc}TUNSTACK_SIM_SEED={seed} TUNSTACK_SIM_PAIR={} cargo test --test simulation -- --nocapture",
        pairing.name()
    )
}

/// Runs part `part` of `parts` of the pairing's seed range (seeds are
/// dealt round-robin so each part gets a similar mix) and fails with every
/// failing seed and its replay command.
pub fn sweep(pairing: Pairing, part: u64, parts: u64) {
    if std::env::var_os("TUNSTACK_SIM_SEED").is_some() {
        return; // a replay is running instead
    }
    let count = env_u64("TUNSTACK_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let base = env_u64("TUNSTACK_SIM_SEED_BASE").unwrap_or(0);
    let started = WallClock::now();
    let mut failures = Vec::new();
    let mut ran = 0u64;
    let mut totals = world::Outcome::default();
    let mut max_end = tunstack::time::Instant::ZERO;
    let mut slowest = (0, std::time::Duration::ZERO);
    for seed in (base..base + count).filter(|s| (s - base) % parts == part) {
        if let Some((_, _, why)) = KNOWN_BUGS
            .iter()
            .find(|(p, s, _)| *p == pairing.name() && *s == seed)
        {
            let passes = matches!(
                catch_unwind(|| world::run_seed(pairing, seed, false)),
                Ok(Ok(_))
            );
            // Straight to stderr: the test harness captures `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "{} {} seed {seed}: {why}",
                if passes {
                    "known bug now PASSES, remove it from KNOWN_BUGS:"
                } else {
                    "skipped: known bug,"
                },
                pairing.name()
            );
            continue;
        }
        ran += 1;
        let seed_started = WallClock::now();
        let result = catch_unwind(AssertUnwindSafe(|| world::run_seed(pairing, seed, false)));
        match result {
            Ok(Ok(o)) => {
                let took = seed_started.elapsed();
                if took > slowest.1 {
                    slowest = (seed, took);
                }
                totals.iterations += o.iterations;
                totals.bytes += o.bytes;
                totals.link.add(&o.link);
                totals.link_frames += o.link_frames;
                max_end = max_end.max(o.end);
            }
            Ok(Err(e)) => failures.push((seed, e)),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push((seed, format!("PANIC: {msg}")));
            }
        }
    }
    let l = &totals.link;
    eprintln!(
        "{} part {part}/{parts}: {ran} seeds in {:.1?}: {} bytes delivered, {} packets ({} lost, {} tail-dropped, {} duplicated, {} corrupted, {} reordered; {} ARP/ND frames), longest run {} virtual, slowest seed {} ({:.1?})",
        pairing.name(),
        started.elapsed(),
        totals.bytes,
        l.sent,
        l.lost,
        l.tail_dropped,
        l.duplicated,
        l.corrupted,
        l.reordered,
        totals.link_frames,
        max_end,
        slowest.0,
        slowest.1
    );
    if failures.is_empty() {
        return;
    }
    let mut msg = format!(
        "{} of {ran} {} seeds failed:\n",
        failures.len(),
        pairing.name()
    );
    for (seed, e) in &failures {
        let first = e.lines().next().unwrap_or("");
        msg.push_str(&format!(
            "  seed {seed}: {first}\n    replay: {}\n        or: scripts/sim.sh {seed} {}\n",
            replay_command(pairing, *seed),
            pairing.name()
        ));
    }
    if let Some((seed, e)) = failures.first() {
        msg.push_str(&format!("\nfirst failure (seed {seed}) in full:\n{e}\n"));
    }
    panic!("{msg}");
}

/// Replays `TUNSTACK_SIM_SEED` with a trace, if set.
pub fn replay_from_env() {
    let Some(seed) = env_u64("TUNSTACK_SIM_SEED") else {
        return;
    };
    let level = std::env::var("TUNSTACK_SIM_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Debug);
    trace::install(level);
    let wanted = std::env::var("TUNSTACK_SIM_PAIR").unwrap_or_default();
    let pairings: Vec<Pairing> = Pairing::ALL
        .into_iter()
        .filter(|p| wanted.is_empty() || wanted == "all" || wanted == p.name())
        .collect();
    assert!(
        !pairings.is_empty(),
        "TUNSTACK_SIM_PAIR={wanted:?}: expected tunstack, smoltcp-server or smoltcp-client"
    );
    let mut failed = Vec::new();
    for pairing in pairings {
        eprintln!("===== replay: {} seed {seed} =====", pairing.name());
        match world::run_seed(pairing, seed, true) {
            Ok(o) => eprintln!(
                "===== {} seed {seed}: OK at {} virtual, {} iterations, {} bytes delivered, link {:?}",
                pairing.name(),
                o.end,
                o.iterations,
                o.bytes,
                o.link
            ),
            Err(e) => {
                eprintln!("===== {} seed {seed}: FAILED\n{e}", pairing.name());
                failed.push(pairing.name());
            }
        }
    }
    assert!(failed.is_empty(), "seed {seed} failed for {failed:?}");
}
