//! The operators of a [`Fusable`] pipeline: each joins its source's decoding threads instead
//! of adding a stage (see [`fusion`](crate::fusion)).

use super::Pipeline;
use crate::fusion::{Fusable, FusedSource};
use crate::parallel::Parallelism;

/// Fused stages: on the pipeline a decoding source returns (such as
/// [`CsvSource::deserialize`](crate::sources::CsvSource::deserialize)), these run on the
/// decoding threads, right after each run of records is decoded, instead of adding a stage.
/// The closures must be `Send + 'static`, and run ahead of what the pipeline has taken; see
/// [`fusion`](crate::fusion).
impl<D: FusedSource> Pipeline<D, Fusable> {
    /// Transforms each value with `f`, on the decoding threads; `f` sees the values in input
    /// order, one at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// use vortex_stream::io::Input;
    /// use vortex_stream::sources::CsvSource;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> vortex_stream::Result<()> {
    /// let ids: Vec<u64> = CsvSource::new(Input::bytes("id\n1\n2\n"))
    ///     .deserialize::<(u64,)>()
    ///     .map(|(id,)| id * 10)
    ///     .collect()
    ///     .await?;
    /// assert_eq!(ids, [10, 20]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn map<U, F>(self, mut f: F) -> Pipeline<D::With<U>, Fusable>
    where
        U: Send + 'static,
        F: FnMut(D::Value) -> U + Send + 'static,
    {
        Pipeline::fusable(self.into_inner().then(move |value| Some(f(value))))
    }

    /// Keeps the values for which `predicate` returns `true`, deciding on the decoding
    /// threads: the others are dropped there. `predicate` sees the values in input order.
    pub fn filter<F>(self, mut predicate: F) -> Pipeline<D::With<D::Value>, Fusable>
    where
        F: FnMut(&D::Value) -> bool + Send + 'static,
    {
        Pipeline::fusable(
            self.into_inner()
                .then(move |value| predicate(&value).then_some(value)),
        )
    }

    /// Transforms each value with `f`, keeping the `Some`s, on the decoding threads; `f` sees
    /// the values in input order.
    pub fn filter_map<U, F>(self, f: F) -> Pipeline<D::With<U>, Fusable>
    where
        U: Send + 'static,
        F: FnMut(D::Value) -> Option<U> + Send + 'static,
    {
        Pipeline::fusable(self.into_inner().then(f))
    }

    /// Runs a CPU-bound `f` on every decoding thread at once, right after each run of values
    /// is decoded, and yields the results in input order: what
    /// [`par_map`](Pipeline::par_map) does, without handing each value to another thread and
    /// back. A panic in `f` becomes an [`Internal`](crate::ErrorKind::Internal) error item in
    /// the value's place, as in `par_map`.
    ///
    /// Fused only when the source decodes on as many threads at once as the stage would run
    /// (the limit, up to rayon's threads; the source decodes on
    /// [`decode_threads`](crate::sources::CsvSource::decode_threads), the cores up to 4, by
    /// default, and on its reading thread alone with one): otherwise it is a plain `par_map`
    /// stage after the source, so that neither the limit nor the parallelism changes. Memory
    /// when fused: nothing beyond the source's runs.
    pub fn par_map<U, F>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> Pipeline<D::With<U>, Fusable>
    where
        U: Send + 'static,
        F: Fn(D::Value) -> U + Send + Sync + 'static,
    {
        let limit = parallelism.into().limit();
        Pipeline::fusable(self.into_inner().then_parallel(limit, true, f))
    }

    /// [`par_map`](Pipeline::par_map) with the results in the order they finish; fused, the
    /// same as the ordered one (a run's values come out together, in order).
    pub fn par_map_unordered<U, F>(
        self,
        parallelism: impl Into<Parallelism>,
        f: F,
    ) -> Pipeline<D::With<U>, Fusable>
    where
        U: Send + 'static,
        F: Fn(D::Value) -> U + Send + Sync + 'static,
    {
        let limit = parallelism.into().limit();
        Pipeline::fusable(self.into_inner().then_parallel(limit, false, f))
    }
}
