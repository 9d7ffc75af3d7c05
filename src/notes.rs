//! Notes on packets: what the stack did with each one, in words, for the
//! packet comments of a pcapng capture (`--pcap FILE.pcapng`).
//!
//! The sans-IO core writes a note where it acts (a state transition, a
//! retransmission, a keepalive probe, a drop) and the runtime hands the
//! notes to the capture with their packets:
//!
//! - a note about a **received** packet (the core is inside
//!   [`crate::iface::Interface::receive_with`]) goes to that packet; the
//!   runtime takes it with [`crate::iface::Interface::take_received_note`]
//!   right after the packet was handled;
//! - a note about what the stack is about to **send** (a retransmission
//!   after an RTO, a probe, a state change on an application call) waits
//!   for the connection's next segment: each segment emitted while notes
//!   are on gets an id ([`crate::wire::packet::PacketBuf::note`]), and the
//!   runtime takes the text by that id
//!   ([`crate::iface::Interface::take_transmit_note`]) as it writes the
//!   packet;
//! - a note known only after the segment left (a tail loss probe, a fast
//!   retransmission) is added to the connection's last segment.
//!
//! Off (no pcapng capture), every note costs one branch on a `bool`: the
//! `note!` macro tests [`Notes::on`] before it evaluates or
//! formats anything, and nothing is allocated. What is pending is bounded,
//! so notes that no packet carries (a TIME-WAIT that ends on its timer)
//! cannot pile up.

use std::collections::VecDeque;
use std::fmt::{self, Write};
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::time::Instant;

/// Notes waiting for a connection's next segment, at most.
const PENDING_MAX: usize = 64;
/// Notes on queued segments not yet taken by the runtime, at most.
const READY_MAX: usize = 4096;

/// Adds a note to `$notes` ([`Notes`]) only when notes are on: the
/// arguments are neither evaluated nor formatted otherwise.
///
/// `note!(notes, received, "...", args)` notes the packet being
/// received; `note!(notes, event(local, remote), ...)` notes the packet
/// being received if there is one, else the connection's next segment;
/// `note!(notes, next(local, remote), ...)` the connection's next
/// segment; `note!(notes, last(local, remote), ...)` the connection's
/// last segment sent.
macro_rules! note {
    ($notes:expr, received, $($fmt:tt)+) => {
        if $notes.on() {
            $notes.received(format_args!($($fmt)+));
        }
    };
    ($notes:expr, $which:ident($local:expr, $remote:expr), $($fmt:tt)+) => {
        if $notes.on() {
            $notes.$which($local, $remote, format_args!($($fmt)+));
        }
    };
}
pub(crate) use note;

/// A note waiting for a segment of its connection.
#[derive(Debug)]
struct Pending {
    local: SocketAddr,
    remote: SocketAddr,
    /// Only a segment that carries a FIN takes it.
    fin_only: bool,
    text: String,
}

/// The core's notes on packets (see the module docs). Off by default.
#[derive(Debug, Default)]
pub struct Notes {
    on: bool,
    /// Inside the handling of a received packet.
    receiving: bool,
    /// The note on the packet being received.
    rx: String,
    /// Notes waiting for a connection's next segment (or next FIN).
    pending: VecDeque<Pending>,
    /// Notes on emitted segments, by segment id, in emission order.
    ready: VecDeque<(u32, String)>,
    /// The id of the last segment emitted (0: none yet).
    last_id: u32,
    /// The connection of the last segment emitted.
    last_conn: Option<(SocketAddr, SocketAddr)>,
    /// The core's time and the wall-clock time at one moment, to write
    /// deadlines as times of day.
    wall: Option<(Instant, SystemTime)>,
}

impl Notes {
    /// Whether notes are being taken.
    #[inline]
    pub fn on(&self) -> bool {
        self.on
    }

    /// Turns notes on or off (off drops what is pending).
    pub fn set_on(&mut self, on: bool) {
        *self = Notes {
            on,
            ..Notes::default()
        };
    }

