//! Built-in services, written on the socket API like any application:
//! TCP and UDP echo (RFC 862), TCP discard (RFC 863), the tutorial's UDP
//! time server, and an HTTP/1.1 server ([`http`]).

use std::io;
use std::thread::JoinHandle;

use chrono::format::{Item, StrftimeItems};
use log::{debug, info};

use std::io::{Read, Write};

use crate::{Stack, TcpListener, TcpStream, UdpSocket};

pub mod http;

/// The time format used when the client sends an empty request.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%d %X";

/// Longest format string the time server accepts.
const MAX_FORMAT_LEN: usize = 256;

/// Starts a UDP echo server (RFC 862) on `port`: every datagram is sent back.
pub fn udp_echo(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    let socket = UdpSocket::bind(stack, ("0.0.0.0", port))?;
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

/// Starts a TCP echo server (RFC 862) on `port`: one thread per
/// connection sends back every byte until the client closes.
pub fn tcp_echo(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    tcp_service(stack, port, "tcp echo", |mut s| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

/// Starts a TCP discard server (RFC 863) on `port`: reads and drops
/// everything until the client closes.
pub fn tcp_discard(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    tcp_service(stack, port, "tcp discard", |mut s| {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = s.read(&mut buf) {
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
/// pattern and closes. `scripts/bench.sh` measures the receive direction
/// with it. A malformed request closes the connection at once.
pub fn tcp_source(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    tcp_service(stack, port, "tcp source", |mut s| {
        let Some(count) = read_source_request(&mut s) else {
            return;
        };
        let chunk: Vec<u8> = (0..64 * 1024 + http::PATTERN_PERIOD as u64)
            .map(http::pattern_byte)
            .collect();
        let mut sent = 0u64;
        while sent < count {
            let start = (sent % http::PATTERN_PERIOD as u64) as usize;
            let n = (count - sent).min(64 * 1024) as usize;
            if s.write_all(&chunk[start..start + n]).is_err() {
                return;
            }
            sent += n as u64;
        }
    })
}

/// Reads the source service's request: a decimal count and a newline.
fn read_source_request(s: &mut TcpStream) -> Option<u64> {
    let mut line = Vec::with_capacity(MAX_SOURCE_REQUEST);
    let mut byte = [0u8; 1];
    while line.len() < MAX_SOURCE_REQUEST {
        match s.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => {
                return std::str::from_utf8(&line).ok()?.trim().parse().ok();
            }
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    None
}

/// Runs `serve` on a thread per accepted connection of a listener on `port`.
pub(crate) fn tcp_service(
    stack: &Stack,
    port: u16,
    name: &'static str,
    serve: impl Fn(TcpStream) + Send + Sync + Clone + 'static,
) -> io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(stack, ("0.0.0.0", port))?;
    info!("service: {name} on port {port}");
    std::thread::Builder::new()
        .name(format!("{}-{port}", name.replace(' ', "-")))
        .spawn(move || {
            while let Ok((stream, peer)) = listener.accept() {
                debug!("{name}: connection from {peer}");
                let serve = serve.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("{}-conn", name.replace(' ', "-")))
                    .spawn(move || serve(stream));
                if let Err(e) = spawned {
                    log::warn!("{name}: cannot start a connection thread: {e}");
                }
            }
        })
}

/// Starts the tutorial's UDP time server on `port`: the client sends a
/// strftime format (empty means `%Y-%m-%d %X`), the server answers the local
/// time in that format.
pub fn udp_time(stack: &Stack, port: u16) -> io::Result<JoinHandle<()>> {
    let socket = UdpSocket::bind(stack, ("0.0.0.0", port))?;
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
