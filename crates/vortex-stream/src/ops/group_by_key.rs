use core::fmt;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::Result;

pin_project! {
    /// Stream for the [`group_by_key`](crate::Pipeline::group_by_key) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct GroupByKey<S, K, T, F> {
        #[pin]
        stream: S,
        group: Option<(K, Vec<T>)>,
        max_len: NonZeroUsize,
        key: F,
        done: bool,
    }
}

impl<S, K, T, F> GroupByKey<S, K, T, F> {
    pub(crate) fn new(stream: S, max_len: NonZeroUsize, key: F) -> Self {
        GroupByKey {
            stream,
            group: None,
            max_len,
            key,
            done: false,
        }
    }

    delegate_access_inner!(stream, S, holds: "values of the group being gathered");
}

impl<S: fmt::Debug, K: fmt::Debug, T: fmt::Debug, F> fmt::Debug for GroupByKey<S, K, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupByKey")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl<S, K, T, F> Stream for GroupByKey<S, K, T, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> K,
    K: PartialEq,
{
    type Item = Result<(K, Vec<T>)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(this.stream.as_mut().poll_next(cx)) {
                Some(Ok(value)) => {
                    let key = (this.key)(&value);
                    match this.group {
                        Some((current, items))
                            if *current == key && items.len() < this.max_len.get() =>
                        {
                            items.push(value);
                        }
                        _ => {
                            let finished = this.group.replace((key, vec![value]));
                            if let Some(finished) = finished {
                                return Poll::Ready(Some(Ok(finished)));
                            }
                        }
                    }
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => {
                    *this.done = true;
                    return Poll::Ready(this.group.take().map(Ok));
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let buffered = usize::from(self.group.is_some());
        let (lower, upper) = self.stream.size_hint();
        (
            usize::from(lower.saturating_add(buffered) > 0),
            upper.and_then(|u| u.checked_add(buffered)),
        )
    }
}

impl<S, K, T, F> FusedStream for GroupByKey<S, K, T, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> K,
    K: PartialEq,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}
