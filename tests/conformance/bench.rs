//! The test bench: a scripted peer in front of a [`TcpLayer`], driven by a
//! virtual clock, in the spirit of gVisor's packetimpact.
//!
//! The peer crafts segments byte by byte with [`seg!`] (see `segment.rs`:
//! its own encoder and checksum, independent of `tunstack::wire`), feeds
//! them to the layer, and reads every reply back through its own parser,
//! which checks the invariants every generated segment must meet (valid
//! checksum, MUST-2; well-formed options, MUST-65, MUST-68, MUST-69).
//!
//! ```ignore
//! let mut b = Bench::new();
//! b.listen(PORT);
//! b.send(seg!(SYN, seq = 100, win = 1000, mss = 1460));
//! let sa = b.expect(|s| s.is("SA") && s.ack_no == 101);
//! b.send(seg!(ACK, seq = 101, ack = sa.seq + 1));
//! b.expect_nothing();
//! b.advance(200);
//! ```
//!
//! Defaults, so scripts stay short: a segment goes from [`PEER`] to
//! [`US`]; its `seq` is the peer's next sequence number (advanced by the
//! segment's length), its `ack` (when the ACK bit is set) acknowledges
//! everything the stack has sent so far, and its window is
//! [`Bench::peer_win`].

#![allow(dead_code)] // Not every test module uses every helper.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tunstack::tcp::{
    ConnId, ConnInfo, ListenerId, State, TcpConfig, TcpError, TcpEvent, TcpLayer, TcpStats,
};
use tunstack::time::Instant;
use tunstack::wire::packet::PacketBuf;
use tunstack::wire::{gso, ipv4};

pub use crate::segment::*;

/// The ISN secret of benches built with [`Bench::new`].
pub const SECRET: [u8; 16] = *b"conformance-key!";

/// The configuration most tests use: an 8 KiB receive buffer (so the
/// stack's window is easy to fill), a 64 KiB send buffer, no window
/// scaling, MTU 1500 (MSS 1460), everything else at its default.
pub fn cfg() -> TcpConfig {
    TcpConfig {
        send_buffer: 64 * 1024,
        recv_buffer: 8192,
        window_scaling: false,
        ..TcpConfig::default()
    }
}

/// Milliseconds as a [`Duration`].
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds as a [`Duration`].
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `a < b` in sequence space (RFC 9293 §3.4, modulo 2^32).
pub fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The TCP segments a device puts on the wire for one the layer built: as
/// it is, or with offload (a super-segment, a partial checksum) cut to the
/// MSS with checksums completed, as the kernel's GSO does.
fn wire_segments(src: Ipv4Addr, dst: Ipv4Addr, packet: &PacketBuf) -> Vec<Vec<u8>> {
    let meta = packet.meta();
    if meta.is_plain() {
        return vec![packet.to_vec()];
    }
    let mut ip = vec![0u8; 20];
    ipv4::write_header(&mut ip, src, dst, 6, 64, 0, 0, packet.len(), true);
    ip.extend_from_slice(packet);
    let mut out = Vec::new();
    gso::segment(&ip, meta.gso_size, &mut |p| out.push(p[20..].to_vec()));
    out
}

// ---------------------------------------------------------------------------
// The bench

/// A [`TcpLayer`], a virtual clock, and the scripted peer's view of the
/// conversation.
pub struct Bench {
    pub tcp: TcpLayer,
    pub now: Instant,
    /// The stack's socket: the default destination of what the peer sends
    /// ([`US`], or the local socket of [`Bench::connect`]).
    pub us: SocketAddrV4,
    /// The listener opened by [`Bench::listen`], if any.
    pub listener: Option<ListenerId>,
    /// The connection under test (set by the handshake helpers).
    pub conn: Option<ConnId>,
    /// The peer's next sequence number: the default `seq` of what it sends.
    pub peer_seq: u32,
    /// The highest sequence number the stack has sent up to (exclusive):
    /// the default `ack` of what the peer sends.
    pub stack_seq: u32,
    /// The stack's ISN on the connection under test.
    pub stack_iss: u32,
    /// The default window of what the peer sends.
    pub peer_win: u16,
    /// The peer's timestamps clock, when it uses timestamps (RFC 7323):
    /// every segment it sends then carries TSval (this plus the bench's
    /// milliseconds) and echoes the stack's latest TSval, unless the
    /// segment says otherwise.
    pub peer_ts: Option<u32>,
    /// The latest TSval the stack sent.
    pub stack_tsval: u32,
    queue: VecDeque<Out>,
}

impl Default for Bench {
    fn default() -> Self {
        Bench::new()
    }
}

