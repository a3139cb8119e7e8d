//! A serde deserializer over the fields of one plain line (no quotes: each field is the text
//! between two delimiters), read in place; or over the fields of one record as the parser
//! unquoted them, one after another.
//!
//! csv's own deserializer reads a record: the line's fields would first be copied into one,
//! and checked as UTF-8 there, before each is handed to serde. Reading them where they lie
//! skips that copy. It is written by hand because csv does not offer it: it deserializes
//! records only.
//!
//! It takes each value exactly as csv's deserializer does (the same parsing for each type, the
//! same rules for options, sequences, maps and enums), so a record decoded here holds what csv
//! would have made of it. It does not say why a record fails: on any error the decoder reads
//! the line again as a record, through csv, whose error then describes it.

use csv::StringRecord;
use serde::de::value::BorrowedBytesDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::sources::fast_path::{parse_f64, Failed};

/// The fields of one line: `ends[i]` is where field `i` ends (a delimiter, or the line's end).
pub(super) struct LineFields<'r> {
    line: &'r str,
    ends: &'r [usize],
    // The next field to read, and where it starts.
    next: usize,
    start: usize,
    // The bytes between one field's end and the next one's start: the delimiter in a line,
    // nothing in a record's fields.
    gap: usize,
    headers: Option<csv::StringRecordIter<'r>>,
}

impl<'r> LineFields<'r> {
    pub(super) fn new(line: &'r str, ends: &'r [usize], headers: Option<&'r StringRecord>) -> Self {
        LineFields {
            line,
            ends,
            next: 0,
            start: 0,
            gap: 1,
            headers: headers.map(StringRecord::iter),
        }
    }

    /// The fields of a record as the parser unquoted them: `fields` all of them one after
    /// another, `ends[i]` where field `i` ends in it (as a `ByteRecord` holds them).
    pub(super) fn unquoted(
        fields: &'r str,
        ends: &'r [usize],
        headers: Option<&'r StringRecord>,
    ) -> Self {
        LineFields {
            gap: 0,
            ..LineFields::new(fields, ends, headers)
        }
    }

    fn peek_field(&self) -> Option<&'r str> {
        let end = *self.ends.get(self.next)?;
        self.line.get(self.start..end)
    }

    fn next_field(&mut self) -> Result<&'r str, Failed> {
        let field = self.peek_field().ok_or(Failed)?;
        self.start += field.len() + self.gap;
        self.next += 1;
        Ok(field)
    }
}

macro_rules! deserialize_int {
    ($method:ident, $visit:ident, $int:ty) => {
        fn $method<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
            let field = self.next_field()?;
            let num = match field.strip_prefix("0x") {
                Some(digits) => <$int>::from_str_radix(digits, 16),
                None => field.parse(),
            };
            visitor.$visit(num.map_err(|_| Failed)?)
        }
    };
}

