//! The IPv6 layer packet by packet: what it answers, what it drops and
//! why, and the errors it sends.

use std::time::Duration;

use super::*;
use crate::ip::frag::ReassemblyConfig;
use crate::wire::ipv6::{NEXT_DEST_OPTS, NEXT_FRAGMENT, NEXT_ROUTING};

const PEER: &str = "fd00::1";
const US: &str = "fd00::2";
const LINK_LOCAL: &str = "fe80::ff:fe00:2";

fn addr(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

fn layer() -> Ipv6Layer {
    Ipv6Layer::new(
        addr(US),
        Some(addr(LINK_LOCAL)),
        64,
        1500,
        RateLimiter::new(1000, 50),
    )
}

/// A packet from `src` to `dst` with `next` and `body`.
fn packet(src: &str, dst: &str, next: u8, hop_limit: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ipv6::write(&mut out, addr(src), addr(dst), next, hop_limit, body);
    out
}

fn echo_request(src: &str, dst: &str, data: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    icmpv6::write(
        &mut msg,
        addr(src),
        addr(dst),
        icmpv6::ECHO_REQUEST,
        0,
        [0x12, 0x34, 0, 1],
        data,
    );
    packet(src, dst, NEXT_ICMPV6, 64, &msg)
}

/// Feeds `p` to `l`; returns the packets sent.
fn feed(l: &mut Ipv6Layer, stats: &mut Stats, p: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    l.receive(Instant::from_secs(1), p, false, stats, &mut |q| {
        out.push(q.to_vec())
    });
    out
}

#[test]
fn echo_requests_are_answered_with_the_same_id_sequence_and_data() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let out = feed(&mut l, &mut stats, &echo_request(PEER, US, &[7; 100]));
    assert_eq!(out.len(), 1);
    let (h, p) = Ipv6Header::parse(&out[0]).expect("reply parses");
    assert_eq!((h.src, h.dst, h.hop_limit), (addr(US), addr(PEER), 64));
    let m = Icmpv6Message::parse(h.src, h.dst, &p[HEADER_LEN..]).expect("checksum");
    assert_eq!(
        (m.kind(), m.field()),
        (icmpv6::ECHO_REPLY, [0x12, 0x34, 0, 1])
    );
    assert_eq!(m.body(), &[7; 100][..]);
    assert_eq!((stats.icmp6_echo_replies, stats.ip6_packets_out), (1, 1));
    // To the link-local address, from a link-local peer: answered from it.
    let out = feed(
        &mut l,
        &mut stats,
        &echo_request("fe80::1", LINK_LOCAL, b"x"),
    );
    let (h, _) = Ipv6Header::parse(&out[0]).expect("reply parses");
    assert_eq!(h.src, addr(LINK_LOCAL));
}

#[test]
fn a_reply_that_does_not_fit_the_mtu_is_fragmented() {
    let (mut l, mut stats) = (layer(), Stats::default());
    // 40 + 8 + 1452 = 1500 fits; one byte more goes in two fragments.
    let out = feed(&mut l, &mut stats, &echo_request(PEER, US, &[1; 1452]));
    assert_eq!((out.len(), out[0].len()), (1, 1500));
    let out = feed(&mut l, &mut stats, &echo_request(PEER, US, &[1; 1453]));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|p| p.len() <= 1500 && p[6] == NEXT_FRAGMENT));
    assert_eq!(stats.ip6_fragmented, 1);
    // A link too small for a fragment of 8 bytes: not sent.
    let mut tiny = Ipv6Layer::new(addr(US), None, 64, 50, RateLimiter::new(1000, 50));
    assert!(feed(&mut tiny, &mut stats, &echo_request(PEER, US, &[1; 10])).is_empty());
    assert_eq!(stats.dropped(DropReason::OutputTooBig), 1);
}

#[test]
fn echo_to_a_group_and_unknown_informational_messages_are_not_answered() {
    let (mut l, mut stats) = (layer(), Stats::default());
    assert!(feed(&mut l, &mut stats, &echo_request(PEER, "ff02::1", b"x")).is_empty());
    let mut msg = Vec::new();
    icmpv6::write(&mut msg, addr(PEER), addr(US), 200, 0, [0; 4], b"");
    assert!(feed(&mut l, &mut stats, &packet(PEER, US, NEXT_ICMPV6, 64, &msg)).is_empty());
    assert_eq!(stats.dropped(DropReason::Icmpv6Unhandled), 2);
}