impl Bench {
    /// A bench on [`cfg`].
    pub fn new() -> Bench {
        Bench::with(cfg())
    }

    /// A bench on `config`.
    pub fn with(config: TcpConfig) -> Bench {
        Bench::with_secret(config, SECRET)
    }

    /// A bench on `config` with ISN secret `secret`.
    pub fn with_secret(mut config: TcpConfig, secret: [u8; 16]) -> Bench {
        // `TUNSTACK_OFFLOAD=on` runs the suite as over a device with
        // offload: the layer builds super-segments with partial checksums,
        // and the bench cuts them as the kernel would (`wire_segments`).
        config.offload |= std::env::var("TUNSTACK_OFFLOAD").as_deref() == Ok("on");
        Bench {
            tcp: TcpLayer::new(config, secret),
            now: Instant::ZERO,
            us: US,
            listener: None,
            conn: None,
            peer_seq: PEER_ISS,
            stack_seq: 0,
            stack_iss: 0,
            peer_win: 65535,
            peer_ts: None,
            stack_tsval: 0,
            queue: VecDeque::new(),
        }
    }

    // ---- the wire ----

    /// The peer sends `seg` (defaults filled in, see the module docs).
    #[track_caller]
    pub fn send(&mut self, mut seg: In) {
        let src = seg.src.unwrap_or(PEER);
        let dst = seg.dst.unwrap_or(self.us);
        if seg.seq.is_none() {
            seg.seq = Some(self.peer_seq);
            self.peer_seq = self.peer_seq.wrapping_add(seg.seg_len());
        }
        if seg.ack.is_none() && seg.flags & bits::ACK != 0 {
            seg.ack = Some(self.stack_seq);
        }
        if seg.win.is_none() {
            seg.win = Some(self.peer_win);
        }
        if let (Some(base), None) = (self.peer_ts, seg.ts) {
            let ecr = if seg.flags & bits::ACK != 0 {
                self.stack_tsval
            } else {
                0
            };
            seg.ts = Some((self.peer_tsval(base), ecr));
        }
        let bytes = seg.encode(src, dst);
        self.send_raw(*src.ip(), *dst.ip(), &bytes);
    }

    /// The peer's TSval now, on a clock starting at `base`.
    pub fn peer_tsval(&self, base: u32) -> u32 {
        base.wrapping_add(self.now.total_millis() as u32)
    }

    /// Feeds raw TCP bytes carried in an IPv4 packet from `src` to `dst`.
    #[track_caller]
    pub fn send_raw(&mut self, src: Ipv4Addr, dst: Ipv4Addr, bytes: &[u8]) {
        self.tcp.on_segment(self.now, src, dst, bytes);
        self.collect();
    }

    /// Moves the layer's output into the bench's queue.
    #[track_caller]
    fn collect(&mut self) {
        while let Some(o) = self.tcp.pop_output() {
            let (IpAddr::V4(src), IpAddr::V4(dst)) = (o.src, o.dst) else {
                panic!("an IPv4 bench got a segment {} -> {}", o.src, o.dst);
            };
            for bytes in wire_segments(src, dst, &o.packet) {
                let out = Out::parse(src, dst, &bytes, self.now);
                if out.dst == PEER && !out.rst && (out.syn || seq_lt(self.stack_seq, out.end())) {
                    self.stack_seq = out.end();
                }
                if let Some((val, _)) = out.ts {
                    self.stack_tsval = val;
                }
                self.queue.push_back(out);
            }
            self.tcp.recycle(o.packet);
        }
    }

    /// Pops the next segment the stack sent and checks it with `pred`.
    #[track_caller]
    pub fn expect(&mut self, pred: impl FnOnce(&Out) -> bool) -> Out {
        self.collect();
        let Some(s) = self.queue.pop_front() else {
            panic!(
                "expected a segment at {:?}, the stack sent nothing",
                self.now
            );
        };
        if !pred(&s) {
            panic!("unexpected segment {s:?}; still queued: {:?}", self.queue);
        }
        s
    }

    /// Asserts the stack has sent nothing (not yet popped).
    #[track_caller]
    pub fn expect_nothing(&mut self) {
        self.collect();
        assert!(
            self.queue.is_empty(),
            "expected silence at {:?}, got {:?}",
            self.now,
            self.queue
        );
    }

    /// Everything sent and not yet popped.
    pub fn take_all(&mut self) -> Vec<Out> {
        self.collect();
        self.queue.drain(..).collect()
    }

    // ---- time ----

    /// Advances the clock by `ms` milliseconds, firing every timer due on the
    /// way at its own deadline.
    #[track_caller]
    pub fn advance(&mut self, ms: u64) {
        self.advance_by(Duration::from_millis(ms));
    }

