//! Wire formats: views and builders over `etherparse`, checksums. No state.
//!
//! Parsing never panics: every view checks lengths first and returns an error
//! that the IP layer turns into a counted drop.

pub mod checksum;
pub mod gso;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod packet;
pub mod tcp;
pub mod udp;
