//! # tunstack
//!
//! A userspace TCP/IP stack that runs over a Linux TUN device.
//!
//! Packets flow up and down one path, and each layer only knows the one below:
//!
//! ```text
//!  TUN fd ──► device ──► ip (validate, reassemble, ICMP) ──► udp / tcp (pure state) ──► socket API ──► app
//!    ▲           │  (capture middleware wraps any device)             │
//!    └───────────┴──────── runtime: the one thread that owns the stack, its timers and its queues
//! ```
//!
//! - [`wire`]: views and builders over `etherparse`, checksums. No state.
//! - [`device`]: the [`device::Device`] trait, the TUN device, an in-memory
//!   link, and the pcap capture middleware.
//! - [`ip`]: IPv4 input validation, reassembly, fragmentation, ICMP.
//! - [`udp`]: the UDP port table (sans-IO).
//! - [`tcp`]: the TCP core (sans-IO).
//! - [`iface`]: the sans-IO core that ties the protocol layers together.
//! - [`runtime`]: the thread that owns the core and the device.
//! - [`socket`]: the `std::net`-shaped API applications use.
//!
//! The protocol core never reads a clock or touches a device: time is passed
//! in ([`time::Instant`]), output is returned, and the next deadline is
//! reported by `poll_at`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod device;
pub mod iface;
pub mod ip;
pub mod runtime;
pub mod services;
pub mod socket;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;

pub use config::Config;
pub use runtime::{Stack, StackHandle};
pub use socket::aio;
#[cfg(feature = "tokio")]
pub use socket::tokio;
pub use socket::{TcpListener, TcpStream, UdpSocket};
pub use stats::Stats;
