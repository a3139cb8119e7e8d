use std::io::Read;

use vortex_stream::io::Output;
use vortex_stream::sinks::XlsxSink;
use vortex_stream::Pipeline;

/// The `<row` elements of each worksheet of a workbook, in sheet order.
fn rows_per_sheet(path: &std::path::Path) -> Vec<(usize, String)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut sheets = Vec::new();
    for i in 1.. {
        let Ok(mut file) = zip.by_name(&format!("xl/worksheets/sheet{i}.xml")) else {
            break;
        };
        let mut xml = String::new();
        file.read_to_string(&mut xml).unwrap();
        sheets.push((xml.matches("<row ").count(), xml));
    }
    sheets
}

#[tokio::test]
async fn rows_fill_sheets_up_to_the_limit_and_go_on_in_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xlsx");
    let rows = (0..2500).map(|i| vec![format!("row {i}"), "a & b <c>".to_owned()]);
    let written = Pipeline::from_iter(rows)
        .write(XlsxSink::new().sheet_rows(1000), Output::path(&path))
        .await
        .unwrap();
    assert_eq!(written.rows, 2500);
    assert_eq!(written.bytes, std::fs::metadata(&path).unwrap().len());
    let sheets = rows_per_sheet(&path);
    assert_eq!(
        sheets.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    assert!(sheets[2].1.contains("row 2499"));
    assert!(
        sheets[0].1.contains("a &amp; b &lt;c&gt;"),
        "text is escaped"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn database_rows_get_a_header_on_every_sheet() {
    use vortex_stream::db::Database;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}", dir.path().join("t.db").display())).unwrap();
    db.execute(
        "CREATE TABLE t (id INTEGER, name TEXT, score REAL, ok INTEGER); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30) \
         INSERT INTO t SELECT i, 'n' || i, i / 2.0, NULL FROM n;",
        vec![],
    )
    .await
    .unwrap();
    let path = dir.path().join("t.xlsx");
    db.query("SELECT * FROM t ORDER BY id", vec![])
        .write(XlsxSink::new().sheet_rows(11), Output::path(&path))
        .await
        .unwrap();
    let sheets = rows_per_sheet(&path);
    // 30 rows, 10 a sheet under a header row each.
    assert_eq!(
        sheets.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [11, 11, 11]
    );
    for (_, xml) in &sheets {
        assert!(xml.contains(">score<"), "each sheet starts with the header");
    }
    assert!(sheets[0].1.contains("<v>0.5</v>"), "numbers stay numbers");
}

#[tokio::test]
async fn an_empty_pipeline_still_makes_a_valid_workbook() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.xlsx");
    Pipeline::from_iter(Vec::<Vec<String>>::new())
        .write(XlsxSink::new(), Output::path(&path))
        .await
        .unwrap();
    assert_eq!(rows_per_sheet(&path).len(), 1);
}

#[tokio::test]
async fn the_compression_level_trades_size_for_speed_and_keeps_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = Vec::new();
    for level in [1, 9] {
        let path = dir.path().join(format!("level-{level}.xlsx"));
        let rows = (0..20_000).map(|i| vec![format!("customer-{}", i % 977), (i * 7).to_string()]);
        let written = Pipeline::from_iter(rows)
            .write(
                XlsxSink::new().compression_level(level),
                Output::path(&path),
            )
            .await
            .unwrap();
        let sheets = rows_per_sheet(&path);
        assert_eq!(sheets[0].0, 20_000);
        assert!(sheets[0].1.contains("customer-976"));
        sizes.push(written.bytes);
    }
    assert!(sizes[0] > sizes[1], "level 1 should be larger: {sizes:?}");
}

/// Every sheet of the workbook at `path` as read by an independent reader (calamine): its
/// name and its cells, row by row.
fn read_back(path: &std::path::Path) -> Vec<(String, Vec<Vec<calamine::Data>>)> {
    use calamine::Reader as _;
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let names = workbook.sheet_names();
    names
        .into_iter()
        .map(|name| {
            let range = workbook.worksheet_range(&name).unwrap();
            let rows = range.rows().map(<[calamine::Data]>::to_vec).collect();
            (name, rows)
        })
        .collect()
}

