//! What the blocking and the async TCP handles have in common: the handle
//! to a listener's accept queue or a connection's [`Stream`], and one
//! attempt at each operation. An attempt either completes or reports that
//! the caller must wait; the blocking API then sleeps on the stream's wait
//! slot, the async API registers its task's waker there.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Duration;

use crate::runtime::{reply, stack_gone, Command, ListenerShared, Reply, StackHandle};
use crate::tcp::stream::{Stream, StreamState};
use crate::tcp::{ConnId, ListenerId, TcpError, TcpOption};

/// An `io::Error` for a core error, with its message.
pub(crate) fn tcp_error(e: TcpError) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

/// Pokes owed to the runtime once the stream's lock is released.
#[derive(Debug, Default, Clone, Copy)]
#[must_use]
pub(crate) struct Pokes {
    push: bool,
    window: bool,
}

/// A listener: its id on each shard and the accept queue they share.
/// Dropping it closes the listener on every shard.
pub(crate) struct ListenerHandle {
    pub(crate) stack: StackHandle,
    /// The listener on each shard (a SYN may arrive on any of them).
    pub(crate) ids: Vec<(StackHandle, ListenerId)>,
    pub(crate) local: SocketAddr,
    pub(crate) shared: Arc<ListenerShared>,
}

impl ListenerHandle {
    /// Listens on `local` on every shard, blocking for the answers.
    pub(crate) fn bind(
        stack: &StackHandle,
        local: SocketAddr,
        backlog: usize,
    ) -> io::Result<ListenerHandle> {
        let mut l = ListenerHandle::empty(stack, local);
        for shard in stack.all_shards() {
            let id = shard
                .call(l.listen_command(backlog))?
                .map_err(|e| bind_error(local, e))?;
            l.ids.push((shard, id));
        }
        Ok(l)
    }

    /// [`ListenerHandle::bind`] for tasks.
    pub(crate) async fn bind_async(
        stack: &StackHandle,
        local: SocketAddr,
        backlog: usize,
    ) -> io::Result<ListenerHandle> {
        let mut l = ListenerHandle::empty(stack, local);
        for shard in stack.all_shards() {
            let id = shard
                .call_async(l.listen_command(backlog))
                .await?
                .map_err(|e| bind_error(local, e))?;
            l.ids.push((shard, id));
        }
        Ok(l)
    }

    /// The command that opens this listener on one shard, all shards
    /// queueing into the one accept queue.
    fn listen_command(
        &self,
        backlog: usize,
    ) -> impl FnOnce(Reply<Result<ListenerId, TcpError>>) -> Command {
        let (local, shared) = (self.local, self.shared.clone());
        move |reply| Command::TcpListen {
            local,
            backlog: backlog.max(1),
            shared,
            reply,
        }
    }

    /// A handle listening nowhere yet (dropping it closes what was opened).
    fn empty(stack: &StackHandle, local: SocketAddr) -> ListenerHandle {
        ListenerHandle {
            stack: stack.clone(),
            ids: Vec::new(),
            local,
            shared: Arc::new(ListenerShared::default()),
        }
    }

    /// Sets a listener option on every shard.
    pub(crate) fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        for (shard, id) in &self.ids {
            let id = *id;
            shard
                .call(|reply| Command::TcpSetListenerOption { id, opt, reply })?
                .map_err(tcp_error)?;
        }
        Ok(())
    }

    /// Takes one accepted connection if one is waiting; registers `waker`
    /// (if any) otherwise. `None`: wait.
    pub(crate) fn try_accept(
        &self,
        waker: Option<&Waker>,
    ) -> Option<io::Result<(StreamHandle, SocketAddr)>> {
        let mut q = self.shared.lock();
        if let Some(a) = q.ready.pop_front() {
            let ask = std::mem::take(&mut q.stalled);
            drop(q);
            if ask {
                for (shard, id) in &self.ids {
                    if let Err(e) = shard.send(Command::TcpAcceptMore { id: *id }) {
                        return Some(Err(e));
                    }
                }
            }
            let owner = self.stack.on_shard(a.shard);
            // An IPv4 connection on a dual-stack `[::]` listener shows its
            // addresses IPv4-mapped (`::ffff:10.0.0.1`), as on Linux.
            let (local, peer) = if self.local.is_ipv6() {
                (mapped(a.local), mapped(a.peer))
            } else {
                (a.local, a.peer)
            };
            let stream = StreamHandle::new(owner, a.id, local, peer, a.stream);
            return Some(Ok((stream, peer)));
        }
        if q.gone {
            return Some(Err(stack_gone()));
        }
        if let Some(w) = waker {
            match &q.waker {
                Some(old) if old.will_wake(w) => {}
                _ => q.waker = Some(w.clone()),
            }
        }
        None
    }
}

