//! Segments that reach a listener (RFC 9293 §3.10.7.2, LISTEN): a SYN
//! opens a connection in SYN-RECEIVED or, while the SYN queue is full, is
//! answered with a SYN cookie (RFC 4987 §3.6) whose returning ACK opens it.

use std::net::SocketAddr;

use crate::time::Instant;
use crate::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpOptionsRepr, TcpSegment};

use super::TcpLayer;
use crate::tcp::api::{ConnId, ListenerId};
use crate::tcp::conn::Conn;
use crate::tcp::outbox::TCP_IP;
use crate::tcp::seq::SeqNum;
use crate::tcp::state::State;

/// What an ACK to a listener made of a SYN cookie.
enum CookieAck {
    /// The connection it stands for was opened.
    Opened,
    /// A valid cookie, but the accept queue is full: drop the ACK.
    Overflow,
    /// Not a cookie of ours (or cookies are not in use): reset.
    Invalid,
}

impl TcpLayer {
    /// RFC 9293 §3.10.7.2, LISTEN.
    pub(super) fn on_listen_segment(
        &mut self,
        now: Instant,
        lid: ListenerId,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpSegment<'_>,
        iss_override: Option<SeqNum>,
    ) {
        let h = seg.header;
        if h.flags.rst {
            return; // first: ignore RST
        }
        if h.flags.ack {
            if !h.flags.syn {
                match self.accept_syn_cookie(now, lid, local, remote, seg) {
                    CookieAck::Opened => return,
                    CookieAck::Overflow => {
                        // As Linux does (tcp_abort_on_overflow = 0): a
                        // valid cookie while the accept queue is full is
                        // dropped, not reset; the client's next segment
                        // completes the handshake once there is room.
                        self.out.stats.listen_overflow += 1;
                        return;
                    }
                    CookieAck::Invalid => {}
                }
            }
            self.out.reset_for(local, remote, seg); // second: <SEQ=SEG.ACK><CTL=RST>
            return;
        }
        if !h.flags.syn {
            return;
        }
        // RFC 9293 §3.10.7.2: a SYN from a broadcast or multicast address
        // is not answered.
        let ip = remote.ip();
        if super::is_broadcast(ip) || ip.is_multicast() || ip.is_unspecified() {
            return;
        }
        // A SYN flood must not lock real clients out: when the SYN queue is
        // full (but the accept queue is not), answer with a SYN cookie and
        // keep no state (RFC 4987 §3.6); the client's ACK brings it back.
        let cookie_time = self
            .listeners
            .get(&lid)
            .is_some_and(|l| l.syn_queue.len() >= l.backlog && l.can_accept());
        if cookie_time {
            self.send_syn_cookie(now, lid, local, remote, seg);
            return;
        }
        let full = self.conns.len() >= self.cfg.max_connections;
        let Some(listener) = self.listeners.get_mut(&lid) else {
            return;
        };
        if full || !listener.can_take_syn() {
            self.out.stats.syn_dropped += 1;
            log::debug!("{remote} -> {local} SYN dropped: listen queue full");
            return;
        }
        let id = ConnId(self.next_id);
        self.next_id += 1;
        listener.syn_queue.push(id);
        let opts = listener.options.clone();
        let iss = iss_override.unwrap_or_else(|| self.isn.isn(now, local, remote));
        let mut conn = Conn::from_syn(
            id,
            lid,
            (local, remote),
            iss,
            &h,
            (&self.cfg, &opts),
            &self.pool,
        );
        conn.locked(&self.cfg, &mut self.out, |c, cx| {
            c.set_state(State::SynReceived, cx);
            c.dispatch(now, cx);
        });
        self.tuples.insert((local, remote), id);
        self.conns.insert(id, conn);
        self.reschedule(id);
    }

    /// Answers a SYN with a stateless SYN-ACK whose ISN is a cookie: MSS
    /// option only (a cookie cannot carry window scaling), window at most
    /// 64 KiB.
    fn send_syn_cookie(
        &mut self,
        now: Instant,
        lid: ListenerId,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpSegment<'_>,
    ) {
        let h = seg.header;
        let peer_mss = h.options.mss.unwrap_or(536);
        let (cookie, _) = self
            .cookies
            .make(now, local, remote, SeqNum(h.seq), peer_mss);
        if let Some(l) = self.listeners.get_mut(&lid) {
            l.cookies_sent_at = Some(now);
        }
        let window = self.cfg.recv_buffer.min(usize::from(u16::MAX)) as u16;
        let syn_ack = TcpHeaderRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq: cookie.get(),
            ack: h.seq.wrapping_add(1),
            flags: TcpFlags {
                syn: true,
                ack: true,
                ..Default::default()
            },
            window,
            urgent: 0,
            options: TcpOptionsRepr {
                mss: Some(self.cfg.mss_for(local.ip())),
                ..Default::default()
            },
        };
        self.out.stats.syn_cookies_sent += 1;
        crate::notes::note!(
            self.out.notes,
            next(local, remote),
            "SYN queue full: SYN cookie sent, no state kept"
        );
        log::debug!("{remote} -> {local} SYN queue full: answered with a SYN cookie");
        self.out.emit(local, remote, &syn_ack, [&[], &[]], TCP_IP);
    }

    /// An ACK reached a listener with no connection: if it returns a valid
    /// SYN cookie (sent lately), create the connection it stands for, as if
    /// it had waited in SYN-RECEIVED, and let the ACK complete it.
    fn accept_syn_cookie(
        &mut self,
        now: Instant,
        lid: ListenerId,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpSegment<'_>,
    ) -> CookieAck {
        let h = seg.header;
        let Some(l) = self.listeners.get(&lid) else {
            return CookieAck::Invalid;
        };
        // Only while cookies are in use (two 64 s periods since the last),
        // so forged ACKs cannot open connections otherwise.
        let recent = l
            .cookies_sent_at
            .is_some_and(|t| now - t <= std::time::Duration::from_secs(128));
        if !recent {
            return CookieAck::Invalid;
        }
        let iss = SeqNum(h.ack.wrapping_sub(1));
        let irs = SeqNum(h.seq.wrapping_sub(1));
        let Some(mss) = self.cookies.check(now, local, remote, irs, iss) else {
            return CookieAck::Invalid;
        };
        if !l.can_accept() || self.conns.len() >= self.cfg.max_connections {
            return CookieAck::Overflow;
        }
        self.out.stats.syn_cookies_accepted += 1;
        let opts = l.options.clone();
        let id = ConnId(self.alloc_id());
        let mut conn = Conn::from_cookie(
            id,
            lid,
            (local, remote),
            &h,
            mss,
            (&self.cfg, &opts),
            &self.pool,
        );
        conn.locked(&self.cfg, &mut self.out, |c, cx| {
            c.set_state(State::SynReceived, cx)
        });
        if let Some(l) = self.listeners.get_mut(&lid) {
            l.syn_queue.push(id);
        }
        self.tuples.insert((local, remote), id);
        self.conns.insert(id, conn);
        // The ACK now meets its SYN-RECEIVED connection and establishes it
        // (with any data it carries).
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.locked(&self.cfg, &mut self.out, |c, cx| c.on_segment(now, seg, cx));
        }
        self.after(id, State::SynReceived);
        log::debug!("{remote} -> {local} connection opened from a SYN cookie");
        crate::notes::note!(
            self.out.notes,
            received,
            "the ACK returned a valid SYN cookie: connection opened"
        );
        CookieAck::Opened
    }
}
