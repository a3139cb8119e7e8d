use std::io::Write;

use serde::Serialize;

use super::{Format, FormatWriter};
use crate::io::SinkWriter;
use crate::{Error, ErrorKind, Result};

const OPERATION: &str = "jsonl sink: write";
const ENCODE: &str = "jsonl sink: encode";

/// The most a writer's line buffer keeps between values: a larger one, grown by one large
/// value, is let go after it.
const LINE_KEPT: usize = 64 * 1024;

/// Writes each value as one line of JSON, with serde.
///
/// A float that is NaN or infinite in a value is refused, with an error naming it: JSON has no
/// number for it, and `serde_json` would write `null` in its place without a word, changing
/// the data on its way out. (A database `Value` writes such a float as a string, which it
/// reads back.)
///
/// # Examples
///
/// ```
/// use vortex_stream::io::Output;
/// use vortex_stream::sinks::JsonlSink;
/// use vortex_stream::Pipeline;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> vortex_stream::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.jsonl");
/// Pipeline::from_iter([(1, "a"), (2, "b")]).write(JsonlSink, Output::path(&path)).await?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "[1,\"a\"]\n[2,\"b\"]\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonlSink;

/// The writer of a [`JsonlSink`].
#[derive(Debug)]
pub struct JsonlWriter {
    out: SinkWriter,
    // The line being written, checked before it goes out.
    line: Vec<u8>,
    // Finds `null` in it (built once: building one costs more than a line's search).
    null: memchr::memmem::Finder<'static>,
}

impl<T: Serialize> Format<T> for JsonlSink {
    type Writer = JsonlWriter;

    fn writer(self, out: SinkWriter) -> Result<JsonlWriter> {
        Ok(JsonlWriter {
            out,
            line: Vec::new(),
            null: memchr::memmem::Finder::new(b"null"),
        })
    }
}

impl<T: Serialize> FormatWriter<T> for JsonlWriter {
    fn flush(&mut self) -> Result<()> {
        std::io::Write::flush(&mut self.out).map_err(|e| Error::io(OPERATION, e))
    }

    fn write(&mut self, value: T) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &value)
            .map_err(|e| Error::from_boxed(ErrorKind::User, ENCODE, e.into()))?;
        // serde_json writes a NaN or an infinite float as `null`: only a line holding `null`
        // can hold one, so only such a line has its value walked again, looking for it.
        if self.null.find(&self.line).is_some() {
            if let Err(Unwritable::Float(float)) = value.serialize(FindNonFinite) {
                return Err(Error::new(ErrorKind::User, ENCODE).with_message(format!(
                    "a float is {float}, which JSON has no number for (it would be written as null)"
                )));
            }
        }
        self.line.push(b'\n');
        let written = self
            .out
            .write_all(&self.line)
            .map_err(|e| Error::io(OPERATION, e));
        if self.line.capacity() > LINE_KEPT {
            // One large value does not leave its size held for the rest of the write.
            self.line = Vec::new();
        }
        written
    }

    fn finish(self) -> Result<SinkWriter> {
        Ok(self.out)
    }
}

/// What [`FindNonFinite`] stops at: a float JSON cannot hold, or an error of the value's own
/// `Serialize` (which `serde_json` met first, so it is never seen here in practice).
#[derive(Debug)]
enum Unwritable {
    Float(f64),
    Other,
}

impl std::fmt::Display for Unwritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unwritable::Float(float) => write!(f, "a float is {float}"),
            Unwritable::Other => f.write_str("the value failed to serialize"),
        }
    }
}

impl std::error::Error for Unwritable {}

impl serde::ser::Error for Unwritable {
    fn custom<M: std::fmt::Display>(_msg: M) -> Self {
        Unwritable::Other
    }
}

/// A serializer that writes nothing and fails at the first float that is NaN or infinite.
/// Written by hand because `serde_json` offers no hook for it: its formatter is told to write
/// `null`, as for a `None`.
struct FindNonFinite;

