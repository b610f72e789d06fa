//! Tiled storage for the tall `n × c` blocks of the Lanczos solver and the passes over them.
//!
//! Rows are split into tiles of `tile_rows` rows (the last one shorter). A tile owns *all*
//! columns of its rows for `Q`, `W = A Q`, the pending block `X` and a scratch block, each stored
//! column-major inside the tile (column `j` of `q` is `q[j*rows..(j+1)*rows]`). A pass runs a
//! closure on every tile (sequentially or on the rayon pool); a reduction writes one partial per
//! tile into `part` and [`reduce`] adds the partials in tile order. Tile boundaries depend only on
//! `n` and `tile_rows`, so every result is independent of the number of threads.
//!
//! Small matrices passed to the passes are column-major with leading dimension = row count.
//! Inside a tile, products with several basis columns are faer GEMMs run with `Par::Seq`: their
//! summation order depends only on the (fixed) tile shapes.

use crate::Par;
use faer::{Accum, MatMut, MatRef};

/// The rows `row0 .. row0 + rows` of every tall block.
pub(crate) struct Tile {
    pub row0: usize,
    pub rows: usize,
    /// Basis `Q`, `rows × cap`.
    pub q: Vec<f64>,
    /// Image `W = A Q`, `rows × cap`.
    pub w: Vec<f64>,
    /// Pending block `X`, `rows × b`.
    pub x: Vec<f64>,
    /// Scratch, `rows × max(cap, b)`.
    pub z: Vec<f64>,
    /// Per-tile partial sums of the current reduction.
    pub part: Vec<f64>,
}

impl Tile {
    #[inline]
    fn col(buf: &[f64], rows: usize, j: usize) -> &[f64] {
        &buf[j * rows..(j + 1) * rows]
    }
}

/// `rows × cols` column-major view of the front of `buf`.
#[inline]
fn mref(buf: &[f64], rows: usize, cols: usize) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(&buf[..rows * cols], rows, cols)
}

#[inline]
fn mmut(buf: &mut [f64], rows: usize, cols: usize) -> MatMut<'_, f64> {
    MatMut::from_column_major_slice_mut(&mut buf[..rows * cols], rows, cols)
}

/// `dst = alpha · lhs · rhs` (`Replace`) or `dst += alpha · lhs · rhs` (`Add`), sequential.
#[inline]
fn gemm(
    dst: MatMut<'_, f64>,
    accum: Accum,
    lhs: MatRef<'_, f64>,
    rhs: MatRef<'_, f64>,
    alpha: f64,
) {
    faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, faer::Par::Seq);
}

/// Splits `n` rows into tiles with room for `cap` basis columns, `b` block columns and
/// `part_len` partial sums.
pub(crate) fn make_tiles(
    n: usize,
    tile_rows: usize,
    cap: usize,
    b: usize,
    part_len: usize,
) -> Vec<Tile> {
    let mut tiles = Vec::with_capacity(n.div_ceil(tile_rows));
    let mut row0 = 0;
    while row0 < n {
        let rows = tile_rows.min(n - row0);
        tiles.push(Tile {
            row0,
            rows,
            q: vec![0.0; rows * cap],
            w: vec![0.0; rows * cap],
            x: vec![0.0; rows * b],
            z: vec![0.0; rows * cap.max(b)],
            part: vec![0.0; part_len],
        });
        row0 += rows;
    }
    tiles
}

/// Runs `f` on every tile; each call touches only its own tile.
pub(crate) fn for_tiles<F: Fn(&mut Tile) + Sync + Send>(par: Par, tiles: &mut [Tile], f: F) {
    par.each(tiles.iter_mut(), f);
}

/// `out[i] = Σ_tiles part[i]` for `i < len`, added in tile order.
pub(crate) fn reduce(tiles: &[Tile], len: usize, out: &mut [f64]) {
    let out = &mut out[..len];
    out.fill(0.0);
    for t in tiles {
        for (o, p) in out.iter_mut().zip(&t.part[..len]) {
            *o += p;
        }
    }
}