    /// [`Bench::advance`] by a [`Duration`].
    #[track_caller]
    pub fn advance_by(&mut self, d: Duration) {
        let target = self.now + d;
        self.run_until(target, false);
        self.now = target;
    }

    /// Runs timers up to `target`; with `stop_on_output`, stops at the first
    /// deadline that produced output. Returns whether output appeared.
    #[track_caller]
    fn run_until(&mut self, target: Instant, stop_on_output: bool) -> bool {
        for _ in 0..1_000_000 {
            match self.tcp.poll_at() {
                Some(t) if t <= target => {
                    if t > self.now {
                        self.now = t;
                    }
                    self.tcp.poll(self.now);
                    self.collect();
                    if stop_on_output && !self.queue.is_empty() {
                        return true;
                    }
                }
                _ => return !self.queue.is_empty(),
            }
        }
        panic!("timers never settle (poll_at stays at or before {target:?})");
    }

    /// Runs timers until the stack sends something, at most `max_ms` from
    /// now, and pops that segment.
    #[track_caller]
    pub fn wait_for_segment(&mut self, max_ms: u64) -> Out {
        match self.try_wait_for_segment(max_ms) {
            Some(s) => s,
            None => panic!("nothing sent within {max_ms} ms (now {:?})", self.now),
        }
    }

    /// [`Bench::wait_for_segment`], `None` (with the clock moved `max_ms`
    /// on) if the stack stays silent.
    #[track_caller]
    pub fn try_wait_for_segment(&mut self, max_ms: u64) -> Option<Out> {
        self.collect();
        if self.queue.is_empty() {
            let target = self.now + Duration::from_millis(max_ms);
            if !self.run_until(target, true) {
                self.now = target;
                return None;
            }
        }
        self.queue.pop_front()
    }

