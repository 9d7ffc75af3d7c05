//! A small HTTP/1.1 server (RFC 9110, RFC 9112), written on the public socket
//! API like any application, to show the stack at work in a browser or with
//! `curl`.
//!
//! Routes:
//!
//! - `GET /`: an HTML page about tunstack with its live TCP connection
//!   table (like `ss -tni`) and its counters.
//! - `GET /bytes/N`: `N` bytes (`application/octet-stream`) of a fixed
//!   pattern: byte `i` of the body is `(i % 251) as u8` ([`pattern_byte`]).
//!   251 is prime, so the pattern never lines up with segment or buffer
//!   sizes and a misplaced chunk shows up in a hash. The body is streamed in
//!   chunks; `N` may be up to [`MAX_BYTES`] (10 GiB).
//! - `GET /ladder/N`: the ladder diagram of recent connection `N` (an
//!   HTML page around `GET /ladder/N.svg`, the SVG itself, and the text
//!   drawing), drawn by [`crate::ladder`] from the stack's bounded record
//!   of its last connections' segment headers
//!   ([`crate::Config::recent_connections`]); `/` links to each.
//! - `HEAD` of any: the same headers, no body.
//!
//! Anything else is 404; methods other than GET and HEAD get 405 with
//! `Allow: GET, HEAD`; a malformed request, or a request head longer than
//! [`MAX_HEAD`], gets 400 and the connection is closed.
//!
//! Connections are persistent (RFC 9112 §9.3): HTTP/1.1 until either side
//! says `Connection: close`, HTTP/1.0 only when the client asks for
//! `keep-alive`. A connection idle for [`IDLE_TIMEOUT`] is closed, and a
//! client that stops reading for as long loses its connection, so dead
//! clients don't pin threads. Requests are parsed by hand from the bytes;
//! nothing a client sends can make the server panic.

use std::fmt::Write as _;
use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use log::debug;

use super::ServiceOptions;
use crate::ladder::recent::RecentConnection;
use crate::runtime::StackHandle;
use crate::{aio, Stack};

/// The largest `N` `GET /bytes/N` serves: 10 GiB.
pub const MAX_BYTES: u64 = 10 << 30;

/// The longest request head (request line and header fields) accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// How long a connection may sit without a request (or a stalled write)
/// before the server closes it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The modulus of the `/bytes/N` pattern.
pub(crate) const PATTERN_PERIOD: usize = 251;

/// Request bodies (unusual on GET) up to this size are read and dropped so
/// the connection can be reused; a larger one closes the connection.
const MAX_DISCARDED_BODY: u64 = 1 << 20;

/// How long a closing connection keeps reading (and dropping) what the
/// client still sends, so our close does not turn into a RST that destroys
/// the response before the client reads it (RFC 9112 §9.6).
const LINGER: Duration = Duration::from_secs(2);

/// Byte `i` of a `/bytes/N` body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % PATTERN_PERIOD as u64) as u8
}

/// What the HTTP service has counted since the process started.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Responses given up because the client stopped reading for
    /// [`IDLE_TIMEOUT`]: the connection was reset, so the client sees the
    /// body is cut short.
    pub stalled_aborts: AtomicU64,
}

/// The HTTP service's counters.
pub static COUNTERS: HttpCounters = HttpCounters {
    requests: AtomicU64::new(0),
    stalled_aborts: AtomicU64::new(0),
};

/// Starts the HTTP server on `port` with the default [`ServiceOptions`]: a
/// task per connection on the stack's own thread, no thread and (between
/// requests) no buffer per connection.
pub fn serve(stack: &Stack, port: u16) -> io::Result<()> {
    serve_with(stack, port, &ServiceOptions::default())
}

/// [`serve`] with `opts`: keepalive on its connections, and how long a
/// client may idle between requests or stall a response
/// ([`ServiceOptions::http_idle_timeout`]) before it is closed (or, with a
/// response under way, reset).
pub fn serve_with(stack: &Stack, port: u16, opts: &ServiceOptions) -> io::Result<()> {
    let handle = stack.handle().clone();
    let idle = opts.http_idle_timeout;
    super::tcp_service(stack, port, "http", opts, move |stream| {
        let handle = handle.clone();
        async move { serve_connection(stream, &handle, idle).await }
    })
}

