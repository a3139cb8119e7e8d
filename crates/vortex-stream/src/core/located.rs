//! A value with the position of the record it was decoded from.

use crate::error::{BoxError, Error, ErrorKind, Position};

/// A value and the [`Position`] of the record it was decoded from, so that a check made later
/// in the pipeline can name where the bad record is, as a decode error does.
///
/// Made by [`JsonlSource::deserialize_located`](crate::sources::JsonlSource::deserialize_located).
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Input;
/// use vortex_stream::sources::JsonlSource;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = JsonlSource::new(Input::bytes("{\"age\":30}\n\n{\"age\":-4}\n").name("people.jsonl"))
///     .deserialize_located::<serde_json::Value>()
///     .try_map(|person| {
///         if person.value()["age"].as_i64() < Some(0) {
///             return Err(person.reject("age is negative"));
///         }
///         Ok(person.into_value())
///     })
///     .drain()
///     .await
///     .unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "check: people.jsonl: record 1 (line 3, byte 12): age is negative"
/// );
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    value: T,
    position: Position,
}

impl<T> Located<T> {
    /// `value`, from the record at `position`.
    pub fn new(value: T, position: Position) -> Self {
        Located { value, position }
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, mutably.
    pub fn value_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// The value, without its position.
    pub fn into_value(self) -> T {
        self.value
    }

    /// Where the record is.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Moves the position by what came before the part of the input it was counted in.
    #[cfg(feature = "csv")]
    pub(crate) fn shift_position(&mut self, record: u64, line: u64, byte: u64) {
        self.position = self.position.shifted(record, line, byte);
    }

    /// A [`Validation`](ErrorKind::Validation) error for this record: `cause`'s message, at
    /// its position, in operation `"check"`.
    #[must_use]
    pub fn reject(&self, cause: impl Into<BoxError>) -> Error {
        let cause = cause.into();
        Error::new(ErrorKind::Validation, "check")
            .with_message(cause.to_string())
            .with_position(self.position.clone())
    }
}
