//! The async API: [`TcpListener`], [`TcpStream`] and [`UdpSocket`] with
//! `poll_*` methods and `async fn`s, driven by wakers, no thread per socket.
//!
//! They work under any executor: on the stack's own thread
//! ([`crate::Stack::spawn`], where the built-in services run and where a
//! reply leaves in the same batch of writes as the request's ACK), or on
//! any other (a task woken from the stack's thread is woken through its
//! `Waker` like any I/O source). Blocking calls must not be made from a
//! task on the stack's own thread; they fail with `WouldBlock` instead of
//! deadlocking it.
//!
//! ```
//! use tunstack::aio::TcpStream;
//! use tunstack::device::memory;
//! use tunstack::{Config, Stack};
//!
//! async fn echo(stream: TcpStream) -> std::io::Result<()> {
//!     let mut buf = vec![0u8; 16 * 1024];
//!     loop {
//!         let n = stream.read(&mut buf).await?;
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         stream.write_all(&buf[..n]).await?;
//!     }
//! }
//!
//! let (a, b) = memory::link(1500);
//! let server = Stack::with_device(Config::default(), a)?; // 10.0.0.2
//! let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
//!
//! // An echo server: an accept loop and a task per connection, all on the
//! // server stack's own thread.
//! let listener = tunstack::aio::TcpListener::from(tunstack::TcpListener::bind(&server, "0.0.0.0:7")?);
//! let handle = server.handle().clone();
//! server.spawn(async move {
//!     while let Ok((stream, _peer)) = listener.accept().await {
//!         let _ = handle.spawn(async move {
//!             let _ = echo(stream).await;
//!         });
//!     }
//! })?;
//!
//! // A client task on the other stack; the answer comes back by channel.
//! let (tx, rx) = std::sync::mpsc::channel();
//! let handle = client.handle().clone();
//! client.spawn(async move {
//!     let answer = async {
//!         let s = TcpStream::connect(&handle, "10.0.0.2:7").await?;
//!         s.write_all(b"hello, tasks").await?;
//!         let mut buf = [0u8; 12];
//!         let mut got = 0;
//!         while got < buf.len() {
//!             got += s.read(&mut buf[got..]).await?;
//!         }
//!         Ok::<_, std::io::Error>(buf)
//!     };
//!     let _ = tx.send(answer.await);
//! })?;
//! let answer = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap()?;
//! assert_eq!(&answer, b"hello, tasks");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::handle::{
    tcp_error, try_connected, try_echo, try_peek, try_read, try_read_with, try_write,
    try_write_with, ListenerHandle, Pokes, StreamHandle,
};
use super::resolve;
use super::udp::{try_recv as try_udp_recv, UdpHandle};
use crate::runtime::{Command, StackHandle, TimerKey};
use crate::tcp::{ConnInfo, KeepaliveConfig, TcpOption};

/// A listening TCP socket whose `accept` is awaited.
pub struct TcpListener {
    handle: ListenerHandle,
}

impl From<super::tcp::TcpListener> for TcpListener {
    /// Takes over a listener bound with the blocking API (binding is
    /// synchronous, so a program learns at once that a port is taken).
    fn from(l: super::tcp::TcpListener) -> TcpListener {
        TcpListener { handle: l.handle }
    }
}

impl TcpListener {
    /// Listens on `addr` with the given backlog.
    pub async fn bind<A: ToSocketAddrs>(
        stack: &StackHandle,
        addr: A,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let local = resolve(addr)?;
        Ok(TcpListener {
            handle: ListenerHandle::bind_async(stack, local, backlog).await?,
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.local)
    }

    /// Takes a connection if one is waiting, or registers the task.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.handle.try_accept(Some(cx.waker())) {
            Some(r) => Poll::Ready(r.map(|(h, peer)| (TcpStream { handle: h }, peer))),
            None => Poll::Pending,
        }
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("aio::TcpListener")
            .field("local", &self.handle.local)
            .finish()
    }
}

