//! `UdpSocket`: datagrams, as with `std::net::UdpSocket` (and the options
//! `socket2` adds). The blocking socket here and the async ones
//! ([`crate::aio::UdpSocket`], `tunstack::tokio::UdpSocket`) share one
//! handle to the socket's queues: one attempt at each operation that either
//! completes or says to wait.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::resolve;
use crate::ip::IpOptions;
use crate::runtime::{stack_gone, Command, StackHandle, UdpDelivery, UdpShared, UdpState};
use crate::udp::{SocketId, UdpError};
use crate::wire::udp::MAX_PAYLOAD;
use crate::Stack;

pub(crate) fn udp_error(e: UdpError) -> io::Error {
    let kind = match e {
        UdpError::AddrInUse => io::ErrorKind::AddrInUse,
        UdpError::AddrNotAvailable | UdpError::NoEphemeralPort => io::ErrorKind::AddrNotAvailable,
        UdpError::InvalidRemote => io::ErrorKind::InvalidInput,
        UdpError::NotFound => io::ErrorKind::NotConnected,
        UdpError::NoRoute => io::ErrorKind::NetworkUnreachable,
    };
    io::Error::new(kind, e.to_string())
}

/// A bound UDP socket's handle: what the blocking and async sockets share.
/// Dropping it closes the socket.
pub(crate) struct UdpHandle {
    pub(crate) stack: StackHandle,
    pub(crate) id: SocketId,
    pub(crate) local: SocketAddr,
    pub(crate) shared: Arc<UdpShared>,
    peer: Mutex<Option<SocketAddr>>,
    broadcast: AtomicBool,
    /// 0: the stack's default TTL.
    ttl: AtomicU8,
    tos: AtomicU8,
}

impl UdpHandle {
    /// Binds (a blocking call).
    pub(crate) fn bind(stack: &StackHandle, local: SocketAddr) -> io::Result<UdpHandle> {
        let binding = stack
            .call(|reply| Command::UdpBind { local, reply })?
            .map_err(|e| bind_error(local, e))?;
        Ok(UdpHandle::new(stack.clone(), binding))
    }

    /// Binds (awaited).
    pub(crate) async fn bind_async(
        stack: &StackHandle,
        local: SocketAddr,
    ) -> io::Result<UdpHandle> {
        let binding = stack
            .call_async(|reply| Command::UdpBind { local, reply })
            .await?
            .map_err(|e| bind_error(local, e))?;
        Ok(UdpHandle::new(stack.clone(), binding))
    }

    fn new(stack: StackHandle, b: crate::runtime::UdpBinding) -> UdpHandle {
        UdpHandle {
            stack,
            id: b.id,
            local: b.local,
            shared: b.shared,
            peer: Mutex::new(None),
            broadcast: AtomicBool::new(false),
            ttl: AtomicU8::new(0),
            tos: AtomicU8::new(0),
        }
    }

    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.peer().ok_or_else(not_connected)
    }

    /// Records the peer after the runtime accepted it.
    pub(crate) fn set_peer(&self, remote: SocketAddr) {
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner) = Some(remote);
    }

    pub(crate) fn set_broadcast(&self, on: bool) {
        self.broadcast.store(on, Ordering::Relaxed);
    }

    pub(crate) fn broadcast(&self) -> bool {
        self.broadcast.load(Ordering::Relaxed)
    }

    pub(crate) fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        // As Linux: 1..=255 (0 is refused, RFC 1122 §3.2.1.7).
        match u8::try_from(ttl) {
            Ok(t) if t > 0 => {
                self.ttl.store(t, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TTL must be between 1 and 255",
            )),
        }
    }

    pub(crate) fn ttl(&self, default: u8) -> u32 {
        match self.ttl.load(Ordering::Relaxed) {
            0 => u32::from(default),
            t => u32::from(t),
        }
    }

    pub(crate) fn set_tos(&self, tos: u32) -> io::Result<()> {
        let tos = u8::try_from(tos).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "TOS is one byte (0..=255)")
        })?;
        self.tos.store(tos, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn tos(&self) -> u32 {
        u32::from(self.tos.load(Ordering::Relaxed))
    }

    fn ip_options(&self) -> IpOptions {
        IpOptions {
            ttl: match self.ttl.load(Ordering::Relaxed) {
                0 => None,
                t => Some(t),
            },
            tos: self.tos.load(Ordering::Relaxed),
            dont_fragment: false,
        }
    }

    /// Why `buf` cannot be sent to `to` at all, if it cannot.
    fn check_send(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        if buf.len() > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "datagram too large: {} bytes (UDP over IPv4 carries at most {MAX_PAYLOAD})",
                    buf.len()
                ),
            ));
        }
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot send to {to}"),
            ));
        }
        // An IPv4 socket cannot reach IPv6 (an IPv6 one reaches IPv4 only
        // from `[::]`, dual-stack), nor a stack without IPv6.
        let reachable = match (self.local.ip(), to.ip()) {
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
            (IpAddr::V6(l), IpAddr::V4(_)) => l.is_unspecified(),
            (_, IpAddr::V6(_)) => self.stack.addrs6[0].is_some(),
            _ => true,
        };
        if !reachable {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                format!("cannot send to {to} from {}", self.local),
            ));
        }
        // As Linux: a broadcast needs SO_BROADCAST, or EACCES.
        let broadcast = match to.ip() {
            IpAddr::V4(ip) => ip.is_broadcast() || ip == self.stack.broadcast,
            IpAddr::V6(_) => false,
        };
        if broadcast && !self.broadcast() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("sending to the broadcast address {to} needs set_broadcast(true)"),
            ));
        }
        Ok(())
    }

    /// One attempt to send. `None`: the send buffer is full, wait.
    pub(crate) fn try_send(
        &self,
        st: &mut UdpState,
        buf: &[u8],
        to: SocketAddr,
    ) -> Option<io::Result<usize>> {
        if let Err(e) = self.check_send(buf, to) {
            return Some(Err(e));
        }
        if st.gone {
            return Some(Err(stack_gone()));
        }
        if !st.reserve_send(buf.len()) {
            return None;
        }
        Some(
            self.stack
                .send(Command::UdpSend {
                    id: self.id,
                    to,
                    payload: buf.to_vec(),
                    ip: self.ip_options(),
                })
                .map(|()| buf.len()),
        )
    }

    /// The connected peer, for `send`.
    pub(crate) fn connected_peer(&self) -> io::Result<SocketAddr> {
        self.peer().ok_or_else(not_connected)
    }
}

