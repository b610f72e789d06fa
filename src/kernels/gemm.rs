//! GEMM on row-major buffers, through faer, with deterministic blocking.
//!
//! Every product here is `C (=|+=) A·B` where `A`, `B`, `C` are faer views over row-major slices
//! (transposes are free views). Parallel variants cut the output (and, for small outputs with a
//! long inner dimension, the inner dimension) into pieces whose sizes depend only on the problem
//! shape, give each piece to one task that calls faer with `Par::Seq`, and add partial products
//! in a fixed order. So a result is bit-identical for every thread count (DESIGN §5), and nested
//! parallelism never oversubscribes.

use crate::par::Par;
use crate::real::Real;
use faer::linalg::matmul::matmul;
#[cfg(test)]
use faer::reborrow::ReborrowMut;
use faer::{Accum, MatMut, MatRef};

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

/// Output tiles `(rows, cols)` for an `m × n` product: rows in tiles of at most 256 (so a tall
/// output, such as `b` stacked directions, is cut into per-direction-sized pieces), columns cut
/// into at most `16 / row tiles` pieces of at least 128 columns, mid-size widths (257–639)
/// halved. A function of the shape only, never of the thread count.
///
/// Why: every tile is one sequential GEMM that packs its own copy of its rows of the left
/// operand (`m × k`, with `k` = all the examples of a batch), so a tile must be wide enough for
/// that packing to stay small next to its `2·rows·cols·k` flops (measured on the first-layer sum
/// `(b·h) × 5000 · 5000 × 3072`: 800 × 192 tiles ran at 0.88 × the rate of 200 × 768 tiles), yet
/// tiles must be numerous enough to keep 16 threads busy; [`gemm_par`] splits `k` as well when
/// the output alone gives too few tiles.
pub fn output_tiles(m: usize, n: usize) -> (usize, usize) {
    let row_tiles = m.div_ceil(256).max(1);
    let rt = m.div_ceil(row_tiles).max(1);
    let col_tiles = 16usize.div_ceil(row_tiles).min(n / 128).max(1);
    let mut ct = n.div_ceil(col_tiles).div_ceil(16) * 16;
    if (257..640).contains(&ct) {
        // Measured on the first-layer sums (k = 5000): 288- to 576-wide tiles run 10–20 %
        // slower than 192- or 768-wide ones (h = 400: the gradient's sums take 0.93 × the time
        // with 192-wide tiles instead of 384-wide ones), so mid-size widths are halved.
        ct = ct.div_ceil(2).div_ceil(16) * 16;
    }
    (rt, ct.min(n).max(1))
}

/// Number of consecutive pieces the reduction dimension `k` of a product with `tiles` output
/// tiles is cut into: enough for about 8 tasks in all, each piece at least 1024 long.
pub fn k_splits(tiles: usize, k: usize) -> usize {
    if tiles >= 8 {
        return 1;
    }
    8usize.div_ceil(tiles.max(1)).min(k / 1024).max(1)
}

/// `C (=|+=) A·B` on the pool of `par`: the output is cut into the tiles of [`output_tiles`],
/// one task per tile. When that gives fewer than 8 tiles and `k` is long (the parameter sums of
/// small layers, whose inner dimension is the number of examples), `k` is cut into the
/// [`k_splits`] consecutive pieces as well: each (tile, piece) task writes its own partial
/// product, and the partials are added to `C` in piece order.
///
/// Every cut depends on the shape only, so the result is bit-identical for every thread count.
pub fn gemm_par<T: Real>(
    par: Par,
    c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
) {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    if m == 0 || n == 0 {
        return;
    }
    let (rt, ct) = output_tiles(m, n);
    let splits = k_splits(m.div_ceil(rt) * n.div_ceil(ct), k);
    if splits == 1 {
        tiled(par, c, accum, a, b, (rt, ct));
        return;
    }
    let kc = k.div_ceil(splits);
    let mut parts = vec![T::ZERO; splits * m * n];
    let run = |(s, part): (usize, &mut [T])| {
        let k0 = (s * kc).min(k);
        let kw = kc.min(k - k0);
        gemm(
            view_mut(part, m, n),
            Accum::Replace,
            a.subcols(k0, kw),
            b.subrows(k0, kw),
        );
    };
    par.each(parts.chunks_mut(m * n).enumerate(), run);
    let mut c = c;
    for i in 0..m {
        for j in 0..n {
            let mut v = if accum == Accum::Add {
                c[(i, j)]
            } else {
                T::ZERO
            };
            for part in parts.chunks_exact(m * n) {
                v += part[i * n + j];
            }
            c[(i, j)] = v;
        }
    }
}