/// A TCP connection whose reads and writes are awaited. Methods take
/// `&self`, so one task may read while another writes. Dropping it closes
/// the connection gracefully in the background.
pub struct TcpStream {
    handle: StreamHandle,
}

impl From<super::tcp::TcpStream> for TcpStream {
    fn from(s: super::tcp::TcpStream) -> TcpStream {
        TcpStream { handle: s.handle }
    }
}

impl From<TcpStream> for super::tcp::TcpStream {
    fn from(s: TcpStream) -> super::tcp::TcpStream {
        super::tcp::TcpStream::from_handle(s.handle)
    }
}

impl TcpStream {
    /// The handle of the shard that owns the connection.
    pub(crate) fn stack(&self) -> &StackHandle {
        &self.handle.stack
    }

    /// Connects to `addr`.
    pub async fn connect<A: ToSocketAddrs>(stack: &StackHandle, addr: A) -> io::Result<TcpStream> {
        let remote = resolve(addr)?;
        let stack = stack.for_new_connection();
        let (id, local, shared) = stack
            .call_async(|reply| Command::TcpConnect { remote, reply })
            .await?
            .map_err(|e| io::Error::new(e.kind(), format!("connecting to {remote}: {e}")))?;
        let handle = StreamHandle::new(stack, id, local, remote, shared);
        poll_fn(|cx| {
            handle.stream.with(|st| match try_connected(st) {
                Some(r) => Poll::Ready(r),
                None => {
                    st.register_writer(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("connecting to {remote}: {e}")))?;
        Ok(TcpStream { handle })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.peer)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.local)
    }

    /// Reads into `buf`: `Ready(Ok(0))` at end of stream.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut pokes = Pokes::default();
        let r = self.handle.stream.with(|st| {
            let r = try_read(st, buf, &mut pokes);
            if r.is_none() {
                st.register_reader(cx.waker());
            }
            r
        });
        self.finish(r, pokes)
    }

    /// Reads in place: `f` gets the received bytes (in up to two pieces,
    /// as they lie in the ring) and returns how many it consumed; no copy
    /// is made. `Ready(Ok(0))` at end of stream.
    pub fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(&[u8], &[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        let mut pokes = Pokes::default();
        let r = self.handle.stream.with(|st| {
            let r = try_read_with(st, f, &mut pokes);
            if r.is_none() {
                st.register_reader(cx.waker());
            }
            r
        });
        self.finish(r, pokes)
    }

    /// Queues `data` for sending; how much fit.
    pub fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut pokes = Pokes::default();
        let r = self.handle.stream.with(|st| {
            let r = try_write(st, data, &mut pokes);
            if r.is_none() {
                st.register_writer(cx.waker());
            }
            r
        });
        self.finish(r, pokes)
    }

    /// Writes in place: `f` fills free space of the send buffer (called
    /// up to twice, for the ring's two pieces) and returns how much it
    /// wrote.
    pub fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        f: impl FnMut(&mut [u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        let mut pokes = Pokes::default();
        let r = self.handle.stream.with(|st| {
            let r = try_write_with(st, f, &mut pokes);
            if r.is_none() {
                st.register_writer(cx.waker());
            }
            r
        });
        self.finish(r, pokes)
    }

    /// Echoes received bytes back (the echo service): moves what arrived
    /// into the send buffer without an intermediate copy. `Ready(Ok(0))`
    /// at end of stream.
    pub(crate) fn poll_echo(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut pokes = Pokes::default();
        let r = self.handle.stream.with(|st| {
            let mut need_room = false;
            let r = try_echo(st, &mut pokes, &mut need_room);
            if r.is_none() {
                if need_room {
                    st.register_writer(cx.waker());
                } else {
                    st.register_reader(cx.waker());
                }
            }
            r
        });
        self.finish(r, pokes)
    }

    fn finish(&self, r: Option<io::Result<usize>>, pokes: Pokes) -> Poll<io::Result<usize>> {
        let poked = self.handle.poke(pokes);
        match r {
            Some(Ok(n)) => Poll::Ready(poked.map(|()| n)),
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => Poll::Pending,
        }
    }

    /// Reads into `buf`; 0 at end of stream.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Queues some of `data`; how much.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, data)).await
    }

    /// Queues all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.write(data).await?;
            data = &data[n..];
        }
        Ok(())
    }

    /// Shuts down reading, writing (FIN after the queued data), or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.handle.shutdown(
            matches!(how, Shutdown::Read | Shutdown::Both),
            matches!(how, Shutdown::Write | Shutdown::Both),
        )
    }

    /// `TCP_NODELAY`: `true` sends small segments at once.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let id = self.handle.id;
        self.handle
            .send_and_forget(|reply| Command::TcpSetNodelay { id, nodelay, reply })
    }

    /// Keepalive with these parameters (`None`: off).
    pub fn set_keepalive(&self, keepalive: Option<KeepaliveConfig>) -> io::Result<()> {
        let id = self.handle.id;
        self.handle
            .send_and_forget(|reply| Command::TcpSetKeepalive {
                id,
                keepalive,
                reply,
            })
    }

    fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        let id = self.handle.id;
        self.handle
            .send_and_forget(|reply| Command::TcpSetOption { id, opt, reply })
    }

    /// `IP_TTL` of the segments this connection sends, 1..=255.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        match u8::try_from(ttl) {
            Ok(t) if t > 0 => self.set_option(TcpOption::Ttl(Some(t))),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TTL must be between 1 and 255",
            )),
        }
    }

    /// `IP_TOS` of the segments this connection sends.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        let tos = u8::try_from(tos).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "TOS is one byte (0..=255)")
        })?;
        self.set_option(TcpOption::Tos(tos))
    }

    /// `SO_RCVBUF` (see [`crate::TcpStream::set_recv_buffer_size`]).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.set_option(TcpOption::RecvBuffer(size))
    }

    /// `SO_SNDBUF`.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.set_option(TcpOption::SendBuffer(size))
    }

    /// `TCP_USER_TIMEOUT` (RFC 5482).
    pub fn set_tcp_user_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.set_option(TcpOption::UserTimeout(timeout))
    }

    /// `SO_LINGER`: `Some(Duration::ZERO)` makes dropping the stream a
    /// reset. (A nonzero linger does not block an async drop.)
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let linger = linger.filter(|l| l.is_zero());
        self.handle.update_options(|o| o.linger = linger);
        Ok(())
    }

    /// Reads without taking: the next read returns the same bytes.
    pub fn poll_peek(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.handle.stream.with(|st| match try_peek(st, buf) {
            Some(r) => Poll::Ready(r),
            None => {
                st.register_reader(cx.waker());
                Poll::Pending
            }
        })
    }

    /// Reads without taking.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_peek(cx, buf)).await
    }

    /// `SO_ERROR`: the error that ended the connection, once.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self.handle.take_error())
    }

    /// A snapshot of the connection: state, queues, RTT, retransmits.
    pub async fn info(&self) -> io::Result<ConnInfo> {
        let id = self.handle.id;
        self.handle
            .stack
            .call_async(|reply| Command::TcpInfo { id, reply })
            .await?
            .ok_or_else(|| tcp_error(crate::tcp::TcpError::NotConnected))
    }

    /// Resets the connection at once (RST).
    pub fn abort(self) -> io::Result<()> {
        self.handle.abort()
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("aio::TcpStream")
            .field("local", &self.handle.local)
            .field("peer", &self.handle.peer)
            .finish()
    }
}

