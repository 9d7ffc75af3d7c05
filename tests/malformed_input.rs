//! Malformed input is dropped and counted under its own reason, never a
//! panic. Drives the sans-IO core directly, with a virtual clock.

mod common;

use std::time::Duration;

use common::*;
use tunstack::iface::Interface;
use tunstack::ip::frag::ReassemblyConfig;
use tunstack::stats::DropReason;
use tunstack::time::Instant;
use tunstack::wire::icmp::IcmpMessage;
use tunstack::wire::ipv4::Ipv4Packet;
use tunstack::Config;

fn iface() -> Interface {
    Interface::new(&Config::default(), 1500, 1)
}

fn outputs(i: &mut Interface) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| i.pop_transmit().map(Vec::from)).collect()
}

/// Fixes the IPv4 header checksum after a test edited header bytes.
fn fix_checksum(p: &mut [u8]) {
    let Some(first) = p.first() else { return };
    let ihl = usize::from(first & 0xf) * 4;
    if ihl < 20 || ihl > p.len() {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = tunstack::wire::checksum::checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn each_malformation_is_dropped_and_counted_under_its_reason() {
    let good = udp(1000, 7, b"payload!");
    let mut cases: Vec<(&str, Vec<u8>, DropReason)> = Vec::new();
    cases.push(("empty", vec![], DropReason::Truncated));
    cases.push((
        "truncated header",
        good[..12].to_vec(),
        DropReason::Truncated,
    ));
    let mut p = good.clone();
    p[0] = 0x60;
    cases.push(("IPv6", p, DropReason::NotIpv4));
    let mut p = good.clone();
    p[0] = 0x43;
    cases.push(("IHL 3", p, DropReason::BadHeaderLength));
    let mut p = good.clone();
    p[0] = 0x4f;
    assert!(p.len() < 60);
    cases.push(("IHL past the packet", p, DropReason::BadHeaderLength));
    let mut p = good.clone();
    p[2..4].copy_from_slice(&200u16.to_be_bytes());
    fix_checksum(&mut p);
    cases.push((
        "total length past the packet",
        p,
        DropReason::BadTotalLength,
    ));
    let mut p = good.clone();
    p[2..4].copy_from_slice(&10u16.to_be_bytes());
    fix_checksum(&mut p);
    cases.push((
        "total length below the header",
        p,
        DropReason::BadTotalLength,
    ));
    let mut p = good.clone();
    p[10] ^= 0xff;
    cases.push(("bad header checksum", p, DropReason::BadHeaderChecksum));
    let mut p = good.clone();
    p[12..16].copy_from_slice(&[10, 0, 0, 2]);
    fix_checksum(&mut p);
    cases.push(("our own source address", p, DropReason::BadSourceAddress));
    let mut p = good.clone();
    p[12..16].copy_from_slice(&[224, 0, 0, 1]);
    fix_checksum(&mut p);
    cases.push(("multicast source", p, DropReason::BadSourceAddress));
    let mut p = good.clone();
    p[16..20].copy_from_slice(&[10, 0, 0, 3]);
    fix_checksum(&mut p);
    cases.push(("someone else's destination", p, DropReason::NotForUs));
    let mut p = good.clone();
    p[8] = 0;
    fix_checksum(&mut p);
    cases.push(("TTL zero", p, DropReason::TtlZero));
    let mut p = good.clone();
    p[9] = 99;
    fix_checksum(&mut p);
    cases.push(("unknown protocol", p, DropReason::UnknownProtocol));
    let mut p = good.clone();
    p[20 + 4..20 + 6].copy_from_slice(&100u16.to_be_bytes());
    cases.push(("UDP length past the datagram", p, DropReason::UdpBadLength));
    let mut p = good.clone();
    p[2..4].copy_from_slice(&24u16.to_be_bytes());
    fix_checksum(&mut p);
    cases.push((
        "truncated UDP header",
        p[..24].to_vec(),
        DropReason::UdpBadLength,
    ));
    let mut p = good.clone();
    let last = p.len() - 1;
    p[last] ^= 0x01;
    cases.push(("bad UDP checksum", p, DropReason::UdpBadChecksum));
    let mut p = echo_request(1, 1, b"ping");
    p[20 + 8] ^= 0x01;
    cases.push(("bad ICMP checksum", p, DropReason::IcmpBadChecksum));
    let mut p = echo_request(1, 1, b"");
    p[2..4].copy_from_slice(&24u16.to_be_bytes());
    fix_checksum(&mut p);
    cases.push((
        "truncated ICMP",
        p[..24].to_vec(),
        DropReason::IcmpTruncated,
    ));

    let mut i = iface();
    // Bind port 7 so the UDP cases reach the UDP checks.
    i.udp_bind("0.0.0.0:7".parse::<std::net::SocketAddr>().unwrap())
        .unwrap();
    for (name, packet, reason) in &cases {
        let before = i.stats().dropped(*reason);
        let total = i.stats().dropped_total();
        i.receive(Instant::ZERO, packet);
        assert_eq!(
            i.stats().dropped(*reason),
            before + 1,
            "{name}: counted as {reason}"
        );
        assert_eq!(i.stats().dropped_total(), total + 1, "{name}: counted once");
        assert!(i.pop_event().is_none(), "{name}: nothing delivered");
        for out in outputs(&mut i) {
            // Only the unknown protocol earns an ICMP error back.
            let v = Ipv4Packet::parse(&out).unwrap();
            let m = IcmpMessage::parse(v.payload()).unwrap();
            assert_eq!(
                (m.kind(), m.code(), *reason),
                (3, 2, DropReason::UnknownProtocol),
                "{name}"
            );
        }
    }
    // The good packet still goes through afterwards, and so does TTL 1
    // (RFC 1122 §3.2.1.7).
    i.receive(Instant::ZERO, &good);
    assert!(i.pop_event().is_some());
    let mut ttl1 = good.clone();
    ttl1[8] = 1;
    fix_checksum(&mut ttl1);
    i.receive(Instant::ZERO, &ttl1);
    assert!(i.pop_event().is_some());
}

#[test]
fn overlapping_fragments_drop_the_whole_datagram() {
    let mut i = iface();
    let frags = fragments(&echo_request(5, 5, &[1u8; 3000]), 1500);
    assert_eq!(frags.len(), 3);
    i.receive(Instant::ZERO, &frags[0]);
    // A forged fragment overlapping the first one's data.
    let mut evil = frags[1].clone();
    let off = u16::from_be_bytes([evil[6], evil[7]]) & 0x1fff;
    evil[6..8].copy_from_slice(&(0x2000 | (off - 1)).to_be_bytes());
    fix_checksum(&mut evil);
    i.receive(Instant::ZERO, &evil);
    assert_eq!(i.stats().dropped(DropReason::FragmentOverlap), 1);
    assert_eq!(i.reassembly_bytes(), 0, "the datagram's memory is freed");
    i.receive(Instant::ZERO, &frags[1]);
    i.receive(Instant::ZERO, &frags[2]);
    assert!(
        outputs(&mut i).is_empty(),
        "no reply from a datagram that was discarded"
    );
}

#[test]
fn reassembly_timeout_sends_time_exceeded_only_after_fragment_zero() {
    let mut i = iface();
    let frags = fragments(&echo_request(5, 5, &[1u8; 3000]), 1500);
    i.receive(Instant::ZERO, &frags[0]);
    let deadline = i.poll_at().expect("a reassembly timer is running");
    assert_eq!(
        deadline,
        Instant::ZERO + ReassemblyConfig::default().timeout
    );
    i.poll(deadline - Duration::from_millis(1));
    assert!(outputs(&mut i).is_empty());
    i.poll(deadline);
    let out = outputs(&mut i);
    assert_eq!(out.len(), 1);
    let v = Ipv4Packet::parse(&out[0]).unwrap();
    let m = IcmpMessage::parse(v.payload()).unwrap();
    assert_eq!((m.kind(), m.code()), (11, 1));
    assert_eq!(i.stats().dropped(DropReason::FragmentTimeout), 1);
    assert_eq!(i.reassembly_bytes(), 0);

    // Without fragment zero: dropped silently (RFC 1122 §3.3.2).
    i.receive(deadline, &frags[2]);
    i.poll(deadline + ReassemblyConfig::default().timeout);
    assert!(outputs(&mut i).is_empty());
    assert_eq!(i.stats().dropped(DropReason::FragmentTimeout), 2);
}

#[test]
fn endless_fragments_stay_within_the_reassembly_memory_limit() {
    let config = Config {
        reassembly: ReassemblyConfig {
            max_bytes: 64 * 1024,
            ..ReassemblyConfig::default()
        },
        ..Config::default()
    };
    let mut i = Interface::new(&config, 1500, 1);
    for id in 0..2000u16 {
        // Every datagram is missing its last fragment.
        let mut p = echo_request(id, 0, &[0u8; 2000]);
        p[4..6].copy_from_slice(&id.to_be_bytes());
        fix_checksum(&mut p);
        let frags = fragments(&p, 1500);
        i.receive(Instant::ZERO, &frags[0]);
        assert!(i.reassembly_bytes() <= 64 * 1024);
    }
    // Old incomplete datagrams make way for new ones instead of blocking them.
    assert!(i.stats().dropped(DropReason::FragmentEvicted) > 0);
    assert_eq!(i.stats().dropped(DropReason::FragmentNoMemory), 0);
}

/// xorshift64: deterministic randomness without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_and_mutated_packets_never_panic_and_are_all_accounted_for() {
    let mut i = iface();
    i.udp_bind("0.0.0.0:7".parse::<std::net::SocketAddr>().unwrap())
        .unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        udp(1000, 7, b"hello"),
        udp(1000, 9, b"closed"),
        echo_request(1, 2, &[9u8; 64]),
        fragments(&echo_request(3, 4, &[7u8; 4000]), 1500).remove(1),
        fragments(&udp(5, 7, &[7u8; 4000]), 1500).remove(0),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut now = Instant::ZERO;
    let rounds = 100_000;
    for round in 0..rounds {
        let mut p = seeds[rng.below(seeds.len())].clone();
        match rng.below(5) {
            0 => {
                let n = rng.below(8) + 1;
                for _ in 0..n {
                    let at = rng.below(p.len());
                    p[at] ^= 1 << rng.below(8);
                }
            }
            1 => p.truncate(rng.below(p.len() + 1)),
            2 => {
                let at = rng.below(p.len());
                p[at] = rng.next() as u8;
                if rng.below(2) == 0 {
                    fix_checksum(&mut p);
                }
            }
            3 => p = (0..rng.below(100)).map(|_| rng.next() as u8).collect(),
            _ => {
                // Lengths and fragment fields set to arbitrary values.
                let v = rng.next() as u16;
                let field = [2usize, 6, 22, 24][rng.below(4)];
                if field + 2 <= p.len() {
                    p[field..field + 2].copy_from_slice(&v.to_be_bytes());
                }
                fix_checksum(&mut p);
            }
        }
        i.receive(now, &p);
        if round % 1000 == 0 {
            now += Duration::from_secs(1);
            i.poll(now);
        }
        while i.pop_event().is_some() {}
        for out in outputs(&mut i) {
            assert!(
                Ipv4Packet::parse(&out).is_ok(),
                "everything the stack sends is valid IPv4"
            );
            assert!(out.len() <= 1500);
        }
        assert!(i.reassembly_bytes() <= ReassemblyConfig::default().max_bytes);
    }
    let s = i.stats();
    assert_eq!(s.ip_packets_in, rounds);
    assert!(
        s.dropped_total() > rounds / 2,
        "most mutants are dropped: {s}"
    );
}

/// TAP mode: malformed Ethernet frames and ARP packets are dropped and
/// counted under their own reasons.
#[test]
fn malformed_ethernet_and_arp_are_dropped_and_counted_under_their_reasons() {
    use tunstack::link::arp::{ArpPacket, Operation};
    use tunstack::link::ethernet::{EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4};
    use tunstack::link::{EthernetLink, NeighbourConfig};

    let us = MacAddr([0x02, 0, 0, 0, 0, 2]);
    let peer = MacAddr([0x02, 0, 0, 0, 0, 1]);
    let frame = |dst: MacAddr, src: MacAddr, ethertype: u16, body: &[u8]| {
        let mut f = EthernetHeader {
            dst,
            src,
            ethertype,
        }
        .to_bytes()
        .to_vec();
        f.extend_from_slice(body);
        f
    };
    let request = ArpPacket {
        op: Operation::Request,
        sender_mac: peer,
        sender_ip: HOST,
        target_mac: MacAddr::ZERO,
        target_ip: STACK,
    }
    .to_bytes();
    let mut bad_op = request;
    bad_op[7] = 9;
    let mut bad_hw = request;
    bad_hw[1] = 6; // IEEE 802 instead of Ethernet
    let mut bad_len = request;
    bad_len[4] = 8;
    let mut zero_sender = request;
    zero_sender[8..14].fill(0);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![], DropReason::EthernetRunt),
        (vec![0; 13], DropReason::EthernetRunt),
        (
            frame(MacAddr([0x02, 9, 9, 9, 9, 9]), peer, ETHERTYPE_IPV4, b"x"),
            DropReason::EthernetNotForUs,
        ),
        (
            frame(
                MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
                peer,
                ETHERTYPE_IPV4,
                b"x",
            ),
            DropReason::EthernetNotForUs,
        ),
        (
            frame(us, MacAddr::ZERO, ETHERTYPE_IPV4, b"x"),
            DropReason::EthernetBadSource,
        ),
        (
            frame(us, us, ETHERTYPE_IPV4, b"x"),
            DropReason::EthernetBadSource,
        ),
        (
            frame(us, peer, 0x0000, b"x"),
            DropReason::EthernetUnknownType,
        ),
        (
            frame(us, peer, 0x88cc, b"lldp"),
            DropReason::EthernetUnknownType,
        ),
        (
            frame(us, peer, ETHERTYPE_ARP, &request[..27]),
            DropReason::ArpMalformed,
        ),
        (
            frame(us, peer, ETHERTYPE_ARP, &zero_sender),
            DropReason::ArpMalformed,
        ),
        (
            frame(us, peer, ETHERTYPE_ARP, &bad_op),
            DropReason::ArpUnsupported,
        ),
        (
            frame(us, peer, ETHERTYPE_ARP, &bad_hw),
            DropReason::ArpUnsupported,
        ),
        (
            frame(us, peer, ETHERTYPE_ARP, &bad_len),
            DropReason::ArpUnsupported,
        ),
    ];
    let mut link = EthernetLink::new(us, STACK, 24, NeighbourConfig::default());
    for (f, reason) in cases {
        let before = link.stats().dropped(reason);
        assert_eq!(link.receive(Instant::ZERO, &f), None, "{reason}: {f:02x?}");
        assert_eq!(
            link.stats().dropped(reason),
            before + 1,
            "{reason}: {f:02x?}"
        );
    }
    assert!(link.pop_frame().is_none(), "nothing answered");
}

