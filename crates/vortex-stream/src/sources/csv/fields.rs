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
//!
//! A struct whose field names are header columns in the same order is handed its fields as a
//! sequence rather than as a map keyed by the headers (see
//! [`LineFields::deserialize_struct`]): the same values in the same order, without a key to
//! match for each column.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use csv::StringRecord;
use serde::de::value::BorrowedBytesDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::sources::fast_path::{parse_f64, Failed};

/// A header row's names as text, and which struct's field names they are known to be.
#[derive(Clone, Copy, Debug)]
pub(super) struct Names<'r> {
    pub(super) names: &'r StringRecord,
    pub(super) order: &'r FieldOrder,
}

/// How the struct first decoded with a header row reads its fields: the header column of
/// each of its field names. Only a cache, kept with the header row for every record decoded
/// with it (and every thread decoding them).
#[derive(Debug, Default)]
pub(super) struct FieldOrder {
    plan: OnceLock<Plan>,
}

impl Clone for FieldOrder {
    fn clone(&self) -> Self {
        FieldOrder::default()
    }
}

impl FieldOrder {
    /// The plan for reading `fields` as a sequence from records with the header row `names`:
    /// only for the first list of field names asked about (other structs read a map), and
    /// only when each name is one column's, in the same order.
    fn plan(&self, names: &StringRecord, fields: &'static [&'static str]) -> Option<&Plan> {
        let plan = self.plan.get_or_init(|| Plan::new(names, fields));
        let same = core::ptr::eq(plan.fields, fields);
        (same && !plan.columns.is_empty() && plan.state.load(Ordering::Relaxed) != REFUSED)
            .then_some(plan)
    }
}

/// Not yet proven: read the struct as a map.
const UNPROVEN: u8 = 0;
/// A record was decoded as a map with these headers: the columns not named by a field are
/// ignored, not refused (as `#[serde(deny_unknown_fields)]` would).
const PROVEN: u8 = 1;
/// The struct did not read one element for each name (a field with aliases).
const REFUSED: u8 = 2;

#[derive(Debug)]
struct Plan {
    fields: &'static [&'static str],
    // The column of each field name, increasing; empty if there is no such order.
    columns: Box<[usize]>,
    state: AtomicU8,
}

impl Plan {
    fn new(names: &StringRecord, fields: &'static [&'static str]) -> Self {
        let mut columns = Vec::with_capacity(fields.len());
        for field in fields {
            let mut named = names.iter().enumerate().filter(|(_, name)| name == field);
            match (named.next(), named.next()) {
                (Some((column, _)), None) if columns.last().is_none_or(|last| *last < column) => {
                    columns.push(column);
                }
                _ => {
                    columns.clear();
                    break;
                }
            }
        }
        Plan {
            fields,
            columns: columns.into_boxed_slice(),
            state: AtomicU8::new(UNPROVEN),
        }
    }
}

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
    names: Option<Names<'r>>,
    headers: Option<csv::StringRecordIter<'r>>,
    // Whether a header has been handed out as a key.
    keyed: bool,
    // Whether a struct's element is being read (see `Positional`).
    in_element: bool,
}

impl<'r> LineFields<'r> {
    pub(super) fn new(line: &'r str, ends: &'r [usize], names: Option<Names<'r>>) -> Self {
        LineFields {
            line,
            ends,
            next: 0,
            start: 0,
            gap: 1,
            names,
            headers: names.map(|names| names.names.iter()),
            keyed: false,
            in_element: false,
        }
    }

