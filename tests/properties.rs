//! Property tests (proptest) of the pieces with arithmetic worth doubting —
//! sequence numbers, IPv4 reassembly, the TCP receive buffer, TCP options —
//! and of the parsers' refusal to panic; plus the fuzz harnesses of `fuzz/`
//! run over their seed corpus and every crash reproducer the fuzzer found.
//!
//! Fuzzing itself is `scripts/fuzz.sh`; the harnesses live in
//! `fuzz/src/` and are included here, so `cargo test` keeps them compiling
//! and their seeds passing. Regenerate the seed corpus with
//! `cargo test --test properties -- --ignored write_fuzz_seed_corpus`.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// Writes `fuzz/corpus/<target>/<name>` for every seed (and nothing else:
/// the fuzzer's own finds go to the ignored `fuzz/work/`).
#[test]
#[ignore = "writes fuzz/corpus; run by hand after changing a harness's input format"]
fn write_fuzz_seed_corpus() {
    for (target, name, bytes) in harness::seeds::seeds() {
        let dir = corpus_dir().join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}

/// Every file of the committed seed corpus passes its harness: the
/// invariants the fuzzer checks hold on the valid inputs it starts from.
#[test]
fn fuzz_harnesses_pass_their_seed_corpus() {
    let mut ran = 0;
    for (target, run) in harness::TARGETS {
        let dir = corpus_dir().join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("no seed corpus in {}", dir.display());
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let bytes = std::fs::read(&path).expect("read seed");
            println!("{target}: {}", path.display());
            run(&bytes);
            ran += 1;
        }
    }
    assert!(ran >= 30, "only {ran} seeds");
}

/// The seeds in the repository are the generator's (no stale format).
#[test]
fn fuzz_seed_corpus_matches_its_generator() {
    for (target, name, bytes) in harness::seeds::seeds() {
        let path = corpus_dir().join(target).join(&name);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{} is stale: run `cargo test --test properties -- --ignored write_fuzz_seed_corpus`",
            path.display()
        );
    }
}

use std::net::Ipv4Addr;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use tunstack::ip::frag::{fragment, FragError, FragKey, Reassembler, ReassemblyConfig};
use tunstack::tcp::buffer::RecvBuffer;
use tunstack::tcp::SeqNum;
use tunstack::time::Instant;
use tunstack::wire::icmp::IcmpMessage;
use tunstack::wire::ipv4::{self, Ipv4Packet};
use tunstack::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpOptionsRepr, TcpSegment};
use tunstack::wire::udp::UdpDatagram;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const HALF: u32 = 1 << 31;

/// Few cases per property (the whole file runs in a few seconds in debug),
/// a fixed seed so that every run (and CI) tests the same cases — set
/// `PROPTEST_RNG_SEED=N` (or `PROPTEST_CASES=N`) to explore others — and no
/// regression files written next to the sources: a failure prints its
/// minimal input, which belongs in a plain `#[test]`.
fn config(cases: u32) -> ProptestConfig {
    let defaults = ProptestConfig::default();
    let seeded = std::env::var_os("PROPTEST_RNG_SEED").is_some();
    let sized = std::env::var_os("PROPTEST_CASES").is_some();
    ProptestConfig {
        cases: if sized { defaults.cases } else { cases },
        rng_seed: if seeded {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(0x7475_6e73)
        },
        failure_persistence: None,
        ..defaults
    }
}

