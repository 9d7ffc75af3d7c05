//! The link layer driven frame by frame with a virtual clock.

use super::arp::{ArpPacket, Operation, PACKET_LEN};
use super::ethernet::{EthernetHeader, ETHERTYPE_IPV6};
use super::*;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PHANTOM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const KERNEL_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const OTHER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 9]);

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A link that has sent its announcements already.
fn link() -> EthernetLink {
    let mut l = EthernetLink::new(OUR_MAC, US, 24, NeighbourConfig::default());
    l.poll(at(0));
    l.poll(at(2000));
    while l.pop_frame().is_some() {}
    l
}

fn frame(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = EthernetHeader {
        dst,
        src,
        ethertype,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(payload);
    f
}

fn arp_frame(dst: MacAddr, p: ArpPacket) -> Vec<u8> {
    frame(dst, p.sender_mac, ETHERTYPE_ARP, &p.to_bytes())
}

fn request(from_ip: Ipv4Addr, from_mac: MacAddr, target: Ipv4Addr) -> ArpPacket {
    ArpPacket {
        op: Operation::Request,
        sender_mac: from_mac,
        sender_ip: from_ip,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    }
}

/// A minimal IPv4 header to `dst` (the link reads only the destination).
fn ipv4_to(dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&US.octets());
    p.extend_from_slice(&dst.octets());
    p
}

/// The frames the link queued, parsed.
fn sent(l: &mut EthernetLink) -> Vec<(EthernetHeader, Vec<u8>)> {
    std::iter::from_fn(|| l.pop_frame())
        .map(|f| {
            let h = EthernetHeader::parse(&f).expect("a whole header");
            (h, f[HEADER_LEN..].to_vec())
        })
        .collect()
}

fn sent_arp(l: &mut EthernetLink) -> Vec<(MacAddr, ArpPacket)> {
    sent(l)
        .into_iter()
        .map(|(h, body)| {
            assert_eq!(h.ethertype, ETHERTYPE_ARP);
            assert_eq!(h.src, OUR_MAC);
            (h.dst, ArpPacket::parse(&body).expect("valid ARP"))
        })
        .collect()
}

#[test]
fn a_request_for_our_address_is_answered_to_the_asker_who_is_learned() {
    let mut l = link();
    let up = l.receive(
        at(10),
        &arp_frame(MacAddr::BROADCAST, request(KERNEL, KERNEL_MAC, US)),
    );
    assert_eq!(up, None);
    let replies = sent_arp(&mut l);
    assert_eq!(
        replies,
        vec![(
            KERNEL_MAC,
            ArpPacket {
                op: Operation::Reply,
                sender_mac: OUR_MAC,
                sender_ip: US,
                target_mac: KERNEL_MAC,
                target_ip: KERNEL,
            }
        )]
    );
    // RFC 826: the asker was added, so sending to it needs no request.
    assert_eq!(l.neighbour(KERNEL), Some(KERNEL_MAC));
    l.send_ipv4(at(11), &ipv4_to(KERNEL));
    let out = sent(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.dst, KERNEL_MAC);
    assert_eq!(out[0].0.ethertype, ETHERTYPE_IPV4);
    assert_eq!(out[0].1, ipv4_to(KERNEL));
    let s = l.stats();
    assert_eq!((s.arp_requests_in, s.arp_replies_out), (1, 1));
}

#[test]
fn a_request_for_another_address_is_not_answered_nor_learned() {
    let mut l = link();
    l.receive(
        at(0),
        &arp_frame(MacAddr::BROADCAST, request(KERNEL, KERNEL_MAC, PHANTOM)),
    );
    assert!(sent(&mut l).is_empty());
    assert_eq!(l.neighbour(KERNEL), None, "merge flag off: not added");
    assert_eq!(l.stats().dropped(DropReason::ArpNotForUs), 1);
    // ... but an entry we hold is updated (RFC 826 merge).
    l.receive(
        at(1),
        &arp_frame(MacAddr::BROADCAST, request(KERNEL, KERNEL_MAC, US)),
    );
    l.receive(
        at(2),
        &arp_frame(MacAddr::BROADCAST, request(KERNEL, OTHER_MAC, PHANTOM)),
    );
    assert_eq!(l.neighbour(KERNEL), Some(OTHER_MAC));
}

#[test]
fn our_address_is_announced_twice_on_start() {
    let mut l = EthernetLink::new(OUR_MAC, US, 24, NeighbourConfig::default());
    assert_eq!(l.poll_at(), Some(Instant::ZERO));
    l.poll(at(0));
    let announcement = ArpPacket {
        op: Operation::Request,
        sender_mac: OUR_MAC,
        sender_ip: US,
        target_mac: MacAddr::ZERO,
        target_ip: US,
    };
    assert_eq!(sent_arp(&mut l), vec![(MacAddr::BROADCAST, announcement)]);
    assert_eq!(l.poll_at(), Some(at(2000)));
    l.poll(at(1999));
    assert!(sent(&mut l).is_empty());
    l.poll(at(2000));
    assert_eq!(sent_arp(&mut l), vec![(MacAddr::BROADCAST, announcement)]);
    assert_eq!(l.poll_at(), None);
}