impl Drop for ListenerHandle {
    /// Stops listening on every shard. Off the stack's threads this waits
    /// until each has, so a connection attempt that follows is refused, as
    /// after `close()` of a kernel listener; a task on the stack's thread
    /// cannot wait, and the close follows at once instead.
    fn drop(&mut self) {
        let wait = !crate::runtime::on_runtime();
        for (shard, id) in &self.ids {
            let id = *id;
            if wait {
                let _ = shard.call(|reply| Command::TcpCloseListener {
                    id,
                    done: Some(reply),
                });
            } else {
                let _ = shard.send(Command::TcpCloseListener { id, done: None });
            }
        }
    }
}

/// `a` as an IPv6 socket sees it: an IPv4 address mapped (RFC 4291
/// §2.5.5.2).
fn mapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}

/// "binding TCP local: why".
fn bind_error(local: SocketAddr, e: TcpError) -> io::Error {
    io::Error::new(e.kind(), format!("binding TCP {local}: {e}"))
}

/// Options a stream handle remembers, to answer the getters and to act on
/// at close.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocalOptions {
    pub(crate) ttl: Option<u8>,
    pub(crate) tos: u8,
    pub(crate) user_timeout: Option<Duration>,
    /// `SO_LINGER`.
    pub(crate) linger: Option<Duration>,
    /// Calls that would wait fail with `WouldBlock` (blocking API).
    pub(crate) nonblocking: bool,
}

/// A connection's handle. Dropping it closes the connection gracefully in
/// the background (RST instead if received data was left unread, or with
/// `SO_LINGER` set to zero).
pub(crate) struct StreamHandle {
    pub(crate) stack: StackHandle,
    pub(crate) id: ConnId,
    pub(crate) local: SocketAddr,
    pub(crate) peer: SocketAddr,
    pub(crate) stream: Arc<Stream>,
    /// The runtime already forgot the connection (after `abort`).
    pub(crate) released: bool,
    pub(crate) opts: Mutex<LocalOptions>,
}

impl StreamHandle {
    pub(crate) fn new(
        stack: StackHandle,
        id: ConnId,
        local: SocketAddr,
        peer: SocketAddr,
        stream: Arc<Stream>,
    ) -> StreamHandle {
        StreamHandle {
            stack,
            id,
            local,
            peer,
            stream,
            released: false,
            opts: Mutex::new(LocalOptions::default()),
        }
    }