/// Serves requests on one connection until it closes.
async fn serve_connection(stream: aio::TcpStream, stack: &StackHandle, idle: Duration) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut conn = Conn {
        stream,
        stack,
        buf: Vec::new(),
        idle,
    };
    loop {
        let head = match conn.read_head().await {
            Ok(Some(len)) => len,
            Ok(None) => return,
            Err(HeadError::TooLong) => {
                debug!("http {peer}: request head over {MAX_HEAD} bytes");
                let _ = conn.respond_error(400, "request head too long").await;
                conn.linger_close().await;
                return;
            }
            Err(HeadError::Io(e)) => {
                debug!("http {peer}: {e}");
                return;
            }
        };
        let parsed = parse_head(&conn.buf[..head]);
        conn.buf.drain(..head);
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                debug!("http {peer}: bad request: {}", e.reason);
                let _ = conn.respond_error(e.status, e.reason).await;
                conn.linger_close().await;
                return;
            }
        };
        debug!("http {peer}: {} {}", request.method, request.target);
        COUNTERS.requests.fetch_add(1, Ordering::Relaxed);
        let mut keep_alive = request.keep_alive;
        // Drop a request body, if any, so the next request starts in the right place.
        if request.content_length > 0
            && (request.content_length > MAX_DISCARDED_BODY
                || conn.discard(request.content_length).await.is_err())
        {
            keep_alive = false;
        }
        // No buffer is held while the connection waits for its next request.
        if conn.buf.is_empty() {
            conn.buf = Vec::new();
        }
        let head_only = request.method == "HEAD";
        match conn.respond(&request, keep_alive, head_only).await {
            Ok(()) if keep_alive => {}
            Ok(()) => {
                conn.linger_close().await;
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // The client stopped reading: give the response up with a
                // RST, so the client can tell the body is cut short (a FIN
                // would look like a complete one).
                COUNTERS.stalled_aborts.fetch_add(1, Ordering::Relaxed);
                debug!("http {peer}: client stalled for {idle:?}, response aborted");
                let _ = conn.stream.abort();
                return;
            }
            Err(_) => return,
        }
    }
}

/// A connection being served.
struct Conn<'a> {
    stream: aio::TcpStream,
    stack: &'a StackHandle,
    /// What was read and not yet parsed.
    buf: Vec<u8>,
    /// How long a request may take to arrive, and a client to take any of
    /// a response.
    idle: Duration,
}

/// Why a request head could not be read.
#[derive(Debug)]
enum HeadError {
    TooLong,
    Io(io::Error),
}

