//! TCP: a sans-IO core (RFC 9293 with RFC 5681/6298/6528/5961 and RFC 7323
//! window scaling).
//!
//! Input is `(now, segment)` and application calls; output is segments,
//! events and the next deadline. No threads, no clock, no device: the
//! interface ([`crate::iface::Interface`], which the runtime drives) runs a
//! [`TcpLayer`] in a loop —
//!
//! 1. for every received IPv4 packet carrying TCP, call
//!    [`TcpLayer::on_segment`] with its addresses and TCP bytes;
//! 2. at [`TcpLayer::poll_at`], call [`TcpLayer::poll`];
//! 3. after any call, drain [`TcpLayer::pop_output`] into IPv4 packets and
//!    [`TcpLayer::pop_event`] into the socket API.
//!
//! One module per concern: [`seq`] (wrapping sequence numbers), [`state`]
//! (the 11 states), [`isn`] (RFC 6528), [`rtt`] (RFC 6298), [`congestion`]
//! (NewReno, and CUBIC with HyStart++, RFC 9438 / RFC 9406), [`buffer`]
//! (send ring, receive ring with reassembly), and,
//! private, the per-connection state machine split into `conn` (TCB and
//! application calls), `input` (segment arrival), `output` (segment
//! generation) and `timers` (over the plain deadlines of `deadlines`),
//! plus `listener` and `layer` (the table; what reaches a listener in
//! `layer/listen.rs`).
//!
//! Every state transition is logged at debug level as
//! `{peer} -> {us} OLD -> NEW`, e.g. `10.0.0.1:40000 -> 10.0.0.2:7 SYN-RCVD -> ESTABLISHED`
//! (listeners print `*:*` as the peer).

mod api;
pub mod buffer;
mod chrono;
mod config;
pub mod congestion;
mod conn;
pub(crate) mod cookie;
mod deadlines;
pub mod icmp;
mod input;
pub mod isn;
mod layer;
mod listener;
pub mod options;
mod outbox;
mod output;
mod rack;
pub mod rtt;
mod scoreboard;
pub mod seq;
pub mod state;
pub mod stream;
mod timers;
mod undo;
mod urgent;

#[cfg(test)]
mod tests;

pub use api::{ConnId, ConnInfo, ListenerId, OutSegment, TcpError, TcpEvent, TcpStats};
pub use chrono::SendTimes;
pub use config::{KeepaliveConfig, TcpConfig};
pub use layer::{ephemeral_port_owner, TcpLayer};
pub use options::TcpOption;
pub use seq::SeqNum;
pub use state::State;
