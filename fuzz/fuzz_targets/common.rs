//! Shared by the fuzz targets: one runtime, and the checks every decoder must pass.

use std::sync::OnceLock;

use futures_util::StreamExt;
use vortex_stream::Result;

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime for the fuzz target")
    })
}

/// Every item of a pipeline.
#[allow(dead_code)]
pub fn collect<S, T>(stream: S) -> Vec<Result<T>>
where
    S: futures_util::Stream<Item = Result<T>>,
{
    runtime().block_on(stream.collect())
}

/// Drives a pipeline to its end; every error must say where it is.
pub fn drain<S, T>(stream: S) -> usize
where
    S: futures_util::Stream<Item = Result<T>>,
{
    let items: Vec<Result<T>> = runtime().block_on(stream.collect());
    for item in &items {
        if let Err(err) = item {
            let position = err.position().expect("a decode error names its position");
            assert!(
                position.line().is_some() || position.byte().is_some(),
                "no line or byte in {err}"
            );
        }
    }
    items.len()
}

/// A reader that hands over at most `step` bytes a read, so that a source reading it cuts its
/// input as the bytes arrive, many times, not once for all of it.
#[allow(dead_code)]
pub struct Trickle {
    pub bytes: Vec<u8>,
    pub at: usize,
    pub step: usize,
}

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.bytes[self.at..];
        let n = rest.len().min(self.step.max(1)).min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}
