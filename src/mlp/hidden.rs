//! The products of the layers after the first: the example-local ones (`a·Wᵀ`, `g·W` and their
//! R-pass forms with the directions), one row block at a time, and the sums over examples
//! (`gᵀ·a`, `r_gᵀ·a`, `r_aᵀ·g`).
//!
//! Where the first layer runs on eosbench's own GEMM (f32 on AVX-512, [`NetConfig::own_gemm`])
//! these do too, with every right operand packed once: `W_lᵀ` and `W_l` per parameter point,
//! the directions' stacked `V_lᵀ` and side-by-side `V_l` per product. faer, which packs its right
//! operand on every call, runs them otherwise ([`super::layer`]). Each product is small (a block
//! of 128 examples against a 200 × 200 matrix at the Figure-1 shape), so the packing matters.
//! Phases example, h = 200, 1 thread, three alternating runs: the R-passes outside the first
//! layer took 9.1–9.5 ms per single product against 10.1–10.3 on faer, 8.4–8.5 against 8.9–9.0
//! per direction of a block of 4. The third-order pass runs its R- and R²-passes here too, with
//! `U` and `2U` packed once per product.
//!
//! The curvature products' sums over examples (`r_gᵀ·a_{l−1}`, and the Hessian's `r_aᵀ·g_l`,
//! the transpose of `gᵀ·r_a`, so that the wide side `b·hi` is the rows) read the cached `a_{l−1}`
//! and `g_l` packed once per gradient, by the first product after it that reads them (`g_l`:
//! Hessian products only). Phases example, 1 thread, two alternating runs, the sums outside the
//! first layer per direction: at h = 200, 5.6–5.7 ms against 6.3–6.4 on faer for a single
//! product, 4.8 against 5.2 for a block of 4; at h = 800, 61–62 against 69–71 and 62 against
//! 67. The gradient's own sums stay on faer: one product does not repay the packing.
//!
//! [`NetConfig::own_gemm`]: super::NetConfig::own_gemm

use super::first::FirstLayer;
use super::layer;
use crate::kernels::gemm::{gemm_par, view, view_mut};
use crate::model::Layout;
use crate::par::Par;
use crate::real::Real;
use faer::Accum;

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
    /// A third-order product's `2U_l`, the same two ways.
    vt2: Vec<PackedB>,
    vside2: Vec<PackedB>,
    /// The cached input `a_{l−1}` (`n × hi`) and output gradient `g_l` (`n × ho`) of every
    /// layer after the first, the right operands of the curvature products' sums over examples
    /// (`r_gᵀ·a_{l−1}`, and the Hessian's `r_a_{l−1}ᵀ·g_l`), packed by the first product after a
    /// gradient that reads them.
    inputs: Vec<PackedB>,
    grads: Vec<PackedB>,
    /// Whether `inputs` and `grads` hold the current cached state.
    inputs_fresh: bool,
    grads_fresh: bool,
}

#[cfg(target_arch = "x86_64")]
impl Packs {
    /// The packings of `dirs`, per layer: stacked `V_lᵀ` and side-by-side `V_l`.
    fn dirs(&self, dirs: Dirs) -> (&[PackedB], &[PackedB]) {
        match dirs {
            Dirs::Current => (&self.vt, &self.vside),
            Dirs::Doubled => (&self.vt2, &self.vside2),
        }
    }
}

/// The directions of an R-pass product (see [`Hidden::rforward`]): those of the current product
/// ([`Hidden::set_directions`], or a third-order product's `U`), or a third-order product's `2U`
/// ([`Hidden::set_third`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dirs {
    Current,
    Doubled,
}

