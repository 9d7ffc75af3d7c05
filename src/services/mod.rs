//! Built-in services, written on the socket API like any application:
//! TCP and UDP echo (RFC 862), TCP discard (RFC 863), the tutorial's UDP
//! time server, and an HTTP/1.1 server ([`http`]).

use std::future::{poll_fn, Future};
use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::format::{Item, StrftimeItems};
use log::{debug, info};

use crate::tcp::KeepaliveConfig;
use crate::{aio, Stack, TcpListener, UdpSocket};

pub mod http;

/// The time format used when the client sends an empty request.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %X";

/// Longest format string the time server accepts.
const MAX_FORMAT_LEN: usize = 256;

/// The address the services bind: `[::]` (both families, dual-stack) on a
/// stack with IPv6, else `0.0.0.0`.
fn wildcard(stack: &Stack) -> std::net::IpAddr {
    if stack.addr6().is_some() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    }
}

/// Starts a UDP echo server (RFC 862) on `port`: every datagram is sent back.
pub fn udp_echo(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    let socket = UdpSocket::bind(stack, (wildcard(stack), port))?;
    info!("service: udp echo on port {port}");
    std::thread::Builder::new()
        .name(format!("udp-echo-{port}"))
        .spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                debug!("udp echo: {n} bytes from {from}");
                if socket.send_to(&buf[..n], from).is_err() {
                    break;
                }
            }
        })
}

/// How the built-in TCP services treat their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOptions {
    /// Keepalive on every connection a service accepts, so a peer that
    /// vanished (its FIN or RST lost) is found and its connection dropped.
    /// Default: probe after 60 s idle, every 10 s, give up after 6: a dead
    /// peer is reaped within two minutes. `None`: off.
    pub keepalive: Option<KeepaliveConfig>,
    /// The user timeout (RFC 5482) on every connection a service accepts:
    /// a peer that vanished while data was in flight (so keepalive, which
    /// waits for idle, never probes) is given up after this long instead of
    /// after R2's fifteen retransmissions. Default 120 s. `None`: off.
    pub user_timeout: Option<Duration>,
    /// HTTP: how long a connection may idle between requests, and a client
    /// take none of a response, before it is closed (a response under way
    /// is reset, so the client sees it cut short). Default 30 s.
    pub http_idle_timeout: Duration,
}

impl Default for ServiceOptions {
    fn default() -> ServiceOptions {
        ServiceOptions {
            keepalive: Some(KeepaliveConfig {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(10),
                count: 6,
            }),
            user_timeout: Some(Duration::from_secs(120)),
            http_idle_timeout: http::IDLE_TIMEOUT,
        }
    }
}

/// Starts a TCP echo server (RFC 862) on `port`: every byte is sent back
/// until the client closes. Runs on the stack's own thread, one task per
/// connection (no thread, and no buffer while a connection is idle).
pub fn tcp_echo(stack: &Stack, port: u16) -> io::Result<()> {
    tcp_echo_with(stack, port, &ServiceOptions::default())
}

/// [`tcp_echo`] with `opts`.
pub fn tcp_echo_with(stack: &Stack, port: u16, opts: &ServiceOptions) -> io::Result<()> {
    tcp_service(stack, port, "tcp echo", opts, |s| async move {
        while let Ok(n) = poll_fn(|cx| s.poll_echo(cx)).await {
            if n == 0 {
                break;
            }
        }
    })
}

/// Starts a TCP discard server (RFC 863) on `port`: reads and drops
/// everything until the client closes (in place, without copying).
pub fn tcp_discard(stack: &Stack, port: u16) -> io::Result<()> {
    tcp_discard_with(stack, port, &ServiceOptions::default())
}

/// [`tcp_discard`] with `opts`.
pub fn tcp_discard_with(stack: &Stack, port: u16, opts: &ServiceOptions) -> io::Result<()> {
    tcp_service(stack, port, "tcp discard", opts, |s| async move {
        while let Ok(n) = poll_fn(|cx| s.poll_read_with(cx, |a, b| a.len() + b.len())).await {
            if n == 0 {
                break;
            }
        }
    })
}

/// Longest request line the source service accepts (a decimal count and a newline).
const MAX_SOURCE_REQUEST: usize = 32;

/// Starts a TCP bulk source on `port`: the client sends a byte count in
/// ASCII decimal ended by a newline (`echo 1000000 | nc 10.0.0.2 5001`);
/// the server answers with that many bytes of the [`http::pattern_byte`]
/// pattern, written in place into the send buffer, and closes.
/// `scripts/bench.sh` measures the receive direction with it. A malformed
/// request closes the connection at once.
pub fn tcp_source(stack: &Stack, port: u16) -> io::Result<()> {
    tcp_source_with(stack, port, &ServiceOptions::default())
}

