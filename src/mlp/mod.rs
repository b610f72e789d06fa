//! Full-batch MLP passes over a data set: loss, gradient, Hessian- and Gauss–Newton-vector
//! products (Pearlmutter's R-operator, exact), for blocks of directions.
//!
//! Equations (DESIGN §2; rows = examples, `a_0 = X`, layers `l = 1..L`):
//! * forward `z_l = a_{l−1}W_lᵀ + 1b_lᵀ`, `a_l = σ(z_l)`; cached per example: `a_l`,
//!   `s1_l = σ'(z_l)`, `s2_l = σ''(z_l)`;
//! * backward `g_L = ∂ℓ/∂z_L / n`, `dW_l = g_lᵀa_{l−1}`, `db_l = g_lᵀ1`, `da_{l−1} = g_lW_l`,
//!   `g_{l−1} = da_{l−1} ⊙ s1`; cached: `g_l` and `e_{l−1} = da_{l−1} ⊙ s2`;
//! * R-forward along `v = (V_l, c_l)`: `r_z_l = r_a_{l−1}W_lᵀ + a_{l−1}V_lᵀ + 1c_lᵀ`,
//!   `r_a_l = s1 ⊙ r_z_l`, `r_a_0 = 0`;
//! * R-backward: `r_g_L = H_out r_z_L / n`, `Hv_W,l = r_g_lᵀa_{l−1} + g_lᵀr_a_{l−1}`,
//!   `Hv_b,l = r_g_lᵀ1`, `r_da_{l−1} = r_g_lW_l + g_lV_l`,
//!   `r_g_{l−1} = r_da_{l−1} ⊙ s1 + e_{l−1} ⊙ r_z_{l−1}`;
//! * Gauss–Newton `Gv = JᵀH_out Jv`: the same passes without the `g_lᵀr_a`, `g_lV_l` and
//!   `e ⊙ r_z` terms.
//!
//! Organisation. Examples are split into blocks of [`NetConfig::row_block`] rows. Everything
//! that is local to an example (forward, backward through the weights, R-forward, R-backward)
//! runs block by block, one task per block, fused so that a block's activations stay in
//! cache. Parameter-space sums over examples (`gᵀa` and friends) then run as GEMMs whose output
//! is split across tasks and whose sum over blocks runs in block order. R-pass temporaries exist
//! only for one "physical batch" of [`NetConfig::chunk_rows`] examples at a time, so memory is
//! bounded for n = 50 000 and wide nets. No split depends on the thread count: results are
//! bit-identical for every thread count.
//!
//! The forward/backward state at the last [`Net::gradient`] call is cached and reused by every
//! [`Net::hvp`] at that point, so a product costs R-forward + R-backward only.

mod layer;
pub mod reference;

use crate::kernels::gemm::{gemm_sum, view};
use crate::kernels::{self, KernelPath};
use crate::model::{Activation, Layout, Loss, MlpSpec};
use crate::par::Par;
use crate::real::Real;
use faer::Accum;
use rayon::prelude::*;
use std::time::Instant;

/// A labelled data set in the kernel precision: `x` is `n × d`, row-major.
#[derive(Clone, Debug)]
pub struct Data<T> {
    pub n: usize,
    pub d: usize,
    pub classes: usize,
    pub x: Vec<T>,
    pub labels: Vec<u8>,
}

impl<T: Real> Data<T> {
    pub fn new(x: Vec<T>, labels: Vec<u8>, d: usize, classes: usize) -> Self {
        assert_eq!(x.len(), labels.len() * d, "x must be n × d");
        assert!(
            labels.iter().all(|&y| (y as usize) < classes),
            "label out of range"
        );
        Data {
            n: labels.len(),
            d,
            classes,
            x,
            labels,
        }
    }
}

/// Loss and accuracy of the network on the whole data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Eval {
    pub loss: f64,
    pub accuracy: f64,
}

/// Which curvature operator a product applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curvature {
    /// The Hessian `∇²L(θ)`.
    Hessian,
    /// The Gauss–Newton matrix `Jᵀ H_out J` (positive semi-definite).
    GaussNewton,
}

