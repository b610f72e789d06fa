//! The example-local products of the layers after the first (`a·Wᵀ`, `g·W` and their R-pass
//! forms with the directions), one row block at a time.
//!
//! Where the first layer runs on eosbench's own GEMM (f32 on AVX-512, [`NetConfig::own_gemm`])
//! these do too, with every right operand packed once: `W_lᵀ` and `W_l` per parameter point,
//! the directions' stacked `V_lᵀ` and side-by-side `V_l` per product. faer, which packs its right
//! operand on every call, runs them otherwise ([`super::layer`]). Each product is small (a block
//! of 128 examples against a 200 × 200 matrix at the Figure-1 shape), so the packing matters.
//! Phases example, h = 200, 1 thread, three alternating runs: the R-passes outside the first
//! layer took 9.1–9.5 ms per single product against 10.1–10.3 on faer, 8.4–8.5 against 8.9–9.0
//! per direction of a block of 4. The third-order pass keeps faer for its own products.
//!
//! [`NetConfig::own_gemm`]: super::NetConfig::own_gemm

use super::first::FirstLayer;
use super::layer;
use crate::model::Layout;
use crate::real::Real;

#[cfg(target_arch = "x86_64")]
use crate::kernels::{self, sgemm::PackedB};

/// Layer `l ≥ 1` (`hi` inputs, `ho` outputs) on a block of `rows` examples and `b` directions.
#[derive(Clone, Copy)]
pub(super) struct At {
    pub l: usize,
    pub rows: usize,
    pub b: usize,
    pub hi: usize,
    pub ho: usize,
}

/// The forward or the backward product with a layer's weights (see [`Hidden::weights`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Weights {
    Forward,
    Backward,
}

/// Which GEMM runs the hidden layers' example-local products, with its packed operands.
pub(super) enum Hidden {
    Faer,
    #[cfg(target_arch = "x86_64")]
    Own(Box<Packs>),
}

/// Packed right operands, per layer (index 0, the first layer, stays empty).
#[cfg(target_arch = "x86_64")]
pub(super) struct Packs {
    /// `W_lᵀ` (`hi × ho`) and `W_l` (`ho × hi`) at the current parameters.
    wt: Vec<PackedB>,
    w: Vec<PackedB>,
    /// The current product's stacked `V_lᵀ` (`hi × b·ho`) and side-by-side `V_l` (`ho × b·hi`).
    vt: Vec<PackedB>,
    vside: Vec<PackedB>,
}

impl Hidden {
    /// Own GEMM exactly where the first layer has it (the same conditions: f32, AVX-512,
    /// `own_gemm`), faer elsewhere.
    pub(super) fn new(first: &FirstLayer, layers: usize) -> Self {
        match first {
            FirstLayer::Faer => Hidden::Faer,
            #[cfg(target_arch = "x86_64")]
            FirstLayer::Own { .. } => {
                let empty = || (0..layers).map(|_| PackedB::default()).collect();
                Hidden::Own(Box::new(Packs {
                    wt: empty(),
                    w: empty(),
                    vt: empty(),
                    vside: empty(),
                }))
            }
        }
    }

    /// Packs `W_lᵀ` and `W_l` of every layer after the first, from `params`.
    pub(super) fn set_params<T: Real>(&mut self, dims: &[usize], layout: &Layout, params: &[T]) {
        #[cfg(target_arch = "x86_64")]
        if let Hidden::Own(p) = self {
            for l in 1..dims.len() - 1 {
                let (hi, ho) = (dims[l], dims[l + 1]);
                let w = kernels::cast_f32(&params[layout.layers[l].w_range()]);
                kernels::sgemm::pack_transposed(w, ho, hi, &mut p.wt[l]);
                kernels::sgemm::pack_rows(w, ho, hi, &mut p.w[l]);
            }
        }
        let _ = (dims, layout, params);
    }

