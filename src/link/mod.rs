//! The link layer of TAP mode: Ethernet II, ARP (RFC 826) and, with an
//! IPv6 address, neighbour discovery (RFC 4861, [`ndisc`]).
//!
//! In TUN mode there is no link layer: the device carries bare IP packets
//! and none of this code is on the path. In TAP mode the device carries
//! Ethernet frames, and [`EthernetLink`] stands between it and the IP
//! layer:
//!
//! - frames in: runts, frames for another station (unicast to another
//!   MAC, or a group address other than broadcast), frames from a group or
//!   zero source, and EtherTypes other than IPv4 and ARP (and IPv6 when
//!   the stack has an IPv6 address) are dropped and counted; ARP is
//!   answered and learned from; IPv4 goes up; so does IPv6, except the
//!   neighbour solicitations and advertisements, which [`ndisc`] handles;
//! - packets out: the next hop's MAC comes from the [`neighbour`] cache,
//!   which asks for it with ARP and holds a few packets meanwhile; a
//!   neighbour that never answers makes its packets *unreachable*, which
//!   the runtime reports to the sockets that sent them;
//! - on start the stack announces its address (RFC 5227 §2.3).
//!
//! Sans-IO like the rest of the core: every call takes `now`, frames to
//! send are queued for [`EthernetLink::pop_frame`], and
//! [`EthernetLink::poll_at`] says when the next timer is due. The shell
//! that moves frames is [`crate::device::ethernet::EthernetDevice`].
//!
//! There is no router: every destination is taken to be on the link and
//! resolved directly (the stack serves its own subnet, as on a TUN).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use crate::stats::{DropReason, LinkStats};
use crate::time::Instant;

pub mod arp;
pub mod ethernet;
pub mod ndisc;
pub mod neighbour;

use arp::{ArpError, ArpPacket, Operation};
pub use ethernet::MacAddr;
use ethernet::{EthernetHeader, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN};
use ndisc::Ndisc;
pub use neighbour::NeighbourConfig;
use neighbour::{Action, NeighbourCache, Resolution};

/// ARP announcements sent on start (RFC 5227 §1.1 `ANNOUNCE_NUM`).
const ANNOUNCE_NUM: u32 = 2;
/// Time between them (RFC 5227 §1.1 `ANNOUNCE_INTERVAL`).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);
/// Frames kept for reuse.
const SPARE_FRAMES: usize = 64;

/// The Ethernet and ARP state of one interface.
#[derive(Debug)]
pub struct EthernetLink {
    mac: MacAddr,
    addr: Ipv4Addr,
    broadcast: Ipv4Addr,
    neighbours: NeighbourCache<Ipv4Addr>,
    /// Neighbour discovery, when the stack has an IPv6 address.
    ndisc: Option<Ndisc>,
    /// Frames to send, oldest first.
    out: VecDeque<Vec<u8>>,
    /// Packets of ours whose next hop did not answer.
    unreachable: VecDeque<Vec<u8>>,
    /// Emptied frames, reused.
    spare: Vec<Vec<u8>>,
    /// Scratch for the cache's actions.
    actions: Vec<Action<Ipv4Addr>>,
    announcements_left: u32,
    next_announcement: Option<Instant>,
    stats: LinkStats,
}

impl EthernetLink {
    /// The link of a stack with address `addr` on a `/prefix_len` subnet,
    /// and station address `mac`. The first [`EthernetLink::poll`]
    /// announces the address.
    pub fn new(mac: MacAddr, addr: Ipv4Addr, prefix_len: u8, config: NeighbourConfig) -> Self {
        let host_mask = if prefix_len >= 32 {
            0
        } else {
            u32::MAX >> prefix_len
        };
        EthernetLink {
            mac,
            addr,
            broadcast: Ipv4Addr::from(u32::from(addr) | host_mask),
            neighbours: NeighbourCache::new(config),
            ndisc: None,
            out: VecDeque::new(),
            unreachable: VecDeque::new(),
            spare: Vec::new(),
            actions: Vec::new(),
            announcements_left: ANNOUNCE_NUM,
            next_announcement: Some(Instant::ZERO),
            stats: LinkStats::default(),
        }
    }

