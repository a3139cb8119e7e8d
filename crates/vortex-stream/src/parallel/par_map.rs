use core::fmt;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream};
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

use super::stage::panic_error;
use crate::core::Carried;
use crate::Result;

/// Values a worker runs before it hands its thread back to rayon, so that other stages
/// sharing the pool get their turn.
const RUN: usize = 64;

/// The time a worker aims to spend on one batch of values: long enough that taking the batch
/// and handing its results over (a lock each, and now and then a wake-up of the stage) cost
/// little beside it, short enough that a finished value is not held back long.
const BATCH_TIME: Duration = Duration::from_micros(50);

/// Values that take at least this long are handed over one by one, as each is finished, so
/// that a value finished early in a batch is not held back by a slow one after it; cheaper
/// ones at the end of their batch (handing each over alone cost up to a quarter of the work
/// at 0.2 µs a value). Measured from the last batch, as the batch size is.
const ALONE: Duration = Duration::from_micros(2);

/// The most values in one batch.
const MAX_BATCH: usize = 512;

/// The most values the window grows to when it is left to grow (see `Parallelism::window`).
const MAX_WINDOW: usize = 1024;

/// What the stage and its workers share.
struct Shared<T, U> {
    state: Mutex<State<T, U>>,
    waker: AtomicWaker,
    // Values a worker takes at a time, from the time the last batch took.
    batch: AtomicUsize,
    // Whether a worker hands its values over one by one (see `ALONE`), from the same.
    alone: AtomicBool,
    // The value the parked stage waits for (`ANY` when unordered), or `NONE`: the worker that
    // finishes it wakes the stage at once, not at the end of its batch.
    wanted: AtomicU64,
    // The stage's span and subscriber, for its workers.
    carried: Carried,
}

/// `wanted` when the stage is not waiting for a value.
const NONE: u64 = u64::MAX;
/// `wanted` when any value will do (unordered).
const ANY: u64 = u64::MAX - 1;

/// A finished value, or the panic of its closure.
type Finished<U> = (u64, std::thread::Result<U>);

/// One job's values handed over one by one (see [`ALONE`]): a lock of its own, which only
/// its job and the stage take, so that workers handing values over do not contend for one.
type Outbox<U> = Mutex<Vec<Finished<U>>>;

struct State<T, U> {
    // Values waiting for a worker, with their sequence numbers.
    queue: VecDeque<(u64, T)>,
    // Finished values handed over at the end of a batch, or by a job that ended, not yet
    // taken by the stage.
    done: Vec<Finished<U>>,
    // The outboxes of the jobs running that hand values over one by one.
    outboxes: Vec<Arc<Outbox<U>>>,
    // Rayon jobs alive: running values or about to take some.
    jobs: usize,
    // The stage was dropped: workers stop taking values.
    closed: bool,
    // The stage is waiting for the workers: for the value with this sequence number (any
    // value for an unordered one: see `Shared::wanted`), or for the queue to run low.
    parked: Option<u64>,
}

impl<T, U> Shared<T, U> {
    fn lock(&self) -> MutexGuard<'_, State<T, U>> {
        // Nothing panics while the lock is held (user code runs outside it).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T, U> State<T, U> {
    /// The finished values not yet taken by the stage: those handed over in `done`, and with
    /// `outboxes` those in the running jobs' outboxes. The stage looks in the outboxes only
    /// when it has no value to yield: taking an outbox's lock after every value yielded would
    /// pull its memory away from the worker filling it each time.
    fn take_finished(&mut self, outboxes: bool) -> Vec<Finished<U>> {
        let mut finished = std::mem::take(&mut self.done);
        if outboxes {
            for outbox in &self.outboxes {
                finished.append(&mut lock_outbox(outbox));
            }
        }
        finished
    }

    fn any_finished(&self) -> bool {
        !self.done.is_empty() || self.outboxes.iter().any(|o| !lock_outbox(o).is_empty())
    }

    /// Ends a job: what its outbox holds is handed over; or, when the stage is gone,
    /// returned, to be dropped once the lock is released.
    #[must_use]
    fn retire(&mut self, outbox: &Arc<Outbox<U>>) -> Vec<Finished<U>> {
        self.outboxes.retain(|o| !Arc::ptr_eq(o, outbox));
        let mut left = std::mem::take(&mut *lock_outbox(outbox));
        if !self.closed {
            self.done.append(&mut left);
        }
        left
    }
}