/// `Σ aᵢ bᵢ` with eight interleaved accumulators combined in a fixed tree (vectorizes, and
/// the result depends only on the inputs).
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += alpha · x`.
#[inline]
pub(crate) fn axpy(y: &mut [f64], alpha: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Copies columns `c0..c1` of the column-major `n × ·` buffer `src` into columns `c0..c1` of
/// every tile's `x`.
pub(crate) fn scatter_x(par: Par, tiles: &mut [Tile], src: &[f64], n: usize, c0: usize, c1: usize) {
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        for j in c0..c1 {
            t.x[j * r..(j + 1) * r].copy_from_slice(&src[j * n + t.row0..j * n + t.row0 + r]);
        }
    });
}

/// Copies basis columns `m0..m0+c` of `Q` into the column-major `n × c` buffer `dst`.
pub(crate) fn gather_q(par: Par, tiles: &[Tile], dst: &mut [f64], n: usize, m0: usize, c: usize) {
    let tile_rows = tiles.first().map_or(1, |t| t.rows);
    let body = |(j, col): (usize, &mut [f64])| {
        for (seg, t) in col.chunks_mut(tile_rows).zip(tiles) {
            seg.copy_from_slice(Tile::col(&t.q, t.rows, m0 + j));
        }
    };
    par.each(dst[..n * c].chunks_mut(n).enumerate(), body);
}

/// Pass A. Stores the new products (`c` columns of `y`, column-major `n × c`) as `W` columns
/// `m0..m0+c`, then reduces `G = Q[:, ..m0+c]ᵀ W_new` (`(m0+c) × c`) followed by the `c` squared
/// norms `‖W_new,j‖²`. Result length `(m0+c)·c + c`.
pub(crate) fn store_and_project(
    par: Par,
    tiles: &mut [Tile],
    y: &[f64],
    n: usize,
    m0: usize,
    c: usize,
    out: &mut [f64],
) {
    let ma = m0 + c;
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        for j in 0..c {
            t.w[(m0 + j) * r..(m0 + j + 1) * r]
                .copy_from_slice(&y[j * n + t.row0..j * n + t.row0 + r]);
        }
        let w_new = mref(&t.w[m0 * r..], r, c);
        gemm(
            mmut(&mut t.part, ma, c),
            Accum::Replace,
            mref(&t.q, r, ma).transpose(),
            w_new,
            1.0,
        );
        for j in 0..c {
            let wj = Tile::col(&t.w, r, m0 + j);
            t.part[ma * c + j] = dot(wj, wj);
        }
    });
    reduce(tiles, ma * c + c, out);
}

/// Pass B. With `ma` basis columns, the newest block at `m0..ma` (`c = ma − m0` columns) and
/// `G1 = Qᵀ W_new` (`ma × c`): forms the first projection `X = W_new − Q G1` and reduces
/// `G2 = Qᵀ X` (`ma × c`) followed by the Gram `XᵀX` (`c × c`). Result length `ma·c + c·c`.
pub(crate) fn project_new(
    par: Par,
    tiles: &mut [Tile],
    ma: usize,
    m0: usize,
    g1: &[f64],
    out: &mut [f64],
) {
    let c = ma - m0;
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        t.x[..c * r].copy_from_slice(&t.w[m0 * r..ma * r]);
        let q = mref(&t.q, r, ma);
        gemm(mmut(&mut t.x, r, c), Accum::Add, q, mref(g1, ma, c), -1.0);
        gemm(
            mmut(&mut t.part, ma, c),
            Accum::Replace,
            q.transpose(),
            mref(&t.x, r, c),
            1.0,
        );
        for j in 0..c {
            for i in 0..=j {
                let v = dot(Tile::col(&t.x, r, i), Tile::col(&t.x, r, j));
                t.part[ma * c + i + j * c] = v;
                t.part[ma * c + j + i * c] = v;
            }
        }
    });
    reduce(tiles, ma * c + c * c, out);
}

/// For the `kk` Ritz pairs `(θₗ, sₗ)` over `ma` basis columns (`s` is `ma × kk`) reduces
/// `‖Q sₗ‖²` (entries `0..kk`) and the true residual `‖W sₗ − θₗ Q sₗ‖²` (entries `kk..2kk`).
pub(crate) fn ritz_residuals(
    par: Par,
    tiles: &mut [Tile],
    ma: usize,
    s: &[f64],
    theta: &[f64],
    out: &mut [f64],
) {
    let kk = theta.len();
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        for l in 0..kk {
            let sl = mref(&s[l * ma..], ma, 1);
            gemm(
                mmut(&mut t.z, r, 1),
                Accum::Replace,
                mref(&t.q, r, ma),
                sl,
                1.0,
            );
            t.part[l] = dot(&t.z[..r], &t.z[..r]);
            for v in &mut t.z[..r] {
                *v *= -theta[l];
            }
            gemm(mmut(&mut t.z, r, 1), Accum::Add, mref(&t.w, r, ma), sl, 1.0);
            t.part[kk + l] = dot(&t.z[..r], &t.z[..r]);
        }
    });
    reduce(tiles, 2 * kk, out);
}

/// `X[:, j] ← scaleⱼ · (W sⱼ − θⱼ Q sⱼ)` for the `c = θ.len()` Ritz pairs `(θⱼ, sⱼ)` over `ma`
/// basis columns (`s` is `ma × c`): their residual vectors, as the next block's candidates.
pub(crate) fn residuals_to_x(
    par: Par,
    tiles: &mut [Tile],
    ma: usize,
    s: &[f64],
    theta: &[f64],
    scale: &[f64],
) {
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        for (j, (&th, &sc)) in theta.iter().zip(scale).enumerate() {
            let sj = mref(&s[j * ma..], ma, 1);
            let xj = mmut(&mut t.x[j * r..], r, 1);
            gemm(xj, Accum::Replace, mref(&t.w, r, ma), sj, sc);
            let xj = mmut(&mut t.x[j * r..], r, 1);
            gemm(xj, Accum::Add, mref(&t.q, r, ma), sj, -th * sc);
        }
    });
}

/// What a subtract pass reduces afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// `Q[:, ..m]ᵀ X` (`m × c`), for another Gram–Schmidt pass.
    Project,
    /// The Gram `XᵀX` (`c × c`, both triangles).
    Gram,
}

/// `X[:, ..c] −= Q[:, ..m] G` (`G` is `m × c`; skipped when `g` is `None`), then reduces what
/// `then` says. Returns the result length.
pub(crate) fn subtract_then(
    par: Par,
    tiles: &mut [Tile],
    m: usize,
    c: usize,
    g: Option<&[f64]>,
    then: Then,
    out: &mut [f64],
) -> usize {
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        if let Some(g) = g {
            gemm(
                mmut(&mut t.x, r, c),
                Accum::Add,
                mref(&t.q, r, m),
                mref(g, m, c),
                -1.0,
            );
        }
        match then {
            Then::Project => {
                gemm(
                    mmut(&mut t.part, m, c),
                    Accum::Replace,
                    mref(&t.q, r, m).transpose(),
                    mref(&t.x, r, c),
                    1.0,
                );
            }
            Then::Gram => gram_x(t, c),
        }
    });
    let len = match then {
        Then::Project => m * c,
        Then::Gram => c * c,
    };
    reduce(tiles, len, out);
    len
}

/// `part = X[:, ..c]ᵀ X[:, ..c]`, both triangles.
fn gram_x(t: &mut Tile, c: usize) {
    let r = t.rows;
    for j in 0..c {
        for i in 0..=j {
            let v = dot(Tile::col(&t.x, r, i), Tile::col(&t.x, r, j));
            t.part[i + j * c] = v;
            t.part[j + i * c] = v;
        }
    }
}

/// `X[:, ..c_out] ← X[:, ..c_in] M` (`M` is `c_in × c_out`), then reduces the Gram of the
/// result (`c_out × c_out`).
pub(crate) fn transform_x_gram(
    par: Par,
    tiles: &mut [Tile],
    c_in: usize,
    c_out: usize,
    mtx: &[f64],
    out: &mut [f64],
) {
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        gemm(
            mmut(&mut t.z, r, c_out),
            Accum::Replace,
            mref(&t.x, r, c_in),
            mref(mtx, c_in, c_out),
            1.0,
        );
        t.x[..c_out * r].copy_from_slice(&t.z[..c_out * r]);
        gram_x(t, c_out);
    });
    reduce(tiles, c_out * c_out, out);
}

/// `Q[:, m..m+c_out] ← X[:, ..c_in] M` (`M` is `c_in × c_out`): installs the new block.
pub(crate) fn install_block(
    par: Par,
    tiles: &mut [Tile],
    m: usize,
    c_in: usize,
    c_out: usize,
    mtx: &[f64],
) {
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        let dst = mmut(&mut t.q[m * r..], r, c_out);
        gemm(
            dst,
            Accum::Replace,
            mref(&t.x, r, c_in),
            mref(mtx, c_in, c_out),
            1.0,
        );
    });
}

/// Thick restart: `Q[:, ..keep] ← Q[:, ..ma] S` and `W[:, ..keep] ← W[:, ..ma] S`
/// (`S` is `ma × keep`).
pub(crate) fn restart(par: Par, tiles: &mut [Tile], ma: usize, keep: usize, s: &[f64]) {
    for_tiles(par, tiles, |t| {
        let r = t.rows;
        for buf in [&mut t.q, &mut t.w] {
            gemm(
                mmut(&mut t.z, r, keep),
                Accum::Replace,
                mref(buf, r, ma),
                mref(s, ma, keep),
                1.0,
            );
            buf[..keep * r].copy_from_slice(&t.z[..keep * r]);
        }
    });
}

/// Writes `yₗ = scaleₗ · Q[:, ..ma] sₗ` into the column-major `n × kk` buffer `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ritz_vectors(
    par: Par,
    tiles: &[Tile],
    n: usize,
    ma: usize,
    s: &[f64],
    scale: &[f64],
    dst: &mut [f64],
) {
    let kk = scale.len();
    let tile_rows = tiles.first().map_or(1, |t| t.rows);
    let body = |(l, col): (usize, &mut [f64])| {
        for (seg, t) in col.chunks_mut(tile_rows).zip(tiles) {
            let rows = seg.len();
            gemm(
                mmut(seg, rows, 1),
                Accum::Replace,
                mref(&t.q, rows, ma),
                mref(&s[l * ma..], ma, 1),
                1.0,
            );
            for v in seg.iter_mut() {
                *v *= scale[l];
            }
        }
    };
    par.each(dst[..n * kk].chunks_mut(n).enumerate(), body);
}

/// `‖QᵀQ − I‖_max` over the first `m` basis columns (for tests).
#[cfg(test)]
pub(crate) fn orthogonality_error(tiles: &[Tile], m: usize) -> f64 {
    let mut err = 0.0f64;
    for i in 0..m {
        for j in 0..m {
            let mut s = 0.0;
            for t in tiles {
                s += dot(Tile::col(&t.q, t.rows, i), Tile::col(&t.q, t.rows, j));
            }
            let target = if i == j { 1.0 } else { 0.0 };
            err = err.max((s - target).abs());
        }
    }
    err
}
