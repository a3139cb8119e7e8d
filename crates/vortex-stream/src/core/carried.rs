//! Logging context carried to the threads that do a stage's work.

use tracing::dispatcher::{self, Dispatch};
use tracing::Span;

/// The `tracing` subscriber in effect where a stage was made or started, and the stage's
/// span, for work that runs on other threads (the blocking pool, rayon): a thread does not
/// inherit its spawner's subscriber, so without this a subscriber set for a scope
/// (`tracing::subscriber::with_default`) would miss everything those threads log. With no
/// subscriber anywhere it costs a thread-local swap per job.
#[derive(Clone, Debug)]
pub(crate) struct Carried {
    // `None`: whatever the running thread has (a plain iterator's own logs are its own).
    dispatch: Option<Dispatch>,
    span: Span,
}

impl Carried {
    /// The current subscriber, and `span`.
    pub(crate) fn here(span: Span) -> Self {
        Carried {
            dispatch: Some(dispatcher::get_default(Dispatch::clone)),
            span,
        }
    }

    /// Nothing carried: work runs with its thread's subscriber, in no span.
    pub(crate) fn none() -> Self {
        Carried {
            dispatch: None,
            span: Span::none(),
        }
    }

    /// The stage's span.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Runs `work` with the subscriber and inside the span.
    pub(crate) fn run<R>(&self, work: impl FnOnce() -> R) -> R {
        match &self.dispatch {
            Some(dispatch) => dispatcher::with_default(dispatch, || self.span.in_scope(work)),
            None => self.span.in_scope(work),
        }
    }
}