#[tokio::test]
async fn text_comes_back_as_written_whatever_it_holds() {
    let texts = [
        "a & b <c> \"d\" 'e'",
        "  spaces at both ends  ",
        "\ttab first",
        "line\nbreak",
        "carriage\r\nreturn",
        "bell\u{7} and unit separator\u{1f} and nul\u{0}",
        "_x0041_ looks escaped, _X00e9_ too, _x12_ does not",
        "_x00a0\u{0} is no escape of U+00A0 once the NUL is escaped",
        "accents é ñ ü, CJK 漢字, emoji 😀",
        "non-characters \u{FFFE} and \u{FFFF} stay",
        "",
        "=1+1",
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("texts.xlsx");
    let rows = texts
        .iter()
        .map(|t| vec![(*t).to_owned(), "next".to_owned()]);
    Pipeline::from_iter(rows)
        .write(XlsxSink::new(), Output::path(&path))
        .await
        .unwrap();
    let sheets = read_back(&path);
    assert_eq!(sheets.len(), 1);
    let (name, rows) = &sheets[0];
    assert_eq!(name, "Sheet1");
    assert_eq!(rows.len(), texts.len());
    for (row, text) in rows.iter().zip(texts) {
        let first = match &row[0] {
            calamine::Data::String(s) => s.clone(),
            calamine::Data::Empty => String::new(),
            other => panic!("{text:?} came back as {other:?}"),
        };
        assert_eq!(first, text);
        assert_eq!(row[1], calamine::Data::String("next".into()), "{text:?}");
    }
}

#[tokio::test]
async fn values_keep_their_types_and_exact_digits() {
    use vortex_stream::db::Value;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.xlsx");
    let exact = 1i64 << 53;
    let rows = vec![
        vec![
            Value::Int(42),
            Value::Int(-exact),
            Value::Int(exact + 1),
            Value::Int(i64::MIN),
            Value::Null,
            Value::Bool(true),
            Value::Int(7),
        ],
        vec![
            Value::Float(0.1),
            Value::Float(-0.5),
            Value::Float(1e300),
            Value::Float(1.5e-7),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::INFINITY),
        ],
        vec![
            Value::Null,
            Value::Text("after a blank".into()),
            Value::Bytes(b"bytes".to_vec()),
            Value::Bytes(vec![0x00, 0xff, 0x41]),
            Value::Bool(false),
            Value::Float(123_456_789.0),
            Value::Float(-0.0),
        ],
    ];
    Pipeline::from_iter(rows)
        .write(XlsxSink::new(), Output::path(&path))
        .await
        .unwrap();
    let sheets = read_back(&path);
    let rows = &sheets[0].1;
    use calamine::Data::{Bool, Empty, Float, String as Text};
    #[allow(clippy::cast_precision_loss)]
    let exact_float = -exact as f64;
    assert_eq!(
        rows[0],
        [
            Float(42.0),
            Float(exact_float),
            Text((exact + 1).to_string()),
            Text(i64::MIN.to_string()),
            Empty,
            Bool(true),
            Float(7.0)
        ]
    );
    assert_eq!(
        rows[1],
        [
            Float(0.1),
            Float(-0.5),
            Float(1e300),
            Float(1.5e-7),
            Text("NAN".into()),
            Text("-INF".into()),
            Text("INF".into())
        ]
    );
    assert_eq!(
        rows[2],
        [
            Empty,
            Text("after a blank".into()),
            Text("bytes".into()),
            Text("\\x00ff41".into()),
            Bool(false),
            Float(123_456_789.0),
            Float(-0.0)
        ]
    );
}

#[tokio::test]
async fn a_value_no_cell_can_hold_fails_the_write_naming_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(Vec<String>, &str); 2] = [
        (vec!["é".repeat(32_768)], "32,767"),
        (vec!["x".to_owned(); 16_385], "16384 cells"),
    ];
    for (bad, says) in cases {
        let path = dir.path().join("refused.xlsx");
        let rows = (0..5).map(|i| {
            if i == 3 {
                bad.clone()
            } else {
                vec![i.to_string()]
            }
        });
        let e = Pipeline::from_iter(rows)
            .write(XlsxSink::new(), Output::path(&path))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), vortex_stream::ErrorKind::Validation, "{e}");
        assert_eq!(e.position().and_then(|p| p.record()), Some(4), "{e}");
        assert!(e.to_string().contains(says), "{e}");
        assert!(!path.exists(), "nothing is left half-written");
    }
    // The longest text a cell holds is written whole.
    let path = dir.path().join("longest.xlsx");
    let longest = "é".repeat(32_767);
    Pipeline::from_iter([vec![longest.clone()]])
        .write(XlsxSink::new(), Output::path(&path))
        .await
        .unwrap();
    assert_eq!(read_back(&path)[0].1[0][0], calamine::Data::String(longest));
}

/// A `Write` keeping what it was given, failing once it holds `fail_after` bytes.
#[derive(Clone)]
struct Kept {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    fail_after: usize,
}

