//! The interface: the sans-IO core that owns all protocol state.
//!
//! It takes packets and user calls with the current time, and hands back
//! packets to transmit ([`Interface::pop_transmit`]), events for the socket
//! layer ([`Interface::pop_event`]) and its next deadline
//! ([`Interface::poll_at`]). It never blocks, sleeps, or reads a clock; the
//! runtime drives it, and tests drive it by hand.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use log::{debug, trace};

use crate::config::{random_seed, Config, Rng};
use crate::device::{RxMeta, TxMeta};
use crate::ip::ipv6::{Datagram6, Ipv6Layer, Report6, Up6};
use crate::ip::{icmp as ip_icmp, Datagram, IpOptions, Ipv4Layer};
use crate::stats::{DropReason, Stats};
use crate::tcp::icmp::IcmpError;
use crate::tcp::stream::Stream;
use crate::tcp::{
    ConnId, ConnInfo, KeepaliveConfig, ListenerId, TcpConfig, TcpError, TcpEvent, TcpLayer,
    TcpOption,
};
use crate::time::Instant;
use crate::udp::{SocketId, UdpError, UdpTable};
use crate::wire::packet::PacketBuf;
use crate::wire::{gso, icmp, icmpv6, udp};

/// IP protocol number of ICMP.
const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// ICMPv6 Destination Unreachable's code for a port no one listens on
/// (RFC 4443 §3.1).
const UNREACHABLE6_PORT: u8 = 4;

/// Something the socket layer must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something happened on a TCP connection or listener.
    Tcp(TcpEvent),
    /// A datagram arrived for a UDP socket.
    UdpDatagram {
        /// The receiving socket.
        socket: SocketId,
        /// Who sent it.
        from: SocketAddr,
        /// The payload.
        payload: Vec<u8>,
    },
    /// An ICMP error reports that a connected UDP socket's peer cannot be
    /// reached (RFC 1122 §4.1.3.3: UDP MUST pass ICMP errors to the application).
    UdpError {
        /// The socket.
        socket: SocketId,
        /// What the ICMP message said.
        error: std::io::ErrorKind,
    },
}

/// Packets waiting for the device. Their buffers come from (and return
/// to) the TCP layer's pool, which TCP segments are built in.
#[derive(Debug, Default)]
struct TxQueue {
    queue: VecDeque<PacketBuf>,
}

impl TxQueue {
    /// Queues a copy of `packet` in a buffer from `tcp`'s pool.
    fn push(&mut self, tcp: &mut TcpLayer, packet: &[u8]) {
        self.push_with(tcp, packet, TxMeta::default());
    }

    /// Queues a copy of `packet` with what the device is to do with it.
    fn push_with(&mut self, tcp: &mut TcpLayer, packet: &[u8], meta: TxMeta) {
        let mut buf = tcp.take_buffer();
        buf.extend_from_slice(packet);
        let mut p = PacketBuf::from_vec(buf);
        p.set_meta(meta);
        self.queue.push_back(p);
    }
}

/// The protocol core of one stack.
#[derive(Debug)]
pub struct Interface {
    ip: Ipv4Layer,
    /// IPv6, when the stack has an IPv6 address (`Config::addr6`).
    ip6: Option<Ipv6Layer>,
    udp: UdpTable,
    tcp: TcpLayer,
    icmp_limit: ip_icmp::RateLimiter,
    stats: Stats,
    tx_queue: TxQueue,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
    /// The note on the last packet received, with notes on.
    rx_note: Option<String>,
}

impl Interface {
    /// A core for `config` on a link of `mtu` bytes.
    pub fn new(config: &Config, mtu: usize, seed: u64) -> Interface {
        let mut rng = Rng::new(seed);
        let tcp_config = TcpConfig {
            mtu,
            ..config.tcp.clone()
        };
        // RFC 6528 §3: the ISN secret must be hard to guess. Unless a test
        // fixed the seed, it is 128 fresh random bits, independent of the
        // generator behind the IP IDs and ports that are visible on the wire.
        let mut isn_secret = [0u8; 16];
        let (a, b) = match config.seed {
            Some(_) => (
                rng.next_u64() ^ 0x6a09_e667_f3bc_c908,
                rng.next_u64() ^ 0xbb67_ae85_84ca_a73b,
            ),
            None => (random_seed(), random_seed()),
        };
        isn_secret[..8].copy_from_slice(&a.to_le_bytes());
        isn_secret[8..].copy_from_slice(&b.to_le_bytes());
        Interface {
            tcp: TcpLayer::new(tcp_config, isn_secret),
            ip: Ipv4Layer::new(
                config.addr,
                config.broadcast(),
                config.ttl,
                mtu,
                rng.next_u64() as u16,
                config.reassembly,
            ),
            ip6: config.addr6.map(|(addr6, _)| {
                Ipv6Layer::with_reassembly(
                    addr6,
                    config.link_local6(),
                    config.ttl,
                    mtu,
                    ip_icmp::RateLimiter::new(config.icmp_errors_per_sec, config.icmp_error_burst),
                    config.reassembly,
                    rng.next_u64() as u32,
                )
            }),
            udp: {
                let mut udp = UdpTable::new(config.addr, rng.next_u64());
                let ours6 = config.addr6.map(|(a, _)| a).into_iter();
                udp.set_addrs6(ours6.chain(config.link_local6()));
                udp
            },
            icmp_limit: ip_icmp::RateLimiter::new(
                config.icmp_errors_per_sec,
                config.icmp_error_burst,
            ),
            stats: Stats::default(),
            tx_queue: TxQueue::default(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(2048),
            rx_note: None,
        }
    }

    /// Whether a TCP listener takes connections on `port` (our address or
    /// any).
    pub fn tcp_listening_on(&self, port: u16) -> bool {
        self.tcp
            .listening_on(SocketAddr::new(self.ip.addr().into(), port))
            || self.ip6.as_ref().is_some_and(|ip6| {
                self.tcp
                    .listening_on(SocketAddr::new(ip6.addr().into(), port))
            })
    }

    /// Makes this core shard `k` of `n` (a multi-queue stack): TCP opens
    /// connections from its share of the ephemeral ports only.
    pub fn set_shard(&mut self, k: usize, n: usize) {
        self.tcp.set_shard(k, n);
    }

    /// Tells the core that the device takes segmentation and checksum
    /// offload ([`crate::device::Device::offload`]): TCP then builds
    /// super-segments and leaves checksums to the device.
    pub fn set_offload(&mut self, offload: bool) {
        self.tcp.set_offload(offload);
    }

    /// The stack's address.
    pub fn addr(&self) -> Ipv4Addr {
        self.ip.addr()
    }

    /// The subnet's directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        self.ip.broadcast()
    }

