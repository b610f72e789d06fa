//! Third-order products `∇³L(θ)[u, u]`: the gradient of `uᵀ∇²L(θ)u`, i.e. the sharpness
//! gradient `∇S` when `u` is the top Hessian eigenvector (self-stabilization).
//!
//! The R-operator applied twice to the gradient (rows = examples, `a_0 = X`, `r_a_0 = r2_a_0 = 0`,
//! direction `u = (U_l, c_l)`):
//! * R-forward `r_z_l = r_a_{l−1}W_lᵀ + a_{l−1}U_lᵀ + 1c_lᵀ`, `r_a_l = s1 ⊙ r_z_l`;
//! * R²-forward `r2_z_l = r2_a_{l−1}W_lᵀ + 2 r_a_{l−1}U_lᵀ` (zero for the first layer),
//!   `r2_a_l = s2 ⊙ r_z_l² + s1 ⊙ r2_z_l`;
//! * output `r_g_L = H_out r_z_L / n`, `r2_g_L = (H_out r2_z_L + T_out[r_z_L, r_z_L]) / n`, where
//!   `T_out = 0` for MSE and `T_out[v, v] = p ⊙ (w² − pᵀw²)`, `w = v − pᵀv`, for cross-entropy;
//! * sums `∇³L[u,u]_{W_l} = r2_g_lᵀa_{l−1} + 2 r_g_lᵀr_a_{l−1} + g_lᵀr2_a_{l−1}`,
//!   `∇³L[u,u]_{b_l} = r2_g_lᵀ1`;
//! * backward `r_da = r_g W + g U`, `r2_da = r2_g W + 2 r_g U`,
//!   `r_g_{l−1} = e ⊙ r_z + s1 ⊙ r_da`,
//!   `r2_g_{l−1} = σ'''·da ⊙ r_z² + e ⊙ r2_z + 2 s2 ⊙ r_z ⊙ r_da + s1 ⊙ r2_da`,
//!   with the cached `g_{l−1} = s1 ⊙ da` and `e = s2 ⊙ da`. The factor `σ''' ⊙ da` comes from the
//!   cache too: `(6a² − 2) ⊙ g` for tanh, `(1 − 2 s1) ⊙ e` for softplus, 0 for relu and linear;
//!   GELU (`σ''' = zφ(z)(z² − 4)`) recomputes `z` and `da` by one more product each.
//!
//! The first layer costs what it costs in an HVP (`X·U_1ᵀ` and the sum `r2_g_1ᵀX`, the two
//! largest products); the other layers about twice as much. At the Figure-1 shape (tanh, f32,
//! cifar10-5k-sized synthetic data) a product took 100 ms against 70 ms for an HVP at 1 thread,
//! 55 against 37 at 2; GELU, which recomputes `z` and `da`, about 2.2 HVPs. The passes run over
//! the physical batches of the HVP; the example-local products run on the pool with fixed
//! output tiles and the elementwise passes per element, so results are bit-identical for every
//! thread count.

use super::{output_rgrad, rows_of, Net, State};
use crate::kernels::gemm::{gemm_par, view, view_mut};
use crate::kernels::{self, col_sums};
use crate::model::{Activation, Loss};
use crate::par::Par;
use crate::real::Real;
use faer::Accum;

/// Elements per task of the elementwise passes.
const CHUNK: usize = 1 << 14;

/// `out[i] = f(i)` for every element, in tasks of [`CHUNK`] elements.
fn fill<T: Real>(par: Par, out: &mut [T], f: impl Fn(usize) -> T + Sync + Send) {
    par.each(out.chunks_mut(CHUNK).enumerate(), |(c, o)| {
        for (k, v) in o.iter_mut().enumerate() {
            *v = f(c * CHUNK + k);
        }
    });
}

/// Temporaries of one physical batch (`rows × width` each), kept between calls.
#[derive(Default)]
pub(super) struct ThirdWork<T> {
    /// Per layer: `r_z`, `r2_z`, `r_g`, `r2_g`.
    rz: Vec<Vec<T>>,
    r2z: Vec<Vec<T>>,
    rg: Vec<Vec<T>>,
    r2g: Vec<Vec<T>>,
    /// Per hidden layer: `r_a`, `r2_a`.
    ra: Vec<Vec<T>>,
    r2a: Vec<Vec<T>>,
    /// Scratch of the widest layer: `r_da`, `r2_da`, `2 r_g`, and GELU's `z` and `da`.
    rda: Vec<T>,
    r2da: Vec<T>,
    rg2: Vec<T>,
    z: Vec<T>,
    da: Vec<T>,
    /// `2 U_l` per layer (doubling is exact).
    u2: Vec<Vec<T>>,
}

