//! The pieces every stage shares that do no I/O: error policies, the run report, and values
//! located in their input.

mod located;
pub(crate) mod policy;

pub use located::Located;
pub use policy::{ErrorPolicy, Report};