    /// Packs the stacked directions `V_lᵀ` and, for the Hessian (`side`), the side-by-side
    /// `V_l` of every layer after the first.
    pub(super) fn set_directions<T: Real>(
        &mut self,
        dims: &[usize],
        b: usize,
        v_stack: &[Vec<T>],
        v_side: Option<&[Vec<T>]>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Hidden::Own(p) = self {
            for l in 1..dims.len() - 1 {
                let (hi, ho) = (dims[l], dims[l + 1]);
                let v = kernels::cast_f32(&v_stack[l][..b * ho * hi]);
                kernels::sgemm::pack_transposed(v, b * ho, hi, &mut p.vt[l]);
                if let Some(side) = v_side {
                    let vs = kernels::cast_f32(&side[l][..ho * b * hi]);
                    kernels::sgemm::pack_rows(vs, ho, b * hi, &mut p.vside[l]);
                }
            }
        }
        let _ = (dims, b, v_stack, v_side);
    }

    /// The products with a layer's weights at `at` (`at.b` unused): the forward
    /// `z = a_prev·W_lᵀ` (`Weights::Forward`, `a` is `a_prev`, `c` is `z`) or the backward
    /// `da_prev = g·W_l` (`Weights::Backward`, `a` is `g`, `c` is `da_prev`).
    pub(super) fn weights<T: Real>(&self, which: Weights, at: At, a: &[T], w: &[T], c: &mut [T]) {
        let At {
            l, rows, hi, ho, ..
        } = at;
        let fwd = which == Weights::Forward;
        let (k, n) = if fwd { (hi, ho) } else { (ho, hi) };
        let (a, c) = (&a[..rows * k], &mut c[..rows * n]);
        match self {
            Hidden::Faer if fwd => layer::forward(rows, hi, ho, a, w, c),
            Hidden::Faer => layer::backward(rows, hi, ho, a, w, c),
            #[cfg(target_arch = "x86_64")]
            Hidden::Own(p) => times(a, rows, if fwd { &p.wt[l] } else { &p.w[l] }, c, false),
        }
    }

    /// R-forward at `at`: `r_z = r_a_prev·Wᵀ + a_prev·Vᵀ` (see [`layer::rforward`] for the
    /// layouts).
    pub(super) fn rforward<T: Real>(
        &self,
        at: At,
        (a_prev, ra_prev): (&[T], &[T]),
        (w, v_stack): (&[T], &[T]),
        rz: &mut [T],
    ) {
        let At { l, rows, b, hi, ho } = at;
        let (a_prev, ra_prev) = (&a_prev[..rows * hi], &ra_prev[..rows * b * hi]);
        let rz = &mut rz[..rows * b * ho];
        match self {
            Hidden::Faer => layer::rforward(rows, b, hi, ho, a_prev, Some(ra_prev), w, v_stack, rz),
            #[cfg(target_arch = "x86_64")]
            Hidden::Own(p) => {
                times(ra_prev, rows * b, &p.wt[l], rz, false);
                times(a_prev, rows, &p.vt[l], rz, true);
            }
        }
    }

    /// R-backward at `at`: `r_da_prev = r_g·W (+ g·V` when `v_side` is given, the Hessian; see
    /// [`layer::rbackward`]).
    pub(super) fn rbackward<T: Real>(
        &self,
        at: At,
        (rg, g): (&[T], &[T]),
        (w, v_side): (&[T], Option<&[T]>),
        rda_prev: &mut [T],
    ) {
        let At { l, rows, b, hi, ho } = at;
        let (rg, g) = (&rg[..rows * b * ho], &g[..rows * ho]);
        let rda_prev = &mut rda_prev[..rows * b * hi];
        match self {
            Hidden::Faer => layer::rbackward(rows, b, hi, ho, rg, g, w, v_side, rda_prev),
            #[cfg(target_arch = "x86_64")]
            Hidden::Own(p) => {
                times(rg, rows * b, &p.w[l], rda_prev, false);
                if v_side.is_some() {
                    times(g, rows, &p.vside[l], rda_prev, true);
                }
            }
        }
    }
}

/// `C (=|+=) A·B` through the own GEMM (only reached for f32: [`Hidden::Own`] is built only
/// where the first layer runs on it).
#[cfg(target_arch = "x86_64")]
fn times<T: Real>(a: &[T], rows: usize, b: &PackedB, c: &mut [T], add: bool) {
    let (a, c) = (kernels::cast_f32(a), kernels::cast_f32_mut(c));
    kernels::sgemm::times_packed(a, rows, b, c, add);
}
