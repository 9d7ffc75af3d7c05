//! Neighbour discovery for IPv6 over Ethernet (RFC 4861), the part a host
//! needs to be reached and to reach its neighbours: answer Neighbor
//! Solicitations for our addresses, resolve the link addresses of the
//! neighbours we send to, with the same bounded [`NeighbourCache`] as ARP.
//!
//! The stack has two IPv6 addresses on a TAP: the configured one
//! (`--addr6`) and a link-local one from the MAC (modified EUI-64,
//! [`MacAddr::link_local6`]); it takes frames to their solicited-node
//! groups and to all-nodes (33:33:ff:XX:XX:XX, 33:33:00:00:00:01).
//!
//! Both addresses go through duplicate address detection first (RFC 4862
//! §5.4): *tentative*, they are probed with solicitations from the
//! unspecified address, answer nothing and take no packets; after
//! `DupAddrDetectTransmits` probes a second apart with no one objecting
//! they are ours; if another node answers or probes for the same address
//! it is a duplicate, logged and never used (§5.4.5). A solicitation from
//! the unspecified address for one of our addresses in use (another
//! node's DAD) is answered to all-nodes (RFC 4861 §7.2.4), which defends it.
//!
//! Not done yet: the random delay before the first probe (RFC 4862
//! §5.4.2, a SHOULD), router discovery and redirects (the stack serves its
//! own link and has no default router), unsolicited advertisements.

use std::net::Ipv6Addr;

use super::ethernet::MacAddr;
use super::neighbour::{Action, NeighbourCache, NeighbourConfig, Resolution};
use crate::stats::{DropReason, LinkStats};
use crate::time::Instant;
use crate::wire::icmpv6::{
    self, Icmpv6Message, NeighborMessage, NA_OVERRIDE, NA_SOLICITED, NEIGHBOR_ADVERTISEMENT,
    NEIGHBOR_SOLICITATION,
};
use crate::wire::ipv6::{self, Ipv6Header, ALL_NODES, HEADER_LEN, NEXT_ICMPV6};

/// The hop limit of every ND message, and the only one accepted (RFC 4861
/// §7.1.1, §7.1.2: proof that it was not forwarded).
const ND_HOP_LIMIT: u8 = 255;
/// Packets kept for the runtime when their neighbour never answered.
const MAX_UNREACHABLE: usize = 64;
/// RFC 4861 §10 `RETRANS_TIMER`: the time between two DAD probes, and
/// after the last one (RFC 4862 §5.4.2).
const RETRANS_TIMER: std::time::Duration = std::time::Duration::from_secs(1);

/// An address under duplicate address detection (RFC 4862 §5.4).
#[derive(Debug, Clone, Copy)]
struct Tentative {
    addr: Ipv6Addr,
    /// Probes still to send.
    probes_left: u32,
    /// When to send the next one, or, with none left, when the address
    /// becomes ours.
    next: Instant,
}

/// The IPv6 neighbour state of one Ethernet interface.
#[derive(Debug)]
pub struct Ndisc {
    mac: MacAddr,
    addr: Ipv6Addr,
    link_local: Ipv6Addr,
    neighbours: NeighbourCache<Ipv6Addr>,
    /// Addresses still under duplicate address detection.
    tentative: Vec<Tentative>,
    /// Addresses another node holds: never used.
    duplicate: Vec<Ipv6Addr>,
    actions: Vec<Action<Ipv6Addr>>,
    /// IPv6 packets to send, with the MAC each goes to.
    out: Vec<(MacAddr, Vec<u8>)>,
    /// Packets of ours whose neighbour did not answer.
    unreachable: Vec<Vec<u8>>,
    /// An ICMPv6 message being built.
    msg: Vec<u8>,
}

