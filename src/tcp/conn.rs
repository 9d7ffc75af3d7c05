//! One connection's transmission control block and the calls the
//! application makes on it. Segment arrival lives in `input.rs`, segment
//! generation in `output.rs`, what timers do in `timers.rs` (their deadlines
//! in `deadlines.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::time::Instant;

use super::api::{ConnId, ConnInfo, ListenerId, TcpError, TcpEvent};
use super::buffer::{BufferPool, RecvBuffer, SendBuffer};
use super::chrono::Chrono;
use super::config::window_shift_for;
use super::config::{KeepaliveConfig, TcpConfig};
use super::congestion::Congestion;
use super::deadlines::Timers;
use super::options::TcpOption;
use super::outbox::Outbox;
use super::rack::Rack;
use super::rtt::RttEstimator;
use super::scoreboard::Scoreboard;
use super::seq::SeqNum;
use super::state::State;
use super::stream::{Stream, StreamState};
use crate::ip::IpOptions;
use crate::wire::tcp::{TcpHeaderRepr, TcpOptionsRepr};

/// What a connection needs from its surroundings while it runs: the
/// configuration, the output queue, and its own shared stream state,
/// locked for the duration of the call.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a TcpConfig,
    pub out: &'a mut Outbox,
    pub io: &'a mut StreamState,
}

/// RFC 9293 §3.7.1, MUST-15: the send MSS when the peer sent no MSS option.
pub(crate) const DEFAULT_MSS: u32 = 536;
/// The MSS assumed over IPv6 when the peer sends none (RFC 8200 §5: a
/// 1280-byte link, less 40 bytes of IPv6 and 20 of TCP).
pub(crate) const DEFAULT_MSS6: u32 = 1220;

/// The send sequence space (RFC 9293 §3.3.1, Figure 3), what the peer
/// told us about its receive side, and where our SYN and FIN stand.
#[derive(Debug)]
pub(crate) struct Snd {
    /// ISS: our initial sequence number.
    pub iss: SeqNum,
    /// SND.UNA: the oldest unacknowledged sequence number.
    pub una: SeqNum,
    /// SND.NXT: the next sequence number to send.
    pub nxt: SeqNum,
    /// Highest sequence number sent; `nxt` is pulled back to `una` on a
    /// retransmission timeout (go-back-N).
    pub max: SeqNum,
    /// SND.WND: the peer's window, scaled.
    pub wnd: u32,
    /// SND.WL1: segment sequence number of the last window update.
    pub wl1: SeqNum,
    /// SND.WL2: segment acknowledgment number of the last window update.
    pub wl2: SeqNum,
    /// The largest window the peer ever offered (RFC 9293 §3.8.6.2.1).
    pub max_wnd: u32,
    /// Snd.Wind.Shift (RFC 7323 §2.2): how far the peer's window fields
    /// are shifted.
    pub wscale: u8,
    /// Eff.snd.MSS (RFC 9293 §3.7.1): the largest segment we send.
    pub mss: u32,
    /// The application shut down writing: a FIN follows the buffered data.
    pub fin_queued: bool,
    /// Our FIN has been acknowledged.
    pub fin_acked: bool,
    /// Our SYN has been acknowledged (a flag, not `una != iss`, which
    /// wraps after 4 GiB).
    pub syn_acked: bool,
    /// SND.UP: the octet following our urgent data, while it is not yet
    /// acknowledged (RFC 9293 §3.8.5, RFC 6093).
    pub up: Option<SeqNum>,
}

/// The receive sequence space (RFC 9293 §3.3.1, Figure 4) and what we
/// announced about it.
#[derive(Debug)]
pub(crate) struct Rcv {
    /// IRS: the peer's initial sequence number.
    pub irs: SeqNum,
    /// RCV.NXT: the next sequence number expected.
    pub nxt: SeqNum,
    /// Rcv.Wind.Shift (RFC 7323 §2.2): how far our window fields are shifted.
    pub wscale: u8,
    /// Window scaling was negotiated (RFC 7323 §2.2): the peer's SYN
    /// carried the option, so our SYN-ACK carries ours.
    pub ws_ok: bool,
    /// SACK was negotiated (RFC 2018 §2): both SYNs carried SACK-permitted,
    /// so our ACKs report out-of-order data in SACK blocks.
    pub sack_ok: bool,
    /// The receive buffer grows with the transfer (autotuning; off once
    /// the application sets a size).
    pub autotune: bool,
    /// The receiver's round-trip estimate (Linux's `tcp_rcv_rtt_measure`):
    /// the time the peer takes to fill the window we offered. `mark` is the
    /// window's right edge and when it was offered.
    pub rtt_mark: Option<(SeqNum, Instant)>,
    pub rtt: Option<Duration>,
    /// Start of the current autotuning round: when, and how many bytes the
    /// application had read by then.
    pub space_start: Option<(Instant, u64)>,
    /// What the application read in the last autotuning round that grew
    /// the buffer (Linux's `rcvq_space.space`), initially ten segments.
    pub space: usize,
    /// Right edge of the window last advertised (RCV.NXT + RCV.WND as sent).
    pub adv: SeqNum,
    /// Our MSS option (and the size of a "full-sized" incoming segment).
    pub mss: u32,
    /// The peer's FIN has arrived, in order.
    pub fin_received: bool,
    /// RCV.UP: the octet following the peer's urgent data (RFC 6093).
    pub up: Option<SeqNum>,
}