impl Drop for UdpHandle {
    fn drop(&mut self) {
        let _ = self.stack.send(Command::UdpClose { id: self.id });
    }
}

fn bind_error(local: SocketAddr, e: UdpError) -> io::Error {
    io::Error::new(udp_error(e).kind(), format!("binding UDP {local}: {e}"))
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected")
}

/// One attempt to receive (or, with `peek`, look at) the next datagram.
/// `None`: nothing queued, wait. As on Linux, an ICMP error reported for a
/// connected socket fails the next receive.
pub(crate) fn try_recv(
    st: &mut UdpState,
    buf: &mut [u8],
    peek: bool,
) -> Option<io::Result<(usize, SocketAddr)>> {
    let result = match st.front() {
        Some(UdpDelivery::Datagram(from, payload)) => {
            let n = payload.len().min(buf.len());
            buf[..n].copy_from_slice(&payload[..n]);
            Ok((n, *from))
        }
        Some(UdpDelivery::Error(kind)) => {
            Err(io::Error::new(*kind, "ICMP: the peer is unreachable"))
        }
        None if st.gone => return Some(Err(stack_gone())),
        None => return None,
    };
    // An error is reported once, even to a peek.
    if !peek || result.is_err() {
        st.pop();
    }
    Some(result)
}

/// A UDP socket on a tunstack [`Stack`].
///
/// Like `std::net::UdpSocket`: `bind`, `send_to`, `recv_from`, `peek_from`,
/// `connect`, `send`, `recv`, read and write timeouts, `set_nonblocking`,
/// `set_broadcast`, `set_ttl`, plus `socket2`'s `set_tos` and
/// `set_recv_buffer_size`. A datagram longer than the buffer given to
/// `recv_from` is truncated, as on Linux. A read that times out fails with
/// `ErrorKind::WouldBlock`, as `std` does on Linux.
///
/// ```
/// use tunstack::device::memory;
/// use tunstack::{Config, Stack, UdpSocket};
///
/// // Two stacks on an in-memory link: 10.0.0.2 and 10.0.0.1.
/// let (a, b) = memory::link(1500);
/// let server = Stack::with_device(Config::default(), a)?;
/// let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
///
/// let s = UdpSocket::bind(&server, "0.0.0.0:9000")?;
/// let c = UdpSocket::bind(&client, "0.0.0.0:0")?;
/// c.send_to(b"hello", "10.0.0.2:9000")?;
/// let mut buf = [0u8; 64];
/// let (n, from) = s.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// assert_eq!(from.port(), c.local_addr()?.port());
/// s.send_to(b"hi!", from)?;
/// assert_eq!(c.recv_from(&mut buf)?.0, 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UdpSocket {
    pub(crate) handle: UdpHandle,
    default_ttl: u8,
    read_timeout: Mutex<Option<Duration>>,
    write_timeout: Mutex<Option<Duration>>,
    nonblocking: AtomicBool,
}

