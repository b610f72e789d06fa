//! Extreme eigenpairs of a symmetric operator by block Lanczos with full reorthogonalization and
//! thick restart. This module knows nothing about neural networks: it sees only [`SymOp`].
//!
//! # Algorithm ([`lanczos`])
//! Keep an orthonormal basis `Q = [Q₀ … Q_j]` (`n × m`, blocks of `b` columns) **and its image**
//! `W = A Q` (one stored vector per operator product). Each iteration:
//! 1. apply `A` to the newest block: `W_new = A Q_new` (`b` products);
//! 2. complete the projected matrix `T = Qᵀ A Q` with the column block `Qᵀ W_new` (then symmetrize);
//! 3. Rayleigh–Ritz: `T = S Θ Sᵀ` (dense, faer, `Par::Seq`); the wanted Ritz pairs are
//!    `(θₗ, yₗ = Q sₗ)`;
//! 4. the next block is the residual of the newest block, `X = W_new − Q Qᵀ W_new`, projected
//!    twice (classical Gram–Schmidt, "twice is enough"; the first projection's coefficients
//!    `Qᵀ W_new` are the column block of `T` from step 2, so the two passes cost three reads of
//!    `Q`), then orthonormalized by SVQB (`X ← X V Λ^{-1/2}` from the Gram `XᵀX = V Λ Vᵀ`),
//!    applied twice.
//!
//! Residuals are exact and cost no product: `rₗ = A yₗ − θₗ yₗ = W sₗ − Q sₗ θₗ`. Because
//! `A Q = Q T + X E_newᵀ` up to rounding, `‖X s_new,l‖` (from the Gram of `X`, free) estimates
//! `‖rₗ‖` every iteration; the exact residual (one pass over `Q` and `W`) is evaluated when the
//! estimate passes the test, and always for the returned pairs, which report exact residuals.
//!
//! In exact arithmetic `A Q = Q T + X Eᵀ` (residual only in the newest block), so `span(Q, X)`
//! is the block Krylov space. Directions of `X` with `‖X v‖ ≤ deflation_tol · max_j‖W_new,j‖`
//! are deflated and replaced by seeded random vectors orthogonal to the basis. When *every*
//! direction deflates, `span(Q)` is an invariant subspace: the Ritz pairs are exact eigenpairs of
//! `A` restricted to it and the solver stops with [`Status::Breakdown`] (or, if it holds fewer
//! than `k` vectors, continues from a random block).
//!
//! **Thick restart.** When the next block would exceed `max_basis` columns, the basis is replaced
//! by the `keep` best Ritz vectors, `Q ← Q S_keep`, `W ← W S_keep`, `T ← Θ_keep` — no products —
//! and the pending residual block `X` (orthogonal to the old basis, hence to the new one) is kept
//! as the next block, since `A Q S_keep = Q S_keep Θ_keep + X (Eᵀ S_keep)`.
//!
//! **Convergence.** All `k` wanted pairs satisfy `‖rₗ‖ ≤ tol · max(|θₗ|, ε^{2/3} · max_i |θᵢ|)`
//! (relative residual; the floor keeps zero eigenvalues from never converging). It is tested after
//! every block product, so a warm start that is already accurate costs exactly `b` products.
//!
//! # Memory and cost
//! `Q` and `W` hold `min(max_basis, n)` columns each, plus `b` columns for the pending block and
//! `2b` for the operator's input/output buffers, plus per-tile scratch of `max(max_basis, b)`
//! columns: at most `(3·max_basis + 3b) · n` f64. Per iteration the vector work is three reads of
//! `Q` (plus `Q` and `W` once when the residual estimate passes); a thick restart costs one
//! `n × m × keep` product for each of `Q` and `W`. Nothing is allocated inside the iteration loop,
//! and a [`LanczosWorkspace`] keeps the buffers from one solve to the next (a run that estimates the
//! sharpness at every step allocates once).
//!
//! # Tracking ([`Tracker`])
//! Along a training run the operator changes a little from one estimate to the next. The
//! tracker carries the last two estimates' Ritz vectors, runs Rayleigh–Ritz on them and expands
//! by residuals until a certified bound on each tracked eigenvalue's error meets the tolerance
//! (Lehmann's bounds, the block form of Kato–Temple, with a gap estimate from a guard pair), and
//! audits the gap estimate with a periodic cold Lanczos solve. See [`tracker`'s docs](Tracker).
//!
//! # Determinism
//! Tall vectors are stored in tiles of `tile_rows` rows (a problem-size constant). Every pass
//! works tile by tile; each tile owns its rows; reductions produce one partial per tile and the
//! partials are added in tile order. Results are therefore bit-identical for every thread count
//! of [`crate::Par::Rayon`] and for [`crate::Par::Seq`]. Random vectors are drawn from one
//! seeded xoshiro256++ stream in global row order.