/// The acknowledgements we owe (RFC 9293 §3.8.6.3, RFC 5681 §4.2) and when
/// they go out.
#[derive(Debug, Default)]
pub(crate) struct AckState {
    /// An ACK must go out at the next dispatch.
    pub now: bool,
    /// An ACK is owed, at the dispatch that ends this batch of segments.
    pub pending: bool,
    /// In-order bytes received since we last sent an ACK.
    pub unacked_bytes: u32,
    /// A duplicate the peer sent, to report in the first SACK block of the
    /// next ACK (D-SACK, RFC 2883 §4), once.
    pub dsack: Option<(super::seq::SeqNum, super::seq::SeqNum)>,
    /// The largest segment the peer has sent so far (payload bytes): what
    /// "full-sized" means for this peer, as Linux estimates `rcv_mss`.
    pub largest_segment: u32,
    /// Queued for dispatch at the end of the batch (`TcpLayer::flush`).
    pub dispatch_pending: bool,
}

/// The timestamps option of one connection (RFC 7323 §3, §4, §5).
#[derive(Debug, Default)]
pub(crate) struct Timestamps {
    /// Negotiated: both SYNs carried the option (RFC 7323 §3.2); every
    /// segment but a RST then carries it.
    pub ok: bool,
    /// TS.Recent (§4.3): the peer's timestamp our segments echo.
    pub recent: u32,
    /// When TS.Recent was last updated, for PAWS's idle rule (§5.5); none
    /// while it is the SYN's.
    pub recent_at: Option<Instant>,
    /// Last.ACK.sent (§4.3): the acknowledgment number we last sent.
    pub last_ack_sent: SeqNum,
    /// Added to our millisecond clock, per connection, so a TSval neither
    /// reveals uptime nor links connections (§5.4, §7.1).
    pub offset: u32,
}

/// The round trip from which the send buffer grows with the window (see
/// [`Conn::grow_send_buffer`]).
const LONG_PATH_RTT: Duration = Duration::from_millis(1);

/// RFC 7323 §5.5: a TS.Recent unchanged for 24 days is too old for PAWS.
pub(crate) const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// Loss recovery in progress: RFC 6675 §5 when SACK was agreed, RFC 6582
/// (NewReno) without.
#[derive(Debug)]
pub(crate) struct Recovery {
    /// RecoveryPoint (RFC 6675 §2), RFC 6582's "recover": SND.MAX when
    /// recovery began; it ends when the cumulative ACK reaches it.
    pub point: SeqNum,
    /// HighRxt (RFC 6675 §2): the highest sequence number retransmitted.
    pub high_rxt: SeqNum,
    /// Without SACK, RFC 6582 §3.2's window inflation: one SMSS per
    /// duplicate ACK, deflated by partial ACKs.
    pub inflation: u32,
}

/// What a loss episode (a fast recovery or a retransmission timeout) needs
/// to be undone if it turns out spurious: the segment was not lost but
/// delayed (RFC 3522 Eifel detection, RFC 3708 D-SACK detection).
#[derive(Debug)]
pub(crate) struct Undo {
    /// SND.UNA when the episode began: the first segment retransmitted.
    pub marker: SeqNum,
    /// Our TSval on that retransmission (RFC 3522 §3.1 "RetransmitTS"),
    /// with timestamps agreed.
    pub retransmit_ts: Option<u32>,
    /// The first ACK past `marker` was looked at (Eifel judges only it).
    pub judged: bool,
    /// Segments retransmitted since, that no D-SACK has reported as
    /// duplicates yet (Linux's `undo_retrans`).
    pub retransmits_left: u32,
    /// Whether anything was retransmitted at all.
    pub retransmitted: bool,
    /// The congestion window and its algorithm before the episode.
    pub before: Box<Congestion>,
}

/// Where the application's handle on this connection stands.
#[derive(Debug, Default)]
pub(crate) struct Handle {
    /// In its listener's accept queue.
    pub in_accept_queue: bool,
    /// The application closed or aborted its handle; the connection
    /// finishes in the background and is then forgotten.
    pub released: bool,
    /// The application will read no more (it called `close`).
    pub rd_closed: bool,
    /// `send` found the buffer full: emit `Writable` when it drains.
    pub write_blocked: bool,
}

/// A connection (everything but LISTEN, which is a [`super::listener::Listener`]).
#[derive(Debug)]
pub(crate) struct Conn {
    pub id: ConnId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: State,
    /// The listener this passively opened connection belongs to, until the
    /// application accepts it.
    pub listener: Option<ListenerId>,
    pub handle: Handle,
    /// Why the connection ended, once it has.
    pub error: Option<TcpError>,

    pub snd: Snd,
    pub rcv: Rcv,
    /// The buffers and flags shared with the application handle.
    pub io: Arc<Stream>,

