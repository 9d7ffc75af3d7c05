//! Segment arrival, RFC 9293 §3.10.7.3 (SYN-SENT) and §3.10.7.4 (every
//! other state), with the RFC 5961 hardening of the RST, SYN and ACK checks.

use crate::time::Instant;
use crate::wire::tcp::TcpSegment;

use super::api::{TcpError, TcpEvent};
use super::chrono::Limit;
use super::config::TcpConfig;
use super::congestion::{AckSample, Delivery};
use super::conn::{Conn, Ctx, Recovery, PAWS_IDLE};
use super::scoreboard::DUP_THRESH;
use super::seq::SeqNum;
use super::state::State;
use super::stream::StreamState;

/// A fast recovery just entered, for its first retransmission.
#[derive(Clone, Copy)]
struct RecoveryStart {
    /// The head's retransmission from the last recovery is still out.
    head_resent: bool,
    /// SACK or RACK found data lost (not only duplicate ACKs).
    lost: bool,
}

impl Conn {
    /// Processes one segment addressed to this connection.
    pub fn on_segment(&mut self, now: Instant, seg: &TcpSegment<'_>, cx: &mut Ctx<'_>) {
        match self.state {
            // A TCB kept only so the application can read its error: act
            // as a closed port (RFC 9293 §3.10.7.1).
            State::Closed => cx.out.reset_for(self.local, self.remote, seg),
            State::Listen => {}
            State::SynSent => {
                self.on_segment_syn_sent(now, seg, cx);
                self.dispatch(now, cx);
            }
            _ => {
                self.on_segment_synchronized(now, seg, cx);
                if self.ack.now || self.state == State::Closed {
                    // Out of order, unacceptable, FIN, challenge: answer
                    // this segment on its own (RFC 5681 §4.2: one
                    // duplicate ACK per out-of-order segment).
                    self.dispatch(now, cx);
                } else {
                    // In-order data and pure ACKs: the ACK, and whatever
                    // the ACK lets us send, go out once for every segment
                    // taken in this wakeup (see `TcpLayer::flush`).
                    self.defer_dispatch(cx);
                }
            }
        }
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT.
    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpSegment<'_>, cx: &mut Ctx<'_>) {
        let h = &seg.header;
        let ack = SeqNum(h.ack);
        // First, check the ACK bit: it must acknowledge our SYN.
        if h.flags.ack && (ack <= self.snd.iss || ack > self.snd.max) {
            if !h.flags.rst {
                cx.out.reset_for(self.local, self.remote, seg); // <SEQ=SEG.ACK><CTL=RST>
            }
            return;
        }
        // Second, RST: only honoured with an acceptable ACK (RFC 5961 §3.2).
        if h.flags.rst {
            if h.flags.ack {
                self.terminate(Some(TcpError::ConnectionRefused), cx);
            }
            return;
        }
        // Fourth, SYN. (Data on a SYN is not kept; the peer resends it.)
        if !h.flags.syn {
            return;
        }
        self.rcv.irs = SeqNum(h.seq);
        self.rcv.nxt = self.rcv.irs + 1;
        self.rcv.adv = self.rcv.nxt;
        let capacity = cx.io.recv.capacity();
        self.apply_syn_options(&h.options, cx.cfg, capacity);
        if self.ts.ok {
            self.ts.recent_at = Some(now);
        }
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        self.snd.wnd = u32::from(h.window);
        self.snd.max_wnd = self.snd.wnd;
        self.snd.wl1 = self.rcv.irs;
        if h.flags.ack {
            self.snd.wl2 = ack;
            self.on_syn_acked(now, ack);
            self.ack.now = true;
            let next = if self.snd.fin_queued {
                State::FinWait1
            } else {
                State::Established
            };
            self.set_state(State::Established, cx);
            self.set_state(next, cx);
        } else {
            // Simultaneous open (RFC 9293 Figure 8): answer with SYN-ACK.
            self.snd.wl2 = self.snd.iss;
            self.set_state(State::SynReceived, cx);
            self.snd.nxt = self.snd.iss;
        }
    }

    /// Our SYN was acknowledged by `ack`.
    fn on_syn_acked(&mut self, now: Instant, ack: SeqNum) {
        self.snd.syn_acked = true;
        self.snd.una = ack;
        self.snd.nxt = self.snd.nxt.max(ack);
        if let Some((end, sent)) = self.rtt_probe {
            if ack >= end {
                self.rtt.sample(now - sent);
                self.rtt_probe = None;
            }
        }
        self.retries = 0;
        self.timers.rtx = None;
    }