    /// The stack's IPv6 addresses: the configured one and, in TAP mode,
    /// the link-local one; `None` with IPv6 off.
    pub fn addrs6(&self) -> Option<(std::net::Ipv6Addr, Option<std::net::Ipv6Addr>)> {
        self.ip6.as_ref().map(|l| (l.addr(), l.link_local()))
    }

    /// The link MTU.
    pub fn mtu(&self) -> usize {
        self.ip.mtu()
    }

    /// Bytes held by incomplete datagrams awaiting reassembly (IPv4's
    /// and IPv6's).
    pub fn reassembly_bytes(&self) -> usize {
        self.ip.reassembly_bytes() + self.ip6.as_ref().map_or(0, Ipv6Layer::reassembly_bytes)
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.tcp = self.tcp.stats();
        s
    }

    /// Handles one packet from the link.
    pub fn receive(&mut self, now: Instant, packet: &[u8]) {
        self.receive_with(now, packet, RxMeta::default());
    }

    /// Turns the notes on packets on or off ([`crate::notes`]): what the
    /// core did with each packet, in words, for the comments of a pcapng
    /// capture. Off by default; off, they cost a branch.
    pub fn set_notes(&mut self, on: bool) {
        self.tcp.notes().set_on(on);
    }

    /// Whether notes on packets are being taken.
    #[inline]
    pub fn notes_on(&self) -> bool {
        self.tcp.notes_on()
    }

