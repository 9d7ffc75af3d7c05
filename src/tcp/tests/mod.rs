//! Unit tests of the TCP core: craft a segment, feed it, assert the exact
//! reply and state. Time is passed by hand.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::time::Instant;
use crate::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpOptionsRepr, TcpSegment};

use super::{ConnId, ListenerId, State, TcpConfig, TcpEvent, TcpLayer};

mod close;
mod data;
mod fuzz;
mod handshake;
mod logging;
mod pair;
mod reset;
mod timers;

/// The stack's address in these tests.
pub(super) const US: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7));
/// The peer's (the kernel's) address.
pub(super) const THEM: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(10, 0, 0, 1),
    40000,
));
/// The peer's initial sequence number.
pub(super) const PEER_ISS: u32 = 1000;

/// Small buffers so windows are easy to predict; no window scaling.
pub(super) fn cfg() -> TcpConfig {
    TcpConfig {
        send_buffer: 8192,
        recv_buffer: 8192,
        window_scaling: false,
        ..TcpConfig::default()
    }
}

pub(super) fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

pub(super) fn d_ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A header from THEM to US with `flags` ("S", "SA", "A", "PA", "FA", "R",
/// "RA"...).
pub(super) fn hdr(flags: &str, seq: u32, ack: u32) -> TcpHeaderRepr {
    TcpHeaderRepr {
        src_port: THEM.port(),
        dst_port: US.port(),
        seq,
        ack,
        flags: TcpFlags {
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            psh: flags.contains('P'),
            urg: false,
        },
        window: 8192,
        urgent: 0,
        options: TcpOptionsRepr::default(),
    }
}

/// Feeds `h` + `payload` from THEM to US.
pub(super) fn inject(l: &mut TcpLayer, now: Instant, h: TcpHeaderRepr, payload: &[u8]) {
    let mut bytes = Vec::new();
    h.emit(THEM.ip(), US.ip(), [payload, &[]], &mut bytes);
    l.on_segment(now, THEM.ip(), US.ip(), &bytes);
}

/// A parsed output segment.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Out {
    pub h: TcpHeaderRepr,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] seq={} ack={} win={} len={} opts={:?}",
            self.flags(),
            self.h.seq,
            self.h.ack,
            self.h.window,
            self.data.len(),
            self.h.options
        )
    }
}

impl Out {
    pub fn flags(&self) -> String {
        let f = self.h.flags;
        let mut s = String::new();
        for (on, c) in [
            (f.syn, 'S'),
            (f.fin, 'F'),
            (f.rst, 'R'),
            (f.psh, 'P'),
            (f.ack, 'A'),
        ] {
            if on {
                s.push(c);
            }
        }
        s
    }
}

/// Drains and parses every output segment.
pub(super) fn drain(l: &mut TcpLayer) -> Vec<Out> {
    let mut v = Vec::new();
    while let Some(o) = l.pop_output() {
        let seg = TcpSegment::parse(o.src, o.dst, &o.packet).expect("our own output parses");
        v.push(Out {
            h: seg.header,
            data: seg.payload.to_vec(),
        });
        l.recycle(o.packet);
    }
    v
}

/// Exactly one output segment.
#[track_caller]
pub(super) fn one(l: &mut TcpLayer) -> Out {
    let mut v = drain(l);
    assert_eq!(v.len(), 1, "expected one segment, got {v:?}");
    v.remove(0)
}

/// Asserts flags, seq, ack of a segment.
#[track_caller]
pub(super) fn check(o: &Out, flags: &str, seq: u32, ack: u32) {
    assert_eq!(
        (o.flags().as_str(), o.h.seq, o.h.ack),
        (flags, seq, ack),
        "segment {o:?}"
    );
}

pub(super) fn events(l: &mut TcpLayer) -> Vec<TcpEvent> {
    std::iter::from_fn(|| l.pop_event()).collect()
}

pub(super) fn state(l: &TcpLayer, id: ConnId) -> Option<State> {
    l.info(id).map(|i| i.state)
}

/// Runs timers at `now` and returns the output.
pub(super) fn tick(l: &mut TcpLayer, now: Instant) -> Vec<Out> {
    l.poll(now);
    drain(l)
}

/// An established passive connection: (layer, listener, conn, our ISS).
/// The peer's next sequence number is `PEER_ISS + 1`.
pub(super) fn server_with(config: TcpConfig) -> (TcpLayer, ListenerId, ConnId, u32) {
    let mut l = TcpLayer::new(config, [7; 16]);
    let lid = l.listen(US, 8).expect("listen");
    let mut syn = hdr("S", PEER_ISS, 0);
    syn.options.mss = Some(1460);
    inject(&mut l, Instant::ZERO, syn, b"");
    let synack = one(&mut l);
    let iss = synack.h.seq;
    inject(
        &mut l,
        Instant::ZERO,
        hdr("A", PEER_ISS + 1, iss.wrapping_add(1)),
        b"",
    );
    assert!(drain(&mut l).is_empty());
    let id = l.accept(lid).expect("accepted");
    events(&mut l);
    (l, lid, id, iss.wrapping_add(1))
}

/// [`server_with`] on [`cfg`]; returns (layer, conn, our next seq).
pub(super) fn server() -> (TcpLayer, ConnId, u32) {
    let (l, _, id, snd) = server_with(cfg());
    (l, id, snd)
}

/// Recomputes the checksum of raw segment bytes sent THEM -> US.
pub(super) fn fix_checksum(seg: &mut [u8]) {
    if seg.len() < 18 {
        return;
    }
    seg[16] = 0;
    seg[17] = 0;
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&octets4(THEM.ip()));
    add(&octets4(US.ip()));
    add(&[0, 6]);
    add(&(seg.len() as u16).to_be_bytes());
    add(seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let sum = !(sum as u16);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv4 address's bytes (these tests speak IPv4).
fn octets4(ip: std::net::IpAddr) -> [u8; 4] {
    match ip {
        std::net::IpAddr::V4(a) => a.octets(),
        std::net::IpAddr::V6(_) => panic!("an IPv4 test met an IPv6 address"),
    }
}
