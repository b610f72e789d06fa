//! Elementwise kernels on the Figure-1 hidden-layer shape (5000 × 200, f32; b = 4 directions),
//! every supported kernel path, `bias_act` for every activation (inputs in [−4, 4]). Short
//! settings: `cargo bench --bench elementwise` (`-- bias_act` for the activations only).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use eosbench::kernels::{bias_act, bwd_act, col_sums, rbwd_act, rfwd_act, KernelPath};
use eosbench::model::Activation;

const ROWS: usize = 5000;
const H: usize = 200;
const B: usize = 4;

fn elementwise(c: &mut Criterion) {
    let n = ROWS * H;
    let z0: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 250.0 - 4.0)
        .collect();
    let bias: Vec<f32> = (0..H).map(|i| i as f32 / 1000.0).collect();
    let (mut z, mut s1, mut s2) = (z0.clone(), vec![0f32; n], vec![0f32; n]);
    let (mut g, mut e) = (vec![0f32; n], vec![0f32; n]);
    let nb = n * B;
    let mut rz: Vec<f32> = (0..nb).map(|i| (i % 13) as f32 * 0.1).collect();
    let cdir = vec![0.5f32; B * H];
    let (mut ra, mut rg) = (vec![0f32; nb], vec![0f32; nb]);
    let mut sums = vec![0f32; B * H];

    let mut group = c.benchmark_group("elementwise");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for path in KernelPath::supported() {
        group.throughput(Throughput::Elements(n as u64));
        for act in Activation::ALL {
            let id = BenchmarkId::new(format!("bias_act_{act}"), path);
            group.bench_function(id, |bch| {
                bch.iter(|| {
                    z.copy_from_slice(&z0);
                    bias_act(path, act, ROWS, H, &mut z, &bias, &mut s1, &mut s2);
                })
            });
        }
        group.bench_function(BenchmarkId::new("bwd_act", path), |bch| {
            bch.iter(|| bwd_act(path, &z0, &s1, &s2, &mut g, &mut e))
        });
        group.throughput(Throughput::Elements(nb as u64));
        group.bench_function(BenchmarkId::new("rfwd_act_b4", path), |bch| {
            bch.iter(|| rfwd_act(path, ROWS, B, H, &mut rz, &cdir, &s1, &mut ra))
        });
        group.bench_function(BenchmarkId::new("rbwd_act_b4", path), |bch| {
            bch.iter(|| rbwd_act(path, ROWS, B, H, &ra, &s1, Some(&e), &rz, &mut rg))
        });
        group.bench_function(BenchmarkId::new("col_sums_b4", path), |bch| {
            bch.iter(|| col_sums(path, ROWS, B * H, &rg, B * H, &mut sums, false))
        });
    }
    group.finish();
}

criterion_group!(benches, elementwise);
criterion_main!(benches);