impl<T: Real> ThirdWork<T> {
    fn ensure(&mut self, dims: &[usize], rows: usize) {
        let nl = dims.len() - 1;
        let size = |v: &mut Vec<Vec<T>>, layers: std::ops::Range<usize>| {
            v.resize_with(layers.len(), Vec::new);
            for (buf, l) in v.iter_mut().zip(layers) {
                buf.resize(rows * dims[l + 1], T::ZERO);
            }
        };
        size(&mut self.rz, 0..nl);
        size(&mut self.r2z, 0..nl);
        size(&mut self.rg, 0..nl);
        size(&mut self.r2g, 0..nl);
        size(&mut self.ra, 0..nl - 1);
        size(&mut self.r2a, 0..nl - 1);
        let wide = rows * dims[1..].iter().max().copied().unwrap_or(0);
        for buf in [
            &mut self.rda,
            &mut self.r2da,
            &mut self.rg2,
            &mut self.z,
            &mut self.da,
        ] {
            buf.resize(wide, T::ZERO);
        }
    }
}

impl<T: Real> Net<T> {
    /// The third-order product `∇³L(θ)[u, u]` (the gradient of `uᵀ∇²L(θ)u`; the sharpness
    /// gradient when `u` is the top Hessian eigenvector) at the parameters of the last
    /// [`Net::gradient`] call, into `out`: exact, by the R-operator applied twice to the gradient
    /// (the equations of the slow twin [`super::reference::third_order`]), about 1.5 HVPs in
    /// cost at the Figure-1 shape. Panics if no gradient call has cached the state.
    pub fn third_order(&mut self, u: &[T], out: &mut [T], par: Par) {
        let p = self.layout.len;
        assert_eq!(u.len(), p, "u must be one parameter vector");
        assert_eq!(out.len(), p, "out must be one parameter vector");
        assert!(
            self.state == State::Backward,
            "Net::third_order needs the cached state of a Net::gradient call"
        );
        let nl = self.dims.len() - 1;
        let n = self.data.n;
        let chunk = self.chunk_len();
        let mut w = std::mem::take(&mut self.third);
        w.ensure(&self.dims, chunk);
        w.u2 = (0..nl)
            .map(|l| {
                u[self.layout.layers[l].w_range()]
                    .iter()
                    .map(|&v| v + v)
                    .collect()
            })
            .collect();
        let mut r0 = 0;
        while r0 < n {
            let len = chunk.min(n - r0);
            self.third_forward(&mut w, u, r0, len, par);
            self.third_backward(&mut w, u, out, r0, len, par);
            r0 += len;
        }
        self.third = w;
    }

