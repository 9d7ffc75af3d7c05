//! Building a [`Ladder`] from a connection's segments: relative numbers,
//! marks, arrival order and each side's states (see the parent module's
//! doc for the rules).

use std::time::Duration;

use super::{Connection, Dir, Ladder, Mark, Row, RowKind, Side, State, TcpPacket};
use crate::wire::tcp::TcpFlags;

/// `a` is at or after `b` in sequence space (RFC 9293 §3.4).
fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

fn seq_lt(a: u32, b: u32) -> bool {
    !seq_ge(a, b)
}

/// A gap is drawn when it is longer than this...
const GAP_ALWAYS: Duration = Duration::from_millis(500);
/// ...or longer than this and three times the median gap.
const GAP_FLOOR: Duration = Duration::from_millis(100);

/// What the ladder tracks of one side.
#[derive(Debug)]
struct Track {
    state: State,
    /// The number relative sequence numbers count from (the ISN).
    base: u32,
    /// Window scale shift applied to this side's windows.
    wscale: u8,
    /// Sequence number of this side's SYN and FIN, once sent.
    syn_seq: Option<u32>,
    fin_seq: Option<u32>,
    /// Highest sequence number sent plus one (SND.MAX).
    snd_max: Option<u32>,
    /// Highest acknowledgment sent.
    highest_ack: Option<u32>,
    /// ACK number and raw window of this side's previous segment.
    last_ack_win: Option<(u32, u16)>,
    /// Duplicate ACKs in a row.
    dup_acks: u32,
    /// Last window advertised (scaled).
    window: Option<u32>,
    /// The last segment sent was a keepalive or zero-window probe.
    last_probe: Option<Mark>,
}

impl Track {
    fn new(state: State, base: u32, wscale: u8) -> Self {
        Track {
            state,
            base,
            wscale,
            syn_seq: None,
            fin_seq: None,
            snd_max: None,
            highest_ack: None,
            last_ack_win: None,
            dup_acks: 0,
            window: None,
            last_probe: None,
        }
    }

    fn set(&mut self, to: State, changes: &mut Vec<State>) {
        if self.state != to {
            self.state = to;
            changes.push(to);
        }
    }

    /// `ack` acknowledges this side's SYN.
    fn acks_syn(&self, ack: u32) -> bool {
        self.syn_seq.is_some_and(|s| seq_ge(ack, s.wrapping_add(1)))
    }

    /// `ack` acknowledges this side's FIN.
    fn acks_fin(&self, ack: u32) -> bool {
        self.fin_seq.is_some_and(|s| seq_ge(ack, s.wrapping_add(1)))
    }

    /// Sending `p` (RFC 9293 §3.10.1-§3.10.4: OPEN, CLOSE, ABORT as seen on
    /// the wire).
    fn on_send(&mut self, p: &TcpPacket, changes: &mut Vec<State>) {
        let f = p.header.flags;
        if f.syn && self.syn_seq.is_none() {
            self.syn_seq = Some(p.header.seq);
        }
        if f.fin && self.fin_seq.is_none() {
            self.fin_seq = Some(p.header.seq.wrapping_add(p.payload_len));
        }
        if f.rst {
            if self.state != State::Listen {
                self.set(State::Closed, changes);
            }
            return;
        }
        match (self.state, f.syn, f.ack) {
            (State::Closed | State::Listen, true, false) => self.set(State::SynSent, changes),
            // A SYN+ACK whose SYN the capture did not show arriving.
            (State::Closed | State::Listen, true, true) => self.set(State::SynReceived, changes),
            _ => {}
        }
        if f.fin {
            match self.state {
                State::Established | State::SynReceived => self.set(State::FinWait1, changes),
                State::CloseWait => self.set(State::LastAck, changes),
                _ => {}
            }
        }
    }

