use core::num::NonZeroUsize;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;
use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;

use super::blocking::{read_chunks, Blocking};
use crate::core::Size;
use crate::Pipeline;
use crate::{Error, Position, Result};
use std::io::Read;

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

impl Pipeline<Blocking<Bytes>> {
    /// A pipeline of byte chunks (at most `chunk` bytes each) read from a sync reader on tokio's
    /// blocking pool.
    ///
    /// A read error is an [`Io`](crate::ErrorKind::Io) item whose position is the byte offset
    /// reached, and the last item. Memory: about four chunks. See
    /// [`from_blocking_iter`](Pipeline::from_blocking_iter) for how dropping stops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{Pipeline, DEFAULT_READ_CHUNK};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let input = std::io::Cursor::new(vec![7u8; 200_000]);
    /// let bytes = Pipeline::from_read(input, DEFAULT_READ_CHUNK)
    ///     .fold(0, |n, chunk| n + chunk.len())
    ///     .await?;
    /// assert_eq!(bytes, 200_000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_read<R>(reader: R, chunk: impl Size) -> Self
    where
        R: Read + Send + 'static,
    {
        let chunk = chunk.non_zero("from_read");
        Pipeline::new(Blocking::new(
            read_chunks(reader, chunk, "read"),
            NonZeroUsize::MIN,
        ))
    }
}

impl<R: AsyncRead> Pipeline<ReadChunks<R>> {
    /// A pipeline of byte chunks (at most `chunk` bytes each) read from an async reader: a
    /// file, stdin, a socket, an HTTP body.
    ///
    /// A read error is an [`Io`](crate::ErrorKind::Io) item whose position is the byte offset
    /// reached, and the last item. Memory: one chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::{Pipeline, DEFAULT_READ_CHUNK};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let input: &[u8] = b"hello, world";
    /// let chunks = Pipeline::from_async_read(input, DEFAULT_READ_CHUNK).collect::<Vec<_>>().await?;
    /// assert_eq!(chunks.concat(), b"hello, world");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_async_read(reader: R, chunk: impl Size) -> Self {
        let chunk = chunk.non_zero("from_async_read");
        Pipeline::new(ReadChunks::new(reader, chunk))
    }
}

/// The chunk size used by the byte-reader constructors when the caller has no preference.
pub const DEFAULT_READ_CHUNK: NonZeroUsize = match NonZeroUsize::new(64 * 1024) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};