mod lanczos;
mod ops;
mod tiles;
mod tracker;

pub use lanczos::{lanczos, LanczosWorkspace};
pub use ops::{DenseSymOp, DiagOp, SymOp};
pub use tracker::{
    certify, lehmann_bounds, Certificate, ColdCheck, Estimate, StopRule, Strategy, Tracker,
    TrackerParams, CHECK_SLACK,
};

use crate::Par;

/// Which end of the spectrum to compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Which {
    /// The `k` largest eigenvalues, by signed value (the sharpness).
    #[default]
    LargestAlgebraic,
    /// The `k` eigenvalues of largest `|λ|` (what `eigsh` does by default).
    LargestMagnitude,
    /// The `k` smallest eigenvalues, by signed value.
    SmallestAlgebraic,
}

/// Solver settings. `Default` gives `k = 1`, `block = 1`, largest algebraic, `tol = 1e-3`.
#[derive(Clone, Copy, Debug)]
pub struct LanczosParams {
    /// Number of wanted eigenpairs (`1 ≤ k ≤ n`).
    pub k: usize,
    /// Block size `b ≥ 1` (`1` = plain Lanczos). Larger blocks feed fatter operator calls and
    /// resolve multiple eigenvalues; they cost `b` products per iteration.
    pub block: usize,
    /// Which end of the spectrum.
    pub which: Which,
    /// Relative residual tolerance (see the module docs).
    pub tol: f64,
    /// Hard cap on operator column-products (`≥ k`). The last block is shrunk to fit it.
    pub max_products: usize,
    /// Memory cap in basis vectors (`≥ k + block` unless `≥ n`); thick restart when reached.
    pub max_basis: usize,
    /// Seed of the random start/replacement vectors.
    pub seed: u64,
    /// Threads for the vector work over `n` (not for the small dense problems).
    pub par: Par,
    /// Rows per tile of the tall vectors: fixes the summation order (results depend on it, never
    /// on the thread count). Tests turn it down to exercise many tiles on small `n`.
    pub tile_rows: usize,
    /// Relative threshold below which a residual direction is treated as already in the basis.
    pub deflation_tol: f64,
}

impl Default for LanczosParams {
    fn default() -> Self {
        Self {
            k: 1,
            block: 1,
            which: Which::LargestAlgebraic,
            tol: 1e-3,
            max_products: 300,
            max_basis: 32,
            seed: 0,
            par: Par::Seq,
            tile_rows: 2048,
            deflation_tol: 1e-10,
        }
    }
}

/// Why the solver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// All `k` wanted pairs meet the residual tolerance.
    Converged,
    /// `max_products` reached first; the result is the best estimate so far.
    MaxProducts,
    /// The Krylov space became invariant: the pairs are exact eigenpairs of `A` restricted to
    /// that subspace (residuals at rounding level), but `A` may have eigenvalues outside it that
    /// this start could not reach.
    Breakdown,
}

