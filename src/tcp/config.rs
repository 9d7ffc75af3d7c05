//! Tunables of the TCP layer. Defaults follow Linux where the RFCs leave a
//! choice.

use std::net::IpAddr;
use std::time::Duration;

/// Keepalive parameters (RFC 9293 §3.8.4; Linux `tcp_keepalive_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Idle time before the first probe (default 7200 s; MUST-26:
    /// no less than two hours by default).
    pub idle: Duration,
    /// Time between unanswered probes (default 75 s).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (default 9).
    pub count: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

/// Configuration of a [`super::TcpLayer`].
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// IP MTU of the link; our MSS option is `mtu - 40` (RFC 9293 §3.7.1).
    pub mtu: usize,
    /// Send buffer size per connection, bytes.
    pub send_buffer: usize,
    /// How far the send buffer grows with the congestion window (send
    /// buffer autotuning, as Linux's `tcp_wmem` maximum): it holds twice
    /// cwnd, so a window's worth can wait behind the one in flight. An
    /// explicit `SO_SNDBUF` turns it off for that socket; 0 turns it off.
    pub send_buffer_max: usize,
    /// Receive buffer size per connection, bytes (bounds the window and the
    /// out-of-order data held): where it starts.
    pub recv_buffer: usize,
    /// Receive-window autotuning: a connection whose application reads more
    /// than half its buffer in a round trip gets a bigger one, up to this
    /// many bytes (Linux's `tcp_rmem` maximum is 6 MiB). At or below
    /// `recv_buffer`, or with `recv_buffer` under 64 KiB: no autotuning. A
    /// socket's explicit receive buffer size turns it off for that socket.
    pub recv_buffer_max: usize,
    /// Offer window scaling (RFC 7323) on SYNs.
    pub window_scaling: bool,
    /// RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Lower bound on the RTO (Linux: 200 ms).
    pub min_rto: Duration,
    /// Upper bound on the RTO (Linux: 120 s).
    pub max_rto: Duration,
    /// SYN retransmissions before `connect` fails with `TimedOut`. Default 7
    /// (255 s with a 1 s initial RTO): RFC 9293 MUST-23 asks that a SYN be
    /// retried for at least 3 minutes, which Linux's 6 (127 s) does not.
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped
    /// (Linux: 5).
    pub synack_retries: u32,
    /// R1 of RFC 9293 §3.8.3: retransmissions after which we log that the
    /// path looks bad (Linux `tcp_retries1` = 3).
    pub retries1: u32,
    /// R2 of RFC 9293 §3.8.3: retransmissions of one segment after which the
    /// connection is aborted with `TimedOut` (Linux `tcp_retries2` = 15).
    pub retries2: u32,
    /// Maximum segment lifetime; TIME-WAIT lasts 2×MSL (default 30 s, so
    /// TIME-WAIT is 60 s like Linux).
    pub msl: Duration,
    /// How long an orphaned connection (closed by the application) may stay
    /// in FIN-WAIT-2 (Linux `tcp_fin_timeout` = 60 s).
    pub fin_wait2_timeout: Duration,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3, MUST-40: under 0.5 s):
    /// 40 ms by default, Linux's (`TCP_ATO_MIN`, where its delayed-ACK
    /// timer starts). A lone segment waits this long for its ACK: with
    /// 200 ms, a sender whose window is a few segments (CUBIC at 1-5 %
    /// loss) waited on it every round trip and moved 0.8-0.9 of what it
    /// moves to Linux (docs/PERFORMANCE.md).
    pub delayed_ack: Duration,
    /// Keepalive parameters used when keepalive is switched on.
    pub keepalive: KeepaliveConfig,
    /// Challenge ACKs (RFC 5961 §7) per second, layer-wide: each second's
    /// budget is drawn at random between half and 1.5× this (as Linux does,
    /// so the count is no side channel).
    pub challenge_ack_limit: u32,
    /// Answers to out-of-window pure ACKs and SYNs are sent at most once per
    /// this interval per connection (Linux `tcp_invalid_ratelimit`, 500 ms);
    /// out-of-window data is always answered.
    pub oow_ack_interval: Duration,
    /// Most connections in the table (including TIME-WAIT); further SYNs
    /// are dropped and `connect` fails.
    pub max_connections: usize,
    /// The device takes segmentation and checksum offload: data goes out
    /// in super-segments of up to 64 KiB that the device cuts to the MSS,
    /// and checksums are left for it to complete. Set from the device
    /// ([`crate::device::Device::offload`]); off by default.
    pub offload: bool,
    /// Offer and accept selective acknowledgements (RFC 2018): with a peer
    /// that agrees, ACKs report the out-of-order data held, so its sender
    /// repairs every hole in one round trip. Default on, as in Linux.
    pub sack: bool,
    /// Offer and accept the timestamps option (RFC 7323): an RTT sample on
    /// every ACK, also for retransmitted data (RTTM), and protection
    /// against wrapped sequence numbers (PAWS). Default on, as in Linux.
    pub timestamps: bool,
    /// The congestion control of new connections (`TCP_CONGESTION` sets
    /// it per socket): CUBIC by default, as in Linux.
    pub congestion: super::congestion::Algorithm,
    /// RACK-TLP (RFC 8985) with SACK: losses found by time (one delivery
    /// past a hole is enough) and a probe for a lost tail instead of the
    /// RTO. Default on, as in Linux.
    pub rack: bool,
    /// Pace NewReno and CUBIC (BBR always paces): each round's data is
    /// spread over the round trip at twice cwnd per SRTT in slow start and
    /// 1.2 times after, as Linux paces under the `fq` qdisc. Linux without
    /// `fq` sends each round in one burst; a userspace stack has no qdisc
    /// to pace for it. Default on: a burst arrives faster than the
    /// receiving application reads, and Linux's receiver then keeps its
    /// window shut (docs/PERFORMANCE.md, the lossy path at 0 %).
    pub pacing: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            send_buffer: 256 * 1024,
            send_buffer_max: 4 * 1024 * 1024,
            recv_buffer: 256 * 1024,
            recv_buffer_max: 4 * 1024 * 1024,
            window_scaling: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            syn_retries: 7,
            synack_retries: 5,
            retries1: 3,
            retries2: 15,
            msl: Duration::from_secs(30),
            fin_wait2_timeout: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            keepalive: KeepaliveConfig::default(),
            challenge_ack_limit: 1000,
            oow_ack_interval: Duration::from_millis(500),
            max_connections: 262_144,
            offload: false,
            sack: true,
            timestamps: true,
            congestion: super::congestion::Algorithm::default(),
            rack: true,
            pacing: true,
        }
    }
}

