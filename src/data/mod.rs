//! Data: CIFAR-10 binary files → preprocessed [`Dataset`]s; checksums; subsets; synthetic data.
//! This module knows nothing about models.
//!
//! * [`cifar`]: the binary layout (3073-byte records: label, then R, G, B 32×32 planes), the
//!   official file names and SHA-256 digests, [`read_batch_file`] and [`load_raw`]
//!   (train = data_batch_1..5 in order, test = test_batch).
//! * [`preprocess`]: `x/255`, then per-feature standardization with mean and std (ddof 0) of
//!   the **full 50 000-image training split**, computed exactly in f64 — and only then the
//!   subset is taken; the test split uses the same statistics.
//! * [`Dataset`]: `n × d` row-major f32 features with `u8` labels; [`Subset`] (first n,
//!   class-balanced n, all) and [`DatasetName`] (`cifar10-5k`, `cifar10-balanced-5k`,
//!   `cifar10-test`, …); [`load_cifar10`].
//! * [`resolve_data_dir`]: `--data-dir` flag, else `$EOSBENCH_DATA`, else
//!   `datasets/cifar-10-batches-bin`; a missing directory error names the rule and the fix.
//! * [`verify`]: SHA-256, record counts, class histograms and first labels of a directory.
//! * [`synthetic`]: seeded Gaussian-mixture data with the same shape conventions, and
//!   generated CIFAR-layout files for tests.
//!
//! Bad input never panics: every failure is a [`DataError`] naming the file and the fix.

pub mod cifar;
mod dataset;
mod dir;
mod error;
pub mod preprocess;
mod synthetic;
mod verify;

#[cfg(test)]
mod tests;

pub use cifar::{
    load_raw, read_batch_file, write_batch_file, OfficialFile, RawSplit, Split, ARCHIVE_MD5,
    ARCHIVE_URL, CLASSES, CLASS_NAMES, FIRST_TEST_LABELS, FIRST_TRAIN_LABELS, IMAGE_BYTES,
    OFFICIAL_FILES, PLANE_BYTES, RECORDS_PER_FILE, RECORD_BYTES, TEST_FILE, TEST_RECORDS,
    TRAIN_FILES, TRAIN_RECORDS,
};
pub use dataset::{load_cifar10, load_train_test, Dataset, DatasetName, Subset};
pub use dir::{
    real_data_for_tests, resolve_data_dir, DataDir, DataSource, DATA_ENV, DEFAULT_DATA_DIR,
};
pub use error::DataError;
pub use preprocess::Standardizer;
pub use synthetic::{synthetic, synthetic_raw, write_fake_cifar_dir, ScratchDir};
pub use verify::{verify, FileReport, FileStatus, SplitReport, VerifyReport};
