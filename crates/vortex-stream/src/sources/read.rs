use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;

use crate::{Error, Position, Result};

pin_project! {
    /// Stream for the [`from_async_read`](crate::Pipeline::from_async_read) constructor.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct ReadChunks<R> {
        #[pin]
        inner: ReaderStream<R>,
        offset: u64,
        done: bool,
    }
}

impl<R: AsyncRead> ReadChunks<R> {
    pub(crate) fn new(reader: R, chunk: NonZeroUsize) -> Self {
        ReadChunks {
            inner: ReaderStream::with_capacity(reader, chunk.get()),
            offset: 0,
            done: false,
        }
    }
}

impl<R: AsyncRead> Stream for ReadChunks<R> {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        Poll::Ready(match ready!(this.inner.poll_next(cx)) {
            Some(Ok(bytes)) => {
                *this.offset += bytes.len() as u64;
                Some(Ok(bytes))
            }
            Some(Err(err)) => {
                *this.done = true;
                Some(Err(Error::io("async read", err)
                    .with_position(Position::new().with_byte(*this.offset))
                    .fatal()))
            }
            None => {
                *this.done = true;
                None
            }
        })
    }
}

impl<R: AsyncRead> FusedStream for ReadChunks<R> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
