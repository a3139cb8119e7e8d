//! CSV rows written by hand for the values whose fields are all plain ones (text, numbers,
//! booleans, options and unit variants of them, in one struct, tuple or sequence), byte for
//! byte as csv's serializer writes them with the same delimiter, the `"` quote and `\n` line
//! ends.
//!
//! csv's writer hands each field to its state machine, which looks at every byte on its own to
//! decide on quotes and copies the field through its buffer in pieces: about 120 instructions
//! a field of an id, an email or an amount, 6% of a CSV export. Here a field is checked eight
//! bytes at a time and copied once. csv offers no way to write a field without its state machine, so this is
//! written by hand; anything of another shape (a container inside the row, a map, a struct or
//! tuple variant) is left to csv, as is any value whose serialization fails.

use std::fmt;

use serde::ser::{self, Impossible, Serialize, Serializer};

/// A row the quick writer leaves to csv.
#[derive(Debug)]
pub(super) struct Unsupported;

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row left to csv")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: fmt::Display>(_message: T) -> Self {
        Unsupported
    }
}

/// Whether rows with this delimiter can be written quickly: one that is itself a quote or a
/// line end is left to csv.
pub(super) fn handles(delimiter: u8) -> bool {
    !matches!(delimiter, b'"' | b'\n' | b'\r')
}

/// Appends `value` to `out` as one CSV row, its line feed included, and returns its field
/// count; on [`Unsupported`], `out` is left as it was. The delimiter must be one [`handles`]
/// takes.
pub(super) fn row<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    delimiter: u8,
) -> Result<usize, Unsupported> {
    let start = out.len();
    let mut row = Row {
        out,
        delimiter,
        fields: 0,
        nested: false,
    };
    let written = value.serialize(&mut row).map(|()| row.fields);
    match written {
        Ok(fields) => {
            // A row of no bytes at all (one empty field, or none) is an empty quoted field,
            // as csv writes it, so that it is not read back as a blank line.
            if out.len() == start {
                out.extend_from_slice(b"\"\"");
            }
            out.push(b'\n');
            Ok(fields)
        }
        Err(unsupported) => {
            out.truncate(start);
            Err(unsupported)
        }
    }
}

/// Whether csv quotes `field`: it holds the delimiter, a quote or a line end.
fn needs_quotes(field: &[u8], delimiter: u8) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let special = |b: u8| b == delimiter || matches!(b, b'"' | b'\n' | b'\r');
    let splat = ONES * u64::from(delimiter);
    // Some byte below 0x23 (the line ends and the quote among them), or equal to the
    // delimiter: each test is exact about whether there is one, so a word without either is
    // passed over, and one with either is looked at byte by byte.
    let maybe = |word: [u8; 8]| {
        let x = u64::from_le_bytes(word);
        let low = x.wrapping_sub(ONES * 0x23) & !x & HIGH;
        let equal = (x ^ splat).wrapping_sub(ONES) & !(x ^ splat) & HIGH;
        (low | equal) != 0
    };
    let mut words = field.chunks_exact(8);
    for word in words.by_ref() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        if maybe(bytes) && word.iter().any(|&b| special(b)) {
            return true;
        }
    }
    let rest = words.remainder();
    if rest.is_empty() {
        return false;
    }
    // The last bytes as one word too, not one by one (ids and amounts are shorter than a
    // word): the field's last eight bytes, or the few there are padded with a byte that is
    // neither special nor the delimiter.
    let mut last = [if delimiter == b'a' { b'b' } else { b'a' }; 8];
    match field.len().checked_sub(8) {
        Some(from) => last.copy_from_slice(&field[from..]),
        None => last[..rest.len()].copy_from_slice(rest),
    }
    maybe(last) && rest.iter().any(|&b| special(b))
}

/// The row being written: see [`row`].
struct Row<'a> {
    out: &'a mut Vec<u8>,
    delimiter: u8,
    fields: usize,
    // Inside the row's own struct, tuple or sequence, where another container is left to csv
    // (which flattens it).
    nested: bool,
}

impl Row<'_> {
    fn field(&mut self, bytes: &[u8]) {
        if self.fields > 0 {
            self.out.push(self.delimiter);
        }
        self.fields += 1;
        if !needs_quotes(bytes, self.delimiter) {
            self.out.extend_from_slice(bytes);
            return;
        }
        // Quoted, each quote inside doubled.
        self.out.push(b'"');
        let mut rest = bytes;
        while let Some(at) = memchr::memchr(b'"', rest) {
            self.out.extend_from_slice(&rest[..=at]);
            self.out.push(b'"');
            rest = &rest[at + 1..];
        }
        self.out.extend_from_slice(rest);
        self.out.push(b'"');
    }

    fn container(&mut self) -> Result<&mut Self, Unsupported> {
        if std::mem::replace(&mut self.nested, true) {
            return Err(Unsupported);
        }
        Ok(self)
    }
}

macro_rules! integer {
    ($($method:ident: $int:ty),*) => {
        $(fn $method(self, v: $int) -> Result<(), Unsupported> {
            self.field(itoa::Buffer::new().format(v).as_bytes());
            Ok(())
        })*
    };
}

impl<'a, 'r> Serializer for &'a mut Row<'r> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.field(if v { b"true" } else { b"false" });
        Ok(())
    }

    integer!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_f32(self, v: f32) -> Result<(), Unsupported> {
        self.field(ryu::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Unsupported> {
        self.field(ryu::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.field(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.field(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        self.field(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Unsupported> {
        self.field(&[]);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.field(&[]);
        Ok(())
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<(), Unsupported> {
        self.field(name.as_bytes());
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.field(variant.as_bytes());
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    // csv writes the value alone, without the variant's name.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Unsupported> {
        self.container()
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Unsupported> {
        self.container()
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Unsupported> {
        self.container()
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Unsupported> {
        self.container()
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

/// The row's own sequence, tuple or tuple struct: each element is a field.
macro_rules! elements {
    ($($kind:ident::$method:ident),*) => {$(
        impl ser::$kind for &mut Row<'_> {
            type Ok = ();
            type Error = Unsupported;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Unsupported> {
                Ok(())
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl ser::SerializeStruct for &mut Row<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::needs_quotes;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The word-at-a-time check says what a look at every byte says, for fields of every
        /// length around a word's and bytes near each test's edges.
        #[test]
        fn needs_quotes_is_a_byte_by_byte_look(
            field in prop::collection::vec(
                prop_oneof![
                    Just(b'"'), Just(b'\n'), Just(b'\r'), Just(b','), Just(b'a'), Just(b'b'),
                    Just(0x22u8), Just(0x23u8), Just(0x00u8), Just(0x80u8), Just(0xffu8),
                    any::<u8>(),
                ],
                0..26,
            ),
            delimiter in prop_oneof![Just(b','), Just(b'a'), Just(b'b'), Just(b'\t'), Just(b'#')],
        ) {
            let by_byte = field
                .iter()
                .any(|&b| b == delimiter || matches!(b, b'"' | b'\n' | b'\r'));
            prop_assert_eq!(needs_quotes(&field, delimiter), by_byte);
        }
    }
}
