//! Block Lanczos with full reorthogonalization, exact residuals from `A Q`, and thick restart.
//! The algorithm, its invariants and the cost model are in the [module docs](super).

use super::tiles::{self, Then, Tile};
use super::{EigError, EigResult, LanczosParams, Status, SymOp, Which};
use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::evd;
use faer::{Col, Mat, MatRef};
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

mod subspace;

/// Kept directions of a block with `λ_min / λ_max` of its Gram below this get one more
/// Gram–Schmidt round: after two passes their orthogonality to `Q` is only `ε·√(λ_max/λ_min)`.
const WEAK_RATIO: f64 = 1e-8;
/// A candidate column of unit norm whose part outside `span(Q)` is shorter than this is treated
/// as lying in `span(Q)` (random replacements near a full space).
const SPAN_TOL: f64 = 1e-8;
/// Gram eigenvalues below `GRAM_FLOOR · c · ε · λ_max` are not resolved by a `c × c` Gram
/// (SVQB resolves singular values only down to `√ε · σ_max`): such directions are deflated.
const GRAM_FLOOR: f64 = 100.0;
/// Attempts at filling a block with random vectors before accepting a smaller block.
const RANDOM_ATTEMPTS: usize = 3;

/// Computes `params.k` extreme eigenpairs of the symmetric operator `op` (see the
/// [module docs](super) for the algorithm, convergence rule and determinism contract).
///
/// `start` is an optional warm-start block, `n × s` column-major (e.g. the previous Ritz
/// vectors). Column `j < b` of the first block is the sum of the normalized start columns
/// `j, j + b, j + 2b, …` (so `s > b` vectors all contribute); when `s < b` the remaining
/// columns are seeded random. A cold start is a seeded random block.
///
/// Non-convergence is a result ([`Status::MaxProducts`], [`Status::Breakdown`]) carrying the
/// best estimate. Errors are returned only for invalid parameters, a non-finite operator output,
/// or a failure of the dense eigensolver.
///
/// Each call allocates the solver's buffers afresh (and the system maps their pages in as they
/// are first written); a caller that solves repeatedly on problems of one shape should keep a
/// [`LanczosWorkspace`] instead.
pub fn lanczos(
    op: &mut dyn SymOp,
    params: &LanczosParams,
    start: Option<&[f64]>,
) -> Result<EigResult, EigError> {
    LanczosWorkspace::new().solve(op, params, start)
}

/// The solver's buffers, kept between solves: [`LanczosWorkspace::solve`] computes exactly what
/// [`lanczos`] computes (bit for bit), but allocates only when the problem's shape changes
/// (dimension, `k`, block, `max_basis` or `tile_rows`). Tracking the sharpness at every step of
/// a run then costs the vector work alone: a fresh solve at `n ≈ 6.6·10⁵`, `max_basis = 32`
/// maps in up to half a gigabyte of zeroed pages before it has done any arithmetic.
#[derive(Default)]
pub struct LanczosWorkspace {
    solver: Option<Solver>,
}

impl LanczosWorkspace {
    /// An empty workspace; the first solve allocates.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`lanczos`] on `op`, in this workspace's buffers.
    pub fn solve(
        &mut self,
        op: &mut dyn SymOp,
        params: &LanczosParams,
        start: Option<&[f64]>,
    ) -> Result<EigResult, EigError> {
        let n = op.dim();
        validate(n, params, start)?;
        match &mut self.solver {
            Some(s) if s.fits(n, params) => s.reset(params),
            slot => *slot = Some(Solver::new(n, params)),
        }
        let solver = self.solver.as_mut().expect("installed above");
        solver.run(op, start)
    }

    /// Bytes held by the buffers (0 before the first solve).
    pub fn bytes(&self) -> usize {
        self.solver.as_ref().map_or(0, Solver::bytes)
    }
}

