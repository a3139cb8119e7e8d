//! Building a pipeline does nothing: every adapter wraps a source that panics when polled,
//! and is dropped without being polled.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vortex_stream::{ErrorPolicy, Pipeline};

use crate::support::{nz, PanicOnPoll};

fn src() -> Pipeline<PanicOnPoll<i32>> {
    PanicOnPoll::pipeline()
}

#[test]
fn every_adapter_is_lazy() {
    // No runtime here: an adapter that needed one at construction would panic too.
    let _ = src().map(|n| n + 1);
    let _ = src().try_map(Ok::<_, vortex_stream::Error>);
    let _ = src().then(|n| async move { n });
    let _ = src().try_then(|n| async move { Ok::<_, vortex_stream::Error>(n) });
    let _ = src().filter(|_| true);
    let _ = src().try_filter(|_| Ok::<_, vortex_stream::Error>(true));
    let _ = src().filter_map(Some);
    let _ = src().flat_map(|n| [n]);
    let _ = PanicOnPoll::<Vec<i32>>::pipeline().flatten();
    let _ = src().take(3);
    let _ = src().take_while(|_| true);
    let _ = src().skip(3);
    let _ = src().skip_while(|_| true);
    let _ = src().chunk(nz(3));
    let _ = src().chunk_timeout(nz(3), Duration::from_secs(1));
    let _ = src().window(nz(3));
    let _ = src().scan(0, |_, n| Some(n));
    let _ = src().inspect(|_| {});
    let _ = src().enumerate();
    let _ = src().chain(src());
    let _ = src().zip(src());
    let _ = src().merge(src());
    let _ = Pipeline::merge_all([src(), src()]);
    let _ = src().dedup();
    let _ = src().group_by_key(nz(3), |n| *n);
    let _ = src().distinct(nz(3));
    let _ = src().distinct_by(nz(3), |n| *n);
    let _ = src().validate(|_| Ok::<_, vortex_stream::Error>(()));
    let _ = src().validate_or_else(|_| Ok::<_, vortex_stream::Error>(()), |_, _| {});
    let _ = src().on_error(ErrorPolicy::skip());
    let _ = src().cancel_on(CancellationToken::new());
    let _ = src().deadline(tokio::time::Instant::now());
    let _ = src().boxed();
    let _ = src().tee(nz(2), nz(2));
    let _ = src().partition_by(
        nz(2),
        |n| *n,
        |n| async move { Ok::<_, vortex_stream::Error>(n) },
    );
    let _ = src().batch_map(nz(2), |b: Vec<i32>| async move {
        Ok::<_, vortex_stream::Error>(b)
    });
    let _ = src().throttle(1, Duration::from_secs(1), 1);
    let _ = src().timeout(Duration::from_secs(1));
    let _ = src().par_map(nz(2), |n| n);
    let _ = src().par_map_unordered(nz(2), |n| n);
    let _ = src().par_then(nz(2), |n| async move { Ok::<_, vortex_stream::Error>(n) });
    let _ = src().par_then_unordered(nz(2), |n| async move { Ok::<_, vortex_stream::Error>(n) });
}

#[test]
fn sources_do_nothing_until_polled() {
    let _ = Pipeline::generate(|mut y| async move {
        y.emit(1).await;
        panic!("the generator ran before being polled");
    });
    let _ = Pipeline::from_blocking_iter(
        std::iter::from_fn(|| -> Option<vortex_stream::Result<i32>> {
            panic!("the iterator ran before being polled")
        }),
        nz(4),
    );
    let _ = Pipeline::unfold(0, |_: i32| async {
        panic!("unfold ran before being polled") as Option<(vortex_stream::Result<i32>, i32)>
    });
}
