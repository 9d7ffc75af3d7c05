//! IPv4 fragment reassembly and fragmentation (RFC 791 §3.2, RFC 815,
//! RFC 1122 §3.3.2).
//!
//! [`Reassembler`] holds the incomplete datagrams, keyed by [`FragKey`]
//! (source, destination, protocol, identification). Each datagram is a list of
//! received fragments kept sorted by offset and never overlapping, plus the
//! total length once the last fragment (MF clear) has arrived. This is RFC 815's
//! "hole" bookkeeping turned inside out: instead of tracking the holes we track
//! the filled ranges, and the datagram is complete when the bytes held equal the
//! known total length. Fragments may arrive in any order. Memory is allocated
//! only for what has been received (one exact-size buffer per fragment); the
//! pieces are joined once, when the datagram completes.
//!
//! Input is hostile: nothing here panics on any offset, length or flag, and
//! every limit in [`ReassemblyConfig`] is enforced before anything is stored.
//! `max_bytes` bounds the payload held; the bookkeeping around it is bounded by
//! `max_datagrams × max_fragments` small records. A fragment that is malformed on
//! its own ([`FragError::TooLong`], a bad length or offset) is dropped alone; a
//! fragment that contradicts what is already held (overlap, a conflicting end,
//! too many pieces), or that cannot be stored for lack of memory, also discards
//! its whole datagram, since that datagram can no longer be completed reliably.
//!
//! The module is sans-IO: time comes in as `now`, the next deadline goes out
//! through [`Reassembler::poll_at`], and [`fragment`] hands each packet to a
//! callback instead of writing anywhere.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{IpFragOffset, Ipv4Header};

use crate::time::Instant;

/// The largest IPv4 payload: a 16-bit total length minus a minimal header.
const MAX_PAYLOAD: usize = 65535 - 20;

/// Limits of the reassembly buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Total payload bytes held across all incomplete datagrams (default 4 MiB, like Linux ipfrag_high_thresh).
    pub max_bytes: usize,
    /// How long an incomplete datagram is kept (default 30 s, like Linux ipfrag_time; RFC 1122 §3.3.2 recommends 60-120 s max).
    pub timeout: Duration,
    /// Max incomplete datagrams at once (default 256).
    pub max_datagrams: usize,
    /// Max fragments per datagram (default 128).
    pub max_fragments: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_bytes: 4 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_datagrams: 256,
            max_fragments: 128,
        }
    }
}

/// Identifies a datagram being reassembled (RFC 791: source, destination, protocol, identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number of the payload.
    pub protocol: u8,
    /// The Identification field.
    pub id: u16,
}

/// What a [`Reassembler`] keys its datagrams by: [`FragKey`] for IPv4,
/// [`super::ipv6::Frag6Key`] for IPv6. Eviction picks the source holding
/// the most.
pub trait FragmentKey: Copy + Ord + std::fmt::Debug {
    /// The sender's address.
    type Source: Copy + Ord;
    /// The sender of the datagram.
    fn source(&self) -> Self::Source;
}

impl FragmentKey for FragKey {
    type Source = Ipv4Addr;
    fn source(&self) -> Ipv4Addr {
        self.src
    }
}

/// Why a fragment (and, for some reasons, its whole datagram) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// Overlaps data already received: the whole datagram is discarded (as Linux does since 2018, and RFC 5722 for IPv6).
    Overlap,
    /// offset + length exceeds 65535 - 20 (the largest IPv4 payload). Only the fragment is dropped.
    TooLong,
    /// A non-last fragment whose length is not a multiple of 8, an offset that is
    /// not a multiple of 8, or an empty fragment (only the fragment is dropped);
    /// or a fragment past the already-known end, or a second, different "last"
    /// fragment (the whole datagram is discarded).
    Inconsistent,
    /// The datagram would exceed `max_fragments`: whole datagram discarded.
    TooManyFragments,
    /// Accepting it would exceed `max_bytes` or `max_datagrams` (after expiring
    /// old ones). The datagram it belonged to, if any, is discarded: it could
    /// never complete, and holding it would only starve the others.
    NoMemory,
}

/// A complete datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled<K = FragKey> {
    /// The datagram's identity.
    pub key: K,
    /// The reassembled IP payload.
    pub payload: Vec<u8>,
}

/// One received fragment.
#[derive(Debug)]
struct Segment {
    offset: usize,
    data: Vec<u8>,
}

impl Segment {
    /// Cannot overflow: `offset + len <= MAX_PAYLOAD` was checked on entry.
    fn end(&self) -> usize {
        self.offset + self.data.len()
    }
}

