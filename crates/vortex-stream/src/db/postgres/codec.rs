//! PostgreSQL's binary values to and from vortex values: numerics, UUIDs, dates and
//! timestamps (with `infinity`) as text, everything else by type.

use std::fmt::Write as _;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use super::BoxError;
use crate::db::Value;
/// Any column value, read into a [`Value`].
pub(super) struct PgValue(pub(super) Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        let text = |raw: &[u8]| -> std::result::Result<Value, BoxError> {
            Ok(Value::Text(std::str::from_utf8(raw)?.to_owned()))
        };
        let value = match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON | Type::XML => text(raw)?,
            Type::JSONB => text(raw.get(1..).unwrap_or_default())?,
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::NUMERIC => Value::Text(numeric_text(raw)?),
            Type::UUID => Value::Text(uuid_text(raw)?),
            Type::DATE => Value::Text(date_text(i32::from_sql(&Type::INT4, raw)?)),
            Type::TIMESTAMP => Value::Text(timestamp_text(i64::from_sql(&Type::INT8, raw)?, "")),
            Type::TIMESTAMPTZ => Value::Text(timestamp_text(i64::from_sql(&Type::INT8, raw)?, "Z")),
            _ => {
                return Err(format!(
                    "columns of type {ty} cannot be read yet; cast it in the query (for example `::text`)"
                )
                .into())
            }
        };
        Ok(PgValue(value))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// NUMERIC's binary form (base-10000 digits) as decimal text.
pub(super) fn numeric_text(raw: &[u8]) -> std::result::Result<String, BoxError> {
    let word = |i: usize| -> std::result::Result<i16, BoxError> {
        let bytes = raw.get(i..i + 2).ok_or("numeric value too short")?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "bad numeric")?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let dscale = usize::try_from(word(6)?).map_err(|_| "bad numeric")?;
    match sign {
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(8 + 2 * i))
        .collect::<std::result::Result<_, _>>()?;
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: groups with weight >= 0.
    if weight < 0 {
        out.push('0');
    } else {
        for w in 0..=weight {
            let d = usize::try_from(w)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0);
            if w == 0 {
                let _ = write!(out, "{d}");
            } else {
                let _ = write!(out, "{d:04}");
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut fraction = String::new();
        let mut w = weight + 1;
        while fraction.len() < dscale {
            let d = if w < 0 {
                0
            } else {
                usize::try_from(w)
                    .ok()
                    .and_then(|i| digits.get(i))
                    .copied()
                    .unwrap_or(0)
            };
            let _ = write!(fraction, "{d:04}");
            w += 1;
        }
        fraction.truncate(dscale);
        out.push_str(&fraction);
    }
    Ok(out)
}

pub(super) fn uuid_text(raw: &[u8]) -> std::result::Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("a uuid has 16 bytes".into());
    }
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Days since 2000-01-01 as `YYYY-MM-DD` (the civil-from-days algorithm of H. Hinnant);
/// PostgreSQL's `infinity` and `-infinity` (the largest and smallest values) as those words,
/// never as a date far in the future or the past.
pub(super) fn date_text(days: i32) -> String {
    match days {
        i32::MAX => return "infinity".to_owned(),
        i32::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    let (y, m, d) = civil(i64::from(days) + 10_957);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Microseconds since 2000-01-01 00:00 as `YYYY-MM-DDTHH:MM:SS[.ffffff]` and `suffix`;
/// `infinity` and `-infinity` as those words.
pub(super) fn timestamp_text(micros: i64, suffix: &str) -> String {
    match micros {
        i64::MAX => return "infinity".to_owned(),
        i64::MIN => return "-infinity".to_owned(),
        _ => {}
    }
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil(days + 10_957);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if fraction > 0 {
        let _ = write!(out, ".{fraction:06}");
    }
    out.push_str(suffix);
    out
}

/// Year, month, day of a count of days since 1970-01-01.
pub(super) fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        let mismatch = || -> BoxError {
            format!("a {} cannot be sent as {ty}; cast the parameter in the query (for example `$1::text::{ty}`)", self.kind_name()).into()
        };
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Bool(b), &Type::BOOL) => b.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            // Precision loss is the caller's choice when a float column takes an integer.
            #[allow(clippy::cast_precision_loss)]
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Float(f), &Type::FLOAT8) => f.to_sql(ty, out),
            #[allow(clippy::cast_possible_truncation)]
            (Value::Float(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Bytes(b), &Type::BYTEA) => b.as_slice().to_sql(ty, out),
            (
                value,
                &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN,
            ) => value.to_text().as_ref().to_sql(ty, out),
            (Value::Text(s), &Type::INT2 | &Type::INT4 | &Type::INT8) => {
                Value::Int(s.trim().parse().map_err(|_| mismatch())?).to_sql(ty, out)
            }
            (Value::Text(s), &Type::FLOAT4 | &Type::FLOAT8) => {
                Value::Float(s.trim().parse().map_err(|_| mismatch())?).to_sql(ty, out)
            }
            _ => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Value {
    fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "byte string",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::encode_row;
    use super::*;

    #[test]
    fn dates_and_timestamps_format_as_iso() {
        assert_eq!(date_text(0), "2000-01-01");
        assert_eq!(date_text(9_824), "2026-11-24");
        assert_eq!(date_text(-1), "1999-12-31");
        assert_eq!(
            timestamp_text(86_400_000_000 + 3_723_000_001, "Z"),
            "2000-01-02T01:02:03.000001Z"
        );
        assert_eq!(date_text(i32::MAX), "infinity");
        assert_eq!(date_text(i32::MIN), "-infinity");
        assert_eq!(timestamp_text(i64::MAX, "Z"), "infinity");
        assert_eq!(timestamp_text(i64::MIN, ""), "-infinity");
        assert_ne!(date_text(i32::MAX - 1), "infinity");
    }

    #[test]
    fn numeric_binary_decodes_to_text() {
        // 12345.678: ndigits 3, weight 1, positive, dscale 3, digits [1, 2345, 6780]
        let raw: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_text(&raw).unwrap(), "12345.678");
        // -0.05: ndigits 1, weight -1, negative, dscale 2, digits [500]
        let raw: Vec<u8> = [1i16, -1, 0x4000u16 as i16, 2, 500]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric_text(&raw).unwrap(), "-0.05");
    }

    #[test]
    fn copy_text_escapes() {
        let mut out = BytesMut::new();
        encode_row(
            &[
                Value::from("a\tb\\c\nd"),
                Value::Null,
                Value::Int(3),
                Value::Bytes(vec![1, 255]),
            ],
            &mut out,
        );
        assert_eq!(&out[..], b"a\\tb\\\\c\\nd\t\\N\t3\t\\\\x01ff\n");
    }
}
