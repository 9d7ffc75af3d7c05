//! IPv4: input validation, reassembly, fragmentation and ICMP; IPv6 with
//! ICMPv6 in [`ipv6`].
//!
//! [`Ipv4Layer::input`] turns raw packets from the device into datagrams for
//! the transport layers, or a counted [`DropReason`]. [`Ipv4Layer::output`]
//! wraps a transport payload in a header and fragments it to the link MTU.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use log::debug;

use crate::stats::{DropReason, Stats};
use crate::time::Instant;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::packet::PacketBuf;

pub mod frag;
pub mod icmp;
pub mod ipv6;

use frag::{FragError, FragKey, Reassembler, ReassemblyConfig};

/// A datagram for a transport layer: one whole packet, or a reassembled one.
#[derive(Debug)]
pub struct Datagram<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub protocol: u8,
    /// Identification of the original datagram.
    pub id: u16,
    /// Destination was a broadcast address.
    pub broadcast: bool,
    /// The header as received (first fragment's fields for reassembled data).
    pub header: Cow<'a, [u8]>,
    /// The transport payload.
    pub payload: Cow<'a, [u8]>,
    /// The device vouches for the transport checksum (offload), which is
    /// then not verified. Never for a reassembled datagram.
    pub checksum_trusted: bool,
}

/// What a sender chooses for the IP header of its datagrams (socket
/// options: `IP_TTL`, `IP_TOS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpOptions {
    /// Time to live; `None`: the stack's default (`Config::ttl`).
    pub ttl: Option<u8>,
    /// The type-of-service byte: DSCP and ECN bits (RFC 2474, RFC 3168;
    /// RFC 9293 MUST-48/49 lets the application set it).
    pub tos: u8,
    /// Set the Don't Fragment bit and never fragment (TCP, for path-MTU
    /// discovery, RFC 1191).
    pub dont_fragment: bool,
}

/// The IPv4 layer's state: our address, TTL, the next identification, and
/// the reassembly buffer.
#[derive(Debug)]
pub struct Ipv4Layer {
    addr: Ipv4Addr,
    broadcast: Ipv4Addr,
    ttl: u8,
    mtu: usize,
    next_id: u16,
    reassembler: Reassembler,
}

impl Ipv4Layer {
    /// A layer for `addr` on a link of `mtu` bytes.
    pub fn new(
        addr: Ipv4Addr,
        broadcast: Ipv4Addr,
        ttl: u8,
        mtu: usize,
        first_id: u16,
        reassembly: ReassemblyConfig,
    ) -> Ipv4Layer {
        Ipv4Layer {
            addr,
            broadcast,
            // RFC 1122 §3.2.1.7: a host MUST NOT send a datagram with TTL zero.
            ttl: ttl.max(1),
            mtu,
            next_id: first_id,
            reassembler: Reassembler::new(reassembly),
        }
    }

