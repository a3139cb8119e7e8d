//! The acknowledgement rules through every operator of `AckPipeline`, under random failures:
//! no message is acknowledged unless every output derived from it was committed, and after a
//! clean run none is left open. The "broker" is a ledger recording each verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use vortex_stream::ack::{AckLedger, Acked, Verdict};
use vortex_stream::{AckPipeline, Error, ErrorPolicy};

type Verdicts = Arc<Mutex<BTreeMap<u32, Verdict>>>;

/// Messages `0..n` as a source: each value is its message's number.
fn source(n: u32) -> (AckPipeline<u32>, Verdicts, AckLedger) {
    let ledger = AckLedger::new();
    let verdicts: Verdicts = Arc::default();
    let items: Vec<_> = (0..n)
        .map(|i| {
            let (settled, seen) = (ledger.clone(), Arc::clone(&verdicts));
            let ack = ledger.open(move |v| {
                assert!(seen.lock().unwrap().insert(i, v).is_none(), "settled twice");
                settled.settled(v, true);
            });
            Ok(Acked::new(i, ack, Some(Arc::from(format!("S:{i}")))))
        })
        .collect();
    let pipeline = AckPipeline::from_stream(futures_util::stream::iter(items), ledger.clone());
    (pipeline, verdicts, ledger)
}

#[derive(Debug, Clone)]
struct Case {
    n: u32,
    dropped: BTreeSet<u32>,
    fanout: Vec<u8>,
    bad: BTreeSet<u32>,
    chunk: usize,
    fail_batch: Option<usize>,
}

fn cases() -> impl Strategy<Value = Case> {
    (1u32..40).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::btree_set(0..n, 0..n as usize / 2 + 1),
            proptest::collection::vec(0u8..4, n as usize),
            proptest::collection::btree_set(0..n, 0..3),
            1usize..6,
            proptest::option::of(0usize..10),
        )
            .prop_map(|(n, dropped, fanout, bad, chunk, fail_batch)| Case {
                n,
                dropped,
                fanout,
                bad,
                chunk,
                fail_batch,
            })
    })
}

/// Outputs are (message, part); returns what was committed, the verdicts and the run's result.
/// What each consumer committed, each message's verdict, and whether the run was clean.
type Outcome = (Vec<BTreeSet<(u32, u8)>>, BTreeMap<u32, Verdict>, bool);

fn run(case: &Case, tee: bool) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (pipeline, verdicts, ledger) = source(case.n);
        let (dropped, fanout, bad) = (case.dropped.clone(), case.fanout.clone(), case.bad.clone());
        let staged = pipeline
            .filter(move |i| !dropped.contains(i))
            .try_map(move |i| {
                if bad.contains(&i) {
                    Err(format!("bad {i}"))
                } else {
                    Ok(i)
                }
            })
            .on_error(ErrorPolicy::skip())
            .flat_map(move |i| (0..fanout[i as usize]).map(move |j| (i, j)))
            .par_map_unordered(NonZeroUsize::new(2).unwrap(), |x| x)
            .partition_by(
                NonZeroUsize::new(2).unwrap(),
                |(i, _)| i % 3,
                |x| async move { Ok::<_, Error>(x) },
            );
        let consumers = if tee {
            staged.tee(NonZeroUsize::new(2).unwrap(), NonZeroUsize::new(4).unwrap())
        } else {
            vec![staged]
        };
        let size = NonZeroUsize::new(case.chunk).unwrap();
        let runs = consumers.into_iter().enumerate().map(|(c, consumer)| {
            let mut batch_no = 0;
            let fail_batch = case.fail_batch;
            async move {
                let store = Arc::new(Mutex::new(BTreeSet::new()));
                let kept = Arc::clone(&store);
                let result = consumer
                    .commit_batches(size, Duration::from_secs(5), move |batch| {
                        // Only the first consumer of a tee fails, so that the two disagree.
                        let fail = c == 0 && fail_batch == Some(batch_no);
                        batch_no += 1;
                        if !fail {
                            kept.lock().unwrap().extend(batch);
                        }
                        async move {
                            if fail {
                                Err("commit failed")
                            } else {
                                Ok(())
                            }
                        }
                    })
                    .await;
                let store = store.lock().unwrap().clone();
                (store, result.is_ok())
            }
        });
        let results = futures_util::future::join_all(runs).await;
        assert!(ledger.wait_settled(Duration::from_secs(5)).await);
        let clean = results.iter().all(|(_, ok)| *ok);
        let stores = results.into_iter().map(|(s, _)| s).collect();
        let verdicts = verdicts.lock().unwrap().clone();
        (stores, verdicts, clean)
    })
}

