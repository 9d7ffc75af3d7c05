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
//! - [`device`]: the [`device::Device`] trait, the TUN (or TAP) device, an
//!   in-memory link, the pcap capture middleware, and in TAP mode the
//!   Ethernet device over the link layer.
//! - [`link`]: TAP mode's link layer (sans-IO): Ethernet II, ARP and the
//!   neighbour cache.
//! - [`ip`]: IPv4 input validation, reassembly, fragmentation, ICMP.
//! - [`udp`]: the UDP port table (sans-IO).
//! - [`tcp`]: the TCP core (sans-IO).
//! - [`iface`]: the sans-IO core that ties the protocol layers together.
//! - [`runtime`]: the thread that owns the core and the device.
//! - [`socket`]: the `std::net`-shaped API applications use.
//! - [`ladder`]: ladder diagrams of TCP connections from a capture file
//!   (`tunstack ladder`), with each side's inferred states.
//!
//! The protocol core never reads a clock or touches a device: time is passed
//! in ([`time::Instant`]), output is returned, and the next deadline is
//! reported by `poll_at`.
//!
//! # Example
//!
//! A [`Stack`] runs on a TUN device ([`Stack::new`]) or on any other
//! [`device::Device`]. Here two stacks talk over an in-memory link, one
//! serving echo with the blocking API, the other connecting to it; on a TUN,
//! the kernel's own programs (`ping`, `curl`, `nc`) are the peer.
//!
//! ```
//! use std::io::{Read, Write};
//! use tunstack::device::memory;
//! use tunstack::{Config, Stack, TcpListener, TcpStream};
//!
//! let (a, b) = memory::link(1500);
//! let server = Stack::with_device(Config::default(), a)?; // 10.0.0.2
//! let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
//!
//! let listener = TcpListener::bind(&server, "0.0.0.0:7")?;
//! std::thread::spawn(move || {
//!     let (mut s, _peer) = listener.accept().unwrap();
//!     let mut buf = [0u8; 64];
//!     let n = s.read(&mut buf).unwrap();
//!     s.write_all(&buf[..n]).unwrap();
//! });
//!
//! let mut c = TcpStream::connect(&client, "10.0.0.2:7")?;
//! c.write_all(b"hello")?;
//! let mut back = [0u8; 5];
//! c.read_exact(&mut back)?;
//! assert_eq!(&back, b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod device;
pub mod iface;
pub mod ip;
pub mod ladder;
pub mod link;
pub mod notes;
pub mod runtime;
pub mod services;
pub mod socket;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;

pub use config::{Config, Medium, Offload};
pub use runtime::{Stack, StackHandle};
pub use socket::aio;
#[cfg(feature = "tokio")]
pub use socket::tokio;
pub use socket::{TcpListener, TcpStream, UdpSocket};
pub use stats::Stats;
