use core::fmt;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_core::{FusedStream, Stream};
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

use super::stage::panic_error;
use crate::Result;

/// Values a worker takes from the queue before it hands its thread back to rayon, so that
/// other stages sharing the pool get their turn.
const RUN: usize = 64;

/// What the stage and its workers share.
struct Shared<T, U> {
    state: Mutex<State<T, U>>,
    waker: AtomicWaker,
}

struct State<T, U> {
    // Values waiting for a worker, with their sequence numbers.
    queue: VecDeque<(u64, T)>,
    // Finished values not yet taken by the stage.
    done: Vec<(u64, std::thread::Result<U>)>,
    // Rayon jobs alive: running a value or about to take one.
    jobs: usize,
    // The stage was dropped: workers stop taking values.
    closed: bool,
}

impl<T, U> Shared<T, U> {
    fn lock(&self) -> MutexGuard<'_, State<T, U>> {
        // Nothing panics while the lock is held (user code runs outside it).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One rayon job: takes values from the queue and runs `f` on them until the queue is empty
/// (or it has run [`RUN`] of them, and hands over to a fresh job).
///
/// It wakes the stage only when the queue is about to run dry (no more values waiting than
/// workers to take them), not for every value: the stage then takes every finished value and
/// refills the queue in one go. Waking the stage's task once per value costs a thread switch
/// per value, which on two cores was most of what kept `par_map` from scaling.
fn work<T, U, F>(shared: &Arc<Shared<T, U>>, f: &Arc<F>)
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    let mut next = take(&mut shared.lock());
    let mut ran = 0;
    while let Some((seq, value)) = next {
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(value)));
        ran += 1;
        let mut hand_over = false;
        let wake = {
            let mut state = shared.lock();
            if state.closed {
                // The stage is gone: the result is dropped (after the lock is released).
                state.jobs -= 1;
                return;
            }
            state.done.push((seq, out));
            let wake = state.queue.len() <= state.jobs;
            if ran < RUN {
                next = take(&mut state);
            } else {
                next = None;
                hand_over = !state.queue.is_empty();
                if !hand_over {
                    state.jobs -= 1;
                }
            }
            wake
        };
        if hand_over {
            // A fresh job takes this one's place (and its count) at the back of the pool.
            let (shared, f) = (Arc::clone(shared), Arc::clone(f));
            rayon::spawn(move || work(&shared, &f));
        }
        if wake {
            shared.waker.wake();
        }
    }
}

/// The next value for a worker; ends the job (and counts it gone) when there is none.
fn take<T, U>(state: &mut State<T, U>) -> Option<(u64, T)> {
    if state.closed {
        state.jobs -= 1;
        return None;
    }
    let next = state.queue.pop_front();
    if next.is_none() {
        state.jobs -= 1;
    }
    next
}

pin_project! {
    /// Stream for the [`par_map`](crate::Pipeline::par_map) and
    /// [`par_map_unordered`](crate::Pipeline::par_map_unordered) methods.
    ///
    /// Values wait in a queue that up to `limit` rayon jobs take from; the stage holds at most
    /// `window` values between pulling and yielding (waiting, running, or finished and waiting
    /// for an older one).
    #[must_use = "streams do nothing unless polled"]
    pub struct ParMap<S, F, T, U> {
        #[pin]
        stream: S,
        f: Arc<F>,
        shared: Closer<T, U>,
        stage: &'static str,
        // Ordered: finished values from `next_out` on, by sequence number. Unordered: finished
        // values in the order they came.
        ready: VecDeque<Option<Result<U>>>,
        next_seq: u64,
        next_out: u64,
        held: usize,
        limit: usize,
        window: usize,
        ordered: bool,
        upstream_done: bool,
    }

}

/// Closes the queue when the stage is dropped: values waiting are dropped at once; a value
/// running finishes on its thread and its result is dropped there.
struct Closer<T, U>(Arc<Shared<T, U>>);

impl<T, U> Drop for Closer<T, U> {
    fn drop(&mut self) {
        let queue = {
            let mut state = self.0.lock();
            state.closed = true;
            std::mem::take(&mut state.queue)
        };
        drop(queue);
    }
}

