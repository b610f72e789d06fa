//! Tracking the top eigenvalues of a slowly changing symmetric operator `A_t` (the Hessian along
//! a gradient-descent run), one estimate per step, with a certified error bound.
//!
//! # Why a history subspace
//! At the edge of stability the iterate oscillates with period 2 along the top eigenvector, so
//! `A_t ≈ Ā ± x_t E` flips every step: the previous step's Ritz vector is a poor start (warm
//! Lanczos then needs ~16 products for a residual of 1e-3·θ), the one from two steps back a good
//! one, and `span{y_{t−1}, y_{t−2}}` holds both to first order. [`Strategy::History`] therefore
//! runs Rayleigh–Ritz on a subspace of the last two estimates' Ritz vectors and expands it by
//! the residuals of the failing pairs (one product each) until the certificate holds. The
//! subspace is the newest Ritz block (the `k` tracked vectors and `guard` more) while the
//! sharpness moves slowly; once the tracked vectors turn by more than [`TURN`] from one estimate
//! to the next (the oscillation), it is the newest tracked vectors and the whole block before
//! them, whose guards are the same-phase ones. Measured on fc-tanh / cifar10-5k, η = 2/200:
//! 2 products per estimate while the sharpness rises, 3–5 at the edge of stability (warm
//! Lanczos: 2 and ~10–16).
//!
//! # The certificate ([`certify`])
//! For Ritz pairs `(θᵢ, yᵢ)` from any subspace, `θᵢ ≤ λᵢ` (Cauchy interlacing): the estimate
//! never overshoots. The upper side needs a number `ρ ≥ λ_{k+1}`; then Lehmann's method (the
//! block form of the Kato–Temple inequality) gives `λᵢ ≤ θᵢ + Eᵢ` from the residual norms, with
//! `Eᵢ ≈ ‖rᵢ‖² / (θᵢ − ρ)` — quadratic in the residual, so an eigenvalue is certified long before
//! its eigenvector is accurate when the top eigenvalues crowd together. `ρ` is taken from the
//! guard pair, `θ_{k+1} + ‖r_{k+1}‖`: an upper bound of `λ_{k+1}` unless the subspace missed an
//! eigenvalue altogether, which no Krylov-type method can rule out. The periodic cold check
//! ([`TrackerParams::check_every`]: a Lanczos solve from a random start) audits exactly that: its
//! Ritz values are lower bounds of the true eigenvalues, so one above a reported `θᵢ + Eᵢ` or
//! above `ρ` proves a missed eigenvalue; the tracker then adopts the check's vectors.
//! Where no `ρ` separates the tracked values ([`Certificate::bounds`] is `None`), the stop
//! rule falls back to the residual rule `‖rᵢ‖ ≤ tol·|θᵢ|` and no bound is reported.

use std::collections::VecDeque;

use super::lanczos::Solver;
use super::tiles;
use super::{EigError, EigResult, LanczosParams, LanczosWorkspace, SymOp, Which};

/// How each estimate is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Block Lanczos warm-started from the previous estimate's Ritz vectors, residual rule: the
    /// baseline (and a cold random start every time with `warm_start = false`).
    Lanczos,
    /// Rayleigh–Ritz on the last two estimates' Ritz vectors, expanded by residuals until the
    /// certificate holds (see the module docs).
    History,
    /// Knyazev's LOBPCG (no preconditioner) started from the same history subspace: each
    /// iteration adds the residuals of every unconverged pair (guards included) to
    /// `span{X, P}`, the Ritz block and the previous one; same certificate and stop rule.
    Lobpcg,
}

impl Strategy {
    /// The name written to result files.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Lanczos => "lanczos",
            Strategy::History => "history",
            Strategy::Lobpcg => "lobpcg",
        }
    }
}

/// When an estimate is accurate enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopRule {
    /// The certified eigenvalue error bound `Eᵢ ≤ tol·|θᵢ|` (the residual rule where no bound
    /// exists).
    Bound,
    /// The relative residual `‖rᵢ‖ ≤ tol·|θᵢ|` (asks for eigenvector accuracy too).
    Residual,
}

