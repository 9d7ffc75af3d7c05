//! The in-memory link between the two stacks, with a seeded fault model.
//!
//! Each direction is a bounded queue of packets in flight, each with its
//! delivery time. A packet handed to the link may be
//!
//! - dropped because the queue is full (tail drop), or at random (loss);
//! - duplicated (both copies travel independently);
//! - corrupted: some bits of one aligned 16-bit word are flipped. A change
//!   confined to one word is always caught by the Internet checksum (the
//!   one's-complement sum changes unless the word goes 0x0000 <-> 0xFFFF,
//!   which needs all 16 bits flipped — never done here), so a correct stack
//!   must never deliver corrupted data. IPv4's header has its own checksum;
//!   IPv6's has none (RFC 8200), and only its addresses are covered, by the
//!   TCP pseudo-header: in an IPv6 packet the word is drawn from the
//!   addresses and the segment, never from the first 8 bytes (version,
//!   traffic class, flow label, payload length, next header, hop limit),
//!   where a flip may be harmless, pass unseen or draw an ICMPv6 error;
//! - delayed by a base delay, a serialization time (bandwidth) and jitter,
//!   keeping FIFO order — or reordered: held back by an extra delay that lets
//!   later packets overtake it.
//!
//! Over Ethernet ([`Link::set_medium`]) the link carries frames, and every
//! fault but corruption hits any frame, ARP and neighbour discovery
//! included (the hosts' link layers retry them). Corruption hits only
//! frames that carry TCP, and only their IP packet, with IPv6's fixed
//! fields spared as above: the bytes a checksum the stack verifies
//! covers. Flipping bits of the Ethernet header or of an ARP packet, which
//! no such checksum covers, is what the frame check sequence catches in
//! reality, and a frame dropped for it is a lost frame, which the loss
//! already models. Neighbour discovery has the ICMPv6 checksum, but its
//! frames are left whole too, so that the run can still check that a
//! stack drops exactly the corrupted TCP packets (a corrupted solicitation
//! could go up to the IP layer as some other ICMPv6 message); how the link
//! layers treat bad neighbour messages is for their unit tests and the
//! fuzzers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use tunstack::link::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, HEADER_LEN};
use tunstack::time::Instant;
use tunstack::Medium;

use super::rng::Rng;

/// The faults of one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultParams {
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a packet is duplicated.
    pub duplicate: f64,
    /// Probability that a packet (copy) is corrupted.
    pub corrupt: f64,
    /// Probability that a packet is held back so later ones overtake it.
    pub reorder: f64,
    /// Largest extra delay of a held-back packet, µs.
    pub reorder_extra_us: u64,
    /// One-way propagation delay, µs.
    pub delay_us: u64,
    /// Largest random extra delay (FIFO order is kept), µs.
    pub jitter_us: u64,
    /// Serialization rate, bytes per second (`None`: infinitely fast).
    pub rate: Option<u64>,
    /// Most packets in flight before tail drop.
    pub queue: usize,
}

impl FaultParams {
    /// No faults at all: a short, fast, perfect wire.
    pub fn perfect() -> FaultParams {
        FaultParams {
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            reorder: 0.0,
            reorder_extra_us: 0,
            delay_us: 1000,
            jitter_us: 0,
            rate: None,
            queue: 1024,
        }
    }

    /// A random fault model: about one run in eight is perfect, the others
    /// draw loss 0–20 %, duplication 0–5 %, corruption 0–5 %, reordering
    /// 0–10 %, delay 0.05–50 ms, jitter, bandwidth and queue size.
    pub fn random(rng: &mut Rng) -> FaultParams {
        let delay_us = rng.pick(&[50, 500, 2_000, 10_000, 50_000]);
        let delay_us = rng.range(delay_us / 2, delay_us);
        if rng.chance(0.125) {
            return FaultParams {
                delay_us,
                ..FaultParams::perfect()
            };
        }
        let some = |rng: &mut Rng, max: f64| {
            if rng.chance(0.3) {
                0.0
            } else {
                rng.unit() * max
            }
        };
        FaultParams {
            loss: some(rng, 0.20),
            duplicate: some(rng, 0.05),
            corrupt: some(rng, 0.05),
            reorder: some(rng, 0.10),
            reorder_extra_us: rng.range(100, 4 * delay_us + 1000),
            delay_us,
            jitter_us: if rng.chance(0.5) {
                0
            } else {
                rng.range(0, delay_us)
            },
            rate: if rng.chance(0.5) {
                None
            } else {
                // 1 Mbit/s .. 1 Gbit/s.
                Some(rng.pick(&[125_000, 1_250_000, 12_500_000, 125_000_000]))
            },
            queue: rng.pick(&[16, 64, 256, 1024]),
        }
    }
}

