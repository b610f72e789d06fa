//! Where the CIFAR-10 files are: the `--data-dir` flag, else the `EOSBENCH_DATA` environment
//! variable, else `datasets/cifar-10-batches-bin` relative to the current directory.
//!
//! The resolved [`DataDir`] remembers which of the three it came from, so a missing directory
//! can be reported with the place it was looked up and the way to fix it.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::cifar::{TEST_FILE, TRAIN_FILES};
use super::DataError;

/// Environment variable that points at the CIFAR-10 binary directory.
pub const DATA_ENV: &str = "EOSBENCH_DATA";
/// Directory used when neither the flag nor the environment variable is given, relative to the
/// current working directory.
pub const DEFAULT_DATA_DIR: &str = "datasets/cifar-10-batches-bin";

/// Which rule produced a [`DataDir`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// The `--data-dir` command-line flag.
    Flag,
    /// The `EOSBENCH_DATA` environment variable.
    Env,
    /// The built-in default `datasets/cifar-10-batches-bin`.
    Default,
    /// A path handed to a library function directly (tests, embedding code).
    Given,
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Flag => write!(f, "the --data-dir flag"),
            DataSource::Env => write!(f, "the {DATA_ENV} environment variable"),
            DataSource::Default => {
                let cwd = std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                write!(
                    f,
                    "the default {DEFAULT_DATA_DIR}, relative to the current directory {cwd}"
                )
            }
            DataSource::Given => write!(f, "the path passed by the caller"),
        }
    }
}

/// A CIFAR-10 directory and the rule that chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    pub path: PathBuf,
    pub source: DataSource,
}

impl DataDir {
    /// A directory passed in code ([`DataSource::Given`]).
    pub fn given(path: impl Into<PathBuf>) -> Self {
        DataDir {
            path: path.into(),
            source: DataSource::Given,
        }
    }

    /// `Ok` if the path is an existing directory, else [`DataError::DirNotFound`] naming the
    /// source and the fix.
    pub fn check_exists(&self) -> Result<(), DataError> {
        if self.path.is_dir() {
            Ok(())
        } else {
            Err(DataError::DirNotFound {
                path: self.path.clone(),
                origin: self.source,
            })
        }
    }

    /// Whether all six `.bin` files are present (as files; contents are not checked).
    pub fn has_all_files(&self) -> bool {
        TRAIN_FILES
            .iter()
            .chain(std::iter::once(&TEST_FILE))
            .all(|f| self.path.join(f).is_file())
    }
}

impl From<&Path> for DataDir {
    fn from(p: &Path) -> Self {
        DataDir::given(p)
    }
}
impl From<PathBuf> for DataDir {
    fn from(p: PathBuf) -> Self {
        DataDir::given(p)
    }
}
impl From<&PathBuf> for DataDir {
    fn from(p: &PathBuf) -> Self {
        DataDir::given(p.clone())
    }
}
impl From<&str> for DataDir {
    fn from(p: &str) -> Self {
        DataDir::given(p)
    }
}
impl From<&DataDir> for DataDir {
    fn from(d: &DataDir) -> Self {
        d.clone()
    }
}

/// Resolve the data directory: `flag` if given, else `$EOSBENCH_DATA` if set and non-empty,
/// else [`DEFAULT_DATA_DIR`]. Does not check that the directory exists (see
/// [`DataDir::check_exists`]); loaders do that and report the source on failure.
pub fn resolve_data_dir(flag: Option<&Path>) -> DataDir {
    resolve_with(flag, std::env::var_os(DATA_ENV))
}

/// [`resolve_data_dir`] with the environment value passed in, so the rule is testable without
/// mutating the process environment.
pub(crate) fn resolve_with(flag: Option<&Path>, env: Option<OsString>) -> DataDir {
    if let Some(p) = flag {
        return DataDir {
            path: p.to_path_buf(),
            source: DataSource::Flag,
        };
    }
    match env {
        Some(v) if !v.is_empty() => DataDir {
            path: PathBuf::from(v),
            source: DataSource::Env,
        },
        _ => DataDir {
            path: PathBuf::from(DEFAULT_DATA_DIR),
            source: DataSource::Default,
        },
    }
}

/// Whether the `CI` environment value means "running in CI": set, non-empty, and not `false`
/// or `0` (case-insensitive).
pub(crate) fn is_ci(value: Option<&OsString>) -> bool {
    match value.and_then(|v| v.to_str()) {
        Some(v) => {
            let v = v.trim();
            !v.is_empty() && !v.eq_ignore_ascii_case("false") && v != "0"
        }
        // A non-UTF-8 value is still "set".
        None => value.is_some_and(|v| !v.is_empty()),
    }
}

/// For tests that need the real CIFAR-10 files: the resolved directory (flag-less rule) if it
/// holds all six files. Otherwise, in CI (`CI` set, non-empty, not `false`/`0`) this
/// **panics** so a misconfigured CI cannot silently skip the real-data tests; locally it prints
/// a skip message on stderr saying how to get the data and returns `None`.
pub fn real_data_for_tests() -> Option<PathBuf> {
    real_data_with(
        resolve_data_dir(None),
        is_ci(std::env::var_os("CI").as_ref()),
    )
}

pub(crate) fn real_data_with(dir: DataDir, ci: bool) -> Option<PathBuf> {
    if dir.has_all_files() {
        return Some(dir.path);
    }
    let why = format!(
        "CIFAR-10 binary files not found in {} (taken from {})",
        dir.path.display(),
        dir.source
    );
    if ci {
        panic!(
            "{why}. CI must provide the data: set {DATA_ENV} to a directory holding \
             data_batch_1.bin … data_batch_5.bin and test_batch.bin (scripts/fetch-cifar10.sh \
             downloads and checks them)."
        );
    }
    eprintln!(
        "SKIP real-data test: {why}. To run it, set {DATA_ENV}=DIR or run \
         scripts/fetch-cifar10.sh (downloads into {DEFAULT_DATA_DIR})."
    );
    None
}
