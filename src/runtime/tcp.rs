//! The runtime's side of TCP sockets: it alone moves bytes between the
//! streams' shared rings and the TCP core, and turns core events into
//! wakeups for the application handles.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;

use super::{Command, Runtime};
use crate::socket::tcp::{Accepted, ListenerShared, StreamShared, RING_BYTES};
use crate::tcp::{ConnId, KeepaliveConfig, ListenerId, TcpError, TcpEvent};
use crate::time::Instant;

/// The runtime's record of one stream handle.
struct StreamSink {
    shared: Arc<StreamShared>,
    /// The application dropped its handle: close once `tx` is drained.
    closing: bool,
    /// The application shut down writing: send FIN once `tx` is drained.
    shutdown_pending: bool,
}

impl StreamSink {
    fn new(shared: Arc<StreamShared>) -> StreamSink {
        StreamSink {
            shared,
            closing: false,
            shutdown_pending: false,
        }
    }
}

struct ListenerSink {
    shared: Arc<ListenerShared>,
    backlog: usize,
}

/// Stream and listener handles known to the runtime.
pub(super) struct TcpGlue {
    streams: HashMap<ConnId, StreamSink>,
    listeners: HashMap<ListenerId, ListenerSink>,
    /// Keepalive for every connection (`Config::keepalive_all`).
    keepalive_all: Option<KeepaliveConfig>,
}

impl TcpGlue {
    pub(super) fn new(keepalive_all: Option<KeepaliveConfig>) -> TcpGlue {
        TcpGlue {
            streams: HashMap::new(),
            listeners: HashMap::new(),
            keepalive_all,
        }
    }

    /// Wakes every handle with "the stack is gone".
    pub(super) fn stopped(&mut self) {
        for s in self.streams.values() {
            s.shared.lock().gone = true;
            s.shared.notify();
        }
        for l in self.listeners.values() {
            l.shared.lock().gone = true;
            l.shared.notify();
        }
    }
}

