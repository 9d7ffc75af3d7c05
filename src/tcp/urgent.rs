//! The urgent mechanism (RFC 9293 §3.8.5, MUST-30..33, MUST-62; RFC 6093).
//!
//! Urgent octets are delivered in line, in stream order (RFC 6093 §4: the
//! only way that works across implementations); what the mechanism adds is
//! where they end. The urgent pointer points to the octet *following* the
//! urgent data (RFC 6093 §3, MUST-62), on the way out and on the way in.
//!
//! - Sending: the application marks the end of what it wrote as urgent
//!   (`TcpStream::send_urgent`); every segment sent while SND.UP lies ahead
//!   carries URG and the pointer, capped at 65,535 octets ahead (a
//!   sequence of urgent data of any length, MUST-31).
//! - Receiving: URG moves RCV.UP forward (never back), also when the
//!   window is zero (MUST-66); the application learns asynchronously that
//!   urgent data is pending (its readers are woken, MUST-32) and how much
//!   of it remains to be read (MUST-33).

use crate::time::Instant;

use super::conn::{Conn, Ctx};
use super::seq::SeqNum;

impl Conn {
    /// Takes the application's urgent mark (set in the stream) into SND.UP.
    pub(crate) fn take_urgent_mark(&mut self, cx: &mut Ctx<'_>) {
        let Some(end) = cx.io.urgent_send_end.take() else {
            return;
        };
        // The byte at stream offset `pushed - len` is at `data_base`.
        let first = cx.io.send.pushed() - cx.io.send.len() as u64;
        let Some(ahead) = end.checked_sub(first) else {
            return; // already acknowledged
        };
        let up = self.data_base() + ahead.min(u64::from(u32::MAX >> 1)) as u32;
        if self.snd.up.is_none_or(|u| up > u) {
            self.snd.up = Some(up);
        }
    }

    /// The URG flag and urgent pointer for a segment starting at `seq`
    /// (MUST-62: the pointer is the offset of the octet following the
    /// urgent data; at most 65,535 ahead, the rest follows in later
    /// segments, MUST-31).
    pub(crate) fn urgent_pointer(&self, seq: SeqNum) -> Option<u16> {
        let up = self.snd.up?;
        (up > seq).then(|| (up - seq).min(u32::from(u16::MAX)) as u16)
    }

    /// Urgent mode ends once the peer has acknowledged SND.UP.
    pub(crate) fn urgent_acked_after(&mut self, ack: SeqNum) {
        if self.snd.up.is_some_and(|up| up <= ack) {
            self.snd.up = None;
        }
    }

    /// RFC 9293 §3.10.7.4, sixth step: URG moves RCV.UP forward and tells
    /// the application, which reads the urgent octets in line.
    pub(crate) fn on_urgent(&mut self, _now: Instant, seq: SeqNum, pointer: u16, cx: &mut Ctx<'_>) {
        if pointer == 0 {
            return;
        }
        let up = seq + u32::from(pointer);
        if self.rcv.up.is_some_and(|u| up <= u) {
            return;
        }
        self.rcv.up = Some(up);
        // As a stream offset: RCV.NXT is at consumed + ready.
        let nxt_offset = cx.io.recv.consumed() + cx.io.recv.ready() as u64;
        let end = if up >= self.rcv.nxt {
            nxt_offset + u64::from(up - self.rcv.nxt)
        } else {
            nxt_offset.saturating_sub(u64::from(self.rcv.nxt - up))
        };
        if end > cx.io.recv.consumed() {
            cx.io.urgent_recv_end = Some(end);
            // MUST-32: tell the application asynchronously.
            cx.io.wake_readers();
            log::debug!(
                "{} -> {} urgent data: {} octets to read",
                self.remote,
                self.local,
                end - cx.io.recv.consumed()
            );
        }
    }
}
