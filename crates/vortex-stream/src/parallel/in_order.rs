//! Runs one `FnMut` from many threads, on numbered pieces of work, strictly in their order.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A function shared by the threads that decode runs of one input, each run numbered from 0:
/// the thread holding run `n` waits until runs `0..n` have had their turn, so the function
/// sees the values of every run in input order, one run at a time, as it would on one thread.
///
/// A thread waits only for runs handed out before its own. The queues that hand runs to
/// workers (rayon's jobs in [`ParMap`](super::ParMap), or one reading thread) hand them out in
/// order, and a worker runs what it took before it takes more, so the run waited for is
/// already being worked on and the wait ends.
pub(crate) struct InOrder<F> {
    turn: Mutex<Turn<F>>,
    passed: Condvar,
}

struct Turn<F> {
    next: u64,
    f: F,
}

impl<F> InOrder<F> {
    pub(crate) fn new(f: F) -> Self {
        InOrder {
            turn: Mutex::new(Turn { next: 0, f }),
            passed: Condvar::new(),
        }
    }

    /// Runs `before` at once (in parallel with other runs: decoding, say), then `work` on its
    /// result and the function in run `seq`'s turn. The turn is taken and passed on however
    /// either ends: a run whose `before` panics still passes it (and the panic goes on to the
    /// caller), or every later run would wait for it for ever.
    pub(crate) fn run_after<X, R>(
        &self,
        seq: u64,
        before: impl FnOnce() -> X,
        work: impl FnOnce(&mut F, X) -> R,
    ) -> R {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(before)) {
            Ok(done) => self.run(seq, |f| work(f, done)),
            Err(panic) => {
                self.run(seq, |_| ());
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Runs `work` on the function in run `seq`'s turn, then passes the turn on, also when
    /// `work` panics (the panic goes on to the caller).
    pub(crate) fn run<R>(&self, seq: u64, work: impl FnOnce(&mut F) -> R) -> R {
        // A panic in `work` poisons the lock; the function is still what it was when the
        // panic happened, and the next run goes on with it, as a plain stage would.
        let mut turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        while turn.next < seq {
            turn = self
                .passed
                .wait(turn)
                .unwrap_or_else(PoisonError::into_inner);
        }
        debug_assert_eq!(turn.next, seq, "a run took its turn twice");
        let mut pass = Pass {
            turn,
            passed: &self.passed,
        };
        work(&mut pass.turn.f)
    }
}

/// Passes the turn to the next run when dropped, after `work` returned or while it unwinds.
struct Pass<'a, F> {
    turn: MutexGuard<'a, Turn<F>>,
    passed: &'a Condvar,
}

impl<F> Drop for Pass<'_, F> {
    fn drop(&mut self) {
        self.turn.next += 1;
        self.passed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use super::InOrder;

    #[test]
    fn runs_take_their_turns_in_order_whatever_thread_comes_first() {
        let order = Arc::new(InOrder::new(Vec::new()));
        let mut threads = Vec::new();
        // Handed out last first: each thread must wait for the ones before it.
        for seq in (0..8u64).rev() {
            let order = Arc::clone(&order);
            threads.push(std::thread::spawn(move || {
                order.run(seq, |seen| seen.push(seq))
            }));
        }
        for thread in threads {
            thread.join().unwrap();
        }
        let seen = order.run(8, |seen| seen.clone());
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_run_passes_the_turn_on() {
        let order = Arc::new(InOrder::new(0u32));
        let waiting = {
            let order = Arc::clone(&order);
            std::thread::spawn(move || order.run(1, |n| *n + 1))
        };
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            order.run(0, |n| {
                *n = 41;
                panic!("a run fails");
            })
        }));
        assert!(panicked.is_err());
        assert_eq!(waiting.join().unwrap(), 42);
    }

    #[test]
    fn a_run_panicking_before_its_turn_still_passes_it() {
        let order = Arc::new(InOrder::new(0u32));
        let waiting = {
            let order = Arc::clone(&order);
            std::thread::spawn(move || order.run_after(1, || 2, |n, two| *n + two))
        };
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            order.run_after(0, || panic!("decoding fails"), |n, ()| *n = 40)
        }));
        assert!(panicked.is_err());
        // Run 0's `work` never ran; run 1 got its turn.
        assert_eq!(waiting.join().unwrap(), 2);
    }
}
