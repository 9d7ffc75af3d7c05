//! A bounded record of the last TCP connections' segments, for the live
//! ladders of the HTTP status page (`GET /ladder/N`).
//!
//! The runtime hands it every IP packet it receives and sends (when the
//! record is on: [`crate::Config::recent_connections`]); it keeps the
//! headers of TCP segments only, never payloads: for each of the last
//! `connections` connections, the first [`HEAD`] segments (the handshake
//! and the start) and the last [`TAIL`] (the close), with a count of those
//! skipped in between. When a new connection would exceed the bound, the
//! one that started first is forgotten. A segment costs a header parse, a
//! look-up among at most `connections` entries, and a push.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use super::capture::{tcp_packet, Record, TcpPacket};
use super::Connection;
use crate::device::pcap::LINKTYPE_RAW;

/// Segments kept from the start of each connection.
pub const HEAD: usize = 64;
/// Segments kept from the end of each connection.
pub const TAIL: usize = 64;

/// One connection's recorded segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentConnection {
    /// Its number, unique within the record (and across shards: see
    /// [`RecentConnections::new`]).
    pub id: u64,
    /// Its first segments.
    pub head: Vec<TcpPacket>,
    /// Segments not kept, between `head` and `tail`.
    pub skipped: u64,
    /// Its last segments.
    pub tail: VecDeque<TcpPacket>,
}

impl RecentConnection {
    /// The kept segments, in order, as a connection to draw; frame
    /// numbers count every segment of the connection, so a gap shows.
    pub fn connection(&self) -> Connection {
        let mut packets: Vec<TcpPacket> = Vec::with_capacity(self.head.len() + self.tail.len());
        packets.extend(self.head.iter().cloned());
        packets.extend(self.tail.iter().cloned());
        Connection { packets }
    }

    /// Segments seen in all, kept or not.
    pub fn total(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.skipped
    }

    /// Its two endpoints, the first sender first.
    pub fn endpoints(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.head.first().map(|p| (p.src, p.dst))
    }

    fn key(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.head.first().map(|p| key(p.src, p.dst))
    }

    fn push(&mut self, mut p: TcpPacket) {
        p.frame = usize::try_from(self.total() + 1).unwrap_or(usize::MAX);
        if self.head.len() < HEAD {
            self.head.push(p);
            return;
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
            self.skipped += 1;
        }
        self.tail.push_back(p);
    }

    /// Whether `p`, a SYN without ACK, starts a new connection on this
    /// one's 4-tuple: its sender already sent a SYN with another sequence
    /// number.
    fn reopened_by(&self, p: &TcpPacket) -> bool {
        let f = p.header.flags;
        f.syn
            && !f.ack
            && self.head.iter().any(|q| {
                q.header.flags.syn
                    && !q.header.flags.ack
                    && q.src == p.src
                    && q.header.seq != p.header.seq
            })
    }
}

/// The unordered 4-tuple of a segment.
fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// The last connections' segments (see the module docs).
#[derive(Debug)]
pub struct RecentConnections {
    /// Oldest first.
    conns: VecDeque<RecentConnection>,
    max: usize,
    next_id: u64,
    /// Ids go up by this much (the number of shards), from the shard's
    /// index, so every shard's ids differ.
    id_step: u64,
}

impl RecentConnections {
    /// A record of the last `max` connections (at least one); ids start
    /// at `first_id` and go up by `id_step`.
    pub fn new(max: usize, first_id: u64, id_step: u64) -> RecentConnections {
        RecentConnections {
            conns: VecDeque::with_capacity(max.max(1)),
            max: max.max(1),
            next_id: first_id,
            id_step: id_step.max(1),
        }
    }

    /// Records `packet` (a raw IPv4 or IPv6 packet) seen at `time`; anything but
    /// a TCP segment is ignored.
    pub fn record(&mut self, time: Duration, packet: &[u8]) {
        let record = Record {
            frame: 0,
            time,
            linktype: LINKTYPE_RAW,
            data: packet,
        };
        let Some(p) = tcp_packet(&record) else {
            return;
        };
        let k = key(p.src, p.dst);
        // The newest connection on the tuple (search from the back).
        let found = self.conns.iter().rposition(|c| c.key() == Some(k));
        match found {
            Some(i) if !self.conns[i].reopened_by(&p) => self.conns[i].push(p),
            _ => {
                if self.conns.len() >= self.max {
                    self.conns.pop_front();
                }
                let mut c = RecentConnection {
                    id: self.next_id,
                    head: Vec::new(),
                    skipped: 0,
                    tail: VecDeque::new(),
                };
                self.next_id += self.id_step;
                c.push(p);
                self.conns.push_back(c);
            }
        }
    }

    /// The recorded connections, oldest first.
    pub fn snapshot(&self) -> Vec<RecentConnection> {
        self.conns.iter().cloned().collect()
    }

