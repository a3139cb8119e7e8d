use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

/// Stream for the [`flatten`](crate::Pipeline::flatten) method.
pub type Flatten<S, T> = FlatMap<S, <T as IntoIterator>::IntoIter, fn(T) -> T>;

pin_project! {
    /// Stream for the [`flat_map`](crate::Pipeline::flat_map) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct FlatMap<S, I, F> {
        #[pin]
        stream: S,
        current: Option<I>,
        f: F,
    }
}

impl<S, I, F> FlatMap<S, I, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        FlatMap {
            stream,
            current: None,
            f,
        }
    }

    delegate_access_inner!(stream, S, holds: "values left of the current inner iterator");
}

impl<S: fmt::Debug, I, F> fmt::Debug for FlatMap<S, I, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatMap")
            .field("stream", &self.stream)
            .field("in_inner", &self.current.is_some())
            .finish()
    }
}

impl<S, I, F, T, U> Stream for FlatMap<S, I::IntoIter, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(T) -> I,
    I: IntoIterator<Item = U>,
{
    type Item = Result<U>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(inner) = this.current.as_mut() {
                if let Some(value) = inner.next() {
                    return Poll::Ready(Some(Ok(value)));
                }
                *this.current = None;
            }
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => *this.current = Some((this.f)(value).into_iter()),
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<S, I, F, T, U> FusedStream for FlatMap<S, I::IntoIter, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(T) -> I,
    I: IntoIterator<Item = U>,
{
    fn is_terminated(&self) -> bool {
        self.current.is_none() && self.stream.is_terminated()
    }
}
