use futures_core::Stream;
use futures_util::StreamExt;
use vortex_stream::{Error, Result};

/// Every item of a pipeline, errors included.
pub(crate) async fn items<S, T>(stream: S) -> Vec<Result<T>>
where
    S: Stream<Item = Result<T>>,
{
    StreamExt::collect(stream).await
}

/// The values of a list of items, panicking on an error.
pub(crate) fn values<T>(items: Vec<Result<T>>) -> Vec<T> {
    items
        .into_iter()
        .map(|item| item.unwrap_or_else(|e| panic!("unexpected error: {e}")))
        .collect()
}

/// The one error among `items`.
pub(crate) fn only_error<T>(items: &[Result<T>]) -> &Error {
    let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:?}"
    );
    errors[0]
}

/// A reader that produces `head`, then `len` copies of `fill`, then `tail`, without holding
/// them: for inputs far larger than the test should allocate.
pub(crate) struct Generated {
    pub(crate) head: Vec<u8>,
    pub(crate) fill: u8,
    pub(crate) len: u64,
    pub(crate) tail: Vec<u8>,
    pub(crate) pos: u64,
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let head = self.head.len() as u64;
        let total = head + self.len + self.tail.len() as u64;
        let mut n = 0;
        while n < buf.len() && self.pos < total {
            let p = self.pos;
            buf[n] = if p < head {
                self.head[p as usize]
            } else if p < head + self.len {
                self.fill
            } else {
                self.tail[(p - head - self.len) as usize]
            };
            n += 1;
            self.pos += 1;
        }
        Ok(n)
    }
}