fn lock_outbox<U>(outbox: &Outbox<U>) -> MutexGuard<'_, Vec<Finished<U>>> {
    // Nothing panics while it is held.
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One rayon job: takes batches of values from the queue and runs `f` on them until the queue
/// is empty (or it has run [`RUN`] values, and hands over to a fresh job).
///
/// Values go in batches sized from the time they take (about [`BATCH_TIME`] a batch): at a
/// fraction of a microsecond a value, taking and handing over each one alone cost more than
/// the work. Values of [`ALONE`] or more are handed over one by one as they finish, into the
/// job's outbox; cheaper ones together at the end of the batch. The stage's task is woken
/// only when it waits, and then only when what it waits for is there: the value it can yield
/// (the oldest, when ordered, or any), as soon as it is handed over, or a queue running low,
/// at the end of a batch. A wake-up is a thread switch, which on two cores took a core away
/// from the workers.
fn work<T, U, F>(shared: &Arc<Shared<T, U>>, f: &Arc<F>)
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    shared.carried.clone().run(|| work_in_span(shared, f));
}

fn work_in_span<T, U, F>(shared: &Arc<Shared<T, U>>, f: &Arc<F>)
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(T) -> U + Send + Sync + 'static,
{
    // The job's outbox, once it hands a value over alone.
    let mut outbox: Option<Arc<Outbox<U>>> = None;
    // Values finished and not handed over yet: the batch's, or one finished while the stage
    // held the outbox's lock (handed over with the next).
    let mut unsent = Vec::new();
    let mut batch = take(&mut shared.lock(), shared.batch.load(Ordering::Relaxed));
    let mut ran = 0;
    while !batch.is_empty() {
        let started = Instant::now();
        let count = batch.len();
        unsent.reserve(count);
        let alone = shared.alone.load(Ordering::Relaxed);
        for (seq, value) in batch.drain(..) {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(value)));
            unsent.push((seq, out));
            if !alone {
                continue;
            }
            let outbox = outbox.get_or_insert_with(|| {
                let outbox = Arc::default();
                shared.lock().outboxes.push(Arc::clone(&outbox));
                outbox
            });
            // Never waits for the lock: the stage holds it only to empty the outbox.
            let sent = match outbox.try_lock() {
                Ok(mut sent) => send(&mut sent, &mut unsent),
                Err(std::sync::TryLockError::Poisoned(e)) => send(&mut e.into_inner(), &mut unsent),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            wake_if_wanted(shared, sent);
        }
        let elapsed = started.elapsed();
        let size = batch_size(elapsed, count);
        let alone = elapsed >= ALONE.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX));
        shared.alone.store(alone, Ordering::Relaxed);
        shared.batch.store(size, Ordering::Relaxed);
        ran += count;
        let mut hand_over = false;
        let wake = {
            let mut state = shared.lock();
            if state.closed {
                // The stage is gone: the results are dropped (after the lock is released).
                state.jobs -= 1;
                let left = outbox.as_ref().map(|outbox| state.retire(outbox));
                drop(state);
                drop((left, unsent));
                return;
            }
            // The batch's values not handed over alone go with the others that ended, under
            // the lock the stage parks under.
            let yieldable = match (unsent.first(), unsent.last()) {
                (Some((first, _)), Some((last, _))) => {
                    let wanted = shared.wanted.load(Ordering::SeqCst);
                    wanted == ANY || (*first..=*last).contains(&wanted)
                }
                _ => false,
            };
            state.done.append(&mut unsent);
            let low = state.queue.len() <= state.jobs.saturating_mul(size);
            let wake = state.parked.is_some() && (yieldable || low);
            if wake {
                state.parked = None;
            }
            if ran < RUN {
                batch = take(&mut state, size);
            } else {
                hand_over = !state.queue.is_empty();
                if !hand_over {
                    state.jobs -= 1;
                }
            }
            if let Some(outbox) = outbox.as_ref().filter(|_| batch.is_empty()) {
                // Not closed: nothing comes back.
                let _ = state.retire(outbox);
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

/// Moves `unsent` into the outbox; the sequence numbers moved, first and last (a batch's are
/// consecutive).
fn send<U>(outbox: &mut Vec<Finished<U>>, unsent: &mut Vec<Finished<U>>) -> (u64, u64) {
    let first = unsent.first().map_or(0, |(seq, _)| *seq);
    let last = unsent.last().map_or(0, |(seq, _)| *seq);
    outbox.append(unsent);
    (first, last)
}

/// Wakes the stage if it waits for one of the values just put in an outbox: read after they
/// are there, so that a stage starting to wait for one after this found it there (it says
/// what it waits for before it looks).
fn wake_if_wanted<T, U>(shared: &Shared<T, U>, (first, last): (u64, u64)) {
    let wanted = shared.wanted.load(Ordering::SeqCst);
    if (wanted == ANY || (first..=last).contains(&wanted))
        && shared
            .wanted
            .compare_exchange(wanted, NONE, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        shared.waker.wake();
    }
}

/// The batch size for values that took `elapsed` for `count` of them.
fn batch_size(elapsed: Duration, count: usize) -> usize {
    let per_value = elapsed.as_nanos() / count.max(1) as u128;
    let fits = BATCH_TIME.as_nanos() / per_value.max(1);
    usize::try_from(fits)
        .unwrap_or(MAX_BATCH)
        .clamp(1, MAX_BATCH)
}

/// The next batch for a worker: up to `size` values, and no more than its share of the queue
/// (so that the other jobs get some); ends the job (and counts it gone) when there are none.
fn take<T, U>(state: &mut State<T, U>, size: usize) -> Vec<(u64, T)> {
    if state.closed || state.queue.is_empty() {
        state.jobs -= 1;
        return Vec::new();
    }
    let share = state.queue.len().div_ceil(state.jobs.max(1));
    let n = size.min(share).max(1);
    state.queue.drain(..n).collect()
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
        // The window may grow with the batch size, up to `MAX_WINDOW`.
        grows: bool,
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
        grows: bool,
        ordered: bool,
    ) -> Self {
        ParMap {
            stream,
            f: Arc::new(f),
            shared: Closer(Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    done: Vec::new(),
                    outboxes: Vec::new(),
                    jobs: 0,
                    closed: false,
                    parked: None,
                }),
                waker: AtomicWaker::new(),
                batch: AtomicUsize::new(1),
                alone: AtomicBool::new(true),
                wanted: AtomicU64::new(NONE),
                carried: Carried::here(tracing::debug_span!(
                    "vortex.parallel",
                    stage,
                    limit = limit.get()
                )),
            })),
            stage,
            ready: VecDeque::new(),
            next_seq: 0,
            next_out: 0,
            held: 0,
            limit: limit.get(),
            window: window.get().max(limit.get()),
            grows,
            ordered,
            upstream_done: false,
        }
    }

    /// Values pulled and not yet yielded: waiting, running, or finished and waiting for an
    /// older one.
    pub fn in_window(&self) -> usize {
        self.held
    }

    delegate_access_inner!(stream, S, holds: "values in flight and finished values not yet yielded");
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
        // Written only when it changes: the workers read it after every value.
        if shared.wanted.load(Ordering::Relaxed) != NONE {
            shared.wanted.store(NONE, Ordering::SeqCst);
        }
        // More jobs than the pool has threads would only wait in its queue.
        let jobs = (*this.limit).min(rayon::current_num_threads().max(1));
        loop {
            // Left to grow, the window holds two batches for each job, so that none waits.
            let batch = shared.batch.load(Ordering::Relaxed);
            let window = if *this.grows {
                (*this.window).max(jobs.saturating_mul(batch).saturating_mul(2).min(MAX_WINDOW))
            } else {
                *this.window
            };
            // A value ready to go leaves without taking the lock, unless there is room to
            // pull a batch's worth (pulled values are queued under the lock in one go).
            let room = window.saturating_sub(*this.held);
            let fill = room >= batch.max(2);
            if matches!(this.ready.front(), Some(Some(_))) && (*this.upstream_done || !fill) {
                if let Some(Some(result)) = this.ready.pop_front() {
                    *this.held -= 1;
                    *this.next_out += 1;
                    return Poll::Ready(Some(result));
                }
            }
            // Take what the workers finished.
            let yieldable = matches!(this.ready.front(), Some(Some(_)));
            let finished = shared.lock().take_finished(!yieldable);
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
                tracing::debug!(parent: shared.carried.span(), values = *this.next_out, "stage ended");
                return Poll::Ready(None);
            }
            // Pull while the window has room, and queue what came in one go.
            let mut pulled = Vec::new();
            let mut failed = None;
            while !*this.upstream_done && *this.held + pulled.len() < window {
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
                // Workers wake the task when a value it can yield is done or the queue runs
                // low; told so under the lock that they hand results over under. Cheap values
                // (batches of several) are not waited for: the task runs a batch itself, as
                // a worker would, for no longer than a batch takes.
                let helping = {
                    let mut state = shared.lock();
                    if state.any_finished() {
                        continue;
                    }
                    let share = state.queue.len().div_ceil(state.jobs + 1);
                    if batch >= 2 && share > 0 {
                        state.queue.drain(..batch.min(share)).collect::<Vec<_>>()
                    } else {
                        state.parked = Some(*this.next_out);
                        // Said before looking again: a worker that puts the value in its
                        // outbox after this look sees what is wanted, and wakes the task.
                        let wanted = if *this.ordered { *this.next_out } else { ANY };
                        shared.wanted.store(wanted, Ordering::SeqCst);
                        if state.any_finished() {
                            state.parked = None;
                            shared.wanted.store(NONE, Ordering::SeqCst);
                            continue;
                        }
                        return Poll::Pending;
                    }
                };
                for (seq, value) in helping {
                    let out = std::panic::catch_unwind(AssertUnwindSafe(|| (this.f)(value)))
                        .map_err(|payload| panic_error(this.stage, &*payload));
                    if *this.ordered {
                        let at = usize::try_from(seq - *this.next_out).unwrap_or(usize::MAX);
                        if let Some(slot) = this.ready.get_mut(at) {
                            *slot = Some(out);
                        }
                    } else {
                        this.ready.push_back(Some(out));
                    }
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