#[test]
fn malformed_packets_are_dropped_under_their_reason() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let good = echo_request(PEER, US, b"abcd");
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (good[..39].to_vec(), DropReason::Ipv6Truncated),
        (
            good[..good.len() - 1].to_vec(),
            DropReason::Ipv6BadPayloadLength,
        ),
        (
            {
                let mut p = good.clone();
                p[0] = 0x40;
                p
            },
            DropReason::Ipv6BadVersion,
        ),
        (echo_request("ff02::1", US, b"x"), DropReason::Ipv6BadSource),
        (echo_request("::", US, b"x"), DropReason::Ipv6BadSource),
        (echo_request("::1", US, b"x"), DropReason::Ipv6BadSource),
        (
            echo_request("::ffff:10.0.0.1", US, b"x"),
            DropReason::Ipv6BadSource,
        ),
        (echo_request(US, US, b"x"), DropReason::Ipv6BadSource),
        (
            echo_request(PEER, "fd00::3", b"x"),
            DropReason::Ipv6NotForUs,
        ),
        (
            echo_request(PEER, "ff02::2", b"x"),
            DropReason::Ipv6NotForUs,
        ),
        (
            {
                let mut p = good.clone();
                let last = p.len() - 1;
                p[last] ^= 1;
                p
            },
            DropReason::Icmpv6BadChecksum,
        ),
        (
            packet(PEER, US, NEXT_ICMPV6, 64, &[128, 0, 0]),
            DropReason::Icmpv6Truncated,
        ),
        (
            packet(PEER, US, NEXT_NONE, 64, b""),
            DropReason::Ipv6NoNextHeader,
        ),
        (
            packet(PEER, US, NEXT_FRAGMENT, 64, &[58, 0, 0, 1, 0]),
            DropReason::Ipv6BadExtension,
        ),
    ];
    for (p, reason) in cases {
        let before = stats.dropped(reason);
        let out = feed(&mut l, &mut stats, &p);
        assert!(out.is_empty(), "{reason}: answered");
        assert_eq!(stats.dropped(reason), before + 1, "{reason}");
    }
    assert_eq!(stats.icmp6_echo_replies, 0);
}

#[test]
fn hop_limit_zero_is_accepted_at_the_destination_and_group_addresses_are_ours() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let mut p = echo_request(PEER, US, b"x");
    p[7] = 0;
    assert_eq!(feed(&mut l, &mut stats, &p).len(), 1);
    for group in ["ff02::1", "ff02::1:ff00:2"] {
        assert!(l.accepts(addr(group)), "{group}");
    }
    assert!(!l.accepts(addr("ff02::1:ff00:3")));
}

#[test]
fn an_atomic_fragment_is_processed_as_a_whole_packet() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let echo = echo_request(PEER, US, b"atomic");
    let mut body = vec![NEXT_ICMPV6, 0, 0, 0, 0, 0, 0, 42];
    body.extend_from_slice(&echo[HEADER_LEN..]);
    let out = feed(
        &mut l,
        &mut stats,
        &packet(PEER, US, NEXT_FRAGMENT, 64, &body),
    );
    assert_eq!(out.len(), 1, "RFC 8021: atomic fragments are answered");
}

/// The Parameter Problem in `out`: (code, pointer, quoted packet).
fn problem(out: &[Vec<u8>]) -> (u8, u32, Vec<u8>) {
    assert_eq!(out.len(), 1, "one error expected");
    let (h, p) = Ipv6Header::parse(&out[0]).expect("error parses");
    assert!(out[0].len() <= MIN_MTU, "RFC 4443 §2.4 (c)");
    let m = Icmpv6Message::parse(h.src, h.dst, &p[HEADER_LEN..]).expect("checksum");
    assert_eq!(m.kind(), icmpv6::PARAMETER_PROBLEM);
    (m.code(), u32::from_be_bytes(m.field()), m.body().to_vec())
}