// ---------------------------------------------------------------------------
// Sequence numbers (RFC 9293 §3.4)

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn seq_add_then_sub_is_identity(a: u32, n: u32) {
        let a = SeqNum(a);
        prop_assert_eq!(a + n - n, a);
        prop_assert_eq!((a + n) - a, n);
        let mut b = a;
        b += n;
        prop_assert_eq!(b, a + n);
    }

    /// Within half the sequence space, "after" is exactly "a positive
    /// distance forward", across the wrap at 2^32 as anywhere else.
    #[test]
    fn seq_order_follows_the_forward_distance(a: u32, d in 1u32..HALF) {
        let (a, b) = (SeqNum(a), SeqNum(a) + d);
        prop_assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
        prop_assert_eq!(b.cmp(&a), std::cmp::Ordering::Greater);
        prop_assert!(a < b);
        prop_assert!(b > a);
        prop_assert!(a != b);
        prop_assert_eq!(a.max(b), b);
        prop_assert_eq!(a.min(b), a);
        prop_assert_eq!(b - a, d);
        // Backwards by the same distance is before.
        prop_assert!(a - d < a);
    }

    /// Trichotomy and transitivity hold for numbers inside one window
    /// (less than 2^31 wide), which is every comparison TCP makes.
    #[test]
    fn seq_order_is_consistent_inside_a_window(
        base: u32,
        x in 0u32..HALF,
        y in 0u32..HALF,
        z in 0u32..HALF,
    ) {
        let s = |o: u32| SeqNum(base) + o;
        let (a, b, c) = (s(x), s(y), s(z));
        let lt = u32::from(a < b) + u32::from(a == b) + u32::from(a > b);
        prop_assert_eq!(lt, 1);
        prop_assert_eq!(a < b, x < y);
        if a < b && b < c {
            prop_assert!(a < c);
        }
    }

    /// `in_range(lo, hi)` is RFC 9293's `lo =< x < hi` whenever the window
    /// is smaller than 2^31, e.g. the acceptability test
    /// `RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND`.
    #[test]
    fn seq_in_range_matches_the_rfc_definition(lo: u32, wnd in 0u32..HALF, k: u32) {
        let (lo_s, x) = (SeqNum(lo), SeqNum(lo) + k);
        let hi = lo_s + wnd;
        prop_assert_eq!(x.in_range(lo_s, hi), k < wnd);
        prop_assert_eq!(x.in_range(lo_s, hi), lo_s <= x && x < hi);
    }
}

// ---------------------------------------------------------------------------
// IPv4 fragmentation and reassembly (RFC 791 §3.2, RFC 815)

const KEY: FragKey = FragKey {
    src: A,
    dst: B,
    protocol: 17,
    id: 0x4242,
};

/// `payload` fragmented by the stack's own `fragment` for an `mtu` link:
/// each (offset, more, payload) after checking the packet is valid.
fn split(payload: &[u8], mtu: usize) -> Vec<(usize, bool, Vec<u8>)> {
    let header = ipv4::header(A, B, 17, 64, KEY.id, payload.len());
    let mut out = Vec::new();
    fragment(&header, payload, mtu, &mut |p: &[u8]| {
        assert!(p.len() <= mtu, "{}-byte fragment on a {mtu} link", p.len());
        let v = Ipv4Packet::parse(p).expect("fragments are valid IPv4");
        out.push((v.frag_offset(), v.more_fragments(), v.payload().to_vec()));
    })
    .expect("fragment");
    out
}

/// A payload bigger than one packet, an MTU, and the fragments in a random
/// order with some repeated (before the datagram completes).
fn fragmented() -> impl Strategy<Value = (Vec<u8>, usize, Vec<usize>)> {
    (68usize..=1500)
        .prop_flat_map(|mtu| {
            let len = (mtu - 20 + 1)..=(mtu * 12).min(65515);
            (prop::collection::vec(any::<u8>(), len), Just(mtu))
        })
        .prop_flat_map(|(payload, mtu)| {
            let n = split(&payload, mtu).len();
            let order: Vec<usize> = (0..n).collect();
            let dups = prop::collection::vec(0..n, 0..4);
            (Just(payload), Just(mtu), (Just(order), dups))
        })
        .prop_flat_map(|(payload, mtu, (mut order, dups))| {
            order.extend(dups);
            (Just(payload), Just(mtu), Just(order).prop_shuffle())
        })
}

