//! Send and receive buffers.
//!
//! [`SendBuffer`] holds bytes from SND.UNA on: sent-but-unacknowledged data
//! followed by data not yet sent. [`RecvBuffer`] is a fixed ring holding data
//! the application has not read, followed by the receive window, into which
//! out-of-order segments are written in place; their extents are tracked as
//! a short list of ranges, so reassembly never needs more memory than the
//! window it advertised (RFC 9293 §3.10.7.4, "bounded by the receive buffer").

use std::collections::VecDeque;

/// Bytes queued for sending, from SND.UNA onwards.
#[derive(Debug)]
pub struct SendBuffer {
    data: VecDeque<u8>,
    cap: usize,
}

impl SendBuffer {
    /// An empty buffer holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        SendBuffer {
            data: VecDeque::new(),
            cap,
        }
    }

    /// Bytes held (unacknowledged plus unsent).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Room for more data.
    pub fn free(&self) -> usize {
        self.cap.saturating_sub(self.data.len())
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Appends as much of `buf` as fits; returns how much.
    pub fn push(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.free());
        self.data.extend(&buf[..n]);
        n
    }

    /// Drops `n` acknowledged bytes from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len());
        self.data.drain(..n);
    }

    /// Up to `len` bytes starting `offset` bytes in, as two slices.
    pub fn slices(&self, offset: usize, len: usize) -> [&[u8]; 2] {
        let (a, b) = self.data.as_slices();
        let end = offset.saturating_add(len).min(self.data.len());
        let offset = offset.min(end);
        if end <= a.len() {
            [&a[offset..end], &[]]
        } else if offset >= a.len() {
            [&b[offset - a.len()..end - a.len()], &[]]
        } else {
            [&a[offset..], &b[..end - a.len()]]
        }
    }
}

/// Most out-of-order holes tracked at once; further disjoint segments are
/// dropped (the peer retransmits them).
const MAX_RANGES: usize = 16;

/// Received data: in-order bytes the application has not read, plus
/// out-of-order data placed at its offset inside the window. The memory is
/// allocated when the first byte arrives, so a half-open connection (a SYN
/// flood's thousands of them) costs no buffer.
#[derive(Debug)]
pub struct RecvBuffer {
    /// Empty until the first byte arrives; then `cap` bytes.
    ring: Vec<u8>,
    cap: usize,
    /// Index of the first unread byte.
    head: usize,
    /// In-order unread bytes.
    ready: usize,
    /// Out-of-order extents, as `[start, end)` offsets from RCV.NXT, sorted
    /// and disjoint.
    ooo: Vec<(usize, usize)>,
}

impl RecvBuffer {
    /// A buffer of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        RecvBuffer {
            ring: Vec::new(),
            cap: cap.max(1),
            head: 0,
            ready: 0,
            ooo: Vec::new(),
        }
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes of memory the buffer holds now (0 until data arrives).
    pub fn allocated(&self) -> usize {
        self.ring.capacity()
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
        // Merge the new extent with the ones it touches, in place (no
        // allocation per segment): ranges i..j overlap or abut it.
        let (mut start, mut end) = (offset, offset + n);
        let i = self.ooo.iter().take_while(|r| r.1 < start).count();
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

    fn copy_in(&mut self, offset: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.ring.is_empty() {
            self.ring = vec![0; self.cap];
        }
        let cap = self.cap;
        let pos = (self.head + self.ready + offset) % cap;
        let first = data.len().min(cap - pos);
        self.ring[pos..pos + first].copy_from_slice(&data[..first]);
        let rest = &data[first..];
        self.ring[..rest.len()].copy_from_slice(rest);
    }

    /// Copies up to `buf.len()` ready bytes out; returns how many.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.ready);
        if n == 0 {
            return 0;
        }
        let cap = self.cap;
        let first = n.min(cap - self.head);
        buf[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
        buf[first..n].copy_from_slice(&self.ring[..n - first]);
        self.head = (self.head + n) % cap;
        self.ready -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_memory_is_allocated_only_when_data_arrives() {
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
        let mut all = [0u8; 16];
        assert_eq!(r.read(&mut all), 10);
        assert_eq!(&all[..10], b"efghijklmn");
    }

    #[test]
    fn recv_buffer_bounds_the_number_of_holes() {
        let mut r = RecvBuffer::new(1000);
        for i in 0..MAX_RANGES {
            r.write(2 + i * 2, b"x");
        }
        assert_eq!(r.out_of_order(), MAX_RANGES);
        r.write(100, b"y"); // dropped
        assert_eq!(r.out_of_order(), MAX_RANGES);
        assert_eq!(r.write(0, b"ab"), 3);
        assert!(r.write(r.window(), b"z") == 0);
    }
}
