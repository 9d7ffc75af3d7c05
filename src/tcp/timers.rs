//! What happens when a connection's timer fires: retransmission (RFC 6298
//! §5), persist (RFC 9293 §3.8.6.1), delayed ACK (§3.8.6.3), keepalive
//! (§3.8.4), TIME-WAIT and FIN-WAIT-2. The deadlines themselves are plain
//! data in `deadlines.rs`.

use std::time::Duration;

use crate::time::Instant;

use crate::notes::note;

use super::api::TcpError;
use super::config::TcpConfig;
use super::conn::{Conn, Ctx};
use super::deadlines::{due, Timers};
use super::state::State;

impl Conn {
    /// Runs every timer that is due at `now`.
    pub fn on_timer(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        if due(self.timers.linger, now) {
            self.timers.linger = None;
            if matches!(self.state, State::TimeWait | State::FinWait2) {
                // RFC 9293 §3.10.8: TIME-WAIT timeout deletes the TCB; an
                // orphaned FIN-WAIT-2 is dropped as Linux does.
                self.terminate(None, cx);
                return;
            }
        }
        // The tail loss probe first: when it was due with the RTO, it takes
        // the RTO's place and rearms it (RFC 8985 §7.3).
        if due(self.timers.tlp, now) {
            self.timers.tlp = None;
            let probes = cx.out.stats.tlp_probes;
            self.on_tlp(now, cx);
            if cx.out.stats.tlp_probes > probes {
                note!(
                    cx.out.notes,
                    last(self.local, self.remote),
                    "tail loss probe"
                );
            }
        }
        if due(self.timers.rtx, now) {
            self.timers.rtx = None;
            self.on_rto(now, cx);
            if self.state == State::Closed {
                return;
            }
        }
        if due(self.timers.reorder, now) {
            self.timers.reorder = None;
            self.rack_detect(now, cx);
            self.detect_loss(now, cx);
        }
        if due(self.timers.persist, now) {
            self.timers.persist = None;
            self.on_persist(now, cx);
        }
        if due(self.timers.delack, now) {
            self.timers.delack = None;
            self.ack.now = true;
        }
        // Pacing let the next segment go: the dispatch below sends it.
        if due(self.timers.pace, now) {
            self.timers.pace = None;
        }
        if due(self.timers.keepalive, now) {
            self.timers.keepalive = None;
            self.on_keepalive(now, cx);
            if self.state == State::Closed {
                return;
            }
        }
        self.dispatch(now, cx);
    }

