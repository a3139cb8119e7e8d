//! The pieces every stage shares that do no I/O: error policies, the run report, values
//! located in their input, and sizes given as literals.

mod carried;
mod located;
pub(crate) mod policy;
mod size;
pub(crate) mod stats;

pub(crate) use carried::Carried;
pub use located::Located;
pub use policy::{ErrorPolicy, Report};
pub use size::Size;
pub use stats::{StageStats, Stats};