impl Ndisc {
    /// ND for a station `mac` with the IPv6 address `addr` (and the
    /// link-local address of `mac`), each probed `dad_transmits` times
    /// before use (RFC 4862 §5.1 `DupAddrDetectTransmits`; 0: used at
    /// once). The first [`Ndisc::poll`] sends the first probes.
    pub fn new(mac: MacAddr, addr: Ipv6Addr, config: NeighbourConfig, dad_transmits: u32) -> Ndisc {
        let link_local = mac.link_local6();
        let tentative = tentative([link_local, addr], dad_transmits);
        Ndisc {
            mac,
            addr,
            link_local,
            neighbours: NeighbourCache::new(config),
            tentative,
            duplicate: Vec::new(),
            actions: Vec::new(),
            out: Vec::new(),
            unreachable: Vec::new(),
            msg: Vec::new(),
        }
    }

    /// Restarts duplicate address detection with `transmits` probes per
    /// address (0: the addresses are used at once).
    pub fn set_dad_transmits(&mut self, transmits: u32) {
        self.tentative = tentative([self.link_local, self.addr], transmits);
        self.duplicate.clear();
    }

    /// The link-local address.
    pub fn link_local(&self) -> Ipv6Addr {
        self.link_local
    }

    /// The MAC the cache holds for `addr`, if it has an answer.
    pub fn neighbour(&self, addr: Ipv6Addr) -> Option<MacAddr> {
        self.neighbours.get(addr)
    }