impl UdpSocket {
    /// Binds a socket to `addr` on `stack` (`0.0.0.0` or the stack's address;
    /// port 0 picks an ephemeral port).
    pub fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        let local = resolve(addr)?;
        Ok(UdpSocket {
            handle: UdpHandle::bind(stack.handle(), local)?,
            default_ttl: stack.default_ttl(),
            read_timeout: Mutex::new(None),
            write_timeout: Mutex::new(None),
            nonblocking: AtomicBool::new(false),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.local)
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.handle.peer_addr()
    }

    /// Sends one datagram to `addr`. Fails with `InvalidInput` when it is
    /// longer than 65,507 bytes (the most UDP over IPv4 carries), and with
    /// `PermissionDenied` for a broadcast address unless
    /// [`UdpSocket::set_broadcast`] is on. Blocks while the socket's send
    /// buffer is full.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(addr)?;
        self.send_datagram(buf, to)
    }

    fn send_datagram(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let deadline = deadline(&self.write_timeout);
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        loop {
            if let Some(r) = self.handle.try_send(&mut st, buf, to) {
                return r;
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let (g, expired) = shared.wait(st, deadline);
            st = g;
            if expired {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "UDP write timed out",
                ));
            }
        }
    }

    fn receive(&self, buf: &mut [u8], peek: bool) -> io::Result<(usize, SocketAddr)> {
        let deadline = deadline(&self.read_timeout);
        let shared = &self.handle.shared;
        let mut st = shared.lock();
        loop {
            if let Some(r) = try_recv(&mut st, buf, peek) {
                return r;
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let (g, expired) = shared.wait(st, deadline);
            st = g;
            if expired {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "UDP read timed out",
                ));
            }
        }
    }

    /// Receives one datagram: its length (truncated to `buf`) and sender. On a
    /// connected socket, an ICMP port unreachable from the peer makes the next
    /// receive fail with `ConnectionRefused`, as on Linux.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.receive(buf, false)
    }

    /// Like [`UdpSocket::recv_from`], but the datagram stays queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.receive(buf, true)
    }

    /// Sets the peer: `send` goes there, and only its datagrams are received.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let remote = resolve(addr)?;
        let id = self.handle.id;
        self.handle
            .stack
            .call(|reply| Command::UdpConnect { id, remote, reply })?
            .map_err(udp_error)?;
        self.handle.set_peer(remote);
        Ok(())
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_datagram(buf, self.handle.connected_peer()?)
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// Like [`UdpSocket::recv`], but the datagram stays queued.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.peek_from(buf).map(|(n, _)| n)
    }

    /// `SO_BROADCAST`: allows sending to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.handle.set_broadcast(on);
        Ok(())
    }

    /// Whether `SO_BROADCAST` is on.
    pub fn broadcast(&self) -> io::Result<bool> {
        Ok(self.handle.broadcast())
    }

    /// `IP_TTL` of the datagrams sent (1..=255).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.handle.set_ttl(ttl)
    }

    /// The TTL of the datagrams sent.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.handle.ttl(self.default_ttl))
    }

    /// `IP_TOS`: the type-of-service byte (DSCP and ECN) of the datagrams
    /// sent, as `socket2`'s `set_tos`.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.handle.set_tos(tos)
    }

    /// The type-of-service byte of the datagrams sent.
    pub fn tos(&self) -> io::Result<u32> {
        Ok(self.handle.tos())
    }

    /// `SO_RCVBUF`: bytes of datagrams queued before new ones are dropped
    /// (each datagram counts 64 bytes more than its payload).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.handle.shared.lock().rx_capacity = size.max(1);
        Ok(())
    }

    /// The receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(self.handle.shared.lock().rx_capacity)
    }

    /// `SO_SNDBUF`: bytes queued for sending before `send` blocks.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.handle.shared.lock().tx_capacity = size.max(1);
        Ok(())
    }

    /// The send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(self.handle.shared.lock().tx_capacity)
    }

    /// Non-blocking mode: calls that would wait fail with `WouldBlock`.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the read timeout (`None`: block forever). Zero is refused, as in `std`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.read_timeout, timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .read_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Sets the write timeout (`None`: block forever). Zero is refused, as in `std`.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.write_timeout, timeout)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .write_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }
}

fn set_timeout(slot: &Mutex<Option<Duration>>, timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = timeout;
    Ok(())
}

fn deadline(slot: &Mutex<Option<Duration>>) -> Option<Instant> {
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .map(|t| Instant::now() + t)
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.handle.local)
            .field("peer", &self.handle.peer())
            .finish()
    }
}