    /// Pairs the core's time `now` with the wall clock `wall`, so notes
    /// can give deadlines as times of day (`TIME-WAIT until 12:00:01.234`).
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        self.tcp.notes().set_wall_clock(now, wall);
    }

    /// The note on the packet [`Interface::receive_with`] handled last, if
    /// notes are on and there is one.
    pub fn take_received_note(&mut self) -> Option<String> {
        self.rx_note.take()
    }

    /// The note on a packet from [`Interface::pop_transmit`], if notes are
    /// on and there is one. Take them in the order the packets came.
    pub fn take_transmit_note(&mut self, packet: &PacketBuf) -> Option<String> {
        self.tcp.notes().take(packet.note())
    }

    /// Handles one packet from the link with what the device says about
    /// it: a transport checksum it vouches for is not verified again, and
    /// a TCP super-segment is taken whole.
    pub fn receive_with(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        if self.tcp.notes_on() {
            return self.receive_noted(now, packet, meta);
        }
        self.receive_inner(now, packet, meta);
    }

    /// [`Interface::receive_with`] with notes on: what the core did is
    /// noted as it happens; what it dropped is found in the counters.
    #[cold]
    fn receive_noted(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        let drops_before = self.stats.clone();
        let tcp_before = self.tcp.stats();
        self.tcp.notes().begin_received();
        self.receive_inner(now, packet, meta);
        let tcp_after = self.tcp.stats();
        let mut note = self.tcp.notes().end_received().unwrap_or_default();
        let mut add = |text: &str| {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(text);
        };
        // A reassembly that timed out is another datagram's, expired on
        // the way: not this packet's fate.
        for reason in DropReason::ALL {
            if reason == DropReason::FragmentTimeout {
                continue;
            }
            if self.stats.dropped(reason) > drops_before.dropped(reason) {
                add(&format!("dropped: {}", drop_words(reason)));
            }
        }
        let grew = |f: TcpCounter| f(&tcp_after) > f(&tcp_before);
        let tcp_words: [(TcpCounter, &str); 9] = [
            (|s| s.bad_checksum, "dropped: bad TCP checksum"),
            (|s| s.malformed, "dropped: malformed TCP header"),
            (
                |s| s.paws_rejected,
                "dropped: old timestamp (PAWS, RFC 7323 §5)",
            ),
            (
                |s| s.ts_missing,
                "dropped: no timestamp on a connection that agreed to them",
            ),
            (|s| s.syn_dropped, "dropped: the listener's queues are full"),
            (
                |s| s.listen_overflow,
                "dropped: the accept queue is full (the SYN-ACK will be resent)",
            ),
            (|s| s.challenge_acks, "challenge ACK sent (RFC 5961)"),
            (
                |s| s.challenge_acks_limited,
                "challenge ACK rate-limited (RFC 5961 §7)",
            ),
            (|s| s.icmp_errors, "ICMP error acted on"),
        ];
        for (field, words) in tcp_words {
            if grew(field) {
                add(words);
            }
        }
        self.rx_note = (!note.is_empty()).then_some(note);
    }

    fn receive_inner(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        // The IP version picks the layer: one branch on the first nibble,
        // so IPv4's path is as it was. Without an IPv6 address an IPv6
        // packet takes IPv4's path and is dropped there (`ip-not-ipv4`).
        if packet.first().is_some_and(|b| b >> 4 == 6) && self.ip6.is_some() {
            return self.receive_ipv6(now, packet, meta);
        }
        self.stats.ip_packets_in += 1;
        // Expire overdue reassemblies first, so a late fragment cannot revive one.
        if self.ip.poll_at().is_some_and(|t| t <= now) {
            self.poll(now);
        }
        trace!("rx {} bytes", packet.len());
        let trusted = meta.checksum_trusted;
        let Some(datagram) = self.ip.input_with(now, packet, trusted, &mut self.stats) else {
            return;
        };
        match datagram.protocol {
            PROTO_ICMP => self.icmp_input(now, &datagram),
            udp::PROTOCOL => self.udp_input(now, &datagram),
            // RFC 1122 §4.2.3.10: TCP never answers broadcasts.
            PROTO_TCP if datagram.broadcast => self.drop(DropReason::TcpRejected, &datagram),
            PROTO_TCP => {
                // The device's word on the checksum holds for the whole
                // datagram, never for a reassembled one.
                let meta = RxMeta {
                    checksum_trusted: datagram.checksum_trusted,
                    ..meta
                };
                self.tcp.on_segment_with(
                    now,
                    datagram.src.into(),
                    datagram.dst.into(),
                    &datagram.payload,
                    meta,
                )
            }
            _ => {
                self.drop(DropReason::UnknownProtocol, &datagram);
                // RFC 1122 §3.2.2.1: a host SHOULD send Protocol Unreachable.
                self.send_unreachable(now, icmp::CODE_PROTOCOL_UNREACHABLE, &datagram);
            }
        }
    }

    /// An IPv6 packet: the IPv6 layer answers it (ICMPv6), drops it, or
    /// hands it to TCP or UDP.
    #[inline(never)]
    fn receive_ipv6(&mut self, now: Instant, packet: &[u8], meta: RxMeta) {
        let Some(ip6) = &mut self.ip6 else {
            return;
        };
        trace!("rx {} bytes (IPv6)", packet.len());
        let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
        let trusted = meta.checksum_trusted;
        let up = ip6.receive(now, packet, trusted, &mut self.stats, &mut |p| {
            tx_queue.push(tcp, p)
        });
        match up {
            Some(Up6::Datagram(d)) if d.next_header == PROTO_TCP => {
                // RFC 9293 §3.9.1.1 (MUST-46's other side): TCP is unicast;
                // a segment to a group is not for a connection.
                if d.dst.is_multicast() {
                    self.stats.drop(DropReason::TcpRejected);
                    return;
                }
                // The device's word holds for the whole packet, never for
                // a reassembled one (the IPv6 layer says which).
                let meta = RxMeta {
                    checksum_trusted: d.checksum_trusted,
                    ..meta
                };
                let (src, dst) = (d.src.into(), d.dst.into());
                self.tcp.on_segment_with(now, src, dst, &d.payload, meta);
            }
            Some(Up6::Datagram(d)) => self.udp6_input(now, &d),
            Some(Up6::Error(r)) => self.icmp6_error_input(now, r),
            None => {}
        }
    }

    /// A UDP datagram over IPv6: to its socket, or answered with Port
    /// Unreachable (RFC 4443 §3.1 code 4; never about a datagram to a
    /// group, §2.4 (e.3)).
    fn udp6_input(&mut self, now: Instant, d: &Datagram6<'_>) {
        let dgram =
            match udp::UdpDatagram::parse_with(d.src, d.dst, &d.payload, !d.checksum_trusted) {
                Ok(u) => u,
                Err(reason) => {
                    self.stats.drop(reason);
                    return;
                }
            };
        let from = SocketAddr::new(d.src.into(), dgram.src_port);
        // No socket takes datagrams to a group (no multicast membership).
        if d.dst.is_multicast() || !self.udp_deliver(from, dgram.dst_port, dgram.payload) {
            self.stats.drop(DropReason::UdpNoSocket);
            let Some(ip6) = &mut self.ip6 else {
                return;
            };
            let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
            ip6.unreachable(now, UNREACHABLE6_PORT, d, &mut self.stats, &mut |p| {
                tx_queue.push(tcp, p)
            });
        }
    }

    /// Hands a datagram from `from` to the socket on `dst_port`, if one
    /// takes it; a dual-stack `[::]` socket sees an IPv4 sender
    /// IPv4-mapped (RFC 4291 §2.5.5.2), as on Linux. False: no socket.
    fn udp_deliver(&mut self, from: SocketAddr, dst_port: u16, payload: &[u8]) -> bool {
        let Some(socket) = self.udp.lookup(from, dst_port) else {
            return false;
        };
        self.stats.udp_datagrams_in += 1;
        let dual = self.udp.local_addr(socket).is_some_and(|l| l.is_ipv6());
        let from = match from {
            SocketAddr::V4(v4) if dual => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            other => other,
        };
        self.events.push_back(Event::UdpDatagram {
            socket,
            from,
            payload: payload.to_vec(),
        });
        true
    }

    /// Reports `error` to the socket on `local_port` if it is connected to
    /// `remote` (Linux reports errors only to connected sockets, without
    /// IP_RECVERR). False: no such socket.
    fn udp_report(
        &mut self,
        remote: SocketAddr,
        local_port: u16,
        error: std::io::ErrorKind,
    ) -> bool {
        match self.udp.lookup(remote, local_port) {
            Some(socket) if self.udp.remote(socket) == Some(remote) => {
                self.events.push_back(Event::UdpError { socket, error });
                true
            }
            _ => false,
        }
    }

    /// An ICMPv6 error about a TCP segment or UDP datagram we sent (RFC
    /// 4443 §2.4 (a)) goes to its connection or connected socket, as
    /// IPv4's do ([`Interface::icmp_tcp_input`]). Packet Too Big lowers
    /// the path MTU (RFC 8201 §4), never below IPv6's minimum of 1280.
    fn icmp6_error_input(&mut self, now: Instant, r: Report6) {
        let Some(ip6) = &self.ip6 else {
            return;
        };
        if !ip6.is_ours(r.src) {
            self.stats.drop(DropReason::IcmpUnhandled);
            return;
        }
        let t = r.transport;
        let local = SocketAddr::new(r.src.into(), u16::from_be_bytes([t[0], t[1]]));
        let remote = SocketAddr::new(r.dst.into(), u16::from_be_bytes([t[2], t[3]]));
        let mtu = ip6.mtu();
        if r.next_header == PROTO_TCP {
            let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            // RFC 4443 §3.1 codes: 0 no route, 1 administratively
            // prohibited, 3 address unreachable, 4 port unreachable.
            let err = match (r.kind, r.code) {
                (icmpv6::DEST_UNREACHABLE, 4) => IcmpError::Hard,
                (icmpv6::DEST_UNREACHABLE, 0) => IcmpError::NetUnreachable,
                (icmpv6::DEST_UNREACHABLE, _) => IcmpError::HostUnreachable,
                (icmpv6::PACKET_TOO_BIG, _) => {
                    IcmpError::FragmentationNeeded(u16::try_from(r.field).unwrap_or(u16::MAX))
                }
                _ => IcmpError::Transient,
            };
            self.tcp.on_icmp(now, (local, remote), seq, err, mtu);
        } else if r.kind == icmpv6::DEST_UNREACHABLE {
            let error = match r.code {
                UNREACHABLE6_PORT => std::io::ErrorKind::ConnectionRefused,
                0 => std::io::ErrorKind::NetworkUnreachable,
                _ => std::io::ErrorKind::HostUnreachable,
            };
            if !self.udp_report(remote, local.port(), error) {
                self.stats.drop(DropReason::IcmpUnhandled);
            }
        } else {
            self.stats.drop(DropReason::IcmpUnhandled);
        }
    }

    fn drop(&mut self, reason: DropReason, d: &Datagram<'_>) {
        self.stats.drop(reason);
        debug!(
            "{}: drop ({reason}): {} bytes from {}",
            proto_name(d.protocol),
            d.payload.len(),
            d.src
        );
    }

    fn icmp_input(&mut self, now: Instant, d: &Datagram<'_>) {
        let msg = match icmp::IcmpMessage::parse(&d.payload) {
            Ok(m) => m,
            Err(reason) => return self.drop(reason, d),
        };
        // RFC 1122 §3.2.2.6: echo requests to a broadcast address MAY be
        // silently discarded (Linux's default); we do so.
        if msg.kind() == icmp::ECHO_REQUEST && !d.broadcast {
            // RFC 1122 §3.2.2.6: every host MUST answer an echo request, with
            // the same data.
            let mut reply = std::mem::take(&mut self.scratch);
            ip_icmp::echo_reply(&msg, &mut reply);
            self.stats.icmp_echo_replies += 1;
            self.transmit(d.src, PROTO_ICMP, &reply, IpOptions::default());
            self.scratch = reply;
        } else if matches!(
            msg.kind(),
            icmp::DEST_UNREACHABLE | icmp::TIME_EXCEEDED | icmp::PARAMETER_PROBLEM
        ) && msg.quoted().is_some_and(|q| q.protocol == PROTO_TCP)
        {
            self.icmp_tcp_input(now, &msg, d);
        } else if msg.kind() == icmp::DEST_UNREACHABLE {
            self.icmp_unreachable_input(&msg, d);
        } else {
            // Source Quench among them (RFC 6633: ignored).
            self.drop(DropReason::IcmpUnhandled, d);
        }
    }

    /// An ICMP error about a TCP segment we sent goes to its connection
    /// (RFC 9293 §3.9.2.2, MUST-54; RFC 5927; see [`crate::tcp::icmp`]).
    fn icmp_tcp_input(&mut self, now: Instant, msg: &icmp::IcmpMessage<'_>, d: &Datagram<'_>) {
        let Some(q) = msg.quoted() else {
            return self.drop(DropReason::IcmpUnhandled, d);
        };
        if q.src != self.ip.addr() {
            return self.drop(DropReason::IcmpUnhandled, d);
        }
        let t = q.transport;
        let local = SocketAddr::new(q.src.into(), u16::from_be_bytes([t[0], t[1]]));
        let remote = SocketAddr::new(q.dst.into(), u16::from_be_bytes([t[2], t[3]]));
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let err = match (msg.kind(), msg.code()) {
            (icmp::DEST_UNREACHABLE, icmp::CODE_PROTOCOL_UNREACHABLE)
            | (icmp::DEST_UNREACHABLE, icmp::CODE_PORT_UNREACHABLE) => IcmpError::Hard,
            (icmp::DEST_UNREACHABLE, icmp::CODE_FRAGMENTATION_NEEDED) => {
                let rest = msg.rest_of_header();
                IcmpError::FragmentationNeeded(u16::from_be_bytes([rest[2], rest[3]]))
            }
            (icmp::DEST_UNREACHABLE, 0) => IcmpError::NetUnreachable,
            (icmp::DEST_UNREACHABLE, _) => IcmpError::HostUnreachable,
            _ => IcmpError::Transient,
        };
        let mtu = self.ip.mtu();
        self.tcp.on_icmp(now, (local, remote), seq, err, mtu);
    }

    /// Passes a Destination Unreachable about a datagram we sent to the socket
    /// that sent it, when that socket is connected to the unreachable peer.
    fn icmp_unreachable_input(&mut self, msg: &icmp::IcmpMessage<'_>, d: &Datagram<'_>) {
        let Some(q) = msg.quoted() else {
            return self.drop(DropReason::IcmpUnhandled, d);
        };
        if q.src != self.ip.addr() || q.protocol != udp::PROTOCOL {
            return self.drop(DropReason::IcmpUnhandled, d);
        }
        let src_port = u16::from_be_bytes([q.transport[0], q.transport[1]]);
        let dst_port = u16::from_be_bytes([q.transport[2], q.transport[3]]);
        let peer = SocketAddr::new(q.dst.into(), dst_port);
        let error = match msg.code() {
            icmp::CODE_PORT_UNREACHABLE | icmp::CODE_PROTOCOL_UNREACHABLE => {
                std::io::ErrorKind::ConnectionRefused
            }
            0 => std::io::ErrorKind::NetworkUnreachable,
            _ => std::io::ErrorKind::HostUnreachable,
        };
        if !self.udp_report(peer, src_port, error) {
            self.drop(DropReason::IcmpUnhandled, d);
        }
    }

    fn udp_input(&mut self, now: Instant, d: &Datagram<'_>) {
        let verify = !d.checksum_trusted;
        let dgram = match udp::UdpDatagram::parse_with(d.src, d.dst, &d.payload, verify) {
            Ok(u) => u,
            Err(reason) => return self.drop(reason, d),
        };
        let from = SocketAddr::new(d.src.into(), dgram.src_port);
        if !self.udp_deliver(from, dgram.dst_port, dgram.payload) {
            self.drop(DropReason::UdpNoSocket, d);
            // RFC 1122 §4.1.3.1: a datagram for a port with no listener
            // SHOULD get Port Unreachable — but never for broadcasts
            // (RFC 1122 §3.2.2).
            if !d.broadcast {
                self.send_unreachable(now, icmp::CODE_PORT_UNREACHABLE, d);
            }
        }
    }

    fn send_unreachable(&mut self, now: Instant, code: u8, d: &Datagram<'_>) {
        if d.broadcast {
            return;
        }
        if !self.icmp_limit.allow(now) {
            self.stats.icmp_rate_limited += 1;
            return;
        }
        let mut msg = std::mem::take(&mut self.scratch);
        // A datagram whose checksum the device vouched for may carry only
        // a partial sum (offload); quote it as it would be on a wire.
        let completed;
        let payload: &[u8] = if d.checksum_trusted {
            let mut whole = [&d.header[..], &d.payload[..]].concat();
            gso::complete_checksum(&mut whole);
            completed = whole;
            &completed[d.header.len()..]
        } else {
            &d.payload
        };
        ip_icmp::error(icmp::DEST_UNREACHABLE, code, &d.header, payload, &mut msg);
        self.stats.icmp_unreachables_sent += 1;
        self.transmit(d.src, PROTO_ICMP, &msg, IpOptions::default());
        self.scratch = msg;
    }

    fn transmit(&mut self, dst: Ipv4Addr, protocol: u8, payload: &[u8], opts: IpOptions) {
        let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
        self.ip
            .output(dst, protocol, payload, opts, &mut self.stats, &mut |p| {
                tx_queue.push(tcp, p)
            });
    }

    /// Fires due timers.
    pub fn poll(&mut self, now: Instant) {
        self.tcp.poll(now);
        if let Some(ip6) = &mut self.ip6 {
            let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
            ip6.poll(now, &mut self.stats, &mut |p| tx_queue.push(tcp, p));
        }
        let mut expired = Vec::new();
        self.ip.poll(now, &mut self.stats, &mut |header, first| {
            expired.push((header.to_vec(), first.to_vec()));
        });
        for (header, first) in expired {
            // RFC 1122 §3.3.2: when reassembly times out after fragment zero
            // arrived, an ICMP Time Exceeded (code 1) MUST be sent to the source.
            let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
            let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
            // RFC 1122 §3.2.2: no ICMP error about a datagram sent to a
            // broadcast (or multicast) address.
            if dst != self.ip.addr() {
                continue;
            }
            // RFC 1122 §3.2.2: nor about an ICMP error message.
            let icmp_error = matches!(first.first(), Some(3 | 4 | 5 | 11 | 12));
            if header[9] == PROTO_ICMP && icmp_error {
                continue;
            }
            if !self.icmp_limit.allow(now) {
                self.stats.icmp_rate_limited += 1;
                continue;
            }
            let mut msg = std::mem::take(&mut self.scratch);
            ip_icmp::error(
                icmp::TIME_EXCEEDED,
                icmp::CODE_REASSEMBLY_EXCEEDED,
                &header,
                &first,
                &mut msg,
            );
            self.stats.icmp_time_exceeded_sent += 1;
            self.transmit(src, PROTO_ICMP, &msg, IpOptions::default());
            self.scratch = msg;
        }
    }

    /// When [`Interface::poll`] next has work, if ever.
    pub fn poll_at(&self) -> Option<Instant> {
        let min = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ip6 = self.ip6.as_ref().and_then(Ipv6Layer::poll_at);
        min(min(self.ip.poll_at(), self.tcp.poll_at()), ip6)
    }

    /// The next packet to write to the device (it derefs to its bytes).
    /// TCP segments get their IPv4 header written in front of them in
    /// place; only what must be fragmented is copied.
    pub fn pop_transmit(&mut self) -> Option<PacketBuf> {
        if self.tx_queue.queue.is_empty() {
            while let Some(mut seg) = self.tcp.pop_output() {
                let IpAddr::V4(dst) = seg.dst else {
                    self.transmit_tcp6(seg);
                    continue;
                };
                let stats = &mut self.stats;
                if self
                    .ip
                    .output_in_place(dst, PROTO_TCP, &mut seg.packet, seg.ip, stats)
                {
                    self.tx_queue.queue.push_back(seg.packet);
                    continue;
                }
                // TCP sets DF, so this sends one whole packet or none; the
                // device's work (a checksum to complete) goes with it.
                let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
                let meta = seg.packet.meta();
                let note = seg.packet.note();
                self.ip
                    .output(dst, PROTO_TCP, &seg.packet, seg.ip, stats, &mut |p| {
                        tx_queue.push_with(tcp, p, meta);
                        if let Some(last) = tx_queue.queue.back_mut() {
                            last.set_note(note);
                        }
                    });
                self.tcp.recycle(seg.packet);
            }
        }
        self.tx_queue.queue.pop_front()
    }

    /// Queues a TCP segment to an IPv6 peer: its IPv6 header written in
    /// front of it in place, or, for what does not fit the link (a
    /// segment cut before the MTU shrank), fragments (RFC 8200 §4.5).
    #[inline(never)]
    fn transmit_tcp6(&mut self, mut seg: crate::tcp::OutSegment) {
        let (Some(ip6), IpAddr::V6(src), IpAddr::V6(dst)) = (&mut self.ip6, seg.src, seg.dst)
        else {
            // A connection of a family the stack has no address for
            // cannot exist; nothing to send it with.
            self.stats.drop(DropReason::OutputTooBig);
            return self.tcp.recycle(seg.packet);
        };
        let stats = &mut self.stats;
        if ip6.output_in_place(src, dst, PROTO_TCP, &mut seg.packet, seg.ip, stats) {
            self.tx_queue.queue.push_back(seg.packet);
            return;
        }
        let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
        let meta = seg.packet.meta();
        if meta.gso_size > 0 {
            // Cut by the device only when whole; never fragmented.
            stats.drop(DropReason::OutputTooBig);
            return tcp.recycle(seg.packet);
        }
        ip6.output_with(src, dst, PROTO_TCP, &seg.packet, seg.ip, stats, &mut |p| {
            tx_queue.push_with(tcp, p, meta)
        });
        self.tcp.recycle(seg.packet);
    }

    /// Returns a transmitted packet's buffer for reuse.
    pub fn recycle(&mut self, packet: PacketBuf) {
        self.tcp.recycle(packet);
    }

    /// The next event for the socket layer.
    pub fn pop_event(&mut self) -> Option<Event> {
        self.events
            .pop_front()
            .or_else(|| self.tcp.pop_event().map(Event::Tcp))
    }

    /// A packet of ours that the link layer could not deliver: its next
    /// hop never answered ARP (TAP mode). As Linux does for a neighbour
    /// that fails, the socket that sent it hears "host unreachable": a
    /// connection attempt in SYN-SENT fails with `HostUnreachable`, an
    /// established connection notes it as a soft error (RFC 1122
    /// §4.2.3.9), a connected UDP socket gets the error.
    pub fn next_hop_unreachable(&mut self, now: Instant, packet: &[u8]) {
        // IPv6 has no transport to tell yet (only ICMPv6 replies go out).
        let Some(ihl) = packet
            .first()
            .filter(|b| *b >> 4 == 4)
            .map(|b| usize::from(b & 0x0f) * 4)
        else {
            return;
        };
        let (Some(proto), Some(src), Some(dst), Some(t)) = (
            packet.get(9).copied(),
            packet.get(12..16),
            packet.get(16..20),
            packet.get(ihl..ihl + 8),
        ) else {
            return;
        };
        let src = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
        let dst = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
        if src != self.ip.addr() {
            return;
        }
        let sport = u16::from_be_bytes([t[0], t[1]]);
        let dport = u16::from_be_bytes([t[2], t[3]]);
        let local = SocketAddr::new(src.into(), sport);
        let remote = SocketAddr::new(dst.into(), dport);
        if proto == PROTO_TCP {
            let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            let mtu = self.ip.mtu();
            self.tcp.on_icmp(
                now,
                (local, remote),
                seq,
                IcmpError::NeighbourUnreachable,
                mtu,
            );
        } else if proto == udp::PROTOCOL {
            self.udp_report(remote, sport, std::io::ErrorKind::HostUnreachable);
        }
    }

    /// Counts a datagram the socket layer could not queue.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.stats.drop(reason);
    }

    /// Opens a UDP socket on `local`.
    pub fn udp_bind(
        &mut self,
        local: impl Into<SocketAddr>,
    ) -> Result<(SocketId, SocketAddr), UdpError> {
        self.udp.bind(local.into())
    }

    /// Sets a UDP socket's peer.
    pub fn udp_connect(
        &mut self,
        id: SocketId,
        remote: impl Into<SocketAddr>,
    ) -> Result<(), UdpError> {
        self.udp.connect(id, remote.into())
    }

    /// Closes a UDP socket.
    pub fn udp_close(&mut self, id: SocketId) {
        self.udp.close(id)
    }

    /// Sends a datagram from a UDP socket. The payload must be at most
    /// [`udp::MAX_PAYLOAD`] bytes (the socket layer checks).
    pub fn udp_send(
        &mut self,
        id: SocketId,
        to: impl Into<SocketAddr>,
        payload: &[u8],
        opts: IpOptions,
    ) -> Result<(), UdpError> {
        let to = to.into();
        let local = self.udp.local_addr(id).ok_or(UdpError::NotFound)?;
        let dst = match to.ip() {
            IpAddr::V4(dst) if local.is_ipv4() || local.ip().is_unspecified() => dst,
            IpAddr::V4(_) => return Err(UdpError::NoRoute),
            IpAddr::V6(dst) => return self.udp_send6(local, dst, to.port(), payload, opts),
        };
        let src = (self.ip.addr(), local.port());
        let mut buf = std::mem::take(&mut self.scratch);
        udp::write(&mut buf, src, (dst, to.port()), payload);
        self.stats.udp_datagrams_out += 1;
        self.transmit(dst, udp::PROTOCOL, &buf, opts);
        self.scratch = buf;
        Ok(())
    }

    /// [`Interface::udp_send`] to an IPv6 peer, from the socket's address
    /// or the one of ours that suits the peer (RFC 6724, as
    /// [`Ipv6Layer::source_for`] picks).
    fn udp_send6(
        &mut self,
        local: SocketAddr,
        dst: Ipv6Addr,
        port: u16,
        payload: &[u8],
        opts: IpOptions,
    ) -> Result<(), UdpError> {
        let Some(ip6) = &mut self.ip6 else {
            return Err(UdpError::NoRoute);
        };
        let src = match local.ip() {
            IpAddr::V6(a) if !a.is_unspecified() => a,
            IpAddr::V4(_) => return Err(UdpError::NoRoute),
            IpAddr::V6(_) => ip6.source_for(dst),
        };
        let mut buf = std::mem::take(&mut self.scratch);
        udp::write(&mut buf, (src, local.port()), (dst, port), payload);
        self.stats.udp_datagrams_out += 1;
        let (tx_queue, tcp) = (&mut self.tx_queue, &mut self.tcp);
        let stats = &mut self.stats;
        ip6.output_with(src, dst, udp::PROTOCOL, &buf, opts, stats, &mut |p| {
            tx_queue.push(tcp, p)
        });
        self.scratch = buf;
        Ok(())
    }

    // ---- TCP: the socket layer's calls, passed to the TCP layer. Segments
    // they queue are sent by `pop_transmit`; what they report arrives as
    // `Event::Tcp`. ----

    /// Opens a TCP listener on `local` (IP may be 0.0.0.0) with an accept
    /// queue of `backlog` connections.
    pub fn tcp_listen(
        &mut self,
        local: impl Into<SocketAddr>,
        backlog: usize,
    ) -> Result<ListenerId, TcpError> {
        self.tcp.listen(local.into(), backlog)
    }

    /// Closes a TCP listener; connections not yet accepted are reset.
    pub fn tcp_close_listener(&mut self, listener: ListenerId) -> Result<(), TcpError> {
        self.tcp.close_listener(listener)
    }

    /// Takes an established connection off a listener's accept queue.
    pub fn tcp_accept(&mut self, listener: ListenerId) -> Result<ConnId, TcpError> {
        self.tcp.accept(listener)
    }

    /// Starts an active open to `remote` from this interface's address and
    /// an ephemeral port; returns the connection and its local address.
    /// Completion is reported as [`TcpEvent::Connected`], or
    /// [`TcpEvent::Closed`] with `ConnectionRefused` / `TimedOut`.
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        remote: impl Into<SocketAddr>,
    ) -> Result<(ConnId, SocketAddr), TcpError> {
        let remote = remote.into();
        // MUST-46 (RFC 9293 §3.9.1.1): an active OPEN to a broadcast
        // address is an error, the subnet's directed broadcast included
        // (the TCP layer knows only the limited broadcast).
        if remote.ip() == self.ip.broadcast() {
            return Err(TcpError::InvalidInput);
        }
        // The source of our family for the peer: our IPv6 address (or the
        // link-local one for a link-local peer, RFC 6724), or IPv4's.
        let local_ip = match (remote.ip(), &self.ip6) {
            (IpAddr::V4(_), _) => IpAddr::V4(self.ip.addr()),
            (IpAddr::V6(peer), Some(ip6)) => IpAddr::V6(ip6.source_for(peer)),
            (IpAddr::V6(_), None) => return Err(TcpError::NetworkUnreachable),
        };
        let local = SocketAddr::new(local_ip, 0);
        let id = self.tcp.connect(now, local, remote)?;
        let local = self.tcp.info(id).map_or(local, |i| i.local);
        Ok((id, local))
    }

    /// Queues data on a connection; returns how much fit (0 when the send
    /// buffer is full: wait for [`TcpEvent::Writable`]).
    pub fn tcp_send(&mut self, now: Instant, id: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        self.tcp.send(now, id, data)
    }

    /// Reads a connection's data; `Ok(0)` is end of stream,
    /// `Err(WouldBlock)` means wait for [`TcpEvent::Readable`].
    pub fn tcp_recv(
        &mut self,
        now: Instant,
        id: ConnId,
        buf: &mut [u8],
    ) -> Result<usize, TcpError> {
        self.tcp.recv(now, id, buf)
    }

    /// The application queued data in the connection's shared stream: send
    /// what the windows allow.
    pub fn tcp_push(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.tcp.push(now, id)
    }

    /// The application read from the connection's shared stream: announce
    /// the larger window if it grew enough (RFC 9293 §3.8.6.2.2).
    pub fn tcp_window_update(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.tcp.window_update(now, id)
    }

    /// Half-close: FIN after the queued data; reading continues.
    pub fn tcp_shutdown_write(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.tcp.shutdown_write(now, id)
    }

    /// Releases a connection's handle: graceful close in the background
    /// (RST instead if received data was left unread).
    pub fn tcp_close(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.tcp.close(now, id)
    }

    /// Releases a connection's handle and resets the connection (RST).
    pub fn tcp_abort(&mut self, id: ConnId) -> Result<(), TcpError> {
        self.tcp.abort(id)
    }

    /// Sets a socket option on a TCP connection.
    pub fn tcp_set_option(
        &mut self,
        now: Instant,
        id: ConnId,
        opt: TcpOption,
    ) -> Result<(), TcpError> {
        self.tcp.set_option(now, id, opt)
    }

    /// Sets a socket option on a TCP listener, for the connections it
    /// accepts from now on.
    pub fn tcp_set_listener_option(
        &mut self,
        id: ListenerId,
        opt: TcpOption,
    ) -> Result<(), TcpError> {
        self.tcp.set_listener_option(id, opt)
    }

    /// `TCP_NODELAY`: `true` turns Nagle's algorithm off.
    pub fn tcp_set_nodelay(
        &mut self,
        now: Instant,
        id: ConnId,
        nodelay: bool,
    ) -> Result<(), TcpError> {
        self.tcp.set_nodelay(now, id, nodelay)
    }

    /// `SO_KEEPALIVE` with its parameters; `None` switches it off.
    pub fn tcp_set_keepalive(
        &mut self,
        now: Instant,
        id: ConnId,
        keepalive: Option<KeepaliveConfig>,
    ) -> Result<(), TcpError> {
        self.tcp.set_keepalive(now, id, keepalive)
    }

    /// A snapshot of one connection.
    pub fn tcp_info(&self, id: ConnId) -> Option<ConnInfo> {
        self.tcp.info(id)
    }

    /// Snapshots of every connection (TIME-WAIT and half-open ones
    /// included), like `ss -tni`, sorted by id.
    pub fn tcp_connections(&self) -> Vec<ConnInfo> {
        self.tcp.connections()
    }

    /// Every listener with its address and queue lengths `(syn, accept)`.
    pub fn tcp_listeners(&self) -> Vec<(ListenerId, SocketAddr, usize, usize)> {
        self.tcp.listeners()
    }

    /// The buffers and flags a connection shares with its application
    /// handle.
    pub fn tcp_stream(&self, id: ConnId) -> Option<Arc<Stream>> {
        self.tcp.stream(id)
    }

    /// Every connection's shared stream (to tell handles the stack stopped).
    pub fn tcp_streams(&self) -> impl Iterator<Item = &Arc<Stream>> + '_ {
        self.tcp.streams()
    }

    /// Checks the TCP layer's timer bookkeeping (for tests and the
    /// simulation; O(connections)).
    pub fn tcp_check_timers(&self) -> Result<(), String> {
        self.tcp.check_timers()
    }
}

