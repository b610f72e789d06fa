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
//!   GELU (`σ''' = zφ(z)(z² − 4)`) reads the `z` and `da` that its forward and backward passes
//!   keep (two more `n × h` arrays per hidden layer, for GELU only).
//!
//! Organised as the HVP: per physical batch, the first layer's `X·U_1ᵀ` for the whole batch,
//! then the example-local passes block by block (one task per row block, so a block's
//! temporaries stay in cache), then one GEMM per term of the sums over the batch. The first
//! layer costs what it costs in an HVP (`X·U_1ᵀ` and `r2_g_1ᵀX`, the two largest products); the
//! other layers about twice as much. The later layers' R- and R²-products and the sum `r2_gᵀa`
//! run where the HVP's do ([`super::hidden`]), with `U` and `2U` packed once per product.
//! Third-order product against HVP, f32, medians of 7 (3 at h = 800) alternating with
//! gradients and HVPs: at the Figure-1 shape (tanh) 85.0–86.1 ms against 72.1–72.9 at 1 thread
//! (1.18×; 88.6–89.5 when those products ran on faer) and 45.6 against 39.3 at 2; GELU
//! 88.6–90.3 against 71.4–72.4; at h = 800, 563–570 ms against 397–400 (602–621 on faer). No
//! split that sets a summation order depends on the thread count, so results are bit-identical
//! for every thread count.

use super::hidden::{At, Cached, Dirs};
use super::{output_rgrad, rows_of, widest, Net, RBlockMut, RWork, State};
use crate::kernels::act::INV_SQRT_2PI;
use crate::kernels::gemm::{gemm_par, view, view_mut};
use crate::kernels::{self, col_sums};
use crate::model::{Activation, Loss};
use crate::par::Par;
use crate::real::Real;
use faer::Accum;

/// Temporaries of one physical batch for one direction, sized once per net (the batch and
/// block sizes are fixed): the R-quantities `r_z`, `r_a`, `r_g` with the blocks' `r_da` in
/// `r`, the R²-quantities `r2_z`, `r2_a`, `r2_g` with the blocks' `r2_da` and `σ''' ⊙ da` in
/// `r2`.
#[derive(Default)]
pub(super) struct ThirdWork<T> {
    r: RWork<T>,
    r2: RWork<T>,
    /// `2 r_g` of one layer for its sums, batch × widest layer.
    rg2: Vec<T>,
    /// `2 U_l` per layer (doubling is exact).
    u2: Vec<Vec<T>>,
}

impl<T: Real> ThirdWork<T> {
    fn ensure(&mut self, dims: &[usize], rows: usize, rb: usize) {
        if !self.r.rz.is_empty() {
            return;
        }
        self.r = RWork::new(dims, rows, rb, 1, 1);
        self.r2 = RWork::new(dims, rows, rb, 1, 2);
        self.rg2 = vec![T::ZERO; rows * widest(dims)];
    }
}

