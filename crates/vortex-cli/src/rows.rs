//! Records as CSV text: a header first (taken from the first record), then one text record
//! per record, for `convert`'s named fields.

use futures_core::stream::BoxStream;
use futures_core::Stream;
use vortex_stream::{Pipeline, Result};

/// Records as text records, led by a header record that `header` takes from the first one.
pub(crate) fn with_header_by<S, T, H, V>(
    records: Pipeline<S>,
    header: H,
    values: V,
) -> Pipeline<BoxStream<'static, Result<Vec<String>>>>
where
    S: Stream<Item = Result<T>> + Send + 'static,
    H: Fn(&T) -> Vec<String> + Send + 'static,
    V: Fn(&T) -> Vec<String> + Send + 'static,
{
    records
        .scan(true, move |first, record| {
            let head = std::mem::take(first).then(|| header(&record));
            Some(
                head.into_iter()
                    .chain([values(&record)])
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .boxed()
}
