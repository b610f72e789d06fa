//! GEMM on row-major buffers, through faer, with deterministic blocking.
//!
//! Every product here is `C (=|+=) A·B` where `A`, `B`, `C` are faer views over row-major slices
//! (transposes are free views). Parallel variants split the *output* into blocks whose size
//! depends only on the problem shape, give each block to one task and call faer with
//! `Par::Seq` inside; the reduction dimension is never split across threads. So a result is
//! bit-identical for every thread count (DESIGN §5), and nested parallelism never
//! oversubscribes (faer sequential inside rayon tasks measured at ≈ 198 GFLOP/s on 2 cores,
//! rust-feasibility §6).

use crate::par::Par;
use crate::real::Real;
use faer::linalg::matmul::matmul;
#[cfg(test)]
use faer::reborrow::ReborrowMut;
use faer::{Accum, MatMut, MatRef};
use rayon::prelude::*;

/// Row-major `rows × cols` view of a contiguous slice.
#[inline]
pub fn view<T: Real>(s: &[T], rows: usize, cols: usize) -> MatRef<'_, T> {
    view_ld(s, rows, cols, cols)
}

/// Row-major `rows × cols` view with row stride `ld` (the slice may start mid-row).
#[inline]
pub fn view_ld<T: Real>(s: &[T], rows: usize, cols: usize, ld: usize) -> MatRef<'_, T> {
    if rows == 0 || cols == 0 {
        return MatRef::from_row_major_slice(&s[..0], rows, cols);
    }
    MatRef::from_row_major_slice_with_stride(s, rows, cols, ld.max(1))
}

/// Mutable row-major `rows × cols` view of a contiguous slice.
#[inline]
pub fn view_mut<T: Real>(s: &mut [T], rows: usize, cols: usize) -> MatMut<'_, T> {
    view_mut_ld(s, rows, cols, cols)
}

/// Mutable row-major view with row stride `ld`.
#[inline]
pub fn view_mut_ld<T: Real>(s: &mut [T], rows: usize, cols: usize, ld: usize) -> MatMut<'_, T> {
    if rows == 0 || cols == 0 {
        return MatMut::from_row_major_slice_mut(&mut s[..0], rows, cols);
    }
    // Built as the transpose of a column-major view: faer 0.24.4's
    // `from_row_major_slice_with_stride_mut` passes its strides swapped and yields a
    // column-major view (seen as out-of-bounds writes under valgrind).
    MatMut::from_column_major_slice_with_stride_mut(s, cols, rows, ld.max(1)).transpose_mut()
}

/// `C (=|+=) A·B` on the calling thread.
#[inline]
pub fn gemm<T: Real>(c: MatMut<'_, T>, accum: Accum, a: MatRef<'_, T>, b: MatRef<'_, T>) {
    if c.nrows() == 0 || c.ncols() == 0 {
        return;
    }
    if a.ncols() == 0 {
        if accum == Accum::Replace {
            let mut c = c;
            c.fill(T::ZERO);
        }
        return;
    }
    matmul(c, accum, a, b, T::ONE, faer::Par::Seq);
}

/// Block size for splitting an output dimension of length `len`: about 16 blocks, at least
/// `min`, a multiple of 16. A function of the shape only (never of the thread count).
pub fn split_block(len: usize, min: usize) -> usize {
    let target = len.div_ceil(16).div_ceil(16) * 16;
    target.max(min).max(1)
}