#[test]
fn an_unknown_next_hop_is_resolved_and_the_packet_follows_the_reply() {
    let mut l = link();
    l.send_ipv4(at(0), &ipv4_to(KERNEL));
    assert_eq!(
        sent_arp(&mut l),
        vec![(MacAddr::BROADCAST, request(US, OUR_MAC, KERNEL))]
    );
    let reply = ArpPacket {
        op: Operation::Reply,
        sender_mac: KERNEL_MAC,
        sender_ip: KERNEL,
        target_mac: OUR_MAC,
        target_ip: US,
    };
    l.receive(at(3), &arp_frame(OUR_MAC, reply));
    let out = sent(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].0.dst, out[0].0.ethertype),
        (KERNEL_MAC, ETHERTYPE_IPV4)
    );
    assert_eq!(l.poll_at(), None);
}

#[test]
fn a_silent_next_hop_is_asked_three_times_then_its_packets_are_unreachable() {
    let mut l = link();
    let syn = ipv4_to(PHANTOM);
    l.send_ipv4(at(0), &syn);
    assert_eq!(sent_arp(&mut l).len(), 1);
    for t in [1000, 2000] {
        assert_eq!(l.poll_at(), Some(at(t)));
        l.poll(at(t));
        assert_eq!(
            sent_arp(&mut l),
            vec![(MacAddr::BROADCAST, request(US, OUR_MAC, PHANTOM))]
        );
    }
    assert_eq!(l.pop_unreachable(), None);
    l.poll(at(3000));
    assert!(sent(&mut l).is_empty(), "three requests in all");
    assert_eq!(l.pop_unreachable(), Some(syn));
    assert_eq!(l.pop_unreachable(), None);
    let s = l.stats();
    assert_eq!(s.resolutions_failed, 1);
    assert_eq!(
        s.arp_requests_out,
        3 + 2,
        "three requests and two announcements"
    );
    assert_eq!(s.dropped(DropReason::NeighbourUnreachable), 1);
    assert_eq!(l.poll_at(), None);
}

#[test]
fn a_few_packets_wait_per_neighbour_and_the_oldest_goes_first() {
    let mut l = link();
    for _ in 0..5 {
        l.send_ipv4(at(0), &ipv4_to(PHANTOM));
    }
    assert_eq!(sent_arp(&mut l).len(), 1, "one request, not one per packet");
    assert_eq!(l.stats().dropped(DropReason::NeighbourQueueFull), 2);
    let reply = ArpPacket {
        op: Operation::Reply,
        sender_mac: OTHER_MAC,
        sender_ip: PHANTOM,
        target_mac: OUR_MAC,
        target_ip: US,
    };
    l.receive(at(1), &arp_frame(OUR_MAC, reply));
    assert_eq!(sent(&mut l).len(), 3);
}

#[test]
fn cache_entries_age_and_are_rechecked_by_unicast() {
    let mut l = link();
    l.receive(
        at(0),
        &arp_frame(MacAddr::BROADCAST, request(KERNEL, KERNEL_MAC, US)),
    );
    sent(&mut l);
    l.send_ipv4(at(30_000), &ipv4_to(KERNEL));
    let out = sent(&mut l);
    // The re-check (unicast) and the packet, still sent to the known MAC.
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        (out[0].0.dst, out[0].0.ethertype),
        (KERNEL_MAC, ETHERTYPE_ARP)
    );
    assert_eq!(
        (out[1].0.dst, out[1].0.ethertype),
        (KERNEL_MAC, ETHERTYPE_IPV4)
    );
    l.poll(at(31_000));
    l.poll(at(32_000));
    l.poll(at(33_000));
    assert_eq!(l.neighbour(KERNEL), None, "aged out after no answer");
}

#[test]
fn broadcast_and_multicast_destinations_need_no_arp() {
    let mut l = link();
    l.send_ipv4(at(0), &ipv4_to(Ipv4Addr::new(10, 0, 0, 255)));
    l.send_ipv4(at(0), &ipv4_to(Ipv4Addr::BROADCAST));
    l.send_ipv4(at(0), &ipv4_to(Ipv4Addr::new(224, 0, 0, 251)));
    let dsts: Vec<_> = sent(&mut l).into_iter().map(|(h, _)| h.dst).collect();
    assert_eq!(
        dsts,
        vec![
            MacAddr::BROADCAST,
            MacAddr::BROADCAST,
            MacAddr([0x01, 0, 0x5e, 0, 0, 0xfb])
        ]
    );
}

