//! Seeded synthetic data for tests and benchmarks, and generated files in the CIFAR-10 binary
//! layout.
//!
//! [`synthetic`] draws a Gaussian-mixture classification problem with the same shape
//! conventions as CIFAR-10 datasets: label `y_i = i mod classes` (balanced to within one), and
//! `x_i = μ_{y_i} + s·z_i` with `z_i ~ N(0, I_d)`, class means `μ_c ∈ {−a, +a}^d` (random signs),
//! `a = 0.5`, `s = √(1 − a²)`. Each feature then has mean ≈ 0 and variance ≈ a² + s² = 1 (the
//! data are "roughly standardized"), and the class means are `‖μ_c − μ_c'‖ ≈ a√(2d)` apart, so a
//! small MLP separates the classes once `d` is more than a handful.
//!
//! Random numbers: one `Xoshiro256PlusPlus` stream seeded with `seed`: first the class-mean
//! signs (class-major, one `next_u64` per entry, sign = top bit), then per example and feature
//! one standard normal by Box–Muller from two `next_u64` draws (53-bit uniforms).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::cifar::{write_batch_file, RawSplit, CLASSES, IMAGE_BYTES, TEST_FILE, TRAIN_FILES};
use super::{DataError, Dataset};

/// Half-width of the class-mean entries.
const MEAN_AMPLITUDE: f64 = 0.5;

/// Uniform in `[0, 1)` with 53 random bits.
fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal by Box–Muller (the cosine branch only).
fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
    let u1 = 1.0 - uniform(rng); // (0, 1], so ln is finite
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A seeded Gaussian-mixture dataset of `n` examples, `d` features and `classes` classes (see
/// the module docs). Named `synthetic-n<n>-d<d>-c<classes>-s<seed>`. `n = 0` or `d = 0` give
/// an empty matrix.
///
/// # Panics
/// If `classes` is 0 or above 256 (labels are `u8`); these are programming errors, not input.
pub fn synthetic(n: usize, d: usize, classes: usize, seed: u64) -> Dataset {
    assert!(
        (1..=256).contains(&classes),
        "synthetic: classes must be in 1..=256, got {classes}"
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let means: Vec<f64> = (0..classes * d)
        .map(|_| {
            if rng.next_u64() >> 63 == 1 {
                MEAN_AMPLITUDE
            } else {
                -MEAN_AMPLITUDE
            }
        })
        .collect();
    let s = (1.0 - MEAN_AMPLITUDE * MEAN_AMPLITUDE).sqrt();
    let labels: Vec<u8> = (0..n).map(|i| (i % classes) as u8).collect();
    let mut x = Vec::with_capacity(n * d);
    for &y in &labels {
        let mu = &means[y as usize * d..(y as usize + 1) * d];
        x.extend(mu.iter().map(|&m| (m + s * normal(&mut rng)) as f32));
    }
    Dataset {
        name: format!("synthetic-n{n}-d{d}-c{classes}-s{seed}"),
        n,
        d,
        classes,
        x,
        labels,
    }
}

/// `n` random records in the CIFAR-10 layout: labels uniform in 0..10, image bytes uniform in
/// 0..=255, from a xoshiro256++ stream seeded with `seed`.
pub fn synthetic_raw(n: usize, seed: u64) -> RawSplit {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let labels = (0..n)
        .map(|_| (rng.next_u64() % CLASSES as u64) as u8)
        .collect();
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    while images.len() < n * IMAGE_BYTES {
        let w = rng.next_u64().to_le_bytes();
        let take = (n * IMAGE_BYTES - images.len()).min(8);
        images.extend_from_slice(&w[..take]);
    }
    RawSplit { images, labels }
}

/// Write a complete fake CIFAR-10 directory into `dir` (which must exist): five training files
/// and a test file of `records_per_file` random records each ([`synthetic_raw`] with seeds
/// `seed + k`, `k = 0..6`). Returns the training and test splits as written.
pub fn write_fake_cifar_dir(
    dir: &Path,
    records_per_file: usize,
    seed: u64,
) -> Result<(RawSplit, RawSplit), DataError> {
    let mut train = RawSplit::default();
    for (k, name) in TRAIN_FILES.iter().enumerate() {
        let part = synthetic_raw(records_per_file, seed.wrapping_add(k as u64));
        write_batch_file(dir.join(name), &part)?;
        train.images.extend_from_slice(&part.images);
        train.labels.extend_from_slice(&part.labels);
    }
    let test = synthetic_raw(
        records_per_file,
        seed.wrapping_add(TRAIN_FILES.len() as u64),
    );
    write_batch_file(dir.join(TEST_FILE), &test)?;
    Ok((train, test))
}

/// A fresh, uniquely named directory under `std::env::temp_dir()`, removed (with its contents)
/// on drop. For tests that write files.
#[derive(Debug)]
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    /// Create `<tmp>/eosbench-<tag>-<pid>-<counter>-<nanos>`.
    pub fn new(tag: &str) -> std::io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "eosbench-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
