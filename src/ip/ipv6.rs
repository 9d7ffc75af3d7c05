//! IPv6 at the network layer (RFC 8200) with ICMPv6 (RFC 4443): input
//! validation, the extension-header walk, echo replies and Parameter
//! Problem errors, rate-limited.
//!
//! The stack answers `ping -6` on TUN and on TAP (where [`crate::link`]
//! adds neighbour discovery), and hands TCP and UDP datagrams, and the
//! ICMPv6 errors about what they sent, up to the transports
//! ([`Up6`]). Any other protocol is answered with a Parameter Problem,
//! "unrecognized Next Header" (RFC 4443 §3.4), and counted. Fragments are
//! reassembled (RFC 8200 §4.5) by the same [`Reassembler`] as IPv4's, with
//! the same limits (`Config::reassembly`) and eviction; an overlap drops
//! the whole datagram (RFC 5722); atomic fragments are taken at once (RFC
//! 8021). Replies larger than the link MTU are fragmented.
//!
//! Sans-IO like [`super::Ipv4Layer`]: [`Ipv6Layer::receive`] takes the
//! time and a packet, and hands what it sends to a closure.

use std::borrow::Cow;
use std::net::Ipv6Addr;

use log::debug;

use super::frag::{FragError, FragmentKey, Reassembler, ReassemblyConfig};
use super::icmp::RateLimiter;
use super::IpOptions;
use crate::stats::{DropReason, Stats};
use crate::time::Instant;
use crate::wire::icmpv6::{self, Icmpv6Error, Icmpv6Message};
use crate::wire::ipv6::{
    self, Ipv6Header, HEADER_LEN, MIN_MTU, NEXT_FRAGMENT, NEXT_ICMPV6, NEXT_NONE, PROBLEM_FIELD,
    PROBLEM_NEXT_HEADER,
};
use crate::wire::packet::PacketBuf;

/// Next Header value of TCP.
pub const NEXT_TCP: u8 = 6;
/// Next Header value of UDP.
pub const NEXT_UDP: u8 = 17;

/// A TCP or UDP datagram for us: one whole packet, or a reassembled one.
#[derive(Debug)]
pub struct Datagram6<'a> {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address (ours, or a group we are in).
    pub dst: Ipv6Addr,
    /// The upper-layer protocol (TCP or UDP).
    pub next_header: u8,
    /// The packet up to the upper-layer header (fixed and extension
    /// headers), to quote in an error.
    pub header: Cow<'a, [u8]>,
    /// The upper-layer message.
    pub payload: Cow<'a, [u8]>,
    /// The device vouches for the transport checksum (offload). Never for
    /// a reassembled datagram.
    pub checksum_trusted: bool,
}

/// An ICMPv6 error about a packet we sent (RFC 4443 §2.4 (a): passed to
/// the upper-layer process that sent it), with the part of the quote the
/// transport needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report6 {
    /// Type: Destination Unreachable, Packet Too Big, Time Exceeded or
    /// Parameter Problem.
    pub kind: u8,
    /// Code.
    pub code: u8,
    /// The four bytes after the checksum (Packet Too Big: the MTU).
    pub field: u32,
    /// The quoted packet's source (ours, if we sent it).
    pub src: Ipv6Addr,
    /// The quoted packet's destination.
    pub dst: Ipv6Addr,
    /// The quoted packet's upper-layer protocol.
    pub next_header: u8,
    /// The quoted upper-layer header's first eight bytes (ports, and
    /// TCP's sequence number).
    pub transport: [u8; 8],
}

/// What the IPv6 layer hands up.
#[derive(Debug)]
pub enum Up6<'a> {
    /// A datagram for TCP or UDP.
    Datagram(Datagram6<'a>),
    /// An ICMPv6 error for the transport that sent the packet it quotes.
    Error(Report6),
}

impl Up6<'_> {
    fn into_owned(self) -> Up6<'static> {
        match self {
            Up6::Datagram(d) => Up6::Datagram(Datagram6 {
                header: Cow::Owned(d.header.into_owned()),
                payload: Cow::Owned(d.payload.into_owned()),
                ..d
            }),
            Up6::Error(r) => Up6::Error(r),
        }
    }
}

