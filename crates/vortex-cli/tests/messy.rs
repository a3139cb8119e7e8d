//! The messy-input corpus, through `vortex convert`: every record read is written, filtered
//! out or rejected with its position, the summary's counts add up, and a broken input fails
//! the run with no output file, whatever the error policy.
//!
//! Each folder of `tests/messy/` is one case: an input `in.*`, the exact expected output
//! `expected.*` (none when the run must fail), and `case.toml` with the arguments, the exit
//! code, the counts `[in, written, filtered, rejected]`, text that stderr and the dead-letter
//! file must hold, and `library = [values, errors]`: what the library's own source for the
//! format yields (CSV records with a header row, strict; JSON values; lines) under a skip
//! policy, whose sum is the records `convert` reads. Cases too large or too broken to commit
//! are made here.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    exit: i32,
    /// The output's name when none is expected (a failing run).
    output: Option<String>,
    counts: Option<[u64; 4]>,
    #[serde(default)]
    stderr: Vec<String>,
    #[serde(default)]
    dead: Vec<String>,
    library: Option<[u64; 2]>,
}

fn vortex(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(args)
        .output()
        .unwrap()
}

/// The counts of the summary line: in, written, filtered out, rejected.
fn counts(stderr: &str) -> Option<[u64; 4]> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("vortex convert: ") && l.contains(" records in: "))?;
    let number = |after: &str| -> Option<u64> {
        let (before, _) = line.split_once(after)?;
        before.rsplit(' ').next()?.parse().ok()
    };
    Some([
        number(" records in: ")?,
        number(" written, ")?,
        number(" filtered out, ")?,
        number(" rejected")?,
    ])
}

/// Runs `convert` on `input`, writing `output` in `dir`, and checks what the case says.
fn check(name: &str, case: &Case, input: &Path, output: &str, expected: Option<&[u8]>, dir: &Path) {
    let out_path = dir.join(output);
    let dead_path = dir.join("dead.jsonl");
    let mut args = vec![
        "convert".to_owned(),
        input.display().to_string(),
        out_path.display().to_string(),
    ];
    args.extend(
        case.args
            .iter()
            .map(|a| a.replace("{dead}", &dead_path.display().to_string())),
    );
    let _ = std::fs::remove_file(&out_path);
    let run = vortex(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(case.exit),
        "{name}: {}\n{stderr}",
        case.about
    );
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    match expected {
        Some(expected) => {
            let got = std::fs::read(&out_path).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(expected),
                "{name}: {}\n{stderr}",
                case.about
            );
        }
        None => assert!(
            !out_path.exists(),
            "{name}: a failed run must leave no output file"
        ),
    }
    if let Some(want) = case.counts {
        let got = counts(&stderr).unwrap_or_else(|| panic!("{name}: no summary in {stderr}"));
        assert_eq!(
            got, want,
            "{name}: counts [in, written, filtered, rejected]\n{stderr}"
        );
    }
    // Whatever the case: nothing unaccounted for.
    if let Some([read, written, filtered, rejected]) = counts(&stderr) {
        assert_eq!(read, written + filtered + rejected, "{name}: {stderr}");
        // A JSON Lines output holds one record a line (CSV fields may hold line ends).
        if let Some(expected) = expected.filter(|_| case.exit == 0 && output.ends_with(".jsonl")) {
            let records = expected.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(
                records, written,
                "{name}: every written record is in the output"
            );
        }
    }
    for text in &case.stderr {
        assert!(
            stderr.contains(text.as_str()),
            "{name}: stderr lacks {text:?}: {stderr}"
        );
    }
    if !case.dead.is_empty() {
        let letters = std::fs::read_to_string(&dead_path).unwrap();
        for text in &case.dead {
            assert!(
                letters.contains(text.as_str()),
                "{name}: dead letters lack {text:?}: {letters}"
            );
        }
    }
}

fn file_starting(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).unwrap().find_map(|entry| {
        let path = entry.unwrap().path();
        let name = path.file_name()?.to_str()?.to_owned();
        name.starts_with(prefix).then_some(path)
    })
}

