//! Figure-1 preprocessing: `x = byte / 255`, then per-feature standardization
//! `x'_ij = (x_ij − μ_j) / σ_j` with `μ_j`, `σ_j` (ddof 0) taken over the **full training split**
//! (50 000 images, 3072 features), applied to the training subset and to the test split alike.
//!
//! Statistics are exact up to the last rounding: with `S1_j = Σ_i b_ij` and `S2_j = Σ_i b_ij²`
//! accumulated as integers over the raw bytes,
//! `μ_j = S1_j / (255 n)` and `σ_j = √(n·S2_j − S1_j²) / (255 n)`; the numerator
//! `n·S2_j − S1_j²` is computed exactly in `u128`, so there is no cancellation error.
//!
//! Standardization is elementwise, so standardizing the selected records of the raw split gives
//! the same numbers as standardizing everything and then selecting; the loaders only convert the
//! records they keep. Each value is computed in f64 as `b·(1/(255σ_j)) − μ_j/σ_j` and rounded
//! once to f32.
//!
//! A feature with zero variance (never the case in CIFAR-10, possible in generated files) is
//! only centred: its `σ_j` is replaced by 1 so no NaN or infinity appears.

use super::cifar::{RawSplit, IMAGE_BYTES};

/// Per-feature statistics of a raw split, in units of `byte / 255`.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// `μ_j`, length 3072.
    pub mean: Vec<f64>,
    /// `σ_j` (ddof 0), length 3072. Zero-variance features hold 1.
    pub std: Vec<f64>,
    /// Number of records the statistics were computed over.
    pub count: usize,
}

impl Standardizer {
    /// Compute `μ_j`, `σ_j` over every record of `raw`. An empty split gives `μ = 0`, `σ = 1`.
    pub fn fit(raw: &RawSplit) -> Self {
        let n = raw.len();
        let mut s1 = vec![0u64; IMAGE_BYTES];
        let mut s2 = vec![0u64; IMAGE_BYTES];
        // Record-major pass over contiguous bytes; sums fit u64 easily (n · 255² < 2^64 for
        // any n that fits in memory).
        for img in raw.images.chunks_exact(IMAGE_BYTES) {
            for ((a, q), &b) in s1.iter_mut().zip(s2.iter_mut()).zip(img) {
                let b = b as u64;
                *a += b;
                *q += b * b;
            }
        }
        let mut mean = vec![0.0; IMAGE_BYTES];
        let mut std = vec![1.0; IMAGE_BYTES];
        if n > 0 {
            let nf = n as f64;
            for j in 0..IMAGE_BYTES {
                mean[j] = s1[j] as f64 / (255.0 * nf);
                let num = n as u128 * s2[j] as u128 - (s1[j] as u128) * (s1[j] as u128);
                let sd = (num as f64).sqrt() / (255.0 * nf);
                std[j] = if sd > 0.0 { sd } else { 1.0 };
            }
        }
        Standardizer {
            mean,
            std,
            count: n,
        }
    }

    /// Standardize the records `indices` of `raw` into an `indices.len() × 3072` row-major f32
    /// matrix. Indices must be `< raw.len()` (the callers check them).
    pub fn apply(&self, raw: &RawSplit, indices: &[usize]) -> Vec<f32> {
        let (scale, shift) = self.affine();
        let mut x = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        for &i in indices {
            let img = raw.image(i);
            x.extend(
                img.iter()
                    .zip(scale.iter().zip(&shift))
                    .map(|(&b, (&s, &t))| (b as f64 * s + t) as f32),
            );
        }
        x
    }

    /// `x' = b·scale_j + shift_j` with `scale_j = 1/(255σ_j)`, `shift_j = −μ_j/σ_j`.
    fn affine(&self) -> (Vec<f64>, Vec<f64>) {
        let scale = self.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
        let shift = self
            .mean
            .iter()
            .zip(&self.std)
            .map(|(m, s)| -m / s)
            .collect();
        (scale, shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_from(images: Vec<u8>) -> RawSplit {
        let n = images.len() / IMAGE_BYTES;
        RawSplit {
            images,
            labels: vec![0; n],
        }
    }

    #[test]
    fn fit_matches_two_pass_f64() {
        // Deterministic pseudo-random bytes.
        let n = 37;
        let mut state = 12345u64;
        let images: Vec<u8> = (0..n * IMAGE_BYTES)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let raw = raw_from(images);
        let st = Standardizer::fit(&raw);
        assert_eq!(st.count, n);
        for j in [0, 1, 1023, 1024, 2047, 3071] {
            let xs: Vec<f64> = (0..n).map(|i| raw.image(i)[j] as f64 / 255.0).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
            assert!((st.mean[j] - m).abs() < 1e-14, "mean j={j}");
            assert!((st.std[j] - v.sqrt()).abs() < 1e-13, "std j={j}");
        }
    }

    #[test]
    fn apply_standardizes_fitted_split_and_handles_constant_feature() {
        let n = 5;
        let mut images = vec![0u8; n * IMAGE_BYTES];
        for i in 0..n {
            for j in 0..IMAGE_BYTES {
                // Feature 7 is constant (= 200); the rest vary with i.
                images[i * IMAGE_BYTES + j] = if j == 7 {
                    200
                } else {
                    ((i * 50 + j) % 256) as u8
                };
            }
        }
        let raw = raw_from(images);
        let st = Standardizer::fit(&raw);
        assert_eq!(st.std[7], 1.0);
        let idx: Vec<usize> = (0..n).collect();
        let x = st.apply(&raw, &idx);
        assert_eq!(x.len(), n * IMAGE_BYTES);
        assert!(x.iter().all(|v| v.is_finite()));
        for j in 0..IMAGE_BYTES {
            let col: Vec<f64> = (0..n).map(|i| x[i * IMAGE_BYTES + j] as f64).collect();
            let m = col.iter().sum::<f64>() / n as f64;
            let v = col.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / n as f64;
            assert!(m.abs() < 1e-6, "j={j} mean {m}");
            if j == 7 {
                assert!(col.iter().all(|&c| c == 0.0));
            } else {
                assert!((v - 1.0).abs() < 1e-5, "j={j} var {v}");
            }
        }
        // Selecting then standardizing equals standardizing then selecting.
        let sub = st.apply(&raw, &[3, 1]);
        assert_eq!(&sub[..IMAGE_BYTES], &x[3 * IMAGE_BYTES..4 * IMAGE_BYTES]);
        assert_eq!(&sub[IMAGE_BYTES..], &x[IMAGE_BYTES..2 * IMAGE_BYTES]);
    }

    #[test]
    fn empty_split_gives_identity_statistics() {
        let st = Standardizer::fit(&RawSplit::default());
        assert_eq!(st.count, 0);
        assert!(st.mean.iter().all(|&m| m == 0.0));
        assert!(st.std.iter().all(|&s| s == 1.0));
    }
}
