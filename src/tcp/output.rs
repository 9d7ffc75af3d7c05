//! Segment generation: SYN / SYN-ACK, data with Nagle and sender-side SWS
//! avoidance, FIN, ACKs, RSTs and challenge ACKs.

use crate::time::Instant;
use crate::wire::tcp::{SackBlocks, TcpFlags, TcpHeaderRepr, TcpOptionsRepr};

use super::chrono::Limit;
use super::config::window_shift_for;
use super::conn::{Conn, Ctx};
use super::seq::SeqNum;
use super::state::State;
use super::stream::StreamState;

impl Conn {
    /// Sends whatever the state, windows and timers allow right now.
    pub fn dispatch(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        self.take_urgent_mark(cx);
        if std::mem::take(&mut self.ack.pending) {
            self.ack.now = true;
        }
        match self.state {
            State::Closed | State::Listen => {
                // Nothing will be sent again: no sending clock runs.
                self.chrono.stop(Limit::Busy, false, now);
                return;
            }
            State::SynSent | State::SynReceived => {
                if self.snd.nxt == self.snd.iss {
                    self.send_syn(now, cx);
                }
                self.ack.now = false; // the SYN-ACK carries our ACK
                return;
            }
            State::TimeWait => {
                self.chrono.stop(Limit::Busy, false, now);
                if self.ack.now {
                    self.send_ack(now, cx);
                }
                return;
            }
            _ => {}
        }
        // RFC 5681 §4.2, RFC 9293 §3.8.6.3 (MUST-58): acknowledge at least
        // every second full-sized segment. Segments taken in one wakeup are
        // acknowledged together, like a GRO-merged segment on Linux.
        // "Full-sized" is what this peer actually sends (Linux's rcv_mss
        // estimate), not our MSS option: a sender whose segments are
        // smaller (the kernel halves its first segments at MTU 65535) is
        // not left waiting for the delayed-ACK timer with its window spent.
        let full = self.rcv.mss.min(self.ack.largest_segment.max(536));
        if self.ack.unacked_bytes >= 2 * full {
            self.ack.now = true;
        }
        self.send_data(now, cx);
        if self.ack.now {
            self.send_ack(now, cx);
        }
        self.arm_persist(now, cx);
    }

    /// Dispatch this connection once the segments of the current batch
    /// have been taken in ([`super::TcpLayer::flush`]).
    pub(crate) fn defer_dispatch(&mut self, cx: &mut Ctx<'_>) {
        if !self.ack.dispatch_pending {
            self.ack.dispatch_pending = true;
            cx.out.deferred.push(self.id);
        }
    }