    /// RFC 9293 §3.10.7.4 sequence-number acceptability, with the window
    /// we would accept now.
    fn acceptable(&self, seq: SeqNum, seg_len: u32, io: &StreamState) -> bool {
        let wnd = self.rcv_wnd(io);
        let end_of_window = self.rcv.nxt + wnd;
        match (seg_len, wnd) {
            (0, 0) => seq == self.rcv.nxt,
            (0, _) => seq.in_range(self.rcv.nxt, end_of_window),
            (_, 0) => false,
            (_, _) => {
                seq.in_range(self.rcv.nxt, end_of_window)
                    || (seq + (seg_len - 1)).in_range(self.rcv.nxt, end_of_window)
            }
        }
    }

    fn on_segment_synchronized(&mut self, now: Instant, seg: &TcpSegment<'_>, cx: &mut Ctx<'_>) {
        let h = &seg.header;
        let seq = SeqNum(h.seq);
        let ack = SeqNum(h.ack);
        let seg_len = seg.seg_len();

        // Any segment from the peer restarts the keepalive clock (§3.8.4).
        if self.keepalive_probes > 0 {
            crate::notes::note!(
                cx.out.notes,
                received,
                "the peer answered keepalive probe {}: it is alive, the count restarts",
                self.keepalive_probes
            );
        }
        self.keepalive_probes = 0;
        self.last_heard = Some(now);
        if let Some(k) = self.keepalive {
            self.timers.keepalive = Some(now + k.idle);
        }

        // TIME-WAIT: a retransmitted FIN is acknowledged and restarts the
        // 2×MSL timer (RFC 9293 §3.10.7.4, eighth step; MUST-13).
        if self.state == State::TimeWait
            && h.flags.fin
            && !h.flags.rst
            && !h.flags.syn
            && seq + seg_len == self.rcv.nxt
        {
            self.ack.now = true;
            self.timers.linger = Some(now + cx.cfg.msl.saturating_mul(2));
            return;
        }
        if self.state == State::SynReceived && h.flags.syn && !h.flags.rst && seq == self.rcv.irs {
            if !h.flags.ack {
                // The peer retransmitted its SYN: so do we our SYN-ACK.
                self.snd.nxt = self.snd.iss;
                return;
            }
            // Simultaneous open: the peer's SYN-ACK acknowledges our SYN.
            if ack > self.snd.una && ack <= self.snd.max {
                self.snd.wnd = u32::from(h.window);
                self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
                self.snd.wl1 = seq;
                self.snd.wl2 = ack;
                self.on_syn_acked(now, ack);
                self.establish(cx);
                self.ack.now = true;
            }
            return;
        }

        // RFC 7323 §5.3 R1, PAWS: before the sequence number check.
        if self.ts.ok && !h.flags.rst && !self.paws_ok(now, seg, cx) {
            return;
        }

        // First: sequence number check. Unacceptable segments get an ACK
        // (not silence) unless they carry RST (RFC 9293 §3.10.7.4).
        if !self.acceptable(seq, seg_len, cx.io) {
            if !h.flags.rst {
                // "Special allowance should be made to accept valid ACKs"
                // (RFC 9293 §3.10.7.4): when our window is zero, a segment at
                // RCV.NXT; and a pure ACK exactly at the right edge, which a
                // peer that filled our window sends (Linux accepts it). Their
                // ACK fields are processed; they are still answered below.
                let wnd = self.rcv_wnd(cx.io);
                let zero_window_ack = wnd == 0 && seq == self.rcv.nxt;
                let edge_ack = wnd > 0 && seg_len == 0 && seq == self.rcv.nxt + wnd;
                let allowance = (zero_window_ack || edge_ack)
                    && h.flags.ack
                    && !h.flags.syn
                    && self.state != State::SynReceived;
                if allowance && !self.process_ack(now, seg, cx) && self.state == State::Closed {
                    return;
                }
                // RFC 9293 §3.10.7.4: an unacceptable segment is answered
                // with an ACK. Against ACK storms and reflection, the answers
                // to pure ACKs and SYNs (no data, no FIN) are limited to one
                // per `oow_ack_interval` per connection, as Linux's
                // `tcp_invalid_ratelimit`; a segment with data or FIN is
                // always answered, and so is a keepalive probe (SEQ =
                // RCV.NXT - 1, at most one byte, RFC 9293 §3.8.4): its answer
                // is the point, and forging it takes knowing RCV.NXT.
                // RFC 2883 §4: data wholly below RCV.NXT is a duplicate; the
                // ACK reports it in a D-SACK block.
                if self.rcv.sack_ok && !seg.payload.is_empty() && seq < self.rcv.nxt {
                    let end = (seq + seg.payload.len() as u32).min(self.rcv.nxt);
                    self.ack.dsack = Some((seq, end));
                }
                let keepalive_probe = seq == self.rcv.nxt - 1 && seg.payload.len() <= 1;
                let limited =
                    ((seg.payload.is_empty() && !h.flags.fin) || h.flags.syn) && !keepalive_probe;
                if !limited || self.oow_ack_allowed(now, cx) {
                    self.ack.now = true;
                }
            }
            return;
        }

        // RFC 7323 §4.3, §5.3 R3: the timestamp of a segment that covers
        // Last.ACK.sent becomes TS.Recent (PAWS made sure it is not older).
        if let Some((val, _)) = h.options.timestamp.filter(|_| self.ts.ok) {
            if seq <= self.ts.last_ack_sent {
                self.ts.recent = val;
                self.ts.recent_at = Some(now);
            }
        }

        // Second: RST, RFC 5961 §3.2. Exact match resets; anything else in
        // the window draws a challenge ACK.
        if h.flags.rst {
            if seq != self.rcv.nxt {
                self.challenge_ack(now, cx);
                return;
            }
            let err = match self.state {
                // Passive SYN-RCVD returns to LISTEN: just drop the TCB.
                State::SynReceived if self.listener.is_some() => None,
                State::SynReceived => Some(TcpError::ConnectionRefused),
                State::Established | State::FinWait1 | State::FinWait2 | State::CloseWait => {
                    Some(TcpError::ConnectionReset)
                }
                _ => None, // CLOSING, LAST-ACK, TIME-WAIT
            };
            log::debug!(
                "{} -> {} reset by peer in {}",
                self.remote,
                self.local,
                self.state
            );
            self.terminate(err, cx);
            return;
        }

        // Fourth: a SYN in a synchronized state draws a challenge ACK
        // (RFC 5961 §4.2, RFC 9293 §3.10.7.4).
        if h.flags.syn {
            self.challenge_ack(now, cx);
            return;
        }

        // Fifth: the ACK field.
        if !h.flags.ack {
            return;
        }
        if self.state == State::SynReceived {
            if ack > self.snd.una && ack <= self.snd.max {
                // RFC 7323 §2.2: windows after the SYNs are scaled.
                self.snd.wnd = u32::from(h.window) << self.snd.wscale;
                self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
                self.snd.wl1 = seq;
                self.snd.wl2 = ack;
                self.on_syn_acked(now, ack);
                self.establish(cx);
            } else {
                cx.out.reset_for(self.local, self.remote, seg); // <SEQ=SEG.ACK><CTL=RST>
                return;
            }
        }
        if !self.process_ack(now, seg, cx) {
            return;
        }

        // Sixth: the URG bit (MUST-66: also with a zero window).
        if h.flags.urg && self.state.can_receive() {
            self.on_urgent(now, seq, h.urgent, cx);
        }

        // Seventh: segment text.
        if !seg.payload.is_empty() && self.state.can_receive() {
            if self.handle.rd_closed {
                // Nobody will read this: reset, as Linux does (RFC 2525 §2.17).
                self.reset(None, cx);
                return;
            }
            let echo = match h.options.timestamp {
                Some((_, ecr)) if self.ts.ok && ecr != 0 => self.ts_rtt(now, ecr),
                _ => None,
            };
            self.receive_data(now, seq, seg.payload, echo, cx);
        }

        // Eighth: FIN, only once everything before it has arrived.
        if h.flags.fin && self.state.can_receive() {
            if seq + seg.payload.len() as u32 == self.rcv.nxt {
                self.rcv.nxt += 1;
                self.rcv.fin_received = true;
                cx.io.eof = true;
                cx.io.wake_readers();
                // Acknowledged at the end of this batch rather than on its
                // own: an application that closes in the same wakeup (a
                // server answering the client's close) sends its FIN with
                // this ACK, one segment instead of two.
                self.ack.pending = true;
                if self.visible() {
                    cx.out.event(TcpEvent::PeerClosed(self.id));
                    cx.out.event(TcpEvent::Readable(self.id));
                }
                match self.state {
                    State::Established => self.set_state(State::CloseWait, cx),
                    State::FinWait1 => self.set_state(State::Closing, cx),
                    State::FinWait2 => self.enter_time_wait(now, cx),
                    _ => {}
                }
            } else {
                self.ack.now = true; // out-of-order FIN: ask for the gap
            }
        }
    }

