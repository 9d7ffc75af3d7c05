//! Send and receive buffers: one ring per direction per connection.
//!
//! The application copies into and out of the same rings the core sends
//! from and receives into (they live in the connection's shared
//! [`super::stream::Stream`]); there is no second ring to shuttle between.
//!
//! [`SendBuffer`] holds bytes from SND.UNA on: sent-but-unacknowledged data
//! followed by data not yet sent. [`RecvBuffer`] holds data the application
//! has not read, followed by the receive window, into which out-of-order
//! segments are written in place; their extents are tracked as a short list
//! of ranges, so reassembly never needs more memory than the window it
//! advertised (RFC 9293 §3.10.7.4, "bounded by the receive buffer").
//!
//! Memory follows the data: a ring's storage is taken when its first byte
//! arrives and given back once it is drained, to a bounded [`BufferPool`]
//! shared by the stack's connections (so a busy connection does not pay an
//! allocation per burst, and ten thousand idle ones hold no buffers).
//! Copies are bulk `copy_from_slice` over the ring's two contiguous halves.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Spare ring storage shared by a stack's connections, bounded in bytes.
///
/// When full, a ring given back pushes out the oldest spares. Rings change
/// size (receive and send autotuning), and a ring of a size no connection
/// uses any more is never taken again: a pool that kept its oldest spares
/// and turned new ones away filled with such rings, and then every busy
/// connection's drained ring was freed (a large `free` is an `munmap`) and
/// its next burst faulted in fresh zeroed pages (measured: 4 streams into
/// tunstack spent 30 % of its CPU in page faults, docs/PERFORMANCE.md).
#[derive(Debug)]
pub struct BufferPool {
    max_bytes: usize,
    spare: Mutex<Spare>,
}

/// The pool's rings, oldest first, and their bytes.
#[derive(Debug, Default)]
struct Spare {
    rings: VecDeque<Box<[u8]>>,
    bytes: usize,
}

impl BufferPool {
    /// A pool keeping at most `max_bytes` of spare storage.
    pub fn new(max_bytes: usize) -> Arc<BufferPool> {
        Arc::new(BufferPool {
            max_bytes,
            spare: Mutex::new(Spare::default()),
        })
    }

    /// Storage of exactly `size` bytes (contents unspecified): the newest
    /// spare of that size, else a new allocation.
    fn take(&self, size: usize) -> Box<[u8]> {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        match spare.rings.iter().rposition(|b| b.len() == size) {
            Some(i) => {
                spare.bytes -= size;
                spare.rings.remove(i).unwrap_or_default()
            }
            None => {
                drop(spare);
                vec![0u8; size].into_boxed_slice()
            }
        }
    }

