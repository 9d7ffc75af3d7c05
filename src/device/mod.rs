//! Devices: where IP packets enter and leave the stack.
//!
//! A [`Device`] moves whole IPv4 packets. The runtime asks it for packets
//! without blocking (`recv`), writes packets out (`send`), and sleeps in
//! `wait` until a packet may be ready, the timeout passes, or another thread
//! fires the device's [`Waker`].
//!
//! Implementations: [`tun::TunDevice`] (a Linux TUN interface),
//! [`memory::MemoryDevice`] (an in-memory link for tests), and middleware
//! that wraps any device: [`capture::Capture`] (pcap of every packet) and
//! [`fault::FaultInjector`] (drops and delays on purpose).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub mod capture;
pub mod fault;
pub mod memory;
pub mod pcap;
pub mod tun;

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
}
