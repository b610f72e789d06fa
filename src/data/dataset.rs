//! The in-memory dataset, subset rules, dataset names and the CIFAR-10 loader.

use std::fmt;
use std::str::FromStr;

use super::cifar::{load_raw, RawSplit, Split, CLASSES, IMAGE_BYTES};
use super::preprocess::Standardizer;
use super::{DataDir, DataError};
use crate::real::Real;

/// A labelled design matrix: `x` is `n × d` row-major f32 (example `i` is
/// `x[i*d..(i+1)*d]`), `labels[i] ∈ 0..classes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub n: usize,
    pub d: usize,
    pub classes: usize,
    pub x: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Features of example `i` (length `d`). Panics if `i >= n`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    /// Examples per class, length `classes`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.classes];
        for &l in &self.labels {
            c[l as usize] += 1;
        }
        c
    }

    /// The features converted to `T` (a copy; f32 → f64 is exact).
    pub fn features<T: Real>(&self) -> Vec<T> {
        self.x.iter().map(|&v| T::from_f64(v as f64)).collect()
    }

    /// The features as f64 (the verification path).
    pub fn features_f64(&self) -> Vec<f64> {
        self.features::<f64>()
    }

    /// One-hot targets, `n × classes` row-major: `Y[i, labels[i]] = 1`, else 0.
    pub fn one_hot<T: Real>(&self) -> Vec<T> {
        let mut y = vec![T::ZERO; self.n * self.classes];
        for (i, &l) in self.labels.iter().enumerate() {
            y[i * self.classes + l as usize] = T::ONE;
        }
        y
    }

    /// Per-feature mean and standard deviation (ddof 0), accumulated in f64 in index order.
    /// Both are length `d`; an empty dataset gives zeros.
    pub fn feature_mean_std(&self) -> (Vec<f64>, Vec<f64>) {
        let (n, d) = (self.n, self.d);
        let mut mean = vec![0.0f64; d];
        let mut var = vec![0.0f64; d];
        if n == 0 {
            return (mean, var);
        }
        for row in self.x.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        for row in self.x.chunks_exact(d) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                let e = v as f64 - m;
                *s += e * e;
            }
        }
        let std = var.into_iter().map(|s| (s / n as f64).sqrt()).collect();
        (mean, std)
    }

    /// The examples `indices` (in the given order, repeats allowed) as a new dataset named
    /// `"<name>-sub<k>"`. An index `>= n` gives [`DataError::IndexOutOfRange`].
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        let mut x = Vec::with_capacity(indices.len() * self.d);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.n {
                return Err(DataError::IndexOutOfRange {
                    name: self.name.clone(),
                    index: i,
                    n: self.n,
                });
            }
            x.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        Ok(Dataset {
            name: format!("{}-sub{}", self.name, indices.len()),
            n: indices.len(),
            d: self.d,
            classes: self.classes,
            x,
            labels,
        })
    }
}

/// Which records of a split to keep. Records always stay in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subset {
    /// The first `n` records (Figure 1: `First(5000)` of the training split is the first 5000
    /// records of data_batch_1.bin — not class-balanced).
    First(usize),
    /// `n / classes` records of every class: for each class, its first `n / classes` records in
    /// file order; the kept records stay in file order (not grouped by class). `n` must be a
    /// multiple of the number of classes — there is no remainder rule; other `n` are rejected
    /// with [`DataError::BalancedNotDivisible`] naming the nearest valid sizes.
    Balanced(usize),
    /// The whole split.
    All,
}

impl Subset {
    /// Record indices (ascending) of this subset of a split with the given labels.
    /// Errors: `n = 0`, `n` above the split size, a non-divisible balanced `n`, or a class with
    /// too few records for a balanced subset.
    pub fn indices(
        self,
        split: Split,
        labels: &[u8],
        classes: usize,
    ) -> Result<Vec<usize>, DataError> {
        let available = labels.len();
        let check_n = |n: usize| {
            if n == 0 {
                Err(DataError::EmptySubset { split })
            } else if n > available {
                Err(DataError::SubsetTooLarge {
                    split,
                    requested: n,
                    available,
                })
            } else {
                Ok(())
            }
        };
        match self {
            Subset::All => {
                check_n(available)?;
                Ok((0..available).collect())
            }
            Subset::First(n) => {
                check_n(n)?;
                Ok((0..n).collect())
            }
            Subset::Balanced(n) => {
                check_n(n)?;
                if classes == 0 || n % classes != 0 {
                    let c = classes.max(1);
                    let lower = (n / c) * c;
                    return Err(DataError::BalancedNotDivisible {
                        n,
                        classes,
                        lower: if lower == 0 { c } else { lower },
                        upper: lower + c,
                    });
                }
                let per = n / classes;
                let mut taken = vec![0usize; classes];
                let mut idx = Vec::with_capacity(n);
                for (i, &l) in labels.iter().enumerate() {
                    let c = l as usize;
                    if c < classes && taken[c] < per {
                        taken[c] += 1;
                        idx.push(i);
                        if idx.len() == n {
                            break;
                        }
                    }
                }
                if let Some((class, &got)) = taken.iter().enumerate().find(|(_, &t)| t < per) {
                    return Err(DataError::ClassTooSmall {
                        split,
                        class,
                        needed: per,
                        available: got,
                    });
                }
                Ok(idx)
            }
        }
    }
}