    pub rtt: RttEstimator,
    pub ts: Timestamps,
    pub cc: Congestion,
    /// What the peer reported holding above SND.UNA (RFC 2018 §3).
    pub sb: Scoreboard,
    /// Loss recovery, while it lasts.
    pub recovery: Option<Recovery>,
    /// HighRxt of the last fast recovery, kept after it ends while above
    /// SND.UNA (with RACK): what lies below it was resent and is on its
    /// way, so the next recovery starts above it and does not send it a
    /// third time unless RACK finds the retransmission lost (as Linux
    /// skips data marked `TCPCB_SACKED_RETRANS`).
    pub rxt_high: Option<SeqNum>,
    /// RACK-TLP (RFC 8985), with SACK.
    pub rack: Rack,
    /// SND.MAX at the last retransmission timeout, until the cumulative
    /// ACK passes it: duplicate ACKs meanwhile start no recovery (RFC 6582
    /// §4.1, RFC 6675 §5.1).
    pub rto_recover: Option<SeqNum>,
    /// The last loss episode, while it may still turn out spurious.
    pub undo: Option<Undo>,
    /// Our TSval on the first retransmission still outstanding (Linux's
    /// `retrans_stamp`), until the ACK passes `rexmit_end`: Eifel's
    /// RetransmitTS when a new episode begins with data that an earlier
    /// one already resent.
    pub rexmit_ts: Option<u32>,
    /// The end of the highest retransmission sent while `rexmit_ts` held.
    pub rexmit_end: SeqNum,
    /// The last dispatch left data unsent because of the congestion window
    /// (not the peer's): only then may the window grow (RFC 7661 §4.3,
    /// RFC 9438 §4.8).
    pub cwnd_limited: bool,
    /// The most bytes in flight since SND.UNA last passed `flight_round`
    /// (Linux's max_packets_out): slow start may grow cwnd up to twice
    /// this even when the peer's window, not cwnd, held the sender back
    /// (RFC 7661 §4.3).
    pub max_flight: u32,
    /// Where the sender's time goes: `ss -ti`'s busy, rwnd_limited and
    /// sndbuf_limited.
    pub chrono: Chrono,
    /// SND.NXT when `max_flight` was last reset.
    pub flight_round: SeqNum,
    /// When new data last went out: sending again after an idle RTO
    /// restarts from the initial window (RFC 5681 §4.1).
    pub last_data_sent: Option<Instant>,
    /// The send buffer grows with cwnd (off once the application sets a
    /// size).
    pub snd_autotune: bool,
    /// Karn's algorithm (RFC 6298 §3): one timed segment, ending at this
    /// sequence number, sent at this instant; cleared on retransmission.
    pub rtt_probe: Option<(SeqNum, Instant)>,
    /// Duplicate ACKs in a row (RFC 5681 §3.2: the third one triggers
    /// fast retransmit).
    pub dup_acks: u32,
    /// Consecutive retransmission timeouts (R1/R2 of RFC 9293 §3.8.3).
    pub retries: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retransmits: u64,

    pub timers: Timers,
    /// This connection's key in the layer's timer set (its earliest
    /// deadline when it was last filed).
    pub scheduled: Option<Instant>,
    pub ack: AckState,
    /// `TCP_NODELAY`: Nagle's algorithm is off.
    pub nodelay: bool,
    /// `SO_KEEPALIVE` (RFC 9293 §3.8.4), off unless asked for (MUST-24).
    pub keepalive: Option<KeepaliveConfig>,
    /// Keepalive probes sent and not answered.
    pub keepalive_probes: u32,
    /// Zero-window probes sent in a row: the persist timer's backoff.
    pub persist_backoff: u32,
    /// When the peer was last heard from (any segment in a synchronized state).
    pub last_heard: Option<Instant>,
    /// When we last answered an out-of-window pure ACK or SYN.
    pub last_oow_ack: Option<Instant>,
    /// The IP header of our segments (TTL and TOS options; DF always).
    pub ip: IpOptions,
    /// `TCP_USER_TIMEOUT` (RFC 5482).
    pub user_timeout: Option<Duration>,
    /// When the oldest data (or SYN, FIN) now unacknowledged was sent.
    pub unacked_since: Option<Instant>,
    /// The last soft error ICMP reported (MUST-56: never fatal by itself),
    /// reported instead of `TimedOut` if the connection times out.
    pub soft_error: Option<TcpError>,
}

impl Conn {
    /// An active open (RFC 9293 §3.10.1, OPEN): a connection from `local`
    /// to `remote`, still CLOSED, that sends its SYN with sequence number
    /// `iss` when it enters SYN-SENT and is dispatched.
    pub fn active(
        id: ConnId,
        (local, remote): (SocketAddr, SocketAddr),
        iss: SeqNum,
        cfg: &TcpConfig,
        pool: &Arc<BufferPool>,
    ) -> Conn {
        Conn::new(id, local, remote, State::Closed, iss, cfg, pool)
    }

    /// A passive open from the peer's SYN `syn` to `listener` (RFC 9293
    /// §3.10.7.2, LISTEN, fourth step): IRS and RCV.NXT from its sequence
    /// number, its MSS and window scale options applied; it answers with
    /// SYN-ACK `iss` once it enters SYN-RECEIVED and is dispatched.
    pub fn from_syn(
        id: ConnId,
        listener: ListenerId,
        (local, remote): (SocketAddr, SocketAddr),
        iss: SeqNum,
        syn: &TcpHeaderRepr,
        (cfg, opts): (&TcpConfig, &[TcpOption]),
        pool: &Arc<BufferPool>,
    ) -> Conn {
        let mut conn = Conn::new(id, local, remote, State::Listen, iss, cfg, pool);
        conn.listener = Some(listener);
        for &opt in opts {
            conn.preset_option(opt);
        }
        conn.rcv.irs = SeqNum(syn.seq);
        conn.rcv.nxt = conn.rcv.irs + 1;
        conn.rcv.adv = conn.rcv.nxt;
        let capacity = conn.io.lock().recv.capacity();
        conn.apply_syn_options(&syn.options, cfg, capacity);
        conn.snd.wnd = u32::from(syn.window); // RFC 7323 §2.2: SYN window unscaled
        conn.snd.max_wnd = conn.snd.wnd;
        conn.snd.wl1 = conn.rcv.irs;
        conn.snd.wl2 = iss;
        conn
    }

