//! Typed errors of the data module. Every variant names the file or directory involved and,
//! where the user can do something about it, the fix.

use std::path::PathBuf;

use super::dir::DataSource;
use super::Split;

/// What can go wrong while finding, reading, checking or subsetting CIFAR-10 data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The data directory does not exist (or is not a directory).
    #[error(
        "CIFAR-10 data directory {path} not found (taken from {origin}).\n\
         Fix: pass --data-dir DIR, or set EOSBENCH_DATA=DIR, pointing at a folder that holds \
         data_batch_1.bin … data_batch_5.bin and test_batch.bin; or run scripts/fetch-cifar10.sh \
         to download the official files into datasets/cifar-10-batches-bin/."
    )]
    DirNotFound { path: PathBuf, origin: DataSource },

    /// One of the six `.bin` files is missing from an existing data directory.
    #[error(
        "CIFAR-10 file {path} is missing.\n\
         Fix: the directory must hold all six files of the official cifar-10-binary.tar.gz \
         (data_batch_1.bin … data_batch_5.bin, test_batch.bin); run scripts/fetch-cifar10.sh \
         or point --data-dir / EOSBENCH_DATA at a complete copy."
    )]
    FileMissing { path: PathBuf },

    /// Any other I/O failure while reading or writing a file.
    #[error("I/O error on {path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },

    /// The file length is not a positive multiple of the 3073-byte record.
    #[error(
        "{path} is {bytes} bytes, not a positive multiple of the 3073-byte CIFAR-10 record \
         ({bytes} = {whole} × 3073 + {rest}); the file is truncated or not a CIFAR-10 binary \
         batch. Fix: re-download with scripts/fetch-cifar10.sh."
    )]
    BadSize {
        path: PathBuf,
        bytes: u64,
        whole: u64,
        rest: u64,
    },

    /// A label byte outside `0..CLASSES`.
    #[error(
        "{path}: record {record} has label {label}, outside 0..=9; the file is corrupt or not a \
         CIFAR-10 binary batch (CIFAR-100 has two label bytes). Fix: re-download with \
         scripts/fetch-cifar10.sh."
    )]
    BadLabel {
        path: PathBuf,
        record: usize,
        label: u8,
    },

    /// A subset of zero examples was requested.
    #[error("a subset of 0 examples was requested from the {split} split; n must be at least 1")]
    EmptySubset { split: Split },

    /// A subset larger than the split.
    #[error(
        "a subset of {requested} examples was requested but the {split} split has only {available}"
    )]
    SubsetTooLarge {
        split: Split,
        requested: usize,
        available: usize,
    },

    /// A class-balanced subset whose size is not a multiple of the number of classes.
    #[error(
        "a class-balanced subset needs n divisible by the {classes} classes, got n = {n} \
         (use e.g. {lower} or {upper})"
    )]
    BalancedNotDivisible {
        n: usize,
        classes: usize,
        lower: usize,
        upper: usize,
    },

    /// A class-balanced subset asks for more examples of a class than the split has.
    #[error(
        "a class-balanced subset needs {needed} examples of class {class} but the {split} split \
         has only {available}"
    )]
    ClassTooSmall {
        split: Split,
        class: usize,
        needed: usize,
        available: usize,
    },

    /// `Dataset::subset` was given an index past the end.
    #[error("subset index {index} is out of range for dataset '{name}' with {n} examples")]
    IndexOutOfRange {
        name: String,
        index: usize,
        n: usize,
    },

    /// A dataset name that does not parse.
    #[error(
        "unknown dataset name '{name}': {reason}. Expected cifar10-<n>, cifar10-<k>k, \
         cifar10-balanced-<n>, cifar10-train, cifar10-test or cifar10-test-<n> \
         (e.g. cifar10-5k, cifar10-1000, cifar10-balanced-5k, cifar10-test)"
    )]
    BadName { name: String, reason: String },
}

impl DataError {
    /// Map an I/O error on `path`, turning "not found" into [`DataError::FileMissing`].
    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        let path = path.into();
        if err.kind() == std::io::ErrorKind::NotFound {
            DataError::FileMissing { path }
        } else {
            DataError::Io { path, err }
        }
    }
}
