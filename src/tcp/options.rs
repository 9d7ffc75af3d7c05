//! Socket options of a connection, and of a listener for the connections
//! it accepts: the IP header (TTL, TOS), the buffer sizes, and the user
//! timeout (RFC 5482; RFC 9293 MUST-20/21: R2 per connection).

use std::time::Duration;

use crate::time::Instant;

use super::conn::{Conn, Ctx};

/// One option, as `socket2` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption {
    /// `IP_TTL` of the connection's segments (`None`: the stack's default).
    Ttl(Option<u8>),
    /// `IP_TOS`: the DS field and ECN bits of its segments (RFC 9293
    /// MUST-48/49: the application may set the Diffserv field).
    Tos(u8),
    /// `SO_RCVBUF`: the receive buffer, which bounds the window advertised.
    RecvBuffer(usize),
    /// `SO_SNDBUF`: the send buffer.
    SendBuffer(usize),
    /// `TCP_USER_TIMEOUT` (RFC 5482): how long sent data may stay
    /// unacknowledged before the connection is aborted with `TimedOut`,
    /// whatever the retransmission count (`None`: the R2 count decides).
    UserTimeout(Option<Duration>),
    /// `TCP_CONGESTION`: the congestion control algorithm. Switching keeps
    /// the window and threshold reached so far, as Linux does.
    Congestion(super::congestion::Algorithm),
    /// `IPV6_V6ONLY` on a listener bound to `[::]`: true, it takes IPv6
    /// connections only; false (the default, Linux's `bindv6only=0`), IPv4
    /// ones too. Nothing on a connection.
    OnlyV6(bool),
}

/// The smallest buffer a socket may set: one full segment of the largest
/// MSS fits anyway, but the window must be able to hold something.
const MIN_BUFFER: usize = 256;

impl Conn {
    /// Sets an option on a connection that is running.
    pub fn set_option(&mut self, now: Instant, opt: TcpOption, cx: &mut Ctx<'_>) {
        match opt {
            TcpOption::RecvBuffer(n) => {
                // An explicit size turns autotuning off (as SO_RCVBUF does).
                self.rcv.autotune = false;
                // A window already offered is never taken back (RFC 9293
                // §3.8.6.2.2): the buffer keeps room for it, and a smaller
                // size shows as a window that closes as data arrives.
                let promised = (self.rcv.adv - self.rcv.nxt) as usize;
                cx.io.recv.set_capacity(n.max(MIN_BUFFER).max(promised));
            }
            TcpOption::SendBuffer(n) => {
                self.snd_autotune = false;
                cx.io.send.set_capacity(n.max(MIN_BUFFER));
                if cx.io.send.free() > 0 {
                    cx.io.wake_writers();
                }
            }
            other => self.apply_option(other),
        }
        if let TcpOption::UserTimeout(_) = opt {
            self.clamp_rtx_to_user_timeout(now);
        }
    }

    /// Sets an option on a connection being built (a listener's options on
    /// a new connection), before it has sent anything.
    pub(crate) fn preset_option(&mut self, opt: TcpOption) {
        match opt {
            TcpOption::RecvBuffer(n) => {
                self.rcv.autotune = false;
                self.io.lock().recv.set_capacity(n.max(MIN_BUFFER));
            }
            TcpOption::SendBuffer(n) => {
                self.snd_autotune = false;
                self.io.lock().send.set_capacity(n.max(MIN_BUFFER));
            }
            other => self.apply_option(other),
        }
    }

    fn apply_option(&mut self, opt: TcpOption) {
        match opt {
            // RFC 1122 §3.2.1.7: never TTL 0.
            TcpOption::Ttl(ttl) => self.ip.ttl = ttl.map(|t| t.max(1)),
            TcpOption::Tos(tos) => self.ip.tos = tos,
            TcpOption::UserTimeout(t) => self.user_timeout = t.filter(|t| !t.is_zero()),
            TcpOption::Congestion(algorithm) => self.cc.set_algorithm(algorithm),
            TcpOption::RecvBuffer(_) | TcpOption::SendBuffer(_) | TcpOption::OnlyV6(_) => {}
        }
    }

    /// RFC 5482 / Linux: the retransmission timer fires no later than the
    /// user timeout, so the connection is given up on time.
    pub(crate) fn clamp_rtx_to_user_timeout(&mut self, _now: Instant) {
        if let (Some(uto), Some(since), Some(rtx)) =
            (self.user_timeout, self.unacked_since, self.timers.rtx)
        {
            self.timers.rtx = Some(rtx.min(since + uto));
        }
    }

    /// True when sent data has stayed unacknowledged longer than the user
    /// timeout.
    pub(crate) fn user_timeout_expired(&self, now: Instant) -> bool {
        match (self.user_timeout, self.unacked_since) {
            (Some(uto), Some(since)) => now - since >= uto,
            _ => false,
        }
    }
}