/// A named CIFAR-10 dataset: a split and a subset of it. Parses and prints names like
/// `cifar10-5k` (train, first 5000), `cifar10-1000`, `cifar10-50k`, `cifar10-train` (all of
/// train), `cifar10-balanced-5k` (500 per class), `cifar10-test`, `cifar10-test-1k`,
/// `cifar10-test-balanced-1k`. `<n>k` means `n × 1000`. Parsing is case-insensitive;
/// printing gives the canonical form (which parses back to the same value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatasetName {
    pub split: Split,
    pub subset: Subset,
}

impl DatasetName {
    /// The Figure-1 dataset: the first 5000 training records.
    pub const FIGURE1: DatasetName = DatasetName {
        split: Split::Train,
        subset: Subset::First(5000),
    };

    /// Load this dataset from `dir` (see [`load_cifar10`]).
    pub fn load(self, dir: impl Into<DataDir>) -> Result<Dataset, DataError> {
        load_cifar10(dir, self.split, self.subset)
    }

    /// Examples the data set holds, without reading it (50 000 training, 10 000 test records).
    pub fn examples(self) -> usize {
        match self.subset {
            Subset::First(n) | Subset::Balanced(n) => n,
            Subset::All => match self.split {
                Split::Train => 50_000,
                Split::Test => 10_000,
            },
        }
    }
}

fn fmt_count(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let split = match self.split {
            Split::Train => "",
            Split::Test => "-test",
        };
        match self.subset {
            Subset::All => write!(f, "cifar10-{}", self.split),
            Subset::First(n) => write!(f, "cifar10{split}-{}", fmt_count(n)),
            Subset::Balanced(n) => write!(f, "cifar10{split}-balanced-{}", fmt_count(n)),
        }
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        let bad = |reason: &str| DataError::BadName {
            name: s.to_string(),
            reason: reason.to_string(),
        };
        let lower = s.trim().to_ascii_lowercase();
        let rest = lower
            .strip_prefix("cifar10")
            .ok_or_else(|| bad("it must start with 'cifar10'"))?;
        let (split, rest) = if rest.is_empty() || rest == "-train" || rest == "-all" {
            return Ok(DatasetName {
                split: Split::Train,
                subset: Subset::All,
            });
        } else if rest == "-test" {
            return Ok(DatasetName {
                split: Split::Test,
                subset: Subset::All,
            });
        } else if let Some(r) = rest.strip_prefix("-test-") {
            (Split::Test, r)
        } else if let Some(r) = rest.strip_prefix('-') {
            (Split::Train, r)
        } else {
            return Err(bad("expected '-' after 'cifar10'"));
        };
        let (balanced, count) = match rest.strip_prefix("balanced-") {
            Some(c) => (true, c),
            None => (false, rest),
        };
        let n = parse_count(count).ok_or_else(|| {
            bad(&format!(
                "'{count}' is not a count (digits, optionally followed by 'k' for ×1000)"
            ))
        })?;
        if n == 0 {
            return Err(bad("the subset size must be at least 1"));
        }
        let subset = if balanced {
            Subset::Balanced(n)
        } else {
            Subset::First(n)
        };
        Ok(DatasetName { split, subset })
    }
}

/// `"5000"` → 5000, `"5k"` → 5000; anything else (empty, signs, overflow) → `None`.
fn parse_count(s: &str) -> Option<usize> {
    let (digits, mult) = match s.strip_suffix('k') {
        Some(d) => (d, 1000usize),
        None => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(mult)
}

/// Load a preprocessed CIFAR-10 split/subset from `dir`.
///
/// Always reads the full training split to compute the per-feature statistics (see
/// [`super::preprocess`]), then standardizes only the kept records of `split`. The result has
/// `d = 3072`, `classes = 10` and the canonical [`DatasetName`] as its name.
pub fn load_cifar10(
    dir: impl Into<DataDir>,
    split: Split,
    subset: Subset,
) -> Result<Dataset, DataError> {
    let dir = dir.into();
    let train = load_raw(&dir, Split::Train)?;
    let stats = Standardizer::fit(&train);
    let raw = match split {
        Split::Train => train,
        Split::Test => load_raw(&dir, Split::Test)?,
    };
    build(&raw, &stats, DatasetName { split, subset })
}

/// Load a training subset and the whole test split with one pass of statistics.
pub fn load_train_test(
    dir: impl Into<DataDir>,
    subset: Subset,
) -> Result<(Dataset, Dataset), DataError> {
    let dir = dir.into();
    let train = load_raw(&dir, Split::Train)?;
    let stats = Standardizer::fit(&train);
    let test = load_raw(&dir, Split::Test)?;
    let tr = build(
        &train,
        &stats,
        DatasetName {
            split: Split::Train,
            subset,
        },
    )?;
    let te = build(
        &test,
        &stats,
        DatasetName {
            split: Split::Test,
            subset: Subset::All,
        },
    )?;
    Ok((tr, te))
}

fn build(raw: &RawSplit, stats: &Standardizer, name: DatasetName) -> Result<Dataset, DataError> {
    let idx = name.subset.indices(name.split, &raw.labels, CLASSES)?;
    let x = stats.apply(raw, &idx);
    let labels = idx.iter().map(|&i| raw.labels[i]).collect();
    Ok(Dataset {
        name: name.to_string(),
        n: idx.len(),
        d: IMAGE_BYTES,
        classes: CLASSES,
        x,
        labels,
    })
}
