use std::time::Duration;

use serde::Serialize;
use vortex_stream::io::{Input, Output};
use vortex_stream::sinks::{CsvRecords, CsvSink, JsonlSink, LinesSink};
use vortex_stream::sources::CsvSource;
use vortex_stream::{Error, ErrorKind, Pipeline};

#[derive(Serialize, Clone)]
struct Row {
    id: u32,
    email: String,
}

fn rows(n: u32) -> Vec<Row> {
    (0..n)
        .map(|id| Row {
            id,
            email: format!("user{id}@example.com"),
        })
        .collect()
}

/// Files in `dir` other than `keep`: temporary files left behind.
fn leftovers(dir: &std::path::Path, keep: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != keep)
        .collect()
}

#[tokio::test]
async fn csv_writes_the_header_once_and_reports_rows_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let written = Pipeline::from_iter(rows(3000))
        .write(CsvSink::new(), Output::path(&path))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.rows, 3000);
    assert_eq!(written.bytes, text.len() as u64);
    assert_eq!(text.lines().count(), 3001);
    assert_eq!(text.matches("id,email").count(), 1);
    assert!(text.ends_with("2999,user2999@example.com\n"));
    assert!(leftovers(dir.path(), "out.csv").is_empty());
}

#[tokio::test]
async fn raw_records_round_trip_through_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.tsv");
    let input = "a,b\n\"x,1\",\"say \"\"hi\"\"\"\n2,\"multi\nline\"\n";
    let written = CsvSource::new(Input::bytes(input))
        .records()
        .write(CsvRecords::new().delimiter(b'\t'), Output::path(&path))
        .await
        .unwrap();
    assert_eq!(written.rows, 2);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "x,1\t\"say \"\"hi\"\"\"\n2\t\"multi\nline\"\n");
    // And back: the same fields.
    let back = CsvSource::new(Input::path(&path))
        .delimiter(b'\t')
        .headers(vortex_stream::sources::Headers::None)
        .records()
        .map(|r| r.iter().map(str::to_owned).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(back, [vec!["x,1", "say \"hi\""], vec!["2", "multi\nline"]]);
}

#[tokio::test]
async fn a_failed_pipeline_leaves_the_existing_file_untouched_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.jsonl");
    std::fs::write(&path, "the previous, complete report\n").unwrap();
    let items = rows(5000).into_iter().enumerate().map(|(i, row)| {
        if i == 4321 {
            Err(Error::new(ErrorKind::Decode, "upstream").with_message("bad row"))
        } else {
            Ok(row)
        }
    });
    let err = Pipeline::from_results(items)
        .write(JsonlSink, Output::path(&path))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "upstream: bad row");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "the previous, complete report\n"
    );
    assert!(leftovers(dir.path(), "report.jsonl").is_empty());
}

/// Lines of 1 to 300 bytes, 24 MiB and more in all: a file output starts its write-back every
/// few MiB while it is written, which must change none of the bytes, nor what a failure leaves.
fn long_lines() -> impl Iterator<Item = String> {
    let mut total = 0;
    (0u64..)
        .map(|i| {
            let width = usize::try_from(i * 7919 % 300).unwrap();
            format!("{i}:{}", "x".repeat(width))
        })
        .take_while(move |line| {
            total += line.len() + 1;
            total < 25 * 1024 * 1024
        })
}

#[tokio::test]
async fn a_file_written_past_several_write_backs_holds_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.txt");
    std::fs::write(&path, "an older and shorter file\n").unwrap();
    let expected: String = long_lines().map(|line| line + "\n").collect();
    let written = Pipeline::from_iter(long_lines())
        .write(LinesSink, Output::path(&path))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.bytes, expected.len() as u64);
    assert!(text == expected, "the file differs from what was written");
    assert!(leftovers(dir.path(), "long.txt").is_empty());

    // Failing past the write-backs leaves the file as it was, and no temporary.
    let failing = long_lines().map(Ok).chain(std::iter::once(Err(Error::new(
        ErrorKind::Decode,
        "upstream",
    ))));
    let err = Pipeline::from_results(failing)
        .write(LinesSink, Output::path(&path))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(std::fs::read_to_string(&path).unwrap() == expected);
    assert!(leftovers(dir.path(), "long.txt").is_empty());
}

