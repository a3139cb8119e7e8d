//! A serde deserializer over one plain JSON line: no escapes and no control characters in it,
//! so each string is the text between two quotes and is handed to serde where it lies.
//!
//! `serde_json` spends most of its time on a log line looking for the end of each string a
//! byte or eight bytes at a time, checking every byte for an escape or a control character on
//! the way. A plain line has none (one vectorised pass over the line tells), so the end of a
//! string is simply its next quote. It is written by hand because `serde_json` has no such
//! mode, and the JSON crates that are faster change what a line decodes to (number parsing,
//! error messages) or need unsafe code and target-specific builds.
//!
//! Each value is handed to serde exactly as `serde_json` hands it (the same `visit_*` call
//! with the same argument, for every `deserialize_*` method, for map keys and for enums), so a
//! line decoded here holds what `serde_json` would have made of it; numbers other than plain
//! integers and plain decimals (exponents, `-0`, past 64 bits or 15 digits) are parsed by
//! `serde_json` itself. It accepts only valid JSON and does not say why a line fails: on anything it does
//! not take (an escape, a control character, bad JSON, a value the target refuses) the source
//! decodes the line with `serde_json`, whose value or error is the one that counts.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::Deserialize;

use crate::sources::fast_path::{plain_decimal, Failed};

/// The lines of one batch, each decoded in place when it can be and by `serde_json` when not,
/// and when to stop trying: a target that asks for what this deserializer leaves to
/// `serde_json` (numbers as map keys, bytes, `i128`, `RawValue`) would have every line read
/// twice. Once more plain, valid lines have gone to `serde_json` than were taken (and more
/// than a few), the rest of the batch goes straight to it.
pub(super) struct Lines {
    on: bool,
    taken: u32,
    missed: u32,
}

/// Plain, valid lines given up on before the fast path may be turned off.
const MISSES: u32 = 8;

impl Lines {
    pub(super) fn new() -> Self {
        Lines {
            on: enabled(),
            taken: 0,
            missed: 0,
        }
    }

    /// `line` decoded as `T`: in place, or by `serde_json`.
    pub(super) fn decode<T: DeserializeOwned>(&mut self, line: &str) -> serde_json::Result<T> {
        if self.on {
            if let Some(value) = from_plain_line(line) {
                self.taken += 1;
                return Ok(value);
            }
        }
        let decoded = serde_json::from_str(line);
        if self.on && decoded.is_ok() && is_plain(line.as_bytes()) {
            self.missed += 1;
            self.on = self.missed <= MISSES || self.missed <= self.taken;
        }
        decoded
    }
}

/// `line` decoded as `T`, or `None` when `serde_json` has to decode it instead.
fn from_plain_line<'de, T: Deserialize<'de>>(line: &'de str) -> Option<T> {
    if !is_plain(line.as_bytes()) {
        return None;
    }
    let mut de = Plain {
        text: line,
        bytes: line.as_bytes(),
        at: 0,
        depth: 0,
    };
    let value = T::deserialize(&mut de).ok()?;
    de.skip_spaces();
    (de.at == de.bytes.len()).then_some(value)
}

/// Whether `serde_json` hands numbers to serde as plain numbers (`visit_u64` and the like).
/// With its `arbitrary_precision` feature on (a feature any crate in a build can turn on) it
/// hands them over as maps instead, and the fast path stays off.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| serde_json::from_str::<Probe>("1").is_ok_and(|probe| probe.0))
}

/// Whether a number came to `deserialize_any` as `visit_u64`.
struct Probe(bool);

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Number;
        impl<'v> Visitor<'v> for Number {
            type Value = Probe;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E>(self, _: u64) -> Result<Probe, E> {
                Ok(Probe(true))
            }
            fn visit_map<A: MapAccess<'v>>(self, _: A) -> Result<Probe, A::Error> {
                Ok(Probe(false))
            }
        }
        deserializer.deserialize_any(Number)
    }
}

