//! What the library tells a `tracing` subscriber: a span for the source, the parallel stage
//! and the sink, with their work on other threads inside them, and an event for each record
//! a policy skips.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vortex_stream::io::{Input, Output};
use vortex_stream::sinks::CsvRecords;
use vortex_stream::sources::CsvSource;
use vortex_stream::ErrorPolicy;

/// A log kept in memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn stages_log_their_spans_and_skipped_records() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let csv = "id,name\n1,a\n2,b,extra\n3,c\n";
    let written = tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(
            CsvSource::new(Input::bytes(csv).name("people.csv"))
                .records()
                .on_error(ErrorPolicy::skip())
                .par_map(2, |record| record)
                .write(CsvRecords::new(), Output::path(&out)),
        )
    })
    .unwrap();
    assert_eq!(written.rows, 2);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "record skipped",
        "people.csv",
        "line 3",
        "vortex.write",
        "written rows=2",
        "vortex.source{operation=\"csv source: open\" input=\"people.csv\"}",
        "read to the end",
        "vortex.parallel{stage=\"par_map\" limit=2}",
        "stage ended values=2",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the log:\n{text}"
        );
    }
    // The skip happened inside the sink's span (it drives the pipeline).
    let skipped = text.lines().find(|l| l.contains("record skipped")).unwrap();
    assert!(skipped.contains("vortex.write"), "{skipped}");
}