    /// Pairs the core's time `now` with the wall clock, for
    /// [`Notes::time_of_day`].
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall = Some((now, wall));
    }

    /// The core's time `at` as a local time of day (`12:00:01.234`), if a
    /// wall clock was given.
    pub fn time_of_day(&self, at: Instant) -> Option<impl fmt::Display> {
        let (now, wall) = self.wall?;
        let wall = wall + at.saturating_duration_since(now);
        Some(chrono::DateTime::<chrono::Local>::from(wall).format("%H:%M:%S%.3f"))
    }

    /// A received packet is about to be handled.
    pub fn begin_received(&mut self) {
        self.receiving = true;
        self.rx.clear();
    }

    /// The received packet was handled: its note, if any.
    pub fn end_received(&mut self) -> Option<String> {
        self.receiving = false;
        (!self.rx.is_empty()).then(|| std::mem::take(&mut self.rx))
    }

    /// Notes the packet being received (ignored outside one).
    pub fn received(&mut self, note: fmt::Arguments<'_>) {
        if self.receiving {
            append(&mut self.rx, note);
        }
    }

    /// Notes the packet being received if there is one, else the next
    /// segment of the connection `local`-`remote`.
    pub fn event(&mut self, local: SocketAddr, remote: SocketAddr, note: fmt::Arguments<'_>) {
        if self.receiving {
            append(&mut self.rx, note);
        } else {
            self.next(local, remote, note);
        }
    }

    /// Notes the packet being received if there is one, else the last
    /// segment the connection `local`-`remote` sent (see [`Notes::last`]).
    pub fn received_or_last(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        note: fmt::Arguments<'_>,
    ) {
        if self.receiving {
            append(&mut self.rx, note);
        } else {
            self.last(local, remote, note);
        }
    }

    /// Notes the next segment the connection `local`-`remote` sends.
    pub fn next(&mut self, local: SocketAddr, remote: SocketAddr, note: fmt::Arguments<'_>) {
        self.wait_for(local, remote, false, note);
    }

    /// Notes the next segment carrying a FIN that the connection
    /// `local`-`remote` sends (a close: the FIN may wait behind data).
    pub fn next_fin(&mut self, local: SocketAddr, remote: SocketAddr, note: fmt::Arguments<'_>) {
        self.wait_for(local, remote, true, note);
    }

    fn wait_for(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        fin_only: bool,
        note: fmt::Arguments<'_>,
    ) {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.local == local && p.remote == remote && p.fin_only == fin_only)
        {
            append(&mut p.text, note);
            return;
        }
        if self.pending.len() >= PENDING_MAX {
            self.pending.pop_front();
        }
        let mut text = String::new();
        append(&mut text, note);
        self.pending.push_back(Pending {
            local,
            remote,
            fin_only,
            text,
        });
    }

    /// Notes the packet being received if there is one, else the next
    /// segment with a FIN of the connection `local`-`remote`.
    pub fn event_fin(&mut self, local: SocketAddr, remote: SocketAddr, note: fmt::Arguments<'_>) {
        if self.receiving {
            append(&mut self.rx, note);
        } else {
            self.next_fin(local, remote, note);
        }
    }

    /// Notes the last segment the connection `local`-`remote` sent, if
    /// it was the last segment emitted.
    pub fn last(&mut self, local: SocketAddr, remote: SocketAddr, note: fmt::Arguments<'_>) {
        if self.last_conn != Some((local, remote)) {
            return;
        }
        let id = self.last_id;
        match self.ready.back_mut() {
            Some((i, text)) if *i == id => append(text, note),
            _ => {
                let mut text = String::new();
                append(&mut text, note);
                self.push_ready(id, text);
            }
        }
    }

    /// A segment of `local`-`remote` (with a FIN if `fin`) is emitted:
    /// its id (never 0), under which the notes waiting for it are kept.
    pub fn emitted(&mut self, local: SocketAddr, remote: SocketAddr, fin: bool) -> u32 {
        self.last_id = self.last_id.wrapping_add(1).max(1);
        self.last_conn = Some((local, remote));
        let id = self.last_id;
        let mut text = String::new();
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.local == local && p.remote == remote && (fin || !p.fin_only) {
                if let Some(p) = self.pending.remove(i) {
                    if !text.is_empty() {
                        text.push_str("; ");
                    }
                    text.push_str(&p.text);
                }
            } else {
                i += 1;
            }
        }
        if !text.is_empty() {
            self.push_ready(id, text);
        }
        id
    }

    fn push_ready(&mut self, id: u32, text: String) {
        if self.ready.len() >= READY_MAX {
            self.ready.pop_front();
        }
        self.ready.push_back((id, text));
    }

    /// The note on the segment with id `id` (0: none). Notes on earlier
    /// segments that were never taken (their packets were not sent) are
    /// dropped.
    pub fn take(&mut self, id: u32) -> Option<String> {
        if id == 0 {
            return None;
        }
        while let Some(&(front, _)) = self.ready.front() {
            // Wrapping order: `front` is before `id`.
            let before = (id.wrapping_sub(front) as i32) > 0;
            if front == id {
                return self.ready.pop_front().map(|(_, t)| t);
            } else if before {
                self.ready.pop_front();
            } else {
                return None;
            }
        }
        None
    }
}