proptest! {
    #![proptest_config(config(128))]

    /// Fragments in any order, with duplicates, reassemble to exactly the
    /// payload, exactly when the last missing one arrives, and leave
    /// nothing behind.
    #[test]
    fn reassembly_restores_the_payload_in_any_order((payload, mtu, order) in fragmented()) {
        let frags = split(&payload, mtu);
        prop_assert!(frags.len() >= 2);
        let per = frags[0].2.len();
        for (i, (offset, more, data)) in frags.iter().enumerate() {
            prop_assert_eq!(*offset, i * per);
            prop_assert_eq!(*more, i + 1 < frags.len());
            prop_assert!(!*more || data.len() % 8 == 0);
        }
        let mut r = Reassembler::new(ReassemblyConfig::default());
        // Fragments seen since the last completion: duplicates arriving
        // after it start a new datagram, which completes again only if
        // every fragment is repeated.
        let mut seen = vec![false; frags.len()];
        let mut completions = 0;
        for &i in &order {
            let (offset, more, data) = &frags[i];
            let result = r.push(Instant::ZERO, KEY, *offset, *more, data);
            seen[i] = true;
            let all = seen.iter().all(|&s| s);
            match result {
                Ok(Some(whole)) => {
                    prop_assert!(all, "complete before every fragment arrived");
                    prop_assert_eq!(whole.key, KEY);
                    prop_assert!(whole.payload == payload, "reassembled payload differs");
                    prop_assert_eq!(r.bytes_in_use(), 0);
                    prop_assert_eq!(r.datagrams_in_use(), 0);
                    completions += 1;
                    seen.iter_mut().for_each(|s| *s = false);
                }
                Ok(None) => prop_assert!(!all, "every fragment arrived, no datagram"),
                Err(e) => prop_assert!(false, "fragment {} refused: {:?}", i, e),
            }
        }
        prop_assert!(completions >= 1);
    }

    /// A forged fragment overlapping one already held discards the whole
    /// datagram (RFC 5722 applied to IPv4): the rest can no longer complete
    /// it.
    #[test]
    fn an_overlapping_fragment_discards_the_datagram(
        (payload, mtu, order) in fragmented(),
        cut in 1usize..100,
        victim in any::<prop::sample::Index>(),
    ) {
        let frags = split(&payload, mtu);
        let order: Vec<usize> = {
            let mut seen = Vec::new();
            for i in order {
                if !seen.contains(&i) {
                    seen.push(i);
                }
            }
            seen
        };
        // Feed a prefix that leaves the datagram incomplete.
        let fed = cut % (order.len() - 1) + 1;
        let mut r = Reassembler::new(ReassemblyConfig::default());
        for &i in &order[..fed] {
            let (offset, more, data) = &frags[i];
            prop_assert_eq!(r.push(Instant::ZERO, KEY, *offset, *more, data), Ok(None));
        }
        // Forge 8 bytes inside a held fragment, 8 bytes past its start.
        let held = order[victim.index(fed)];
        let (offset, _, data) = &frags[held];
        let forged_at = offset + 8;
        let forged_more = data.len() > 16 || held + 1 < frags.len();
        prop_assume!(data.len() > 8);
        let result = r.push(Instant::ZERO, KEY, forged_at, forged_more, &[0xee; 8]);
        prop_assert!(
            matches!(result, Err(FragError::Overlap) | Err(FragError::Inconsistent)),
            "forged fragment accepted: {:?}", result
        );
        prop_assert_eq!(r.bytes_in_use(), 0);
        prop_assert_eq!(r.datagrams_in_use(), 0);
        for &i in &order[fed..] {
            let (offset, more, data) = &frags[i];
            prop_assert_eq!(r.push(Instant::ZERO, KEY, *offset, *more, data), Ok(None));
        }
    }
}

// ---------------------------------------------------------------------------
// TCP receive buffer (out-of-order reassembly within the window)

/// One step against a receive buffer: write stream bytes `[start, start +
/// len)` (offsets relative to the stream's first unacknowledged byte), or
/// read up to `len` bytes.
#[derive(Debug, Clone)]
enum RecvOp {
    Write { start: usize, len: usize },
    Read(usize),
}

fn recv_ops(cap: usize) -> impl Strategy<Value = Vec<RecvOp>> {
    let op = prop_oneof![
        3 => (0..cap + cap / 2, 1..=cap).prop_map(|(start, len)| RecvOp::Write { start, len }),
        1 => (1..cap * 2).prop_map(RecvOp::Read),
    ];
    prop::collection::vec(op, 1..60)
}