impl<S, F, T, U> ParMap<S, F, T, U> {
    pub(crate) fn new(
        stream: S,
        f: F,
        stage: &'static str,
        limit: NonZeroUsize,
        window: NonZeroUsize,
        ordered: bool,
    ) -> Self {
        ParMap {
            stream,
            f: Arc::new(f),
            shared: Closer(Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    done: Vec::new(),
                    jobs: 0,
                    closed: false,
                }),
                waker: AtomicWaker::new(),
            })),
            stage,
            ready: VecDeque::new(),
            next_seq: 0,
            next_out: 0,
            held: 0,
            limit: limit.get(),
            window: window.get().max(limit.get()),
            ordered,
            upstream_done: false,
        }
    }

    /// Values pulled and not yet yielded: waiting, running, or finished and waiting for an
    /// older one.
    pub fn in_window(&self) -> usize {
        self.held
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F, T, U> fmt::Debug for ParMap<S, F, T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParMap")
            .field("stream", &self.stream)
            .field("stage", &self.stage)
            .field("in_window", &self.held)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<S, F, T, U> Stream for ParMap<S, F, T, U>
where
    S: Stream<Item = Result<T>>,
    F: Fn(T) -> U + Send + Sync + 'static,
    T: Send + 'static,
    U: Send + 'static,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let shared = &this.shared.0;
        shared.waker.register(cx.waker());
        loop {
            // Take what the workers finished.
            let finished = std::mem::take(&mut shared.lock().done);
            for (seq, out) in finished {
                let result = out.map_err(|payload| panic_error(this.stage, &*payload));
                if *this.ordered {
                    let at = usize::try_from(seq - *this.next_out).unwrap_or(usize::MAX);
                    if let Some(slot) = this.ready.get_mut(at) {
                        *slot = Some(result);
                    }
                } else {
                    this.ready.push_back(Some(result));
                }
            }
            // Yield the oldest value (ordered) or any finished one.
            if matches!(this.ready.front(), Some(Some(_))) {
                if let Some(Some(result)) = this.ready.pop_front() {
                    *this.held -= 1;
                    *this.next_out += 1;
                    return Poll::Ready(Some(result));
                }
            }
            if *this.upstream_done && *this.held == 0 {
                return Poll::Ready(None);
            }
            // Pull while the window has room, and queue what came in one go.
            let mut pulled = Vec::new();
            let mut failed = None;
            while !*this.upstream_done && *this.held + pulled.len() < *this.window {
                match this.stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(value))) => {
                        pulled.push((*this.next_seq, value));
                        *this.next_seq += 1;
                    }
                    Poll::Ready(Some(Err(err))) => {
                        failed = Some(err);
                        break;
                    }
                    Poll::Ready(None) => *this.upstream_done = true,
                    Poll::Pending => break,
                }
            }
            let queued = !pulled.is_empty();
            if queued {
                *this.held += pulled.len();
                if *this.ordered {
                    this.ready.extend(pulled.iter().map(|_| None));
                }
                let spawn = {
                    let mut state = shared.lock();
                    state.queue.extend(pulled);
                    // More jobs than the pool has threads would only wait in its queue.
                    let jobs = (*this.limit).min(rayon::current_num_threads().max(1));
                    let spawn = jobs.saturating_sub(state.jobs).min(state.queue.len());
                    state.jobs += spawn;
                    spawn
                };
                for _ in 0..spawn {
                    let (shared, f) = (Arc::clone(shared), Arc::clone(this.f));
                    rayon::spawn(move || work(&shared, &f));
                }
            }
            if let Some(err) = failed {
                if !*this.ordered {
                    return Poll::Ready(Some(Err(err)));
                }
                // In order: the error takes its place among the values.
                this.ready.push_back(Some(Err(err)));
                *this.held += 1;
                *this.next_seq += 1;
                continue;
            }
            if !queued {
                if *this.upstream_done && *this.held == 0 {
                    return Poll::Ready(None);
                }
                // Workers wake the task when the queue runs low or a value is all that is left.
                let idle = shared.lock().done.is_empty();
                if idle {
                    return Poll::Pending;
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        super::size_hint(self.held, self.upstream_done, &self.stream)
    }
}

impl<S, F, T, U> FusedStream for ParMap<S, F, T, U>
where
    S: Stream<Item = Result<T>>,
    F: Fn(T) -> U + Send + Sync + 'static,
    T: Send + 'static,
    U: Send + 'static,
{
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.held == 0
    }
}