impl fmt::Display for FaultParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss {:.1}% dup {:.1}% corrupt {:.1}% reorder {:.1}% (+{}µs) delay {}µs jitter {}µs rate {} queue {}",
            self.loss * 100.0,
            self.duplicate * 100.0,
            self.corrupt * 100.0,
            self.reorder * 100.0,
            self.reorder_extra_us,
            self.delay_us,
            self.jitter_us,
            self.rate.map_or("∞".to_string(), |r| format!("{r}B/s")),
            self.queue
        )
    }
}

/// What happened on one direction, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Packets handed to the link.
    pub sent: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped because the queue was full.
    pub tail_dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies corrupted.
    pub corrupted: u64,
    /// Copies held back to be overtaken.
    pub reordered: u64,
    /// Copies delivered (corrupted or not).
    pub delivered: u64,
    /// Corrupted copies delivered.
    pub delivered_corrupt: u64,
    /// Deliveries that overtook a packet sent earlier.
    pub overtakes: u64,
    /// Largest number of packets in flight at once.
    pub max_in_flight: usize,
}

impl LinkCounters {
    /// Adds `other` into `self` (the maximum for `max_in_flight`).
    pub fn add(&mut self, other: &LinkCounters) {
        self.sent += other.sent;
        self.lost += other.lost;
        self.tail_dropped += other.tail_dropped;
        self.duplicated += other.duplicated;
        self.corrupted += other.corrupted;
        self.reordered += other.reordered;
        self.delivered += other.delivered;
        self.delivered_corrupt += other.delivered_corrupt;
        self.overtakes += other.overtakes;
        self.max_in_flight = self.max_in_flight.max(other.max_in_flight);
    }
}

/// A packet in flight, ordered by delivery time then send order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    corrupt: bool,
    packet: Vec<u8>,
}

/// One direction of the link.
#[derive(Debug)]
struct Direction {
    params: FaultParams,
    rng: Rng,
    queue: BinaryHeap<Reverse<InFlight>>,
    /// FIFO floor: no in-order packet is delivered before this.
    last_at: Instant,
    /// The wire is busy serializing until this.
    busy_until: Instant,
    next_order: u64,
    /// Highest send order delivered so far (to count overtakes).
    max_delivered_order: Option<u64>,
    counters: LinkCounters,
    /// Test hook: rewrite a payload byte and fix the checksums, i.e. a
    /// corruption no checksum can catch (proves the checker catches it).
    evil: bool,
    /// What the link carries: IP packets or Ethernet frames.
    medium: Medium,
}

/// What the link did with a packet, for the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delivered(Instant),
    Corrupted(Instant, usize, u16),
    Reordered(Instant),
    Lost,
    TailDropped,
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::Delivered(at) => write!(f, "-> {at}"),
            Fate::Corrupted(at, w, m) => write!(f, "-> {at} CORRUPT(byte {} ^ {m:#06x})", w * 2),
            Fate::Reordered(at) => write!(f, "-> {at} REORDERED"),
            Fate::Lost => f.write_str("DROPPED(loss)"),
            Fate::TailDropped => f.write_str("DROPPED(queue full)"),
        }
    }
}

impl Direction {
    fn new(params: FaultParams, rng: Rng) -> Direction {
        Direction {
            params,
            rng,
            queue: BinaryHeap::new(),
            last_at: Instant::ZERO,
            busy_until: Instant::ZERO,
            next_order: 0,
            max_delivered_order: None,
            counters: LinkCounters::default(),
            evil: false,
            medium: Medium::Ip,
        }
    }