#[test]
fn an_unknown_next_header_gets_parameter_problem_code_1_pointing_at_it() {
    let (mut l, mut stats) = (layer(), Stats::default());
    // SCTP (132): a protocol the stack does not speak.
    let tcp = packet(PEER, US, 132, 64, &[0; 20]);
    let (code, pointer, quoted) = problem(&feed(&mut l, &mut stats, &tcp));
    assert_eq!((code, pointer, quoted), (1, 6, tcp));
    // Behind a destination options header, the pointer is its field.
    let p = packet(
        PEER,
        US,
        NEXT_DEST_OPTS,
        64,
        &[132, 0, 1, 4, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(problem(&feed(&mut l, &mut stats, &p)).1, 40);
    assert_eq!(stats.dropped(DropReason::Ipv6UnknownNextHeader), 2);
    assert_eq!(stats.icmp6_errors_sent, 2);
    // Not about a packet to a group (RFC 4443 §2.4 (e.3)).
    assert!(feed(
        &mut l,
        &mut stats,
        &packet(PEER, "ff02::1", 132, 64, &[0; 20])
    )
    .is_empty());
    // A big packet is quoted only up to 1280 bytes in all.
    let big = packet(PEER, US, 132, 64, &[0; 1400]);
    assert_eq!(problem(&feed(&mut l, &mut stats, &big)).2.len(), 1280 - 48);
}

#[test]
fn routing_type_0_and_unknown_options_get_parameter_problems() {
    let (mut l, mut stats) = (layer(), Stats::default());
    // RFC 5095: RH0 with segments left: code 0, pointer at the type.
    let mut body = vec![58u8, 2, 0, 1, 0, 0, 0, 0];
    body.extend_from_slice(&[0; 16]);
    let rh0 = packet(PEER, US, NEXT_ROUTING, 64, &body);
    let (code, pointer, _) = problem(&feed(&mut l, &mut stats, &rh0));
    assert_eq!((code, pointer), (0, 42));
    assert_eq!(stats.dropped(DropReason::Ipv6RoutingType0), 1);
    // An option of type 0x9e (top bits 10): code 2, even to a group.
    let opt = [58u8, 0, 0x9e, 2, 0, 0, 1, 0];
    let to_group = packet(PEER, "ff02::1", NEXT_DEST_OPTS, 64, &opt);
    let (code, pointer, _) = problem(&feed(&mut l, &mut stats, &to_group));
    assert_eq!((code, pointer), (2, 42));
    // The error to a group's packet comes from our address for the peer.
    let out = feed(&mut l, &mut stats, &to_group);
    assert_eq!(Ipv6Header::parse(&out[0]).map(|(h, _)| h.src), Ok(addr(US)));
}

#[test]
fn errors_are_rate_limited() {
    let mut l = Ipv6Layer::new(addr(US), None, 64, 1500, RateLimiter::new(10, 3));
    let mut stats = Stats::default();
    let tcp = packet(PEER, US, 132, 64, &[0; 20]);
    let mut sent = 0;
    for _ in 0..10 {
        sent += feed(&mut l, &mut stats, &tcp).len();
    }
    assert_eq!((sent, stats.icmp_rate_limited), (3, 7));
    // Echo replies are not errors: never limited.
    assert_eq!(
        feed(&mut l, &mut stats, &echo_request(PEER, US, b"x")).len(),
        1
    );
    let mut out = Vec::new();
    l.receive(
        Instant::from_secs(1) + Duration::from_millis(200),
        &tcp,
        false,
        &mut stats,
        &mut |q| out.push(q.to_vec()),
    );
    assert_eq!(out.len(), 1, "refilled after 200 ms at 10/s");
}

/// `message` (an ICMPv6 message from PEER to US) cut into fragments of
/// `piece` bytes with Identification `id`: (offset, more, packet).
fn fragments(message: &[u8], piece: usize, id: u32) -> Vec<(usize, bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for chunk in message.chunks(piece) {
        let more = offset + chunk.len() < message.len();
        let field = (offset as u16) | u16::from(more);
        let mut body = vec![NEXT_ICMPV6, 0];
        body.extend_from_slice(&field.to_be_bytes());
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(chunk);
        out.push((offset, more, packet(PEER, US, NEXT_FRAGMENT, 64, &body)));
        offset += chunk.len();
    }
    out
}

fn echo_message(data: &[u8]) -> Vec<u8> {
    echo_request(PEER, US, data)[HEADER_LEN..].to_vec()
}

/// Reassembles what the layer sent with a second layer's reassembler:
/// the ICMPv6 messages, whole.
fn reassemble_sent(out: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut r: Reassembler<Frag6Key> =
        Reassembler::with_max_payload(ReassemblyConfig::default(), MAX_PAYLOAD);
    let mut whole = Vec::new();
    for p in out {
        assert!(p.len() <= 1500, "a fragment past the MTU");
        let (h, p) = Ipv6Header::parse(p).expect("valid IPv6");
        if h.next_header != NEXT_FRAGMENT {
            whole.push(p[HEADER_LEN..].to_vec());
            continue;
        }
        let f = &p[HEADER_LEN..];
        let field = u16::from_be_bytes([f[2], f[3]]);
        let key = Frag6Key {
            src: h.src,
            dst: h.dst,
            id: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            next_header: f[0],
        };
        let data = &f[8..];
        if field & 1 == 1 {
            assert_eq!(data.len() % 8, 0, "RFC 8200 §4.5: a multiple of 8");
        }
        if let Some(done) = r
            .push(
                Instant::from_secs(1),
                key,
                usize::from(field & !7),
                field & 1 == 1,
                data,
            )
            .expect("consistent fragments")
        {
            whole.push(done.payload);
        }
    }
    whole
}

#[test]
fn fragments_in_any_order_are_reassembled_and_a_big_reply_is_fragmented() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let data: Vec<u8> = (0..8000u32).map(|i| i as u8).collect();
    let mut frags = fragments(&echo_message(&data), 1448, 7);
    assert_eq!(frags.len(), 6);
    frags.reverse();
    frags.swap(1, 3);
    let mut out = Vec::new();
    for (_, _, p) in &frags {
        out.extend(feed(&mut l, &mut stats, p));
    }
    assert_eq!(stats.ip6_reassembled, 1);
    assert_eq!(stats.ip6_fragmented, 1);
    assert_eq!(out.len(), 6, "8008 bytes of reply in 1448-byte pieces");
    let replies = reassemble_sent(&out);
    assert_eq!(replies.len(), 1);
    let m = Icmpv6Message::parse(addr(US), addr(PEER), &replies[0]).expect("checksum");
    assert_eq!((m.kind(), m.body()), (icmpv6::ECHO_REPLY, &data[..]));
    assert_eq!(l.reassembly_bytes(), 0);
    // Reassembled datagrams need fragmented replies to use another id.
    for (_, _, p) in &frags {
        out = feed(&mut l, &mut stats, p);
    }
    let id = |p: &[u8]| p[44..48].to_vec();
    assert_eq!(out.len(), 6);
    assert_ne!(id(&out[0]), id(&reassemble_first(&frags, &mut l)[0]));
}

/// Sends `frags` once more and returns what came back.
fn reassemble_first(frags: &[(usize, bool, Vec<u8>)], l: &mut Ipv6Layer) -> Vec<Vec<u8>> {
    let mut stats = Stats::default();
    let mut out = Vec::new();
    for (_, _, p) in frags {
        out.extend(feed(l, &mut stats, p));
    }
    out
}

#[test]
fn an_overlapping_fragment_drops_the_whole_datagram() {
    // RFC 5722 §4.
    let (mut l, mut stats) = (layer(), Stats::default());
    let frags = fragments(&echo_message(&[1; 3000]), 1448, 9);
    assert!(feed(&mut l, &mut stats, &frags[0].2).is_empty());
    // The second piece, moved 8 bytes back so that it overlaps the first.
    let mut overlap = frags[1].2.clone();
    let field = (1440u16) | 1;
    overlap[42..44].copy_from_slice(&field.to_be_bytes());
    assert!(feed(&mut l, &mut stats, &overlap).is_empty());
    assert_eq!(stats.dropped(DropReason::FragmentOverlap), 1);
    assert_eq!(l.reassembly_bytes(), 0, "the whole datagram is gone");
    // The rest cannot complete it.
    for (_, _, p) in &frags[1..] {
        assert!(feed(&mut l, &mut stats, p).is_empty());
    }
    assert_eq!(stats.ip6_reassembled, 0);
}

#[test]
fn bad_fragment_lengths_get_parameter_problem_code_0() {
    let (mut l, mut stats) = (layer(), Stats::default());
    // RFC 8200 §4.5: M set and a length not a multiple of 8: pointer at
    // the Payload Length.
    let odd = packet(
        PEER,
        US,
        NEXT_FRAGMENT,
        64,
        &[58, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3],
    );
    let (code, pointer, _) = problem(&feed(&mut l, &mut stats, &odd));
    assert_eq!((code, pointer), (0, 4));
    // Past 65,535 bytes once reassembled: pointer at the Fragment Offset.
    let far = packet(
        PEER,
        US,
        NEXT_FRAGMENT,
        64,
        &[&[58u8, 0, 0xff, 0xf8, 0, 0, 0, 1][..], &[0; 16]].concat(),
    );
    let (code, pointer, _) = problem(&feed(&mut l, &mut stats, &far));
    assert_eq!((code, pointer), (0, 42));
    assert_eq!(stats.dropped(DropReason::FragmentInconsistent), 1);
    assert_eq!(stats.dropped(DropReason::FragmentTooLong), 1);
}

#[test]
fn a_timed_out_reassembly_sends_time_exceeded_only_after_fragment_zero() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let frags = fragments(&echo_message(&[3; 3000]), 1448, 11);
    let t0 = Instant::from_secs(1);
    let mut out = Vec::new();
    l.receive(t0, &frags[0].2, false, &mut stats, &mut |p| {
        out.push(p.to_vec())
    });
    // Another datagram with only a later fragment.
    let others = fragments(&echo_message(&[4; 3000]), 1448, 12);
    l.receive(t0, &others[1].2, false, &mut stats, &mut |p| {
        out.push(p.to_vec())
    });
    assert!(out.is_empty());
    let deadline = l.poll_at().expect("a deadline");
    assert_eq!(deadline, t0 + ReassemblyConfig::default().timeout);
    l.poll(deadline, &mut stats, &mut |p| out.push(p.to_vec()));
    assert_eq!(stats.dropped(DropReason::FragmentTimeout), 2);
    assert_eq!(
        out.len(),
        1,
        "one Time Exceeded: fragment zero of the first"
    );
    let (h, p) = Ipv6Header::parse(&out[0]).expect("valid");
    let m = Icmpv6Message::parse(h.src, h.dst, &p[HEADER_LEN..]).expect("checksum");
    assert_eq!(
        (m.kind(), m.code(), h.dst),
        (icmpv6::TIME_EXCEEDED, 1, addr(PEER))
    );
    assert!(out[0].len() <= MIN_MTU);
    assert_eq!(l.poll_at(), None);
}

