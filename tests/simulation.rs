//! Deterministic simulation: two stacks on an in-memory link with a virtual
//! clock and a seeded fault model (see `tests/sim/mod.rs`).
//!
//! Every pairing runs `TUNSTACK_SIM_SEEDS` seeds (default 2000), split over
//! several tests so they run in parallel. A failing seed is printed with
//! its replay command:
//!
//! ```text
//! TUNSTACK_SIM_SEED=<n> TUNSTACK_SIM_PAIR=<pairing> cargo test --test simulation -- --nocapture
//! ```
//!
//! or `scripts/sim.sh <n> [pairing]`.

mod sim;

use sim::check::StreamChecker;
use sim::host::{Host, TunHost};
use sim::link::{parse, FaultParams, Link, LinkCounters};
use sim::rng::{fill, stream_key, Rng};
use sim::scenario::{host_addr, host_addr6, host_mac, Ending, Family, Pairing, Scenario, PREFIX6};
use sim::world::{self, Hooks};
use tunstack::link::arp::{ArpPacket, Operation};
use tunstack::link::ethernet::{
    EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN,
};
use tunstack::tcp::congestion::Algorithm;
use tunstack::time::Instant;
use tunstack::Medium;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

// ---- the sweeps ----

#[test]
fn tunstack_to_tunstack_seeds_part_0() {
    sim::sweep(Pairing::Tunstack, 0, 4);
}

#[test]
fn tunstack_to_tunstack_seeds_part_1() {
    sim::sweep(Pairing::Tunstack, 1, 4);
}

#[test]
fn tunstack_to_tunstack_seeds_part_2() {
    sim::sweep(Pairing::Tunstack, 2, 4);
}

#[test]
fn tunstack_to_tunstack_seeds_part_3() {
    sim::sweep(Pairing::Tunstack, 3, 4);
}

#[test]
fn tunstack_client_to_smoltcp_server_seeds_part_0() {
    sim::sweep(Pairing::SmolServer, 0, 2);
}

#[test]
fn tunstack_client_to_smoltcp_server_seeds_part_1() {
    sim::sweep(Pairing::SmolServer, 1, 2);
}

#[test]
fn smoltcp_client_to_tunstack_server_seeds_part_0() {
    sim::sweep(Pairing::SmolClient, 0, 2);
}

#[test]
fn smoltcp_client_to_tunstack_server_seeds_part_1() {
    sim::sweep(Pairing::SmolClient, 1, 2);
}

/// `TUNSTACK_SIM_SEED=<n>`: replays one seed with a per-packet trace.
#[test]
fn replay_seed_from_env() {
    sim::replay_from_env();
}

// ---- the harness checks itself ----

fn stream(key: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(key, 0, &mut v);
    v
}

#[test]
fn checker_accepts_the_stream_in_any_read_sizes() {
    let data = stream(7, 10_000);
    let mut c = StreamChecker::new(7);
    let mut rng = Rng::new(1);
    let mut at = 0;
    while at < data.len() {
        let n = rng.range_usize(1, 700).min(data.len() - at);
        c.feed(&data[at..at + n]).expect("correct bytes");
        at += n;
    }
    c.finish(10_000).expect("complete");
    // Generation is consistent whatever the offset and length.
    let mut part = vec![0; 13];
    fill(7, 4321, &mut part);
    assert_eq!(part, data[4321..4334]);
}

#[test]
fn checker_catches_a_corrupted_byte() {
    let mut data = stream(7, 5000);
    data[1234] ^= 0x01;
    let mut c = StreamChecker::new(7);
    c.feed(&data[..1000]).expect("clean prefix");
    let err = c.feed(&data[1000..]).expect_err("corruption caught");
    assert!(err.contains("stream byte 1234"), "{err}");
}

#[test]
fn checker_catches_a_missing_byte() {
    let data = stream(9, 5000);
    let mut c = StreamChecker::new(9);
    c.feed(&data[..2000]).expect("clean prefix");
    // Byte 2000 lost: the next read starts one byte late.
    assert!(c.feed(&data[2001..2100]).is_err());
    // Lost at the very end: only the length shows it.
    let mut c = StreamChecker::new(9);
    c.feed(&data[..4999]).expect("prefix");
    assert!(c.finish(5000).is_err());
    assert!(c.prefix_of(5000).is_ok());
}