/// Completes at `deadline`, on the stack's timers.
pub struct Sleep {
    stack: StackHandle,
    deadline: Instant,
    key: Option<TimerKey>,
}

/// Waits `duration` on the stack's timers.
pub fn sleep(stack: &StackHandle, duration: Duration) -> Sleep {
    sleep_until(stack, Instant::now() + duration)
}

/// Waits until `deadline` on the stack's timers.
pub fn sleep_until(stack: &StackHandle, deadline: Instant) -> Sleep {
    Sleep {
        stack: stack.clone(),
        deadline,
        key: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            if let Some(key) = self.key.take() {
                self.stack.timers().remove(key);
            }
            return Poll::Ready(());
        }
        match self.key {
            Some(key) if self.stack.timers().update(key, cx.waker()) => {}
            _ => {
                let key = self.stack.timer(self.deadline, cx.waker().clone());
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.stack.timers().remove(key);
        }
    }
}

/// Runs `future` for at most `duration`: `Err(TimedOut)` if it takes longer.
pub async fn timeout<T>(
    stack: &StackHandle,
    duration: Duration,
    future: impl Future<Output = T>,
) -> io::Result<T> {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(sleep(stack, duration));
    poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "tunstack: timed out",
            ))),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// A UDP socket whose sends and receives are awaited.
