use core::fmt;
use core::hash::Hash;
use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};
use std::collections::HashSet;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::error::{Error, ErrorKind, Position};
use crate::Result;

/// Stream for the [`distinct`](crate::Pipeline::distinct) method.
pub type Distinct<S, T> = DistinctBy<S, T, fn(&T) -> T>;

pin_project! {
    /// Stream for the [`distinct_by`](crate::Pipeline::distinct_by) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct DistinctBy<S, K, F> {
        #[pin]
        stream: S,
        seen: HashSet<K>,
        capacity: NonZeroUsize,
        key: F,
        index: u64,
    }
}

impl<S, K, F> DistinctBy<S, K, F> {
    pub(crate) fn new(stream: S, capacity: NonZeroUsize, key: F) -> Self {
        DistinctBy {
            stream,
            seen: HashSet::new(),
            capacity,
            key,
            index: 0,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, K, F> fmt::Debug for DistinctBy<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctBy")
            .field("stream", &self.stream)
            .field("seen", &self.seen.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<S, K, F, T> Stream for DistinctBy<S, K, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> K,
    K: Hash + Eq,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let item = ready!(this.stream.as_mut().poll_next(cx));
            let index = *this.index;
            *this.index += 1;
            match item {
                Some(Ok(value)) => {
                    let key = (this.key)(&value);
                    if this.seen.contains(&key) {
                        continue;
                    }
                    if this.seen.len() >= this.capacity.get() {
                        let capacity = this.capacity.get();
                        return Poll::Ready(Some(Err(Error::new(ErrorKind::Capacity, "distinct")
                            .with_position(Position::new().with_record(index))
                            .with_message(format!(
                                "{capacity} distinct keys already held, the capacity given: cannot tell whether this record is new"
                            )))));
                    }
                    this.seen.insert(key);
                    return Poll::Ready(Some(Ok(value)));
                }
                item => return Poll::Ready(item),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.stream.size_hint().1)
    }
}

impl<S, K, F, T> FusedStream for DistinctBy<S, K, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(&T) -> K,
    K: Hash + Eq,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