    /// The connection a valid SYN cookie (RFC 4987 §3.6) in the peer's ACK
    /// `ack` stands for, as if it had waited in SYN-RECEIVED: our SYN-ACK
    /// (whose ISS was the cookie) already sent, with the window (at most
    /// 64 KiB, unscaled) and the MSS `mss` the cookie encodes.
    pub fn from_cookie(
        id: ConnId,
        listener: ListenerId,
        (local, remote): (SocketAddr, SocketAddr),
        ack: &TcpHeaderRepr,
        mss: u16,
        (cfg, opts): (&TcpConfig, &[TcpOption]),
        pool: &Arc<BufferPool>,
    ) -> Conn {
        // SEG.ACK acknowledges the cookie ISS; SEG.SEQ follows the IRS.
        let iss = SeqNum(ack.ack.wrapping_sub(1));
        let irs = SeqNum(ack.seq.wrapping_sub(1));
        let mut conn = Conn::new(id, local, remote, State::Listen, iss, cfg, pool);
        conn.listener = Some(listener);
        for &opt in opts {
            conn.preset_option(opt);
        }
        conn.rcv.irs = irs;
        conn.rcv.nxt = irs + 1;
        conn.rcv.adv = conn.rcv.nxt + cfg.recv_buffer.min(usize::from(u16::MAX)) as u32;
        let capacity = conn.io.lock().recv.capacity();
        // A SYN cookie keeps no options but the MSS: no scaling, no SACK,
        // no timestamps.
        let options = TcpOptionsRepr {
            mss: Some(mss),
            ..TcpOptionsRepr::default()
        };
        conn.apply_syn_options(&options, cfg, capacity);
        conn.snd.nxt = iss + 1;
        conn.snd.max = iss + 1;
        conn.snd.wl1 = irs;
        conn.snd.wl2 = iss;
        conn
    }

    /// A connection in `state` about to send or answer a SYN from `iss`.
    fn new(
        id: ConnId,
        local: SocketAddr,
        remote: SocketAddr,
        state: State,
        iss: SeqNum,
        cfg: &TcpConfig,
        pool: &Arc<BufferPool>,
    ) -> Conn {
        Conn {
            id,
            local,
            remote,
            state,
            listener: None,
            handle: Handle::default(),
            error: None,
            snd: Snd {
                iss,
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                wl1: SeqNum(0),
                wl2: iss,
                max_wnd: 0,
                wscale: 0,
                mss: DEFAULT_MSS,
                fin_queued: false,
                fin_acked: false,
                syn_acked: false,
                up: None,
            },
            rcv: Rcv {
                irs: SeqNum(0),
                nxt: SeqNum(0),
                wscale: 0,
                ws_ok: false,
                sack_ok: false,
                autotune: cfg.autotune(),
                rtt_mark: None,
                rtt: None,
                space_start: None,
                space: 10 * usize::from(cfg.mss_for(local.ip())),
                adv: SeqNum(0),
                mss: u32::from(cfg.mss_for(local.ip())),
                fin_received: false,
                up: None,
            },
            io: Arc::new(Stream::new(
                SendBuffer::with_pool(cfg.send_buffer, Some(pool.clone())),
                RecvBuffer::with_pool(cfg.recv_buffer, Some(pool.clone())),
            )),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            ts: Timestamps {
                // The ISS is secret-keyed (RFC 6528): a mix of it is a
                // per-connection offset nobody else can predict.
                offset: iss.get().wrapping_mul(0x9e37_79b9).rotate_left(16),
                ..Timestamps::default()
            },
            cc: {
                let mut cc = Congestion::new(cfg.congestion, DEFAULT_MSS);
                cc.set_pacing(cfg.pacing);
                cc
            },
            sb: Scoreboard::default(),
            recovery: None,
            rxt_high: None,
            rack: Rack::default(),
            rto_recover: None,
            undo: None,
            rexmit_ts: None,
            rexmit_end: iss,
            cwnd_limited: false,
            max_flight: 0,
            chrono: Chrono::default(),
            flight_round: iss,
            last_data_sent: None,
            snd_autotune: cfg.send_buffer_max > cfg.send_buffer,
            rtt_probe: None,
            dup_acks: 0,
            retries: 0,
            total_retransmits: 0,
            timers: Timers::default(),
            scheduled: None,
            ack: AckState::default(),
            nodelay: false,
            keepalive: None,
            keepalive_probes: 0,
            persist_backoff: 0,
            last_heard: None,
            last_oow_ack: None,
            ip: IpOptions {
                dont_fragment: true,
                ..IpOptions::default()
            },
            user_timeout: None,
            unacked_since: None,
            soft_error: None,
        }
    }