fn proto_name(protocol: u8) -> &'static str {
    match protocol {
        PROTO_ICMP => "icmp",
        udp::PROTOCOL => "udp",
        PROTO_TCP => "tcp",
        _ => "ip",
    }
}

/// One of the TCP layer's counters.
type TcpCounter = fn(&crate::tcp::TcpStats) -> u64;

/// A drop reason in words, for notes on packets.
fn drop_words(reason: DropReason) -> String {
    let words = match reason {
        DropReason::BadHeaderChecksum => "bad IPv4 header checksum",
        DropReason::IcmpBadChecksum => "bad ICMP checksum",
        DropReason::UdpBadChecksum => "bad UDP checksum",
        DropReason::UdpNoSocket => "no UDP socket on the port",
        DropReason::FragmentEvicted => "an older incomplete datagram evicted to make room",
        DropReason::OutputTooBig => "the reply is larger than the MTU with DF set: not sent",
        DropReason::TcpRejected => "TCP to a broadcast address",
        DropReason::NotForUs => "not addressed to this stack",
        DropReason::BadSourceAddress => "impossible source address",
        DropReason::FragmentOverlap => "overlapping fragment (whole datagram dropped)",
        _ => "",
    };
    if words.is_empty() {
        reason.as_str().to_owned()
    } else {
        format!("{words} ({reason})")
    }
}
