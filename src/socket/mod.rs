//! The application API, shaped like `std::net`.
//!
//! Handles are `Send + Sync`; they never touch protocol state, only send
//! commands to the runtime and read their own queues.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

pub mod aio;
pub(crate) mod handle;
pub mod tcp;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// Resolves `addr` to its first socket address, of either family. An
/// IPv4-mapped IPv6 address (`[::ffff:10.0.0.1]`) is taken as the IPv4
/// address it stands for, as Linux does on a dual-stack socket; the
/// scope and flow label of an IPv6 address are dropped.
pub(crate) fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddr> {
    match addr.to_socket_addrs()?.next() {
        Some(a) => Ok(canonical(a)),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to use",
        )),
    }
}

/// `a` as the stack keys it: IPv4-mapped IPv6 as IPv4, IPv6 without scope
/// or flow label.
pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => SocketAddr::new((*v6.ip()).into(), v6.port()),
        },
        v4 => v4,
    }
}