impl<T: Real> Net<T> {
    /// The third-order product `∇³L(θ)[u, u]` (the gradient of `uᵀ∇²L(θ)u`; the sharpness
    /// gradient when `u` is the top Hessian eigenvector) at the parameters of the last
    /// [`Net::gradient`] call, into `out`: exact, by the R-operator applied twice to the gradient
    /// (the equations of the slow twin [`super::reference::third_order`]). Panics if no gradient
    /// call has cached the state.
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
        if n == 0 {
            out.fill(T::ZERO);
            return;
        }
        let chunk = self.chunk_len();
        let mut w = std::mem::take(&mut self.third);
        w.ensure(&self.dims, chunk, self.cfg.row_block);
        w.u2 = (0..nl)
            .map(|l| {
                u[self.layout.layers[l].w_range()]
                    .iter()
                    .map(|&v| v + v)
                    .collect()
            })
            .collect();
        self.hidden
            .set_third(par, &self.dims, &self.layout, u, &w.u2);
        let cache = &self.cache;
        self.hidden.pack_state(par, &self.dims, n, &cache.a, None);
        let mut r0 = 0;
        while r0 < n {
            let len = chunk.min(n - r0);
            self.third_local(&mut w, u, r0, len, par);
            self.third_sums(&mut w, out, r0, len, par);
            r0 += len;
        }
        self.third = w;
    }

    /// The example-local passes over the examples `r0 .. r0 + len`: the first layer's `X·U_1ᵀ`
    /// for the whole batch, then block by block the R- and R²-forward, the output and the R-
    /// and R²-backward down to the first layer.
    #[inline(never)]
    fn third_local(&mut self, w: &mut ThirdWork<T>, u: &[T], r0: usize, len: usize, par: Par) {
        let h1 = self.dims[1];
        let slot0 = self.layout.layers[0];
        let rz0 = &mut w.r.rz[0][..len * h1];
        let u1 = (&u[slot0.w_range()], r0 > 0);
        self.first.times_wt(par, &self.data, (r0, len), u1, h1, rz0);
        let (dims, layout, params, data, cache) = (
            &self.dims,
            &self.layout,
            &self.params,
            &self.data,
            &self.cache,
        );
        let (path, loss, act) = (self.path, self.loss, self.spec.activation);
        let hidden = &self.hidden;
        let nl = dims.len() - 1;
        let rb = self.cfg.row_block;
        let inv_n = T::ONE / T::from_usize(data.n);
        let hmax = widest(dims);
        let ThirdWork { r, r2, u2, .. } = w;
        let run = |(s, (blk, blk2)): (usize, (RBlockMut<'_, T>, RBlockMut<'_, T>))| {
            let RBlockMut {
                mut rz,
                mut ra,
                mut rg,
                rda,
            } = blk;
            let RBlockMut {
                rz: mut r2z,
                ra: mut r2a,
                rg: mut r2g,
                rda: scratch,
            } = blk2;
            let q0 = r0 + s * rb;
            let rows = rb.min(r0 + len - q0);
            let (r2da, rest) = scratch.split_at_mut(rb * hmax);
            let zh = &mut rest[..rb * hmax];
            // R- and R²-forward (r2_z_1 = 0: r_a_0 = r2_a_0 = 0).
            for l in 0..nl {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let wl = &params[slot.w_range()];
                if l == 0 {
                    r2z[0].fill(T::ZERO);
                } else {
                    let input = cache.input(data, dims, l, q0, rows);
                    let (ra_prev, r2a_prev) = (&*ra[l - 1], &*r2a[l - 1]);
                    let at = At {
                        l,
                        rows,
                        b: 1,
                        hi,
                        ho,
                    };
                    let wu = (wl, &u[slot.w_range()], Dirs::Current);
                    hidden.rforward(at, (input, ra_prev), wu, rz[l]);
                    let wu2 = (wl, &u2[l][..], Dirs::Doubled);
                    hidden.rforward(at, (ra_prev, r2a_prev), wu2, r2z[l]);
                }
                kernels::add_bias(path, rows, ho, rz[l], &u[slot.b_range()]);
                if l + 1 < nl {
                    let s1 = rows_of(&cache.s1[l], q0, rows, ho);
                    let s2 = rows_of(&cache.s2[l], q0, rows, ho);
                    let (z, z2) = (&*rz[l], &*r2z[l]);
                    for (v, (&s1, &z)) in ra[l].iter_mut().zip(s1.iter().zip(z)) {
                        *v = s1 * z;
                    }
                    let inputs = s2.iter().zip(s1).zip(z.iter().zip(z2));
                    for (v, ((&s2, &s1), (&z, &z2))) in r2a[l].iter_mut().zip(inputs) {
                        *v = s2 * z * z + s1 * z2;
                    }
                }
            }
            // Output: r_g = H r_z / n, r2_g = (H r2_z + T[r_z, r_z]) / n.
            let c = dims[nl];
            let prob = if cache.prob.is_empty() {
                &cache.prob[..]
            } else {
                rows_of(&cache.prob, q0, rows, c)
            };
            let (z, z2) = (&*rz[nl - 1], &*r2z[nl - 1]);
            output_rgrad(loss, rows, 1, c, z, prob, inv_n, rg[nl - 1]);
            output_rgrad(loss, rows, 1, c, z2, prob, inv_n, r2g[nl - 1]);
            if loss == Loss::Ce {
                ce_third(rows, c, prob, z, inv_n, r2g[nl - 1]);
            }
            // R- and R²-backward into each hidden layer h = l − 1.
            for l in (1..nl).rev() {
                let slot = layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let wl = &params[slot.w_range()];
                let g = rows_of(&cache.g[l], q0, rows, ho);
                let (rg_lo, rg_up) = rg.split_at_mut(l);
                let (r2g_lo, r2g_up) = r2g.split_at_mut(l);
                let (rgl, r2gl) = (&*rg_up[0], &*r2g_up[0]);
                let (rda, r2da) = (&mut rda[..rows * hi], &mut r2da[..rows * hi]);
                let at = At {
                    l,
                    rows,
                    b: 1,
                    hi,
                    ho,
                };
                let wu = (wl, Some(&u[slot.w_range()]), Dirs::Current);
                hidden.rbackward(at, (rgl, g), wu, rda);
                let wu2 = (wl, Some(&u2[l][..]), Dirs::Doubled);
                hidden.rbackward(at, (r2gl, rgl), wu2, r2da);
                let h = l - 1;
                let zh = &mut zh[..rows * hi];
                let span = q0 * hi..(q0 + rows) * hi;
                let mut da: &[T] = &[];
                if act == Activation::Gelu {
                    // GELU's third derivative needs z_h (cached without its bias) and da.
                    zh.copy_from_slice(&cache.gelu_z[h][span.clone()]);
                    kernels::add_bias(path, rows, hi, zh, &params[layout.layers[h].b_range()]);
                    da = &cache.gelu_da[h][span.clone()];
                }
                let (s1, s2) = (&cache.s1[h][span.clone()], &cache.s2[h][span.clone()]);
                let (e, a) = (&cache.e[h][span.clone()], &cache.a[h][span.clone()]);
                s3da(act, a, &cache.g[h][span], e, s1, zh, da);
                let (z, z2) = (&*rz[h], &*r2z[h]);
                for ((v, (&e, &z)), (&s1, &rda)) in rg_lo[h]
                    .iter_mut()
                    .zip(e.iter().zip(z))
                    .zip(s1.iter().zip(&*rda))
                {
                    *v = e * z + s1 * rda;
                }
                let terms = zh.iter().zip(e).zip(z.iter().zip(z2));
                let more = s2.iter().zip(s1).zip(rda.iter().zip(&*r2da));
                for (v, (((&s3, &e), (&z, &z2)), ((&s2, &s1), (&rda, &r2da)))) in
                    r2g_lo[h].iter_mut().zip(terms.zip(more))
                {
                    *v = s3 * z * z + e * z2 + (s2 + s2) * z * rda + s1 * r2da;
                }
            }
        };
        let blocks = r.blocks_mut(dims, 1, len, rb);
        par.each(
            blocks
                .into_iter()
                .zip(r2.blocks_mut(dims, 1, len, rb))
                .enumerate(),
            run,
        );
    }

    /// The sums over the examples `r0 .. r0 + len` into `out` (overwritten by the first batch):
    /// `r2_gᵀa + 2 r_gᵀr_a + gᵀr2_a` and `r2_gᵀ1` per layer, one GEMM per term.
    #[inline(never)]
    fn third_sums(&mut self, w: &mut ThirdWork<T>, out: &mut [T], r0: usize, len: usize, par: Par) {
        let nl = self.dims.len() - 1;
        let first = r0 == 0;
        let acc0 = if first { Accum::Replace } else { Accum::Add };
        for l in 0..nl {
            let slot = self.layout.layers[l];
            let (hi, ho) = (self.dims[l], self.dims[l + 1]);
            let (dims, data, cache) = (&self.dims, &self.data, &self.cache);
            let (rg, r2g) = (&w.r.rg[l][..len * ho], &w.r2.rg[l][..len * ho]);
            let (ow, ob) = out[slot.w_off..slot.b_off + ho].split_at_mut(ho * hi);
            if l == 0 {
                self.first.sum(par, r2g, ho, data, (r0, len), ow, acc0);
            } else {
                let g = rows_of(&cache.g[l], r0, len, ho);
                let (ra, r2a) = (&w.r.ra[l - 1][..len * hi], &w.r2.ra[l - 1][..len * hi]);
                let input = cache.input(data, dims, l, r0, len);
                let rg2 = &mut w.rg2[..len * ho];
                for (v, r) in rg2.iter_mut().zip(rg) {
                    *v = *r + *r;
                }
                let t = |m| view(m, len, ho).transpose();
                // r2_gᵀa on the packed cached `a` where the own GEMM runs; the other two
                // terms' right operands are this product's own.
                let inputs = (Cached::Input, l);
                let rows = (r0, len);
                self.hidden
                    .sum(par, inputs, (r2g, ho), (input, hi), rows, ow, acc0);
                for (left, right) in [(&*rg2, ra), (g, r2a)] {
                    let right = view(right, len, hi);
                    gemm_par(par, view_mut(ow, ho, hi), Accum::Add, t(left), right);
                }
            }
            col_sums(self.path, len, ho, r2g, ho, ob, !first);
        }
    }
}

