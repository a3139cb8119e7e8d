use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::stage::Work;
use super::Start;
use crate::Result;

/// One lane: at most one call running, the values waiting for it in order.
struct Lane<T, U> {
    running: Option<Work<U>>,
    waiting: VecDeque<T>,
}

pin_project! {
    /// Stream for the [`partition_by`](crate::Pipeline::partition_by) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct PartitionBy<S, T, KF, St, U> {
        #[pin]
        stream: S,
        key: KF,
        start: St,
        hasher: RandomState,
        lanes: Vec<Lane<T, U>>,
        // Values pulled and not yet yielded, running or waiting.
        held: usize,
        window: usize,
        // The lane looked at first next time, for fairness.
        next: usize,
        upstream_done: bool,
    }
}

impl<S, T, KF, St, U> PartitionBy<S, T, KF, St, U> {
    pub(crate) fn new(stream: S, key: KF, start: St, lanes: usize, window: usize) -> Self {
        PartitionBy {
            stream,
            key,
            start,
            hasher: RandomState::new(),
            lanes: (0..lanes.max(1))
                .map(|_| Lane {
                    running: None,
                    waiting: VecDeque::new(),
                })
                .collect(),
            held: 0,
            window: window.max(lanes),
            next: 0,
            upstream_done: false,
        }
    }

    /// Values pulled and not yet yielded.
    pub fn in_window(&self) -> usize {
        self.held
    }
}

impl<S: fmt::Debug, T, KF, St, U> fmt::Debug for PartitionBy<S, T, KF, St, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionBy")
            .field("stream", &self.stream)
            .field("lanes", &self.lanes.len())
            .field("held", &self.held)
            .field("window", &self.window)
            .finish()
    }
}

impl<S, T, K, KF, St, U> Stream for PartitionBy<S, T, KF, St, U>
where
    S: Stream<Item = Result<T>>,
    KF: FnMut(&T) -> K,
    K: Hash,
    St: Start<T, Output = U>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let lanes = this.lanes.len();
        while !*this.upstream_done && *this.held < *this.window {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(value))) => {
                    let hash = this.hasher.hash_one((this.key)(&value));
                    // The remainder is below `lanes`, a usize.
                    #[allow(clippy::cast_possible_truncation)]
                    let lane = &mut this.lanes[(hash % lanes as u64) as usize];
                    if lane.running.is_none() {
                        lane.running = Some(this.start.start(value));
                    } else {
                        lane.waiting.push_back(value);
                    }
                    *this.held += 1;
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => *this.upstream_done = true,
                Poll::Pending => break,
            }
        }
        for step in 0..lanes {
            let index = (*this.next + step) % lanes;
            let lane = &mut this.lanes[index];
            let Some(work) = lane.running.as_mut() else {
                continue;
            };
            if let Poll::Ready(result) = work.as_mut().poll(cx) {
                // The lane's next value starts at once, keeping the key's order.
                lane.running = lane
                    .waiting
                    .pop_front()
                    .map(|value| this.start.start(value));
                *this.held -= 1;
                *this.next = (index + 1) % lanes;
                return Poll::Ready(Some(result));
            }
        }
        if *this.held == 0 && *this.upstream_done {
            Poll::Ready(None)
        } else {
            // Every running call and, while there was room, upstream have our waker.
            Poll::Pending
        }
    }
}

impl<S, T, K, KF, St, U> FusedStream for PartitionBy<S, T, KF, St, U>
where
    S: Stream<Item = Result<T>>,
    KF: FnMut(&T) -> K,
    K: Hash,
    St: Start<T, Output = U>,
{
    fn is_terminated(&self) -> bool {
        self.upstream_done && self.held == 0
    }
}
