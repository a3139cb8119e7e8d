//! What more than one test file needs.

/// A server's URL from `variable`; `None` (with a notice) when unset outside CI, a failure
/// under `CI=true`.
pub(crate) fn server(variable: &str, what: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{variable} is not set: under CI the {what} tests must run")
        }
        _ => {
            eprintln!("skipped: {variable} is not set (run ./scripts/test to start {what})");
            None
        }
    }
}

/// Runs the `vortex` binary with `args`.
#[allow(dead_code, clippy::unwrap_used)]
pub(crate) fn vortex(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(args)
        .output()
        .unwrap()
}

/// Bytes a command wrote, as text.
#[allow(dead_code)]
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A CSV file of `n` orders (`id,customer,status,amount`, a third active), some with quoted
/// fields (commas, doubled quotes, a line end, accents) and CRLF line ends on some rows.
#[allow(dead_code, clippy::unwrap_used)]
pub(crate) fn orders_csv(path: &std::path::Path, n: u64) {
    let mut csv = String::from("id,customer,status,amount\n");
    for id in 1..=n {
        let customer = match id % 20 {
            0 => "\"Smith, Jr.\"".to_owned(),
            7 => "\"the \"\"big\"\" one\"".to_owned(),
            13 => "\"two\nlines\"".to_owned(),
            _ => format!("Zoë {id}"),
        };
        let status = if id % 3 == 0 { "active" } else { "shipped" };
        let end = if id % 11 == 0 { "\r\n" } else { "\n" };
        csv.push_str(&format!(
            "{id},{customer},{status},{}.{:02}{end}",
            id * 3,
            id % 100
        ));
    }
    std::fs::write(path, csv).unwrap();
}
