//! The breaker's state machine on tokio's paused clock.

use std::time::Duration;

use vortex_stream::resilience::circuit_breaker::{CircuitBreaker, CircuitState};
use vortex_stream::{Error, ErrorKind};

fn fail() -> vortex_stream::Result<()> {
    Err(Error::new(ErrorKind::Io, "dep").with_message("down"))
}

#[tokio::test(start_paused = true)]
async fn a_failure_rate_over_the_window_opens_it() {
    let breaker = CircuitBreaker::new()
        .consecutive_failures(100)
        .failure_rate(0.5, 10, 6);
    for i in 0..10 {
        let outcome = if i % 3 == 0 { fail() } else { Ok(()) };
        let _ = breaker.call(async { outcome }).await;
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "4 of 10 is under half"
    );
    for _ in 0..2 {
        let _ = breaker.call(async { fail() }).await;
    }
    assert_eq!(
        breaker.state(),
        CircuitState::Closed,
        "5 of the last 10 is not over half"
    );
    let _ = breaker.call(async { fail() }).await;
    assert_eq!(
        breaker.state(),
        CircuitState::Open,
        "6 of the last 10 failed"
    );
}

#[tokio::test(start_paused = true)]
async fn cancellations_do_not_count_as_failures() {
    let breaker = CircuitBreaker::new().consecutive_failures(2);
    for _ in 0..5 {
        let _ = breaker
            .call(async { Err::<(), _>(Error::new(ErrorKind::Cancelled, "client")) })
            .await;
        // A call dropped while running.
        let pending = breaker.call(futures_util::future::pending::<vortex_stream::Result<()>>());
        let _ = tokio::time::timeout(Duration::from_millis(1), pending).await;
    }
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(breaker.stats().failures, 0);
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_a_bounded_number_of_probes_through() {
    let breaker = CircuitBreaker::new()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(5))
        .probes(2)
        .close_after(2);
    let _ = breaker.call(async { fail() }).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let slow_probe = breaker.call(async {
        let _ = wait.await;
        Ok(())
    });
    let second = breaker.call(async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    });
    let third = async {
        tokio::task::yield_now().await;
        breaker.call(async { Ok(()) }).await
    };
    let release_later = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _ = release.send(());
    };
    let (a, b, c, ()) = tokio::join!(slow_probe, second, third, release_later);
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(
        c.unwrap_err().kind(),
        ErrorKind::CircuitOpen,
        "only two probes at once"
    );
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_call_does_not_wedge_it() {
    let breaker = CircuitBreaker::new()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1));
    let _ = breaker.call(async { fail() }).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    // The probe panics: it counts as a failure and gives its slot back.
    let probe = std::panic::AssertUnwindSafe(breaker.call(async {
        panic!("probe blew up");
        #[allow(unreachable_code)]
        Ok(())
    }));
    let caught = futures_util::FutureExt::catch_unwind(probe).await;
    assert!(caught.is_err());
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(
        breaker.call(async { Ok(()) }).await.is_ok(),
        "the next probe gets through"
    );
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn transitions_are_observable() {
    let breaker = CircuitBreaker::new()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1));
    let mut changes = breaker.subscribe();
    let shared = breaker.clone();
    let _ = shared.call(async { fail() }).await;
    changes.changed().await.unwrap();
    assert_eq!(*changes.borrow_and_update(), CircuitState::Open);
    tokio::time::advance(Duration::from_secs(1)).await;
    let _ = breaker.call(async { Ok(()) }).await;
    assert_eq!(*changes.borrow_and_update(), CircuitState::Closed);
    let stats = breaker.stats();
    assert_eq!((stats.opened, stats.half_opened, stats.closed), (1, 1, 1));
}
