//! Database values and rows, and serde decoding of a row into a struct.

use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, Visitor};
use serde::Serialize;

use crate::{Error, ErrorKind, Position, Result};

/// One value read from or written to a database.
///
/// Serialized (a row to JSON Lines) as the JSON value it is: `null`, a boolean, a number, a
/// string, bytes as an array of numbers; a float that is not a number or is infinite, which
/// JSON has no number for, as the string `"NaN"`, `"Infinity"` or `"-Infinity"` (PostgreSQL's
/// `to_json` does the same), never as `null`, which is SQL `NULL`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer of any width.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text, and any type without a closer match (numerics, dates, JSON) in its text form.
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(f) if f.is_finite() => serializer.serialize_f64(*f),
            Value::Float(f) => serializer.serialize_str(if f.is_nan() {
                "NaN"
            } else if *f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }),
            Value::Text(s) => serializer.serialize_str(s),
            Value::Bytes(b) => b.serialize(serializer),
        }
    }
}

impl Value {
    /// The value as text, the way a CSV file would hold it (`NULL` is empty). Bytes that are
    /// UTF-8 are that text; other bytes are written as `\x` and their hex digits
    /// (PostgreSQL's text form of bytes), never with replacement characters in their place.
    #[must_use]
    pub fn to_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Null => "".into(),
            Value::Bool(b) => if *b { "true" } else { "false" }.into(),
            Value::Int(i) => i.to_string().into(),
            Value::Float(f) => f.to_string().into(),
            Value::Text(s) => s.as_str().into(),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(text) => text.into(),
                Err(_) => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let mut hex = String::with_capacity(2 + 2 * b.len());
                    hex.push_str("\\x");
                    for byte in b {
                        hex.push(char::from(HEX[usize::from(byte >> 4)]));
                        hex.push(char::from(HEX[usize::from(byte & 0xF)]));
                    }
                    hex.into()
                }
            },
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v $(as $cast)?)
            }
        }
    )*};
}

value_from!(bool => Bool, i64 => Int, i32 => Int as i64, i16 => Int as i64, u32 => Int as i64, f64 => Float, f32 => Float as f64, String => Text, Vec<u8> => Bytes);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Query parameters: a list of [`Value`]s, built from anything convertible.
///
/// ```
/// use vortex_stream::db::Value;
///
/// let params = vortex_stream::params![42, "active", None::<i64>];
/// assert_eq!(params, [Value::Int(42), Value::Text("active".into()), Value::Null]);
/// ```
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        ::std::vec![$($crate::db::Value::from($value)),*]
    };
}

/// One row of a query's result: its values, and the column names shared by every row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
    index: u64,
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>, index: u64) -> Self {
        Row {
            columns,
            values,
            index,
        }
    }

    pub(crate) fn set_index(&mut self, index: u64) {
        self.index = index;
    }

    /// The column names.
    #[must_use]
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The values, in column order.
    #[must_use]
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Consumes the row, returning its values.
    #[must_use]
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The value of the named column.
    #[must_use]
    pub fn get(&self, column: &str) -> Option<&Value> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.values.get(i)
    }

    /// The row's index in its result, from 0.
    #[must_use]
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Decodes the row into `T` with serde, matching columns to fields by name.
    ///
    /// # Errors
    ///
    /// A [`Decode`](ErrorKind::Decode) error naming the column and the row when a value does
    /// not fit its field (a type mismatch, a `NULL` for a field that is not an `Option`).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        let mut access = RowAccess {
            row: self,
            next: 0,
            current: None,
        };
        T::deserialize(RowDeserializer(&mut access)).map_err(|e: DeError| {
            let column = access
                .current
                .and_then(|i| self.columns.get(i))
                .map_or_else(|| "?".to_owned(), Clone::clone);
            Error::new(ErrorKind::Decode, "database row: decode")
                .with_position(Position::new().with_record(self.index))
                .with_message(format!("column `{column}`: {}", e.0))
        })
    }
}

