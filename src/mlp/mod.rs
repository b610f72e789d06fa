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
//! * third-order products `∇³L[u, u]` ([`Net::third_order`]): the R-operator applied twice to the
//!   gradient (equations in [`reference::third_order`]).
//!
//! Organisation. Every cached quantity is stored for all examples, row-major and contiguous
//! over examples. Everything that is local to an example (forward, backward through the weights,
//! R-forward, R-backward) runs block by block ([`NetConfig::row_block`] rows, one task per
//! block), fused so that a block's activations stay in cache; the first layer's products
//! `X·W_1ᵀ` and `X·V_1ᵀ`, the largest of their passes, run beforehand for the whole batch in
//! bands of examples. Parameter-space sums over examples (`gᵀa` and friends) are then one GEMM
//! each over all the examples of a batch, with the output cut into fixed tiles (one task per
//! tile). The first layer's three products, and the later layers' example-local ones, run on
//! eosbench's own GEMM where it applies ([`NetConfig::own_gemm`]).
//! R-pass temporaries exist only for one "physical batch" of [`NetConfig::chunk_rows`]
//! examples at a time, so memory is bounded for n = 50 000 and wide nets; batches add up in
//! order. No split that changes a summation order depends on the thread count (the own GEMM's
//! tiles may, as its sums do not depend on them): results are bit-identical for every thread
//! count.
//!
//! The forward/backward state at the last [`Net::gradient`] call is cached and reused by every
//! [`Net::hvp`] at that point, so a product costs R-forward + R-backward only.

mod first;
mod hidden;
mod kinks;
mod layer;
pub mod reference;
pub mod roof;
mod third;

use crate::kernels::gemm::{gemm_par, view, view_mut};
use crate::kernels::{self, KernelPath};
use crate::model::{Activation, Layout, Loss, MlpSpec};
use crate::par::Par;
use crate::real::Real;
use faer::Accum;
use first::FirstLayer;
use hidden::{At, Cached, Dirs, Hidden, Weights};
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
    /// Examples per task in the example-local passes. The default, 128, gives 40 tasks at
    /// n = 5000: three rounds on 16 threads, busy 83 % of the time (256 gave 20 tasks, two
    /// rounds, 62 %). At 1 and 2 threads 128 and 256 measured the same (phases example, three
    /// alternating runs each).
    pub row_block: usize,
    /// Examples per physical batch of the R-passes (rounded up to whole row blocks).
    pub chunk_rows: usize,
    /// Run the first layer's products on eosbench's own f32 GEMM with `X` packed once (an
    /// extra copy of `X` in memory), and the later layers' example-local products with their
    /// weights and directions packed once, where it applies: f32 on the AVX-512 kernel path.
    /// Off, or elsewhere, they run on faer.
    pub own_gemm: bool,
    /// Elements per task of the copies around a curvature product (stacking the directions,
    /// unstacking the results; whole rows of a weight matrix when unstacking). Part of no
    /// summation order. At h = 800, 2 threads, these copies took 1.9 ms per product on the
    /// pool against 2.9 sequentially (phases example, two alternating runs).
    pub copy_chunk: usize,
    /// The first layer's own-GEMM products with at least this many output columns (`b·h`
    /// for a block of `b` directions) run as one level of Strassen's algorithm
    /// ([`crate::kernels::strassen`]): 7 half-size products instead of 8,
    /// at the cost of the quadrant sums of `X` (3.5 times its memory per physical batch,
    /// formed once). Where the shape allows (even sizes, a multiple of 32 columns) and over at
    /// most one physical batch of examples; `usize::MAX` turns it off. At n = 5000, d = 3072
    /// the 7 products took 0.85–0.88 of the 8-product time at 800 columns, 0.85–0.87 at 512,
    /// 0.91 at 400 and 0.96–1.01 at 200 (1 thread, products alone).
    pub strassen_min_width: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            row_block: 128,
            chunk_rows: 8192,
            own_gemm: true,
            copy_chunk: 1 << 15,
            strassen_min_width: 512,
        }
    }
}

