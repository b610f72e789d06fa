//! The slow twin of [`super::Net`]: the same equations, one example at a time, with plain
//! loops in f64 and scalar activations. Tests compare the fast passes against it.

use super::Curvature;
use crate::model::{Activation, Layout, Loss, MlpSpec};

/// `(σ(x), σ'(x), σ''(x))` evaluated in f64 by the textbook formulas.
pub fn activation(act: Activation, x: f64) -> (f64, f64, f64) {
    let v = crate::kernels::act_f64(act, x);
    (v.a, v.d1, v.d2)
}

struct Example {
    /// Per layer: input activations `a_{l−1}`, `s1`, `s2` of the layer's output (hidden only).
    a: Vec<Vec<f64>>,
    s1: Vec<Vec<f64>>,
    s2: Vec<Vec<f64>>,
    z_out: Vec<f64>,
}

fn forward(spec: &MlpSpec, lay: &Layout, p: &[f64], x: &[f64]) -> Example {
    let nl = lay.layers.len();
    let mut a = vec![x.to_vec()];
    let (mut s1, mut s2) = (Vec::new(), Vec::new());
    let mut z_out = Vec::new();
    for (l, slot) in lay.layers.iter().enumerate() {
        let input = &a[l];
        let z: Vec<f64> = (0..slot.rows)
            .map(|r| {
                let w = &p[slot.w_off + r * slot.cols..slot.w_off + (r + 1) * slot.cols];
                p[slot.b_off + r] + w.iter().zip(input).map(|(w, x)| w * x).sum::<f64>()
            })
            .collect();
        if l + 1 < nl {
            let t: Vec<(f64, f64, f64)> =
                z.iter().map(|&v| activation(spec.activation, v)).collect();
            a.push(t.iter().map(|t| t.0).collect());
            s1.push(t.iter().map(|t| t.1).collect());
            s2.push(t.iter().map(|t| t.2).collect());
        } else {
            z_out = z;
        }
    }
    Example { a, s1, s2, z_out }
}

/// Per-example loss, `∂ℓ/∂z` and the output Hessian `∂²ℓ/∂z²` (dense `c × c`).
fn head(loss: Loss, z: &[f64], y: usize) -> (f64, Vec<f64>, Vec<f64>) {
    let c = z.len();
    match loss {
        Loss::Mse => {
            let r: Vec<f64> = (0..c)
                .map(|k| z[k] - if k == y { 1.0 } else { 0.0 })
                .collect();
            let l = 0.5 * r.iter().map(|v| v * v).sum::<f64>();
            let mut h = vec![0.0; c * c];
            (0..c).for_each(|k| h[k * c + k] = 1.0);
            (l, r, h)
        }
        Loss::Ce => {
            let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|v| v / s).collect();
            let l = m + s.ln() - z[y];
            let g = (0..c)
                .map(|k| p[k] - if k == y { 1.0 } else { 0.0 })
                .collect();
            let mut h = vec![0.0; c * c];
            for i in 0..c {
                for j in 0..c {
                    h[i * c + j] = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
                }
            }
            (l, g, h)
        }
    }
}

/// Mean loss, accuracy and gradient over the examples (`x` is `n × d`).
pub fn loss_grad(
    spec: &MlpSpec,
    loss: Loss,
    x: &[f64],
    labels: &[u8],
    p: &[f64],
) -> (f64, f64, Vec<f64>) {
    let lay = spec.layout();
    let d = spec.input_dim;
    let n = labels.len();
    let nl = lay.layers.len();
    let mut grad = vec![0.0; lay.len];
    let (mut total, mut correct) = (0.0, 0usize);
    for i in 0..n {
        let ex = forward(spec, &lay, p, &x[i * d..(i + 1) * d]);
        let y = labels[i] as usize;
        let (l, mut g, _) = head(loss, &ex.z_out, y);
        total += l;
        let best =
            (0..ex.z_out.len()).fold(0, |b, k| if ex.z_out[k] > ex.z_out[b] { k } else { b });
        correct += (best == y) as usize;
        for l in (0..nl).rev() {
            let slot = lay.layers[l];
            for r in 0..slot.rows {
                grad[slot.b_off + r] += g[r] / n as f64;
                for c in 0..slot.cols {
                    grad[slot.w_off + r * slot.cols + c] += g[r] * ex.a[l][c] / n as f64;
                }
            }
            if l > 0 {
                let da: Vec<f64> = (0..slot.cols)
                    .map(|c| {
                        (0..slot.rows)
                            .map(|r| g[r] * p[slot.w_off + r * slot.cols + c])
                            .sum()
                    })
                    .collect();
                g = da.iter().zip(&ex.s1[l - 1]).map(|(a, s)| a * s).collect();
            }
        }
    }
    (total / n as f64, correct as f64 / n as f64, grad)
}