    /// R- and R²-forward over the examples `r0 .. r0 + len`, then `r_g_L`, `r2_g_L`.
    fn third_forward(&mut self, w: &mut ThirdWork<T>, u: &[T], r0: usize, len: usize, par: Par) {
        let (dims, data, cache) = (&self.dims, &self.data, &self.cache);
        let nl = dims.len() - 1;
        for l in 0..nl {
            let slot = self.layout.layers[l];
            let (hi, ho) = (dims[l], dims[l + 1]);
            let uw = &u[slot.w_range()];
            let wt = view(&self.params[slot.w_range()], ho, hi).transpose();
            let (rz, r2z) = (&mut w.rz[l][..len * ho], &mut w.r2z[l][..len * ho]);
            if l == 0 {
                let x = rows_of(&data.x, r0, len, data.d);
                self.first.times_wt(par, x, len, hi, uw, ho, rz);
                r2z.fill(T::ZERO);
            } else {
                let (ra, r2a) = (&w.ra[l - 1][..len * hi], &w.r2a[l - 1][..len * hi]);
                let input = view(cache.input(data, dims, l, r0, len), len, hi);
                let z = view_mut(rz, len, ho);
                gemm_par(par, z, Accum::Replace, view(ra, len, hi), wt);
                let uwt = view(uw, ho, hi).transpose();
                gemm_par(par, view_mut(rz, len, ho), Accum::Add, input, uwt);
                gemm_par(
                    par,
                    view_mut(r2z, len, ho),
                    Accum::Replace,
                    view(r2a, len, hi),
                    wt,
                );
                let u2t = view(&w.u2[l], ho, hi).transpose();
                gemm_par(
                    par,
                    view_mut(r2z, len, ho),
                    Accum::Add,
                    view(ra, len, hi),
                    u2t,
                );
            }
            let c = &u[slot.b_range()];
            kernels::add_bias(self.path, len, ho, rz, c);
            if l + 1 < nl {
                let s1 = rows_of(&cache.s1[l], r0, len, ho);
                let s2 = rows_of(&cache.s2[l], r0, len, ho);
                let (rz, r2z) = (&w.rz[l][..len * ho], &w.r2z[l][..len * ho]);
                fill(par, &mut w.ra[l][..len * ho], |i| s1[i] * rz[i]);
                fill(par, &mut w.r2a[l][..len * ho], |i| {
                    s2[i] * rz[i] * rz[i] + s1[i] * r2z[i]
                });
            }
        }
        // Output layer.
        let c = dims[nl];
        let inv_n = T::ONE / T::from_usize(data.n.max(1));
        let prob = if cache.prob.is_empty() {
            &cache.prob[..]
        } else {
            rows_of(&cache.prob, r0, len, c)
        };
        let (rz, r2z) = (&w.rz[nl - 1][..len * c], &w.r2z[nl - 1][..len * c]);
        output_rgrad(
            self.loss,
            len,
            1,
            c,
            rz,
            prob,
            inv_n,
            &mut w.rg[nl - 1][..len * c],
        );
        let r2g = &mut w.r2g[nl - 1][..len * c];
        output_rgrad(self.loss, len, 1, c, r2z, prob, inv_n, r2g);
        if self.loss == Loss::Ce {
            for i in 0..len {
                let (p, v) = (&prob[i * c..(i + 1) * c], &rz[i * c..(i + 1) * c]);
                let mean = (0..c).fold(T::ZERO, |s, k| s + p[k] * v[k]);
                let var = (0..c).fold(T::ZERO, |s, k| {
                    let d = v[k] - mean;
                    s + p[k] * d * d
                });
                for k in 0..c {
                    let d = v[k] - mean;
                    r2g[i * c + k] += p[k] * (d * d - var) * inv_n;
                }
            }
        }
    }