    /// Our address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The subnet's directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        self.broadcast
    }

    /// The link MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Bytes held by incomplete datagrams.
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembler.bytes_in_use()
    }

    /// Validates one packet from the link. Returns the datagram to deliver,
    /// or `None` when it was dropped (and counted) or is an incomplete fragment.
    pub fn input<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
        stats: &mut Stats,
    ) -> Option<Datagram<'a>> {
        self.input_with(now, bytes, false, stats)
    }

    /// [`Ipv4Layer::input`] for a packet whose transport checksum the
    /// device vouches for (`checksum_trusted`, [`crate::device::RxMeta`]).
    pub fn input_with<'a>(
        &mut self,
        now: Instant,
        bytes: &'a [u8],
        checksum_trusted: bool,
        stats: &mut Stats,
    ) -> Option<Datagram<'a>> {
        let packet = match Ipv4Packet::parse(bytes) {
            Ok(p) => p,
            Err(reason) => return dropped(stats, reason, bytes),
        };
        let (src, dst) = (packet.src(), packet.dst());
        // RFC 1122 §3.2.1.3: a datagram with an invalid source address
        // (ours, broadcast, multicast, unspecified) MUST be silently discarded.
        if src == self.addr
            || src.is_broadcast()
            || src.is_multicast()
            || src.is_unspecified()
            || src == self.broadcast
        {
            return dropped(stats, DropReason::BadSourceAddress, bytes);
        }
        let broadcast = dst.is_broadcast() || dst == self.broadcast;
        // RFC 1122 §3.3.6: accept our address and the broadcast addresses; we
        // join no multicast group.
        if dst != self.addr && !broadcast {
            return dropped(stats, DropReason::NotForUs, bytes);
        }
        // RFC 791 §3.2: a datagram whose TTL is zero "must be destroyed"; no
        // conforming sender emits one (RFC 1122 §3.2.1.7: a host MUST NOT send
        // TTL 0). TTL 1 is accepted: RFC 1122 §3.2.1.7 says a host MUST NOT
        // discard a datagram just because its TTL is below 2.
        if packet.ttl() == 0 {
            return dropped(stats, DropReason::TtlZero, bytes);
        }
        if !packet.is_fragment() {
            return Some(Datagram {
                src,
                dst,
                protocol: packet.protocol(),
                id: packet.id(),
                broadcast,
                header: Cow::Borrowed(packet.header_bytes()),
                payload: Cow::Borrowed(packet.payload()),
                checksum_trusted,
            });
        }
        // RFC 791 §3.2 / RFC 1122 §3.3.2: reassemble fragments.
        let key = FragKey {
            src,
            dst,
            protocol: packet.protocol(),
            id: packet.id(),
        };
        let pushed = self.reassembler.push(
            now,
            key,
            packet.frag_offset(),
            packet.more_fragments(),
            packet.payload(),
        );
        for _ in 0..self.reassembler.take_evicted() {
            stats.drop(DropReason::FragmentEvicted);
        }
        match pushed {
            Ok(Some(whole)) => {
                stats.ip_reassembled += 1;
                let mut header = ipv4::header(
                    src,
                    dst,
                    key.protocol,
                    packet.ttl(),
                    key.id,
                    whole.payload.len(),
                );
                header.header_checksum = header.calc_header_checksum();
                Some(Datagram {
                    src,
                    dst,
                    protocol: key.protocol,
                    id: key.id,
                    broadcast,
                    header: Cow::Owned(header.to_bytes().to_vec()),
                    payload: Cow::Owned(whole.payload),
                    checksum_trusted: false,
                })
            }
            Ok(None) => None,
            Err(e) => {
                let reason = match e {
                    FragError::Overlap => DropReason::FragmentOverlap,
                    FragError::TooLong => DropReason::FragmentTooLong,
                    FragError::Inconsistent => DropReason::FragmentInconsistent,
                    FragError::TooManyFragments => DropReason::FragmentTooMany,
                    FragError::NoMemory => DropReason::FragmentNoMemory,
                };
                dropped(stats, reason, bytes)
            }
        }
    }

    /// Sends `payload` to `dst` as protocol `protocol`, fragmented to the
    /// MTU when it is larger (RFC 791 §3.2). `emit` gets each packet. With
    /// `opts.dont_fragment` the DF bit is set and a datagram larger than the MTU
    /// is not sent (TCP sizes its segments to fit and sets DF for path-MTU
    /// discovery, RFC 1191, as Linux does).
    pub fn output(
        &mut self,
        dst: Ipv4Addr,
        protocol: u8,
        payload: &[u8],
        opts: IpOptions,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        // RFC 1122 §3.2.1.7: a host MUST NOT send a datagram with TTL zero.
        let ttl = opts.ttl.unwrap_or(self.ttl).max(1);
        let mut header =
            ipv4::header_with_tos(self.addr, dst, protocol, ttl, opts.tos, id, payload.len());
        header.dont_fragment = opts.dont_fragment;
        let mut count = 0u64;
        let result = frag::fragment(&header, payload, self.mtu, &mut |p: &[u8]| {
            count += 1;
            emit(p)
        });
        match result {
            Ok(()) => {
                stats.ip_packets_out += count;
                if count > 1 {
                    stats.ip_fragmented += 1;
                }
            }
            Err(e) => {
                stats.drop(DropReason::OutputTooBig);
                debug!("ip: cannot send {} bytes to {dst}: {e:?}", payload.len());
            }
        }
    }

    /// Wraps a transport segment that lies in `packet` (with room in
    /// front) in an IPv4 header written in place, with DF set (TCP's path-MTU
    /// discovery, RFC 1191). False, with `packet` untouched, when it does
    /// not fit the MTU or there is no room: use [`Ipv4Layer::output`].
    pub fn output_in_place(
        &mut self,
        dst: Ipv4Addr,
        protocol: u8,
        packet: &mut PacketBuf,
        opts: IpOptions,
        stats: &mut Stats,
    ) -> bool {
        let len = packet.len();
        // A super-segment (offload) is cut to the MTU by the device.
        let limit = if packet.meta().gso_size > 0 {
            ipv4::MAX_PACKET
        } else {
            self.mtu
        };
        if len + ipv4::HEADER_LEN > limit || packet.headroom() < ipv4::HEADER_LEN {
            return false;
        }
        let id = self.next_id;
        let (src, ttl) = (self.addr, opts.ttl.unwrap_or(self.ttl).max(1));
        let Some(header) = packet.prepend(ipv4::HEADER_LEN) else {
            return false;
        };
        self.next_id = self.next_id.wrapping_add(1);
        ipv4::write_header(header, src, dst, protocol, ttl, opts.tos, id, len, true);
        stats.ip_packets_out += 1;
        true
    }

    /// Expires incomplete datagrams whose reassembly timer ran out. For each
    /// one whose first fragment had arrived, `on_expired` gets a header
    /// standing for the datagram and the first fragment's payload, to quote
    /// in an ICMP Time Exceeded message.
    pub fn poll(
        &mut self,
        now: Instant,
        stats: &mut Stats,
        on_expired: &mut dyn FnMut(&[u8], &[u8]),
    ) {
        if self.reassembler.poll_at().is_none_or(|t| t > now) {
            return;
        }
        let ttl = self.ttl;
        self.reassembler.expire_with(now, &mut |key, first| {
            stats.drop(DropReason::FragmentTimeout);
            debug!(
                "ip: drop ({}): datagram {} from {} timed out",
                DropReason::FragmentTimeout,
                key.id,
                key.src
            );
            if let Some(first) = first {
                let mut h = ipv4::header(key.src, key.dst, key.protocol, ttl, key.id, first.len());
                h.more_fragments = true;
                h.header_checksum = h.calc_header_checksum();
                on_expired(&h.to_bytes(), first);
            }
        });
    }

    /// When [`Ipv4Layer::poll`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.reassembler.poll_at()
    }
}

fn dropped<'a>(stats: &mut Stats, reason: DropReason, bytes: &[u8]) -> Option<Datagram<'a>> {
    stats.drop(reason);
    debug!("ip: drop ({reason}): {} bytes", bytes.len());
    None
}