impl<'r> Deserializer<'r> for &mut LineFields<'r> {
    type Error = Failed;

    fn deserialize_any<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        let x = self.next_field()?;
        if x == "true" {
            visitor.visit_bool(true)
        } else if x == "false" {
            visitor.visit_bool(false)
        } else if let Ok(n) = x.parse::<u64>() {
            visitor.visit_u64(n)
        } else if let Ok(n) = x.parse::<i64>() {
            visitor.visit_i64(n)
        } else if let Ok(n) = x.parse::<u128>() {
            visitor.visit_u128(n)
        } else if let Ok(n) = x.parse::<i128>() {
            visitor.visit_i128(n)
        } else if let Some(n) = parse_f64(x) {
            visitor.visit_f64(n)
        } else {
            visitor.visit_str(x)
        }
    }

    fn deserialize_bool<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_bool(self.next_field()?.parse().map_err(|_| Failed)?)
    }

    deserialize_int!(deserialize_u8, visit_u8, u8);
    deserialize_int!(deserialize_u16, visit_u16, u16);
    deserialize_int!(deserialize_u32, visit_u32, u32);
    deserialize_int!(deserialize_u64, visit_u64, u64);
    deserialize_int!(deserialize_u128, visit_u128, u128);
    deserialize_int!(deserialize_i8, visit_i8, i8);
    deserialize_int!(deserialize_i16, visit_i16, i16);
    deserialize_int!(deserialize_i32, visit_i32, i32);
    deserialize_int!(deserialize_i64, visit_i64, i64);
    deserialize_int!(deserialize_i128, visit_i128, i128);

    fn deserialize_f32<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_f32(self.next_field()?.parse().map_err(|_| Failed)?)
    }

    fn deserialize_f64<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_f64(parse_f64(self.next_field()?).ok_or(Failed)?)
    }

    fn deserialize_char<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        let mut chars = self.next_field()?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(Failed),
        }
    }

    fn deserialize_str<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_borrowed_str(self.next_field()?)
    }

    fn deserialize_string<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_str(self.next_field()?)
    }

    fn deserialize_bytes<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_borrowed_bytes(self.next_field()?.as_bytes())
    }

    fn deserialize_byte_buf<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_byte_buf(self.next_field()?.as_bytes().to_vec())
    }

    fn deserialize_option<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek_field() {
            None => visitor.visit_none(),
            Some("") => {
                self.next_field()?;
                visitor.visit_none()
            }
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'r>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'r>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_seq(self)
    }

    fn deserialize_tuple<V: Visitor<'r>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        visitor.visit_seq(self)
    }

    fn deserialize_tuple_struct<V: Visitor<'r>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        visitor.visit_seq(self)
    }

    fn deserialize_map<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        if self.headers.is_some() {
            visitor.visit_map(self)
        } else {
            visitor.visit_seq(self)
        }
    }

    fn deserialize_struct<V: Visitor<'r>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.deserialize_map(visitor)
    }

    fn deserialize_identifier<V: Visitor<'r>>(self, _visitor: V) -> Result<V::Value, Failed> {
        Err(Failed)
    }

    fn deserialize_enum<V: Visitor<'r>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        visitor.visit_enum(self)
    }

    fn deserialize_ignored_any<V: Visitor<'r>>(self, visitor: V) -> Result<V::Value, Failed> {
        self.next_field()?;
        visitor.visit_unit()
    }
}

impl<'r> EnumAccess<'r> for &mut LineFields<'r> {
    type Error = Failed;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'r>>(self, seed: V) -> Result<(V::Value, Self), Failed> {
        let name: serde::de::value::StrDeserializer<'_, Failed> =
            self.next_field()?.into_deserializer();
        seed.deserialize(name).map(|v| (v, self))
    }
}

impl<'r> VariantAccess<'r> for &mut LineFields<'r> {
    type Error = Failed;

    fn unit_variant(self) -> Result<(), Failed> {
        Ok(())
    }

    fn newtype_variant_seed<U: DeserializeSeed<'r>>(self, _seed: U) -> Result<U::Value, Failed> {
        Err(Failed)
    }

    fn tuple_variant<V: Visitor<'r>>(self, _len: usize, _visitor: V) -> Result<V::Value, Failed> {
        Err(Failed)
    }

    fn struct_variant<V: Visitor<'r>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Failed> {
        Err(Failed)
    }
}

impl<'r> SeqAccess<'r> for &mut LineFields<'r> {
    type Error = Failed;

    fn next_element_seed<U: DeserializeSeed<'r>>(
        &mut self,
        seed: U,
    ) -> Result<Option<U::Value>, Failed> {
        if self.peek_field().is_none() {
            Ok(None)
        } else {
            seed.deserialize(&mut **self).map(Some)
        }
    }
}

