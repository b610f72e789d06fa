//! Rayleigh–Ritz on a given subspace, expanded until the top eigenvalues are certified: the
//! solver behind [`crate::eig::Tracker`]'s history strategy.
//!
//! The basis starts as the columns of `first` (Ritz vectors of earlier estimates: the tracked
//! block and its guards) and is expanded by the true residual vectors of the pairs that fail the
//! stop rule, `expand` at a time, with a thick restart when the basis is full. Each new direction costs exactly one product; residuals
//! cost none (`A Q = W` is kept), so every iteration knows the exact residuals of all its Ritz
//! pairs. The buffers, tile passes and determinism contract are those of the Lanczos solver.

use super::super::tiles;
use super::super::{certify, Certificate, EigError, EigResult, Status, StopRule, SymOp};
use super::{Solver, SPAN_TOL};

/// What a subspace solve returns beside the Ritz pairs.
pub(crate) struct SubspaceOutcome {
    /// `k + guard` Ritz pairs (values, residuals, vectors), best first.
    pub result: EigResult,
    /// The certificate of the first `track` pairs at the last iteration.
    pub certificate: Certificate,
    /// Whether `first` alone (no residual expansion) sufficed.
    pub history_only: bool,
}

impl Solver {
    /// Rayleigh–Ritz on `span(first)`, then residual expansions, until the first `track` of the
    /// `self.k` Ritz pairs meet `stop` (see the module docs). `first` is `n × s` column-major
    /// with `s ≤` the block width of the buffers. Pairs beyond `track` are guards: the
    /// `(track+1)`-th gives the certificate's gap estimate.
    pub(crate) fn run_subspace(
        &mut self,
        op: &mut dyn SymOp,
        track: usize,
        expand: usize,
        stop: StopRule,
        lobpcg: bool,
        first: &[f64],
    ) -> Result<SubspaceOutcome, EigError> {
        let (n, kg) = (self.n, self.k);
        let eps23 = f64::EPSILON.powf(2.0 / 3.0);
        let tol = self.prm.tol;
        let mut c = self.load_columns(0, first)?;
        if c == 0 {
            return Err(EigError::DegenerateStart);
        }
        let mut expanded = false;
        // LOBPCG: whether the first `k` basis columns hold the previous iteration's Ritz block.
        let mut prev = false;
        let mut m0 = 0;
        loop {
            self.apply_block(op, m0, c)?;
            let ma = m0 + c;
            let sigma = self.rayleigh_ritz(ma)?;
            let kk = kg.min(ma);
            self.true_residuals(kk);
            let floor = eps23 * sigma;
            let cert = certify(&self.theta[..kk], &self.res[..kk], track);
            // Per tracked pair: does it meet the rule? The bound rule needs a bound for every
            // tracked pair; a missing one falls back to the residual rule for all of them (the
            // certificate then reports none).
            let bounded = stop == StopRule::Bound && cert.bounds.iter().all(Option::is_some);
            let fails: Vec<bool> = (0..track.min(kk))
                .map(|l| {
                    let err = match cert.bounds[l] {
                        Some(e) if bounded => e,
                        _ => self.res[l],
                    };
                    err > tol * self.theta[l].abs().max(floor)
                })
                .collect();
            let status = if kk >= track && !fails.contains(&true) {
                Some(Status::Converged)
            } else if self.products >= self.prm.max_products {
                Some(Status::MaxProducts)
            } else if ma == n {
                Some(Status::Breakdown)
            } else {
                None
            };
            if let Some(status) = status {
                return Ok(SubspaceOutcome {
                    result: self.finish(status),
                    certificate: cert,
                    history_only: !expanded,
                });
            }
            let remaining = self.prm.max_products - self.products;

            // The next block: residuals of the failing pairs. LOBPCG (soft locking) takes
            // those of every unconverged pair, guards included, over the basis cut back to
            // span{X, P}: the Ritz block and the previous one.
            expanded = true;
            let mut pick: Vec<usize> = (0..fails.len()).filter(|&l| fails[l]).collect();
            if lobpcg {
                pick.extend(track..kk);
            } else if kk > track {
                // The guard's residual widens the gap estimate: refine it first when it eats
                // more than half the gap to the last tracked value (or when nothing else fails).
                let gap = self.theta[track - 1] - self.theta[track];
                let guard_first = self.res[track] >= 0.5 * gap;
                if guard_first {
                    pick.insert(0, track);
                } else if pick.is_empty() {
                    pick.push(track);
                }
                pick.truncate(expand);
            }
            pick.truncate(remaining.min(n - ma));
            let m = if lobpcg {
                let m = self.lobpcg_restart(ma, kk, prev);
                prev = true;
                m
            } else if ma + pick.len() > self.cap {
                self.thick_restart(ma, pick.len())
            } else {
                ma
            };
            let got = self.load_residuals(ma, m, &pick)?;
            m0 = m;
            if got == 0 {
                // The residuals lie in span(Q): the subspace is invariant. After a restart the
                // kept columns are the Ritz vectors themselves.
                if self.m < ma {
                    let (m, kk) = (self.m, kk.min(self.m));
                    self.sk[..m * kk].fill(0.0);
                    (0..kk).for_each(|l| self.sk[l + l * m] = 1.0);
                }
                return Ok(SubspaceOutcome {
                    result: self.finish(Status::Breakdown),
                    certificate: cert,
                    history_only: !expanded,
                });
            }
            c = got;
        }
    }