    /// Receiving `p` (RFC 9293 §3.10.7).
    fn on_recv(&mut self, p: &TcpPacket, changes: &mut Vec<State>, marks: &mut Vec<Mark>) {
        let f = p.header.flags;
        let ack = p.header.ack;
        if f.rst {
            match self.state {
                State::Listen | State::Closed => {}
                // §3.10.7.3: in SYN-SENT an RST counts if it ACKs the SYN.
                State::SynSent => {
                    if f.ack && self.acks_syn(ack) {
                        marks.push(Mark::Refused);
                        self.set(State::Closed, changes);
                    }
                }
                _ => {
                    marks.push(Mark::Reset);
                    self.set(State::Closed, changes);
                }
            }
            return;
        }
        if f.syn && !f.ack {
            match self.state {
                State::Listen => self.set(State::SynReceived, changes),
                State::SynSent => {
                    marks.push(Mark::SimultaneousOpen);
                    self.set(State::SynReceived, changes);
                }
                _ => {}
            }
        }
        if f.ack {
            match self.state {
                State::SynSent if f.syn && self.acks_syn(ack) => {
                    self.set(State::Established, changes)
                }
                State::SynReceived if self.acks_syn(ack) => self.set(State::Established, changes),
                State::FinWait1 if self.acks_fin(ack) => self.set(State::FinWait2, changes),
                State::Closing if self.acks_fin(ack) => self.set(State::TimeWait, changes),
                State::LastAck if self.acks_fin(ack) => self.set(State::Closed, changes),
                _ => {}
            }
        }
        if f.fin {
            match self.state {
                State::SynReceived | State::Established => self.set(State::CloseWait, changes),
                State::FinWait1 => {
                    marks.push(Mark::SimultaneousClose);
                    self.set(State::Closing, changes);
                }
                State::FinWait2 => self.set(State::TimeWait, changes),
                _ => {}
            }
        }
    }
}

/// `SYN+ACK`, `FIN+PSH+ACK`, ...
pub(super) fn flags_name(f: TcpFlags) -> String {
    let names = [
        (f.syn, "SYN"),
        (f.fin, "FIN"),
        (f.rst, "RST"),
        (f.psh, "PSH"),
        (f.urg, "URG"),
        (f.ack, "ACK"),
    ];
    let on: Vec<&str> = names
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
    if on.is_empty() {
        "(no flags)".to_string()
    } else {
        on.join("+")
    }
}

/// Which side sent `p`.
fn sender(p: &TcpPacket, left: std::net::SocketAddr) -> Side {
    if p.src == left {
        Side::Left
    } else {
        Side::Right
    }
}

/// Each side's relative-number base: its SYN's sequence number; without a
/// SYN, one below the first sequence number it sent or the first ACK that
/// named it, whichever comes first (Wireshark's choice).
fn bases(packets: &[TcpPacket], left: std::net::SocketAddr) -> [u32; 2] {
    let mut base = [None, None];
    for p in packets {
        let s = sender(p, left).index();
        if base[s].is_none() {
            base[s] = Some(if p.header.flags.syn {
                p.header.seq
            } else {
                p.header.seq.wrapping_sub(1)
            });
        }
        if p.header.flags.ack && base[1 - s].is_none() {
            base[1 - s] = Some(p.header.ack.wrapping_sub(1));
        }
    }
    [base[0].unwrap_or(0), base[1].unwrap_or(0)]
}

/// Initial states: the side that opens starts CLOSED, the other LISTEN
/// (CLOSED if its first segment is an RST or a SYN of its own); without a
/// handshake in the capture both start ESTABLISHED.
fn initial_states(packets: &[TcpPacket], left: std::net::SocketAddr) -> [State; 2] {
    let first_syn = packets.iter().find(|p| p.header.flags.syn);
    match first_syn {
        None => [State::Established; 2],
        Some(syn) if syn.header.flags.ack => [State::SynSent, State::Listen],
        Some(_) => {
            let right_first = packets.iter().find(|p| p.src != left);
            let right = match right_first {
                Some(p) if p.header.flags.rst => State::Closed,
                Some(p) if p.header.flags.syn && !p.header.flags.ack => State::Closed,
                _ => State::Listen,
            };
            [State::Closed, right]
        }
    }
}

/// Where each segment reaches its receiver: the index of the segment after
/// which it arrives (its own index if it arrives as captured). A segment
/// that occupies sequence space arrives after the receiver's last segment
/// whose ACK does not cover it yet, if a later one does; arrivals in one
/// direction keep their order.
fn arrivals(packets: &[TcpPacket], left: std::net::SocketAddr) -> Vec<usize> {
    let mut at = Vec::with_capacity(packets.len());
    let mut last = [0usize; 2];
    for (i, p) in packets.iter().enumerate() {
        let s = sender(p, left);
        let end = p.header.seq.wrapping_add(p.seg_len());
        let mut arrive = i;
        if p.seg_len() > 0 {
            let mut not_yet = None;
            for (j, q) in packets.iter().enumerate().skip(i + 1) {
                if sender(q, left) == s || q.header.flags.rst {
                    continue;
                }
                if q.header.flags.ack && seq_ge(q.header.ack, end) {
                    arrive = not_yet.unwrap_or(i);
                    break;
                }
                not_yet = Some(j);
            }
        }
        arrive = arrive.max(last[s.index()]);
        last[s.index()] = arrive;
        at.push(arrive);
    }
    at
}

