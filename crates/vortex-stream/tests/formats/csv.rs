use serde::Deserialize;
use vortex_stream::io::Input;
use vortex_stream::sources::{CsvSource, Headers};
use vortex_stream::{ErrorKind, ErrorPolicy, Position};

use crate::support::{items, only_error, values, Generated};

#[derive(Debug, Deserialize, PartialEq)]
struct Order {
    id: u32,
    status: String,
}

fn order(id: u32, status: &str) -> Order {
    Order {
        id,
        status: status.to_owned(),
    }
}

fn src(text: &'static str) -> CsvSource {
    CsvSource::new(Input::bytes(text).name("t.csv"))
}

fn fields(record: &csv::StringRecord) -> Vec<String> {
    record.iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn serde_records_match_headers_by_name() {
    let got = values(items(src("status,id\nactive,1\nshipped,2\n").deserialize::<Order>()).await);
    assert_eq!(got, [order(1, "active"), order(2, "shipped")]);
}

#[tokio::test]
async fn headers_can_be_skipped_or_absent() {
    let got = values(
        items(
            src("x,y\n1,active\n")
                .headers(Headers::Skip)
                .deserialize::<Order>(),
        )
        .await,
    );
    assert_eq!(got, [order(1, "active")]);
    let got = values(
        items(
            src("1,active\n2,new\n")
                .headers(Headers::None)
                .deserialize::<Order>(),
        )
        .await,
    );
    assert_eq!(got, [order(1, "active"), order(2, "new")]);
}

#[tokio::test]
async fn options_delimiter_quote_comment_trim() {
    let input = "id; status\n# a comment\n 1 ;'a;b'\n";
    let got = values(
        items(
            src(input)
                .delimiter(b';')
                .quote(b'\'')
                .comment(Some(b'#'))
                .trim(true)
                .records(),
        )
        .await,
    );
    assert_eq!(got.iter().map(fields).collect::<Vec<_>>(), [["1", "a;b"]]);
}

#[tokio::test]
async fn a_wrong_type_names_the_field_record_line_and_byte() {
    let got = items(src("id,status\n1,a\nx,b\n3,c\n").deserialize::<Order>()).await;
    assert_eq!(got.len(), 3);
    let err = only_error(&got);
    assert_eq!(err.kind(), ErrorKind::Decode);
    let pos = err.position().unwrap();
    assert_eq!(
        (pos.record(), pos.line(), pos.byte()),
        (Some(1), Some(3), Some(14))
    );
    assert_eq!(pos.source(), Some("t.csv"));
    assert!(
        err.to_string()
            .contains("field 0: invalid digit found in string"),
        "{err}"
    );
    assert_eq!(err.raw(), Some(&b"x,b"[..]));
    assert!(std::error::Error::source(err).is_some());
}

#[tokio::test]
async fn ragged_rows_are_errors_unless_flexible() {
    let text = "a,b\n1,2\n3,4,5\n6,7\n";
    let got = items(src(text).records()).await;
    let err = only_error(&got);
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.to_string().contains("record has 3 fields, expected 2"),
        "{err}"
    );
    assert_eq!(err.position().and_then(Position::line), Some(3));
    assert_eq!(got.len(), 3, "the next record still decodes");
    let got = values(items(src(text).flexible(true).records()).await);
    assert_eq!(
        got.iter().map(csv::StringRecord::len).collect::<Vec<_>>(),
        [2, 3, 2]
    );
}

#[tokio::test]
async fn mixed_line_endings_and_embedded_newlines() {
    let text = "id,note\r\n1,\"two\nlines\"\n2,plain\r\n3,\"x\"\n";
    let got = values(items(src(text).records()).await);
    assert_eq!(
        got.iter().map(fields).collect::<Vec<_>>(),
        [["1", "two\nlines"], ["2", "plain"], ["3", "x"]]
    );
    // Line numbers count the newline inside the quoted field.
    let got = items(src("id,note\n1,\"a\nb\"\n2,\"c\"d\n").records()).await;
    let err = only_error(&got);
    assert_eq!(err.position().and_then(Position::line), Some(4));
}

#[tokio::test]
async fn an_unterminated_quote_at_the_end_is_an_error() {
    let got = items(src("id,note\n1,ok\n2,\"never closed\n3,more\n").records()).await;
    let err = only_error(&got);
    assert!(
        err.to_string()
            .contains("not closed before the end of the input"),
        "{err}"
    );
    assert_eq!(err.position().and_then(Position::record), Some(1));
    assert_eq!(err.position().and_then(Position::line), Some(3));
    // The lenient way reads it as one long field.
    let got = values(items(src("id,note\n1,\"open\n").strict_quotes(false).records()).await);
    assert_eq!(fields(&got[0]), ["1", "open\n"]);
}

