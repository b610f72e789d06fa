//! Parallelism as an explicit argument (house rule 3).
//!
//! Kernels split work into blocks whose boundaries depend only on the problem size (or, where
//! no summation order depends on them, on [`Par::threads`] too), give each output element
//! exactly one owner and combine partial sums in index order, so results are bit-identical for
//! every thread count (DESIGN §5). `Par` only decides *who* runs the blocks.

use rayon::prelude::*;

/// How a kernel may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// Run every block on the calling thread.
    Seq,
    /// Run blocks on the current rayon pool (see [`with_threads`]).
    Rayon,
}

impl Par {
    /// Runs `f(i)` for every `i in 0..n`, in parallel when `self` is `Rayon`.
    /// `f` must write only to data owned by block `i`.
    pub fn for_each<F: Fn(usize) + Sync + Send>(self, n: usize, f: F) {
        match self {
            Par::Seq => (0..n).for_each(f),
            Par::Rayon => (0..n).into_par_iter().for_each(f),
        }
    }

    /// Runs `f` on every item (a block's exclusive share of the work), in parallel when `self`
    /// is `Rayon` (the items are then collected first).
    pub fn each<I, F>(self, items: impl IntoIterator<Item = I>, f: F)
    where
        I: Send,
        F: Fn(I) + Sync + Send,
    {
        match self {
            Par::Seq => items.into_iter().for_each(f),
            Par::Rayon => items
                .into_iter()
                .collect::<Vec<_>>()
                .into_par_iter()
                .for_each(f),
        }
    }

    /// Threads that run the blocks: 1, or those of the current rayon pool.
    pub fn threads(self) -> usize {
        match self {
            Par::Seq => 1,
            Par::Rayon => rayon::current_num_threads(),
        }
    }

    /// `Par::Seq` for one thread, `Par::Rayon` otherwise.
    pub fn from_threads(threads: usize) -> Par {
        if threads <= 1 {
            Par::Seq
        } else {
            Par::Rayon
        }
    }
}

/// Runs `f` inside a dedicated rayon pool of `threads` threads (0 = rayon's default) and passes
/// it the matching [`Par`]. This is the one place where the binary creates a pool.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce(Par) -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("failed to build the rayon thread pool");
    let n = pool.current_num_threads();
    pool.install(|| f(Par::from_threads(n)))
}