/// The window scale shift that lets a receive buffer of `bytes` be
/// advertised whole (RFC 7323 §2.3, at most 14).
pub(crate) fn window_shift_for(bytes: usize) -> u8 {
    let mut shift = 0u8;
    while shift < 14 && (bytes >> shift) > usize::from(u16::MAX) {
        shift += 1;
    }
    shift
}

impl TcpConfig {
    /// The MSS we announce: MTU minus minimal IPv4 and TCP headers (RFC
    /// 9293 §3.7.1), so every segment fits the link even at IPv4's minimum
    /// MTU of 68 (an MSS of 28).
    pub fn mss(&self) -> u16 {
        u16::try_from(self.mtu.saturating_sub(40).max(8)).unwrap_or(u16::MAX)
    }

    /// The MSS we announce to a peer of `ip`'s family: over IPv6, the MTU
    /// less 40 bytes of fixed header and 20 of TCP (RFC 8200 §5, RFC 9293
    /// §3.7.1).
    pub fn mss_for(&self, ip: IpAddr) -> u16 {
        match ip {
            IpAddr::V4(_) => self.mss(),
            IpAddr::V6(_) => u16::try_from(self.mtu.saturating_sub(60).max(8)).unwrap_or(u16::MAX),
        }
    }

    /// Most payload bytes in one segment we build for a peer of `ip`'s
    /// family whose MSS is `mss`: the MSS, or with offload the most whole
    /// MSS-sized pieces that fit a 64 KiB packet (behind 20 bytes of IPv4
    /// or 40 of IPv6, and 20 of TCP).
    pub fn max_segment(&self, mss: u32, ip: IpAddr) -> u32 {
        if !self.offload || mss == 0 {
            return mss;
        }
        let room = u32::from(u16::MAX) - if ip.is_ipv6() { 60 } else { 40 };
        (room / mss * mss).max(mss)
    }

    /// Window scale shift we offer: the smallest that lets the whole
    /// receive buffer be advertised, as far as autotuning may grow it
    /// (RFC 7323 §2.3, at most 14).
    pub fn window_shift(&self) -> u8 {
        if self.autotune() {
            window_shift_for(self.recv_buffer_max)
        } else {
            window_shift_for(self.recv_buffer)
        }
    }

    /// Whether receive buffers grow with the transfer: when the maximum is
    /// above the initial size, and that is at least 64 KiB (a buffer set
    /// smaller is small on purpose, and keeps a window scale to match).
    pub fn autotune(&self) -> bool {
        self.recv_buffer_max > self.recv_buffer && self.recv_buffer >= 64 * 1024
    }
}
