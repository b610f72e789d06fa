//! `eosbench train`: full-batch gradient descent with the sharpness tracked along the way (the
//! runs of Figure 1), written to a fresh run directory `<results>/<experiment>/<run-id>/`:
//! `run.json` (configuration, provenance, outcome), `steps.csv`, `eigs.csv`, `figure.svg` and
//! `figure.png` (train loss and sharpness against the step, with the `2/η` line) and `final.safetensors`
//! (the parameters at the last step). The tables are streamed row by row, so an interrupted run
//! keeps every step it finished; `run.json` is written before the first step and again at the
//! end.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::args::{Dtype, LoadedNet, NetArgs};
use super::sharpness_cmd::SolverArgs;
use super::{key_values, progress, CliError, Context, Output};
use crate::eig::{StopRule, Strategy, TrackerParams};
use crate::mlp::Curvature;
use crate::model::{save_checkpoint, CheckpointMeta, Params};
use crate::real::Real;
use crate::report::{
    eig_columns, eig_row, step_row, training_figure, CsvWriter, RunCurves, RunDir, RunMeta,
    STEP_COLUMNS,
};
use crate::train::{
    gradient_descent, EigRecord, GdConfig, Observer, StepRecord, StopReason, Tracking,
};

#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub net: NetArgs,

    /// Step size η: a number or a fraction (0.01, 2/200)
    #[arg(long, value_name = "ETA", value_parser = parse_rate, help_heading = "Gradient descent")]
    pub lr: f64,

    /// Most steps (updates) before stopping
    #[arg(long, default_value_t = 100_000, help_heading = "Gradient descent")]
    pub max_steps: usize,

    /// Stop once the train accuracy exceeds this (strictly); 1 never stops on accuracy
    #[arg(long, default_value_t = 0.99, help_heading = "Gradient descent")]
    pub acc_goal: f64,

    /// Stop once the train loss falls below this
    #[arg(long, value_name = "LOSS", help_heading = "Gradient descent")]
    pub loss_goal: Option<f64>,

    /// Estimate the top eigenvalues every N steps (0: never)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        help_heading = "Sharpness tracking"
    )]
    pub eig_every: usize,

    // The solver options of each estimate.
    #[command(flatten, next_help_heading = "Sharpness tracking")]
    pub solver: SolverArgs,

    /// How each estimate is made: Rayleigh–Ritz on the last two estimates' Ritz vectors,
    /// expanded by residuals until certified (history), LOBPCG from the same vectors, or Lanczos
    /// warm-started from the last estimate
    #[arg(long, value_enum, default_value_t = TrackerArg::History, help_heading = "Sharpness tracking")]
    pub tracker: TrackerArg,

    /// When an estimate is done: its certified eigenvalue error bound ≤ tol·λ (bound; the
    /// residual rule where no gap separates the tracked values), or ‖Hy − θy‖ ≤ tol·|θ| (residual)
    #[arg(long, value_enum, default_value_t = StopArg::Bound, help_heading = "Sharpness tracking")]
    pub stop: StopArg,

    /// Ritz pairs kept beyond k: the first gives the gap estimate of the bound (history)
    #[arg(long, default_value_t = 1, help_heading = "Sharpness tracking")]
    pub guard: usize,

    /// A cold Lanczos check (random start) every N estimates, which catches a missed
    /// eigenvalue (0: never)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Sharpness tracking"
    )]
    pub check_every: usize,

    /// Start every estimate from a random block instead of the previous Ritz vectors (with
    /// --tracker lanczos)
    #[arg(long, help_heading = "Sharpness tracking")]
    pub cold_start: bool,

    /// Root of the results tree
    #[arg(
        long,
        value_name = "DIR",
        default_value = "results",
        help_heading = "Output"
    )]
    pub results: PathBuf,

    /// Experiment name: runs go to RESULTS/EXPERIMENT/RUN-ID
    #[arg(long, default_value = "train", help_heading = "Output")]
    pub experiment: String,

    /// Run id [default: UTC start time and a random suffix]
    #[arg(long, help_heading = "Output")]
    pub run_id: Option<String>,
}

