//! `TcpListener` and `TcpStream`, as with `std::net`.
//!
//! A stream reads and writes its connection's shared [`Stream`](crate::tcp::stream::Stream) directly:
//! `write` copies into the very send buffer the TCP core sends from, `read`
//! copies out of the receive buffer the core placed the data in, both in
//! bulk under a short lock. A blocked call sleeps on the stream's wait
//! slot; the core wakes it only when it is asleep. The runtime is poked
//! (a command, and a wake-up only if it sleeps) only when the core asked:
//! data queued while the core had nothing left to send, or reads that
//! opened the receive window enough to announce.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::handle::{
    tcp_error, try_connected, try_peek, try_read, try_write, try_write_urgent, ListenerHandle,
    Pokes, StreamHandle,
};
use super::resolve;
use crate::runtime::Command;
use crate::tcp::stream::urgent_remaining;
use crate::tcp::{ConnInfo, KeepaliveConfig, TcpOption};
use crate::Stack;

/// The default listen backlog: Linux's `somaxconn` (4096), which caps what
/// `std::net::TcpListener` asks for.
pub const DEFAULT_BACKLOG: usize = 4096;

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, format!("TCP {what} timed out"))
}

/// A TCP socket listening for connections, like `std::net::TcpListener`.
///
/// ```
/// use std::io::{Read, Write};
/// use tunstack::device::memory;
/// use tunstack::{Config, Stack, TcpListener, TcpStream};
///
/// let (a, b) = memory::link(1500);
/// let server = Stack::with_device(Config::default(), a)?; // 10.0.0.2
/// let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
///
/// let listener = TcpListener::bind(&server, "0.0.0.0:7")?;
/// let mut c = TcpStream::connect(&client, "10.0.0.2:7")?;
/// let (mut s, peer) = listener.accept()?;
/// assert_eq!(peer.ip(), std::net::Ipv4Addr::new(10, 0, 0, 1));
/// c.write_all(b"ping")?;
/// let mut buf = [0u8; 4];
/// s.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"ping");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Over IPv6, with a dual-stack listener on `[::]` (IPv4 peers then show
/// IPv4-mapped, as on Linux):
///
/// ```
/// use tunstack::device::memory;
/// use tunstack::{Config, Stack, TcpListener, TcpStream};
///
/// let (a, b) = memory::link(1500);
/// let server = Stack::with_device(
///     Config { addr6: Some(("fd00::2".parse().unwrap(), 64)), ..Config::default() },
///     a,
/// )?;
/// let client = Stack::with_device(
///     Config {
///         addr: [10, 0, 0, 1].into(),
///         addr6: Some(("fd00::1".parse().unwrap(), 64)),
///         ..Config::default()
///     },
///     b,
/// )?;
/// let listener = TcpListener::bind(&server, "[::]:7")?;
/// let _c6 = TcpStream::connect(&client, "[fd00::2]:7")?;
/// assert_eq!(listener.accept()?.1.to_string(), format!("[fd00::1]:{}", _c6.local_addr()?.port()));
/// let _c4 = TcpStream::connect(&client, "10.0.0.2:7")?;
/// assert_eq!(listener.accept()?.1.ip().to_string(), "::ffff:10.0.0.1");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpListener {
    pub(crate) handle: ListenerHandle,
    accept_timeout: Mutex<Option<Duration>>,
    nonblocking: AtomicBool,
    default_ttl: u8,
    ttl: AtomicU8,
    tos: AtomicU8,
    only_v6: AtomicBool,
}

