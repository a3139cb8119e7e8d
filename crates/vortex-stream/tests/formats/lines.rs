use vortex_stream::io::Input;
use vortex_stream::sources::LinesSource;
use vortex_stream::{ErrorKind, ErrorPolicy};

use crate::support::{items, only_error, values};

#[tokio::test]
async fn lines_handle_crlf_blank_lines_and_no_final_newline() {
    let got = values(items(LinesSource::new(Input::bytes("a\r\n\nb\nc")).lines()).await);
    assert_eq!(got, ["a", "", "b", "c"]);
    assert!(items(LinesSource::new(Input::bytes("")).lines())
        .await
        .is_empty());
}

#[tokio::test]
async fn a_line_past_the_cap_is_a_positioned_error_and_reading_goes_on() {
    let input = Input::bytes(format!("short\n{}\nafter\n", "x".repeat(100))).name("big.txt");
    let got = items(LinesSource::new(input).max_line_len(50).lines()).await;
    assert_eq!(got.len(), 3);
    let err = only_error(&got);
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        err.to_string(),
        "lines source: big.txt: line 2, byte 6: line is 100 bytes long, over the limit of 50 bytes"
    );
    assert_eq!(got[2].as_ref().unwrap(), "after");

    let policy = ErrorPolicy::skip();
    let input = Input::bytes(format!("short\n{}\nafter\n", "x".repeat(100)));
    let kept = LinesSource::new(input)
        .max_line_len(50)
        .lines()
        .on_error(policy.clone())
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(kept, ["short", "after"]);
    assert_eq!(policy.report().skipped(), 1);
}

#[tokio::test]
async fn invalid_utf8_is_an_error_unless_lossy() {
    let bytes: &'static [u8] = b"ok\nbad \xff\xfe here\nok\n";
    let got = items(LinesSource::new(Input::bytes(bytes)).lines()).await;
    let err = only_error(&got);
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(
        err.to_string(),
        "lines source: bytes: record 1 (line 2, byte 3): invalid UTF-8 at byte 4 of the line"
    );
    assert_eq!(err.raw(), Some(&b"bad \xff\xfe here"[..]));
    let got = values(items(LinesSource::new(Input::bytes(bytes)).lossy(true).lines()).await);
    assert_eq!(got[1], "bad \u{fffd}\u{fffd} here");
}

#[tokio::test]
async fn a_missing_file_is_one_error_naming_it() {
    let got = items(LinesSource::new(Input::path("/no/such/dir/file.txt")).lines()).await;
    assert_eq!(got.len(), 1);
    let err = only_error(&got);
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(
        err.to_string()
            .starts_with("lines source: open: /no/such/dir/file.txt: "),
        "{err}"
    );
}

#[tokio::test]
async fn an_async_reader_feeds_a_line_source() {
    let (mut writer, reader) = tokio::io::duplex(16);
    let produce = async move {
        use tokio::io::AsyncWriteExt as _;
        for i in 0..100 {
            writer
                .write_all(format!("line {i}\n").as_bytes())
                .await
                .unwrap();
        }
    };
    let consume = LinesSource::new(Input::async_reader(reader))
        .lines()
        .count();
    let ((), n) = tokio::join!(produce, consume);
    assert_eq!(n.unwrap(), 100);
}

/// An endless input that counts its reads.
struct Endless(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl std::io::Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        buf.fill(b'x');
        Ok(buf.len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_line_fails_at_the_cap_and_dropping_stops_the_reading_thread() {
    use std::sync::atomic::Ordering;
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut lines = LinesSource::new(Input::reader(Endless(std::sync::Arc::clone(&reads))))
        .max_line_len(1000)
        .lines();
    // The cap fires while the line is read, not at its end, which never comes.
    let first = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures_util::StreamExt::next(&mut lines),
    )
    .await
    .expect("the error comes at the cap");
    let err = first.unwrap().unwrap_err();
    assert!(
        err.to_string()
            .contains("line is longer than the limit of 1000 bytes"),
        "{err}"
    );
    // The reading thread goes on skipping the line; dropping the pipeline stops it.
    drop(lines);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let after_drop = reads.load(Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        reads.load(Ordering::Relaxed),
        after_drop,
        "no read after the drop"
    );
}
