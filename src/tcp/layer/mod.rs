//! The connection table: demultiplexes segments to connections and
//! listeners, answers closed ports with RST, runs timers, and exposes the
//! application calls by handle. Segments that reach a listener (passive
//! opens, SYN cookies) are handled in `listen.rs`.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::time::Instant;
use crate::wire::gso::RxMeta;
use crate::wire::packet::PacketBuf;
use crate::wire::tcp::{TcpParseError, TcpSegment};

use super::api::{ConnId, ConnInfo, ListenerId, OutSegment, TcpError, TcpEvent, TcpStats};
use super::buffer::BufferPool;
use super::config::{KeepaliveConfig, TcpConfig};
use super::conn::{Conn, Ctx};
use super::cookie::SynCookies;
use super::icmp::IcmpError;
use super::isn::IsnGenerator;
use super::listener::Listener;
use super::options::TcpOption;
use super::outbox::Outbox;
use super::seq::SeqNum;
use super::state::State;
use super::stream::{urgent_remaining, Stream};

mod listen;

/// Ephemeral port range for `connect` with port 0 (Linux
/// `ip_local_port_range` default).
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// With `shards` shards, the shard whose connections use the ephemeral
/// port `port` (each takes the ports equal to its index modulo `shards`),
/// or `None` for a port outside the range or a single shard.
pub fn ephemeral_port_owner(port: u16, shards: usize) -> Option<usize> {
    (shards > 1 && EPHEMERAL.contains(&port)).then(|| usize::from(port) % shards)
}

/// Whether `ip` is IPv4's limited broadcast (IPv6 has none; a subnet's
/// broadcast is the IP layer's to spot).
pub(crate) fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(a) if a.is_broadcast())
}

/// The unspecified address of `ip`'s family (a wildcard listener's).
pub(crate) fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Spare buffer storage kept for reuse by the connections, bytes: sixteen
/// rings of the 4 MiB autotuning gives a fast local transfer. A drained
/// ring goes back to the pool at once, so while more busy rings than this
/// take turns, each burst frees one (`munmap`) and faults in another
/// (measured: 8 streams into tunstack, 14.0 Gbit/s with 16 MiB and
/// 15.9-16.9 with 64 MiB, docs/PERFORMANCE.md). The pool holds this much
/// only after that many rings were in use at once.
const POOL_BYTES: usize = 64 << 20;

/// The sans-IO TCP layer: every listener and connection of the stack.
///
/// Drive it with [`TcpLayer::on_segment`] for each received segment and
/// [`TcpLayer::poll`] at [`TcpLayer::poll_at`]; after any call, drain
/// [`TcpLayer::pop_output`] (segments to wrap in IPv4) and
/// [`TcpLayer::pop_event`].
#[derive(Debug)]
pub struct TcpLayer {
    cfg: TcpConfig,
    isn: IsnGenerator,
    cookies: SynCookies,
    conns: HashMap<ConnId, Conn>,
    tuples: HashMap<(SocketAddr, SocketAddr), ConnId>,
    /// TIME-WAIT connections a new SYN reopened, by the new connection:
    /// restored if that one dies before it is established (RFC 9293
    /// §3.6.1: the SYN may have been an old duplicate).
    reopened: HashMap<ConnId, Conn>,
    listeners: HashMap<ListenerId, Listener>,
    listen_addrs: HashMap<SocketAddr, ListenerId>,
    next_id: u64,
    next_port: u16,
    /// This layer's shard and the number of shards: with more than one,
    /// it takes only the ephemeral ports that [`ephemeral_port_owner`]
    /// gives it, so the other shards can tell where a segment belongs.
    shard: (usize, usize),
    out: Outbox,
    /// Spare buffer storage shared by the connections.
    pool: Arc<BufferPool>,
    /// The latest time passed in, for dispatching deferred connections.
    now: Instant,
    /// Every connection with a timer running, by its earliest deadline
    /// (`Conn::scheduled` is its key).
    timer_set: BTreeSet<(Instant, ConnId)>,
}

