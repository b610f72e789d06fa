//! Shared benchmark set-up: criterion settings sized for a 2-core machine, a pprof
//! flamegraph profiler (`-- --profile-time 10`), thread pools and the synthetic
//! Figure-1-shaped problem.

#![allow(dead_code)]

use criterion::profiler::Profiler;
use criterion::{Criterion, SamplingMode};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// Writes `flamegraph.svg` into criterion's profile directory of each benchmark.
pub struct Flame {
    guard: Option<pprof::ProfilerGuard<'static>>,
}

impl Profiler for Flame {
    fn start_profiling(&mut self, _id: &str, _dir: &Path) {
        // 250 Hz is what the kernel timer delivers on these machines (CONFIG_HZ=250).
        self.guard = pprof::ProfilerGuardBuilder::default()
            .frequency(250)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .ok();
    }
    fn stop_profiling(&mut self, _id: &str, dir: &Path) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        if let (Ok(report), Ok(file)) = (
            guard.report().build(),
            File::create(dir.join("flamegraph.svg")),
        ) {
            if report.flamegraph(file).is_ok() {
                eprintln!("flamegraph: {}", dir.join("flamegraph.svg").display());
            }
        }
    }
}

/// Few samples, short warm-up and measurement, flat sampling: each iteration here takes
/// tens of milliseconds to seconds.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(800))
        .measurement_time(Duration::from_secs(3))
        .nresamples(10_000)
        .without_plots()
        .with_profiler(Flame { guard: None })
}

pub fn flat() -> SamplingMode {
    SamplingMode::Flat
}

/// `EOSBENCH_BENCH_FULL=1`: the long grids (every width, 1 and 2 threads). By default the
/// benches run the short ones (h = 200, all the cores), so `cargo bench` as a whole stays near
/// 10 minutes on 2 cores.
pub fn full() -> bool {
    std::env::var("EOSBENCH_BENCH_FULL").is_ok_and(|v| v == "1")
}

/// Thread counts to sweep: `EOSBENCH_BENCH_THREADS=1,2`; by default all the cores, or 1 and 2
/// with [`full`].
pub fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let default: &[usize] = if full() { &[1, 2] } else { &[cores] };
    list_env("EOSBENCH_BENCH_THREADS", default)
}

/// Hidden widths to sweep: `EOSBENCH_BENCH_WIDTHS=100,200`; by default `short`, or `long` with
/// [`full`].
pub fn widths(short: &[usize], long: &[usize]) -> Vec<usize> {
    list_env("EOSBENCH_BENCH_WIDTHS", if full() { long } else { short })
}

fn list_env(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|t| {
                t.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: '{t}' is not a number"))
            })
            .collect(),
        _ => default.to_vec(),
    }
}

pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// A 3072-input, 10-class synthetic problem of `n` examples (the CIFAR-10 shape).
pub fn synthetic_data(n: usize) -> eosbench::mlp::Data<f32> {
    let ds = eosbench::data::synthetic(n, 3072, 10, 0);
    eosbench::mlp::Data::new(ds.x, ds.labels, 3072, 10)
}

/// The real `cifar10-5k` when the CIFAR-10 files can be found (`EOSBENCH_DATA` or
/// `datasets/cifar-10-batches-bin`), else the synthetic set of the same shape; says which.
pub fn cifar10_5k_or_synthetic() -> eosbench::mlp::Data<f32> {
    let dir = eosbench::data::resolve_data_dir(None);
    let name: eosbench::data::DatasetName = "cifar10-5k".parse().expect("dataset name");
    match name.load(&dir) {
        Ok(ds) => {
            println!("data: cifar10-5k from {}", dir.path.display());
            eosbench::mlp::Data::new(ds.x, ds.labels, 3072, 10)
        }
        Err(e) => {
            println!("data: synthetic-5000 (real data unavailable: {e})");
            synthetic_data(5000)
        }
    }
}