impl Status {
    /// The name written to result files: `converged`, `max-products` or `breakdown`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Converged => "converged",
            Status::MaxProducts => "max-products",
            Status::Breakdown => "breakdown",
        }
    }
}

/// The computed eigenpairs with their evidence.
#[derive(Clone, Debug)]
pub struct EigResult {
    /// The `k` Ritz values, best first according to [`Which`].
    pub values: Vec<f64>,
    /// The Ritz vectors, `n × k` column-major, unit norm, in the order of `values`.
    pub vectors: Vec<f64>,
    /// True residual norms `‖A y − θ y‖` (from `A Q`, exact up to rounding).
    pub residuals: Vec<f64>,
    /// Why the solver stopped.
    pub status: Status,
    /// Exact number of operator column-products (an `apply` with `b` columns counts `b`).
    pub products: usize,
    /// Number of block iterations (`apply` calls).
    pub iterations: usize,
    /// Number of thick restarts.
    pub restarts: usize,
}

/// Invalid input to the eigensolvers, or a failure that leaves no meaningful estimate.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EigError {
    /// The operator has dimension 0.
    #[error("the operator has dimension 0: nothing to solve")]
    EmptyOperator,
    /// `k` outside `1..=n`.
    #[error("k = {k} eigenpairs requested from an operator of dimension {n}: use 1 ≤ k ≤ n")]
    InvalidK { k: usize, n: usize },
    /// Block size 0.
    #[error("block size 0: use block ≥ 1 (1 = plain Lanczos)")]
    InvalidBlock,
    /// `max_basis` cannot hold `k` kept vectors plus one block.
    #[error("max_basis = {max_basis} is too small: restarts need at least k + block = {needed} vectors (or max_basis ≥ n)")]
    BasisTooSmall { max_basis: usize, needed: usize },
    /// `max_products` cannot even produce `k` Ritz values.
    #[error("max_products = {max_products} is below k = {k}: at least k products are needed for k Ritz values")]
    TooFewProducts { max_products: usize, k: usize },
    /// Tolerance negative or not finite.
    #[error("tolerance {tol} must be finite and ≥ 0")]
    InvalidTolerance { tol: f64 },
    /// Deflation threshold outside `[0, 1)`.
    #[error("deflation_tol {value} must be finite and in [0, 1)")]
    InvalidDeflationTol { value: f64 },
    /// `tile_rows == 0`.
    #[error("tile_rows must be ≥ 1")]
    InvalidTileRows,
    /// The warm-start block does not have shape `n × s`, `s ≥ 1`.
    #[error("start block has {len} entries, not a positive multiple of n = {n}: pass n × s column-major")]
    BadStartShape { len: usize, n: usize },
    /// The warm-start block holds NaN or ±∞.
    #[error("start block entry {index} is not finite")]
    NonFiniteStart { index: usize },
    /// No nonzero start vector could be formed (all random draws vanished).
    #[error("could not form a nonzero start block: try another seed")]
    DegenerateStart,
    /// The operator returned NaN or ±∞.
    #[error("the operator returned a non-finite value after {products} products (check the operator's inputs, e.g. a diverged model)")]
    NonFiniteProduct { products: usize },
    /// The dense eigensolver for the projected matrix did not converge.
    #[error("dense symmetric eigensolver failed on a {dim}×{dim} projected matrix")]
    DenseEigen { dim: usize },
    /// A dense operator that is not square.
    #[error("matrix is {rows}×{cols}: a symmetric operator must be square")]
    NotSquare { rows: usize, cols: usize },
    /// A dense operator that is not symmetric.
    #[error("matrix is not symmetric at ({row}, {col}): pass (A + Aᵀ)/2")]
    NotSymmetric { row: usize, col: usize },
    /// Tracker settings that cannot work together.
    #[error("tracker settings: {0}")]
    Tracker(String),
    /// A matrix or diagonal entry that is not finite.
    #[error("matrix entry ({row}, {col}) is not finite")]
    NonFiniteMatrix { row: usize, col: usize },
}