/// Solver state. All buffers are allocated in [`Solver::new`]; [`Solver::reset`] readies them
/// for another solve of the same shape.
pub(crate) struct Solver {
    prm: LanczosParams,
    n: usize,
    k: usize,
    /// Block size, `min(params.block, n)`.
    b: usize,
    /// Basis capacity, `min(params.max_basis, n)`.
    cap: usize,
    tiles: Vec<Tile>,
    /// Basis columns whose image is stored in `W`.
    m: usize,
    /// Projected matrix `T = Qᵀ A Q` (`cap × cap`, leading `m × m` valid).
    t: Mat<f64>,
    evals: Col<f64>,
    evecs: Mat<f64>,
    /// Gram matrices of blocks (`b × b`) and their eigendecomposition.
    gsm: Mat<f64>,
    gvals: Col<f64>,
    gvecs: Mat<f64>,
    evd_buf: MemBuffer,
    /// Ritz indices, best first.
    order: Vec<usize>,
    /// Reduction output.
    red: Vec<f64>,
    g1: Vec<f64>,
    g2: Vec<f64>,
    /// Wanted Ritz coefficients `S` (`m × kk`).
    sk: Vec<f64>,
    /// Kept Ritz coefficients at restart (`m × keep`).
    skeep: Vec<f64>,
    theta: Vec<f64>,
    /// True residual norms and `‖Q sₗ‖` of the wanted pairs (valid after `true_residuals`).
    res: Vec<f64>,
    ynorm: Vec<f64>,
    /// SVQB map `V_r Λ_r^{-1/2}` (`c × r`) and the kept Gram eigenvalues, largest first.
    mtx: Vec<f64>,
    glam: Vec<f64>,
    /// Operator input/output, `n × b` column-major.
    xbuf: Vec<f64>,
    ybuf: Vec<f64>,
    rng: Xoshiro256PlusPlus,
    products: usize,
    iterations: usize,
    restarts: usize,
}

fn validate(n: usize, p: &LanczosParams, start: Option<&[f64]>) -> Result<(), EigError> {
    if n == 0 {
        return Err(EigError::EmptyOperator);
    }
    if p.k == 0 || p.k > n {
        return Err(EigError::InvalidK { k: p.k, n });
    }
    if p.block == 0 {
        return Err(EigError::InvalidBlock);
    }
    if p.max_basis < n && p.max_basis < p.k + p.block {
        return Err(EigError::BasisTooSmall {
            max_basis: p.max_basis,
            needed: p.k + p.block,
        });
    }
    if p.max_products < p.k {
        return Err(EigError::TooFewProducts {
            max_products: p.max_products,
            k: p.k,
        });
    }
    if !(p.tol.is_finite() && p.tol >= 0.0) {
        return Err(EigError::InvalidTolerance { tol: p.tol });
    }
    if !(p.deflation_tol.is_finite() && (0.0..1.0).contains(&p.deflation_tol)) {
        return Err(EigError::InvalidDeflationTol {
            value: p.deflation_tol,
        });
    }
    if p.tile_rows == 0 {
        return Err(EigError::InvalidTileRows);
    }
    if let Some(s) = start {
        if s.is_empty() || s.len() % n != 0 {
            return Err(EigError::BadStartShape { len: s.len(), n });
        }
        if let Some(index) = s.iter().position(|v| !v.is_finite()) {
            return Err(EigError::NonFiniteStart { index });
        }
    }
    Ok(())
}

/// Symmetric eigendecomposition of `a` (`d × d`) into the leading parts of `vals`/`vecs`,
/// eigenvalues ascending. Sequential: these matrices are tiny.
fn sym_eig(
    a: MatRef<'_, f64>,
    vals: &mut Col<f64>,
    vecs: &mut Mat<f64>,
    buf: &mut MemBuffer,
) -> Result<(), EigError> {
    let d = a.nrows();
    evd::self_adjoint_evd(
        a,
        vals.as_mut().subrows_mut(0, d).as_diagonal_mut(),
        Some(vecs.as_mut().submatrix_mut(0, 0, d, d)),
        faer::Par::Seq,
        MemStack::new(buf),
        Default::default(),
    )
    .map_err(|_| EigError::DenseEigen { dim: d })
}