/// `C (=|+=) Σ_s A_s·B_s` where the sum over `s` runs in index order; the output is split
/// into column blocks of [`split_block`]`(n, 32)` columns (or row blocks when `C` has fewer
/// columns than rows), one task per block. `terms(s)` yields the views of term `s`.
///
/// This is the shape of every parameter-gradient reduction `dW = Σ_blocks gᵀ a`: the sum over
/// example blocks stays in a fixed order inside each task.
pub fn gemm_sum<'a, T: Real, F>(par: Par, c: MatMut<'_, T>, accum: Accum, nterms: usize, terms: F)
where
    F: Fn(usize) -> (MatRef<'a, T>, MatRef<'a, T>) + Sync,
{
    let (m, n) = (c.nrows(), c.ncols());
    if m == 0 || n == 0 {
        return;
    }
    let by_cols = n >= m;
    let len = if by_cols { n } else { m };
    let bs = split_block(len, 32);
    let mut blocks: Vec<(usize, MatMut<'_, T>)> = Vec::with_capacity(len.div_ceil(bs));
    let mut rest = c;
    let mut start = 0;
    while start < len {
        let w = bs.min(len - start);
        let (head, tail) = if by_cols {
            rest.split_at_col_mut(w)
        } else {
            rest.split_at_row_mut(w)
        };
        blocks.push((start, head));
        rest = tail;
        start += w;
    }
    let run = |(start, mut blk): (usize, MatMut<'_, T>)| {
        let w = if by_cols { blk.ncols() } else { blk.nrows() };
        if nterms == 0 && accum == Accum::Replace {
            blk.fill(T::ZERO);
        }
        for s in 0..nterms {
            let (a, b) = terms(s);
            let acc = if s == 0 { accum } else { Accum::Add };
            if by_cols {
                gemm(blk.as_mut(), acc, a, b.subcols(start, w));
            } else {
                gemm(blk.as_mut(), acc, a.subrows(start, w), b);
            }
        }
    };
    match par {
        Par::Seq => blocks.into_iter().for_each(run),
        Par::Rayon => blocks.into_par_iter().for_each(run),
    }
}

/// `C (=|+=) A·B` with the output split as in [`gemm_sum`].
pub fn gemm_par<T: Real>(
    par: Par,
    c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    gemm_sum(par, c, accum, 1, |_| (a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a strided row-major view must address `s[i*ld + j]` (faer's own
    /// constructor for mutable strided row-major views swaps the strides).
    #[test]
    fn strided_views_address_row_major_elements() {
        let mut s = [0f64; 3 * 5];
        {
            let mut m = view_mut_ld(&mut s[1..], 3, 2, 5);
            for i in 0..3 {
                for j in 0..2 {
                    *m.rb_mut().get_mut(i, j) = (10 * i + j) as f64 + 1.0;
                }
            }
        }
        for i in 0..3 {
            for j in 0..5 {
                let want = if (1..3).contains(&j) {
                    (10 * i + j - 1) as f64 + 1.0
                } else {
                    0.0
                };
                assert_eq!(s[i * 5 + j], want, "element ({i},{j})");
            }
        }
        let r = view_ld(&s[1..], 3, 2, 5);
        assert_eq!(r[(2, 1)], 22.0);
    }

    #[test]
    fn parallel_sums_match_sequential_products_bitwise() {
        let (m, n, k) = (37, 300, 50);
        let a: Vec<f64> = (0..m * k)
            .map(|i| ((i * 7919) % 101) as f64 / 101.0 - 0.5)
            .collect();
        let b: Vec<f64> = (0..k * n)
            .map(|i| ((i * 104729) % 97) as f64 / 97.0 - 0.5)
            .collect();
        let mut naive = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                naive[i * n + j] = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
            }
        }
        let mut seq = vec![f64::NAN; m * n];
        gemm_par(
            Par::Seq,
            view_mut(&mut seq, m, n),
            Accum::Replace,
            view(&a, m, k),
            view(&b, k, n),
        );
        let mut par = vec![f64::NAN; m * n];
        crate::par::with_threads(3, |p| {
            gemm_par(
                p,
                view_mut(&mut par, m, n),
                Accum::Replace,
                view(&a, m, k),
                view(&b, k, n),
            )
        });
        assert!(seq
            .iter()
            .zip(&par)
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(seq.iter().zip(&naive).all(|(x, y)| (x - y).abs() < 1e-12));
    }
}