proptest! {
    #![proptest_config(config(256))]

    /// Out-of-order, overlapping and duplicate chunks of a stream, some
    /// beyond the window, interleaved with reads: the application reads
    /// the stream exactly once and in order, and the buffer's accounting
    /// (`ready + window == capacity`) always holds.
    #[test]
    fn recv_buffer_delivers_the_stream_in_order_exactly_once(
        (cap, ops) in (1usize..4096).prop_flat_map(|cap| (Just(cap), recv_ops(cap))),
        seed: u8,
    ) {
        let stream: Vec<u8> = (0..cap * 8).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let mut buf = RecvBuffer::new(cap);
        let mut nxt = 0usize; // RCV.NXT as a stream offset
        let mut read = Vec::new();
        let write = |buf: &mut RecvBuffer, nxt: &mut usize, start: usize, len: usize| {
            // Like TCP, trim what is already acknowledged.
            let end = (start + len).min(stream.len());
            if end <= *nxt {
                return;
            }
            let start = start.max(*nxt);
            let ready = buf.ready();
            let advanced = buf.write(start - *nxt, &stream[start..end]);
            assert_eq!(buf.ready(), ready + advanced);
            *nxt += advanced;
        };
        for op in ops {
            match op {
                RecvOp::Write { start, len } => write(&mut buf, &mut nxt, read.len() + start, len),
                RecvOp::Read(n) => {
                    let mut out = vec![0u8; n];
                    let got = buf.read(&mut out);
                    read.extend_from_slice(&out[..got]);
                }
            }
            prop_assert_eq!(buf.ready() + buf.window(), buf.capacity());
            prop_assert!(buf.out_of_order() <= buf.window());
            prop_assert_eq!(read.len() + buf.ready(), nxt);
            prop_assert_eq!(&read[..], &stream[..read.len()]);
        }
        // The peer retransmits the rest in order; everything arrives.
        while nxt < stream.len() {
            let len = buf.window().min(stream.len() - nxt);
            let at = nxt;
            write(&mut buf, &mut nxt, at, len);
            let mut out = vec![0u8; cap];
            let got = buf.read(&mut out);
            read.extend_from_slice(&out[..got]);
        }
        let mut out = vec![0u8; cap];
        let got = buf.read(&mut out);
        read.extend_from_slice(&out[..got]);
        prop_assert_eq!(read, stream);
        prop_assert!(!buf.has_gap());
    }
}

// ---------------------------------------------------------------------------
// TCP options and headers (RFC 9293 §3.1, RFC 7323, RFC 2018)

fn options() -> impl Strategy<Value = TcpOptionsRepr> {
    (
        any::<Option<u16>>(),
        any::<Option<u8>>(),
        any::<bool>(),
        any::<Option<(u32, u32)>>(),
        prop::collection::vec(any::<(u32, u32)>(), 0..=4),
    )
        .prop_map(|(mss, window_scale, sack_permitted, timestamp, blocks)| {
            let mut o = TcpOptionsRepr {
                mss,
                window_scale,
                sack_permitted,
                timestamp,
                ..Default::default()
            };
            // SACK blocks take 2 NOPs and 2 + 8n bytes of what the other
            // options leave of the 40.
            let used = 4 * usize::from(mss.is_some())
                + 4 * usize::from(window_scale.is_some())
                + 4 * usize::from(sack_permitted)
                + 12 * usize::from(timestamp.is_some());
            let room = (40 - used).saturating_sub(4) / 8;
            for (l, r) in blocks.into_iter().take(room) {
                o.sack.push(l, r);
            }
            o
        })
}

fn header() -> impl Strategy<Value = TcpHeaderRepr> {
    (
        (1u16.., 1u16.., any::<u32>(), any::<u32>()),
        any::<[bool; 6]>(),
        (any::<u16>(), any::<u16>()),
        options(),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack), f, (window, urgent), options)| TcpHeaderRepr {
                src_port,
                dst_port,
                seq,
                ack,
                flags: TcpFlags {
                    syn: f[0],
                    ack: f[1],
                    fin: f[2],
                    rst: f[3],
                    psh: f[4],
                    urg: f[5],
                },
                window,
                urgent,
                options,
            },
        )
}

/// The wire encoding of each option that is set, on its own.
fn option_encodings(o: &TcpOptionsRepr) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    if let Some(mss) = o.mss {
        v.push([&[2, 4][..], &mss.to_be_bytes()].concat());
    }
    if let Some(ws) = o.window_scale {
        v.push(vec![3, 3, ws]);
    }
    if o.sack_permitted {
        v.push(vec![4, 2]);
    }
    if let Some((val, ecr)) = o.timestamp {
        v.push([&[8, 10][..], &val.to_be_bytes(), &ecr.to_be_bytes()].concat());
    }
    if !o.sack.is_empty() {
        let mut e = vec![5, 2 + 8 * o.sack.as_slice().len() as u8];
        for (l, r) in o.sack.as_slice() {
            e.extend_from_slice(&l.to_be_bytes());
            e.extend_from_slice(&r.to_be_bytes());
        }
        v.push(e);
    }
    v
}