    /// RFC 7323 §5.3 R1 (PAWS) on a non-RST segment once timestamps are
    /// agreed: one whose TSval is older than TS.Recent is a duplicate from
    /// an earlier wrap of the sequence space, dropped and answered with an
    /// ACK like any unacceptable segment (rate-limited as those are), unless
    /// TS.Recent is over 24 days old (§5.5), when the segment is let
    /// through and its TSval becomes TS.Recent. A segment without the
    /// option is dropped silently (§3.2). Returns true to go on.
    fn paws_ok(&mut self, now: Instant, seg: &TcpSegment<'_>, cx: &mut Ctx<'_>) -> bool {
        let Some((val, _)) = seg.header.options.timestamp else {
            cx.out.stats.ts_missing += 1;
            return false;
        };
        if (val.wrapping_sub(self.ts.recent) as i32) >= 0 {
            return true;
        }
        if self.ts.recent_at.is_some_and(|at| now - at > PAWS_IDLE) {
            self.ts.recent = val;
            self.ts.recent_at = Some(now);
            return true;
        }
        cx.out.stats.paws_rejected += 1;
        let limited = seg.payload.is_empty() && !seg.header.flags.fin;
        if !limited || self.oow_ack_allowed(now, cx) {
            self.ack.now = true;
        }
        false
    }

