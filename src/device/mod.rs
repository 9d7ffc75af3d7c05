//! Devices: where IP packets enter and leave the stack.
//!
//! A [`Device`] moves whole IPv4 packets (to the stack; underneath, a TAP
//! device and the middleware around it move Ethernet frames, and
//! [`ethernet::EthernetDevice`] turns them into packets). The runtime asks it for packets
//! without blocking (`recv`), writes packets out (`send`), and sleeps in
//! `wait` until a packet may be ready, the timeout passes, or another thread
//! fires the device's [`Waker`].
//!
//! Implementations: [`tun::TunDevice`] (a Linux TUN interface),
//! [`memory::MemoryDevice`] (an in-memory link for tests), and middleware
//! that wraps any device: [`capture::Capture`] (pcap of every packet) and
//! [`fault::FaultInjector`] (drops, delays, duplicates and reorders on
//! purpose). Middleware and the in-memory link move bytes, so they work
//! at either layer (IP packets or Ethernet frames); only their offload
//! paths (super-segments, partial checksums) look inside, and offload is
//! off in TAP mode. [`relay::Relay`] joins two devices through a fault injector.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub mod capture;
pub mod ethernet;
pub mod fault;
pub mod memory;
pub mod pcap;
pub mod pcapng;
pub mod relay;
pub mod tun;

pub use crate::wire::gso::{RxMeta, TxMeta};

/// Interrupts a [`Device::wait`] from another thread.
#[derive(Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    /// A waker that calls `f` to interrupt the device's wait.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Waker {
        Waker(Arc::new(f))
    }

    /// Wakes the device's `wait`, now or at its next call.
    pub fn wake(&self) {
        (self.0)()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

/// What a device and the kernel behind it dropped, beside the stack's own
/// counters. `None` where the device cannot tell (an in-memory link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Packets the stack sent that the device dropped (its queue full, the
    /// link down).
    pub send_dropped: u64,
    /// Packets the kernel dropped on the way *to* the stack: a TUN's
    /// `tx_dropped`, which grows when the stack does not drain the queue
    /// (`txqueuelen` deep) fast enough.
    pub kernel_to_stack_dropped: Option<u64>,
    /// Packets the kernel dropped after the stack wrote them: the TUN's
    /// `rx_dropped`.
    pub stack_to_kernel_dropped: Option<u64>,
    /// The device's queue length toward the stack, in packets (`txqueuelen`).
    pub queue_len: Option<u32>,
    /// The device takes and gives TCP super-segments (offload on).
    pub offload: bool,
    /// TCP super-segments the device handed to the stack.
    pub gso_received: u64,
    /// TCP super-segments the stack wrote to the device.
    pub gso_sent: u64,
    /// Offloaded packets of a kind the stack does not take, dropped.
    pub gso_unsupported: u64,
    /// What fault injection did, when it is on.
    pub faults: Option<fault::FaultStats>,
    /// The link layer's counters (TAP mode).
    pub link: Option<crate::stats::LinkStats>,
}

/// Whether a TUN device takes segmentation and checksum offload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Offload {
    /// On where the kernel accepts it, else plain packets (said once in
    /// the log). The environment variable `TUNSTACK_OFFLOAD=on|off`
    /// overrides it (the test suites use it to run both ways).
    #[default]
    Auto,
    /// On; opening the device fails where the kernel refuses.
    On,
    /// Off: one read or write per packet, checksums in software.
    Off,
}

impl Offload {
    /// What `Auto` means here: `TUNSTACK_OFFLOAD` if set to `on` or
    /// `off`, else `Auto`.
    pub fn resolve(self) -> Offload {
        if self != Offload::Auto {
            return self;
        }
        match std::env::var("TUNSTACK_OFFLOAD").as_deref() {
            Ok("on") => Offload::On,
            Ok("off") => Offload::Off,
            _ => Offload::Auto,
        }
    }
}

impl std::str::FromStr for Offload {
    type Err = String;
    fn from_str(s: &str) -> Result<Offload, String> {
        match s {
            "auto" => Ok(Offload::Auto),
            "on" => Ok(Offload::On),
            "off" => Ok(Offload::Off),
            _ => Err(format!("{s:?}: expected on, off or auto")),
        }
    }
}

