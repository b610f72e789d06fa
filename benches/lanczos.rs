//! Cost of one sharpness estimate (top Hessian eigenvalue, tol 1e-3) of fc-tanh on the real
//! cifar10-5k (a synthetic set of the same shape when the data cannot be found): cold (random start) and warm (from the previous
//! iterate's Ritz vectors after one GD step), block sizes 1, 2, 4, on all the cores (1 and 2 threads
//! with `EOSBENCH_BENCH_FULL=1`).
//! Products per estimate are printed before the timings (criterion measures time only). The
//! estimates run in a kept [`LanczosWorkspace`], as in a training run; `*-b1-oneshot` allocates
//! the solver's buffers per estimate, for comparison.
//!
//! `cargo bench --bench lanczos` (all the cores); `EOSBENCH_BENCH_FULL=1` or
//! `EOSBENCH_BENCH_THREADS=1,2 cargo bench --bench lanczos` (1 and 2 threads).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use eosbench::eig::{LanczosParams, LanczosWorkspace};
use eosbench::hvp::{top_eigenpairs, top_eigenpairs_in};
use eosbench::mlp::{Curvature, Net, NetConfig};
use eosbench::model::{init_params, Loss, Preset};
use eosbench::Par;

fn bench_lanczos(c: &mut Criterion) {
    let spec = Preset::FcTanh.spec();
    let data = common::cifar10_5k_or_synthetic();
    let p0 = init_params::<f32>(&spec, 0).data;
    let mut net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
    let mut g = vec![0f32; p0.len()];
    let mut group = c.benchmark_group("lanczos/fc-tanh-5k");
    group.sampling_mode(common::flat());
    println!(
        "{:<8} {:>3} {:>3} {:>9} {:>12} {:>8}",
        "start", "b", "t", "products", "lambda1", "seconds"
    );
    for &t in &common::thread_counts() {
        let pool = common::pool(t);
        let par = Par::from_threads(t);
        for b in [1usize, 2, 4] {
            let params = LanczosParams {
                block: b,
                par,
                ..Default::default()
            };
            // Previous iterate: θ0, its Ritz vectors; current iterate: one GD step later.
            pool.install(|| net.gradient(&p0, &mut g, par));
            let prev = pool
                .install(|| top_eigenpairs(&mut net, Curvature::Hessian, &params, None))
                .expect("cold solve");
            let eta = (1.0 / prev.result.values[0]) as f32;
            let p1: Vec<f32> = p0.iter().zip(&g).map(|(p, g)| p - eta * g).collect();
            pool.install(|| net.gradient(&p1, &mut g, par));
            for (name, start) in [
                ("cold", None),
                ("warm", Some(prev.result.vectors.as_slice())),
            ] {
                let r = pool
                    .install(|| top_eigenpairs(&mut net, Curvature::Hessian, &params, start))
                    .expect("solve");
                println!(
                    "{name:<8} {b:>3} {t:>3} {:>9} {:>12.6} {:>8.3}",
                    r.result.products, r.result.values[0], r.seconds
                );
                // As a training run does it: the solver's buffers kept between estimates.
                let mut ws = LanczosWorkspace::new();
                group.bench_function(
                    BenchmarkId::new(format!("{name}-b{b}"), format!("t{t}")),
                    |bch| {
                        bch.iter(|| {
                            pool.install(|| {
                                top_eigenpairs_in(
                                    &mut ws,
                                    &mut net,
                                    Curvature::Hessian,
                                    &params,
                                    start,
                                )
                                .expect("solve")
                            })
                        })
                    },
                );
                // One-shot, buffers allocated per estimate: the cost a workspace saves.
                if b == 1 {
                    group.bench_function(
                        BenchmarkId::new(format!("{name}-b{b}-oneshot"), format!("t{t}")),
                        |bch| {
                            bch.iter(|| {
                                pool.install(|| {
                                    top_eigenpairs(&mut net, Curvature::Hessian, &params, start)
                                        .expect("solve")
                                })
                            })
                        },
                    );
                }
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_lanczos
}
criterion_main!(benches);
