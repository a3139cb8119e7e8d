use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`enumerate`](crate::Pipeline::enumerate) method.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct Enumerate<S> {
        #[pin]
        stream: S,
        count: u64,
    }
}

impl<S> Enumerate<S> {
    pub(crate) fn new(stream: S) -> Self {
        Enumerate { stream, count: 0 }
    }

    delegate_access_inner!(stream, S);
}

impl<S, T> Stream for Enumerate<S>
where
    S: Stream<Item = Result<T>>,
{
    type Item = Result<(u64, T)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.stream.poll_next(cx));
        Poll::Ready(item.map(|item| {
            item.map(|value| {
                let index = *this.count;
                *this.count += 1;
                (index, value)
            })
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, T> FusedStream for Enumerate<S>
where
    S: FusedStream<Item = Result<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