#[test]
fn checker_catches_a_duplicated_byte() {
    let data = stream(11, 5000);
    let mut c = StreamChecker::new(11);
    c.feed(&data[..3000]).expect("clean prefix");
    // Byte 2999 delivered twice.
    assert!(c.feed(&data[2999..3100]).is_err());
    // A duplicated segment at the end: more bytes than were sent.
    let mut c = StreamChecker::new(11);
    c.feed(&data).expect("all");
    assert!(c.finish(4000).is_err());
    assert!(c.prefix_of(4000).is_err());
}

#[test]
fn checker_catches_reordered_bytes() {
    let data = stream(13, 3000);
    let mut c = StreamChecker::new(13);
    c.feed(&data[..1000]).expect("clean prefix");
    assert!(c.feed(&data[1500..2000]).is_err());
}

#[test]
fn streams_differ_per_connection_and_direction() {
    let a = stream(stream_key(5, 0, 0), 64);
    let b = stream(stream_key(5, 0, 1), 64);
    let c = stream(stream_key(5, 1, 0), 64);
    let d = stream(stream_key(6, 0, 0), 64);
    assert!(a != b && a != c && a != d && b != c);
}

/// A valid TCP packet of `family` from host 0 to host 1 (10.0.0.1 to
/// 10.0.0.2, or fd00::1 to fd00::2) with `len` bytes of data.
fn tcp_packet(family: Family, seq: u32, len: usize) -> Vec<u8> {
    let payload = stream(u64::from(seq), len);
    let builder = match family {
        Family::V4 => {
            etherparse::PacketBuilder::ipv4(host_addr(0).octets(), host_addr(1).octets(), 64)
        }
        Family::V6 => {
            etherparse::PacketBuilder::ipv6(host_addr6(0).octets(), host_addr6(1).octets(), 64)
        }
    }
    .tcp(40000, 9, seq, 1000)
    .ack(1);
    let mut out = Vec::with_capacity(builder.size(len));
    builder.write(&mut out, &payload).expect("packet builds");
    out
}