/// Tuning knobs of the passes (house rule 8). Results depend on them only through rounding
/// order; they never depend on the thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Examples per task in the example-local passes.
    pub row_block: usize,
    /// Examples per physical batch of the R-passes (rounded up to whole row blocks).
    pub chunk_rows: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            row_block: 256,
            chunk_rows: 8192,
        }
    }
}

/// Wall-clock seconds spent in each phase since the net was built (explicit timers, because
/// faer's GEMM frames do not unwind in sampling profiles).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTimes {
    /// Example-local forward (+ backward) passes.
    pub local: f64,
    /// Gradient sums over examples.
    pub grad_reduce: f64,
    /// Example-local R-forward + R-backward passes.
    pub rlocal: f64,
    /// Curvature-product sums over examples.
    pub hvp_reduce: f64,
    /// Stacking directions and unstacking results.
    pub hvp_copy: f64,
}

/// Per-block cached state at the current parameters (index `l` = 0-based layer).
struct Block<T> {
    r0: usize,
    rows: usize,
    /// Hidden activations `a_{l+1}`, `rows × h`, for `l < L−1`.
    a: Vec<Vec<T>>,
    s1: Vec<Vec<T>>,
    s2: Vec<Vec<T>>,
    /// `e = da ⊙ σ''(z)` per hidden layer.
    e: Vec<Vec<T>>,
    /// `g_l = ∂L/∂z_l` for every layer (the last one is the output gradient).
    g: Vec<Vec<T>>,
    /// Network outputs `z_L`, `rows × c`.
    out: Vec<T>,
    /// Softmax probabilities (cross-entropy only).
    prob: Vec<T>,
    /// Scratch `rows × max h`.
    da: Vec<T>,
    loss: f64,
    correct: usize,
}

impl<T: Real> Block<T> {
    /// The input `a_{l−1}` of layer `l` (0-based) for this block's rows (`X` for `l = 0`).
    fn input<'a>(&'a self, l: usize, data: &'a Data<T>) -> &'a [T] {
        if l == 0 {
            &data.x[self.r0 * data.d..(self.r0 + self.rows) * data.d]
        } else {
            &self.a[l - 1]
        }
    }
}

/// Per-block R-pass temporaries for up to `b_cap` directions.
struct RBlock<T> {
    rz: Vec<Vec<T>>,
    ra: Vec<Vec<T>>,
    rg: Vec<Vec<T>>,
    rda: Vec<T>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Empty,
    Forward,
    Backward,
}

/// An MLP bound to a data set, with all workspaces allocated once.
pub struct Net<T> {
    spec: MlpSpec,
    loss: Loss,
    dims: Vec<usize>,
    layout: Layout,
    cfg: NetConfig,
    path: KernelPath,
    data: Data<T>,
    blocks: Vec<Block<T>>,
    rblocks: Vec<RBlock<T>>,
    b_cap: usize,
    /// Parameters of the cached state.
    params: Vec<T>,
    state: State,
    /// Stacked direction weights/biases per layer: `(b·ho) × hi` and `b × ho`.
    v_stack: Vec<Vec<T>>,
    c_stack: Vec<Vec<T>>,
    /// Side-by-side direction weights per layer: `ho × (b·hi)`.
    v_side: Vec<Vec<T>>,
    /// Result accumulators, same layouts.
    hv_stack: Vec<Vec<T>>,
    hb_stack: Vec<Vec<T>>,
    hv_side: Vec<Vec<T>>,
    times: PhaseTimes,
}

impl<T: Real> Net<T> {
    pub fn new(spec: &MlpSpec, loss: Loss, data: Data<T>, cfg: NetConfig) -> Self {
        Self::with_path(spec, loss, data, cfg, kernels::kernel_path())
    }