impl StopRule {
    /// The name written to result files.
    pub fn name(self) -> &'static str {
        match self {
            StopRule::Bound => "bound",
            StopRule::Residual => "residual",
        }
    }
}

/// The error certificate of the tracked Ritz values.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// The gap estimate `ρ = θ_{k+1} + ‖r_{k+1}‖` (assumed `≥ λ_{k+1}`), when a guard pair exists.
    pub rho: Option<f64>,
    /// Per tracked pair, `Eᵢ` with `0 ≤ λᵢ − θᵢ ≤ Eᵢ` given `λ_{k+1} ≤ ρ`; `None` where `ρ` does
    /// not separate enough tracked values to bound `λᵢ`.
    pub bounds: Vec<Option<f64>>,
}

/// Error bounds `Eᵢ` for `λ₁ … λ_k` of a symmetric `A` from Ritz values `θ₁ ≥ … ≥ θ_k` with
/// residual norms `‖rᵢ‖`, given `λ_{k+1} ≤ rho` (Lehmann's method).
///
/// With `B = A − ρI`, `B⁻¹` has at most `k` positive eigenvalues `1/(λⱼ − ρ)`. Its Ritz values
/// on `B·span(Y)` are the positive roots `μ` of `(Θ − ρ) c = μ ((Θ − ρ)² + RᵀR) c`, and by
/// Courant–Fischer the `i`-th largest positive `μ` bounds `λ_{k+1−i} ≤ ρ + 1/μᵢ`. Replacing
/// `RᵀR` by the diagonal `D ⪰ RᵀR`, `dⱼ = ‖rⱼ‖ Σₗ ‖rₗ‖`, only loosens the bounds and makes the
/// pencil diagonal: `ρ + 1/μⱼ = θⱼ + dⱼ/(θⱼ − ρ)` for `θⱼ > ρ`. With `k = 1` this is the
/// Kato–Temple bound `‖r‖²/(θ − ρ)`. The `p` values `Uⱼ` sorted decreasingly bound
/// `λ_{k−p+1} … λ_k`… in order; the top `k − p` get `None`.
pub fn lehmann_bounds(theta: &[f64], res: &[f64], rho: f64) -> Vec<Option<f64>> {
    let k = theta.len();
    let total: f64 = res.iter().sum();
    let mut upper: Vec<f64> = theta
        .iter()
        .zip(res)
        .filter(|(&t, _)| t > rho)
        .map(|(&t, &r)| t + r * total / (t - rho))
        .collect();
    if !rho.is_finite() || upper.iter().any(|u| !u.is_finite()) {
        return vec![None; k];
    }
    upper.sort_by(|a, b| b.total_cmp(a));
    let missing = k - upper.len();
    (0..k)
        .map(|i| (i >= missing).then(|| (upper[i - missing] - theta[i]).max(0.0)))
        .collect()
}

/// The certificate of the first `track` of the Ritz pairs `(theta, res)` (best first): the gap
/// estimate from pair `track` (the guard) when there is one, and [`lehmann_bounds`] with it.
pub fn certify(theta: &[f64], res: &[f64], track: usize) -> Certificate {
    let t = track.min(theta.len());
    match (theta.get(track), res.get(track)) {
        (Some(&g), Some(&r)) if t == track => {
            let rho = g + r;
            Certificate {
                rho: Some(rho),
                bounds: lehmann_bounds(&theta[..t], &res[..t], rho),
            }
        }
        _ => Certificate {
            rho: None,
            bounds: vec![None; track],
        },
    }
}