#[test]
fn endless_fragments_stay_within_the_reassembly_memory() {
    let config = ReassemblyConfig {
        max_bytes: 64 * 1024,
        ..ReassemblyConfig::default()
    };
    let mut l = Ipv6Layer::with_reassembly(
        addr(US),
        None,
        64,
        1500,
        RateLimiter::new(1000, 50),
        config,
        1,
    );
    let mut stats = Stats::default();
    for id in 0..2000u32 {
        let frags = fragments(&echo_message(&[5; 3000]), 1448, id);
        feed(&mut l, &mut stats, &frags[0].2);
        assert!(l.reassembly_bytes() <= config.max_bytes);
    }
    assert!(stats.dropped(DropReason::FragmentEvicted) > 0);
}

#[test]
fn tcp_and_udp_go_up_whole_and_reassembled_never_trusted() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let t = Instant::from_secs(1);
    let body: Vec<u8> = (0..40u8).collect();
    for next in [NEXT_TCP, NEXT_UDP] {
        let p = packet(PEER, US, next, 64, &body);
        let mut out = Vec::new();
        let up = l.receive(t, &p, true, &mut stats, &mut |q| out.push(q.to_vec()));
        let Some(Up6::Datagram(d)) = up else {
            panic!("next header {next}: {up:?}");
        };
        assert_eq!((d.src, d.dst, d.next_header), (addr(PEER), addr(US), next));
        assert_eq!((&d.header[..], &d.payload[..]), (&p[..40], &body[..]));
        assert!(
            d.checksum_trusted,
            "the device's word holds for a whole packet"
        );
        assert!(out.is_empty(), "nothing answered: {out:?}");
    }
    // Behind a destination options header, the header to quote holds it.
    let mut opts = vec![NEXT_TCP, 0, 1, 4, 0, 0, 0, 0];
    opts.extend_from_slice(&body);
    let p = packet(PEER, US, NEXT_DEST_OPTS, 64, &opts);
    let Some(Up6::Datagram(d)) = l.receive(t, &p, false, &mut stats, &mut |_| {}) else {
        panic!("TCP behind options not delivered");
    };
    assert_eq!((d.header.len(), &d.payload[..]), (48, &body[..]));
    // A TCP segment in two fragments comes up once, whole, untrusted.
    let segment: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut got = Vec::new();
    for (offset, chunk) in segment.chunks(1448).enumerate() {
        let offset = offset * 1448;
        let more = offset + chunk.len() < segment.len();
        let mut frag = vec![NEXT_TCP, 0];
        frag.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
        frag.extend_from_slice(&7u32.to_be_bytes());
        frag.extend_from_slice(chunk);
        let p = packet(PEER, US, NEXT_FRAGMENT, 64, &frag);
        if let Some(Up6::Datagram(d)) = l.receive(t, &p, true, &mut stats, &mut |_| {}) {
            got.push((d.payload.to_vec(), d.checksum_trusted));
        }
    }
    assert_eq!(got, vec![(segment, false)]);
}

