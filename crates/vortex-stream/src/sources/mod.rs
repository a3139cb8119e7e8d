//! Where items come from: iterators, channels, generator closures, and byte readers, sync or
//! async. Each source here is wrapped by a [`Pipeline`](crate::Pipeline) constructor, where it
//! is documented.

mod blocking;
mod channel;
mod generate;
mod iter;
mod read;

pub use blocking::Blocking;
pub use channel::Receiver;
pub use generate::{Emit, Generate, Yielder};
pub use iter::Iter;
pub use read::ReadChunks;

pub(crate) use blocking::read_chunks;