    /// As [`Net::new`] with an explicit elementwise kernel path.
    pub fn with_path(
        spec: &MlpSpec,
        loss: Loss,
        data: Data<T>,
        cfg: NetConfig,
        path: KernelPath,
    ) -> Self {
        assert_eq!(data.d, spec.input_dim, "data dimension vs network input");
        assert_eq!(data.classes, spec.output_dim, "classes vs network output");
        assert!(cfg.row_block > 0 && cfg.chunk_rows > 0);
        let dims = spec.dims();
        let nl = dims.len() - 1;
        let hmax = *dims[1..].iter().max().unwrap();
        let hid = |rows: usize| -> Vec<Vec<T>> {
            (1..nl).map(|l| vec![T::ZERO; rows * dims[l]]).collect()
        };
        let mut blocks = Vec::new();
        let mut r0 = 0;
        while r0 < data.n {
            let rows = cfg.row_block.min(data.n - r0);
            blocks.push(Block {
                r0,
                rows,
                a: hid(rows),
                s1: hid(rows),
                s2: hid(rows),
                e: hid(rows),
                g: (1..=nl).map(|l| vec![T::ZERO; rows * dims[l]]).collect(),
                out: vec![T::ZERO; rows * dims[nl]],
                prob: if loss == Loss::Ce {
                    vec![T::ZERO; rows * dims[nl]]
                } else {
                    Vec::new()
                },
                da: vec![T::ZERO; rows * hmax],
                loss: 0.0,
                correct: 0,
            });
            r0 += rows;
        }
        Net {
            spec: spec.clone(),
            loss,
            layout: spec.layout(),
            dims,
            cfg,
            path,
            data,
            blocks,
            rblocks: Vec::new(),
            b_cap: 0,
            params: Vec::new(),
            state: State::Empty,
            v_stack: Vec::new(),
            c_stack: Vec::new(),
            v_side: Vec::new(),
            hv_stack: Vec::new(),
            hb_stack: Vec::new(),
            hv_side: Vec::new(),
            times: PhaseTimes::default(),
        }
    }