/// A row serializes as a map from column name to value: one JSON object per row with
/// [`JsonlSink`](crate::sinks::JsonlSink).
impl Serialize for Row {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (column, value) in self.columns.iter().zip(&self.values) {
            map.serialize_entry(column, value)?;
        }
        map.end()
    }
}

/// The error of decoding a row.
#[derive(Debug)]
struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

struct RowAccess<'a> {
    row: &'a Row,
    next: usize,
    current: Option<usize>,
}

struct RowDeserializer<'a, 'b>(&'b mut RowAccess<'a>);

impl<'de> de::Deserializer<'de> for RowDeserializer<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de> MapAccess<'de> for RowAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(column) = self.row.columns.get(self.next) else {
            return Ok(None);
        };
        self.current = Some(self.next);
        seed.deserialize(column.as_str().into_deserializer())
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let value = self.row.values.get(self.next).unwrap_or(&Value::Null);
        self.next += 1;
        seed.deserialize(ValueDeserializer(value))
    }
}

struct ValueDeserializer<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Text(s) => visitor.visit_str(s),
            Value::Bytes(b) => visitor.visit_bytes(b),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// Numbers stored as text (numerics, SQLite's loose typing) still decode into numbers.
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Text(s) => match s.parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => self.deserialize_any(visitor),
            },
            Value::Int(i) => visitor.visit_f64(*i as f64),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Int(i) => visitor.visit_bool(*i != 0),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jsonl")]
    #[test]
    fn values_serialize_as_json_without_turning_anything_into_null() {
        let json = |v: Value| serde_json::to_string(&v).unwrap();
        assert_eq!(json(Value::Null), "null");
        assert_eq!(json(Value::Bool(true)), "true");
        assert_eq!(json(Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(json(Value::Float(0.1)), "0.1");
        assert_eq!(json(Value::Float(f64::NAN)), "\"NaN\"");
        assert_eq!(json(Value::Float(f64::INFINITY)), "\"Infinity\"");
        assert_eq!(json(Value::Float(f64::NEG_INFINITY)), "\"-Infinity\"");
        assert_eq!(json(Value::Text("a\"b".into())), "\"a\\\"b\"");
        assert_eq!(json(Value::Bytes(vec![0, 255])), "[0,255]");
    }

    #[test]
    fn bytes_as_text_are_never_replaced() {
        assert_eq!(Value::Bytes(b"plain".to_vec()).to_text(), "plain");
        assert_eq!(Value::Bytes("é".as_bytes().to_vec()).to_text(), "é");
        assert_eq!(Value::Bytes(vec![0x00, 0xff, 0x41]).to_text(), "\\x00ff41");
        assert_eq!(Value::Bytes(vec![0xc3]).to_text(), "\\xc3");
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Order {
        id: i64,
        email: String,
        amount: f64,
        note: Option<String>,
    }

    fn row(values: Vec<Value>) -> Row {
        let columns: Arc<[String]> = ["id", "email", "amount", "note"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        Row::new(columns, values, 7)
    }

    #[test]
    fn a_row_decodes_by_column_name() {
        let r = row(params![1, "a@x", 9.5, None::<String>]);
        let order: Order = r.deserialize().unwrap();
        assert_eq!(
            order,
            Order {
                id: 1,
                email: "a@x".into(),
                amount: 9.5,
                note: None
            }
        );
        let r = row(params![1, "a@x", "12.25", "hi"]);
        assert_eq!(r.deserialize::<Order>().unwrap().amount, 12.25);
    }

    #[test]
    fn a_mismatch_names_the_column_and_row() {
        let err = row(params![1, "a@x", "lots", None::<String>])
            .deserialize::<Order>()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert_eq!(
            err.to_string(),
            "database row: decode: record 7: column `amount`: invalid type: string \"lots\", expected f64"
        );
        let err = row(params![None::<i64>, "a@x", 1.0, None::<String>])
            .deserialize::<Order>()
            .unwrap_err();
        assert!(err.to_string().contains("column `id`"), "{err}");
    }
}