/// Tracker settings.
#[derive(Clone, Copy, Debug)]
pub struct TrackerParams {
    pub strategy: Strategy,
    pub stop: StopRule,
    /// `k` (tracked eigenvalues), `tol`, `max_products`, `max_basis`, `seed`, threads, tiles;
    /// `block` is the width of each expansion (history) or Lanczos block.
    pub lanczos: LanczosParams,
    /// Lanczos only: start from the previous Ritz vectors (else from a random block).
    pub warm_start: bool,
    /// Ritz pairs kept beyond `k` (history: `≥ 1`, the gap estimate comes from the first).
    pub guard: usize,
    /// A cold check every this many estimates (`0`: never). The first estimate of a history
    /// run is a cold solve itself.
    pub check_every: usize,
    /// Residual tolerance of the cold check's Lanczos solve.
    pub check_tol: f64,
}

impl TrackerParams {
    /// History strategy, bound rule, one guard, a cold check every 100 estimates.
    pub fn new(lanczos: LanczosParams) -> Self {
        TrackerParams {
            strategy: Strategy::History,
            stop: StopRule::Bound,
            lanczos,
            warm_start: true,
            guard: 1,
            check_every: 100,
            check_tol: 1e-6,
        }
    }

    /// Checks that the settings can work together (also done by [`Tracker::new`]).
    pub fn validate(&self) -> Result<(), EigError> {
        let p = &self.lanczos;
        if !self.warm_start && self.strategy != Strategy::Lanczos {
            return Err(EigError::Tracker(
                "a cold start every estimate (--cold-start) is a Lanczos strategy: \
                 use it with --tracker lanczos"
                    .into(),
            ));
        }
        if p.which != Which::LargestAlgebraic {
            return Err(EigError::Tracker(
                "the tracker follows the largest algebraic eigenvalues".into(),
            ));
        }
        if !(self.check_tol.is_finite() && self.check_tol > 0.0) {
            return Err(EigError::InvalidTolerance {
                tol: self.check_tol,
            });
        }
        if self.strategy != Strategy::Lanczos {
            if self.guard == 0 {
                return Err(EigError::Tracker(
                    "the history and LOBPCG trackers need a guard ≥ 1: its gap estimate".into(),
                ));
            }
            let need = self.history_basis();
            if p.max_products < need {
                return Err(EigError::TooFewProducts {
                    max_products: p.max_products,
                    k: need,
                });
            }
            if p.max_basis < need {
                return Err(EigError::BasisTooSmall {
                    max_basis: p.max_basis,
                    needed: need,
                });
            }
        }
        Ok(())
    }

    /// The basis the history strategy needs at least: the widest first block and one
    /// expansion beside the pairs a restart keeps.
    fn history_basis(&self) -> usize {
        let (k, g) = (self.lanczos.k, self.guard);
        let expansion = match self.strategy {
            Strategy::Lobpcg => 3 * (k + g),
            _ => k + g + self.lanczos.block,
        };
        (k + (k + g)).max(expansion)
    }
}

/// A cold check: a Lanczos solve from a random start at the same operator.
#[derive(Clone, Debug, PartialEq)]
pub struct ColdCheck {
    /// Its `k + 1` Ritz values (lower bounds of `λ₁ … λ_{k+1}`).
    pub values: Vec<f64>,
    pub products: usize,
    /// Whether the tracked estimate survived: no check value above a reported upper bound
    /// `θᵢ + Eᵢ` (or, with no bound, above `θᵢ + ‖rᵢ‖`) nor, for `λ_{k+1}`, above `ρ`, beyond
    /// a relative slack of [`CHECK_SLACK`] for the operator's own rounding.
    pub agrees: bool,
}

/// Sine of the angle between consecutive top vectors above which the older history block is
/// part of the first block: at the edge of stability on fc-tanh / cifar10-5k it is 0.13–0.5,
/// while the sharpness rises 1e-4 (1e-2 right after an expansion).
const TURN: f64 = 0.05;

/// Relative slack of a cold check's comparisons: an f32 curvature product is symmetric and
/// reproducible only to about this.
pub const CHECK_SLACK: f64 = 1e-6;