    /// Accumulated phase timings.
    pub fn phase_times(&self) -> PhaseTimes {
        self.times
    }

    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }
    pub fn loss_kind(&self) -> Loss {
        self.loss
    }
    pub fn num_params(&self) -> usize {
        self.layout.len
    }
    pub fn data(&self) -> &Data<T> {
        &self.data
    }
    pub fn kernel_path(&self) -> KernelPath {
        self.path
    }
    pub fn config(&self) -> NetConfig {
        self.cfg
    }
    /// Parameters of the cached state (empty before the first evaluation).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    fn set_params(&mut self, params: &[T]) {
        assert_eq!(params.len(), self.layout.len, "parameter vector length");
        self.params.clear();
        self.params.extend_from_slice(params);
    }

    /// Loss and accuracy at `params` (forward pass only).
    pub fn evaluate(&mut self, params: &[T], par: Par) -> Eval {
        self.set_params(params);
        let t0 = Instant::now();
        self.run_local(false, par);
        self.times.local += t0.elapsed().as_secs_f64();
        self.state = State::Forward;
        self.eval()
    }

    /// Loss, accuracy and the gradient `∇L(params)` into `grad`; caches the state that
    /// [`Net::hvp`] reuses.
    pub fn gradient(&mut self, params: &[T], grad: &mut [T], par: Par) -> Eval {
        assert_eq!(grad.len(), self.layout.len, "gradient length");
        self.set_params(params);
        let t0 = Instant::now();
        self.run_local(true, par);
        let t1 = Instant::now();
        self.state = State::Backward;
        self.reduce_gradient(grad, par);
        self.times.local += (t1 - t0).as_secs_f64();
        self.times.grad_reduce += t1.elapsed().as_secs_f64();
        self.eval()
    }

    /// Products of the curvature operator at the cached parameters with `b` directions:
    /// `dirs` and `out` hold `b` flat parameter vectors back to back.
    /// Panics if no [`Net::gradient`] call has cached the state.
    pub fn hvp(&mut self, dirs: &[T], out: &mut [T], b: usize, curv: Curvature, par: Par) {
        let p = self.layout.len;
        assert_eq!(dirs.len(), b * p, "dirs must hold b parameter vectors");
        assert_eq!(out.len(), b * p, "out must hold b parameter vectors");
        assert!(
            self.state == State::Backward,
            "Net::hvp needs the cached state of a Net::gradient call"
        );
        if b == 0 {
            return;
        }
        self.ensure_rworkspace(b);
        let t0 = Instant::now();
        self.stack_directions(dirs, b, curv);
        self.times.hvp_copy += t0.elapsed().as_secs_f64();
        let nblocks = self.blocks.len();
        let per_chunk = self.cfg.chunk_rows.div_ceil(self.cfg.row_block).max(1);
        let mut first = 0;
        while first < nblocks {
            let last = (first + per_chunk).min(nblocks);
            let t0 = Instant::now();
            self.run_rlocal(first..last, b, curv, par);
            let t1 = Instant::now();
            self.reduce_hvp(first..last, b, curv, first == 0, par);
            self.times.rlocal += (t1 - t0).as_secs_f64();
            self.times.hvp_reduce += t1.elapsed().as_secs_f64();
            first = last;
        }
        let t0 = Instant::now();
        self.unstack_results(out, b, curv);
        self.times.hvp_copy += t0.elapsed().as_secs_f64();
    }

    fn eval(&self) -> Eval {
        let mut loss = 0.0;
        let mut correct = 0;
        for blk in &self.blocks {
            loss += blk.loss;
            correct += blk.correct;
        }
        let n = self.data.n.max(1) as f64;
        Eval {
            loss: loss / n,
            accuracy: correct as f64 / n,
        }
    }

    /// Example-local passes over every block: forward (+ loss), and when `backward` is set the
    /// backward recursion through the weights with the `g`/`e` caches.
    #[inline(never)]
    fn run_local(&mut self, backward: bool, par: Par) {
        let dims = &self.dims;
        let layout = &self.layout;
        let params = &self.params;
        let data = &self.data;
        let act = self.spec.activation;
        let (loss_kind, path) = (self.loss, self.path);
        let inv_n = T::ONE / T::from_usize(data.n.max(1));
        let nl = dims.len() - 1;
        let run = |blk: &mut Block<T>| {
            let rows = blk.rows;
            let x = &data.x[blk.r0 * data.d..(blk.r0 + rows) * data.d];
            for l in 0..nl {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let w = &params[slot.w_range()];
                let bias = &params[slot.b_range()];
                if l + 1 < nl {
                    let (done, rest) = blk.a.split_at_mut(l);
                    let input: &[T] = if l == 0 { x } else { &done[l - 1] };
                    layer::forward(rows, hi, ho, input, w, &mut rest[0]);
                    kernels::bias_act(
                        path,
                        act,
                        rows,
                        ho,
                        &mut rest[0],
                        bias,
                        &mut blk.s1[l],
                        &mut blk.s2[l],
                    );
                } else {
                    let input: &[T] = if l == 0 { x } else { &blk.a[l - 1] };
                    layer::forward(rows, hi, ho, input, w, &mut blk.out);
                    kernels::add_bias(path, rows, ho, &mut blk.out, bias);
                }
            }
            let labels = &data.labels[blk.r0..blk.r0 + rows];
            let (loss, correct) = output_loss(
                loss_kind,
                rows,
                dims[nl],
                &blk.out,
                labels,
                inv_n,
                &mut blk.prob,
                &mut blk.g[nl - 1],
            );
            blk.loss = loss;
            blk.correct = correct;
            if backward {
                for l in (1..nl).rev() {
                    let slot = layout.layers[l];
                    let (hi, ho) = (dims[l], dims[l + 1]);
                    let da = &mut blk.da[..rows * hi];
                    layer::backward(rows, hi, ho, &blk.g[l], &params[slot.w_range()], da);
                    let (lo, _) = blk.g.split_at_mut(l);
                    kernels::bwd_act(
                        path,
                        da,
                        &blk.s1[l - 1],
                        &blk.s2[l - 1],
                        &mut lo[l - 1],
                        &mut blk.e[l - 1],
                    );
                }
            }
        };
        match par {
            Par::Seq => self.blocks.iter_mut().for_each(run),
            Par::Rayon => self.blocks.par_iter_mut().for_each(run),
        }
    }

    /// `dW_l = Σ_blocks g_lᵀ a_{l−1}`, `db_l = Σ_blocks g_lᵀ1`, each in block order.
    #[inline(never)]
    fn reduce_gradient(&self, grad: &mut [T], par: Par) {
        let blocks = &self.blocks;
        let data = &self.data;
        let nl = self.dims.len() - 1;
        for l in 0..nl {
            let slot = self.layout.layers[l];
            let (hi, ho) = (self.dims[l], self.dims[l + 1]);
            let (wpart, bpart) = grad[slot.w_off..slot.b_off + ho].split_at_mut(ho * hi);
            gemm_sum(
                par,
                crate::kernels::gemm::view_mut(wpart, ho, hi),
                Accum::Replace,
                blocks.len(),
                |s| {
                    let blk = &blocks[s];
                    let input = blk.input(l, data);
                    (
                        view(&blk.g[l], blk.rows, ho).transpose(),
                        view(input, blk.rows, hi),
                    )
                },
            );
            for (s, blk) in blocks.iter().enumerate() {
                kernels::col_sums(self.path, blk.rows, ho, &blk.g[l], ho, bpart, s > 0);
            }
            if blocks.is_empty() {
                bpart.iter_mut().for_each(|v| *v = T::ZERO);
            }
        }
    }

    fn ensure_rworkspace(&mut self, b: usize) {
        let per_chunk = self.cfg.chunk_rows.div_ceil(self.cfg.row_block).max(1);
        let nr = per_chunk.min(self.blocks.len());
        if b <= self.b_cap && self.rblocks.len() == nr {
            return;
        }
        let dims = &self.dims;
        let nl = dims.len() - 1;
        let rows = self.cfg.row_block.min(self.data.n.max(1));
        let hmax = *dims.iter().max().unwrap();
        self.rblocks = (0..nr)
            .map(|_| RBlock {
                rz: (1..=nl)
                    .map(|l| vec![T::ZERO; rows * b * dims[l]])
                    .collect(),
                ra: (1..nl).map(|l| vec![T::ZERO; rows * b * dims[l]]).collect(),
                rg: (1..=nl)
                    .map(|l| vec![T::ZERO; rows * b * dims[l]])
                    .collect(),
                rda: vec![T::ZERO; rows * b * hmax],
            })
            .collect();
        self.v_stack = (0..nl)
            .map(|l| vec![T::ZERO; b * dims[l + 1] * dims[l]])
            .collect();
        self.c_stack = (0..nl).map(|l| vec![T::ZERO; b * dims[l + 1]]).collect();
        self.v_side = (0..nl)
            .map(|l| vec![T::ZERO; b * dims[l + 1] * dims[l]])
            .collect();
        self.hv_stack = self.v_stack.clone();
        self.hb_stack = self.c_stack.clone();
        self.hv_side = self.v_side.clone();
        self.b_cap = b;
    }

    /// Copies `b` flat directions into the stacked (and, for the Hessian, side-by-side) layouts.
    fn stack_directions(&mut self, dirs: &[T], b: usize, curv: Curvature) {
        let p = self.layout.len;
        for (l, slot) in self.layout.layers.iter().enumerate() {
            let (hi, ho) = (slot.cols, slot.rows);
            for j in 0..b {
                let v = &dirs[j * p..(j + 1) * p];
                self.v_stack[l][j * ho * hi..(j + 1) * ho * hi].copy_from_slice(&v[slot.w_range()]);
                self.c_stack[l][j * ho..(j + 1) * ho].copy_from_slice(&v[slot.b_range()]);
                if curv == Curvature::Hessian && l > 0 {
                    let vw = &v[slot.w_range()];
                    let side = &mut self.v_side[l];
                    for r in 0..ho {
                        side[r * b * hi + j * hi..r * b * hi + (j + 1) * hi]
                            .copy_from_slice(&vw[r * hi..(r + 1) * hi]);
                    }
                }
            }
        }
    }

    /// R-forward and R-backward for the blocks in `range` (example-local).
    #[inline(never)]
    fn run_rlocal(&mut self, range: std::ops::Range<usize>, b: usize, curv: Curvature, par: Par) {
        let dims = &self.dims;
        let layout = &self.layout;
        let params = &self.params;
        let data = &self.data;
        let (loss_kind, path) = (self.loss, self.path);
        let inv_n = T::ONE / T::from_usize(data.n.max(1));
        let nl = dims.len() - 1;
        let (v_stack, c_stack, v_side) = (&self.v_stack, &self.c_stack, &self.v_side);
        let hess = curv == Curvature::Hessian;
        let run = |(blk, rb): (&Block<T>, &mut RBlock<T>)| {
            let rows = blk.rows;
            // R-forward.
            for l in 0..nl {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let w = &params[slot.w_range()];
                let input = blk.input(l, data);
                let rz = &mut rb.rz[l][..rows * b * ho];
                let ra_prev = if l == 0 {
                    None
                } else {
                    Some(&rb.ra[l - 1][..rows * b * hi])
                };
                layer::rforward(
                    rows,
                    b,
                    hi,
                    ho,
                    input,
                    ra_prev,
                    w,
                    &v_stack[l][..b * ho * hi],
                    rz,
                );
                if l + 1 < nl {
                    kernels::rfwd_act(
                        path,
                        rows,
                        b,
                        ho,
                        rz,
                        &c_stack[l][..b * ho],
                        &blk.s1[l],
                        &mut rb.ra[l][..rows * b * ho],
                    );
                } else {
                    kernels::add_bias(path, rows, b * ho, rz, &c_stack[l][..b * ho]);
                }
            }
            // R-backward.
            let c = dims[nl];
            output_rgrad(
                loss_kind,
                rows,
                b,
                c,
                &rb.rz[nl - 1][..rows * b * c],
                &blk.prob,
                inv_n,
                &mut rb.rg[nl - 1][..rows * b * c],
            );
            for l in (1..nl).rev() {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let rda = &mut rb.rda[..rows * b * hi];
                let vs = if hess {
                    Some(&v_side[l][..ho * b * hi])
                } else {
                    None
                };
                layer::rbackward(
                    rows,
                    b,
                    hi,
                    ho,
                    &rb.rg[l][..rows * b * ho],
                    &blk.g[l],
                    &params[slot.w_range()],
                    vs,
                    rda,
                );
                let e = if hess { Some(&blk.e[l - 1][..]) } else { None };
                let (lo, _) = rb.rg.split_at_mut(l);
                kernels::rbwd_act(
                    path,
                    rows,
                    b,
                    hi,
                    rda,
                    &blk.s1[l - 1],
                    e,
                    &rb.rz[l - 1][..rows * b * hi],
                    &mut lo[l - 1][..rows * b * hi],
                );
            }
        };
        let blocks = &self.blocks[range.clone()];
        let rblocks = &mut self.rblocks[..range.len()];
        match par {
            Par::Seq => blocks.iter().zip(rblocks.iter_mut()).for_each(run),
            Par::Rayon => blocks.par_iter().zip(rblocks.par_iter_mut()).for_each(run),
        }
    }

    /// Parameter-space sums of one physical batch: `Hv_W = Σ r_gᵀa (+ Σ gᵀr_a)`, `Hv_b = Σ r_gᵀ1`.
    #[inline(never)]
    fn reduce_hvp(
        &mut self,
        range: std::ops::Range<usize>,
        b: usize,
        curv: Curvature,
        first: bool,
        par: Par,
    ) {
        let nl = self.dims.len() - 1;
        let blocks = &self.blocks[range.clone()];
        let rblocks = &self.rblocks[..range.len()];
        let data = &self.data;
        let acc0 = if first { Accum::Replace } else { Accum::Add };
        for l in 0..nl {
            let (hi, ho) = (self.dims[l], self.dims[l + 1]);
            gemm_sum(
                par,
                crate::kernels::gemm::view_mut(&mut self.hv_stack[l][..b * ho * hi], b * ho, hi),
                acc0,
                blocks.len(),
                |s| {
                    let blk = &blocks[s];
                    let input = blk.input(l, data);
                    (
                        view(&rblocks[s].rg[l][..blk.rows * b * ho], blk.rows, b * ho).transpose(),
                        view(input, blk.rows, hi),
                    )
                },
            );
            if curv == Curvature::Hessian && l > 0 {
                gemm_sum(
                    par,
                    crate::kernels::gemm::view_mut(&mut self.hv_side[l][..ho * b * hi], ho, b * hi),
                    acc0,
                    blocks.len(),
                    |s| {
                        let blk = &blocks[s];
                        (
                            view(&blk.g[l], blk.rows, ho).transpose(),
                            view(&rblocks[s].ra[l - 1][..blk.rows * b * hi], blk.rows, b * hi),
                        )
                    },
                );
            }
            let hb = &mut self.hb_stack[l][..b * ho];
            for (s, blk) in blocks.iter().enumerate() {
                kernels::col_sums(
                    self.path,
                    blk.rows,
                    b * ho,
                    &rblocks[s].rg[l][..blk.rows * b * ho],
                    b * ho,
                    hb,
                    s > 0 || !first,
                );
            }
            if blocks.is_empty() && first {
                hb.iter_mut().for_each(|v| *v = T::ZERO);
            }
        }
    }

    /// Writes the accumulated results back as `b` flat vectors.
    fn unstack_results(&self, out: &mut [T], b: usize, curv: Curvature) {
        let p = self.layout.len;
        for (l, slot) in self.layout.layers.iter().enumerate() {
            let (hi, ho) = (slot.cols, slot.rows);
            for j in 0..b {
                let o = &mut out[j * p..(j + 1) * p];
                o[slot.w_range()]
                    .copy_from_slice(&self.hv_stack[l][j * ho * hi..(j + 1) * ho * hi]);
                o[slot.b_range()].copy_from_slice(&self.hb_stack[l][j * ho..(j + 1) * ho]);
                if curv == Curvature::Hessian && l > 0 {
                    let side = &self.hv_side[l];
                    let ow = &mut o[slot.w_range()];
                    for r in 0..ho {
                        let src = &side[r * b * hi + j * hi..r * b * hi + (j + 1) * hi];
                        for (d, s) in ow[r * hi..(r + 1) * hi].iter_mut().zip(src) {
                            *d += *s;
                        }
                    }
                }
            }
        }
    }
}

