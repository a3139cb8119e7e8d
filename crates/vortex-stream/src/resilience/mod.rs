//! Surviving flaky dependencies: [`retry`](fn@retry), [`CircuitBreaker`], [`Bulkhead`], and
//! [`with_timeout`]; the stage forms are [`Pipeline::throttle`](crate::Pipeline::throttle) and
//! [`Pipeline::timeout`](crate::Pipeline::timeout).
//!
//! Time always comes from tokio, so tests can pause and advance it.
//!
//! Written here rather than taken from backon or governor: backon's final error does not say
//! how many attempts were made and it has no bound on the total time; governor's clock is not
//! tokio's, so paused-time tests cannot drive it. Each piece is small.

mod bulkhead;
pub mod circuit_breaker;
pub mod retry;
mod timeout;

pub use bulkhead::Bulkhead;
pub use circuit_breaker::CircuitBreaker;
pub use retry::{retry, retrying, ExponentialBackoff, RetryPolicy};
pub use timeout::with_timeout;