/// [`tcp_source`] with `opts`.
pub fn tcp_source_with(stack: &Stack, port: u16, opts: &ServiceOptions) -> io::Result<()> {
    tcp_service(stack, port, "tcp source", opts, |s| async move {
        let Some(count) = read_source_request(&s).await else {
            return;
        };
        let pattern = source_pattern();
        let period = http::PATTERN_PERIOD as u64;
        let mut sent = 0u64;
        while sent < count {
            let wrote = poll_fn(|cx| {
                s.poll_write_with(cx, |space| {
                    let mut filled = 0;
                    while filled < space.len() && sent < count {
                        let start = (sent % period) as usize;
                        let n = (space.len() - filled)
                            .min(SOURCE_CHUNK)
                            .min((count - sent) as usize);
                        space[filled..filled + n].copy_from_slice(&pattern[start..start + n]);
                        filled += n;
                        sent += n as u64;
                    }
                    filled
                })
            })
            .await;
            if wrote.is_err() {
                return;
            }
        }
    })
}

/// Largest piece the source service copies from its pattern at once.
const SOURCE_CHUNK: usize = 64 * 1024;

/// The source pattern, long enough to copy [`SOURCE_CHUNK`] bytes from any
/// phase of it.
pub(crate) fn source_pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..(SOURCE_CHUNK + http::PATTERN_PERIOD) as u64)
            .map(http::pattern_byte)
            .collect()
    })
}

/// Reads the source service's request: a decimal count and a newline.
async fn read_source_request(s: &aio::TcpStream) -> Option<u64> {
    let mut line = [0u8; MAX_SOURCE_REQUEST];
    let mut len = 0;
    loop {
        let n = s.read(&mut line[len..]).await.ok()?;
        if n == 0 {
            return None;
        }
        len += n;
        if let Some(end) = line[..len].iter().position(|&b| b == b'\n') {
            return std::str::from_utf8(&line[..end]).ok()?.trim().parse().ok();
        }
        if len == line.len() {
            return None;
        }
    }
}

/// Runs `serve` as a task per accepted connection of a listener on `port`,
/// all on the stack's own thread.
pub(crate) fn tcp_service<F, Fut>(
    stack: &Stack,
    port: u16,
    name: &'static str,
    opts: &ServiceOptions,
    serve: F,
) -> io::Result<()>
where
    F: Fn(aio::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = aio::TcpListener::from(TcpListener::bind(stack, (wildcard(stack), port))?);
    info!("service: {name} on port {port}");
    let (keepalive, user_timeout) = (opts.keepalive, opts.user_timeout);
    stack.spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            debug!("{name}: connection from {peer}");
            if keepalive.is_some() {
                let _ = stream.set_keepalive(keepalive);
            }
            if user_timeout.is_some() {
                let _ = stream.set_tcp_user_timeout(user_timeout);
            }
            // The task runs on the shard that owns the connection.
            let owner = stream.stack().clone();
            if owner.spawn(serve(stream)).is_err() {
                break;
            }
        }
    })
}

/// Starts the tutorial's UDP time server on `port`: the client sends a
/// strftime format (empty means `%Y-%m-%d %X`), the server answers the local
/// time in that format.
pub fn udp_time(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    let socket = UdpSocket::bind(stack, (wildcard(stack), port))?;
    info!("service: udp time on port {port}");
    std::thread::Builder::new()
        .name(format!("udp-time-{port}"))
        .spawn(move || {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let request = String::from_utf8_lossy(&buf[..n]);
                let reply = format_time(&request, chrono::Local::now());
                debug!("udp time: {:?} from {from} -> {reply:?}", request);
                if socket.send_to(reply.as_bytes(), from).is_err() {
                    break;
                }
            }
        })
}

/// Formats `now` as the request asks. Surrounding whitespace (a newline from
/// `nc`) is ignored; an empty request means [`DEFAULT_TIME_FORMAT`]; a format
/// chrono cannot render yields an error message, never a panic.
pub fn format_time<Tz>(request: &str, now: chrono::DateTime<Tz>) -> String
where
    Tz: chrono::TimeZone,
    Tz::Offset: std::fmt::Display,
{
    let fmt = request.trim();
    let fmt = if fmt.is_empty() {
        DEFAULT_TIME_FORMAT
    } else {
        fmt
    };
    if fmt.len() > MAX_FORMAT_LEN {
        return format!("error: format longer than {MAX_FORMAT_LEN} bytes");
    }
    let items: Vec<Item<'_>> = StrftimeItems::new(fmt).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return format!("error: invalid time format {fmt:?}");
    }
    let mut out = String::new();
    use std::fmt::Write;
    match write!(out, "{}", now.format_with_items(items.into_iter())) {
        Ok(()) => out,
        Err(_) => format!("error: cannot format the time as {fmt:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 13, 5, 9)
            .unwrap()
    }

    #[test]
    fn empty_request_uses_the_tutorials_default() {
        assert_eq!(format_time("", t()), "2026-11-24 13:05:09");
        assert_eq!(format_time("\n", t()), "2026-11-24 13:05:09");
    }

    #[test]
    fn formats_as_asked() {
        assert_eq!(format_time("%H:%M", t()), "13:05");
        assert_eq!(format_time("%Y/%m/%d\n", t()), "2026/11/24");
        assert_eq!(format_time("year %Y", t()), "year 2026");
    }

    #[test]
    fn bad_formats_get_an_error_not_a_panic() {
        assert!(format_time("%Q %", t()).starts_with("error:"));
        assert!(format_time(&"%Y".repeat(200), t()).starts_with("error:"));
    }
}