impl Conn<'_> {
    /// Reads a little more into the buffer (waiting at most
    /// [`IDLE_TIMEOUT`]): how much, 0 at end of stream.
    async fn read_more(&mut self) -> io::Result<usize> {
        let len = self.buf.len();
        self.buf.resize(len + 4096, 0);
        let r = aio::timeout(
            self.stack,
            self.idle,
            self.stream.read(&mut self.buf[len..]),
        )
        .await;
        let n = match r {
            Ok(Ok(n)) => n,
            Ok(Err(e)) | Err(e) => {
                self.buf.truncate(len);
                return Err(e);
            }
        };
        self.buf.truncate(len + n);
        Ok(n)
    }

    /// Reads until the buffer holds a whole request head; returns its
    /// length (the blank line included). `Ok(None)`: the client closed (or
    /// idled out) between requests.
    async fn read_head(&mut self) -> Result<Option<usize>, HeadError> {
        let mut scanned = 0;
        // Empty lines skipped before the request line count against the limit.
        let mut skipped = 0;
        loop {
            // RFC 9112 §2.2: ignore empty lines before the request line.
            let blank = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            if blank > 0 {
                self.buf.drain(..blank);
                skipped += blank;
                scanned = 0;
            }
            if let Some(end) = head_end(&self.buf, scanned) {
                return if skipped + end > MAX_HEAD {
                    Err(HeadError::TooLong)
                } else {
                    Ok(Some(end))
                };
            }
            if skipped + self.buf.len() > MAX_HEAD {
                return Err(HeadError::TooLong);
            }
            // A blank line may end in the last two bytes, so look there again.
            scanned = self.buf.len().saturating_sub(2);
            let was_empty = self.buf.is_empty();
            match self.read_more().await {
                Ok(0) if was_empty => return Ok(None),
                Ok(0) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) if is_timeout(&e) && was_empty => return Ok(None),
                Err(e) => return Err(HeadError::Io(e)),
            }
        }
    }

    /// Reads and drops `len` body bytes, the ones already in the buffer first.
    async fn discard(&mut self, len: u64) -> io::Result<()> {
        let from_buf = self
            .buf
            .len()
            .min(usize::try_from(len).unwrap_or(usize::MAX));
        self.buf.drain(..from_buf);
        let mut left = len - from_buf as u64;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let read = std::future::poll_fn(|cx| {
                self.stream
                    .poll_read_with(cx, |a, b| (a.len() + b.len()).min(want))
            });
            match aio::timeout(self.stack, self.idle, read).await?? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => left -= n as u64,
            }
        }
        Ok(())
    }

    /// Closes our side, then reads and drops whatever the client still
    /// sends for up to [`LINGER`], so unread data does not make the close a
    /// RST that destroys the response before the client reads it (RFC 9112
    /// §9.6).
    async fn linger_close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let drain = async {
            loop {
                let read = std::future::poll_fn(|cx| {
                    self.stream.poll_read_with(cx, |a, b| a.len() + b.len())
                });
                match read.await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let _ = aio::timeout(self.stack, LINGER, drain).await;
    }

    /// Writes all of `data`, giving up with `TimedOut` if the client takes
    /// no byte for [`IDLE_TIMEOUT`].
    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = aio::timeout(self.stack, self.idle, self.stream.write(data)).await??;
            data = &data[n..];
        }
        Ok(())
    }
}

/// Where the head in `buf` ends (just past its blank line), searching from
/// `from`. Lines end in CRLF or, leniently (RFC 9112 §2.2), a bare LF.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    /// The request target as sent.
    target: String,
    /// The path, from origin-form or absolute-form, without the query.
    path: String,
    /// Whether the connection persists after the response (version
    /// default and `Connection` header).
    keep_alive: bool,
    /// HTTP/1.0 (answered with an explicit `Connection: keep-alive`).
    http10: bool,
    content_length: u64,
}

/// A request that gets an error status (and the connection closed).
#[derive(Debug, PartialEq, Eq)]
struct BadRequest {
    status: u16,
    reason: &'static str,
}