proptest! {
    #![proptest_config(config(512))]

    /// Any header with any combination of the options we know, emitted
    /// (payload in two pieces, as from a ring) then parsed, comes back the
    /// same, with a checksum that verifies.
    #[test]
    fn tcp_header_and_options_round_trip(
        h in header(),
        payload in prop::collection::vec(any::<u8>(), 0..600),
        split in any::<prop::sample::Index>(),
    ) {
        let at = split.index(payload.len() + 1);
        let mut bytes = Vec::new();
        h.emit(A, B, [&payload[..at], &payload[at..]], &mut bytes);
        let seg = TcpSegment::parse(A, B, &bytes).expect("our own segment parses");
        prop_assert_eq!(seg.header, h);
        prop_assert_eq!(seg.payload, &payload[..]);
        prop_assert!(bytes.len() - payload.len() <= 60, "header over 60 bytes");
    }

    /// The options parser does not depend on order or padding: the known
    /// options in any order, with NOPs between them and END or garbage
    /// after END, parse to the same values.
    #[test]
    fn tcp_options_parse_in_any_order_and_padding(
        o in options(),
        nops in prop::collection::vec(0usize..3, 5),
        tail in prop::collection::vec(any::<u8>(), 0..8),
        order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
    ) {
        let enc = option_encodings(&o);
        let mut area = Vec::new();
        for (k, &i) in order.iter().filter(|&&i| i < enc.len()).enumerate() {
            area.extend(std::iter::repeat_n(1u8, nops[k]));
            area.extend_from_slice(&enc[i]);
        }
        area.push(0); // END: whatever follows is ignored
        area.extend_from_slice(&tail);
        prop_assert_eq!(TcpOptionsRepr::parse(&area), o);
    }

    /// Unknown kinds are skipped by their length (MUST-6) wherever they are.
    #[test]
    fn tcp_unknown_options_are_skipped(
        o in options(),
        kind in 9u8..=255,
        body in prop::collection::vec(any::<u8>(), 0..6),
        at in any::<prop::sample::Index>(),
    ) {
        let enc = option_encodings(&o);
        let unknown = [&[kind, body.len() as u8 + 2][..], &body].concat();
        let pos = at.index(enc.len() + 1);
        let mut area = Vec::new();
        for (i, e) in enc.iter().enumerate() {
            if i == pos {
                area.extend_from_slice(&unknown);
            }
            area.extend_from_slice(e);
        }
        if pos == enc.len() {
            area.extend_from_slice(&unknown);
        }
        prop_assert_eq!(TcpOptionsRepr::parse(&area), o);
    }
}

