//! Packet-level conformance suite for the TCP core, in the spirit of gVisor's
//! packetimpact: a scripted peer crafts segments byte by byte, feeds them to
//! a [`tunstack::tcp::TcpLayer`] on a virtual clock, and asserts the exact
//! replies (flags, sequence and acknowledgment numbers, window, options) and
//! their timing. Everything is in memory and deterministic.
//!
//! Every test names the requirement it proves — an RFC 9293 Appendix B id
//! (`MUST-13`), an RFC 5961 section (`RFC 5961 §4`) or RFC 6528 — in a doc
//! comment, so `grep -rn MUST-13 tests/conformance*` finds it.
//! `docs/CONFORMANCE.md` maps every requirement to its tests.
//!
//! The bench lives in `conformance/bench.rs` (the scripted peer and the
//! clock) and `conformance/segment.rs` (building and parsing segments); the
//! tests are grouped by topic in the other files of `conformance/`.
//!
//! A test marked `#[ignore = "BUG: ..."]` documents a known nonconformance
//! of the core: it states the expected behaviour and stays until the core
//! is fixed (`cargo test --test conformance -- --ignored` runs them).

#[macro_use]
#[path = "conformance/segment.rs"]
mod segment;

#[path = "conformance/bench.rs"]
mod bench;

#[path = "conformance/ack.rs"]
mod ack;
#[path = "conformance/bbr.rs"]
mod bbr;
#[path = "conformance/checksum.rs"]
mod checksum;
#[path = "conformance/close.rs"]
mod close;
#[path = "conformance/data.rs"]
mod data;
#[path = "conformance/iplevel.rs"]
mod iplevel;
#[path = "conformance/ipv6.rs"]
mod ipv6;
#[path = "conformance/isn.rs"]
mod isn;
#[path = "conformance/keepalive.rs"]
mod keepalive;
#[path = "conformance/open.rs"]
mod open;
#[path = "conformance/options.rs"]
mod options;
#[path = "conformance/pacing.rs"]
mod pacing;
#[path = "conformance/rack.rs"]
mod rack;
#[path = "conformance/recovery.rs"]
mod recovery;
#[path = "conformance/reset.rs"]
mod reset;
#[path = "conformance/retransmit.rs"]
mod retransmit;
#[path = "conformance/sack.rs"]
mod sack;
#[path = "conformance/timestamps.rs"]
mod timestamps;
#[path = "conformance/undo.rs"]
mod undo;
#[path = "conformance/window.rs"]
mod window;