fn bad(reason: &'static str) -> BadRequest {
    BadRequest {
        status: 400,
        reason,
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a request head: the request line and the header fields (RFC
/// 9112 §3, §5), up to and including the blank line.
fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| match l {
        [rest @ .., b'\r'] => rest,
        l => l,
    });
    let line = lines.next().ok_or(bad("empty request"))?;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("malformed method"));
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(bad("malformed request target"));
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major == b'1' {
                false
            } else {
                return Err(BadRequest {
                    status: 505,
                    reason: "only HTTP/1.x is supported",
                });
            }
        }
        _ => return Err(bad("malformed HTTP version")),
    };
    // Both are ASCII now.
    let method = String::from_utf8_lossy(method).into_owned();
    let target = String::from_utf8_lossy(target).into_owned();
    let path = request_path(&target).ok_or(bad("malformed request target"))?;

    let mut close = false;
    let mut keep_alive = false;
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // RFC 9112 §5.2: obsolete line folding.
            return Err(bad("folded header line"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(bad("header line without a colon"))?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            // Includes whitespace before the colon (RFC 9112 §5.1: MUST reject).
            return Err(bad("malformed header name"));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad("control character in a header value"));
        }
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // RFC 9112 §6.3: a list of identical values is allowed; anything else is fatal.
            for item in value.split(|&b| b == b',') {
                let n = parse_decimal(item.trim_ascii()).ok_or(bad("malformed Content-Length"))?;
                if content_length.is_some_and(|old| old != n) {
                    return Err(bad("conflicting Content-Length values"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // RFC 9112 §6.1: a transfer coding we do not implement.
            return Err(BadRequest {
                status: 501,
                reason: "request bodies with Transfer-Encoding are not supported",
            });
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request MUST carry exactly one Host.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(bad("an HTTP/1.1 request needs exactly one Host header"));
    }
    Ok(Request {
        method,
        target,
        path,
        keep_alive: !close && (!http10 || keep_alive),
        http10,
        content_length: content_length.unwrap_or(0),
    })
}

/// The path of an origin-form (`/a?b`) or absolute-form (`http://h/a`)
/// target, without the query.
fn request_path(target: &str) -> Option<String> {
    let path = if target.starts_with('/') {
        target
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return None;
        };
        rest.find('/').map_or("/", |i| &rest[i..])
    };
    Some(path.split(['?', '#']).next().unwrap_or("/").to_string())
}

/// A non-empty run of ASCII digits that fits a `u64`.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

impl Conn<'_> {
    /// Writes the response to `request`.
    async fn respond(
        &self,
        request: &Request,
        keep_alive: bool,
        head_only: bool,
    ) -> io::Result<()> {
        if request.method != "GET" && request.method != "HEAD" {
            let body = "405 Method Not Allowed: this server answers GET and HEAD\n";
            let mut head = Self::response_head(405, "text/plain; charset=utf-8", body.len() as u64);
            head.push_str("Allow: GET, HEAD\r\n");
            return self
                .send(head, body.as_bytes(), keep_alive, request, head_only)
                .await;
        }
        if request.path == "/" {
            let page = status_page(self.stack).await;
            let head = Self::response_head(200, "text/html; charset=utf-8", page.len() as u64);
            return self
                .send(head, page.as_bytes(), keep_alive, request, head_only)
                .await;
        }
        if let Some(id) = request.path.strip_prefix("/ladder/") {
            let (id, svg) = match id.strip_suffix(".svg") {
                Some(id) => (id, true),
                None => (id, false),
            };
            let found = match parse_decimal(id.as_bytes()) {
                Some(id) => ladder_page(self.stack, id, svg).await,
                None => None,
            };
            let (status, content_type, body) = match found {
                Some(page) if svg => (200, "image/svg+xml", page),
                Some(page) => (200, "text/html; charset=utf-8", page),
                None => (
                    404,
                    "text/plain; charset=utf-8",
                    format!(
                        "404 Not Found: {}: no such recent connection (the stack keeps the last few)\n",
                        request.path
                    ),
                ),
            };
            let head = Self::response_head(status, content_type, body.len() as u64);
            return self
                .send(head, body.as_bytes(), keep_alive, request, head_only)
                .await;
        }
        if let Some(n) = request.path.strip_prefix("/bytes/") {
            let Some(n) = parse_decimal(n.as_bytes()).filter(|&n| n <= MAX_BYTES) else {
                let body =
                    format!("400 Bad Request: N in /bytes/N must be a number up to {MAX_BYTES}\n");
                let head = Self::response_head(400, "text/plain; charset=utf-8", body.len() as u64);
                return self
                    .send(head, body.as_bytes(), keep_alive, request, head_only)
                    .await;
            };
            let head = Self::response_head(200, "application/octet-stream", n);
            self.send(head, &[], keep_alive, request, true).await?;
            return if head_only {
                Ok(())
            } else {
                self.stream_pattern(n).await
            };
        }
        let body = format!("404 Not Found: {}\n", request.path);
        let head = Self::response_head(404, "text/plain; charset=utf-8", body.len() as u64);
        self.send(head, body.as_bytes(), keep_alive, request, head_only)
            .await
    }

    /// The status line and the headers every response carries, up to the
    /// `Connection` header that [`send`] adds.
    fn response_head(status: u16, content_type: &str, len: u64) -> String {
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            501 => "Not Implemented",
            505 => "HTTP Version Not Supported",
            _ => "",
        };
        let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
        format!(
        "HTTP/1.1 {status} {reason}\r\nServer: tunstack/{}\r\nDate: {date}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n",
        env!("CARGO_PKG_VERSION")
    )
    }

    /// Finishes `head` with the `Connection` header and writes it, then `body`
    /// unless `head_only`.
    async fn send(
        &self,
        mut head: String,
        body: &[u8],
        keep_alive: bool,
        request: &Request,
        head_only: bool,
    ) -> io::Result<()> {
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        } else if request.http10 {
            head.push_str("Connection: keep-alive\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !head_only {
            out.extend_from_slice(body);
        }
        self.write_all(&out).await
    }

    /// An error response, closing the connection.
    async fn respond_error(&self, status: u16, reason: &str) -> io::Result<()> {
        let body = format!("{status}: {reason}\n");
        let mut head = Self::response_head(status, "text/plain; charset=utf-8", body.len() as u64);
        head.push_str("Connection: close\r\n\r\n");
        head.push_str(&body);
        self.write_all(head.as_bytes()).await
    }

    /// Writes `n` bytes of the pattern in place into the send buffer, giving
    /// up with `TimedOut` if the client takes nothing for [`IDLE_TIMEOUT`].
    async fn stream_pattern(&self, n: u64) -> io::Result<()> {
        let pattern = super::source_pattern();
        let period = PATTERN_PERIOD as u64;
        let mut sent = 0u64;
        while sent < n {
            let fill = std::future::poll_fn(|cx| {
                self.stream.poll_write_with(cx, |space| {
                    let mut filled = 0;
                    while filled < space.len() && sent < n {
                        let start = (sent % period) as usize;
                        let len = (space.len() - filled)
                            .min(pattern.len() - PATTERN_PERIOD)
                            .min(usize::try_from(n - sent).unwrap_or(usize::MAX));
                        space[filled..filled + len].copy_from_slice(&pattern[start..start + len]);
                        filled += len;
                        sent += len as u64;
                    }
                    filled
                })
            });
            aio::timeout(self.stack, self.idle, fill).await??;
        }
        Ok(())
    }
}

