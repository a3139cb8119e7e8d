use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use std::collections::VecDeque;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`window`](crate::Pipeline::window) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Window<S, T> {
        #[pin]
        stream: S,
        items: VecDeque<T>,
        size: NonZeroUsize,
    }
}

impl<S, T> Window<S, T> {
    pub(crate) fn new(stream: S, size: NonZeroUsize) -> Self {
        Window {
            stream,
            items: VecDeque::new(),
            size,
        }
    }

    delegate_access_inner!(stream, S, holds: "values of the window");
}

impl<S, T> Stream for Window<S, T>
where
    S: Stream<Item = Result<T>>,
    T: Clone,
{
    type Item = Result<Vec<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let size = this.size.get();
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => {
                    if this.items.len() == size {
                        this.items.pop_front();
                    }
                    this.items.push_back(value);
                    if this.items.len() == size {
                        return Poll::Ready(Some(Ok(this.items.iter().cloned().collect())));
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    this.items.clear();
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let missing = self.size.get() - self.items.len().min(self.size.get());
        let (lower, upper) = self.stream.size_hint();
        (
            lower.saturating_sub(missing),
            upper.map(|u| u.saturating_sub(missing)),
        )
    }
}

impl<S, T> FusedStream for Window<S, T>
where
    S: FusedStream<Item = Result<T>>,
    T: Clone,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
