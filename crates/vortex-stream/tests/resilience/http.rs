//! Retry, breaker, rate limit and timeouts against the fault server, through reqwest.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use vortex_stream::resilience::circuit_breaker::CircuitState;
use vortex_stream::resilience::{retrying, with_timeout, CircuitBreaker, ExponentialBackoff};
use vortex_stream::{Error, ErrorKind, Pipeline};

use crate::server::FaultServer;

/// A GET whose failures are vortex errors: transport failures and 5xx answers are `Http`.
async fn get(client: &reqwest::Client, url: String) -> vortex_stream::Result<String> {
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| Error::from_boxed(ErrorKind::Http, "GET", e.into()))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .text()
        .await
        .map_err(|e| Error::from_boxed(ErrorKind::Http, "GET", e.into()))?;
    if status.is_server_error() {
        let mut message = format!("{status}");
        if let Some(after) = retry_after {
            message.push_str(&format!("; retry-after {after}"));
        }
        return Err(Error::new(ErrorKind::Http, "GET").with_message(message));
    }
    Ok(body)
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn quick_policy() -> ExponentialBackoff {
    ExponentialBackoff::default()
        .base(Duration::from_millis(2))
        .max_attempts(5)
}

#[tokio::test]
async fn retry_recovers_exactly_the_failed_calls_in_order() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let base = server.url("");
    let call = move |i: u32| {
        let client = client.clone();
        let url = format!("{base}/fail?key=k{i}&n={}", i % 3);
        async move { get(&client, url).await }
    };
    let bodies = Pipeline::from_iter(0..24u32)
        .par_then(nz(6), retrying(quick_policy(), call))
        .collect::<Vec<_>>()
        .await
        .unwrap();
    for (i, body) in bodies.iter().enumerate() {
        let failures = i % 3;
        assert_eq!(
            body,
            &format!("200 after {}", failures + 1),
            "value {i} out of place"
        );
        assert_eq!(
            server.hits(&format!("k{i}")),
            u32::try_from(failures).unwrap() + 1
        );
    }
}

#[tokio::test]
async fn connection_resets_are_retried_too() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/reset?key=r&n=2");
    let body = vortex_stream::resilience::retry(&quick_policy(), || get(&client, url.clone()))
        .await
        .unwrap();
    assert_eq!(body, "200 after 3");
    assert_eq!(server.hits("r"), 3);
}

#[tokio::test]
async fn giving_up_says_how_many_attempts_and_keeps_the_cause() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/fail?key=g&n=99");
    let err = vortex_stream::resilience::retry(&quick_policy().max_attempts(3), || {
        get(&client, url.clone())
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Http);
    assert!(
        err.to_string().contains("gave up after 3 attempts"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(server.hits("g"), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/fail?key=ra&n=1&status=503");
    let policy = quick_policy().delay_hint(|err| {
        let after = err.message().split("retry-after ").nth(1)?;
        after.parse().ok().map(Duration::from_secs)
    });
    let started = Instant::now();
    let body = vortex_stream::resilience::retry(&policy, || get(&client, url.clone()))
        .await
        .unwrap();
    assert_eq!(body, "200 after 2");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let breaker = CircuitBreaker::new()
        .consecutive_failures(3)
        .open_for(Duration::from_millis(200));
    let url = server.url("/fail?key=b&n=4");
    let call = || breaker.call(get(&client, url.clone()));

    for _ in 0..3 {
        assert_eq!(call().await.unwrap_err().kind(), ErrorKind::Http);
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    for _ in 0..10 {
        assert_eq!(call().await.unwrap_err().kind(), ErrorKind::CircuitOpen);
    }
    assert_eq!(server.hits("b"), 3, "an open circuit sends nothing");

    tokio::time::sleep(Duration::from_millis(250)).await;
    // The probe meets the fourth failure: open again.
    assert_eq!(call().await.unwrap_err().kind(), ErrorKind::Http);
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(call().await.unwrap(), "200 after 5");
    assert_eq!(breaker.state(), CircuitState::Closed);
    let stats = breaker.stats();
    assert_eq!((stats.calls, stats.failures, stats.successes), (5, 4, 1));
    assert_eq!((stats.rejected, stats.opened, stats.closed), (10, 2, 1));
}

#[tokio::test]
async fn the_limiter_holds_the_rate() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/ok?key=rate");
    let started = Instant::now();
    let n = Pipeline::from_iter(0..25)
        .throttle(50, Duration::from_secs(1), 1)
        .par_then(nz(8), move |_| {
            let (client, url) = (client.clone(), url.clone());
            async move { get(&client, url).await }
        })
        .count()
        .await
        .unwrap();
    assert_eq!(n, 25);
    assert_eq!(server.hits("rate"), 25);
    // 25 requests at 50 per second: the first at once, the last 24 × 20 ms later.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(470), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn timeouts_fire_on_a_slow_answer() {
    let server = FaultServer::start().await;
    let client = reqwest::Client::new();
    let url = server.url("/slow?ms=3000");
    let started = Instant::now();
    let err = with_timeout("GET /slow", Duration::from_millis(100), get(&client, url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));

    // As a stage: the slow call's place gets a Timeout error item.
    let base = server.url("");
    let items = Pipeline::from_iter([10u64, 3000, 10])
        .par_then(nz(3), move |ms| {
            let client = reqwest::Client::new();
            let url = format!("{base}/slow?ms={ms}");
            with_timeout("GET /slow", Duration::from_millis(500), async move {
                get(&client, url).await
            })
        })
        .into_inner();
    let items: Vec<_> = futures_util::StreamExt::collect(items).await;
    assert!(items[0].is_ok() && items[2].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Timeout);
}