/// Output layer: loss terms, accuracy and `g_L = ∂ℓ/∂z_L / n` for one block.
/// MSE: `ℓ = ½‖z − e_y‖²`, `∂ℓ/∂z = z − e_y`. CE: `p = softmax(z)`, `ℓ = logΣe^z − z_y`,
/// `∂ℓ/∂z = p − e_y`. Returns (Σ ℓ over the block in f64, number correct by argmax).
#[allow(clippy::too_many_arguments)]
fn output_loss<T: Real>(
    kind: Loss,
    rows: usize,
    c: usize,
    out: &[T],
    labels: &[u8],
    inv_n: T,
    prob: &mut [T],
    g: &mut [T],
) -> (f64, usize) {
    let mut loss = 0.0f64;
    let mut correct = 0;
    for i in 0..rows {
        let z = &out[i * c..(i + 1) * c];
        let y = labels[i] as usize;
        let gi = &mut g[i * c..(i + 1) * c];
        let mut best = 0;
        for k in 1..c {
            if z[k] > z[best] {
                best = k;
            }
        }
        if best == y && z[best].is_finite() {
            correct += 1;
        }
        match kind {
            Loss::Mse => {
                let mut s = 0.0f64;
                for k in 0..c {
                    let r = z[k] - if k == y { T::ONE } else { T::ZERO };
                    s += r.to_f64() * r.to_f64();
                    gi[k] = r * inv_n;
                }
                loss += 0.5 * s;
            }
            Loss::Ce => {
                let m = z[best];
                let mut s = T::ZERO;
                let pi = &mut prob[i * c..(i + 1) * c];
                for k in 0..c {
                    pi[k] = (z[k] - m).exp();
                    s += pi[k];
                }
                for k in 0..c {
                    pi[k] /= s;
                    gi[k] = (pi[k] - if k == y { T::ONE } else { T::ZERO }) * inv_n;
                }
                loss += (m + s.ln() - z[y]).to_f64();
            }
        }
    }
    (loss, correct)
}