#[test]
fn errors_about_our_tcp_and_udp_are_reported_with_the_quoted_ports() {
    let (mut l, mut stats) = (layer(), Stats::default());
    // What we sent: TCP from US:80 to PEER:40000, sequence 0x01020304.
    let mut tcp = vec![0, 80, 0x9c, 0x40, 1, 2, 3, 4];
    tcp.extend_from_slice(&[0; 12]);
    let quoted = packet(US, PEER, NEXT_TCP, 64, &tcp);
    for (kind, code, field) in [
        (icmpv6::PACKET_TOO_BIG, 0, 1400u32),
        (icmpv6::DEST_UNREACHABLE, 4, 0),
        (icmpv6::TIME_EXCEEDED, 0, 0),
    ] {
        let mut msg = Vec::new();
        icmpv6::write(
            &mut msg,
            addr(PEER),
            addr(US),
            kind,
            code,
            field.to_be_bytes(),
            &quoted,
        );
        let p = packet(PEER, US, NEXT_ICMPV6, 64, &msg);
        let up = l.receive(Instant::from_secs(1), &p, false, &mut stats, &mut |_| {});
        let Some(Up6::Error(r)) = up else {
            panic!("type {kind}: {up:?}");
        };
        assert_eq!(
            r,
            Report6 {
                kind,
                code,
                field,
                src: addr(US),
                dst: addr(PEER),
                next_header: NEXT_TCP,
                transport: [0, 80, 0x9c, 0x40, 1, 2, 3, 4],
            }
        );
    }
    // A quote too short to name the ports is dropped, not reported.
    let mut msg = Vec::new();
    let short = &quoted[..44];
    icmpv6::write(
        &mut msg,
        addr(PEER),
        addr(US),
        icmpv6::DEST_UNREACHABLE,
        4,
        [0; 4],
        short,
    );
    let p = packet(PEER, US, NEXT_ICMPV6, 64, &msg);
    assert!(l
        .receive(Instant::from_secs(1), &p, false, &mut stats, &mut |_| {})
        .is_none());
    assert_eq!(stats.dropped(DropReason::Icmpv6Unhandled), 1);
}

