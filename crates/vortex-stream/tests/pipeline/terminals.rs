//! Terminals: results, and the stop at the first error.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;
use vortex_stream::{Error, ErrorKind};

use crate::support::{shown, source, Pulls};

fn run<T>(fut: impl std::future::Future<Output = T>) -> T {
    futures_executor::block_on(fut)
}

#[test]
fn terminals_compute_their_results() {
    assert_eq!(run(source(&[Ok(1), Ok(2), Ok(3)]).count()).unwrap(), 3);
    assert_eq!(
        run(source(&[Ok(1), Ok(2), Ok(3)]).fold(10, |a, b| a + b)).unwrap(),
        16
    );
    assert_eq!(
        run(source(&[Ok(4), Ok(9), Ok(2)]).reduce(i32::max)).unwrap(),
        Some(9)
    );
    assert_eq!(run(source(&[]).reduce(i32::max)).unwrap(), None);
    assert_eq!(run(source(&[Ok(4), Ok(9)]).first()).unwrap(), Some(4));
    assert_eq!(run(source(&[Ok(4), Ok(9)]).last()).unwrap(), Some(9));
    assert_eq!(run(source(&[]).last()).unwrap(), None);
    assert!(run(source(&[Ok(1), Ok(2)]).all(|n| *n > 0)).unwrap());
    assert!(!run(source(&[Ok(1), Ok(2)]).any(|n| *n > 5)).unwrap());
    assert!(!run(source(&[Ok(1)]).contains(&2)).unwrap());
    let mut seen = Vec::new();
    run(source(&[Ok(1), Ok(2)]).for_each(|n| seen.push(n))).unwrap();
    assert_eq!(seen, [1, 2]);
    let set: std::collections::BTreeSet<i32> =
        run(source(&[Ok(2), Ok(1), Ok(2)]).collect()).unwrap();
    assert_eq!(set.into_iter().collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn every_terminal_stops_at_the_first_error() {
    let input = [Ok(1), Err(5), Ok(2)];
    let expect = shown(5);
    assert_eq!(run(source(&input).count()).unwrap_err().to_string(), expect);
    assert_eq!(run(source(&input).drain()).unwrap_err().to_string(), expect);
    assert_eq!(
        run(source(&input).fold(0, |a, b| a + b))
            .unwrap_err()
            .to_string(),
        expect
    );
    assert_eq!(
        run(source(&input).reduce(i32::max))
            .unwrap_err()
            .to_string(),
        expect
    );
    assert_eq!(run(source(&input).last()).unwrap_err().to_string(), expect);
    assert_eq!(
        run(source(&input).any(|n| *n == 2))
            .unwrap_err()
            .to_string(),
        expect
    );
    assert_eq!(
        run(source(&input).all(|n| *n > 0)).unwrap_err().to_string(),
        expect
    );
    assert_eq!(
        run(source(&input).contains(&2)).unwrap_err().to_string(),
        expect
    );
    assert_eq!(
        run(source(&input).collect::<Vec<_>>())
            .unwrap_err()
            .to_string(),
        expect
    );
    assert_eq!(
        run(source(&[Err(5)]).first()).unwrap_err().to_string(),
        expect
    );
    let mut seen = Vec::new();
    let err = run(source(&input).for_each(|n| seen.push(n))).unwrap_err();
    assert_eq!((err.to_string(), seen), (expect, vec![1]));
}

#[test]
fn try_for_each_stops_at_the_closures_error() {
    let pulls = Pulls::default();
    let err = run(pulls
        .endless()
        .try_for_each(|n| if n == 4 { Err("four") } else { Ok(()) }))
    .unwrap_err();
    assert_eq!(err.to_string(), "try_for_each: four");
    assert_eq!(pulls.get(), 5);
}

/// A sink that records what it got, fails on demand and records whether it was closed.
#[derive(Default)]
struct Recorder {
    got: Vec<i32>,
    fail_on: Option<i32>,
    closed: bool,
}

impl Sink<i32> for &mut Recorder {
    type Error = std::io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: i32) -> Result<(), Self::Error> {
        if self.fail_on == Some(item) {
            return Err(std::io::Error::other("sink refused"));
        }
        self.get_mut().got.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().closed = true;
        Poll::Ready(Ok(()))
    }
}

#[test]
fn into_sink_sends_every_value_then_closes() {
    let mut sink = Recorder::default();
    assert_eq!(
        run(source(&[Ok(1), Ok(2)]).into_sink(&mut sink)).unwrap(),
        2
    );
    assert_eq!(sink.got, [1, 2]);
    assert!(sink.closed);
}

#[test]
fn into_sink_does_not_close_on_an_error() {
    let mut sink = Recorder::default();
    let err = run(source(&[Ok(1), Err(3), Ok(2)]).into_sink(&mut sink)).unwrap_err();
    assert_eq!(err.to_string(), shown(3));
    assert_eq!(sink.got, [1]);
    assert!(!sink.closed, "a failed run must not finish the output");

    let mut sink = Recorder {
        fail_on: Some(2),
        ..Recorder::default()
    };
    let err: Error = run(source(&[Ok(1), Ok(2), Ok(3)]).into_sink(&mut sink)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.to_string(), "sink: sink refused");
    assert!(!sink.closed);
}
