//! An in-memory point-to-point link, for tests and simulation.
//!
//! [`link`] returns two [`MemoryDevice`]s joined back to back: a packet sent
//! on one end is received on the other, in order. Each direction is a bounded
//! queue; a packet sent into a full queue is dropped and counted, as a real
//! link drops under load.
//!
//! A test usually hands one end to the stack and keeps the other, crafting
//! and reading raw packets with [`MemoryDevice::send_packet`],
//! [`MemoryDevice::try_recv_packet`] and [`MemoryDevice::recv_packet_timeout`].
//! A packet the test sends wakes the stack's [`Device::wait`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Select, Sender, TrySendError};

use super::{Device, Received, RxMeta, TxMeta, Waker};
use crate::wire::gso;

/// A packet on the link, with what the sender's device was asked to do
/// with it (carried as is on an offload link, like a virtio-net header).
type Frame = (Vec<u8>, TxMeta);

/// How many packets each direction of a [`link`] holds before dropping.
pub const DEFAULT_QUEUE_PACKETS: usize = 4096;

/// One end of an in-memory link made by [`link`].
#[derive(Debug)]
pub struct MemoryDevice {
    mtu: usize,
    /// Packets to the peer (the peer's inbound queue).
    to_peer: Sender<Frame>,
    /// Packets from the peer.
    inbound: Receiver<Frame>,
    /// A sender into our own inbound queue, held so the queue never reports
    /// "disconnected" when the peer is dropped (a disconnected receiver is
    /// always ready, which would turn `wait` into a busy loop).
    _inbound_keepalive: Sender<Frame>,
    /// Wakes pending for `wait`; bounded(1) so many wakes collapse into one.
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    dropped_on_send: AtomicU64,
    /// Both ends take super-segments and partial checksums, like two
    /// stacks with offload back to back.
    offload: bool,
    /// Bytes of link header a frame may carry beyond the MTU (14 on an
    /// Ethernet link, 0 for bare IP).
    link_header: usize,
}

/// Makes a point-to-point link whose ends carry packets of up to `mtu`
/// bytes, with [`DEFAULT_QUEUE_PACKETS`] packets of queue each way.
pub fn link(mtu: usize) -> (MemoryDevice, MemoryDevice) {
    link_with_capacity(mtu, DEFAULT_QUEUE_PACKETS)
}

/// Like [`link`], with `capacity` packets of queue in each direction.
///
/// # Panics
///
/// If `capacity` is zero (a zero-capacity queue could never hold a packet).
pub fn link_with_capacity(mtu: usize, capacity: usize) -> (MemoryDevice, MemoryDevice) {
    assert!(
        capacity > 0,
        "a memory link needs room for at least one packet"
    );
    let (a_tx, a_rx) = bounded(capacity);
    let (b_tx, b_rx) = bounded(capacity);
    let a = MemoryDevice::new(mtu, b_tx.clone(), a_rx, a_tx.clone());
    let b = MemoryDevice::new(mtu, a_tx, b_rx, b_tx);
    (a, b)
}

/// Like [`link`], with offload at both ends ([`Device::offload`]): TCP
/// super-segments of up to 64 KiB and partial checksums cross the link as
/// they are, as between two stacks whose devices both offload. The test
/// helpers ([`MemoryDevice::try_recv_packet`]) complete checksums, and
/// show a super-segment whole.
pub fn link_with_offload(mtu: usize) -> (MemoryDevice, MemoryDevice) {
    let (mut a, mut b) = link(mtu);
    a.offload = true;
    b.offload = true;
    (a, b)
}

/// Like [`link`], for Ethernet frames (a TAP's view): each end carries
/// frames of up to `mtu` bytes of payload plus the 14-byte Ethernet
/// header, and reports `mtu` (the IP MTU) as its [`Device::mtu`].
pub fn ethernet_link(mtu: usize) -> (MemoryDevice, MemoryDevice) {
    let (mut a, mut b) = link(mtu);
    a.link_header = crate::link::ethernet::HEADER_LEN;
    b.link_header = crate::link::ethernet::HEADER_LEN;
    (a, b)
}

impl MemoryDevice {
    fn new(
        mtu: usize,
        to_peer: Sender<Frame>,
        inbound: Receiver<Frame>,
        inbound_keepalive: Sender<Frame>,
    ) -> MemoryDevice {
        let (wake_tx, wake_rx) = bounded(1);
        MemoryDevice {
            mtu,
            to_peer,
            inbound,
            _inbound_keepalive: inbound_keepalive,
            wake_tx,
            wake_rx,
            dropped_on_send: AtomicU64::new(0),
            offload: false,
            link_header: 0,
        }
    }