/// Length of the Fragment header (RFC 8200 §4.5).
const FRAGMENT_HEADER_LEN: usize = 8;
/// The largest Payload Length (RFC 8200 §3; jumbograms are not served).
const MAX_PAYLOAD: usize = 65535;

/// Identifies an IPv6 datagram being reassembled: RFC 8200 §4.5's source,
/// destination and Identification, and, as IPv4's protocol, the Next
/// Header of the Fragment header (§4.5 takes fragment zero's; a fragment
/// that names another is held apart and times out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frag6Key {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The Identification of the Fragment header.
    pub id: u32,
    /// The Next Header of the Fragment header.
    pub next_header: u8,
}

impl FragmentKey for Frag6Key {
    type Source = Ipv6Addr;
    fn source(&self) -> Ipv6Addr {
        self.src
    }
}

/// The IPv6 layer's state: our addresses, the hop limit of what we send,
/// the link MTU and the ICMPv6 error rate limit.
#[derive(Debug)]
pub struct Ipv6Layer {
    addr: Ipv6Addr,
    link_local: Option<Ipv6Addr>,
    hop_limit: u8,
    mtu: usize,
    icmp_limit: RateLimiter,
    reassembler: Reassembler<Frag6Key>,
    /// The Identification of our next fragmented packet.
    next_id: u32,
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
        Ipv6Layer::with_reassembly(
            addr,
            link_local,
            hop_limit,
            mtu,
            icmp_limit,
            ReassemblyConfig::default(),
            1,
        )
    }

    /// [`Ipv6Layer::new`] with reassembly limits, and the Identification
    /// of the first packet it fragments (random, RFC 7739 §5).
    pub fn with_reassembly(
        addr: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
        hop_limit: u8,
        mtu: usize,
        icmp_limit: RateLimiter,
        reassembly: ReassemblyConfig,
        first_id: u32,
    ) -> Ipv6Layer {
        Ipv6Layer {
            addr,
            link_local,
            hop_limit: hop_limit.max(1),
            mtu,
            icmp_limit,
            reassembler: Reassembler::with_max_payload(reassembly, MAX_PAYLOAD),
            next_id: first_id,
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

    /// Bytes held by incomplete datagrams.
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembler.bytes_in_use()
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
    /// that are due (`emit` gets each packet to send), and returns what
    /// is for a transport. Everything else is dropped and counted.
    /// `trusted`: the device vouches for the transport checksum.
    pub fn receive<'a>(
        &mut self,
        now: Instant,
        packet: &'a [u8],
        trusted: bool,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Option<Up6<'a>> {
        stats.ip6_packets_in += 1;
        // Expire overdue reassemblies first, so a late fragment cannot
        // revive one (and its Time Exceeded goes out).
        if self.poll_at().is_some_and(|t| t <= now) {
            self.poll(now, stats, emit);
        }
        let (h, packet) = match Ipv6Header::parse(packet) {
            Ok(parsed) => parsed,
            Err(reason) => {
                dropped(stats, reason, packet.len());
                return None;
            }
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
            dropped(stats, DropReason::Ipv6BadSource, packet.len());
            return None;
        }
        if !self.accepts(h.dst) {
            dropped(stats, DropReason::Ipv6NotForUs, packet.len());
            return None;
        }
        // RFC 8200 §3: the Hop Limit is checked by nodes that forward; a
        // destination takes any value, 0 included (Linux does too).
        self.process(now, &h, packet, false, trusted, stats, emit)
    }

    /// Walks a validated packet's extension headers and hands it on: to
    /// reassembly, ICMPv6, a transport (returned), or an error.
    /// `reassembled` says it was put together from fragments (and may not
    /// hold another Fragment header).
    #[allow(clippy::too_many_arguments)]
    fn process<'a>(
        &mut self,
        now: Instant,
        h: &Ipv6Header,
        packet: &'a [u8],
        reassembled: bool,
        trusted: bool,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Option<Up6<'a>> {
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
                        self.send_error(now, code, pointer, h, packet, stats, emit);
                    }
                }
                return None;
            }
        };
        let body = &packet[upper.offset..];
        match upper.next_header {
            NEXT_TCP | NEXT_UDP => {
                return Some(Up6::Datagram(Datagram6 {
                    src: h.src,
                    dst: h.dst,
                    next_header: upper.next_header,
                    header: Cow::Borrowed(&packet[..upper.offset]),
                    payload: Cow::Borrowed(body),
                    checksum_trusted: trusted && !reassembled,
                }))
            }
            // A fragment inside a reassembled datagram: nothing sends that.
            NEXT_FRAGMENT if reassembled => {
                dropped(stats, DropReason::Ipv6BadExtension, packet.len())
            }
            NEXT_FRAGMENT => {
                return self.fragment_input(now, h, packet, upper.offset, stats, emit);
            }
            NEXT_ICMPV6 => return self.icmp_input(h, body, stats, emit).map(Up6::Error),
            // RFC 8200 §4.7: nothing follows; the packet is done with.
            NEXT_NONE => dropped(stats, DropReason::Ipv6NoNextHeader, packet.len()),
            _ => {
                dropped(stats, DropReason::Ipv6UnknownNextHeader, packet.len());
                // RFC 8200 §4: an unrecognised Next Header: discard, and
                // send Parameter Problem code 1 pointing at the field
                // (RFC 4443 §3.4); not about a multicast packet (§2.4 e.3).
                if !multicast {
                    let pointer = u32::try_from(upper.next_header_field).unwrap_or(0);
                    self.send_error(now, PROBLEM_NEXT_HEADER, pointer, h, packet, stats, emit);
                }
            }
        }
        None
    }

    /// A fragment whose Fragment header starts at `at` (RFC 8200 §4.5).
    fn fragment_input(
        &mut self,
        now: Instant,
        h: &Ipv6Header,
        packet: &[u8],
        at: usize,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Option<Up6<'static>> {
        let Some(fh) = packet.get(at..at + FRAGMENT_HEADER_LEN) else {
            dropped(stats, DropReason::Ipv6BadExtension, packet.len());
            return None;
        };
        let offset_and_m = u16::from_be_bytes([fh[2], fh[3]]);
        let offset = usize::from(offset_and_m >> 3) * 8;
        let more = offset_and_m & 1 == 1;
        let key = Frag6Key {
            src: h.src,
            dst: h.dst,
            id: u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]),
            next_header: fh[0],
        };
        let data = &packet[at + FRAGMENT_HEADER_LEN..];
        let to_group = h.dst.is_multicast();
        // RFC 8200 §4.5: a fragment with M set whose length is not a
        // multiple of 8 is discarded, with Parameter Problem code 0
        // pointing at its Payload Length.
        if more && data.len() % 8 != 0 {
            dropped(stats, DropReason::FragmentInconsistent, packet.len());
            if !to_group {
                self.send_error(now, PROBLEM_FIELD, 4, h, packet, stats, emit);
            }
            return None;
        }
        // RFC 8200 §4.5: a fragment that would make the reassembled
        // Payload Length exceed 65,535 is discarded, with Parameter Problem
        // code 0 pointing at its Fragment Offset.
        let unfragmentable = at - HEADER_LEN;
        if unfragmentable + offset + data.len() > MAX_PAYLOAD {
            dropped(stats, DropReason::FragmentTooLong, packet.len());
            if !to_group {
                let pointer = u32::try_from(at + 2).unwrap_or(0);
                self.send_error(now, PROBLEM_FIELD, pointer, h, packet, stats, emit);
            }
            return None;
        }
        let pushed = self.reassembler.push(now, key, offset, more, data);
        for _ in 0..self.reassembler.take_evicted() {
            stats.drop(DropReason::FragmentEvicted);
        }
        match pushed {
            Ok(Some(whole)) => {
                stats.ip6_reassembled += 1;
                // The per-fragment headers were processed on each
                // fragment; what follows is the reassembled fragmentable
                // part, behind a fixed header naming fragment zero's Next
                // Header (RFC 8200 §4.5).
                let mut rebuilt = Vec::with_capacity(HEADER_LEN + whole.payload.len());
                ipv6::write(
                    &mut rebuilt,
                    h.src,
                    h.dst,
                    key.next_header,
                    h.hop_limit,
                    &whole.payload,
                );
                let header = Ipv6Header {
                    payload_len: u16::try_from(whole.payload.len()).unwrap_or(u16::MAX),
                    next_header: key.next_header,
                    ..*h
                };
                self.process(now, &header, &rebuilt, true, false, stats, emit)
                    .map(Up6::into_owned)
            }
            Ok(None) => None,
            Err(e) => {
                // RFC 5722 §4: an overlapping fragment discards the whole
                // datagram (the reassembler does).
                let reason = match e {
                    FragError::Overlap => DropReason::FragmentOverlap,
                    FragError::TooLong => DropReason::FragmentTooLong,
                    FragError::Inconsistent => DropReason::FragmentInconsistent,
                    FragError::TooManyFragments => DropReason::FragmentTooMany,
                    FragError::NoMemory => DropReason::FragmentNoMemory,
                };
                dropped(stats, reason, packet.len());
                None
            }
        }
    }

    /// Expires incomplete datagrams whose timer ran out; for each whose
    /// fragment zero had arrived, a Time Exceeded (code 1, "fragment
    /// reassembly time exceeded") goes to its source (RFC 8200 §4.5,
    /// RFC 4443 §3.3), rate-limited.
    pub fn poll(&mut self, now: Instant, stats: &mut Stats, emit: &mut dyn FnMut(&[u8])) {
        if self.reassembler.poll_at().is_none_or(|t| t > now) {
            return;
        }
        let mut expired = Vec::new();
        self.reassembler.expire_with(now, &mut |key, first| {
            expired.push((key, first.map(<[u8]>::to_vec)));
        });
        for (key, first) in expired {
            stats.drop(DropReason::FragmentTimeout);
            debug!(
                "ipv6: drop ({}): datagram {} from {} timed out",
                DropReason::FragmentTimeout,
                key.id,
                key.src
            );
            let Some(first) = first else {
                continue;
            };
            // RFC 4443 §2.4 (e.1), (e.3): no error about an ICMPv6 error
            // message, nor about a packet sent to a group.
            let icmp_error =
                key.next_header == NEXT_ICMPV6 && first.first().is_some_and(|t| *t < 128);
            if !self.is_ours(key.dst) || icmp_error {
                continue;
            }
            if !self.icmp_limit.allow(now) {
                stats.icmp_rate_limited += 1;
                continue;
            }
            // Quote fragment zero: a header and Fragment header standing
            // for it, and its data, within 1280 bytes (§2.4 (c)).
            let mut quoted = Vec::with_capacity(MIN_MTU);
            let mut fragment_zero = vec![key.next_header, 0, 0, 1];
            fragment_zero.extend_from_slice(&key.id.to_be_bytes());
            fragment_zero.extend_from_slice(&first);
            ipv6::write(
                &mut quoted,
                key.src,
                key.dst,
                NEXT_FRAGMENT,
                self.hop_limit,
                &fragment_zero,
            );
            quoted.truncate(MIN_MTU - HEADER_LEN - icmpv6::HEADER_LEN);
            let mut msg = std::mem::take(&mut self.message);
            icmpv6::write(
                &mut msg,
                key.dst,
                key.src,
                icmpv6::TIME_EXCEEDED,
                1,
                [0; 4],
                &quoted,
            );
            stats.icmp6_errors_sent += 1;
            self.output(key.dst, key.src, NEXT_ICMPV6, &msg, stats, emit);
            self.message = msg;
        }
    }

    /// When [`Ipv6Layer::poll`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.reassembler.poll_at()
    }

    fn icmp_input(
        &mut self,
        h: &Ipv6Header,
        bytes: &[u8],
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Option<Report6> {
        let msg = match Icmpv6Message::parse(h.src, h.dst, bytes) {
            Ok(m) => m,
            Err(Icmpv6Error::Truncated) => {
                dropped(stats, DropReason::Icmpv6Truncated, bytes.len());
                return None;
            }
            Err(Icmpv6Error::BadChecksum) => {
                dropped(stats, DropReason::Icmpv6BadChecksum, bytes.len());
                return None;
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
            return None;
        }
        // RFC 4443 §2.4 (a): an error goes to the upper-layer process that
        // sent the packet it quotes, here the transport (which checks the
        // quote is about something it sent).
        if let Some(report) = Self::report(&msg) {
            return Some(report);
        }
        // RFC 4443 §2.4 (b): unknown informational messages MUST be
        // silently discarded, as an error whose quote is too short to
        // name a transport; neighbour discovery is the link layer's (TAP
        // mode), and on a TUN there is none.
        dropped(stats, DropReason::Icmpv6Unhandled, bytes.len());
        None
    }

    /// An error message's report for a transport: the quoted packet's
    /// addresses and the first eight bytes of its TCP or UDP header, which
    /// must follow its fixed header directly (what we send never carries
    /// extension headers, but for fragmentation, and a fragment's quote
    /// does not name the ports).
    fn report(msg: &Icmpv6Message<'_>) -> Option<Report6> {
        if !matches!(
            msg.kind(),
            icmpv6::DEST_UNREACHABLE
                | icmpv6::PACKET_TOO_BIG
                | icmpv6::TIME_EXCEEDED
                | icmpv6::PARAMETER_PROBLEM
        ) {
            return None;
        }
        let quoted = msg.body();
        let next_header = *quoted.get(6)?;
        if !matches!(next_header, NEXT_TCP | NEXT_UDP) || quoted.first()? >> 4 != 6 {
            return None;
        }
        let addr = |at: usize| -> Option<Ipv6Addr> {
            let b: [u8; 16] = quoted.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(b))
        };
        Some(Report6 {
            kind: msg.kind(),
            code: msg.code(),
            field: u32::from_be_bytes(msg.field()),
            src: addr(8)?,
            dst: addr(24)?,
            next_header,
            transport: quoted.get(HEADER_LEN..HEADER_LEN + 8)?.try_into().ok()?,
        })
    }

    /// Sends a Destination Unreachable (RFC 4443 §3.1) with `code` about
    /// datagram `d`, rate-limited like every error: for a UDP port no
    /// socket has (code 4, RFC 4443 §3.1 "SHOULD"). `d` must not be to a
    /// group (§2.4 (e.3)).
    pub fn unreachable(
        &mut self,
        now: Instant,
        code: u8,
        d: &Datagram6<'_>,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        if d.dst.is_multicast() {
            return;
        }
        let mut packet = Vec::with_capacity(d.header.len() + d.payload.len());
        packet.extend_from_slice(&d.header);
        packet.extend_from_slice(&d.payload);
        // A packet whose checksum the device left to us carries a partial
        // sum (offload): quote it as it would be on a wire.
        if d.checksum_trusted {
            crate::wire::gso::complete_checksum(&mut packet);
        }
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: 0,
            next_header: d.next_header,
            hop_limit: 0,
            src: d.src,
            dst: d.dst,
        };
        self.send_error_of(
            now,
            icmpv6::DEST_UNREACHABLE,
            code,
            0,
            &h,
            &packet,
            stats,
            emit,
        );
    }

    /// The link MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
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
        let kind = icmpv6::PARAMETER_PROBLEM;
        self.send_error_of(now, kind, code, pointer, h, packet, stats, emit);
    }

    /// Sends the error `kind`/`code` with `field` after its checksum about
    /// `packet` (whole, header `h`), rate-limited (§2.4 (f)) and quoting as
    /// much of the packet as fits in 1280 bytes (§2.4 (c)).
    #[allow(clippy::too_many_arguments)]
    fn send_error_of(
        &mut self,
        now: Instant,
        kind: u8,
        code: u8,
        field: u32,
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
            kind,
            code,
            field.to_be_bytes(),
            quoted,
        );
        stats.icmp6_errors_sent += 1;
        self.output(src, h.src, NEXT_ICMPV6, &msg, stats, emit);
        self.message = msg;
    }

    /// Writes an IPv6 header for `packet` (a transport segment built
    /// behind headroom) in front of it, in place: true when it fits the
    /// link MTU (a super-segment, cut by the device, may be larger) and
    /// the headroom; false leaves it untouched, for [`Ipv6Layer::output`].
    /// `opts.ttl` is the hop limit, `opts.tos` the Traffic Class.
    pub fn output_in_place(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        packet: &mut PacketBuf,
        opts: IpOptions,
        stats: &mut Stats,
    ) -> bool {
        let len = packet.len();
        let limit = if packet.meta().gso_size > 0 {
            HEADER_LEN + MAX_PAYLOAD
        } else {
            self.mtu
        };
        if len + HEADER_LEN > limit || len > MAX_PAYLOAD || packet.headroom() < HEADER_LEN {
            return false;
        }
        let header = Ipv6Header {
            traffic_class: opts.tos,
            flow_label: 0,
            payload_len: u16::try_from(len).unwrap_or(u16::MAX),
            next_header,
            hop_limit: opts.ttl.unwrap_or(self.hop_limit),
            src,
            dst,
        };
        let Some(room) = packet.prepend(HEADER_LEN) else {
            return false;
        };
        room.copy_from_slice(&header.to_bytes());
        stats.ip6_packets_out += 1;
        true
    }

    /// Sends `payload` from `src` to `dst`: in one packet, or in fragments
    /// when it does not fit the MTU (RFC 8200 §4.5). The layer's own
    /// messages use this; a socket's go through [`Ipv6Layer::output_with`].
    pub fn output(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload: &[u8],
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let opts = IpOptions::default();
        self.output_with(src, dst, next_header, payload, opts, stats, emit);
    }

    /// [`Ipv6Layer::output`] with a socket's choices: `opts.ttl` is the
    /// hop limit, `opts.tos` the Traffic Class (as in
    /// [`Ipv6Layer::output_in_place`]).
    #[allow(clippy::too_many_arguments)]
    pub fn output_with(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload: &[u8],
        opts: IpOptions,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        if HEADER_LEN + payload.len() > self.mtu {
            return self.output_fragmented(src, dst, next_header, payload, opts, stats, emit);
        }
        let header = Ipv6Header {
            traffic_class: opts.tos,
            flow_label: 0,
            payload_len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
            next_header,
            hop_limit: opts.ttl.unwrap_or(self.hop_limit),
            src,
            dst,
        };
        ipv6::write_with(&mut self.packet, &header, payload);
        stats.ip6_packets_out += 1;
        emit(&self.packet);
    }
}