    /// Turns IPv6 on: the stack has `addr6` and the link-local address of
    /// its MAC, answers neighbour solicitations for both and resolves its
    /// IPv6 neighbours (RFC 4861). Both addresses are probed once by
    /// duplicate address detection before use ([`EthernetLink::with_dad`]).
    pub fn with_ipv6(mut self, addr6: std::net::Ipv6Addr, config: NeighbourConfig) -> Self {
        self.ndisc = Some(Ndisc::new(self.mac, addr6, config, 1));
        self
    }

    /// Duplicate address detection with `transmits` probes per address
    /// (RFC 4862 §5.1 `DupAddrDetectTransmits`, 1 by default; 0: the
    /// addresses are used at once). After [`EthernetLink::with_ipv6`].
    pub fn with_dad(mut self, transmits: u32) -> Self {
        if let Some(n) = &mut self.ndisc {
            n.set_dad_transmits(transmits);
        }
        self
    }

    /// The IPv6 link-local address, with IPv6 on.
    pub fn link_local6(&self) -> Option<std::net::Ipv6Addr> {
        self.ndisc.as_ref().map(Ndisc::link_local)
    }

    /// The MAC the IPv6 neighbour cache holds for `addr`, if it has an
    /// answer.
    pub fn neighbour6(&self, addr: std::net::Ipv6Addr) -> Option<MacAddr> {
        self.ndisc.as_ref().and_then(|n| n.neighbour(addr))
    }

    /// The stack's station address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The MAC the cache holds for `addr`, if it has an answer.
    pub fn neighbour(&self, addr: Ipv4Addr) -> Option<MacAddr> {
        self.neighbours.get(addr)
    }

    /// The counters.
    pub fn stats(&self) -> LinkStats {
        let mut stats = self.stats;
        stats.neighbours =
            (self.neighbours.len() + self.ndisc.as_ref().map_or(0, Ndisc::len)) as u64;
        stats
    }

    /// Takes in one frame. Returns where the IPv4 packet it carries lies
    /// in `frame`, if it carries one for the IP layer; anything else is
    /// handled here (ARP) or dropped and counted.
    pub fn receive(&mut self, now: Instant, frame: &[u8]) -> Option<Range<usize>> {
        self.stats.frames_in += 1;
        let Some(eth) = EthernetHeader::parse(frame) else {
            return self.drop(DropReason::EthernetRunt);
        };
        // Ours, or broadcast; with IPv6, the groups neighbour discovery
        // joins (all-nodes, our solicited-node groups).
        if eth.dst != self.mac
            && !eth.dst.is_broadcast()
            && !self.ndisc.as_ref().is_some_and(|n| n.accepts_mac(eth.dst))
        {
            return self.drop(DropReason::EthernetNotForUs);
        }
        if !eth.src.is_unicast() || eth.src == self.mac {
            return self.drop(DropReason::EthernetBadSource);
        }
        match eth.ethertype {
            ETHERTYPE_IPV4 => Some(HEADER_LEN..frame.len()),
            ETHERTYPE_ARP => {
                self.arp_input(now, eth, &frame[HEADER_LEN..]);
                None
            }
            ETHERTYPE_IPV6 if self.ndisc.is_some() => {
                let ndisc = self.ndisc.as_mut()?;
                let packet = &frame[HEADER_LEN..];
                if ndisc.receive(now, eth.src, packet, &mut self.stats) {
                    self.flush_ndisc();
                    return None;
                }
                // RFC 4862 §5.4: nothing to a tentative address goes up.
                let dst = packet
                    .get(24..40)
                    .and_then(|d| <[u8; 16]>::try_from(d).ok())
                    .map(std::net::Ipv6Addr::from);
                if dst.is_some_and(|d| !ndisc.takes(d)) {
                    return self.drop(DropReason::Ipv6Tentative);
                }
                Some(HEADER_LEN..frame.len())
            }
            _ => self.drop(DropReason::EthernetUnknownType),
        }
    }

