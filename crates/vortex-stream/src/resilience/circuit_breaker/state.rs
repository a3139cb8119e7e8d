//! The breaker's state machine, private: observers see [`CircuitState`].

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::{CircuitState, Config, Outcome};

/// What a call was let through as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    Normal,
    Probe,
}

pub(crate) enum State {
    Closed {
        in_a_row: u32,
        /// The last calls' outcomes, `true` for a failure.
        window: VecDeque<bool>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        in_flight: u32,
        successes: u32,
    },
}

impl State {
    pub(crate) fn closed() -> State {
        State::Closed {
            in_a_row: 0,
            window: VecDeque::new(),
        }
    }

    /// The state as it stands at `now` (an open circuit whose time is up is half-open).
    pub(crate) fn public(&self, now: Instant) -> CircuitState {
        match self {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if now >= *until => CircuitState::HalfOpen,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// The state as stored, before an open circuit's time is found to be up.
    pub(crate) fn raw(&self) -> CircuitState {
        match self {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// A permit, or the wait until the next probe (`None`: half-open and full).
    pub(crate) fn acquire(
        &mut self,
        now: Instant,
        config: &Config,
    ) -> Result<Permit, Option<Duration>> {
        if let State::Open { until } = *self {
            if now < until {
                return Err(Some(until - now));
            }
            *self = State::HalfOpen {
                in_flight: 0,
                successes: 0,
            };
        }
        match self {
            State::Closed { .. } => Ok(Permit::Normal),
            State::HalfOpen { in_flight, .. } if *in_flight < config.probes => {
                *in_flight += 1;
                Ok(Permit::Probe)
            }
            State::HalfOpen { .. } => Err(None),
            State::Open { .. } => Err(None),
        }
    }

    pub(crate) fn record(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        now: Instant,
        config: &Config,
    ) {
        let open = State::Open {
            until: now + config.open_for,
        };
        let next = match (&mut *self, permit) {
            (State::Closed { in_a_row, window }, Permit::Normal) => {
                if outcome == Outcome::Ignored {
                    return;
                }
                let failed = outcome == Outcome::Failure;
                *in_a_row = if failed { *in_a_row + 1 } else { 0 };
                if let Some((_, size, _)) = config.failure_rate {
                    window.push_back(failed);
                    while window.len() > size {
                        window.pop_front();
                    }
                }
                trips(*in_a_row, window, config).then_some(open)
            }
            (
                State::HalfOpen {
                    in_flight,
                    successes,
                },
                Permit::Probe,
            ) => {
                *in_flight = in_flight.saturating_sub(1);
                match outcome {
                    Outcome::Ignored => None,
                    Outcome::Success => {
                        *successes += 1;
                        (*successes >= config.close_after).then(State::closed)
                    }
                    Outcome::Failure => Some(open),
                }
            }
            // A call let through before the state changed: counted in the stats only.
            _ => None,
        };
        if let Some(next) = next {
            *self = next;
        }
    }
}

fn trips(in_a_row: u32, window: &VecDeque<bool>, config: &Config) -> bool {
    if config.consecutive_failures.is_some_and(|n| in_a_row >= n) {
        return true;
    }
    let Some((share, _, min_calls)) = config.failure_rate else {
        return false;
    };
    if window.len() < min_calls {
        return false;
    }
    let failed = window.iter().filter(|f| **f).count();
    // Window sizes are far below 2^52: the division is exact enough.
    #[allow(clippy::cast_precision_loss)]
    let rate = failed as f64 / window.len() as f64;
    rate > share
}