impl NetConfig {
    /// Examples per physical batch of the R-passes, `chunk_rows` rounded up to whole row
    /// blocks (a data set with fewer examples has one batch of them all).
    pub(crate) fn batch_rows(&self) -> usize {
        self.chunk_rows.div_ceil(self.row_block).max(1) * self.row_block
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
    /// Example-local R-forward + R-backward passes (including `rlocal_first`).
    pub rlocal: f64,
    /// The first layer's R-forward product `X·V_1ᵀ` (part of `rlocal`).
    pub rlocal_first: f64,
    /// Curvature-product sums over examples (including `hvp_reduce_first`).
    pub hvp_reduce: f64,
    /// The first layer's sum `r_g_1ᵀX` (part of `hvp_reduce`).
    pub hvp_reduce_first: f64,
    /// Stacking directions and unstacking results.
    pub hvp_copy: f64,
}

/// Cached state at the current parameters for all `n` examples (index `l` = 0-based layer).
/// Every buffer is row-major and contiguous over examples, so a block's share is a run of rows
/// and every sum over examples is one GEMM with the full example range as its inner dimension.
struct Cache<T> {
    /// Hidden activations `a_{l+1}`, `n × h_{l+1}`, for `l < L−1`.
    a: Vec<Vec<T>>,
    s1: Vec<Vec<T>>,
    s2: Vec<Vec<T>>,
    /// `e = da ⊙ σ''(z)` per hidden layer.
    e: Vec<Vec<T>>,
    /// `g_l = ∂L/∂z_l` for every layer (the last one is the output gradient).
    g: Vec<Vec<T>>,
    /// Network outputs `z_L`, `n × c`.
    out: Vec<T>,
    /// Softmax probabilities (cross-entropy only; empty otherwise).
    prob: Vec<T>,
    /// GELU only (no layers otherwise): per hidden layer the pre-activation `z` without its
    /// bias and the backward `da`, `n × h` each, for the third derivative `σ'''(z) ⊙ da` of
    /// [`Net::third_order`] (the other activations have it from `a`, `s1`, `e` and `g`).
    gelu_z: Vec<Vec<T>>,
    gelu_da: Vec<Vec<T>>,
    /// Per-block scratch, `row_block × max h`.
    da: Vec<Vec<T>>,
    /// Per-block (Σ loss, number correct).
    stats: Vec<(f64, usize)>,
}

/// One block's exclusive share of the [`Cache`]: rows `r0 .. r0 + rows` of every buffer.
struct BlockMut<'a, T> {
    r0: usize,
    rows: usize,
    a: Vec<&'a mut [T]>,
    s1: Vec<&'a mut [T]>,
    s2: Vec<&'a mut [T]>,
    e: Vec<&'a mut [T]>,
    g: Vec<&'a mut [T]>,
    gelu_z: Vec<&'a mut [T]>,
    gelu_da: Vec<&'a mut [T]>,
    out: &'a mut [T],
    prob: &'a mut [T],
    da: &'a mut [T],
    stats: &'a mut (f64, usize),
}

/// R-pass temporaries of one physical batch for up to `b_cap` directions, each
/// `chunk × (b·h_l)` and contiguous over the batch's examples (direction `j` of example `i` in
/// columns `j·h_l..(j+1)·h_l` of row `i`).
#[derive(Default)]
struct RWork<T> {
    rz: Vec<Vec<T>>,
    ra: Vec<Vec<T>>,
    rg: Vec<Vec<T>>,
    /// Per-block scratch, `row_block × scratch × widest` (see [`RWork::new`]).
    rda: Vec<Vec<T>>,
}

/// One block's exclusive share of the [`RWork`].
struct RBlockMut<'a, T> {
    rz: Vec<&'a mut [T]>,
    ra: Vec<&'a mut [T]>,
    rg: Vec<&'a mut [T]>,
    rda: &'a mut [T],
}

/// `buf` (row-major, `width` columns) cut into `count` consecutive pieces of `rb` rows (the last
/// may be shorter); an empty buffer gives empty pieces.
fn row_pieces<T>(buf: &mut [T], width: usize, rb: usize, count: usize) -> Vec<&mut [T]> {
    if buf.is_empty() || width == 0 {
        return (0..count).map(|_| <&mut [T]>::default()).collect();
    }
    let pieces: Vec<&mut [T]> = buf.chunks_mut(rb * width).take(count).collect();
    assert_eq!(pieces.len(), count, "buffer shorter than its blocks");
    pieces
}