/// Appends `note` to `text`, after a `; ` if it holds one already.
fn append(text: &mut String, note: fmt::Arguments<'_>) {
    if !text.is_empty() {
        text.push_str("; ");
    }
    let _ = text.write_fmt(note);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), port))
    }

    #[test]
    fn off_takes_nothing_and_the_macro_evaluates_nothing() {
        let mut n = Notes::default();
        let mut evaluated = false;
        let mut touch = || {
            evaluated = true;
            1
        };
        note!(n, next(ep(1), ep(2)), "x {}", touch());
        n.begin_received();
        note!(n, received, "y");
        assert!(!evaluated);
        assert_eq!(n.end_received(), None);
        assert_eq!(n.emitted(ep(1), ep(2), false), 1);
        assert_eq!(n.take(1), None);
    }

    #[test]
    fn received_notes_join_and_outside_a_packet_wait_for_the_next_segment() {
        let mut n = Notes::default();
        n.set_on(true);
        n.begin_received();
        note!(n, event(ep(7), ep(40000)), "LISTEN -> SYN-RCVD");
        note!(n, received, "second");
        assert_eq!(
            n.end_received().as_deref(),
            Some("LISTEN -> SYN-RCVD; second")
        );
        // Outside a received packet: the connection's next segment.
        note!(n, event(ep(7), ep(40000)), "ESTABLISHED -> FIN-WAIT-1");
        note!(n, next(ep(8), ep(40001)), "other");
        let a = n.emitted(ep(7), ep(40001), false); // another connection: no note
        let b = n.emitted(ep(7), ep(40000), false);
        let c = n.emitted(ep(8), ep(40001), false);
        assert_eq!(n.take(a), None);
        assert_eq!(n.take(b).as_deref(), Some("ESTABLISHED -> FIN-WAIT-1"));
        assert_eq!(n.take(c).as_deref(), Some("other"));
    }

    #[test]
    fn last_amends_the_connections_last_segment_and_skipped_ids_are_dropped() {
        let mut n = Notes::default();
        n.set_on(true);
        note!(n, next(ep(7), ep(1)), "first");
        let a = n.emitted(ep(7), ep(1), false);
        let b = n.emitted(ep(7), ep(1), false);
        note!(n, last(ep(7), ep(1)), "tail loss probe");
        note!(n, last(ep(9), ep(1)), "not the last segment's connection");
        // `a` is never taken (its packet was not sent): dropped on the way.
        assert_eq!(n.take(b).as_deref(), Some("tail loss probe"));
        assert_eq!(n.take(a), None);
    }

    #[test]
    fn a_close_waits_for_the_segment_with_the_fin() {
        let mut n = Notes::default();
        n.set_on(true);
        note!(n, event_fin(ep(80), ep(1)), "ESTABLISHED -> FIN-WAIT-1");
        note!(n, next(ep(80), ep(1)), "retransmission 1, RTO 200 ms");
        let data = n.emitted(ep(80), ep(1), false);
        let fin = n.emitted(ep(80), ep(1), true);
        assert_eq!(
            n.take(data).as_deref(),
            Some("retransmission 1, RTO 200 ms")
        );
        assert_eq!(n.take(fin).as_deref(), Some("ESTABLISHED -> FIN-WAIT-1"));
    }

    #[test]
    fn pending_notes_are_bounded() {
        let mut n = Notes::default();
        n.set_on(true);
        for port in 0..(PENDING_MAX as u16 + 10) {
            note!(n, next(ep(port), ep(1)), "p{port}");
        }
        assert_eq!(n.pending.len(), PENDING_MAX);
        let id = n.emitted(ep(0), ep(1), false); // evicted
        assert_eq!(n.take(id), None);
    }

    #[test]
    fn time_of_day_adds_the_offset_to_the_wall_clock() {
        let mut n = Notes::default();
        assert!(n.time_of_day(Instant::from_secs(1)).is_none());
        let wall = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_234);
        n.set_wall_clock(Instant::from_secs(10), wall);
        let t = n
            .time_of_day(Instant::from_millis(70_500))
            .unwrap()
            .to_string();
        // 61.734 s after the epoch, in whatever the local zone is.
        assert!(t.ends_with(":01.734"), "{t}");
    }
}
