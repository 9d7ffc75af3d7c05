//! The IP-level harnesses: a whole `Interface` with a UDP echo socket, a
//! connected UDP socket and a TCP listener, fed raw packets (`ip_input`) or
//! fuzzed ICMP / UDP inside valid IPv4 (`icmp`, `udp`). Everything it
//! transmits is checked by [`check_ip_output`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tunstack::iface::{Event, Interface};
use tunstack::ip::frag::{Reassembler, ReassemblyConfig};
use tunstack::tcp::{ConnId, ListenerId, TcpError, TcpEvent};
use tunstack::time::Instant;
use tunstack::udp::SocketId;
use tunstack::wire::checksum;
use tunstack::wire::icmp::{self, IcmpMessage};
use tunstack::wire::ipv4::Ipv4Packet;
use tunstack::wire::tcp::TcpSegment;
use tunstack::wire::udp::{self, UdpDatagram};
use tunstack::Config;

use super::packets::*;
use super::*;

/// Checks one packet the interface transmitted; returns it reassembled
/// (protocol, payload) when it is whole or completes a datagram.
fn check_ip_output(
    packet: &[u8],
    mtu: usize,
    reassembler: &mut Reassembler,
    now: Instant,
) -> Option<(u8, Vec<u8>)> {
    let p = match Ipv4Packet::parse(packet) {
        Ok(p) => p,
        Err(e) => panic!("transmitted packet does not parse ({e:?}): {packet:02x?}"),
    };
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    assert_eq!(total, packet.len(), "transmitted packet carries padding");
    assert!(
        packet.len() <= mtu,
        "transmitted {} bytes on a {mtu}-byte link",
        packet.len()
    );
    assert_eq!(p.src(), US, "transmitted from a foreign address");
    let dst = p.dst();
    assert!(
        !(dst.is_broadcast() || dst.is_multicast() || dst.is_unspecified() || dst == US),
        "transmitted to {dst}"
    );
    assert!(p.ttl() > 0, "RFC 1122 §3.2.1.7: TTL 0 sent");
    let key = tunstack::ip::frag::FragKey {
        src: p.src(),
        dst,
        protocol: p.protocol(),
        id: p.id(),
    };
    if p.is_fragment() {
        assert_ne!(p.protocol(), 6, "TCP segment fragmented (TCP sends DF)");
    }
    let whole = match reassembler.push(now, key, p.frag_offset(), p.more_fragments(), p.payload()) {
        Ok(whole) => whole?,
        Err(e) => panic!("our own fragments do not reassemble: {e:?}"),
    };
    let payload = whole.payload;
    match p.protocol() {
        6 => {
            assert!(p.header().dont_fragment(), "TCP segment without DF");
            if let Err(e) = TcpSegment::parse(US, dst, &payload) {
                panic!("transmitted TCP segment does not parse: {e:?}");
            }
        }
        17 => {
            if let Err(e) = UdpDatagram::parse(US, dst, &payload) {
                panic!("transmitted UDP datagram does not parse: {e:?}");
            }
        }
        1 => {
            let msg = match IcmpMessage::parse(&payload) {
                Ok(m) => m,
                Err(e) => panic!("transmitted ICMP message does not parse: {e:?}"),
            };
            if ICMP_ERRORS.contains(&msg.kind()) {
                assert!(
                    payload.len() + 20 <= 576,
                    "RFC 1812 §4.3.2.3: ICMP error of {} bytes",
                    payload.len() + 20
                );
                // The quote is the offending datagram's header and as much
                // of its data as fits (it may have had less than 8 bytes).
                let body = msg.body();
                assert!(
                    body.len() >= 20 && body[0] >> 4 == 4,
                    "ICMP error without a quoted IPv4 header"
                );
                // RFC 1122 §3.2.2: no ICMP error about a datagram to a
                // broadcast address, so every quote is of one addressed to us.
                assert_eq!(body[16..20], US.octets(), "quote of a datagram not for us");
                // RFC 1122 §3.2.2: never an ICMP error about an ICMP error.
                let ihl = usize::from(body[0] & 0x0f) * 4;
                if body[9] == 1 {
                    if let Some(&kind) = body.get(ihl) {
                        assert!(
                            !ICMP_ERRORS.contains(&kind),
                            "RFC 1122 §3.2.2: ICMP error sent about ICMP error type {kind}"
                        );
                    }
                }
            } else {
                assert_eq!(msg.kind(), icmp::ECHO_REPLY, "unexpected ICMP type sent");
            }
        }
        other => panic!("transmitted protocol {other}"),
    }
    Some((p.protocol(), payload))
}