impl std::io::Write for Kept {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.bytes.lock().unwrap();
        if bytes.len() + buf.len() > self.fail_after {
            return Err(std::io::Error::other("the disk is full"));
        }
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_workbook_leaves_while_rows_still_come_and_a_failing_output_stops_it() {
    use futures_util::StreamExt as _;
    // Rows come from a channel kept open until the output has received compressed bytes:
    // the workbook is written while rows arrive, not after the last one.
    let kept = Kept {
        bytes: std::sync::Arc::default(),
        fail_after: usize::MAX,
    };
    let (rows, received) = futures_channel::mpsc::channel::<vortex_stream::Result<Vec<String>>>(64);
    let writing =
        Pipeline::from_stream(received).write(XlsxSink::new(), Output::writer(kept.clone()));
    let feed = async {
        let mut rows = rows;
        let mut sent = 0u64;
        while kept.bytes.lock().unwrap().len() < 256 * 1024 {
            let row = vec![
                format!("row {sent}"),
                format!("{:x}", sent.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ];
            futures_util::SinkExt::send(&mut rows, Ok(row))
                .await
                .unwrap();
            sent += 1;
            assert!(sent < 5_000_000, "nothing left before the end");
        }
        sent
    };
    let feed = tokio::time::timeout(std::time::Duration::from_secs(60), feed);
    let (written, sent) = tokio::join!(writing, feed);
    let (written, sent) = (written.unwrap(), sent.unwrap());
    assert_eq!(written.rows, sent);
    let bytes = kept.bytes.lock().unwrap().clone();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut xml = String::new();
    zip.by_name("xl/worksheets/sheet1.xml")
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    assert_eq!(xml.matches("<row ").count() as u64, sent);

    // An output that fails mid-way fails the write with its own error.
    let failing = Kept {
        bytes: std::sync::Arc::default(),
        fail_after: 100_000,
    };
    let rows = futures_util::stream::iter(0..1_000_000u64).map(|i| {
        Ok(vec![
            format!("row {i}"),
            format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        ])
    });
    let e = Pipeline::from_stream(rows)
        .write(XlsxSink::new(), Output::writer(failing))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), vortex_stream::ErrorKind::Io, "{e}");
}

#[tokio::test]
async fn a_workbook_dropped_before_its_end_does_not_end_like_a_whole_one() {
    use futures_util::StreamExt as _;
    let kept = Kept {
        bytes: std::sync::Arc::default(),
        fail_after: usize::MAX,
    };
    // 50,000 rows, then a source that never ends: the write is dropped while it waits.
    let rows = futures_util::stream::iter(0..50_000u64)
        .map(|i| {
            Ok(vec![
                format!("row {i}"),
                format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ])
        })
        .chain(futures_util::stream::pending());
    let writing = Pipeline::from_stream(rows).write(XlsxSink::new(), Output::writer(kept.clone()));
    let waited = tokio::time::timeout(std::time::Duration::from_secs(2), writing).await;
    assert!(waited.is_err(), "the source never ends");
    // The writer is dropped on the thread it last ran on: give it time to be.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let bytes = kept.bytes.lock().unwrap().clone();
    assert!(bytes.starts_with(b"PK"), "the parts written so far left");
    assert!(
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).is_err(),
        "no directory was written after them"
    );
}

/// Any text, and especially what XML or Excel's escapes treat specially, comes back from a
/// workbook exactly as written, as an independent reader reads it.
mod any_text {
    use proptest::prelude::*;
    use vortex_stream::io::Output;
    use vortex_stream::sinks::XlsxSink;
    use vortex_stream::Pipeline;

    /// A piece of text: plain, markup, control characters, what reads as an `_xHHHH_`
    /// escape, spaces at the ends, non-characters, anything at all.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-zA-Z0-9 ,.é漢😀]{0,12}",
            2 => "[&<>\"']{1,3}",
            2 => "[\\x00-\\x1f]{1,3}",
            2 => "_[xX][0-9a-fA-F]{4}_",
            1 => "_x[0-9a-f]{0,5}",
            1 => Just("\u{FFFE}\u{FFFF}".to_owned()),
            1 => Just("  ".to_owned()),
            2 => any::<String>(),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(piece(), 0..6).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn comes_back_as_written(texts in prop::collection::vec(text(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("any.xlsx");
            let rows = texts.iter().map(|t| vec![t.clone(), "end".to_owned()]);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime
                .block_on(Pipeline::from_iter(rows).write(XlsxSink::new(), Output::path(&path)))
                .unwrap();
            let sheets = super::read_back(&path);
            let read: Vec<String> = sheets[0]
                .1
                .iter()
                .map(|row| match &row[0] {
                    calamine::Data::String(s) => s.clone(),
                    calamine::Data::Empty => String::new(),
                    other => format!("not text: {other:?}"),
                })
                .collect();
            prop_assert_eq!(read, texts);
        }
    }
}
