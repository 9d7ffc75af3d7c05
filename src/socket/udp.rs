//! `UdpSocket`: datagrams, as with `std::net::UdpSocket`.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::resolve_v4;
use crate::runtime::{stack_gone, Command, StackHandle, UdpDelivery, DATAGRAM_OVERHEAD};
use crate::udp::{SocketId, UdpError};
use crate::wire::udp::MAX_PAYLOAD;
use crate::Stack;

/// A UDP socket on a tunstack [`Stack`].
///
/// Like `std::net::UdpSocket`: `bind`, `send_to`, `recv_from`, `connect`,
/// `send`, `recv`, read timeouts. A datagram longer than the buffer given to
/// `recv_from` is truncated, as on Linux. A read that times out fails with
/// `ErrorKind::WouldBlock`, as `std` does on Linux.
pub struct UdpSocket {
    stack: StackHandle,
    id: SocketId,
    local: SocketAddrV4,
    rx: Receiver<UdpDelivery>,
    queued: Arc<AtomicUsize>,
    peer: Mutex<Option<SocketAddrV4>>,
    read_timeout: Mutex<Option<Duration>>,
}

fn udp_error(e: UdpError) -> io::Error {
    let kind = match e {
        UdpError::AddrInUse => io::ErrorKind::AddrInUse,
        UdpError::AddrNotAvailable | UdpError::NoEphemeralPort => io::ErrorKind::AddrNotAvailable,
        UdpError::InvalidRemote => io::ErrorKind::InvalidInput,
        UdpError::NotFound => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, e.to_string())
}

impl UdpSocket {
    /// Binds a socket to `addr` on `stack` (`0.0.0.0` or the stack's address;
    /// port 0 picks an ephemeral port).
    pub fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        let local = resolve_v4(addr)?;
        let handle = stack.handle().clone();
        let binding = handle
            .call(|reply| Command::UdpBind { local, reply })?
            .map_err(|e| {
                io::Error::new(udp_error(e).kind(), format!("binding UDP {local}: {e}"))
            })?;
        Ok(UdpSocket {
            stack: handle,
            id: binding.id,
            local: binding.local,
            rx: binding.rx,
            queued: binding.queued,
            peer: Mutex::new(None),
            read_timeout: Mutex::new(None),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::V4(self.local))
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.peer().map(SocketAddr::V4).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected")
        })
    }

    fn peer(&self) -> Option<SocketAddrV4> {
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one datagram to `addr`. Fails with `InvalidInput` when it is
    /// longer than 65,507 bytes (the most UDP over IPv4 carries).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve_v4(addr)?;
        self.send_datagram(buf, to)
    }

    fn send_datagram(&self, buf: &[u8], to: SocketAddrV4) -> io::Result<usize> {
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
        self.stack.send(Command::UdpSend {
            id: self.id,
            to,
            payload: buf.to_vec(),
        })?;
        Ok(buf.len())
    }

    /// Receives one datagram: its length (truncated to `buf`) and sender. On a
    /// connected socket, an ICMP port unreachable from the peer makes the next
    /// receive fail with `ConnectionRefused`, as on Linux.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let timeout = *self
            .read_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let queued = match timeout {
            None => self.rx.recv().map_err(|_| stack_gone())?,
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(d) => d,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "UDP read timed out",
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => return Err(stack_gone()),
            },
        };
        let (from, payload) = match queued {
            UdpDelivery::Datagram(from, payload) => (from, payload),
            // As on Linux, an ICMP error for a connected socket fails the next receive.
            UdpDelivery::Error(kind) => {
                return Err(io::Error::new(kind, "ICMP: destination unreachable"))
            }
        };
        self.queued
            .fetch_sub(payload.len() + DATAGRAM_OVERHEAD, Ordering::AcqRel);
        let n = payload.len().min(buf.len());
        buf[..n].copy_from_slice(&payload[..n]);
        Ok((n, SocketAddr::V4(from)))
    }

    /// Sets the peer: `send` goes there, and only its datagrams are received.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let remote = resolve_v4(addr)?;
        let id = self.id;
        self.stack
            .call(|reply| Command::UdpConnect { id, remote, reply })?
            .map_err(udp_error)?;
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner) = Some(remote);
        Ok(())
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let to = self.peer().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "UDP socket is not connected")
        })?;
        self.send_datagram(buf, to)
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// Sets the read timeout (`None`: block forever). Zero is refused, as in `std`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        *self
            .read_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = timeout;
        Ok(())
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .read_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let _ = self.stack.send(Command::UdpClose { id: self.id });
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .field("peer", &self.peer())
            .finish()
    }
}