/// Where a new fragment goes in a datagram.
enum Placement {
    /// An exact copy of a fragment already held.
    Duplicate,
    /// Insert at this index of `segments`.
    Insert(usize),
}

/// An incomplete datagram.
#[derive(Debug)]
struct Incomplete {
    /// Sorted by offset, never overlapping, never empty.
    segments: Vec<Segment>,
    /// Known once the last fragment (MF clear) has arrived.
    total_len: Option<usize>,
    /// Payload bytes held (sum of the segments' lengths).
    received: usize,
    deadline: Instant,
}

impl Incomplete {
    /// Decides where `[offset, end)` goes, or why it cannot be taken: it
    /// contradicts what is held, or needs more than `room` bytes.
    fn place(
        &self,
        offset: usize,
        end: usize,
        more: bool,
        max_fragments: usize,
        room: usize,
    ) -> Result<Placement, FragError> {
        let held_end = self.segments.last().map_or(0, Segment::end);
        if more {
            // A middle fragment past the end the last fragment announced.
            if self.total_len.is_some_and(|total| end > total) {
                return Err(FragError::Inconsistent);
            }
        } else if self.total_len.is_some_and(|total| total != end) || held_end > end {
            // A second, different last fragment, or data held past this end.
            return Err(FragError::Inconsistent);
        }
        // The first held segment that ends after `offset` is the only one that
        // can overlap us; everything before it ends at or before `offset`.
        let idx = self.segments.partition_point(|s| s.end() <= offset);
        if let Some(next) = self.segments.get(idx).filter(|next| next.offset < end) {
            if next.offset != offset || next.end() != end {
                // RFC 5722 §4 (applied to IPv4, as Linux does): any overlap
                // discards the whole datagram.
                return Err(FragError::Overlap);
            }
            // Same range: a retransmitted duplicate, if it agrees on MF.
            let held_is_last = self.total_len == Some(end);
            if held_is_last == more {
                return Err(FragError::Inconsistent);
            }
            return Ok(Placement::Duplicate);
        }
        if self.segments.len() >= max_fragments {
            return Err(FragError::TooManyFragments);
        }
        if end - offset > room {
            return Err(FragError::NoMemory);
        }
        Ok(Placement::Insert(idx))
    }

    /// Joins the segments of a complete datagram.
    fn assemble(self) -> Vec<u8> {
        let total = self.received;
        let mut segments = self.segments.into_iter();
        let mut payload = segments.next().map(|s| s.data).unwrap_or_default();
        payload.reserve_exact(total.saturating_sub(payload.len()));
        for segment in segments {
            payload.extend_from_slice(&segment.data);
        }
        debug_assert_eq!(payload.len(), total);
        payload
    }

    /// The payload of fragment zero, if it has arrived.
    fn first_fragment(&self) -> Option<&[u8]> {
        self.segments
            .first()
            .filter(|s| s.offset == 0)
            .map(|s| s.data.as_slice())
    }
}

/// Reassembles fragmented datagrams (see the module docs), IPv4's by
/// default, IPv6's with [`super::ipv6::Frag6Key`].
#[derive(Debug)]
pub struct Reassembler<K = FragKey> {
    config: ReassemblyConfig,
    /// The largest payload a datagram may have.
    max_payload: usize,
    /// A `BTreeMap` so that iteration (expiry order) is deterministic.
    datagrams: BTreeMap<K, Incomplete>,
    /// Payload bytes held across all datagrams.
    bytes: usize,
    /// Incomplete datagrams evicted to make room, not yet taken by
    /// [`Reassembler::take_evicted`].
    evicted: u64,
}

impl Reassembler {
    /// An empty reassembler of IPv4 datagrams with these limits.
    pub fn new(config: ReassemblyConfig) -> Reassembler {
        Reassembler::with_max_payload(config, MAX_PAYLOAD)
    }
}

impl<K: FragmentKey> Reassembler<K> {
    /// An empty reassembler with these limits, for datagrams of at most
    /// `max_payload` bytes.
    pub fn with_max_payload(config: ReassemblyConfig, max_payload: usize) -> Reassembler<K> {
        Reassembler {
            config,
            max_payload,
            datagrams: BTreeMap::new(),
            bytes: 0,
            evicted: 0,
        }
    }

