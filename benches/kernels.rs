//! Throughput of the MLP passes at the Figure-1 shape (n = 5000, d = 3072, two hidden layers
//! of width h, 10 outputs, tanh, MSE), next to the plain GEMMs of the same shapes.
//!
//! `cargo bench --bench kernels` — all widths (100, 200, 400, 800) × threads (1, 2);
//! `EOSBENCH_BENCH_WIDTHS=200 EOSBENCH_BENCH_THREADS=1,2 cargo bench --bench kernels` — a subset;
//! `cargo bench --bench kernels -- --profile-time 10` — flamegraphs under target/criterion.
//! Throughput is in FLOP/s of the GEMMs each pass performs (criterion's "elem/s").

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eosbench::kernels::gemm::{view, view_mut};
use eosbench::mlp::{flops, Curvature, Net, NetConfig};
use eosbench::model::{init_params, Activation, Loss, MlpSpec};
use eosbench::Par;
use faer::Accum;

const N: usize = 5000;
const D: usize = 3072;

/// The GEMMs of one gradient evaluation, on full-size operands, through faer with its own
/// parallelism (`Par::rayon(t)`): the roof the fused passes are measured against.
fn roof_faer(spec: &MlpSpec, bufs: &mut RoofBufs, threads: usize) {
    let par = if threads > 1 {
        faer::Par::rayon(threads)
    } else {
        faer::Par::Seq
    };
    let dims = spec.dims();
    for l in 0..dims.len() - 1 {
        let (hi, ho) = (dims[l], dims[l + 1]);
        let input: &[f32] = if l == 0 { &bufs.x } else { &bufs.act[l - 1] };
        faer::linalg::matmul::matmul(
            view_mut(&mut bufs.z[l], N, ho),
            Accum::Replace,
            view(input, N, hi),
            view(&bufs.w[l], ho, hi).transpose(),
            1.0,
            par,
        );
        faer::linalg::matmul::matmul(
            view_mut(&mut bufs.dw[l], ho, hi),
            Accum::Replace,
            view(&bufs.z[l], N, ho).transpose(),
            view(input, N, hi),
            1.0,
            par,
        );
        if l > 0 {
            faer::linalg::matmul::matmul(
                view_mut(&mut bufs.da[l - 1], N, hi),
                Accum::Replace,
                view(&bufs.z[l], N, ho),
                view(&bufs.w[l], ho, hi),
                1.0,
                par,
            );
        }
    }
}

/// The same GEMMs through matrixmultiply (no thread pool of its own: rows of the output are
/// split across the rayon pool for t > 1).
fn roof_mm(spec: &MlpSpec, bufs: &mut RoofBufs, threads: usize) {
    let dims = spec.dims();
    for l in 0..dims.len() - 1 {
        let (hi, ho) = (dims[l], dims[l + 1]);
        let input: &[f32] = if l == 0 { &bufs.x } else { &bufs.act[l - 1] };
        // z = input · Wᵀ : (N × hi)(hi × ho), W row-major ho × hi read with strides (1, hi).
        mm(
            threads,
            N,
            hi,
            ho,
            input,
            hi as isize,
            1,
            &bufs.w[l],
            1,
            hi as isize,
            &mut bufs.z[l],
        );
        // dW = zᵀ · input : (ho × N)(N × hi).
        mm(
            threads,
            ho,
            N,
            hi,
            &bufs.z[l],
            1,
            ho as isize,
            input,
            hi as isize,
            1,
            &mut bufs.dw[l],
        );
        if l > 0 {
            // da = z · W : (N × ho)(ho × hi).
            mm(
                threads,
                N,
                ho,
                hi,
                &bufs.z[l],
                ho as isize,
                1,
                &bufs.w[l],
                hi as isize,
                1,
                &mut bufs.da[l - 1],
            );
        }
    }
}