impl Ipv6Layer {
    /// RFC 8200 §4.5: each fragment carries the fixed header, a Fragment
    /// header and a piece of the payload, a multiple of 8 bytes but the
    /// last; the Identification is one per packet (sequential from a
    /// random start).
    #[allow(clippy::too_many_arguments)]
    fn output_fragmented(
        &mut self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload: &[u8],
        opts: IpOptions,
        stats: &mut Stats,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        let piece = self.mtu.saturating_sub(HEADER_LEN + FRAGMENT_HEADER_LEN) / 8 * 8;
        if piece == 0 || payload.len() + FRAGMENT_HEADER_LEN > MAX_PAYLOAD {
            stats.drop(DropReason::OutputTooBig);
            debug!("ipv6: cannot send {} bytes to {dst}", payload.len());
            return;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut offset = 0;
        for chunk in payload.chunks(piece) {
            let more = offset + chunk.len() < payload.len();
            // Offsets are multiples of 8 below 65,536: they fit 13 bits.
            let field = u16::try_from(offset).unwrap_or(0) | u16::from(more);
            let header = Ipv6Header {
                traffic_class: opts.tos,
                flow_label: 0,
                payload_len: u16::try_from(FRAGMENT_HEADER_LEN + chunk.len()).unwrap_or(0),
                next_header: NEXT_FRAGMENT,
                hop_limit: opts.ttl.unwrap_or(self.hop_limit),
                src,
                dst,
            };
            self.packet.clear();
            self.packet.extend_from_slice(&header.to_bytes());
            self.packet.extend_from_slice(&[next_header, 0]);
            self.packet.extend_from_slice(&field.to_be_bytes());
            self.packet.extend_from_slice(&id.to_be_bytes());
            self.packet.extend_from_slice(chunk);
            stats.ip6_packets_out += 1;
            emit(&self.packet);
            offset += chunk.len();
        }
        stats.ip6_fragmented += 1;
    }
}

fn dropped(stats: &mut Stats, reason: DropReason, len: usize) {
    stats.drop(reason);
    debug!("ipv6: drop ({reason}): {len} bytes");
}

#[cfg(test)]
mod tests;