/// The `GET /` page: what tunstack is, its connections, its counters.
async fn status_page(stack: &StackHandle) -> String {
    let conns = stack.tcp_connections_async().await;
    let stats = stack.stats_async().await;
    let mut page = String::with_capacity(8192);
    let addr = escape(&stack.addr.to_string());
    let version = env!("CARGO_PKG_VERSION");
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tunstack at {addr}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:2px 8px;text-align:right}}\
         td:nth-child(-n+3),th{{text-align:left}}</style></head>\n<body>\n\
         <h1>tunstack {version} at {addr}</h1>\n\
         <p>tunstack is a userspace TCP/IP stack in Rust. It reads and writes raw IPv4 \
         packets on a Linux TUN device and implements IPv4 (with fragmentation and \
         reassembly), ICMP, UDP and TCP itself, in user space: this page was served over \
         its TCP, by an HTTP server written on its socket API.</p>\n\
         <p>Try <a href=\"/bytes/1048576\">/bytes/N</a> for N bytes of a test pattern \
         (byte i is i mod 251).</p>\n"
    );
    page.push_str("<h2>TCP connections</h2>\n");
    match conns {
        Ok(mut conns) => {
            conns.sort_by_key(|c| c.id);
            page.push_str(
                "<table>\n<tr><th>local</th><th>remote</th><th>state</th><th>send-q</th>\
                 <th>recv-q</th><th>srtt ms</th><th>rto ms</th><th>cwnd</th>\
                 <th>retransmits</th><th>rcvbuf</th><th>options</th></tr>\n",
            );
            for c in &conns {
                let srtt = c
                    .srtt
                    .map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
                let cells = [
                    c.local.to_string(),
                    c.remote.to_string(),
                    c.state.to_string(),
                    c.send_queue.to_string(),
                    c.recv_queue.to_string(),
                    srtt,
                    c.rto.as_millis().to_string(),
                    c.cwnd.to_string(),
                    c.retransmits.to_string(),
                    c.recv_buffer.to_string(),
                    c.ss_options(),
                ];
                page.push_str("<tr>");
                for cell in &cells {
                    let _ = write!(page, "<td>{}</td>", escape(cell));
                }
                page.push_str("</tr>\n");
            }
            page.push_str("</table>\n");
            if conns.is_empty() {
                page.push_str("<p>(none)</p>\n");
            }
        }
        Err(e) => {
            let _ = writeln!(page, "<p>unavailable: {}</p>", escape(&e.to_string()));
        }
    }
    recent_section(&mut page, stack.recent_connections_async().await);
    page.push_str("<h2>Counters</h2>\n<pre>");
    match stats {
        Ok(s) => page.push_str(&escape(&s.to_string())),
        Err(e) => page.push_str(&escape(&format!("unavailable: {e}"))),
    }
    page.push_str("</pre>\n</body></html>\n");
    page
}