/// The title of a figure of runs `(network, data set, loss, η)`: the one network, data set and
/// loss they share, with the step size when there is one run.
pub(super) fn figure_title(runs: &[(&str, &str, &str, f64)]) -> String {
    match runs {
        [(net, data, loss, lr)] => format!("{net} on {data} ({loss}), η = {lr}"),
        [(net, data, loss, _), rest @ ..]
            if rest.iter().all(|r| (r.0, r.1, r.2) == (*net, *data, *loss)) =>
        {
            format!("{net} on {data} ({loss})")
        }
        _ => format!("{} runs", runs.len()),
    }
}

/// A run's curves for the figure, labelled by its step size, with its `2/η` line; `curvature`
/// as `run.json` records it (`"Hessian"`, `"GaussNewton"`).
pub(super) fn run_curves<'a>(
    lr: f64,
    curvature: &str,
    loss: &'a [(f64, f64)],
    sharpness: &'a [(f64, f64)],
) -> RunCurves<'a> {
    RunCurves {
        label: format!("η = {lr}"),
        loss,
        sharpness,
        threshold: Some(2.0 / lr),
        curvature: if curvature == "GaussNewton" {
            "Gauss–Newton"
        } else {
            "Hessian"
        },
    }
}

/// `0.01`, `2/200`: a positive finite step size.
pub(super) fn parse_rate(s: &str) -> Result<f64, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<f64>()
            .map_err(|_| format!("'{s}' is not a number or a fraction like 2/200"))
    };
    let v = match s.split_once('/') {
        Some((a, b)) => num(a)? / num(b)?,
        None => num(s)?,
    };
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "the step size must be positive and finite ('{s}' is {v})"
        ))
    }
}

pub fn train(args: &TrainArgs, ctx: &Context) -> Result<Output, CliError> {
    match args.net.dtype {
        Dtype::F32 => run::<f32>(args, ctx),
        Dtype::F64 => run::<f64>(args, ctx),
    }
}

/// `--tracker`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerArg {
    History,
    Lobpcg,
    Lanczos,
}

impl From<TrackerArg> for Strategy {
    fn from(a: TrackerArg) -> Self {
        match a {
            TrackerArg::History => Strategy::History,
            TrackerArg::Lobpcg => Strategy::Lobpcg,
            TrackerArg::Lanczos => Strategy::Lanczos,
        }
    }
}

/// `--stop`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopArg {
    Bound,
    Residual,
}

impl From<StopArg> for StopRule {
    fn from(a: StopArg) -> Self {
        match a {
            StopArg::Bound => StopRule::Bound,
            StopArg::Residual => StopRule::Residual,
        }
    }
}

impl TrainArgs {
    /// The tracker settings of these options, on `par`, validated.
    pub fn tracker(&self, par: crate::Par) -> Result<TrackerParams, CliError> {
        let params = TrackerParams {
            strategy: self.tracker.into(),
            stop: self.stop.into(),
            warm_start: !self.cold_start,
            guard: self.guard,
            check_every: self.check_every,
            ..TrackerParams::new(self.solver.lanczos(par))
        };
        params.validate()?;
        Ok(params)
    }
}

/// Streams the records to the run's tables, keeps the curves for the figure, shows progress.
struct RunFiles {
    steps: CsvWriter,
    eigs: Option<CsvWriter>,
    k: usize,
    loss: Vec<(f64, f64)>,
    sharpness: Vec<(f64, f64)>,
    bar: indicatif::ProgressBar,
}

impl Observer for RunFiles {
    fn step(&mut self, r: &StepRecord) -> std::io::Result<()> {
        self.steps.write_row(&step_row(r))?;
        self.loss.push((r.step as f64, r.loss));
        let lambda = self.sharpness.last().map(|s| s.1);
        self.bar.set_position(r.step as u64);
        self.bar.set_message(format!(
            "loss {:.4} acc {:.4}{}",
            r.loss,
            r.accuracy,
            lambda.map_or(String::new(), |l| format!(" λ1 {l:.2}"))
        ));
        Ok(())
    }

