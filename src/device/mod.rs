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
}