    /// LOBPCG's basis: `span{X, P}` with `X` the `kk` current Ritz vectors over `ma` columns
    /// and, when `prev`, `P` the previous Ritz block (the basis' first `kk` columns), made
    /// orthonormal after `X` (classical Gram–Schmidt twice on the coefficients; a direction of
    /// `P` already in `span X` is dropped). `Q ← Q Z`, `W ← W Z`, `T ← Zᵀ T Z`; the first `kk`
    /// columns of the new basis are the Ritz vectors. Returns the new basis size.
    fn lobpcg_restart(&mut self, ma: usize, kk: usize, prev: bool) -> usize {
        let mut z = self.sk[..ma * kk].to_vec();
        if prev {
            for j in 0..kk {
                let mut v = vec![0.0; ma];
                v[j] = 1.0;
                let cols = z.len() / ma;
                for _ in 0..2 {
                    for c in 0..cols {
                        let zc = &z[c * ma..(c + 1) * ma];
                        let d = tiles::dot(zc, &v);
                        tiles::axpy(&mut v, -d, zc);
                    }
                }
                let norm = tiles::dot(&v, &v).sqrt();
                if norm > 1e-10 {
                    z.extend(v.iter().map(|x| x / norm));
                }
            }
        }
        let r = z.len() / ma;
        tiles::restart(self.prm.par, &mut self.tiles, ma, r, &z);
        // T ← Zᵀ T Z, from the symmetric leading ma × ma block.
        let tz: Vec<f64> = (0..r)
            .flat_map(|j| {
                let zj = &z[j * ma..(j + 1) * ma];
                (0..ma)
                    .map(|i| (0..ma).map(|l| self.t[(i, l)] * zj[l]).sum::<f64>())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut tn = vec![0.0; r * r];
        for j in 0..r {
            for i in 0..r {
                tn[i + j * r] = tiles::dot(&z[i * ma..(i + 1) * ma], &tz[j * ma..(j + 1) * ma]);
            }
        }
        for j in 0..r {
            for i in 0..r {
                self.t[(i, j)] = 0.5 * (tn[i + j * r] + tn[j + i * r]);
            }
        }
        self.m = r;
        self.restarts += 1;
        r
    }

    /// Installs the columns of `cols` (`n × c`), orthonormalized against `Q[:, ..m]` and each
    /// other, as `Q[:, m..m+r]`; directions already in the span are dropped, nothing random is
    /// added. Returns `r`.
    fn load_columns(&mut self, m: usize, cols: &[f64]) -> Result<usize, EigError> {
        let (n, par) = (self.n, self.prm.par);
        let c = cols.len() / n;
        if c == 0 {
            return Ok(0);
        }
        // Unit columns: the span test below is relative to a unit vector.
        self.xbuf[..c * n].fill(0.0);
        for j in 0..c {
            let col = &cols[j * n..(j + 1) * n];
            let norm = tiles::dot(col, col).sqrt();
            if norm > 0.0 {
                tiles::axpy(&mut self.xbuf[j * n..(j + 1) * n], 1.0 / norm, col);
            }
        }
        tiles::scatter_x(par, &mut self.tiles, &self.xbuf, n, 0, c);
        self.install_x(m, c)
    }

    /// Writes the unit residual vectors of the Ritz pairs `pick` (over `ma` columns, before a
    /// restart to `m` columns) into `X` and installs them like [`Self::load_columns`].
    fn load_residuals(&mut self, ma: usize, m: usize, pick: &[usize]) -> Result<usize, EigError> {
        let c = pick.len();
        if c == 0 {
            return Ok(0);
        }
        // After a restart the kept basis holds the Ritz vectors themselves: pair l is column
        // l of the new basis (order[l] → l), with T diagonal.
        let rows = m.min(ma);
        let mut s = vec![0.0; rows * c];
        let mut theta = vec![0.0; c];
        let mut scale = vec![0.0; c];
        for (j, &l) in pick.iter().enumerate() {
            if m < ma {
                s[l + j * rows] = 1.0;
            } else {
                s[j * rows..(j + 1) * rows].copy_from_slice(&self.sk[l * ma..(l + 1) * ma]);
            }
            theta[j] = self.theta[l];
            let norm = self.res[l] * self.ynorm[l];
            scale[j] = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        }
        tiles::residuals_to_x(self.prm.par, &mut self.tiles, rows, &s, &theta, &scale);
        self.install_x(m, c)
    }

    /// Orthonormalizes `X[:, ..c]` against `Q[:, ..m]` (two Gram–Schmidt passes, SVQB twice),
    /// drops the directions in the span, and installs the rest as `Q[:, m..m+r]`.
    fn install_x(&mut self, m: usize, c: usize) -> Result<usize, EigError> {
        let par = self.prm.par;
        self.cgs2_gram(m, c);
        let r = self.svqb(c, SPAN_TOL)?;
        if r == 0 {
            return Ok(0);
        }
        tiles::transform_x_gram(
            par,
            &mut self.tiles,
            c,
            r,
            &self.mtx[..c * r],
            &mut self.red,
        );
        let r2 = self.svqb(r, 0.5)?;
        tiles::install_block(par, &mut self.tiles, m, r, r2, &self.mtx[..r * r2]);
        Ok(r2)
    }
}