/// Whether the gap before a segment is long enough to draw.
fn gap_threshold(packets: &[TcpPacket]) -> impl Fn(Duration) -> bool {
    let mut gaps: Vec<Duration> = packets
        .windows(2)
        .map(|w| w[1].time.saturating_sub(w[0].time))
        .collect();
    gaps.sort();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    move |gap| gap > GAP_ALWAYS || (gap > GAP_FLOOR && gap > median * 3)
}

pub(super) fn build(conn: &Connection) -> Ladder {
    let packets = &conn.packets;
    let Some(endpoints) = conn.endpoints() else {
        return Ladder {
            endpoints: [std::net::SocketAddr::new([0, 0, 0, 0].into(), 0); 2],
            initial: [State::Closed; 2],
            rows: Vec::new(),
            last: [State::Closed; 2],
            duration: Duration::ZERO,
        };
    };
    let left = endpoints[0];
    let initial = initial_states(packets, left);
    let base = bases(packets, left);
    // RFC 7323 §2.2: scaling is in effect only if both SYNs carried it.
    let mut wscale = [None, None];
    for p in packets.iter().filter(|p| p.header.flags.syn) {
        let s = sender(p, left).index();
        wscale[s] = wscale[s].or(p.header.options.window_scale);
    }
    let shifts = match wscale {
        [Some(a), Some(b)] => [a.min(14), b.min(14)],
        _ => [0, 0],
    };
    let mut tracks = [
        Track::new(initial[0], base[0], shifts[0]),
        Track::new(initial[1], base[1], shifts[1]),
    ];

    let arrive_at = arrivals(packets, left);
    let mut arriving: Vec<Vec<usize>> = vec![Vec::new(); packets.len()];
    for (i, &at) in arrive_at.iter().enumerate() {
        arriving[at].push(i);
    }
    let long_gap = gap_threshold(packets);
    let start = packets.first().map(|p| p.time).unwrap_or_default();

    let mut rows = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if let Some(prev) = i.checked_sub(1).and_then(|j| packets.get(j)) {
            let gap = p.time.saturating_sub(prev.time);
            if long_gap(gap) {
                rows.push(Row {
                    kind: RowKind::Gap(gap),
                    states: [Vec::new(), Vec::new()],
                    marks: Vec::new(),
                });
            }
        }
        let s = sender(p, left);
        let (label, options) = labels(p, &tracks, s);
        let mut row = Row {
            kind: RowKind::Segment {
                frame: p.frame,
                time: p.time.saturating_sub(start),
                dir: if s == Side::Left {
                    Dir::LeftToRight
                } else {
                    Dir::RightToLeft
                },
                label,
                options,
            },
            states: [Vec::new(), Vec::new()],
            marks: send_marks(p, &mut tracks, s),
        };
        tracks[s.index()].on_send(p, &mut row.states[s.index()]);
        let mut later = Vec::new();
        for &j in &arriving[i] {
            let q = &packets[j];
            let r = sender(q, left).peer();
            if j == i {
                tracks[r.index()].on_recv(q, &mut row.states[r.index()], &mut row.marks);
            } else {
                let mut arrival = Row {
                    kind: RowKind::Arrival {
                        side: r,
                        frame: q.frame,
                        flags: flags_name(q.header.flags),
                    },
                    states: [Vec::new(), Vec::new()],
                    marks: Vec::new(),
                };
                tracks[r.index()].on_recv(q, &mut arrival.states[r.index()], &mut arrival.marks);
                if !arrival.states[r.index()].is_empty() || !arrival.marks.is_empty() {
                    later.push(arrival);
                }
            }
        }
        rows.push(row);
        rows.extend(later);
    }
    let duration = match (packets.first(), packets.last()) {
        (Some(a), Some(b)) => b.time.saturating_sub(a.time),
        _ => Duration::ZERO,
    };
    Ladder {
        endpoints,
        initial,
        rows,
        last: [tracks[0].state, tracks[1].state],
        duration,
    }
}