#[derive(Serialize)]
enum Reading {
    Point { at: (u8, f32) },
    Series(Vec<Option<f64>>),
}

#[derive(Serialize)]
struct Measured {
    name: String,
    note: Option<String>,
    reading: Reading,
}

fn measured(name: &str, reading: Reading) -> Measured {
    Measured {
        name: name.to_owned(),
        note: None,
        reading,
    }
}

#[tokio::test]
async fn a_float_json_cannot_hold_is_refused_never_written_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readings.jsonl");
    std::fs::write(&path, "the previous readings\n").unwrap();
    // Anywhere in a value: a field of a struct variant's tuple, an element of a list, as f32
    // or f64, NaN or either infinity. Before each, lines holding `null` for other reasons.
    let cases = [
        (
            "NaN",
            Reading::Series(vec![Some(1.5), None, Some(f64::NAN)]),
        ),
        (
            "inf",
            Reading::Point {
                at: (1, f32::INFINITY),
            },
        ),
        ("-inf", Reading::Series(vec![None, Some(f64::NEG_INFINITY)])),
    ];
    for (shown, bad) in cases {
        let values = vec![
            measured("null", Reading::Series(vec![None, Some(0.0)])),
            measured("ok", Reading::Point { at: (2, -0.5) }),
            measured("bad", bad),
        ];
        let err = Pipeline::from_iter(values)
            .write(JsonlSink, Output::path(&path))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::User, "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "jsonl sink: encode: a float is {shown}, which JSON has no number for (it would be written as null)"
            )
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "the previous readings\n"
        );
        assert!(leftovers(dir.path(), "readings.jsonl").is_empty());
    }

    // Nulls that stand for nothing, and finite floats, are written as before.
    let values = vec![
        measured("null", Reading::Series(vec![None, Some(1e300)])),
        measured("ok", Reading::Point { at: (2, f32::MAX) }),
    ];
    Pipeline::from_iter(values)
        .write(JsonlSink, Output::path(&path))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"name\":\"null\",\"note\":null,\"reading\":{\"Series\":[null,1e+300]}}\n\
         {\"name\":\"ok\",\"note\":null,\"reading\":{\"Point\":{\"at\":[2,3.4028235e+38]}}}\n"
    );
}

#[tokio::test]
async fn a_value_the_csv_writer_refuses_leaves_the_old_file_and_no_temporary() {
    #[derive(Serialize)]
    struct Tagged {
        id: u32,
        tags: Option<std::collections::BTreeMap<String, u32>>,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagged.csv");
    std::fs::write(&path, "the previous export\n").unwrap();
    // A few times over: a temporary file removed only some time after the error would be
    // seen on one of them.
    for bad in [2500, 10, 2047, 1024, 2999] {
        let values = (0..3000).map(move |id| Tagged {
            id,
            // Written as an empty field; a map is more than a CSV field can hold.
            tags: (id == bad).then(|| [("a".to_owned(), 1)].into()),
        });
        let err = Pipeline::from_iter(values)
            .write(CsvSink::new(), Output::path(&path))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::User, "{err}");
        assert!(err.to_string().starts_with("csv sink: encode: "), "{err}");
        // At once: the failed writer is dropped before the error is returned.
        assert!(leftovers(dir.path(), "tagged.csv").is_empty());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "the previous export\n"
        );
    }
}