    /// RFC 8985 §6.2 step 5 and §6.3: RACK marks what time says is lost,
    /// and the reordering timer waits for the next candidate.
    /// Only while the peer holds SACKed data: without it every segment
    /// delivered so far came in order, so nothing sent earlier is missing
    /// (and the ACK path skips the walk over the transmission record).
    pub(crate) fn rack_detect(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        if !self.rack_on(cx.cfg) || self.sb.is_empty() {
            self.timers.reorder = None;
            return;
        }
        // RFC 8985 §6.2 step 4: in fast or RTO recovery, or with DupThresh
        // segments SACKed, and no reordering seen, the window is zero.
        let recovering = self.recovery.is_some() || self.rto_recover.is_some();
        let sacked_segs = self.sb.sacked_bytes().div_ceil(self.snd.mss.max(1));
        let (lost, timer) = self
            .rack
            .detect(now, self.rtt.srtt(), recovering, sacked_segs);
        cx.out.stats.rack_lost += lost as u64;
        if lost > 0 {
            crate::notes::note!(
                cx.out.notes,
                next(self.local, self.remote),
                "RACK: {lost} segment(s) lost by time"
            );
        }
        self.timers.reorder = timer;
    }

    /// RFC 8985 §7.4: the ACK of a tail loss probe. A probe that resent
    /// data and is acknowledged without a D-SACK for it repaired a loss:
    /// the congestion control reacts as to fast recovery (a reduction,
    /// recovery done at once), from `prior_cwnd`, the window before this
    /// ACK.
    fn tlp_acked(&mut self, now: Instant, blocks: &crate::wire::tcp::SackBlocks, prior_cwnd: u32) {
        let Some(end) = self.rack.tlp_end else {
            return;
        };
        if self.snd.una < end {
            return;
        }
        self.rack.tlp_end = None;
        let dsack = is_dsack(blocks, self.snd.una);
        if self.rack.tlp_rexmit && !dsack {
            // FlightSize when the loss happened: the window in use then.
            self.cc.on_loss(now, prior_cwnd);
            self.cc.on_recovery_end(now);
        }
    }

    /// Enters loss recovery after an ACK when DupThresh duplicate ACKs
    /// have arrived (RFC 5681 §3.2) or, with SACK, the scoreboard says the
    /// segment at SND.UNA is lost (RFC 6675 §5): RecoveryPoint = SND.MAX,
    /// the congestion control reduces its window once, and the first
    /// segment presumed lost is retransmitted at once (RFC 6675 §5 step
    /// 4.3). Not again before a recovery or an RTO's retransmissions are
    /// acknowledged (RFC 6582 §4.1, RFC 6675 §5.1).
    pub(crate) fn detect_loss(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        if let Some(start) = self.enter_recovery(now, cx.cfg) {
            self.fast_retransmit(now, start, cx);
        }
    }

    /// The first half of [`Conn::detect_loss`]: the decision, the
    /// congestion control's reduction and the recovery's state, without
    /// sending. On an ACK it comes before the congestion control takes the
    /// ACK in, as in Linux (`tcp_fastretrans_alert` before
    /// `tcp_cong_control`): an algorithm that watches the recovery state at
    /// each ACK (BBR's packet conservation) sees one recovery end and the
    /// next begin on the same ACK as no change.
    fn enter_recovery(&mut self, now: Instant, cfg: &TcpConfig) -> Option<RecoveryStart> {
        if self.recovery.is_some() || self.rto_recover.is_some() || self.flight() == 0 {
            return None;
        }
        // What the last recovery resent and is still on its way: with
        // RACK, a lost retransmission is found by time (RFC 8985 §6.2), so
        // neither IsLost nor duplicate ACKs call it lost again (as Linux,
        // which with RACK enters recovery only on data marked lost).
        let resent = self.resent_in_flight(cfg);
        let head_resent =
            resent.is_some_and(|h| self.snd.una < h) && !self.rack.lost_at(self.snd.una);
        // RACK marks exist only while something is SACKed (rack_detect).
        let lost = self.rcv.sack_ok
            && !self.sb.is_empty()
            && ((self.sb.is_lost(self.snd.una, self.snd.mss) && !head_resent)
                || self.rack.first_lost().is_some());
        if (self.dup_acks < DUP_THRESH || head_resent) && !lost {
            return None;
        }
        log::trace!(
            "{} -> {} fast retransmit at {} ({} dup ACKs, {} SACKed)",
            self.remote,
            self.local,
            self.snd.una,
            self.dup_acks,
            self.sb.sacked_bytes()
        );
        self.begin_undo(now);
        self.cc.on_loss(now, self.flight());
        self.timers.tlp = None;
        self.recovery = Some(Recovery {
            point: self.snd.max,
            // Above what the last recovery resent, if that is still out.
            high_rxt: resent.unwrap_or(self.snd.una),
            inflation: if self.rcv.sack_ok {
                0
            } else {
                DUP_THRESH * self.snd.mss
            },
        });
        Some(RecoveryStart { head_resent, lost })
    }