impl Solver {
    /// Buffers for a problem of dimension `n` with `params` (validated by the caller).
    pub(crate) fn new(n: usize, params: &LanczosParams) -> Self {
        let k = params.k;
        let b = params.block.min(n);
        let cap = params.max_basis.min(n);
        let part_len = cap * b + b.max(k) + b * b;
        let reqs: Vec<StackReq> = (1..=cap)
            .map(|d| {
                evd::self_adjoint_evd_scratch::<f64>(
                    d,
                    evd::ComputeEigenvectors::Yes,
                    faer::Par::Seq,
                    Default::default(),
                )
            })
            .collect();
        Self {
            prm: *params,
            n,
            k,
            b,
            cap,
            tiles: tiles::make_tiles(n, params.tile_rows, cap, b, part_len),
            m: 0,
            t: Mat::zeros(cap, cap),
            evals: Col::zeros(cap),
            evecs: Mat::zeros(cap, cap),
            gsm: Mat::zeros(b, b),
            gvals: Col::zeros(b),
            gvecs: Mat::zeros(b, b),
            evd_buf: MemBuffer::new(StackReq::any_of(&reqs)),
            order: vec![0; cap],
            red: vec![0.0; part_len],
            g1: vec![0.0; cap * b],
            g2: vec![0.0; cap * b],
            sk: vec![0.0; cap * k],
            skeep: vec![0.0; cap * cap],
            theta: vec![0.0; k],
            res: vec![0.0; k],
            ynorm: vec![1.0; k],
            mtx: vec![0.0; b * b],
            glam: vec![0.0; b],
            xbuf: vec![0.0; n * b],
            ybuf: vec![0.0; n * b],
            rng: Xoshiro256PlusPlus::seed_from_u64(params.seed),
            products: 0,
            iterations: 0,
            restarts: 0,
        }
    }

    /// Whether these buffers have the shape a problem of dimension `n` with `params` needs.
    pub(crate) fn fits(&self, n: usize, params: &LanczosParams) -> bool {
        self.n == n
            && self.k == params.k
            && self.b == params.block.min(n)
            && self.cap == params.max_basis.min(n)
            && self.prm.tile_rows == params.tile_rows
    }

    /// Readies fitting buffers for a new solve with `params`: counters, random stream and basis
    /// size start over. Every other buffer is written before it is read in a solve.
    pub(crate) fn reset(&mut self, params: &LanczosParams) {
        self.prm = *params;
        self.m = 0;
        self.rng = Xoshiro256PlusPlus::seed_from_u64(params.seed);
        self.products = 0;
        self.iterations = 0;
        self.restarts = 0;
    }

    /// Bytes held by the tall buffers (the small dense ones are negligible).
    fn bytes(&self) -> usize {
        let tall: usize = self
            .tiles
            .iter()
            .map(|t| t.q.len() + t.w.len() + t.x.len() + t.z.len() + t.part.len())
            .sum();
        8 * (tall + self.xbuf.len() + self.ybuf.len())
    }