#[test]
fn port_unreachable_quotes_the_datagram_and_never_answers_a_group() {
    let (mut l, mut stats) = (layer(), Stats::default());
    let udp = [0x9c, 0x40, 0, 9, 0, 12, 0, 0, 1, 2, 3, 4];
    let p = packet(PEER, US, NEXT_UDP, 64, &udp);
    let Some(Up6::Datagram(d)) =
        l.receive(Instant::from_secs(1), &p, false, &mut stats, &mut |_| {})
    else {
        panic!("UDP not delivered");
    };
    let mut out = Vec::new();
    l.unreachable(Instant::from_secs(1), 4, &d, &mut stats, &mut |q| {
        out.push(q.to_vec())
    });
    assert_eq!(out.len(), 1);
    let (h, rest) = Ipv6Header::parse(&out[0]).expect("an IPv6 packet");
    assert_eq!(
        (h.src, h.dst, h.next_header),
        (addr(US), addr(PEER), NEXT_ICMPV6)
    );
    let m = Icmpv6Message::parse(h.src, h.dst, &rest[HEADER_LEN..]).expect("valid ICMPv6");
    assert_eq!(
        (m.kind(), m.code(), m.body()),
        (icmpv6::DEST_UNREACHABLE, 4, &p[..])
    );
    // To a group: nothing (RFC 4443 §2.4 (e.3)).
    let to_group = packet(PEER, "ff02::1", NEXT_UDP, 64, &udp);
    let Some(Up6::Datagram(d)) = l.receive(
        Instant::from_secs(1),
        &to_group,
        false,
        &mut stats,
        &mut |_| {},
    ) else {
        panic!("UDP to all-nodes not delivered");
    };
    out.clear();
    l.unreachable(Instant::from_secs(1), 4, &d, &mut stats, &mut |q| {
        out.push(q.to_vec())
    });
    assert!(out.is_empty());
}