    /// Runs `f` with this connection's stream locked in the context; the
    /// wake-ups it recorded are delivered after the lock is released.
    pub fn locked<R>(
        &mut self,
        cfg: &TcpConfig,
        out: &mut Outbox,
        f: impl FnOnce(&mut Conn, &mut Ctx<'_>) -> R,
    ) -> R {
        let io = Arc::clone(&self.io);
        let mut guard = io.lock();
        let r = {
            let mut cx = Ctx {
                cfg,
                out,
                io: &mut guard,
            };
            f(self, &mut cx)
        };
        io.unlock(guard);
        r
    }

    /// Moves to `new`, logging `{peer} -> {us} OLD -> NEW` (RFC 9293 Figure 5).
    pub fn set_state(&mut self, new: State, cx: &mut Ctx<'_>) {
        if new == self.state {
            return;
        }
        log::debug!(
            "{} -> {} {} -> {}",
            self.remote,
            self.local,
            self.state,
            new
        );
        let old = self.state;
        if new == State::Closed {
            // Closed by a segment received, or by one just sent (an RST);
            // a timer's close has no packet to carry it.
            crate::notes::note!(
                cx.out.notes,
                received_or_last(self.local, self.remote),
                "{old} -> {new}"
            );
        } else if matches!(new, State::FinWait1 | State::LastAck) {
            // Our close: the FIN may wait behind queued data.
            crate::notes::note!(
                cx.out.notes,
                event_fin(self.local, self.remote),
                "{old} -> {new}"
            );
        } else {
            crate::notes::note!(
                cx.out.notes,
                event(self.local, self.remote),
                "{old} -> {new}"
            );
        }
        self.state = new;
        if new == State::Closed {
            self.timers.clear();
            cx.io.closed = true;
            cx.io.send_closed = true;
            cx.io.error = self.error;
            if self.error.is_some() {
                // Data the application queued can never be sent.
                cx.io.send.consume(usize::MAX);
            }
            cx.io.wake_all();
            if self.visible() {
                cx.out.event(TcpEvent::Closed(self.id, self.error));
            }
        } else if new == State::Established && matches!(old, State::SynSent | State::SynReceived) {
            cx.io.connected = true;
            cx.io.wake_writers();
            // Active (or simultaneous) open completed; passive connections
            // are announced by their listener instead.
            if self.visible() {
                cx.out.event(TcpEvent::Connected(self.id));
            }
        }
    }

    /// Ends the connection with `err` (None: a clean close).
    pub fn terminate(&mut self, err: Option<TcpError>, cx: &mut Ctx<'_>) {
        if err == Some(TcpError::TimedOut) {
            cx.out.stats.timeouts += 1;
        }
        // SHLD-25, MUST-56: a timeout after ICMP said the peer cannot be
        // reached reports that, as Linux does (EHOSTUNREACH).
        let err = match err {
            Some(TcpError::TimedOut) => self.soft_error.or(err),
            other => other,
        };
        if self.error.is_none() {
            self.error = err;
        }
        self.set_state(State::Closed, cx);
    }

    /// Sends `<SEQ=SND.NXT><CTL=RST>` and ends with `err` (abort, or RFC
    /// 9293 §3.10.4 closing with unread data).
    pub fn reset(&mut self, err: Option<TcpError>, cx: &mut Ctx<'_>) {
        if self.state.is_synchronized() || self.state == State::SynReceived {
            self.send_rst(self.snd.nxt.max(self.snd.max), cx);
        }
        self.terminate(err, cx);
    }

    /// Events about this connection reach the application only once it has
    /// the handle.
    pub fn visible(&self) -> bool {
        !self.handle.released && self.listener.is_none()
    }

    /// Sequence number of the first byte in the send buffer.
    pub fn data_base(&self) -> SeqNum {
        if self.snd.syn_acked {
            self.snd.una
        } else {
            self.snd.iss + 1
        }
    }

    /// Sequence number our FIN occupies, once queued (after the
    /// `send_len` bytes in the send buffer).
    pub fn fin_seq(&self, send_len: usize) -> Option<SeqNum> {
        if !self.snd.fin_queued || self.snd.fin_acked {
            return None;
        }
        Some(self.data_base() + send_len as u32)
    }

    /// Bytes sent and not yet acknowledged (including SYN/FIN).
    pub fn flight(&self) -> u32 {
        self.snd.nxt - self.snd.una
    }

    /// The bytes the sender counts as in the network against its
    /// congestion window: in SACK recovery, RFC 6675 §4's pipe; otherwise
    /// what was sent up to SND.NXT less what the peer SACKed (after a
    /// retransmission timeout SACKed data is not sent again; before
    /// recovery, each SACKed segment lets one new one go, as RFC 3042's
    /// limited transmit does).
    pub fn in_flight(&self) -> u32 {
        match &self.recovery {
            Some(r) if self.rcv.sack_ok => {
                let span = (self.snd.una, self.snd.max, r.high_rxt);
                self.sb.pipe(span, self.snd.mss, self.rack.lost_in_order())
            }
            // After a timeout, what RACK found lost again is not in the
            // network either (RFC 8985 §6.3: RACK goes on after an RTO).
            _ if self.rto_recover.is_some() && !self.sb.is_empty() => (self.flight()
                - self.sb.sacked_below(self.snd.nxt))
            .saturating_sub(self.rack.lost_bytes_below(self.snd.nxt)),
            _ => self.flight() - self.sb.sacked_below(self.snd.nxt),
        }
    }

    /// The congestion window, with RFC 6582's inflation during NewReno
    /// recovery.
    pub fn congestion_window(&self) -> u32 {
        let inflation = self.recovery.as_ref().map_or(0, |r| r.inflation);
        self.cc.cwnd().saturating_add(inflation)
    }

    /// Applies the options of the peer's SYN: MSS, window scale, SACK
    /// permitted, timestamps. `recv_capacity` is the receive buffer's
    /// size, which the window scale we offer must cover.
    pub fn apply_syn_options(&mut self, o: &TcpOptionsRepr, cfg: &TcpConfig, recv_capacity: usize) {
        let (mss, wscale) = (o.mss, o.window_scale);
        // RFC 2018 §2: SACK only if both SYNs carry SACK-permitted.
        self.rcv.sack_ok = cfg.sack && o.sack_permitted;
        // RFC 7323 §3.2: timestamps only if both SYNs carry the option (we
        // offer it whenever configured); TS.Recent starts at the SYN's.
        self.ts.ok = cfg.timestamps && o.timestamp.is_some();
        if let Some((val, _)) = o.timestamp.filter(|_| self.ts.ok) {
            self.ts.recent = val;
        }
        // MUST-15: 536 when no MSS option (over IPv6, 1220: RFC 8200 §5's
        // 1280-byte minimum MTU less 60 bytes of headers); never more than
        // our own MTU allows.
        let default = if self.local.is_ipv6() {
            DEFAULT_MSS6
        } else {
            DEFAULT_MSS
        };
        let peer = mss.map_or(default, u32::from).max(64);
        self.snd.mss = peer.min(u32::from(cfg.mss_for(self.local.ip())));
        self.rcv.mss = self.rcv.mss.min(peer.max(default));
        self.cc.set_mss(self.snd.mss);
        // RFC 7323 §2.2: scaling only if both sides sent the option.
        match (cfg.window_scaling, wscale) {
            (true, Some(s)) => {
                self.rcv.ws_ok = true;
                self.snd.wscale = s.min(14); // RFC 7323 §2.3: cap at 14
                self.rcv.wscale = window_shift_for(self.scale_capacity(cfg, recv_capacity));
            }
            _ => {
                self.rcv.ws_ok = false;
                self.snd.wscale = 0;
                self.rcv.wscale = 0;
                // Without scaling the window stops at 64 KiB: a bigger
                // buffer would hold nothing more.
                self.rcv.autotune = false;
            }
        }
    }

    /// Our timestamp clock at `now` (RFC 7323 §5.4: one tick a millisecond,
    /// so the sign bit takes 24.8 days to wrap), with this connection's
    /// offset.
    pub(crate) fn ts_val(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts.offset)
    }