    /// The fields of a record as the parser unquoted them: `fields` all of them one after
    /// another, `ends[i]` where field `i` ends in it (as a `ByteRecord` holds them).
    pub(super) fn unquoted(fields: &'r str, ends: &'r [usize], names: Option<Names<'r>>) -> Self {
        LineFields {
            gap: 0,
            ..LineFields::new(fields, ends, names)
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
        if self.in_element {
            // Read as a map, it would take its keys from the headers after its column's.
            return Err(Failed);
        }
        if self.headers.is_some() {
            visitor.visit_map(self)
        } else {
            visitor.visit_seq(self)
        }
    }

    /// A struct is a map keyed by the headers, as csv makes it; or, when its field names are
    /// header columns in the same order and no field has been read yet, a sequence of those
    /// columns' fields, the others passed over.
    ///
    /// The two give the same value: the map would be handed each named column's field for
    /// that field, in column order, and pass over the others (a column no field names is
    /// ignored: the sequence is taken only after a record of these headers decoded as a map,
    /// so `#[serde(deny_unknown_fields)]` keeps its errors); the sequence hands the same
    /// fields as elements in the same order, as serde's derive reads a struct from a sequence
    /// (and as csv without headers, and formats without names, need a struct to). Where the
    /// two could differ, the sequence is refused and the record read by csv, as on any
    /// failure here: an element that takes other than the one field of its column (a tuple
    /// takes several, a unit none), or is a struct or a map (which would take its keys from
    /// the headers after its column's), or other than one element for each name listed (a
    /// field with aliases lists several names, among which the map would find a duplicate).
    /// A record of another length than the header row's is read as a map (the map might find
    /// an `Option`'s `None` past its last field).
    fn deserialize_struct<V: Visitor<'r>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        if self.in_element {
            // A struct's element: its keys would be the headers after its column's.
            return Err(Failed);
        }
        let plan = match self.names {
            Some(names)
                if self.next == 0 && !self.keyed && self.ends.len() == names.names.len() =>
            {
                names.order.plan(names.names, fields)
            }
            _ => None,
        };
        let Some(plan) = plan else {
            return self.deserialize_map(visitor);
        };
        if plan.state.load(Ordering::Relaxed) == UNPROVEN {
            let value = self.deserialize_map(visitor)?;
            let _ =
                plan.state
                    .compare_exchange(UNPROVEN, PROVEN, Ordering::Relaxed, Ordering::Relaxed);
            return Ok(value);
        }
        let mut elements = Positional {
            fields: self,
            columns: &plan.columns,
            asked: 0,
        };
        let value = visitor.visit_seq(&mut elements)?;
        if elements.asked != fields.len() {
            plan.state.store(REFUSED, Ordering::Relaxed);
            return Err(Failed);
        }
        Ok(value)
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

/// A struct's fields handed out as a sequence: element `i` is the field of column
/// `columns[i]` (see [`LineFields::deserialize_struct`]).
struct Positional<'a, 'r> {
    fields: &'a mut LineFields<'r>,
    columns: &'a [usize],
    asked: usize,
}

impl<'r> SeqAccess<'r> for Positional<'_, 'r> {
    type Error = Failed;

    fn next_element_seed<U: DeserializeSeed<'r>>(
        &mut self,
        seed: U,
    ) -> Result<Option<U::Value>, Failed> {
        let column = *self.columns.get(self.asked).ok_or(Failed)?;
        self.asked += 1;
        // The columns before it, which the map would hand to no field.
        while self.fields.next < column {
            self.fields.next_field()?;
        }
        // The record holds a field for every column: the fields of this one and of any
        // element before it took one field each.
        self.fields.in_element = true;
        let value = seed.deserialize(&mut *self.fields);
        self.fields.in_element = false;
        let value = value?;
        if self.fields.next != column + 1 {
            return Err(Failed);
        }
        Ok(Some(value))
    }
}