    /// The layer's next deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.tcp.poll_at()
    }

    // ---- application calls ----

    /// Listens on `US_IP:port` with a backlog of 8.
    pub fn listen(&mut self, port: u16) -> ListenerId {
        self.listen_backlog(port, 8)
    }

    /// Listens on `US_IP:port` with `backlog`.
    pub fn listen_backlog(&mut self, port: u16, backlog: usize) -> ListenerId {
        let id = self
            .tcp
            .listen(SocketAddrV4::new(US_IP, port), backlog)
            .expect("listen");
        self.listener = Some(id);
        self.us = SocketAddrV4::new(US_IP, port);
        id
    }

    /// The connection under test.
    pub fn id(&self) -> ConnId {
        self.conn.expect("no connection under test")
    }

    /// Queues data on the connection under test.
    #[track_caller]
    pub fn app_send(&mut self, data: &[u8]) -> usize {
        let n = self.tcp.send(self.now, self.id(), data).expect("send");
        self.collect();
        n
    }

    /// Reads up to `max` bytes from the connection under test.
    pub fn app_recv(&mut self, max: usize) -> Result<Vec<u8>, TcpError> {
        let mut buf = vec![0u8; max];
        let r = self.tcp.recv(self.now, self.id(), &mut buf);
        self.collect();
        r.map(|n| {
            buf.truncate(n);
            buf
        })
    }

    /// `close` on the connection under test.
    #[track_caller]
    pub fn app_close(&mut self) {
        self.tcp.close(self.now, self.id()).expect("close");
        self.collect();
    }

    /// `shutdown_write` on the connection under test.
    #[track_caller]
    pub fn app_shutdown(&mut self) {
        self.tcp
            .shutdown_write(self.now, self.id())
            .expect("shutdown");
        self.collect();
    }

    /// `abort` on the connection under test.
    #[track_caller]
    pub fn app_abort(&mut self) {
        self.tcp.abort(self.id()).expect("abort");
        self.collect();
    }

    /// `set_nodelay` on the connection under test.
    #[track_caller]
    pub fn app_nodelay(&mut self, on: bool) {
        self.tcp
            .set_nodelay(self.now, self.id(), on)
            .expect("nodelay");
        self.collect();
    }

    /// The connection under test's snapshot.
    #[track_caller]
    pub fn info(&self) -> ConnInfo {
        self.tcp.info(self.id()).expect("connection exists")
    }

    /// The connection under test's state, `None` once forgotten.
    pub fn state(&self) -> Option<State> {
        self.conn.and_then(|id| self.tcp.info(id)).map(|i| i.state)
    }

    /// Drains the event queue.
    pub fn events(&mut self) -> Vec<TcpEvent> {
        std::iter::from_fn(|| self.tcp.pop_event()).collect()
    }

    /// Layer counters.
    pub fn stats(&self) -> TcpStats {
        self.tcp.stats()
    }

    // ---- scripted openings ----

    /// Passive open on [`PORT`]: SYN (seq [`PEER_ISS`], MSS 1460), SYN-ACK,
    /// ACK, accept. Returns the connection; [`Bench::stack_iss`] holds the
    /// stack's ISN.
    #[track_caller]
    pub fn handshake_passive(&mut self) -> ConnId {
        self.handshake_passive_with(seg!(SYN, mss = 1460), 0)
    }

    /// Passive open with a custom SYN (its `seq` defaults to [`PEER_ISS`])
    /// and `rtt_ms` between the SYN-ACK and the ACK.
    #[track_caller]
    pub fn handshake_passive_with(&mut self, syn: In, rtt_ms: u64) -> ConnId {
        let lid = match self.listener {
            Some(l) => l,
            None => self.listen(PORT),
        };
        self.peer_seq = syn.seq.unwrap_or(PEER_ISS);
        let syn = In { seq: None, ..syn };
        self.send(syn);
        let sa = self.expect(|s| s.is("SA"));
        assert_eq!(sa.ack_no, self.peer_seq, "SYN-ACK acknowledges the SYN");
        self.stack_iss = sa.seq;
        self.advance(rtt_ms);
        self.send(seg!(ACK));
        self.expect_nothing();
        let id = self.tcp.accept(lid).expect("accept");
        self.conn = Some(id);
        self.events();
        id
    }

    /// Active open from `US_IP:port` to [`PEER`]; the peer answers with a
    /// SYN-ACK (seq [`PEER_ISS`], MSS 1460) after `rtt_ms`.
    #[track_caller]
    pub fn handshake_active(&mut self, port: u16, rtt_ms: u64) -> ConnId {
        let id = self.connect(port);
        let syn = self.expect(|s| s.is("S"));
        self.advance(rtt_ms);
        self.peer_seq = PEER_ISS;
        self.send(seg!(SYN | ACK, ack = syn.seq.wrapping_add(1), mss = 1460));
        self.expect(|s| s.is("A") && s.ack_no == PEER_ISS.wrapping_add(1));
        assert_eq!(self.events(), vec![TcpEvent::Connected(id)]);
        id
    }

    /// `connect` from `US_IP:port` to [`PEER`]; the SYN stays queued.
    #[track_caller]
    pub fn connect(&mut self, port: u16) -> ConnId {
        let local = SocketAddrV4::new(US_IP, port);
        let id = self.tcp.connect(self.now, local, PEER).expect("connect");
        self.conn = Some(id);
        self.us = local;
        self.collect();
        if let Some(syn) = self.queue.front() {
            self.stack_iss = syn.seq;
        }
        id
    }

    /// The peer sends `data` (ACK|PSH, acknowledging everything).
    #[track_caller]
    pub fn peer_data(&mut self, data: &[u8]) {
        self.send(seg!(ACK | PSH, data = data));
    }

    /// The peer acknowledges everything the stack sent.
    #[track_caller]
    pub fn peer_ack(&mut self) {
        self.send(seg!(ACK));
    }

    /// A passively opened connection driven into `target` (any synchronized
    /// state), using `shutdown_write` so the handle stays valid. Events up
    /// to here are drained.
    #[track_caller]
    pub fn reach(target: State) -> Bench {
        Bench::reach_with(target, cfg())
    }

    /// [`Bench::reach`] with `config`.
    #[track_caller]
    pub fn reach_with(target: State, config: TcpConfig) -> Bench {
        let mut b = Bench::with(config);
        b.handshake_passive();
        match target {
            State::Established => {}
            State::FinWait1 => {
                b.app_shutdown();
                b.expect(|s| s.is("FA"));
            }
            State::FinWait2 => {
                b.app_shutdown();
                b.expect(|s| s.is("FA"));
                b.peer_ack();
            }
            State::CloseWait => {
                b.send(seg!(FIN | ACK));
                b.expect(|s| s.is("A"));
            }
            State::Closing => {
                b.app_shutdown();
                let fin = b.expect(|s| s.is("FA"));
                b.send(seg!(FIN | ACK, ack = fin.seq));
                b.expect(|s| s.is("A"));
            }
            State::LastAck => {
                b.send(seg!(FIN | ACK));
                b.expect(|s| s.is("A"));
                b.app_shutdown();
                b.expect(|s| s.is("FA"));
            }
            State::TimeWait => {
                b.app_shutdown();
                b.expect(|s| s.is("FA"));
                b.peer_ack();
                b.send(seg!(FIN | ACK));
                b.expect(|s| s.is("A"));
            }
            other => panic!("reach({other}) is not a synchronized state"),
        }
        b.expect_nothing();
        assert_eq!(b.state(), Some(target));
        b.events();
        b
    }
}