    /// Feeds one fragment. `offset` is in bytes (fragment offset field × 8), `more` is the MF flag, `payload` the fragment's IP payload. Expires timed-out datagrams first. Returns Ok(Some) when the datagram is complete (and forgets it), Ok(None) when more fragments are needed.
    ///
    /// An exact duplicate of a fragment already held (same offset, length and
    /// MF) returns `Ok(None)` and changes nothing; the first copy is kept.
    pub fn push(
        &mut self,
        now: Instant,
        key: K,
        offset: usize,
        more: bool,
        payload: &[u8],
    ) -> Result<Option<Reassembled<K>>, FragError> {
        self.expire(now);
        let len = payload.len();
        // RFC 791 §3.1: Total Length is 16 bits, so no payload byte lies past 65515.
        let end = match offset.checked_add(len) {
            Some(end) if end <= self.max_payload => end,
            _ => return Err(FragError::TooLong),
        };
        // RFC 791 §3.2: offsets count 8-octet blocks, and every fragment but the
        // last carries a whole number of them (NFB); empty fragments carry nothing.
        if offset % 8 != 0 || (more && len % 8 != 0) || (len == 0 && (more || offset != 0)) {
            return Err(FragError::Inconsistent);
        }
        if !self.datagrams.contains_key(&key) {
            if offset == 0 && !more {
                // Not fragmented at all: complete as it stands.
                let payload = payload.to_vec();
                return Ok(Some(Reassembled { key, payload }));
            }
            // Full: make room by evicting an old incomplete datagram rather
            // than refusing every new one until the timeout (which would let
            // 256 bogus first fragments block all reassembly for 30 s).
            while self.datagrams.len() >= self.config.max_datagrams {
                if !self.evict_one(&key) {
                    log::debug!("frag: {key:?}: too many datagrams, fragment dropped");
                    return Err(FragError::NoMemory);
                }
            }
        }
        while self.config.max_bytes.saturating_sub(self.bytes) < len && self.evict_one(&key) {}
        // RFC 1122 §3.3.2: a fixed reassembly timeout, started by the first
        // fragment; not taken from the TTL, nor extended by later fragments.
        let deadline = now + self.config.timeout;
        let datagram = self.datagrams.entry(key).or_insert_with(|| Incomplete {
            segments: Vec::new(),
            total_len: None,
            received: 0,
            deadline,
        });
        let room = self.config.max_bytes.saturating_sub(self.bytes);
        let idx = match datagram.place(offset, end, more, self.config.max_fragments, room) {
            Ok(Placement::Duplicate) => return Ok(None),
            Ok(Placement::Insert(idx)) => idx,
            Err(err) => {
                log::debug!("frag: {key:?} [{offset}, {end}): {err:?}, datagram discarded");
                self.discard(&key);
                return Err(err);
            }
        };
        // `to_vec` allocates exactly `len` bytes (Vec::with_capacity's guarantee),
        // so `bytes` counts the real allocation.
        let data = payload.to_vec();
        datagram.segments.insert(idx, Segment { offset, data });
        datagram.received += len;
        self.bytes += len;
        if !more {
            datagram.total_len = Some(end);
        }
        // Segments never overlap and all lie below the total length, so holding
        // that many bytes means there is no hole left (RFC 815).
        if datagram.total_len != Some(datagram.received) {
            return Ok(None);
        }
        let payload = self.datagrams.remove(&key).map(Incomplete::assemble);
        let payload = payload.unwrap_or_default();
        self.bytes -= payload.len();
        Ok(Some(Reassembled { key, payload }))
    }