/// One estimate with its evidence.
#[derive(Clone, Debug)]
pub struct Estimate {
    /// The `k` tracked pairs (values, residuals, vectors, status, products of the estimate).
    pub result: EigResult,
    pub certificate: Certificate,
    /// The strategy that produced it ([`Strategy::Lanczos`] also for the history strategy's
    /// first, cold solve).
    pub strategy: Strategy,
    /// History only: certified from the history subspace, without residual expansion.
    pub history_only: bool,
    /// The cold check of this estimate, if one ran. When it disagrees, `result` holds the
    /// check's pairs instead.
    pub check: Option<ColdCheck>,
}

/// Carries the Ritz vectors of the last two estimates and the solvers' buffers from one estimate
/// to the next. Knows [`SymOp`] only.
pub struct Tracker {
    params: TrackerParams,
    /// Newest first: `n × (k + guard)` Ritz blocks.
    history: VecDeque<Vec<f64>>,
    subspace: Option<Solver>,
    lanczos: LanczosWorkspace,
    estimates: usize,
    checks: usize,
    disagreements: usize,
}

impl Tracker {
    pub fn new(params: TrackerParams) -> Result<Self, EigError> {
        params.validate()?;
        Ok(Tracker {
            params,
            history: VecDeque::with_capacity(3),
            subspace: None,
            lanczos: LanczosWorkspace::new(),
            estimates: 0,
            checks: 0,
            disagreements: 0,
        })
    }

    pub fn params(&self) -> &TrackerParams {
        &self.params
    }

    /// Cold checks run so far, and how many of them disagreed.
    pub fn checks(&self) -> (usize, usize) {
        (self.checks, self.disagreements)
    }

    /// Forgets the history: the next estimate starts cold.
    pub fn reset(&mut self) {
        self.history.clear();
    }

    /// Pairs computed per estimate: the tracked ones and, for the history strategy, the guards.
    fn pairs(&self) -> usize {
        match self.params.strategy {
            Strategy::Lanczos => self.params.lanczos.k,
            Strategy::History | Strategy::Lobpcg => self.params.lanczos.k + self.params.guard,
        }
    }

    /// The top-`k` estimate of `op` (the operator of this step), from the tracker's history.
    pub fn estimate(&mut self, op: &mut dyn SymOp) -> Result<Estimate, EigError> {
        let n = op.dim();
        let (k, kg) = (self.params.lanczos.k, self.pairs());
        if kg > n {
            return Err(EigError::InvalidK { k: kg, n });
        }
        if self.history.front().is_some_and(|h| h.len() != n * kg) {
            self.reset();
        }
        let index = self.estimates;
        self.estimates += 1;
        // Lanczos: warm (or cold) from the newest block. History and LOBPCG start with a cold
        // Lanczos solve of the tracked pairs and their guards.
        let lanczos_start = match (self.params.strategy, self.history.front()) {
            (Strategy::Lanczos, h) => {
                Some((self.params.lanczos, h.filter(|_| self.params.warm_start)))
            }
            (_, None) => Some((
                LanczosParams {
                    k: kg,
                    ..self.params.lanczos
                },
                None,
            )),
            (_, Some(_)) => None,
        };
        let mut est = match lanczos_start {
            Some((lp, start)) => {
                let r = self.lanczos.solve(op, &lp, start.map(Vec::as_slice))?;
                Estimate {
                    certificate: certify(&r.values, &r.residuals, k),
                    result: r,
                    strategy: Strategy::Lanczos,
                    history_only: false,
                    check: None,
                }
            }
            None => self.subspace_estimate(op)?,
        };
        self.remember(est.result.vectors.clone());
        let every = self.params.check_every;
        if every > 0 && index > 0 && index.is_multiple_of(every) {
            self.cold_check(op, &mut est, index)?;
        }
        // The caller sees the tracked pairs only.
        let r = &mut est.result;
        r.values.truncate(k);
        r.residuals.truncate(k);
        r.vectors.truncate(n * k);
        Ok(est)
    }

    fn remember(&mut self, vectors: Vec<f64>) {
        self.history.push_front(vectors);
        self.history.truncate(2);
    }