/// No control character (a JSON string may not hold one raw, and a line of the usual shape has
/// none outside its strings either) and no backslash (no escapes): the end of every string is
/// its next quote.
fn is_plain(line: &[u8]) -> bool {
    let mut chunks = line.chunks_exact(SPAN);
    if chunks.any(|chunk| chunk.first_chunk().is_some_and(has_special)) {
        return false;
    }
    let rest = chunks.remainder();
    if rest.is_empty() {
        return true;
    }
    // The last bytes as one more whole span (overlapping the one before it), or padded.
    let last = line.last_chunk::<SPAN>().copied().unwrap_or_else(|| {
        let mut padded = [b' '; SPAN];
        padded[..rest.len()].copy_from_slice(rest);
        padded
    });
    !has_special(&last)
}

/// Bytes checked at once: a fixed span, so that the compiler vectorises the check.
const SPAN: usize = 32;

/// Whether `span` holds a control character or a backslash. No early exit: a few vector
/// instructions for the whole span.
#[inline(always)]
fn has_special(span: &[u8; SPAN]) -> bool {
    span.iter().fold(0u8, |seen, &b| {
        seen | u8::from(b < 0x20) | u8::from(b == b'\\')
    }) != 0
}

/// Where the first quote in `bytes` is: eight bytes at a time (a string is mostly too short
/// for `memchr`'s vectors to pay for their setup).
#[inline]
fn find_quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        // A zero byte where the quotes were; the lowest byte flagged is always a real one.
        let word = u64::from_le_bytes(*chunk) ^ (ONES * u64::from(b'"'));
        let found = word.wrapping_sub(ONES) & !word & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    rest.iter().position(|&b| b == b'"').map(|i| at + i)
}

/// Whether a newtype is one of `serde_json`'s own (`RawValue`), which ask for themselves by a
/// name starting with '$' and are left to it.
fn is_serde_json_own(name: &str) -> bool {
    name.starts_with('$')
}

/// Deepest nesting taken (`serde_json` refuses past 127).
const MAX_DEPTH: u32 = 100;

struct Plain<'de> {
    text: &'de str,
    bytes: &'de [u8],
    at: usize,
    depth: u32,
}

/// A number as `serde_json` hands it to a visitor.
enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
    F32(f32),
}

impl Number {
    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self {
            Number::U64(n) => visitor.visit_u64(n),
            Number::I64(n) => visitor.visit_i64(n),
            Number::F64(n) => visitor.visit_f64(n),
            Number::F32(n) => visitor.visit_f32(n),
        }
    }
}

/// Takes down the number `serde_json` hands over, to hand it on as it is.
struct Capture;