impl TcpLayer {
    /// A layer with `config`; `isn_secret` keys the RFC 6528 ISN hash and
    /// should be random.
    pub fn new(config: TcpConfig, isn_secret: [u8; 16]) -> Self {
        let mut out = Outbox::default();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&isn_secret[4..12]);
        out.seed(u64::from_le_bytes(seed).rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15);
        out.offload = config.offload;
        TcpLayer {
            cfg: config,
            isn: IsnGenerator::new(isn_secret),
            cookies: SynCookies::new(isn_secret),
            conns: HashMap::new(),
            tuples: HashMap::new(),
            reopened: HashMap::new(),
            listeners: HashMap::new(),
            listen_addrs: HashMap::new(),
            next_id: 1,
            // RFC 6056 §3.3.1: start the ephemeral search at an unpredictable
            // offset (derived from the secret) rather than at the range's start.
            next_port: {
                let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
                let r = u32::from_le_bytes([
                    isn_secret[0],
                    isn_secret[5],
                    isn_secret[10],
                    isn_secret[15],
                ]);
                EPHEMERAL.start() + (r % span) as u16
            },
            out,
            shard: (0, 1),
            pool: BufferPool::new(POOL_BYTES),
            now: Instant::ZERO,
            timer_set: BTreeSet::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    /// Makes this layer shard `k` of `n`: it opens connections only from
    /// its share of the ephemeral ports ([`ephemeral_port_owner`]).
    pub fn set_shard(&mut self, k: usize, n: usize) {
        self.shard = (k, n.max(1));
    }

    /// Turns segmentation and checksum offload on or off (the device's
    /// capability, [`TcpConfig::offload`]).
    pub fn set_offload(&mut self, offload: bool) {
        self.cfg.offload = offload;
        self.out.offload = offload;
    }

    /// The notes on packets for a pcapng capture ([`crate::notes`]).
    pub(crate) fn notes(&mut self) -> &mut crate::notes::Notes {
        &mut self.out.notes
    }

    /// Whether notes on packets are being taken.
    #[inline]
    pub(crate) fn notes_on(&self) -> bool {
        self.out.notes.on()
    }

    /// Counters.
    pub fn stats(&self) -> TcpStats {
        TcpStats {
            connections: self.conns.len() as u64,
            ..self.out.stats
        }
    }

    /// The next segment to send, if any. Dispatches the connections the
    /// last segments touched first ([`TcpLayer::flush`]).
    pub fn pop_output(&mut self) -> Option<OutSegment> {
        if !self.out.deferred.is_empty() {
            self.flush(self.now);
        }
        self.out.segments.pop_front()
    }

    /// Dispatches every connection whose segments were taken in since the
    /// last flush: one ACK (and one round of sending) per connection for
    /// the whole batch. [`TcpLayer::pop_output`] does this by itself.
    pub fn flush(&mut self, now: Instant) {
        let deferred = std::mem::take(&mut self.out.deferred);
        for &id in &deferred {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if !std::mem::take(&mut conn.ack.dispatch_pending) {
                continue;
            }
            let before = conn.state;
            conn.locked(&self.cfg, &mut self.out, |c, cx| c.dispatch(now, cx));
            self.after(id, before);
        }
        // Keep the allocation for the next batch.
        let mut deferred = deferred;
        deferred.clear();
        if self.out.deferred.is_empty() {
            self.out.deferred = deferred;
        }
    }

    /// An empty buffer from the pool that segments are built in.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        let mut buf = self.out.pool.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Gives a segment's buffer back for reuse (optional; avoids allocating).
    pub fn recycle(&mut self, packet: PacketBuf) {
        self.out.recycle(packet);
    }

    /// The next event, if any.
    pub fn pop_event(&mut self) -> Option<TcpEvent> {
        self.out.events.pop_front()
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- input ----

    /// Handles one TCP segment (`tcp`: header and payload) received in an
    /// IPv4 packet from `src` to `dst`. The checksum is verified over the
    /// pseudo-header (MUST-2/3); bad segments are counted and dropped.
    pub fn on_segment(
        &mut self,
        now: Instant,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        tcp: &[u8],
    ) {
        self.on_segment_with(now, src.into(), dst.into(), tcp, RxMeta::default());
    }

    /// [`TcpLayer::on_segment`] with what the device says of the segment
    /// (offload): a checksum it vouches for (built on this host or verified
    /// by the kernel) is not verified again, and a super-segment (the
    /// kernel's TSO, `gso_size` > 0) is taken whole, as one segment, but
    /// counted as the segments it stands for.
    pub fn on_segment_with(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        tcp: &[u8],
        meta: RxMeta,
    ) {
        self.now = self.now.max(now);
        let seg = match TcpSegment::parse_with(src, dst, tcp, !meta.checksum_trusted) {
            Ok(seg) => seg,
            Err(TcpParseError::BadChecksum) => {
                self.out.stats.bad_checksum += 1;
                return;
            }
            Err(_) => {
                self.out.stats.malformed += 1;
                return;
            }
        };
        self.out.stats.segments_in += 1;
        if meta.gso_size > 0 {
            let pieces = seg.payload.len().div_ceil(usize::from(meta.gso_size));
            self.out.stats.super_segments_in += 1;
            self.out.stats.segments_in += pieces.saturating_sub(1) as u64;
        }
        let h = seg.header;
        let local = SocketAddr::new(dst, h.dst_port);
        let remote = SocketAddr::new(src, h.src_port);
        log::trace!(
            "{remote} -> {local} in [{}] seq={} ack={} win={} len={}",
            h.flags,
            h.seq,
            h.ack,
            h.window,
            seg.payload.len()
        );

        let has_listener = self.find_listener(local).is_some();
        let mut reopen_iss = None;
        let mut reopened_from = None;
        if let Some(&id) = self.tuples.get(&(local, remote)) {
            if let Some(conn) = self.conns.get_mut(&id) {
                // RFC 9293 §3.10.7.4 / RFC 6191: a new SYN with a higher
                // sequence number may reopen a TIME-WAIT connection.
                let reopen = conn.state == State::TimeWait
                    && h.flags.syn
                    && !h.flags.ack
                    && !h.flags.rst
                    && SeqNum(h.seq) > conn.rcv.nxt
                    && has_listener;
                if reopen {
                    log::debug!("{remote} -> {local} TIME-WAIT reopened by a new SYN");
                    // RFC 9293 §3.6.1 / RFC 6191: the new incarnation's ISN
                    // must lie above the old one's sequence space; like
                    // Linux, start 65537 past the old SND.NXT.
                    reopen_iss = Some(conn.snd.max + 65537);
                    // Kept aside, not forgotten: if the SYN was an old
                    // duplicate, the connection returns to TIME-WAIT.
                    reopened_from = self.conns.remove(&id);
                    if let Some(at) = reopened_from.as_mut().and_then(|c| c.scheduled.take()) {
                        self.timer_set.remove(&(at, id));
                    }
                    self.tuples.remove(&(local, remote));
                } else {
                    // Like Linux, a full accept queue drops the ACK that
                    // would complete the handshake; the SYN-ACK is resent.
                    if conn.state == State::SynReceived && h.flags.ack && !h.flags.rst {
                        if let Some(l) = conn.listener.and_then(|l| self.listeners.get(&l)) {
                            if !l.can_accept() {
                                self.out.stats.listen_overflow += 1;
                                return;
                            }
                        }
                    }
                    let before = conn.state;
                    conn.locked(&self.cfg, &mut self.out, |c, cx| {
                        c.on_segment(now, &seg, cx)
                    });
                    self.after(id, before);
                    return;
                }
            }
        }
        if let Some(lid) = self.find_listener(local) {
            self.on_listen_segment(now, lid, local, remote, &seg, reopen_iss);
            if let Some(old) = reopened_from {
                match self.tuples.get(&(local, remote)) {
                    Some(&new) => {
                        self.reopened.insert(new, old);
                    }
                    None => self.restore(old),
                }
            }
            return;
        }
        // RFC 9293 §3.10.7.1: no connection and no listener.
        crate::notes::note!(
            self.out.notes,
            received,
            "no connection or listener for {local}: answered with RST"
        );
        self.out.reset_for(local, remote, &seg);
    }

    /// Whether a listener takes connections to `local`.
    pub fn listening_on(&self, local: impl Into<SocketAddr>) -> bool {
        self.find_listener(local.into()).is_some()
    }

    /// The listener for a segment to `local`: one bound to that address,
    /// else to its family's wildcard, else, for IPv4, a dual-stack `[::]`
    /// one (unless it is IPv6-only, [`TcpOption::OnlyV6`]).
    fn find_listener(&self, local: SocketAddr) -> Option<ListenerId> {
        let wildcard = |ip| self.listen_addrs.get(&SocketAddr::new(ip, local.port()));
        self.listen_addrs
            .get(&local)
            .or_else(|| wildcard(unspecified(local.ip())))
            .or_else(|| {
                let id = wildcard(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).filter(|_| local.is_ipv4())?;
                let only_v6 = self
                    .listeners
                    .get(id)?
                    .options
                    .contains(&TcpOption::OnlyV6(true));
                (!only_v6).then_some(id)
            })
            .copied()
    }

    /// Bookkeeping after a connection ran: hand established passive
    /// connections to their listener, forget finished ones.
    fn after(&mut self, id: ConnId, before: State) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if before == State::SynReceived
            && conn.state.is_synchronized()
            && !conn.handle.in_accept_queue
        {
            if let Some(l) = conn.listener.and_then(|l| self.listeners.get_mut(&l)) {
                l.promote(id);
                conn.handle.in_accept_queue = true;
                self.out.event(TcpEvent::Acceptable(l.id));
            }
            // The new incarnation is established: the old one is over.
            self.reopened.remove(&id);
        }
        let orphan =
            conn.handle.released || (conn.listener.is_some() && !conn.handle.in_accept_queue);
        if conn.state == State::Closed && orphan {
            self.forget(id);
            return;
        }
        self.reschedule(id);
    }

    /// Keeps connection `id`'s entry in the timer set at its earliest
    /// deadline.
    fn reschedule(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let next = conn.timers.next();
        if next != conn.scheduled {
            if let Some(old) = conn.scheduled {
                self.timer_set.remove(&(old, id));
            }
            if let Some(at) = next {
                self.timer_set.insert((at, id));
            }
            conn.scheduled = next;
        }
    }

    fn forget(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.remove(&id) {
            if let Some(at) = conn.scheduled {
                self.timer_set.remove(&(at, id));
            }
            self.tuples.remove(&(conn.local, conn.remote));
            if let Some(l) = conn.listener.and_then(|l| self.listeners.get_mut(&l)) {
                l.remove(id);
            }
        }
        // RFC 9293 §3.6.1, MAY-2 condition (2): a connection reopened from
        // TIME-WAIT that dies before it is established (the SYN was an old
        // duplicate, and the peer reset our SYN-ACK) returns to TIME-WAIT.
        if let Some(old) = self.reopened.remove(&id) {
            self.restore(old);
        }
    }

    /// Puts a TIME-WAIT connection set aside by a reopening SYN back.
    fn restore(&mut self, old: Conn) {
        log::debug!(
            "{} -> {} back to TIME-WAIT: the reopening SYN was an old duplicate",
            old.remote,
            old.local
        );
        let id = old.id;
        self.tuples.insert((old.local, old.remote), id);
        self.conns.insert(id, old);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.scheduled = None;
        }
        self.reschedule(id);
    }