#[tokio::test]
async fn a_cancelled_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.csv");
    let slow = Pipeline::from_iter(rows(100_000)).then(|row| async move {
        tokio::time::sleep(Duration::from_micros(50)).await;
        row
    });
    let write = slow.write(CsvSink::new(), Output::path(&path));
    let outcome = tokio::time::timeout(Duration::from_millis(300), write).await;
    assert!(outcome.is_err(), "the write should still be running");
    // The writing thread notices the dropped pipeline and removes its temporary file.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !leftovers(dir.path(), "slow.csv").is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(leftovers(dir.path(), "slow.csv").is_empty());
    assert!(!path.exists());
}

#[tokio::test]
async fn an_unwritable_output_is_an_error_naming_it() {
    let err = Pipeline::from_iter(rows(3))
        .write(CsvSink::new(), Output::path("/no/such/dir/out.csv"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(
        err.to_string()
            .starts_with("sink: open: /no/such/dir/out.csv: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_sync_writer_is_an_output() {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let written = Pipeline::from_iter([1, 2, 3])
        .write(JsonlSink, Output::writer(Shared(buffer.clone())))
        .await
        .unwrap();
    assert_eq!(written.bytes, 6);
    assert_eq!(&*buffer.lock().unwrap(), b"1\n2\n3\n");
}

#[cfg(unix)]
#[tokio::test]
async fn special_outputs_are_written_as_they_are_never_replaced() {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let dir = tempfile::tempdir().unwrap();

    // A device: written to, never renamed over.
    let written = Pipeline::from_iter(["a", "b"])
        .write(LinesSink, Output::path("/dev/null"))
        .await
        .unwrap();
    assert_eq!(written.rows, 2);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());

    // A FIFO: read on the other side while written; still a FIFO after.
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    Pipeline::from_iter(["x", "y"])
        .write(LinesSink, Output::path(&fifo))
        .await
        .unwrap();
    assert_eq!(reader.join().unwrap(), "x\ny\n");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // A link to a file: the file is replaced, whole; the link stays a link.
    let target = dir.path().join("target.txt");
    std::fs::write(&target, "old\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("link.txt");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    Pipeline::from_iter(["new"])
        .write(LinesSink, Output::path(&link))
        .await
        .unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    // The replaced file keeps its permission bits.
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    assert!(leftovers(dir.path(), "target.txt")
        .iter()
        .all(|n| !n.ends_with(".tmp")));

    // A folder is an error naming it, and is left as it was.
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let err = Pipeline::from_iter(["z"])
        .write(LinesSink, Output::path(&folder))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert!(folder.is_dir());
}

/// A writer that keeps what reaches it, shared with the test.
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Seen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first values of a slow source reach the output a value apart, not when a batch or a
/// buffer fills, compressed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sources_first_values_leave_at_once() {
    use vortex_stream::io::Compression;
    for compression in [Compression::None, Compression::Gzip] {
        let seen = Seen::default();
        let (tx, rx) = futures_channel::mpsc::channel::<vortex_stream::Result<String>>(1);
        let output = Output::writer(seen.clone()).compression(compression);
        let mut writing = tokio::task::JoinSet::new();
        writing.spawn(Pipeline::from_stream(rx).write(LinesSink, output));
        let mut tx = tx;
        futures_util::SinkExt::send(&mut tx, Ok("first".to_owned()))
            .await
            .unwrap();
        // The next value comes a while later, and then none for now: the first must be out.
        tokio::time::sleep(Duration::from_millis(50)).await;
        futures_util::SinkExt::send(&mut tx, Ok("second".to_owned()))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        while seen.0.lock().unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{compression:?}: the first value waited for more"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(tx);
        let written = writing.join_next().await.unwrap().unwrap().unwrap();
        assert_eq!(written.rows, 2);
    }
}

/// A row of every plain kind of field, and of kinds left to csv's own writer.
#[derive(Serialize, Clone, Debug)]
struct Wide {
    id: i64,
    name: String,
    score: f64,
    ratio: f32,
    ok: bool,
    note: Option<String>,
    kind: Kind,
    tag: char,
    small: u8,
    big: u128,
    unit: (),
}

#[derive(Serialize, Clone, Debug)]
enum Kind {
    Plain,
    Wrapped(i32),
    // Left to csv: the quick writer does not write struct variants.
    Shaped { x: u8 },
}

fn text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        Just(String::new()),
        "[a-z ]{0,12}",
        "[a-z,;\"\r\né ]{0,12}",
        "[a-zA-Z0-9@.]{20,40}",
    ]
}

fn wide() -> impl proptest::strategy::Strategy<Value = Wide> {
    use proptest::prelude::*;
    let kind = prop_oneof![
        8 => Just(Kind::Plain),
        8 => any::<i32>().prop_map(Kind::Wrapped),
        1 => any::<u8>().prop_map(|x| Kind::Shaped { x }),
    ];
    (
        (
            any::<i64>(),
            text(),
            any::<f64>(),
            any::<f32>(),
            any::<bool>(),
        ),
        (
            prop::option::of(text()),
            kind,
            any::<char>(),
            any::<u8>(),
            any::<u128>(),
        ),
    )
        .prop_map(
            |((id, name, score, ratio, ok), (note, kind, tag, small, big))| Wide {
                id,
                name,
                score,
                ratio,
                ok,
                note,
                kind,
                tag,
                small,
                big,
                unit: (),
            },
        )
}

/// What csv's own writer makes of `rows`: the bytes, or the message of its first error.
fn csv_writes<T: Serialize>(rows: &[T], delimiter: u8) -> Result<Vec<u8>, String> {
    let mut wtr = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    for row in rows {
        wtr.serialize(row).map_err(|e| match e.into_kind() {
            csv::ErrorKind::Serialize(message) => message,
            other => format!("{other:?}"),
        })?;
    }
    wtr.into_inner().map_err(|e| e.to_string())
}

/// What the CSV sink writes of `rows`: the bytes, or its error's message.
fn sink_writes<T: Serialize + Clone + Send + 'static>(
    rows: &[T],
    delimiter: u8,
) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written = runtime.block_on(
        Pipeline::from_iter(rows.to_vec())
            .write(CsvSink::new().delimiter(delimiter), Output::path(&path)),
    );
    match written {
        Ok(_) => Ok(std::fs::read(&path).unwrap()),
        Err(e) => Err(e.message().to_owned()),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// The CSV sink writes what csv's own writer writes, byte for byte, or fails where it
    /// fails with its message: rows of every plain kind of field (written by the sink's quick
    /// writer), rows csv writes itself among them (a struct variant), rows of another length,
    /// rows of nothing, and delimiters that are letters or digits.
    #[test]
    fn the_csv_sink_writes_what_csv_writes(
        rows in proptest::collection::vec(wide(), 0..40),
        lists in proptest::collection::vec(proptest::collection::vec(text(), 0..4), 0..12),
        delimiter in proptest::prop_oneof![
            proptest::strategy::Just(b','), proptest::strategy::Just(b';'),
            proptest::strategy::Just(b'\t'), proptest::strategy::Just(b'e'),
            proptest::strategy::Just(b'1'), proptest::strategy::Just(b'"'),
            proptest::strategy::Just(b'a'),
        ],
    ) {
        proptest::prop_assert_eq!(sink_writes(&rows, delimiter), csv_writes(&rows, delimiter));
        proptest::prop_assert_eq!(sink_writes(&lists, delimiter), csv_writes(&lists, delimiter));
        let empty: Vec<(String,)> = lists.iter().map(|l| (l.concat(),)).collect();
        proptest::prop_assert_eq!(sink_writes(&empty, delimiter), csv_writes(&empty, delimiter));
        let units = vec![(); lists.len()];
        proptest::prop_assert_eq!(sink_writes(&units, delimiter), csv_writes(&units, delimiter));
    }
}