    /// Takes back storage that is no longer needed, dropping the oldest
    /// spares to make room (one larger than the whole pool is dropped).
    fn give(&self, buf: Box<[u8]>) {
        if buf.len() > self.max_bytes {
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        while spare.bytes + buf.len() > self.max_bytes {
            let Some(old) = spare.rings.pop_front() else {
                break;
            };
            spare.bytes -= old.len();
        }
        spare.bytes += buf.len();
        spare.rings.push_back(buf);
    }

    /// Bytes of spare storage held now.
    pub fn spare_bytes(&self) -> usize {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

/// Where a ring gets and returns its storage.
#[derive(Debug, Default, Clone)]
struct Storage {
    ring: Box<[u8]>,
    pool: Option<Arc<BufferPool>>,
}

impl Storage {
    fn ensure(&mut self, cap: usize) {
        if self.ring.len() != cap {
            self.ring = match &self.pool {
                Some(p) => p.take(cap),
                None => vec![0u8; cap].into_boxed_slice(),
            };
        }
    }

    fn release(&mut self) {
        let ring = std::mem::take(&mut self.ring);
        if let (Some(p), false) = (&self.pool, ring.is_empty()) {
            p.give(ring);
        }
    }
}

/// Bytes queued for sending, from SND.UNA onwards.
#[derive(Debug)]
pub struct SendBuffer {
    storage: Storage,
    cap: usize,
    /// Index of SND.UNA's byte in the ring.
    head: usize,
    len: usize,
    /// Bytes ever appended: the stream offset just past the last byte.
    pushed: u64,
}

impl SendBuffer {
    /// An empty buffer holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        SendBuffer::with_pool(cap, None)
    }

    /// An empty buffer whose storage comes from (and returns to) `pool`.
    pub fn with_pool(cap: usize, pool: Option<Arc<BufferPool>>) -> Self {
        SendBuffer {
            storage: Storage {
                ring: Box::default(),
                pool,
            },
            cap: cap.max(1),
            head: 0,
            len: 0,
            pushed: 0,
        }
    }

    /// The stream offset just past the last byte queued (bytes ever
    /// appended).
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Bytes held (unacknowledged plus unsent).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room for more data.
    pub fn free(&self) -> usize {
        self.cap - self.len
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes of memory the buffer holds now (0 while empty).
    pub fn allocated(&self) -> usize {
        self.storage.ring.len()
    }

    /// Changes the capacity (not below what is held).
    pub fn set_capacity(&mut self, cap: usize) {
        let cap = cap.max(self.len).max(1);
        if cap == self.cap {
            return;
        }
        if self.len > 0 {
            let mut ring = vec![0u8; cap].into_boxed_slice();
            let [a, b] = self.slices(0, self.len);
            ring[..a.len()].copy_from_slice(a);
            ring[a.len()..a.len() + b.len()].copy_from_slice(b);
            self.storage.release();
            self.storage.ring = ring;
            self.head = 0;
        } else {
            self.storage.release();
        }
        self.cap = cap;
    }

    /// Appends as much of `buf` as fits; returns how much.
    pub fn push(&mut self, buf: &[u8]) -> usize {
        let mut done = 0;
        self.fill(|space| {
            let n = space.len().min(buf.len() - done);
            space[..n].copy_from_slice(&buf[done..done + n]);
            done += n;
            n
        });
        done
    }

    /// Lets `f` write into the free space in place, in up to two contiguous
    /// pieces; `f` returns how much of each piece it filled (stopping at the
    /// first piece it does not fill). Returns the bytes added.
    pub fn fill(&mut self, mut f: impl FnMut(&mut [u8]) -> usize) -> usize {
        if self.free() == 0 {
            return 0;
        }
        self.storage.ensure(self.cap);
        let mut added = 0;
        for _ in 0..2 {
            let tail = (self.head + self.len) % self.cap;
            let contiguous = (self.cap - tail).min(self.free());
            if contiguous == 0 {
                break;
            }
            let n = f(&mut self.storage.ring[tail..tail + contiguous]).min(contiguous);
            self.len += n;
            self.pushed += n as u64;
            added += n;
            if n < contiguous {
                break;
            }
        }
        if self.len == 0 {
            self.storage.release();
        }
        added
    }

    /// Drops `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.cap;
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
            self.storage.release();
        }
    }

    /// Up to `len` bytes starting `offset` bytes in, as two slices.
    pub fn slices(&self, offset: usize, len: usize) -> [&[u8]; 2] {
        let end = offset.saturating_add(len).min(self.len);
        let offset = offset.min(end);
        if offset == end {
            return [&[], &[]];
        }
        let ring = &self.storage.ring;
        let start = (self.head + offset) % self.cap;
        let n = end - offset;
        let first = n.min(self.cap - start);
        [&ring[start..start + first], &ring[..n - first]]
    }
}

/// Most out-of-order ranges held at once; further disjoint segments are
/// dropped (the peer retransmits them). At 5 % loss a window of 1,000
/// segments has some 50 holes: 16 ranges (before) made the receiver drop
/// in-window data and the sender repair one hole per round trip (the
/// simulation's goodput table, docs/SIM-GOODPUT.md). Linux keeps its
/// out-of-order queue in a tree bounded by memory only; here the bound is
/// a count, and each range costs a search and a shift of a small vector.
const MAX_RANGES: usize = 512;

/// Received data: in-order bytes the application has not read, plus
/// out-of-order data placed at its offset inside the window. The memory is
/// taken when the first byte arrives and given back when everything has
/// been read, so a half-open connection (a SYN flood's thousands of them)
/// or an idle one costs no buffer.
#[derive(Debug)]
pub struct RecvBuffer {
    storage: Storage,
    cap: usize,
    /// Index of the first unread byte.
    head: usize,
    /// In-order unread bytes.
    ready: usize,
    /// Out-of-order extents, as `[start, end)` offsets from RCV.NXT, sorted
    /// and disjoint.
    ooo: Vec<(usize, usize)>,
    /// Bytes ever consumed: the stream offset of the first unread byte.
    consumed: u64,
    /// Stream offsets of the latest out-of-order writes, newest first: the
    /// order SACK blocks are reported in (RFC 2018 §4).
    recent: [Option<u64>; 4],
}

impl RecvBuffer {
    /// A buffer of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        RecvBuffer::with_pool(cap, None)
    }