    /// The second half of [`Conn::detect_loss`]: the first segment presumed
    /// lost goes at once (RFC 6675 §5 step 4.3).
    fn fast_retransmit(&mut self, now: Instant, start: RecoveryStart, cx: &mut Ctx<'_>) {
        let head = self.snd.una;
        // The head goes again unless its retransmission is still out (the
        // loss is further up: NextSeg finds it).
        let sent_to = if start.head_resent {
            head
        } else {
            self.retransmit_head(now, cx)
        };
        crate::notes::note!(
            cx.out.notes,
            last(self.local, self.remote),
            "fast retransmit ({} dup ACKs{})",
            self.dup_acks,
            if start.lost {
                ", SACK or RACK found it lost"
            } else {
                ""
            }
        );
        if let Some(r) = self.recovery.as_mut() {
            r.high_rxt = r.high_rxt.max(sent_to);
        }
        if sent_to > head {
            self.cc.on_lost(head, sent_to);
        }
    }

    /// Hands the ACK just taken in to a congestion control that samples
    /// every delivery (BBR, draft-ietf-ccwg-bbr §5.2.3), with what it
    /// needs to know of the connection.
    fn delivery_sample(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let inflight = self.in_flight();
        let base = self.data_base();
        let off = if self.snd.max > base {
            (self.snd.max - base) as usize
        } else {
            0
        };
        let unsent = cx.io.send.len().saturating_sub(off);
        // §4.1.2.5 CheckIfApplicationLimited: no data waiting, room in
        // cwnd, no lost data waiting to be resent.
        let app_limited = unsent == 0 && inflight < self.cc.cwnd() && self.recovery.is_none();
        let d = Delivery {
            now,
            una: self.snd.una,
            sacked: self.sb.ranges(),
            inflight,
            app_limited,
            cwnd_limited: self.cwnd_limited,
            rwnd_limited: self.chrono.runs(Limit::Rwnd),
            in_recovery: self.recovery.is_some() || self.rto_recover.is_some(),
            has_sack: self.rcv.sack_ok,
            srtt: self.rtt.srtt(),
        };
        self.cc.on_delivery(&d);
    }

    /// SYN-RCVD → ESTABLISHED (or straight on to FIN-WAIT-1 if the
    /// application already closed, RFC 9293 §3.10.4).
    fn establish(&mut self, cx: &mut Ctx<'_>) {
        self.set_state(State::Established, cx);
        if self.snd.fin_queued {
            self.set_state(State::FinWait1, cx);
        }
    }

