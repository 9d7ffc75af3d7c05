//! [`EthernetDevice`]: the IP-packet [`Device`] the stack sees in TAP mode,
//! over a device that moves Ethernet frames.
//!
//! The imperative shell of [`crate::link::EthernetLink`]: it reads the
//! clock, moves frames between the link core and the frame device, and
//! adds the link's deadlines (ARP retries, announcements) to
//! [`Device::wait`]. Incoming IPv4 packets are handed up in place (the
//! frame's payload, no copy); outgoing packets get their Ethernet header
//! here, in a reused buffer. Offload is off: the virtio-net header would
//! sit in front of the Ethernet header, and the TAP is opened without it.

use std::io;
use std::time::Duration;

use super::{send_in_software, Device, DeviceCounters, Received, TxMeta, Waker};
use crate::link::{EthernetLink, MacAddr};
use crate::time::Clock;

/// IP packets over a device that carries Ethernet II frames.
#[derive(Debug)]
pub struct EthernetDevice<D> {
    inner: D,
    link: EthernetLink,
    clock: Clock,
}

impl<D: Device> EthernetDevice<D> {
    /// Puts `link` (the stack's MAC, address and neighbour cache) over
    /// `inner`, a device of Ethernet frames.
    pub fn new(inner: D, link: EthernetLink) -> EthernetDevice<D> {
        EthernetDevice {
            inner,
            link,
            clock: Clock::new(),
        }
    }

    /// The stack's MAC.
    pub fn mac(&self) -> MacAddr {
        self.link.mac()
    }

    /// The link layer's state.
    pub fn link(&self) -> &EthernetLink {
        &self.link
    }

    /// The frame device underneath.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Runs the link's due timers and writes every frame it queued.
    fn service(&mut self) {
        let now = self.clock.now();
        if self.link.poll_at().is_some_and(|t| t <= now) {
            self.link.poll(now);
        }
        self.flush_quietly();
    }

    /// [`EthernetDevice::flush`] on the receive path: a failed write of an
    /// ARP frame is logged, not taken for a failed read (which would stop
    /// the runtime).
    fn flush_quietly(&mut self) {
        if let Err(e) = self.flush() {
            log::warn!("tunstack: device write failed: {e}");
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        while let Some(frame) = self.link.pop_frame() {
            if result.is_ok() {
                result = self.inner.send(&frame);
            }
            self.link.recycle(frame);
        }
        result
    }
}

impl<D: Device> Device for EthernetDevice<D> {
    /// The IP MTU: a TAP's interface MTU does not count the Ethernet header.
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(r) = self.recv_with(buf)? else {
            return Ok(None);
        };
        buf.copy_within(r.start..r.start + r.len, 0);
        Ok(Some(r.len))
    }

    /// The next IP packet, in place inside the frame that carried it.
    /// ARP, neighbour discovery and dropped frames are handled on the way.
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        self.service();
        loop {
            let Some(r) = self.inner.recv_with(buf)? else {
                return Ok(None);
            };
            let now = self.clock.now();
            let end = r.start.saturating_add(r.len).min(buf.len());
            let frame = buf.get(r.start..end).unwrap_or_default();
            let up = self.link.receive(now, frame);
            self.flush_quietly();
            if let Some(ip) = up {
                return Ok(Some(Received {
                    start: r.start + ip.start,
                    len: ip.len(),
                    meta: r.meta,
                }));
            }
        }
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.link.send_ip(self.clock.now(), packet);
        self.flush()
    }

    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        if meta.is_plain() {
            return self.send(packet);
        }
        send_in_software(packet, meta, &mut |p| self.send(p))
    }

    /// The note belongs to the frame the last `recv_with` took from the
    /// inner device (a capture below writes it as that frame's comment).
    /// Notes on packets sent are not passed on: the link may hold a
    /// packet for address resolution and send it in a later frame.
    fn note_received(&mut self, note: &str) {
        self.inner.note_received(note);
    }

    /// Sleeps no later than the link's next timer.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let now = self.clock.now();
        let link = self
            .link
            .poll_at()
            .map(|t| t.saturating_duration_since(now));
        let timeout = match (timeout, link) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.inner.wait(timeout)
    }

    fn waker(&self) -> Waker {
        self.inner.waker()
    }

    fn counters(&self) -> DeviceCounters {
        let mut counters = self.inner.counters();
        counters.offload = false;
        counters.link = Some(self.link.stats());
        counters
    }

    fn offload(&self) -> bool {
        false
    }

    fn pop_unreachable(&mut self) -> Option<Vec<u8>> {
        self.link.pop_unreachable()
    }
}