    pub(crate) fn run(
        &mut self,
        op: &mut dyn SymOp,
        start: Option<&[f64]>,
    ) -> Result<EigResult, EigError> {
        let (n, k, par) = (self.n, self.k, self.prm.par);
        let eps23 = f64::EPSILON.powf(2.0 / 3.0);
        let mut m0 = 0;
        let mut c = self.first_block(start)?;
        loop {
            // 1–3. Products of the newest block, the column block of T, Rayleigh–Ritz.
            let nu = self.apply_block(op, m0, c)?;
            let ma = m0 + c;
            let sigma = self.rayleigh_ritz(ma)?;
            let kk = k.min(ma);

            // 4. First projection X = W_new − Q G1, with Qᵀ X and the Gram XᵀX. Since
            //    A Q = Q T + X E_newᵀ up to rounding, ‖X s_new,l‖ estimates the residual of pair l
            //    for free; the exact residual (one pass over Q and W) is computed only when the
            //    estimate says converged, and before any return.
            tiles::project_new(
                par,
                &mut self.tiles,
                ma,
                m0,
                &self.g1[..ma * c],
                &mut self.red,
            );
            self.g2[..ma * c].copy_from_slice(&self.red[..ma * c]);
            let gx = &self.red[ma * c..ma * c + c * c];
            let tol = self.prm.tol;
            let floor = eps23 * sigma;
            let estimate_converged = kk == k
                && (0..k).all(|l| {
                    let s_new = &self.sk[l * ma + m0..(l + 1) * ma];
                    let mut q = 0.0;
                    for j in 0..c {
                        for i in 0..c {
                            q += s_new[i] * gx[i + j * c] * s_new[j];
                        }
                    }
                    q.max(0.0).sqrt() <= tol * self.theta[l].abs().max(floor)
                });

            // 5. Second projection, Gram of the residual block, deflation.
            self.gs_pass(ma, c, true, Then::Gram);
            let r = self.svqb(c, self.prm.deflation_tol * nu)?;

            if r == 0 && ma >= k {
                return Ok(self.finish(Status::Breakdown));
            }
            if estimate_converged {
                self.true_residuals(kk);
                if (0..k).all(|l| self.res[l] <= tol * self.theta[l].abs().max(floor)) {
                    return Ok(self.finish(Status::Converged));
                }
            }
            let remaining = self.prm.max_products - self.products;
            if remaining == 0 {
                return Ok(self.finish(Status::MaxProducts));
            }
            if ma == n {
                return Ok(self.finish(Status::Breakdown));
            }
            let want = self.b.min(remaining).min(n - ma);

            // 6. Thick restart: keep the best Ritz vectors; the pending X stays valid.
            let m = if ma + want > self.cap {
                self.thick_restart(ma, want)
            } else {
                ma
            };

            // 7. Normalize the kept residual directions (largest first), fill with random.
            let r_use = r.min(want);
            let weak = r_use > 0 && self.glam[r_use - 1] < WEAK_RATIO * self.glam[0];
            if r_use > 0 {
                tiles::transform_x_gram(
                    par,
                    &mut self.tiles,
                    c,
                    r_use,
                    &self.mtx[..c * r_use],
                    &mut self.red,
                );
            }
            c = self.build_block(m, want, r_use, weak)?;
            if c == 0 {
                // Unreachable in exact arithmetic (want ≤ n − m free dimensions). Report the
                // basis as it stands: after a restart its leading columns are the Ritz vectors.
                let kk = k.min(m);
                self.sk[..m * kk].fill(0.0);
                for l in 0..kk {
                    self.sk[l + l * m] = 1.0;
                    self.theta[l] = self.t[(l, l)];
                }
                return Ok(self.finish(Status::Breakdown));
            }
            m0 = m;
        }
    }

    /// Steps 1–2 of an iteration: applies `op` to the newest block `Q[:, m0..m0+c]`, stores the
    /// products in `W` and completes the column block `Qᵀ W_new` of `T` (symmetrized; kept in
    /// `g1` for the first projection). Returns `ν = max_j ‖A q_j‖` over the new block.
    fn apply_block(&mut self, op: &mut dyn SymOp, m0: usize, c: usize) -> Result<f64, EigError> {
        let (n, par) = (self.n, self.prm.par);
        tiles::gather_q(par, &self.tiles, &mut self.xbuf, n, m0, c);
        op.apply(&self.xbuf[..n * c], &mut self.ybuf[..n * c], c);
        self.products += c;
        self.iterations += 1;
        let ma = m0 + c;
        tiles::store_and_project(par, &mut self.tiles, &self.ybuf, n, m0, c, &mut self.red);
        let red = &self.red[..ma * c + c];
        if red.iter().any(|v| !v.is_finite()) {
            return Err(EigError::NonFiniteProduct {
                products: self.products,
            });
        }
        let nu = red[ma * c..].iter().fold(0.0f64, |a, &v| a.max(v)).sqrt();
        self.g1[..ma * c].copy_from_slice(&red[..ma * c]);
        for j in 0..c {
            for i in 0..m0 {
                let v = self.g1[i + j * ma];
                self.t[(i, m0 + j)] = v;
                self.t[(m0 + j, i)] = v;
            }
            for i in 0..c {
                self.t[(m0 + i, m0 + j)] =
                    0.5 * (self.g1[(m0 + i) + j * ma] + self.g1[(m0 + j) + i * ma]);
            }
        }
        self.m = ma;
        Ok(nu)
    }

