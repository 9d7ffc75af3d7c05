//! Two layers back to back over an in-memory link with a virtual clock:
//! bulk transfer both ways and a clean close, with and without loss.

use std::collections::VecDeque;

use super::*;
use crate::tcp::{OutSegment, TcpError};

const A: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(10, 0, 0, 1),
    40000,
));
const B: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7));
const LATENCY: Duration = Duration::from_millis(5);

/// One application endpoint: sends `payload`, half-closes, reads to EOF,
/// then closes.
struct App {
    id: Option<ConnId>,
    payload: Vec<u8>,
    sent: usize,
    shut: bool,
    got: Vec<u8>,
    eof: bool,
    closed: bool,
}

impl App {
    fn new(seed: u8, len: usize) -> App {
        let payload = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        App {
            id: None,
            payload,
            sent: 0,
            shut: false,
            got: Vec::new(),
            eof: false,
            closed: false,
        }
    }

    fn step(&mut self, l: &mut TcpLayer, now: Instant) {
        let Some(id) = self.id else { return };
        if self.closed {
            return;
        }
        while self.sent < self.payload.len() {
            match l.send(now, id, &self.payload[self.sent..]) {
                Ok(0) | Err(TcpError::WouldBlock) => break,
                Ok(n) => self.sent += n,
                Err(e) => panic!("send: {e:?}"),
            }
        }
        if self.sent == self.payload.len() && !self.shut {
            l.shutdown_write(now, id).expect("shutdown");
            self.shut = true;
        }
        let mut buf = [0u8; 4096];
        while !self.eof {
            match l.recv(now, id, &mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("recv: {e:?}"),
            }
        }
        if self.eof && self.shut {
            l.close(now, id).expect("close");
            self.closed = true;
        }
    }
}

/// Runs the transfer; drops every `drop_every`-th segment (0: none).
fn run(size: usize, drop_every: usize) -> (TcpLayer, TcpLayer, Instant) {
    let config = TcpConfig {
        msl: Duration::from_millis(500),
        ..TcpConfig::default()
    };
    let mut la = TcpLayer::new(config.clone(), [1; 16]);
    let mut lb = TcpLayer::new(config, [2; 16]);
    let lid = lb.listen(B, 16).unwrap();
    let mut now = Instant::ZERO;
    let mut a = App::new(1, size);
    let mut b = App::new(2, size);
    a.id = Some(la.connect(now, A, B).unwrap());
    let mut link: VecDeque<(Instant, OutSegment)> = VecDeque::new();
    let mut count = 0usize;
    let limit = Instant::from_secs(600);
    while now < limit {
        if b.id.is_none() {
            b.id = lb.accept(lid).ok();
        }
        while la.pop_event().is_some() {}
        while lb.pop_event().is_some() {}
        a.step(&mut la, now);
        b.step(&mut lb, now);
        for l in [&mut la, &mut lb] {
            while let Some(seg) = l.pop_output() {
                count += 1;
                if drop_every != 0 && count % drop_every == 0 {
                    continue;
                }
                link.push_back((now + LATENCY, seg));
            }
        }
        let next = [link.front().map(|(t, _)| *t), la.poll_at(), lb.poll_at()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = now.max(next);
        while link.front().is_some_and(|(t, _)| *t <= now) {
            let Some((_, seg)) = link.pop_front() else {
                break;
            };
            let l = if seg.dst == A.ip() { &mut la } else { &mut lb };
            l.on_segment(now, seg.src, seg.dst, &seg.packet);
        }
        la.poll(now);
        lb.poll(now);
    }
    assert!(
        a.got == b.payload,
        "B -> A data intact ({} of {} bytes)",
        a.got.len(),
        size
    );
    assert!(
        b.got == a.payload,
        "A -> B data intact ({} of {} bytes)",
        b.got.len(),
        size
    );
    assert!(a.closed && b.closed);
    eprintln!("done at {now}: a {:?} b {:?}", la.stats(), lb.stats());
    (la, lb, now)
}

#[test]
fn one_megabyte_each_way_then_clean_close() {
    let (la, lb, now) = run(1 << 20, 0);
    assert!(la.connections().is_empty(), "{:?}", la.connections());
    assert!(lb.connections().is_empty(), "{:?}", lb.connections());
    assert_eq!(la.stats().retransmits + lb.stats().retransmits, 0);
    assert!(now < Instant::from_secs(10), "took {now}");
}

#[test]
fn one_megabyte_each_way_survives_every_seventh_segment_dropped() {
    let (la, lb, _now) = run(1 << 20, 7);
    assert!(la.connections().is_empty(), "{:?}", la.connections());
    assert!(lb.connections().is_empty(), "{:?}", lb.connections());
    assert!(la.stats().retransmits > 0 && lb.stats().retransmits > 0);
}

#[test]
fn small_transfer_survives_every_third_segment_dropped() {
    let (la, lb, _now) = run(20_000, 3);
    assert!(la.connections().is_empty() && lb.connections().is_empty());
}
