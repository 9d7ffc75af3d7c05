//! Types the runtime sees: handles, events, errors, connection info, and
//! output segments.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::state::State;
use crate::ip::IpOptions;
use crate::wire::packet::PacketBuf;

// The TCP layer's counters are defined with the stack's others, in a module
// that depends on no protocol layer.
pub use crate::stats::TcpStats;

/// Handle of a connection. Never reused within one [`super::TcpLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Handle of a listening endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

impl fmt::Display for ListenerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listener#{}", self.0)
    }
}

/// Something the application may want to act on.
///
/// Connections accepted from a listener produce no events until `accept`
/// hands them out; after `accept`, check `recv` once, as data or a FIN may
/// already be waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// An active open completed (`connect` succeeded).
    Connected(ConnId),
    /// A connection is waiting in the listener's accept queue.
    Acceptable(ListenerId),
    /// New data (or end of stream) can be read.
    Readable(ConnId),
    /// Send buffer space freed up after `send` found it full.
    Writable(ConnId),
    /// The peer sent FIN: after the buffered data, `recv` returns 0.
    PeerClosed(ConnId),
    /// The connection reached CLOSED; `None` when it ended cleanly. The
    /// handle stays valid (reporting the error) until `close`/`abort`.
    Closed(ConnId, Option<TcpError>),
}

/// Errors of the TCP layer, mappable onto [`std::io::ErrorKind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// The peer answered our SYN with RST.
    ConnectionRefused,
    /// The peer reset an established connection.
    ConnectionReset,
    /// Retransmissions or keepalive probes went unanswered.
    TimedOut,
    /// The local address is already in use.
    AddrInUse,
    /// No free ephemeral port, or a bad address.
    AddrNotAvailable,
    /// Writing after `shutdown_write`/FIN.
    BrokenPipe,
    /// The connection is not (yet or any more) open for this call, or the
    /// handle is unknown.
    NotConnected,
    /// Nothing to read yet (or no room to write); try again after an event.
    WouldBlock,
    /// An argument made no sense (e.g. a zero backlog).
    InvalidInput,
    /// Timed out, and ICMP had said the host could not be reached.
    HostUnreachable,
    /// Timed out, and ICMP had said the network could not be reached.
    NetworkUnreachable,
}

impl TcpError {
    /// The matching I/O error kind.
    pub fn kind(self) -> io::ErrorKind {
        match self {
            TcpError::ConnectionRefused => io::ErrorKind::ConnectionRefused,
            TcpError::ConnectionReset => io::ErrorKind::ConnectionReset,
            TcpError::TimedOut => io::ErrorKind::TimedOut,
            TcpError::AddrInUse => io::ErrorKind::AddrInUse,
            TcpError::AddrNotAvailable => io::ErrorKind::AddrNotAvailable,
            TcpError::BrokenPipe => io::ErrorKind::BrokenPipe,
            TcpError::NotConnected => io::ErrorKind::NotConnected,
            TcpError::WouldBlock => io::ErrorKind::WouldBlock,
            TcpError::InvalidInput => io::ErrorKind::InvalidInput,
            TcpError::HostUnreachable => io::ErrorKind::HostUnreachable,
            TcpError::NetworkUnreachable => io::ErrorKind::NetworkUnreachable,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from(self.kind()))
    }
}

impl std::error::Error for TcpError {}

impl From<TcpError> for io::Error {
    fn from(e: TcpError) -> io::Error {
        io::Error::from(e.kind())
    }
}