    /// Step 3: Rayleigh–Ritz on `T[..ma, ..ma]`. Fills `order`, and `theta`/`sk` with the
    /// `min(k, ma)` wanted pairs; returns `max_i |θᵢ|`.
    fn rayleigh_ritz(&mut self, ma: usize) -> Result<f64, EigError> {
        sym_eig(
            self.t.as_ref().submatrix(0, 0, ma, ma),
            &mut self.evals,
            &mut self.evecs,
            &mut self.evd_buf,
        )?;
        self.sort_ritz(ma);
        for l in 0..self.k.min(ma) {
            let idx = self.order[l];
            self.theta[l] = self.evals[idx];
            for i in 0..ma {
                self.sk[i + l * ma] = self.evecs[(i, idx)];
            }
        }
        Ok((0..ma).fold(0.0f64, |a, i| a.max(self.evals[i].abs())))
    }

    /// Thick restart before a block of `want` columns: the basis becomes the best
    /// `k + (cap − want − k)/2` Ritz vectors of the `ma` columns (`Q ← Q S`, `W ← W S`,
    /// `T ← Θ`), with no products. Returns the new basis size.
    fn thick_restart(&mut self, ma: usize, want: usize) -> usize {
        let k = self.k;
        let keep = (k + (self.cap - want - k) / 2).min(ma);
        for l in 0..keep {
            let idx = self.order[l];
            for i in 0..ma {
                self.skeep[i + l * ma] = self.evecs[(i, idx)];
            }
        }
        tiles::restart(
            self.prm.par,
            &mut self.tiles,
            ma,
            keep,
            &self.skeep[..ma * keep],
        );
        for j in 0..keep {
            for i in 0..keep {
                self.t[(i, j)] = 0.0;
            }
            self.t[(j, j)] = self.evals[self.order[j]];
        }
        self.m = keep;
        self.restarts += 1;
        keep
    }

    /// Builds the first block from `start` (folded to `b` columns) and random columns.
    fn first_block(&mut self, start: Option<&[f64]>) -> Result<usize, EigError> {
        let n = self.n;
        let want = self.b.min(self.prm.max_products);
        let mut filled = 0;
        if let Some(s) = start {
            let cols = s.len() / n;
            filled = cols.min(want);
            self.xbuf[..filled * n].fill(0.0);
            for c in 0..cols {
                let col = &s[c * n..(c + 1) * n];
                let norm = tiles::dot(col, col).sqrt();
                if norm > 0.0 {
                    let j = c % want;
                    tiles::axpy(&mut self.xbuf[j * n..(j + 1) * n], 1.0 / norm, col);
                }
            }
            tiles::scatter_x(self.prm.par, &mut self.tiles, &self.xbuf, n, 0, filled);
        }
        match self.build_block(0, want, filled, true)? {
            // Only if every random draw vanished, which has probability 0.
            0 => Err(EigError::DegenerateStart),
            c => Ok(c),
        }
    }

    /// Turns `X[:, ..filled]` (orthonormal, ⟂ `Q[:, ..m]`, Gram in `red`, unless `dirty`) plus
    /// random columns up to `want` into an orthonormal block ⟂ `Q[:, ..m]`, installs it as
    /// `Q[:, m..m+r]` and returns `r` (`< want` only when `span(Q)` fills the space).
    fn build_block(
        &mut self,
        m: usize,
        want: usize,
        mut filled: usize,
        mut dirty: bool,
    ) -> Result<usize, EigError> {
        let par = self.prm.par;
        let mut r = filled;
        for _ in 0..RANDOM_ATTEMPTS {
            if filled < want {
                self.fill_random(filled, want);
                dirty = true;
            }
            if !dirty {
                break;
            }
            self.cgs2_gram(m, want);
            r = self.svqb(want, SPAN_TOL)?;
            tiles::transform_x_gram(
                par,
                &mut self.tiles,
                want,
                r,
                &self.mtx[..want * r],
                &mut self.red,
            );
            filled = r;
            dirty = false;
            if r == want {
                break;
            }
        }
        // Second SVQB: the Gram is I + O(ε·cond²) now; this brings it to I + O(ε).
        let r2 = self.svqb(r, 0.5)?;
        tiles::install_block(par, &mut self.tiles, m, r, r2, &self.mtx[..r * r2]);
        Ok(r2)
    }

