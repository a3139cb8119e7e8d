use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures_core::{FusedStream, Stream};

use crate::Result;

/// What the consumers of one upstream share.
struct Shared<S, T> {
    stream: Option<Pin<Box<S>>>,
    /// Items some consumer has not taken yet; `buffer[0]` is item number `base`.
    buffer: VecDeque<Result<T>>,
    base: u64,
    /// The next item number of each consumer; `None` once it is dropped.
    cursors: Vec<Option<u64>>,
    /// Consumers waiting for an item or for room.
    waiting: Vec<Option<Waker>>,
    capacity: usize,
}

impl<S, T> Shared<S, T> {
    /// Drops the items every live consumer has taken.
    fn trim(&mut self) {
        let Some(slowest) = self.cursors.iter().flatten().min().copied() else {
            self.buffer.clear();
            return;
        };
        while self.base < slowest && self.buffer.pop_front().is_some() {
            self.base += 1;
        }
    }

    fn wake_all(&mut self) {
        for waker in self.waiting.iter_mut().filter_map(Option::take) {
            waker.wake();
        }
    }
}

/// One consumer of a [`tee`](crate::Pipeline::tee).
#[must_use = "streams do nothing unless polled, and an unpolled consumer of a tee holds the others back"]
pub struct Tee<S, T> {
    shared: Arc<Mutex<Shared<S, T>>>,
    index: usize,
    done: bool,
}

impl<S, T> fmt::Debug for Tee<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tee")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<S, T> Tee<S, T> {
    pub(crate) fn split(stream: S, consumers: usize, capacity: usize) -> Vec<Tee<S, T>> {
        let shared = Arc::new(Mutex::new(Shared {
            stream: Some(Box::pin(stream)),
            buffer: VecDeque::new(),
            base: 0,
            cursors: vec![Some(0); consumers],
            waiting: (0..consumers).map(|_| None).collect(),
            capacity,
        }));
        (0..consumers)
            .map(|index| Tee {
                shared: Arc::clone(&shared),
                index,
                done: false,
            })
            .collect()
    }
}

// The upstream is only reached through the mutex, pinned in its box.
impl<S, T> Unpin for Tee<S, T> {}

impl<S, T> Stream for Tee<S, T>
where
    S: Stream<Item = Result<T>>,
    T: Clone,
{
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let index = self.index;
        let shared = Arc::clone(&self.shared);
        let mut shared = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(cursor) = shared.cursors[index] else {
            return Poll::Ready(None);
        };
        let end = shared.base + shared.buffer.len() as u64;
        if cursor < end {
            // Behind the others: take the next buffered item.
            let offset = usize::try_from(cursor - shared.base).unwrap_or(usize::MAX);
            let item = shared.buffer.get(offset).cloned();
            shared.cursors[index] = Some(cursor + 1);
            shared.trim();
            // Room may have opened for whoever waits on the slowest.
            shared.wake_all();
            return Poll::Ready(item);
        }
        // Caught up: pull upstream, unless the slowest consumer is a full buffer behind.
        if shared.buffer.len() >= shared.capacity {
            shared.waiting[index] = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let polled = match shared.stream.as_mut() {
            Some(stream) => stream.as_mut().poll_next(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(Some(item)) => {
                let mine = item.clone();
                shared.buffer.push_back(item);
                shared.cursors[index] = Some(cursor + 1);
                shared.trim();
                shared.wake_all();
                Poll::Ready(Some(mine))
            }
            Poll::Ready(None) => {
                shared.stream = None;
                shared.wake_all();
                drop(shared);
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                shared.waiting[index] = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<S, T> FusedStream for Tee<S, T>
where
    S: Stream<Item = Result<T>>,
    T: Clone,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S, T> Drop for Tee<S, T> {
    fn drop(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.cursors[self.index] = None;
        shared.waiting[self.index] = None;
        shared.trim();
        if shared.cursors.iter().all(Option::is_none) {
            // The last consumer is gone: so is the upstream.
            shared.stream = None;
        }
        shared.wake_all();
    }
}