#[test]
fn every_committed_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/messy");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "the corpus is there");
    for case_dir in cases {
        let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let case: Case =
            toml::from_str(&std::fs::read_to_string(case_dir.join("case.toml")).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let input = file_starting(&case_dir, "in.").unwrap();
        let expected_path = file_starting(&case_dir, "expected.");
        let output = match (&expected_path, &case.output) {
            (Some(path), _) => format!("out.{}", path.extension().unwrap().to_string_lossy()),
            (None, Some(output)) => output.clone(),
            (None, None) => panic!("{name}: expected.* or output = \"…\""),
        };
        let expected = expected_path.map(|p| std::fs::read(p).unwrap());
        let dir = tempfile::tempdir().unwrap();
        check(
            &name,
            &case,
            &input,
            &output,
            expected.as_deref(),
            dir.path(),
        );
        let read = through_the_library(&input);
        assert_eq!(
            Some(read),
            case.library,
            "{name}: the library's [values, errors]"
        );
        // Every record the source yields is one that `convert` read.
        if let (0, Some([records, ..])) = (case.exit, case.counts) {
            assert_eq!(read[0] + read[1], records, "{name}: records read");
        }
    }
}

/// What the library's own source for `input`'s format yields under a skip policy: values and
/// errors, which the policy's report counts alike.
fn through_the_library(input: &Path) -> [u64; 2] {
    use vortex_stream::io::Input;
    use vortex_stream::sources::{CsvSource, JsonlSource, LinesSource};
    use vortex_stream::ErrorPolicy;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = ErrorPolicy::skip();
    let extension = input.extension().unwrap().to_string_lossy().into_owned();
    let values = runtime.block_on(async {
        let opened = Input::path(input);
        match extension.as_str() {
            "csv" => {
                CsvSource::new(opened)
                    .records()
                    .on_error(policy.clone())
                    .count()
                    .await
            }
            "jsonl" => {
                JsonlSource::new(opened)
                    .values()
                    .on_error(policy.clone())
                    .count()
                    .await
            }
            _ => {
                LinesSource::new(opened)
                    .lines()
                    .on_error(policy.clone())
                    .count()
                    .await
            }
        }
    });
    let report = policy.report();
    assert_eq!(values.unwrap(), report.items_out());
    assert_eq!(report.items_in(), report.items_out() + report.skipped());
    [report.items_out(), report.skipped()]
}

fn case(about: &str, args: &[&str], exit: i32, counts: Option<[u64; 4]>, stderr: &[&str]) -> Case {
    Case {
        about: about.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        exit,
        output: None,
        counts,
        stderr: stderr.iter().map(|s| (*s).to_owned()).collect(),
        dead: Vec::new(),
        library: None,
    }
}

/// A CSV record over the 16 MiB cap in the middle of a file, and a run of blank lines as long:
/// the records after them are all there.
#[test]
fn a_long_record_and_a_long_blank_run_lose_nothing_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(17 * 1024 * 1024);
    let blank = "\n".repeat(17 * 1024 * 1024);
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        format!("id,note\n1,a\n2,{long}\n3,c\n{blank}4,\"d\nd\"\n"),
    )
    .unwrap();
    let expected = "{\"id\":\"1\",\"note\":\"a\"}\n{\"id\":\"3\",\"note\":\"c\"}\n{\"id\":\"4\",\"note\":\"d\\nd\"}\n";
    for policy in ["skip", "dead-letter={dead}"] {
        let mut c = case(
            "a long record is rejected with its position, and reading goes on",
            &["--on-error", policy],
            0,
            Some([4, 3, 0, 1]),
            &[],
        );
        if policy != "skip" {
            c.dead = vec![
                "record is longer than the limit".into(),
                "\"line\":3".into(),
            ];
        }
        check(
            "long",
            &c,
            &input,
            "out.jsonl",
            Some(expected.as_bytes()),
            dir.path(),
        );
    }
    let c = case(
        "under fail-fast the long record fails the run",
        &[],
        1,
        Some([2, 1, 0, 1]),
        &["record 1 (line 3, byte 12): record is longer than the limit of 16777216 bytes"],
    );
    check("long, fail", &c, &input, "out.jsonl", None, dir.path());
}

