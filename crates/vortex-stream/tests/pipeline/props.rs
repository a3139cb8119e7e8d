//! Property tests: every operator against the obvious eager `Vec` implementation, on random
//! inputs that include error items.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;

use crate::support::{nz, outcome, shown, source, In};

type Out<T> = Vec<Result<T, String>>;

fn input() -> impl Strategy<Value = Vec<In>> {
    let item = prop_oneof![
        6 => (-8i32..8).prop_map(Ok),
        1 => (0u8..10).prop_map(Err),
    ];
    prop::collection::vec(item, 0..40)
}

/// Applies `f` to values and passes errors, as most operators do.
fn per_value<T>(input: &[In], mut f: impl FnMut(i32, &mut Out<T>)) -> Out<T> {
    let mut out = Vec::new();
    for item in input {
        match *item {
            Ok(v) => f(v, &mut out),
            Err(code) => out.push(Err(shown(code))),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn map(input in input()) {
        prop_assert_eq!(outcome(source(&input).map(|v| v * 3)), per_value(&input, |v, out| out.push(Ok(v * 3))));
    }

    #[test]
    fn try_map(input in input()) {
        let got = outcome(source(&input).try_map(|v| if v % 3 == 0 { Err("div3") } else { Ok(v) }));
        let want = per_value(&input, |v, out| out.push(if v % 3 == 0 { Err("try_map: div3".into()) } else { Ok(v) }));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn filter_and_filter_map(input in input()) {
        prop_assert_eq!(
            outcome(source(&input).filter(|v| *v > 0)),
            per_value(&input, |v, out| if v > 0 { out.push(Ok(v)) })
        );
        prop_assert_eq!(
            outcome(source(&input).filter_map(|v| (v % 2 == 0).then_some(v / 2))),
            per_value(&input, |v, out| if v % 2 == 0 { out.push(Ok(v / 2)) })
        );
    }

    #[test]
    fn try_filter(input in input()) {
        let got = outcome(source(&input).try_filter(|v| if *v == 0 { Err("zero") } else { Ok(*v > 0) }));
        let want = per_value(&input, |v, out| match v {
            0 => out.push(Err("try_filter: zero".into())),
            v if v > 0 => out.push(Ok(v)),
            _ => {}
        });
        prop_assert_eq!(got, want);
    }

    #[test]
    fn flat_map(input in input()) {
        let got = outcome(source(&input).flat_map(|v| vec![v; usize::try_from(v.max(0) % 3).unwrap()]));
        let want = per_value(&input, |v, out| out.extend(std::iter::repeat_n(Ok(v), usize::try_from(v.max(0) % 3).unwrap())));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn take_and_skip(input in input(), n in 0usize..45) {
        let mut want = Vec::new();
        let mut taken = 0;
        if n > 0 {
            for item in &input {
                match *item {
                    Ok(v) => {
                        want.push(Ok(v));
                        taken += 1;
                        if taken == n { break; }
                    }
                    Err(code) => want.push(Err(shown(code))),
                }
            }
        }
        prop_assert_eq!(outcome(source(&input).take(n)), want);
        let mut skipped = 0;
        let want = per_value(&input, |v, out| if skipped < n { skipped += 1 } else { out.push(Ok(v)) });
        prop_assert_eq!(outcome(source(&input).skip(n)), want);
    }

    #[test]
    fn take_while_and_skip_while(input in input(), limit in -8i32..8) {
        let mut want = Vec::new();
        for item in &input {
            match *item {
                Ok(v) if v < limit => want.push(Ok(v)),
                Ok(_) => break,
                Err(code) => want.push(Err(shown(code))),
            }
        }
        prop_assert_eq!(outcome(source(&input).take_while(|v| *v < limit)), want);
        let mut skipping = true;
        let want = per_value(&input, |v, out| {
            if skipping && v < limit { return; }
            skipping = false;
            out.push(Ok(v));
        });
        prop_assert_eq!(outcome(source(&input).skip_while(|v| *v < limit)), want);
    }

    #[test]
    fn chunk(input in input(), size in 1usize..6) {
        let mut want: Out<Vec<i32>> = Vec::new();
        let mut current = Vec::new();
        for item in &input {
            match *item {
                Ok(v) => {
                    current.push(v);
                    if current.len() == size { want.push(Ok(std::mem::take(&mut current))); }
                }
                Err(code) => want.push(Err(shown(code))),
            }
        }
        if !current.is_empty() { want.push(Ok(current)); }
        prop_assert_eq!(outcome(source(&input).chunk(nz(size))), want);
    }

    #[test]
    fn chunk_then_flatten_is_identity(input in input(), size in 1usize..6) {
        let values = per_value(&input, |v, out| out.push(Ok(v)));
        let got = outcome(source(&input).chunk(nz(size)).flatten());
        let got_values: Vec<_> = got.iter().filter(|i| i.is_ok()).cloned().collect();
        let want_values: Vec<_> = values.iter().filter(|i| i.is_ok()).cloned().collect();
        prop_assert_eq!(got_values, want_values);
    }

    #[test]
    fn window(input in input(), size in 1usize..5) {
        let mut last = VecDeque::new();
        let want = per_value(&input, |v, out| {
            if last.len() == size { last.pop_front(); }
            last.push_back(v);
            if last.len() == size { out.push(Ok(last.iter().copied().collect::<Vec<_>>())); }
        });
        prop_assert_eq!(outcome(source(&input).window(nz(size))), want);
    }

    #[test]
    fn scan(input in input(), stop in 0i32..30) {
        let mut want = Vec::new();
        let mut sum = 0;
        for item in &input {
            match *item {
                Ok(v) => {
                    sum += v.abs();
                    if sum > stop { break; }
                    want.push(Ok(sum));
                }
                Err(code) => want.push(Err(shown(code))),
            }
        }
        let got = outcome(source(&input).scan(0, |sum, v| {
            *sum += v.abs();
            (*sum <= stop).then_some(*sum)
        }));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn enumerate_and_inspect(input in input()) {
        let mut index = 0u64;
        let want = per_value(&input, |v, out| { out.push(Ok((index, v))); index += 1; });
        prop_assert_eq!(outcome(source(&input).enumerate()), want);
        let mut seen = Vec::new();
        let got = outcome(source(&input).inspect(|v| seen.push(*v)));
        prop_assert_eq!(got, per_value(&input, |v, out| out.push(Ok(v))));
        prop_assert_eq!(seen, input.iter().filter_map(|i| i.ok()).collect::<Vec<_>>());
    }

    #[test]
    fn chain(a in input(), b in input()) {
        let mut want = per_value(&a, |v, out| out.push(Ok(v)));
        want.extend(per_value(&b, |v, out| out.push(Ok(v))));
        prop_assert_eq!(outcome(source(&a).chain(source(&b))), want);
    }

    #[test]
    fn zip(a in input(), b in input()) {
        let mut want = Vec::new();
        let (mut left, mut right) = (a.iter(), b.iter());
        'outer: loop {
            let l = loop {
                match left.next() {
                    Some(Ok(v)) => break *v,
                    Some(Err(code)) => want.push(Err(shown(*code))),
                    None => break 'outer,
                }
            };
            loop {
                match right.next() {
                    Some(Ok(r)) => { want.push(Ok((l, *r))); break; }
                    Some(Err(code)) => want.push(Err(shown(*code))),
                    None => break 'outer,
                }
            }
        }
        prop_assert_eq!(outcome(source(&a).zip(source(&b))), want);
    }

    #[test]
    fn merge_keeps_every_item_and_each_inputs_order(a in input(), b in input()) {
        let tag = |input: &[In], side: i32| -> Vec<In> {
            input.iter().map(|i| i.map(|v| v * 10 + side.signum() * (side.abs()))).collect()
        };
        let (a, b) = (tag(&a, 1), tag(&b, 2));
        let got = outcome(source(&a).merge(source(&b)));
        prop_assert_eq!(got.len(), a.len() + b.len());
        let side = |want: i32| -> Vec<i32> {
            got.iter().filter_map(|i| i.as_ref().ok()).copied().filter(|v| v.rem_euclid(10) == want % 10).collect()
        };
        let only = |input: &[In]| -> Vec<i32> { input.iter().filter_map(|i| i.ok()).collect() };
        prop_assert_eq!(side(1), only(&a).into_iter().filter(|v| v.rem_euclid(10) == 1).collect::<Vec<_>>());
        prop_assert_eq!(side(2), only(&b).into_iter().filter(|v| v.rem_euclid(10) == 2).collect::<Vec<_>>());
    }

    #[test]
    fn dedup(input in input()) {
        let mut last = None;
        let want = per_value(&input, |v, out| if last != Some(v) { last = Some(v); out.push(Ok(v)); });
        prop_assert_eq!(outcome(source(&input).dedup()), want);
    }

    #[test]
    fn group_by_key(input in input(), max in 1usize..4) {
        let mut want: Out<(i32, Vec<i32>)> = Vec::new();
        let mut group: Option<(i32, Vec<i32>)> = None;
        for item in &input {
            match *item {
                Ok(v) => {
                    let key = v.rem_euclid(3);
                    match &mut group {
                        Some((k, items)) if *k == key && items.len() < max => items.push(v),
                        _ => if let Some(done) = group.replace((key, vec![v])) { want.push(Ok(done)); },
                    }
                }
                Err(code) => want.push(Err(shown(code))),
            }
        }
        if let Some(done) = group { want.push(Ok(done)); }
        prop_assert_eq!(outcome(source(&input).group_by_key(nz(max), |v| v.rem_euclid(3))), want);
    }

    #[test]
    fn distinct(input in input(), capacity in 1usize..12) {
        let mut seen = HashSet::new();
        let mut want = Vec::new();
        for (index, item) in input.iter().enumerate() {
            match *item {
                Ok(v) if seen.contains(&v) => {}
                Ok(_) if seen.len() >= capacity => want.push(Err(format!(
                    "distinct: record {index}: {capacity} distinct keys already held, the capacity given: cannot tell whether this record is new"
                ))),
                Ok(v) => { seen.insert(v); want.push(Ok(v)); }
                Err(code) => want.push(Err(shown(code))),
            }
        }
        prop_assert_eq!(outcome(source(&input).distinct(nz(capacity))), want);
    }

    #[test]
    fn validate(input in input()) {
        let want: Out<i32> = input.iter().enumerate().map(|(index, item)| match *item {
            Ok(v) if v < 0 => Err(format!("validate: record {index}: negative")),
            Ok(v) => Ok(v),
            Err(code) => Err(shown(code)),
        }).collect();
        prop_assert_eq!(outcome(source(&input).validate(|v| if *v < 0 { Err("negative") } else { Ok(()) })), want);
    }

    #[test]
    fn skip_policy_keeps_exactly_the_values(input in input()) {
        let policy = vortex_stream::ErrorPolicy::skip();
        let got = outcome(source(&input).on_error(policy.clone()));
        let want: Out<i32> = input.iter().filter_map(|i| i.ok()).map(Ok).collect();
        prop_assert_eq!(got, want);
        let report = policy.report();
        let errors = input.iter().filter(|i| i.is_err()).count() as u64;
        prop_assert_eq!(report.skipped(), errors);
        prop_assert_eq!(report.items_in(), input.len() as u64);
        prop_assert_eq!(report.items_out(), input.len() as u64 - errors);
    }

    #[test]
    fn then_and_try_then_match_map_and_try_map(input in input()) {
        let got = outcome(source(&input).then(|v| async move { v * 3 }));
        prop_assert_eq!(got, per_value(&input, |v, out| out.push(Ok(v * 3))));
        let got = outcome(source(&input).try_then(|v| async move { if v % 3 == 0 { Err("div3") } else { Ok(v) } }));
        let want = per_value(&input, |v, out| out.push(if v % 3 == 0 { Err("try_then: div3".into()) } else { Ok(v) }));
        prop_assert_eq!(got, want);
    }

    #[test]
    fn merge_all_keeps_every_item_and_each_inputs_order(a in input(), b in input(), c in input()) {
        let inputs = [&a, &b, &c];
        let tagged: Vec<Vec<In>> = inputs
            .iter()
            .enumerate()
            .map(|(side, input)| input.iter().map(|i| i.map(|v| v * 10 + (side as i32 + 1) * v.signum().max(1))).collect())
            .collect();
        let got = outcome(vortex_stream::Pipeline::merge_all(tagged.iter().map(|t| source(t))));
        prop_assert_eq!(got.len(), a.len() + b.len() + c.len());
        for (side, input) in tagged.iter().enumerate() {
            let want: Vec<i32> = input.iter().filter_map(|i| i.ok()).collect();
            let mine: Vec<i32> = got
                .iter()
                .filter_map(|i| i.as_ref().ok())
                .copied()
                .filter(|v| want.contains(v))
                .collect();
            // Values of other inputs may coincide; the input's own sequence must appear in order.
            let mut rest = mine.iter();
            prop_assert!(want.iter().all(|w| rest.any(|m| m == w)), "input {} out of order", side);
        }
    }
}