    /// Retransmission timeout: back off, go back to SND.UNA, and give up
    /// after the configured number of tries (RFC 9293 §3.8.3, R2).
    fn on_rto(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let limit = match self.state {
            State::SynSent => cx.cfg.syn_retries,
            State::SynReceived => cx.cfg.synack_retries,
            State::Closed | State::Listen | State::TimeWait => return,
            _ => cx.cfg.retries2,
        };
        if self.snd.nxt == self.snd.una && self.snd.max == self.snd.una {
            return; // nothing outstanding
        }
        // RFC 5482 (TCP_USER_TIMEOUT), MUST-20/21: the application's own R2,
        // in time: data unacknowledged this long ends the connection,
        // whatever the retransmission count.
        if self.user_timeout_expired(now) {
            log::debug!(
                "{} -> {} {}: user timeout, data unacknowledged for {:?}",
                self.remote,
                self.local,
                self.state,
                self.user_timeout.unwrap_or_default()
            );
            let err = self.listener.is_none().then_some(TcpError::TimedOut);
            self.terminate(err, cx);
            return;
        }
        // MUST-35 (RFC 9293 §3.8.6.1): the peer shrank its window to zero
        // with data in flight. The retransmissions become zero-window
        // probes of the head of the queue, and the connection is not timed
        // out while the peer answers (SHLD-16, MUST-37): as Linux does, it
        // is given up only after `max_rto` without hearing from the peer.
        if self.snd.wnd == 0 && self.state.is_synchronized() {
            let silent = self.last_heard.is_none_or(|t| now - t > cx.cfg.max_rto);
            if silent && self.retries >= limit {
                self.terminate(Some(TcpError::TimedOut), cx);
                return;
            }
            self.retries = self.retries.saturating_add(1);
            let rto = self.rto().as_millis();
            self.rtt.back_off();
            self.rtt_probe = None;
            self.retransmit_head(now, cx);
            note!(
                cx.out.notes,
                last(self.local, self.remote),
                "zero-window probe (retransmission {}, RTO {rto} ms)",
                self.retries
            );
            return;
        }
        if self.retries >= limit {
            log::debug!(
                "{} -> {} {} gave up after {} retransmissions",
                self.remote,
                self.local,
                self.state,
                self.retries
            );
            // A half-open passive connection just disappears (as Linux).
            let err = if self.listener.is_some() {
                None
            } else {
                Some(TcpError::TimedOut)
            };
            self.terminate(err, cx);
            return;
        }
        self.retries += 1;
        if self.retries == cx.cfg.retries1 {
            // RFC 9293 §3.8.3 R1: the IP layer would get negative advice here.
            log::debug!(
                "{} -> {} {} retransmissions, path may be down",
                self.remote,
                self.local,
                self.retries
            );
        }
        log::debug!(
            "{} -> {} retransmission timeout {} (RTO {:?}), {} bytes outstanding, \
             {} in flight, cwnd {}, {} SACKed, recovering {}, peer window {}, {} queued",
            self.remote,
            self.local,
            self.retries,
            self.rto(),
            self.flight(),
            self.in_flight(),
            self.cc.cwnd(),
            self.sb.sacked_bytes(),
            self.recovery.is_some(),
            self.snd.wnd,
            cx.io.send.len()
        );
        note!(
            cx.out.notes,
            next(self.local, self.remote),
            "retransmission {}, RTO {} ms",
            self.retries,
            self.rto().as_millis()
        );
        self.rtt.back_off(); // RFC 6298 §5.5
        self.rtt_probe = None; // Karn: never time a retransmitted segment
        if self.state.is_synchronized() {
            // A new episode, unless one (a recovery, or earlier timeouts
            // in a row) is under way: its start stays what undo restores.
            if self.recovery.is_none() && self.rto_recover.is_none() {
                self.begin_undo(now);
            }
            self.cc.on_rto(now, self.flight()); // RFC 5681 §3.1 eq. (4)
        }
        self.dup_acks = 0;
        // RFC 6675 §5.1: an RTO ends any recovery, and none starts again
        // until what was outstanding is acknowledged. The scoreboard is
        // kept, so SACKed data is not sent again; a second timeout in a
        // row suggests the peer reneged, and it is cleared (RFC 2018 §8).
        self.recovery = None;
        // Everything outstanding goes again (go-back-N).
        self.rxt_high = None;
        self.rto_recover = Some(self.snd.max);
        // RFC 8985 §6.3: after a timeout everything outstanding is resent
        // (the go-back-N above); the probe and reordering timers stop.
        self.rack.clear_marks();
        self.timers.tlp = None;
        self.timers.reorder = None;
        if self.retries > 1 {
            self.sb.clear();
        }
        // RFC 6298 §5.4: retransmit the earliest unacknowledged segment; we
        // go back to SND.UNA and resend within the (now one-MSS) window.
        self.snd.nxt = self.snd.una;
        self.timers.rtx = Some(now + self.rto()); // RFC 6298 §5.6
        self.clamp_rtx_to_user_timeout(now);
    }

