//! One full-batch gradient-descent step of fc-tanh (d-h-h-10) on cifar10-5k (a synthetic set of
//! the same shape when the data cannot be found), η = 2/200: untracked (gradient + update) and
//! tracked with each tracker (gradient + one estimate + update), from the initialization (the
//! rising phase) and, with `EOSBENCH_BENCH_EDGE=CHECKPOINT` (e.g. a `train` run's
//! `final.safetensors` at the edge of stability, width 200), from that state. Each iteration is
//! the next step of the run, so a tracker's history is the real one. Ids:
//! `step/<start>/h<width>-n<n>/t<threads>/<tracker>`; products per estimate are printed after
//! each tracked benchmark.
//!
//! `cargo bench --bench step` (h = 200, all the cores); `EOSBENCH_BENCH_FULL=1` (threads 1 and
//! 2); `EOSBENCH_BENCH_WIDTHS=400 EOSBENCH_BENCH_THREADS=1,2 ...` (the sweep covers the widths).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use eosbench::eig::{LanczosParams, Tracker};
use eosbench::hvp::track_in;
use eosbench::mlp::{Curvature, Net, NetConfig};
use eosbench::model::{init_params, load_checkpoint, Activation, Loss, MlpSpec};
use eosbench::train::TrackerChoice;
use eosbench::Par;

fn bench_step(c: &mut Criterion) {
    let data = common::cifar10_5k_or_synthetic();
    let n = data.n;
    let lr = 2.0f32 / 200.0;
    let edge = std::env::var("EOSBENCH_BENCH_EDGE").ok();
    let mut group = c.benchmark_group("step");
    group.sampling_mode(common::flat());
    for &h in &common::widths(&[200], &[200]) {
        let spec = MlpSpec::new(3072, &[h, h], 10, Activation::Tanh).expect("spec");
        let mut starts = vec![("init", init_params::<f32>(&spec, 0).data)];
        if let Some(path) = &edge {
            let (p, _) = load_checkpoint::<f32>(path.as_ref()).expect("EOSBENCH_BENCH_EDGE");
            if p.spec == spec {
                starts.push(("edge", p.data));
            } else {
                println!(
                    "{path} holds {}: no edge benchmarks at h = {h}",
                    p.spec.describe()
                );
            }
        }
        for (start, p0) in &starts {
            for &t in &common::thread_counts() {
                let pool = common::pool(t);
                let par = Par::from_threads(t);
                for choice in TrackerChoice::ALL {
                    let mut net = Net::new(&spec, Loss::Mse, data.clone(), NetConfig::default());
                    let mut theta = p0.clone();
                    let mut g = vec![0f32; theta.len()];
                    let lanczos = LanczosParams {
                        par,
                        ..LanczosParams::default()
                    };
                    let mut tracker = choice
                        .tracking(1, lanczos)
                        .map(|tr| Tracker::new(tr.tracker).expect("tracker"));
                    let mut products = Vec::new();
                    let id = format!("{start}/h{h}-n{n}/t{t}/{}", choice.name());
                    group.bench_function(id.as_str(), |b| {
                        b.iter(|| {
                            pool.install(|| {
                                net.gradient(&theta, &mut g, par);
                                if let Some(tr) = tracker.as_mut() {
                                    let e = track_in(tr, &mut net, Curvature::Hessian, par)
                                        .expect("estimate");
                                    products.push(e.estimate.result.products);
                                }
                                theta.iter_mut().zip(&g).for_each(|(p, g)| *p -= lr * g);
                            })
                        })
                    });
                    if !products.is_empty() {
                        // The first estimate of a run is a cold solve: left out.
                        let mut later = products[1.min(products.len() - 1)..].to_vec();
                        later.sort_unstable();
                        println!(
                            "{id}: {} estimates, median {} products",
                            later.len(),
                            later[later.len() / 2]
                        );
                    }
                }
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_step
}
criterion_main!(benches);