// ---------------------------------------------------------------------------
// Parsers never panic (MUST-7 and friends: input is hostile)

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// A valid IPv4 packet with random bytes changed, so the parsers get past
/// their first checks more often than with pure noise.
fn mangled_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..=255,
        bytes(200),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<bool>(),
    )
        .prop_map(|(protocol, payload, edits, fix)| {
            let header = ipv4::header(A, B, protocol, 64, 1, payload.len());
            let mut header = header;
            header.header_checksum = header.calc_header_checksum();
            let mut p = header.to_bytes().to_vec();
            p.extend_from_slice(&payload);
            for (i, b) in edits {
                let i = i.index(p.len());
                p[i] = b;
            }
            if fix {
                let ihl = usize::from(p[0] & 0xf) * 4;
                if (20..=p.len()).contains(&ihl) {
                    p[10] = 0;
                    p[11] = 0;
                    let c = tunstack::wire::checksum::checksum(&p[..ihl]);
                    p[10..12].copy_from_slice(&c.to_be_bytes());
                }
            }
            p
        })
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn ipv4_parse_never_panics(p in prop_oneof![bytes(100), mangled_packet()]) {
        if let Ok(v) = Ipv4Packet::parse(&p) {
            // What it accepted is self-consistent.
            prop_assert!(v.header_bytes().len() >= 20);
            prop_assert!(v.header_bytes().len() + v.payload().len() <= p.len());
            let _ = (v.src(), v.dst(), v.protocol(), v.id(), v.ttl());
            let _ = (v.is_fragment(), v.frag_offset(), v.more_fragments());
        }
    }

    #[test]
    fn icmp_parse_never_panics(b in bytes(120)) {
        if let Ok(m) = IcmpMessage::parse(&b) {
            let _ = (m.kind(), m.code(), m.rest_of_header(), m.body());
            if let Some(q) = m.quoted() {
                prop_assert!(q.transport.len() >= 8);
            }
        }
    }

    #[test]
    fn udp_parse_never_panics(b in bytes(64), src: u32, dst: u32) {
        if let Ok(d) = UdpDatagram::parse(Ipv4Addr::from(src), Ipv4Addr::from(dst), &b) {
            prop_assert!(d.payload.len() + 8 <= b.len());
        }
    }

    #[test]
    fn tcp_parse_never_panics(b in bytes(100)) {
        let _ = TcpOptionsRepr::parse(&b);
        if let Ok(seg) = TcpSegment::parse(A, B, &b) {
            prop_assert!(seg.payload.len() + 20 <= b.len());
        }
    }

    /// The whole input path: a mangled packet (fragments included) never
    /// panics, and the harness's output checks hold.
    #[test]
    fn interface_survives_mangled_packets(packets in prop::collection::vec(mangled_packet(), 1..4)) {
        harness::ip_input(&harness::ip::ip_input_records(0, &packets));
    }
}

// ---------------------------------------------------------------------------
// Regressions found by fuzzing (scripts/fuzz.sh): the exact inputs.

/// Found while writing the `ip_input` harness's invariants (fixed in
/// 6feb4e7): when fragments sent to a broadcast address time out, no ICMP
/// Time Exceeded may answer them (RFC 1122 §3.2.2: "An ICMP error message
/// MUST NOT be sent as the result of receiving ... a datagram destined to
/// an IP broadcast or IP multicast address").
#[test]
fn time_exceeded_is_not_sent_for_broadcast_fragments() {
    use tunstack::iface::Interface;
    for dst in [harness::SUBNET_BROADCAST, Ipv4Addr::BROADCAST] {
        let config = tunstack::Config {
            seed: Some(1),
            ..tunstack::Config::default()
        };
        let mut iface = Interface::new(&config, 1500, 1);
        let d = harness::packets::udp_datagram(dst, 1000, 9, &[1; 64]);
        let first = harness::packets::fragments_to(dst, 17, 77, &d, 32).remove(0);
        iface.receive(Instant::ZERO, &first);
        assert_eq!(iface.reassembly_bytes(), 32, "fragment held");
        iface.poll(Instant::from_secs(31));
        assert_eq!(iface.reassembly_bytes(), 0, "fragment expired");
        let sent: Vec<Vec<u8>> =
            std::iter::from_fn(|| iface.pop_transmit().map(Vec::from)).collect();
        assert!(sent.is_empty(), "answered fragments to {dst}: {sent:02x?}");
    }
}

/// Found by the `ip_input` fuzz target: when a fragmented ICMP error
/// message (here a Destination Unreachable) times out in reassembly, the
/// stack answers with ICMP Time Exceeded quoting it, an ICMP error about an
/// ICMP error, which RFC 1122 §3.2.2 forbids ("An ICMP error message MUST
/// NOT be sent as the result of receiving: an ICMP error message"). Fixed
/// in 22d7ed3.
#[test]
fn time_exceeded_is_not_sent_for_icmp_error_fragments() {
    use tunstack::iface::Interface;
    let config = tunstack::Config {
        seed: Some(1),
        ..tunstack::Config::default()
    };
    let mut iface = Interface::new(&config, 1500, 1);
    let quote = harness::packets::ipv4_packet(B, A, 17, 1, 0, false, false, &[0; 8]);
    let error = harness::packets::icmp_message(3, 3, [0; 4], &quote);
    let first = harness::packets::fragments_to(B, 1, 78, &error, 16).remove(0);
    iface.receive(Instant::ZERO, &first);
    iface.poll(Instant::from_secs(31));
    assert_eq!(iface.reassembly_bytes(), 0, "fragment expired");
    let sent: Vec<Vec<u8>> = std::iter::from_fn(|| iface.pop_transmit().map(Vec::from)).collect();
    assert!(sent.is_empty(), "answered an ICMP error: {sent:02x?}");
}

