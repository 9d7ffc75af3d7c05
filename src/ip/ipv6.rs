//! IPv6 at the network layer (RFC 8200) with ICMPv6 (RFC 4443): input
//! validation, the extension-header walk, echo replies and Parameter
//! Problem errors, rate-limited.
//!
//! This is the first slice of IPv6: the stack answers `ping -6` on TUN and
//! on TAP (where [`crate::link`] adds neighbour discovery). TCP and UDP
//! over IPv6 are not served yet: a packet for them is answered with a
//! Parameter Problem, "unrecognized Next Header" (RFC 4443 §3.4), as for
//! any protocol the stack does not speak, and counted. Fragments are not
//! reassembled (dropped and counted as `ipv6-fragment-unsupported`);
//! atomic fragments are taken (RFC 8021). Output is never fragmented: a
//! reply larger than the link MTU is not sent (`ip-out-too-big`).
//!
//! Sans-IO like [`super::Ipv4Layer`]: [`Ipv6Layer::receive`] takes the
//! time and a packet, and hands what it sends to a closure.

use std::net::Ipv6Addr;

use log::debug;

use super::icmp::RateLimiter;
use crate::stats::{DropReason, Stats};
use crate::time::Instant;
use crate::wire::icmpv6::{self, Icmpv6Error, Icmpv6Message};
use crate::wire::ipv6::{
    self, Ipv6Header, HEADER_LEN, MIN_MTU, NEXT_ICMPV6, NEXT_NONE, PROBLEM_NEXT_HEADER,
};

/// The IPv6 layer's state: our addresses, the hop limit of what we send,
/// the link MTU and the ICMPv6 error rate limit.
#[derive(Debug)]
pub struct Ipv6Layer {
    addr: Ipv6Addr,
    link_local: Option<Ipv6Addr>,
    hop_limit: u8,
    mtu: usize,
    icmp_limit: RateLimiter,
    /// An ICMPv6 message being built.
    message: Vec<u8>,
    /// A packet being built.
    packet: Vec<u8>,
}

impl Ipv6Layer {
    /// A layer for `addr` (and, on an Ethernet link, the link-local
    /// `link_local`) on a link of `mtu` bytes, sending with `hop_limit`
    /// and at most as many ICMPv6 errors as `icmp_limit` allows.
    pub fn new(
        addr: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
        hop_limit: u8,
        mtu: usize,
        icmp_limit: RateLimiter,
    ) -> Ipv6Layer {
        Ipv6Layer {
            addr,
            link_local,
            hop_limit: hop_limit.max(1),
            mtu,
            icmp_limit,
            message: Vec::with_capacity(MIN_MTU),
            packet: Vec::with_capacity(MIN_MTU),
        }
    }