#[test]
fn an_endless_line_fails_at_the_cap_not_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vortex"))
        .args(["convert", "--from", "jsonl", "/dev/zero"])
        .arg(dir.path().join("out.csv"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // 16 MiB of zeros take a moment; forever is a failure.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("convert of /dev/zero did not stop at the line cap");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("line is longer than the limit"), "{stderr}");
    assert!(!dir.path().join("out.csv").exists());
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Inputs that cannot be read fail the run under every policy, with no output file.
#[test]
fn broken_inputs_fail_under_every_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = b"id,note\n".to_vec();
    for i in 0..50_000 {
        rows.extend_from_slice(format!("{i},note {i}\n").as_bytes());
    }
    let whole = gzip(&rows);
    let cut = dir.path().join("cut.csv.gz");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let mut bad = whole.clone();
    let middle = bad.len() / 2;
    for b in &mut bad[middle..middle + 32] {
        *b ^= 0x55;
    }
    let corrupt = dir.path().join("corrupt.csv.gz");
    std::fs::write(&corrupt, &bad).unwrap();
    let zst = zstd_cut(&rows);
    let zst_path = dir.path().join("cut.csv.zst");
    std::fs::write(&zst_path, zst).unwrap();
    let folder = dir.path().join("a-folder.csv");
    std::fs::create_dir(&folder).unwrap();
    let missing = dir.path().join("missing.csv");
    for (input, says) in [
        (&cut, "cut.csv.gz"),
        (&corrupt, "corrupt.csv.gz"),
        (&zst_path, "cut.csv.zst"),
        (&folder, "is a directory"),
        (&missing, "No such file"),
    ] {
        for policy in [
            &["--on-error", "skip"][..],
            &["--on-error", "dead-letter={dead}"],
            &[],
        ] {
            let c = case("a broken input fails the run", policy, 1, None, &[says]);
            check(
                &input.display().to_string(),
                &c,
                input,
                "out.jsonl",
                None,
                dir.path(),
            );
        }
    }
}

fn zstd_cut(bytes: &[u8]) -> Vec<u8> {
    let whole = zstd::encode_all(bytes, 3).unwrap();
    whole[..whole.len() / 2].to_vec()
}

/// Outputs that are the input (or each other), or a folder, are refused before anything is
/// opened: the input is left as it was.
#[test]
fn outputs_that_would_destroy_the_input_are_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let original = "a,b\n1,2\n";
    std::fs::write(&input, original).unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let input_arg = input.display().to_string();
    for (args, says) in [
        (
            vec![input_arg.clone(), input_arg.clone()],
            "is the input file",
        ),
        (
            vec![input_arg.clone(), link.display().to_string()],
            "is the input file",
        ),
        (
            vec![
                input_arg.clone(),
                dir.path().join("out.csv").display().to_string(),
                "--on-error".into(),
                format!("dead-letter={input_arg}"),
            ],
            "is the input file",
        ),
        (
            vec![
                input_arg.clone(),
                dir.path().join("same.csv").display().to_string(),
                "--on-error".into(),
                format!("dead-letter={}", dir.path().join("same.csv").display()),
            ],
            "are the same file",
        ),
        (
            vec![
                input_arg.clone(),
                dir.path().display().to_string(),
                "--to".into(),
                "csv".into(),
            ],
            "is a directory",
        ),
    ] {
        let mut all = vec!["convert".to_owned()];
        all.extend(args);
        let run = vortex(&all);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(&input).unwrap(),
            original,
            "{all:?}"
        );
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert!(!dir.path().join("out.csv").exists() && !dir.path().join("same.csv").exists());
}

/// Stopped by a signal mid-run, `convert` removes its temporary file and leaves no output.
#[test]
fn a_signal_mid_run_leaves_no_output_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    for signal in ["TERM", "INT"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vortex"))
            .args(["convert", "-", "--from", "csv"])
            .arg(&out)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Some rows, and stdin kept open: the run is under way, writing a temporary file.
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"a,b\n1,2\n3,4\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let temp = loop {
            let found = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .find(|name| name.ends_with(".tmp"));
            if let Some(found) = found {
                break found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no temporary file appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // Stdin stays open until the run has ended: `wait` would close it, and an input that
        // ends as the signal comes may rightly let the run finish first.
        let stdin = child.stdin.take();
        let killed = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        drop(stdin);
        assert!(
            !status.success(),
            "SIG{signal}: a stopped run is no success"
        );
        assert!(
            !dir.path().join(&temp).exists(),
            "SIG{signal}: {temp} was left behind"
        );
        assert!(!out.exists(), "SIG{signal}: no output");
    }
}
