//! Curvature operators of a network on a data set, as symmetric operators for the
//! eigensolvers: the Hessian `∇²L(θ)` and the Gauss–Newton matrix `JᵀH_out J`.
//!
//! An operator borrows a [`Net`] whose forward/backward state was cached by
//! [`Net::gradient`] at `θ`; every product at `θ` reuses that state, so a product costs
//! R-forward + R-backward only. Vectors cross the boundary in f64 (the solvers' precision) and
//! are rounded to the kernel precision `T` for the product.

use crate::eig::{EigError, Estimate, LanczosParams, LanczosWorkspace, SymOp, Tracker};
use crate::mlp::{Curvature, Net};
use crate::par::Par;
use crate::real::Real;
use std::time::Instant;

/// Elements per task of the precision conversions around a product.
const CONVERT_CHUNK: usize = 1 << 16;

/// `H` or `G` at the cached point of a [`Net`], counting products and time.
pub struct CurvatureOp<'n, T> {
    net: &'n mut Net<T>,
    curv: Curvature,
    par: Par,
    xbuf: Vec<T>,
    ybuf: Vec<T>,
    products: usize,
    seconds: f64,
}

impl<'n, T: Real> CurvatureOp<'n, T> {
    /// The operator at the point of the last `net.gradient` call.
    pub fn new(net: &'n mut Net<T>, curv: Curvature, par: Par) -> Self {
        CurvatureOp {
            net,
            curv,
            par,
            xbuf: Vec::new(),
            ybuf: Vec::new(),
            products: 0,
            seconds: 0.0,
        }
    }
    /// Column-products applied so far.
    pub fn products(&self) -> usize {
        self.products
    }
    /// Wall-clock seconds spent in products.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }
}

impl<T: Real> SymOp for CurvatureOp<'_, T> {
    fn dim(&self) -> usize {
        self.net.num_params()
    }

    fn apply(&mut self, x: &[f64], y: &mut [f64], b: usize) {
        let t0 = Instant::now();
        let len = self.dim() * b;
        self.xbuf.resize(len, T::ZERO);
        self.ybuf.resize(len, T::ZERO);
        // Chunked over the pool: these are memory passes over `p·b` elements, which must not
        // stay sequential while the product itself scales over the threads.
        let par = self.par;
        par.each(
            self.xbuf
                .chunks_mut(CONVERT_CHUNK)
                .zip(x[..len].chunks(CONVERT_CHUNK)),
            |(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d = T::from_f64(*s)),
        );
        self.net.hvp(&self.xbuf, &mut self.ybuf, b, self.curv, par);
        par.each(
            y[..len]
                .chunks_mut(CONVERT_CHUNK)
                .zip(self.ybuf.chunks(CONVERT_CHUNK)),
            |(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d = s.to_f64()),
        );
        self.products += b;
        self.seconds += t0.elapsed().as_secs_f64();
    }
}

/// Top eigenpairs of a curvature operator at the net's cached point, with the cost.
#[derive(Clone, Debug)]
pub struct Sharpness {
    pub result: crate::eig::EigResult,
    /// Seconds in the solver, products included.
    pub seconds: f64,
    /// Seconds in operator products alone.
    pub product_seconds: f64,
}

/// Runs Lanczos on `curv` at the point of the last `net.gradient` call, optionally warm-started
/// from `start` (`p × s` column-major, e.g. the previous iterate's Ritz vectors).
///
/// One-shot: the solver's buffers are allocated for this call. Repeated estimates (one per
/// training step) should use [`top_eigenpairs_in`] with a kept workspace.
pub fn top_eigenpairs<T: Real>(
    net: &mut Net<T>,
    curv: Curvature,
    params: &LanczosParams,
    start: Option<&[f64]>,
) -> Result<Sharpness, EigError> {
    top_eigenpairs_in(&mut LanczosWorkspace::new(), net, curv, params, start)
}

/// [`top_eigenpairs`] in the buffers of `ws`, which are allocated only on the first call (or
/// when the shape changes); the result is bit-identical to a one-shot solve.
pub fn top_eigenpairs_in<T: Real>(
    ws: &mut LanczosWorkspace,
    net: &mut Net<T>,
    curv: Curvature,
    params: &LanczosParams,
    start: Option<&[f64]>,
) -> Result<Sharpness, EigError> {
    let t0 = Instant::now();
    let mut op = CurvatureOp::new(net, curv, params.par);
    let result = ws.solve(&mut op, params, start)?;
    debug_assert_eq!(result.products, op.products());
    Ok(Sharpness {
        result,
        seconds: t0.elapsed().as_secs_f64(),
        product_seconds: op.seconds(),
    })
}

/// A tracked estimate with its cost.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub estimate: Estimate,
    /// Seconds in the tracker (cold check included), products included.
    pub seconds: f64,
    /// Seconds in operator products alone.
    pub product_seconds: f64,
}

/// The tracker's next estimate of `curv` at the point of the last `net.gradient` call.
pub fn track_in<T: Real>(
    tracker: &mut Tracker,
    net: &mut Net<T>,
    curv: Curvature,
    par: Par,
) -> Result<Tracked, EigError> {
    let t0 = Instant::now();
    let mut op = CurvatureOp::new(net, curv, par);
    let estimate = tracker.estimate(&mut op)?;
    Ok(Tracked {
        estimate,
        seconds: t0.elapsed().as_secs_f64(),
        product_seconds: op.seconds(),
    })
}

