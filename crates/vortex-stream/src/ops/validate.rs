use core::fmt;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use crate::error::{BoxError, Error, ErrorKind, Position};
use crate::Result;

/// The Validation error for the item at `index` of the stage, unless the check already
/// returned a vortex error (which keeps its own kind and operation).
fn invalid(index: u64, cause: BoxError) -> Error {
    Error::from_boxed(ErrorKind::Validation, "validate", cause)
        .or_position(|| Position::new().with_record(index))
}

pin_project! {
    /// Stream for the [`validate`](crate::Pipeline::validate) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct Validate<S, F> {
        #[pin]
        stream: S,
        check: F,
        index: u64,
    }
}

impl<S, F> Validate<S, F> {
    pub(crate) fn new(stream: S, check: F) -> Self {
        Validate {
            stream,
            check,
            index: 0,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F> fmt::Debug for Validate<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validate")
            .field("stream", &self.stream)
            .field("index", &self.index)
            .finish()
    }
}

impl<S, F, T, E> Stream for Validate<S, F>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> Result<(), E>,
    E: Into<BoxError>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = ready!(this.stream.poll_next(cx));
        let index = *this.index;
        Poll::Ready(item.map(|item| {
            *this.index += 1;
            let value = item?;
            match (this.check)(&value) {
                Ok(()) => Ok(value),
                Err(cause) => Err(invalid(index, cause.into())),
            }
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, F, T, E> FusedStream for Validate<S, F>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(&T) -> Result<(), E>,
    E: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

pin_project! {
    /// Stream for the [`validate_or_else`](crate::Pipeline::validate_or_else) method.
    #[must_use = "streams do nothing unless polled"]
    pub struct ValidateOrElse<S, F, G> {
        #[pin]
        stream: S,
        check: F,
        on_invalid: G,
        index: u64,
    }
}

impl<S, F, G> ValidateOrElse<S, F, G> {
    pub(crate) fn new(stream: S, check: F, on_invalid: G) -> Self {
        ValidateOrElse {
            stream,
            check,
            on_invalid,
            index: 0,
        }
    }

    delegate_access_inner!(stream, S);
}

impl<S: fmt::Debug, F, G> fmt::Debug for ValidateOrElse<S, F, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateOrElse")
            .field("stream", &self.stream)
            .field("index", &self.index)
            .finish()
    }
}

impl<S, F, G, T, E> Stream for ValidateOrElse<S, F, G>
where
    S: Stream<Item = Result<T>>,
    F: FnMut(&T) -> Result<(), E>,
    E: Into<BoxError>,
    G: FnMut(T, Error),
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            let item = ready!(this.stream.as_mut().poll_next(cx));
            let index = *this.index;
            match item {
                Some(Ok(value)) => {
                    *this.index += 1;
                    match (this.check)(&value) {
                        Ok(()) => return Poll::Ready(Some(Ok(value))),
                        Err(cause) => (this.on_invalid)(value, invalid(index, cause.into())),
                    }
                }
                Some(Err(err)) => {
                    *this.index += 1;
                    return Poll::Ready(Some(Err(err)));
                }
                None => return Poll::Ready(None),
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, self.stream.size_hint().1)
    }
}

impl<S, F, G, T, E> FusedStream for ValidateOrElse<S, F, G>
where
    S: FusedStream<Item = Result<T>>,
    F: FnMut(&T) -> Result<(), E>,
    E: Into<BoxError>,
    G: FnMut(T, Error),
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