fn check(case: &Case, tee: bool) {
    let (stores, verdicts, clean) = run(case, tee);
    // Every message is settled once, at the end of any run, clean or not.
    assert_eq!(verdicts.len(), case.n as usize, "{verdicts:?}");
    for (&i, verdict) in &verdicts {
        let outputs: Vec<(u32, u8)> = (0..case.fanout[i as usize]).map(|j| (i, j)).collect();
        let skipped = case.bad.contains(&i) && !case.dropped.contains(&i);
        match verdict {
            Verdict::Ack => {
                assert!(!skipped, "message {i} was skipped, yet acknowledged");
                if !case.dropped.contains(&i) {
                    for store in &stores {
                        for output in &outputs {
                            assert!(
                                store.contains(output),
                                "message {i} acknowledged, {output:?} not committed"
                            );
                        }
                    }
                }
            }
            Verdict::Term => assert!(skipped, "message {i} terminated, yet not skipped"),
            Verdict::Nak(_) => assert!(!clean, "message {i} redelivered after a clean run"),
        }
    }
    if clean {
        assert!(
            verdicts
                .iter()
                .all(|(i, v)| *v == Verdict::Ack || case.bad.contains(i)),
            "{verdicts:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_message_is_acknowledged_before_all_its_outputs_are_committed(case in cases()) {
        check(&case, false);
    }

    #[test]
    fn through_a_tee_a_message_waits_for_every_consumer(case in cases()) {
        check(&case, true);
    }
}

#[tokio::test]
async fn a_clean_run_acknowledges_every_message_and_leaves_no_share_undecided() {
    let (pipeline, verdicts, _) = source(50);
    let report = pipeline
        .filter(|i| i % 5 != 0)
        .flat_map(|i| vec![i; (i % 3) as usize])
        .chunk(NonZeroUsize::new(7).unwrap())
        .par_map(NonZeroUsize::new(2).unwrap(), |batch| batch.len())
        .commit_each(|_| async { Ok::<_, Error>(()) })
        .await
        .unwrap();
    assert_eq!(
        (report.received, report.acked, report.open, report.undecided),
        (50, 50, 0, 0)
    );
    assert!(verdicts
        .lock()
        .unwrap()
        .values()
        .all(|v| *v == Verdict::Ack));
}

#[tokio::test]
async fn values_dropped_by_hand_are_counted_and_redelivered_never_acknowledged() {
    let (pipeline, verdicts, ledger) = source(10);
    // Leaving the guarantee on purpose and dropping the items undecided.
    let seen = pipeline.into_pipeline().take(4).count().await.unwrap();
    assert_eq!(seen, 4);
    assert!(ledger.wait_settled(Duration::from_secs(1)).await);
    let report = ledger.report();
    assert_eq!(
        report.undecided, 10,
        "the 4 taken and the 6 left in the source"
    );
    assert_eq!(report.acked, 0);
    assert!(verdicts
        .lock()
        .unwrap()
        .values()
        .all(|v| matches!(v, Verdict::Nak(None))));
}

#[tokio::test]
async fn a_failed_commit_fails_its_batch_with_the_delay_and_ends_the_run() {
    let (pipeline, verdicts, _) = source(6);
    let err = pipeline
        .nak_delay(Duration::from_millis(250))
        .commit_batches(
            NonZeroUsize::new(3).unwrap(),
            Duration::from_secs(1),
            |batch| async move {
                if batch.contains(&4) {
                    Err("disk full")
                } else {
                    Ok(())
                }
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.operation(), "commit");
    let verdicts = verdicts.lock().unwrap().clone();
    assert_eq!(verdicts[&0], Verdict::Ack);
    assert_eq!(verdicts[&4], Verdict::Nak(Some(Duration::from_millis(250))));
}

/// A load acknowledges exactly the messages whose rows a commit made durable.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_database_load_acknowledges_exactly_what_its_commits_hold() {
    use vortex_stream::db::{Database, Table, Value};

    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}", dir.path().join("t.db").display())).unwrap();
    db.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, CHECK (id <> 55))",
        vec![],
    )
    .await
    .unwrap();
    let (pipeline, verdicts, _) = source(100);
    let err = pipeline
        .map(|i| vec![Value::Int(i64::from(i))])
        .load(
            &db,
            Table::new("t", ["id"]).batch(NonZeroUsize::new(10).unwrap()),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CHECK"), "{err:#}");
    let stored: Vec<i64> = db
        .query("SELECT id FROM t ORDER BY id", vec![])
        .map(|row| match row.values()[0] {
            Value::Int(id) => id,
            ref other => panic!("{other:?}"),
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(stored, (0..50).collect::<Vec<_>>());
    let verdicts = verdicts.lock().unwrap().clone();
    assert_eq!(verdicts.len(), 100, "every message settled");
    for (i, verdict) in verdicts {
        let in_table = i < 50;
        assert_eq!(
            verdict == Verdict::Ack,
            in_table,
            "message {i}: {verdict:?}"
        );
    }
}