    /// The sums of the examples `r0 .. r0 + len` into `out` (overwritten by the first batch),
    /// layer by layer from the output, and the R²-backward between layers.
    #[allow(clippy::too_many_arguments)]
    fn third_backward(
        &mut self,
        w: &mut ThirdWork<T>,
        u: &[T],
        out: &mut [T],
        r0: usize,
        len: usize,
        par: Par,
    ) {
        let nl = self.dims.len() - 1;
        let first = r0 == 0;
        let acc0 = if first { Accum::Replace } else { Accum::Add };
        let act = self.spec.activation;
        for l in (0..nl).rev() {
            let slot = self.layout.layers[l];
            let (hi, ho) = (self.dims[l], self.dims[l + 1]);
            let (dims, data, cache) = (&self.dims, &self.data, &self.cache);
            let g = rows_of(&cache.g[l], r0, len, ho);
            let (rg, r2g) = (&w.rg[l][..len * ho], &w.r2g[l][..len * ho]);
            let (ow, ob) = out[slot.w_off..slot.b_off + ho].split_at_mut(ho * hi);
            if l == 0 {
                self.first.sum(par, r2g, ho, data, (r0, len), ow, acc0);
            } else {
                let (ra, r2a) = (&w.ra[l - 1][..len * hi], &w.r2a[l - 1][..len * hi]);
                let input = view(cache.input(data, dims, l, r0, len), len, hi);
                let rg2 = &mut w.rg2[..len * ho];
                fill(par, rg2, |i| rg[i] + rg[i]);
                let t = |m| view(m, len, ho).transpose();
                gemm_par(par, view_mut(ow, ho, hi), acc0, t(r2g), input);
                gemm_par(
                    par,
                    view_mut(ow, ho, hi),
                    Accum::Add,
                    t(rg2),
                    view(ra, len, hi),
                );
                gemm_par(
                    par,
                    view_mut(ow, ho, hi),
                    Accum::Add,
                    t(g),
                    view(r2a, len, hi),
                );
            }
            col_sums(self.path, len, ho, r2g, ho, ob, !first);
            if l == 0 {
                break;
            }
            // R- and R²-backward into hidden layer l − 1 (width hi).
            let wm = view(&self.params[slot.w_range()], ho, hi);
            let (uw, u2) = (view(&u[slot.w_range()], ho, hi), view(&w.u2[l], ho, hi));
            let m = |s| view(s, len, ho);
            let rda = &mut w.rda[..len * hi];
            gemm_par(par, view_mut(rda, len, hi), Accum::Replace, m(rg), wm);
            gemm_par(par, view_mut(rda, len, hi), Accum::Add, m(g), uw);
            let r2da = &mut w.r2da[..len * hi];
            gemm_par(par, view_mut(r2da, len, hi), Accum::Replace, m(r2g), wm);
            gemm_par(par, view_mut(r2da, len, hi), Accum::Add, m(rg), u2);
            let h = l - 1;
            let s1 = rows_of(&cache.s1[h], r0, len, hi);
            let s2 = rows_of(&cache.s2[h], r0, len, hi);
            let e = rows_of(&cache.e[h], r0, len, hi);
            let gh = rows_of(&cache.g[h], r0, len, hi);
            let a = rows_of(&cache.a[h], r0, len, hi);
            if act == Activation::Gelu {
                // σ''' needs z = a_{h−1}·W_hᵀ + b_h, and da = g_l·W_l.
                let zh = &mut w.z[..len * hi];
                let sh = self.layout.layers[h];
                let wh = &self.params[sh.w_range()];
                if h == 0 {
                    let x = rows_of(&data.x, r0, len, data.d);
                    self.first.times_wt(par, x, len, data.d, wh, hi, zh);
                } else {
                    let input = view(cache.input(data, dims, h, r0, len), len, dims[h]);
                    let wt = view(wh, hi, dims[h]).transpose();
                    gemm_par(par, view_mut(zh, len, hi), Accum::Replace, input, wt);
                }
                kernels::add_bias(self.path, len, hi, zh, &self.params[sh.b_range()]);
                let da = &mut w.da[..len * hi];
                gemm_par(par, view_mut(da, len, hi), Accum::Replace, m(g), wm);
            }
            let s3da = S3da {
                act,
                a,
                g: gh,
                e,
                s1,
                z: &w.z[..],
                da: &w.da[..],
            };
            let (rz, r2z) = (&w.rz[h][..len * hi], &w.r2z[h][..len * hi]);
            let (rda, r2da) = (&w.rda[..len * hi], &w.r2da[..len * hi]);
            fill(par, &mut w.rg[h][..len * hi], |i| {
                e[i] * rz[i] + s1[i] * rda[i]
            });
            fill(par, &mut w.r2g[h][..len * hi], |i| {
                let two_s2 = s2[i] + s2[i];
                s3da.at(i) * rz[i] * rz[i]
                    + e[i] * r2z[i]
                    + two_s2 * rz[i] * rda[i]
                    + s1[i] * r2da[i]
            });
        }
    }
}

/// `σ''' ⊙ da` of a hidden layer, element by element, from the cached quantities.
struct S3da<'a, T> {
    act: Activation,
    a: &'a [T],
    g: &'a [T],
    e: &'a [T],
    s1: &'a [T],
    /// GELU only: the recomputed `z` and `da`.
    z: &'a [T],
    da: &'a [T],
}

impl<T: Real> S3da<'_, T> {
    #[inline(always)]
    fn at(&self, i: usize) -> T {
        let two = T::from_f64(2.0);
        match self.act {
            Activation::Tanh => (T::from_f64(6.0) * self.a[i] * self.a[i] - two) * self.g[i],
            Activation::Softplus => (T::ONE - two * self.s1[i]) * self.e[i],
            Activation::Gelu => {
                let z = self.z[i];
                let pdf = T::from_f64(0.398_942_280_401_432_7) * (-(z * z) / two).exp();
                z * pdf * (z * z - T::from_f64(4.0)) * self.da[i]
            }
            Activation::Relu | Activation::Linear => T::ZERO,
        }
    }
}