    /// Whether a tracked vector of the newest estimate is more than [`TURN`] away (sine of the
    /// angle) from its twin in the estimate before: then the older block adds a direction.
    fn turning(&self, n: usize, k: usize) -> bool {
        let Some(older) = self.history.get(1) else {
            return false;
        };
        let newest = &self.history[0];
        (0..k).any(|j| {
            let (a, b) = (&newest[j * n..(j + 1) * n], &older[j * n..(j + 1) * n]);
            let cos = tiles::dot(a, b) / (tiles::dot(a, a) * tiles::dot(b, b)).sqrt();
            (1.0 - cos * cos).max(0.0).sqrt() > TURN
        })
    }

    /// Rayleigh–Ritz on the history, expanded until certified.
    fn subspace_estimate(&mut self, op: &mut dyn SymOp) -> Result<Estimate, EigError> {
        let n = op.dim();
        let p = &self.params;
        let (k, kg) = (p.lanczos.k, p.lanczos.k + p.guard);
        let expand = p.lanczos.block;
        let width = (k + kg).max(expand);
        let lp = LanczosParams {
            k: kg,
            block: width,
            max_basis: p.lanczos.max_basis.min(n),
            ..p.lanczos
        };
        let turning = self.turning(n, k);
        let solver = match &mut self.subspace {
            Some(s) if s.fits(n, &lp) => {
                s.reset(&lp);
                s
            }
            slot => slot.insert(Solver::new(n, &lp)),
        };
        // While the top vectors turn from one estimate to the next (the period-2 oscillation of
        // the edge of stability), the estimate two steps back is the same-phase one: the first
        // block holds the newest tracked vectors and the whole older block (its guards give the
        // gap estimate). Otherwise the newest block alone. Residuals expand either one.
        let newest = &self.history[0];
        let first: Vec<f64> = match self.history.get(1) {
            Some(older) if turning => {
                let mut f = newest[..n * k].to_vec();
                f.extend_from_slice(older);
                f
            }
            _ => newest.clone(),
        };
        let lobpcg = p.strategy == Strategy::Lobpcg;
        let out = solver.run_subspace(op, k, expand, p.stop, lobpcg, &first)?;
        Ok(Estimate {
            result: out.result,
            certificate: out.certificate,
            strategy: p.strategy,
            history_only: out.history_only,
            check: None,
        })
    }

    /// A Lanczos solve from a random start for `k + 1` pairs, compared with `est`.
    fn cold_check(
        &mut self,
        op: &mut dyn SymOp,
        est: &mut Estimate,
        index: usize,
    ) -> Result<(), EigError> {
        let n = op.dim();
        let p = &self.params;
        let k = p.lanczos.k;
        let kc = (k + p.guard.max(1)).min(n);
        let lp = LanczosParams {
            k: kc,
            tol: p.check_tol,
            seed: p.lanczos.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..p.lanczos
        };
        let r = self.lanczos.solve(op, &lp, None)?;
        let slack = |v: f64| CHECK_SLACK * v.abs().max(1e-300);
        let e = &*est;
        let tracked_ok = (0..k.min(r.values.len())).all(|i| {
            let upper =
                e.result.values[i] + e.certificate.bounds[i].unwrap_or(e.result.residuals[i]);
            r.values[i] <= upper + slack(upper)
        });
        let gap_ok = match (e.certificate.rho, r.values.get(k)) {
            (Some(rho), Some(&v)) => v <= rho + slack(rho),
            _ => true,
        };
        let agrees = tracked_ok && gap_ok;
        self.checks += 1;
        let check = ColdCheck {
            values: r.values[..kc.min(k + 1)].to_vec(),
            products: r.products,
            agrees,
        };
        if !agrees {
            self.disagreements += 1;
            // Adopt the check: its pairs are the better estimate, its vectors the new history.
            self.reset();
            let kg = self.pairs();
            self.remember(r.vectors[..n * kg.min(kc)].to_vec());
            est.certificate = certify(&r.values, &r.residuals, k);
            est.result = EigResult {
                products: est.result.products,
                iterations: est.result.iterations,
                restarts: est.result.restarts,
                ..r
            };
        }
        est.check = Some(check);
        Ok(())
    }
}
