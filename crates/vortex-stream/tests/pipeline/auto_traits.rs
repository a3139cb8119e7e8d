//! Every public adapter is `Send`, `Sync` and `Unpin` when what it wraps is: checked when
//! this test binary compiles.

use std::future::Ready;

use static_assertions::assert_impl_all;
use vortex_stream::adapters::*;
use vortex_stream::sources::{Blocking, Generate, Iter, ReadChunks, Receiver};
use vortex_stream::{BlockingIter, Error, ErrorPolicy, Pipeline, Report, Result};

type Src = Iter<std::vec::IntoIter<i32>>;
type F = fn(i32) -> i32;
type Pred = fn(&i32) -> bool;

assert_impl_all!(Error: Send, Sync, Unpin, std::error::Error);
assert_impl_all!(ErrorPolicy: Send, Sync, Clone);
assert_impl_all!(Report: Send, Sync, Clone);
assert_impl_all!(Pipeline<Src>: Send, Sync, Unpin);
assert_impl_all!(Map<Src, F>: Send, Sync, Unpin);
assert_impl_all!(TryMap<Src, fn(i32) -> Result<i32>>: Send, Sync, Unpin);
assert_impl_all!(Then<Src, Ready<i32>, fn(i32) -> Ready<i32>>: Send, Sync, Unpin);
assert_impl_all!(TryThen<Src, Ready<Result<i32>>, fn(i32) -> Ready<Result<i32>>>: Send, Sync, Unpin);
assert_impl_all!(Filter<Src, Pred>: Send, Sync, Unpin);
assert_impl_all!(TryFilter<Src, fn(&i32) -> Result<bool>>: Send, Sync, Unpin);
assert_impl_all!(FilterMap<Src, fn(i32) -> Option<i32>>: Send, Sync, Unpin);
assert_impl_all!(FlatMap<Src, std::vec::IntoIter<i32>, fn(i32) -> Vec<i32>>: Send, Sync, Unpin);
assert_impl_all!(Take<Src>: Send, Sync, Unpin);
assert_impl_all!(TakeWhile<Src, Pred>: Send, Sync, Unpin);
assert_impl_all!(Skip<Src>: Send, Sync, Unpin);
assert_impl_all!(SkipWhile<Src, Pred>: Send, Sync, Unpin);
assert_impl_all!(Chunk<Src, i32>: Send, Sync, Unpin);
assert_impl_all!(ChunkTimeout<Src, i32>: Send, Sync);
assert_impl_all!(Window<Src, i32>: Send, Sync, Unpin);
assert_impl_all!(Scan<Src, i32, fn(&mut i32, i32) -> Option<i32>>: Send, Sync, Unpin);
assert_impl_all!(Inspect<Src, fn(&i32)>: Send, Sync, Unpin);
assert_impl_all!(Enumerate<Src>: Send, Sync, Unpin);
assert_impl_all!(Chain<Src, Src>: Send, Sync, Unpin);
assert_impl_all!(Zip<Src, Src, i32>: Send, Sync, Unpin);
assert_impl_all!(Merge<Src, Src>: Send, Sync, Unpin);
assert_impl_all!(MergeAll<Src>: Send, Sync, Unpin);
assert_impl_all!(Dedup<Src, i32>: Send, Sync, Unpin);
assert_impl_all!(GroupByKey<Src, i32, i32, fn(&i32) -> i32>: Send, Sync, Unpin);
assert_impl_all!(DistinctBy<Src, i32, fn(&i32) -> i32>: Send, Sync, Unpin);
assert_impl_all!(Validate<Src, fn(&i32) -> Result<()>>: Send, Sync, Unpin);
assert_impl_all!(ValidateOrElse<Src, fn(&i32) -> Result<()>, fn(i32, Error)>: Send, Sync, Unpin);
assert_impl_all!(OnError<Src>: Send, Sync, Unpin);
assert_impl_all!(CancelOn<Src>: Send, Sync);
assert_impl_all!(Deadline<Src>: Send, Sync);
assert_impl_all!(Blocking<i32>: Send, Unpin);
assert_impl_all!(Receiver<i32>: Send, Sync, Unpin);
assert_impl_all!(ReadChunks<tokio::io::DuplexStream>: Send, Sync, Unpin);
assert_impl_all!(Generate<i32, Ready<Result<()>>>: Send, Sync, Unpin);
assert_impl_all!(BlockingIter<Src>: Send);
assert_impl_all!(Throttle<Src>: Send, Sync);
assert_impl_all!(Tee<Src, i32>: Send, Sync, Unpin);
assert_impl_all!(Timeout<Src>: Send, Sync);
assert_impl_all!(vortex_stream::parallel::ParMap<Src, F, i32, i32>: Send, Unpin);
assert_impl_all!(vortex_stream::resilience::CircuitBreaker: Send, Sync, Clone);
assert_impl_all!(vortex_stream::resilience::Bulkhead: Send, Sync, Clone);
assert_impl_all!(vortex_stream::resilience::ExponentialBackoff: Send, Sync, Clone);
