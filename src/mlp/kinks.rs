//! How far a ReLU network can move along a direction before some unit crosses its kink.
//!
//! A central difference `(f(θ+hu) − f(θ−hu)) / 2h` of the loss or of the gradient estimates a
//! derivative only if no pre-activation `z` changes sign between `θ − hu` and `θ + hu`; one that
//! does adds a jump divided by `h`, which no step size removes (with a million pre-activations at
//! cifar10-5k, steps of 1e-5 already cross some). `eosbench verify` keeps its steps below the
//! distance computed here.

use super::{rows_of, Net};
use crate::kernels;
use crate::kernels::gemm::{gemm_par, view, view_mut};
use crate::model::Activation;
use crate::par::Par;
use crate::real::Real;
use faer::Accum;

impl<T: Real> Net<T> {
    /// For each of the `b` directions in `dirs` (flat, back to back, in the parameter layout):
    /// the smallest `|z| / |ż|` over the hidden pre-activations `z` of every example, where
    /// `ż = dz/dε` at `ε = 0` along `params + ε·dir`. To first order in `ε`, that is the longest
    /// step along the direction that moves no unit across the kink of ReLU. Infinite for the
    /// activations without kinks (all but ReLU) and when no pre-activation moves. The forward
    /// (once for all directions) and its derivatives run in physical batches of
    /// [`super::NetConfig::chunk_rows`] examples; the result does not depend on the thread
    /// count.
    pub fn kink_margins(&self, params: &[T], dirs: &[T], b: usize, par: Par) -> Vec<f64> {
        let p = self.layout.len;
        assert_eq!(
            params.len(),
            p,
            "kink_margins: params has {} entries, not {p}",
            params.len()
        );
        assert_eq!(
            dirs.len(),
            b * p,
            "kink_margins: dirs has {} entries, not {b} × {p}",
            dirs.len()
        );
        let mut margins = vec![f64::INFINITY; b];
        if self.spec.activation != Activation::Relu {
            return margins;
        }
        let (dims, n) = (&self.dims, self.data.n);
        let hidden = dims.len() - 2;
        let chunk = self.cfg.chunk_rows.clamp(1, n.max(1));
        let mut r0 = 0;
        while r0 < n {
            let len = chunk.min(n - r0);
            // `a` of the previous hidden layer and `ȧ` per direction; the input's `ȧ` is zero.
            let mut prev: Option<(Vec<T>, Vec<Vec<T>>)> = None;
            for l in 0..hidden {
                let slot = self.layout.layers[l];
                let (hi, ho) = (dims[l], dims[l + 1]);
                let input = match &prev {
                    None => rows_of(&self.data.x, r0, len, hi),
                    Some((a, _)) => &a[..],
                };
                let times_wt = |out: &mut [T], acc: Accum, a: &[T], w: &[T]| {
                    gemm_par(
                        par,
                        view_mut(out, len, ho),
                        acc,
                        view(a, len, hi),
                        view(w, ho, hi).transpose(),
                    );
                };
                let mut z = vec![T::ZERO; len * ho];
                times_wt(&mut z, Accum::Replace, input, &params[slot.w_range()]);
                kernels::add_bias(self.path, len, ho, &mut z, &params[slot.b_range()]);
                let mut dots = Vec::with_capacity(b);
                for (j, margin) in margins.iter_mut().enumerate() {
                    let dir = &dirs[j * p..(j + 1) * p];
                    let mut zd = vec![T::ZERO; len * ho];
                    times_wt(&mut zd, Accum::Replace, input, &dir[slot.w_range()]);
                    if let Some((_, ad)) = &prev {
                        times_wt(&mut zd, Accum::Add, &ad[j], &params[slot.w_range()]);
                    }
                    let c = &dir[slot.b_range()];
                    for (zr, zdr) in z.chunks_exact(ho).zip(zd.chunks_exact_mut(ho)) {
                        for k in 0..ho {
                            zdr[k] += c[k];
                            let (v, dv) = (zr[k].to_f64(), zdr[k].to_f64());
                            if dv != 0.0 {
                                *margin = margin.min(v.abs() / dv.abs());
                            }
                            // ReLU: ȧ = ż where z > 0.
                            if v > 0.0 {
                                continue;
                            }
                            zdr[k] = T::ZERO;
                        }
                    }
                    dots.push(zd);
                }
                // ReLU: a = max(z, 0).
                for v in z.iter_mut() {
                    if v.to_f64() > 0.0 {
                        continue;
                    }
                    *v = T::ZERO;
                }
                prev = Some((z, dots));
            }
            r0 += len;
        }
        margins
    }
}

#[cfg(test)]
mod tests {
    use crate::mlp::{Data, Net, NetConfig};
    use crate::model::{init_params, Activation, Loss, MlpSpec};
    use crate::par::with_threads;