/// Cuts the first `rows` rows of each buffer in `bufs` (buffer `l` has `widths[l]` columns) into
/// blocks of `rb` rows and hands piece `s` of each to `push(s, piece)`, buffer by buffer.
fn deal<'a, T, F>(bufs: &'a mut [Vec<T>], widths: &[usize], rows: usize, rb: usize, mut push: F)
where
    F: FnMut(usize, &'a mut [T]),
{
    let count = rows.div_ceil(rb);
    for (buf, &w) in bufs.iter_mut().zip(widths) {
        let buf: &'a mut [T] = &mut buf[..rows * w];
        for (s, piece) in row_pieces(buf, w, rb, count).into_iter().enumerate() {
            push(s, piece);
        }
    }
}

/// The widest layer output: the most columns a backward or R-backward pass writes per example
/// and direction (`da`, `r_da` of a hidden layer; never the data's `d`).
fn widest(dims: &[usize]) -> usize {
    dims[1..].iter().copied().max().unwrap_or(0)
}

/// Rows `r0 .. r0 + rows` of a row-major buffer with `width` columns.
#[inline]
fn rows_of<T>(buf: &[T], r0: usize, rows: usize, width: usize) -> &[T] {
    &buf[r0 * width..(r0 + rows) * width]
}

impl<T: Real> Cache<T> {
    fn new(dims: &[usize], n: usize, rb: usize, ce: bool, gelu: bool) -> Self {
        let nl = dims.len() - 1;
        let hmax = widest(dims);
        let nblocks = n.div_ceil(rb);
        let hid = || -> Vec<Vec<T>> { (1..nl).map(|l| vec![T::ZERO; n * dims[l]]).collect() };
        let gelu_hid = || if gelu { hid() } else { Vec::new() };
        Cache {
            a: hid(),
            s1: hid(),
            s2: hid(),
            e: hid(),
            g: (1..=nl).map(|l| vec![T::ZERO; n * dims[l]]).collect(),
            out: vec![T::ZERO; n * dims[nl]],
            prob: if ce {
                vec![T::ZERO; n * dims[nl]]
            } else {
                Vec::new()
            },
            gelu_z: gelu_hid(),
            gelu_da: gelu_hid(),
            da: (0..nblocks).map(|_| vec![T::ZERO; rb * hmax]).collect(),
            stats: vec![(0.0, 0); nblocks],
        }
    }

    /// Rows `r0 .. r0 + rows` of the input `a_{l−1}` of layer `l` (0-based; `X` for `l = 0`).
    fn input<'a>(
        &'a self,
        data: &'a Data<T>,
        dims: &[usize],
        l: usize,
        r0: usize,
        rows: usize,
    ) -> &'a [T] {
        if l == 0 {
            rows_of(&data.x, r0, rows, data.d)
        } else {
            rows_of(&self.a[l - 1], r0, rows, dims[l])
        }
    }

    /// The cache cut into the blocks of `rb` rows.
    fn blocks_mut(&mut self, dims: &[usize], n: usize, rb: usize) -> Vec<BlockMut<'_, T>> {
        let nl = dims.len() - 1;
        let count = n.div_ceil(rb);
        let outs = row_pieces(&mut self.out, dims[nl], rb, count);
        let probs = row_pieces(&mut self.prob, dims[nl], rb, count);
        let mut blocks: Vec<BlockMut<'_, T>> = outs
            .into_iter()
            .zip(probs)
            .zip(self.da.iter_mut().zip(self.stats.iter_mut()))
            .enumerate()
            .map(|(s, ((out, prob), (da, stats)))| BlockMut {
                r0: s * rb,
                rows: rb.min(n - s * rb),
                a: Vec::with_capacity(nl),
                s1: Vec::with_capacity(nl),
                s2: Vec::with_capacity(nl),
                e: Vec::with_capacity(nl),
                g: Vec::with_capacity(nl),
                gelu_z: Vec::new(),
                gelu_da: Vec::new(),
                out,
                prob,
                da,
                stats,
            })
            .collect();
        let widths = &dims[1..];
        deal(&mut self.a, widths, n, rb, |s, p| blocks[s].a.push(p));
        deal(&mut self.s1, widths, n, rb, |s, p| blocks[s].s1.push(p));
        deal(&mut self.s2, widths, n, rb, |s, p| blocks[s].s2.push(p));
        deal(&mut self.e, widths, n, rb, |s, p| blocks[s].e.push(p));
        deal(&mut self.g, widths, n, rb, |s, p| blocks[s].g.push(p));
        deal(&mut self.gelu_z, widths, n, rb, |s, p| {
            blocks[s].gelu_z.push(p)
        });
        deal(&mut self.gelu_da, widths, n, rb, |s, p| {
            blocks[s].gelu_da.push(p)
        });
        blocks
    }
}

impl<T: Real> RWork<T> {
    /// Temporaries for physical batches of `chunk` rows and `b` directions, with a scratch of
    /// `scratch` × [`widest`] columns per row block (`b` for the HVP's `r_da`).
    fn new(dims: &[usize], chunk: usize, rb: usize, b: usize, scratch: usize) -> Self {
        let nl = dims.len() - 1;
        let hmax = widest(dims);
        let per = |range: std::ops::Range<usize>| -> Vec<Vec<T>> {
            range.map(|l| vec![T::ZERO; chunk * b * dims[l]]).collect()
        };
        RWork {
            rz: per(1..nl + 1),
            ra: per(1..nl),
            rg: per(1..nl + 1),
            rda: (0..chunk.div_ceil(rb))
                .map(|_| vec![T::ZERO; rb * scratch * hmax])
                .collect(),
        }
    }