/// The sharpness gradient `∇S(θ) = ∇³L(θ)[u, u]` at the point of the last `net.gradient` call,
/// for a unit top eigenvector `u` of the Hessian there (e.g. the first Ritz vector of
/// [`top_eigenpairs`]): the derivative of the top eigenvalue when it is simple. `u` crosses the
/// boundary in f64 like the operators' vectors.
pub fn sharpness_gradient<T: Real>(net: &mut Net<T>, u: &[f64], par: Par) -> Vec<f64> {
    let ut: Vec<T> = u.iter().map(|&v| T::from_f64(v)).collect();
    let mut out = vec![T::ZERO; ut.len()];
    net.third_order(&ut, &mut out, par);
    out.iter().map(|v| v.to_f64()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eig::{DenseSymOp, LanczosParams};
    use crate::mlp::{Data, NetConfig};
    use crate::model::{init_params, Activation, Loss, MlpSpec};

    /// A 4-5-3 tanh net on 30 synthetic examples, MSE, f64.
    fn tiny_net() -> (MlpSpec, Net<f64>) {
        let spec = MlpSpec::new(4, &[5], 3, Activation::Tanh).unwrap();
        let ds = crate::data::synthetic(30, 4, 3, 1);
        let data = Data::new(ds.features::<f64>(), ds.labels.clone(), 4, 3);
        let net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
        (spec, net)
    }

    /// The curvature matrix at the net's cached point, built column by column from products
    /// and symmetrized.
    fn dense(net: &mut Net<f64>, curv: Curvature) -> faer::Mat<f64> {
        let np = net.num_params();
        let eye: Vec<f64> = (0..np * np)
            .map(|k| (k / np == k % np) as u8 as f64)
            .collect();
        let mut h = vec![0.0; np * np];
        net.hvp(&eye, &mut h, np, curv, Par::Seq);
        faer::Mat::from_fn(np, np, |i, j| 0.5 * (h[i * np + j] + h[j * np + i]))
    }

    /// The operator's top eigenvalue equals the dense Hessian's (built column by column from
    /// the same products), and the solver's product count is exact.
    #[test]
    fn lanczos_on_the_hessian_matches_the_dense_spectrum() {
        let (spec, mut net) = tiny_net();
        let p = init_params::<f64>(&spec, 4)
            .data
            .iter()
            .map(|v| 3.0 * v)
            .collect::<Vec<_>>();
        let np = p.len();
        let mut g = vec![0.0; np];
        net.gradient(&p, &mut g, Par::Seq);
        for curv in [Curvature::Hessian, Curvature::GaussNewton] {
            let dense = dense(&mut net, curv);
            let want = dense.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
            let lam_max = want[np - 1];
            let params = LanczosParams {
                k: 2,
                tol: 1e-10,
                ..Default::default()
            };
            let s = top_eigenpairs(&mut net, curv, &params, None).unwrap();
            assert!(
                (s.result.values[0] - lam_max).abs() < 1e-8 * lam_max.abs(),
                "{curv:?}"
            );
            assert!((s.result.values[1] - want[np - 2]).abs() < 1e-8 * lam_max.abs());
            // The same matrix through the dense operator agrees.
            let mut op = DenseSymOp::new(dense).unwrap();
            let r = crate::eig::lanczos(&mut op, &params, None).unwrap();
            assert!((r.values[0] - s.result.values[0]).abs() < 1e-9 * lam_max.abs());
            if curv == Curvature::GaussNewton {
                assert!(
                    want[0] > -1e-12,
                    "Gauss–Newton must be PSD, min eig {}",
                    want[0]
                );
            }
        }
    }

    /// The sharpness gradient is the derivative of the top Hessian eigenvalue: against central
    /// differences of the dense top eigenvalue along a random direction.
    #[test]
    fn sharpness_gradient_is_the_derivative_of_the_top_eigenvalue() {
        let (spec, mut net) = tiny_net();
        let p: Vec<f64> = init_params::<f64>(&spec, 4)
            .data
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let np = p.len();
        // Top eigenpair of the dense Hessian at q.
        let top = |net: &mut Net<f64>, q: &[f64]| -> (f64, Vec<f64>) {
            let mut g = vec![0.0; np];
            net.gradient(q, &mut g, Par::Seq);
            let evd = dense(net, Curvature::Hessian)
                .self_adjoint_eigen(faer::Side::Lower)
                .unwrap();
            let u = (0..np).map(|i| evd.U()[(i, np - 1)]).collect();
            (evd.S()[np - 1], u)
        };
        let (s0, u) = top(&mut net, &p);
        // `net` is back at p after `top`: the gradient cached there.
        let grad_s = sharpness_gradient(&mut net, &u, Par::Seq);
        let dir: Vec<f64> = (0..np)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 5.0)
            .collect();
        let h = 1e-5;
        let shifted = |t: f64| -> Vec<f64> { p.iter().zip(&dir).map(|(a, b)| a + t * b).collect() };
        let (sp, _) = top(&mut net, &shifted(h));
        let (sm, _) = top(&mut net, &shifted(-h));
        let fd = (sp - sm) / (2.0 * h);
        let an: f64 = grad_s.iter().zip(&dir).map(|(a, b)| a * b).sum();
        assert!(s0 > 0.0);
        assert!(
            (fd - an).abs() <= 1e-6 * an.abs().max(1e-3 * s0),
            "dS along dir: fd {fd} vs ∇S·dir {an}"
        );
    }
}