    /// Our address.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// Our link-local address (TAP mode).
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.link_local
    }

    /// Whether `a` is one of our unicast addresses.
    pub fn is_ours(&self, a: Ipv6Addr) -> bool {
        a == self.addr || Some(a) == self.link_local
    }

    /// Whether a packet to `dst` is for us (RFC 4291 §2.8: a host
    /// recognises its unicast addresses, the all-nodes group and the
    /// solicited-node group of each of its addresses).
    pub fn accepts(&self, dst: Ipv6Addr) -> bool {
        self.is_ours(dst)
            || dst == ipv6::ALL_NODES
            || dst == ipv6::solicited_node(self.addr)
            || self.link_local.map(ipv6::solicited_node) == Some(dst)
    }

    /// Which of our addresses answers `peer`: the link-local one for a
    /// link-local peer, if we have one (RFC 6724's scope rule), else the
    /// configured one.
    pub fn source_for(&self, peer: Ipv6Addr) -> Ipv6Addr {
        match self.link_local {
            Some(ll) if ipv6::is_link_local(peer) => ll,
            _ => self.addr,
        }
    }

    /// Takes one IPv6 packet from the link: validates it, walks its
    /// extension headers, answers echo requests and sends the errors
    /// that are due (`emit` gets each packet to send). Everything that is
    /// not answered is dropped and counted.
    pub fn receive(
        &mut self,
        now: Instant,
        packet: &[u8],
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        stats.ip6_packets_in += 1;
        let (h, packet) = match Ipv6Header::parse(packet) {
            Ok(parsed) => parsed,
            Err(reason) => return dropped(stats, reason, packet.len()),
        };
        // RFC 4291 §2.7: a multicast address MUST NOT be a source;
        // §2.5.3: a packet from the loopback address arriving on an
        // interface MUST be dropped; §2.5.2: the unspecified source is for
        // a node without an address (DAD, handled by the link layer), never
        // one we could answer; RFC 4291 §2.5.5.2 / RFC 6890: IPv4-mapped
        // addresses do not appear on the wire; our own address means a
        // loop or a forgery.
        if h.src.is_multicast()
            || h.src.is_unspecified()
            || h.src.is_loopback()
            || h.src.to_ipv4_mapped().is_some()
            || self.is_ours(h.src)
        {
            return dropped(stats, DropReason::Ipv6BadSource, packet.len());
        }
        if !self.accepts(h.dst) {
            return dropped(stats, DropReason::Ipv6NotForUs, packet.len());
        }
        // RFC 8200 §3: the Hop Limit is checked by nodes that forward; a
        // destination takes any value, 0 included (Linux does too).
        let multicast = h.dst.is_multicast();
        let upper = match ipv6::walk_extensions(packet, multicast) {
            Ok(upper) => upper,
            Err(e) => {
                dropped(stats, e.reason, packet.len());
                // RFC 4443 §2.4 (e.3): no error about a packet sent to a
                // multicast address, except for an option whose type
                // asks for one (RFC 8200 §4.2, top bits 10).
                if let Some((code, pointer)) = e.problem {
                    if !multicast || e.even_to_multicast {
                        self.send_error(now, code, pointer, &h, packet, stats, emit);
                    }
                }
                return;
            }
        };
        let body = &packet[upper.offset..];
        match upper.next_header {
            NEXT_ICMPV6 => self.icmp_input(now, &h, body, stats, emit),
            // RFC 8200 §4.7: nothing follows; the packet is done with.
            NEXT_NONE => dropped(stats, DropReason::Ipv6NoNextHeader, packet.len()),
            _ => {
                dropped(stats, DropReason::Ipv6UnknownNextHeader, packet.len());
                // RFC 8200 §4: an unrecognised Next Header: discard, and
                // send Parameter Problem code 1 pointing at the field
                // (RFC 4443 §3.4); not about a multicast packet (§2.4 e.3).
                if !multicast {
                    let pointer = u32::try_from(upper.next_header_field).unwrap_or(0);
                    self.send_error(now, PROBLEM_NEXT_HEADER, pointer, &h, packet, stats, emit);
                }
            }
        }
    }

    fn icmp_input(
        &mut self,
        _now: Instant,
        h: &Ipv6Header,
        bytes: &[u8],
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let msg = match Icmpv6Message::parse(h.src, h.dst, bytes) {
            Ok(m) => m,
            Err(Icmpv6Error::Truncated) => {
                return dropped(stats, DropReason::Icmpv6Truncated, bytes.len())
            }
            Err(Icmpv6Error::BadChecksum) => {
                return dropped(stats, DropReason::Icmpv6BadChecksum, bytes.len())
            }
        };
        // RFC 4443 §4.2: every node MUST answer an echo request, with the
        // identifier, sequence and data of the request. A request to a
        // group is ignored here (as the IPv4 side ignores broadcasts).
        if msg.kind() == icmpv6::ECHO_REQUEST && !h.dst.is_multicast() {
            let mut reply = std::mem::take(&mut self.message);
            icmpv6::write(
                &mut reply,
                h.dst,
                h.src,
                icmpv6::ECHO_REPLY,
                0,
                msg.field(),
                msg.body(),
            );
            stats.icmp6_echo_replies += 1;
            self.output(h.dst, h.src, NEXT_ICMPV6, &reply, stats, emit);
            self.message = reply;
            return;
        }
        // RFC 4443 §2.4 (a), (b): errors about what we sent would go to
        // the transport that sent it (none over IPv6 yet); unknown
        // informational messages MUST be silently discarded. Neighbour
        // discovery is the link layer's (TAP mode); on a TUN there is none.
        dropped(stats, DropReason::Icmpv6Unhandled, bytes.len());
    }

    /// Sends a Parameter Problem (RFC 4443 §3.4) with `code` and `pointer`
    /// about `packet` (whole, header `h`), rate-limited (§2.4 (f)) and
    /// quoting as much of the packet as fits in 1280 bytes (§2.4 (c)).
    #[allow(clippy::too_many_arguments)]
    fn send_error(
        &mut self,
        now: Instant,
        code: u8,
        pointer: u32,
        h: &Ipv6Header,
        packet: &[u8],
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        // RFC 4443 §2.4 (f): a node MUST limit the rate of its errors.
        if !self.icmp_limit.allow(now) {
            stats.icmp_rate_limited += 1;
            return;
        }
        // RFC 4443 §2.2: the source is the address the packet was sent to
        // if it is ours, else one of ours for the peer.
        let src = if self.is_ours(h.dst) {
            h.dst
        } else {
            self.source_for(h.src)
        };
        let room = MIN_MTU - HEADER_LEN - icmpv6::HEADER_LEN;
        let quoted = &packet[..packet.len().min(room)];
        let mut msg = std::mem::take(&mut self.message);
        icmpv6::write(
            &mut msg,
            src,
            h.src,
            icmpv6::PARAMETER_PROBLEM,
            code,
            pointer.to_be_bytes(),
            quoted,
        );
        stats.icmp6_errors_sent += 1;
        self.output(src, h.src, NEXT_ICMPV6, &msg, stats, emit);
        self.message = msg;
    }

    /// Sends `payload` from `src` to `dst` in one packet; one larger than
    /// the MTU is not sent (this slice does not fragment).
    pub fn output(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload: &[u8],
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        if HEADER_LEN + payload.len() > self.mtu {
            stats.drop(DropReason::OutputTooBig);
            debug!(
                "ipv6: cannot send {} bytes to {dst} in one packet (MTU {})",
                payload.len(),
                self.mtu
            );
            return;
        }
        ipv6::write(
            &mut self.packet,
            src,
            dst,
            next_header,
            self.hop_limit,
            payload,
        );
        stats.ip6_packets_out += 1;
        emit(&self.packet);
    }
}

fn dropped(stats: &mut Stats, reason: DropReason, len: usize) {
    stats.drop(reason);
    debug!("ipv6: drop ({reason}): {len} bytes");
}

#[cfg(test)]
mod tests;