/// A snapshot of one connection, like a line of `ss -tni`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The handle.
    pub id: ConnId,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Current state.
    pub state: State,
    /// Bytes waiting to be sent or acknowledged.
    pub send_queue: usize,
    /// Bytes received but not yet read.
    pub recv_queue: usize,
    /// Smoothed RTT, once measured.
    pub srtt: Option<Duration>,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Our send MSS.
    pub mss: u32,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow start threshold, bytes (`u32::MAX` until the first loss).
    pub ssthresh: u32,
    /// The congestion control algorithm (`TCP_CONGESTION`).
    pub congestion: crate::tcp::congestion::Algorithm,
    /// Bytes the peer reported holding out of order (SACKed), as `ss -ti`
    /// counts `sacked` segments.
    pub sacked: u32,
    /// In loss recovery (fast recovery, RFC 6675 or RFC 6582).
    pub recovering: bool,
    /// Peer's advertised window, bytes.
    pub snd_wnd: u32,
    /// Window we advertise, bytes.
    pub rcv_wnd: u32,
    /// Segments retransmitted over the connection's life.
    pub retransmits: u64,
    /// Consecutive unanswered retransmissions now (past R1, three, the
    /// path looks bad: MUST-47's "excessive retransmissions").
    pub backoff: u32,
    /// The last soft error ICMP reported (MUST-47), if any.
    pub soft_error: Option<TcpError>,
    /// SACK was negotiated (RFC 2018), as `ss -ti` shows `sack`.
    pub sack: bool,
    /// Timestamps were negotiated (RFC 7323), as `ss -ti` shows `ts`.
    pub timestamps: bool,
    /// Window scale shifts (ours, the peer's) when negotiated (RFC 7323),
    /// as `ss -ti` shows `wscale:snd,rcv`.
    pub wscale: Option<(u8, u8)>,
    /// The receive buffer's size now (it grows with autotuning).
    pub recv_buffer: usize,
    /// The send buffer's size now (it grows with the congestion window).
    pub send_buffer: usize,
    /// The pacing rate in bytes per second, when the connection paces (BBR
    /// always; NewReno and CUBIC with `TcpConfig::pacing`, once an RTT is
    /// measured), as `ss -ti` shows `pacing_rate`.
    pub pacing_rate: Option<u64>,
    /// BBR's model of the path, when BBR runs (`ss -ti`'s `bbr:(...)`).
    pub bbr: Option<BbrInfo>,
    /// The time the connection had data to send, and what held it back:
    /// `ss -ti`'s `busy`, `rwnd_limited` and `sndbuf_limited`.
    pub send_times: crate::tcp::SendTimes,
}

/// BBR's view of the path (draft-ietf-ccwg-bbr): what `ss -ti` prints as
/// `bbr:(bw:...,mrtt:...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BbrInfo {
    /// The state machine's state.
    pub mode: crate::tcp::congestion::BbrMode,
    /// BBR.bw, the bottleneck bandwidth estimate, in bytes per second.
    pub bw: u64,
    /// BBR.min_rtt, the round-trip propagation time estimate.
    pub min_rtt: Option<Duration>,
}

impl ConnInfo {
    /// The negotiated options and the congestion control as `ss -ti` lists
    /// them: `ts sack cubic wscale:S,R`, then what BBR measured, the pacing
    /// rate and, once the connection has sent, where its time went:
    /// `busy:860ms rwnd_limited:88ms(10.2%)`.
    pub fn ss_options(&self) -> String {
        [
            self.timestamps.then(|| "ts".to_string()),
            self.sack.then(|| "sack".to_string()),
            Some(self.congestion.to_string()),
            self.wscale.map(|(s, r)| format!("wscale:{s},{r}")),
            self.bbr.map(|b| {
                let mrtt = b.min_rtt.map_or(0.0, |d| d.as_secs_f64() * 1e3);
                format!(
                    "bbr:(bw:{},mrtt:{mrtt:.3},mode:{})",
                    bits_per_second(b.bw),
                    b.mode.name()
                )
            }),
            self.pacing_rate
                .map(|r| format!("pacing_rate {}", bits_per_second(r))),
            self.send_times.ss(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// A rate in bytes per second as `ss` prints one in bits: `12.5Mbps`.
fn bits_per_second(bytes: u64) -> String {
    let bits = bytes as f64 * 8.0;
    if bits >= 1e9 {
        format!("{:.1}Gbps", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.1}Mbps", bits / 1e6)
    } else if bits >= 1e3 {
        format!("{:.1}Kbps", bits / 1e3)
    } else {
        format!("{bits:.0}bps")
    }
}

/// A segment to send: wrap `packet` (a complete TCP segment, checksum
/// included, with room in front for the IP header) in an IPv4 packet from
/// `src` to `dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutSegment {
    /// IP source (the connection's family).
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// The TCP segment (it derefs to its bytes).
    pub packet: PacketBuf,
    /// The connection's IP header choices (TTL, TOS).
    pub ip: IpOptions,
}