/// Curvature-vector product along `v`, by the R-operator equations, one example at a time.
pub fn hvp(
    spec: &MlpSpec,
    loss: Loss,
    x: &[f64],
    labels: &[u8],
    p: &[f64],
    v: &[f64],
    curv: Curvature,
) -> Vec<f64> {
    let lay = spec.layout();
    let d = spec.input_dim;
    let n = labels.len() as f64;
    let nl = lay.layers.len();
    let hess = curv == Curvature::Hessian;
    let mut out = vec![0.0; lay.len];
    for i in 0..labels.len() {
        let ex = forward(spec, &lay, p, &x[i * d..(i + 1) * d]);
        // R-forward: r_z per layer, r_a per layer input (r_a_0 = 0).
        let mut ra = vec![vec![0.0; d]];
        let mut rz = Vec::new();
        for (l, slot) in lay.layers.iter().enumerate() {
            let z: Vec<f64> = (0..slot.rows)
                .map(|r| {
                    let mut s = v[slot.b_off + r];
                    for c in 0..slot.cols {
                        s += p[slot.w_off + r * slot.cols + c] * ra[l][c]
                            + v[slot.w_off + r * slot.cols + c] * ex.a[l][c];
                    }
                    s
                })
                .collect();
            if l + 1 < nl {
                ra.push(z.iter().zip(&ex.s1[l]).map(|(a, b)| a * b).collect());
            }
            rz.push(z);
        }
        // Backward and R-backward together.
        let y = labels[i] as usize;
        let (_, mut g, h) = head(loss, &ex.z_out, y);
        let c = g.len();
        let mut rg: Vec<f64> = (0..c)
            .map(|k| (0..c).map(|m| h[k * c + m] * rz[nl - 1][m]).sum())
            .collect();
        for l in (0..nl).rev() {
            let slot = lay.layers[l];
            for r in 0..slot.rows {
                out[slot.b_off + r] += rg[r] / n;
                for cc in 0..slot.cols {
                    let mut t = rg[r] * ex.a[l][cc];
                    if hess {
                        t += g[r] * ra[l][cc];
                    }
                    out[slot.w_off + r * slot.cols + cc] += t / n;
                }
            }
            if l > 0 {
                let w = |r: usize, cc: usize| p[slot.w_off + r * slot.cols + cc];
                let vw = |r: usize, cc: usize| v[slot.w_off + r * slot.cols + cc];
                let da: Vec<f64> = (0..slot.cols)
                    .map(|cc| (0..slot.rows).map(|r| g[r] * w(r, cc)).sum())
                    .collect();
                let rda: Vec<f64> = (0..slot.cols)
                    .map(|cc| {
                        (0..slot.rows)
                            .map(|r| rg[r] * w(r, cc) + if hess { g[r] * vw(r, cc) } else { 0.0 })
                            .sum()
                    })
                    .collect();
                let (s1, s2) = (&ex.s1[l - 1], &ex.s2[l - 1]);
                rg = (0..slot.cols)
                    .map(|k| {
                        rda[k] * s1[k]
                            + if hess {
                                da[k] * s2[k] * rz[l - 1][k]
                            } else {
                                0.0
                            }
                    })
                    .collect();
                g = (0..slot.cols).map(|k| da[k] * s1[k]).collect();
            }
        }
    }
    out
}
/// The third-order product `∇³L(θ)[u, u]`, the gradient of `uᵀ∇²L(θ)u` (the sharpness
/// gradient when `u` is the top Hessian eigenvector), by the R-operator applied twice to the
/// gradient, one example at a time:
/// `r2_z_l = r2_a_{l−1}W_lᵀ + 2 r_a_{l−1}U_lᵀ`, `r2_a_l = σ''·r_z_l² + σ'·r2_z_l`;
/// `r2_g_L = H_out r2_z_L + T_out[r_z_L, r_z_L]`;
/// `r2_dW_l = r2_g_lᵀa_{l−1} + 2 r_g_lᵀr_a_{l−1} + g_lᵀr2_a_{l−1}`, `r2_db_l = r2_g_lᵀ1`;
/// `r2_da = r2_g W + 2 r_g U`,
/// `r2_g_{l−1} = σ'''·r_z²·da + σ''·r2_z·da + 2σ''·r_z·r_da + σ'·r2_da`.
pub fn third_order(
    spec: &MlpSpec,
    loss: Loss,
    x: &[f64],
    labels: &[u8],
    p: &[f64],
    u: &[f64],
) -> Vec<f64> {
    let lay = spec.layout();
    let d = spec.input_dim;
    let n = labels.len() as f64;
    let nl = lay.layers.len();
    let mut out = vec![0.0; lay.len];
    for i in 0..labels.len() {
        let ex = forward(spec, &lay, p, &x[i * d..(i + 1) * d]);
        // R- and R²-forward; r_a_0 = r2_a_0 = 0. `s3` of each hidden layer from its `z`.
        let mut ra = vec![vec![0.0; d]];
        let mut r2a = vec![vec![0.0; d]];
        let (mut rz, mut r2z, mut s3) = (Vec::new(), Vec::new(), Vec::new());
        for (l, slot) in lay.layers.iter().enumerate() {
            let w = |r: usize, c: usize| p[slot.w_off + r * slot.cols + c];
            let uw = |r: usize, c: usize| u[slot.w_off + r * slot.cols + c];
            let mut z1 = vec![0.0; slot.rows];
            let mut z2 = vec![0.0; slot.rows];
            let mut z = vec![0.0; slot.rows];
            for r in 0..slot.rows {
                z1[r] = u[slot.b_off + r];
                z[r] = p[slot.b_off + r];
                for c in 0..slot.cols {
                    z1[r] += w(r, c) * ra[l][c] + uw(r, c) * ex.a[l][c];
                    z2[r] += w(r, c) * r2a[l][c] + 2.0 * uw(r, c) * ra[l][c];
                    z[r] += w(r, c) * ex.a[l][c];
                }
            }
            if l + 1 < nl {
                let (s1, s2) = (&ex.s1[l], &ex.s2[l]);
                ra.push((0..slot.rows).map(|k| s1[k] * z1[k]).collect());
                r2a.push(
                    (0..slot.rows)
                        .map(|k| s2[k] * z1[k] * z1[k] + s1[k] * z2[k])
                        .collect(),
                );
                s3.push(
                    z.iter()
                        .map(|&v| crate::kernels::act_d3_f64(spec.activation, v))
                        .collect::<Vec<f64>>(),
                );
            }
            rz.push(z1);
            r2z.push(z2);
        }
        // Output: g = ∂ℓ/∂z, r_g = H r_z, r2_g = H r2_z + T[r_z, r_z].
        let y = labels[i] as usize;
        let (_, mut g, h) = head(loss, &ex.z_out, y);
        let c = g.len();
        let (zl, z2l) = (&rz[nl - 1], &r2z[nl - 1]);
        let mut rg: Vec<f64> = (0..c)
            .map(|k| (0..c).map(|m| h[k * c + m] * zl[m]).sum())
            .collect();
        let mut r2g: Vec<f64> = (0..c)
            .map(|k| (0..c).map(|m| h[k * c + m] * z2l[m]).sum())
            .collect();
        if loss == Loss::Ce {
            // T[v, v] = p ⊙ (w² − Σ p w²) with w = v − pᵀv, p = softmax(z).
            let pr: Vec<f64> = (0..c)
                .map(|k| g[k] + if k == y { 1.0 } else { 0.0 })
                .collect();
            let mean: f64 = (0..c).map(|k| pr[k] * zl[k]).sum();
            let wv: Vec<f64> = zl.iter().map(|v| v - mean).collect();
            let var: f64 = (0..c).map(|k| pr[k] * wv[k] * wv[k]).sum();
            for k in 0..c {
                r2g[k] += pr[k] * (wv[k] * wv[k] - var);
            }
        }
        for l in (0..nl).rev() {
            let slot = lay.layers[l];
            for r in 0..slot.rows {
                out[slot.b_off + r] += r2g[r] / n;
                for cc in 0..slot.cols {
                    let t = r2g[r] * ex.a[l][cc] + 2.0 * rg[r] * ra[l][cc] + g[r] * r2a[l][cc];
                    out[slot.w_off + r * slot.cols + cc] += t / n;
                }
            }
            if l > 0 {
                let w = |r: usize, cc: usize| p[slot.w_off + r * slot.cols + cc];
                let uw = |r: usize, cc: usize| u[slot.w_off + r * slot.cols + cc];
                let col = |f: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
                    (0..slot.cols)
                        .map(|cc| (0..slot.rows).map(|r| f(r, cc)).sum())
                        .collect()
                };
                let da = col(&|r, cc| g[r] * w(r, cc));
                let rda = col(&|r, cc| rg[r] * w(r, cc) + g[r] * uw(r, cc));
                let r2da = col(&|r, cc| r2g[r] * w(r, cc) + 2.0 * rg[r] * uw(r, cc));
                let (s1, s2, s3) = (&ex.s1[l - 1], &ex.s2[l - 1], &s3[l - 1]);
                let (z1, z2) = (&rz[l - 1], &r2z[l - 1]);
                r2g = (0..slot.cols)
                    .map(|k| {
                        s3[k] * z1[k] * z1[k] * da[k]
                            + s2[k] * z2[k] * da[k]
                            + 2.0 * s2[k] * z1[k] * rda[k]
                            + s1[k] * r2da[k]
                    })
                    .collect();
                rg = (0..slot.cols)
                    .map(|k| s2[k] * z1[k] * da[k] + s1[k] * rda[k])
                    .collect();
                g = (0..slot.cols).map(|k| s1[k] * da[k]).collect();
            }
        }
    }
    out
}