/// The arrow's label and the options line.
fn labels(p: &TcpPacket, tracks: &[Track; 2], s: Side) -> (String, String) {
    let h = &p.header;
    let (me, peer) = (&tracks[s.index()], &tracks[s.peer().index()]);
    let mut label = format!(
        "{} seq={}",
        flags_name(h.flags),
        h.seq.wrapping_sub(me.base)
    );
    if h.flags.ack {
        label += &format!(" ack={}", h.ack.wrapping_sub(peer.base));
    }
    if p.payload_len > 0 {
        label += &format!(" len={}", p.payload_len);
    }
    let window = if h.flags.syn {
        u32::from(h.window)
    } else {
        u32::from(h.window) << me.wscale
    };
    label += &format!(" win={window}");

    let o = &h.options;
    let mut options = Vec::new();
    if h.flags.syn {
        if let Some(mss) = o.mss {
            options.push(format!("mss={mss}"));
        }
        if o.sack_permitted {
            options.push("sackOK".to_string());
        }
        if o.timestamp.is_some() {
            options.push("TS".to_string());
        }
        if let Some(ws) = o.window_scale {
            options.push(format!("wscale={ws}"));
        }
    }
    for (l, r) in o.sack.as_slice() {
        options.push(format!(
            "SACK={}-{}",
            l.wrapping_sub(peer.base),
            r.wrapping_sub(peer.base)
        ));
    }
    (label, options.join(" "))
}

/// Marks decided by the sender's view: retransmission, probes, duplicate
/// ACKs, window updates, zero windows. Updates the sender's track.
fn send_marks(p: &TcpPacket, tracks: &mut [Track; 2], s: Side) -> Vec<Mark> {
    let h = &p.header;
    let f = h.flags;
    let pure_ack = f.ack && !f.syn && !f.fin && !f.rst && p.payload_len == 0;
    let (peer_snd_max, peer_window, peer_acked, peer_probe) = {
        let peer = &mut tracks[s.peer().index()];
        // A pure ACK answers the peer's probe, once.
        let probe = if pure_ack {
            peer.last_probe.take()
        } else {
            None
        };
        (peer.snd_max, peer.window, peer.highest_ack, probe)
    };
    let me = &mut tracks[s.index()];
    let mut marks = Vec::new();
    let plain = !f.syn && !f.fin && !f.rst;

    let keepalive = plain
        && p.payload_len <= 1
        && me
            .snd_max
            .is_some_and(|m| h.seq == m.wrapping_sub(1) && peer_acked == Some(m));
    let zero_window_probe =
        plain && p.payload_len == 1 && peer_window == Some(0) && me.snd_max == Some(h.seq);
    if keepalive {
        marks.push(Mark::KeepaliveProbe);
    } else if zero_window_probe {
        marks.push(Mark::ZeroWindowProbe);
    } else {
        let end = h.seq.wrapping_add(p.seg_len());
        if p.seg_len() > 0 && me.snd_max.is_some_and(|m| seq_lt(h.seq, m)) {
            marks.push(Mark::Retransmission);
        }
        if p.seg_len() > 0 || me.snd_max.is_none() {
            me.snd_max = Some(match me.snd_max {
                Some(m) if seq_ge(m, end) => m,
                _ => end,
            });
        }
    }
    me.last_probe = marks.first().copied();

    if f.ack && !f.rst {
        let pure = plain && p.payload_len == 0 && !keepalive;
        let same_ack = me.last_ack_win.map(|(a, _)| a) == Some(h.ack);
        let outstanding = peer_snd_max.is_some_and(|m| seq_lt(h.ack, m));
        if pure && me.last_ack_win == Some((h.ack, h.window)) && outstanding {
            me.dup_acks += 1;
            marks.push(Mark::DupAck(me.dup_acks));
        } else {
            me.dup_acks = 0;
            if pure && same_ack && me.last_ack_win.is_some_and(|(_, w)| w != h.window) {
                marks.push(Mark::WindowUpdate);
            }
        }
        if pure {
            match peer_probe {
                Some(Mark::KeepaliveProbe) => marks.push(Mark::KeepaliveAck),
                Some(Mark::ZeroWindowProbe) => marks.push(Mark::ZeroWindowProbeAck),
                _ => {}
            }
        }
        me.last_ack_win = Some((h.ack, h.window));
        me.highest_ack = Some(match me.highest_ack {
            Some(a) if seq_ge(a, h.ack) => a,
            _ => h.ack,
        });
    }
    if !f.rst {
        let window = if f.syn {
            u32::from(h.window)
        } else {
            u32::from(h.window) << me.wscale
        };
        if window == 0 {
            marks.push(Mark::ZeroWindow);
        }
        me.window = Some(window);
    }
    marks
}
