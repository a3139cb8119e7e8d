//! Error policies: fail fast, skip, dead-letter, error budgets, and the run report.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use vortex_stream::{Error, ErrorKind, ErrorPolicy, Pipeline, Position};

use crate::support::{outcome, shown, source};

#[test]
fn fail_fast_passes_the_first_error_and_ends() {
    let policy = ErrorPolicy::fail_fast();
    let out = outcome(source(&[Ok(1), Err(2), Ok(3), Err(4)]).on_error(policy.clone()));
    assert_eq!(out, [Ok(1), Err(shown(2))]);
    let report = policy.report();
    assert_eq!((report.items_in(), report.items_out()), (2, 1));
    assert_eq!(report.errors(ErrorKind::Decode), 1);
}

#[test]
fn skip_drops_and_counts_errors_by_kind() {
    let policy = ErrorPolicy::skip();
    let out = outcome(
        source(&[Ok(1), Err(2), Ok(-3), Ok(4)])
            .validate(|n| if *n > 0 { Ok(()) } else { Err("not positive") })
            .on_error(policy.clone()),
    );
    assert_eq!(out, [Ok(1), Ok(4)]);
    let report = policy.report();
    assert_eq!(report.items_in(), 4);
    assert_eq!(report.items_out(), 2);
    assert_eq!(report.skipped(), 2);
    assert_eq!(report.errors(ErrorKind::Decode), 1);
    assert_eq!(report.errors(ErrorKind::Validation), 1);
    assert_eq!(report.errors_total(), 2);
    assert_eq!(
        report.to_string(),
        "4 in, 2 out, 2 errors (decode: 1, validation: 1), 2 skipped, 0 dead-lettered"
    );
}

#[tokio::test]
async fn dead_letter_routes_each_error_with_its_position() {
    // A channel with room for one: the pipeline waits for the consumer of dead letters.
    let (tx, rx) = futures_channel::mpsc::channel::<Error>(0);
    let policy = ErrorPolicy::dead_letter(tx);
    let run = Pipeline::from_iter(["1", "x", "3", "y"])
        .enumerate()
        .try_map(|(line, s)| {
            s.parse::<u32>().map_err(|e| {
                Error::from_user("parse", e).with_position(Position::new().with_line(line + 1))
            })
        })
        .on_error(policy.clone())
        .collect::<Vec<_>>();
    let (good, dead) = tokio::join!(run, rx.take(2).collect::<Vec<_>>());
    assert_eq!(good.unwrap(), [1, 3]);
    let lines: Vec<_> = dead
        .iter()
        .map(|e| e.position().and_then(Position::line))
        .collect();
    assert_eq!(lines, [Some(2), Some(4)]);
    assert_eq!(
        dead[0].to_string(),
        "parse: line 2: invalid digit found in string"
    );
    assert_eq!(policy.report().dead_lettered(), 2);
}

#[tokio::test]
async fn dead_letter_sink_receives_every_error() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen2 = seen.clone();
    let sink = futures_util::sink::unfold((), move |(), err: Error| {
        let seen = seen2.clone();
        async move {
            seen.lock().unwrap().push(format!(
                "{}@{}",
                err.message(),
                err.position().and_then(Position::record).unwrap_or(99)
            ));
            Ok::<_, Error>(())
        }
    });
    let policy = ErrorPolicy::dead_letter(sink);
    let good = source(&[Ok(1), Ok(-1), Err(5), Ok(2)])
        .validate(|n| if *n > 0 { Ok(()) } else { Err("negative") })
        .on_error(policy.clone())
        .collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(good, [1, 2]);
    assert_eq!(*seen.lock().unwrap(), ["negative@1", "bad 5@99"]);
    let report = policy.report();
    assert_eq!((report.dead_lettered(), report.skipped()), (2, 0));
}

#[tokio::test]
async fn a_failing_dead_letter_sink_stops_the_pipeline() {
    let sink = futures_util::sink::unfold((), |(), _err: Error| async {
        Err::<(), _>(std::io::Error::other("disk full"))
    });
    let err = source(&[Ok(1), Err(1), Ok(2)])
        .on_error(ErrorPolicy::dead_letter(sink))
        .count()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.operation(), "dead-letter sink");
}

#[test]
fn an_error_count_budget_fails_on_the_first_error_past_it() {
    let policy = ErrorPolicy::skip().max_errors(2);
    let out =
        outcome(source(&[Err(1), Ok(1), Err(2), Ok(2), Err(3), Ok(3)]).on_error(policy.clone()));
    assert_eq!(out.len(), 3);
    assert_eq!(out[..2], [Ok(1), Ok(2)]);
    let last = out[2].clone().unwrap_err();
    assert_eq!(
        last,
        "on_error: error budget exceeded: 3 errors, at most 2 allowed"
    );
    assert_eq!(policy.report().skipped(), 2);
}

#[test]
fn an_error_rate_budget_is_checked_after_min_items_and_at_the_end() {
    // 1 error in 10 items is 10%: over a 5% budget, but only judged from 20 items on...
    let mut input: Vec<_> = (0..9).map(Ok).collect();
    input.push(Err(1));
    let out = outcome(source(&input).on_error(ErrorPolicy::skip().max_error_rate(0.05, 20)));
    // ...or at the end, which comes first here.
    assert_eq!(out.len(), 10);
    assert!(out[9]
        .clone()
        .unwrap_err()
        .contains("1 of 10 items failed (10.00%)"));
    // Within budget: the run ends cleanly.
    let mut input: Vec<_> = (0..99).map(Ok).collect();
    input.push(Err(1));
    let out = outcome(source(&input).on_error(ErrorPolicy::skip().max_error_rate(0.05, 20)));
    assert_eq!(out.len(), 99);
    assert!(out.iter().all(Result::is_ok));
}

#[test]
fn a_budget_error_keeps_the_last_error_as_its_source() {
    let err = futures_executor::block_on(
        source(&[Err(1), Err(2)])
            .on_error(ErrorPolicy::skip().max_errors(1))
            .drain(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Capacity);
    let cause = std::error::Error::source(&err).unwrap();
    assert_eq!(cause.to_string(), shown(2));
}

#[test]
fn an_error_rate_that_is_no_fraction_is_refused_at_once() {
    for rate in [f64::NAN, -0.1, 1.5, f64::INFINITY] {
        let refused = std::panic::catch_unwind(|| ErrorPolicy::skip().max_error_rate(rate, 10));
        let message = refused.expect_err("accepted").downcast::<String>().unwrap();
        assert!(message.contains("fraction from 0 to 1"), "{message}");
    }
    for rate in [0.0, 0.5, 1.0] {
        let _ = ErrorPolicy::skip().max_error_rate(rate, 10);
    }
}