    fn send(&mut self, now: Instant, packet: Vec<u8>, fates: &mut Vec<Fate>) {
        self.counters.sent += 1;
        if self.queue.len() >= self.params.queue {
            self.counters.tail_dropped += 1;
            fates.push(Fate::TailDropped);
            return;
        }
        if self.rng.chance(self.params.loss) {
            self.counters.lost += 1;
            fates.push(Fate::Lost);
            return;
        }
        let mut copies = vec![packet];
        if self.rng.chance(self.params.duplicate) {
            self.counters.duplicated += 1;
            copies.push(copies[0].clone());
        }
        // Serialization happens once, whatever the copies.
        let start = now.max(self.busy_until);
        let tx_us = self
            .params
            .rate
            .map_or(0, |r| copies[0].len() as u64 * 1_000_000 / r.max(1));
        self.busy_until = start + std::time::Duration::from_micros(tx_us);
        for mut p in copies {
            if self.queue.len() >= self.params.queue {
                self.counters.tail_dropped += 1;
                fates.push(Fate::TailDropped);
                continue;
            }
            let base = self.busy_until
                + std::time::Duration::from_micros(
                    self.params.delay_us + self.rng.range(0, self.params.jitter_us),
                );
            let (at, reordered) = if self.rng.chance(self.params.reorder) {
                self.counters.reordered += 1;
                let extra = self.rng.range(1, self.params.reorder_extra_us.max(1));
                (base + std::time::Duration::from_micros(extra), true)
            } else {
                let at = base.max(self.last_at);
                self.last_at = at;
                (at, false)
            };
            let mut corrupt = false;
            let mut fate = if reordered {
                Fate::Reordered(at)
            } else {
                Fate::Delivered(at)
            };
            // Where corruption may start: the packet on an IP link; the
            // IP packet of a frame that carries TCP (see the module docs).
            let start = match self.medium {
                Medium::Ip => Some(0),
                Medium::Ethernet => {
                    ip_offset(self.medium, &p).filter(|_| carries_tcp(self.medium, &p))
                }
            };
            // Drawn for every copy, so an IP run's draws stay what they were.
            let drawn = self.rng.chance(self.params.corrupt);
            if let Some(start) = start.filter(|&s| drawn && p.len() > s) {
                let (word, mask) = corrupt_word(&mut self.rng, &mut p[start..]);
                self.counters.corrupted += 1;
                corrupt = true;
                // The word's place in what the link carries, for the trace.
                fate = Fate::Corrupted(at, word + start / 2, mask);
            } else if self.evil {
                if let Some(start) = ip_offset(self.medium, &p) {
                    evil_rewrite(&mut p[start..]);
                }
            }
            fates.push(fate);
            let order = self.next_order;
            self.next_order += 1;
            self.queue.push(Reverse(InFlight {
                at,
                order,
                corrupt,
                packet: p,
            }));
            self.counters.max_in_flight = self.counters.max_in_flight.max(self.queue.len());
        }
    }

    fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<(Vec<u8>, bool)> {
        if self.next_at()? > now {
            return None;
        }
        let Reverse(p) = self.queue.pop()?;
        self.counters.delivered += 1;
        if p.corrupt {
            self.counters.delivered_corrupt += 1;
        }
        match self.max_delivered_order {
            Some(m) if p.order < m => self.counters.overtakes += 1,
            _ => self.max_delivered_order = Some(p.order),
        }
        Some((p.packet, p.corrupt))
    }
}

/// The 16-bit words at the start of an IPv6 header that no checksum
/// covers, or not reliably (RFC 8200 §3: version, traffic class, flow
/// label; payload length, where a smaller value truncates the segment the
/// TCP checksum is computed over; next header, where another value draws a
/// Parameter Problem; hop limit). The addresses after them are in the TCP
/// pseudo-header (RFC 8200 §8.1).
const IPV6_UNCHECKED_WORDS: usize = 4;

/// Flips the bits of `mask` (never all 16) in one aligned 16-bit word of
/// `p` that a checksum covers; returns the word index and mask.
fn corrupt_word(rng: &mut Rng, p: &mut [u8]) -> (usize, u16) {
    let words = p.len().div_ceil(2);
    // One draw either way, so an IPv4 run's draws stay what they were.
    let first = match version(p) {
        Some(6) if words > IPV6_UNCHECKED_WORDS => IPV6_UNCHECKED_WORDS,
        _ => 0,
    };
    let word = first + rng.below((words - first) as u64) as usize;
    let mut mask = rng.range(1, 0xFFFE) as u16;
    let hi = word * 2;
    if hi + 1 >= p.len() {
        // The odd last byte, padded with zero in the sum: flip only it.
        mask &= 0xFF00;
        if mask == 0 {
            mask = 0x0100;
        }
    }
    p[hi] ^= (mask >> 8) as u8;
    if hi + 1 < p.len() {
        p[hi + 1] ^= mask as u8;
    }
    (word, mask)
}

