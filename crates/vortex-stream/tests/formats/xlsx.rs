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