/// `C (=|+=) A·B` with one task per output tile of size `(rt, ct)`.
fn tiled<T: Real>(
    par: Par,
    c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    (rt, ct): (usize, usize),
) {
    let (m, n) = (c.nrows(), c.ncols());
    let mut tiles: Vec<(usize, usize, MatMut<'_, T>)> = Vec::new();
    let mut rest_rows = c;
    let mut i0 = 0;
    while i0 < m {
        let h = rt.min(m - i0);
        let (band, below) = rest_rows.split_at_row_mut(h);
        rest_rows = below;
        let mut rest = band;
        let mut j0 = 0;
        while j0 < n {
            let w = ct.min(n - j0);
            let (tile, right) = rest.split_at_col_mut(w);
            tiles.push((i0, j0, tile));
            rest = right;
            j0 += w;
        }
        i0 += h;
    }
    let run = |(i0, j0, tile): (usize, usize, MatMut<'_, T>)| {
        let (h, w) = (tile.nrows(), tile.ncols());
        gemm(tile, accum, a.subrows(i0, h), b.subcols(j0, w));
    };
    par.each(tiles, run);
}

/// `C (=|+=) A·B` with the output cut into bands of `band` rows, one task per band (for tall
/// products whose rows are examples: each band reads its own rows of `A` once and shares `B`).
/// The bands depend on the shape and `band` only, never on the thread count.
pub fn gemm_rows<T: Real>(
    par: Par,
    c: MatMut<'_, T>,
    accum: Accum,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    band: usize,
) {
    let n = c.ncols().max(1);
    tiled(par, c, accum, a, b, (band.max(1), n));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic row-major operands `A` (`m × k`), `B` (`k × n`) and their naive product.
    fn operands(m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
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
        (a, b, naive)
    }

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
    fn output_tiles_follow_the_shape() {
        // First-layer sums: one direction (200 rows) and a block of four (800 rows).
        assert_eq!(output_tiles(200, 3072), (200, 192));
        assert_eq!(output_tiles(800, 3072), (200, 768));
        // Tiles are at least 128 wide (or the whole width).
        assert_eq!(output_tiles(200, 200), (200, 200));
        assert_eq!(output_tiles(200, 800), (200, 144));
        // Mid-size widths are halved: 400 × 3072 would get 384-wide tiles.
        assert_eq!(output_tiles(400, 3072), (200, 192));
        assert_eq!(output_tiles(10, 40), (10, 40));
        // Uneven heights are balanced: 300 rows → two bands of 150.
        assert_eq!(output_tiles(300, 1000).0, 150);
        // Few tiles and a long inner dimension: split it; many tiles or a short one: don't.
        assert_eq!(k_splits(1, 5000), 4);
        assert_eq!(k_splits(1, 50_000), 8);
        assert_eq!(k_splits(4, 5000), 2);
        assert_eq!(k_splits(16, 5000), 1);
        assert_eq!(k_splits(1, 1500), 1);
    }

    /// Small output, long inner dimension (the inner dimension is split): bit-identical at 1, 2
    /// and 3 threads, for both `Replace` and `Add`, and equal to a naive product.
    #[test]
    fn split_inner_dimension_is_bitwise_stable_and_accumulates() {
        let (m, n, k) = (30, 20, 5000);
        assert!(k_splits(1, k) > 1);
        let (a, b, naive) = operands(m, n, k);
        let c0: Vec<f64> = (0..m * n).map(|i| i as f64).collect();
        let mut runs = Vec::new();
        for threads in [1, 2, 3] {
            let mut c = c0.clone();
            crate::par::with_threads(threads, |p| {
                gemm_par(
                    p,
                    view_mut(&mut c, m, n),
                    Accum::Add,
                    view(&a, m, k),
                    view(&b, k, n),
                )
            });
            runs.push(c);
        }
        for (i, &dot) in naive.iter().enumerate() {
            assert!((runs[0][i] - c0[i] - dot).abs() < 1e-9, "element {i}");
        }
        for r in &runs[1..] {
            assert!(r
                .iter()
                .zip(&runs[0])
                .all(|(x, y)| x.to_bits() == y.to_bits()));
        }
        let mut fresh = vec![f64::NAN; m * n];
        gemm_par(
            Par::Seq,
            view_mut(&mut fresh, m, n),
            Accum::Replace,
            view(&a, m, k),
            view(&b, k, n),
        );
        assert!(fresh
            .iter()
            .zip(runs[0].iter().zip(&c0))
            .all(|(f, (r, c))| (f - (r - c)).abs() < 1e-9));
    }

    /// `C = A·B` by every parallel entry point, at 1, 2 and 3 threads, against a naive product.
    #[test]
    fn tiled_and_banded_products_are_bitwise_stable_across_threads() {
        let (m, n, k) = (600, 150, 40);
        let (a, b, naive) = operands(m, n, k);
        let mut runs: Vec<Vec<f64>> = Vec::new();
        for threads in [1, 2, 3] {
            for banded in [false, true] {
                let mut c = vec![f64::NAN; m * n];
                crate::par::with_threads(threads, |p| {
                    let (cv, av, bv) = (view_mut(&mut c, m, n), view(&a, m, k), view(&b, k, n));
                    if banded {
                        gemm_rows(p, cv, Accum::Replace, av, bv, 128);
                    } else {
                        gemm_par(p, cv, Accum::Replace, av, bv);
                    }
                });
                assert!(c.iter().zip(&naive).all(|(x, y)| (x - y).abs() < 1e-12));
                runs.push(c);
            }
        }
        for pair in runs.chunks(2).collect::<Vec<_>>().windows(2) {
            for (r0, r1) in pair[0].iter().zip(pair[1]) {
                assert!(r0.iter().zip(r1).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
    }

    #[test]
    fn parallel_sums_match_sequential_products_bitwise() {
        let (m, n, k) = (37, 300, 50);
        let (a, b, naive) = operands(m, n, k);
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