///
/// Dropping it closes the socket.
pub struct UdpSocket {
    handle: UdpHandle,
}

impl From<super::udp::UdpSocket> for UdpSocket {
    fn from(s: super::udp::UdpSocket) -> UdpSocket {
        UdpSocket { handle: s.handle }
    }
}

impl UdpSocket {
    /// Binds to `addr` (port 0: an ephemeral port).
    pub async fn bind<A: ToSocketAddrs>(stack: &StackHandle, addr: A) -> io::Result<UdpSocket> {
        let local = resolve(addr)?;
        Ok(UdpSocket {
            handle: UdpHandle::bind_async(stack, local).await?,
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.handle.local)
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.handle.peer_addr()
    }

    /// Sets the peer: `send` goes there, and only its datagrams are received.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let remote = resolve(addr)?;
        let id = self.handle.id;
        self.handle
            .stack
            .call_async(|reply| Command::UdpConnect { id, remote, reply })
            .await?
            .map_err(super::udp::udp_error)?;
        self.handle.set_peer(remote);
        Ok(())
    }

    /// Queues one datagram to `to`, or registers the task while the send
    /// buffer is full.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let to = super::canonical(to);
        let mut st = self.handle.shared.lock();
        match self.handle.try_send(&mut st, buf, to) {
            Some(r) => Poll::Ready(r),
            None => {
                st.register_writer(cx.waker());
                Poll::Pending
            }
        }
    }

    /// Receives (or, with `peek`, looks at) the next datagram, or registers
    /// the task.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        peek: bool,
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut st = self.handle.shared.lock();
        match try_udp_recv(&mut st, buf, peek) {
            Some(r) => Poll::Ready(r),
            None => {
                st.register_reader(cx.waker());
                Poll::Pending
            }
        }
    }

    /// Sends one datagram to `addr`.
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let to = resolve(addr)?;
        poll_fn(|cx| self.poll_send_to(cx, buf, to)).await
    }

    /// Sends to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let to = self.handle.connected_peer()?;
        poll_fn(|cx| self.poll_send_to(cx, buf, to)).await
    }

    /// Receives one datagram: its length (truncated to `buf`) and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf, false)).await
    }

    /// Like [`UdpSocket::recv_from`], but the datagram stays queued.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from(cx, buf, true)).await
    }

    /// Receives from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    /// `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.handle.set_broadcast(on);
        Ok(())
    }

    /// `IP_TTL` of the datagrams sent (1..=255).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.handle.set_ttl(ttl)
    }

    /// `IP_TOS` of the datagrams sent.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.handle.set_tos(tos)
    }

    /// `SO_RCVBUF`.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.handle.shared.lock().rx_capacity = size.max(1);
        Ok(())
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("aio::UdpSocket")
            .field("local", &self.handle.local)
            .field("peer", &self.handle.peer())
            .finish()
    }
}