    /// A buffer of `cap` bytes whose storage comes from (and returns to) `pool`.
    pub fn with_pool(cap: usize, pool: Option<Arc<BufferPool>>) -> Self {
        RecvBuffer {
            storage: Storage {
                ring: Box::default(),
                pool,
            },
            cap: cap.max(1),
            head: 0,
            ready: 0,
            ooo: Vec::new(),
            consumed: 0,
            recent: [None; 4],
        }
    }

    /// The stream offset of the first unread byte (bytes ever consumed).
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Changes the capacity, never below what is held (ready bytes and the
    /// out-of-order data past them).
    pub fn set_capacity(&mut self, cap: usize) {
        let used = self.ready + self.ooo.last().map_or(0, |r| r.1);
        let cap = cap.max(used).max(1);
        if used == 0 {
            self.storage.release();
        } else if cap != self.cap {
            let mut ring = vec![0u8; cap].into_boxed_slice();
            let first = used.min(self.cap - self.head);
            ring[..first].copy_from_slice(&self.storage.ring[self.head..self.head + first]);
            ring[first..used].copy_from_slice(&self.storage.ring[..used - first]);
            self.storage.release();
            self.storage.ring = ring;
        }
        self.cap = cap;
        self.head = 0;
    }

    /// Bytes of memory the buffer holds now (0 while empty).
    pub fn allocated(&self) -> usize {
        self.storage.ring.len()
    }

    /// In-order bytes ready for the application.
    pub fn ready(&self) -> usize {
        self.ready
    }

    /// Free space after the ready bytes: the receive window.
    pub fn window(&self) -> usize {
        self.cap - self.ready
    }

    /// Bytes held out of order.
    pub fn out_of_order(&self) -> usize {
        self.ooo.iter().map(|(s, e)| e - s).sum()
    }

    /// True when out-of-order data is waiting for a gap to fill.
    pub fn has_gap(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Writes `data` at `offset` bytes past RCV.NXT. Bytes beyond the window
    /// are cut off. Returns how many bytes became in-order (RCV.NXT advances
    /// by that much).
    pub fn write(&mut self, offset: usize, data: &[u8]) -> usize {
        let win = self.window();
        if offset >= win {
            return 0;
        }
        let n = data.len().min(win - offset);
        if n == 0 {
            return 0;
        }
        if offset == 0 && self.ooo.is_empty() {
            // The common case: in order, no holes.
            self.copy_in(0, &data[..n]);
            self.ready += n;
            return n;
        }
        // Merge the new extent with the ones it touches, in place (no
        // allocation per segment): ranges i..j overlap or abut it.
        let (mut start, mut end) = (offset, offset + n);
        let i = self.ooo.partition_point(|r| r.1 < start);
        let mut j = i;
        while let Some(&(s, e)) = self.ooo.get(j) {
            if s > end {
                break;
            }
            start = start.min(s);
            end = end.max(e);
            j += 1;
        }
        if i == j && start != 0 && self.ooo.len() >= MAX_RANGES {
            return 0; // too fragmented; let the peer retransmit
        }
        // Remember where this segment landed (as a stream offset), newest
        // first, for the order of SACK blocks.
        let at = self.consumed + self.ready as u64 + offset as u64;
        self.recent.copy_within(0..3, 1);
        self.recent[0] = Some(at);
        self.ooo.drain(i..j);
        self.ooo.insert(i, (start, end));
        self.copy_in(offset, &data[..n]);
        match self.ooo.first().copied() {
            Some((0, e)) => {
                self.ooo.remove(0);
                for r in &mut self.ooo {
                    r.0 -= e;
                    r.1 -= e;
                }
                self.ready += e;
                e
            }
            _ => 0,
        }
    }

    /// Whether `len` bytes at `offset` past RCV.NXT are all held already
    /// (in one out-of-order extent).
    pub fn holds(&self, offset: usize, len: usize) -> bool {
        let i = self.ooo.partition_point(|r| r.1 < offset + len);
        self.ooo
            .get(i)
            .is_some_and(|&(s, e)| s <= offset && offset + len <= e)
    }

    /// How many out-of-order extents there are.
    pub fn sack_extent_count(&self) -> usize {
        self.ooo.len()
    }

    /// The out-of-order extents to report in SACK blocks, as `[start,
    /// end)` offsets from RCV.NXT, at most `max`: first the one holding the
    /// most recently received segment, then the ones holding the segments
    /// before it, then the rest from the highest down (RFC 2018 §4: the
    /// first block reports the latest segment, and the others repeat the
    /// most recently reported ones).
    pub fn sack_extents(&self, max: usize, out: &mut Vec<(usize, usize)>) {
        out.clear();
        let base = self.consumed + self.ready as u64;
        let add = |r: (usize, usize), out: &mut Vec<(usize, usize)>| {
            if out.len() < max && !out.contains(&r) {
                out.push(r);
            }
        };
        for at in self.recent.iter().flatten() {
            let Some(rel) = at.checked_sub(base) else {
                continue;
            };
            let i = self.ooo.partition_point(|r| (r.1 as u64) <= rel);
            if let Some(r) = self.ooo.get(i).filter(|r| (r.0 as u64) <= rel) {
                add(*r, out);
            }
        }
        for r in self.ooo.iter().rev() {
            add(*r, out);
        }
    }

    fn copy_in(&mut self, offset: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.storage.ensure(self.cap);
        let cap = self.cap;
        let pos = (self.head + self.ready + offset) % cap;
        let first = data.len().min(cap - pos);
        let ring = &mut self.storage.ring;
        ring[pos..pos + first].copy_from_slice(&data[..first]);
        let rest = &data[first..];
        ring[..rest.len()].copy_from_slice(rest);
    }

    /// The ready bytes, as two slices (for reading in place; follow with
    /// [`RecvBuffer::consume`]).
    pub fn readable(&self) -> [&[u8]; 2] {
        if self.ready == 0 {
            return [&[], &[]];
        }
        let ring = &self.storage.ring;
        let first = self.ready.min(self.cap - self.head);
        [
            &ring[self.head..self.head + first],
            &ring[..self.ready - first],
        ]
    }

    /// Copies up to `buf.len()` ready bytes out, leaving them in the buffer.
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        let [a, b] = self.readable();
        let n1 = a.len().min(buf.len());
        buf[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(buf.len() - n1);
        buf[n1..n1 + n2].copy_from_slice(&b[..n2]);
        n1 + n2
    }

    /// Copies up to `buf.len()` ready bytes out; returns how many.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.peek(buf);
        self.consume(n);
        n
    }

    /// Drops `n` ready bytes (they were read in place).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.ready);
        self.head = (self.head + n) % self.cap;
        self.ready -= n;
        self.consumed += n as u64;
        if self.ready == 0 && self.ooo.is_empty() {
            self.head = 0;
            self.storage.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_memory_is_held_only_while_data_is() {
        let mut b = RecvBuffer::new(256 * 1024);
        assert_eq!(b.allocated(), 0, "a half-open connection costs no buffer");
        assert_eq!(b.window(), 256 * 1024);
        assert_eq!(b.read(&mut [0u8; 16]), 0);
        assert_eq!(b.allocated(), 0);
        b.write(0, b"hello");
        assert!(b.allocated() >= 256 * 1024);
        let mut out = [0u8; 16];
        assert_eq!(b.read(&mut out), 5);
        assert_eq!(&out[..5], b"hello");
        assert_eq!(b.allocated(), 0, "a drained buffer gives its memory back");
        // Out-of-order data keeps it.
        b.write(3, b"x");
        assert!(b.allocated() > 0);
    }

    #[test]
    fn drained_storage_goes_back_to_the_pool_and_is_reused() {
        let pool = BufferPool::new(1 << 20);
        let mut r = RecvBuffer::with_pool(4096, Some(pool.clone()));
        let mut s = SendBuffer::with_pool(4096, Some(pool.clone()));
        r.write(0, b"abc");
        assert_eq!(pool.spare_bytes(), 0);
        r.consume(3);
        assert_eq!(pool.spare_bytes(), 4096);
        s.push(b"hello");
        assert_eq!(pool.spare_bytes(), 0, "the send ring took the spare");
        s.consume(5);
        assert_eq!(pool.spare_bytes(), 4096);
        // The pool is bounded.
        let small = BufferPool::new(5000);
        let mut a = SendBuffer::with_pool(4096, Some(small.clone()));
        let mut b = SendBuffer::with_pool(4096, Some(small.clone()));
        a.push(b"1");
        b.push(b"2");
        a.consume(1);
        b.consume(1);
        assert_eq!(small.spare_bytes(), 4096);
    }

    #[test]
    fn a_full_pool_keeps_the_newest_rings_not_the_oldest() {
        // Two rings of a size nobody uses any more fill the pool.
        let pool = BufferPool::new(2 * 4096);
        let mut stale: Vec<_> = (0..2)
            .map(|_| RecvBuffer::with_pool(4096, Some(pool.clone())))
            .collect();
        for r in &mut stale {
            r.write(0, b"x");
        }
        for r in &mut stale {
            r.consume(1);
        }
        assert_eq!(pool.spare_bytes(), 2 * 4096);
        // A busy connection's ring, grown by autotuning, drains: the pool
        // keeps it (dropping the oldest spares) and hands it back at the
        // next burst, rather than freeing it and allocating fresh pages.
        let mut busy = RecvBuffer::with_pool(8192, Some(pool.clone()));
        busy.write(0, b"a");
        let ring = busy.readable()[0].as_ptr();
        busy.consume(1);
        assert_eq!(pool.spare_bytes(), 8192);
        busy.write(0, b"b");
        assert_eq!(pool.spare_bytes(), 0, "the burst took the pooled ring");
        assert_eq!(busy.readable()[0].as_ptr(), ring, "the same storage");
    }

    #[test]
    fn send_buffer_slices_across_the_wrap() {
        let mut s = SendBuffer::new(8);
        assert_eq!(s.push(b"abcdef"), 6);
        s.consume(4);
        assert_eq!(s.push(b"ghijklmn"), 6);
        assert_eq!(s.len(), 8);
        let [a, b] = s.slices(1, 5);
        assert_eq!([a, b].concat(), b"fghij");
        let [a, b] = s.slices(6, 100);
        assert_eq!([a, b].concat(), b"kl");
        let [a, b] = s.slices(100, 1);
        assert!(a.is_empty() && b.is_empty());
    }

    #[test]
    fn send_buffer_fills_in_place_and_changes_capacity() {
        let mut s = SendBuffer::new(8);
        s.push(b"abcde");
        s.consume(3);
        let mut next = b'f';
        let added = s.fill(|space| {
            for b in space.iter_mut() {
                *b = next;
                next += 1;
            }
            space.len()
        });
        assert_eq!(added, 6);
        let [a, b] = s.slices(0, 8);
        assert_eq!([a, b].concat(), b"defghijk");
        s.set_capacity(16);
        assert_eq!(s.free(), 8);
        let [a, b] = s.slices(0, 8);
        assert_eq!([a, b].concat(), b"defghijk");
    }

    #[test]
    fn recv_buffer_reassembles_out_of_order_data() {
        let mut r = RecvBuffer::new(10);
        assert_eq!(r.write(3, b"def"), 0);
        assert!(r.has_gap());
        assert_eq!(r.out_of_order(), 3);
        assert_eq!(r.write(0, b"abc"), 6);
        assert!(!r.has_gap());
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(&out, b"abcd");
        // Wraps the ring; data beyond the window is cut off.
        assert_eq!(r.write(0, b"ghijklmnopq"), 8);
        assert_eq!(r.window(), 0);
        let mut peeked = [0u8; 3];
        assert_eq!(r.peek(&mut peeked), 3);
        assert_eq!(&peeked, b"efg");
        let mut all = [0u8; 16];
        assert_eq!(r.read(&mut all), 10);
        assert_eq!(&all[..10], b"efghijklmn");
    }

    /// A window of 1,000 segments at 5 % loss has about 50 holes, and a
    /// slow start that overshoots drops every other segment of a flight:
    /// the receiver keeps what arrives past all of them (at 16 ranges it
    /// dropped in-window data, and the sender repaired one hole a round
    /// trip).
    #[test]
    fn recv_buffer_holds_the_holes_of_a_lossy_window() {
        let mss = 1000;
        let mut r = RecvBuffer::new(1000 * mss);
        for seg in (1..1000).step_by(2) {
            assert_eq!(r.write(seg * mss, &[7u8; 1000]), 0, "segment {seg}");
        }
        assert_eq!(r.sack_extent_count(), 500);
        assert_eq!(r.out_of_order(), 500 * mss);
        // The holes fill (offsets count from RCV.NXT, which moves): all of
        // it is in order.
        for seg in (0..1000).step_by(2) {
            r.write(seg * mss - r.ready(), &[7u8; 1000]);
        }
        assert_eq!((r.sack_extent_count(), r.ready()), (0, 1000 * mss));
    }

    #[test]
    fn recv_buffer_bounds_the_number_of_holes() {
        let mut r = RecvBuffer::new(4 * MAX_RANGES);
        for i in 0..MAX_RANGES {
            r.write(2 + i * 2, b"x");
        }
        assert_eq!(r.out_of_order(), MAX_RANGES);
        r.write(3 * MAX_RANGES, b"y"); // dropped
        assert_eq!(r.out_of_order(), MAX_RANGES);
        assert_eq!(r.write(0, b"ab"), 3);
        assert!(r.write(r.window(), b"z") == 0);
    }
}
