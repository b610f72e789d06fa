//! Symmetric operators: the [`SymOp`] trait the solvers call, and two concrete operators used by
//! tests and benchmarks ([`DenseSymOp`], [`DiagOp`]).

use super::EigError;
use faer::{Accum, Mat, MatMut, MatRef};

/// A symmetric linear operator `A: ℝⁿ → ℝⁿ`, applied to blocks of vectors.
///
/// The solvers assume `A = Aᵀ`; they never check it (an operator built from f32 kernels is
/// symmetric only to rounding, which the Rayleigh–Ritz step absorbs by symmetrizing).
pub trait SymOp {
    /// Dimension `n`.
    fn dim(&self) -> usize;
    /// `Y = A X` for a block of `b ≥ 1` vectors. `x` and `y` are `n × b` column-major
    /// (column `j` is `x[j*n..(j+1)*n]`); `y` must be overwritten, not accumulated into.
    fn apply(&mut self, x: &[f64], y: &mut [f64], b: usize);
}

/// A dense symmetric matrix held in a faer [`Mat`]. Products use faer's GEMM with
/// `Par::Seq`, so they are bit-identical whatever the calling thread pool.
#[derive(Clone, Debug)]
pub struct DenseSymOp {
    a: Mat<f64>,
}

impl DenseSymOp {
    /// Wraps `a`. Fails when `a` is not square, holds a non-finite entry, or is not symmetric to
    /// `1e-12 · max|aᵢⱼ|`.
    pub fn new(a: Mat<f64>) -> Result<Self, EigError> {
        let (r, c) = (a.nrows(), a.ncols());
        if r != c {
            return Err(EigError::NotSquare { rows: r, cols: c });
        }
        let mut max_abs = 0.0f64;
        for j in 0..c {
            for i in 0..r {
                let v = a[(i, j)];
                if !v.is_finite() {
                    return Err(EigError::NonFiniteMatrix { row: i, col: j });
                }
                max_abs = max_abs.max(v.abs());
            }
        }
        for j in 0..c {
            for i in (j + 1)..r {
                if (a[(i, j)] - a[(j, i)]).abs() > 1e-12 * max_abs {
                    return Err(EigError::NotSymmetric { row: i, col: j });
                }
            }
        }
        Ok(Self { a })
    }

    /// The wrapped matrix.
    pub fn matrix(&self) -> MatRef<'_, f64> {
        self.a.as_ref()
    }
}

impl SymOp for DenseSymOp {
    fn dim(&self) -> usize {
        self.a.nrows()
    }

    fn apply(&mut self, x: &[f64], y: &mut [f64], b: usize) {
        let n = self.a.nrows();
        let xr = MatRef::from_column_major_slice(&x[..n * b], n, b);
        let yr = MatMut::from_column_major_slice_mut(&mut y[..n * b], n, b);
        faer::linalg::matmul::matmul(yr, Accum::Replace, self.a.as_ref(), xr, 1.0, faer::Par::Seq);
    }
}

/// A diagonal operator `A = diag(d)`.
#[derive(Clone, Debug)]
pub struct DiagOp {
    d: Vec<f64>,
}

impl DiagOp {
    /// Wraps the diagonal `d`. Fails when an entry is not finite.
    pub fn new(d: Vec<f64>) -> Result<Self, EigError> {
        if let Some(i) = d.iter().position(|v| !v.is_finite()) {
            return Err(EigError::NonFiniteMatrix { row: i, col: i });
        }
        Ok(Self { d })
    }

    /// The diagonal.
    pub fn diagonal(&self) -> &[f64] {
        &self.d
    }
}

impl SymOp for DiagOp {
    fn dim(&self) -> usize {
        self.d.len()
    }

    fn apply(&mut self, x: &[f64], y: &mut [f64], b: usize) {
        let n = self.d.len();
        for j in 0..b {
            let (xj, yj) = (&x[j * n..(j + 1) * n], &mut y[j * n..(j + 1) * n]);
            for ((yi, xi), di) in yj.iter_mut().zip(xj).zip(&self.d) {
                *yi = di * xi;
            }
        }
    }
}