/// The status page's list of recent connections, each linked to its ladder.
fn recent_section(page: &mut String, recent: io::Result<Vec<RecentConnection>>) {
    page.push_str("<h2>Recent connections: their ladders</h2>\n");
    let recent = match recent {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(page, "<p>unavailable: {}</p>", escape(&e.to_string()));
            return;
        }
    };
    if recent.is_empty() {
        page.push_str(
            "<p>(none recorded: the record of recent connections is off, \
             or no connection was seen yet)</p>\n",
        );
        return;
    }
    page.push_str(
        "<p>The ladder diagram of each of the last connections, drawn from the headers \
         of their segments (the first and last few of each), with each side's TCP \
         state.</p>\n<table>\n<tr><th>ladder</th><th>from</th><th>to</th>\
         <th>segments</th><th>final states</th></tr>\n",
    );
    for c in recent.iter().rev() {
        let Some((from, to)) = c.endpoints() else {
            continue;
        };
        let ladder = c.connection().ladder();
        let states = format!("{} / {}", ladder.last[0].name(), ladder.last[1].name());
        let _ = writeln!(
            page,
            "<tr><td><a href=\"/ladder/{id}\">#{id}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            escape(&from.to_string()),
            escape(&to.to_string()),
            c.total(),
            escape(&states),
            id = c.id,
        );
    }
    page.push_str("</table>\n");
}

/// The ladder of recent connection `id`: its SVG, or an HTML page with
/// the SVG and the text drawing; `None` if it is not (or no longer)
/// recorded.
async fn ladder_page(stack: &StackHandle, id: u64, svg: bool) -> Option<String> {
    let recent = stack.recent_connections_async().await.ok()?;
    let c = recent.into_iter().find(|c| c.id == id)?;
    let ladder = c.connection().ladder();
    if svg {
        return Some(crate::ladder::svg::render(&ladder));
    }
    let (from, to) = c.endpoints()?;
    let title = escape(&format!("connection #{id}: {from} -> {to}"));
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em}}</style></head>\n<body>\n\
         <p><a href=\"/\">back to the status page</a></p>\n<h1>{title}</h1>\n"
    );
    if c.skipped > 0 {
        let _ = writeln!(
            page,
            "<p>{} segments in all; the {} between the first {} and the last {} were not \
             kept (the frame numbers count them).</p>",
            c.total(),
            c.skipped,
            c.head.len(),
            c.tail.len()
        );
    }
    let _ = write!(
        page,
        "<p><img src=\"/ladder/{id}.svg\" alt=\"ladder diagram of {title}\"></p>\n\
         <h2>As text</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(&crate::ladder::text::render(&ladder))
    );
    Some(page)
}

/// Escapes text for HTML element content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