impl Runtime {
    /// Handles a TCP command from an application handle.
    pub(super) fn tcp_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::TcpListen {
                local,
                backlog,
                reply,
            } => {
                let result = self.iface.tcp().listen(local, backlog).map(|id| {
                    let shared = Arc::new(ListenerShared::default());
                    self.tcp.listeners.insert(
                        id,
                        ListenerSink {
                            shared: shared.clone(),
                            backlog,
                        },
                    );
                    (id, shared)
                });
                let _ = reply.send(result);
            }
            Command::TcpAcceptMore { id } => self.tcp_accept(now, id),
            Command::TcpCloseListener { id } => {
                if let Some(l) = self.tcp.listeners.remove(&id) {
                    let _ = self.iface.tcp().close_listener(id);
                    // Connections taken from the core but never accepted
                    // are reset, as the kernel does on close(listener).
                    let pending: Vec<Accepted> = l.shared.lock().ready.drain(..).collect();
                    for a in pending {
                        self.tcp.streams.remove(&a.id);
                        let _ = self.iface.tcp().abort(a.id);
                    }
                }
            }
            Command::TcpConnect { remote, reply } => {
                // MUST-46: the subnet's directed broadcast is a broadcast too.
                if *remote.ip() == self.iface.broadcast() {
                    let _ = reply.send(Err(TcpError::InvalidInput));
                    return;
                }
                let local = SocketAddrV4::new(self.iface.addr(), 0);
                let result = self.iface.tcp().connect(now, local, remote).map(|id| {
                    let local = self.iface.tcp().info(id).map(|i| i.local).unwrap_or(local);
                    let shared = StreamShared::new(false);
                    self.tcp.streams.insert(id, StreamSink::new(shared.clone()));
                    (id, local, shared)
                });
                if let (Ok((id, _, _)), Some(ka)) = (&result, self.tcp.keepalive_all) {
                    let _ = self.iface.tcp().set_keepalive(now, *id, Some(ka));
                }
                let _ = reply.send(result);
            }
            Command::TcpPush { id } => self.tcp_push(now, id),
            Command::TcpPull { id } => self.tcp_pull(now, id),
            Command::TcpShutdown { id } => {
                if let Some(s) = self.tcp.streams.get_mut(&id) {
                    s.shutdown_pending = true;
                }
                self.tcp_push(now, id);
            }
            Command::TcpClose { id } => {
                let Some(s) = self.tcp.streams.get_mut(&id) else {
                    return;
                };
                let unread = !s.shared.lock().rx.is_empty();
                if unread {
                    // RFC 9293 §3.10.4 / RFC 2525 §2.17: closing with
                    // received data unread resets the connection (Linux).
                    self.tcp.streams.remove(&id);
                    let _ = self.iface.tcp().abort(id);
                } else {
                    s.closing = true;
                    self.tcp_push(now, id);
                }
            }
            Command::TcpAbort { id } => {
                self.tcp.streams.remove(&id);
                let _ = self.iface.tcp().abort(id);
            }
            Command::TcpSetNodelay { id, nodelay, reply } => {
                let _ = reply.send(self.iface.tcp().set_nodelay(now, id, nodelay));
            }
            Command::TcpSetKeepalive {
                id,
                keepalive,
                reply,
            } => {
                let _ = reply.send(self.iface.tcp().set_keepalive(now, id, keepalive));
            }
            Command::TcpInfo { id, reply } => {
                let _ = reply.send(self.iface.tcp().info(id));
            }
            Command::TcpConnections { reply } => {
                let _ = reply.send(self.iface.tcp().connections());
            }
            // Not TCP commands; the dispatcher handles them.
            Command::UdpBind { .. }
            | Command::UdpConnect { .. }
            | Command::UdpSend { .. }
            | Command::UdpClose { .. }
            | Command::Stats { .. }
            | Command::Shutdown => {}
        }
    }

    /// Acts on an event of the TCP core.
    pub(super) fn tcp_event(&mut self, now: Instant, event: TcpEvent) {
        match event {
            TcpEvent::Connected(id) => {
                if let Some(s) = self.tcp.streams.get(&id) {
                    s.shared.lock().connected = true;
                    s.shared.notify();
                }
                self.tcp_pull(now, id);
                self.tcp_push(now, id);
            }
            TcpEvent::Acceptable(lid) => self.tcp_accept(now, lid),
            TcpEvent::Readable(id) | TcpEvent::PeerClosed(id) => self.tcp_pull(now, id),
            TcpEvent::Writable(id) => self.tcp_push(now, id),
            TcpEvent::Closed(id, error) => {
                self.tcp_pull(now, id);
                let Some(s) = self.tcp.streams.get(&id) else {
                    return;
                };
                {
                    let mut buf = s.shared.lock();
                    buf.closed = true;
                    if let Some(e) = error {
                        buf.error = Some(e.kind());
                        // Data the application queued can never be sent.
                        buf.tx.clear();
                    }
                }
                s.shared.notify();
                if s.closing {
                    self.tcp.streams.remove(&id);
                    let _ = self.iface.tcp().close(now, id);
                }
            }
        }
    }

    /// Moves established connections from the core's accept queue to the
    /// listener handle's, up to the backlog.
    fn tcp_accept(&mut self, now: Instant, lid: ListenerId) {
        let Some(l) = self.tcp.listeners.get(&lid) else {
            return;
        };
        let (shared, backlog) = (l.shared.clone(), l.backlog);
        let mut accepted = Vec::new();
        {
            let mut q = shared.lock();
            loop {
                if q.ready.len() >= backlog {
                    q.stalled = true;
                    break;
                }
                let Ok(id) = self.iface.tcp().accept(lid) else {
                    break;
                };
                let Some(info) = self.iface.tcp().info(id) else {
                    continue;
                };
                if let Some(ka) = self.tcp.keepalive_all {
                    let _ = self.iface.tcp().set_keepalive(now, id, Some(ka));
                }
                let stream = StreamShared::new(true);
                self.tcp.streams.insert(id, StreamSink::new(stream.clone()));
                q.ready.push_back(Accepted {
                    id,
                    local: info.local,
                    peer: info.remote,
                    shared: stream,
                });
                accepted.push(id);
            }
        }
        shared.notify();
        // Data (or a FIN) may have arrived before the accept.
        for id in accepted {
            self.tcp_pull(now, id);
        }
    }

    /// Moves received bytes from the core into the stream's receive ring,
    /// as far as it has room.
    fn tcp_pull(&mut self, now: Instant, id: ConnId) {
        let Some(s) = self.tcp.streams.get(&id) else {
            return;
        };
        let shared = s.shared.clone();
        {
            let mut buf = shared.lock();
            loop {
                let room = if buf.read_shut {
                    self.scratch.len()
                } else {
                    RING_BYTES
                        .saturating_sub(buf.rx.len())
                        .min(self.scratch.len())
                };
                if room == 0 {
                    buf.rx_stalled = true;
                    break;
                }
                match self.iface.tcp().recv(now, id, &mut self.scratch[..room]) {
                    Ok(0) => {
                        buf.eof = true;
                        break;
                    }
                    Ok(n) => {
                        if !buf.read_shut {
                            buf.rx.extend(&self.scratch[..n]);
                        }
                    }
                    Err(TcpError::WouldBlock) | Err(TcpError::NotConnected) => break,
                    Err(e) => {
                        buf.error.get_or_insert(e.kind());
                        break;
                    }
                }
            }
        }
        shared.notify();
    }

    /// Moves queued bytes from the stream's send ring into the core, as far
    /// as its send buffer has room; then sends a pending FIN or finishes a
    /// pending close.
    fn tcp_push(&mut self, now: Instant, id: ConnId) {
        let Some(s) = self.tcp.streams.get_mut(&id) else {
            return;
        };
        let shared = s.shared.clone();
        let drained = {
            let mut buf = shared.lock();
            buf.push_pending = false;
            while !buf.tx.is_empty() {
                let (front, _) = buf.tx.as_slices();
                match self.iface.tcp().send(now, id, front) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.tx.drain(..n);
                    }
                    Err(e) => {
                        if e != TcpError::NotConnected {
                            buf.error.get_or_insert(e.kind());
                        }
                        buf.tx.clear();
                        break;
                    }
                }
            }
            buf.tx.is_empty()
        };
        shared.notify();
        if !drained {
            return;
        }
        if s.shutdown_pending {
            s.shutdown_pending = false;
            let _ = self.iface.tcp().shutdown_write(now, id);
        }
        if s.closing {
            self.tcp.streams.remove(&id);
            let _ = self.iface.tcp().close(now, id);
        }
    }
}