    /// Sends `packet` to the peer as is, without the MTU check that
    /// [`Device::send`] applies, so a test can inject any bytes. Drops it
    /// (and counts it) if the peer's queue is full; drops it silently if the
    /// peer is gone.
    pub fn send_packet(&self, packet: Vec<u8>) {
        self.send_frame((packet, TxMeta::default()));
    }

    fn send_frame(&self, frame: Frame) {
        match self.to_peer.try_send(frame) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped_on_send.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes the next packet from the peer, if one is queued.
    pub fn try_recv_packet(&self) -> Option<Vec<u8>> {
        self.inbound.try_recv().ok().map(completed)
    }

    /// Waits up to `timeout` for the next packet from the peer.
    pub fn recv_packet_timeout(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.inbound.recv_timeout(timeout).ok().map(completed)
    }

    /// Packets this end sent that were dropped: the peer's queue was full,
    /// or ([`Device::send`] only) the packet was larger than the MTU.
    pub fn dropped_on_send(&self) -> u64 {
        self.dropped_on_send.load(Ordering::Relaxed)
    }
}

/// A frame's bytes with a partial checksum completed.
fn completed((mut packet, meta): Frame) -> Vec<u8> {
    if meta.checksum_partial {
        gso::complete_checksum(&mut packet);
    }
    packet
}

impl Device for MemoryDevice {
    fn mtu(&self) -> usize {
        self.mtu
    }