/// Row-split matrixmultiply sgemm: `C (m × n, row-major) = A (m × k) · B (k × n)`.
#[allow(clippy::too_many_arguments)]
fn mm(
    t: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    c: &mut [f32],
) {
    use rayon::prelude::*;
    let rows = m.div_ceil(t.max(1));
    c[..m * n]
        .par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(i, cc)| {
            let r0 = i * rows;
            let mr = cc.len() / n;
            // SAFETY: the pointers address in-bounds row ranges of a, b and cc with the given strides.
            unsafe {
                matrixmultiply::sgemm(
                    mr,
                    k,
                    n,
                    1.0,
                    a.as_ptr().offset(r0 as isize * rsa),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    0.0,
                    cc.as_mut_ptr(),
                    n as isize,
                    1,
                )
            }
        });
}

struct RoofBufs {
    x: Vec<f32>,
    w: Vec<Vec<f32>>,
    z: Vec<Vec<f32>>,
    act: Vec<Vec<f32>>,
    dw: Vec<Vec<f32>>,
    da: Vec<Vec<f32>>,
}

impl RoofBufs {
    fn new(spec: &MlpSpec, x: Vec<f32>) -> Self {
        let dims = spec.dims();
        let layers = 0..dims.len() - 1;
        RoofBufs {
            x,
            w: layers
                .clone()
                .map(|l| vec![0.01; dims[l] * dims[l + 1]])
                .collect(),
            z: layers.clone().map(|l| vec![0.0; N * dims[l + 1]]).collect(),
            act: layers.clone().map(|l| vec![0.5; N * dims[l + 1]]).collect(),
            dw: layers
                .clone()
                .map(|l| vec![0.0; dims[l] * dims[l + 1]])
                .collect(),
            da: layers.map(|l| vec![0.0; N * dims[l]]).collect(),
        }
    }
}

fn bench_kernels(c: &mut Criterion) {
    let data = common::synthetic_data(N);
    for h in common::widths(&[100, 200, 400, 800]) {
        let spec = MlpSpec::new(D, &[h, h], 10, Activation::Tanh).unwrap();
        let p = init_params::<f32>(&spec, 0).data;
        let mut net = Net::new(&spec, Loss::Mse, data.clone(), NetConfig::default());
        let mut roof = RoofBufs::new(&spec, data.x.clone());
        let mut grad = vec![0f32; p.len()];
        let mut g = c.benchmark_group(format!("kernels/h{h}"));
        g.sampling_mode(common::flat());
        for &t in &common::thread_counts() {
            let pool = common::pool(t);
            let par = Par::from_threads(t);
            pool.install(|| net.gradient(&p, &mut grad, par));
            g.throughput(Throughput::Elements(flops::forward(&spec, N) as u64));
            g.bench_function(BenchmarkId::new("loss", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| net.evaluate(&p, par)))
            });
            g.throughput(Throughput::Elements(flops::gradient(&spec, N) as u64));
            g.bench_function(BenchmarkId::new("gradient", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| net.gradient(&p, &mut grad, par)))
            });
            g.bench_function(BenchmarkId::new("roof-faer", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| roof_faer(&spec, &mut roof, t)))
            });
            g.bench_function(BenchmarkId::new("roof-mm", format!("t{t}")), |bch| {
                bch.iter(|| pool.install(|| roof_mm(&spec, &mut roof, t)))
            });
            for b in [1usize, 2, 4, 8] {
                let dirs: Vec<f32> = (0..b * p.len())
                    .map(|i| ((i % 97) as f32 - 48.0) * 1e-3)
                    .collect();
                let mut out = vec![0f32; b * p.len()];
                g.throughput(Throughput::Elements(
                    (b as f64 * flops::hvp(&spec, N)) as u64,
                ));
                g.bench_function(
                    BenchmarkId::new(format!("hvp-b{b}"), format!("t{t}")),
                    |bch| {
                        bch.iter(|| {
                            pool.install(|| net.hvp(&dirs, &mut out, b, Curvature::Hessian, par))
                        })
                    },
                );
                if b == 1 {
                    g.throughput(Throughput::Elements(flops::ggn(&spec, N) as u64));
                    g.bench_function(BenchmarkId::new("ggn-b1", format!("t{t}")), |bch| {
                        bch.iter(|| {
                            pool.install(|| {
                                net.hvp(&dirs, &mut out, 1, Curvature::GaussNewton, par)
                            })
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_kernels
}
criterion_main!(benches);