/// `r_g_L = H_out r_z_L / n` for `b` directions: MSE `H_out = I`; CE `H_out = diag(p) − ppᵀ`.
#[allow(clippy::too_many_arguments)]
fn output_rgrad<T: Real>(
    kind: Loss,
    rows: usize,
    b: usize,
    c: usize,
    rz: &[T],
    prob: &[T],
    inv_n: T,
    rg: &mut [T],
) {
    match kind {
        Loss::Mse => {
            for (o, &v) in rg.iter_mut().zip(rz) {
                *o = v * inv_n;
            }
        }
        Loss::Ce => {
            for i in 0..rows {
                let p = &prob[i * c..(i + 1) * c];
                for j in 0..b {
                    let k0 = (i * b + j) * c;
                    let r = &rz[k0..k0 + c];
                    let mut dot = T::ZERO;
                    for k in 0..c {
                        dot += p[k] * r[k];
                    }
                    for k in 0..c {
                        rg[k0 + k] = p[k] * (r[k] - dot) * inv_n;
                    }
                }
            }
        }
    }
}

/// True when the activation has a non-zero second derivative somewhere (relu and linear do
/// not, so their Hessian differs from the Gauss–Newton matrix only through the loss).
pub fn has_curvature(act: Activation) -> bool {
    !matches!(act, Activation::Relu | Activation::Linear)
}