    /// The first `rows_in_chunk` rows cut into blocks of `rb` rows, for `b` directions.
    fn blocks_mut(
        &mut self,
        dims: &[usize],
        b: usize,
        rows_in_chunk: usize,
        rb: usize,
    ) -> Vec<RBlockMut<'_, T>> {
        let nl = dims.len() - 1;
        let count = rows_in_chunk.div_ceil(rb);
        let mut blocks: Vec<RBlockMut<'_, T>> = self.rda[..count]
            .iter_mut()
            .map(|rda| RBlockMut {
                rz: Vec::with_capacity(nl),
                ra: Vec::with_capacity(nl),
                rg: Vec::with_capacity(nl),
                rda,
            })
            .collect();
        let widths: Vec<usize> = dims[1..].iter().map(|&h| b * h).collect();
        let r = rows_in_chunk;
        deal(&mut self.rz, &widths, r, rb, |s, p| blocks[s].rz.push(p));
        deal(&mut self.ra, &widths, r, rb, |s, p| blocks[s].ra.push(p));
        deal(&mut self.rg, &widths, r, rb, |s, p| blocks[s].rg.push(p));
        blocks
    }
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
    cache: Cache<T>,
    rwork: RWork<T>,
    b_cap: usize,
    /// Parameters of the cached state.
    params: Vec<T>,
    state: State,
    /// Stacked direction weights/biases per layer: `(b·ho) × hi` and `b × ho`.
    v_stack: Vec<Vec<T>>,
    c_stack: Vec<Vec<T>>,
    /// Side-by-side direction weights per layer: `ho × (b·hi)`.
    v_side: Vec<Vec<T>>,
    /// Result accumulators: the stacked layouts, and the Hessian's second weight term
    /// `r_aᵀ·g` per layer, `(b·hi) × ho` (the transpose of the side-by-side layout).
    hv_stack: Vec<Vec<T>>,
    hb_stack: Vec<Vec<T>>,
    hv_side: Vec<Vec<T>>,
    /// The first layer's GEMM and its packed operands.
    first: FirstLayer,
    /// The GEMM of the later layers' example-local products and its packed operands.
    hidden: Hidden,
    /// Temporaries of [`Net::third_order`].
    third: third::ThirdWork<T>,
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
        assert!(cfg.row_block > 0 && cfg.chunk_rows > 0 && cfg.copy_chunk > 0);
        let dims = spec.dims();
        let gelu = spec.activation == Activation::Gelu;
        let cache = Cache::new(&dims, data.n, cfg.row_block, loss == Loss::Ce, gelu);
        let first = FirstLayer::new::<T>(&cfg, path);
        let hidden = Hidden::new(&first, dims.len() - 1);
        Net {
            spec: spec.clone(),
            loss,
            layout: spec.layout(),
            dims,
            cfg,
            path,
            data,
            cache,
            rwork: RWork::default(),
            b_cap: 0,
            params: Vec::new(),
            state: State::Empty,
            v_stack: Vec::new(),
            c_stack: Vec::new(),
            v_side: Vec::new(),
            hv_stack: Vec::new(),
            hb_stack: Vec::new(),
            hv_side: Vec::new(),
            first,
            hidden,
            third: third::ThirdWork::default(),
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
    /// Network outputs `z_L` (`n × classes`, row-major) at the parameters of the last
    /// [`Net::evaluate`] or [`Net::gradient`] call (zeros before the first).
    pub fn outputs(&self) -> &[T] {
        &self.cache.out
    }
    pub fn kernel_path(&self) -> KernelPath {
        self.path
    }
    /// The GEMM that runs the first layer's products: `"own"` or `"faer"` (see
    /// [`NetConfig::own_gemm`]).
    pub fn first_layer_gemm(&self) -> &'static str {
        self.first.name()
    }
    /// Whether a curvature product for `b` directions runs the first layer's products over
    /// every physical batch as Strassen's 7 ([`NetConfig::strassen_min_width`]).
    pub fn first_layer_splits(&self, b: usize) -> bool {
        let (n, d, m) = (self.data.n, self.data.d, b * self.dims[1]);
        let chunk = self.chunk_len();
        (0..n)
            .step_by(chunk.max(1))
            .all(|r0| self.first.splits(chunk.min(n - r0), d, m))
    }
    pub fn config(&self) -> NetConfig {
        self.cfg
    }
    /// Parameters of the cached state (empty before the first evaluation).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    fn set_params(&mut self, params: &[T], par: Par) {
        assert_eq!(params.len(), self.layout.len, "parameter vector length");
        self.params.clear();
        self.params.extend_from_slice(params);
        self.hidden
            .set_params(par, &self.dims, &self.layout, params);
    }

    /// Loss and accuracy at `params` (forward pass only).
    pub fn evaluate(&mut self, params: &[T], par: Par) -> Eval {
        self.set_params(params, par);
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
        self.set_params(params, par);
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
        self.stack_directions(dirs, b, curv, par);
        self.times.hvp_copy += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let cache = &self.cache;
        let grads = (curv == Curvature::Hessian).then_some(&cache.g[..]);
        self.hidden
            .pack_state(par, &self.dims, self.data.n, &cache.a, grads);
        self.times.hvp_reduce += t0.elapsed().as_secs_f64();
        let n = self.data.n;
        let chunk = self.chunk_len();
        let mut r0 = 0;
        loop {
            let len = chunk.min(n - r0);
            let t0 = Instant::now();
            self.run_rlocal(r0, len, b, curv, par);
            let t1 = Instant::now();
            self.reduce_hvp(r0, len, b, curv, par);
            self.times.rlocal += (t1 - t0).as_secs_f64();
            self.times.hvp_reduce += t1.elapsed().as_secs_f64();
            r0 += len;
            if r0 >= n {
                break;
            }
        }
        let t0 = Instant::now();
        self.unstack_results(out, b, curv, par);
        self.times.hvp_copy += t0.elapsed().as_secs_f64();
    }

    fn eval(&self) -> Eval {
        let mut loss = 0.0;
        let mut correct = 0;
        for &(l, c) in &self.cache.stats {
            loss += l;
            correct += c;
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
        self.hidden.invalidate_state();
        // Layer 1's `X·W_1ᵀ` first, for all examples (bias and activation follow per block).
        {
            let (n, h1) = (self.data.n, self.dims[1]);
            let z1 = if self.dims.len() > 2 {
                &mut self.cache.a[0]
            } else {
                &mut self.cache.out
            };
            let w1 = &self.params[self.layout.layers[0].w_range()];
            self.first
                .times_wt(par, &self.data, (0, n), (w1, false), h1, &mut z1[..n * h1]);
        }
        let dims = &self.dims;
        let layout = &self.layout;
        let params = &self.params;
        let data = &self.data;
        let act = self.spec.activation;
        let (loss_kind, path) = (self.loss, self.path);
        let inv_n = T::ONE / T::from_usize(data.n.max(1));
        let nl = dims.len() - 1;
        let hidden = &self.hidden;
        let run = |blk: BlockMut<'_, T>| {
            let BlockMut {
                r0,
                rows,
                mut a,
                mut s1,
                mut s2,
                mut e,
                mut g,
                mut gelu_z,
                mut gelu_da,
                out,
                prob,
                da,
                stats,
            } = blk;
            for l in 0..nl {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let w = &params[slot.w_range()];
                let bias = &params[slot.b_range()];
                let (done, rest) = a.split_at_mut(l);
                let at = At {
                    l,
                    rows,
                    b: 1,
                    hi,
                    ho,
                };
                // (Layer 1's product is already in place.)
                if l + 1 < nl {
                    if l > 0 {
                        hidden.weights(Weights::Forward, at, done[l - 1], w, rest[0]);
                    }
                    if let Some(z) = gelu_z.get_mut(l) {
                        z.copy_from_slice(rest[0]);
                    }
                    kernels::bias_act(path, act, rows, ho, rest[0], bias, s1[l], s2[l]);
                } else {
                    if l > 0 {
                        hidden.weights(Weights::Forward, at, done[l - 1], w, out);
                    }
                    kernels::add_bias(path, rows, ho, out, bias);
                }
            }
            let labels = &data.labels[r0..r0 + rows];
            *stats = output_loss(
                loss_kind,
                rows,
                dims[nl],
                out,
                labels,
                inv_n,
                prob,
                g[nl - 1],
            );
            if backward {
                for l in (1..nl).rev() {
                    let slot = layout.layers[l];
                    let (hi, ho) = (dims[l], dims[l + 1]);
                    let da = &mut da[..rows * hi];
                    let (lo, hi_g) = g.split_at_mut(l);
                    let w = &params[slot.w_range()];
                    let at = At {
                        l,
                        rows,
                        b: 1,
                        hi,
                        ho,
                    };
                    hidden.weights(Weights::Backward, at, hi_g[0], w, da);
                    if let Some(keep) = gelu_da.get_mut(l - 1) {
                        keep.copy_from_slice(da);
                    }
                    kernels::bwd_act(path, da, s1[l - 1], s2[l - 1], lo[l - 1], e[l - 1]);
                }
            }
        };
        par.each(self.cache.blocks_mut(dims, data.n, self.cfg.row_block), run);
    }

    /// `dW_l = g_lᵀ a_{l−1}` and `db_l = g_lᵀ1` over all examples (one GEMM per layer).
    #[inline(never)]
    fn reduce_gradient(&mut self, grad: &mut [T], par: Par) {
        let data = &self.data;
        let n = data.n;
        let nl = self.dims.len() - 1;
        for l in 0..nl {
            let slot = self.layout.layers[l];
            let (hi, ho) = (self.dims[l], self.dims[l + 1]);
            let (wpart, bpart) = grad[slot.w_off..slot.b_off + ho].split_at_mut(ho * hi);
            let g = &self.cache.g[l];
            if l == 0 {
                self.first
                    .sum(par, g, ho, data, (0, n), wpart, Accum::Replace);
            } else {
                // (faer: packing `a_{l−1}` for one product would cost what it saves.)
                gemm_par(
                    par,
                    view_mut(wpart, ho, hi),
                    Accum::Replace,
                    view(g, n, ho).transpose(),
                    view(self.cache.input(data, &self.dims, l, 0, n), n, hi),
                );
            }
            kernels::col_sums(self.path, n, ho, g, ho, bpart, false);
        }
    }

    /// Examples per physical batch of the R-passes: whole row blocks, at most `n`.
    fn chunk_len(&self) -> usize {
        self.cfg.batch_rows().min(self.data.n.max(1))
    }

    fn ensure_rworkspace(&mut self, b: usize) {
        if b <= self.b_cap {
            return;
        }
        let chunk = self.chunk_len();
        self.rwork = RWork::new(&self.dims, chunk, self.cfg.row_block, b, b);
        let dims = &self.dims;
        let nl = dims.len() - 1;
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

    /// Copies `b` flat directions into the stacked (and, for the Hessian, side-by-side) layouts,
    /// in pieces of at most [`NetConfig::copy_chunk`] elements on the pool of `par`: they touch
    /// every parameter of every direction, and must not stay sequential while the products
    /// scale over the threads.
    fn stack_directions(&mut self, dirs: &[T], b: usize, curv: Curvature, par: Par) {
        let p = self.layout.len;
        let hess = curv == Curvature::Hessian;
        let chunk = self.cfg.copy_chunk;
        let mut copies: Vec<(&mut [T], &[T])> = Vec::new();
        let layers = (self.layout.layers.iter().zip(&mut self.v_stack))
            .zip(&mut self.c_stack)
            .zip(&mut self.v_side);
        for (l, (((slot, vs), cs), side)) in layers.enumerate() {
            let (hi, ho) = (slot.cols, slot.rows);
            let dir = |j: usize| &dirs[j * p..(j + 1) * p];
            for (j, dst) in vs[..b * ho * hi].chunks_exact_mut(ho * hi).enumerate() {
                let src = &dir(j)[slot.w_range()];
                copies.extend(dst.chunks_mut(chunk).zip(src.chunks(chunk)));
            }
            for (j, dst) in cs[..b * ho].chunks_exact_mut(ho).enumerate() {
                copies.push((dst, &dir(j)[slot.b_range()]));
            }
            if hess && l > 0 {
                // Row `r` of the side-by-side layout is row `r` of every direction's `V_l`.
                for (r, row) in side[..ho * b * hi].chunks_exact_mut(b * hi).enumerate() {
                    for (j, dst) in row.chunks_exact_mut(hi).enumerate() {
                        copies.push((dst, &dir(j)[slot.w_range()][r * hi..(r + 1) * hi]));
                    }
                }
            }
        }
        par.each(copies, |(dst, src)| dst.copy_from_slice(src));
        let side = hess.then_some(&self.v_side[..]);
        self.hidden
            .set_directions(par, &self.dims, b, &self.v_stack, side);
    }

    /// R-forward and R-backward for the physical batch of rows `r0 .. r0 + len`
    /// (example-local, one task per row block).
    #[inline(never)]
    fn run_rlocal(&mut self, r0: usize, len: usize, b: usize, curv: Curvature, par: Par) {
        let dims = &self.dims;
        let layout = &self.layout;
        let params = &self.params;
        let data = &self.data;
        let cache = &self.cache;
        let (loss_kind, path) = (self.loss, self.path);
        let inv_n = T::ONE / T::from_usize(data.n.max(1));
        let nl = dims.len() - 1;
        let rbk = self.cfg.row_block;
        let (v_stack, c_stack, v_side) = (&self.v_stack, &self.c_stack, &self.v_side);
        let hess = curv == Curvature::Hessian;
        let hidden = &self.hidden;
        // Layer 1 first, for the whole batch: `r_z_1 = X·V_1ᵀ` is the largest product of the
        // R-forward, and bands of examples run it faster than row blocks do when `b > 1`
        // (wider `V` panels are shared by more rows).
        let (h1, d) = (dims[1], data.d);
        let t0 = Instant::now();
        self.first.times_wt(
            par,
            data,
            (r0, len),
            (&v_stack[0][..b * h1 * d], r0 > 0),
            b * h1,
            &mut self.rwork.rz[0][..len * b * h1],
        );
        self.times.rlocal_first += t0.elapsed().as_secs_f64();
        let run = |(s, rb): (usize, RBlockMut<'_, T>)| {
            let RBlockMut {
                mut rz,
                mut ra,
                mut rg,
                rda,
            } = rb;
            let q0 = r0 + s * rbk;
            let rows = rbk.min(r0 + len - q0);
            // R-forward.
            for l in 0..nl {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let (done, rest) = ra.split_at_mut(l);
                if l > 0 {
                    // (Layer 1's `r_z = X·V_1ᵀ` was computed for the whole batch beforehand.)
                    let at = At { l, rows, b, hi, ho };
                    let a_prev = cache.input(data, dims, l, q0, rows);
                    let v = &v_stack[l][..b * ho * hi];
                    let wv = (&params[slot.w_range()], v, Dirs::Current);
                    hidden.rforward(at, (a_prev, &*done[l - 1]), wv, rz[l]);
                }
                if l + 1 < nl {
                    let s1 = rows_of(&cache.s1[l], q0, rows, ho);
                    kernels::rfwd_act(path, rows, b, ho, rz[l], &c_stack[l][..b * ho], s1, rest[0]);
                } else {
                    kernels::add_bias(path, rows, b * ho, rz[l], &c_stack[l][..b * ho]);
                }
            }
            // R-backward.
            let c = dims[nl];
            let prob = if cache.prob.is_empty() {
                &cache.prob[..]
            } else {
                rows_of(&cache.prob, q0, rows, c)
            };
            output_rgrad(loss_kind, rows, b, c, rz[nl - 1], prob, inv_n, rg[nl - 1]);
            for l in (1..nl).rev() {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let rda = &mut rda[..rows * b * hi];
                let vs = if hess {
                    Some(&v_side[l][..ho * b * hi])
                } else {
                    None
                };
                let (lo, up) = rg.split_at_mut(l);
                let g = rows_of(&cache.g[l], q0, rows, ho);
                let at = At { l, rows, b, hi, ho };
                let wv = (&params[slot.w_range()], vs, Dirs::Current);
                hidden.rbackward(at, (&*up[0], g), wv, rda);
                let e = if hess {
                    Some(rows_of(&cache.e[l - 1], q0, rows, hi))
                } else {
                    None
                };
                let s1 = rows_of(&cache.s1[l - 1], q0, rows, hi);
                kernels::rbwd_act(path, rows, b, hi, rda, s1, e, rz[l - 1], lo[l - 1]);
            }
        };
        par.each(
            self.rwork
                .blocks_mut(dims, b, len, rbk)
                .into_iter()
                .enumerate(),
            run,
        );
    }

    /// Parameter-space sums over the physical batch of rows `r0 .. r0 + rows`, one GEMM per
    /// term: `Hv_W = r_gᵀa (+ gᵀr_a)`, `Hv_b = r_gᵀ1`; the first batch overwrites, later ones add.
    #[inline(never)]
    fn reduce_hvp(&mut self, r0: usize, rows: usize, b: usize, curv: Curvature, par: Par) {
        let nl = self.dims.len() - 1;
        let first = r0 == 0;
        let acc0 = if first { Accum::Replace } else { Accum::Add };
        let (data, dims, cache, rwork) = (&self.data, &self.dims, &self.cache, &self.rwork);
        for l in 0..nl {
            let (hi, ho) = (dims[l], dims[l + 1]);
            let rg = &rwork.rg[l][..rows * b * ho];
            let t0 = Instant::now();
            let hv = &mut self.hv_stack[l][..b * ho * hi];
            if l == 0 {
                self.first.sum(par, rg, b * ho, data, (r0, rows), hv, acc0);
                self.times.hvp_reduce_first += t0.elapsed().as_secs_f64();
            } else {
                self.hidden.sum(
                    par,
                    (Cached::Input, l),
                    (rg, b * ho),
                    (cache.input(data, dims, l, r0, rows), hi),
                    (r0, rows),
                    hv,
                    acc0,
                );
            }
            if curv == Curvature::Hessian && l > 0 {
                // `r_aᵀ·g`, the transpose of the term `gᵀ·r_a`: its wide side (`b·hi`) is
                // the rows, which the own GEMM tiles without a partial panel.
                self.hidden.sum(
                    par,
                    (Cached::Grad, l),
                    (&rwork.ra[l - 1][..rows * b * hi], b * hi),
                    (rows_of(&cache.g[l], r0, rows, ho), ho),
                    (r0, rows),
                    &mut self.hv_side[l],
                    acc0,
                );
            }
            let hb = &mut self.hb_stack[l][..b * ho];
            kernels::col_sums(self.path, rows, b * ho, rg, b * ho, hb, !first);
        }
    }

    /// Writes the accumulated results back as `b` flat vectors, in runs of whole rows of each
    /// `W_l` (about [`NetConfig::copy_chunk`] elements) on the pool of `par`. Every element is
    /// written by one task, with the same operations in the same order at any thread count.
    fn unstack_results(&self, out: &mut [T], b: usize, curv: Curvature, par: Par) {
        /// A run of rows `r0 ..` of direction `j`'s `W_l` in `out`, or its bias `b_l`.
        enum Piece<'o, T> {
            Rows(usize, usize, usize, &'o mut [T]),
            Bias(usize, usize, &'o mut [T]),
        }
        let p = self.layout.len;
        let hess = curv == Curvature::Hessian;
        let mut pieces = Vec::new();
        for (j, o) in out[..b * p].chunks_exact_mut(p).enumerate() {
            let mut rest = o;
            for (l, slot) in self.layout.layers.iter().enumerate() {
                let (hi, ho) = (slot.cols, slot.rows);
                debug_assert_eq!(slot.w_off + ho * hi, slot.b_off, "layout: W_l then b_l");
                debug_assert_eq!(p - rest.len(), slot.w_off, "layout: layers in order");
                let (w, tail) = std::mem::take(&mut rest).split_at_mut(ho * hi);
                let (bias, tail) = tail.split_at_mut(ho);
                rest = tail;
                let rows = (self.cfg.copy_chunk / hi.max(1)).max(1);
                for (q, run) in w.chunks_mut(rows * hi).enumerate() {
                    pieces.push(Piece::Rows(l, j, q * rows, run));
                }
                pieces.push(Piece::Bias(l, j, bias));
            }
        }
        par.each(pieces, |piece| match piece {
            Piece::Rows(l, j, r0, run) => {
                let (hi, ho) = (self.dims[l], self.dims[l + 1]);
                let from = j * ho * hi + r0 * hi;
                run.copy_from_slice(&self.hv_stack[l][from..from + run.len()]);
                if hess && l > 0 {
                    // Row `j·hi + i` of the side sum holds column `i` of direction `j`.
                    let side = &self.hv_side[l][j * hi * ho..(j + 1) * hi * ho];
                    let rows = run.len() / hi;
                    for (i, col) in side.chunks_exact(ho).enumerate() {
                        for (r, s) in col[r0..r0 + rows].iter().enumerate() {
                            run[r * hi + i] += *s;
                        }
                    }
                }
            }
            Piece::Bias(l, j, bias) => {
                let ho = self.dims[l + 1];
                bias.copy_from_slice(&self.hb_stack[l][j * ho..(j + 1) * ho]);
            }
        });
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

    /// One third-order product `∇³L[u, u]` ([`super::Net::third_order`]): `X·U_1ᵀ` and
    /// `r2_g_1ᵀX`; for `l ≥ 2` the R- and R²-forward (`r_a·Wᵀ`, `a·Uᵀ`, `r2_a·Wᵀ`, `r_a·(2U)ᵀ`),
    /// the backward (`r_g·W`, `g·U`, `r2_g·W`, `r_g·(2U)`) and three sums.
    pub fn third_order(spec: &MlpSpec, n: usize) -> f64 {
        let (f, r) = first_and_rest(spec);
        n as f64 * (4.0 * f + 22.0 * r)
    }

    /// One Gauss–Newton-vector product (no `g·V` and `gᵀr_a` terms).
    pub fn ggn(spec: &MlpSpec, n: usize) -> f64 {
        let (f, r) = first_and_rest(spec);
        n as f64 * (4.0 * f + 8.0 * r)
    }
}
