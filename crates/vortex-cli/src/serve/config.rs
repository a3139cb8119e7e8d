//! The service's configuration: named exports, each a query with typed parameters.

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
                let bad = |what: &str| BadParam {
                    param: param.name.clone(),
                    problem: format!("{text:?} is not {what}"),
                };
                Ok(match param.kind {
                    ParamType::Text => Value::Text(text.clone()),
                    ParamType::Int => Value::Int(text.parse().map_err(|_| bad("an integer"))?),
                    ParamType::Float => Value::Float(text.parse().map_err(|_| bad("a number"))?),
                    ParamType::Bool => Value::Bool(text.parse().map_err(|_| bad("true or false"))?),
                })
            })
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
            }],
        }
    }

    fn check(&self) -> Result<()> {
        for (i, export) in self.exports.iter().enumerate() {
            if export.name.is_empty()
                || !export
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
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