/// Floating-point operation counts (multiply and add counted separately) of the GEMMs in each
/// pass over `n` examples; elementwise work is not counted. Used for throughput reports.
pub mod flops {
    use crate::model::MlpSpec;

    fn first_and_rest(spec: &MlpSpec) -> (f64, f64) {
        let dims = spec.dims();
        let first = (dims[0] * dims[1]) as f64;
        let rest: f64 = dims.windows(2).skip(1).map(|w| (w[0] * w[1]) as f64).sum();
        (first, rest)
    }

    /// Forward pass: `2·n·Σ h_{l−1}h_l`.
    pub fn forward(spec: &MlpSpec, n: usize) -> f64 {
        let (f, r) = first_and_rest(spec);
        2.0 * n as f64 * (f + r)
    }

    /// Forward + backward: forward, `dW_l` for every layer, `da_{l−1}` for `l ≥ 2`.
    pub fn gradient(spec: &MlpSpec, n: usize) -> f64 {
        let (f, r) = first_and_rest(spec);
        n as f64 * (4.0 * f + 6.0 * r)
    }

    /// One Hessian-vector product at a cached point: R-forward (`X·V_1ᵀ`; `r_a·Wᵀ`, `a·Vᵀ`),
    /// R-backward (`r_g·W`, `g·V`), and the sums `r_gᵀa` (every layer), `gᵀr_a` (`l ≥ 2`).
    pub fn hvp(spec: &MlpSpec, n: usize) -> f64 {
        let (f, r) = first_and_rest(spec);
        n as f64 * (4.0 * f + 12.0 * r)
    }

    /// One Gauss–Newton-vector product (no `g·V` and `gᵀr_a` terms).
    pub fn ggn(spec: &MlpSpec, n: usize) -> f64 {
        let (f, r) = first_and_rest(spec);
        n as f64 * (4.0 * f + 8.0 * r)
    }
}