impl TcpListener {
    /// Listens on `addr` (`0.0.0.0`, `[::]`, or one of the stack's
    /// addresses) with the
    /// default backlog of 4096 (`somaxconn`). A port whose old connections linger in
    /// TIME-WAIT can be bound again, as with `SO_REUSEADDR`.
    pub fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// Like [`TcpListener::bind`], with `backlog` connections allowed to wait
    /// for `accept` (and as many half-open ones in the SYN queue).
    pub fn bind_with_backlog<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let local = resolve(addr)?;
        if !stack.handle().may_bind(local.ip()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("binding TCP {local}: not this stack's address"),
            ));
        }
        let stack_ttl = stack.default_ttl();
        Ok(TcpListener {
            handle: ListenerHandle::bind(stack.handle(), local, backlog)?,
            accept_timeout: Mutex::new(None),
            nonblocking: AtomicBool::new(false),
            default_ttl: stack_ttl,
            ttl: AtomicU8::new(0),
            tos: AtomicU8::new(0),
            only_v6: AtomicBool::new(false),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.local)
    }

    /// Waits for a connection: as long as it takes, up to the accept
    /// timeout ([`TcpListener::set_accept_timeout`]; `WouldBlock` then, as a
    /// read timeout), or not at all in non-blocking mode (`WouldBlock`).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let deadline = deadline(&self.accept_timeout);
        loop {
            if let Some(r) = self.handle.try_accept(None) {
                return r.map(|(h, peer)| {
                    let s = TcpStream::from_handle(h);
                    s.inherit(self);
                    (s, peer)
                });
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let q = self.handle.shared.lock();
            if q.ready.is_empty() && !q.gone {
                let changed = &self.handle.shared.changed;
                match deadline {
                    None => drop(changed.wait(q).unwrap_or_else(PoisonError::into_inner)),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(timed_out("accept"));
                        }
                        drop(
                            changed
                                .wait_timeout(q, left)
                                .unwrap_or_else(PoisonError::into_inner),
                        );
                    }
                }
            }
        }
    }

    /// Makes `accept` give up with `WouldBlock` after `timeout` (`None`:
    /// wait forever). Zero is refused, as for read timeouts in `std`.
    pub fn set_accept_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.accept_timeout, timeout)
    }

    /// The accept timeout.
    pub fn accept_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .accept_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Non-blocking mode: `accept` fails with `WouldBlock` when no
    /// connection is waiting.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }

    fn set_listener_option(&self, opt: TcpOption) -> io::Result<()> {
        self.handle.set_option(opt)
    }

    /// `IP_TTL` of the connections this listener accepts from now on
    /// (their SYN-ACKs included), 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let t = check_ttl(ttl)?;
        self.set_listener_option(TcpOption::Ttl(Some(t)))?;
        self.ttl.store(t, Ordering::Relaxed);
        Ok(())
    }

    /// The TTL accepted connections get.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(match self.ttl.load(Ordering::Relaxed) {
            0 => u32::from(self.default_ttl),
            t => u32::from(t),
        })
    }

    /// `IPV6_V6ONLY`: a listener bound to `[::]` takes IPv4 connections
    /// too (their addresses IPv4-mapped, `::ffff:10.0.0.1`), unless this is
    /// set; from then on only IPv6 ones. Linux takes the option only
    /// before `bind`; here it works on a bound listener, for the
    /// connections that arrive after it. `InvalidInput` on a listener not
    /// bound to IPv6.
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        if !self.handle.local.is_ipv6() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "IPV6_V6ONLY is for a listener bound to an IPv6 address",
            ));
        }
        self.set_listener_option(TcpOption::OnlyV6(only_v6))?;
        self.only_v6.store(only_v6, Ordering::Relaxed);
        Ok(())
    }

    /// Whether the listener takes IPv6 connections only
    /// ([`TcpListener::set_only_v6`]).
    pub fn only_v6(&self) -> io::Result<bool> {
        Ok(self.only_v6.load(Ordering::Relaxed))
    }

    /// `IP_TOS` of the connections this listener accepts from now on.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        let t = check_tos(tos)?;
        self.set_listener_option(TcpOption::Tos(t))?;
        self.tos.store(t, Ordering::Relaxed);
        Ok(())
    }

    /// The TOS byte accepted connections get.
    pub fn tos(&self) -> io::Result<u32> {
        Ok(u32::from(self.tos.load(Ordering::Relaxed)))
    }

    /// `SO_RCVBUF` of the connections this listener accepts from now on
    /// (their first window, and its scale, follow it).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.set_listener_option(TcpOption::RecvBuffer(size))
    }

    /// `SO_SNDBUF` of the connections this listener accepts from now on.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.set_listener_option(TcpOption::SendBuffer(size))
    }

    /// An endless iterator over accepted connections, as in `std`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.handle.local)
            .finish()
    }
}

/// Iterator returned by [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;
    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A TCP connection, like `std::net::TcpStream`.
