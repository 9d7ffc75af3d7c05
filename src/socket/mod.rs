//! The application API, shaped like `std::net`.
//!
//! Handles are `Send + Sync`; they never touch protocol state, only send
//! commands to the runtime and read their own queues.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};

pub mod aio;
pub(crate) mod handle;
pub mod tcp;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod udp;

pub use tcp::{Incoming, TcpListener, TcpStream};
pub use udp::UdpSocket;

/// Resolves `addr` to the first IPv4 socket address.
pub(crate) fn resolve_v4<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddrV4> {
    let mut saw_v6 = false;
    for a in addr.to_socket_addrs()? {
        match a {
            SocketAddr::V4(v4) => return Ok(v4),
            SocketAddr::V6(_) => saw_v6 = true,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        if saw_v6 {
            "tunstack speaks IPv4 only"
        } else {
            "no address to use"
        },
    ))
}
