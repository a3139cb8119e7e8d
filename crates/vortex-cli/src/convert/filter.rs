//! `--where` predicates.

use anyhow::{bail, Context as _, Result};
use regex::Regex;

use crate::record::Record;

/// One `--where` predicate.
pub(crate) enum Filter {
    Eq(String, String),
    Ne(String, String),
    Lt(String, f64),
    Gt(String, f64),
    Matches(String, Regex),
}

impl Filter {
    pub(crate) fn parse(text: &str) -> Result<Filter> {
        if let Some((field, value)) = text.split_once("!=") {
            return Ok(Filter::Ne(field.to_owned(), value.to_owned()));
        }
        if let Some((field, pattern)) = text.split_once('~') {
            let regex =
                Regex::new(pattern).with_context(|| format!("bad regex in --where {text:?}"))?;
            return Ok(Filter::Matches(field.to_owned(), regex));
        }
        for (op, make) in [
            ('<', Filter::Lt as fn(String, f64) -> Filter),
            ('>', Filter::Gt),
        ] {
            if let Some((field, number)) = text.split_once(op) {
                let number: f64 = number
                    .trim()
                    .parse()
                    .with_context(|| format!("--where {text:?}: {number:?} is not a number"))?;
                return Ok(make(field.to_owned(), number));
            }
        }
        if let Some((field, value)) = text.split_once('=') {
            return Ok(Filter::Eq(field.to_owned(), value.to_owned()));
        }
        bail!(
            "--where {text:?}: expected field=value, field!=value, field<n, field>n or field~regex"
        )
    }

    /// The field the predicate reads.
    pub(crate) fn field(&self) -> &str {
        match self {
            Filter::Eq(f, _)
            | Filter::Ne(f, _)
            | Filter::Lt(f, _)
            | Filter::Gt(f, _)
            | Filter::Matches(f, _) => f,
        }
    }

    /// Whether `record` passes. A field's text is what a CSV field would hold (see
    /// [`Field::text`](crate::record::Field::text)); a missing field matches only `!=`, and
    /// an empty one (or JSON `null`) matches neither `<` nor `>`: it holds no value.
    ///
    /// # Errors
    ///
    /// A field that `<` or `>` compares holds text that is not a number: the record cannot be
    /// said to pass or not, so it is rejected (with its position, under the error policy),
    /// never counted as filtered out.
    pub(crate) fn keeps(&self, record: &Record) -> Result<bool, String> {
        let text = |field: &str| record.get(field).map(crate::record::Field::text);
        let compare = |f: &str, n: f64, op: char, holds: fn(f64, f64) -> bool| {
            let Some(t) = text(f) else {
                return Ok(false);
            };
            let t = t.trim();
            if t.is_empty() {
                return Ok(false);
            }
            match t.parse::<f64>() {
                Ok(x) => Ok(holds(x, n)),
                Err(_) => Err(format!(
                    "field {f:?} is {t:?}, not a number, for --where {f}{op}{n}"
                )),
            }
        };
        Ok(match self {
            Filter::Eq(f, v) => text(f).as_deref() == Some(v.as_str()),
            Filter::Ne(f, v) => text(f).as_deref() != Some(v.as_str()),
            Filter::Lt(f, n) => compare(f, *n, '<', |x, n| x < n)?,
            Filter::Gt(f, n) => compare(f, *n, '>', |x, n| x > n)?,
            Filter::Matches(f, re) => text(f).is_some_and(|t| re.is_match(&t)),
        })
    }
}

/// Whether `record` passes every one of `filters` (see [`Filter::keeps`]).
pub(crate) fn keeps_all(filters: &[Filter], record: &Record) -> Result<bool, String> {
    for filter in filters {
        if !filter.keeps(record)? {
            return Ok(false);
        }
    }
    Ok(true)
}
