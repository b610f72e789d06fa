//! One affine layer `z = a_prev·Wᵀ + 1·bᵀ` (then `a = σ(z)` for hidden layers): its four passes
//! side by side, on one block of `rows` examples (house rule 1).
//!
//! Shapes: `a_prev` is `rows × hi`, `W` is `ho × hi` (row-major, PyTorch convention), `z`, `a`,
//! `g` are `rows × ho`. For `b` directions, R-quantities are `rows × (b·ho)` with direction `j`
//! in columns `j·ho..(j+1)·ho` — the same buffer viewed as `(rows·b) × ho` holds one row per
//! (example, direction) pair, which is what lets one GEMM serve all `b` directions.
//! Direction weights arrive "stacked": `V` is `(b·ho) × hi` (direction `j` in rows
//! `j·ho..(j+1)·ho`) and "side by side": `V_side` is `ho × (b·hi)`.

use crate::kernels::gemm::{gemm, view, view_mut};
use crate::real::Real;
use faer::Accum;

/// Forward: `z = a_prev·Wᵀ` (bias and activation are applied by the caller's fused kernel).
#[inline(never)]
pub fn forward<T: Real>(rows: usize, hi: usize, ho: usize, a_prev: &[T], w: &[T], z: &mut [T]) {
    gemm(
        view_mut(z, rows, ho),
        Accum::Replace,
        view(a_prev, rows, hi),
        view(w, ho, hi).transpose(),
    );
}

/// Backward through the weights: `da_prev = g·W` (`rows × ho` · `ho × hi`).
#[inline(never)]
pub fn backward<T: Real>(rows: usize, hi: usize, ho: usize, g: &[T], w: &[T], da_prev: &mut [T]) {
    gemm(
        view_mut(da_prev, rows, hi),
        Accum::Replace,
        view(g, rows, ho),
        view(w, ho, hi),
    );
}

/// R-forward: `r_z = r_a_prev·Wᵀ + a_prev·Vᵀ` for `b` directions (`r_a_prev = None` for the
/// first layer, where `r_a_0 = 0`); the caller adds `c` and applies `σ'`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn rforward<T: Real>(
    rows: usize,
    b: usize,
    hi: usize,
    ho: usize,
    a_prev: &[T],
    ra_prev: Option<&[T]>,
    w: &[T],
    v_stack: &[T],
    rz: &mut [T],
) {
    let mut acc = Accum::Replace;
    if let Some(ra) = ra_prev {
        gemm(
            view_mut(rz, rows * b, ho),
            Accum::Replace,
            view(ra, rows * b, hi),
            view(w, ho, hi).transpose(),
        );
        acc = Accum::Add;
    }
    gemm(
        view_mut(rz, rows, b * ho),
        acc,
        view(a_prev, rows, hi),
        view(v_stack, b * ho, hi).transpose(),
    );
}

/// R-backward through the weights: `r_da_prev = r_g·W (+ g·V` for the Hessian; the
/// Gauss–Newton operator drops it).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn rbackward<T: Real>(
    rows: usize,
    b: usize,
    hi: usize,
    ho: usize,
    rg: &[T],
    g: &[T],
    w: &[T],
    v_side: Option<&[T]>,
    rda_prev: &mut [T],
) {
    gemm(
        view_mut(rda_prev, rows * b, hi),
        Accum::Replace,
        view(rg, rows * b, ho),
        view(w, ho, hi),
    );
    if let Some(vs) = v_side {
        gemm(
            view_mut(rda_prev, rows, b * hi),
            Accum::Add,
            view(g, rows, ho),
            view(vs, ho, b * hi),
        );
    }
}
