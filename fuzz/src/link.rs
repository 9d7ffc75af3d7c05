//! The link-level harness (TAP mode): an `EthernetLink` in front of a whole
//! `Interface`, fed Ethernet frames and asked to send packets to many
//! neighbours, with a virtual clock. Everything it transmits must be a
//! well-formed frame from our MAC, the neighbour cache stays within its
//! bound, and no timer stays due after `poll`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tunstack::iface::Interface;
use tunstack::link::arp::ArpPacket;
use tunstack::link::ethernet::{
    EthernetHeader, MacAddr, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN,
};
use tunstack::link::{EthernetLink, NeighbourConfig};
use tunstack::time::Instant;
use tunstack::Config;

use super::*;

/// The stack's MAC in the harness.
pub const US_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
/// The peer's MAC.
pub const PEER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
/// A small cache, so that eviction is reached.
const CACHE: usize = 8;

/// `ethernet` record kinds (`ctl >> 6`).
pub const RAW_FRAME: u8 = 0;
/// The body is an IPv4 packet, framed to us from the peer.
pub const IPV4_TO_US: u8 = 1;
/// The body is an ARP packet, broadcast by the peer.
pub const ARP_BROADCAST: u8 = 2;
/// The stack sends a UDP datagram to 10.0.0.`body[0]`.
pub const SEND_TO: u8 = 3;

struct LinkHarness {
    link: EthernetLink,
    iface: Interface,
    now: Instant,
}

impl LinkHarness {
    fn new() -> Self {
        let config = Config {
            seed: Some(1),
            ..Config::default()
        };
        let mut iface = Interface::new(&config, MTU, 1);
        iface
            .tcp_listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, TCP_PORT), 4)
            .expect("listen");
        let link = EthernetLink::new(
            US_MAC,
            US,
            24,
            NeighbourConfig {
                capacity: CACHE,
                ..NeighbourConfig::default()
            },
        );
        LinkHarness {
            link,
            iface,
            now: Instant::ZERO,
        }
    }

    fn receive(&mut self, frame: &[u8]) {
        if let Some(ip) = self.link.receive(self.now, frame) {
            let packet = frame.get(ip).expect("the range lies in the frame");
            self.iface.receive(self.now, packet);
        }
        self.settle();
    }

    fn send_to(&mut self, host: u8) {
        let (socket, _) = match self.iface.udp_bind(SocketAddrV4::new(US, 0)) {
            Ok(s) => s,
            Err(_) => return,
        };
        let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), 9);
        let _ = self
            .iface
            .udp_send(socket, to, b"to a neighbour", Default::default());
        self.iface.udp_close(socket);
        self.settle();
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        let mut rounds = 0;
        loop {
            let next = match (self.link.poll_at(), self.iface.poll_at()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(at) = next.filter(|&t| t <= target) else {
                break;
            };
            self.now = self.now.max(at);
            self.link.poll(self.now);
            self.iface.poll(self.now);
            if let Some(still) = self.link.poll_at() {
                assert!(still > self.now, "the link left a deadline in the past");
            }
            self.settle();
            rounds += 1;
            assert!(rounds < 100_000, "timers never settle");
        }
        self.now = self.now.max(target);
    }

    /// Moves the interface's output through the link and checks every
    /// frame the link sends.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(p) = self.iface.pop_transmit() {
                self.link.send_ipv4(self.now, &p);
                self.iface.recycle(p);
                moved = true;
            }
            while let Some(p) = self.link.pop_unreachable() {
                self.iface.next_hop_unreachable(self.now, &p);
                moved = true;
            }
            while let Some(ev) = self.iface.pop_event() {
                drop(ev);
                moved = true;
            }
            while let Some(f) = self.link.pop_frame() {
                check_frame(&f);
                self.link.recycle(f);
            }
            if !moved {
                break;
            }
        }
        assert!(
            self.link.stats().neighbours <= CACHE as u64,
            "the neighbour cache outgrew its bound"
        );
    }
}

fn check_frame(f: &[u8]) {
    let h = EthernetHeader::parse(f).expect("a sent frame has a whole header");
    assert_eq!(h.src, US_MAC, "sent from a foreign MAC");
    assert!(h.dst != MacAddr::ZERO, "sent to the zero MAC");
    let body = &f[HEADER_LEN..];
    match h.ethertype {
        ETHERTYPE_ARP => {
            let a = ArpPacket::parse(body).expect("sent ARP parses");
            assert_eq!(
                (a.sender_mac, a.sender_ip),
                (US_MAC, US),
                "ARP sender not us"
            );
        }
        ETHERTYPE_IPV4 => {
            assert!(body.len() <= MTU, "frame payload over the MTU");
            assert_eq!(body.first().map(|b| b >> 4), Some(4), "not IPv4");
        }
        other => panic!("sent EtherType {other:#06x}"),
    }
}

fn framed(dst: MacAddr, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = EthernetHeader {
        dst,
        src: PEER_MAC,
        ethertype,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(body);
    f
}

/// `ethernet`: the input is a sequence of records `[ctl, len_hi, len_lo,
/// body...]`: wait `time_step(ctl & 0x3f)`, then by `ctl >> 6`: receive
/// the body as a raw frame ([`RAW_FRAME`]), as an IPv4 packet framed to us
/// ([`IPV4_TO_US`]), as a broadcast ARP packet ([`ARP_BROADCAST`]), or send
/// a datagram to 10.0.0.`body[0]` ([`SEND_TO`]). Finally two minutes pass,
/// so every resolution times out.
pub fn ethernet(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = LinkHarness::new();
    while !input.is_empty() {
        let ctl = input.u8();
        let len = usize::from(input.u16() & 0x07ff);
        let body = input.bytes(len);
        h.advance(time_step(ctl & 0x3f));
        match ctl >> 6 {
            RAW_FRAME => h.receive(body),
            IPV4_TO_US => h.receive(&framed(US_MAC, ETHERTYPE_IPV4, body)),
            ARP_BROADCAST => h.receive(&framed(MacAddr::BROADCAST, ETHERTYPE_ARP, body)),
            _ => h.send_to(body.first().copied().unwrap_or(3)),
        }
    }
    h.advance(Duration::from_secs(120));
}