    /// Two classical Gram–Schmidt passes of `X[:, ..c]` against `Q[:, ..m]`; leaves the Gram of
    /// the result in `red`.
    fn cgs2_gram(&mut self, m: usize, c: usize) {
        if m == 0 {
            self.gs_pass(0, c, false, Then::Gram);
            return;
        }
        self.gs_pass(m, c, false, Then::Project);
        self.gs_pass(m, c, true, Then::Project);
        self.gs_pass(m, c, true, Then::Gram);
    }

    /// One pass over `X[:, ..c]`: `X −= Q[:, ..m] G` with the projection `G` (`m × c`) kept in
    /// `g2` when `subtract`, then the reduction `then` into `red`. After [`Then::Project`] the
    /// new projection `Q[:, ..m]ᵀ X` replaces `G` in `g2`, for the next pass.
    fn gs_pass(&mut self, m: usize, c: usize, subtract: bool, then: Then) {
        tiles::subtract_then(
            self.prm.par,
            &mut self.tiles,
            m,
            c,
            subtract.then(|| &self.g2[..m * c]),
            then,
            &mut self.red,
        );
        if then == Then::Project {
            self.g2[..m * c].copy_from_slice(&self.red[..m * c]);
        }
    }

    /// Writes seeded random columns `c0..c1` of `X`, each of expected unit norm
    /// (uniform on `[−1, 1)` has variance 1/3), drawn in global row order.
    fn fill_random(&mut self, c0: usize, c1: usize) {
        let n = self.n;
        let scale = (3.0 / n as f64).sqrt();
        for v in &mut self.xbuf[c0 * n..c1 * n] {
            let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            *v = (2.0 * u - 1.0) * scale;
        }
        tiles::scatter_x(self.prm.par, &mut self.tiles, &self.xbuf, n, c0, c1);
    }

    /// SVQB on the `c × c` Gram in `red`: writes `M = V_r Λ_r^{-1/2}` (`c × r`) into `mtx` and
    /// the kept eigenvalues (largest first) into `glam`, for the directions with
    /// `λ > thresh²` that the Gram resolves. Returns `r`.
    fn svqb(&mut self, c: usize, thresh: f64) -> Result<usize, EigError> {
        if c == 0 {
            return Ok(0);
        }
        for j in 0..c {
            for i in 0..c {
                self.gsm[(i, j)] = self.red[i + j * c];
            }
        }
        sym_eig(
            self.gsm.as_ref().submatrix(0, 0, c, c),
            &mut self.gvals,
            &mut self.gvecs,
            &mut self.evd_buf,
        )?;
        let lmax = self.gvals[c - 1].max(0.0);
        let floor = (thresh * thresh).max(GRAM_FLOOR * c as f64 * f64::EPSILON * lmax);
        let mut r = 0;
        for idx in (0..c).rev() {
            let lam = self.gvals[idx];
            if !(lam > floor && lam > 0.0) {
                break;
            }
            let inv = 1.0 / lam.sqrt();
            for i in 0..c {
                self.mtx[i + r * c] = self.gvecs[(i, idx)] * inv;
            }
            self.glam[r] = lam;
            r += 1;
        }
        Ok(r)
    }

