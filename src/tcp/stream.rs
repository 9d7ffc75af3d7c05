//! What one connection shares with its application handle.
//!
//! A [`Stream`] holds the connection's two buffers (the core sends from and
//! receives into the same rings the application writes to and reads from),
//! the facts each side needs from the other (connected, end of stream,
//! error; shut down for reading or writing), and two wait slots. Each side
//! wakes the other only when it sleeps: the core wakes a reader only if a
//! reader is waiting (a blocked thread, or a task's [`std::task::Waker`]),
//! and the application pokes the runtime only when the core asked to be
//! told ([`StreamState::push_wanted`], [`StreamState::window_update_at`]).
//!
//! The core locks a stream once per segment, timer or call it handles for
//! the connection and records wake-ups in the state; they are delivered by
//! [`Stream::unlock`] after the lock is released.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Instant as StdInstant;

use super::api::TcpError;
use super::buffer::{RecvBuffer, SendBuffer};

/// Who waits for one side of a stream: threads blocked in the blocking
/// API, and at most one task (the async API).
#[derive(Debug, Default)]
struct WaitSlot {
    threads: u32,
    waker: Option<Waker>,
    /// A wake-up was recorded while the lock was held.
    pending: bool,
}

/// The state behind a [`Stream`]'s lock.
#[derive(Debug)]
pub struct StreamState {
    /// Data queued for sending, from SND.UNA on.
    pub send: SendBuffer,
    /// Data received and not yet read.
    pub recv: RecvBuffer,
    /// The handshake completed (set by the core).
    pub connected: bool,
    /// The peer's FIN arrived: after the ready bytes, reads see end of
    /// stream (set by the core).
    pub eof: bool,
    /// The connection reached CLOSED (set by the core).
    pub closed: bool,
    /// Why it ended, when not cleanly (set by the core).
    pub error: Option<TcpError>,
    /// The core will take no more data: FIN queued or the connection is
    /// over (set by the core).
    pub send_closed: bool,
    /// Our FIN was acknowledged: everything sent arrived (set by the core).
    pub fin_acked: bool,
    /// The application sent urgent data ending at this stream offset (of
    /// the send buffer's [`SendBuffer::pushed`]); the core takes it.
    pub urgent_send_end: Option<u64>,
    /// The peer's urgent data ends at this stream offset (of the receive
    /// buffer's [`RecvBuffer::consumed`]) (set by the core).
    pub urgent_recv_end: Option<u64>,
    /// `shutdown(Read)` was called: received data is discarded.
    pub read_shut: bool,
    /// `shutdown(Write)` was called.
    pub write_shut: bool,
    /// A read has returned `error` once (as on Linux, an error fails one read).
    pub read_error_reported: bool,
    /// The runtime has stopped; every call fails.
    pub gone: bool,
    /// The core has sent everything queued and would send more: the
    /// application must poke the runtime after queueing data.
    pub push_wanted: bool,
    /// The core advertised a small window: once the receive buffer's free
    /// space reaches this many bytes, the application must poke the runtime
    /// so it announces the larger window (RFC 9293 §3.8.6.2.2).
    pub window_update_at: Option<usize>,
    readers: WaitSlot,
    writers: WaitSlot,
}

impl StreamState {
    /// Records that readers should be woken (data, end of stream, error).
    pub fn wake_readers(&mut self) {
        self.readers.pending = true;
    }

    /// Records that writers should be woken (room to write, connected, error).
    pub fn wake_writers(&mut self) {
        self.writers.pending = true;
    }

    /// Records both.
    pub fn wake_all(&mut self) {
        self.wake_readers();
        self.wake_writers();
    }

    /// Whether a writer waits for room in the send buffer (a blocked
    /// thread, or a task's waker) and no wake-up is on its way: Linux's
    /// `SOCK_NOSPACE`.
    pub fn writer_waiting(&self) -> bool {
        !self.writers.pending && (self.writers.threads > 0 || self.writers.waker.is_some())
    }

    /// Registers `waker` to be woken when reading may make progress.
    pub fn register_reader(&mut self, waker: &Waker) {
        register(&mut self.readers.waker, waker);
    }

    /// Registers `waker` to be woken when writing may make progress.
    pub fn register_writer(&mut self, waker: &Waker) {
        register(&mut self.writers.waker, waker);
    }

    /// True when the application should poke the runtime after reading:
    /// the window grew enough to be worth announcing.
    pub fn needs_window_update(&mut self) -> bool {
        match self.window_update_at {
            Some(at) if self.recv.window() >= at => {
                self.window_update_at = None;
                true
            }
            _ => false,
        }
    }

    /// True when the application should poke the runtime after queueing
    /// data (the core is waiting for it).
    pub fn take_push_wanted(&mut self) -> bool {
        std::mem::take(&mut self.push_wanted)
    }
}