    fn eigs(&mut self, r: &EigRecord) -> std::io::Result<()> {
        if let Some(w) = &mut self.eigs {
            w.write_row(&eig_row(r, self.k))?;
        }
        if let Some(&top) = r.values.first() {
            self.sharpness.push((r.step as f64, top));
        }
        Ok(())
    }

    fn interrupted(&self) -> bool {
        super::signals::interrupted()
    }
}

/// Six decimals in the usual range of a loss, scientific notation outside it (a diverged run).
fn short(x: f64) -> String {
    if x == 0.0 || (1e-4..1e6).contains(&x.abs()) {
        format!("{x:.6}")
    } else {
        format!("{x:.6e}")
    }
}

fn run<T: Real>(args: &TrainArgs, ctx: &Context) -> Result<Output, CliError> {
    let LoadedNet {
        params,
        source,
        ds,
        mut net,
        ..
    } = args.net.load::<T>(&ctx.data_dir)?;
    let spec = params.spec.clone();
    let p = spec.num_params();
    let curvature = Curvature::from(args.solver.curvature);
    let tracking = Tracking {
        every: args.eig_every,
        curvature,
        tracker: args.tracker(ctx.par)?,
    };
    let gd = GdConfig {
        lr: args.lr,
        max_steps: args.max_steps,
        acc_goal: Some(args.acc_goal),
        loss_goal: args.loss_goal,
    };
    let out = |e: std::io::Error| CliError::Output(e);
    let dir = RunDir::create(&args.results, &args.experiment, args.run_id.clone()).map_err(out)?;
    let meta = RunMeta::capture(ctx.threads, ctx.kernel_path);
    let config = json!({
        "dataset": ds.name, "n": ds.n, "spec": spec, "describe": spec.describe(), "p": p,
        "model": source.to_json(), "loss_fn": args.net.data.loss.name(),
        "dtype": args.net.dtype.name(), "lr": args.lr, "max_steps": args.max_steps,
        "acc_goal": args.acc_goal, "loss_goal": args.loss_goal, "eig_every": args.eig_every,
        "k": args.solver.k, "block": args.solver.block, "tol": args.solver.tol, "max_products": args.solver.max_products,
        "max_basis": args.solver.max_basis, "solver_seed": args.solver.solver_seed,
        "curvature": format!("{curvature:?}"), "warm_start": !args.cold_start,
        "tracker": tracking.tracker.strategy, "stop": tracking.tracker.stop,
        "guard": args.guard, "check_every": args.check_every,
        "first_layer_gemm": net.first_layer_gemm(),
    });
    dir.write_json(
        "run.json",
        &json!({ "config": config, "meta": meta, "outcome": null }),
    )
    .map_err(out)?;
    let steps = dir.csv("steps.csv", &STEP_COLUMNS).map_err(out)?;
    let eigs = if args.eig_every > 0 {
        let cols = eig_columns(args.solver.k);
        let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
        Some(dir.csv("eigs.csv", &cols).map_err(out)?)
    } else {
        None
    };
    let mut files = RunFiles {
        steps,
        eigs,
        k: args.solver.k,
        loss: Vec::new(),
        sharpness: Vec::new(),
        bar: progress::bar(args.max_steps as u64, "train"),
    };
    super::signals::catch("not save the run's files");
    let t0 = Instant::now();
    let tracked = (args.eig_every > 0).then_some(&tracking);
    let result = gradient_descent(&mut net, params.data, &gd, tracked, ctx.par, &mut files);
    let seconds = t0.elapsed().as_secs_f64();
    files.bar.finish_and_clear();

    // Whatever happened, the figure and the outcome go next to the tables.
    let threshold = 2.0 / args.lr;
    let title = figure_title(&[(
        &spec.describe(),
        &ds.name,
        args.net.data.loss.name(),
        args.lr,
    )]);
    let figure = dir.file("figure.svg").map_err(out)?;
    let curves = run_curves(
        args.lr,
        &format!("{curvature:?}"),
        &files.loss,
        &files.sharpness,
    );
    training_figure(&figure, &title, &[curves]).map_err(out)?;
    let outcome = match &result {
        Ok(o) => json!({
            "stop": o.stop, "steps": o.last.step, "loss": o.last.loss,
            "accuracy": o.last.accuracy, "estimates": o.estimates, "products": o.products,
            "checks": o.checks, "check_disagreements": o.check_disagreements,
            "last_sharpness": files.sharpness.last().map(|s| s.1), "seconds": seconds,
        }),
        Err(e) => json!({ "error": e.to_string(), "seconds": seconds }),
    };
    dir.write_json(
        "run.json",
        &json!({ "config": config, "meta": meta, "outcome": outcome }),
    )
    .map_err(out)?;
    let o = result.map_err(|source| CliError::Train {
        run_dir: dir.path().to_path_buf(),
        source,
    })?;
    let mut ck = CheckpointMeta::new(spec.clone());
    ck.step = Some(o.last.step as u64);
    if let super::args::ModelSource::Init { seed, .. } = &source {
        ck.seed = Some(*seed);
    }
    ck.extra.insert("lr".into(), args.lr.to_string());
    ck.extra.insert("dataset".into(), ds.name.clone());
    let final_path = dir.file("final.safetensors").map_err(out)?;
    let layout = spec.layout();
    let final_params = Params {
        spec: spec.clone(),
        layout,
        data: o.params,
    };
    save_checkpoint(&final_path, &final_params, &ck)?;

    let stop = match o.stop {
        StopReason::AccuracyGoal => format!("train accuracy > {}", args.acc_goal),
        StopReason::LossGoal => format!("train loss < {}", args.loss_goal.unwrap_or(f64::NAN)),
        StopReason::MaxSteps => format!("step cap {}", args.max_steps),
        StopReason::Diverged => "diverged (a non-finite loss, gradient or product)".to_string(),
        StopReason::Interrupted => "interrupted by a signal".to_string(),
    };
    let last_sharp = files.sharpness.last().copied();
    let text = key_values(&[
        ("run", dir.path().display().to_string()),
        ("dataset", format!("{} (n = {})", ds.name, ds.n)),
        ("model", format!("{}, p = {p} ({source})", spec.describe())),
        (
            "gd",
            format!(
                "η = {} (2/η = {threshold}), {}",
                args.lr, args.net.data.loss
            ),
        ),
        ("stopped", format!("step {}: {stop}", o.last.step)),
        (
            "final",
            format!(
                "loss {}, accuracy {:.4}",
                short(o.last.loss),
                o.last.accuracy
            ),
        ),
        (
            "sharpness",
            match last_sharp {
                Some((s, v)) => format!(
                    "{v:.4} at step {s} ({} estimate{}, {} products; {} cold check{}, {} disagreed)",
                    o.estimates,
                    if o.estimates == 1 { "" } else { "s" },
                    o.products,
                    o.checks,
                    if o.checks == 1 { "" } else { "s" },
                    o.check_disagreements
                ),
                None => "not tracked".to_string(),
            },
        ),
        (
            "seconds",
            format!(
                "{seconds:.1} ({:.1} ms/step)",
                1e3 * seconds / (o.last.step + 1) as f64
            ),
        ),
        ("threads", ctx.describe_threads()),
        (
            "files",
            format!(
                "run.json steps.csv {}figure.svg figure.png final.safetensors",
                if args.eig_every > 0 { "eigs.csv " } else { "" }
            ),
        ),
    ]);
    let json = json!({
        "run_dir": dir.path(), "config": config, "outcome": outcome,
        "threads": ctx.threads, "kernel_path": ctx.kernel_path,
    });
    let mut output = Output::ok(text, json);
    if o.stop == StopReason::Interrupted {
        output.failure = Some(CliError::Interrupted {
            run_dir: dir.path().to_path_buf(),
            step: o.last.step,
        });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_parse_as_numbers_or_fractions() {
        assert_eq!(parse_rate("0.01"), Ok(0.01));
        assert_eq!(parse_rate("2/200"), Ok(0.01));
        assert_eq!(parse_rate(" 2 / 50 "), Ok(0.04));
        for bad in ["0", "-0.1", "2/0", "x", "1/y", "inf", "nan"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