///
/// `read` returns 0 at end of stream; `write` blocks while the send buffer
/// is full. Errors carry the `io::ErrorKind` a `std` user expects:
/// `ConnectionRefused`, `ConnectionReset`, `TimedOut`, `BrokenPipe`. Read and
/// write timeouts fail with `WouldBlock`, as `std` does on Linux. Dropping
/// the stream closes it gracefully; the close finishes in the background
/// (with RST instead if received data was left unread, as in Linux).
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::Shutdown;
/// use tunstack::device::memory;
/// use tunstack::{Config, Stack, TcpListener, TcpStream};
///
/// let (a, b) = memory::link(1500);
/// let server = Stack::with_device(Config::default(), a)?; // 10.0.0.2
/// let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
/// let listener = TcpListener::bind(&server, "0.0.0.0:80")?;
///
/// let mut stream = TcpStream::connect(&client, "10.0.0.2:80")?;
/// stream.set_nodelay(true)?;
/// stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
/// stream.shutdown(Shutdown::Write)?; // FIN after the request
///
/// let (mut s, _) = listener.accept()?;
/// let mut request = String::new();
/// s.read_to_string(&mut request)?; // to end of stream
/// assert!(request.starts_with("GET /"));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TcpStream {
    pub(crate) handle: StreamHandle,
    read_timeout: Mutex<Option<Duration>>,
    write_timeout: Mutex<Option<Duration>>,
}

impl TcpStream {
    pub(crate) fn from_handle(handle: StreamHandle) -> TcpStream {
        TcpStream {
            handle,
            read_timeout: Mutex::new(None),
            write_timeout: Mutex::new(None),
        }
    }