    /// Evicts one incomplete datagram other than `keep`: the oldest of the
    /// source holding the most, so one flooding source cannot push out
    /// everyone else's (Linux's evictor frees old queues the same way, by
    /// age). False when there is nothing else to evict.
    fn evict_one(&mut self, keep: &K) -> bool {
        let mut per_source: BTreeMap<K::Source, usize> = BTreeMap::new();
        for k in self.datagrams.keys().filter(|k| *k != keep) {
            *per_source.entry(k.source()).or_default() += 1;
        }
        let Some(top) = per_source
            .iter()
            .max_by_key(|(src, n)| (**n, std::cmp::Reverse(**src)))
            .map(|(src, _)| *src)
        else {
            return false;
        };
        let victim = self
            .datagrams
            .iter()
            .filter(|(k, _)| k.source() == top && *k != keep)
            .min_by_key(|(k, d)| (d.deadline, **k))
            .map(|(k, _)| *k);
        match victim {
            Some(v) => {
                log::debug!("frag: {v:?} evicted to make room");
                self.discard(&v);
                self.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// How many incomplete datagrams were evicted to make room since the
    /// last call.
    pub fn take_evicted(&mut self) -> u64 {
        std::mem::take(&mut self.evicted)
    }

    /// Forgets one datagram and releases its memory.
    fn discard(&mut self, key: &K) {
        if let Some(datagram) = self.datagrams.remove(key) {
            self.bytes -= datagram.received;
        }
    }

    /// Drops datagrams whose timer has run out; returns how many were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.expire_with(now, &mut |_, _| {})
    }

    /// Like [`expire`](Self::expire), and calls `on_expired` for each datagram
    /// dropped, with the payload of its fragment zero if that arrived.
    ///
    /// RFC 1122 §3.3.2: when the reassembly timer expires and fragment zero was
    /// received, the IP layer must send ICMP Time Exceeded (code 1) to the
    /// source; this gives it what it needs. `push` expires silently, so an IP
    /// layer that sends those messages calls this at [`poll_at`](Self::poll_at),
    /// before pushing anything newer.
    pub fn expire_with(
        &mut self,
        now: Instant,
        on_expired: &mut dyn FnMut(K, Option<&[u8]>),
    ) -> usize {
        let bytes = &mut self.bytes;
        let mut dropped = 0;
        self.datagrams.retain(|key, datagram| {
            if datagram.deadline > now {
                return true;
            }
            log::debug!("frag: {key:?}: reassembly timed out");
            on_expired(*key, datagram.first_fragment());
            *bytes -= datagram.received;
            dropped += 1;
            false
        });
        dropped
    }

    /// The earliest deadline at which `expire` would drop something.
    pub fn poll_at(&self) -> Option<Instant> {
        self.datagrams.values().map(|d| d.deadline).min()
    }

    /// Payload bytes currently held.
    pub fn bytes_in_use(&self) -> usize {
        self.bytes
    }

    /// Incomplete datagrams currently held.
    pub fn datagrams_in_use(&self) -> usize {
        self.datagrams.len()
    }
}

/// Why [`fragment`] could not send a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// The MTU leaves room for fewer than 8 payload bytes after the header.
    MtuTooSmall,
    /// The datagram does not fit and its header has DF set (the caller should
    /// report "fragmentation needed", RFC 1191).
    DontFragment,
    /// The payload does not fit in one IPv4 datagram (65535 bytes with header).
    TooLong,
}

/// Splits an IPv4 payload so every packet fits in `mtu` bytes (RFC 791 §3.2 fragmentation). `header` is the header for the whole datagram (etherparse::Ipv4Header, its total_len/fragment fields/checksum are overwritten per fragment; options, if any, are copied to every fragment — good enough, we send none). Each fragment except the last carries a multiple of 8 payload bytes and MF set; each gets a correct header checksum. Calls `emit` once per fragment with the complete packet bytes (header + payload). If the datagram already fits, emits it unfragmented. Returns Err if `mtu` is too small to carry 8 payload bytes, or if the header has DF set and the packet does not fit.
///
/// On error nothing has been emitted.
pub fn fragment(
    header: &Ipv4Header,
    payload: &[u8],
    mtu: usize,
    emit: &mut dyn FnMut(&[u8]),
) -> Result<(), FragmentError> {
    let header_len = header.header_len();
    // RFC 791 §3.1: Total Length (header + data) is 16 bits.
    if payload.len() > usize::from(header.max_payload_len()) {
        return Err(FragmentError::TooLong);
    }
    let mut header = header.clone();
    let mut packet = Vec::with_capacity(mtu.min(header_len + payload.len()));
    if header_len + payload.len() <= mtu {
        write_packet(&mut header, 0, false, payload, &mut packet)?;
        emit(&packet);
        return Ok(());
    }
    // RFC 791 §3.2: a datagram with Don't Fragment set is never fragmented.
    if header.dont_fragment {
        return Err(FragmentError::DontFragment);
    }
    // RFC 791 §3.2: NFB = (MTU - IHL*4) / 8 blocks of data per fragment.
    let per_fragment = mtu.saturating_sub(header_len) / 8 * 8;
    if per_fragment == 0 {
        return Err(FragmentError::MtuTooSmall);
    }
    for (i, chunk) in payload.chunks(per_fragment).enumerate() {
        let offset = i * per_fragment;
        let more = offset + chunk.len() < payload.len();
        write_packet(&mut header, offset, more, chunk, &mut packet)?;
        emit(&packet);
    }
    Ok(())
}

/// Fills in `header` for one packet carrying `data` at byte `offset`, and writes
/// header and data into `out`.
fn write_packet(
    header: &mut Ipv4Header,
    offset: usize,
    more: bool,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FragmentError> {
    header
        .set_payload_len(data.len())
        .map_err(|_| FragmentError::TooLong)?;
    let blocks = u16::try_from(offset / 8).unwrap_or(u16::MAX);
    header.fragment_offset = IpFragOffset::try_new(blocks).map_err(|_| FragmentError::TooLong)?;
    header.more_fragments = more;
    header.header_checksum = header.calc_header_checksum();
    out.clear();
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::IpNumber;
    use FragError::{Inconsistent, NoMemory, Overlap, TooLong, TooManyFragments};

    type Pushed = Result<Option<Reassembled>, FragError>;

    const KEY: FragKey = FragKey {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
        protocol: 17,
        id: 0x1234,
    };

    fn key(id: u16) -> FragKey {
        FragKey { id, ..KEY }
    }

    fn t(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    /// What `push` returns when `key`'s datagram completes with `payload`.
    fn done(key: FragKey, payload: &[u8]) -> Pushed {
        let payload = payload.to_vec();
        Ok(Some(Reassembled { key, payload }))
    }

    /// A reassembler with these limits and a 1 s timeout.
    fn limited(max_bytes: usize, max_datagrams: usize, max_fragments: usize) -> Reassembler {
        let mut c = ReassemblyConfig::default();
        (c.max_bytes, c.max_datagrams, c.max_fragments) = (max_bytes, max_datagrams, max_fragments);
        c.timeout = Duration::from_secs(1);
        Reassembler::new(c)
    }

    fn default() -> Reassembler {
        Reassembler::new(ReassemblyConfig::default())
    }

    /// A tiny deterministic PRNG (xorshift64), so tests need no extra crate.
    struct XorShift(u64);
    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// `(offset, more, bytes)` pieces of `payload`, `size` bytes each.
    fn split(payload: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        let piece = |(i, c)| (i * size, (i + 1) * size < payload.len(), c);
        payload.chunks(size).enumerate().map(piece).collect()
    }

    /// Pushes the pieces in order, asserting that only the last one completes
    /// the datagram, as `want`, and that nothing is left held.
    fn assert_completes_on_last(
        r: &mut Reassembler,
        k: FragKey,
        pieces: &[(usize, bool, &[u8])],
        want: &[u8],
    ) {
        for (i, &(offset, more, data)) in pieces.iter().enumerate() {
            let expected = if i + 1 < pieces.len() {
                Ok(None)
            } else {
                done(k, want)
            };
            assert_eq!(r.push(t(0), k, offset, more, data), expected, "piece {i}");
        }
        assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (0, 0));
    }

    #[test]
    fn reassembles_fragments_in_order() {
        let payload = pattern(3000);
        assert_completes_on_last(&mut default(), KEY, &split(&payload, 1480), &payload);
    }

    #[test]
    fn reassembles_fragments_in_reverse_order_last_first() {
        let payload = pattern(1001);
        let pieces: Vec<_> = split(&payload, 96).into_iter().rev().collect();
        assert_completes_on_last(&mut default(), KEY, &pieces, &payload);
    }

    #[test]
    fn reassembles_fragments_in_random_order() {
        let (mut rng, mut r) = (XorShift(0x9e37_79b9_7f4a_7c15), limited(1 << 20, 1, 4096));
        for round in 0..50 {
            let payload = pattern(8 + rng.below(20_000));
            let mut pieces = split(&payload, 8 * (1 + rng.below(64)));
            for i in (1..pieces.len()).rev() {
                pieces.swap(i, rng.below(i + 1)); // Fisher-Yates
            }
            assert_completes_on_last(&mut r, key(round), &pieces, &payload);
        }
    }

    #[test]
    fn interleaved_datagrams_are_kept_apart() {
        let (mut r, a, b) = (default(), pattern(40), [0xab; 40]);
        assert_eq!(r.push(t(0), key(1), 0, true, &a[..16]), Ok(None));
        assert_eq!(r.push(t(0), key(2), 16, false, &b[16..]), Ok(None));
        assert_eq!(r.push(t(0), key(2), 0, true, &b[..16]), done(key(2), &b));
        assert_eq!(r.push(t(0), key(1), 16, false, &a[16..]), done(key(1), &a));
    }

    #[test]
    fn exact_duplicate_fragment_is_accepted_silently() {
        let (mut r, payload) = (default(), pattern(24));
        for _ in 0..2 {
            assert_eq!(r.push(t(0), KEY, 8, true, &payload[8..16]), Ok(None));
            assert_eq!(r.push(t(0), KEY, 16, false, &payload[16..]), Ok(None));
        }
        assert_eq!(r.bytes_in_use(), 16, "duplicates are not stored twice");
        let last = r.push(t(0), KEY, 0, true, &payload[..8]);
        assert_eq!(last, done(KEY, &payload));
    }

    #[test]
    fn partial_overlap_discards_whole_datagram_then_key_reassembles_fresh() {
        let (mut r, payload) = (default(), pattern(32));
        assert_eq!(r.push(t(0), KEY, 0, true, &payload[..16]), Ok(None));
        assert_eq!(r.push(t(0), KEY, 24, false, &payload[24..]), Ok(None));
        assert_eq!(r.push(t(0), KEY, 8, true, &payload[8..24]), Err(Overlap));
        assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (0, 0));
        // A fragment covering one already held overlaps too.
        assert_eq!(r.push(t(0), KEY, 8, true, &payload[8..16]), Ok(None));
        assert_eq!(r.push(t(0), KEY, 0, true, &payload[..24]), Err(Overlap));
        assert_eq!(r.bytes_in_use(), 0);
        // A complete set for the same key then reassembles from scratch.
        assert_completes_on_last(&mut r, KEY, &split(&payload, 8), &payload);
    }

    #[test]
    fn timed_out_datagram_is_expired_and_memory_released() {
        let mut r = limited(1 << 20, 256, 128);
        assert_eq!(r.poll_at(), None);
        assert_eq!(r.push(t(1000), key(1), 0, true, &[0; 16]), Ok(None));
        assert_eq!(r.push(t(1500), key(2), 8, false, &[0; 8]), Ok(None));
        // RFC 1122 §3.3.2: a later fragment does not extend the timer.
        assert_eq!(r.push(t(1900), key(1), 24, true, &[0; 8]), Ok(None));
        assert_eq!(r.poll_at(), Some(t(2000)));
        assert_eq!(r.expire(t(2000) - Duration::from_micros(1)), 0);
        assert_eq!(r.bytes_in_use(), 32);
        let mut expired = Vec::new();
        let mut record = |k, zero: Option<&[u8]>| expired.push((k, zero.map(<[u8]>::len)));
        assert_eq!(r.expire_with(t(2000), &mut record), 1);
        assert_eq!((r.poll_at(), r.bytes_in_use()), (Some(t(2500)), 8));
        assert_eq!(r.expire_with(t(2500), &mut record), 1);
        // Fragment zero of key 2 never arrived: nothing to quote in an ICMP error.
        assert_eq!(expired, [(key(1), Some(16)), (key(2), None)]);
        assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (0, 0));
        assert_eq!(r.poll_at(), None);
    }