/// `payload` in an Ethernet frame of `ethertype` from host 0 to host 1.
fn frame(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = EthernetHeader {
        dst: host_mac(1),
        src: host_mac(0),
        ethertype,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(payload);
    f
}

/// Host 0's ARP request for host 1, framed to broadcast.
fn arp_request() -> Vec<u8> {
    let request = ArpPacket {
        op: Operation::Request,
        sender_mac: host_mac(0),
        sender_ip: host_addr(0),
        target_mac: MacAddr::ZERO,
        target_ip: host_addr(1),
    };
    let mut f = frame(ETHERTYPE_ARP, &request.to_bytes());
    f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
    f
}

/// 20,000 packets of `family` through a faulty link into a tunstack core:
/// every fault happens, every copy is accounted for, and the stack drops
/// exactly the corrupted copies. Over Ethernet the packets travel in
/// frames, with an ARP request after every tenth, which the link never
/// corrupts (no checksum the stack checks covers it).
fn fault_model_run(family: Family, medium: Medium) {
    let params = FaultParams {
        loss: 0.1,
        duplicate: 0.05,
        corrupt: 0.05,
        reorder: 0.1,
        reorder_extra_us: 5_000,
        delay_us: 1_000,
        jitter_us: 500,
        rate: Some(12_500_000),
        queue: 64,
    };
    let mut rng = Rng::new(3);
    let mut link = Link::new([params.clone(), params], &mut rng);
    link.set_medium(medium);
    // The receiving stack: a tunstack core with nothing listening on the
    // port, so every accepted segment is answered with RST.
    let config = tunstack::Config {
        addr: host_addr(1),
        addr6: (family == Family::V6).then_some((host_addr6(1), PREFIX6)),
        medium,
        mac: Some(host_mac(1)),
        dad_transmits: 0,
        ..Default::default()
    };
    let mut host = TunHost::new(&config, 1500, 1, Default::default());
    let ip_at = if medium == Medium::Ethernet {
        HEADER_LEN
    } else {
        0
    };
    let seq = |p: &[u8]| parse(&p[ip_at..]).expect("a clean TCP packet").seq;
    let arp = arp_request();
    let mut now = Instant::ZERO;
    let mut delivered = Vec::new();
    // Copies delivered that carry TCP, and how many of them are clean.
    let (mut tcp_total, mut tcp_clean) = (0, 0);
    let mut arp_delivered = 0;
    let mut sent = 0;
    let mut deliver = |link: &mut Link, host: &mut TunHost, now| {
        while let Some((p, corrupt)) = link.pop_due(0, now) {
            if p == arp {
                assert!(!corrupt, "an ARP frame was corrupted");
                arp_delivered += 1;
            } else {
                tcp_total += 1;
                if !corrupt {
                    tcp_clean += 1;
                    delivered.push(seq(&p));
                }
            }
            host.deliver(now, &p);
        }
    };
    for i in 0..20_000u32 {
        // A burst every 100 µs: sometimes more than the queue holds.
        let p = tcp_packet(family, i, (i % 7) as usize * 100);
        let p = match (medium, family) {
            (Medium::Ip, _) => p,
            (Medium::Ethernet, Family::V4) => frame(ETHERTYPE_IPV4, &p),
            (Medium::Ethernet, Family::V6) => frame(ETHERTYPE_IPV6, &p),
        };
        let _ = link.send(now, 0, p);
        sent += 1;
        if medium == Medium::Ethernet && i % 10 == 9 {
            let _ = link.send(now, 0, arp.clone());
            sent += 1;
        }
        now += std::time::Duration::from_micros(if i % 500 == 0 { 10_000 } else { 20 });
        deliver(&mut link, &mut host, now);
    }
    now += std::time::Duration::from_secs(1);
    deliver(&mut link, &mut host, now);
    let c: LinkCounters = link.counters(0);
    eprintln!("{family} over {medium:?}: {c:?}");
    assert_eq!(c.sent, sent);
    assert_eq!(tcp_total + arp_delivered, c.delivered);
    if medium == Medium::Ethernet {
        assert!(arp_delivered > 1000, "{arp_delivered} ARP frames delivered");
    }
    assert!(c.lost > 1000 && c.lost < 3000, "~10% lost: {c:?}");
    assert!(c.tail_dropped > 0, "queue overflowed sometimes: {c:?}");
    assert!(c.duplicated > 300, "{c:?}");
    assert!(c.corrupted > 300, "{c:?}");
    assert!(c.reordered > 600, "{c:?}");
    assert!(c.overtakes > 0, "{c:?}");
    assert!(c.delivered_corrupt > 0, "{c:?}");
    assert_eq!(
        c.delivered + c.lost + c.tail_dropped,
        c.sent + c.duplicated,
        "every copy accounted for: {c:?}"
    );
    assert!(c.max_in_flight <= 64);
    // Duplicates and reordering are visible in what arrived.
    let mut sorted = delivered.clone();
    sorted.sort_unstable();
    assert_ne!(sorted, delivered, "some packets overtook others");
    sorted.dedup();
    assert!(sorted.len() < delivered.len(), "some packets arrived twice");
    // No corrupted packet got past the checksums; every clean one did.
    assert_eq!(tcp_total - tcp_clean, c.delivered_corrupt);
    host.check_counters(tcp_total, tcp_clean)
        .expect("the stack dropped exactly the corrupted packets");
}

#[test]
fn fault_model_drops_duplicates_reorders_and_corrupts() {
    fault_model_run(Family::V4, Medium::Ip);
}

/// Over Ethernet the link corrupts only the IP packet of a frame that
/// carries TCP (with IPv6's unchecked fixed fields spared): never the
/// Ethernet header, never ARP. The stack behind its `EthernetLink` still
/// drops exactly the corrupted copies and takes every clean one.
#[test]
fn fault_model_over_ethernet_corrupts_only_what_a_checksum_covers() {
    fault_model_run(Family::V4, Medium::Ethernet);
    fault_model_run(Family::V6, Medium::Ethernet);
}

/// IPv6 has no header checksum: were the link to flip bits of the hop
/// limit or the flow label, the stack would rightly accept the packet, and
/// the run would count a corrupted packet delivered. The link corrupts only
/// what a checksum covers (the addresses, through the pseudo-header, and
/// the segment), so a correct stack still drops exactly the corrupted
/// copies.
#[test]
fn fault_model_over_ipv6_corrupts_only_what_a_checksum_covers() {
    fault_model_run(Family::V6, Medium::Ip);
}

/// Each seed draws its family apart from every other draw: about one in
/// three runs over IPv6, to the server's address or to a wildcard `[::]`
/// listener, on a link of at least 1280 bytes; the tunstack hosts have an
/// IPv6 address exactly then.
#[test]
fn seeds_draw_ipv6_one_in_three_with_both_listeners() {
    for pairing in Pairing::ALL {
        let mut v6 = 0;
        let mut listeners = std::collections::BTreeSet::new();
        for seed in 0..900 {
            let s = Scenario::generate(pairing, seed);
            for side in 0..2 {
                let want = (s.family == Family::V6).then_some((host_addr6(side), PREFIX6));
                assert_eq!(s.tun[side].addr6, want, "{s}");
            }
            if s.family == Family::V6 {
                v6 += 1;
                assert!(s.mtu >= 1280, "{s}");
                assert!(s.server_addr(0).is_ipv6(), "{s}");
                listeners.insert(s.listen_ip());
            } else {
                assert!(s.server_addr(0).is_ipv4(), "{s}");
            }
            // The replay shows the family.
            assert!(
                s.to_string()
                    .lines()
                    .next()
                    .unwrap_or("")
                    .contains(&s.family.to_string()),
                "{s}"
            );
        }
        assert!(
            (240..=360).contains(&v6),
            "{}: {v6} of 900 over IPv6",
            pairing.name()
        );
        let both: std::collections::BTreeSet<std::net::IpAddr> =
            [std::net::Ipv6Addr::UNSPECIFIED.into(), host_addr6(1).into()].into();
        assert_eq!(listeners, both, "{}", pairing.name());
    }
}

/// Runs over IPv6 pass in every pairing, to the server's own address and to
/// a wildcard listener (each run checks that every packet on the link is
/// IPv6 and fits the MTU).
#[test]
fn ipv6_runs_deliver_with_either_listener() {
    for pairing in Pairing::ALL {
        for seed in 0..4 {
            let s = Scenario::generate(pairing, seed).over_ipv6(seed % 2 == 0);
            let o = world::run(&s, false, Hooks::default())
                .unwrap_or_else(|e| panic!("{} seed {seed} over IPv6: {e}\n{s}", pairing.name()));
            assert!(o.link.delivered > 0, "{s}");
        }
    }
}

/// Each seed draws its medium apart from every other draw: about one in
/// three runs over Ethernet, in either family; exactly then its tunstack
/// hosts sit behind an Ethernet link with their own MACs and no duplicate
/// address detection, and the replay's first line says which medium.
#[test]
fn seeds_draw_ethernet_one_in_three_in_either_family() {
    for pairing in Pairing::ALL {
        let mut ethernet = [0; 2];
        for seed in 0..900 {
            let s = Scenario::generate(pairing, seed);
            let over_ethernet = s.medium == Medium::Ethernet;
            for side in 0..2 {
                let t = &s.tun[side];
                assert_eq!(t.medium, s.medium, "{s}");
                assert_eq!(t.mac, over_ethernet.then(|| host_mac(side)), "{s}");
                if over_ethernet {
                    assert_eq!(t.dad_transmits, 0, "{s}");
                }
            }
            let first = s.to_string().lines().next().unwrap_or("").to_string();
            let shown = if over_ethernet {
                "over Ethernet"
            } else {
                "over IP "
            };
            assert!(first.contains(shown), "{first}");
            if over_ethernet {
                ethernet[usize::from(s.family == Family::V6)] += 1;
            }
        }
        let total = ethernet[0] + ethernet[1];
        assert!(
            (240..=360).contains(&total),
            "{}: {total} of 900 over Ethernet",
            pairing.name()
        );
        // A third of those over IPv6, as for every seed.
        assert!(
            ethernet[0] > 130 && ethernet[1] > 60,
            "{}: {ethernet:?} over Ethernet by family",
            pairing.name()
        );
    }
}

/// Runs over Ethernet pass in every pairing and both families, and their
/// hosts resolve each other on the wire (ARP, or neighbour discovery)
/// before the first segment goes out: frames other than TCP were sent.
#[test]
fn ethernet_runs_resolve_neighbours_and_deliver() {
    for pairing in Pairing::ALL {
        for family in [Family::V4, Family::V6] {
            let seeds = (0..)
                .filter(|&seed| Scenario::generate(pairing, seed).family == family)
                .take(3);
            for seed in seeds {
                let s = Scenario::generate(pairing, seed).over_ethernet();
                let o = world::run(&s, false, Hooks::default()).unwrap_or_else(|e| {
                    panic!("{} seed {seed} over Ethernet: {e}\n{s}", pairing.name())
                });
                assert!(o.link.delivered > 0, "{s}");
                assert!(o.link_frames >= 2, "no ARP or ND on the wire:\n{s}");
            }
        }
    }
}

#[test]
fn runs_exercise_every_fault() {
    let mut total = LinkCounters::default();
    let mut endings = Vec::new();
    for seed in 0..12 {
        let s = Scenario::generate(Pairing::Tunstack, seed);
        endings.extend(s.conns.iter().map(|c| c.ending));
        let o =
            world::run(&s, false, Hooks::default()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        total.add(&o.link);
    }
    eprintln!("{total:?}");
    assert!(total.lost > 0 && total.duplicated > 0 && total.corrupted > 0);
    assert!(total.reordered > 0 && total.overtakes > 0 && total.delivered_corrupt > 0);
    assert!(endings.iter().any(|e| matches!(e, Ending::Abort(_))));
    assert!(endings.iter().any(|e| !matches!(e, Ending::Abort(_))));
}

#[test]
fn same_seed_same_run() {
    // A run is a pure function of its seed, whether it passes or not. (Across
    // processes too, as long as the stacks iterate their tables in a fixed
    // order: tunstack's `TcpLayer::poll` runs due connections in HashMap
    // order, which changes a few runs in a thousand from one process to the
    // next.)
    let fingerprint = |pairing, seed| match world::run_seed(pairing, seed, false) {
        Ok(o) => format!("{:?}", (o.end, o.iterations, o.bytes, o.link, o.digest)),
        Err(e) => e,
    };
    for pairing in Pairing::ALL {
        for seed in [3, 42] {
            assert_eq!(fingerprint(pairing, seed), fingerprint(pairing, seed));
        }
    }
}

#[test]
fn undetectable_corruption_fails_the_run() {
    // A link that rewrites a payload byte and fixes the checksum: no stack
    // can notice, so the end-to-end check must.
    let mut s = Scenario::generate(Pairing::Tunstack, 1);
    s.faults = [FaultParams::perfect(), FaultParams::perfect()];
    s.conns.truncate(1);
    let c = &mut s.conns[0];
    c.ending = Ending::Natural;
    for e in &mut c.ends {
        e.total = 5000;
        e.abort = None;
        e.shut = sim::scenario::ShutRule::WhenDone;
    }
    let variants = [
        s.clone(),
        s.clone().over_ipv6(false),
        s.clone().over_ethernet(),
        s.over_ipv6(false).over_ethernet(),
    ];
    for s in variants {
        world::run(&s, false, Hooks::default()).expect("the clean run passes");
        let err = world::run(&s, false, Hooks { evil_link: true }).expect_err("caught");
        assert!(
            err.contains("stream byte"),
            "{} over {:?}: {err}",
            s.family,
            s.medium
        );
    }
}

// ---- goodput (tests/sim/goodput.rs) ----

/// The full goodput table (`scripts/sim-goodput.sh`): every sender against
/// both receivers at 0, 1, 5 and 10 % loss. `TUNSTACK_GOODPUT_SEEDS`
/// (default 5) seeds per cell, `TUNSTACK_GOODPUT_MIB` (default 4) MiB per
/// transfer.
#[test]
#[ignore = "the full table: scripts/sim-goodput.sh"]
fn goodput_table() {
    use sim::goodput::{self, Peer};
    let seeds = env_u64("TUNSTACK_GOODPUT_SEEDS").unwrap_or(5);
    let mib = env_u64("TUNSTACK_GOODPUT_MIB").unwrap_or(4);
    // By name, so that the table also runs on a tree without one of them
    // (scripts/sim-goodput.sh --rev).
    let mut tunstack_senders = Vec::new();
    for name in goodput::TABLE_SENDERS {
        match Peer::parse(name) {
            Some(p) => tunstack_senders.push(p),
            None => println!("{name}: not in this tree, left out"),
        }
    }
    let receiver = Peer::tunstack(Algorithm::Cubic);
    let mut pairs: Vec<(Peer, Peer)> = tunstack_senders.iter().map(|&s| (s, receiver)).collect();
    pairs.extend(tunstack_senders.iter().map(|&s| (s, Peer::Smoltcp)));
    pairs.push((Peer::Smoltcp, receiver));
    let started = std::time::Instant::now();
    let cells = goodput::sweep(&pairs, &[0.0, 0.01, 0.05, 0.10], 1..=seeds, mib << 20);
    println!(
        "{mib} MiB per transfer, seeds 1..={seeds}, {} Mbit/s bottleneck (goodput ceiling {:.1}), {} ms RTT, queue {} packets; {:.1?} of wall time\n",
        goodput::RATE * 8 / 1_000_000,
        goodput::ceiling_mbps(),
        2 * goodput::ONE_WAY_DELAY_US / 1000,
        goodput::QUEUE,
        started.elapsed()
    );
    println!("{}", goodput::markdown(&cells));
    print!("{}", goodput::unfinished_report(&cells));
    if let Some(report) = goodput::failure_report(&cells) {
        panic!("{report}");
    }
}

/// `TUNSTACK_GOODPUT_REPLAY=SENDER,RECEIVER,LOSS%,SEED[,MIB]` (as
/// `bbr,tunstack,1,3`): replays one goodput transfer with the per-packet
/// trace and the stacks' log (`TUNSTACK_SIM_LOG`, default `debug`).
#[test]
fn goodput_replay_from_env() {
    let Ok(spec) = std::env::var("TUNSTACK_GOODPUT_REPLAY") else {
        return;
    };
    let t = sim::goodput::Transfer::parse(&spec).unwrap_or_else(|e| panic!("{e}"));
    let level = std::env::var("TUNSTACK_SIM_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Debug);
    sim::trace::install(level);
    match sim::goodput::replay(&t) {
        Ok(m) => eprintln!(
            "===== {} bytes in {:?}: {:.2} Mbit/s, link {:?}",
            m.bytes,
            m.elapsed,
            m.mbps(),
            m.link
        ),
        Err(e) => panic!("{e}"),
    }
}

// ---- goodput floors ----
//
// (scripts/sim-goodput.sh --rev cuts the file here to run the table on an
// older tree: what follows may name what an older tree lacks.)

/// The goodput harness in small, for CI: every transfer delivers each byte
/// exactly once, and the figures clear floors a working sender clears with
/// room to spare (the clock is virtual: a seed's figure is the same on any
/// machine, so a failure is a change in the stacks, never load).
///
/// - At 0 % loss, 8 MiB (long enough that the handshake and slow start
///   cost under a tenth): NewReno, CUBIC and BBR reach 80 % of the
///   100 Mbit/s bottleneck into smoltcp, whose 256 KiB window holds them
///   near one BDP, and BBR does into tunstack (loss-based senders into
///   tunstack do not yet: see the ignored test below).
/// - At 1 % loss, 4 MiB, the median of seeds 1..=3: CUBIC with SACK and
///   BBR beat NewReno without SACK (the stack before issue 12).
#[test]
fn goodput_clears_its_floors() {
    use sim::goodput::{self, Peer};
    let started = std::time::Instant::now();
    let floor = 0.8 * (goodput::RATE * 8) as f64 / 1e6;
    let full = [
        (Peer::tunstack(Algorithm::NewReno), Peer::Smoltcp),
        (Peer::tunstack(Algorithm::Cubic), Peer::Smoltcp),
        (Peer::tunstack(Algorithm::Bbr), Peer::Smoltcp),
        (
            Peer::tunstack(Algorithm::Bbr),
            Peer::tunstack(Algorithm::Cubic),
        ),
    ];
    let mut cells = goodput::sweep(&full, &[0.0], 1..=1, 8 << 20);
    let reno_no_sack = Peer::tunstack_no_sack(Algorithm::NewReno);
    let lossy = [
        reno_no_sack,
        Peer::tunstack(Algorithm::Cubic),
        Peer::tunstack(Algorithm::Bbr),
    ]
    .map(|s| (s, Peer::tunstack(Algorithm::Cubic)));
    cells.extend(goodput::sweep(&lossy, &[0.01], 1..=3, 4 << 20));
    eprintln!("{}", goodput::markdown(&cells));
    eprintln!("in {:.1?} of wall time", started.elapsed());
    if let Some(report) = goodput::failure_report(&cells) {
        panic!("{report}");
    }
    for c in &cells {
        assert_eq!(
            c.unfinished(),
            0,
            "{} -> {} ran out of virtual time",
            c.sender.name(),
            c.receiver.receiver_name()
        );
    }
    let median = |sender: Peer, loss: f64| {
        cells
            .iter()
            .find(|c| c.sender == sender && c.loss == loss)
            .map(|c| c.median_mbps())
            .expect("measured")
    };
    for c in cells.iter().filter(|c| c.loss == 0.0) {
        assert!(
            c.median_mbps() >= floor,
            "{} -> {} at 0 % loss: {:.1} Mbit/s, under 80 % of the bottleneck ({floor:.0})",
            c.sender.name(),
            c.receiver.receiver_name(),
            c.median_mbps()
        );
    }
    let base = median(reno_no_sack, 0.01);
    for sender in [
        Peer::tunstack(Algorithm::Cubic),
        Peer::tunstack(Algorithm::Bbr),
    ] {
        let m = median(sender, 0.01);
        assert!(
            m > base,
            "{} at 1 % loss: {m:.2} Mbit/s, no better than {} ({base:.2})",
            sender.name(),
            reno_no_sack.name()
        );
    }
}

/// At 0 % loss a loss-based sender into tunstack should fill 80 % of the
/// bottleneck, as it does into smoltcp. It overshoots the queue once in
/// slow start (NewReno has no HyStart++; CUBIC's exits late) and SACK
/// recovery repairs the burst: 8 MiB now run at about 79 (NewReno) and 78
/// Mbit/s (CUBIC), just under the floor. They ran at 5 Mbit/s while
/// tunstack's receiver kept only 16 out-of-order ranges and dropped
/// in-window data past them, and CUBIC at 41 while HyStart++ got one RTT
/// sample a round (docs/SIM-GOODPUT.md). Replay:
/// `TUNSTACK_GOODPUT_REPLAY=cubic,tunstack,0,1 cargo test --release --test
/// simulation goodput_replay -- --nocapture`.
#[test]
#[ignore = "known shortfall: about 79 and 78 Mbit/s against a floor of 80 (the slow-start overshoot)"]
fn goodput_loss_based_senders_fill_the_bottleneck_into_tunstack() {
    use sim::goodput::{self, Peer};
    let floor = 0.8 * (goodput::RATE * 8) as f64 / 1e6;
    let pairs = [Algorithm::NewReno, Algorithm::Cubic]
        .map(|cc| (Peer::tunstack(cc), Peer::tunstack(Algorithm::Cubic)));
    let cells = goodput::sweep(&pairs, &[0.0], 1..=1, 8 << 20);
    eprintln!("{}", goodput::markdown(&cells));
    if let Some(report) = goodput::failure_report(&cells) {
        panic!("{report}");
    }
    for c in &cells {
        assert!(
            c.median_mbps() >= floor,
            "{} -> {}: {:.1} Mbit/s, under {floor:.0}",
            c.sender.name(),
            c.receiver.receiver_name(),
            c.median_mbps()
        );
    }
}

/// BBR version 1 (`bbr1`, Linux's mainline BBR) keeps its model through
/// random loss: at 5 % each way, 16 MiB, seeds 1..=3, it moves at least
/// half the bottleneck (67.8-81.7 Mbit/s, median 79.8, on stop 21's code),
/// where a loss-based sender is bound by the loss rate (CUBIC about 2.7)
/// and BBRv3 by its `inflight_longterm` cuts (25.2-44.5 Mbit/s here). Each
/// byte exactly once, as everywhere.
#[test]
fn goodput_bbr1_keeps_half_the_bottleneck_at_five_percent_loss() {
    use sim::goodput::{self, Peer};
    let floor = 0.5 * (goodput::RATE * 8) as f64 / 1e6;
    let pair = [(
        Peer::tunstack(Algorithm::Bbr1),
        Peer::tunstack(Algorithm::Cubic),
    )];
    let cells = goodput::sweep(&pair, &[0.05], 1..=3, 16 << 20);
    eprintln!("{}", goodput::markdown(&cells));
    if let Some(report) = goodput::failure_report(&cells) {
        panic!("{report}");
    }
    let c = &cells[0];
    assert_eq!(c.unfinished(), 0, "ran out of virtual time");
    assert!(
        c.median_mbps() >= floor,
        "bbr1 at 5 % loss: {:.1} Mbit/s, under half the bottleneck ({floor:.0})",
        c.median_mbps()
    );
}
