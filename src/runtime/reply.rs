//! One answer from the runtime to a command, awaited by a blocked thread
//! or by a task.
//!
//! A command that needs an answer carries a [`Reply`]; the caller keeps
//! the [`Answer`] and either blocks on it ([`Answer::wait`]) or awaits it
//! (it is a `Future`). A reply dropped unanswered (the runtime stopped)
//! reads as `None`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

struct Slot<T> {
    value: Option<T>,
    /// The reply was sent or dropped.
    done: bool,
    waker: Option<Waker>,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    cond: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The runtime's end: answer once.
pub(crate) struct Reply<T>(Option<Arc<Shared<T>>>);

/// The caller's end.
pub(crate) struct Answer<T>(Arc<Shared<T>>);

/// A reply and its answer.
pub(crate) fn reply<T>() -> (Reply<T>, Answer<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot {
            value: None,
            done: false,
            waker: None,
        }),
        cond: Condvar::new(),
    });
    (Reply(Some(shared.clone())), Answer(shared))
}

impl<T> Reply<T> {
    /// Answers the command.
    pub(crate) fn send(mut self, value: T) {
        if let Some(shared) = self.0.take() {
            finish(&shared, Some(value));
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            finish(&shared, None);
        }
    }
}

fn finish<T>(shared: &Shared<T>, value: Option<T>) {
    let waker = {
        let mut slot = shared.lock();
        slot.value = value;
        slot.done = true;
        slot.waker.take()
    };
    shared.cond.notify_all();
    if let Some(w) = waker {
        w.wake();
    }
}

impl<T> Answer<T> {
    /// Blocks until the answer; `None` if the runtime dropped the command.
    pub(crate) fn wait(self) -> Option<T> {
        let mut slot = self.0.lock();
        while !slot.done {
            slot = self
                .0
                .cond
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
        slot.value.take()
    }
}

impl<T> Future for Answer<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut slot = self.0.lock();
        if slot.done {
            return Poll::Ready(slot.value.take());
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_arrives_across_threads_and_a_dropped_reply_reads_none() {
        let (r, a) = reply::<u32>();
        let t = std::thread::spawn(move || r.send(7));
        assert_eq!(a.wait(), Some(7));
        t.join().expect("replier");
        let (r, a) = reply::<u32>();
        drop(r);
        assert_eq!(a.wait(), None);
    }
}
