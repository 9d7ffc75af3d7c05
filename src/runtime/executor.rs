//! Tasks that run on the runtime thread itself.
//!
//! [`crate::Stack::spawn`] puts a future here; the runtime polls the tasks
//! that were woken after it has taken in a batch of packets and before it
//! writes its output, so a task that answers a request (the echo service)
//! has its reply, with the ACK riding on it, in the same batch of writes,
//! and no thread is woken anywhere. A task woken from another thread
//! wakes the runtime only if it sleeps.
//!
//! A connection costs its state, not a thread: the built-in services run
//! here, one task per connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use super::RuntimeWaker;

/// A boxed task.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

thread_local! {
    /// Set on the runtime thread, so blocking calls made from a task can
    /// fail instead of deadlocking the stack.
    static ON_RUNTIME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the runtime thread.
pub(crate) fn enter_runtime() {
    ON_RUNTIME.with(|f| f.set(true));
}

/// True on the runtime thread (inside a task).
pub(crate) fn on_runtime() -> bool {
    ON_RUNTIME.with(|f| f.get())
}

/// Task ids woken since the last run, shared with every task's waker.
pub(crate) struct ReadyQueue {
    woken: Mutex<Vec<(usize, u64)>>,
    runtime: Arc<RuntimeWaker>,
}

impl ReadyQueue {
    pub(crate) fn new(runtime: Arc<RuntimeWaker>) -> Arc<ReadyQueue> {
        Arc::new(ReadyQueue {
            woken: Mutex::new(Vec::new()),
            runtime,
        })
    }

    fn push(&self, slot: usize, generation: u64) {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((slot, generation));
        self.runtime.wake();
    }

    fn take(&self, into: &mut Vec<(usize, u64)>) {
        let mut woken = self.woken.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *woken, into);
    }

    /// True when some task is waiting to be polled.
    pub(crate) fn is_empty(&self) -> bool {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// One task's waker: queues the task once until it is polled again.
struct TaskWaker {
    slot: usize,
    generation: u64,
    queued: AtomicBool,
    ready: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.slot, self.generation);
        }
    }
}

struct Task {
    future: BoxFuture,
    waker: Arc<TaskWaker>,
}

/// The runtime's tasks.
pub(crate) struct Executor {
    tasks: Vec<Option<Task>>,
    generations: Vec<u64>,
    free: Vec<usize>,
    ready: Arc<ReadyQueue>,
    batch: Vec<(usize, u64)>,
}

impl Executor {
    pub(crate) fn new(ready: Arc<ReadyQueue>) -> Executor {
        Executor {
            tasks: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            ready,
            batch: Vec::new(),
        }
    }

    /// Adds a task; it is polled at the next run.
    pub(crate) fn spawn(&mut self, future: BoxFuture) {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.tasks.push(None);
                self.generations.push(0);
                self.tasks.len() - 1
            }
        };
        self.generations[slot] += 1;
        let waker = Arc::new(TaskWaker {
            slot,
            generation: self.generations[slot],
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        waker.wake_by_ref();
        self.tasks[slot] = Some(Task { future, waker });
    }

    /// True when no woken task waits to be polled.
    pub(crate) fn idle(&self) -> bool {
        self.ready.is_empty()
    }

    /// Tasks alive.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tasks.len() - self.free.len()
    }

    /// Polls every task woken since the last run (each once; tasks woken
    /// while this runs are polled at the next run). Returns how many ran.
    pub(crate) fn run(&mut self) -> usize {
        let mut batch = std::mem::take(&mut self.batch);
        self.ready.take(&mut batch);
        let mut ran = 0;
        for &(slot, generation) in &batch {
            if self.generations.get(slot) != Some(&generation) {
                continue;
            }
            let Some(task) = self.tasks.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            task.waker.queued.store(false, Ordering::Release);
            let waker = Waker::from(task.waker.clone());
            let mut cx = Context::from_waker(&waker);
            ran += 1;
            if let Poll::Ready(()) = task.future.as_mut().poll(&mut cx) {
                self.tasks[slot] = None;
                self.free.push(slot);
            }
        }
        batch.clear();
        self.batch = batch;
        ran
    }

    /// Drops every task (the stack is stopping).
    pub(crate) fn clear(&mut self) {
        for (slot, t) in self.tasks.iter_mut().enumerate() {
            if t.take().is_some() {
                self.free.push(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A future that completes on its `n`-th poll, waking itself each time.
    struct CountDown(usize, Arc<AtomicUsize>);
    impl Future for CountDown {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            if self.0 == 0 {
                return Poll::Ready(());
            }
            self.0 -= 1;
            cx.waker().wake_by_ref();
            cx.waker().wake_by_ref(); // a second wake before the poll is one poll
            Poll::Pending
        }
    }

    #[test]
    fn woken_tasks_run_once_per_wake_and_finished_ones_are_dropped() {
        let runtime = Arc::new(RuntimeWaker::for_tests());
        let mut ex = Executor::new(ReadyQueue::new(runtime));
        let polls = Arc::new(AtomicUsize::new(0));
        ex.spawn(Box::pin(CountDown(2, polls.clone())));
        assert_eq!(ex.len(), 1);
        assert_eq!(ex.run(), 1);
        assert_eq!(ex.run(), 1);
        assert_eq!(ex.run(), 1);
        assert_eq!(ex.len(), 0, "done after its third poll");
        assert_eq!(ex.run(), 0);
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    }
}
