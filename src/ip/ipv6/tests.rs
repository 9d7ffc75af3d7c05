//! The IPv6 layer packet by packet: what it answers, what it drops and
//! why, and the errors it sends.

use std::time::Duration;

use super::*;
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
    l.receive(Instant::from_secs(1), p, stats, &mut |q| {
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
fn a_reply_that_does_not_fit_the_mtu_is_not_sent() {
    let (mut l, mut stats) = (layer(), Stats::default());
    // 40 + 8 + 1452 = 1500 fits; one byte more does not.
    assert_eq!(
        feed(&mut l, &mut stats, &echo_request(PEER, US, &[1; 1452])).len(),
        1
    );
    assert!(feed(&mut l, &mut stats, &echo_request(PEER, US, &[1; 1453])).is_empty());
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
            packet(PEER, US, NEXT_FRAGMENT, 64, &[58, 0, 0, 1, 0, 0, 0, 9]),
            DropReason::Ipv6FragmentUnsupported,
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
    // TCP over IPv6 is not served yet.
    let tcp = packet(PEER, US, 6, 64, &[0; 20]);
    let (code, pointer, quoted) = problem(&feed(&mut l, &mut stats, &tcp));
    assert_eq!((code, pointer, quoted), (1, 6, tcp));
    // Behind a destination options header, the pointer is its field.
    let p = packet(
        PEER,
        US,
        NEXT_DEST_OPTS,
        64,
        &[17, 0, 1, 4, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(problem(&feed(&mut l, &mut stats, &p)).1, 40);
    assert_eq!(stats.dropped(DropReason::Ipv6UnknownNextHeader), 2);
    assert_eq!(stats.icmp6_errors_sent, 2);
    // Not about a packet to a group (RFC 4443 §2.4 (e.3)).
    assert!(feed(
        &mut l,
        &mut stats,
        &packet(PEER, "ff02::1", 6, 64, &[0; 20])
    )
    .is_empty());
    // A big packet is quoted only up to 1280 bytes in all.
    let big = packet(PEER, US, 6, 64, &[0; 1400]);
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
    let tcp = packet(PEER, US, 6, 64, &[0; 20]);
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
        &mut stats,
        &mut |q| out.push(q.to_vec()),
    );
    assert_eq!(out.len(), 1, "refilled after 200 ms at 10/s");
}