impl Visitor<'_> for Capture {
    type Value = Number;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Number, E> {
        Ok(Number::U64(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Number, E> {
        Ok(Number::I64(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Number, E> {
        Ok(Number::F64(n))
    }

    fn visit_f32<E>(self, n: f32) -> Result<Number, E> {
        Ok(Number::F32(n))
    }
}

impl<'de> Plain<'de> {
    #[inline]
    fn skip_spaces(&mut self) {
        while self.bytes.get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    /// The next byte that is not a space (not taken).
    #[inline]
    fn peek(&mut self) -> Result<u8, Failed> {
        self.skip_spaces();
        self.bytes.get(self.at).copied().ok_or(Failed)
    }

    /// Takes `byte`, which must come next.
    #[inline]
    fn expect(&mut self, byte: u8) -> Result<(), Failed> {
        if self.peek()? == byte {
            self.at += 1;
            Ok(())
        } else {
            Err(Failed)
        }
    }

    /// The string that starts here, at its opening quote.
    #[inline]
    fn string(&mut self) -> Result<&'de str, Failed> {
        let start = self.at + 1;
        self.skip_string()?;
        self.text.get(start..self.at - 1).ok_or(Failed)
    }

    /// Skips the string that starts here, at its opening quote.
    #[inline]
    fn skip_string(&mut self) -> Result<(), Failed> {
        let start = self.at + 1;
        let rest = self.bytes.get(start..).ok_or(Failed)?;
        let len = find_quote(rest).ok_or(Failed)?;
        self.at = start + len + 1;
        Ok(())
    }

    /// Takes `word` (`null`, `true` or `false`), which must start here.
    fn word(&mut self, word: &[u8]) -> Result<(), Failed> {
        let rest = self.bytes.get(self.at..).ok_or(Failed)?;
        if rest.starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(Failed)
        }
    }

    /// The number that starts here. A plain integer, or a plain decimal (at most 15 digits,
    /// no exponent) unless `f32` (which `serde_json` may parse in single precision), is read
    /// here; any other number (an exponent, `-0`, past 64 bits or 15 digits) is handed to
    /// `serde_json` to parse, `f32` as `deserialize_f32` parses it, and taken as it comes back.
    #[inline(always)]
    fn number(&mut self, f32: bool) -> Result<Number, Failed> {
        match self.plain_number(!f32)? {
            Some(number) => Ok(number),
            None => self.number_by_serde_json(f32),
        }
    }

    /// A plain integer (within `u64`, or a negative one within `i64` other than `-0`), or with
    /// `decimals` a plain decimal (as [`plain_decimal`] takes it); `None` for any other number.
    #[inline(always)]
    fn plain_number(&mut self, decimals: bool) -> Result<Option<Number>, Failed> {
        let negative = self.bytes.get(self.at) == Some(&b'-');
        let mut at = self.at + usize::from(negative);
        let first = match self.bytes.get(at) {
            Some(&b) if b.is_ascii_digit() => b,
            _ => return Err(Failed),
        };
        at += 1;
        let mut n = u64::from(first - b'0');
        if first == b'0' {
            // Only one leading zero.
            if self.bytes.get(at).is_some_and(u8::is_ascii_digit) {
                return Err(Failed);
            }
        } else {
            while let Some(&b) = self.bytes.get(at).filter(|b| b.is_ascii_digit()) {
                match n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                {
                    Some(next) => n = next,
                    None => return Ok(None),
                }
                at += 1;
            }
        }
        let number = match self.bytes.get(at) {
            Some(b'.') if decimals => return Ok(self.decimal(at)),
            Some(b'.' | b'e' | b'E') => return Ok(None),
            _ if negative => match i64::try_from(n) {
                Ok(n) if n > 0 => Number::I64(-n),
                _ => return Ok(None),
            },
            _ => Number::U64(n),
        };
        self.at = at;
        Ok(Some(number))
    }

    /// The plain decimal that starts here, its point at `point` (the digits before it read
    /// and valid); `None` if it is not plain. Kept out of line: most numbers are integers.
    #[inline(never)]
    fn decimal(&mut self, point: usize) -> Option<Number> {
        let digits = self.bytes.get(point + 1..).unwrap_or_default();
        let fraction = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let end = point + 1 + fraction;
        // JSON wants a digit after the point; an exponent is left to serde_json.
        if fraction == 0 || matches!(self.bytes.get(end), Some(b'e' | b'E')) {
            return None;
        }
        let value = self.bytes.get(self.at..end).and_then(plain_decimal)?;
        self.at = end;
        Some(Number::F64(value))
    }

    #[cold]
    fn number_by_serde_json(&mut self, f32: bool) -> Result<Number, Failed> {
        let rest = self.bytes.get(self.at..).ok_or(Failed)?;
        let len = rest
            .iter()
            .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(rest.len());
        let text = self.text.get(self.at..self.at + len).ok_or(Failed)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let number = if f32 {
            de.deserialize_f32(Capture)
        } else {
            de.deserialize_any(Capture)
        };
        let number = number.map_err(|_| Failed)?;
        de.end().map_err(|_| Failed)?;
        self.at += len;
        Ok(number)
    }

    /// Validates a number without reading its value (one that is not plain as `serde_json`
    /// reads it, which refuses a little more than it would when skipping, `1e400` say: the
    /// line then goes to it).
    fn skip_number(&mut self) -> Result<(), Failed> {
        if self.plain_number(true)?.is_none() {
            self.number_by_serde_json(false)?;
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Failed> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Failed);
        }
        self.at += 1;
        Ok(())
    }

    /// Leaves an array or object: `close` must come next.
    fn leave(&mut self, close: u8) -> Result<(), Failed> {
        self.depth -= 1;
        self.expect(close)
    }

    fn seq<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Failed> {
        self.enter()?;
        let value = visitor.visit_seq(Seq {
            de: self,
            first: true,
        })?;
        self.leave(b']')?;
        Ok(value)
    }

    fn map<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Failed> {
        self.enter()?;
        let value = visitor.visit_map(Map {
            de: self,
            first: true,
        })?;
        self.leave(b'}')?;
        Ok(value)
    }

    /// Whether an array or object has another element (`serde_json`'s rules: no leading or
    /// trailing comma).
    #[inline]
    fn has_next(&mut self, first: &mut bool, close: u8) -> Result<bool, Failed> {
        let peek = self.peek()?;
        if peek == close {
            return Ok(false);
        }
        if *first {
            *first = false;
            return Ok(true);
        }
        if peek != b',' {
            return Err(Failed);
        }
        self.at += 1;
        if self.peek()? == close {
            return Err(Failed);
        }
        Ok(true)
    }

    /// Skips any value, accepting only valid JSON, as `serde_json` does for a value nobody
    /// reads.
    fn skip_value(&mut self) -> Result<(), Failed> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'n' => self.word(b"null"),
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'-' | b'0'..=b'9' => self.skip_number(),
            b'[' => {
                self.enter()?;
                let mut first = true;
                while self.has_next(&mut first, b']')? {
                    self.skip_value()?;
                }
                self.leave(b']')
            }
            b'{' => {
                self.enter()?;
                let mut first = true;
                while self.has_next(&mut first, b'}')? {
                    if self.peek()? != b'"' {
                        return Err(Failed);
                    }
                    self.skip_string()?;
                    self.expect(b':')?;
                    self.skip_value()?;
                }
                self.leave(b'}')
            }
            _ => Err(Failed),
        }
    }
}

macro_rules! deserialize_number {
    ($($method:ident)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
            match self.peek()? {
                b'-' | b'0'..=b'9' => self.number(false)?.visit(visitor),
                _ => Err(Failed),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for &mut Plain<'de> {
    type Error = Failed;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'"' => visitor.visit_borrowed_str(self.string()?),
            b'-' | b'0'..=b'9' => self.number(false)?.visit(visitor),
            b'{' => self.map(visitor),
            b'[' => self.seq(visitor),
            b'n' => {
                self.word(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.word(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.word(b"false")?;
                visitor.visit_bool(false)
            }
            _ => Err(Failed),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b't' => {
                self.word(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.word(b"false")?;
                visitor.visit_bool(false)
            }
            _ => Err(Failed),
        }
    }

    deserialize_number! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f64
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(true)?.visit(visitor),
            _ => Err(Failed),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'"' => visitor.visit_borrowed_str(self.string()?),
            _ => Err(Failed),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        self.deserialize_str(visitor)
    }

    // `serde_json` reads a string as its bytes here, with checks of its own: left to it.
    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Failed> {
        Err(Failed)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Failed> {
        Err(Failed)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        if self.peek()? == b'n' {
            self.word(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'n' => {
                self.word(b"null")?;
                visitor.visit_unit()
            }
            _ => Err(Failed),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        if is_serde_json_own(name) {
            return Err(Failed);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'[' => self.seq(visitor),
            _ => Err(Failed),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'{' => self.map(visitor),
            _ => Err(Failed),
        }
    }

    // A struct may be written as an object or, as `serde_json` also takes it, an array.
    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'{' => self.map(visitor),
            b'[' => self.seq(visitor),
            _ => Err(Failed),
        }
    }

    // A unit variant as a string, any variant as an object with one entry.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        match self.peek()? {
            b'"' => visitor.visit_enum(UnitVariant { de: self }),
            b'{' => {
                self.enter()?;
                let value = visitor.visit_enum(Variant { de: self })?;
                self.leave(b'}')?;
                Ok(value)
            }
            _ => Err(Failed),
        }
    }

    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        self.skip_value()?;
        visitor.visit_unit()
    }
}

struct Seq<'a, 'de> {
    de: &'a mut Plain<'de>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Failed;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Failed> {
        if self.de.has_next(&mut self.first, b']')? {
            seed.deserialize(&mut *self.de).map(Some)
        } else {
            Ok(None)
        }
    }
}

struct Map<'a, 'de> {
    de: &'a mut Plain<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Map<'_, 'de> {
    type Error = Failed;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Failed> {
        if !self.de.has_next(&mut self.first, b'}')? {
            return Ok(None);
        }
        if self.de.peek()? != b'"' {
            return Err(Failed);
        }
        seed.deserialize(Key { de: &mut *self.de }).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Failed> {
        self.de.expect(b':')?;
        seed.deserialize(&mut *self.de)
    }
}

/// A map key, at its opening quote. As in `serde_json`, a key is a string to every request
/// but a few: those (numbers and booleans parsed out of the string, bytes, enums) are left to
/// `serde_json`.
struct Key<'a, 'de> {
    de: &'a mut Plain<'de>,
}

macro_rules! key_left_to_serde_json {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Failed> {
            Err(Failed)
        }
    )*};
}

