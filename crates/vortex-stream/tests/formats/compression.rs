use vortex_stream::io::{Compression, Input, Output};
use vortex_stream::sinks::LinesSink;
use vortex_stream::sources::LinesSource;
use vortex_stream::Pipeline;

use crate::support::{items, values};

async fn round_trip(name: &str, compression: Compression, magic: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let lines: Vec<String> = (0..5000).map(|i| format!("line number {i}")).collect();
    let written = Pipeline::from_iter(lines.clone())
        .write(LinesSink, Output::path(&path))
        .await
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(written.rows, 5000);
    assert_eq!(written.bytes, bytes.len() as u64);
    assert!(
        bytes.starts_with(magic),
        "{name} should start with its magic bytes"
    );
    assert!(bytes.len() < 5000 * 10, "{name} should be compressed");

    // By extension...
    let back = values(items(LinesSource::new(Input::path(&path)).lines()).await);
    assert_eq!(back, lines);
    // ...and by magic bytes, with no name to go by.
    let back = values(items(LinesSource::new(Input::bytes(bytes.clone())).lines()).await);
    assert_eq!(back, lines);
    // ...or as told.
    let back =
        values(items(LinesSource::new(Input::bytes(bytes).compression(compression)).lines()).await);
    assert_eq!(back, lines);
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn gzip_round_trip() {
    round_trip("out.txt.gz", Compression::Gzip, &[0x1f, 0x8b]).await;
}

#[cfg(feature = "zstd")]
#[tokio::test]
async fn zstd_round_trip() {
    round_trip("out.txt.zst", Compression::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]).await;
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn compression_can_be_chosen_for_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-extension");
    Pipeline::from_iter(["a", "b"])
        .write(
            LinesSink,
            Output::path(&path).compression(Compression::Gzip),
        )
        .await
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(&[0x1f, 0x8b]));
    let back = values(items(LinesSource::new(Input::path(&path)).lines()).await);
    assert_eq!(back, ["a", "b"]);
}
