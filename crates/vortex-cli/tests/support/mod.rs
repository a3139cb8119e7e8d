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