    /// RFC 9293 §3.10.7.4 fifth step for synchronized states. Returns false
    /// when the segment must be dropped.
    fn process_ack(&mut self, now: Instant, seg: &TcpSegment<'_>, cx: &mut Ctx<'_>) -> bool {
        let h = &seg.header;
        let seq = SeqNum(h.seq);
        let ack = SeqNum(h.ack);
        if self.state == State::TimeWait {
            return true;
        }
        // Acknowledges something not yet sent: ACK and drop.
        if ack > self.snd.max {
            self.ack.now = true;
            return false;
        }
        // RFC 5961 §5.2: too old to be believable: challenge ACK and drop.
        if ack < self.snd.una - self.snd.max_wnd.max(1) {
            self.challenge_ack(now, cx);
            return false;
        }
        let wnd = u32::from(h.window) << self.snd.wscale;
        let advanced = ack > self.snd.una;
        // The window in use before this ACK grows it (RFC 8985 §7.4's
        // reduction starts from it, as Linux's runs before tcp_cong_control).
        let prior_cwnd = self.cc.cwnd();
        let mut rtt = None;
        // RFC 2883 §4: the first SACK block reports a duplicate.
        let dsack = self.rcv.sack_ok && is_dsack(&h.options.sack, ack.max(self.snd.una));
        if advanced {
            let ecr = h.options.timestamp.map(|(_, ecr)| ecr);
            let spurious = self.eifel_spurious(ack, ecr, dsack);
            rtt = self.new_ack(now, ack, ecr, cx);
            if spurious {
                self.undo_spurious(now, "Eifel, RFC 3522", cx);
            }
        }
        // As Linux (`tcp_try_undo_dsack`), only once the episode is over:
        // a D-SACK meanwhile may be the network's duplicate of a
        // retransmission, not a sign the original arrived.
        let episode_over = self.recovery.is_none() && self.rto_recover.is_none();
        if dsack && episode_over && self.dsack_spurious(&h.options.sack) {
            self.undo_spurious(now, "D-SACK, RFC 3708", cx);
        }
        // RFC 2018 §3: the blocks go on the scoreboard (once SACK was
        // agreed: RFC 2018 §2).
        let newly_sacked = if self.rcv.sack_ok {
            let blocks = h.options.sack;
            self.sb
                .on_ack(self.snd.una, self.snd.max, blocks.as_slice())
        } else {
            0
        };
        if self.rack_on(cx.cfg) {
            self.rack.on_ack_dsack(self.snd.una, self.snd.max, dsack);
            self.rack.on_ack(now, self.snd.una, &self.sb, rtt);
            // RFC 6298 §3 (Karn) and §5.7: while no segment is timed (after
            // a retransmission timeout) and without timestamps, a segment
            // never retransmitted that this ACK delivered, cumulatively or
            // in a SACK block, is a sample, and collapses the backoff (as
            // Linux's sack_rtt_us). Without it, a path that keeps losing
            // retransmissions kept the RTO doubling to its ceiling.
            if rtt.is_none() && self.rtt_probe.is_none() && !self.ts.ok {
                if let Some(r) = self.rack.clean_rtt {
                    self.rtt.sample(r);
                }
            }
            self.tlp_acked(now, &h.options.sack, prior_cwnd);
            self.rack_detect(now, cx);
        }
        if !advanced
            && ack == self.snd.una
            && seg.payload.is_empty()
            && !h.flags.fin
            && self.flight() > 0
        {
            // RFC 5681 §2 duplicate ACK (the same window too); with SACK,
            // one that SACKs new data (RFC 6675 §2).
            let dup = if self.rcv.sack_ok {
                newly_sacked > 0
            } else {
                wnd == self.snd.wnd
            };
            if dup {
                self.dup_acks += 1;
                if let Some(r) = self.recovery.as_mut().filter(|_| !self.rcv.sack_ok) {
                    r.inflation += self.snd.mss; // RFC 5681 §3.2 step 4
                }
            }
        }
        // Loss detection, then the congestion control takes the ACK in,
        // then the fast retransmission goes (Linux's order).
        let start = self.enter_recovery(now, cx.cfg);
        if self.cc.samples_delivery() {
            self.delivery_sample(now, cx);
        }
        if let Some(start) = start {
            self.fast_retransmit(now, start, cx);
        }
        // On every ACK, duplicate ones included: in loss recovery, data
        // the peer SACKed fills the buffer while the holes are repaired.
        if advanced || newly_sacked > 0 {
            self.grow_send_buffer(cx.cfg, cx.io);
        }
        // Window update, guarded by SND.WL1/SND.WL2 against old segments
        // (RFC 9293 §3.10.7.4), and taken from any ACK that advances
        // SND.UNA, as Linux's tcp_may_update_window does. By the RFC's test
        // alone, a peer's retransmission (an old SEG.SEQ) that acknowledges
        // new data leaves SND.WND as it was, now counted from the new
        // SND.UNA: the right edge moves past what the peer offered, and we
        // sent beyond its window (simulation smoltcp-server seed 7858).
        if ack >= self.snd.una - self.snd.max_wnd.max(1)
            && (advanced || self.snd.wl1 < seq || (self.snd.wl1 == seq && self.snd.wl2 <= ack))
        {
            let opened = self.snd.wnd == 0 && wnd > 0;
            self.snd.wnd = wnd;
            self.snd.max_wnd = self.snd.max_wnd.max(wnd);
            self.snd.wl1 = seq;
            self.snd.wl2 = ack;
            if opened {
                self.timers.persist = None;
                self.persist_backoff = 0;
            }
        }
        // State-specific consequences of our FIN being acknowledged.
        if self.snd.fin_acked {
            match self.state {
                State::FinWait1 => {
                    self.set_state(State::FinWait2, cx);
                    self.arm_fin_wait2(now, cx.cfg);
                }
                State::Closing => {
                    self.enter_time_wait(now, cx);
                }
                State::LastAck => {
                    self.terminate(None, cx);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    /// SND.UNA < SEG.ACK <= SND.MAX: drop acknowledged data, sample the RTT,
    /// grow the congestion window, manage the retransmission timer. `ecr`
    /// is the segment's timestamp echo, if it carried one.
    fn new_ack(
        &mut self,
        now: Instant,
        ack: SeqNum,
        ecr: Option<u32>,
        cx: &mut Ctx<'_>,
    ) -> Option<std::time::Duration> {
        let acked = ack - self.snd.una;
        let base = self.data_base();
        let data_acked = if ack > base {
            ((ack - base) as usize).min(cx.io.send.len())
        } else {
            0
        };
        if let Some(fin) = self.fin_seq(cx.io.send.len()) {
            if ack > fin {
                self.snd.fin_acked = true;
                // The sending side's summary, as `ss -ti` would show it.
                log::debug!(
                    "{} -> {} everything sent was acknowledged: {} segments retransmitted, {}",
                    self.remote,
                    self.local,
                    self.total_retransmits,
                    self.chrono
                        .times(now)
                        .ss()
                        .unwrap_or_else(|| "nothing sent".into())
                );
                // Everything we sent arrived: a lingering close is done.
                cx.io.fin_acked = true;
                cx.io.wake_writers();
            }
        }
        cx.io.send.consume(data_acked);
        self.urgent_acked_after(ack);
        if data_acked > 0 {
            cx.io.wake_writers();
        }
        self.snd.una = ack;
        self.snd.nxt = self.snd.nxt.max(ack);
        // Every retransmission is acknowledged: none left to echo.
        if ack >= self.rexmit_end {
            self.rexmit_ts = None;
        }
        // RFC 6298 §3 / Karn: sample only segments never retransmitted,
        // timed to the microsecond, one per round trip. While no segment is
        // timed (after a retransmission), with timestamps the echo of an
        // ACK that advances SND.UNA is the sample, retransmitted data
        // included (RFC 7323 §4.1, RTTM). As Linux, the finer clock is
        // preferred: a millisecond echo on every ACK would pull a
        // sub-millisecond SRTT up to the timestamp clock's tick.
        let rtt = match self.rtt_probe {
            Some((end, sent)) if ack >= end => {
                self.rtt_probe = None;
                Some(now - sent)
            }
            Some(_) => None,
            None => ecr
                .filter(|&e| self.ts.ok && e != 0)
                .and_then(|e| self.ts_rtt(now, e)),
        };
        if let Some(r) = rtt {
            self.rtt.sample(r);
        }
        self.retries = 0;
        self.dup_acks = 0;
        if self.rto_recover.is_some_and(|p| ack >= p) {
            self.rto_recover = None;
            self.cc.on_rto_recovery_end();
        }
        let partial = match self.recovery.as_mut() {
            // RFC 6675 §5 / RFC 6582 §3.2 step 3: the recovery point is
            // acknowledged, recovery is over.
            Some(r) if ack >= r.point => {
                self.rxt_high = Some(r.high_rxt);
                self.recovery = None;
                self.cc.on_recovery_end(now);
                self.rack.on_recovery_end();
                false
            }
            // RFC 6582 §3.2 step 5 (without SACK): a partial ACK deflates
            // the window by what it acknowledged, adds back one SMSS if
            // that was a full segment, and has the next hole resent.
            Some(r) if !self.rcv.sack_ok => {
                let back = if acked >= self.snd.mss {
                    self.snd.mss
                } else {
                    0
                };
                r.inflation = r.inflation.saturating_sub(acked) + back;
                true
            }
            Some(_) => false,
            None => {
                // HyStart++ (RFC 9406 §4.2) wants a sample on every ACK
                // (it judges a round by eight or more); the timed segment
                // gives one a round trip. RACK's transmission record gives
                // one per ACK, to the microsecond: the newest segment this
                // ACK covers that was sent once. Without SACK (no RACK),
                // the timestamp echo, to the millisecond (RFC 7323 §4.1).
                let cc_rtt = rtt
                    .or_else(|| {
                        self.rack_on(cx.cfg)
                            .then(|| self.rack.newest_acked_rtt(now, ack))
                            .flatten()
                    })
                    .or_else(|| {
                        ecr.filter(|&e| self.ts.ok && e != 0)
                            .and_then(|e| self.ts_rtt(now, e))
                    });
                let sample = AckSample {
                    now,
                    acked,
                    ack,
                    snd_nxt: self.snd.max,
                    rtt: cc_rtt,
                    srtt: self.rtt.srtt(),
                    cwnd_limited: self.cwnd_validated(),
                };
                self.cc.on_ack(&sample);
                false
            }
        };
        // RFC 6298 §5.2 / §5.3: stop or restart the timer.
        self.timers.rtx = if self.flight() == 0 {
            None
        } else {
            Some(now + self.rto())
        };
        // The oldest unacknowledged data is newer now (RFC 5482's user
        // timeout counts from it).
        self.unacked_since = (self.flight() > 0).then_some(now);
        self.clamp_rtx_to_user_timeout(now);
        if partial {
            let sent_to = self.retransmit_head(now, cx);
            if let Some(r) = self.recovery.as_mut() {
                r.high_rxt = r.high_rxt.max(sent_to);
            }
            if sent_to > ack {
                self.cc.on_lost(ack, sent_to);
            }
        }
        if self.handle.write_blocked && cx.io.send.free() > 0 && self.visible() {
            self.handle.write_blocked = false;
            cx.out.event(TcpEvent::Writable(self.id));
        }
        self.arm_tlp(now, cx); // RFC 8985 §7.2: after new data is acknowledged
        rtt
    }

    /// Places in-window data, acknowledging per RFC 9293 §3.8.6.3 / RFC 5681
    /// §4.2: at once for out-of-order data and gap fills, otherwise after
    /// every second full-sized segment or the delayed-ACK timeout (MUST-40).
    fn receive_data(
        &mut self,
        now: Instant,
        seq: SeqNum,
        payload: &[u8],
        echo: Option<std::time::Duration>,
        cx: &mut Ctx<'_>,
    ) {
        let (offset, data) = if seq < self.rcv.nxt {
            let skip = (self.rcv.nxt - seq) as usize;
            (0, payload.get(skip..).unwrap_or(&[]))
        } else {
            ((seq - self.rcv.nxt) as usize, payload)
        };
        if data.is_empty() {
            return;
        }
        let had_gap = cx.io.recv.has_gap();
        if self.rcv.sack_ok {
            // RFC 2883 §4: a segment partly below RCV.NXT, or wholly inside
            // data held out of order, repeats what arrived; the next ACK
            // reports the repeated part in a D-SACK block.
            if seq < self.rcv.nxt {
                self.ack.dsack = Some((seq, self.rcv.nxt));
            } else if offset > 0 && cx.io.recv.holds(offset, data.len()) {
                self.ack.dsack = Some((seq, seq + data.len() as u32));
            }
            // A repeat suggests a spurious retransmission: tell the sender
            // now, not after the delayed-ACK timer.
            if self.ack.dsack.is_some() {
                self.ack.now = true;
            }
        }
        let advanced = cx.io.recv.write(offset, data);
        self.rcv.nxt += advanced as u32;
        if advanced > 0 {
            self.autotune(now, echo, cx.cfg, cx.io);
            if cx.io.read_shut {
                // shutdown(Read): acknowledged, then thrown away.
                let ready = cx.io.recv.ready();
                cx.io.recv.consume(ready);
            } else {
                cx.io.wake_readers();
            }
            if self.visible() {
                cx.out.event(TcpEvent::Readable(self.id));
            }
        }
        if offset > 0 && self.rcv.sack_ok && self.state.is_synchronized() {
            // RFC 5681 §4.2: an out-of-order segment is acknowledged at
            // once, each one (not one ACK for the batch it came in): each
            // duplicate ACK carries SACK blocks led by that segment (RFC
            // 2018 §4), and with only three blocks beside timestamps the
            // sender learns of every new hole only this way, as from
            // Linux's receiver.
            self.send_ack(now, cx);
            self.ack.now = false;
        } else if offset > 0 || had_gap || advanced < data.len() {
            self.ack.now = true;
        } else {
            // Every second full-sized segment is acknowledged when the
            // connection is next dispatched (`dispatch`), i.e. once per
            // batch of segments read together; anything less waits for the
            // delayed-ACK timer or for data to ride on (MUST-58, MUST-40).
            self.ack.unacked_bytes = self.ack.unacked_bytes.saturating_add(advanced as u32);
            self.ack.largest_segment = self.ack.largest_segment.max(data.len() as u32);
            if self.timers.delack.is_none() {
                self.timers.delack = Some(now + cx.cfg.delayed_ack);
            }
        }
    }
}

/// RFC 2883 §4: the first SACK block reports a duplicate (D-SACK) when it
/// lies below the cumulative ACK, or inside the second block.
fn is_dsack(blocks: &crate::wire::tcp::SackBlocks, una: SeqNum) -> bool {
    match blocks.as_slice() {
        [] => false,
        [(_, right), ..] if SeqNum(*right) <= una => true,
        [(l1, r1), (l2, r2), ..] => SeqNum(*l2) <= SeqNum(*l1) && SeqNum(*r1) <= SeqNum(*r2),
        _ => false,
    }
}
