//! The library's layers, checked: a module may use the layers below its own, never one above.
//!
//! From the bottom: the error type (and the redaction of URLs in it); the policies (`core`)
//! and the pipeline kinds (`fusion`);
//! operators, parallel stages, resilience, inputs and outputs, and the database value type;
//! sources, sinks and databases; the `Pipeline` facade. Within the third layer, sources and
//! sinks know nothing of each other, and a database (both a source and a sink) may use both.
//! An `impl Pipeline` block may live next to the source or sink it makes, so the third layer
//! may name `Pipeline`; the facade's own files name no source, sink or database.

// Test helpers outside `#[test]` functions may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer, from the bottom.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("ack", 0),
    ("redact", 0),
    ("core", 1),
    ("fusion", 1),
    ("ops", 2),
    ("parallel", 2),
    ("resilience", 2),
    ("io", 2),
    ("value", 2),
    ("sources", 3),
    ("sinks", 3),
    ("db", 3),
    ("brokers", 3),
    ("pipeline", 4),
];

/// Uses within one layer that are allowed: (user, used).
const ACROSS: &[(&str, &str)] = &[
    ("error", "ack"),
    ("ack", "error"),
    ("db", "sources"),
    ("db", "sinks"),
    ("parallel", "ops"),
];

/// The modules the crate root's re-exports come from.
const ROOT: &[(&str, &str)] = &[
    ("Error", "error"),
    ("ErrorKind", "error"),
    ("Position", "error"),
    ("Result", "error"),
    ("BoxError", "error"),
    ("ErrorPolicy", "core"),
    ("Located", "core"),
    ("Report", "core"),
    ("adapters", "ops"),
    ("DEFAULT_READ_CHUNK", "sources"),
    ("params", "value"),
    ("Pipeline", "pipeline"),
    ("BlockingIter", "pipeline"),
    ("AckPipeline", "pipeline"),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names through `crate::`.
fn used(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    names.push(first.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            ROOT.iter()
                .find(|(item, _)| *item == name)
                .map_or(name.clone(), |(_, module)| (*module).to_owned())
        })
        .collect()
}

#[test]
fn no_layer_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    let mut wrong = BTreeSet::new();
    let mut checked = 0;
    for path in &all {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let own = layer(&module).unwrap_or_else(|| {
            panic!(
                "{}: module `{module}` has no layer in LAYERS",
                relative.display()
            )
        });
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            // A macro's `$crate::` path is resolved where the macro is used: a public path.
            if code.starts_with("//") || code.contains("$crate::") {
                continue;
            }
            for target in used(code) {
                let Some(theirs) = layer(&target) else {
                    continue;
                };
                checked += 1;
                let fine = target == module
                    || theirs < own
                    || (theirs == own && ACROSS.contains(&(module.as_str(), target.as_str())))
                    // `impl Pipeline` blocks beside the sources and sinks they make.
                    || (target == "pipeline" && own == 3);
                if !fine {
                    wrong.insert(format!(
                        "{}:{}: `{module}` (layer {own}) uses `{target}` (layer {theirs})",
                        relative.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} uses found: is the scan still reading the code?"
    );
    assert!(
        wrong.is_empty(),
        "uses against the layering:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scan_sees_every_form_of_use() {
    assert_eq!(used("use crate::sources::Blocking;"), ["sources"]);
    assert_eq!(
        used("use crate::{Error, Pipeline, Result};"),
        ["error", "pipeline", "error"]
    );
    assert_eq!(
        used("let x = crate::db::open(crate::io::Input::stdin());"),
        ["db", "io"]
    );
    assert!(used("use super::Pipeline;").is_empty());
}