/// An interface with a UDP echo socket, a connected UDP socket and a TCP
/// listener that accepts, reads and closes; checks all it transmits.
pub struct IpHarness {
    iface: Interface,
    now: Instant,
    echo: SocketId,
    connected: SocketId,
    listener: ListenerId,
    conns: Vec<ConnId>,
    checker: Reassembler,
    max_reassembly: usize,
    /// Whole datagrams transmitted since the last `take_sent`.
    sent: Vec<(u8, Vec<u8>)>,
    /// Payloads delivered to each UDP socket.
    delivered: Vec<(SocketId, std::net::SocketAddr, Vec<u8>)>,
    /// ICMP errors reported to UDP sockets.
    udp_errors: Vec<(SocketId, std::io::ErrorKind)>,
}

impl Default for IpHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl IpHarness {
    /// A fresh interface at time zero.
    pub fn new() -> Self {
        // A fixed seed: the ISN secret too, so every run is reproducible.
        let config = Config {
            seed: Some(1),
            ..Config::default()
        };
        let mut iface = Interface::new(&config, MTU, 1);
        let (echo, _) = iface
            .udp_bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, UDP_ECHO_PORT))
            .expect("bind echo");
        let (connected, _) = iface
            .udp_bind(SocketAddrV4::new(US, UDP_CONNECTED_PORT))
            .expect("bind connected");
        iface
            .udp_connect(connected, SocketAddrV4::new(PEER, UDP_REMOTE_PORT))
            .expect("connect");
        let listener = iface
            .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, TCP_PORT), 4)
            .expect("listen");
        IpHarness {
            iface,
            now: Instant::ZERO,
            echo,
            connected,
            listener,
            conns: Vec::new(),
            checker: Reassembler::new(ReassemblyConfig::default()),
            max_reassembly: config.reassembly.max_bytes,
            sent: Vec::new(),
            delivered: Vec::new(),
            udp_errors: Vec::new(),
        }
    }

    /// Feeds one packet at the current time and handles the aftermath.
    pub fn receive(&mut self, packet: &[u8]) {
        self.iface.receive(self.now, packet);
        self.settle();
    }

    /// Moves time forward by `d`, running every timer at its deadline.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut rounds = 0;
        while let Some(at) = self.iface.poll_at().filter(|&t| t <= target) {
            self.now = self.now.max(at);
            self.iface.poll(self.now);
            if let Some(still) = self.iface.poll_at() {
                assert!(
                    still > self.now,
                    "poll({:?}) left a deadline at {still:?}: the runtime would spin",
                    self.now
                );
            }
            self.settle();
            rounds += 1;
            assert!(rounds < 100_000, "timers never settle");
        }
        self.now = target;
    }

    /// Acts on events like a small server, then drains and checks output.
    fn settle(&mut self) {
        let now = self.now;
        while let Some(ev) = self.iface.pop_event() {
            match ev {
                Event::UdpDatagram {
                    socket,
                    from,
                    payload,
                } => {
                    assert!(
                        socket == self.echo || socket == self.connected,
                        "datagram for unknown socket {socket:?}"
                    );
                    if socket == self.echo && payload.len() <= udp::MAX_PAYLOAD {
                        self.iface
                            .udp_send(socket, from, &payload, Default::default())
                            .expect("echo send");
                    }
                    self.delivered.push((socket, from, payload));
                }
                Event::UdpError { socket, error } => {
                    assert_eq!(socket, self.connected, "ICMP error for unconnected socket");
                    self.udp_errors.push((socket, error));
                }
                Event::Tcp(TcpEvent::Acceptable(l)) => {
                    assert_eq!(l, self.listener);
                    while let Ok(id) = self.iface.tcp_accept(l) {
                        self.conns.push(id);
                        self.read(id);
                    }
                }
                Event::Tcp(
                    TcpEvent::Readable(id) | TcpEvent::PeerClosed(id) | TcpEvent::Closed(id, _),
                ) => self.read(id),
                Event::Tcp(TcpEvent::Connected(_) | TcpEvent::Writable(_)) => {
                    panic!("event {ev:?} for a connection never opened actively")
                }
            }
        }
        while let Some(p) = self.iface.pop_transmit() {
            if let Some(whole) = check_ip_output(&p, MTU, &mut self.checker, now) {
                self.sent.push(whole);
            }
            self.iface.recycle(p);
        }
        assert!(self.iface.reassembly_bytes() <= self.max_reassembly);
    }

    /// Reads what a connection has; closes it at end of stream or error.
    fn read(&mut self, id: ConnId) {
        if !self.conns.contains(&id) {
            return;
        }
        let mut buf = [0u8; 2048];
        loop {
            match self.iface.tcp_recv(self.now, id, &mut buf) {
                Ok(0) | Err(TcpError::ConnectionReset | TcpError::TimedOut) => {
                    let _ = self.iface.tcp_close(self.now, id);
                    self.conns.retain(|c| *c != id);
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Whole datagrams transmitted so far, as (protocol, payload).
    pub fn take_sent(&mut self) -> Vec<(u8, Vec<u8>)> {
        std::mem::take(&mut self.sent)
    }
}

/// `ip_input`: the input is a sequence of records `[ctl, len_hi, len_lo,
/// packet...]`: wait `time_step((ctl & 0x3f) << 2)`, then receive `len`
/// bytes as a packet (fewer at the end). `ctl` bit 6 first recomputes the
/// transport checksum (TCP, UDP, ICMP of an unfragmented packet) and bit 7
/// the IPv4 header checksum, so that mutated headers get past validation.
/// Finally two minutes pass, so reassembly and TCP timers fire.
pub fn ip_input(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = IpHarness::new();
    while !input.is_empty() {
        let ctl = input.u8();
        let len = usize::from(input.u16());
        let mut packet = input.bytes(len).to_vec();
        fix_checksums(&mut packet, ctl & FIX_IP != 0, ctl & FIX_TRANSPORT != 0);
        h.advance(time_step((ctl & 0x3f) << 2));
        h.receive(&packet);
    }
    h.advance(Duration::from_secs(120));
}

/// `ip_input` record flag: recompute the IPv4 header checksum.
pub const FIX_IP: u8 = 0x80;
/// `ip_input` record flag: recompute the transport checksum.
pub const FIX_TRANSPORT: u8 = 0x40;

/// Recomputes the checksums of a (possibly mangled) IPv4 packet where its
/// header says where they are; leaves what does not fit alone.
fn fix_checksums(p: &mut [u8], ip: bool, transport: bool) {
    let Some(&first) = p.first() else { return };
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || ihl > p.len() {
        return;
    }
    let unfragmented = u16::from_be_bytes([p[6], p[7]]) & 0x3fff == 0;
    if transport && unfragmented {
        let total = usize::from(u16::from_be_bytes([p[2], p[3]])).clamp(ihl, p.len());
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let protocol = p[9];
        let t = &mut p[ihl..total];
        let at = match protocol {
            1 => Some(2),
            6 => Some(16),
            17 => Some(6),
            _ => None,
        };
        if let Some(at) = at.filter(|&at| t.len() >= at + 2) {
            t[at] = 0;
            t[at + 1] = 0;
            let acc = match protocol {
                1 => 0,
                _ => checksum::pseudo_header(src, dst, protocol, t.len() as u16),
            };
            let mut c = checksum::finish(checksum::sum(acc, t));
            if protocol == 17 && c == 0 {
                c = 0xffff;
            }
            t[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    if ip {
        p[10] = 0;
        p[11] = 0;
        let c = checksum::checksum(&p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// Encodes packets as an `ip_input` input, all at time zero, with `ctl`
/// flags (e.g. [`FIX_IP`] | [`FIX_TRANSPORT`]).
pub fn ip_input_records(ctl: u8, packets: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in packets {
        v.push(ctl & 0xc0);
        v.extend_from_slice(&(p.len().min(65535) as u16).to_be_bytes());
        v.extend_from_slice(&p[..p.len().min(65535)]);
    }
    v
}

/// Flag bits of the `icmp` and `udp` harnesses' first byte.
pub mod wrap {
    /// Recompute the transport checksum (otherwise keep the input's).
    pub const FIX_CHECKSUM: u8 = 0x01;
    /// Send as fragments (size from the second byte) instead of one packet.
    pub const FRAGMENT: u8 = 0x02;
    /// Address the subnet broadcast instead of the stack.
    pub const BROADCAST: u8 = 0x04;
    /// UDP only: set the length field to the datagram's length.
    pub const FIX_LENGTH: u8 = 0x08;
    /// UDP only: zero checksum ("none sent"), after any fix.
    pub const ZERO_CHECKSUM: u8 = 0x10;
}

/// Wraps `payload` in IPv4 from `PEER` and feeds it, whole or fragmented.
/// Returns whether the stack must see the datagram: it fits in IPv4 and,
/// if fragmented, in the reassembler's fragment limit.
fn wrap_and_receive(
    h: &mut IpHarness,
    flags: u8,
    frag_size: u8,
    protocol: u8,
    payload: &[u8],
) -> bool {
    let dst = if flags & wrap::BROADCAST != 0 {
        SUBNET_BROADCAST
    } else {
        US
    };
    let fits = payload.len() + 20 <= 65535;
    if flags & wrap::FRAGMENT != 0 {
        let per = usize::from(frag_size) * 8;
        let fragments = fragments_to(dst, protocol, 0x1234, payload, per);
        for p in &fragments {
            h.receive(p);
        }
        fits && fragments.len() <= ReassemblyConfig::default().max_fragments
    } else {
        h.receive(&packet_to(dst, protocol, payload));
        fits
    }
}

/// `icmp`: `[flags, frag_size, message...]` (see [`wrap`]): the message is
/// sent in a valid IPv4 packet, so it reaches ICMP input. A valid echo
/// request must get exactly one reply with the same identifier, sequence
/// and data.
pub fn icmp(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let frag_size = input.u8();
    let mut msg = input.rest().to_vec();
    if flags & wrap::FIX_CHECKSUM != 0 && msg.len() >= 4 {
        msg[2] = 0;
        msg[3] = 0;
        let c = checksum::checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let mut h = IpHarness::new();
    let arrives = wrap_and_receive(&mut h, flags, frag_size, 1, &msg);
    let sent = h.take_sent();
    let to_us = flags & wrap::BROADCAST == 0;
    if let Ok(req) = IcmpMessage::parse(&msg) {
        if req.kind() == icmp::ECHO_REQUEST && to_us && arrives {
            let replies: Vec<_> = sent
                .iter()
                .filter(|(proto, _)| *proto == 1)
                .filter_map(|(_, p)| IcmpMessage::parse(p).ok().map(|m| (m, p)))
                .filter(|(m, _)| m.kind() == icmp::ECHO_REPLY)
                .collect();
            assert_eq!(replies.len(), 1, "RFC 1122 §3.2.2.6: one echo reply");
            let (reply, bytes) = &replies[0];
            assert_eq!(bytes.len(), msg.len());
            assert_eq!(reply.rest_of_header(), req.rest_of_header());
            assert_eq!(reply.body(), req.body(), "echo reply data differs");
        }
    }
    if !to_us {
        assert!(
            sent.is_empty(),
            "answered a broadcast ICMP message: {sent:?}"
        );
    }
    h.advance(Duration::from_secs(120));
}

/// `udp`: `[flags, frag_size, datagram...]` (see [`wrap`]): the datagram
/// (header included) is sent in a valid IPv4 packet. A valid datagram to the
/// echo port must be delivered with exactly its payload and echoed.
pub fn udp(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let frag_size = input.u8();
    let mut dgram = input.rest().to_vec();
    let dst = if flags & wrap::BROADCAST != 0 {
        SUBNET_BROADCAST
    } else {
        US
    };
    if flags & wrap::FIX_LENGTH != 0 && dgram.len() >= 8 {
        let len = dgram.len().min(65535) as u16;
        dgram[4..6].copy_from_slice(&len.to_be_bytes());
    }
    if flags & wrap::FIX_CHECKSUM != 0 {
        fix_udp_checksum(&mut dgram, dst);
    }
    if flags & wrap::ZERO_CHECKSUM != 0 && dgram.len() >= 8 {
        dgram[6] = 0;
        dgram[7] = 0;
    }
    let mut h = IpHarness::new();
    let arrives = wrap_and_receive(&mut h, flags, frag_size, udp::PROTOCOL, &dgram);
    let expected = UdpDatagram::parse(PEER, dst, &dgram).ok();
    let delivered = std::mem::take(&mut h.delivered);
    assert!(delivered.len() <= 1, "one datagram delivered twice");
    if let Some((socket, from, payload)) = delivered.first() {
        let d = expected.expect("an invalid datagram was delivered");
        assert_eq!(*from, std::net::SocketAddr::from((PEER, d.src_port)));
        assert_eq!(payload.as_slice(), d.payload, "delivered payload differs");
        let port = if *socket == h.echo {
            UDP_ECHO_PORT
        } else {
            UDP_CONNECTED_PORT
        };
        assert_eq!(d.dst_port, port, "delivered to the wrong socket");
    }
    if let Some(d) = expected {
        if d.dst_port == UDP_ECHO_PORT && arrives {
            assert_eq!(delivered.len(), 1, "valid datagram to the echo port lost");
            let echoed = h
                .take_sent()
                .into_iter()
                .filter(|(proto, _)| *proto == udp::PROTOCOL)
                .count();
            assert_eq!(echoed, 1, "echo port did not answer exactly once");
        }
    }
    h.advance(Duration::from_secs(120));
}