    /// The round trip an echoed timestamp measures (RFC 7323 §4.1), at
    /// least one tick (as Linux counts a same-tick echo), or none for an
    /// echo from the future or more than a minute old.
    pub(crate) fn ts_rtt(&self, now: Instant, ecr: u32) -> Option<Duration> {
        let ticks = self.ts_val(now).wrapping_sub(ecr);
        (ticks < 60_000).then(|| Duration::from_millis(u64::from(ticks.max(1))))
    }

    /// The receive buffer size the window scale must cover: as far as
    /// autotuning may grow it.
    pub(crate) fn scale_capacity(&self, cfg: &TcpConfig, recv_capacity: usize) -> usize {
        if self.rcv.autotune {
            recv_capacity.max(cfg.recv_buffer_max)
        } else {
            recv_capacity
        }
    }

    /// Receive-window autotuning, after in-order data arrived (as Linux's
    /// `tcp_rcv_space_adjust`): once per receiver round trip, if the
    /// application read more than in the last round that grew the buffer,
    /// the buffer grows to twice what it read (plus room for sixteen
    /// segments), and by twice as much again as the reading grew since
    /// (a sender in slow start doubles each round), up to
    /// `recv_buffer_max`, so the window keeps ahead of the sender's
    /// congestion window. Memory follows data: an empty buffer holds none.
    /// `echo` is the round trip the segment's timestamp echo measures, if
    /// timestamps are on.
    pub(crate) fn autotune(
        &mut self,
        now: Instant,
        echo: Option<Duration>,
        cfg: &TcpConfig,
        io: &mut StreamState,
    ) {
        if !self.rcv.autotune {
            return;
        }
        // The receiver's RTT. With timestamps, the echo of each in-order
        // segment, smoothed by 1/8 (Linux's tcp_rcv_rtt_measure_ts);
        // without, the time from offering a window to data reaching its
        // right edge (an upper bound when the sender is not limited by
        // our window, as Linux's tcp_rcv_rtt_measure is).
        if let Some(sample) = echo {
            self.rcv.rtt = Some(match self.rcv.rtt {
                Some(r) => (r * 7 + sample) / 8,
                None => sample,
            });
        } else {
            self.rtt_mark_sample(now);
        }
        let Some(rtt) = self.rcv.rtt else {
            return;
        };
        let read = io.recv.consumed();
        let (start, read_then) = *self.rcv.space_start.get_or_insert((now, read));
        if now - start < rtt.max(Duration::from_millis(1)) {
            return;
        }
        self.rcv.space_start = Some((now, read));
        let copied = (read - read_then) as usize;
        let space = self.rcv.space.max(1);
        if copied <= space {
            return;
        }
        self.rcv.space = copied;
        let cap = io.recv.capacity();
        if cap >= cfg.recv_buffer_max {
            return;
        }
        let base = 2 * copied as u64 + 16 * u64::from(self.rcv.mss);
        let growth = 2 * base * (copied - space) as u64 / space as u64;
        let want = (base + growth).min(cfg.recv_buffer_max as u64) as usize;
        if want > cap {
            io.recv.set_capacity(want);
        }
    }