    #[test]
    fn push_expires_timed_out_datagrams_before_checking_limits() {
        let mut r = limited(1 << 20, 1, 128);
        assert_eq!(r.push(t(0), key(1), 0, true, &[0; 8]), Ok(None));
        assert_eq!(r.push(t(1000), key(2), 0, true, &[0; 8]), Ok(None));
        assert_eq!(r.take_evicted(), 0, "key 1 expired; nothing was evicted");
        assert_eq!(r.datagrams_in_use(), 1);
        let last = r.push(t(1500), key(2), 8, false, &[0; 8]);
        assert_eq!(last, done(key(2), &[0; 16]));
        // Key 1 was dropped: its missing piece now starts a new datagram.
        assert_eq!(r.push(t(1500), key(1), 8, false, &[0; 8]), Ok(None));
    }

    #[test]
    fn max_bytes_limit_evicts_old_datagrams_and_refuses_only_what_can_never_fit() {
        let mut r = limited(64, 256, 128);
        assert_eq!(r.push(t(0), key(1), 0, true, &[0; 48]), Ok(None));
        // No room for 24 more bytes: the older datagram makes way.
        assert_eq!(r.push(t(1), key(2), 0, true, &[0; 24]), Ok(None));
        assert_eq!(r.take_evicted(), 1);
        assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (24, 1));
        // A datagram larger than the whole budget can never fit.
        assert_eq!(r.push(t(2), key(2), 24, true, &[0; 48]), Err(NoMemory));
        assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (0, 0));
        assert!(r.bytes_in_use() <= 64);
    }

    #[test]
    fn max_datagrams_limit_evicts_the_oldest_instead_of_refusing() {
        let mut r = limited(1 << 20, 3, 128);
        for id in 0..3 {
            assert_eq!(
                r.push(t(u64::from(id)), key(id), 0, true, &[0; 8]),
                Ok(None)
            );
        }
        assert_eq!(r.push(t(5), key(3), 0, true, &[0; 8]), Ok(None));
        assert_eq!(r.take_evicted(), 1);
        assert_eq!(r.datagrams_in_use(), 3);
        // Key 0 (the oldest) went; key 1 is still whole-able.
        assert_eq!(
            r.push(t(6), key(1), 8, false, &[0; 8]),
            done(key(1), &[0; 16])
        );
    }

    #[test]
    fn eviction_takes_from_the_source_holding_the_most() {
        let mut r = limited(1 << 20, 4, 128);
        let from = |src: u8, id: u16| FragKey {
            src: Ipv4Addr::new(10, 0, 0, src),
            id,
            ..KEY
        };
        // A legitimate sender's datagram is the oldest...
        assert_eq!(r.push(t(0), from(1, 1), 0, true, &[0; 8]), Ok(None));
        // ...then a flooder fills the table.
        for id in 0..3 {
            assert_eq!(r.push(t(1), from(3, id), 0, true, &[0; 8]), Ok(None));
        }
        for id in 3..100 {
            assert_eq!(r.push(t(2), from(3, id), 0, true, &[0; 8]), Ok(None));
        }
        assert_eq!(r.take_evicted(), 97);
        // The legitimate datagram survived the flood and completes.
        assert_eq!(
            r.push(t(3), from(1, 1), 8, false, &[1; 8]),
            done(from(1, 1), &[[0; 8], [1; 8]].concat())
        );
    }

    #[test]
    fn max_fragments_limit_discards_whole_datagram() {
        let mut r = limited(1 << 20, 256, 4);
        for i in 0..4 {
            assert_eq!(r.push(t(0), KEY, i * 8, true, &[0; 8]), Ok(None));
        }
        assert_eq!(r.push(t(0), KEY, 32, false, &[0; 8]), Err(TooManyFragments));
        assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (0, 0));
        let payload = pattern(32); // exactly four pieces are fine
        assert_completes_on_last(&mut r, KEY, &split(&payload, 8), &payload);
    }

    #[test]
    fn fragment_past_ipv4_maximum_is_too_long_and_dropped_alone() {
        let mut r = default();
        assert_eq!(r.push(t(0), KEY, 65512, false, &[0; 4]), Err(TooLong));
        assert_eq!(r.push(t(0), KEY, 65512, false, &[0; 3]), Ok(None));
        let huge = usize::MAX - 7;
        assert_eq!(r.push(t(0), KEY, huge, true, &[0; 16]), Err(TooLong));
        assert_eq!(r.datagrams_in_use(), 1);
    }

    #[test]
    fn middle_fragment_not_multiple_of_8_is_rejected() {
        let mut r = default();
        assert_eq!(r.push(t(0), KEY, 0, true, &[0; 12]), Err(Inconsistent));
        assert_eq!(r.push(t(0), KEY, 4, false, &[0; 8]), Err(Inconsistent));
        assert_eq!(r.push(t(0), KEY, 8, true, &[]), Err(Inconsistent));
        assert_eq!(r.datagrams_in_use(), 0);
        assert_eq!(r.push(t(0), KEY, 0, true, &[0; 16]), Ok(None));
    }

    #[test]
    fn fragments_contradicting_the_known_end_discard_the_datagram() {
        let mut r = default();
        // (held offset, held MF, new offset, new MF), 8 bytes each.
        for (off, more, new_off, new_more) in [
            (16, false, 32, false), // a second, different last fragment
            (8, false, 16, true),   // a middle fragment past the known end
            (16, true, 8, false),   // a last fragment ending before held data
            (8, true, 8, false),    // same range, but now claiming to be last
            (8, false, 8, true),    // same range as the last, but with MF
        ] {
            assert_eq!(r.push(t(0), KEY, off, more, &[0; 8]), Ok(None));
            let pushed = r.push(t(0), KEY, new_off, new_more, &[0; 8]);
            assert_eq!(pushed, Err(Inconsistent), "{off} {more} {new_off}");
            assert_eq!((r.bytes_in_use(), r.datagrams_in_use()), (0, 0));
        }
    }

    #[test]
    fn unfragmented_packet_is_returned_complete() {
        let mut r = default();
        assert_eq!(r.push(t(0), KEY, 0, false, b"hello"), done(KEY, b"hello"));
        assert_eq!(r.push(t(0), KEY, 0, false, &[]), done(KEY, &[]));
        assert_eq!(r.datagrams_in_use(), 0);
    }

    #[test]
    fn arbitrary_input_never_panics_and_stays_within_limits() {
        let (mut r, mut rng, data) = (limited(4096, 4, 8), XorShift(42), [0x5a; 2048]);
        for step in 0..100_000 {
            let offset = [rng.below(usize::MAX), rng.below(70_000), 8 * rng.below(64)];
            let len = [rng.below(2049), 8 * rng.below(33)][rng.below(2)];
            let (k, more) = (key(rng.below(6) as u16), rng.below(3) != 0);
            let _ = r.push(t(step), k, offset[rng.below(3)], more, &data[..len]);
            let held = r.datagrams.values().flat_map(|d| &d.segments);
            assert_eq!(r.bytes_in_use(), held.map(|s| s.data.len()).sum());
            assert!(r.bytes_in_use() <= 4096 && r.datagrams_in_use() <= 4);
            assert!(r.datagrams.values().all(|d| d.segments.len() <= 8));
        }
    }

    fn header(payload_len: usize, dont_fragment: bool) -> Ipv4Header {
        let (src, dst, len) = (KEY.src.octets(), KEY.dst.octets(), payload_len as u16);
        let mut h = Ipv4Header::new(len, 64, IpNumber::UDP, src, dst).expect("fits");
        (h.identification, h.dont_fragment) = (KEY.id, dont_fragment);
        h
    }

    /// Runs `fragment` and returns the emitted packets.
    fn emitted(h: &Ipv4Header, payload: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, FragmentError> {
        let mut packets = Vec::new();
        fragment(h, payload, mtu, &mut |p| packets.push(p.to_vec()))?;
        Ok(packets)
    }

    /// Fragments `size` bytes over `mtu`, checks every packet, and reassembles
    /// them; returns how many packets there were.
    fn round_trip(size: usize, mtu: usize) -> usize {
        let payload = pattern(size);
        let packets = emitted(&header(size, false), &payload, mtu).expect("fragments");
        let mut pieces = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            assert!(packet.len() <= mtu, "packet {i} is {} bytes", packet.len());
            let (h, data) = Ipv4Header::from_slice(packet).expect("valid header");
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "packet {i}");
            assert_eq!(usize::from(h.total_len), packet.len());
            assert_eq!(h.identification, KEY.id);
            assert_eq!(h.more_fragments, i + 1 < packets.len(), "packet {i}");
            assert!(!h.more_fragments || data.len() % 8 == 0, "packet {i}");
            let offset = usize::from(h.fragment_offset.byte_offset());
            pieces.push((offset, h.more_fragments, data));
        }
        assert_completes_on_last(&mut default(), KEY, &pieces, &payload);
        packets.len()
    }

    #[test]
    fn fragment_splits_8008_bytes_over_1500_mtu_into_6_packets_that_reassemble() {
        assert_eq!(round_trip(8008, 1500), 6);
    }

    #[test]
    fn fragment_round_trips_for_many_sizes_and_mtus() {
        let at_1500 = [(1480, 1500, 1), (1481, 1500, 2), (2961, 1500, 3)];
        let others = [(65515, 1500, 45), (100, 68, 3), (17, 28, 3), (0, 20, 1)];
        for (size, mtu, count) in at_1500.into_iter().chain(others) {
            assert_eq!(round_trip(size, mtu), count, "size {size} mtu {mtu}");
        }
    }

    #[test]
    fn fragment_copies_options_and_fits_them_in_mtu() {
        let mut h = header(100, false);
        h.options = [1, 1, 1, 0].into();
        let packets = emitted(&h, &pattern(100), 60).expect("fragments");
        assert_eq!(packets.len(), 4, "60 - 24 leaves 32 payload bytes each");
        for packet in &packets {
            let (got, _) = Ipv4Header::from_slice(packet).expect("valid header");
            assert_eq!(got.options.as_slice(), &[1, 1, 1, 0]);
            assert!(packet.len() <= 60);
        }
    }

    #[test]
    fn fragment_emits_fitting_datagram_unfragmented_even_with_df() {
        let mut h = header(100, true);
        h.more_fragments = true;
        let packets = emitted(&h, &pattern(100), 120).expect("fits");
        assert_eq!(packets.len(), 1);
        let (got, data) = Ipv4Header::from_slice(&packets[0]).expect("valid header");
        assert!(!got.more_fragments && got.dont_fragment && got.fragment_offset.value() == 0);
        assert_eq!(got.header_checksum, got.calc_header_checksum());
        assert_eq!(data, pattern(100));
    }

    #[test]
    fn fragment_with_dont_fragment_set_fails() {
        let result = emitted(&header(1500, true), &pattern(1500), 1500);
        assert_eq!(result, Err(FragmentError::DontFragment));
    }

    #[test]
    fn fragment_with_mtu_too_small_for_8_bytes_fails() {
        let count = |mtu| emitted(&header(100, false), &[7; 100], mtu).map(|p| p.len());
        assert_eq!(count(27), Err(FragmentError::MtuTooSmall));
        assert_eq!(count(0), Err(FragmentError::MtuTooSmall));
        assert_eq!(count(28), Ok(13));
    }

    #[test]
    fn fragment_rejects_payload_larger_than_ipv4_allows() {
        let result = emitted(&header(0, false), &[0; 65516], 1500);
        assert_eq!(result, Err(FragmentError::TooLong));
    }
}