    /// The margin by plain loops, one example and one unit at a time.
    fn twin(spec: &MlpSpec, x: &[f64], d: usize, theta: &[f64], u: &[f64]) -> f64 {
        let lay = spec.layout();
        let mut margin = f64::INFINITY;
        for row in x.chunks_exact(d) {
            let (mut a, mut ad) = (row.to_vec(), vec![0.0; d]);
            for slot in &lay.layers[..lay.layers.len() - 1] {
                let (mut na, mut nad) = (Vec::new(), Vec::new());
                for r in 0..slot.rows {
                    let w = |v: &[f64], c: usize| v[slot.w_off + r * slot.cols + c];
                    let mut z = theta[slot.b_off + r];
                    let mut zd = u[slot.b_off + r];
                    for c in 0..slot.cols {
                        z += w(theta, c) * a[c];
                        zd += w(u, c) * a[c] + w(theta, c) * ad[c];
                    }
                    if zd != 0.0 {
                        margin = margin.min(z.abs() / zd.abs());
                    }
                    na.push(z.max(0.0));
                    nad.push(if z > 0.0 { zd } else { 0.0 });
                }
                (a, ad) = (na, nad);
            }
        }
        margin
    }

    fn setup(act: Activation, hidden: &[usize]) -> (MlpSpec, Net<f64>, Vec<f64>, Vec<f64>) {
        let (d, n) = (6, 37);
        let spec = MlpSpec::new(d, hidden, 3, act).unwrap();
        let ds = crate::data::synthetic(n, d, 3, 5);
        let x = ds.features::<f64>();
        let cfg = NetConfig {
            row_block: 8,
            chunk_rows: 16,
            ..NetConfig::default()
        };
        let net = Net::new(&spec, Loss::Mse, Data::new(x, ds.labels.clone(), d, 3), cfg);
        let theta = init_params::<f64>(&spec, 2).data;
        let u: Vec<f64> = (0..theta.len())
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 50.0)
            .collect();
        (spec, net, theta, u)
    }

    /// The margin along one direction.
    fn margin<T: crate::real::Real>(net: &Net<T>, theta: &[T], u: &[T]) -> f64 {
        net.kink_margins(theta, u, 1, crate::par::Par::Seq)[0]
    }

    #[test]
    fn relu_margins_match_the_plain_twin_over_batches_directions_and_threads() {
        for hidden in [&[7][..], &[7, 5, 4]] {
            let (spec, net, theta, u) = setup(Activation::Relu, hidden);
            // A block of two directions: `u` and another one.
            let mut dirs = u.clone();
            dirs.extend(
                u.iter()
                    .enumerate()
                    .map(|(i, v)| v * ((i % 5) as f64 - 2.0)),
            );
            let p = u.len();
            let want: Vec<f64> = (0..2)
                .map(|j| twin(&spec, &net.data().x, 6, &theta, &dirs[j * p..(j + 1) * p]))
                .collect();
            assert!(want.iter().all(|w| w.is_finite() && *w > 0.0));
            assert!(want[0] != want[1]);
            for threads in [1, 3] {
                let got = with_threads(threads, |par| net.kink_margins(&theta, &dirs, 2, par));
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-12 * w,
                        "{hidden:?}, {threads} threads: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn one_hidden_layer_margin_is_where_the_first_unit_flips() {
        // With one hidden layer every pre-activation is affine in ε, so the first-order
        // margin is exact: just inside it no sign changes, just outside one does.
        let (spec, net, theta, u) = setup(Activation::Relu, &[9]);
        let m = margin(&net, &theta, &u);
        let signs = |eps: f64| -> Vec<bool> {
            let moved: Vec<f64> = theta.iter().zip(&u).map(|(t, d)| t + eps * d).collect();
            let slot = spec.layout().layers[0];
            let x = &net.data().x;
            let mut out = Vec::new();
            for row in x.chunks_exact(6) {
                for r in 0..slot.rows {
                    let w = &moved[slot.w_off + r * 6..slot.w_off + (r + 1) * 6];
                    let z: f64 =
                        moved[slot.b_off + r] + w.iter().zip(row).map(|(w, x)| w * x).sum::<f64>();
                    out.push(z > 0.0);
                }
            }
            out
        };
        let at0 = signs(0.0);
        for s in [1.0, -1.0] {
            assert_eq!(signs(s * 0.999 * m), at0);
        }
        assert!(signs(1.001 * m) != at0 || signs(-1.001 * m) != at0);
    }

    #[test]
    fn smooth_activations_have_no_kinks_and_f32_agrees() {
        for act in [
            Activation::Tanh,
            Activation::Gelu,
            Activation::Softplus,
            Activation::Linear,
        ] {
            let (_, net, theta, u) = setup(act, &[7, 5]);
            assert_eq!(margin(&net, &theta, &u), f64::INFINITY);
        }
        let (spec, net, theta, u) = setup(Activation::Relu, &[7, 5]);
        let m64 = margin(&net, &theta, &u);
        let ds = net.data();
        let x32: Vec<f32> = ds.x.iter().map(|&v| v as f32).collect();
        let net32 = Net::new(
            &spec,
            Loss::Mse,
            Data::new(x32, ds.labels.clone(), 6, 3),
            NetConfig::default(),
        );
        let (t32, u32): (Vec<f32>, Vec<f32>) = theta
            .iter()
            .zip(&u)
            .map(|(&t, &d)| (t as f32, d as f32))
            .unzip();
        let m32 = margin(&net32, &t32, &u32);
        assert!((m32 - m64).abs() <= 1e-3 * m64, "{m32} vs {m64}");
    }
}
