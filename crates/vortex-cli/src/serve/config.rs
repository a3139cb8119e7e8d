//! The service's configuration: named exports, each a query with typed parameters, and named
//! imports, each a table with typed columns.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;
use vortex_stream::db::Value;

/// The file `--config` names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(rename = "export", default)]
    pub(crate) exports: Vec<Export>,
    #[serde(rename = "import", default)]
    pub(crate) imports: Vec<Import>,
}

/// One named import: `POST /imports/{name}` with a CSV or JSON Lines body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Import {
    pub(crate) name: String,
    /// The table the rows go into.
    pub(crate) table: String,
    /// The table's columns the body fills, matched by name to CSV header fields or JSON keys.
    pub(crate) columns: Vec<Column>,
    /// Rows per batch sent to the database.
    #[serde(default = "default_batch")]
    pub(crate) batch: std::num::NonZeroUsize,
    /// Larger bodies are refused with 413.
    #[serde(default = "default_max_body")]
    pub(crate) max_body_bytes: u64,
    /// What a row that fails its checks does to the import.
    #[serde(default)]
    pub(crate) on_error: OnBadRow,
    /// Rejected rows listed in the report; the rest are counted.
    #[serde(default = "default_report_limit")]
    pub(crate) report_limit: usize,
    /// Requests of this import running at once; more are refused with 429.
    #[serde(default = "default_import_concurrency")]
    pub(crate) max_concurrent: usize,
}

/// A column an import fills.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Column {
    pub(crate) name: String,
    #[serde(rename = "type", default)]
    pub(crate) kind: ParamType,
    /// A missing or empty value rejects the row; otherwise it is `NULL`.
    #[serde(default)]
    pub(crate) required: bool,
}

/// What a row that fails its checks does to the import.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnBadRow {
    /// The row is left out and reported; the good rows are committed.
    #[default]
    Skip,
    /// The row is reported and nothing is committed.
    Reject,
}

fn default_batch() -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(1000).unwrap_or(std::num::NonZeroUsize::MIN)
}

fn default_max_body() -> u64 {
    64 << 20
}

fn default_report_limit() -> usize {
    100
}

fn default_import_concurrency() -> usize {
    4
}

/// One named export: `GET /exports/{name}.csv`, `.jsonl` or `.xlsx`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Export {
    pub(crate) name: String,
    /// The SQL; its parameters (`?1` in SQLite, `$1` in PostgreSQL) are `params`, in order.
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) params: Vec<Param>,
    /// Requests of this export running at once; more are refused with 429.
    #[serde(default = "default_concurrency")]
    pub(crate) max_concurrent: usize,
    /// Seconds the database may spend on one run of the query before it ends it (PostgreSQL
    /// and MariaDB/MySQL); none by default.
    #[serde(default)]
    pub(crate) statement_timeout: Option<f64>,
}

fn default_concurrency() -> usize {
    16
}

/// A query parameter, taken from the request's query string.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Param {
    pub(crate) name: String,
    #[serde(rename = "type", default)]
    pub(crate) kind: ParamType,
    /// Used when the request does not give the parameter; without it, the parameter is
    /// required.
    pub(crate) default: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ParamType {
    #[default]
    Text,
    Int,
    Float,
    Bool,
}

impl ParamType {
    /// The value of `text` as this type, or what it is not.
    pub(crate) fn parse(self, text: &str) -> Result<Value, &'static str> {
        Ok(match self {
            // A NUL byte is refused by PostgreSQL, and most often means binary data.
            ParamType::Text if text.contains('\0') => return Err("text without NUL bytes"),
            ParamType::Text => Value::Text(text.to_owned()),
            ParamType::Int => Value::Int(text.trim().parse().map_err(|_| "an integer")?),
            // NaN and the infinities parse, but no database column takes them all alike.
            ParamType::Float => match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Value::Float(number),
                _ => return Err("a finite number"),
            },
            ParamType::Bool => Value::Bool(text.trim().parse().map_err(|_| "true or false")?),
        })
    }
}

/// Why a request's parameters were refused: the parameter and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadParam {
    pub(crate) param: String,
    pub(crate) problem: String,
}

impl Export {
    /// The values to bind, in order, from the request's query string.
    pub(crate) fn bind(&self, given: &HashMap<String, String>) -> Result<Vec<Value>, BadParam> {
        if let Some(unknown) = given
            .keys()
            .find(|k| !self.params.iter().any(|p| &p.name == *k))
        {
            return Err(BadParam {
                param: unknown.clone(),
                problem: "this export has no such parameter".to_owned(),
            });
        }
        self.params
            .iter()
            .map(|param| {
                let text = given
                    .get(&param.name)
                    .or(param.default.as_ref())
                    .ok_or_else(|| BadParam {
                        param: param.name.clone(),
                        problem: "missing".to_owned(),
                    })?;
                param.kind.parse(text).map_err(|what| BadParam {
                    param: param.name.clone(),
                    problem: format!("{text:?} is not {what}"),
                })
            })
            .collect()
    }
}