/// Adds the cross-entropy term `T[r_z, r_z] / n = p ⊙ (w² − pᵀw²) / n`, `w = r_z − pᵀr_z`, to
/// `r2g`, row by row.
fn ce_third<T: Real>(rows: usize, c: usize, prob: &[T], rz: &[T], inv_n: T, r2g: &mut [T]) {
    for i in 0..rows {
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

/// `out = σ''' ⊙ da` of a hidden layer from the cached `a`, `g = s1 ⊙ da`, `e = s2 ⊙ da`
/// and `s1`: `(6a² − 2) ⊙ g` for tanh, `(1 − 2 s1) ⊙ e` for softplus, 0 for relu and linear.
/// GELU passes its cached `z` (with the bias) in `out` and `da`: `zφ(z)(z² − 4) ⊙ da`, in
/// place.
fn s3da<T: Real>(act: Activation, a: &[T], g: &[T], e: &[T], s1: &[T], out: &mut [T], da: &[T]) {
    let two = T::from_f64(2.0);
    match act {
        Activation::Tanh => {
            let six = T::from_f64(6.0);
            for (o, (&a, &g)) in out.iter_mut().zip(a.iter().zip(g)) {
                *o = (six * a * a - two) * g;
            }
        }
        Activation::Softplus => {
            for (o, (&s1, &e)) in out.iter_mut().zip(s1.iter().zip(e)) {
                *o = (T::ONE - two * s1) * e;
            }
        }
        Activation::Gelu => {
            let (c, four) = (T::from_f64(INV_SQRT_2PI), T::from_f64(4.0));
            for (o, &da) in out.iter_mut().zip(da) {
                let z = *o;
                *o = z * c * (-(z * z) / two).exp() * (z * z - four) * da;
            }
        }
        Activation::Relu | Activation::Linear => out.fill(T::ZERO),
    }
}
