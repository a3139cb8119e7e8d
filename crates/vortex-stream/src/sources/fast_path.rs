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

/// A decimal as Rust's own `f64` parsing reads it, in a fraction of the time, when it is plain:
/// an optional `-`, at most 15 digits in all, and at most one `.` with digits on both sides.
/// `None` for anything else (exponents, `+`, `inf`, more digits), which the caller parses the
/// usual way.
///
/// Exact, not an approximation: the digits as an integer (below 10^15, so a double holds it
/// exactly) divided by a power of ten (at most 10^15, also exact) is one correctly rounded
/// IEEE division, which is the correctly rounded value of the decimal, as the standard parser
/// gives it (Clinger's fast path, which the standard parser also takes, after more work to get
/// there). `serde_json` computes such a number the same way.
pub(super) fn plain_decimal(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    if digits.len() > MAX_DIGITS + 1 {
        return None;
    }
    // One pass: the digits into one integer, and where the point is.
    let mut significand = 0u64;
    let mut point = None;
    for (at, &b) in digits.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            significand = significand * 10 + u64::from(digit);
        } else if b == b'.' && point.is_none() {
            point = Some(at);
        } else {
            return None;
        }
    }
    let scale = match point {
        None if !digits.is_empty() && digits.len() <= MAX_DIGITS => 0,
        Some(at) if at > 0 && at + 1 < digits.len() => digits.len() - at - 1,
        _ => return None,
    };
    // Both exact: below 2^53, and a power of ten no larger than 10^15.
    #[allow(clippy::cast_precision_loss)]
    let value = significand as f64 / POWERS_OF_TEN[scale];
    Some(if negative { -value } else { value })
}

/// `text` as an `f64`, exactly as `str::parse` reads it: a plain decimal by
/// [`plain_decimal`], anything else by `str::parse`.
#[cfg(feature = "csv")]
pub(super) fn parse_f64(text: &str) -> Option<f64> {
    plain_decimal(text.as_bytes()).or_else(|| text.parse().ok())
}

/// Digits a plain decimal may have: 10^15 is below 2^53, so every such integer is a double.
const MAX_DIGITS: usize = 15;

const POWERS_OF_TEN: [f64; MAX_DIGITS + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use proptest::prelude::*;

    use super::plain_decimal;

    fn same(text: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = plain_decimal(text.as_bytes()) {
            let parsed: f64 = text.parse().expect("a plain decimal parses");
            prop_assert_eq!(fast.to_bits(), parsed.to_bits(), "{}", text);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// A plain decimal is the same double, to the bit, as Rust's parser makes of it.
        #[test]
        fn plain_decimals_parse_as_rust_parses_them(
            text in prop_oneof![
                "-?[0-9]{1,8}(\\.[0-9]{1,8})?",
                "-?[0-9]{1,17}(\\.[0-9]{0,17})?",
                "[-+.0-9e]{0,6}",
                any::<f64>().prop_map(|f| f.to_string()),
                (-1e6f64..1e6).prop_map(|f| format!("{f:.2}")),
            ]
        ) {
            same(&text)?;
        }
    }

    #[test]
    fn the_usual_decimals_are_taken_and_the_others_left() {
        assert_eq!(plain_decimal(b"53.25"), Some(53.25));
        assert_eq!(
            plain_decimal(b"-0.0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(plain_decimal(b"007"), Some(7.0));
        assert_eq!(
            plain_decimal(b"999999999999999"),
            Some(999_999_999_999_999.0)
        );
        for text in [
            "",
            "-",
            ".5",
            "5.",
            "1.2.3",
            "+1",
            "1e5",
            "inf",
            "1_0",
            "9999999999999999",
        ] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text}");
        }
    }
}
