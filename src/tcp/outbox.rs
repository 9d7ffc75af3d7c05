//! Where the core's output collects until the runtime drains it: segments
//! (serialised into recycled buffers), events, counters, and the
//! layer-wide challenge-ACK rate limiter.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crate::ip::IpOptions;
use crate::time::Instant;
use crate::wire::gso::TxMeta;
use crate::wire::packet::PacketBuf;
use crate::wire::tcp::{TcpFlags, TcpHeaderRepr, TcpSegment};

use super::api::{ConnId, OutSegment, TcpEvent, TcpStats};
use super::config::TcpConfig;

/// The IP header of segments that belong to no connection (RSTs, SYN
/// cookies): the defaults, with DF as for all TCP.
pub(crate) const TCP_IP: IpOptions = IpOptions {
    ttl: None,
    tos: 0,
    dont_fragment: true,
};

/// Spare buffers kept for reuse.
const POOL_MAX: usize = 128;

/// Output of the core, drained by the runtime.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub segments: VecDeque<OutSegment>,
    pub events: VecDeque<TcpEvent>,
    pub pool: Vec<Vec<u8>>,
    pub stats: TcpStats,
    /// Connections to dispatch at the end of the batch, in order.
    pub deferred: Vec<ConnId>,
    challenge_second: Option<Instant>,
    challenge_count: u32,
    /// This second's budget of challenge ACKs, drawn at random.
    challenge_budget: u32,
    /// PRNG state for the budget (seeded from the layer's secret).
    challenge_rng: u64,
    /// The device completes checksums (and cuts super-segments).
    pub offload: bool,
    /// Notes on packets for a pcapng capture (off unless one runs).
    pub notes: crate::notes::Notes,
}

impl Outbox {
    /// Queues one segment from `local` to `remote`.
    pub fn emit(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        h: &TcpHeaderRepr,
        payload: [&[u8]; 2],
        ip: IpOptions,
    ) {
        self.emit_segments(local, remote, h, payload, ip, 0);
    }

    /// Queues one segment, or with offload a super-segment whose payload
    /// the device cuts into pieces of `mss` bytes (0: never cut).
    pub fn emit_segments(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        h: &TcpHeaderRepr,
        payload: [&[u8]; 2],
        ip: IpOptions,
        mss: u32,
    ) {
        let mut packet = PacketBuf::with_headroom(self.pool.pop().unwrap_or_default());
        let len = payload[0].len() + payload[1].len();
        h.emit_with(
            local.ip(),
            remote.ip(),
            payload,
            self.offload,
            packet.buf_mut(),
        );
        let mut pieces = 1;
        if self.offload {
            let gso = mss > 0 && len > mss as usize;
            if gso {
                pieces = len.div_ceil(mss as usize) as u64;
                self.stats.super_segments_out += 1;
            }
            packet.set_meta(TxMeta {
                gso_size: if gso { mss as u16 } else { 0 },
                checksum_partial: true,
            });
        }
        if h.flags.rst {
            self.stats.resets_sent += 1;
        }
        self.stats.segments_out += pieces;
        log::trace!(
            "{local} -> {remote} out [{}] seq={} ack={} win={} len={len}",
            h.flags,
            h.seq,
            h.ack,
            h.window,
        );
        if self.notes.on() {
            packet.set_note(self.notes.emitted(local, remote, h.flags.fin));
        }
        self.segments.push_back(OutSegment {
            src: local.ip(),
            dst: remote.ip(),
            packet,
            ip,
        });
    }

    /// Seeds the challenge-ACK budget's generator.
    pub fn seed(&mut self, seed: u64) {
        self.challenge_rng = seed | 1;
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.challenge_rng | 1;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.challenge_rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Returns a buffer for reuse.
    pub fn recycle(&mut self, packet: PacketBuf) {
        if self.pool.len() < POOL_MAX {
            self.pool.push(packet.into_buf());
        }
    }

    /// Queues an event, skipping it if the same one is already pending
    /// near the end of the queue.
    pub fn event(&mut self, ev: TcpEvent) {
        if self.events.iter().rev().take(8).any(|e| *e == ev) {
            return;
        }
        self.events.push_back(ev);
    }

    /// RFC 5961 §7: may we send one more challenge ACK this second?
    pub fn challenge_allowed(&mut self, now: Instant, cfg: &TcpConfig) -> bool {
        match self.challenge_second {
            Some(start) if now - start < Duration::from_secs(1) => {}
            _ => {
                self.challenge_second = Some(now);
                self.challenge_count = 0;
                // A fixed layer-wide limit is a side channel an off-path
                // attacker can count (CVE-2016-5696); like Linux, draw each
                // second's budget at random between half and 1.5× the limit.
                let limit = cfg.challenge_ack_limit;
                let half = limit / 2;
                self.challenge_budget = half + (self.next_random() % (u64::from(limit) + 1)) as u32;
            }
        }
        if self.challenge_count < self.challenge_budget {
            self.challenge_count += 1;
            self.stats.challenge_acks += 1;
            true
        } else {
            self.stats.challenge_acks_limited += 1;
            false
        }
    }

    /// The reset for a segment that has no connection to go to, RFC 9293
    /// §3.10.7.1: never answer a RST; if the ACK bit is set send
    /// `<SEQ=SEG.ACK><CTL=RST>`, otherwise
    /// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
    pub fn reset_for(&mut self, local: SocketAddr, remote: SocketAddr, seg: &TcpSegment<'_>) {
        let h = &seg.header;
        if h.flags.rst {
            return;
        }
        let mut rst = TcpHeaderRepr {
            src_port: local.port(),
            dst_port: remote.port(),
            flags: TcpFlags {
                rst: true,
                ..Default::default()
            },
            ..Default::default()
        };
        if h.flags.ack {
            rst.seq = h.ack;
        } else {
            rst.seq = 0;
            rst.ack = h.seq.wrapping_add(seg.seg_len());
            rst.flags.ack = true;
        }
        self.emit(local, remote, &rst, [&[], &[]], TCP_IP);
    }
}
