//! The runtime's side of TCP handles. A stream's data never passes through
//! here: the application reads and writes the connection's shared
//! [`Stream`] directly, and pokes the runtime only when the core asked
//! (data queued while the core waits for it, or a window worth
//! announcing). What is left is the control path: listen, connect, accept
//! queues, shutdown and close.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use super::{Command, Runtime};
use crate::tcp::stream::Stream;
use crate::tcp::{ConnId, KeepaliveConfig, ListenerId, TcpError, TcpEvent};
use crate::time::Instant;

/// A connection the runtime took from the core's accept queue, waiting
/// for the application's `accept`.
pub(crate) struct Accepted {
    /// The shard that owns the connection.
    pub(crate) shard: usize,
    pub(crate) id: ConnId,
    pub(crate) local: SocketAddr,
    pub(crate) peer: SocketAddr,
    pub(crate) stream: Arc<Stream>,
}

/// A listener's accept queue, shared with its handle.
#[derive(Default)]
pub(crate) struct ListenerQueue {
    pub(crate) ready: VecDeque<Accepted>,
    /// The runtime stopped taking connections from the core because
    /// `ready` was full (the backlog); `accept` must ask for more.
    pub(crate) stalled: bool,
    pub(crate) gone: bool,
    /// A task waiting in `poll_accept`.
    pub(crate) waker: Option<Waker>,
}

/// A listener's shared state.
#[derive(Default)]
pub(crate) struct ListenerShared {
    queue: Mutex<ListenerQueue>,
    pub(crate) changed: Condvar,
}

impl ListenerShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ListenerQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes blocked `accept` calls and a waiting task.
    pub(crate) fn notify(&self) {
        let waker = self.lock().waker.take();
        self.changed.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

struct ListenerSink {
    shared: Arc<ListenerShared>,
    backlog: usize,
}

/// Listener handles known to the runtime.
pub(super) struct TcpGlue {
    listeners: HashMap<ListenerId, ListenerSink>,
    /// Keepalive for every connection (`Config::keepalive_all`).
    keepalive_all: Option<KeepaliveConfig>,
}

impl TcpGlue {
    pub(super) fn new(keepalive_all: Option<KeepaliveConfig>) -> TcpGlue {
        TcpGlue {
            listeners: HashMap::new(),
            keepalive_all,
        }
    }
}

impl Runtime {
    /// Wakes every handle with "the stack is gone".
    pub(super) fn tcp_stopped(&mut self) {
        for s in self.iface.tcp_streams() {
            s.with(|st| {
                st.gone = true;
                st.wake_all();
            });
        }
        for l in self.tcp.listeners.values() {
            l.shared.lock().gone = true;
            l.shared.notify();
        }
    }

    /// Handles a TCP command from an application handle.
    pub(super) fn tcp_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::TcpListen {
                local,
                backlog,
                shared,
                reply,
            } => {
                let result = self.iface.tcp_listen(local, backlog).inspect(|&id| {
                    self.tcp
                        .listeners
                        .insert(id, ListenerSink { shared, backlog });
                });
                reply.send(result);
            }
            Command::TcpAcceptMore { id } => self.tcp_accept(now, id),
            Command::TcpCloseListener { id, done } => {
                if let Some(l) = self.tcp.listeners.remove(&id) {
                    let _ = self.iface.tcp_close_listener(id);
                    // Connections taken from the core but never accepted
                    // are reset, as the kernel does on close(listener).
                    let pending: Vec<Accepted> = l.shared.lock().ready.drain(..).collect();
                    for a in pending {
                        let _ = self.iface.tcp_abort(a.id);
                    }
                }
                if let Some(done) = done {
                    done.send(());
                }
            }
            Command::TcpConnect { remote, reply } => {
                let result = self.iface.tcp_connect(now, remote).and_then(|(id, local)| {
                    let stream = self.iface.tcp_stream(id).ok_or(TcpError::NotConnected)?;
                    Ok((id, local, stream))
                });
                if let (Ok((id, _, _)), Some(ka)) = (&result, self.tcp.keepalive_all) {
                    let _ = self.iface.tcp_set_keepalive(now, *id, Some(ka));
                }
                reply.send(result);
            }
            Command::TcpPush { id } => {
                let _ = self.iface.tcp_push(now, id);
            }
            Command::TcpWindowUpdate { id } => {
                let _ = self.iface.tcp_window_update(now, id);
            }
            Command::TcpShutdown { id } => {
                let _ = self.iface.tcp_shutdown_write(now, id);
            }
            Command::TcpClose { id } => {
                // RFC 9293 §3.10.4 / RFC 2525 §2.17: closing with received
                // data unread resets the connection (Linux); the core
                // decides.
                let _ = self.iface.tcp_close(now, id);
            }
            Command::TcpAbort { id } => {
                let _ = self.iface.tcp_abort(id);
            }
            Command::TcpSetOption { id, opt, reply } => {
                reply.send(self.iface.tcp_set_option(now, id, opt));
            }
            Command::TcpSetListenerOption { id, opt, reply } => {
                reply.send(self.iface.tcp_set_listener_option(id, opt));
            }
            Command::TcpSetNodelay { id, nodelay, reply } => {
                reply.send(self.iface.tcp_set_nodelay(now, id, nodelay));
            }
            Command::TcpSetKeepalive {
                id,
                keepalive,
                reply,
            } => {
                reply.send(self.iface.tcp_set_keepalive(now, id, keepalive));
            }
            Command::TcpInfo { id, reply } => {
                reply.send(self.iface.tcp_info(id));
            }
            Command::TcpConnections { reply } => {
                reply.send(self.iface.tcp_connections());
            }
            // Not TCP commands; the dispatcher handles them.
            Command::UdpBind { .. }
            | Command::UdpConnect { .. }
            | Command::UdpSend { .. }
            | Command::UdpClose { .. }
            | Command::Stats { .. }
            | Command::RecentConnections { .. }
            | Command::Spawn { .. }
            | Command::Packet { .. }
            | Command::Shutdown => {}
        }
    }

    /// Acts on an event of the TCP core. Data, end of stream, room to
    /// write, connection and closing reach the handles through their
    /// streams' wait slots; only new connections need the runtime.
    pub(super) fn tcp_event(&mut self, now: Instant, event: TcpEvent) {
        if let TcpEvent::Acceptable(lid) = event {
            self.tcp_accept(now, lid);
        }
    }

    /// Moves established connections from the core's accept queue to the
    /// listener handle's, up to the backlog.
    fn tcp_accept(&mut self, now: Instant, lid: ListenerId) {
        let Some(l) = self.tcp.listeners.get(&lid) else {
            return;
        };
        let (shared, backlog) = (l.shared.clone(), l.backlog);
        {
            let mut q = shared.lock();
            loop {
                if q.ready.len() >= backlog {
                    q.stalled = true;
                    break;
                }
                let Ok(id) = self.iface.tcp_accept(lid) else {
                    break;
                };
                let (Some(info), Some(stream)) =
                    (self.iface.tcp_info(id), self.iface.tcp_stream(id))
                else {
                    continue;
                };
                if let Some(ka) = self.tcp.keepalive_all {
                    let _ = self.iface.tcp_set_keepalive(now, id, Some(ka));
                }
                q.ready.push_back(Accepted {
                    shard: self.shard,
                    id,
                    local: info.local,
                    peer: info.remote,
                    stream,
                });
            }
        }
        shared.notify();
    }
}