    /// Fills `order[..d]` with Ritz indices (into the ascending `evals`), best first.
    fn sort_ritz(&mut self, d: usize) {
        let order = &mut self.order[..d];
        match self.prm.which {
            Which::LargestAlgebraic => order
                .iter_mut()
                .enumerate()
                .for_each(|(l, o)| *o = d - 1 - l),
            Which::SmallestAlgebraic => order.iter_mut().enumerate().for_each(|(l, o)| *o = l),
            Which::LargestMagnitude => {
                order.iter_mut().enumerate().for_each(|(l, o)| *o = l);
                let ev = &self.evals;
                order
                    .sort_unstable_by(|&a, &b| ev[b].abs().total_cmp(&ev[a].abs()).then(b.cmp(&a)));
            }
        }
    }

    /// Exact residuals of the `kk` wanted Ritz pairs from `A Q = W`: fills `res` with
    /// `‖A yₗ − θₗ yₗ‖` and `ynorm` with `‖Q sₗ‖`, for the unit vectors `yₗ = Q sₗ / ‖Q sₗ‖`.
    fn true_residuals(&mut self, kk: usize) {
        let ma = self.m;
        tiles::ritz_residuals(
            self.prm.par,
            &mut self.tiles,
            ma,
            &self.sk[..ma * kk],
            &self.theta[..kk],
            &mut self.red,
        );
        for l in 0..kk {
            let yn = self.red[l].max(0.0).sqrt();
            self.ynorm[l] = if yn > 0.0 { yn } else { 1.0 };
            self.res[l] = self.red[kk + l].max(0.0).sqrt() / self.ynorm[l];
        }
    }

    /// Assembles the result from the current Ritz pairs (`sk`, `theta` over `m` columns).
    fn finish(&mut self, status: Status) -> EigResult {
        let (n, ma, par) = (self.n, self.m, self.prm.par);
        let kk = self.k.min(ma);
        self.true_residuals(kk);
        let scale: Vec<f64> = self.ynorm[..kk].iter().map(|v| 1.0 / v).collect();
        let mut vectors = vec![0.0; n * kk];
        tiles::ritz_vectors(
            par,
            &self.tiles,
            n,
            ma,
            &self.sk[..ma * kk],
            &scale,
            &mut vectors,
        );
        EigResult {
            values: self.theta[..kk].to_vec(),
            vectors,
            residuals: self.res[..kk].to_vec(),
            status,
            products: self.products,
            iterations: self.iterations,
            restarts: self.restarts,
        }
    }

    /// `‖QᵀQ − I‖_max` of the current basis.
    #[cfg(test)]
    pub(crate) fn orthogonality_error(&self) -> f64 {
        tiles::orthogonality_error(&self.tiles, self.m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eig::{DenseSymOp, DiagOp};
    use crate::Par;

    fn spectrum(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 13) % n) as f64 / n as f64 + if i == 0 { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn basis_stays_orthonormal_through_restarts() {
        for (k, b, max_basis) in [(1usize, 1usize, 5usize), (2, 3, 11), (4, 2, 40)] {
            let mut op = DiagOp::new(spectrum(400)).unwrap();
            let p = LanczosParams {
                k,
                block: b,
                max_basis,
                tol: 1e-14,
                max_products: 150,
                tile_rows: 29,
                ..Default::default()
            };
            let mut s = Solver::new(op.dim(), &p);
            let r = s.run(&mut op, None).unwrap();
            assert_eq!(r.status, Status::MaxProducts);
            let err = s.orthogonality_error();
            assert!(err < 1e-13, "k={k} b={b}: ‖QᵀQ − I‖ = {err:e}");
            assert!(s.m <= max_basis);
        }
    }

    #[test]
    fn degenerate_candidates_are_replaced_and_orthonormalized() {
        let n = 60;
        let p = LanczosParams {
            block: 3,
            max_basis: 12,
            tile_rows: 7,
            ..Default::default()
        };
        let mut s = Solver::new(n, &p);
        assert_eq!(s.first_block(None).unwrap(), 3);
        // Candidates: a random vector, an almost parallel copy plus a basis component, and a
        // vector inside span(Q).
        tiles::gather_q(Par::Seq, &s.tiles, &mut s.ybuf, n, 0, 3);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        for i in 0..n {
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) - 0.5;
            let v = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) - 0.5;
            s.xbuf[i] = u;
            s.xbuf[n + i] = u + 1e-6 * v + 0.5 * s.ybuf[i];
            s.xbuf[2 * n + i] = s.ybuf[n + i] - 2.0 * s.ybuf[2 * n + i];
        }
        tiles::scatter_x(Par::Seq, &mut s.tiles, &s.xbuf, n, 0, 3);
        let r = s.build_block(3, 3, 3, true).unwrap();
        assert_eq!(
            r, 3,
            "the in-span candidate must be replaced by a random vector"
        );
        let err = tiles::orthogonality_error(&s.tiles, 6);
        assert!(err < 1e-13, "‖QᵀQ − I‖ = {err:e}");
    }