    /// Send buffer autotuning (Linux's `tcp_sndbuf_expand`): after an ACK,
    /// when the buffer is what limits the sender (half of it or more in
    /// flight, nothing left unsent, cwnd not full; as Linux's
    /// `tcp_should_expand_sndbuf`), it is made to hold two congestion
    /// windows, three for BBR (`bbr_sndbuf_expand`), at once, up to
    /// `send_buffer_max`. A writer waiting for room is woken. On a short
    /// path the data in flight stays small and the buffer keeps its size:
    /// a 4 MiB ring on a local path only spreads the copies over more cache
    /// (measured: receive 22 -> 6 Gbit/s in `bench.sh --quick` when it grew
    /// with cwnd alone).
    pub(crate) fn grow_send_buffer(&mut self, cfg: &TcpConfig, io: &mut StreamState) {
        if !self.snd_autotune {
            return;
        }
        let cap = io.send.capacity();
        // Two or three cwnd, and what the peer SACKed: that data stays in the
        // buffer until the holes below it are filled, but no longer counts
        // against cwnd (in loss recovery it can be most of the buffer).
        let sacked = self.sb.sacked_bytes() as usize;
        let want = self.cc.sndbuf_expand() * self.cc.cwnd() as usize + sacked;
        // Limited by the buffer: half of it or more in flight and nothing
        // left to send, with the window open for more.
        let queued = (self.snd.nxt - self.data_base()) as usize;
        let unsent = io.send.len().saturating_sub(queued);
        let buffer_bound = 2 * self.flight() as usize >= cap
            && unsent < self.snd.mss as usize
            && self.in_flight() < self.cc.cwnd();
        // Below a millisecond of round trip the initial buffer already
        // carries 2 Gbit/s, and on a local path a larger ring only spreads
        // the copies over more cache.
        let long_path = self.rtt.srtt().is_some_and(|r| r >= LONG_PATH_RTT);
        if !buffer_bound || !long_path || want <= cap || cap >= cfg.send_buffer_max {
            return;
        }
        io.send.set_capacity(want.min(cfg.send_buffer_max));
        io.wake_writers();
    }

    /// The receiver's RTT without timestamps: from offering a window to
    /// data reaching its right edge; the smallest such time is kept.
    fn rtt_mark_sample(&mut self, now: Instant) {
        match self.rcv.rtt_mark {
            Some((edge, at)) if self.rcv.nxt >= edge => {
                let sample = now - at;
                self.rcv.rtt = Some(match self.rcv.rtt {
                    Some(r) => r.min(sample),
                    None => sample,
                });
                self.rcv.rtt_mark = None;
            }
            Some(_) => {}
            None => self.rcv.rtt_mark = Some((self.rcv.adv.max(self.rcv.nxt + 1), now)),
        }
    }

    /// The window field to put in an outgoing segment, applying receiver
    /// SWS avoidance (RFC 9293 §3.8.6.2.2): the right edge moves only when
    /// it can move by min(RCV.BUFF/2, MSS); it never moves left (RFC 9293
    /// §3.8.6.2.2: "shrinking the window" is strongly discouraged).
    pub fn window_to_advertise(&mut self, syn: bool, io: &mut StreamState) -> u16 {
        let shift = if syn { 0 } else { self.rcv.wscale };
        let free = io.recv.window() as u32;
        let mut right = self.rcv.nxt + free;
        let threshold = self.window_update_threshold(io);
        if self.rcv.adv > self.rcv.nxt && right > self.rcv.adv && right - self.rcv.adv < threshold {
            right = self.rcv.adv;
        }
        if right < self.rcv.adv {
            right = self.rcv.adv;
        }
        let wnd = right.max(self.rcv.nxt) - self.rcv.nxt;
        let field = (wnd >> shift).min(u32::from(u16::MAX));
        let adv = self.rcv.nxt + (field << shift);
        if adv > self.rcv.adv || self.rcv.adv < self.rcv.nxt {
            self.rcv.adv = adv;
        }
        // Ask the application to poke us when its reads open the window by
        // the threshold (RFC 9293 §3.8.6.2.2), unless our ordinary ACKs
        // for arriving data will carry the update anyway.
        let advertised = (self.rcv.adv - self.rcv.nxt) as usize;
        let mark = advertised + threshold as usize;
        io.window_update_at =
            (mark <= io.recv.capacity() && self.state.can_receive()).then_some(mark);
        field as u16
    }

    /// How much the right window edge must be able to move before we
    /// announce it: min(RCV.BUFF/2, MSS) (RFC 9293 §3.8.6.2.2).
    fn window_update_threshold(&self, io: &StreamState) -> u32 {
        (io.recv.capacity() as u32 / 2).min(self.rcv.mss)
    }

    /// The window we could advertise now, ignoring SWS avoidance.
    pub fn rcv_wnd(&self, io: &StreamState) -> u32 {
        io.recv.window() as u32
    }

    // ---- application calls ----

    /// Copies as much of `data` as fits into the send buffer.
    pub fn send(&mut self, now: Instant, data: &[u8], cx: &mut Ctx<'_>) -> Result<usize, TcpError> {
        self.send_marked(now, data, false, cx)
    }

    /// [`Conn::send`], marking what fits as urgent data when `urgent`
    /// (RFC 9293 §3.8.5; see `urgent.rs`).
    pub fn send_marked(
        &mut self,
        now: Instant,
        data: &[u8],
        urgent: bool,
        cx: &mut Ctx<'_>,
    ) -> Result<usize, TcpError> {
        if let Some(e) = self.error {
            return Err(match e {
                TcpError::ConnectionRefused | TcpError::TimedOut | TcpError::ConnectionReset => e,
                _ => TcpError::BrokenPipe,
            });
        }
        if self.snd.fin_queued || !self.state.can_send() {
            return Err(match self.state {
                State::Closed => TcpError::NotConnected,
                _ => TcpError::BrokenPipe,
            });
        }
        let n = cx.io.send.push(data);
        if n < data.len() {
            self.handle.write_blocked = true;
        }
        if n > 0 {
            if urgent {
                cx.io.urgent_send_end = Some(cx.io.send.pushed());
            }
            self.dispatch(now, cx);
        }
        Ok(n)
    }