type Found = std::result::Result<(), Unwritable>;

fn finite(float: f64) -> Found {
    if float.is_finite() {
        Ok(())
    } else {
        Err(Unwritable::Float(float))
    }
}

/// The serializer's methods that start a compound value: its parts are looked through as they
/// come (see the `Serialize*` impls below).
macro_rules! starts {
    ($($method:ident($($arg:ty),*) -> $part:ident;)*) => {
        $(fn $method(self, $(_: $arg),*) -> std::result::Result<Self::$part, Unwritable> {
            Ok(self)
        })*
    };
}

/// The serializer's methods that hold no float: nothing to find.
macro_rules! nothing_in {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Found {
            Ok(())
        })*
    };
}

impl serde::Serializer for FindNonFinite {
    type Ok = ();
    type Error = Unwritable;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    nothing_in! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_f32(self, v: f32) -> Found {
        finite(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Found {
        finite(v)
    }

    fn serialize_some<V: ?Sized + Serialize>(self, value: &V) -> Found {
        value.serialize(self)
    }

    fn serialize_newtype_struct<V: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &V,
    ) -> Found {
        value.serialize(self)
    }

    fn serialize_newtype_variant<V: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &V,
    ) -> Found {
        value.serialize(self)
    }

    starts! {
        serialize_seq(Option<usize>) -> SerializeSeq;
        serialize_tuple(usize) -> SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> SerializeTupleVariant;
        serialize_map(Option<usize>) -> SerializeMap;
        serialize_struct(&'static str, usize) -> SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> SerializeStructVariant;
    }
}

/// The compound parts: each element, key and field is looked through in turn.
macro_rules! compound {
    ($($trait:ident :: $method:ident;)*) => {
        $(impl serde::ser::$trait for FindNonFinite {
            type Ok = ();
            type Error = Unwritable;

            fn $method<V: ?Sized + Serialize>(&mut self, value: &V) -> Found {
                value.serialize(FindNonFinite)
            }

            fn end(self) -> Found {
                Ok(())
            }
        })*
    };
}

compound! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

impl serde::ser::SerializeMap for FindNonFinite {
    type Ok = ();
    type Error = Unwritable;

    fn serialize_key<K: ?Sized + Serialize>(&mut self, key: &K) -> Found {
        key.serialize(FindNonFinite)
    }

    fn serialize_value<V: ?Sized + Serialize>(&mut self, value: &V) -> Found {
        value.serialize(FindNonFinite)
    }

    fn end(self) -> Found {
        Ok(())
    }
}

/// The parts with named fields: each field's value is looked through in turn.
macro_rules! named {
    ($($trait:ident),*) => {
        $(impl serde::ser::$trait for FindNonFinite {
            type Ok = ();
            type Error = Unwritable;

            fn serialize_field<V: ?Sized + Serialize>(
                &mut self,
                _key: &'static str,
                value: &V,
            ) -> Found {
                value.serialize(FindNonFinite)
            }

            fn end(self) -> Found {
                Ok(())
            }
        })*
    };
}

named!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{JsonlSink, LINE_KEPT};
    use crate::io::Output;
    use crate::sinks::{Format, FormatWriter};

    #[test]
    fn one_large_value_does_not_keep_its_size_held() {
        let opened = Output::writer(std::io::sink()).open("test").unwrap();
        let mut writer = <JsonlSink as Format<String>>::writer(JsonlSink, opened.writer).unwrap();
        writer.write("x".repeat(LINE_KEPT * 4)).unwrap();
        assert!(writer.line.capacity() <= LINE_KEPT);
        // Small values keep their buffer from one to the next.
        writer.write("small".to_owned()).unwrap();
        let kept = writer.line.capacity();
        assert!(kept > 0);
        writer.write("smalt".to_owned()).unwrap();
        assert_eq!(writer.line.capacity(), kept);
    }
}
