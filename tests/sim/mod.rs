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
//! Environment:
//! - `TUNSTACK_SIM_SEEDS`: seeds per pairing (default 2000);
//! - `TUNSTACK_SIM_SEED_BASE`: first seed (default 0);
//! - `TUNSTACK_SIM_SEED`: replay that one seed with a per-packet trace (the
//!   sweeps then do nothing);
//! - `TUNSTACK_SIM_PAIR`: with `TUNSTACK_SIM_SEED`, which pairing
//!   (`tunstack`, `smoltcp-server`, `smoltcp-client`; default all three);
//! - `TUNSTACK_SIM_LOG`: the stacks' log level in a replay (default `debug`);
//! - `TUNSTACK_SIM_PROBE_MS`: in a replay, every host's connections (cwnd,
//!   ssthresh, pacing rate, BBR's model, …) every that many virtual ms.

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

/// Seeds that fail because of a known bug in a stack, skipped by the sweeps
/// until it is fixed: `(pairing, seed, what goes wrong)`. They still run: a
/// notice says when one passes and can be removed.
pub const KNOWN_BUGS: &[(&str, u64, &str)] = &[
    // smoltcp's own bugs, from 50,000-seed release sweeps (smoltcp left in
    // LAST-ACK with data queued, or its keep-alive byte delivered). Seeds
    // 2000..22000 are from the sweep after stop 18's changes (each host's
    // congestion control picked per seed among CUBIC, NewReno and BBR; the
    // send window taken from any ACK that advances SND.UNA): every failure
    // there is one of these two smoltcp bugs, and tunstack ↔ tunstack
    // passes all 20,000 seeds. Seeds of that range listed before and
    // passing now were removed as the paths through them changed (the
    // same bugs met elsewhere); the list is the last sweep's, on the final
    // code of stop 18.
    ("smoltcp-client", 2399, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 3390, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 8968, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 8834, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 12217, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 19683, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 31578, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 32929, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 34651, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 43335, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 45301, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 46024, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 7852, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 9195, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 10410, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 13250, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 13301, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 18388, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 18401, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 21221, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 23740, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 35924, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-server", 39455, SMOLTCP_LAST_ACK_IGNORES_DUP_ACKS),
    ("smoltcp-client", 7815, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
    ("smoltcp-client", 17581, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
    ("smoltcp-server", 23622, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
    ("smoltcp-server", 48257, SMOLTCP_KEEPALIVE_GARBAGE_IN_WINDOW),
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
    format!(
        "TUNSTACK_SIM_SEED={seed} TUNSTACK_SIM_PAIR={} cargo test --test simulation -- --nocapture",
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
        "{} part {part}/{parts}: {ran} seeds in {:.1?}: {} bytes delivered, {} packets ({} lost, {} tail-dropped, {} duplicated, {} corrupted, {} reordered), longest run {} virtual, slowest seed {} ({:.1?})",
        pairing.name(),
        started.elapsed(),
        totals.bytes,
        l.sent,
        l.lost,
        l.tail_dropped,
        l.duplicated,
        l.corrupted,
        l.reordered,
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
