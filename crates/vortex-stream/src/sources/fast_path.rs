//! What the in-place deserializers of the text sources share.
//!
//! Each handles the common shape of its format (CSV fields without quotes, JSON without
//! escapes) and gives up on anything else, and the source then decodes that record with the
//! format's own parser, whose result (and error message) is the one that counts.

/// The fast path gave up on a record; the format's own parser decodes it instead.
#[derive(Debug)]
pub(super) struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the record did not decode")
    }
}

impl std::error::Error for Failed {}

impl serde::de::Error for Failed {
    fn custom<T: std::fmt::Display>(_message: T) -> Self {
        Failed
    }
}