#[tokio::test]
async fn a_quote_inside_an_unquoted_field_is_an_error() {
    let got = items(src("id,note\n1,say \"hi\"\n2,ok\n").records()).await;
    let err = only_error(&got);
    assert!(
        err.to_string()
            .contains("quote character inside unquoted field 1"),
        "{err}"
    );
    assert_eq!(err.raw(), Some(&b"1,say \"hi\""[..]));
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn a_bom_is_dropped() {
    let got = values(items(src("\u{feff}id,status\n7,new\n").deserialize::<Order>()).await);
    assert_eq!(got, [order(7, "new")]);
}

#[tokio::test]
async fn empty_and_header_only_inputs_have_no_records() {
    assert!(items(src("").deserialize::<Order>()).await.is_empty());
    assert!(items(src("id,status\n").deserialize::<Order>())
        .await
        .is_empty());
    assert!(items(src("id,status").records()).await.is_empty());
}

#[tokio::test]
async fn invalid_utf8_is_a_positioned_error() {
    let bytes: &'static [u8] = b"id,status\n1,ok\n2,\xff\xfe\n3,ok\n";
    let got = items(CsvSource::new(Input::bytes(bytes)).records()).await;
    let err = only_error(&got);
    assert_eq!(
        err.to_string(),
        "csv source: decode: bytes: record 1 (line 3, byte 15): invalid UTF-8 in field 1"
    );
    let got = items(CsvSource::new(Input::bytes(bytes)).deserialize::<Order>()).await;
    assert_eq!(
        only_error(&got).position().and_then(Position::line),
        Some(3)
    );
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn nul_bytes_are_errors_unless_allowed() {
    let bytes: &'static [u8] = b"id,status\n1,o\0k\n";
    let got = items(CsvSource::new(Input::bytes(bytes)).records()).await;
    assert!(only_error(&got).to_string().contains("NUL byte"));
    let got = values(
        items(
            CsvSource::new(Input::bytes(bytes))
                .allow_nul(true)
                .records(),
        )
        .await,
    );
    assert_eq!(&got[0][1], "o\0k");
}

/// `id,note` records, the second with a 100 MB field, generated as they are read.
fn huge_field() -> Input {
    Input::reader(Generated {
        head: b"id,note\n1,small\n2,".to_vec(),
        fill: b'x',
        len: 100 * 1024 * 1024,
        tail: b"\n3,after\n".to_vec(),
        pos: 0,
    })
    .name("huge.csv")
}

#[tokio::test]
async fn a_100_mb_field_is_read_past_without_being_held() {
    let got = items(CsvSource::new(huge_field()).records()).await;
    assert_eq!(got.len(), 3, "the record after the oversized one is read");
    assert_eq!(&got[0].as_ref().unwrap()[1], "small");
    assert_eq!(&got[2].as_ref().unwrap()[1], "after");
    let err = got[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(
        err.to_string()
            .contains("longer than the limit of 16777216 bytes"),
        "{err}"
    );
    assert_eq!(err.position().and_then(Position::line), Some(3));
}

#[tokio::test]
async fn a_record_just_past_a_small_cap_is_reported_and_skipped() {
    let text = format!("id,blob\n1,{}\n2,ok\n", "y".repeat(200));
    let policy = ErrorPolicy::skip();
    let got = CsvSource::new(Input::bytes(text))
        .max_record_len(100)
        .records()
        .on_error(policy.clone())
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(got.iter().map(fields).collect::<Vec<_>>(), [["2", "ok"]]);
    assert_eq!(policy.report().errors(ErrorKind::Decode), 1);
}

/// What a parse gave, comparable between the two ways: fields, or the error's kind, position
/// and message.
fn outcome<T>(items: Vec<vortex_stream::Result<T>>) -> Vec<Result<T, String>> {
    items
        .into_iter()
        .map(|item| {
            item.map_err(|e| {
                let pos = e.position().cloned().unwrap_or_default();
                format!(
                    "{:?} r{:?} l{:?} b{:?} {}",
                    e.kind(),
                    pos.record(),
                    pos.line(),
                    pos.byte(),
                    e.message()
                )
            })
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Parsed on one thread, record by record, as the parser reads it.
fn one_thread(
    text: &[u8],
    configure: impl Fn(CsvSource) -> CsvSource,
) -> Vec<Result<Vec<String>, String>> {
    let source = configure(CsvSource::new(Input::bytes(text.to_vec()).name("p.csv")));
    let got = runtime().block_on(items(source.records()));
    outcome(
        got.into_iter()
            .map(|item| item.map(|record| fields(&record)))
            .collect(),
    )
}

/// A reader that hands over at most `step` bytes a read.
struct Trickle {
    bytes: Vec<u8>,
    at: usize,
    step: usize,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.bytes[self.at..];
        let n = rest.len().min(self.step).min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

/// Cut into runs of `chunk` bytes and parsed on `threads` workers.
fn in_runs(
    text: &[u8],
    chunk: usize,
    threads: usize,
    configure: impl Fn(CsvSource) -> CsvSource,
) -> Vec<Result<Vec<String>, String>> {
    in_runs_as(text, chunk, threads, configure)
}

/// [`in_runs`], each record decoded as `T`.
fn in_runs_as<T: serde::de::DeserializeOwned + Send + 'static>(
    text: &[u8],
    chunk: usize,
    threads: usize,
    configure: impl Fn(CsvSource) -> CsvSource,
) -> Vec<Result<T, String>> {
    // Handed over a few bytes at a time, so that runs are cut as the bytes arrive, about
    // `chunk` bytes apart, not once for all the input in one read.
    in_runs_stepped(text, chunk, threads, chunk % 5 + 1, configure)
}

/// [`in_runs_as`], the input handed over `step` bytes a read.
fn in_runs_stepped<T: serde::de::DeserializeOwned + Send + 'static>(
    text: &[u8],
    chunk: usize,
    threads: usize,
    step: usize,
    configure: impl Fn(CsvSource) -> CsvSource,
) -> Vec<Result<T, String>> {
    let reader = Trickle {
        bytes: text.to_vec(),
        at: 0,
        step,
    };
    let source = configure(CsvSource::new(Input::reader(reader).name("p.csv")))
        .chunk_size(std::num::NonZeroUsize::new(chunk).unwrap())
        .decode_threads(std::num::NonZeroUsize::new(threads).unwrap());
    outcome(runtime().block_on(items(source.deserialize::<T>())))
}

mod runs {
    use proptest::prelude::*;
    use vortex_stream::sources::{CsvSource, Headers};

    use super::{in_runs, one_thread};

    /// CSV-ish text: fields, quotes in every place, every line end, byte-order marks, NULs.
    fn text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            6 => Just(&b"a"[..]),
            3 => Just(&b","[..]),
            3 => Just(&b"\""[..]),
            3 => Just(&b"\n"[..]),
            1 => Just(&b"\r\n"[..]),
            1 => Just(&b"\r"[..]),
            1 => Just(&b" "[..]),
            1 => Just(&b"\xef\xbb\xbf"[..]),
            1 => Just(&b"\0"[..]),
            1 => Just(&b"\"x\","[..]),
            1 => Just(&b"\"\"\""[..]),
        ];
        prop::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
    }

    fn headers() -> impl Strategy<Value = Headers> {
        prop_oneof![Just(Headers::Use), Just(Headers::Skip), Just(Headers::None)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Cutting the input into runs changes nothing: the same records and the same errors
        /// at the same positions as one parser reading it all, whatever the quoting.
        #[test]
        fn runs_parse_as_one_parser_does(
            text in text(),
            chunk in 1usize..12,
            threads in 1usize..4,
            headers in headers(),
            flexible: bool,
            strict: bool,
            trim: bool,
            cap in prop_oneof![Just(vortex_stream::sources::DEFAULT_MAX_RECORD_LEN), 3usize..12],
        ) {
            let configure = |s: CsvSource| {
                s.headers(headers)
                    .flexible(flexible)
                    .strict_quotes(strict)
                    .trim(trim)
                    .max_record_len(cap)
            };
            prop_assert_eq!(in_runs(&text, chunk, threads, configure), one_thread(&text, configure));
        }
    }
}

/// Runs that are mostly plain lines with a quoted record here and there (real data: a name
/// like `"Smith, Jr."` every few dozen lines): the plain stretches are split without the
/// parser and the quoted records parsed, and together they read as one parser reads it all,
/// positions and errors included.
mod sparse_quotes {
    use proptest::prelude::*;
    use vortex_stream::io::Input;
    use vortex_stream::sources::{CsvSource, Headers};

    use super::{in_runs, items, one_thread, runtime};

    /// One line: plain most of the time; sometimes a quoted field (a comma, a doubled quote,
    /// a line break inside), a quote inside an unquoted field, a ragged row, a blank line, a
    /// byte-order mark at its start.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            60 => "[a-z0-9]{1,12},[a-z0-9é]{0,30},[0-9]{1,4}".prop_map(String::into_bytes),
            2 => "[a-z]{1,5}".prop_map(|s| format!("\"{s}, Jr.\",x,1").into_bytes()),
            1 => "[a-z]{1,5}".prop_map(|s| format!("q,\"say \"\"{s}\"\"\",2").into_bytes()),
            1 => "[a-z]{1,5}".prop_map(|s| format!("n,\"two\n{s}\",3").into_bytes()),
            1 => Just(b"bad,a\"b,4".to_vec()),
            1 => Just(b"short".to_vec()),
            1 => Just(Vec::new()),
            1 => Just(b"\xef\xbb\xbfbom,b,5".to_vec()),
            1 => Just(b"open,\"never closed".to_vec()),
        ]
    }

    pub(super) fn text() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(line(), 0..700).prop_map(|lines| lines.join(&b'\n'))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn mostly_plain_runs_read_as_one_parser_does(
            text in text(),
            chunk in 2048usize..9000,
            threads in 1usize..3,
            headers in prop_oneof![Just(Headers::Use), Just(Headers::None)],
            flexible: bool,
            strict: bool,
        ) {
            let configure = |s: CsvSource| s.headers(headers).flexible(flexible).strict_quotes(strict);
            prop_assert_eq!(in_runs(&text, chunk, threads, configure), one_thread(&text, configure));
            // Located values carry the positions their errors would, both ways.
            let located = |chunk: Option<usize>| {
                let mut source = configure(CsvSource::new(Input::bytes(text.clone()).name("p.csv")));
                if let Some(chunk) = chunk {
                    source = source.chunk_size(std::num::NonZeroUsize::new(chunk).unwrap());
                }
                runtime()
                    .block_on(items(source.deserialize_located::<Vec<String>>()))
                    .into_iter()
                    .map(|item| match item {
                        Ok(l) => format!("{:?} {:?}", l.value(), l.position()),
                        Err(e) => format!("error {:?}", e.position()),
                    })
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(located(Some(chunk)), located(Some(1 << 30)));
        }
    }
}

/// Plain lines, split without the parser, read as the parser reads them.
mod plain {
    use proptest::prelude::*;
    use vortex_stream::sources::{CsvSource, Headers};

    use super::{in_runs, in_runs_as};

    /// Lines with no quote, carriage return or NUL: what runs are split without the parser.
    /// Empty lines, empty fields, ragged rows, byte-order marks and invalid UTF-8 included.
    fn text() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            6 => Just(&b"a"[..]),
            2 => Just(&b"17"[..]),
            4 => Just(&b","[..]),
            4 => Just(&b"\n"[..]),
            1 => Just(&b" "[..]),
            1 => Just(&b"\xc3\xa9"[..]),
            1 => Just(&b"\xff"[..]),
            1 => Just(&b"\xef\xbb\xbf"[..]),
        ];
        prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
    }

    fn headers() -> impl Strategy<Value = Headers> {
        prop_oneof![Just(Headers::Use), Just(Headers::Skip), Just(Headers::None)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Runs of plain lines give the records and errors, at the positions, that the parser
        /// gives reading the input as a whole (which it does with a comment byte set; the
        /// text never holds it).
        #[test]
        fn plain_runs_read_as_the_parser_does(
            text in text(),
            chunk in 1usize..40,
            threads in 1usize..4,
            headers in headers(),
            flexible: bool,
            cap in prop_oneof![Just(vortex_stream::sources::DEFAULT_MAX_RECORD_LEN), 3usize..12],
        ) {
            let configure = |s: CsvSource| s.headers(headers).flexible(flexible).max_record_len(cap);
            let parsed = move |s: CsvSource| configure(s).comment(Some(b'#'));
            prop_assert_eq!(
                in_runs(&text, chunk, threads, configure),
                in_runs(&text, chunk, threads, parsed)
            );
            prop_assert_eq!(
                in_runs_as::<Typed>(&text, chunk, threads, configure),
                in_runs_as::<Typed>(&text, chunk, threads, parsed)
            );
        }
    }

    /// A record typed field by field, matched to the header row by name when there is one.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Typed {
        a: Option<u32>,
        #[serde(rename = "17", default)]
        number: Option<f64>,
        #[serde(default)]
        text: String,
    }
}

