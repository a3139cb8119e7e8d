use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::core::stats::Point;
use crate::Result;

pin_project! {
    /// Stream for the [`observe`](crate::Pipeline::observe) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct Observe<S> {
        #[pin]
        stream: S,
        point: Arc<Point>,
        // When the point was asked for the item it waits for.
        asked: Option<Instant>,
        // When it last handed an item on.
        handed: Option<Instant>,
    }
}

impl<S> Observe<S> {
    pub(crate) fn new(stream: S, point: Arc<Point>) -> Self {
        Observe {
            stream,
            point,
            asked: None,
            handed: None,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug> fmt::Debug for Observe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observe")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl<S, T> Stream for Observe<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let asked = match *this.asked {
            Some(asked) => asked,
            None => {
                let now = Instant::now();
                if let Some(handed) = this.handed.take() {
                    Point::add(&this.point.holding_ns, now - handed);
                }
                *this.asked = Some(now);
                now
            }
        };
        let item = match this.stream.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        let now = Instant::now();
        Point::add(&this.point.pulling_ns, now - asked);
        *this.asked = None;
        match &item {
            Some(Ok(_)) => {
                this.point.items.fetch_add(1, Ordering::Relaxed);
                *this.handed = Some(now);
            }
            Some(Err(_)) => {
                this.point.items.fetch_add(1, Ordering::Relaxed);
                this.point.errors.fetch_add(1, Ordering::Relaxed);
                *this.handed = Some(now);
            }
            None => {}
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, T> FusedStream for Observe<S>
where
    S: FusedStream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