impl fmt::Display for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Offload::Auto => "auto",
            Offload::On => "on",
            Offload::Off => "off",
        })
    }
}

/// Where a received packet lies in the caller's buffer, and what the
/// device says about it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Offset of the packet in the buffer (after any device header).
    pub start: usize,
    /// Its length.
    pub len: usize,
    /// The device's metadata.
    pub meta: RxMeta,
}

/// A link that carries IPv4 packets.
pub trait Device: Send {
    /// The largest IP packet the link carries, in bytes.
    fn mtu(&self) -> usize;

    /// Takes one packet into `buf` without blocking: `Ok(Some(len))`, or
    /// `Ok(None)` when nothing is queued. `buf` is at least 65,535 bytes.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Sends one packet. A full link may drop it, as a real link does.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;

    /// Blocks until a packet may be ready, `timeout` passes (`None`: no
    /// limit), or the [`Waker`] fires. Spurious returns are allowed. A wake
    /// that happens before the call makes it return at once.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle other threads use to interrupt [`Device::wait`].
    fn waker(&self) -> Waker;

    /// What the device (and the kernel behind it) dropped.
    fn counters(&self) -> DeviceCounters {
        DeviceCounters::default()
    }

    /// Whether the device takes TCP super-segments and partial checksums
    /// ([`TxMeta`]) as they are, and may hand out super-segments
    /// ([`RxMeta`]): a TUN with offload on. The stack builds segments of
    /// up to 64 KiB only for such a device.
    fn offload(&self) -> bool {
        false
    }

    /// [`Device::recv`], with where the packet lies in `buf` and what the
    /// device says about it. `buf` is at least 65,535 bytes plus
    /// [`crate::wire::gso::VNET_HDR_LEN`].
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        Ok(self.recv(buf)?.map(|len| Received {
            start: 0,
            len,
            meta: RxMeta::default(),
        }))
    }

    /// [`Device::send`] for a packet with metadata. A device without
    /// offload gets what the metadata asks done in software first: the
    /// super-segment cut, the checksum completed.
    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        if meta.is_plain() {
            return self.send(packet);
        }
        send_in_software(packet, meta, &mut |p| self.send(p))
    }

    /// What the stack did with the packet the last `recv_with` returned,
    /// in words ([`crate::notes`]): a pcapng capture writes it as the
    /// packet's comment. Called only while notes are on; ignored by
    /// default.
    fn note_received(&mut self, note: &str) {
        let _ = note;
    }

    /// [`Device::send_with`] for a packet the stack has a note on: a
    /// pcapng capture writes it as the packet's comment. Called only
    /// while notes are on; by default the note is ignored.
    fn send_noted(&mut self, packet: &[u8], meta: TxMeta, note: &str) -> io::Result<()> {
        let _ = note;
        self.send_with(packet, meta)
    }

    /// A packet the stack sent that the device could not deliver because
    /// its next hop never answered address resolution (a TAP's ARP), for
    /// the runtime to report to the socket that sent it. A device without
    /// a link layer has none.
    fn pop_unreachable(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// Does in software what `meta` asks of a device (cut a super-segment,
/// complete a partial checksum) and sends each packet with `send`.
pub(crate) fn send_in_software(
    packet: &[u8],
    meta: TxMeta,
    send: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut result = Ok(());
    crate::wire::gso::segment(packet, meta.gso_size, &mut |p| {
        if result.is_ok() {
            result = send(p);
        }
    });
    result
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).recv(buf)
    }
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        (**self).send(packet)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).wait(timeout)
    }
    fn waker(&self) -> Waker {
        (**self).waker()
    }
    fn counters(&self) -> DeviceCounters {
        (**self).counters()
    }
    fn offload(&self) -> bool {
        (**self).offload()
    }
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        (**self).recv_with(buf)
    }
    fn send_with(&mut self, packet: &[u8], meta: TxMeta) -> io::Result<()> {
        (**self).send_with(packet, meta)
    }
    fn note_received(&mut self, note: &str) {
        (**self).note_received(note)
    }
    fn send_noted(&mut self, packet: &[u8], meta: TxMeta, note: &str) -> io::Result<()> {
        (**self).send_noted(packet, meta, note)
    }
    fn pop_unreachable(&mut self) -> Option<Vec<u8>> {
        (**self).pop_unreachable()
    }
}
