//! Neighbour discovery (RFC 4861) driven frame by frame with a virtual
//! clock, through the whole link layer.

use std::net::Ipv6Addr;

use super::ethernet::{EthernetHeader, ETHERTYPE_IPV6};
use super::*;
use crate::wire::icmpv6::{self, Icmpv6Message, NeighborMessage};
use crate::wire::ipv6::{self, Ipv6Header};

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const KERNEL_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);

fn a6(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A link with IPv6 whose ARP announcements are out of the way.
fn link() -> EthernetLink {
    let config = NeighbourConfig::default();
    let mut l = EthernetLink::new(OUR_MAC, Ipv4Addr::new(10, 0, 0, 2), 24, config)
        .with_ipv6(a6("fd00::2"), config);
    l.poll(at(0));
    l.poll(at(2000));
    while l.pop_frame().is_some() {}
    l
}

fn frame(dst: MacAddr, src: MacAddr, packet: &[u8]) -> Vec<u8> {
    let mut f = EthernetHeader {
        dst,
        src,
        ethertype: ETHERTYPE_IPV6,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(packet);
    f
}

/// A neighbour solicitation from `src` to `dst` for `target`.
fn ns(src: &str, dst: Ipv6Addr, target: &str, hop_limit: u8) -> Vec<u8> {
    let mut msg = Vec::new();
    icmpv6::write_neighbor_solicitation(&mut msg, a6(src), dst, a6(target), KERNEL_MAC.0);
    let mut p = Vec::new();
    ipv6::write(&mut p, a6(src), dst, 58, hop_limit, &msg);
    p
}

/// The IPv6 frames the link queued (ARP announcements left out):
/// (destination MAC, header, ICMPv6 body).
fn sent(l: &mut EthernetLink) -> Vec<(MacAddr, Ipv6Header, Vec<u8>)> {
    std::iter::from_fn(|| l.pop_frame())
        .filter_map(|f| {
            let eth = EthernetHeader::parse(&f).expect("header");
            if eth.ethertype == super::ethernet::ETHERTYPE_ARP {
                return None;
            }
            assert_eq!((eth.src, eth.ethertype), (OUR_MAC, ETHERTYPE_IPV6));
            let (h, p) = Ipv6Header::parse(&f[HEADER_LEN..]).expect("IPv6");
            Some((eth.dst, h, p[40..].to_vec()))
        })
        .collect()
}

#[test]
fn link_local_is_modified_eui64_and_group_frames_are_taken() {
    let l = link();
    assert_eq!(l.link_local6(), Some(a6("fe80::ff:fe00:2")));
    let solicited = MacAddr([0x33, 0x33, 0xff, 0, 0, 2]);
    let all_nodes = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    let mut l = l;
    for dst in [solicited, all_nodes, OUR_MAC] {
        let f = frame(dst, KERNEL_MAC, &[0x60; 40]);
        // Not ND: up to the IP layer.
        assert_eq!(l.receive(at(3000), &f), Some(HEADER_LEN..f.len()), "{dst}");
    }
    let other_group = frame(
        MacAddr([0x33, 0x33, 0xff, 0, 0, 3]),
        KERNEL_MAC,
        &[0x60; 40],
    );
    assert_eq!(l.receive(at(3000), &other_group), None);
    assert_eq!(l.stats().dropped(DropReason::EthernetNotForUs), 1);
}

#[test]
fn a_solicitation_for_our_address_gets_a_solicited_advertisement_and_the_asker_is_learned() {
    for target in ["fd00::2", "fe80::ff:fe00:2"] {
        let mut l = link();
        let group = ipv6::solicited_node(a6(target));
        let f = frame(
            MacAddr::ipv6_multicast(group),
            KERNEL_MAC,
            &ns("fd00::1", group, target, 255),
        );
        assert_eq!(l.receive(at(3000), &f), None, "ND stays in the link layer");
        let out = sent(&mut l);
        assert_eq!(out.len(), 1, "{target}");
        let (mac, h, body) = &out[0];
        assert_eq!(
            (*mac, h.src, h.dst, h.hop_limit),
            (KERNEL_MAC, a6(target), a6("fd00::1"), 255)
        );
        let m = Icmpv6Message::parse(h.src, h.dst, body).expect("checksum");
        assert_eq!(m.kind(), icmpv6::NEIGHBOR_ADVERTISEMENT);
        let na = NeighborMessage::parse(&m).expect("valid NA");
        assert_eq!(na.target, a6(target));
        assert_eq!(na.link_addr, Some(OUR_MAC.0));
        assert_eq!(na.flags, icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE);
        assert_eq!(l.neighbour6(a6("fd00::1")), Some(KERNEL_MAC));
        let s = l.stats();
        assert_eq!((s.nd_solicitations_in, s.nd_advertisements_out), (1, 1));
    }
}

#[test]
fn invalid_or_foreign_solicitations_are_dropped_and_counted() {
    let mut l = link();
    let group = ipv6::solicited_node(a6("fd00::2"));
    let mac = MacAddr::ipv6_multicast(group);
    // RFC 4861 §7.1.1: hop limit other than 255.
    assert_eq!(
        l.receive(
            at(3000),
            &frame(mac, KERNEL_MAC, &ns("fd00::1", group, "fd00::2", 64))
        ),
        None
    );
    // A bad checksum.
    let mut p = ns("fd00::1", group, "fd00::2", 255);
    p[45] ^= 1;
    assert_eq!(l.receive(at(3000), &frame(mac, KERNEL_MAC, &p)), None);
    // DAD (unspecified source) with a source link-layer option.
    let mut body = a6("fd00::2").octets().to_vec();
    body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
    let mut msg = Vec::new();
    let unspecified = Ipv6Addr::UNSPECIFIED;
    icmpv6::write(&mut msg, unspecified, group, 135, 0, [0; 4], &body);
    let mut dad_with_option = Vec::new();
    ipv6::write(&mut dad_with_option, unspecified, group, 58, 255, &msg);
    assert_eq!(
        l.receive(at(3000), &frame(mac, KERNEL_MAC, &dad_with_option)),
        None
    );
    assert_eq!(l.stats().dropped(DropReason::NdInvalid), 3);
    // For an address that is not ours.
    let other = ipv6::solicited_node(a6("fd00::3"));
    let f = frame(mac, KERNEL_MAC, &ns("fd00::1", other, "fd00::3", 255));
    assert_eq!(l.receive(at(3000), &f), None);
    assert_eq!(l.stats().dropped(DropReason::NdNotForUs), 1);
    assert!(sent(&mut l).is_empty(), "nothing answered");
    assert_eq!(l.neighbour6(a6("fd00::1")), None, "nothing learned");
}

#[test]
fn another_nodes_dad_for_our_address_is_answered_to_all_nodes() {
    let mut l = link();
    let group = ipv6::solicited_node(a6("fd00::2"));
    let mut msg = Vec::new();
    icmpv6::write_neighbor_solicitation(
        &mut msg,
        Ipv6Addr::UNSPECIFIED,
        group,
        a6("fd00::2"),
        KERNEL_MAC.0,
    );
    let mut p = Vec::new();
    ipv6::write(&mut p, Ipv6Addr::UNSPECIFIED, group, 58, 255, &msg);
    assert_eq!(
        l.receive(
            at(3000),
            &frame(MacAddr::ipv6_multicast(group), KERNEL_MAC, &p)
        ),
        None
    );
    let out = sent(&mut l);
    assert_eq!(out.len(), 1);
    let (mac, h, body) = &out[0];
    assert_eq!(
        (*mac, h.dst),
        (MacAddr([0x33, 0x33, 0, 0, 0, 1]), ipv6::ALL_NODES)
    );
    let m = Icmpv6Message::parse(h.src, h.dst, body).expect("checksum");
    let na = NeighborMessage::parse(&m).expect("valid NA");
    assert_eq!(na.flags & icmpv6::NA_SOLICITED, 0, "RFC 4861 §7.2.4");
    assert_eq!(l.stats().conflicts, 1);
}

#[test]
fn a_packet_to_an_unknown_neighbour_waits_for_the_advertisement() {
    let mut l = link();
    let mut packet = Vec::new();
    ipv6::write(
        &mut packet,
        a6("fd00::2"),
        a6("fd00::1"),
        58,
        64,
        &[129, 0, 0, 0, 0, 0, 0, 0],
    );
    l.send_ip(at(3000), &packet);
    let out = sent(&mut l);
    assert_eq!(out.len(), 1, "a solicitation only");
    let (mac, h, body) = &out[0];
    let group = ipv6::solicited_node(a6("fd00::1"));
    assert_eq!(
        (*mac, h.src, h.dst, h.hop_limit),
        (MacAddr::ipv6_multicast(group), a6("fd00::2"), group, 255)
    );
    let m = Icmpv6Message::parse(h.src, h.dst, body).expect("checksum");
    let solicitation = NeighborMessage::parse(&m).expect("valid NS");
    assert_eq!(
        (solicitation.target, solicitation.link_addr),
        (a6("fd00::1"), Some(OUR_MAC.0))
    );
    // The advertisement comes back: the packet follows.
    let mut msg = Vec::new();
    icmpv6::write_neighbor_advertisement(
        &mut msg,
        a6("fd00::1"),
        a6("fd00::2"),
        a6("fd00::1"),
        icmpv6::NA_SOLICITED,
        KERNEL_MAC.0,
    );
    let mut na = Vec::new();
    ipv6::write(&mut na, a6("fd00::1"), a6("fd00::2"), 58, 255, &msg);
    assert_eq!(l.receive(at(3010), &frame(OUR_MAC, KERNEL_MAC, &na)), None);
    let out = sent(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, KERNEL_MAC);
    assert_eq!(out[0].2, [129, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(l.neighbour6(a6("fd00::1")), Some(KERNEL_MAC));
    // Now known: sent at once. To a group: no resolution.
    l.send_ip(at(3020), &packet);
    assert_eq!(sent(&mut l).len(), 1);
    let mut to_group = packet.clone();
    to_group[24..40].copy_from_slice(&ipv6::ALL_NODES.octets());
    l.send_ip(at(3020), &to_group);
    assert_eq!(sent(&mut l)[0].0, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
}

#[test]
fn a_silent_neighbour_makes_the_packet_unreachable() {
    let mut l = link();
    // The two DAD probes were solicitations too.
    let probes = l.stats().nd_solicitations_out;
    let mut packet = Vec::new();
    ipv6::write(
        &mut packet,
        a6("fe80::ff:fe00:2"),
        a6("fe80::9"),
        58,
        64,
        &[0; 8],
    );
    l.send_ip(at(3000), &packet);
    // Asked from the link-local address, as the packet is.
    assert_eq!(sent(&mut l)[0].1.src, a6("fe80::ff:fe00:2"));
    for ms in [4000, 5000, 6000] {
        l.poll(at(ms));
    }
    assert_eq!(l.pop_unreachable(), Some(packet));
    assert_eq!(l.stats().dropped(DropReason::NeighbourUnreachable), 1);
    assert_eq!(l.stats().nd_solicitations_out - probes, 3);
}

#[test]
fn without_ipv6_the_link_drops_ipv6_as_before() {
    let mut l = EthernetLink::new(
        OUR_MAC,
        Ipv4Addr::new(10, 0, 0, 2),
        24,
        NeighbourConfig::default(),
    );
    let f = frame(
        OUR_MAC,
        KERNEL_MAC,
        &ns("fd00::1", a6("fd00::2"), "fd00::2", 255),
    );
    assert_eq!(l.receive(at(0), &f), None);
    assert_eq!(l.stats().dropped(DropReason::EthernetUnknownType), 1);
    let group = frame(MacAddr([0x33, 0x33, 0, 0, 0, 1]), KERNEL_MAC, &[0x60; 40]);
    assert_eq!(l.receive(at(0), &group), None);
    assert_eq!(l.stats().dropped(DropReason::EthernetNotForUs), 1);
}

#[test]
fn arbitrary_ipv6_frames_never_panic() {
    let mut l = link();
    let base = frame(
        MacAddr::ipv6_multicast(ipv6::solicited_node(a6("fd00::2"))),
        KERNEL_MAC,
        &ns(
            "fd00::1",
            ipv6::solicited_node(a6("fd00::2")),
            "fd00::2",
            255,
        ),
    );
    let mut x: u64 = 0x1234_5678;
    for i in 0..20_000u64 {
        let mut f = base.clone();
        for _ in 0..(i % 6) + 1 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at_ = HEADER_LEN + (x as usize) % (f.len() - HEADER_LEN);
            f[at_] = (x >> 32) as u8;
        }
        f.truncate(HEADER_LEN + (x as usize >> 8) % (f.len() - HEADER_LEN + 1));
        let _ = l.receive(at(3000 + i), &f);
        l.send_ip(at(3000 + i), &f[HEADER_LEN..]);
        while l.pop_frame().is_some() {}
    }
}

/// A neighbour advertisement from `src` to `dst` for `target` with `flags`.
fn na(src: &str, dst: Ipv6Addr, target: &str, flags: u8) -> Vec<u8> {
    let mut msg = Vec::new();
    icmpv6::write_neighbor_advertisement(&mut msg, a6(src), dst, a6(target), flags, KERNEL_MAC.0);
    let mut p = Vec::new();
    ipv6::write(&mut p, a6(src), dst, 58, 255, &msg);
    p
}

#[test]
fn advertisements_update_only_entries_we_hold() {
    // RFC 4861 §7.2.5: no entry, nothing created.
    let mut l = link();
    let unsolicited = na("fd00::1", ipv6::ALL_NODES, "fd00::1", icmpv6::NA_OVERRIDE);
    let all_nodes = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(
        l.receive(at(3000), &frame(all_nodes, KERNEL_MAC, &unsolicited)),
        None
    );
    assert_eq!(l.neighbour6(a6("fd00::1")), None);
    assert_eq!(l.stats().nd_advertisements_in, 1);
    // RFC 4861 §7.1.2: Solicited set on one sent to a group: invalid.
    let bad = na("fd00::1", ipv6::ALL_NODES, "fd00::1", icmpv6::NA_SOLICITED);
    assert_eq!(
        l.receive(at(3000), &frame(all_nodes, KERNEL_MAC, &bad)),
        None
    );
    assert_eq!(l.stats().dropped(DropReason::NdInvalid), 1);
    // Someone else advertising our address: a conflict, nothing learned.
    let ours = na("fd00::1", ipv6::ALL_NODES, "fd00::2", icmpv6::NA_OVERRIDE);
    assert_eq!(
        l.receive(at(3000), &frame(all_nodes, KERNEL_MAC, &ours)),
        None
    );
    assert_eq!(l.stats().conflicts, 1);
    assert!(sent(&mut l).is_empty());
}

#[test]
fn our_addresses_are_probed_by_dad_and_unused_until_it_is_done() {
    let config = NeighbourConfig::default();
    let mut l = EthernetLink::new(OUR_MAC, Ipv4Addr::new(10, 0, 0, 2), 24, config)
        .with_ipv6(a6("fd00::2"), config);
    l.poll(at(0));
    // RFC 4862 §5.4.2: a probe per address, from ::, to its solicited-node
    // group, with no source link-layer option.
    let probes: Vec<_> = sent(&mut l)
        .into_iter()
        .filter(|(_, h, _)| h.src.is_unspecified())
        .collect();
    assert_eq!(probes.len(), 2);
    for (mac, h, body) in &probes {
        let m = Icmpv6Message::parse(h.src, h.dst, body).expect("checksum");
        let ns = NeighborMessage::parse(&m).expect("valid NS");
        assert_eq!(h.dst, ipv6::solicited_node(ns.target));
        assert_eq!(*mac, MacAddr::ipv6_multicast(h.dst));
        assert_eq!((h.hop_limit, ns.link_addr), (255, None));
    }
    // Tentative: a solicitation for it is not answered (§5.4.3), a packet
    // to it does not go up, nothing leaves from it.
    let group = ipv6::solicited_node(a6("fd00::2"));
    let solicit = frame(
        MacAddr::ipv6_multicast(group),
        KERNEL_MAC,
        &ns("fd00::1", group, "fd00::2", 255),
    );
    assert_eq!(l.receive(at(500), &solicit), None);
    assert!(sent(&mut l).is_empty());
    let mut echo = Vec::new();
    ipv6::write(
        &mut echo,
        a6("fd00::1"),
        a6("fd00::2"),
        58,
        64,
        &[128, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(l.receive(at(500), &frame(OUR_MAC, KERNEL_MAC, &echo)), None);
    let mut reply = Vec::new();
    ipv6::write(
        &mut reply,
        a6("fd00::2"),
        a6("fd00::1"),
        58,
        64,
        &[129, 0, 0, 0, 0, 0, 0, 0],
    );
    l.send_ip(at(500), &reply);
    assert!(sent(&mut l).is_empty());
    assert_eq!(l.stats().dropped(DropReason::Ipv6Tentative), 3);
    // A second after the probe, the address is ours.
    assert_eq!(l.poll_at(), Some(at(1000)));
    l.poll(at(1000));
    assert_eq!(l.receive(at(1100), &solicit), None);
    assert_eq!(sent(&mut l).len(), 1, "answered once DAD is done");
    let up = l.receive(at(1100), &frame(OUR_MAC, KERNEL_MAC, &echo));
    assert_eq!(up, Some(HEADER_LEN..HEADER_LEN + echo.len()));
}

#[test]
fn an_answer_to_our_probe_makes_the_address_a_duplicate_never_used() {
    let config = NeighbourConfig::default();
    let mut l = EthernetLink::new(OUR_MAC, Ipv4Addr::new(10, 0, 0, 2), 24, config)
        .with_ipv6(a6("fd00::2"), config);
    l.poll(at(0));
    let _ = sent(&mut l);
    // RFC 4862 §5.4.4: an advertisement for the tentative address.
    let all_nodes = MacAddr([0x33, 0x33, 0, 0, 0, 1]);
    let answer = na("fd00::9", ipv6::ALL_NODES, "fd00::2", icmpv6::NA_OVERRIDE);
    assert_eq!(
        l.receive(at(300), &frame(all_nodes, KERNEL_MAC, &answer)),
        None
    );
    // RFC 4862 §5.4.3: another node probing the link-local address too.
    let ll = l.link_local6().expect("link-local");
    let group = ipv6::solicited_node(ll);
    let mut probe = Vec::new();
    icmpv6::write_neighbor_solicitation(&mut probe, Ipv6Addr::UNSPECIFIED, group, ll, KERNEL_MAC.0);
    let mut p = Vec::new();
    ipv6::write(&mut p, Ipv6Addr::UNSPECIFIED, group, 58, 255, &probe);
    assert_eq!(
        l.receive(
            at(300),
            &frame(MacAddr::ipv6_multicast(group), KERNEL_MAC, &p)
        ),
        None
    );
    assert_eq!(l.stats().conflicts, 2);
    // Never ours: no answer to solicitations, ever.
    l.poll(at(5000));
    let _ = sent(&mut l);
    let g2 = ipv6::solicited_node(a6("fd00::2"));
    let solicit = frame(
        MacAddr::ipv6_multicast(g2),
        KERNEL_MAC,
        &ns("fd00::1", g2, "fd00::2", 255),
    );
    assert_eq!(l.receive(at(6000), &solicit), None);
    assert!(sent(&mut l).is_empty());
    assert_eq!(l.stats().dropped(DropReason::NdNotForUs), 1);
}

#[test]
fn without_dad_the_addresses_are_used_at_once() {
    let config = NeighbourConfig::default();
    let mut l = EthernetLink::new(OUR_MAC, Ipv4Addr::new(10, 0, 0, 2), 24, config)
        .with_ipv6(a6("fd00::2"), config)
        .with_dad(0);
    let group = ipv6::solicited_node(a6("fd00::2"));
    let solicit = frame(
        MacAddr::ipv6_multicast(group),
        KERNEL_MAC,
        &ns("fd00::1", group, "fd00::2", 255),
    );
    assert_eq!(l.receive(at(0), &solicit), None);
    let out = sent(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.src, a6("fd00::2"));
}
