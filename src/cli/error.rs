//! The one error type of the command line. Library errors are wrapped unchanged (their text
//! already names the file and the fix); the CLI adds the mismatches only it can detect and the
//! "ran, but the result is a failure" outcomes of `data verify` and `verify`.

use std::path::PathBuf;

use crate::data::DataError;
use crate::model::{CheckpointError, SpecError};

/// Everything a subcommand can fail with. `main` prints it as `error: <message>` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Data(#[from] DataError),

    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),

    #[error(transparent)]
    Spec(#[from] SpecError),

    #[error(transparent)]
    Eig(#[from] crate::eig::EigError),

    /// Gradient descent stopped early; the run directory keeps everything before the error.
    #[error("{source} (the results so far are in {run_dir})")]
    Train {
        run_dir: PathBuf,
        #[source]
        source: crate::train::TrainError,
    },

    /// A signal (Ctrl-C, SIGTERM, SIGHUP) stopped a run after a step; its files are complete.
    #[error(
        "interrupted by a signal at step {step}; the run's files are complete up to that step \
         in {run_dir}"
    )]
    Interrupted { run_dir: PathBuf, step: usize },

    /// A signal stopped a sweep between points; its files hold the points done.
    #[error(
        "interrupted by a signal after {done} of {points} points; sweep.csv, sweep.json and the \
         figures hold those points in {run_dir}"
    )]
    SweepInterrupted {
        run_dir: PathBuf,
        done: usize,
        points: usize,
    },

    /// The network's input width differs from the dataset's feature count.
    #[error(
        "the network {spec} takes inputs of dimension {input_dim}, but dataset '{dataset}' has \
         d = {d} features. Fix: use a network with input dimension {d} (--input-dim {d} with \
         --widths), or a checkpoint saved for this data"
    )]
    InputDimMismatch {
        spec: String,
        input_dim: usize,
        dataset: String,
        d: usize,
    },

    /// The network's output width differs from the dataset's number of classes.
    #[error(
        "the network {spec} has {output_dim} outputs, but dataset '{dataset}' has {classes} \
         classes. Fix: use a network with {classes} outputs (--classes {classes} with --widths), \
         or a checkpoint saved for this data"
    )]
    ClassesMismatch {
        spec: String,
        output_dim: usize,
        dataset: String,
        classes: usize,
    },

    /// No architecture was given where one is required.
    #[error("no network given. Fix: pass --preset NAME (fc-tanh, fc-relu) or --widths W1,W2,...")]
    NoArchitecture,

    /// Synthetic labels are bytes, so at most 256 classes.
    #[error(
        "synthetic data supports at most 256 classes, but the network {spec} has {classes} \
         outputs. Fix: use --classes 256 or fewer"
    )]
    TooManySyntheticClasses { spec: String, classes: usize },

    /// `sharpness --stability` asked of another operator or end of the spectrum.
    #[error(
        "--stability needs the top eigenpair of the Hessian, but this run asks for {asked}. \
         Fix: drop --stability, or run with --curvature hessian --which largest (the defaults)"
    )]
    StabilityNeedsTopHessian { asked: String },

    /// `data verify` ran and found differences from the official release.
    #[error(
        "the files in {dir} do not match the official CIFAR-10 binary release (see the report). \
         Fix: re-download with scripts/fetch-cifar10.sh, or point --data-dir / EOSBENCH_DATA at \
         an official copy"
    )]
    DataNotOfficial { dir: PathBuf },

    /// `verify` ran and some checks exceeded their tolerance.
    #[error("derivative check failed: {}", failed.join("; "))]
    ChecksFailed { failed: Vec<String> },

    /// A sweep that cannot run as asked (empty grid, a checkpoint of another width or data set).
    #[error("{0}")]
    Sweep(String),

    /// Writing the result to stdout failed (closed pipe, full disk).
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// The process exit status for this error: 130 (128 + SIGINT, as shells report it) for an
    /// interrupted run, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Interrupted { .. } | CliError::SweepInterrupted { .. } => 130,
            _ => 1,
        }
    }
}
