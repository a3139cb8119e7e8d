//! `vortex demo` end to end: both sides run, agree, and streaming stays small.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn vortex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vortex"))
}

#[test]
fn demo_runs_both_sides_and_they_agree() {
    let dir = std::env::temp_dir().join(format!("vortex-demo-test-{}", std::process::id()));
    let output = vortex()
        .args(["demo", "--rows", "30000", "--out-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("outputs identical: yes"), "{stdout}");
    let streamed = std::fs::read_to_string(dir.join("active-streaming.csv")).unwrap();
    let mut lines = streamed.lines();
    assert_eq!(lines.next(), Some("id,email,amount"));
    assert_eq!(lines.clone().count(), 10_000);
    assert!(lines.all(|line| line.split(',').count() == 3));
    assert!(
        dir.join("orders-30000.db").exists(),
        "the database is kept for the next run"
    );
    // A second run reuses the database and agrees with the first.
    let again = vortex()
        .args(["demo", "--rows", "30000", "--out-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("generating"));
    assert_eq!(
        std::fs::read_to_string(dir.join("active-streaming.csv")).unwrap(),
        streamed
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_flag_is_one_clear_error_and_a_failure_code() {
    let output = vortex().args(["demo", "--rows", "many"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value 'many' for '--rows"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn an_unwritable_output_folder_is_reported_without_a_panic() {
    let output = vortex()
        .args([
            "demo",
            "--rows",
            "10",
            "--out-dir",
            "/proc/vortex-cannot-write-here",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("vortex: creating /proc/vortex-cannot-write-here"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}
