use serde::Deserialize;
use vortex_stream::io::{Compression, Input};
use vortex_stream::sources::JsonlSource;
use vortex_stream::{ErrorKind, Position};

use crate::support::{items, only_error, values};

#[derive(Debug, Deserialize, PartialEq)]
struct Log {
    level: String,
    latency_ms: u32,
}

fn log(level: &str, latency_ms: u32) -> Log {
    Log {
        level: level.to_owned(),
        latency_ms,
    }
}

fn src(text: &'static str) -> JsonlSource {
    JsonlSource::new(Input::bytes(text).name("t.jsonl"))
}

#[tokio::test]
async fn values_blank_lines_and_no_final_newline() {
    let text =
        "{\"level\":\"info\",\"latency_ms\":1}\n\n   \r\n{\"level\":\"error\",\"latency_ms\":2}";
    let got = values(items(src(text).deserialize::<Log>()).await);
    assert_eq!(got, [log("info", 1), log("error", 2)]);
    let any = values(items(src("[1,2]\n\"x\"\n").values()).await);
    assert_eq!(any, [serde_json::json!([1, 2]), serde_json::json!("x")]);
}

/// Decodes `bad` between two good lines and checks what every bad line must get: one
/// positioned error with its cause and raw text, and the next line still decoded.
async fn bad_line(bad: &'static str) -> Vec<vortex_stream::Result<Log>> {
    let text = format!(
        "{{\"level\":\"a\",\"latency_ms\":1}}\n{bad}\n{{\"level\":\"b\",\"latency_ms\":2}}\n"
    );
    let got =
        items(JsonlSource::new(Input::bytes(text).name("t.jsonl")).deserialize::<Log>()).await;
    assert_eq!(got.len(), 3, "the line after a bad one still decodes");
    assert_eq!(got[2].as_ref().unwrap(), &log("b", 2));
    let err = only_error(&got);
    assert_eq!(err.kind(), ErrorKind::Decode);
    let pos = err.position().unwrap();
    assert_eq!(
        (pos.source(), pos.record(), pos.line()),
        (Some("t.jsonl"), Some(1), Some(2))
    );
    // The parser's error is kept as the cause; the message retells it (without the "line 1"
    // of its own), so the chain leaves it out rather than tell it twice.
    let cause = err.cause().expect("the parser's error");
    assert!(cause.downcast_ref::<serde_json::Error>().is_some());
    assert!(std::error::Error::source(err).is_none());
    assert_eq!(err.raw(), Some(bad.as_bytes()));
    got
}

#[tokio::test]
async fn a_truncated_object() {
    let got = bad_line("{\"level\":\"x\",\"lat").await;
    let err = only_error(&got);
    assert!(err.message().contains("EOF while parsing"), "{err}");
}

#[tokio::test]
async fn trailing_garbage_after_a_value() {
    let got = bad_line("{\"level\":\"x\",\"latency_ms\":3} oops").await;
    let err = only_error(&got);
    assert_eq!(err.message(), "trailing characters (column 30)");
    // The byte offset points at the fault: the line starts at byte 29, "oops" at its 30th.
    assert_eq!(err.position().and_then(Position::byte), Some(29 + 29));
}