    /// Persist timer: probe a zero window with one byte (MUST-36), backing
    /// off but never giving up while the peer answers (MUST-37); or, if the
    /// window is open but too small for the sender SWS rules, send what fits.
    fn on_persist(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        if !self.state.is_synchronized() || self.state == State::TimeWait || self.flight() > 0 {
            return;
        }
        let off = (self.snd.nxt - self.data_base()) as usize;
        let unsent = cx.io.send.len().saturating_sub(off);
        if unsent == 0 {
            return;
        }
        if self.snd.wnd == 0 {
            log::trace!("{} -> {} zero-window probe", self.remote, self.local);
            note!(
                cx.out.notes,
                next(self.local, self.remote),
                "zero-window probe {}",
                self.persist_backoff + 1
            );
            self.emit_data(now, self.snd.nxt, 1, false, cx);
            self.snd.max = self.snd.max.max(self.snd.nxt + 1);
            self.persist_backoff = self.persist_backoff.saturating_add(1);
            self.timers.persist = Some(now + self.persist_interval(cx.cfg.max_rto));
        } else {
            // RFC 9293 §3.8.6.2.1: the SWS override timeout. At most the
            // effective MSS (RFC 6691 §2: the MSS less the options this
            // segment carries), as every other segment.
            let mss = self.data_mss(cx.io) as usize;
            let len = unsent.min(self.snd.wnd as usize).min(mss);
            self.emit_data(now, self.snd.nxt, len, false, cx);
            self.snd.nxt += len as u32;
            self.snd.max = self.snd.max.max(self.snd.nxt);
            self.timers.rtx = Some(now + self.rto());
        }
    }

    /// Interval before the next persist probe: RTO doubled per probe.
    pub(crate) fn persist_interval(&self, max: Duration) -> Duration {
        let shift = self.persist_backoff.min(16);
        self.rto().saturating_mul(1 << shift).min(max)
    }

    /// Keepalive (RFC 9293 §3.8.4): probe with `<SEQ=SND.UNA-1>` and no data
    /// after `idle`, then every `interval`; drop after `count` unanswered.
    fn on_keepalive(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let Some(k) = self.keepalive else { return };
        let probing = matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait1 | State::FinWait2
        );
        if !probing || self.flight() > 0 {
            // Data in flight has its own timer; look again later.
            self.timers.keepalive = Some(now + k.idle);
            return;
        }
        if self.keepalive_probes >= k.count {
            log::debug!(
                "{} -> {} keepalive: {} probes unanswered",
                self.remote,
                self.local,
                k.count
            );
            note!(
                cx.out.notes,
                next(self.local, self.remote),
                "keepalive: {} probes unanswered, connection reset",
                k.count
            );
            self.reset(Some(TcpError::TimedOut), cx);
            return;
        }
        note!(
            cx.out.notes,
            next(self.local, self.remote),
            "keepalive probe {} of {}",
            self.keepalive_probes + 1,
            k.count
        );
        self.send_segment(Some(now), self.snd.una - 1, false, cx);
        self.keepalive_probes += 1;
        log::debug!(
            "{} -> {} keepalive probe {} of {}",
            self.remote,
            self.local,
            self.keepalive_probes,
            k.count
        );
        self.timers.keepalive = Some(now + k.interval);
    }

    /// Enters TIME-WAIT for 2×MSL (RFC 9293 §3.10.7.4, MUST-13).
    pub(crate) fn enter_time_wait(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        self.set_state(State::TimeWait, cx);
        let linger = cx.cfg.msl.saturating_mul(2);
        if cx.out.notes.on() {
            match cx.out.notes.time_of_day(now + linger) {
                Some(t) => note!(
                    cx.out.notes,
                    event(self.local, self.remote),
                    "TIME-WAIT until {t} (2*MSL)"
                ),
                None => note!(
                    cx.out.notes,
                    event(self.local, self.remote),
                    "TIME-WAIT for {} ms (2*MSL)",
                    linger.as_millis()
                ),
            }
        }
        self.timers = Timers {
            linger: Some(now + linger),
            ..Default::default()
        };
    }

    /// Bounds the life of a FIN-WAIT-2 connection nobody will read from.
    pub(crate) fn arm_fin_wait2(&mut self, now: Instant, cfg: &TcpConfig) {
        if self.state == State::FinWait2 && self.handle.rd_closed && self.timers.linger.is_none() {
            self.timers.linger = Some(now + cfg.fin_wait2_timeout);
        }
    }
}
