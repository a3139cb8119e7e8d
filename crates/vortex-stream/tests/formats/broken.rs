//! An input that cannot be read fails the run whatever the error policy: `skip` and
//! dead-letter are for bad records, never a way to hide a broken input.

use serde::Deserialize;
use vortex_stream::io::Input;
use vortex_stream::sources::{CsvSource, JsonlSource, LinesSource};
use vortex_stream::{Error, ErrorKind, ErrorPolicy};

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Row {
    id: u64,
    note: String,
}

/// How each way of reading ended: its name, the values it yielded, and its end.
type Outcomes = Vec<(&'static str, usize, Result<(), Error>)>;

/// Each way of reading an input, run to the end under a `skip` policy: what it yielded before
/// failing, and how it ended.
///
/// With `clean` data (every record good up to where the input breaks) nothing may be skipped.
async fn read_skipping(clean: bool, input: impl Fn() -> Input) -> Outcomes {
    let mut outcomes = Vec::new();
    macro_rules! run {
        ($name:expr, $pipeline:expr) => {{
            let policy = ErrorPolicy::skip();
            let mut count = 0usize;
            let ended = $pipeline
                .on_error(policy.clone())
                .for_each(|_| count += 1)
                .await;
            if clean {
                assert_eq!(
                    policy.report().skipped(),
                    0,
                    "{}: a broken input was skipped",
                    $name
                );
            }
            outcomes.push(($name, count, ended));
        }};
    }
    run!("lines", LinesSource::new(input()).lines());
    run!("csv records", CsvSource::new(input()).records());
    run!("csv serde", CsvSource::new(input()).deserialize::<(u64,)>());
    run!(
        "csv serde, one thread",
        CsvSource::new(input())
            .decode_threads(std::num::NonZeroUsize::MIN)
            .deserialize::<(u64,)>()
    );
    run!("jsonl", JsonlSource::new(input()).values());
    outcomes
}

fn assert_all_fail(outcomes: &Outcomes, kind: ErrorKind, says: &str) {
    for (name, _, ended) in outcomes {
        let err = ended
            .as_ref()
            .expect_err(&format!("{name}: a broken input ended cleanly"));
        assert!(err.is_fatal(), "{name}: {err}");
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
}

#[tokio::test]
async fn a_missing_file_fails_under_skip() {
    let outcomes = read_skipping(true, || Input::path("/nonexistent/in.csv")).await;
    assert_all_fail(&outcomes, ErrorKind::Io, "/nonexistent/in.csv");
}

#[tokio::test]
async fn a_directory_fails_under_skip_and_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let outcomes = read_skipping(true, || Input::path(&path)).await;
    assert_all_fail(&outcomes, ErrorKind::Io, "is a directory");
}

/// 20,000 numbers, one a line: good lines, CSV records and JSON values alike.
fn rows() -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..20_000 {
        text.extend_from_slice(format!("{i}\n").as_bytes());
    }
    text
}

#[cfg(feature = "gzip")]
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// `bytes` as the file `name`, read every way under skip: each must fail, naming the file.
/// With `clean` bytes (good records up to where they break) nothing may be skipped.
async fn fails_every_way(name: &str, bytes: &[u8], clean: bool) -> Outcomes {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let outcomes = read_skipping(clean, || Input::path(&path)).await;
    assert_all_fail(&outcomes, ErrorKind::Io, name);
    outcomes
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn a_truncated_gzip_fails_under_skip() {
    let whole = gzip(&rows());
    let outcomes = fails_every_way("cut.csv.gz", &whole[..whole.len() / 2], true).await;
    // The lines read before the cut came out: the error is where the input broke.
    assert!(outcomes.iter().any(|(_, n, _)| *n > 100));
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn a_corrupted_gzip_fails_under_skip() {
    let mut bytes = gzip(&rows());
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    // What inflates before the damage is found may be garbage, and bad records skipped; the
    // run fails all the same.
    fails_every_way("bad.csv.gz", &bytes, false).await;
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn a_gzip_with_a_wrong_checksum_fails_under_skip() {
    // The data inflates, but the trailer says it is not what was written.
    let mut bytes = gzip(&rows());
    let crc = bytes.len() - 8;
    bytes[crc] ^= 0xff;
    fails_every_way("crc.csv.gz", &bytes, true).await;
}

#[cfg(feature = "zstd")]
#[tokio::test]
async fn a_truncated_zstd_fails_under_skip() {
    let whole = zstd::encode_all(&rows()[..], 3).unwrap();
    fails_every_way("cut.csv.zst", &whole[..whole.len() / 2], true).await;
}

#[tokio::test]
async fn dead_letters_never_take_a_broken_input() {
    let (tx, mut rx) = futures_channel::mpsc::channel::<Error>(16);
    let ended = LinesSource::new(Input::path("/nonexistent/in.txt"))
        .lines()
        .on_error(ErrorPolicy::dead_letter(tx))
        .drain()
        .await;
    assert!(ended.unwrap_err().is_fatal());
    assert!(rx.try_recv().is_err(), "nothing was dead-lettered");
}

#[tokio::test]
async fn a_record_error_is_still_skipped() {
    // The other side of the rule: a bad record is not fatal, and skip goes past it.
    let policy = ErrorPolicy::skip();
    let good = CsvSource::new(Input::bytes("id,note\n1,a\nx,b\n3,c\n"))
        .deserialize::<Row>()
        .on_error(policy.clone())
        .count()
        .await
        .unwrap();
    assert_eq!(good, 2);
    assert_eq!(policy.report().skipped(), 1);
}

#[tokio::test]
async fn a_header_row_too_long_to_read_fails_under_skip() {
    // Past the cap and the parser's read-ahead: no record after it can be named.
    let text = format!("{},b\n1,2\n3,4\n", "h".repeat(70_000));
    for threads in [1, 2] {
        let policy = ErrorPolicy::skip();
        let threads = std::num::NonZeroUsize::new(threads).unwrap();
        let ended = CsvSource::new(Input::bytes(text.clone()))
            .max_record_len(100)
            .decode_threads(threads)
            .deserialize::<Vec<String>>()
            .on_error(policy.clone())
            .drain()
            .await;
        let err = ended.expect_err("a header row that cannot be read ended cleanly");
        assert!(err.is_fatal(), "{err}");
        let policy = ErrorPolicy::skip();
        let ended = CsvSource::new(Input::bytes(text.clone()))
            .max_record_len(100)
            .records()
            .on_error(policy.clone())
            .drain()
            .await;
        assert!(ended.expect_err("records: ended cleanly").is_fatal());
    }
}