impl<'r> MapAccess<'r> for &mut LineFields<'r> {
    type Error = Failed;

    fn next_key_seed<K: DeserializeSeed<'r>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Failed> {
        self.keyed = true;
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
    use super::{FieldOrder, LineFields, Names};
    use std::sync::atomic::Ordering;

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
        same_as::<T>(fields, headers, &FieldOrder::default())
    }

    /// [`same`], with `order` (what the header row is known to be) kept from earlier calls;
    /// each way of reading is decoded twice, as `order` knows it before and after.
    fn same_as<T: DeserializeOwned + std::fmt::Debug>(
        fields: &[String],
        headers: Option<&StringRecord>,
        order: &FieldOrder,
    ) -> Result<(), TestCaseError> {
        same_or_left::<T>(fields, headers, order, false)
    }

    /// [`same_as`]; with `may_leave`, the fields read in place may also fail where csv
    /// decodes the record (the decoder then reads it through csv).
    fn same_or_left<T: DeserializeOwned + std::fmt::Debug>(
        fields: &[String],
        headers: Option<&StringRecord>,
        order: &FieldOrder,
        may_leave: bool,
    ) -> Result<(), TestCaseError> {
        let agrees = |got: Result<T, _>, expected: &Option<String>| {
            let got = got.map(|v| format!("{v:?}")).ok();
            got == *expected || (may_leave && got.is_none())
        };
        let names = headers.map(|names| Names { names, order });
        let expected = StringRecord::from(fields.to_vec()).deserialize::<T>(headers);
        let expected = expected.map(|v| format!("{v:?}")).ok();
        let record = csv::ByteRecord::from(fields.to_vec());
        let unquoted = std::str::from_utf8(record.as_slice()).unwrap();
        let ends: Vec<usize> = (0..record.len())
            .map(|i| record.range(i).unwrap().end)
            .collect();
        for _ in 0..2 {
            let got = T::deserialize(&mut LineFields::unquoted(unquoted, &ends, names));
            prop_assert!(
                agrees(got, &expected),
                "{} unquoted, csv: {:?}",
                std::any::type_name::<T>(),
                expected
            );
        }
        if fields.iter().any(|field| field.contains(',')) {
            return Ok(());
        }
        let line = fields.join(",");
        let mut ends = Vec::new();
        super::super::decoder::split_fields(line.as_bytes(), b',', |end| ends.push(end));
        for _ in 0..2 {
            let got = T::deserialize(&mut LineFields::new(&line, &ends, names));
            prop_assert!(
                agrees(got, &expected),
                "{}, csv: {:?}",
                std::any::type_name::<T>(),
                expected
            );
        }
        Ok(())
    }

    // Structs whose field names a header row may list in order (read as a sequence then).
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Ordered {
        a: Option<i64>,
        b: String,
        c: f64,
    }

    /// Lists `a, b, c`, as `Ordered` does, for two fields.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Aliased {
        #[serde(alias = "b")]
        a: String,
        c: Option<u8>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Skipping {
        a: u8,
        #[serde(skip)]
        s: u8,
        b: Option<String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    #[allow(dead_code)]
    struct Defaulted {
        a: u8,
        b: String,
        c: Option<u8>,
    }

    /// Its first field takes two of the record's.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Paired {
        a: (u8, u8),
        b: Option<u8>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    #[allow(dead_code)]
    struct PairedDefault {
        a: (u8, u8),
        b: u8,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Renamed {
        #[serde(rename = "x")]
        a: u8,
        b: Option<u8>,
    }

    /// A map as a struct's field: its keys are the headers after its column's.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WithMap {
        a: BTreeMap<String, String>,
    }

    /// A struct as a map's first value: its own fields are the headers after the first.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct OuterOne {
        a: One,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct One {
        a: Option<u8>,
    }

    /// A struct as a map's first value: its own fields are the headers after the first.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        a: Ordered,
    }

    /// Refuses the columns it does not name.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Denying {
        a: u8,
        c: Option<String>,
    }

    /// Header rows that name these structs' fields in order, or nearly, with other columns
    /// between them or not.
    fn header_row() -> impl Strategy<Value = Vec<String>> {
        let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        prop_oneof![
            Just(names(&["a", "b", "c"])),
            Just(names(&["a"])),
            Just(names(&["a", "b"])),
            Just(names(&["x", "b"])),
            Just(names(&["b", "a", "c"])),
            Just(names(&["a", "y", "b", "c", "y"])),
            Just(names(&["y", "a", "c"])),
            Just(names(&["a", "y", "b"])),
            Just(names(&["x", "y", "b", "a"])),
            prop::collection::vec(
                prop::sample::select(&["a", "b", "c", "x", "y"][..]).prop_map(str::to_owned),
                0..6
            ),
        ]
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

        /// A struct whose field names are header columns in order, read as a sequence,
        /// decodes to what csv's map of the same record decodes to, or fails where it fails:
        /// with other columns, aliases, skipped fields, defaults, a field of two columns, a
        /// rename, unknown columns refused, nested in a tuple and in a map, in records short
        /// and long. Each struct keeps what its header row learns over the records (as the
        /// decoder does), and then all share one, which the first struct asked about holds.
        #[test]
        fn structs_named_by_the_headers_decode_as_csv_records_do(
            // A line holds a field at least (an empty record is no line).
            records in prop::collection::vec(
                prop::collection::vec(prop_oneof![field(), "[0-9]{1,2}"], 1..7),
                1..5,
            ),
            names in header_row(),
            shared in any::<bool>(),
        ) {
            let headers = StringRecord::from(names);
            let orders: Vec<FieldOrder> = (0..14).map(|_| FieldOrder::default()).collect();
            let order = |i: usize| if shared { &orders[0] } else { &orders[i] };
            let headers = Some(&headers);
            for fields in &records {
                same_as::<Ordered>(fields, headers, order(0))?;
                same_as::<Aliased>(fields, headers, order(1))?;
                same_as::<Skipping>(fields, headers, order(2))?;
                same_as::<Defaulted>(fields, headers, order(3))?;
                // A field of two columns can leave the sequence short of fields where the
                // map finds an `Option` missing: such a record is left to csv.
                same_or_left::<Paired>(fields, headers, order(4), true)?;
                same_or_left::<PairedDefault>(fields, headers, order(5), true)?;
                same_as::<Renamed>(fields, headers, order(6))?;
                same_as::<Denying>(fields, headers, order(7))?;
                same_as::<(Ordered,)>(fields, headers, order(8))?;
                // A struct in a struct read as a sequence is left to csv.
                same_or_left::<Outer>(fields, headers, order(9), true)?;
                same_or_left::<OuterOne>(fields, headers, order(11), true)?;
                same_as::<BTreeMap<String, Ordered>>(fields, headers, order(12))?;
                same_or_left::<WithMap>(fields, headers, order(13), true)?;
                same_as::<Row>(fields, headers, order(10))?;
            }
        }
    }

    /// The sequence is taken once a record decoded as a map, where the headers name the
    /// struct's fields in order; never for aliases, or for a struct refusing other columns.
    #[test]
    fn headers_naming_the_fields_in_order_are_read_as_a_sequence() {
        let state = |order: &FieldOrder| {
            order
                .plan
                .get()
                .map(|plan| plan.state.load(Ordering::Relaxed))
        };
        let decode = |headers: &[&str], line: &str, order: &FieldOrder| {
            let headers = StringRecord::from(headers.to_vec());
            let mut ends = Vec::new();
            super::super::decoder::split_fields(line.as_bytes(), b',', |end| ends.push(end));
            let names = Some(Names {
                names: &headers,
                order,
            });
            let ordered = Ordered::deserialize(&mut LineFields::new(line, &ends, names));
            let aliased = Aliased::deserialize(&mut LineFields::new(line, &ends, names));
            let denying = Denying::deserialize(&mut LineFields::new(line, &ends, names));
            (
                ordered.map(|o| (o.a, o.b, o.c)).ok(),
                aliased.is_ok(),
                denying.is_ok(),
            )
        };
        let order = FieldOrder::default();
        let headers = ["y", "a", "b", "y", "c"];
        let first = decode(&headers, "_,7,x,_,1.5", &order);
        assert_eq!(first.0, Some((Some(7), "x".to_owned(), 1.5)));
        assert_eq!(state(&order), Some(super::PROVEN));
        let second = decode(&headers, "_,8,z,_,2.5", &order);
        assert_eq!(second.0, Some((Some(8), "z".to_owned(), 2.5)));

        // Aliases list more names than the struct reads elements: refused, and remembered.
        let order = FieldOrder::default();
        let _ = Aliased::deserialize(&mut LineFields::new(
            "7,8,9",
            &[1, 3, 5],
            Some(Names {
                names: &StringRecord::from(vec!["a", "b", "c"]),
                order: &order,
            }),
        ));
        assert_eq!(
            state(&order),
            Some(super::UNPROVEN),
            "a duplicate, as a map"
        );

        // A struct refusing other columns is never read as a sequence.
        let order = FieldOrder::default();
        let headers = ["a", "x", "c"];
        let names = Some(Names {
            names: &StringRecord::from(headers.to_vec()),
            order: &order,
        });
        for _ in 0..2 {
            assert!(
                Denying::deserialize(&mut LineFields::new("1,2,3", &[1, 3, 5], names)).is_err()
            );
        }
        assert_eq!(state(&order), Some(super::UNPROVEN));

        // Headers in another order are a map's keys, never a sequence.
        let order = FieldOrder::default();
        let swapped = decode(&["b", "a", "c"], "x,7,1.5", &order);
        assert_eq!(swapped.0, Some((Some(7), "x".to_owned(), 1.5)));
        assert!(order.plan.get().is_some_and(|plan| plan.columns.is_empty()));
    }
}