/// Rewrites the last payload byte of a TCP segment with data and fixes the
/// TCP checksum: the corruption a checksum cannot see.
fn evil_rewrite(p: &mut [u8]) {
    let Some(seg) = parse(p) else { return };
    let Some(at) = tcp_at(p) else { return };
    if seg.len == 0 {
        return;
    }
    let last = p.len() - 1;
    p[last] ^= 0x5a;
    p[at.tcp + 16] = 0;
    p[at.tcp + 17] = 0;
    let sum = tcp_checksum(&p[at.src.clone()], &p[at.dst.clone()], &p[at.tcp..]);
    p[at.tcp + 16..at.tcp + 18].copy_from_slice(&sum.to_be_bytes());
}

/// The TCP checksum over the pseudo-header of either family (RFC 9293
/// §3.1 for IPv4, RFC 8200 §8.1 for IPv6: the same sum, with 4- or
/// 16-byte addresses) and `tcp`.
fn tcp_checksum(src: &[u8], dst: &[u8], tcp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let hi = u32::from(c[0]) << 8;
            let lo = c.get(1).map_or(0, |&x| u32::from(x));
            sum += hi | lo;
        }
    };
    add(src);
    add(dst);
    add(&[0, 6]);
    add(&(tcp.len() as u16).to_be_bytes());
    add(tcp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The IP version of a packet (its first nibble).
pub fn version(p: &[u8]) -> Option<u8> {
    p.first().map(|b| b >> 4)
}

/// The EtherType of an Ethernet frame.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]]))
}

/// Where the IP packet starts in what a link of `medium` carries: at once
/// on an IP link; after the Ethernet header in a frame of EtherType IPv4
/// or IPv6; `None` in any other frame (ARP).
pub fn ip_offset(medium: Medium, p: &[u8]) -> Option<usize> {
    match medium {
        Medium::Ip => Some(0),
        Medium::Ethernet => matches!(ethertype(p), Some(ETHERTYPE_IPV4 | ETHERTYPE_IPV6))
            .then_some(HEADER_LEN)
            .filter(|&at| p.len() >= at),
    }
}

/// The IP packet in what a link of `medium` carries, if there is one.
pub fn ip_packet(medium: Medium, p: &[u8]) -> Option<&[u8]> {
    p.get(ip_offset(medium, p)?..)
}

/// Whether what a link of `medium` carries is a TCP segment (in a frame
/// or not).
pub fn carries_tcp(medium: Medium, p: &[u8]) -> bool {
    ip_packet(medium, p).and_then(tcp_at).is_some()
}

/// Where a TCP packet's pieces are: the addresses and the TCP header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TcpAt {
    src: std::ops::Range<usize>,
    dst: std::ops::Range<usize>,
    tcp: usize,
}

/// Locates the TCP header of an IPv4 packet (after its IHL) or an IPv6 one
/// (right after the fixed header: the stacks here send no extension
/// headers); `None` for anything else.
fn tcp_at(p: &[u8]) -> Option<TcpAt> {
    let at = match version(p)? {
        4 if p.get(9) == Some(&6) => TcpAt {
            src: 12..16,
            dst: 16..20,
            tcp: usize::from(p[0] & 0x0f) * 4,
        },
        6 if p.get(6) == Some(&6) => TcpAt {
            src: 8..24,
            dst: 24..40,
            tcp: 40,
        },
        _ => return None,
    };
    (p.len() >= at.dst.end && p.len() >= at.tcp + 20).then_some(at)
}

/// The fields of a TCP/IP packet the trace shows.
#[derive(Debug, Clone, Copy)]
pub struct SegSummary {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub len: usize,
}