    /// The header of a segment from `seq`. Once timestamps are agreed,
    /// every segment sent at `now` carries TSval and TS.Recent (RFC 7323
    /// §3.2); a RST goes without (`now` none; the RFC makes it a MAY).
    fn header(
        &mut self,
        now: Option<Instant>,
        seq: SeqNum,
        mut flags: TcpFlags,
        io: &mut StreamState,
    ) -> TcpHeaderRepr {
        let window = self.window_to_advertise(flags.syn, io);
        // In urgent mode every segment carries the pointer (RFC 9293 §3.8.5).
        let urgent = if flags.syn || flags.rst {
            None
        } else {
            self.urgent_pointer(seq)
        };
        flags.urg = urgent.is_some();
        let mut options = TcpOptionsRepr::default();
        if flags.ack && !flags.syn && !flags.rst {
            // RFC 2018 §4: report what is held beyond RCV.NXT, the block
            // of the latest segment first.
            options.sack = self.sack_blocks(io);
        }
        if let Some(now) = now.filter(|_| self.ts.ok && !flags.syn) {
            options.timestamp = Some((self.ts_val(now), self.ts.recent));
        }
        if flags.ack {
            // RFC 7323 §4.3: Last.ACK.sent.
            self.ts.last_ack_sent = self.rcv.nxt;
        }
        TcpHeaderRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: seq.get(),
            ack: if flags.ack { self.rcv.nxt.get() } else { 0 },
            flags,
            window,
            urgent: urgent.unwrap_or(0),
            options,
        }
    }

    /// The SACK blocks to report now (RFC 2018 §4), as sequence ranges:
    /// while SACK is on and data is held out of order.
    fn sack_blocks(&mut self, io: &StreamState) -> SackBlocks {
        let mut blocks = SackBlocks::default();
        if !self.rcv.sack_ok {
            return blocks;
        }
        // RFC 2883 §4: a duplicate goes first, in this ACK only.
        if let Some((left, right)) = self.ack.dsack.take() {
            blocks.push(left.get(), right.get());
        }
        if io.recv.has_gap() {
            let room = self.sack_block_limit() - blocks.as_slice().len();
            let mut extents = Vec::with_capacity(SackBlocks::MAX);
            io.recv.sack_extents(room, &mut extents);
            for (start, end) in extents {
                let left = self.rcv.nxt + start as u32;
                let right = self.rcv.nxt + end as u32;
                blocks.push(left.get(), right.get());
            }
        }
        blocks
    }

    /// SACK blocks that fit in an ACK: four, or three beside timestamps
    /// (RFC 2018 §3).
    fn sack_block_limit(&self) -> usize {
        if self.ts.ok {
            3
        } else {
            SackBlocks::MAX
        }
    }

    /// Payload bytes a data segment can carry now: the MSS less the
    /// options it will carry (RFC 9293 §3.7.1: the MSS counts data only
    /// when options are absent): timestamps, 12 bytes with their NOPs, and
    /// SACK blocks (two NOPs, kind, length, 8 bytes a block).
    pub(crate) fn data_mss(&self, io: &StreamState) -> u32 {
        let blocks = if self.rcv.sack_ok {
            let dsack = usize::from(self.ack.dsack.is_some());
            (io.recv.sack_extent_count() + dsack).min(self.sack_block_limit())
        } else {
            0
        };
        let mut option = if blocks == 0 {
            0
        } else {
            4 + 8 * blocks as u32
        };
        if self.ts.ok {
            option += 12;
        }
        self.snd.mss.saturating_sub(option).max(1)
    }

    /// SYN (SYN-SENT) or SYN-ACK (SYN-RCVD), with our MSS option
    /// (RFC 9293 §3.7.1, MUST-14) and, if enabled, window scale (RFC 7323).
    fn send_syn(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let syn_ack = self.state == State::SynReceived;
        let mut h = self.header(
            Some(now),
            self.snd.iss,
            TcpFlags {
                syn: true,
                ack: syn_ack,
                ..Default::default()
            },
            cx.io,
        );
        h.options.mss = Some(cx.cfg.mss_for(self.local.ip()));
        // RFC 2018 §2: offer SACK in a SYN; a SYN-ACK carries it only if
        // the SYN did.
        if cx.cfg.sack && (!syn_ack || self.rcv.sack_ok) {
            h.options.sack_permitted = true;
        }
        // RFC 7323 §3.2: a SYN offers timestamps (TSecr zero); a SYN-ACK
        // carries them, echoing the SYN's, only if the SYN did.
        if cx.cfg.timestamps && (!syn_ack || self.ts.ok) {
            let ecr = if syn_ack { self.ts.recent } else { 0 };
            h.options.timestamp = Some((self.ts_val(now), ecr));
        }
        // RFC 7323 §2.2: a SYN-ACK carries the option only if the SYN did.
        if cx.cfg.window_scaling && (!syn_ack || self.rcv.ws_ok) {
            let cap = self.scale_capacity(cx.cfg, cx.io.recv.capacity());
            h.options.window_scale = Some(window_shift_for(cap));
        }
        cx.out
            .emit(self.local, self.remote, &h, [&[], &[]], self.ip);
        self.unacked_since.get_or_insert(now);
        if self.snd.max != self.snd.iss {
            self.total_retransmits += 1;
            cx.out.stats.retransmits += 1;
        }
        self.snd.nxt = self.snd.iss + 1;
        self.snd.max = self.snd.max.max(self.snd.nxt);
        if self.timers.rtx.is_none() {
            self.timers.rtx = Some(now + self.rto());
        }
        if self.retries == 0 && self.rtt_probe.is_none() {
            self.rtt_probe = Some((self.snd.iss + 1, now));
        }
    }

    /// Sends new (or, after an RTO, resent) data and the FIN, as windows and
    /// Nagle allow; in SACK recovery, what RFC 6675 §5 says goes next.
    fn send_data(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        self.cwnd_limited = false;
        if self.rcv.sack_ok && self.recovery.is_some() {
            self.send_recovery(now, cx);
        } else {
            if self.rto_recover.is_some() && self.rack_on(cx.cfg) {
                self.resend_lost_after_rto(now, cx);
            }
            while self.send_next(now, cx) {}
        }
        let flight = self.in_flight();
        self.track_flight(flight);
        self.update_chrono(now, flight, cx);
    }

    /// `ss -ti`'s busy, rwnd_limited and sndbuf_limited clocks, after a
    /// round of sending with `flight` in flight (Linux's `tcp_write_xmit`
    /// and `tcp_cwnd_validate`).
    fn update_chrono(&mut self, now: Instant, flight: u32, cx: &mut Ctx<'_>) {
        let queued = cx.io.send.len();
        if queued == 0 {
            // All acknowledged (or nothing written): no clock runs.
            self.chrono.stop(Limit::Busy, false, now);
            return;
        }
        self.chrono.start(Limit::Busy, now);
        // Held back by the peer's window alone: data waits at SND.NXT, cwnd
        // has room for its next segment, the window has none (Linux's
        // tcp_write_xmit tests cwnd, then the window).
        let unsent = queued.saturating_sub((self.snd.nxt - self.data_base()) as usize);
        let next = unsent.min(self.snd.mss as usize) as u32;
        let cwnd_room = self.congestion_window().saturating_sub(flight);
        let window_edge = self.snd.una + self.snd.wnd;
        let rwnd_room = if window_edge > self.snd.nxt {
            window_edge - self.snd.nxt
        } else {
            0
        };
        if unsent > 0 && cwnd_room >= next && rwnd_room < next {
            self.chrono.start(Limit::Rwnd, now);
        } else {
            self.chrono.stop(Limit::Rwnd, true, now);
        }
        // Everything queued is sent, cwnd is not what holds the sender, and
        // a writer waits for room: the buffer's size is the limit.
        let sent = (self.snd.max - self.data_base()) as usize;
        if sent >= queued && !self.cwnd_limited && cx.io.writer_waiting() {
            self.chrono.start(Limit::Sndbuf, now);
        } else {
            self.chrono.stop(Limit::Sndbuf, true, now);
        }
    }

    /// Keeps `max_flight`, the most in flight over the last round trip
    /// (as Linux's tcp_cwnd_validate keeps max_packets_out).
    fn track_flight(&mut self, flight: u32) {
        if self.snd.una >= self.flight_round || flight > self.max_flight {
            self.max_flight = flight;
            self.flight_round = self.snd.nxt;
        }
    }

    /// Whether an ACK may grow cwnd: the last dispatch was held back by
    /// cwnd, or, in slow start, cwnd is under twice the most that was in
    /// flight in the last round trip. RFC 7661 §4.3 lets a sender that
    /// used at least half its cwnd (pipeACK >= cwnd/2) grow it; without
    /// the second rule a sender held back by the peer's window (a
    /// receiver that opens its window as the data rate grows, as Linux's
    /// does) would stop doubling (Linux's tcp_is_cwnd_limited).
    pub(crate) fn cwnd_validated(&self) -> bool {
        self.cwnd_limited
            || (self.cc.in_slow_start() && self.cc.cwnd() < self.max_flight.saturating_mul(2))
    }

    /// Sends one segment (or super-segment) from SND.NXT: new data, or
    /// after a retransmission timeout data again, skipping what the peer
    /// SACKed (RFC 6675 §5.1 keeps the scoreboard through an RTO).
    /// Returns whether it sent something and more may follow.
    fn send_next(&mut self, now: Instant, cx: &mut Ctx<'_>) -> bool {
        if self.paced(now) {
            return false;
        }
        let mut hole_end = None;
        if self.snd.nxt < self.snd.max {
            if let Some(end) = self.sb.sacked_at(self.snd.nxt) {
                self.snd.nxt = end.min(self.snd.max);
            }
            hole_end = self.sb.next_sacked(self.snd.nxt);
        }
        let off = (self.snd.nxt - self.data_base()) as usize;
        let unsent = cx.io.send.len().saturating_sub(off);
        // The core is out of data: the application must say when it
        // queues more.
        cx.io.push_wanted = unsent == 0 && !self.snd.fin_queued;
        let retransmitting = self.snd.nxt < self.snd.max;
        if !retransmitting && unsent > 0 && self.flight() == 0 {
            // RFC 5681 §4.1: after an idle period longer than the RTO,
            // start again from the initial window.
            if self.last_data_sent.is_some_and(|t| now - t > self.rto()) {
                self.cc.on_idle_restart(now);
            }
        }
        let cwnd_room = self.congestion_window().saturating_sub(self.in_flight());
        let window_edge = self.snd.una + self.snd.wnd;
        let rwnd_room = if window_edge > self.snd.nxt {
            window_edge - self.snd.nxt
        } else {
            0
        };
        let usable = cwnd_room.min(rwnd_room) as usize;
        // Payload per segment: the MSS less the options the segment will
        // carry (RFC 2018 §3: the sender's data must fit beside them, as
        // Linux's tcp_current_mss reckons).
        let mss = self.data_mss(cx.io) as usize;
        // With offload, one super-segment of whole MSS-sized pieces; a
        // shorter tail goes on its own below, under the same Nagle and SWS
        // rules as without offload (Linux's tcp_mss_split_point). In
        // urgent mode each segment needs its own urgent pointer, so no
        // super-segments then.
        let mut max = if self.urgent_pointer(self.snd.nxt).is_some() {
            mss
        } else {
            cx.cfg.max_segment(mss as u32, self.local.ip()) as usize
        };
        // A paced sender sends a quantum at a time: BBR's C.send_quantum
        // (draft-ietf-ccwg-bbr §5.6.3), a millisecond's worth for NewReno
        // and CUBIC (Linux's tcp_tso_autosize).
        if let Some(q) = self.cc.send_quantum(self.rtt.srtt()) {
            max = max.min((q as usize).max(mss));
        }
        let mut len = unsent.min(usable).min(max);
        if let Some(end) = hole_end {
            len = len.min((end - self.snd.nxt) as usize);
        }
        if len > mss {
            len -= len % mss;
        }
        if unsent > len && cwnd_room < rwnd_room {
            self.cwnd_limited = true;
        }
        // The FIN needs no window (it goes after the last byte).
        let fin = self.fin_seq(cx.io.send.len()) == Some(self.snd.nxt + len as u32);
        if len == 0 && !fin {
            return false;
        }
        if len > 0 && !fin && !retransmitting {
            // Nagle (RFC 9293 §3.7.4, SHLD-7) and sender SWS avoidance
            // (§3.8.6.2.1): send a full segment, or everything queued when
            // nothing is in flight (or Nagle is off), or half the largest
            // window the peer ever offered.
            let full = len >= mss;
            let all = len == unsent && (self.nodelay || self.flight() == 0);
            let half_window = self.snd.max_wnd > 0 && len >= (self.snd.max_wnd / 2) as usize;
            if !(full || all || half_window) {
                return false;
            }
        }
        let whole_hole = hole_end.is_some_and(|end| self.snd.nxt + len as u32 == end);
        if retransmitting
            && len > 0
            && !fin
            && len < mss
            && len < unsent
            && !whole_hole
            && self.flight() > 0
        {
            // The congestion window counts bytes of the full MSS; what an
            // option takes from each segment must not turn its remainder
            // into a sliver of a retransmission (Linux counts the window in
            // whole segments).
            return false;
        }
        if retransmitting {
            self.count_retransmit(cx);
            // After an RTO all of it is lost.
            self.cc.on_lost(self.snd.nxt, self.snd.nxt + len as u32);
        } else {
            self.last_data_sent = Some(now);
            if self.rtt_probe.is_none() && self.retries == 0 {
                self.rtt_probe = Some((self.snd.nxt + len as u32 + u32::from(fin), now));
            }
        }
        self.emit_data(now, self.snd.nxt, len, fin, cx);
        self.snd.nxt += len as u32 + u32::from(fin);
        self.snd.max = self.snd.max.max(self.snd.nxt);
        self.unacked_since.get_or_insert(now);
        if self.timers.rtx.is_none() {
            self.timers.rtx = Some(now + self.rto());
            self.clamp_rtx_to_user_timeout(now);
        }
        self.timers.persist = None;
        if !retransmitting {
            self.arm_tlp(now, cx); // RFC 8985 §7.2: after new data
        }
        !fin
    }

    /// RFC 6675 §5 (C): while the congestion window has room for a
    /// segment beside the pipe, send what NextSeg (§4) names: (1) the
    /// first lost hole above HighRxt, (2) new data, (3) the first unSACKed
    /// hole above HighRxt. Rule (4), the rescue retransmission (a SHOULD),
    /// is left out: once (3) has run out, the highest unSACKed data has
    /// been resent in this very recovery, and sending it again in the same
    /// round trip is what Linux does not do either.
    fn send_recovery(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let mss = self.snd.mss;
        loop {
            if self.paced(now) {
                return;
            }
            let Some(r) = self.recovery.as_ref() else {
                return;
            };
            let (una, max, high_rxt) = (self.snd.una, self.snd.max, r.high_rxt);
            if self.cc.cwnd() < self.in_flight().saturating_add(mss) {
                self.cwnd_limited = true;
                return;
            }
            // RFC 8985 §6.2: a retransmission that RACK finds lost again
            // (a segment sent after it was delivered, and it was not) lies
            // below HighRxt, where NextSeg no longer looks: it goes first,
            // or only the RTO would repair it.
            if let Some((start, end)) = self
                .rack
                .first_lost_range()
                .filter(|&(start, _)| start < high_rxt && start >= una)
            {
                if !self.retransmit_in_recovery(now, start, end, cx) {
                    return;
                }
                continue;
            }
            let hole = self.sb.holes_from(high_rxt.max(una), max).next();
            // (1) A lost hole.
            let lost = |h: &(SeqNum, SeqNum)| self.sb.is_lost(h.0, mss) || self.rack.lost_at(h.0);
            if let Some((start, end)) = hole.filter(lost) {
                if !self.retransmit_in_recovery(now, start, end, cx) {
                    return;
                }
                continue;
            }
            // (2) New data.
            if self.snd.nxt == self.snd.max && self.send_next(now, cx) {
                continue;
            }
            // (3) Any unSACKed hole. Not with RACK: as Linux, which resends
            // only what is marked lost, RACK's timer marks each hole once it
            // has been out too long. Rule (3) resends holes that are still
            // on their way: with BBR, whose cwnd stays large in recovery,
            // the kernel reported D-SACKs for 0.5 % of all segments.
            if self.rack_on(cx.cfg) {
                return;
            }
            if let Some((start, end)) = hole {
                if !self.retransmit_in_recovery(now, start, end, cx) {
                    return;
                }
                continue;
            }
            return;
        }
    }

    /// RFC 8985 §6.3: RACK goes on after a retransmission timeout. What the
    /// go-back-N resent and RACK then finds lost again (a segment sent
    /// after it was delivered, and it was not) goes again at once, as
    /// Linux's `tcp_xmit_retransmit_queue` resends marked segments in its
    /// Loss state, within cwnd; not after another, backed-off, timeout.
    fn resend_lost_after_rto(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let mss = self.snd.mss;
        loop {
            if self.paced(now) {
                return;
            }
            let (una, nxt) = (self.snd.una, self.snd.nxt);
            let Some((start, end)) = self
                .rack
                .first_lost_range()
                .filter(|&(start, _)| start >= una && start < nxt)
            else {
                return;
            };
            if self.cc.cwnd() < self.in_flight().saturating_add(mss) {
                self.cwnd_limited = true;
                return;
            }
            let sent_to = self.retransmit_range(now, start, end.min(nxt), cx);
            if sent_to <= start {
                return;
            }
            self.cc.on_lost(start, sent_to);
        }
    }

    /// Retransmits from `start` within the hole `[start, end)` and moves
    /// HighRxt past it; false if nothing could be sent.
    fn retransmit_in_recovery(
        &mut self,
        now: Instant,
        start: SeqNum,
        end: SeqNum,
        cx: &mut Ctx<'_>,
    ) -> bool {
        let sent_to = self.retransmit_range(now, start, end, cx);
        if let Some(r) = self.recovery.as_mut() {
            r.high_rxt = r.high_rxt.max(sent_to);
        }
        if sent_to > start {
            self.cc.on_lost(start, sent_to);
        }
        sent_to > start
    }

    /// Pacing holds the next segment back: arms the pacing timer for when
    /// it may leave and returns true.
    fn paced(&mut self, now: Instant) -> bool {
        match self.cc.pacing_delay(now, self.rtt.srtt()) {
            Some(at) => {
                self.timers.pace = Some(at);
                true
            }
            None => false,
        }
    }

    /// Retransmits one segment of at most the MSS from `seq`, not past
    /// `end` (with the FIN if it lies there); returns where it ended
    /// (`seq` when there was nothing to send).
    pub(crate) fn retransmit_range(
        &mut self,
        now: Instant,
        seq: SeqNum,
        end: SeqNum,
        cx: &mut Ctx<'_>,
    ) -> SeqNum {
        let fin_seq = self.fin_seq(cx.io.send.len());
        let data_end = fin_seq.map_or(end, |f| end.min(f)).min(self.snd.max);
        let mss = self.data_mss(cx.io);
        let len = if data_end > seq {
            (data_end - seq).min(mss)
        } else {
            0
        };
        let after = seq + len;
        let fin = fin_seq == Some(after) && end > after && self.snd.max > after;
        if len == 0 && !fin {
            return seq;
        }
        self.count_retransmit(cx);
        self.rtt_probe = None; // Karn (RFC 6298 §3)
        self.emit_data(now, seq, len as usize, fin, cx);
        self.timers.rtx = Some(now + self.rto());
        self.clamp_rtx_to_user_timeout(now);
        after + u32::from(fin)
    }

    /// Emits one segment carrying `len` buffered bytes from `seq` (and FIN).
    pub(crate) fn emit_data(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: usize,
        fin: bool,
        cx: &mut Ctx<'_>,
    ) {
        let end = seq + len as u32 + u32::from(fin);
        if seq < self.snd.max {
            self.note_retransmission(now, end);
        }
        if self.rack_on(cx.cfg) {
            self.rack.on_sent(now, seq, end, seq < self.snd.max);
        }
        if self.cc.samples_delivery() {
            let inflight = self.in_flight();
            let srtt = self.rtt.srtt();
            self.cc
                .on_sent(now, (seq, end), inflight, seq < self.snd.max, srtt);
        }
        self.cc.on_paced(now, len as u32, self.rtt.srtt());
        let off = (seq - self.data_base()) as usize;
        let psh = len > 0 && off + len >= cx.io.send.len();
        let h = self.header(
            Some(now),
            seq,
            TcpFlags {
                ack: true,
                fin,
                psh,
                ..Default::default()
            },
            cx.io,
        );
        let mss = self.data_mss(cx.io);
        let [a, b] = cx.io.send.slices(off, len);
        cx.out
            .emit_segments(self.local, self.remote, &h, [a, b], self.ip, mss);
        self.acked_now();
    }

    /// Retransmits the segment at SND.UNA (fast retransmit, RFC 5681 §3.2,
    /// a NewReno partial ACK, or a zero-window probe of the head).
    pub(crate) fn retransmit_head(&mut self, now: Instant, cx: &mut Ctx<'_>) -> SeqNum {
        let (una, max) = (self.snd.una, self.snd.max.max(self.snd.nxt));
        self.retransmit_range(now, una, max, cx)
    }

    /// RACK-TLP runs on this connection: configured, and SACK agreed
    /// (RFC 8985 §2).
    pub(crate) fn rack_on(&self, cfg: &super::config::TcpConfig) -> bool {
        cfg.rack && self.rcv.sack_ok
    }

    /// The last fast recovery's HighRxt while it is above SND.UNA (and
    /// within what was sent), when RACK runs: everything unSACKed below it
    /// was resent, and RACK marks a retransmission lost by time if it is
    /// (RFC 8985 §6.2). Without RACK nothing would find a lost
    /// retransmission before the RTO, so each recovery starts at SND.UNA.
    pub(crate) fn resent_in_flight(&self, cfg: &super::config::TcpConfig) -> Option<SeqNum> {
        if !self.rack_on(cfg) {
            return None;
        }
        self.rxt_high
            .filter(|&h| h > self.snd.una && h <= self.snd.max)
    }

    /// RFC 8985 §7.2: (re)arms the probe timeout after new data went out
    /// or new data was acknowledged, while no recovery, timeout recovery or
    /// probe is under way. When the RTO would come first the probe takes
    /// its place (as Linux's `tcp_schedule_loss_probe`): one segment, and
    /// the RTO rearmed after it.
    pub(crate) fn arm_tlp(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        self.timers.tlp = None;
        let idle = self.recovery.is_some()
            || self.rto_recover.is_some()
            || self.rack.tlp_end.is_some()
            || self.flight() == 0
            || !self.state.is_synchronized()
            || !self.rack_on(cx.cfg);
        if idle {
            return;
        }
        let one = self.flight() <= self.snd.mss;
        let Some(pto) = super::rack::Rack::pto(self.rtt.srtt(), one) else {
            return;
        };
        let at = now + pto;
        self.timers.tlp = Some(self.timers.rtx.map_or(at, |rtx| at.min(rtx)));
    }

    /// RFC 8985 §7.3: the probe. One segment of new data if there is some
    /// and the peer's window takes it, else the last segment sent again;
    /// then the RTO is rearmed. Its ACK (with SACK blocks) gives RACK what
    /// it needs to find the lost tail.
    pub(crate) fn on_tlp(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        if self.flight() == 0 || self.recovery.is_some() || self.snd.nxt != self.snd.max {
            return;
        }
        let mss = self.data_mss(cx.io);
        let off = (self.snd.nxt - self.data_base()) as usize;
        let unsent = cx.io.send.len().saturating_sub(off) as u32;
        let edge = self.snd.una + self.snd.wnd;
        let room = if edge > self.snd.nxt {
            edge - self.snd.nxt
        } else {
            0
        };
        let len = unsent.min(mss).min(room);
        if len > 0 {
            let fin = self.fin_seq(cx.io.send.len()) == Some(self.snd.nxt + len);
            self.emit_data(now, self.snd.nxt, len as usize, fin, cx);
            self.snd.nxt += len + u32::from(fin);
            self.snd.max = self.snd.nxt;
            self.rack.tlp_rexmit = false;
        } else {
            let start = if self.flight() > mss {
                self.snd.max - mss
            } else {
                self.snd.una
            };
            self.retransmit_range(now, start, self.snd.max, cx);
            self.rack.tlp_rexmit = true;
        }
        log::trace!("{} -> {} tail loss probe", self.remote, self.local);
        cx.out.stats.tlp_probes += 1;
        self.rack.tlp_end = Some(self.snd.max);
        self.timers.rtx = Some(now + self.rto());
        self.clamp_rtx_to_user_timeout(now);
    }

    /// A bare `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`. After a retransmission
    /// timeout SND.NXT is pulled back to SND.UNA (go-back-N), but the peer
    /// may already have received beyond it: a pure ACK then carries the
    /// highest sequence number sent (capped at the peer's window edge), as
    /// Linux's `tcp_acceptable_seq` does, or the peer would find it
    /// unacceptable (RFC 9293 §3.10.7.4) and ignore its ACK field.
    pub(crate) fn send_ack(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let window_end = self.snd.una + self.snd.wnd;
        let seq = if self.snd.max <= window_end {
            self.snd.max
        } else {
            window_end.max(self.snd.nxt)
        };
        self.send_segment(Some(now), seq, false, cx);
    }

    /// A bare ACK-flagged segment with sequence number `seq` (keepalive
    /// probes use SND.UNA-1), or `<SEQ=seq><ACK=RCV.NXT><CTL=RST,ACK>`.
    pub(crate) fn send_segment(
        &mut self,
        now: Option<Instant>,
        seq: SeqNum,
        rst: bool,
        cx: &mut Ctx<'_>,
    ) {
        let h = self.header(
            now,
            seq,
            TcpFlags {
                ack: true,
                rst,
                ..Default::default()
            },
            cx.io,
        );
        cx.out
            .emit(self.local, self.remote, &h, [&[], &[]], self.ip);
        self.acked_now();
    }

    /// RST for an abort (RFC 9293 §3.10.5: `<SEQ=SND.NXT><CTL=RST>`; the ACK
    /// bit is added, as Linux does, so any peer state accepts it).
    pub(crate) fn send_rst(&mut self, seq: SeqNum, cx: &mut Ctx<'_>) {
        self.send_segment(None, seq, true, cx);
    }

    /// RFC 5961 challenge ACK, subject to the per-connection limit first (as
    /// Linux's `tcp_send_challenge_ack` applies `tcp_invalid_ratelimit`), so
    /// forged SYNs or RSTs with a live 4-tuple cannot turn the connection into
    /// a reflector, then to the layer-wide rate limit (RFC 5961 §7).
    pub(crate) fn challenge_ack(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        if self.oow_ack_allowed(now, cx) && cx.out.challenge_allowed(now, cx.cfg) {
            self.send_ack(now, cx);
        }
    }

    /// May we answer one more out-of-window pure ACK or SYN now? At most
    /// one per `oow_ack_interval` per connection (Linux's
    /// `tcp_invalid_ratelimit`); the first of a burst is answered.
    pub(crate) fn oow_ack_allowed(&mut self, now: Instant, cx: &mut Ctx<'_>) -> bool {
        let interval = cx.cfg.oow_ack_interval;
        if self.last_oow_ack.is_some_and(|t| now - t < interval) {
            cx.out.stats.oow_acks_limited += 1;
            return false;
        }
        self.last_oow_ack = Some(now);
        true
    }

    fn acked_now(&mut self) {
        self.ack.now = false;
        self.ack.pending = false;
        self.ack.unacked_bytes = 0;
        self.timers.delack = None;
    }

    /// Starts the persist timer when data is waiting but nothing is in flight
    /// and nothing could be sent (zero window, or a window too small for the
    /// SWS rules).
    fn arm_persist(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let off = (self.snd.nxt - self.data_base()) as usize;
        let waiting = cx.io.send.len() > off;
        if waiting && self.flight() == 0 && self.timers.rtx.is_none() {
            if self.timers.persist.is_none() {
                self.timers.persist = Some(now + self.persist_interval(cx.cfg.max_rto));
            }
        } else if !waiting {
            self.timers.persist = None;
        }
    }
}