#[test]
fn ipv4_for_us_goes_up_and_everything_else_is_dropped_and_counted() {
    let mut l = link();
    let ip = ipv4_to(US);
    let f = frame(OUR_MAC, KERNEL_MAC, ETHERTYPE_IPV4, &ip);
    assert_eq!(
        l.receive(at(0), &f),
        Some(HEADER_LEN..HEADER_LEN + ip.len())
    );
    let bcast = frame(MacAddr::BROADCAST, KERNEL_MAC, ETHERTYPE_IPV4, &ip);
    assert!(l.receive(at(0), &bcast).is_some());
    let cases: [(Vec<u8>, DropReason); 6] = [
        (f[..13].to_vec(), DropReason::EthernetRunt),
        (Vec::new(), DropReason::EthernetRunt),
        (
            frame(OTHER_MAC, KERNEL_MAC, ETHERTYPE_IPV4, &ip),
            DropReason::EthernetNotForUs,
        ),
        (
            frame(
                MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                KERNEL_MAC,
                ETHERTYPE_IPV6,
                &ip,
            ),
            DropReason::EthernetNotForUs,
        ),
        (
            frame(OUR_MAC, KERNEL_MAC, ETHERTYPE_IPV6, &ip),
            DropReason::EthernetUnknownType,
        ),
        (
            frame(OUR_MAC, MacAddr::BROADCAST, ETHERTYPE_IPV4, &ip),
            DropReason::EthernetBadSource,
        ),
    ];
    for (bytes, reason) in &cases {
        let before = l.stats().dropped(*reason);
        assert_eq!(l.receive(at(0), bytes), None, "{reason}");
        assert_eq!(l.stats().dropped(*reason), before + 1, "{reason}");
    }
    // An 802.3 length field instead of an EtherType.
    assert_eq!(
        l.receive(at(0), &frame(OUR_MAC, KERNEL_MAC, 0x05dc, &ip)),
        None
    );
    assert_eq!(l.stats().dropped(DropReason::EthernetUnknownType), 2);
    assert!(sent(&mut l).is_empty());
}

#[test]
fn malformed_and_spoofed_arp_is_dropped_and_counted() {
    let mut l = link();
    let good = request(KERNEL, KERNEL_MAC, US).to_bytes();
    let short = frame(
        MacAddr::BROADCAST,
        KERNEL_MAC,
        ETHERTYPE_ARP,
        &good[..PACKET_LEN - 1],
    );
    l.receive(at(0), &short);
    assert_eq!(l.stats().dropped(DropReason::ArpMalformed), 1);
    let mut ipv6_proto = good;
    ipv6_proto[2..4].copy_from_slice(&0x86ddu16.to_be_bytes());
    l.receive(
        at(0),
        &frame(MacAddr::BROADCAST, KERNEL_MAC, ETHERTYPE_ARP, &ipv6_proto),
    );
    assert_eq!(l.stats().dropped(DropReason::ArpUnsupported), 1);
    // Sender MAC not the frame's source: not learned, not answered.
    let liar = frame(MacAddr::BROADCAST, OTHER_MAC, ETHERTYPE_ARP, &good);
    l.receive(at(0), &liar);
    assert_eq!(l.stats().dropped(DropReason::ArpMalformed), 2);
    // Someone claiming our address: not learned, counted as a conflict.
    l.receive(
        at(0),
        &arp_frame(MacAddr::BROADCAST, request(US, OTHER_MAC, US)),
    );
    assert_eq!(l.stats().conflicts, 1);
    assert!(sent(&mut l).is_empty());
    assert_eq!(l.neighbour(KERNEL), None);
    // An RFC 5227 probe (sender 0.0.0.0) for our address is answered but
    // teaches nothing.
    l.receive(
        at(0),
        &arp_frame(
            MacAddr::BROADCAST,
            request(Ipv4Addr::UNSPECIFIED, KERNEL_MAC, US),
        ),
    );
    assert_eq!(sent_arp(&mut l).len(), 1);
    assert_eq!(l.neighbour(Ipv4Addr::UNSPECIFIED), None);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut l = link();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let base = arp_frame(OUR_MAC, request(KERNEL, KERNEL_MAC, US));
    for i in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        let mut f = base.clone();
        f.resize(len.max(1), (x >> 8) as u8);
        let at_byte = (x >> 16) as usize % f.len();
        f[at_byte] ^= (x >> 24) as u8;
        let _ = l.receive(Instant::from_millis(i), &f);
        l.poll(Instant::from_millis(i));
        while let Some(frame) = l.pop_frame() {
            l.recycle(frame);
        }
    }
}
