//! What a UDP socket shares with the runtime: its queue of received
//! datagrams (bounded in bytes, like `SO_RCVBUF`), the bytes it has handed
//! the runtime to send and that are not sent yet (bounded like
//! `SO_SNDBUF`, so a fast sender waits instead of growing memory), and who
//! waits for either: blocked threads, or a task's waker.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant as StdInstant;

/// Bookkeeping cost of a queued datagram beyond its payload, like the
/// kernel's per-skb overhead, so empty datagrams still count.
pub(crate) const DATAGRAM_OVERHEAD: usize = 64;

/// Bytes a socket may have queued for sending, by default.
pub(crate) const DEFAULT_SEND_BUFFER: usize = 256 * 1024;

/// What a UDP socket's queue holds: datagrams, and errors that ICMP reported.
pub(crate) enum UdpDelivery {
    Datagram(SocketAddr, Vec<u8>),
    Error(io::ErrorKind),
}

impl UdpDelivery {
    fn cost(&self) -> usize {
        match self {
            UdpDelivery::Datagram(_, p) => p.len() + DATAGRAM_OVERHEAD,
            UdpDelivery::Error(_) => DATAGRAM_OVERHEAD,
        }
    }
}

/// The state behind the lock.
pub(crate) struct UdpState {
    rx: VecDeque<UdpDelivery>,
    rx_bytes: usize,
    /// Receive buffer size (`set_recv_buffer_size`).
    pub(crate) rx_capacity: usize,
    /// Bytes handed to the runtime and not sent yet.
    tx_pending: usize,
    /// Send buffer size.
    pub(crate) tx_capacity: usize,
    /// The runtime has stopped.
    pub(crate) gone: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl UdpState {
    /// The next delivery, without taking it.
    pub(crate) fn front(&self) -> Option<&UdpDelivery> {
        self.rx.front()
    }

    /// Takes the next delivery.
    pub(crate) fn pop(&mut self) -> Option<UdpDelivery> {
        let d = self.rx.pop_front()?;
        self.rx_bytes -= d.cost();
        Some(d)
    }

    /// Reserves room for `len` bytes to send; false when the send buffer is
    /// full (wait for the runtime to send what is queued).
    pub(crate) fn reserve_send(&mut self, len: usize) -> bool {
        let cost = len + DATAGRAM_OVERHEAD;
        // One datagram always fits in an empty buffer, whatever its size.
        if self.tx_pending > 0 && self.tx_pending + cost > self.tx_capacity {
            return false;
        }
        self.tx_pending += cost;
        true
    }

    pub(crate) fn register_reader(&mut self, waker: &Waker) {
        register(&mut self.reader, waker);
    }

    pub(crate) fn register_writer(&mut self, waker: &Waker) {
        register(&mut self.writer, waker);
    }
}

fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// One UDP socket's queues.
pub(crate) struct UdpShared {
    state: Mutex<UdpState>,
    cond: Condvar,
}

impl UdpShared {
    pub(crate) fn new(rx_capacity: usize) -> UdpShared {
        UdpShared {
            state: Mutex::new(UdpState {
                rx: VecDeque::new(),
                rx_bytes: 0,
                rx_capacity,
                tx_pending: 0,
                tx_capacity: DEFAULT_SEND_BUFFER,
                gone: false,
                reader: None,
                writer: None,
            }),
            cond: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, UdpState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a delivery if the receive buffer has room (an ICMP error
    /// always fits); false when it was dropped.
    pub(crate) fn deliver(&self, d: UdpDelivery) -> bool {
        let waker = {
            let mut st = self.lock();
            let cost = d.cost();
            let is_error = matches!(d, UdpDelivery::Error(_));
            if !is_error && st.rx_bytes + cost > st.rx_capacity {
                return false;
            }
            st.rx_bytes += cost;
            st.rx.push_back(d);
            st.reader.take()
        };
        self.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// The runtime sent (or dropped) `len` bytes this socket queued.
    pub(crate) fn sent(&self, len: usize) {
        let waker = {
            let mut st = self.lock();
            st.tx_pending = st.tx_pending.saturating_sub(len + DATAGRAM_OVERHEAD);
            st.writer.take()
        };
        self.cond.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The stack stopped: wakes everyone.
    pub(crate) fn stopped(&self) {
        let (r, w) = {
            let mut st = self.lock();
            st.gone = true;
            (st.reader.take(), st.writer.take())
        };
        self.cond.notify_all();
        for waker in [r, w].into_iter().flatten() {
            waker.wake();
        }
    }

    /// Blocks until something changes or `deadline`; true if it passed.
    pub(crate) fn wait<'a>(
        &self,
        guard: MutexGuard<'a, UdpState>,
        deadline: Option<StdInstant>,
    ) -> (MutexGuard<'a, UdpState>, bool) {
        match deadline {
            None => (
                self.cond
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner),
                false,
            ),
            Some(d) => {
                let left = d.saturating_duration_since(StdInstant::now());
                if left.is_zero() {
                    return (guard, true);
                }
                let (g, r) = self
                    .cond
                    .wait_timeout(guard, left)
                    .unwrap_or_else(PoisonError::into_inner);
                (g, r.timed_out())
            }
        }
    }
}