    // ---- timers ----

    /// Runs every timer due at `now`, taking connections from the timer
    /// set in deadline order: the cost follows the timers that are due,
    /// not the number of connections.
    pub fn poll(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // A connection can become due while this runs (a TIME-WAIT
        // connection restored when the incarnation that reopened it died,
        // its 2×MSL already past): it enters the set and is taken in this
        // loop, so `poll_at` never lies in the past afterwards. The bound
        // only guards against a timer bug.
        let mut budget = self.conns.len() * 4 + 64;
        while let Some(&(at, id)) = self.timer_set.first() {
            if at > now || budget == 0 {
                break;
            }
            budget -= 1;
            let Some(conn) = self.conns.get_mut(&id) else {
                self.timer_set.remove(&(at, id));
                continue;
            };
            if conn.scheduled != Some(at) {
                self.timer_set.remove(&(at, id)); // stale
                continue;
            }
            let before = conn.state;
            conn.locked(&self.cfg, &mut self.out, |c, cx| c.on_timer(now, cx));
            self.after(id, before);
            // `after` moved the entry (or the connection is gone); make
            // sure a timer that stayed in the past cannot spin.
            if self.timer_set.first() == Some(&(at, id)) {
                self.timer_set.remove(&(at, id));
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.scheduled = None;
                }
            }
        }
    }

    /// Checks the timer bookkeeping: every connection with a running
    /// timer is filed under its earliest deadline, and nothing else is
    /// (for tests and the simulation; O(n)).
    pub fn check_timers(&self) -> Result<(), String> {
        let mut filed = 0;
        for (id, c) in &self.conns {
            let next = c.timers.next();
            if c.scheduled != next {
                return Err(format!(
                    "{id}: filed under {:?}, next deadline {next:?}",
                    c.scheduled
                ));
            }
            if let Some(at) = next {
                if !self.timer_set.contains(&(at, *id)) {
                    return Err(format!("{id}: deadline {at:?} missing from the timer set"));
                }
                filed += 1;
            }
        }
        if filed != self.timer_set.len() {
            return Err(format!(
                "{} timer entries for {filed} connections with timers",
                self.timer_set.len()
            ));
        }
        Ok(())
    }

    /// When [`TcpLayer::poll`] next has work to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.timer_set.first().map(|&(at, _)| at)
    }

    // ---- application calls ----

    /// Opens a listener on `local` (IP may be 0.0.0.0). Connections still
    /// lingering on the port (e.g. in TIME-WAIT) do not prevent it, as with
    /// `SO_REUSEADDR`; another listener on the same address does.
    pub fn listen(
        &mut self,
        local: impl Into<SocketAddr>,
        backlog: usize,
    ) -> Result<ListenerId, TcpError> {
        let local = local.into();
        if local.port() == 0 {
            return Err(TcpError::InvalidInput);
        }
        // As Linux: two listeners on one port clash when their addresses
        // overlap: the same, or a wildcard of a family the other is of,
        // where a dual-stack `[::]` is of both.
        let dual = |a: &SocketAddr, only_v6: bool| a.ip() == Ipv6Addr::UNSPECIFIED && !only_v6;
        let clash = self.listen_addrs.iter().any(|(a, id)| {
            let a_only_v6 = self
                .listeners
                .get(id)
                .is_some_and(|l| l.options.contains(&TcpOption::OnlyV6(true)));
            let families_meet =
                a.is_ipv4() == local.is_ipv4() || dual(a, a_only_v6) || dual(&local, false);
            a.port() == local.port()
                && families_meet
                && (a.ip() == local.ip() || a.ip().is_unspecified() || local.ip().is_unspecified())
        });
        if clash {
            return Err(TcpError::AddrInUse);
        }
        let id = ListenerId(self.alloc_id());
        log::debug!("*:* -> {local} CLOSED -> LISTEN");
        self.listeners
            .insert(id, Listener::new(id, local, backlog.max(1)));
        self.listen_addrs.insert(local, id);
        Ok(id)
    }

    /// Takes an established connection off the accept queue.
    pub fn accept(&mut self, listener: ListenerId) -> Result<ConnId, TcpError> {
        let l = self
            .listeners
            .get_mut(&listener)
            .ok_or(TcpError::InvalidInput)?;
        let id = l.accept_queue.pop_front().ok_or(TcpError::WouldBlock)?;
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.listener = None;
            conn.handle.in_accept_queue = false;
        }
        Ok(id)
    }

    /// Closes a listener; connections not yet accepted are reset.
    pub fn close_listener(&mut self, listener: ListenerId) -> Result<(), TcpError> {
        let l = self
            .listeners
            .remove(&listener)
            .ok_or(TcpError::InvalidInput)?;
        self.listen_addrs.remove(&l.local);
        log::debug!("*:* -> {} LISTEN -> CLOSED", l.local);
        for id in l.syn_queue.iter().chain(l.accept_queue.iter()) {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.handle.released = true;
                conn.locked(&self.cfg, &mut self.out, |c, cx| c.reset(None, cx));
            }
            self.forget(*id);
        }
        Ok(())
    }

    /// Starts an active open from `local` (port 0: pick an ephemeral port)
    /// to `remote`. Completion is reported as [`TcpEvent::Connected`], or
    /// [`TcpEvent::Closed`] with `ConnectionRefused` / `TimedOut`.
    pub fn connect(
        &mut self,
        now: Instant,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
    ) -> Result<ConnId, TcpError> {
        let (local, remote) = (local.into(), remote.into());
        if remote.port() == 0 || remote.ip().is_unspecified() || local.ip().is_unspecified() {
            return Err(TcpError::AddrNotAvailable);
        }
        // MUST-46 (RFC 9293 §3.9.1.1): an active OPEN to a broadcast or
        // multicast address is an error.
        if is_broadcast(remote.ip()) || remote.ip().is_multicast() {
            return Err(TcpError::InvalidInput);
        }
        if self.conns.len() >= self.cfg.max_connections {
            return Err(TcpError::AddrNotAvailable);
        }
        let local = if local.port() == 0 {
            self.ephemeral(local, remote)?
        } else {
            local
        };
        if self.tuples.contains_key(&(local, remote)) {
            return Err(TcpError::AddrInUse);
        }
        let id = ConnId(self.alloc_id());
        let iss = self.isn.isn(now, local, remote);
        let mut conn = Conn::active(id, (local, remote), iss, &self.cfg, &self.pool);
        conn.locked(&self.cfg, &mut self.out, |c, cx| {
            c.set_state(State::SynSent, cx);
            c.dispatch(now, cx);
        });
        self.tuples.insert((local, remote), id);
        self.conns.insert(id, conn);
        self.reschedule(id);
        Ok(id)
    }

    fn ephemeral(&mut self, local: SocketAddr, remote: SocketAddr) -> Result<SocketAddr, TcpError> {
        let span = u32::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port >= *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                port + 1
            };
            if ephemeral_port_owner(port, self.shard.1).is_some_and(|k| k != self.shard.0) {
                continue;
            }
            let candidate = SocketAddr::new(local.ip(), port);
            if !self.tuples.contains_key(&(candidate, remote))
                && self.find_listener(candidate).is_none()
            {
                return Ok(candidate);
            }
        }
        Err(TcpError::AddrNotAvailable)
    }

    fn with_conn<R>(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Conn, &mut Ctx<'_>) -> Result<R, TcpError>,
    ) -> Result<R, TcpError> {
        let conn = self.conns.get_mut(&id).ok_or(TcpError::NotConnected)?;
        if conn.handle.released || conn.listener.is_some() {
            return Err(TcpError::NotConnected);
        }
        let before = conn.state;
        let r = conn.locked(&self.cfg, &mut self.out, f);
        self.after(id, before);
        r
    }

    /// Queues data; returns how much fit (0 when the buffer is full — wait
    /// for [`TcpEvent::Writable`]).
    pub fn send(&mut self, now: Instant, id: ConnId, data: &[u8]) -> Result<usize, TcpError> {
        self.with_conn(id, |c, cx| c.send(now, data, cx))
    }

    /// Queues data and marks it urgent (RFC 9293 §3.8.5): the segments that
    /// carry it have URG set and point past its last octet.
    pub fn send_urgent(
        &mut self,
        now: Instant,
        id: ConnId,
        data: &[u8],
    ) -> Result<usize, TcpError> {
        self.with_conn(id, |c, cx| c.send_marked(now, data, true, cx))
    }

    /// Octets of urgent data the peer sent that the application has not
    /// read yet (MUST-33).
    pub fn urgent_remaining(&self, id: ConnId) -> usize {
        self.conns.get(&id).map_or(0, |c| {
            let st = c.io.lock();
            urgent_remaining(&st)
        })
    }

    /// Reads data; `Ok(0)` is end of stream, `Err(WouldBlock)` means wait for
    /// [`TcpEvent::Readable`].
    pub fn recv(&mut self, now: Instant, id: ConnId, buf: &mut [u8]) -> Result<usize, TcpError> {
        self.with_conn(id, |c, cx| c.recv(now, buf, cx))
    }

    /// The buffers and flags connection `id` shares with its application
    /// handle.
    pub fn stream(&self, id: ConnId) -> Option<Arc<Stream>> {
        self.conns.get(&id).map(|c| Arc::clone(&c.io))
    }

    /// Every connection's shared stream (to tell handles the stack stopped).
    pub fn streams(&self) -> impl Iterator<Item = &Arc<Stream>> + '_ {
        self.conns.values().map(|c| &c.io)
    }

    /// The application queued data in the stream's send buffer: send what
    /// the windows allow.
    pub fn push(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| {
            c.dispatch(now, cx);
            Ok(())
        })
    }

    /// The application read from the stream's receive buffer: announce the
    /// larger window if it grew enough (RFC 9293 §3.8.6.2.2).
    pub fn window_update(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| {
            c.window_update(now, cx);
            Ok(())
        })
    }

    /// Half-close: send FIN after the queued data; reading continues.
    pub fn shutdown_write(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| c.shutdown_write(now, cx))
    }

    /// Releases the handle: graceful close in the background (RST instead
    /// if received data was left unread). The id is invalid afterwards.
    pub fn close(&mut self, now: Instant, id: ConnId) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| {
            c.close(now, cx);
            Ok(())
        })
    }

    /// Releases the handle and resets the connection (RST).
    pub fn abort(&mut self, id: ConnId) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| {
            c.abort(cx);
            Ok(())
        })
    }

    /// `TCP_NODELAY`: `true` turns Nagle's algorithm off.
    pub fn set_nodelay(&mut self, now: Instant, id: ConnId, nodelay: bool) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| {
            c.set_nodelay(now, nodelay, cx);
            Ok(())
        })
    }

    /// Handles an ICMP error quoting a segment from `local` to `remote` with
    /// sequence number `seq` (see [`super::icmp`]); `link_mtu` bounds what
    /// a Fragmentation Needed message may ask for.
    pub fn on_icmp(
        &mut self,
        now: Instant,
        (local, remote): (SocketAddr, SocketAddr),
        seq: u32,
        err: IcmpError,
        link_mtu: usize,
    ) {
        self.now = self.now.max(now);
        let Some(&id) = self.tuples.get(&(local, remote)) else {
            self.out.stats.icmp_ignored += 1;
            return;
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let before = conn.state;
        let acted = conn.locked(&self.cfg, &mut self.out, |c, cx| {
            c.on_icmp(now, SeqNum(seq), err, link_mtu, cx)
        });
        if acted {
            self.out.stats.icmp_errors += 1;
        } else {
            self.out.stats.icmp_ignored += 1;
        }
        self.after(id, before);
    }

    /// Sets a socket option on a connection.
    pub fn set_option(&mut self, now: Instant, id: ConnId, opt: TcpOption) -> Result<(), TcpError> {
        self.with_conn(id, |c, cx| {
            c.set_option(now, opt, cx);
            Ok(())
        })
    }

    /// Sets a socket option on a listener: the connections it accepts from
    /// now on start with it (as a listening socket's options are inherited
    /// on Linux).
    pub fn set_listener_option(&mut self, id: ListenerId, opt: TcpOption) -> Result<(), TcpError> {
        let l = self.listeners.get_mut(&id).ok_or(TcpError::InvalidInput)?;
        l.options
            .retain(|o| std::mem::discriminant(o) != std::mem::discriminant(&opt));
        l.options.push(opt);
        Ok(())
    }

    /// `SO_KEEPALIVE` with its parameters; `None` switches it off.
    pub fn set_keepalive(
        &mut self,
        now: Instant,
        id: ConnId,
        keepalive: Option<KeepaliveConfig>,
    ) -> Result<(), TcpError> {
        self.with_conn(id, |c, _| {
            c.set_keepalive(now, keepalive);
            Ok(())
        })
    }

    /// A snapshot of one connection.
    pub fn info(&self, id: ConnId) -> Option<ConnInfo> {
        self.conns.get(&id).map(|c| c.info(self.now))
    }

    /// Snapshots of every connection (including TIME-WAIT and half-open
    /// ones), like `ss -tni`, sorted by id.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let mut v: Vec<ConnInfo> = self.conns.values().map(|c| c.info(self.now)).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Every listener with its address and queue lengths `(syn, accept)`.
    pub fn listeners(&self) -> Vec<(ListenerId, SocketAddr, usize, usize)> {
        let mut v: Vec<_> = self
            .listeners
            .values()
            .map(|l| (l.id, l.local, l.syn_queue.len(), l.accept_queue.len()))
            .collect();
        v.sort_by_key(|l| l.0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::buffer::RecvBuffer;

    /// Sixteen connections whose receive rings autotuning grew to the most
    /// drain at once: the stack's pool keeps every ring for their next
    /// burst. With 16 MiB it kept four, and the others were freed and
    /// faulted in anew at each burst (docs/PERFORMANCE.md, stop 23).
    #[test]
    fn the_pool_keeps_sixteen_rings_of_the_largest_receive_buffer() {
        let pool = BufferPool::new(POOL_BYTES);
        let most = TcpConfig::default().recv_buffer_max;
        let mut rings: Vec<_> = (0..16)
            .map(|_| RecvBuffer::with_pool(most, Some(pool.clone())))
            .collect();
        for r in &mut rings {
            r.write(0, b"x");
        }
        for r in &mut rings {
            r.consume(1);
        }
        assert_eq!(pool.spare_bytes(), 16 * most);
    }
}
