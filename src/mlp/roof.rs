//! The roof a pass is measured against: the GEMMs of one gradient evaluation alone, at the
//! network's shapes, on faer with its own parallelism (no fused elementwise work, no copies).
//! A pass's GFLOP/s over this rate is the fraction of the attainable GEMM throughput it reaches
//! (the harness's `grad_roof` and `hvp_roof` columns).

use std::time::Instant;

use faer::Accum;

use super::flops;
use crate::kernels::gemm::{view, view_mut};
use crate::model::MlpSpec;

/// Operands of the gradient's GEMMs on `n` examples: per layer the input `n × h_in`, the
/// weights `h_out × h_in`, `z` (`n × h_out`), `dW` and (below the top) `da`.
struct Buffers {
    act: Vec<Vec<f32>>,
    w: Vec<Vec<f32>>,
    z: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
    da: Vec<Vec<f32>>,
}

impl Buffers {
    fn new(dims: &[usize], n: usize) -> Self {
        let layers = 0..dims.len() - 1;
        let fill = |len: usize, scale: f32| -> Vec<f32> {
            (0..len).map(|i| scale * ((i % 17) as f32 - 8.0)).collect()
        };
        Buffers {
            act: layers.clone().map(|l| fill(n * dims[l], 0.05)).collect(),
            w: layers
                .clone()
                .map(|l| fill(dims[l + 1] * dims[l], 0.01))
                .collect(),
            z: layers
                .clone()
                .map(|l| fill(n * dims[l + 1], 0.02))
                .collect(),
            dw: layers
                .clone()
                .map(|l| vec![0.0; dims[l + 1] * dims[l]])
                .collect(),
            da: layers.map(|l| vec![0.0; n * dims[l]]).collect(),
        }
    }

    /// Per layer `z = a·Wᵀ`, `dW = zᵀ·a` and, above the first layer, `da = z·W`:
    /// [`flops::gradient`] FLOPs.
    fn gradient_gemms(&mut self, dims: &[usize], n: usize, par: faer::Par) {
        use faer::linalg::matmul::matmul;
        for l in 0..dims.len() - 1 {
            let (hi, ho) = (dims[l], dims[l + 1]);
            let a = view(&self.act[l], n, hi);
            let w = view(&self.w[l], ho, hi);
            matmul(
                view_mut(&mut self.z[l], n, ho),
                Accum::Replace,
                a,
                w.transpose(),
                1.0,
                par,
            );
            let z = view(&self.z[l], n, ho);
            matmul(
                view_mut(&mut self.dw[l], ho, hi),
                Accum::Replace,
                z.transpose(),
                a,
                1.0,
                par,
            );
            if l > 0 {
                matmul(
                    view_mut(&mut self.da[l], n, hi),
                    Accum::Replace,
                    z,
                    w,
                    1.0,
                    par,
                );
            }
        }
    }
}

/// GFLOP/s of the GEMMs of one gradient of `spec` on `n` examples at `threads` threads (the
/// median of `reps` timed runs after one untimed run). Call it inside a rayon pool of
/// `threads` threads (faer's parallelism runs on the current pool).
pub fn gradient_gemm_gflops(spec: &MlpSpec, n: usize, threads: usize, reps: usize) -> f64 {
    let dims = spec.dims();
    let mut bufs = Buffers::new(&dims, n);
    let par = if threads > 1 {
        faer::Par::rayon(threads)
    } else {
        faer::Par::Seq
    };
    bufs.gradient_gemms(&dims, n, par);
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t0 = Instant::now();
            bufs.gradient_gemms(&dims, n, par);
            t0.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    flops::gradient(spec, n) / times[times.len() / 2] / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Activation;

    /// The GEMMs compute what they claim (one layer checked by hand) and the rate is finite.
    #[test]
    fn the_roof_runs_the_gradients_gemms() {
        let spec = MlpSpec::new(6, &[4], 3, Activation::Tanh).unwrap();
        let dims = spec.dims();
        let n = 5;
        let mut b = Buffers::new(&dims, n);
        b.gradient_gemms(&dims, n, faer::Par::Seq);
        // z_0[i][j] = Σ_k a[i][k] w[j][k]
        let (i, j) = (3, 2);
        let want: f32 = (0..6)
            .map(|k| b.act[0][i * 6 + k] * b.w[0][j * 6 + k])
            .sum();
        assert!((b.z[0][i * 4 + j] - want).abs() < 1e-6);
        // da_1 = z_1 · W_1 (n × 4), z_1 = a_1 · W_1ᵀ (n × 3)
        let want: f32 = (0..3).map(|k| b.z[1][i * 3 + k] * b.w[1][k * 4 + j]).sum();
        assert!((b.da[1][i * 4 + j] - want).abs() < 1e-6);
        let r = gradient_gemm_gflops(&spec, 64, 1, 3);
        assert!(r.is_finite() && r > 0.0);
    }
}
