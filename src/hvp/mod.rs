//! Curvature operators of a network on a data set, as symmetric operators for the
//! eigensolvers: the Hessian `∇²L(θ)` and the Gauss–Newton matrix `JᵀH_out J`.
//!
//! An operator borrows a [`Net`] whose forward/backward state was cached by
//! [`Net::gradient`] at `θ`; every product at `θ` reuses that state, so a product costs
//! R-forward + R-backward only. Vectors cross the boundary in f64 (the solvers' precision) and
//! are rounded to the kernel precision `T` for the product.

use crate::eig::SymOp;
use crate::mlp::{Curvature, Net};
use crate::par::Par;
use crate::real::Real;
use std::time::Instant;

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
        for (d, s) in self.xbuf.iter_mut().zip(&x[..len]) {
            *d = T::from_f64(*s);
        }
        self.net.hvp(&self.xbuf, &mut self.ybuf, b, self.curv, self.par);
        for (d, s) in y[..len].iter_mut().zip(&self.ybuf) {
            *d = s.to_f64();
        }
        self.products += b;
        self.seconds += t0.elapsed().as_secs_f64();
    }
}
