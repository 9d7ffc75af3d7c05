//! A LISTEN endpoint: its SYN queue (half-open connections in SYN-RCVD)
//! and accept queue (established, waiting for `accept`), both bounded by
//! the backlog.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::time::Instant;

use super::api::{ConnId, ListenerId};
use super::options::TcpOption;

/// A listening endpoint.
#[derive(Debug)]
pub(crate) struct Listener {
    pub id: ListenerId,
    pub local: SocketAddr,
    pub backlog: usize,
    /// Connections in SYN-RCVD.
    pub syn_queue: Vec<ConnId>,
    /// Established connections not yet accepted.
    pub accept_queue: VecDeque<ConnId>,
    /// When a SYN cookie was last sent (RFC 4987 §3.6): cookies are
    /// accepted only while they are in use.
    pub cookies_sent_at: Option<Instant>,
    /// Options the application set on the listener, applied to every
    /// connection it accepts before the connection sends its SYN-ACK.
    pub options: Vec<TcpOption>,
}

impl Listener {
    pub fn new(id: ListenerId, local: SocketAddr, backlog: usize) -> Self {
        Listener {
            id,
            local,
            backlog,
            syn_queue: Vec::new(),
            accept_queue: VecDeque::new(),
            cookies_sent_at: None,
            options: Vec::new(),
        }
    }

    /// Room for one more half-open connection? Like Linux, a full accept
    /// queue also turns SYNs away.
    pub fn can_take_syn(&self) -> bool {
        self.syn_queue.len() < self.backlog && self.accept_queue.len() < self.backlog
    }

    /// Room in the accept queue?
    pub fn can_accept(&self) -> bool {
        self.accept_queue.len() < self.backlog
    }

    /// Forgets `id` wherever it is queued.
    pub fn remove(&mut self, id: ConnId) {
        self.syn_queue.retain(|c| *c != id);
        self.accept_queue.retain(|c| *c != id);
    }

    /// Moves `id` from the SYN queue to the accept queue.
    pub fn promote(&mut self, id: ConnId) {
        self.syn_queue.retain(|c| *c != id);
        self.accept_queue.push_back(id);
    }
}