    /// Entries in the cache.
    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }

    /// One of our addresses, in use or not.
    fn is_ours(&self, a: Ipv6Addr) -> bool {
        a == self.addr || a == self.link_local
    }

    fn is_tentative(&self, a: Ipv6Addr) -> bool {
        self.tentative.iter().any(|t| t.addr == a)
    }

    /// Whether `a` is one of our addresses and may be used: past duplicate
    /// address detection and not found on another node.
    pub fn is_usable(&self, a: Ipv6Addr) -> bool {
        self.is_ours(a) && !self.is_tentative(a) && !self.duplicate.contains(&a)
    }

    /// Whether the IP layer may take a packet to `dst`: not to one of our
    /// addresses still tentative or found duplicate (RFC 4862 §5.4: such
    /// packets are silently discarded).
    pub fn takes(&self, dst: Ipv6Addr) -> bool {
        !self.is_ours(dst) || self.is_usable(dst)
    }

    /// RFC 4862 §5.4.3, §5.4.4: another node holds `addr`, still tentative
    /// here. §5.4.5: it is not used; the operator must fix it.
    fn duplicate_found(&mut self, addr: Ipv6Addr, stats: &mut LinkStats) {
        self.tentative.retain(|t| t.addr != addr);
        if !self.duplicate.contains(&addr) {
            log::error!(
                "ND: duplicate address detection: {addr} is in use by another node; not using it (RFC 4862 §5.4.5)"
            );
            self.duplicate.push(addr);
        }
        stats.conflicts += 1;
    }

    /// Whether a frame to `dst` is for us: the all-nodes group or the
    /// solicited-node group of one of our addresses (RFC 4861 §7.2.1: a
    /// node joins them; RFC 2464 §7 maps them to MACs).
    pub fn accepts_mac(&self, dst: MacAddr) -> bool {
        dst == MacAddr::ipv6_multicast(ALL_NODES)
            || dst == MacAddr::ipv6_multicast(ipv6::solicited_node(self.addr))
            || dst == MacAddr::ipv6_multicast(ipv6::solicited_node(self.link_local))
    }

    /// Takes an IPv6 packet that arrived from `src_mac`. True if it was a
    /// Neighbor Solicitation or Advertisement, handled (or dropped and
    /// counted) here; false if it is for the IP layer.
    pub fn receive(
        &mut self,
        now: Instant,
        src_mac: MacAddr,
        packet: &[u8],
        stats: &mut LinkStats,
    ) -> bool {
        let Ok((h, packet)) = Ipv6Header::parse(packet) else {
            return false;
        };
        // Only NS and NA right after the fixed header (as every sender
        // builds them); anything else is the IP layer's.
        let body = &packet[HEADER_LEN..];
        let kind = body.first().copied();
        if h.next_header != NEXT_ICMPV6
            || !matches!(kind, Some(NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT))
        {
            return false;
        }
        if kind == Some(NEIGHBOR_SOLICITATION) {
            stats.nd_solicitations_in += 1;
        } else {
            stats.nd_advertisements_in += 1;
        }
        // RFC 4861 §7.1.1, §7.1.2: hop limit 255, a valid checksum, code
        // 0, at least 24 bytes, a target that is not multicast, options of
        // non-zero length: else silently discarded.
        let msg = match Icmpv6Message::parse(h.src, h.dst, body) {
            Ok(m) if h.hop_limit == ND_HOP_LIMIT => m,
            _ => return invalid(stats),
        };
        let Some(nd) = NeighborMessage::parse(&msg) else {
            return invalid(stats);
        };
        if msg.kind() == NEIGHBOR_SOLICITATION {
            self.solicitation(now, &h, src_mac, nd, stats);
        } else {
            self.advertisement(now, &h, nd, stats);
        }
        self.run_actions(stats);
        true
    }

    /// RFC 4861 §7.2.3: a solicitation for one of our addresses is
    /// answered; its sender's link address is learned.
    fn solicitation(
        &mut self,
        now: Instant,
        h: &Ipv6Header,
        src_mac: MacAddr,
        nd: NeighborMessage,
        stats: &mut LinkStats,
    ) {
        let dad = h.src.is_unspecified();
        // RFC 4861 §7.1.1: from the unspecified address (DAD), the
        // destination is a solicited-node group and there is no source
        // link-layer option.
        if dad && (nd.link_addr.is_some() || h.dst != ipv6::solicited_node(nd.target)) {
            invalid(stats);
            return;
        }
        if h.src.is_multicast() {
            invalid(stats);
            return;
        }
        if self.is_tentative(nd.target) {
            // RFC 4862 §5.4.3: another node probing the same tentative
            // address makes it a duplicate; any other solicitation for it
            // is silently discarded.
            if dad {
                self.duplicate_found(nd.target, stats);
            } else {
                count(stats, DropReason::Ipv6Tentative);
            }
            return;
        }
        if !self.is_usable(nd.target) {
            count(stats, DropReason::NdNotForUs);
            return;
        }
        let mac = self.mac.0;
        if dad {
            // Another node tests our address (RFC 4862 §5.4.3): RFC 4861
            // §7.2.4: answer to all-nodes, Solicited clear, which tells it
            // the address is taken.
            log::warn!(
                "ND: another node is testing our address {} (DAD); defending it",
                nd.target
            );
            stats.conflicts += 1;
            icmpv6::write_neighbor_advertisement(
                &mut self.msg,
                nd.target,
                ALL_NODES,
                nd.target,
                NA_OVERRIDE,
                mac,
            );
            stats.nd_advertisements_out += 1;
            self.queue_nd(MacAddr::ipv6_multicast(ALL_NODES), nd.target, ALL_NODES);
            return;
        }
        // RFC 4861 §7.2.3: with a source link-layer option, create or
        // update the sender's entry.
        let to_mac = match nd.link_addr.map(MacAddr) {
            Some(lla) if lla.is_unicast() => {
                self.neighbours
                    .confirm(now, h.src, lla, true, &mut self.actions);
                lla
            }
            Some(_) => {
                invalid(stats);
                return;
            }
            // A unicast solicitation may omit it (a re-check): answer the
            // frame's sender.
            None => src_mac,
        };
        // RFC 4861 §7.2.4: a solicited advertisement to the solicitation's
        // source, Solicited and Override set, with our link-layer address.
        icmpv6::write_neighbor_advertisement(
            &mut self.msg,
            nd.target,
            h.src,
            nd.target,
            NA_SOLICITED | NA_OVERRIDE,
            mac,
        );
        stats.nd_advertisements_out += 1;
        self.queue_nd(to_mac, nd.target, h.src);
    }

    /// RFC 4861 §7.2.5: an advertisement updates an entry we hold (no new
    /// entry: "there is no need to create an entry").
    fn advertisement(
        &mut self,
        now: Instant,
        h: &Ipv6Header,
        nd: NeighborMessage,
        stats: &mut LinkStats,
    ) {
        // RFC 4861 §7.1.2: to a multicast address, Solicited must be clear.
        if h.dst.is_multicast() && nd.flags & NA_SOLICITED != 0 {
            invalid(stats);
            return;
        }
        if self.is_tentative(nd.target) {
            // RFC 4862 §5.4.4: an advertisement for a tentative address:
            // it is a duplicate.
            self.duplicate_found(nd.target, stats);
            return;
        }
        if self.is_ours(nd.target) {
            // Someone else claims our address (RFC 4862 §5.4.4 after
            // DAD): for the operator to fix; say so once loudly.
            if stats.conflicts == 0 {
                log::warn!("ND: another node advertises our address {}", nd.target);
            }
            stats.conflicts += 1;
            return;
        }
        match nd.link_addr.map(MacAddr) {
            Some(lla) if lla.is_unicast() => {
                self.neighbours
                    .confirm(now, nd.target, lla, false, &mut self.actions);
            }
            Some(_) => {
                invalid(stats);
            }
            // Without the option an entry cannot be completed (§7.2.5);
            // one we hold stays as it is.
            None => {}
        }
    }

    /// Queues an IPv6 packet of ours: sent at once to a group or a known
    /// neighbour, else it waits for resolution.
    pub fn send(&mut self, now: Instant, packet: &[u8], stats: &mut LinkStats) {
        // RFC 4862 §5.4: a tentative (or duplicate) address is not a source.
        let src = packet
            .get(8..24)
            .and_then(|s| <[u8; 16]>::try_from(s).ok())
            .map(Ipv6Addr::from);
        if src.is_some_and(|s| self.is_ours(s) && !self.is_usable(s)) {
            count(stats, DropReason::Ipv6Tentative);
            return;
        }
        let Some(dst) = packet
            .get(24..40)
            .and_then(|d| <[u8; 16]>::try_from(d).ok())
            .map(Ipv6Addr::from)
        else {
            return;
        };
        if dst.is_multicast() {
            // RFC 2464 §7: 33:33 and the group's low 32 bits.
            self.out
                .push((MacAddr::ipv6_multicast(dst), packet.to_vec()));
            return;
        }
        match self.neighbours.resolve(now, dst, packet, &mut self.actions) {
            Resolution::Known(mac) => self.out.push((mac, packet.to_vec())),
            Resolution::Queued => {}
            Resolution::QueuedDroppedOldest => count(stats, DropReason::NeighbourQueueFull),
        }
        self.run_actions(stats);
    }

    /// Sends the solicitations that are due and gives up on neighbours
    /// that did not answer.
    pub fn poll(&mut self, now: Instant, stats: &mut LinkStats) {
        self.poll_dad(now, stats);
        if self.neighbours.poll_at().is_some_and(|t| t <= now) {
            self.neighbours.poll(now, &mut self.actions);
            self.run_actions(stats);
        }
    }

    /// RFC 4862 §5.4.2: a probe is a solicitation for the tentative
    /// address from the unspecified address to its solicited-node group,
    /// `RETRANS_TIMER` apart; one `RETRANS_TIMER` after the last with no
    /// answer the address is ours.
    fn poll_dad(&mut self, now: Instant, stats: &mut LinkStats) {
        let mut i = 0;
        while let Some(t) = self.tentative.get(i).copied() {
            if t.next > now {
                i += 1;
                continue;
            }
            if t.probes_left == 0 {
                log::info!("ND: {}: duplicate address detection done, in use", t.addr);
                self.tentative.remove(i);
                continue;
            }
            let group = ipv6::solicited_node(t.addr);
            icmpv6::write_neighbor_solicitation(
                &mut self.msg,
                Ipv6Addr::UNSPECIFIED,
                group,
                t.addr,
                self.mac.0,
            );
            stats.nd_solicitations_out += 1;
            self.queue_nd(MacAddr::ipv6_multicast(group), Ipv6Addr::UNSPECIFIED, group);
            self.tentative[i] = Tentative {
                probes_left: t.probes_left - 1,
                next: now + RETRANS_TIMER,
                ..t
            };
            i += 1;
        }
    }

    /// When [`Ndisc::poll`] has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        let dad = self.tentative.iter().map(|t| t.next).min();
        match (dad, self.neighbours.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The packets to send, each with its destination MAC.
    pub fn drain_out(&mut self) -> std::vec::Drain<'_, (MacAddr, Vec<u8>)> {
        self.out.drain(..)
    }

    /// Packets of ours whose neighbour never answered.
    pub fn drain_unreachable(&mut self) -> std::vec::Drain<'_, Vec<u8>> {
        self.unreachable.drain(..)
    }

    fn run_actions(&mut self, stats: &mut LinkStats) {
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Solicit { addr, to } => {
                    // RFC 4861 §7.2.2: to the target's solicited-node
                    // group, or unicast to the target when re-checking an
                    // entry (§7.3.3 PROBE); from the address our packet
                    // would use; with our link-layer address.
                    let src = if ipv6::is_link_local(addr) {
                        self.link_local
                    } else {
                        self.addr
                    };
                    let (dst, mac) = match to {
                        Some(mac) => (addr, mac),
                        None => {
                            let group = ipv6::solicited_node(addr);
                            (group, MacAddr::ipv6_multicast(group))
                        }
                    };
                    icmpv6::write_neighbor_solicitation(&mut self.msg, src, dst, addr, self.mac.0);
                    stats.nd_solicitations_out += 1;
                    self.queue_nd(mac, src, dst);
                }
                Action::Release { mac, packets } => {
                    self.out.extend(packets.into_iter().map(|p| (mac, p)));
                }
                Action::Unreachable { addr, packets } => {
                    log::debug!(
                        "ND: no answer from {addr}; {} packets dropped",
                        packets.len()
                    );
                    stats.resolutions_failed += 1;
                    for p in packets {
                        count(stats, DropReason::NeighbourUnreachable);
                        if self.unreachable.len() < MAX_UNREACHABLE {
                            self.unreachable.push(p);
                        }
                    }
                }
            }
        }
        self.actions = actions;
    }

    /// Wraps the ND message in `self.msg` in an IPv6 header (hop limit
    /// 255) and queues it for `mac`.
    fn queue_nd(&mut self, mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr) {
        let mut packet = Vec::with_capacity(HEADER_LEN + self.msg.len());
        ipv6::write(&mut packet, src, dst, NEXT_ICMPV6, ND_HOP_LIMIT, &self.msg);
        self.out.push((mac, packet));
    }
}

/// `addrs`, each to be probed `transmits` times from the first poll on.
fn tentative(addrs: [Ipv6Addr; 2], transmits: u32) -> Vec<Tentative> {
    if transmits == 0 {
        return Vec::new();
    }
    addrs
        .into_iter()
        .map(|addr| Tentative {
            addr,
            probes_left: transmits,
            next: Instant::ZERO,
        })
        .collect()
}

fn invalid(stats: &mut LinkStats) -> bool {
    count(stats, DropReason::NdInvalid);
    true
}

fn count(stats: &mut LinkStats, reason: DropReason) {
    log::debug!("link: dropped ({reason})");
    stats.count_drop(reason);
}