/// Parses the TCP header of an IPv4 or IPv6 packet (no validation beyond
/// bounds).
pub fn parse(p: &[u8]) -> Option<SegSummary> {
    let t = p.get(tcp_at(p)?.tcp..)?;
    let be16 = |i: usize| u16::from_be_bytes([t[i], t[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([t[i], t[i + 1], t[i + 2], t[i + 3]]);
    let doff = usize::from(t[12] >> 4) * 4;
    Some(SegSummary {
        src_port: be16(0),
        dst_port: be16(2),
        seq: be32(4),
        ack: be32(8),
        flags: t[13],
        window: be16(14),
        len: t.len().saturating_sub(doff),
    })
}

/// A tcpdump-like one-line description of what a link of `medium`
/// carries: a packet, or a frame (its IP packet, or its ARP packet).
pub fn describe_on(medium: Medium, p: &[u8]) -> String {
    if medium == Medium::Ip {
        return describe(p);
    }
    let (Some(dst), Some(src), Some(t)) = (p.get(0..6), p.get(6..12), ethertype(p)) else {
        return format!("runt frame, {} bytes", p.len());
    };
    let what = match t {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => describe(&p[HEADER_LEN..]),
        ETHERTYPE_ARP => describe_arp(&p[HEADER_LEN..]),
        t => format!("EtherType {t:#06x}, {} bytes", p.len()),
    };
    format!("{} > {}: {what}", mac(src), mac(dst))
}

/// A MAC address's bytes, written as usual.
fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An ARP packet (RFC 826; Ethernet and IPv4 only), described.
fn describe_arp(a: &[u8]) -> String {
    let ip = |b: &[u8]| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
    if a.len() < 28 {
        return format!("ARP, {} bytes", a.len());
    }
    match u16::from_be_bytes([a[6], a[7]]) {
        1 => format!("ARP who-has {} tell {}", ip(&a[24..28]), ip(&a[14..18])),
        2 => format!("ARP reply {} is-at {}", ip(&a[14..18]), mac(&a[8..14])),
        op => format!("ARP op {op}"),
    }
}

/// A tcpdump-like one-line description of a packet.
pub fn describe(p: &[u8]) -> String {
    let Some(s) = parse(p) else {
        return match version(p) {
            Some(6) if p.len() >= 64 && p[6] == 58 && matches!(p[40], 135 | 136) => {
                let target = <[u8; 16]>::try_from(&p[48..64])
                    .map(std::net::Ipv6Addr::from)
                    .map_or(String::new(), |t| t.to_string());
                let src = <[u8; 16]>::try_from(&p[8..24])
                    .map(std::net::Ipv6Addr::from)
                    .map_or(String::new(), |t| t.to_string());
                if p[40] == 135 {
                    format!("ND who-has {target} tell {src}")
                } else {
                    format!("ND advert {target} (from {src})")
                }
            }
            Some(6) if p.len() >= 40 => {
                format!(
                    "non-TCP IPv6 packet (next header {}), {} bytes",
                    p[6],
                    p.len()
                )
            }
            _ => format!("non-TCP packet, {} bytes", p.len()),
        };
    };
    let mut flags = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
    ] {
        if s.flags & bit != 0 {
            flags.push(c);
        }
    }
    format!(
        "{}>{} [{flags}] seq={} ack={} win={} len={}",
        s.src_port, s.dst_port, s.seq, s.ack, s.window, s.len
    )
}

/// The link: direction 0 carries host 0 → host 1, direction 1 the reverse.
#[derive(Debug)]
pub struct Link {
    dirs: [Direction; 2],
    fates: Vec<Fate>,
}

impl Link {
    /// A link with `params[d]` on direction `d`.
    pub fn new(params: [FaultParams; 2], rng: &mut Rng) -> Link {
        let [p0, p1] = params;
        Link {
            dirs: [
                Direction::new(p0, rng.fork(0x11)),
                Direction::new(p1, rng.fork(0x22)),
            ],
            fates: Vec::new(),
        }
    }

    /// What the link carries: IP packets (the default) or Ethernet frames.
    pub fn set_medium(&mut self, medium: Medium) {
        for d in &mut self.dirs {
            d.medium = medium;
        }
    }

    /// Test hook: make every direction rewrite payload bytes undetectably.
    pub fn set_evil(&mut self, evil: bool) {
        for d in &mut self.dirs {
            d.evil = evil;
        }
    }

    /// Hands a packet to direction `dir`; returns what became of it (one
    /// entry per copy).
    pub fn send(&mut self, now: Instant, dir: usize, packet: Vec<u8>) -> &[Fate] {
        self.fates.clear();
        self.dirs[dir].send(now, packet, &mut self.fates);
        &self.fates
    }

    /// The next delivery time on any direction.
    pub fn next_at(&self) -> Option<Instant> {
        match (self.dirs[0].next_at(), self.dirs[1].next_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next packet due on `dir` at `now`, with whether it was corrupted.
    pub fn pop_due(&mut self, dir: usize, now: Instant) -> Option<(Vec<u8>, bool)> {
        self.dirs[dir].pop_due(now)
    }

    /// Packets in flight on `dir`.
    pub fn in_flight(&self, dir: usize) -> usize {
        self.dirs[dir].queue.len()
    }

    /// The queue bound of `dir`.
    pub fn capacity(&self, dir: usize) -> usize {
        self.dirs[dir].params.queue
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.dirs.iter().all(|d| d.queue.is_empty())
    }

    /// The counters of `dir`.
    pub fn counters(&self, dir: usize) -> LinkCounters {
        self.dirs[dir].counters
    }
}