    /// The options remembered so far.
    pub(crate) fn local_options(&self) -> LocalOptions {
        *self.opts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Updates the remembered options.
    pub(crate) fn update_options(&self, f: impl FnOnce(&mut LocalOptions)) {
        f(&mut self.opts.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Sets a core option and waits for the runtime's answer.
    pub(crate) fn set_option(&self, opt: TcpOption) -> io::Result<()> {
        let id = self.id;
        self.stack
            .call(|reply| Command::TcpSetOption { id, opt, reply })?
            .map_err(tcp_error)
    }

    /// `SO_ERROR`: the connection's error, once (a read that would have
    /// reported it then sees end of stream).
    pub(crate) fn take_error(&self) -> Option<io::Error> {
        let mut st = self.stream.lock();
        let e = st.error?;
        if std::mem::replace(&mut st.read_error_reported, true) {
            return None;
        }
        Some(io::Error::from(e.kind()))
    }

    /// Sends the pokes an attempt owes the runtime.
    pub(crate) fn poke(&self, pokes: Pokes) -> io::Result<()> {
        if pokes.push {
            self.stack.send(Command::TcpPush { id: self.id })?;
        }
        if pokes.window {
            self.stack.send(Command::TcpWindowUpdate { id: self.id })?;
        }
        Ok(())
    }

    /// Sends a command whose answer nobody waits for (an option change).
    pub(crate) fn send_and_forget<T>(
        &self,
        make: impl FnOnce(crate::runtime::Reply<T>) -> Command,
    ) -> io::Result<()> {
        let (tx, _answer) = reply();
        self.stack.send(make(tx))
    }

    /// Resets the connection (RST) and releases the handle.
    pub(crate) fn abort(mut self) -> io::Result<()> {
        self.released = true;
        self.stack.send(Command::TcpAbort { id: self.id })
    }

    /// `shutdown(Read)` and/or `shutdown(Write)`.
    pub(crate) fn shutdown(&self, read: bool, write: bool) -> io::Result<()> {
        let mut pokes = Pokes::default();
        let shut_write = {
            let mut st = self.stream.lock();
            if st.gone {
                return Err(stack_gone());
            }
            if read {
                st.read_shut = true;
                let ready = st.recv.ready();
                st.recv.consume(ready);
                pokes.window = st.needs_window_update();
            }
            let shut_write = write && !st.write_shut;
            if shut_write {
                st.write_shut = true;
            }
            shut_write
        };
        self.poke(pokes)?;
        if shut_write {
            self.stack.send(Command::TcpShutdown { id: self.id })?;
        }
        Ok(())
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let linger = self.local_options().linger;
        if linger == Some(Duration::ZERO) {
            // SO_LINGER with a zero timeout: close is an abort (RST).
            let _ = self.stack.send(Command::TcpAbort { id: self.id });
            return;
        }
        let _ = self.stack.send(Command::TcpClose { id: self.id });
        // SO_LINGER with a timeout: close waits (up to it) until what was
        // written has arrived, then the close goes on in the background.
        // Never on the stack's own thread, which would wait for itself.
        if let Some(t) = linger {
            if crate::runtime::on_runtime() {
                return;
            }
            let deadline = std::time::Instant::now() + t;
            let mut st = self.stream.lock();
            while !(st.fin_acked || st.closed || st.gone) {
                let (g, expired) = self.stream.wait(st, false, Some(deadline));
                st = g;
                if expired {
                    break;
                }
            }
        }
    }
}

/// The end of reading: end of stream, `read_shut`, an error (once), or the
/// stack gone. `None` while more data may come.
fn read_end(st: &mut StreamState) -> Option<io::Result<usize>> {
    if st.read_shut {
        return Some(Ok(0));
    }
    // As on Linux, a connection error (reset, timeout) fails one read,
    // even after end of stream; later reads see end of stream.
    if let Some(e) = st.error {
        if !std::mem::replace(&mut st.read_error_reported, true) {
            return Some(Err(io::Error::from(e.kind())));
        }
        return Some(Ok(0));
    }
    if st.eof || st.closed {
        return Some(Ok(0));
    }
    if st.gone {
        return Some(Err(stack_gone()));
    }
    None
}

/// One attempt to read into `out`. `None`: nothing yet, wait.
pub(crate) fn try_read(
    st: &mut StreamState,
    out: &mut [u8],
    pokes: &mut Pokes,
) -> Option<io::Result<usize>> {
    if out.is_empty() {
        return Some(Ok(0));
    }
    if st.recv.ready() > 0 {
        let n = st.recv.read(out);
        pokes.window = st.needs_window_update();
        return Some(Ok(n));
    }
    read_end(st)
}

/// One attempt to peek: copies ready bytes without taking them. `None`:
/// nothing yet, wait.
pub(crate) fn try_peek(st: &mut StreamState, out: &mut [u8]) -> Option<io::Result<usize>> {
    if out.is_empty() {
        return Some(Ok(0));
    }
    if st.recv.ready() > 0 {
        return Some(Ok(st.recv.peek(out)));
    }
    read_end(st)
}

/// One attempt to read in place: `f` sees the ready bytes (in two pieces)
/// and returns how many it consumed. `None`: nothing yet, wait.
pub(crate) fn try_read_with(
    st: &mut StreamState,
    f: impl FnOnce(&[u8], &[u8]) -> usize,
    pokes: &mut Pokes,
) -> Option<io::Result<usize>> {
    if st.recv.ready() > 0 {
        let [a, b] = st.recv.readable();
        let n = f(a, b).min(a.len() + b.len());
        st.recv.consume(n);
        pokes.window = st.needs_window_update();
        return Some(Ok(n));
    }
    read_end(st)
}

/// Why writing is over, if it is.
fn write_end(st: &StreamState) -> Option<io::Error> {
    if let Some(e) = st.error {
        return Some(io::Error::from(e.kind()));
    }
    if st.gone {
        return Some(stack_gone());
    }
    if st.write_shut || st.send_closed {
        return Some(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the connection is closed for writing",
        ));
    }
    None
}

/// One attempt to queue `data`. `None`: the send buffer is full, wait.
pub(crate) fn try_write(
    st: &mut StreamState,
    data: &[u8],
    pokes: &mut Pokes,
) -> Option<io::Result<usize>> {
    if let Some(e) = write_end(st) {
        return Some(Err(e));
    }
    if data.is_empty() {
        return Some(Ok(0));
    }
    let n = st.send.push(data);
    if n == 0 {
        return None;
    }
    pokes.push = st.take_push_wanted();
    Some(Ok(n))
}

/// One attempt to queue `data` as urgent data (RFC 9293 §3.8.5): what fits
/// is marked, and the core is poked to send it with URG.
pub(crate) fn try_write_urgent(
    st: &mut StreamState,
    data: &[u8],
    pokes: &mut Pokes,
) -> Option<io::Result<usize>> {
    let r = try_write(st, data, pokes);
    if let Some(Ok(n)) = r {
        if n > 0 {
            st.urgent_send_end = Some(st.send.pushed());
            pokes.push = true;
        }
    }
    r
}

/// One attempt to write in place: `f` fills free space (up to twice, for
/// the ring's two pieces) and returns how much it wrote. `None`: the send
/// buffer is full, wait.
pub(crate) fn try_write_with(
    st: &mut StreamState,
    f: impl FnMut(&mut [u8]) -> usize,
    pokes: &mut Pokes,
) -> Option<io::Result<usize>> {
    if let Some(e) = write_end(st) {
        return Some(Err(e));
    }
    if st.send.free() == 0 {
        return None;
    }
    let n = st.send.fill(f);
    if n > 0 {
        pokes.push = st.take_push_wanted();
    }
    Some(Ok(n))
}

/// One attempt to echo: moves received bytes straight into the send
/// buffer, as many as fit. `None`: nothing received yet, or no room; wait
/// (`need_room` says which).
pub(crate) fn try_echo(
    st: &mut StreamState,
    pokes: &mut Pokes,
    need_room: &mut bool,
) -> Option<io::Result<usize>> {
    if st.recv.ready() == 0 {
        *need_room = false;
        return read_end(st);
    }
    if let Some(e) = write_end(st) {
        return Some(Err(e));
    }
    let StreamState { recv, send, .. } = &mut *st;
    let [a, b] = recv.readable();
    let mut n = send.push(a);
    if n == a.len() {
        n += send.push(b);
    }
    if n == 0 {
        *need_room = true;
        return None;
    }
    recv.consume(n);
    pokes.window = st.needs_window_update();
    pokes.push = st.take_push_wanted();
    Some(Ok(n))
}

/// One attempt to finish connecting. `None`: still connecting, wait.
pub(crate) fn try_connected(st: &StreamState) -> Option<io::Result<()>> {
    if st.connected {
        return Some(Ok(()));
    }
    if let Some(e) = st.error {
        return Some(Err(io::Error::from(e.kind())));
    }
    if st.gone {
        return Some(Err(stack_gone()));
    }
    if st.closed {
        return Some(Err(io::Error::from(io::ErrorKind::ConnectionAborted)));
    }
    None
}