/// Octets of the peer's urgent data not read yet (MUST-33).
pub fn urgent_remaining(st: &StreamState) -> usize {
    st.urgent_recv_end
        .map_or(0, |end| end.saturating_sub(st.recv.consumed()) as usize)
}

fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Wake-ups taken out of a [`StreamState`], delivered after unlocking.
#[derive(Debug, Default)]
#[must_use]
pub struct Wakeups {
    wakers: [Option<Waker>; 2],
    threads: bool,
}

impl Wakeups {
    /// Wakes whoever was recorded.
    fn deliver(self, stream: &Stream) {
        if self.threads {
            stream.cond.notify_all();
        }
        for w in self.wakers.into_iter().flatten() {
            w.wake();
        }
    }
}

/// One connection's shared buffers, flags and wait slots.
#[derive(Debug)]
pub struct Stream {
    state: Mutex<StreamState>,
    cond: Condvar,
}

impl Stream {
    /// A stream with these buffers.
    pub fn new(send: SendBuffer, recv: RecvBuffer) -> Stream {
        Stream {
            state: Mutex::new(StreamState {
                send,
                recv,
                connected: false,
                eof: false,
                closed: false,
                error: None,
                send_closed: false,
                fin_acked: false,
                urgent_send_end: None,
                urgent_recv_end: None,
                read_shut: false,
                write_shut: false,
                read_error_reported: false,
                gone: false,
                push_wanted: true,
                window_update_at: None,
                readers: WaitSlot::default(),
                writers: WaitSlot::default(),
            }),
            cond: Condvar::new(),
        }
    }

    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Releases the lock, then wakes whoever the holder recorded.
    pub fn unlock(&self, mut guard: MutexGuard<'_, StreamState>) {
        let wakeups = take_wakeups(&mut guard);
        drop(guard);
        wakeups.deliver(self);
    }

    /// Locks, runs `f`, unlocks and delivers the wake-ups `f` recorded.
    pub fn with<R>(&self, f: impl FnOnce(&mut StreamState) -> R) -> R {
        let mut guard = self.lock();
        let r = f(&mut guard);
        self.unlock(guard);
        r
    }

    /// Blocks the calling thread until a wake-up for readers (`read`) or
    /// writers, or until `deadline`. Returns the guard and whether the
    /// deadline passed without a wake-up.
    pub fn wait<'a>(
        &self,
        mut guard: MutexGuard<'a, StreamState>,
        read: bool,
        deadline: Option<StdInstant>,
    ) -> (MutexGuard<'a, StreamState>, bool) {
        let slot = if read {
            &mut guard.readers
        } else {
            &mut guard.writers
        };
        slot.threads += 1;
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
                    let slot = if read {
                        &mut guard.readers
                    } else {
                        &mut guard.writers
                    };
                    slot.threads = slot.threads.saturating_sub(1);
                    return (guard, true);
                }
                let (g, res) = self
                    .cond
                    .wait_timeout(guard, left)
                    .unwrap_or_else(PoisonError::into_inner);
                (g, res.timed_out())
            }
        }
    }
}

/// Takes the recorded wake-ups out of `st`: the wakers, and whether any
/// blocked thread must be notified (the count is cleared; a thread that
/// waits again counts itself again).
fn take_wakeups(st: &mut StreamState) -> Wakeups {
    let mut w = Wakeups::default();
    for (i, slot) in [&mut st.readers, &mut st.writers].into_iter().enumerate() {
        if std::mem::take(&mut slot.pending) {
            w.wakers[i] = slot.waker.take();
            if slot.threads > 0 {
                slot.threads = 0;
                w.threads = true;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn stream() -> Stream {
        Stream::new(SendBuffer::new(64), RecvBuffer::new(64))
    }

    #[test]
    fn a_registered_waker_is_woken_once_and_only_when_recorded() {
        let s = stream();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        s.with(|st| st.register_reader(&waker));
        s.with(|st| st.wake_writers());
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "writers are not readers");
        s.with(|st| st.wake_readers());
        s.with(|st| st.wake_readers());
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "a waker fires once per registration"
        );
    }

    #[test]
    fn a_blocked_thread_is_woken_by_a_recorded_wakeup() {
        let s = Arc::new(stream());
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            let mut g = s2.lock();
            while !g.eof {
                g = s2.wait(g, true, None).0;
            }
        });
        // Give the thread time to block, then mark end of stream.
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.with(|st| {
            st.eof = true;
            st.wake_readers();
        });
        t.join().expect("reader thread");
    }

    #[test]
    fn the_window_update_poke_fires_once_the_window_reaches_its_mark() {
        let s = stream();
        s.with(|st| {
            st.recv.write(0, &[1; 60]);
            st.window_update_at = Some(32);
            assert!(!st.needs_window_update());
            st.recv.consume(40);
            assert!(st.needs_window_update());
            assert!(!st.needs_window_update(), "once");
        });
    }
}