    /// RFC 826 "Packet Reception", for IPv4 over Ethernet.
    fn arp_input(&mut self, now: Instant, eth: EthernetHeader, payload: &[u8]) {
        let p = match ArpPacket::parse(payload) {
            Ok(p) => p,
            Err(ArpError::Truncated) => {
                self.count(DropReason::ArpMalformed);
                return;
            }
            Err(ArpError::Unsupported) => {
                self.count(DropReason::ArpUnsupported);
                return;
            }
        };
        match p.op {
            Operation::Request => self.stats.arp_requests_in += 1,
            Operation::Reply => self.stats.arp_replies_in += 1,
        }
        // A sender that claims a group or zero MAC, or the sender field
        // disagreeing with the frame's source, would poison the cache.
        if !p.sender_mac.is_unicast() || p.sender_mac != eth.src {
            self.count(DropReason::ArpMalformed);
            return;
        }
        if p.sender_ip == self.addr {
            // Someone else claims our address (RFC 5227 §2.4): say so
            // (once loudly: the network must not make us log per packet);
            // we keep it (an address conflict is for the operator to fix).
            if self.stats.conflicts == 0 {
                log::warn!(
                    "ARP: {} at {} claims our address {} (further conflicts at debug level)",
                    p.sender_ip,
                    p.sender_mac,
                    self.addr
                );
            } else {
                log::debug!(
                    "ARP: {} at {} claims our address",
                    p.sender_ip,
                    p.sender_mac
                );
            }
            self.stats.conflicts += 1;
            self.count(DropReason::ArpNotForUs);
            return;
        }
        let for_us = p.target_ip == self.addr;
        // A sender of 0.0.0.0 is a probe (RFC 5227 §2.1.1): nothing to learn.
        let learnable = !p.sender_ip.is_unspecified()
            && !p.sender_ip.is_broadcast()
            && !p.sender_ip.is_multicast()
            && p.sender_ip != self.broadcast;
        if learnable {
            // RFC 826 "Packet Reception": update the sender's entry if we
            // have one (the merge flag); if the target is us, add it.
            self.neighbours
                .confirm(now, p.sender_ip, p.sender_mac, for_us, &mut self.actions);
            self.run_actions();
        }
        if !for_us {
            self.count(DropReason::ArpNotForUs);
            return;
        }
        if p.op == Operation::Request {
            // RFC 826 "Packet Reception": swap the fields, put in our
            // address, make it a reply, send it to the asker.
            let reply = ArpPacket {
                op: Operation::Reply,
                sender_mac: self.mac,
                sender_ip: self.addr,
                target_mac: p.sender_mac,
                target_ip: p.sender_ip,
            };
            self.stats.arp_replies_out += 1;
            self.queue_arp(p.sender_mac, &reply);
        }
    }

    /// Queues an IP packet of ours for its next hop: IPv6 (by its version
    /// nibble, with IPv6 on) through neighbour discovery, the rest as IPv4.
    pub fn send_ip(&mut self, now: Instant, packet: &[u8]) {
        if packet.first().is_some_and(|b| b >> 4 == 6) {
            if let Some(ndisc) = &mut self.ndisc {
                ndisc.send(now, packet, &mut self.stats);
                self.flush_ndisc();
                return;
            }
        }
        self.send_ipv4(now, packet);
    }

    /// Moves what neighbour discovery queued into frames.
    fn flush_ndisc(&mut self) {
        let Some(mut ndisc) = self.ndisc.take() else {
            return;
        };
        for (mac, packet) in ndisc.drain_out() {
            self.queue_frame(mac, ETHERTYPE_IPV6, &packet);
            self.recycle(packet);
        }
        for packet in ndisc.drain_unreachable() {
            if self.unreachable.len() < 64 {
                self.unreachable.push_back(packet);
            }
        }
        self.ndisc = Some(ndisc);
    }

    /// Queues an IPv4 packet of ours for its next hop: sent at once if the
    /// neighbour is known, else it waits for ARP.
    pub fn send_ipv4(&mut self, now: Instant, packet: &[u8]) {
        let Some(dst) = packet
            .get(16..20)
            .map(|d| Ipv4Addr::new(d[0], d[1], d[2], d[3]))
        else {
            return;
        };
        let mac = if dst.is_broadcast() || dst == self.broadcast {
            Some(MacAddr::BROADCAST)
        } else if dst.is_multicast() {
            Some(MacAddr::ipv4_multicast(dst))
        } else {
            match self.neighbours.resolve(now, dst, packet, &mut self.actions) {
                Resolution::Known(mac) => Some(mac),
                Resolution::Queued => None,
                Resolution::QueuedDroppedOldest => {
                    self.count(DropReason::NeighbourQueueFull);
                    None
                }
            }
        };
        self.run_actions();
        if let Some(mac) = mac {
            self.queue_frame(mac, ETHERTYPE_IPV4, packet);
        }
    }

