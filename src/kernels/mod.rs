//! TEMPORARY reference elementwise kernels (replaced by the SIMD module on merge).
pub mod gemm;
use crate::model::Activation;
use crate::real::Real;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    Reference,
}
impl KernelPath {
    pub fn name(self) -> &'static str {
        "reference"
    }
}
pub fn kernel_path() -> KernelPath {
    KernelPath::Reference
}

fn sig(act: Activation, x: f64) -> (f64, f64, f64) {
    match act {
        Activation::Tanh => {
            let a = x.tanh();
            (a, 1.0 - a * a, -2.0 * a * (1.0 - a * a))
        }
        Activation::Relu => (x.max(0.0), if x > 0.0 { 1.0 } else { 0.0 }, 0.0),
        Activation::Softplus => {
            let s = 1.0 / (1.0 + (-x).exp());
            (x.max(0.0) + (-x.abs()).exp().ln_1p(), s, s * (1.0 - s))
        }
        Activation::Gelu => {
            let phi = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let cdf = 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2));
            (x * cdf, cdf + x * phi, phi * (2.0 - x * x))
        }
        Activation::Linear => (x, 1.0, 0.0),
    }
}
fn erf(x: f64) -> f64 {
    // series, temporary
    let mut sum = 0.0;
    let mut term = x;
    let mut k = 0.0;
    while k < 200.0 {
        sum += term / (2.0 * k + 1.0);
        k += 1.0;
        term *= -x * x / k;
        if term.abs() < 1e-30 {
            break;
        }
    }
    (2.0 / std::f64::consts::PI.sqrt() * sum).clamp(-1.0, 1.0)
}

#[allow(clippy::too_many_arguments)]
pub fn bias_act<T: Real>(_p: KernelPath, act: Activation, rows: usize, h: usize, z: &mut [T], bias: &[T], s1: &mut [T], s2: &mut [T]) {
    for i in 0..rows {
        for j in 0..h {
            let k = i * h + j;
            let (a, d1, d2) = sig(act, (z[k] + bias[j]).to_f64());
            z[k] = T::from_f64(a);
            s1[k] = T::from_f64(d1);
            s2[k] = T::from_f64(d2);
        }
    }
}
pub fn add_bias<T: Real>(rows: usize, h: usize, z: &mut [T], bias: &[T]) {
    for i in 0..rows {
        for j in 0..h {
            z[i * h + j] += bias[j];
        }
    }
}
pub fn bwd_act<T: Real>(_p: KernelPath, da: &[T], s1: &[T], s2: &[T], g: &mut [T], e: &mut [T]) {
    for k in 0..da.len() {
        g[k] = da[k] * s1[k];
        e[k] = da[k] * s2[k];
    }
}
#[allow(clippy::too_many_arguments)]
pub fn rfwd_act<T: Real>(_p: KernelPath, rows: usize, b: usize, h: usize, rz: &mut [T], c: &[T], s1: &[T], ra: &mut [T]) {
    for i in 0..rows {
        for j in 0..b {
            for u in 0..h {
                let k = (i * b + j) * h + u;
                rz[k] += c[j * h + u];
                ra[k] = s1[i * h + u] * rz[k];
            }
        }
    }
}
#[allow(clippy::too_many_arguments)]
pub fn rbwd_act<T: Real>(_p: KernelPath, rows: usize, b: usize, h: usize, rda: &[T], s1: &[T], e: Option<&[T]>, rz: &[T], rg: &mut [T]) {
    for i in 0..rows {
        for j in 0..b {
            for u in 0..h {
                let k = (i * b + j) * h + u;
                let mut v = rda[k] * s1[i * h + u];
                if let Some(e) = e {
                    v += e[i * h + u] * rz[k];
                }
                rg[k] = v;
            }
        }
    }
}
pub fn col_sums<T: Real>(rows: usize, cols: usize, m: &[T], ld: usize, out: &mut [T], accumulate: bool) {
    if !accumulate {
        out[..cols].iter_mut().for_each(|o| *o = T::ZERO);
    }
    for i in 0..rows {
        for j in 0..cols {
            out[j] += m[i * ld + j];
        }
    }
}
pub fn act_ref(act: Activation, x: f64) -> (f64, f64, f64) {
    sig(act, x)
}