impl<'de> Deserializer<'de> for Key<'_, 'de> {
    type Error = Failed;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_borrowed_str(self.de.string()?)
    }

    key_left_to_serde_json! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32
        deserialize_f64 deserialize_bytes deserialize_byte_buf
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failed> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Failed> {
        if is_serde_json_own(name) {
            return Err(Failed);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Failed> {
        Err(Failed)
    }

    serde::forward_to_deserialize_any! {
        char str string unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// An enum written as an object, `{"variant": value}`, past its opening brace.
struct Variant<'a, 'de> {
    de: &'a mut Plain<'de>,
}

impl<'de> EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Failed;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Failed> {
        if self.de.peek()? != b'"' {
            return Err(Failed);
        }
        let variant = seed.deserialize(Key { de: &mut *self.de })?;
        self.de.expect(b':')?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Failed;

    fn unit_variant(self) -> Result<(), Failed> {
        <()>::deserialize(self.de)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Failed> {
        seed.deserialize(self.de)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Failed> {
        self.de.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failed> {
        self.de.deserialize_struct("", fields, visitor)
    }
}

/// An enum written as a string: a unit variant.
struct UnitVariant<'a, 'de> {
    de: &'a mut Plain<'de>,
}

impl<'de> EnumAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Failed;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Failed> {
        let variant = seed.deserialize(&mut *self.de)?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Failed;

    fn unit_variant(self) -> Result<(), Failed> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Failed> {
        Err(Failed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Failed> {
        Err(Failed)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Failed> {
        Err(Failed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestCaseError;
    use serde::de::DeserializeOwned;
    use serde::Deserialize;
    use serde_json::Value;

    use super::from_plain_line;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Record {
        a: u8,
        b: i32,
        c: Option<String>,
        d: f64,
        e: Vec<i64>,
        f: Switch,
        g: bool,
        h: Inner,
        #[serde(default)]
        i: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Switch {
        On,
        Off,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Inner {
        x: f32,
        y: char,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    enum External {
        U,
        N(i32),
        T(u8, bool),
        S { a: String },
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)] // Read through `Debug`.
    enum Untagged {
        A { a: u64 },
        B(Vec<String>),
        C(f64),
        D(String),
        E(Option<bool>),
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type")]
    #[allow(dead_code)] // Read through `Debug`.
    enum Tagged {
        X { a: i32 },
        Y { b: String },
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Flat {
        a: u32,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Strict {
        a: Option<i16>,
        b: Option<u16>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Newtype(i8);

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Unit;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // Read through `Debug`.
    struct Floats {
        a: f32,
        b: f64,
    }

    /// What `serde_json` makes of the line, and what the fast path gives when it takes it:
    /// the same value (to the bit, by `Debug`); when the fast path gives up, nothing to
    /// compare.
    fn same<T: DeserializeOwned + std::fmt::Debug>(line: &str) -> Result<bool, TestCaseError> {
        let Some(got) = from_plain_line::<T>(line) else {
            return Ok(false);
        };
        let expected = serde_json::from_str::<T>(line);
        prop_assert_eq!(
            Some(format!("{got:?}")),
            expected.map(|v| format!("{v:?}")).ok(),
            "{} from {:?}",
            std::any::type_name::<T>(),
            line
        );
        Ok(true)
    }

    fn all_same(line: &str) -> Result<(), TestCaseError> {
        same::<Value>(line)?;
        same::<Record>(line)?;
        same::<Untagged>(line)?;
        same::<Tagged>(line)?;
        same::<Flat>(line)?;
        same::<Strict>(line)?;
        same::<BTreeMap<String, i64>>(line)?;
        same::<BTreeMap<String, Option<Switch>>>(line)?;
        same::<(i64, String, bool)>(line)?;
        same::<Vec<Newtype>>(line)?;
        same::<Option<Unit>>(line)?;
        same::<Floats>(line)?;
        same::<External>(line)?;
        same::<BTreeMap<String, External>>(line)?;
        same::<Vec<f32>>(line)?;
        same::<Vec<u8>>(line)?;
        same::<Vec<char>>(line)?;
        same::<serde::de::IgnoredAny>(line).map(drop)
    }

    /// The fields of `Record` and the others, the variants of `External`.
    const KEYS: &[&str] = &[
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "type", "x", "y", "U", "N", "T", "S",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::sample::select(KEYS).prop_map(str::to_owned),
            1 => "[a-z\u{e9}\"\\\\ ]{0,4}",
        ]
    }

    /// A number as text: the usual ones, and every edge `serde_json` treats apart.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            (-1000.0f64..1000.0).prop_map(|f| format!("{f}")),
            (-1000.0f32..1000.0).prop_map(|f| format!("{f:e}")),
            prop::sample::select(
                &[
                    "0",
                    "-0",
                    "-0.0",
                    "00",
                    "01",
                    "-01",
                    "1.",
                    ".5",
                    "-",
                    "+1",
                    "1e5",
                    "1E+5",
                    "1e-5",
                    "1e",
                    "1e+",
                    "2.5e400",
                    "-1e400",
                    "1.7976931348623157e308",
                    "18446744073709551615",
                    "18446744073709551616",
                    "9223372036854775807",
                    "9223372036854775808",
                    "-9223372036854775808",
                    "-9223372036854775809",
                    "123456789012345678901234567890",
                    "0.1",
                    "0e0",
                    "1-2",
                    "3.4028235e38",
                    "3.4028236e38",
                    "1.0000000000000002",
                    "255",
                    "256",
                    "-128",
                    "-129",
                    "65535",
                    "65536",
                    "32767",
                    "-32768",
                    "4294967296",
                    "-2147483649",
                ][..]
            )
            .prop_map(str::to_owned),
        ]
    }

    fn json() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            number(),
            "[a-z\u{e9}\u{1}\t\"\\\\ ]{0,8}".prop_map(|s| Value::from(s).to_string()),
            prop::sample::select(
                &["\"on\"", "\"off\"", "\"X\"", "\"Y\"", "\"U\"", "\"ab\"", "\"\""][..]
            )
            .prop_map(str::to_owned),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec((key(), inner), 0..6).prop_map(|entries| {
                    let entries: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", Value::from(k)))
                        .collect();
                    format!("{{{}}}", entries.join(","))
                }),
            ]
        })
    }

    /// An object shaped like `Record`, each field there most of the time, most values of the
    /// right type.
    fn record() -> impl Strategy<Value = String> {
        let field = |name: &'static str, value: BoxedStrategy<String>| {
            (
                prop::bool::weighted(0.97),
                prop_oneof![12 => value, 1 => json()],
            )
                .prop_map(move |(there, v)| there.then(|| format!("\"{name}\":{v}")))
        };
        (
            field("a", (0u16..270).prop_map(|n| n.to_string()).boxed()),
            field(
                "b",
                prop_oneof![6 => any::<i32>().prop_map(|n| n.to_string()), 1 => number()].boxed(),
            ),
            field(
                "c",
                prop_oneof![Just("null".to_owned()), "\"[a-z]{0,5}\""].boxed(),
            ),
            field("d", number().boxed()),
            field(
                "e",
                prop::collection::vec(
                    prop_oneof![3 => any::<i64>().prop_map(|n| n.to_string()), 1 => number()],
                    0..4,
                )
                .prop_map(|v| format!("[{}]", v.join(",")))
                .boxed(),
            ),
            field(
                "f",
                prop::sample::select(
                    &["\"on\"", "\"off\"", "\"on\"", "\"off\"", "\"up\"", "1"][..],
                )
                .prop_map(str::to_owned)
                .boxed(),
            ),
            field(
                "g",
                prop::sample::select(&["true", "false", "true", "false", "null"][..])
                    .prop_map(str::to_owned)
                    .boxed(),
            ),
            field(
                "h",
                (
                    prop_oneof![3 => (-1e3f32..1e3).prop_map(|x| x.to_string()), 1 => number()],
                    prop_oneof![5 => "[a-z\u{e9}]", 1 => "[a-z\u{e9}]{0,2}"],
                )
                    .prop_map(|(x, y)| format!("{{\"x\":{x},\"y\":\"{y}\"}}"))
                    .boxed(),
            ),
            field(
                "i",
                prop_oneof![any::<u64>().prop_map(|n| n.to_string()), number()].boxed(),
            ),
            prop::collection::vec(
                (prop_oneof![Just("type".to_owned()), "[j-z]{0,3}"], json()),
                0..2,
            ),
        )
            .prop_map(|(a, b, c, d, e, f, g, h, i, extra)| {
                let mut fields: Vec<String> =
                    [a, b, c, d, e, f, g, h, i].into_iter().flatten().collect();
                fields.extend(
                    extra
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", Value::from(k))),
                );
                format!("{{{}}}", fields.join(","))
            })
    }

    /// The text with spaces where JSON allows them, and maybe one change that may break it.
    fn mangle(text: String) -> impl Strategy<Value = String> {
        let len = text.chars().count();
        (
            any::<bool>(),
            prop::option::weighted(
                0.3,
                (
                    0..=len,
                    0..4usize,
                    prop::sample::select(
                        &[
                            ",", "}", "]", "{", "[", "\"", ":", " ", "\\", "\t", "0", "-", "e",
                            ".", "n", "\u{e9}", "\r",
                        ][..],
                    ),
                ),
            ),
        )
            .prop_map(move |(spaced, change)| {
                let mut chars: Vec<char> = text.chars().collect();
                if spaced {
                    chars = chars
                        .into_iter()
                        .flat_map(|c| match c {
                            ',' | ':' | '[' | '{' => vec![c, ' '],
                            _ => vec![c],
                        })
                        .collect();
                }
                if let Some((at, how, with)) = change {
                    let at = at.min(chars.len());
                    match how {
                        0 if at < chars.len() => drop(chars.remove(at)),
                        1 => chars.truncate(at),
                        _ => chars.splice(at..at, with.chars()).for_each(drop),
                    }
                }
                chars.into_iter().collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// A line the fast path takes decodes to exactly what `serde_json` decodes it to, for
        /// every shape serde asks for.
        #[test]
        fn plain_lines_decode_as_serde_json_decodes_them(
            line in prop_oneof![json(), record()].prop_flat_map(mangle)
        ) {
            all_same(&line)?;
        }
    }

    #[test]
    fn the_usual_lines_are_taken_and_the_others_left_to_serde_json() {
        let log = concat!(
            r#"{"ts":"2026-11-01T00:00:00.000Z","level":"error","latency_ms":205,"#,
            r#""user_id":-3,"ok":true,"tags":["a","b"],"extra":null,"ratio":0.25}"#
        );
        let taken: Value = from_plain_line(log).expect("a plain line");
        assert_eq!(taken, serde_json::from_str::<Value>(log).unwrap());
        let record = concat!(
            r#"{ "a": 7, "b": -2, "c": null, "d": 1.5, "e": [1, -1], "f": "on", "g": false, "#,
            r#""h": {"x": 0.5, "y": "z"} }"#
        );
        assert!(from_plain_line::<Record>(record).is_some());
        let variants =
            r#"{"a":"U","b":{"U":null},"c":{"N":-1},"d":{"T":[1,true]},"e":{"S":{"a":""}}}"#;
        let taken: BTreeMap<String, External> = from_plain_line(variants).expect("a plain line");
        assert_eq!(
            format!("{taken:?}"),
            format!(
                "{:?}",
                serde_json::from_str::<BTreeMap<String, External>>(variants).unwrap()
            )
        );

        // Escapes, control characters and tabs, bad JSON, and values the target refuses.
        for line in [
            r#"{"msg":"say \"hi\""}"#,
            "{\"msg\":\"a\tb\"}",
            "{\"a\":\t1}",
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":01}"#,
            r#"{"a":"#,
        ] {
            assert!(from_plain_line::<Value>(line).is_none(), "{line}");
        }
        assert!(from_plain_line::<Record>(r#"{"a":300}"#).is_none());
    }

    /// A target whose every line the fast path gives up on (numbers as map keys) gets the
    /// same values, and after a few lines is no longer tried; one it takes stays on.
    #[test]
    fn a_target_the_fast_path_gives_up_on_is_soon_left_to_serde_json() {
        let mut lines = super::Lines::new();
        for n in 0..100u32 {
            let line = format!(r#"{{"{n}":{n}}}"#);
            let decoded: BTreeMap<u32, u32> = lines.decode(&line).unwrap();
            assert_eq!(
                decoded,
                serde_json::from_str::<BTreeMap<u32, u32>>(&line).unwrap()
            );
        }
        assert!(!lines.on, "still trying after {} misses", lines.missed);
        assert_eq!((lines.taken, lines.missed), (0, super::MISSES + 1));

        let mut lines = super::Lines::new();
        for n in 0..100u32 {
            let line = format!(r#"{{"k{n}":{n}}}"#);
            let decoded: BTreeMap<String, u32> = lines.decode(&line).unwrap();
            assert_eq!(decoded.get(&format!("k{n}")), Some(&n));
        }
        assert!(lines.on);
        assert_eq!((lines.taken, lines.missed), (100, 0));
    }

    /// The property test compares something: valid plain records are all taken.
    #[test]
    fn generated_plain_records_are_all_taken() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut valid, mut taken) = (0, 0);
        for _ in 0..500 {
            let line = record().new_tree(&mut runner).unwrap().current();
            if serde_json::from_str::<Record>(&line).is_ok() && super::is_plain(line.as_bytes()) {
                valid += 1;
                taken += usize::from(from_plain_line::<Record>(&line).is_some());
            }
        }
        assert!(valid > 20, "{valid} valid plain records of 500");
        assert_eq!(taken, valid);
    }
}