#[tokio::test]
async fn a_byte_order_mark_arriving_alone_or_in_pieces_is_dropped() {
    // The parser drops a mark only if its first read holds all of it and more: a first read of
    // exactly the mark used to read as an empty input, one of part of it kept the mark as data.
    for step in 1..6 {
        for comment in [None, Some(b'#')] {
            let source = || {
                let reader = Trickle {
                    bytes: b"\xef\xbb\xbfa,b\nc,d\n".to_vec(),
                    at: 0,
                    step,
                };
                CsvSource::new(Input::reader(reader))
                    .headers(Headers::None)
                    .comment(comment)
            };
            let records: Vec<Vec<String>> = values(items(source().records()).await)
                .iter()
                .map(fields)
                .collect();
            assert_eq!(records, [["a", "b"], ["c", "d"]], "step {step}");
            let decoded = values(items(source().deserialize::<Vec<String>>()).await);
            assert_eq!(decoded, [["a", "b"], ["c", "d"]], "step {step}");
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct Numbered {
    id: u64,
    note: String,
}

#[tokio::test]
async fn serde_records_come_out_in_order_across_many_runs() {
    // 20,000 records with quoted fields holding line ends, delimiters and quotes, cut into
    // runs of about 1 KiB: every record arrives once, in order, with its text intact.
    let mut text = String::from("id,note\r\n");
    for i in 0..20_000u64 {
        match i % 4 {
            0 => text.push_str(&format!("{i},plain\n")),
            1 => text.push_str(&format!("{i},\"two\nlines, \"\"quoted\"\"\"\r\n")),
            2 => text.push_str(&format!("{i},\"\"\n\n")),
            _ => text.push_str(&format!("{i},\"\r\n\"\n")),
        }
    }
    let got = values(
        items(
            CsvSource::new(Input::bytes(text))
                .chunk_size(std::num::NonZeroUsize::new(1024).unwrap())
                .decode_threads(std::num::NonZeroUsize::new(3).unwrap())
                .deserialize::<Numbered>(),
        )
        .await,
    );
    assert_eq!(got.len(), 20_000);
    for (i, record) in (0u64..).zip(&got) {
        let note = match i % 4 {
            0 => "plain",
            1 => "two\nlines, \"quoted\"",
            2 => "",
            _ => "\r\n",
        };
        assert_eq!((record.id, record.note.as_str()), (i, note));
    }
}

#[tokio::test]
async fn serde_records_read_past_a_100_mb_field_without_holding_it() {
    let got = items(CsvSource::new(huge_field()).deserialize::<Numbered>()).await;
    assert_eq!(got.len(), 3, "the record after the oversized one is read");
    assert_eq!(got[0].as_ref().unwrap().note, "small");
    assert_eq!(got[2].as_ref().unwrap().note, "after");
    let err = got[1].as_ref().unwrap_err();
    assert!(
        err.to_string()
            .contains("longer than the limit of 16777216 bytes"),
        "{err}"
    );
    let pos = err.position().unwrap();
    assert_eq!(
        (pos.record(), pos.line(), pos.byte()),
        (Some(1), Some(3), Some(16))
    );
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn a_truncated_gzip_csv_fails_at_the_end_not_silently() {
    use std::io::Write as _;
    use vortex_stream::io::Compression;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    writeln!(encoder, "id,note").unwrap();
    for i in 0..20_000 {
        writeln!(encoder, "{i},note {i}").unwrap();
    }
    let whole = encoder.finish().unwrap();
    let cut = whole[..whole.len() / 2].to_vec();
    let got = items(
        CsvSource::new(Input::bytes(cut).compression(Compression::Auto))
            .chunk_size(std::num::NonZeroUsize::new(4096).unwrap())
            .deserialize::<Numbered>(),
    )
    .await;
    let last = got.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.kind(), ErrorKind::Io, "{last}");
    let good = &got[..got.len() - 1];
    assert!(good.len() > 1 && good.len() < 20_000);
    for (i, record) in (0u64..).zip(good) {
        assert_eq!(
            record.as_ref().unwrap().id,
            i,
            "whole records, in order, none lost"
        );
    }
}

/// Records too long to parse are read past, whatever way the input is read: the records after
/// them come out, and every later position is where it is in the input.
mod too_long {
    use vortex_stream::sources::CsvSource;

    use super::{in_runs_stepped, one_thread};

    pub(super) use super::too_long_support::*;

    /// Every way of reading, which must all agree: record by record (raw records, and with a
    /// comment byte set), and in runs of several sizes on one to three threads.
    pub(super) fn every_way(text: &[u8]) -> Vec<Result<Vec<String>, String>> {
        let capped = |s: CsvSource| s.max_record_len(CAP);
        let expected = one_thread(text, capped);
        assert_eq!(
            one_thread(text, |s| capped(s).comment(Some(b'#'))),
            expected,
            "with a comment byte"
        );
        // Small runs fed by large reads leave a long record inside a run, read past there.
        for (chunk, step) in [
            (7, 500),
            (7, 70_000),
            (64, 70_000),
            (4096, 1000),
            (256 * 1024, 70_000),
        ] {
            for threads in 1..=3 {
                assert_eq!(
                    in_runs_stepped::<Vec<String>>(text, chunk, threads, step, capped),
                    expected,
                    "in runs of {chunk} bytes on {threads} threads"
                );
            }
        }
        expected
    }

    fn too_long(record: u64, line: u64, byte: u64) -> Result<Vec<String>, String> {
        too_long_at(record, line, byte)
    }

    fn ragged(record: u64, line: u64, byte: u64) -> Result<Vec<String>, String> {
        ragged_at(record, line, byte)
    }

    #[test]
    fn an_unquoted_long_record_is_skipped_and_reading_goes_on() {
        // Longer than two reads: found too long before its end is read. Shorter: its end is
        // read with it, and a run holds it whole (read past inside the run).
        // A quoted field makes runs go through the parser rather than be split as plain lines.
        for (len, x) in [(200_000, "x"), (100_000, "x"), (100_000, "\"x\"")] {
            let long = "y".repeat(len);
            let text = format!("a,b\n1,{x}\n2,{long}\n3,z\n4\n5,w\n");
            let start = 7 + x.len() as u64;
            let after = start + 2 + long.len() as u64 + 1;
            assert_eq!(
                every_way(text.as_bytes()),
                [
                    ok(&["1", "x"]),
                    too_long(1, 3, start),
                    ok(&["3", "z"]),
                    // The field count still holds after the skip, at the right place.
                    ragged(3, 5, after + 4),
                    ok(&["5", "w"]),
                ],
                "a record of {len} bytes after {x}"
            );
        }
    }

    #[test]
    fn a_long_quoted_record_is_skipped_where_its_quoting_ends() {
        // Quoted line ends, doubled quotes and delimiters inside: none ends the record.
        let long = "yy\n\"\",".repeat(40_000);
        let text = format!("a,b\n1,x\n2,\"{long}\"\n3,z\n4\n");
        let after = 8 + 3 + long.len() as u64 + 2;
        assert_eq!(
            every_way(text.as_bytes()),
            [
                ok(&["1", "x"]),
                too_long(1, 3, 8),
                ok(&["3", "z"]),
                ragged(3, 5 + 40_000, after + 4),
            ]
        );
    }

    #[test]
    fn two_long_records_in_a_row_and_one_at_the_end() {
        let long = "q".repeat(150_000);
        let text = format!("a,b\n{long},1\n{long},2\n3,z\n{long}");
        let second = 4 + long.len() as u64 + 3;
        let third = second + long.len() as u64 + 3 + 4;
        assert_eq!(
            every_way(text.as_bytes()),
            [
                too_long(0, 2, 4),
                too_long(1, 3, second),
                ok(&["3", "z"]),
                too_long(3, 5, third),
            ]
        );
    }

    #[test]
    fn an_unterminated_long_quote_ends_the_input_with_one_error() {
        let text = format!("a,b\n1,x\n2,\"{}", "open\n".repeat(50_000));
        assert_eq!(
            every_way(text.as_bytes()),
            [ok(&["1", "x"]), too_long(1, 3, 8)]
        );
    }

    #[test]
    fn a_long_run_of_blank_lines_is_no_record_at_all() {
        for blank in ["\n", "\r\n"] {
            let text = format!("a,b\n1,x\n{}2,y\n3\n", blank.repeat(200_000));
            let after = 8 + (blank.len() * 200_000) as u64 + 4;
            assert_eq!(
                every_way(text.as_bytes()),
                [ok(&["1", "x"]), ok(&["2", "y"]), ragged(2, 200_004, after)],
                "blank lines ending {blank:?}"
            );
        }
    }
}

#[tokio::test]
async fn errors_in_a_crlf_file_name_the_real_line_and_byte() {
    // The parser counts a record from the end of the one before, which in a CRLF file is the
    // LF of its line end; and blank lines come before a record, not in it.
    let text = "id,status\r\n1,active\r\nx,shipped\r\n\r\n\r\n3,done,extra\r\n";
    for threads in [1, 2] {
        for comment in [None, Some(b'#')] {
            let got = items(
                CsvSource::new(Input::bytes(text).name("crlf.csv"))
                    .comment(comment)
                    .decode_threads(std::num::NonZeroUsize::new(threads).unwrap())
                    .deserialize::<Order>(),
            )
            .await;
            let errors: Vec<_> = got.iter().filter_map(|i| i.as_ref().err()).collect();
            assert_eq!(errors.len(), 2, "{errors:?}");
            let at = |e: &vortex_stream::Error| {
                let pos = e.position().unwrap();
                (pos.record(), pos.line(), pos.byte())
            };
            assert_eq!(at(errors[0]), (Some(1), Some(3), Some(21)));
            assert_eq!(errors[0].raw(), Some(&b"x,shipped"[..]));
            assert_eq!(at(errors[1]), (Some(2), Some(6), Some(36)));
            assert_eq!(errors[1].raw(), Some(&b"3,done,extra"[..]));
        }
    }
}

#[test]
fn a_long_record_after_a_long_run_of_blank_lines_is_placed_after_them() {
    use too_long_support::*;
    let text = format!(
        "a,b\n1,x\n{}{},2\n3,z\n4\n",
        "\n".repeat(100_000),
        "w".repeat(100_000)
    );
    let long_at = 8 + 100_000;
    let after = long_at + 100_000 + 3 + 4;
    assert_eq!(
        too_long::every_way(text.as_bytes()),
        [
            ok(&["1", "x"]),
            too_long_at(1, 100_003, long_at),
            ok(&["3", "z"]),
            ragged_at(3, 100_005, after),
        ]
    );
}

/// What the tests of records too long to parse expect.
mod too_long_support {
    pub(super) const CAP: usize = 100;

    pub(super) fn ok(fields: &[&str]) -> Result<Vec<String>, String> {
        Ok(fields.iter().map(|f| (*f).to_owned()).collect())
    }

    pub(super) fn too_long_at(record: u64, line: u64, byte: u64) -> Result<Vec<String>, String> {
        Err(format!(
            "Decode r{:?} l{:?} b{:?} record is longer than the limit of {CAP} bytes",
            Some(record),
            Some(line),
            Some(byte)
        ))
    }

    pub(super) fn ragged_at(record: u64, line: u64, byte: u64) -> Result<Vec<String>, String> {
        Err(format!(
            "Decode r{:?} l{:?} b{:?} record has 1 fields, expected 2",
            Some(record),
            Some(line),
            Some(byte)
        ))
    }
}

/// Located records carry the position their errors would: the same whichever way the input is
/// read, past blank lines, CRLFs, quoted line ends and a record too long to parse.
#[test]
fn located_records_carry_their_position_every_way() {
    let long = "z".repeat(120_000);
    let text = format!("a,b\r\n1,x\r\n\r\n2,\"two\r\nlines\"\r\n{long},3\r\n4,y\n\n\n5,w");
    let read = |configure: &dyn Fn(CsvSource) -> CsvSource, chunk: usize| {
        let source = configure(CsvSource::new(Input::bytes(text.clone()).name("l.csv")))
            .max_record_len(100)
            .chunk_size(std::num::NonZeroUsize::new(chunk).unwrap());
        let got = runtime().block_on(items(source.deserialize_located::<Vec<String>>()));
        got.into_iter()
            .map(|item| match item {
                Ok(located) => {
                    let pos = located.position();
                    format!(
                        "{:?} r{:?} l{:?} b{:?}",
                        located.value(),
                        pos.record(),
                        pos.line(),
                        pos.byte()
                    )
                }
                Err(e) => {
                    let pos = e.position().unwrap();
                    format!(
                        "error r{:?} l{:?} b{:?}",
                        pos.record(),
                        pos.line(),
                        pos.byte()
                    )
                }
            })
            .collect::<Vec<_>>()
    };
    let expected = [
        r#"["1", "x"] rSome(0) lSome(2) bSome(5)"#.to_owned(),
        r#"["2", "two\r\nlines"] rSome(1) lSome(4) bSome(12)"#.to_owned(),
        "error rSome(2) lSome(6) bSome(28)".to_owned(),
        format!(
            r#"["4", "y"] rSome(3) lSome(7) bSome({})"#,
            28 + long.len() + 4
        ),
        format!(
            r#"["5", "w"] rSome(4) lSome(10) bSome({})"#,
            28 + long.len() + 4 + 6
        ),
    ];
    assert_eq!(
        read(&|s| s.comment(Some(b'#')), 4096),
        expected,
        "record by record"
    );
    for chunk in [7, 64, 4096] {
        for threads in 1..=3 {
            let threads = std::num::NonZeroUsize::new(threads).unwrap();
            assert_eq!(
                read(&|s| s.decode_threads(threads), chunk),
                expected,
                "runs of {chunk} bytes on {threads} threads"
            );
        }
    }
}

/// Fused stages: the `map`, `filter` and `filter_map` right after `deserialize` run on the
/// decoding threads, and give what the same closures give as plain stages.
mod fused {
    use std::collections::HashSet;
    use std::num::NonZeroUsize;
    use std::sync::{Arc, Mutex};
    use std::thread::ThreadId;
    use std::time::Duration;

    use futures_util::StreamExt as _;
    use proptest::prelude::*;
    use vortex_stream::io::Input;
    use vortex_stream::sources::{CsvSource, Headers};
    use vortex_stream::{ErrorKind, ErrorPolicy};

    use super::{items, outcome, runtime};

    fn source(text: &[u8], chunk: usize, threads: usize, comment: bool) -> CsvSource {
        let source = CsvSource::new(Input::bytes(text.to_vec()).name("p.csv"))
            .chunk_size(NonZeroUsize::new(chunk).unwrap())
            .decode_threads(NonZeroUsize::new(threads).unwrap());
        if comment {
            source.comment(Some(b'#'))
        } else {
            source
        }
    }

    fn fused(source: CsvSource) -> Vec<Result<String, String>> {
        let pipeline = counting_chain!(source.deserialize::<Vec<String>>(), Vec<String>);
        outcome(runtime().block_on(items(pipeline)))
    }

    fn plain(source: CsvSource) -> Vec<Result<String, String>> {
        let pipeline = counting_chain!(source.deserialize::<Vec<String>>().unfused(), Vec<String>);
        outcome(runtime().block_on(items(pipeline)))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever the runs, threads and way of reading, fused closures see the values in
        /// input order, once each, and the errors come out where they would.
        #[test]
        fn fused_stages_give_what_plain_stages_give(
            text in super::sparse_quotes::text(),
            chunk in 64usize..4096,
            threads in 1usize..4,
            comment: bool,
            headers in prop_oneof![Just(Headers::Use), Just(Headers::None)],
            flexible: bool,
        ) {
            let make = || source(&text, chunk, threads, comment).headers(headers).flexible(flexible);
            prop_assert_eq!(fused(make()), plain(make()));
        }

        /// A `par_map` after them runs on the decoding threads when they are no more than its
        /// limit (and as a stage of its own when they are), with the same outcome either way.
        #[test]
        fn a_fused_par_map_gives_what_a_plain_one_gives(
            text in super::sparse_quotes::text(),
            chunk in 64usize..4096,
            threads in 1usize..4,
            limit in 1usize..4,
            comment: bool,
        ) {
            let make = || source(&text, chunk, threads, comment).flexible(true);
            let digest = |record: Vec<String>| format!("{}:{}", record.len(), record.join("|"));
            let fused = make()
                .deserialize::<Vec<String>>()
                .filter(|record| record.len() != 2)
                .par_map(limit, digest);
            let plain = make()
                .deserialize::<Vec<String>>()
                .unfused()
                .filter(|record| record.len() != 2)
                .par_map(limit, digest);
            prop_assert_eq!(
                outcome(runtime().block_on(items(fused))),
                outcome(runtime().block_on(items(plain)))
            );
        }
    }

    #[test]
    fn a_fused_par_map_runs_on_the_decoding_threads_and_a_panic_costs_only_its_value() {
        let text = numbered(10_000);
        let here = std::thread::current().id();
        let ran: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
        let seen = Arc::clone(&ran);
        let got = runtime().block_on(items(
            source(&text, 1024, 2, false)
                .deserialize::<(u64, String)>()
                .par_map(2, move |(id, _)| {
                    seen.lock().unwrap().insert(std::thread::current().id());
                    assert!(id != 6_000, "no order 6000 here");
                    id
                }),
        ));
        let ran = ran.lock().unwrap();
        assert!(!ran.is_empty() && !ran.contains(&here), "{ran:?}");
        // As in a plain par_map: an error in the value's place, the rest all there, in order.
        assert_eq!(got.len(), 10_000);
        for (at, item) in got.iter().enumerate() {
            match item {
                Ok(id) => assert_eq!(*id, at as u64),
                Err(e) => {
                    assert_eq!(at, 6_000);
                    assert_eq!(e.kind(), ErrorKind::Internal);
                    assert!(e.to_string().contains("no order 6000 here"), "{e}");
                }
            }
        }
    }

    fn numbered(records: usize) -> Vec<u8> {
        let mut text = String::from("id,name\n");
        for id in 0..records {
            text.push_str(&format!("{id},\"name {id}, the {}\"\n", id % 7));
        }
        text.into_bytes()
    }

    #[test]
    fn fused_closures_run_on_the_decoding_threads_and_unfused_ones_where_polled() {
        let text = numbered(5_000);
        let here = std::thread::current().id();
        for (threads, comment) in [(2, false), (1, false), (2, true)] {
            let ran: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
            let seen = Arc::clone(&ran);
            let ids: Vec<u64> = runtime()
                .block_on(
                    source(&text, 1024, threads, comment)
                        .deserialize::<(u64, String)>()
                        .map(move |(id, _)| {
                            seen.lock().unwrap().insert(std::thread::current().id());
                            id
                        })
                        .collect(),
                )
                .unwrap();
            assert_eq!(ids, (0..5_000).collect::<Vec<_>>());
            let ran = ran.lock().unwrap();
            assert!(
                !ran.is_empty() && !ran.contains(&here),
                "{threads} {comment}: {ran:?}"
            );

            let ran: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
            let seen = Arc::clone(&ran);
            let count = runtime()
                .block_on(
                    source(&text, 1024, threads, comment)
                        .deserialize::<(u64, String)>()
                        .unfused()
                        .map(move |(id, _)| {
                            seen.lock().unwrap().insert(std::thread::current().id());
                            id
                        })
                        .count(),
                )
                .unwrap();
            assert_eq!(count, 5_000);
            assert_eq!(*ran.lock().unwrap(), HashSet::from([here]));
        }
    }

    #[test]
    fn a_panic_in_a_fused_closure_ends_the_stream_with_a_fatal_error_no_policy_skips() {
        let text = numbered(10_000);
        for (threads, comment) in [(2, false), (3, false), (1, false), (2, true)] {
            let pipeline = || {
                source(&text, 1024, threads, comment)
                    .deserialize::<(u64, String)>()
                    .map(|(id, _)| {
                        assert!(id != 6_000, "no order 6000 here");
                        id
                    })
            };
            let got = runtime().block_on(items(pipeline()));
            let (last, before) = got.split_last().unwrap();
            let err = last.as_ref().unwrap_err();
            assert!(err.is_fatal(), "{threads} {comment}: {err}");
            assert_eq!(err.kind(), ErrorKind::Internal);
            assert!(err.to_string().contains("panicked"), "{err}");
            // Every value before it, in order, none after it.
            let ids: Vec<u64> = before.iter().map(|item| *item.as_ref().unwrap()).collect();
            assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
            assert!(ids.len() <= 6_000);
            // A policy that skips bad records does not hide it.
            let skipped = runtime().block_on(pipeline().on_error(ErrorPolicy::skip()).count());
            assert!(skipped.unwrap_err().is_fatal(), "{threads} {comment}");
        }
    }

    #[tokio::test]
    async fn a_stage_added_after_the_first_poll_still_sees_every_value_after_it() {
        let text = numbered(3_000);
        let mut pipeline = source(&text, 512, 2, false).deserialize::<(u64, String)>();
        let first = pipeline.next().await.unwrap().unwrap();
        assert_eq!(first.0, 0);
        let rest: Vec<u64> = pipeline.map(|(id, _)| id * 2).collect().await.unwrap();
        assert_eq!(rest, (1..3_000).map(|id| id * 2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn stopping_early_leaves_no_worker_waiting_for_its_turn() {
        let text = numbered(40_000);
        let taken = tokio::time::timeout(Duration::from_secs(20), async {
            source(&text, 512, 3, false)
                .deserialize::<(u64, String)>()
                .filter(|(id, _)| id % 2 == 0)
                .map(|(id, _)| id)
                .take(3)
                .collect::<Vec<_>>()
                .await
        })
        .await
        .expect("the pipeline ends")
        .unwrap();
        assert_eq!(taken, [0, 2, 4]);
    }
}