    /// Reads received data; `Ok(0)` is end of stream.
    pub fn recv(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        cx: &mut Ctx<'_>,
    ) -> Result<usize, TcpError> {
        if self.handle.rd_closed {
            return Err(TcpError::NotConnected);
        }
        if cx.io.recv.ready() == 0 {
            if let Some(e) = self.error {
                return Err(e);
            }
            if self.rcv.fin_received || self.state == State::Closed {
                return Ok(0);
            }
            return Err(TcpError::WouldBlock);
        }
        let n = cx.io.recv.read(buf);
        self.window_update(now, cx);
        Ok(n)
    }

    /// The application read data: announce the reopened window once it
    /// has grown by min(RCV.BUFF/2, MSS) (RFC 9293 §3.8.6.2.2).
    pub fn window_update(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        let threshold = self.window_update_threshold(cx.io);
        let right = self.rcv.nxt + self.rcv_wnd(cx.io);
        if self.state.can_receive() && right > self.rcv.adv && right - self.rcv.adv >= threshold {
            self.ack.now = true;
            self.dispatch(now, cx);
        }
    }

    /// Queues a FIN after the buffered data (RFC 9293 §3.10.4 CLOSE, the
    /// half-close part).
    pub fn shutdown_write(&mut self, now: Instant, cx: &mut Ctx<'_>) -> Result<(), TcpError> {
        match self.state {
            State::Closed => return Err(self.error.unwrap_or(TcpError::NotConnected)),
            State::SynSent => {
                // Nothing sent yet: RFC 9293 §3.10.4 allows queueing.
                self.snd.fin_queued = true;
                cx.io.send_closed = true;
                return Ok(());
            }
            // SYN-RCVD: the FIN goes out once ESTABLISHED (RFC 9293 §3.10.4).
            State::SynReceived => self.snd.fin_queued = true,
            State::Established => {
                self.snd.fin_queued = true;
                self.set_state(State::FinWait1, cx);
            }
            State::CloseWait => {
                self.snd.fin_queued = true;
                self.set_state(State::LastAck, cx);
            }
            // Already closing: "error: connection closing" — harmless.
            _ => return Ok(()),
        }
        cx.io.send_closed = true;
        self.dispatch(now, cx);
        Ok(())
    }

    /// The application is done with the handle: graceful close in the
    /// background, or RST if it left data unread (RFC 9293 §3.10.4 /
    /// RFC 2525 §2.17, as Linux).
    pub fn close(&mut self, now: Instant, cx: &mut Ctx<'_>) {
        self.handle.rd_closed = true;
        self.handle.released = true;
        if cx.io.recv.ready() > 0 && self.state != State::Closed {
            log::debug!(
                "{} -> {} closed with unread data: RST",
                self.remote,
                self.local
            );
            self.reset(None, cx);
            return;
        }
        match self.state {
            // RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the TCB.
            State::SynSent => self.terminate(None, cx),
            State::Closed => {}
            _ => {
                let _ = self.shutdown_write(now, cx);
                // Orphaned in FIN-WAIT-2 already: bound its life.
                self.arm_fin_wait2(now, cx.cfg);
            }
        }
    }

    /// Aborts with RST (RFC 9293 §3.10.5 ABORT).
    pub fn abort(&mut self, cx: &mut Ctx<'_>) {
        self.handle.rd_closed = true;
        self.handle.released = true;
        self.reset(None, cx);
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&mut self, now: Instant, nodelay: bool, cx: &mut Ctx<'_>) {
        self.nodelay = nodelay;
        if nodelay {
            self.dispatch(now, cx);
        }
    }

    /// Switches keepalive on with `cfg`, or off (MUST-24: off by default).
    pub fn set_keepalive(&mut self, now: Instant, cfg: Option<KeepaliveConfig>) {
        self.keepalive = cfg;
        self.keepalive_probes = 0;
        self.timers.keepalive = cfg.map(|k| now + k.idle);
    }

    /// A snapshot for `ss`-like listings, its times counted up to `now`.
    pub fn info(&self, now: Instant) -> ConnInfo {
        let io = self.io.lock();
        ConnInfo {
            id: self.id,
            local: self.local,
            remote: self.remote,
            state: self.state,
            send_queue: io.send.len(),
            recv_queue: io.recv.ready(),
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            mss: self.snd.mss,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            congestion: self.cc.algorithm(),
            sacked: self.sb.sacked_bytes(),
            recovering: self.recovery.is_some(),
            snd_wnd: self.snd.wnd,
            rcv_wnd: self.rcv_wnd(&io),
            retransmits: self.total_retransmits,
            backoff: self.retries,
            soft_error: self.soft_error,
            sack: self.rcv.sack_ok,
            timestamps: self.ts.ok,
            wscale: self.rcv.ws_ok.then_some((self.snd.wscale, self.rcv.wscale)),
            recv_buffer: io.recv.capacity(),
            send_buffer: io.send.capacity(),
            pacing_rate: self.cc.pacing_rate(self.rtt.srtt()).map(|r| r as u64),
            bbr: self.cc.bbr_info(),
            send_times: self.chrono.times(now),
        }
    }

    /// The current RTO including exponential backoff.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }
}