/// The `ip_input` fuzz target's input for the bug above, minimized: a
/// first fragment of an ICMP Destination Unreachable from 0.0.0.1, then
/// the harness's final two minutes.
#[test]
fn fuzz_ip_input_icmp_error_about_icmp_error() {
    let mut input = vec![0u8; 148];
    input[8] = 0x38;
    input[73] = 0x38;
    input.extend_from_slice(&[
        0xc0, 0x00, 0x38, 0x45, 0x00, 0x00, 0x24, 0x00, 0x00, 0x20, 0x00, 0x40, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]);
    harness::strict(|| harness::ip_input(&input));
}

/// Found by the `tcb_listen` fuzz target (on 6feb4e7, after 2c1b630): a
/// TIME-WAIT connection reopened by a new SYN is put back when the new
/// incarnation dies before it is established — with its old 2×MSL
/// deadline, which has passed by then (the SYN-ACK retries take 63 s, the
/// TIME-WAIT 60 s). After `poll(now)`, `poll_at()` is in the past, so the
/// runtime must poll again at once; the restored connection should instead
/// expire within that `poll`. Fixed in 52d23c8.
#[test]
fn poll_leaves_no_deadline_in_the_past_after_a_failed_time_wait_reopen() {
    use harness::packets::{flag, raw_tcp_segment};
    use tunstack::tcp::{TcpConfig, TcpLayer};
    let (peer, us) = (harness::PEER, harness::US);
    let cfg = TcpConfig {
        window_scaling: false,
        ..TcpConfig::default()
    };
    let mut l = TcpLayer::new(cfg, [7; 16]);
    let lid = l
        .listen(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 2)
        .expect("listen");
    let t0 = Instant::ZERO;
    let feed = |l: &mut TcpLayer, seq: u32, ack: u32, flags: u8| {
        let seg = raw_tcp_segment(40000, 80, seq, ack, flags, 65535, &[], &[]);
        l.on_segment(t0, peer, us, &seg);
        std::iter::from_fn(|| l.pop_output())
            .map(|o| u32::from_be_bytes([o.packet[4], o.packet[5], o.packet[6], o.packet[7]]))
            .last()
    };
    let iss = feed(&mut l, 0, 0, flag::SYN).expect("SYN-ACK");
    feed(&mut l, 1, iss.wrapping_add(1), flag::ACK);
    let id = l.accept(lid).expect("established");
    l.close(t0, id).expect("close");
    // Our FIN is acknowledged with the peer's FIN: TIME-WAIT until 60 s.
    feed(&mut l, 1, iss.wrapping_add(2), flag::ACK | flag::FIN);
    // A SYN above RCV.NXT reopens it; the new incarnation's SYN-ACKs go
    // unanswered until it gives up (after 63 s).
    feed(&mut l, 5, 0, flag::SYN).expect("SYN-ACK of the reopened connection");
    let mut now = t0;
    for _ in 0..100 {
        let Some(at) = l.poll_at() else { break };
        now = now.max(at);
        l.poll(now);
        while l.pop_output().is_some() {}
        if let Some(still) = l.poll_at() {
            assert!(still > now, "poll({now:?}) left a deadline at {still:?}");
        }
    }
}

/// The `tcb_listen` fuzz target's input for the bug above, minimized: a
/// handshake, accept, close, the peer's FIN, then a SYN above RCV.NXT, and
/// the harness's final ten minutes.
#[test]
fn fuzz_tcb_listen_time_wait_restored_with_a_past_deadline() {
    let mut input = vec![0u8; 50];
    for (i, b) in [
        (2, 0x02),
        (3, 0x2e),
        (17, 0x03),
        (21, 0x10),
        (27, 0x07),
        (35, 0x08),
        (38, 0x09),
        (41, 0x11),
        (42, 0x0f),
        (48, 0x02),
        (49, 0x05),
    ] {
        input[i] = b;
    }
    harness::strict(|| harness::tcb_listen(&input));
}
