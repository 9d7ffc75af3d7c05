//! Undoing a spurious loss episode: a fast retransmit or a retransmission
//! timeout for a segment that was only delayed (reordered, or an RTO that
//! fired too soon). Two detectors, as in Linux:
//!
//! - **Eifel** (RFC 3522): with timestamps, the first ACK that covers the
//!   retransmitted segment echoes the TSval of the copy that arrived. An
//!   echo older than the retransmission's TSval means the original got
//!   there: the retransmission was needless (§3.2).
//! - **D-SACK** (RFC 3708): every retransmission of the episode reported a
//!   duplicate by the receiver (RFC 2883) means nothing was lost (§3).
//!   Judged only once the episode is over, as Linux does: during it, a
//!   D-SACK may be the network's duplicate of a retransmission.
//!
//! The response (RFC 4015 §3, as Linux's `tcp_undo_cwnd_reduction`): the
//! congestion window and threshold go back to what they were
//! ([`super::congestion::Congestion::undo`]), recovery ends, and after a
//! timeout the sender resumes with new data rather than resending what the
//! peer holds (RFC 4015 §3 step (6): SND.NXT = SND.MAX).

use crate::notes::note;
use crate::time::Instant;
use crate::wire::tcp::SackBlocks;

use super::conn::{Conn, Ctx, Undo};
use super::seq::SeqNum;

impl Conn {
    /// A loss episode begins (fast recovery, or a timeout outside any
    /// episode): remembers the window before it, SND.UNA, and, with
    /// timestamps, the TSval the retransmission about to go out carries.
    /// Called before the congestion control reduces anything.
    pub(crate) fn begin_undo(&mut self, now: Instant) {
        self.undo = Some(Undo {
            marker: self.snd.una,
            // RFC 3522 §2: RetransmitTS is the TSval of the first
            // retransmission. If data still outstanding was resent before
            // this episode (its head by an earlier episode, RACK or a tail
            // probe), an ACK may echo that copy: compare with the oldest
            // (as Linux compares with `retrans_stamp`), or the copy's echo
            // passes for the original's.
            retransmit_ts: self
                .ts
                .ok
                .then(|| self.rexmit_ts.unwrap_or_else(|| self.ts_val(now))),
            judged: false,
            retransmits_left: 0,
            retransmitted: false,
            before: Box::new(self.cc.clone()),
        });
    }

    /// `[seq, end)` is being sent again at `now`: keeps the TSval of the
    /// first retransmission outstanding (`rexmit_ts`).
    pub(crate) fn note_retransmission(&mut self, now: Instant, end: SeqNum) {
        if !self.ts.ok {
            return;
        }
        if self.rexmit_ts.is_none() {
            self.rexmit_ts = Some(self.ts_val(now));
            self.rexmit_end = end;
        } else {
            self.rexmit_end = self.rexmit_end.max(end);
        }
    }

    /// Counts a retransmitted segment: the episode can be found spurious
    /// by D-SACK only once each is reported a duplicate.
    pub(crate) fn count_retransmit(&mut self, cx: &mut Ctx<'_>) {
        self.total_retransmits += 1;
        cx.out.stats.retransmits += 1;
        if let Some(u) = self.undo.as_mut() {
            u.retransmits_left = u.retransmits_left.saturating_add(1);
            u.retransmitted = true;
        }
    }

    /// RFC 3522 §3.2, on an ACK that advances SND.UNA to `ack` with
    /// timestamp echo `ecr`: is it the first ACK to cover the
    /// retransmitted segment, echoing a TSval older than the
    /// retransmission's? Not when the ACK carries a D-SACK (RFC 4015 §2
    /// step (5): the retransmission arrived too).
    pub(crate) fn eifel_spurious(&mut self, ack: SeqNum, ecr: Option<u32>, dsack: bool) -> bool {
        let Some(u) = self.undo.as_mut() else {
            return false;
        };
        if u.judged || ack <= u.marker || !u.retransmitted {
            return false;
        }
        u.judged = true;
        match (u.retransmit_ts, ecr) {
            // Timestamps compare modulo 2^32 (RFC 7323 §5.2).
            (Some(rts), Some(ecr)) if self.ts.ok && !dsack => (ecr.wrapping_sub(rts) as i32) < 0,
            _ => false,
        }
    }

    /// RFC 3708 §3: a D-SACK block (the first of `blocks`, below SND.UNA
    /// or inside the second, RFC 2883 §4) reports segments the peer got
    /// twice; once every retransmission of the episode has been so
    /// reported, the episode was spurious. Only blocks at or past the
    /// episode's first segment count.
    pub(crate) fn dsack_spurious(&mut self, blocks: &SackBlocks) -> bool {
        let mss = self.snd.mss.max(1);
        let Some(u) = self.undo.as_mut() else {
            return false;
        };
        let Some(&(left, right)) = blocks.as_slice().first() else {
            return false;
        };
        let (left, right) = (SeqNum(left), SeqNum(right));
        if right <= left || right <= u.marker {
            return false;
        }
        let segments = (right - left).div_ceil(mss);
        u.retransmits_left = u.retransmits_left.saturating_sub(segments);
        u.retransmitted && u.retransmits_left == 0
    }

    /// Undoes the episode found spurious by `how` (RFC 4015 §3).
    pub(crate) fn undo_spurious(&mut self, now: Instant, how: &str, cx: &mut Ctx<'_>) {
        let Some(u) = self.undo.take() else {
            return;
        };
        let (cwnd, ssthresh) = (self.cc.cwnd(), self.cc.ssthresh());
        self.cc.undo(now, &u.before);
        if let Some(r) = self.recovery.take() {
            self.rxt_high = Some(r.high_rxt);
            self.rack.on_recovery_end();
        }
        // RFC 4015 §3 step (6): after a timeout, resume with new data; the
        // peer holds what was outstanding (or, if some of it was lost
        // too, the next loss detection finds it: the retransmission timer
        // keeps running while anything is in flight).
        if self.rto_recover.take().is_some() {
            self.snd.nxt = self.snd.max;
        }
        if self.flight() > 0 && self.timers.rtx.is_none() {
            self.timers.rtx = Some(now + self.rto());
            self.clamp_rtx_to_user_timeout(now);
        }
        cx.out.stats.spurious_undone += 1;
        log::debug!(
            "{} -> {} spurious retransmission ({how}): cwnd {cwnd} -> {}, ssthresh {ssthresh} -> {}",
            self.remote,
            self.local,
            self.cc.cwnd(),
            self.cc.ssthresh()
        );
        note!(
            cx.out.notes,
            received,
            "the retransmission was spurious ({how}): congestion window restored to {}",
            self.cc.cwnd()
        );
    }
}