    /// Connects to `addr`, waiting as long as the SYN retries last (about
    /// two minutes with the Linux defaults).
    pub fn connect<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        let remote = resolve(addr)?;
        TcpStream::open(stack, remote, None)
    }

    /// Connects to `addr`, giving up with `TimedOut` after `timeout`.
    pub fn connect_timeout(
        stack: &Stack,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let remote = resolve(addr)?;
        TcpStream::open(stack, remote, Some(Instant::now() + timeout))
    }

    fn open(stack: &Stack, remote: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let stack = stack.handle().for_new_connection();
        let (id, local, shared) = stack
            .call(|reply| Command::TcpConnect { remote, reply })?
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {remote}: {e}")))?;
        let handle = StreamHandle::new(stack, id, local, remote, shared);
        let mut st = handle.stream.lock();
        loop {
            if let Some(r) = try_connected(&st) {
                drop(st);
                return match r {
                    Ok(()) => Ok(TcpStream::from_handle(handle)),
                    Err(e) => Err(io::Error::new(
                        e.kind(),
                        format!("connecting to {remote}: {e}"),
                    )),
                };
            }
            let (g, expired) = handle.stream.wait(st, false, deadline);
            st = g;
            if expired {
                drop(st);
                let _ = handle.abort();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {remote}: timed out"),
                ));
            }
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.peer)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.local)
    }

    /// Shuts down the read half (further data is discarded and `read`
    /// returns 0), the write half (a FIN follows the data already written),
    /// or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.handle.shutdown(
            matches!(how, Shutdown::Read | Shutdown::Both),
            matches!(how, Shutdown::Write | Shutdown::Both),
        )
    }

    /// `TCP_NODELAY`: `true` sends small segments at once instead of
    /// coalescing them (Nagle's algorithm is on by default).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let id = self.handle.id;
        self.handle
            .stack
            .call(|reply| Command::TcpSetNodelay { id, nodelay, reply })?
            .map_err(tcp_error)
    }

    /// Turns keepalive on (`SO_KEEPALIVE` with `TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL`, `TCP_KEEPCNT`): after `idle` without traffic, probe
    /// every `interval`; after `count` unanswered probes the connection is
    /// dropped and reads and writes fail with `TimedOut`.
    pub fn set_keepalive(&self, idle: Duration, interval: Duration, count: u32) -> io::Result<()> {
        if idle.is_zero() || interval.is_zero() || count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "keepalive idle, interval and count must be nonzero",
            ));
        }
        self.keepalive(Some(KeepaliveConfig {
            idle,
            interval,
            count,
        }))
    }

    /// Turns keepalive off (the default, RFC 9293 MUST-24).
    pub fn clear_keepalive(&self) -> io::Result<()> {
        self.keepalive(None)
    }

    fn keepalive(&self, keepalive: Option<KeepaliveConfig>) -> io::Result<()> {
        let id = self.handle.id;
        self.handle
            .stack
            .call(|reply| Command::TcpSetKeepalive {
                id,
                keepalive,
                reply,
            })?
            .map_err(tcp_error)
    }

    /// A snapshot of the connection: state, queues, RTT, retransmits.
    pub fn info(&self) -> io::Result<ConnInfo> {
        let id = self.handle.id;
        self.handle
            .stack
            .call(|reply| Command::TcpInfo { id, reply })?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "the connection is gone"))
    }

    /// Sets the read timeout (`None`: block forever). Zero is refused, as in `std`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.read_timeout, timeout)
    }

    /// Sets the write timeout (`None`: block forever). Zero is refused, as in `std`.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        set_timeout(&self.write_timeout, timeout)
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .read_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(*self
            .write_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// Resets the connection at once (RST), discarding anything unsent.
    pub fn abort(self) -> io::Result<()> {
        self.handle.abort()
    }

    /// A connection taken from `listener` remembers the options the
    /// listener passed it.
    fn inherit(&self, listener: &TcpListener) {
        let (ttl, tos) = (
            listener.ttl.load(Ordering::Relaxed),
            listener.tos.load(Ordering::Relaxed),
        );
        self.handle.update_options(|o| {
            o.ttl = (ttl != 0).then_some(ttl);
            o.tos = tos;
        });
    }

    /// `IP_TTL` of the segments this connection sends, 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let t = check_ttl(ttl)?;
        self.handle.set_option(TcpOption::Ttl(Some(t)))?;
        self.handle.update_options(|o| o.ttl = Some(t));
        Ok(())
    }

    /// The TTL of the segments this connection sends.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(u32::from(
            self.handle
                .local_options()
                .ttl
                .unwrap_or(self.handle.stack.default_ttl),
        ))
    }

    /// `IP_TOS`: the type-of-service byte (DSCP and ECN bits) of the
    /// segments this connection sends (RFC 9293 MUST-48: the application
    /// may set the Diffserv field), as `socket2`'s `set_tos`.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        let t = check_tos(tos)?;
        self.handle.set_option(TcpOption::Tos(t))?;
        self.handle.update_options(|o| o.tos = t);
        Ok(())
    }

    /// The type-of-service byte of the segments this connection sends.
    pub fn tos(&self) -> io::Result<u32> {
        Ok(u32::from(self.handle.local_options().tos))
    }

    /// `SO_RCVBUF`: the receive buffer, which bounds the window: an
    /// application that stops reading sees the window close to zero. A
    /// window already offered is never taken back (RFC 9293 §3.8.6.2.2);
    /// the size changes only while nothing is waiting to be read.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.handle.set_option(TcpOption::RecvBuffer(size))
    }

    /// The receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(self.handle.stream.lock().recv.capacity())
    }

    /// `SO_SNDBUF`: the send buffer, how much `write` takes before it waits
    /// (never below what is already queued).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.handle.set_option(TcpOption::SendBuffer(size))
    }

    /// The send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(self.handle.stream.lock().send.capacity())
    }

    /// `TCP_USER_TIMEOUT` (RFC 5482; RFC 9293 MUST-20/21: R2 per
    /// connection): how long written data may stay unacknowledged before
    /// the connection is dropped and calls fail with `TimedOut`. `None`:
    /// the retransmission count decides (the stack's default).
    pub fn set_tcp_user_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = timeout.filter(|t| !t.is_zero());
        self.handle.set_option(TcpOption::UserTimeout(timeout))?;
        self.handle.update_options(|o| o.user_timeout = timeout);
        Ok(())
    }

    /// The user timeout.
    pub fn tcp_user_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.handle.local_options().user_timeout)
    }

    /// `TCP_CONGESTION`: the congestion control algorithm of this
    /// connection, by its Linux name (`"cubic"`, `"reno"`, `"bbr"`: BBR
    /// version 3, `"bbr1"`: version 1, the kernel's `bbr`; both BBRs
    /// pace); an unknown name fails with `InvalidInput`. The window
    /// reached so far is kept.
    ///
    /// ```
    /// use tunstack::device::memory;
    /// use tunstack::{Config, Stack, TcpListener, TcpStream};
    ///
    /// let (a, b) = memory::link(1500);
    /// let server = Stack::with_device(Config::default(), a)?; // 10.0.0.2
    /// let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
    /// let _listener = TcpListener::bind(&server, "0.0.0.0:7")?;
    /// let stream = TcpStream::connect(&client, "10.0.0.2:7")?;
    /// assert_eq!(stream.congestion_control()?, "cubic");
    /// stream.set_congestion_control("reno")?;
    /// assert_eq!(stream.congestion_control()?, "reno");
    /// stream.set_congestion_control("bbr")?;
    /// assert_eq!(stream.congestion_control()?, "bbr");
    /// stream.set_congestion_control("bbr1")?;
    /// assert_eq!(stream.congestion_control()?, "bbr1");
    /// assert!(stream.set_congestion_control("vegas").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_congestion_control(&self, name: &str) -> io::Result<()> {
        let algorithm: crate::tcp::congestion::Algorithm = name
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.handle.set_option(TcpOption::Congestion(algorithm))
    }

    /// The congestion control algorithm's name.
    pub fn congestion_control(&self) -> io::Result<&'static str> {
        Ok(self.info()?.congestion.name())
    }

    /// `SO_LINGER`: with `Some(Duration::ZERO)`, dropping the stream resets
    /// the connection (RST) instead of closing it; with `Some(t)`, dropping
    /// waits up to `t` for what was written to arrive (the close then goes
    /// on in the background); `None` (the default): the close happens in the
    /// background at once.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.handle.update_options(|o| o.linger = linger);
        Ok(())
    }

    /// The linger setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        Ok(self.handle.local_options().linger)
    }

    /// Non-blocking mode: `read` and `write` fail with `WouldBlock` instead
    /// of waiting.
    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.handle.update_options(|o| o.nonblocking = on);
        Ok(())
    }

    /// `SO_ERROR`: the error that ended the connection, once (as with a
    /// read that fails, which it then no longer does).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self.handle.take_error())
    }

    /// Reads without taking: the next read returns the same bytes.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(buf, true)
    }

    fn read_bytes(&self, out: &mut [u8]) -> io::Result<usize> {
        self.read_with(out, false)
    }

    fn read_with(&self, out: &mut [u8], peek: bool) -> io::Result<usize> {
        let deadline = deadline(&self.read_timeout);
        let nonblocking = self.handle.local_options().nonblocking;
        let stream = &self.handle.stream;
        let mut pokes = Pokes::default();
        let mut st = stream.lock();
        loop {
            let attempt = if peek {
                try_peek(&mut st, out)
            } else {
                try_read(&mut st, out, &mut pokes)
            };
            if let Some(r) = attempt {
                drop(st);
                // The data is read either way; a stopped stack shows at
                // the next call.
                let _ = self.handle.poke(pokes);
                return r;
            }
            if nonblocking {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let (g, expired) = stream.wait(st, true, deadline);
            st = g;
            if expired {
                return Err(timed_out("read"));
            }
        }
    }

    /// Sends `data` as urgent data (`send` with `MSG_OOB`; RFC 9293 §3.8.5):
    /// it goes in line, in stream order, and the segments carrying it have
    /// URG set with the pointer past its last octet. Returns how much was
    /// queued, as `write`.
    pub fn send_urgent(&self, data: &[u8]) -> io::Result<usize> {
        self.write_with(data, true)
    }

    /// Octets of urgent data the peer sent that have not been read yet
    /// (MUST-33). Urgent data is read in line: the next this many octets
    /// `read` returns are the urgent ones.
    pub fn urgent_remaining(&self) -> io::Result<usize> {
        Ok(urgent_remaining(&self.handle.stream.lock()))
    }

    fn write_bytes(&self, data: &[u8]) -> io::Result<usize> {
        self.write_with(data, false)
    }

    fn write_with(&self, data: &[u8], urgent: bool) -> io::Result<usize> {
        let deadline = deadline(&self.write_timeout);
        let nonblocking = self.handle.local_options().nonblocking;
        let stream = &self.handle.stream;
        let mut pokes = Pokes::default();
        let mut st = stream.lock();
        loop {
            let attempt = if urgent {
                try_write_urgent(&mut st, data, &mut pokes)
            } else {
                try_write(&mut st, data, &mut pokes)
            };
            if let Some(r) = attempt {
                drop(st);
                self.handle.poke(pokes)?;
                return r;
            }
            if nonblocking {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let (g, expired) = stream.wait(st, false, deadline);
            st = g;
            if expired {
                return Err(timed_out("write"));
            }
        }
    }
}

fn set_timeout(slot: &Mutex<Option<Duration>>, timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = timeout;
    Ok(())
}

fn check_ttl(ttl: u32) -> io::Result<u8> {
    // As Linux: 1..=255 (RFC 1122 §3.2.1.7: never 0).
    match u8::try_from(ttl) {
        Ok(t) if t > 0 => Ok(t),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TTL must be between 1 and 255",
        )),
    }
}

fn check_tos(tos: u32) -> io::Result<u8> {
    u8::try_from(tos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TOS is one byte (0..=255)"))
}

fn deadline(slot: &Mutex<Option<Duration>>) -> Option<Instant> {
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .map(|t| Instant::now() + t)
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_bytes(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_bytes(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.handle.local)
            .field("peer", &self.handle.peer)
            .finish()
    }
}