    /// How many connections are recorded.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::State;
    use crate::wire::tcp::{TcpFlags, TcpHeaderRepr};
    use std::net::Ipv4Addr;

    const A: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        Ipv4Addr::new(10, 0, 0, 1),
        40000,
    ));
    const B: SocketAddr =
        SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7));

    /// A raw IPv4 packet holding a TCP segment from `src` to `dst`.
    fn segment(
        src: SocketAddr,
        dst: SocketAddr,
        flags: &str,
        seq: u32,
        ack: u32,
        len: usize,
    ) -> Vec<u8> {
        let h = TcpHeaderRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq,
            ack,
            flags: TcpFlags {
                syn: flags.contains('S'),
                ack: flags.contains('A'),
                fin: flags.contains('F'),
                rst: flags.contains('R'),
                ..Default::default()
            },
            window: 1000,
            ..Default::default()
        };
        let payload = vec![0u8; len];
        let mut tcp = Vec::new();
        h.emit_with(src.ip(), dst.ip(), [&payload, &[]], false, &mut tcp);
        let total = 20 + tcp.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&octets4(src.ip()));
        ip.extend_from_slice(&octets4(dst.ip()));
        ip.extend_from_slice(&tcp);
        ip
    }

    fn handshake_and_close(r: &mut RecentConnections, a: SocketAddr, isn: u32) {
        let t = Duration::ZERO;
        r.record(t, &segment(a, B, "S", isn, 0, 0));
        r.record(t, &segment(B, a, "SA", 500, isn + 1, 0));
        r.record(t, &segment(a, B, "A", isn + 1, 501, 0));
        r.record(t, &segment(a, B, "FA", isn + 1, 501, 0));
        r.record(t, &segment(B, a, "FA", 501, isn + 2, 0));
        r.record(t, &segment(a, B, "A", isn + 2, 502, 0));
    }

    #[test]
    fn a_connection_is_recorded_and_drawn_with_both_sides_states() {
        let mut r = RecentConnections::new(16, 1, 1);
        handshake_and_close(&mut r, A, 100);
        r.record(Duration::ZERO, &[0x45, 0, 0]); // not a segment: ignored
        let all = r.snapshot();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, 1);
        assert_eq!(all[0].total(), 6);
        assert_eq!(all[0].endpoints(), Some((A, B)));
        let ladder = all[0].connection().ladder();
        assert_eq!(
            ladder.states(crate::ladder::Side::Left).last(),
            Some(&State::TimeWait)
        );
        assert_eq!(
            ladder.states(crate::ladder::Side::Right).last(),
            Some(&State::Closed)
        );
    }

    #[test]
    fn the_oldest_connection_is_evicted_and_ids_step_per_shard() {
        let mut r = RecentConnections::new(2, 1, 2);
        for port in 1..=3u16 {
            handshake_and_close(&mut r, SocketAddr::from((A.ip(), port)), 7);
        }
        let ids: Vec<u64> = r.snapshot().iter().map(|c| c.id).collect();
        assert_eq!(ids, [3, 5]);
        let ports: Vec<u16> = r
            .snapshot()
            .iter()
            .filter_map(|c| c.endpoints())
            .map(|(a, _)| a.port())
            .collect();
        assert_eq!(ports, [2, 3]);
    }

    #[test]
    fn segments_are_bounded_to_head_and_tail_and_a_new_syn_starts_a_new_connection() {
        let mut r = RecentConnections::new(4, 1, 1);
        let t = Duration::ZERO;
        r.record(t, &segment(A, B, "S", 1, 0, 0));
        for i in 0..1000u32 {
            r.record(t, &segment(A, B, "A", 2 + i * 10, 1, 10));
        }
        let c = &r.snapshot()[0];
        assert_eq!((c.head.len(), c.tail.len()), (HEAD, TAIL));
        assert_eq!(c.total(), 1001);
        assert_eq!(c.skipped, 1001 - (HEAD + TAIL) as u64);
        // Frame numbers count every segment: the last is 1001.
        assert_eq!(c.tail.back().map(|p| p.frame), Some(1001));
        // The same tuple, a new ISN: a new connection.
        r.record(t, &segment(A, B, "S", 99_999, 0, 0));
        assert_eq!(r.len(), 2);
        // The same SYN again (a retransmission) stays in it.
        r.record(t, &segment(A, B, "S", 99_999, 0, 0));
        assert_eq!(r.len(), 2);
        assert_eq!(r.snapshot()[1].total(), 2);
    }

    /// An IPv4 address's bytes (these tests speak IPv4).
    fn octets4(ip: std::net::IpAddr) -> [u8; 4] {
        match ip {
            std::net::IpAddr::V4(a) => a.octets(),
            std::net::IpAddr::V6(_) => panic!("an IPv4 test met an IPv6 address"),
        }
    }
}
