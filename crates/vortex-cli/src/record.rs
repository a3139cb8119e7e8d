//! The records `convert` moves and `serve` imports: named fields whose values keep their
//! exact text.
//!
//! A JSON value is kept as the text it had in the input (`serde_json`'s `RawValue`), never
//! decoded into numbers or a tree: `18446744073709551616` and `0.1e-400` leave as they came,
//! and a record holds no more memory than its line's text, whatever its nesting.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A field's value: text (from CSV or lines), or a JSON value as its exact text.
#[derive(Debug)]
pub(crate) enum Field {
    Text(String),
    Json(Box<RawValue>),
}

impl Field {
    /// The value as a CSV field holds it: text as it is, a JSON string unescaped, `null`
    /// empty, any other JSON value (number, boolean, array, object) as its JSON text.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Field::Text(text) => Cow::Borrowed(text),
            Field::Json(raw) => {
                let json = raw.get();
                match json.as_bytes().first() {
                    Some(b'"') => {
                        serde_json::from_str::<Cow<'_, str>>(json).unwrap_or(Cow::Borrowed(json))
                    }
                    Some(b'n') if json == "null" => Cow::Borrowed(""),
                    _ => Cow::Borrowed(json),
                }
            }
        }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Text(text) => serializer.serialize_str(text),
            Field::Json(raw) => raw.serialize(serializer),
        }
    }
}

/// A record on its way through `convert`.
#[derive(Debug)]
pub(crate) enum Record {
    /// Named fields, in the input's order.
    Fields(Vec<(Arc<str>, Field)>),
    /// A JSON value that is not an object: an array, a string, a number, `true`, `null`.
    Other(Box<RawValue>),
}

impl Record {
    /// A JSON Lines value: an object's fields, or the value itself.
    ///
    /// # Errors
    ///
    /// An object that names a key twice: one of the two values would be lost.
    pub(crate) fn from_json(raw: Box<RawValue>) -> Result<Record, String> {
        let text = raw.get().trim_start();
        if !text.starts_with('{') {
            return Ok(Record::Other(raw));
        }
        let Object(fields) = serde_json::from_str::<Object>(text).map_err(|e| e.to_string())?;
        Ok(Record::Fields(fields))
    }

    /// What kind of JSON value a record that is not an object holds, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Record::Fields(_) => "an object",
            Record::Other(raw) => match raw.get().trim_start().as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            },
        }
    }

    /// The field named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Field> {
        match self {
            Record::Fields(fields) => fields
                .iter()
                .find(|(key, _)| &**key == name)
                .map(|(_, value)| value),
            Record::Other(_) => None,
        }
    }

    /// The record as one line of JSON, for a dead-letter file's raw text.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::Fields(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(&**key, value)?;
                }
                map.end()
            }
            Record::Other(raw) => raw.serialize(serializer),
        }
    }
}

/// A JSON object's fields in order, values as their text; a key named twice is an error.
struct Object(Vec<(Arc<str>, Field)>);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;

        impl<'de> Visitor<'de> for Fields {
            type Value = Object;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                let mut fields: Vec<(Arc<str>, Field)> = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if fields.iter().any(|(seen, _)| **seen == *key) {
                        return Err(de::Error::custom(format!(
                            "the key {key:?} appears twice in the object: one value would be lost"
                        )));
                    }
                    let value = map.next_value::<Box<RawValue>>()?;
                    fields.push((Arc::from(key.as_ref()), Field::Json(value)));
                }
                Ok(Object(fields))
            }
        }

        deserializer.deserialize_map(Fields)
    }
}

/// Fields as one line of CSV, quoted where needed, for a dead-letter file's raw text.
pub(crate) fn csv_line<'a>(fields: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = writer.write_record(fields);
    let mut line = writer.into_inner().unwrap_or_default();
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Record {
        Record::from_json(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn values_keep_their_exact_text() {
        let r = record(
            r#"{"big":18446744073709551616,"tiny":0.1e-400,"s":"a\"b\u00e9","n":null,"o":{"x":[1, 2]}}"#,
        );
        let text = |name| r.get(name).unwrap().text().into_owned();
        assert_eq!(text("big"), "18446744073709551616");
        assert_eq!(text("tiny"), "0.1e-400");
        assert_eq!(text("s"), "a\"bé");
        assert_eq!(text("n"), "");
        assert_eq!(text("o"), r#"{"x":[1, 2]}"#);
        assert_eq!(
            String::from_utf8(r.to_json()).unwrap(),
            r#"{"big":18446744073709551616,"tiny":0.1e-400,"s":"a\"b\u00e9","n":null,"o":{"x":[1, 2]}}"#
        );
    }

    #[test]
    fn other_values_are_kept_whole_and_named() {
        for (json, kind) in [
            ("[1,2]", "an array"),
            ("\"x\"", "a string"),
            ("7", "a number"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let r = record(json);
            assert_eq!(r.kind(), kind);
            assert_eq!(r.to_json(), json.as_bytes());
        }
    }

    #[test]
    fn a_key_named_twice_is_refused() {
        let raw = serde_json::from_str::<Box<RawValue>>(r#"{"a":1,"a":2}"#).unwrap();
        let err = Record::from_json(raw).unwrap_err();
        assert!(err.contains("\"a\" appears twice"), "{err}");
    }

    #[test]
    fn csv_lines_are_quoted_where_needed() {
        assert_eq!(
            csv_line(["a", "b,c", "say \"hi\""]),
            b"a,\"b,c\",\"say \"\"hi\"\"\""
        );
    }
}