    /// Sends the announcements and requests that are due, and gives up on
    /// neighbours that did not answer.
    pub fn poll(&mut self, now: Instant) {
        if self.next_announcement.is_some_and(|t| t <= now) {
            // RFC 5227 §2.3: an ARP announcement is a request with our
            // address as both sender and target, target MAC zero, sent
            // ANNOUNCE_NUM times ANNOUNCE_INTERVAL apart.
            let announcement = ArpPacket {
                op: Operation::Request,
                sender_mac: self.mac,
                sender_ip: self.addr,
                target_mac: MacAddr::ZERO,
                target_ip: self.addr,
            };
            self.stats.arp_requests_out += 1;
            self.queue_arp(MacAddr::BROADCAST, &announcement);
            self.announcements_left = self.announcements_left.saturating_sub(1);
            self.next_announcement =
                (self.announcements_left > 0).then_some(now + ANNOUNCE_INTERVAL);
        }
        if self.neighbours.poll_at().is_some_and(|t| t <= now) {
            self.neighbours.poll(now, &mut self.actions);
            self.run_actions();
        }
        if let Some(ndisc) = &mut self.ndisc {
            ndisc.poll(now, &mut self.stats);
            self.flush_ndisc();
        }
    }

    /// When [`EthernetLink::poll`] has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        let min = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ndisc = self.ndisc.as_ref().and_then(Ndisc::poll_at);
        min(
            min(self.next_announcement, self.neighbours.poll_at()),
            ndisc,
        )
    }

    /// The next frame to send.
    pub fn pop_frame(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Gives a sent frame back for reuse.
    pub fn recycle(&mut self, mut frame: Vec<u8>) {
        if self.spare.len() < SPARE_FRAMES {
            frame.clear();
            self.spare.push(frame);
        }
    }

    /// The next packet of ours that could not be delivered because its
    /// next hop did not answer ARP, for the runtime to report to the socket
    /// that sent it (as Linux reports a failed neighbour: `EHOSTUNREACH`).
    pub fn pop_unreachable(&mut self) -> Option<Vec<u8>> {
        self.unreachable.pop_front()
    }

    fn run_actions(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Solicit { addr, to } => {
                    // RFC 826: a request names us as sender and the wanted
                    // address as target; the target MAC is unknown (zero).
                    let request = ArpPacket {
                        op: Operation::Request,
                        sender_mac: self.mac,
                        sender_ip: self.addr,
                        target_mac: MacAddr::ZERO,
                        target_ip: addr,
                    };
                    self.stats.arp_requests_out += 1;
                    self.queue_arp(to.unwrap_or(MacAddr::BROADCAST), &request);
                }
                Action::Release { mac, packets } => {
                    for p in packets {
                        self.queue_frame(mac, ETHERTYPE_IPV4, &p);
                    }
                }
                Action::Unreachable { addr, packets } => {
                    log::debug!(
                        "ARP: no answer from {addr}; {} packets dropped",
                        packets.len()
                    );
                    self.stats.resolutions_failed += 1;
                    for p in packets {
                        self.count(DropReason::NeighbourUnreachable);
                        if self.unreachable.len() < 64 {
                            self.unreachable.push_back(p);
                        }
                    }
                }
            }
        }
        self.actions = actions;
    }

    fn queue_arp(&mut self, to: MacAddr, packet: &ArpPacket) {
        self.queue_frame(to, ETHERTYPE_ARP, &packet.to_bytes());
    }

    fn queue_frame(&mut self, dst: MacAddr, ethertype: u16, payload: &[u8]) {
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        let header = EthernetHeader {
            dst,
            src: self.mac,
            ethertype,
        };
        frame.extend_from_slice(&header.to_bytes());
        frame.extend_from_slice(payload);
        self.stats.frames_out += 1;
        self.out.push_back(frame);
    }

    fn drop(&mut self, reason: DropReason) -> Option<Range<usize>> {
        self.count(reason);
        None
    }

    fn count(&mut self, reason: DropReason) {
        log::debug!("link: dropped ({reason})");
        self.stats.count_drop(reason);
    }
}

#[cfg(test)]
#[path = "ndisc_tests.rs"]
mod ndisc_tests;
#[cfg(test)]
mod tests;