/// TAP mode: random and mutated frames never panic the link layer, and
/// each is either handed up, handled as ARP, or dropped and counted.
#[test]
fn random_and_mutated_frames_never_panic() {
    use tunstack::link::arp::{ArpPacket, Operation};
    use tunstack::link::ethernet::{EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4};
    use tunstack::link::{EthernetLink, NeighbourConfig};

    let us = MacAddr([0x02, 0, 0, 0, 0, 2]);
    let peer = MacAddr([0x02, 0, 0, 0, 0, 1]);
    let framed = |ethertype: u16, body: &[u8]| {
        let mut f = EthernetHeader {
            dst: us,
            src: peer,
            ethertype,
        }
        .to_bytes()
        .to_vec();
        f.extend_from_slice(body);
        f
    };
    let arp = ArpPacket {
        op: Operation::Request,
        sender_mac: peer,
        sender_ip: HOST,
        target_mac: MacAddr::ZERO,
        target_ip: STACK,
    }
    .to_bytes();
    let seeds = [
        framed(ETHERTYPE_ARP, &arp),
        framed(ETHERTYPE_IPV4, &echo_request(1, 2, &[9u8; 64])),
    ];
    let mut link = EthernetLink::new(us, STACK, 24, NeighbourConfig::default());
    let mut iface = iface();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut now = Instant::ZERO;
    let rounds = 50_000u64;
    let mut up = 0;
    for round in 0..rounds {
        let mut f = seeds[rng.below(seeds.len())].clone();
        match rng.below(3) {
            0 => {
                for _ in 0..rng.below(6) + 1 {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
            }
            1 => f.truncate(rng.below(f.len() + 1)),
            _ => f = (0..rng.below(80)).map(|_| rng.next() as u8).collect(),
        }
        if let Some(ip) = link.receive(now, &f) {
            up += 1;
            iface.receive(now, &f[ip]);
        }
        if round % 500 == 0 {
            now += Duration::from_secs(1);
            link.poll(now);
            iface.poll(now);
        }
        for p in outputs(&mut iface) {
            link.send_ipv4(now, &p);
        }
        while let Some(p) = link.pop_unreachable() {
            iface.next_hop_unreachable(now, &p);
        }
        while iface.pop_event().is_some() {}
        while let Some(out) = link.pop_frame() {
            let h = EthernetHeader::parse(&out).expect("every frame sent has a header");
            assert_eq!(h.src, us);
        }
    }
    let s = link.stats();
    let dropped: u64 = DropReason::LINK.iter().map(|r| s.dropped(*r)).sum();
    let arp_in = s.arp_requests_in + s.arp_replies_in;
    assert_eq!(s.frames_in, rounds);
    assert!(
        up + dropped + arp_in >= rounds,
        "every frame accounted for: {s}"
    );
}

// ---- IPv6 ----

mod ipv6_input {
    use std::net::Ipv6Addr;
    use std::time::Duration;

    use super::outputs;
    use super::Rng;
    use tunstack::iface::Interface;
    use tunstack::stats::DropReason;
    use tunstack::time::Instant;
    use tunstack::wire::icmpv6::{self, Icmpv6Message};
    use tunstack::wire::ipv6::{self, Ipv6Header};
    use tunstack::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpSegment};
    use tunstack::wire::udp;
    use tunstack::Config;

    const PEER: &str = "fd00::1";
    const US: &str = "fd00::2";

    fn a6(s: &str) -> Ipv6Addr {
        s.parse().expect("address")
    }

    fn iface6() -> Interface {
        let config = Config {
            addr6: Some((a6(US), 64)),
            ..Config::default()
        };
        Interface::new(&config, 1500, 1)
    }

    fn packet(next: u8, body: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        ipv6::write(&mut p, a6(PEER), a6(US), next, 64, body);
        p
    }

    fn echo(data: &[u8]) -> Vec<u8> {
        let mut msg = Vec::new();
        icmpv6::write(
            &mut msg,
            a6(PEER),
            a6(US),
            icmpv6::ECHO_REQUEST,
            0,
            [0, 1, 0, 1],
            data,
        );
        packet(58, &msg)
    }

    /// Checks a packet the stack sent: valid IPv6 from us, within the
    /// MTU, an ICMPv6 message or TCP segment whose checksum verifies.
    fn check_output(out: &[u8]) {
        let (h, p) = Ipv6Header::parse(out).expect("everything sent is valid IPv6");
        assert_eq!(p.len(), out.len(), "no padding");
        assert!(out.len() <= 1500);
        assert_eq!(h.src, a6(US));
        assert!(!h.dst.is_multicast() && !h.dst.is_unspecified());
        if h.next_header == ipv6::NEXT_FRAGMENT {
            // A piece of a reply too big for the MTU (RFC 8200 §4.5).
            let more = p.get(43).is_some_and(|b| b & 1 == 1);
            assert!(p.len() > 48 && (!more || (p.len() - 48) % 8 == 0));
            return;
        }
        if h.next_header == 6 {
            TcpSegment::parse(h.src, h.dst, &p[40..]).expect("a valid TCP checksum");
            return;
        }
        assert_eq!(h.next_header, 58);
        Icmpv6Message::parse(h.src, h.dst, &p[40..]).expect("a valid ICMPv6 checksum");
    }

    /// A segment from the peer's port 40000 to `port`.
    fn tcp(port: u16, syn: bool, data: &[u8]) -> Vec<u8> {
        let h = TcpHeaderRepr {
            src_port: 40000,
            dst_port: port,
            seq: 7,
            flags: TcpFlags {
                syn,
                ack: !syn,
                ..TcpFlags::default()
            },
            window: 1000,
            ..TcpHeaderRepr::default()
        };
        let mut t = Vec::new();
        h.emit(a6(PEER), a6(US), [data, &[]], &mut t);
        packet(6, &t)
    }

    /// A UDP datagram from the peer's port 5000 to `port`.
    fn udp_to(port: u16, data: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        udp::write(&mut u, (a6(PEER), 5000), (a6(US), port), data);
        packet(17, &u)
    }

    #[test]
    fn malformed_tcp_and_udp_over_ipv6_are_dropped_and_counted() {
        let good = udp_to(9, b"hello");
        let mut zero = good.clone();
        zero[46..48].copy_from_slice(&[0, 0]);
        let mut long = good.clone();
        long[44..46].copy_from_slice(&100u16.to_be_bytes());
        let mut bad = good.clone();
        bad[48] ^= 1;
        for (what, p, reason) in [
            (
                "a zero UDP checksum (RFC 8200 §8.1)",
                zero,
                DropReason::UdpBadChecksum,
            ),
            (
                "a UDP length past the packet",
                long,
                DropReason::UdpBadLength,
            ),
            ("a bad UDP checksum", bad, DropReason::UdpBadChecksum),
            (
                "UDP to a port with no socket",
                good,
                DropReason::UdpNoSocket,
            ),
        ] {
            let mut i = iface6();
            i.receive(Instant::ZERO, &p);
            let s = i.stats();
            assert_eq!(s.dropped(reason), 1, "{what}: {s}");
            assert_eq!(s.dropped_total(), 1, "{what}: only that reason: {s}");
            for out in outputs(&mut i) {
                check_output(&out);
            }
        }
        // TCP: a bad checksum and a header cut short are counted by TCP,
        // and nothing is sent; a good SYN to a closed port gets a RST.
        let good = tcp(81, true, b"");
        let mut bad = good.clone();
        bad[50] ^= 1;
        let mut i = iface6();
        i.receive(Instant::ZERO, &bad);
        i.receive(Instant::ZERO, &packet(6, &good[40..50]));
        assert!(outputs(&mut i).is_empty());
        let t = i.stats().tcp;
        assert_eq!((t.bad_checksum, t.malformed), (1, 1), "{t:?}");
        i.receive(Instant::ZERO, &good);
        let out = outputs(&mut i);
        assert_eq!(out.len(), 1);
        check_output(&out[0]);
    }

    #[test]
    fn malformed_ipv6_is_dropped_and_counted_under_its_reason() {
        let good = echo(b"payload!");
        let mut cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
            ("truncated", good[..30].to_vec(), DropReason::Ipv6Truncated),
            (
                "payload length past the packet",
                good[..good.len() - 2].to_vec(),
                DropReason::Ipv6BadPayloadLength,
            ),
            (
                "unknown next header",
                packet(253, b"x"),
                DropReason::Ipv6UnknownNextHeader,
            ),
            (
                "no next header",
                packet(59, b""),
                DropReason::Ipv6NoNextHeader,
            ),
            (
                "a fragment of 4 bytes with more to come",
                packet(44, &[58, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4]),
                DropReason::FragmentInconsistent,
            ),
            (
                "a fragment header cut short",
                packet(44, &[58, 0, 0, 1]),
                DropReason::Ipv6BadExtension,
            ),
            (
                "routing type 0 with segments left",
                packet(43, &[58, 0, 0, 1, 0, 0, 0, 0]),
                DropReason::Ipv6RoutingType0,
            ),
            (
                "destination options past the end",
                packet(60, &[58, 3, 1, 4, 0, 0, 0, 0]),
                DropReason::Ipv6BadExtension,
            ),
            (
                "unknown option, discard",
                packet(60, &[58, 0, 0x7f, 2, 0, 0, 1, 0]),
                DropReason::Ipv6UnknownOption,
            ),
            (
                "ICMPv6 shorter than its header",
                packet(58, &[128, 0, 0]),
                DropReason::Icmpv6Truncated,
            ),
        ];
        let mut p = good.clone();
        p[8..24].copy_from_slice(&a6("ff02::1").octets());
        cases.push(("multicast source", p, DropReason::Ipv6BadSource));
        let mut p = good.clone();
        p[24..40].copy_from_slice(&a6("fd00::3").octets());
        cases.push(("another destination", p, DropReason::Ipv6NotForUs));
        let mut p = good.clone();
        let last = p.len() - 1;
        p[last] ^= 0x40;
        cases.push(("bad ICMPv6 checksum", p, DropReason::Icmpv6BadChecksum));
        for (what, p, reason) in cases {
            let mut i = iface6();
            i.receive(Instant::ZERO, &p);
            let s = i.stats();
            assert_eq!(s.dropped(reason), 1, "{what}: {s}");
            assert_eq!(s.dropped_total(), 1, "{what}: only that reason: {s}");
            assert_eq!(s.icmp6_echo_replies, 0, "{what}");
            for out in outputs(&mut i) {
                check_output(&out);
            }
        }
        // The good one is answered.
        let mut i = iface6();
        i.receive(Instant::ZERO, &good);
        assert_eq!(outputs(&mut i).len(), 1);
    }

    #[test]
    fn random_and_mutated_ipv6_packets_never_panic() {
        let mut i = iface6();
        let any = |port| std::net::SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        i.tcp_listen(any(80), 8).expect("listen");
        i.udp_bind(any(7)).expect("bind");
        let seeds = [
            echo(&[9; 64]),
            packet(0, &[60, 0, 1, 4, 0, 0, 0, 0, 58, 0, 0xc2, 4, 0, 0, 0, 0]),
            packet(44, &[58, 0, 0, 0, 0, 0, 0, 1, 128, 0, 0, 0, 0, 0, 0, 0]),
            packet(43, &[58, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            packet(6, &[0; 20]),
            tcp(80, true, b""),
            tcp(80, false, b"GET / HTTP/1.0\r\n\r\n"),
            udp_to(7, b"echo"),
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut now = Instant::ZERO;
        let rounds = 100_000u64;
        for round in 0..rounds {
            let mut p = seeds[rng.below(seeds.len())].clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..rng.below(8) + 1 {
                        let at = rng.below(p.len());
                        p[at] ^= 1 << rng.below(8);
                    }
                }
                1 => p.truncate(rng.below(p.len() + 1)),
                2 => {
                    // Payload length, next header, hop limit, and the
                    // first extension header's bytes.
                    let at = [4usize, 5, 6, 7, 40, 41, 42, 43][rng.below(8)];
                    if at < p.len() {
                        p[at] = rng.next() as u8;
                    }
                }
                _ => {
                    p = (0..rng.below(120)).map(|_| rng.next() as u8).collect();
                    if let Some(b) = p.first_mut() {
                        *b = 0x60 | (*b & 0x0f);
                    }
                }
            }
            i.receive(now, &p);
            if round % 1000 == 0 {
                now += Duration::from_millis(100);
                i.poll(now);
            }
            for out in outputs(&mut i) {
                check_output(&out);
            }
            while i.pop_event().is_some() {}
        }
        let s = i.stats();
        // A mutated version nibble (or an empty packet) takes IPv4's path.
        assert_eq!(s.ip6_packets_in + s.ip_packets_in, rounds, "{s}");
        assert!(s.ip6_packets_in > rounds * 9 / 10, "{s}");
        assert!(s.icmp6_echo_replies > 0 && s.icmp6_errors_sent > 0, "{s}");
    }

    /// TAP mode with IPv6: random and mutated frames (neighbour
    /// discovery among them) never panic the link layer or the core.
    #[test]
    fn random_and_mutated_ipv6_frames_never_panic() {
        use tunstack::link::ethernet::{EthernetHeader, MacAddr, ETHERTYPE_IPV6};
        use tunstack::link::{EthernetLink, NeighbourConfig};

        let us = MacAddr([0x02, 0, 0, 0, 0, 2]);
        let peer = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let group = ipv6::solicited_node(a6(US));
        let framed = |dst: MacAddr, body: &[u8]| {
            let mut f = EthernetHeader {
                dst,
                src: peer,
                ethertype: ETHERTYPE_IPV6,
            }
            .to_bytes()
            .to_vec();
            f.extend_from_slice(body);
            f
        };
        let mut ns = Vec::new();
        icmpv6::write_neighbor_solicitation(&mut ns, a6(PEER), group, a6(US), peer.0);
        let mut ns_packet = Vec::new();
        ipv6::write(&mut ns_packet, a6(PEER), group, 58, 255, &ns);
        let seeds = [
            framed(MacAddr::ipv6_multicast(group), &ns_packet),
            framed(us, &echo(&[9; 64])),
        ];
        let config = Config {
            addr6: Some((a6(US), 64)),
            medium: tunstack::Medium::Ethernet,
            mac: Some(us),
            ..Config::default()
        };
        let mut iface = Interface::new(&config, 1500, 1);
        let mut link = EthernetLink::new(us, config.addr, 24, NeighbourConfig::default())
            .with_ipv6(a6(US), NeighbourConfig::default());
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut now = Instant::ZERO;
        for round in 0..50_000u64 {
            let mut f = seeds[rng.below(seeds.len())].clone();
            match rng.below(3) {
                0 => {
                    for _ in 0..rng.below(6) + 1 {
                        let at = 14 + rng.below(f.len() - 14);
                        f[at] ^= 1 << rng.below(8);
                    }
                }
                1 => f.truncate(rng.below(f.len() + 1)),
                _ => {
                    let at = 14 + rng.below(f.len() - 14);
                    f[at] = rng.next() as u8;
                }
            }
            if let Some(ip) = link.receive(now, &f) {
                iface.receive(now, &f[ip]);
            }
            if round % 500 == 0 {
                now += Duration::from_secs(1);
                link.poll(now);
                iface.poll(now);
            }
            for p in outputs(&mut iface) {
                link.send_ip(now, &p);
            }
            while let Some(p) = link.pop_unreachable() {
                iface.next_hop_unreachable(now, &p);
            }
            while let Some(out) = link.pop_frame() {
                let h = EthernetHeader::parse(&out).expect("every frame sent has a header");
                assert_eq!(h.src, us);
                if h.ethertype == ETHERTYPE_IPV6 {
                    let (ip, p) = Ipv6Header::parse(&out[14..]).expect("valid IPv6");
                    Icmpv6Message::parse(ip.src, ip.dst, &p[40..]).expect("valid ICMPv6");
                }
            }
        }
    }
}
