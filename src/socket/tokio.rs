//! tunstack sockets for tokio (the `tokio` cargo feature): the async types
//! of [`crate::aio`] with tokio's `AsyncRead` and `AsyncWrite`, so hyper,
//! axum, `tokio::io::copy` and friends run over tunstack unchanged.
//!
//! The sockets are driven by wakers, never by a thread per socket: a task on
//! any tokio runtime is woken from the stack's own thread when its data
//! arrives. (Tasks may also run on the stack's thread with
//! [`crate::Stack::spawn`]; these types work there too.)
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tunstack::device::memory;
//! use tunstack::tokio::{TcpListener, TcpStream};
//! use tunstack::{Config, Stack};
//!
//! # fn main() -> std::io::Result<()> {
//! let (a, b) = memory::link(1500);
//! let server = Stack::with_device(Config::default(), a)?; // 10.0.0.2
//! let client = Stack::with_device(Config { addr: [10, 0, 0, 1].into(), ..Config::default() }, b)?;
//!
//! let rt = tokio::runtime::Builder::new_multi_thread().build()?;
//! rt.block_on(async {
//!     // An echo server the tokio way: tokio::io::copy between the halves.
//!     let listener = TcpListener::bind(server.handle(), "0.0.0.0:7").await?;
//!     tokio::spawn(async move {
//!         while let Ok((stream, _peer)) = listener.accept().await {
//!             tokio::spawn(async move {
//!                 let (mut r, mut w) = stream.into_split();
//!                 let _ = tokio::io::copy(&mut r, &mut w).await;
//!             });
//!         }
//!     });
//!     let mut c = TcpStream::connect(client.handle(), "10.0.0.2:7").await?;
//!     c.write_all(b"hello, tokio").await?;
//!     let mut buf = [0u8; 12];
//!     c.read_exact(&mut buf).await?;
//!     assert_eq!(&buf, b"hello, tokio");
//!     Ok(())
//! })
//! # }
//! ```

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::aio;
use super::tcp::DEFAULT_BACKLOG;
use crate::runtime::StackHandle;

/// A UDP socket for tokio: its `send_to`, `recv_from`, `peek_from`,
/// `connect`, `send` and `recv` are awaited like tokio's own.
pub use super::aio::UdpSocket;

/// A listening socket for tokio.
#[derive(Debug)]
pub struct TcpListener {
    inner: aio::TcpListener,
}

impl TcpListener {
    /// Listens on `addr` with the default backlog (4096).
    pub async fn bind<A: ToSocketAddrs>(stack: &StackHandle, addr: A) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(stack, addr, DEFAULT_BACKLOG).await
    }

    /// Listens on `addr` with `backlog`.
    pub async fn bind_with_backlog<A: ToSocketAddrs>(
        stack: &StackHandle,
        addr: A,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: aio::TcpListener::bind(stack, addr, backlog).await?,
        })
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, peer) = self.inner.accept().await?;
        Ok((TcpStream { inner: s }, peer))
    }

    /// Takes a connection if one is waiting, or registers the task.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.inner
            .poll_accept(cx)
            .map_ok(|(s, peer)| (TcpStream { inner: s }, peer))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl From<aio::TcpListener> for TcpListener {
    fn from(inner: aio::TcpListener) -> TcpListener {
        TcpListener { inner }
    }
}

impl From<crate::TcpListener> for TcpListener {
    fn from(l: crate::TcpListener) -> TcpListener {
        TcpListener { inner: l.into() }
    }
}

/// A TCP connection for tokio: `AsyncRead + AsyncWrite`.
#[derive(Debug)]
pub struct TcpStream {
    inner: aio::TcpStream,
}

impl TcpStream {
    /// Connects to `addr`.
    pub async fn connect<A: ToSocketAddrs>(stack: &StackHandle, addr: A) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: aio::TcpStream::connect(stack, addr).await?,
        })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// The async stream underneath.
    pub fn as_aio(&self) -> &aio::TcpStream {
        &self.inner
    }

    /// Borrowed halves that read and write concurrently (no lock: the
    /// stream's methods take `&self`).
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(&self.inner), WriteHalf(&self.inner))
    }

    /// Owned halves that can move to different tasks. Dropping both
    /// closes the connection; dropping the write half sends FIN.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let shared = Arc::new(self.inner);
        (
            OwnedReadHalf(shared.clone()),
            OwnedWriteHalf {
                stream: shared,
                shutdown_on_drop: true,
            },
        )
    }
}

impl From<aio::TcpStream> for TcpStream {
    fn from(inner: aio::TcpStream) -> TcpStream {
        TcpStream { inner }
    }
}

/// `AsyncRead` on an async stream: copies straight from the receive ring
/// into tokio's buffer.
fn poll_read(
    s: &aio::TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    if buf.remaining() == 0 {
        return Poll::Ready(Ok(()));
    }
    s.poll_read_with(cx, |a, b| {
        let n1 = a.len().min(buf.remaining());
        buf.put_slice(&a[..n1]);
        let n2 = b.len().min(buf.remaining());
        buf.put_slice(&b[..n2]);
        n1 + n2
    })
    .map_ok(|_| ())
}

fn poll_shutdown(s: &aio::TcpStream) -> Poll<io::Result<()>> {
    Poll::Ready(s.shutdown(Shutdown::Write))
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.inner, cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.inner)
    }
}

/// The reading half of [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a aio::TcpStream);

/// The writing half of [`TcpStream::split`].
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a aio::TcpStream);

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(self.0, cx, buf)
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(self.0)
    }
}

/// The reading half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf(Arc<aio::TcpStream>);

/// The writing half of [`TcpStream::into_split`]; dropping it sends FIN
/// (as tokio's does), unless [`OwnedWriteHalf::forget`] was called.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<aio::TcpStream>,
    shutdown_on_drop: bool,
}

impl OwnedWriteHalf {
    /// Drops the half without shutting down writing.
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.0, cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.stream)
    }
}
