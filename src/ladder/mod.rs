//! Ladder diagrams of TCP connections, drawn from a capture file.
//!
//! The picture every TCP tutorial draws for the three-way handshake and the
//! four-way close: two vertical lines, one per endpoint, one arrow per
//! segment, and each endpoint's TCP state (RFC 9293 §3.3.2) written beside
//! its own line where it changes. A capture holds the segments but not the
//! states; this module infers them from what each side sent and received.
//!
//! The module is pure: [`capture`] turns the bytes of a pcap or pcapng file
//! into TCP segments, [`connections`] groups them by 4-tuple, and
//! [`Connection::ladder`] builds a [`Ladder`], the drawing's model, which
//! [`text`] and [`svg`] render. Only [`cli`], the `tunstack ladder`
//! command, reads and writes files. [`recent`] keeps the last connections'
//! segment headers in memory for the HTTP status page's live ladders.
//!
//! # How states are inferred
//!
//! Each side runs the RFC 9293 §3.10.7 transitions on two kinds of events:
//! sending a segment (SYN: SYN-SENT; FIN: FIN-WAIT-1 or LAST-ACK; RST:
//! CLOSED) and receiving one (the ACK of its SYN or FIN, the peer's SYN,
//! FIN or RST). A segment is sent when it appears in the capture. It is
//! normally received then too, but the capture was taken at one point of the
//! path, so a segment may reach the far side later than it is listed: if
//! the receiver sends segments afterwards whose acknowledgment does not yet
//! cover it, it had not arrived, and its arrival is placed after the last
//! of those (and drawn as its own row when it changes a state). That is how
//! two FINs that cross are told apart from a FIN answered by a FIN: each
//! FIN's ACK field says whether its sender had seen the other one
//! (RFC 9293 §3.6, simultaneous close: both sides go CLOSING).
//!
//! Sequence and acknowledgment numbers are shown relative to each side's
//! initial sequence number (the SYN's), as Wireshark does; windows are
//! scaled when both SYNs carried the window scale option (RFC 7323 §2.2).
//!
//! The marks follow Wireshark's TCP analysis, simplified: a
//! *retransmission* is a segment whose sequence range starts below the
//! highest sequence its sender had sent; a *duplicate ACK* repeats the
//! sender's previous ACK number and window, carries nothing, and leaves data
//! outstanding; a *keepalive probe* (RFC 9293 §3.8.4) carries at most one
//! byte at SND.NXT − 1 when everything was acknowledged; a *zero-window
//! probe* (§3.8.6.1) carries one byte at SND.NXT while the peer's window is
//! zero.

pub mod capture;
pub mod cli;
mod infer;
pub mod recent;
pub mod svg;
pub mod text;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use capture::{tcp_packets, CaptureError, TcpPacket};
pub use cli::{main, LadderArgs};

/// A TCP connection state (RFC 9293 §3.3.2): the stack's own type, by its
/// RFC name ([`State::name`]).
pub use crate::tcp::State;

/// One of the two endpoints: the one that sent the first SYN is drawn on
/// the left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The active opener (or the first sender, without a SYN).
    Left,
    /// The other endpoint.
    Right,
}

impl Side {
    /// 0 for left, 1 for right: the index into two-element arrays.
    pub fn index(self) -> usize {
        match self {
            Side::Left => 0,
            Side::Right => 1,
        }
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// Something worth pointing out about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// Its sequence range had been sent before.
    Retransmission,
    /// The n-th duplicate ACK in a row.
    DupAck(u32),
    /// A keepalive probe: SND.NXT − 1, at most one byte.
    KeepaliveProbe,
    /// The answer to a keepalive probe.
    KeepaliveAck,
    /// A one-byte probe of a zero window.
    ZeroWindowProbe,
    /// The answer to a zero-window probe.
    ZeroWindowProbeAck,
    /// Advertises a zero receive window.
    ZeroWindow,
    /// Only the window changed.
    WindowUpdate,
    /// A SYN received in SYN-SENT: both sides opened at once.
    SimultaneousOpen,
    /// A FIN received in FIN-WAIT-1: the two FINs crossed.
    SimultaneousClose,
    /// An RST answering a SYN: nothing listens on the port.
    Refused,
    /// An RST that ends a connection.
    Reset,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mark::Retransmission => f.write_str("retransmission"),
            Mark::DupAck(n) => write!(f, "dup ACK #{n}"),
            Mark::KeepaliveProbe => f.write_str("keepalive probe"),
            Mark::KeepaliveAck => f.write_str("keepalive ACK"),
            Mark::ZeroWindowProbe => f.write_str("zero-window probe"),
            Mark::ZeroWindowProbeAck => f.write_str("zero-window probe ACK"),
            Mark::ZeroWindow => f.write_str("zero window"),
            Mark::WindowUpdate => f.write_str("window update"),
            Mark::SimultaneousOpen => f.write_str("simultaneous open"),
            Mark::SimultaneousClose => f.write_str("simultaneous close"),
            Mark::Refused => f.write_str("connection refused"),
            Mark::Reset => f.write_str("connection reset"),
        }
    }
}

/// Which way a segment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the left endpoint to the right one.
    LeftToRight,
    /// From the right endpoint to the left one.
    RightToLeft,
}

impl Dir {
    /// The sending side.
    pub fn sender(self) -> Side {
        match self {
            Dir::LeftToRight => Side::Left,
            Dir::RightToLeft => Side::Right,
        }
    }
}