/// The cached right operand of a sum over examples (see [`Hidden::sum`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Cached {
    /// The layer's input `a_{l−1}`: `gᵀ·a_{l−1}` (weight gradients, `r_gᵀ·a_{l−1}`).
    Input,
    /// The layer's output gradient `g_l`: `r_a_{l−1}ᵀ·g_l` (the Hessian's second term).
    Grad,
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
                    vt2: empty(),
                    vside2: empty(),
                    inputs: empty(),
                    grads: empty(),
                    inputs_fresh: false,
                    grads_fresh: false,
                }))
            }
        }
    }

    /// Packs `W_lᵀ` and `W_l` of every layer after the first, from `params`.
    pub(super) fn set_params<T: Real>(
        &mut self,
        par: Par,
        dims: &[usize],
        layout: &Layout,
        params: &[T],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Hidden::Own(p) = self {
            for l in 1..dims.len() - 1 {
                let (hi, ho) = (dims[l], dims[l + 1]);
                let w = kernels::cast_f32(&params[layout.layers[l].w_range()]);
                pack_both(par, (w, Some(w)), (1, hi, ho), (&mut p.wt[l], &mut p.w[l]));
            }
        }
        let _ = (par, dims, layout, params);
    }

    /// Marks the packed cached state stale: call whenever the cache gets a new forward pass.
    pub(super) fn invalidate_state(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Hidden::Own(p) = self {
            p.inputs_fresh = false;
            p.grads_fresh = false;
        }
    }

    /// Packs the cached inputs `a_{l−1}` (`inputs[l − 1]`, `n × dims[l]`) and, when given (the
    /// Hessian reads them, Gauss–Newton and third-order products do not), the output gradients
    /// `g_l` (`grads[l]`, `n × dims[l + 1]`) of every layer after the first for the sums of the
    /// curvature products, unless they are packed for the current state already (once per
    /// gradient, however many products follow).
    pub(super) fn pack_state<T: Real>(
        &mut self,
        par: Par,
        dims: &[usize],
        n: usize,
        inputs: &[Vec<T>],
        grads: Option<&[Vec<T>]>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Hidden::Own(p) = self {
            use kernels::sgemm::pack_rows;
            for l in 1..dims.len() - 1 {
                if !p.inputs_fresh {
                    let a = kernels::cast_f32(&inputs[l - 1][..n * dims[l]]);
                    pack_rows(par, a, n, dims[l], &mut p.inputs[l]);
                }
                if let (Some(grads), false) = (grads, p.grads_fresh) {
                    let g = kernels::cast_f32(&grads[l][..n * dims[l + 1]]);
                    pack_rows(par, g, n, dims[l + 1], &mut p.grads[l]);
                }
            }
            p.inputs_fresh = true;
            p.grads_fresh |= grads.is_some();
        }
        let _ = (par, dims, n, inputs, grads);
    }

    /// A sum over the examples `r0 .. r0 + rows` of layer `l ≥ 1`: `C (=|+=) Aᵀ·R` for `A` of
    /// `rows × m` (`lhs`) and the cached `R` (`rhs`: its rows `r0 ..`, `rows × width`,
    /// `rhs_rows`), `C` of `m × width`. The own GEMM reads `R` from its packing
    /// ([`Hidden::pack_state`]); faer from `rhs_rows`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sum<T: Real>(
        &self,
        par: Par,
        (rhs, l): (Cached, usize),
        (lhs, m): (&[T], usize),
        (rhs_rows, width): (&[T], usize),
        (r0, rows): (usize, usize),
        c: &mut [T],
        accum: Accum,
    ) {
        let (lhs, c) = (&lhs[..rows * m], &mut c[..m * width]);
        match self {
            Hidden::Faer => gemm_par(
                par,
                view_mut(c, m, width),
                accum,
                view(lhs, rows, m).transpose(),
                view(&rhs_rows[..rows * width], rows, width),
            ),
            #[cfg(target_arch = "x86_64")]
            Hidden::Own(p) => {
                let (packed, fresh) = match rhs {
                    Cached::Input => (&p.inputs[l], p.inputs_fresh),
                    Cached::Grad => (&p.grads[l], p.grads_fresh),
                };
                assert!(fresh, "Hidden::sum: the cached state is not packed");
                debug_assert_eq!(packed.n(), width);
                let (lhs, c) = (kernels::cast_f32(lhs), kernels::cast_f32_mut(c));
                let add = accum == Accum::Add;
                kernels::sgemm::transposed_times(par, lhs, rows, m, packed, r0, c, add);
            }
        }
    }

    /// Packs the stacked directions `V_lᵀ` and, for the Hessian (`side`), the side-by-side
    /// `V_l` of every layer after the first.
    pub(super) fn set_directions<T: Real>(
        &mut self,
        par: Par,
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
                let side = v_side.map(|side| kernels::cast_f32(&side[l][..ho * b * hi]));
                pack_both(par, (v, side), (b, hi, ho), (&mut p.vt[l], &mut p.vside[l]));
            }
        }
        let _ = (par, dims, b, v_stack, v_side);
    }

    /// Packs a third-order product's direction: `U_l` as the current directions of one product
    /// (`b = 1`, where the side-by-side layout is `U_l` itself) and `2U_l` (`u2[l]`) as
    /// [`Dirs::Doubled`], for every layer after the first.
    pub(super) fn set_third<T: Real>(
        &mut self,
        par: Par,
        dims: &[usize],
        layout: &Layout,
        u: &[T],
        u2: &[Vec<T>],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Hidden::Own(p) = self {
            for l in 1..dims.len() - 1 {
                let (hi, ho) = (dims[l], dims[l + 1]);
                let ul = kernels::cast_f32(&u[layout.layers[l].w_range()]);
                let packs = (&mut p.vt[l], &mut p.vside[l]);
                pack_both(par, (ul, Some(ul)), (1, hi, ho), packs);
                let u2l = kernels::cast_f32(&u2[l][..ho * hi]);
                pack_both(
                    par,
                    (u2l, Some(u2l)),
                    (1, hi, ho),
                    (&mut p.vt2[l], &mut p.vside2[l]),
                );
            }
        }
        let _ = (par, dims, layout, u, u2);
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
    /// layouts), `V` the stacked directions `v_stack`, packed as `dirs`.
    pub(super) fn rforward<T: Real>(
        &self,
        at: At,
        (a_prev, ra_prev): (&[T], &[T]),
        (w, v_stack, dirs): (&[T], &[T], Dirs),
        rz: &mut [T],
    ) {
        let At { l, rows, b, hi, ho } = at;
        let (a_prev, ra_prev) = (&a_prev[..rows * hi], &ra_prev[..rows * b * hi]);
        let rz = &mut rz[..rows * b * ho];
        match self {
            Hidden::Faer => layer::rforward(rows, b, hi, ho, a_prev, Some(ra_prev), w, v_stack, rz),
            #[cfg(target_arch = "x86_64")]
            Hidden::Own(p) => {
                let (vt, _) = p.dirs(dirs);
                times(ra_prev, rows * b, &p.wt[l], rz, false);
                times(a_prev, rows, &vt[l], rz, true);
            }
        }
    }

    /// R-backward at `at`: `r_da_prev = r_g·W (+ g·V` when `v_side` is given, the Hessian; see
    /// [`layer::rbackward`]), `V` packed as `dirs`.
    pub(super) fn rbackward<T: Real>(
        &self,
        at: At,
        (rg, g): (&[T], &[T]),
        (w, v_side, dirs): (&[T], Option<&[T]>, Dirs),
        rda_prev: &mut [T],
    ) {
        let At { l, rows, b, hi, ho } = at;
        let (rg, g) = (&rg[..rows * b * ho], &g[..rows * ho]);
        let rda_prev = &mut rda_prev[..rows * b * hi];
        match self {
            Hidden::Faer => layer::rbackward(rows, b, hi, ho, rg, g, w, v_side, rda_prev),
            #[cfg(target_arch = "x86_64")]
            Hidden::Own(p) => {
                let (_, vside) = p.dirs(dirs);
                times(rg, rows * b, &p.w[l], rda_prev, false);
                if v_side.is_some() {
                    times(g, rows, &vside[l], rda_prev, true);
                }
            }
        }
    }
}