#[tokio::test]
async fn a_non_object_where_a_struct_is_expected() {
    let got = bad_line("42").await;
    let err = only_error(&got);
    assert!(
        err.message()
            .contains("invalid type: integer `42`, expected struct Log"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_field_type() {
    let got = bad_line("{\"level\":\"x\",\"latency_ms\":\"slow\"}").await;
    let err = only_error(&got);
    assert!(
        err.message()
            .contains("invalid type: string \"slow\", expected u32"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_utf8() {
    let bytes: &'static [u8] = b"{\"level\":\"a\xff\",\"latency_ms\":1}\n";
    let got = items(JsonlSource::new(Input::bytes(bytes)).deserialize::<Log>()).await;
    let err = only_error(&got);
    assert!(err.message().contains("invalid unicode"), "{err}");
    assert_eq!(err.position().and_then(Position::line), Some(1));
}

#[tokio::test]
async fn a_line_past_the_cap() {
    let text = format!(
        "{{\"level\":\"{}\",\"latency_ms\":1}}\n{{\"level\":\"b\",\"latency_ms\":2}}\n",
        "z".repeat(500)
    );
    let got = items(
        JsonlSource::new(Input::bytes(text))
            .max_line_len(100)
            .deserialize::<Log>(),
    )
    .await;
    assert_eq!(got.len(), 2);
    assert!(only_error(&got)
        .message()
        .contains("over the limit of 100 bytes"));
    assert_eq!(got[1].as_ref().unwrap(), &log("b", 2));
}

#[tokio::test]
async fn a_truncated_gzip_file_fails_at_the_end_not_silently() {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(encoder, "{{\"level\":\"info\",\"latency_ms\":{i}}}").unwrap();
    }
    let whole = encoder.finish().unwrap();
    let cut = whole[..whole.len() / 2].to_vec();
    let got = items(
        JsonlSource::new(Input::bytes(cut).compression(Compression::Auto)).deserialize::<Log>(),
    )
    .await;
    let last = got.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.kind(), ErrorKind::Io);
    assert!(got[..got.len() - 1].iter().all(Result::is_ok));
    assert!(got.len() > 1 && got.len() < 2001);
}

#[tokio::test]
async fn many_small_batches_keep_every_line_and_position() {
    // 5,000 lines in batches of 7, their buffers reused from batch to batch: blank lines, bad
    // lines and lines of every length, each value and each error where it belongs.
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut record = 0u64;
    for i in 0..5_000u32 {
        let byte = text.len() as u64;
        match i % 5 {
            0 => text.push('\n'),
            1 => {
                text.push_str(&format!("{{\"level\":\"e\",\"latency_ms\":{i}}} x\n"));
                let column = text.len() as u64 - byte - 1;
                expected.push(Err((record, u64::from(i) + 1, byte + column - 1)));
                record += 1;
            }
            _ => {
                let level = "l".repeat(i as usize % 37);
                text.push_str(&format!("{{\"level\":\"{level}\",\"latency_ms\":{i}}}\r\n"));
                expected.push(Ok(log(&level, i)));
                record += 1;
            }
        }
    }
    let source = || {
        JsonlSource::new(Input::bytes(text.clone()).name("t.jsonl"))
            .batch(std::num::NonZeroUsize::new(7).unwrap())
    };
    let positions = |got: Vec<vortex_stream::Result<Log>>| -> Vec<_> {
        got.into_iter()
            .map(|item| {
                item.map_err(|e| {
                    let pos = e.position().unwrap();
                    (
                        pos.record().unwrap(),
                        pos.line().unwrap(),
                        pos.byte().unwrap(),
                    )
                })
            })
            .collect()
    };
    assert_eq!(
        positions(items(source().deserialize::<Log>()).await),
        expected
    );
    // Filtered on the decoding threads: the values kept and every error, in the same order.
    let kept =
        source().deserialize_filter_map(|log: Log| log.latency_ms.is_multiple_of(3).then_some(log));
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|item| item.as_ref().map_or(true, |log| log.latency_ms % 3 == 0))
        .collect();
    assert_eq!(positions(items(kept).await), expected);
}

#[tokio::test]
async fn a_character_cut_across_two_lines_makes_two_bad_lines() {
    // Side by side in a batch the two lines make valid UTF-8 ("é" in a string); each alone is
    // not, and each is an error of its own.
    let got =
        items(JsonlSource::new(Input::bytes(&b"\"\xc3\n\xa9\"\n\"ok\"\n"[..])).values()).await;
    assert_eq!(got.len(), 3);
    for (i, item) in got[..2].iter().enumerate() {
        let err = item.as_ref().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert_eq!(err.position().unwrap().line(), Some(i as u64 + 1));
    }
    assert_eq!(got[2].as_ref().unwrap(), "ok");
}

#[tokio::test]
async fn an_empty_line_after_a_line_ending_in_two_crs() {
    // The first line keeps one of its CRs (whitespace after the value); the empty line after it
    // has none of its own to drop.
    let got = items(JsonlSource::new(Input::bytes(&b"\"a\"\r\r\n\n\"b\"\n"[..])).values()).await;
    assert_eq!(values(got), ["a", "b"]);
}

#[tokio::test]
async fn more_blank_lines_than_a_batch_holds_do_not_end_the_input() {
    // 1.5 MiB of blank lines (more than a batch's bytes) before the first and the last value:
    // a batch that ends up holding no line is not the end of the input.
    for blank in ["\n", "    \r\n"] {
        let blanks = blank.repeat(3 * 512 * 1024 / blank.len());
        let text = format!("{blanks}1\n{blanks}2\n{blanks}");
        let got = items(JsonlSource::new(Input::bytes(text.into_bytes())).values()).await;
        assert_eq!(values(got), [1, 2], "blank lines {blank:?}");
    }
}

/// Fused stages: the `map`, `filter` and `filter_map` right after `deserialize` run on the
/// decoding threads, and give what the same closures give as plain stages.
mod fused {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};
    use std::thread::ThreadId;

    use futures_util::StreamExt as _;
    use proptest::prelude::*;
    use vortex_stream::io::Input;
    use vortex_stream::sources::JsonlSource;
    use vortex_stream::{ErrorKind, ErrorPolicy};

    use crate::support::items;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn source(text: &[u8], batch: usize, threads: usize) -> JsonlSource {
        JsonlSource::new(Input::bytes(text.to_vec()).name("p.jsonl"))
            .batch(batch)
            .decode_threads(threads)
    }

    fn outcome(got: Vec<vortex_stream::Result<String>>) -> Vec<Result<String, String>> {
        got.into_iter()
            .map(|item| item.map_err(|e| format!("{e} {:?}", e.position())))
            .collect()
    }

    /// Lines of every kind: values, blank lines, bad JSON, a wrong type.
    fn text() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            8 => (0u32..1000).prop_map(|n| format!("{{\"n\":{n},\"s\":\"é{n}\"}}")),
            1 => Just(String::new()),
            1 => Just("{\"n\":".to_owned()),
            1 => Just("{\"n\":\"text\"}".to_owned()),
            1 => Just("[1,2]".to_owned()),
        ];
        prop::collection::vec(line, 0..400).prop_map(|lines| lines.join("\n").into_bytes())
    }

    #[derive(Debug, serde::Deserialize)]
    struct Row {
        n: u32,
        #[allow(dead_code)] // Printed by the chain's `{:?}`.
        s: String,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever the batches and threads, fused closures see the values in input order,
        /// once each, and the errors come out where they would.
        #[test]
        fn fused_stages_give_what_plain_stages_give(
            text in text(),
            batch in 1usize..64,
            threads in 1usize..4,
        ) {
            let fused = counting_chain!(source(&text, batch, threads).deserialize::<Row>(), Row);
            let plain =
                counting_chain!(source(&text, batch, threads).deserialize::<Row>().unfused(), Row);
            prop_assert_eq!(
                outcome(runtime().block_on(items(fused))),
                outcome(runtime().block_on(items(plain)))
            );
        }

        /// A `par_map` after them, fused (no more decoding threads than its limit) or not,
        /// gives the same outcome.
        #[test]
        fn a_fused_par_map_gives_what_a_plain_one_gives(
            text in text(),
            batch in 1usize..64,
            threads in 1usize..4,
            limit in 1usize..4,
        ) {
            let digest = |row: Row| format!("{row:?}");
            let fused = source(&text, batch, threads)
                .deserialize::<Row>()
                .filter(|row| row.n % 3 != 0)
                .par_map(limit, digest);
            let plain = source(&text, batch, threads)
                .deserialize::<Row>()
                .unfused()
                .filter(|row| row.n % 3 != 0)
                .par_map(limit, digest);
            prop_assert_eq!(
                outcome(runtime().block_on(items(fused))),
                outcome(runtime().block_on(items(plain)))
            );
        }
    }

    fn numbered(lines: u32) -> Vec<u8> {
        (0..lines)
            .map(|n| format!("{{\"n\":{n},\"s\":\"x\"}}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn fused_closures_run_on_the_decoding_threads_and_unfused_ones_where_polled() {
        let text = numbered(5_000);
        let here = std::thread::current().id();
        for fuse in [true, false] {
            let ran: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
            let seen = Arc::clone(&ran);
            let record = move |row: Row| {
                seen.lock().unwrap().insert(std::thread::current().id());
                row.n
            };
            let rows = source(&text, 100, 2).deserialize::<Row>();
            let got: Vec<u32> = if fuse {
                runtime().block_on(rows.map(record).collect()).unwrap()
            } else {
                runtime()
                    .block_on(rows.unfused().map(record).collect())
                    .unwrap()
            };
            assert_eq!(got, (0..5_000).collect::<Vec<_>>());
            let ran = ran.lock().unwrap();
            if fuse {
                assert!(!ran.is_empty() && !ran.contains(&here), "{ran:?}");
            } else {
                assert_eq!(*ran, HashSet::from([here]));
            }
        }
    }

    #[test]
    fn a_panic_in_a_fused_closure_ends_the_stream_with_a_fatal_error_no_policy_skips() {
        let text = numbered(10_000);
        for threads in [1, 2, 3] {
            let pipeline = || {
                source(&text, 100, threads).deserialize::<Row>().map(|row| {
                    assert!(row.n != 6_000, "no row 6000 here");
                    row.n
                })
            };
            let got = runtime().block_on(items(pipeline()));
            let (last, before) = got.split_last().unwrap();
            let err = last.as_ref().unwrap_err();
            assert!(err.is_fatal(), "{threads}: {err}");
            assert_eq!(err.kind(), ErrorKind::Internal);
            assert!(err.to_string().contains("panicked"), "{err}");
            // Named at the first line of the batch it lost.
            assert_eq!(err.position().and_then(|p| p.record()), Some(6_000));
            let ns: Vec<u32> = before.iter().map(|item| *item.as_ref().unwrap()).collect();
            assert_eq!(ns, (0..6_000).collect::<Vec<_>>());
            let skipped = runtime().block_on(pipeline().on_error(ErrorPolicy::skip()).count());
            assert!(skipped.unwrap_err().is_fatal(), "{threads}");
        }
    }

    #[tokio::test]
    async fn a_stage_added_after_the_first_poll_still_sees_every_value_after_it() {
        let text = numbered(3_000);
        let mut rows = source(&text, 100, 2).deserialize::<Row>();
        assert_eq!(rows.next().await.unwrap().unwrap().n, 0);
        let rest: Vec<u32> = rows.map(|row| row.n * 2).collect().await.unwrap();
        assert_eq!(rest, (1..3_000).map(|n| n * 2).collect::<Vec<_>>());
    }
}
