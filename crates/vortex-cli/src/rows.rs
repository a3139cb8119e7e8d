//! Query rows as CSV records: the header (the column names) first, then one record per row.

use futures_core::stream::BoxStream;
use vortex_stream::db::Row;
use vortex_stream::{Pipeline, Result};

/// The rows as text records, led by a header record of the first row's column names.
pub(crate) fn with_header(
    rows: Pipeline<BoxStream<'static, Result<Row>>>,
) -> Pipeline<BoxStream<'static, Result<Vec<String>>>> {
    rows.scan(true, |first, row| {
        let values: Vec<String> = row
            .values()
            .iter()
            .map(|v| v.to_text().into_owned())
            .collect();
        let header = std::mem::take(first).then(|| row.columns().to_vec());
        Some(header.into_iter().chain([values]).collect::<Vec<_>>())
    })
    .flatten()
    .boxed()
}