/// Packs a layer's `b` stacked `ho × hi` matrices both ways its products read them: `stack`
/// (`b·ho × hi`) transposed, `hi × b·ho`, the right operand of `a·Mᵀ`, and, when given, the
/// side-by-side `side` (`ho × b·hi`) as it is, the right operand of `g·M`. For the weights and
/// for a single direction (`b = 1`) both come from the same matrix.
#[cfg(target_arch = "x86_64")]
fn pack_both(
    par: Par,
    (stack, side): (&[f32], Option<&[f32]>),
    (b, hi, ho): (usize, usize, usize),
    (vt, vside): (&mut PackedB, &mut PackedB),
) {
    kernels::sgemm::pack_transposed(par, stack, b * ho, hi, vt);
    if let Some(side) = side {
        kernels::sgemm::pack_rows(par, side, ho, b * hi, vside);
    }
}

/// `C (=|+=) A·B` through the own GEMM (only reached for f32: [`Hidden::Own`] is built only
/// where the first layer runs on it).
#[cfg(target_arch = "x86_64")]
fn times<T: Real>(a: &[T], rows: usize, b: &PackedB, c: &mut [T], add: bool) {
    let (a, c) = (kernels::cast_f32(a), kernels::cast_f32_mut(c));
    kernels::sgemm::times_packed(a, rows, b, c, add);
}
