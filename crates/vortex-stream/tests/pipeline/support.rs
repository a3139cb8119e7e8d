//! Helpers shared by the pipeline tests.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use vortex_stream::{Error, ErrorKind, Pipeline, Result};

/// A test input item: a value, or an error with a code.
pub(crate) type In = std::result::Result<i32, u8>;

/// The error a test source yields for code `code`.
pub(crate) fn source_error(code: u8) -> Error {
    Error::new(ErrorKind::Decode, "test source").with_message(format!("bad {code}"))
}

/// How `source_error(code)` displays.
pub(crate) fn shown(code: u8) -> String {
    format!("test source: bad {code}")
}

/// The pipeline items for a test input.
pub(crate) fn items(input: &[In]) -> Vec<Result<i32>> {
    input
        .iter()
        .map(|item| item.map_err(source_error))
        .collect()
}

/// A pipeline over a test input.
pub(crate) fn source(input: &[In]) -> Pipeline<impl Stream<Item = Result<i32>>> {
    Pipeline::from_results(items(input))
}

/// Every item of a stream, errors included, with errors as their display text.
pub(crate) fn outcome<S, T>(stream: S) -> Vec<std::result::Result<T, String>>
where
    S: Stream<Item = Result<T>>,
{
    futures_executor::block_on(StreamExt::collect::<Vec<_>>(stream))
        .into_iter()
        .map(|item| item.map_err(|e| e.to_string()))
        .collect()
}

/// A counter of how many values a source handed out.
#[derive(Clone, Default)]
pub(crate) struct Pulls(Arc<AtomicUsize>);

impl Pulls {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// An endless source of 0, 1, 2, ... that counts each value pulled.
    pub(crate) fn endless(&self) -> Pipeline<impl Stream<Item = Result<u64>>> {
        let pulls = self.0.clone();
        Pipeline::from_iter((0..).inspect(move |_| {
            pulls.fetch_add(1, Ordering::SeqCst);
        }))
    }
}

/// A flag set when the value holding it is dropped.
#[derive(Clone, Default)]
pub(crate) struct Dropped(Arc<AtomicBool>);

pub(crate) struct DropGuard(Arc<AtomicBool>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Dropped {
    pub(crate) fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An endless source that sets the flag when dropped.
    pub(crate) fn endless(&self) -> Pipeline<impl Stream<Item = Result<u64>> + Send + 'static> {
        let guard = self.guard();
        Pipeline::from_iter((0..).inspect(move |_| {
            let _held = &guard;
        }))
    }
}

/// A stream that panics if it is ever polled: wrapping it must not poll it.
pub(crate) struct PanicOnPoll<T>(PhantomData<T>);

impl<T> PanicOnPoll<T> {
    pub(crate) fn pipeline() -> Pipeline<Self> {
        Pipeline::from_stream(PanicOnPoll(PhantomData))
    }
}

impl<T> Stream for PanicOnPoll<T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        panic!("a lazy adapter polled its source before being polled itself")
    }
}

/// Spins for `d`: busy time, on this thread (a sleep of a few microseconds lasts far longer).
pub(crate) fn spin(d: std::time::Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Asserts that `items` are the values `0..items.len()` in order, but for an `Internal` error
/// (a panic in a stage's closure) in the place of value `panicked`.
pub(crate) fn assert_in_order_but_a_panic_at(items: &[Result<u64>], panicked: usize) {
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(v) => assert_eq!(*v, i as u64),
            Err(err) => {
                assert_eq!(i, panicked);
                assert_eq!(err.kind(), ErrorKind::Internal);
            }
        }
    }
    assert!(items[panicked].is_err());
}

pub(crate) fn nz(n: usize) -> std::num::NonZeroUsize {
    std::num::NonZeroUsize::new(n).expect("test sizes are positive")
}