    /// Copies the next packet into `buf`, truncating it to `buf`'s length
    /// (its checksum completed, a super-segment whole).
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.try_recv_packet().map(|packet| {
            let len = packet.len().min(buf.len());
            buf[..len].copy_from_slice(&packet[..len]);
            len
        }))
    }

    /// On an offload link, hands over super-segments and partial
    /// checksums as the peer sent them.
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let Ok((packet, meta)) = self.inbound.try_recv() else {
            return Ok(None);
        };
        let len = packet.len().min(buf.len());
        buf[..len].copy_from_slice(&packet[..len]);
        if !self.offload && meta.checksum_partial {
            gso::complete_checksum(&mut buf[..len]);
        }
        let meta = if self.offload {
            RxMeta {
                checksum_trusted: meta.checksum_partial,
                gso_size: meta.gso_size,
            }
        } else {
            RxMeta::default()
        };
        Ok(Some(Received {
            start: 0,
            len,
            meta,
        }))
    }

    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        if !self.offload || meta.is_plain() {
            if meta.is_plain() {
                return self.send(packet);
            }
            return super::send_in_software(packet, meta, &mut |p| self.send(p));
        }
        let limit = if meta.gso_size > 0 {
            crate::wire::ipv4::MAX_PACKET
        } else {
            self.mtu
        };
        if packet.len() > limit {
            self.dropped_on_send.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.send_frame((packet.to_vec(), meta));
        Ok(())
    }

    fn offload(&self) -> bool {
        self.offload
    }

    /// Sends a copy of `packet`; drops it (counted in
    /// [`MemoryDevice::dropped_on_send`]) if it exceeds the MTU or the
    /// peer's queue is full.
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        if packet.len() > self.mtu + self.link_header {
            log::debug!(
                "memory link: dropping {}-byte packet over MTU {}",
                packet.len(),
                self.mtu
            );
            self.dropped_on_send.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.send_packet(packet.to_vec());
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let mut select = Select::new();
        select.recv(&self.inbound);
        select.recv(&self.wake_rx);
        // `ready*` only reports readiness; it never takes a packet.
        match timeout {
            Some(timeout) => {
                let _ = select.ready_timeout(timeout);
            }
            None => {
                select.ready();
            }
        }
        // Consume a pending wake even if the packet queue was the one
        // reported (Select picks at random among ready operations), so it
        // does not cause a second, spurious return. A wake taken here
        // happened before `wait` returned, so the caller's drain of its
        // command queue after `wait` still sees whatever it announced.
        let _ = self.wake_rx.try_recv();
        Ok(())
    }

    fn waker(&self) -> Waker {
        let wake_tx = self.wake_tx.clone();
        Waker::new(move || {
            // Full means a wake is already pending: the wakes collapse.
            let _ = wake_tx.try_send(());
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Instant;

    /// Long enough that a `wait` returning before it was woken is unmistakable.
    const LONG: Duration = Duration::from_secs(30);

    fn recv_one(dev: &mut MemoryDevice) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_535];
        dev.recv(&mut buf)
            .expect("memory recv never fails")
            .map(|n| buf[..n].to_vec())
    }

    #[test]
    fn packets_cross_the_link_both_ways_in_order() {
        let (mut a, mut b) = link(1500);
        for i in 0..5u8 {
            a.send(&[0x45, i]).unwrap();
            b.send(&[0x45, 100 + i]).unwrap();
        }
        for i in 0..5u8 {
            assert_eq!(recv_one(&mut b), Some(vec![0x45, i]));
            assert_eq!(recv_one(&mut a), Some(vec![0x45, 100 + i]));
        }
        assert_eq!(recv_one(&mut a), None);
        assert_eq!(recv_one(&mut b), None);
    }

    #[test]
    fn test_helpers_send_and_receive_raw_packets() {
        let (mut stack_end, test_end) = link(1500);
        test_end.send_packet(vec![1, 2, 3]);
        assert_eq!(recv_one(&mut stack_end), Some(vec![1, 2, 3]));
        stack_end.send(&[4, 5]).unwrap();
        assert_eq!(
            test_end.recv_packet_timeout(Duration::from_secs(5)),
            Some(vec![4, 5])
        );
        assert_eq!(test_end.try_recv_packet(), None);
    }

    #[test]
    fn wait_returns_when_a_packet_arrives_from_another_thread() {
        let (mut a, b) = link(1500);
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            b.send_packet(vec![0x45]);
            b
        });
        let start = Instant::now();
        a.wait(Some(LONG)).unwrap();
        assert!(start.elapsed() < LONG, "wait slept through the packet");
        // Waiting did not consume the packet.
        assert_eq!(recv_one(&mut a), Some(vec![0x45]));
        drop(sender.join().unwrap());
    }

    #[test]
    fn wait_returns_when_woken_from_another_thread() {
        let (mut a, _b) = link(1500);
        let waker = a.waker();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            waker.wake();
        });
        let start = Instant::now();
        a.wait(Some(LONG)).unwrap();
        assert!(start.elapsed() < LONG, "wait slept through the wake");
        t.join().unwrap();
    }

    #[test]
    fn wake_before_wait_makes_wait_return_at_once_and_is_consumed() {
        let (mut a, _b) = link(1500);
        let waker = a.waker();
        waker.wake();
        waker.wake(); // collapses with the first
        let start = Instant::now();
        a.wait(Some(LONG)).unwrap();
        assert!(start.elapsed() < LONG, "an earlier wake was lost");
        // The wakes were consumed: the next wait sleeps its full timeout.
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        a.wait(Some(timeout)).unwrap();
        assert!(start.elapsed() >= timeout, "a stale wake woke wait again");
    }

    #[test]
    fn wait_with_nothing_happening_sleeps_at_least_the_timeout() {
        let (mut a, _b) = link(1500);
        let timeout = Duration::from_millis(100);
        let start = Instant::now();
        a.wait(Some(timeout)).unwrap();
        assert!(start.elapsed() >= timeout);
    }

    #[test]
    fn wait_after_peer_dropped_still_sleeps_the_timeout() {
        let (mut a, b) = link(1500);
        drop(b);
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        a.wait(Some(timeout)).unwrap();
        assert!(start.elapsed() >= timeout, "a gone peer made wait spin");
        assert_eq!(recv_one(&mut a), None);
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (mut a, mut b) = link_with_capacity(1500, 3);
        for i in 0..5u8 {
            a.send(&[i]).unwrap();
        }
        a.send_packet(vec![9]);
        assert_eq!(a.dropped_on_send(), 3);
        for i in 0..3u8 {
            assert_eq!(recv_one(&mut b), Some(vec![i]));
        }
        assert_eq!(recv_one(&mut b), None);
    }

    #[test]
    fn default_queue_holds_4096_packets() {
        let (mut a, _b) = link(1500);
        for _ in 0..DEFAULT_QUEUE_PACKETS {
            a.send(&[0x45]).unwrap();
        }
        assert_eq!(a.dropped_on_send(), 0);
        a.send(&[0x45]).unwrap();
        assert_eq!(a.dropped_on_send(), 1);
    }

    #[test]
    fn send_over_mtu_is_dropped_and_counted() {
        let (mut a, mut b) = link(100);
        a.send(&[0u8; 101]).unwrap();
        a.send(&[0u8; 100]).unwrap();
        assert_eq!(a.dropped_on_send(), 1);
        assert_eq!(recv_one(&mut b).map(|p| p.len()), Some(100));
        assert_eq!(recv_one(&mut b), None);
        assert_eq!(b.mtu(), 100);
    }

    #[test]
    fn an_ethernet_link_carries_the_header_beyond_the_mtu() {
        let (mut a, mut b) = ethernet_link(100);
        a.send(&[0u8; 115]).unwrap();
        a.send(&[0u8; 114]).unwrap();
        assert_eq!(a.dropped_on_send(), 1);
        assert_eq!(recv_one(&mut b).map(|p| p.len()), Some(114));
        assert_eq!(b.mtu(), 100);
    }

    #[test]
    fn sending_to_a_dropped_peer_is_silent() {
        let (mut a, b) = link(1500);
        drop(b);
        a.send(&[0x45]).unwrap();
        a.send_packet(vec![0x45]);
        assert_eq!(a.dropped_on_send(), 0);
    }
}