/// What a row of the ladder shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// One segment, as an arrow.
    Segment {
        /// Frame number in the capture file (1-based, as Wireshark counts).
        frame: usize,
        /// Time since the connection's first segment.
        time: Duration,
        /// Direction.
        dir: Dir,
        /// Flags, relative `seq=`/`ack=`, `len=` (if any) and `win=`.
        label: String,
        /// Options worth showing: on SYNs mss, sackOK, TS, wscale; SACK
        /// blocks on others. Empty if none.
        options: String,
    },
    /// A segment drawn earlier reaching `side` now (see the module doc).
    Arrival {
        /// The receiving side.
        side: Side,
        /// The arriving segment's frame number.
        frame: usize,
        /// Its flags, e.g. `FIN+ACK`.
        flags: String,
    },
    /// A long pause between two segments.
    Gap(Duration),
}

/// One row of the ladder: a segment, an arrival or a gap, with what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// What the row shows.
    pub kind: RowKind,
    /// Each side's new states in this row, in order (usually zero or one).
    pub states: [Vec<State>; 2],
    /// What is worth pointing out.
    pub marks: Vec<Mark>,
}

impl Row {
    /// The marks as both drawings write them: `[retransmission]`, ...
    pub fn mark_labels(&self) -> Vec<String> {
        self.marks.iter().map(|m| format!("[{m}]")).collect()
    }

    /// What a segment row writes beside its arrow: the options (if any),
    /// then the marks.
    pub fn details(&self, options: &str) -> Vec<String> {
        let mut details = Vec::new();
        if !options.is_empty() {
            details.push(options.to_string());
        }
        details.extend(self.mark_labels());
        details
    }
}

/// The model of one connection's ladder diagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ladder {
    /// The left and right endpoints.
    pub endpoints: [SocketAddr; 2],
    /// Each side's state before the first segment.
    pub initial: [State; 2],
    /// The rows, top to bottom.
    pub rows: Vec<Row>,
    /// Each side's state when the capture ends.
    pub last: [State; 2],
    /// From the first segment to the last.
    pub duration: Duration,
}

impl Ladder {
    /// `side`'s states in order: the initial one, then every change.
    pub fn states(&self, side: Side) -> Vec<State> {
        let i = side.index();
        let mut out = vec![self.initial[i]];
        for row in &self.rows {
            out.extend(&row.states[i]);
        }
        out
    }

    /// Every mark, with the frame of the segment it is on.
    pub fn marks(&self) -> Vec<(usize, Mark)> {
        self.rows
            .iter()
            .flat_map(|row| {
                let frame = match row.kind {
                    RowKind::Segment { frame, .. } | RowKind::Arrival { frame, .. } => frame,
                    RowKind::Gap(_) => 0,
                };
                row.marks.iter().map(move |m| (frame, *m))
            })
            .collect()
    }

    /// The lines said under the drawing when the capture ends: a side in
    /// TIME-WAIT waits 2×MSL (RFC 9293 §3.10.7.4) after the capture stops.
    pub fn end_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for (i, state) in self.last.iter().enumerate() {
            if *state == State::TimeWait {
                notes.push(format!(
                    "the capture ends with {} in TIME-WAIT: it stays there for 2*MSL, then CLOSED",
                    self.endpoints[i]
                ));
            }
        }
        notes
    }
}

/// One TCP connection's segments, in capture order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The segments, in file order.
    pub packets: Vec<TcpPacket>,
}

impl Connection {
    /// The left endpoint (the one that sent the first SYN without ACK, or
    /// failing that the destination of the first SYN+ACK, or the first
    /// sender) and the right one.
    pub fn endpoints(&self) -> Option<[SocketAddr; 2]> {
        let f = |p: &&TcpPacket| p.header.flags.syn;
        let first = self.packets.first()?;
        let left = match self.packets.iter().find(f) {
            Some(p) if !p.header.flags.ack => p.src,
            Some(p) => p.dst,
            None => first.src,
        };
        let right = if first.src == left {
            first.dst
        } else {
            first.src
        };
        Some([left, right])
    }

    /// The ladder diagram of this connection.
    pub fn ladder(&self) -> Ladder {
        infer::build(self)
    }

    /// Whether `endpoint` is one of this connection's two ends.
    pub fn has_endpoint(&self, endpoint: SocketAddr) -> bool {
        self.packets
            .first()
            .is_some_and(|p| p.src == endpoint || p.dst == endpoint)
    }
}

/// Groups segments into connections by 4-tuple, in order of first segment.
/// A SYN without ACK on a 4-tuple whose connection already ended (a FIN or
/// an RST was seen) and with a new sequence number starts a new connection.
pub fn connections(packets: Vec<TcpPacket>) -> Vec<Connection> {
    let mut conns: Vec<Connection> = Vec::new();
    let mut by_tuple: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    for p in packets {
        let key = if p.src <= p.dst {
            (p.src, p.dst)
        } else {
            (p.dst, p.src)
        };
        let existing = by_tuple.get(&key).copied().filter(|&i| {
            let c = &conns[i];
            let f = p.header.flags;
            let reopens = f.syn
                && !f.ack
                && c.packets
                    .iter()
                    .any(|q| q.header.flags.fin || q.header.flags.rst)
                && !c
                    .packets
                    .iter()
                    .any(|q| q.header.flags.syn && q.src == p.src && q.header.seq == p.header.seq);
            !reopens
        });
        match existing {
            Some(i) => conns[i].packets.push(p),
            None => {
                by_tuple.insert(key, conns.len());
                conns.push(Connection { packets: vec![p] });
            }
        }
    }
    conns
}