impl Import {
    /// A row's values in column order, from `field` (a column's text, if the record has it),
    /// or why the row is rejected.
    pub(crate) fn row(&self, field: impl Fn(&str) -> Option<String>) -> Result<Vec<Value>, String> {
        self.columns
            .iter()
            .map(
                |column| match field(&column.name).filter(|text| !text.is_empty()) {
                    None if column.required => Err(format!("`{}` is required", column.name)),
                    None => Ok(Value::Null),
                    Some(text) => column
                        .kind
                        .parse(&text)
                        .map_err(|what| format!("`{}`: {text:?} is not {what}", column.name)),
                },
            )
            .collect()
    }
}

impl Config {
    pub(crate) fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        config.check()?;
        Ok(config)
    }

    /// The built-in configuration for the demo database: an `orders` export by status.
    pub(crate) fn builtin() -> Config {
        Config {
            exports: vec![Export {
                name: "orders".to_owned(),
                query: "SELECT id, customer, email, status, amount, created_at FROM orders WHERE status = ?1 ORDER BY id"
                    .to_owned(),
                params: vec![Param {
                    name: "status".to_owned(),
                    kind: ParamType::Text,
                    default: None,
                }],
                max_concurrent: default_concurrency(),
                statement_timeout: None,
            }],
            imports: vec![Import {
                name: "orders".to_owned(),
                table: "orders".to_owned(),
                columns: [
                    ("id", ParamType::Int),
                    ("customer", ParamType::Text),
                    ("email", ParamType::Text),
                    ("status", ParamType::Text),
                    ("amount", ParamType::Float),
                    ("created_at", ParamType::Text),
                ]
                .into_iter()
                .map(|(name, kind)| Column {
                    name: name.to_owned(),
                    kind,
                    required: true,
                })
                .collect(),
                batch: default_batch(),
                max_body_bytes: default_max_body(),
                on_error: OnBadRow::Skip,
                report_limit: default_report_limit(),
                max_concurrent: default_import_concurrency(),
            }],
        }
    }

    fn check(&self) -> Result<()> {
        for (i, import) in self.imports.iter().enumerate() {
            if !valid_name(&import.name) {
                bail!(
                    "import {i}: the name {:?} must be letters, digits, `_` or `-`",
                    import.name
                );
            }
            if self.imports[..i].iter().any(|e| e.name == import.name) {
                bail!("import {:?} is defined twice", import.name);
            }
            if import.columns.is_empty() || import.max_concurrent == 0 {
                bail!(
                    "import {:?}: it needs columns, and max_concurrent at least 1",
                    import.name
                );
            }
        }
        for (i, export) in self.exports.iter().enumerate() {
            if export
                .statement_timeout
                .is_some_and(|s| !(s > 0.0 && s <= 86_400.0))
            {
                bail!(
                    "export {:?}: statement_timeout is seconds, more than 0 and at most 86400",
                    export.name
                );
            }
            if !valid_name(&export.name) {
                bail!(
                    "export {i}: the name {:?} must be letters, digits, `_` or `-`",
                    export.name
                );
            }
            if self.exports[..i].iter().any(|e| e.name == export.name) {
                bail!("export {:?} is defined twice", export.name);
            }
            if export.max_concurrent == 0 {
                bail!(
                    "export {:?}: max_concurrent must be at least 1",
                    export.name
                );
            }
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> Export {
        toml::from_str::<Config>(
            r#"
            [[export]]
            name = "orders"
            query = "SELECT * FROM orders WHERE status = ?1 AND amount > ?2"
            params = [{ name = "status" }, { name = "min", type = "float", default = "0" }]
            "#,
        )
        .unwrap()
        .exports
        .remove(0)
    }

    fn given(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_are_typed_defaulted_and_checked() {
        let e = export();
        assert_eq!(
            e.bind(&given(&[("status", "active")])).unwrap(),
            [Value::Text("active".into()), Value::Float(0.0)]
        );
        assert_eq!(
            e.bind(&given(&[("status", "x"), ("min", "2.5")])).unwrap()[1],
            Value::Float(2.5)
        );
        assert_eq!(
            e.bind(&given(&[])).unwrap_err(),
            BadParam {
                param: "status".into(),
                problem: "missing".into()
            }
        );
        assert_eq!(
            e.bind(&given(&[("status", "a"), ("min", "lots")]))
                .unwrap_err()
                .param,
            "min"
        );
        assert_eq!(
            e.bind(&given(&[("status", "a"), ("sql", "1")]))
                .unwrap_err()
                .param,
            "sql"
        );
    }
}