impl<'r> MapAccess<'r> for &mut LineFields<'r> {
    type Error = Failed;

    fn next_key_seed<K: DeserializeSeed<'r>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Failed> {
        let Some(header) = self.headers.as_mut().and_then(Iterator::next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedBytesDeserializer::new(header.as_bytes()))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'r>>(&mut self, seed: V) -> Result<V::Value, Failed> {
        seed.deserialize(&mut **self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use csv::StringRecord;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde::Deserialize;

    use super::super::decode_tests::{Kind, Row};
    use super::LineFields;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        a: u32,
        b: bool,
        c: char,
    }

    /// Types serde infers from the text (`deserialize_any`).
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Inferred {
        Bool(bool),
        Unsigned(u64),
        Signed(i64),
        Float(f64),
        Text(String),
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Newtype(Vec<Option<f32>>);

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("on".to_owned()),
            Just("off".to_owned()),
            Just("true".to_owned()),
            Just("0x1f".to_owned()),
            Just("1.5".to_owned()),
            Just("-3".to_owned()),
            Just("340282366920938463463374607431768211455".to_owned()),
            Just("é".to_owned()),
            Just("NaN".to_owned()),
            "[a-z0-9 .+-]{0,4}",
            // What only a quoted field holds: read by the parser, never as a plain line.
            "[a-z0-9,\"\n]{1,4}",
            "-?[0-9]{1,17}(\\.[0-9]{0,17})?",
            any::<f64>().prop_map(|f| f.to_string()),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(&["a", "b", "c", "d", "e", "x"][..]).prop_map(str::to_owned)
    }

    /// What csv makes of the record, and what the fields read in place give: the same value,
    /// or both fail. Read in place as the parser leaves a record's fields (one after another)
    /// and, when no field holds a delimiter, as a plain line.
    fn same<T: DeserializeOwned + std::fmt::Debug>(
        fields: &[String],
        headers: Option<&StringRecord>,
    ) -> Result<(), TestCaseError> {
        let expected = StringRecord::from(fields.to_vec()).deserialize::<T>(headers);
        let expected = expected.map(|v| format!("{v:?}")).ok();
        let record = csv::ByteRecord::from(fields.to_vec());
        let unquoted = std::str::from_utf8(record.as_slice()).unwrap();
        let ends: Vec<usize> = (0..record.len())
            .map(|i| record.range(i).unwrap().end)
            .collect();
        let got = T::deserialize(&mut LineFields::unquoted(unquoted, &ends, headers));
        prop_assert_eq!(
            got.map(|v| format!("{v:?}")).ok(),
            expected.clone(),
            "{} unquoted",
            std::any::type_name::<T>()
        );
        if fields.iter().any(|field| field.contains(',')) {
            return Ok(());
        }
        let line = fields.join(",");
        let mut ends = Vec::new();
        super::super::decoder::split_fields(line.as_bytes(), b',', |end| ends.push(end));
        let got = T::deserialize(&mut LineFields::new(&line, &ends, headers));
        prop_assert_eq!(
            got.map(|v| format!("{v:?}")).ok(),
            expected,
            "{}",
            std::any::type_name::<T>()
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// The fields of a line, read in place, decode to what csv decodes the same record to,
        /// and fail where it fails, for every shape serde asks for.
        #[test]
        fn fields_decode_as_csv_records_do(
            fields in prop::collection::vec(field(), 1..7),
            names in prop::option::of(prop::collection::vec(name(), 0..7)),
        ) {
            let headers = names.map(StringRecord::from);
            let headers = headers.as_ref();
            same::<Row>(&fields, headers)?;
            same::<Strict>(&fields, headers)?;
            same::<BTreeMap<String, Inferred>>(&fields, headers)?;
            same::<BTreeMap<String, String>>(&fields, headers)?;
            same::<Vec<String>>(&fields, None)?;
            same::<Vec<Inferred>>(&fields, None)?;
            same::<(Option<i8>, Kind)>(&fields, None)?;
            same::<(u128, Option<i128>, String)>(&fields, None)?;
            same::<Newtype>(&fields, None)?;
            same::<Vec<f64>>(&fields, None)?;
            same::<(Option<f64>, f64)>(&fields, None)?;
            same::<Row>(&fields, None)?;
        }
    }
}
