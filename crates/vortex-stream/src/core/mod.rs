//! The pieces every stage shares that do no I/O: error policies and the run report.

pub(crate) mod policy;

pub use policy::{ErrorPolicy, Report};
