//! The `eosbench` command line (clap derive). `main` only parses, calls [`run`] and turns its
//! result into an exit code; everything here returns `Result`.
//!
//! Subcommands: `data verify` (CIFAR-10 checksums), `init` (initial checkpoint), `loss`
//! (full-batch loss and accuracy), `sharpness` (top Hessian eigenvalues), `verify`
//! (derivatives vs finite differences, symmetry, f32 vs f64), `train` (gradient descent with
//! the sharpness tracked), `plot` (the figure of train runs), `sweep` (the overhead harness),
//! `ops` (single operations timed, for the peers). Global options: `--threads`, `--data-dir`,
//! `--json`.
//!
//! Every command produces an [`Output`]: the human-readable text, the same result as JSON, and
//! optionally a failure (a check above tolerance, a data directory that differs from the
//! official release) that is reported after the output is printed, so the exit code is non-zero
//! but the numbers are still shown.

mod args;
mod data_cmd;
mod error;
mod init_cmd;
mod loss_cmd;
mod ops_cmd;
mod plot_cmd;
mod progress;
mod sharpness_cmd;
mod signals;
mod sweep_cmd;
mod train_cmd;
mod verify_cmd;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use args::{
    check_shapes, load_net, DataArgs, DatasetChoice, Dtype, LoadedNet, ModelArgs, ModelSource,
    NetArgs, SpecArgs, DEFAULT_CLASSES, DEFAULT_INPUT_DIM,
};
pub use data_cmd::{data_verify, report_json};
pub use error::CliError;
pub use init_cmd::{init, InitArgs};
pub use loss_cmd::{loss, LossArgs};
pub use ops_cmd::{ops, OpsArgs};
pub use plot_cmd::{plot, PlotArgs};
pub use sharpness_cmd::{sharpness, SharpnessArgs};
pub use sweep_cmd::{sweep_run, SweepArgs};
pub use train_cmd::{train, TrainArgs};
pub use verify_cmd::{random_unit_directions, verify, VerifyArgs};

use crate::data::{resolve_data_dir, DataDir};
use crate::par::{with_threads, Par};

/// Edge-of-stability benchmarks on CPUs: MLP losses, exact Hessian-vector products and their
/// checks on CIFAR-10.
#[derive(Parser, Debug)]
#[command(name = "eosbench", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads [default: all cores]
    #[arg(long, global = true, value_name = "N", help_heading = "Global options",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// CIFAR-10 binary directory [default: $EOSBENCH_DATA, else datasets/cifar-10-batches-bin]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub data_dir: Option<PathBuf>,

    /// Print results as JSON on stdout instead of text
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Dataset utilities
    #[command(subcommand)]
    Data(DataCommand),
    /// Write the initial parameters of a network to a safetensors checkpoint
    Init(InitArgs),
    /// Evaluate the full-batch loss and accuracy of a network on a dataset
    Loss(LossArgs),
    /// Check gradients and Hessian-vector products against finite differences, symmetry and f32
    Verify(VerifyArgs),
    /// Top-k eigenvalues of the loss Hessian (or Gauss–Newton matrix) by block Lanczos
    Sharpness(SharpnessArgs),
    /// Full-batch gradient descent with the sharpness tracked (Figure 1), into a run directory
    Train(TrainArgs),
    /// Redraw the figure of train run directories, several overlaid (one color per step size)
    Plot(PlotArgs),
    /// The overhead harness: what tracking the sharpness costs across widths, thread counts,
    /// data sets, trackers and cadences (windows of real gradient descent)
    Sweep(SweepArgs),
    /// Time the single operations (loss, gradient, curvature product, one estimate, a tracked
    /// step) with the values a peer implementation must match (scripts/peers/)
    Ops(OpsArgs),
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Check the CIFAR-10 files against the official release (SHA-256, counts, labels)
    Verify,
}

/// What every subcommand runs with.
#[derive(Clone, Debug)]
pub struct Context {
    /// How kernels may use the pool.
    pub par: Par,
    /// Threads of the pool the command runs in.
    pub threads: usize,
    /// Name of the elementwise kernel path.
    pub kernel_path: &'static str,
    /// The resolved CIFAR-10 directory (not checked until data is read).
    pub data_dir: DataDir,
}

impl Context {
    /// `2 (kernels: reference)`.
    pub fn describe_threads(&self) -> String {
        format!("{} (kernels: {})", self.threads, self.kernel_path)
    }
}

/// The result of a subcommand.
#[derive(Debug)]
pub struct Output {
    /// Human-readable report, newline-terminated.
    pub text: String,
    /// The same result, machine-readable (`--json`).
    pub json: serde_json::Value,
    /// Set when the command completed but its result is a failure; returned by [`run`] after
    /// the output is written.
    pub failure: Option<CliError>,
}

impl Output {
    pub fn ok(text: String, json: serde_json::Value) -> Self {
        Output {
            text,
            json,
            failure: None,
        }
    }
}

/// Aligned `key: value` lines.
pub(crate) fn key_values(rows: &[(&str, String)]) -> String {
    let w = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{:<w$}  {v}\n", format!("{k}:")))
        .collect()
}

/// Run the parsed command inside a pool of `--threads` threads and write its output (text, or
/// JSON with `--json`) to `out`. Returns the command's error, or its failure after printing.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let threads = cli.threads.map_or(0, usize::from);
    let output = with_threads(threads, |par| {
        let ctx = Context {
            par,
            threads: rayon::current_num_threads(),
            kernel_path: crate::kernels::kernel_path().name(),
            data_dir: resolve_data_dir(cli.data_dir.as_deref()),
        };
        dispatch(&cli.command, &ctx)
    })?;
    let written = if cli.json {
        serde_json::to_writer_pretty(&mut *out, &output.json)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        out.write_all(output.text.as_bytes())
    };
    written
        .and_then(|()| out.flush())
        .map_err(CliError::Output)?;
    match output.failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn dispatch(cmd: &Command, ctx: &Context) -> Result<Output, CliError> {
    match cmd {
        Command::Data(DataCommand::Verify) => data_verify(&ctx.data_dir),
        Command::Init(a) => init(a),
        Command::Loss(a) => loss(a, ctx),
        Command::Verify(a) => verify(a, ctx),
        Command::Sharpness(a) => sharpness(a, ctx),
        Command::Train(a) => train(a, ctx),
        Command::Plot(a) => plot(a),
        Command::Sweep(a) => sweep_run(a, ctx),
        Command::Ops(a) => ops(a, ctx),
    }
}
