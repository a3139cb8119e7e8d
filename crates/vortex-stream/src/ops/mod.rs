//! The stream adapters behind [`Pipeline`](crate::Pipeline)'s operators, one per file.
//!
//! Each type here is returned (wrapped in a `Pipeline`) by the method of the same name in
//! snake case; its documentation, memory bound and examples live on that method. They are
//! public so that pipeline types can be named, as `futures`' adapters are.

mod cancel_on;
mod chain;
mod chunk;
mod chunk_timeout;
mod deadline;
mod dedup;
mod distinct_by;
mod enumerate;
mod filter;
mod filter_map;
mod flat_map;
mod group_by_key;
mod inspect;
mod map;
mod merge;
mod merge_all;
mod observe;
mod on_error;
mod reverse;
mod scan;
mod skip;
mod skip_while;
mod take;
mod take_while;
mod tee;
mod then;
mod throttle;
mod timeout;
mod try_filter;
mod try_map;
mod try_then;
mod validate;
mod window;
mod zip;

/// Every adapter type, for naming the type of a pipeline.
pub mod adapters {
    pub use super::cancel_on::CancelOn;
    pub use super::chain::Chain;
    pub use super::chunk::Chunk;
    pub use super::chunk_timeout::ChunkTimeout;
    pub use super::deadline::Deadline;
    pub use super::dedup::Dedup;
    pub use super::distinct_by::{Distinct, DistinctBy};
    pub use super::enumerate::Enumerate;
    pub use super::filter::Filter;
    pub use super::filter_map::FilterMap;
    pub use super::flat_map::{FlatMap, Flatten};
    pub use super::group_by_key::GroupByKey;
    pub use super::inspect::Inspect;
    pub use super::map::Map;
    pub use super::merge::Merge;
    pub use super::merge_all::MergeAll;
    pub use super::observe::Observe;
    pub use super::on_error::OnError;
    pub use super::reverse::Reverse;
    pub use super::scan::Scan;
    pub use super::skip::Skip;
    pub use super::skip_while::SkipWhile;
    pub use super::take::Take;
    pub use super::take_while::TakeWhile;
    pub use super::tee::Tee;
    pub use super::then::Then;
    pub use super::throttle::Throttle;
    pub use super::timeout::Timeout;
    pub use super::try_filter::TryFilter;
    pub use super::try_map::TryMap;
    pub use super::try_then::TryThen;
    pub use super::validate::{Validate, ValidateOrElse};
    pub use super::window::Window;
    pub use super::zip::Zip;

    /// Stream for the [`batch_map`](crate::Pipeline::batch_map) method.
    pub type BatchMap<S, T, Fut, F, U> = Flatten<TryThen<Chunk<S, T>, Fut, F>, Vec<U>>;
}

/// For a stage whose timer needs a tokio runtime: a fatal error when polled outside one, as
/// the blocking sources give, rather than tokio's panic. (A runtime built without its time
/// driver still panics: tokio does not say whether it has one.)
pub(crate) fn outside_runtime(operation: &'static str) -> Option<crate::Error> {
    tokio::runtime::Handle::try_current().is_err().then(|| {
        crate::Error::internal(
            operation,
            "polled outside a tokio runtime, which its timer needs; drive the pipeline with tokio or run_blocking",
        )
        .fatal()
    })
}