    #[test]
    fn rank_deficient_blocks_deflate_without_nan() {
        // Rank 2 with block 4: the second residual block has rank ≤ 2 and gets random columns.
        let n = 40;
        let mut a = Mat::<f64>::zeros(n, n);
        for i in 0..n {
            for j in 0..n {
                let (u, v) = (((i + 1) as f64).sin(), ((2 * j + 3) as f64).cos());
                let (ui, vj) = (((j + 1) as f64).sin(), ((2 * i + 3) as f64).cos());
                a[(i, j)] = 3.0 * u * ui + v * vj;
            }
        }
        let mut op = DenseSymOp::new(a).unwrap();
        let p = LanczosParams {
            k: 2,
            block: 4,
            tol: 1e-10,
            tile_rows: 9,
            ..Default::default()
        };
        let mut s = Solver::new(n, &p);
        let r = s.run(&mut op, None).unwrap();
        assert!(r
            .values
            .iter()
            .chain(&r.residuals)
            .chain(&r.vectors)
            .all(|v| v.is_finite()));
        assert!(s.orthogonality_error() < 1e-13);
        assert!(r
            .residuals
            .iter()
            .zip(&r.values)
            .all(|(e, v)| *e <= 1e-10 * v.abs()));
    }

    /// A kept workspace reproduces one-shot solves bit for bit, whatever it solved before:
    /// another operator, a longer run with restarts, a warm start, another seed, and a change
    /// of shape (which reallocates).
    #[test]
    fn workspace_solves_equal_one_shot_solves() {
        let n = 300;
        let base = LanczosParams {
            k: 2,
            block: 2,
            max_basis: 10,
            tol: 1e-10,
            tile_rows: 37,
            ..Default::default()
        };
        let mut shifted = spectrum(n);
        shifted.iter_mut().for_each(|v| *v = 2.0 - *v);
        let warm: Vec<f64> = (0..2 * n).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let cases = [
            (spectrum(n), base, None),
            (
                shifted.clone(),
                LanczosParams {
                    max_products: 200,
                    ..base
                },
                None,
            ),
            (spectrum(n), base, Some(warm.as_slice())),
            (spectrum(n), LanczosParams { seed: 9, ..base }, None),
            (
                shifted,
                LanczosParams {
                    k: 3,
                    block: 1,
                    ..base
                },
                None,
            ),
            (spectrum(n), base, None),
        ];
        let mut ws = LanczosWorkspace::new();
        assert_eq!(ws.bytes(), 0);
        for (i, (d, p, start)) in cases.iter().enumerate() {
            let one_shot = lanczos(&mut DiagOp::new(d.clone()).unwrap(), p, *start).unwrap();
            let kept = ws
                .solve(&mut DiagOp::new(d.clone()).unwrap(), p, *start)
                .unwrap();
            assert!(ws.bytes() >= 8 * 2 * n * p.max_basis, "case {i}");
            assert_eq!(one_shot.products, kept.products, "case {i}");
            assert_eq!(one_shot.restarts, kept.restarts, "case {i}");
            // The long run restarts, so the runs after it start over a stale basis.
            assert!(i != 1 || kept.restarts > 0, "case 1 must restart");
            let bits = |r: &EigResult| -> Vec<u64> {
                r.values
                    .iter()
                    .chain(&r.residuals)
                    .chain(&r.vectors)
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(bits(&one_shot), bits(&kept), "case {i}");
        }
    }
}
