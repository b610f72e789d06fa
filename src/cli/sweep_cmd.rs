//! `eosbench sweep`: the overhead harness over a grid of widths × thread counts × data sets ×
//! trackers × cadences (`crate::sweep`), into `<results>/sweep/<host>/<run-id>/`: `sweep.csv`
//! streamed row by row (a killed sweep keeps the points it finished), `sweep.json` (machine,
//! grid, window and every point's statistics) and the figures at the end. The first Ctrl-C (or
//! SIGTERM) ends the sweep after the current point and still writes `sweep.json` and the
//! figures of the points done; a second one exits at once (the CSV keeps every finished row).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::args::DatasetChoice;
use super::train_cmd::parse_rate;
use super::{key_values, progress, CliError, Context, Output};
use crate::data::{synthetic, DataDir, DataError, Dataset};
use crate::eig::LanczosParams;
use crate::report::{CsvWriter, RunDir, RunMeta};
use crate::sweep::{self, Grid, Point};
use crate::train::TrackerChoice;
use indicatif::ProgressBar;

#[derive(Args, Clone, Debug)]
pub struct SweepArgs {
    /// Hidden widths h of the network d-h-h-10 (tanh, MSE)
    #[arg(long, value_delimiter = ',', default_value = "100,200,400,800")]
    pub widths: Vec<usize>,

    /// Thread counts [default: 1 and every power of two up to the cores]
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub thread_counts: Vec<usize>,

    /// Data sets (CIFAR-10 subsets, or synthetic-N)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cifar10-1k,cifar10-5k,cifar10-10k"
    )]
    pub datasets: Vec<DatasetChoice>,

    /// Data sets whose points run the trackers: `reference` (the one nearest 5000 examples),
    /// `all`, or names from --datasets. The others measure the untracked step only (the step
    /// time against n)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "reference",
        value_name = "NAMES"
    )]
    pub track_on: Vec<String>,

    /// Trackers: none (untracked), cold (Lanczos from random starts), lanczos (warm), history,
    /// lobpcg
    #[arg(long, value_delimiter = ',', default_value = "none,lanczos,history", value_parser = parse_tracker)]
    pub trackers: Vec<TrackerChoice>,

    /// Cadences: an estimate every N steps (10 and 50 are the papers')
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub eig_every: Vec<usize>,

    /// Measured steps per point
    #[arg(long, default_value_t = 10)]
    pub steps: usize,

    /// Steps run first and left out (caches and the tracker's history warm up)
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,

    /// Step size η
    #[arg(long, value_parser = parse_rate, default_value = "2/200")]
    pub lr: f64,

    /// Start: init (PyTorch-default initialization, seed 0: the rising phase) or a checkpoint
    /// of the same width (e.g. a train run's final.safetensors: the edge of stability)
    #[arg(long, default_value = "init")]
    pub from: String,

    /// Tracked eigenvalues
    #[arg(short = 'k', long, default_value_t = 1)]
    pub k: usize,

    /// Solver tolerance (eigenvalue bound for history/lobpcg, residual for Lanczos)
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,

    /// Root of the results tree: points go to RESULTS/sweep/HOST/RUN-ID
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,

    /// Run id [default: UTC start time and a random suffix]
    #[arg(long)]
    pub run_id: Option<String>,

    /// Print the grid and its estimated time, run nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Compare with an older sweep.json: points ≥ 5 % slower are flagged
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,

    /// With --compare: compare this sweep.json instead of running the grid
    #[arg(long, value_name = "NEW.json", requires = "compare")]
    pub against: Option<PathBuf>,

    /// With --compare: exit non-zero when a point regressed beyond the spread of its step times
    /// (≥ 5 % slower in median and its p10 above the old p90)
    #[arg(long, requires = "compare")]
    pub fail_on_regression: bool,

    /// Redraw the figures of an earlier sweep.json (beside it) instead of running the grid
    #[arg(long, value_name = "SWEEP.json", conflicts_with = "compare")]
    pub plot: Option<PathBuf>,
}

/// The rows of a sweep.json, with the file named in any error.
fn read_rows(path: &std::path::Path) -> Result<Vec<sweep::SavedRow>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Sweep(format!(
            "cannot read {}: {e}. Fix: pass the sweep.json of an earlier eosbench sweep",
            path.display()
        ))
    })?;
    sweep::saved_rows(&text).map_err(|e| {
        CliError::Sweep(format!(
            "{} is not a sweep.json of eosbench sweep: {e}",
            path.display()
        ))
    })
}

/// The regression table of `new` against `old`, its JSON, and whether any point regressed
/// significantly.
fn comparison(
    old: &std::path::Path,
    new: &[sweep::SavedRow],
) -> Result<(String, serde_json::Value, bool), CliError> {
    let changes = sweep::compare(&read_rows(old)?, new, REGRESSION);
    let regressed = changes.iter().any(|c| c.significant());
    Ok((
        sweep::change_table(old, &changes),
        json!(changes),
        regressed,
    ))
}

/// A point this much slower (median step time) is a regression.
const REGRESSION: f64 = 0.05;

fn parse_tracker(s: &str) -> Result<TrackerChoice, String> {
    TrackerChoice::parse(s).ok_or_else(|| {
        format!("'{s}' is not a tracker: use none, cold, lanczos, history or lobpcg")
    })
}

/// Examples of a data set, without reading it.
fn examples(d: &DatasetChoice) -> usize {
    match d {
        DatasetChoice::Synthetic(n) => *n,
        DatasetChoice::Cifar(name) => name.examples(),
    }
}

fn load(d: &DatasetChoice, dir: &DataDir) -> Result<Dataset, DataError> {
    Ok(match d {
        DatasetChoice::Cifar(name) => name.load(dir)?,
        DatasetChoice::Synthetic(n) => {
            let mut ds = synthetic(*n, 3072, 10, 0);
            ds.name = d.to_string();
            ds
        }
    })
}

/// `--track-on` as data-set names.
fn tracked(args: &SweepArgs) -> Vec<String> {
    let names = || args.datasets.iter().map(|d| d.to_string());
    match args.track_on.as_slice() {
        [one] if one == "all" => names().collect(),
        [one] if one == "reference" => args
            .datasets
            .iter()
            .min_by_key(|d| examples(d).abs_diff(5000))
            .map(|d| vec![d.to_string()])
            .unwrap_or_default(),
        list => list.to_vec(),
    }
}

/// Streams rows to `sweep.csv` and moves the bar.
struct Stream<'a> {
    csv: CsvWriter,
    bar: &'a ProgressBar,
    est: &'a [f64],
}

impl sweep::run::Progress for Stream<'_> {
    fn starting(&mut self, _i: usize, p: &Point) {
        self.bar.set_message(format!(
            "{} h={} t={} {}",
            p.dataset,
            p.width,
            p.threads,
            p.tracker.name()
        ));
    }
    fn finished(&mut self, i: usize, row: &sweep::SavedRow, _ds: &Dataset) -> std::io::Result<()> {
        self.csv.write_row(&sweep::row(row))?;
        self.bar.inc((self.est[i] * 1e3) as u64);
        Ok(())
    }
    fn stop(&self) -> bool {
        super::signals::interrupted()
    }
}

pub fn sweep_run(args: &SweepArgs, ctx: &Context) -> Result<Output, CliError> {
    if let Some(path) = &args.plot {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let figures = sweep::figures(dir, &read_rows(path)?).map_err(CliError::Output)?;
        let text = key_values(&[
            ("dir", dir.display().to_string()),
            ("figures", figures.join(" ")),
        ]);
        return Ok(Output::ok(text, json!({ "dir": dir, "figures": figures })));
    }
    if let (Some(old), Some(new)) = (&args.compare, &args.against) {
        let (text, json, regressed) = comparison(old, &read_rows(new)?)?;
        let mut output = Output::ok(text, json!({ "changes": json }));
        if regressed && args.fail_on_regression {
            output.failure = Some(CliError::Sweep(
                "a point regressed by ≥ 5 %, beyond the spread of its step times".into(),
            ));
        }
        return Ok(output);
    }
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = if args.thread_counts.is_empty() {
        std::iter::successors(Some(1usize), |t| Some(t * 2))
            .take_while(|&t| t <= cores)
            .collect()
    } else {
        args.thread_counts.clone()
    };
    let grid = Grid {
        widths: args.widths.clone(),
        threads,
        datasets: args.datasets.iter().map(|d| d.to_string()).collect(),
        trackers: args.trackers.clone(),
        eig_every: args.eig_every.clone(),
        tracked: tracked(args),
    };
    grid.validate()
        .map_err(|e| CliError::Sweep(e.to_string()))?;
    if args.steps == 0 {
        return Err(CliError::Sweep(
            "--steps 0 measures nothing: use --steps ≥ 1".into(),
        ));
    }
    let mut warnings = Vec::new();
    if let Some(&t) = grid.threads.iter().find(|&&t| t > cores) {
        warnings.push(format!(
            "--thread-counts asks for {t} threads on {cores} cores: those points oversubscribe"
        ));
    }
    // A checkpoint start fixes the width (and, when it records one, the data set).
    let start = if args.from == "init" {
        None
    } else {
        let path = std::path::Path::new(&args.from);
        Some(
            sweep::start_from_checkpoint(path, &grid)
                .map_err(|e| CliError::Sweep(e.to_string()))?,
        )
    };

    let points = grid.points();
    let n_of = |name: &str| {
        let d = args.datasets.iter().find(|d| d.to_string() == name);
        d.map_or(0, examples)
    };
    let gflops = sweep::calibrate();
    let total_steps = args.warmup + args.steps;
    let est: Vec<f64> = points
        .iter()
        .map(|p| sweep::estimate_seconds(p, n_of(&p.dataset), 3072, 10, total_steps, gflops))
        .collect();
    let est_total: f64 = est.iter().sum();
    if args.dry_run {
        let mut text = sweep::plan(&points, &est, total_steps, gflops);
        for w in &warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        let json = json!({ "grid": grid, "points": points, "estimated_seconds": est_total });
        return Ok(Output::ok(text, json));
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }

    let out = |e: std::io::Error| CliError::Output(e);
    let meta = RunMeta::capture(ctx.threads, ctx.kernel_path);
    let host: String = meta
        .hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let root = args.results.join("sweep");
    let dir = RunDir::create(&root, &host, args.run_id.clone()).map_err(out)?;
    let window = json!({
        "warmup": args.warmup, "steps": args.steps, "lr": args.lr, "from": args.from,
        "k": args.k, "tol": args.tol,
    });
    let settings = sweep::Settings {
        warmup: args.warmup,
        steps: args.steps,
        lr: args.lr,
        lanczos: LanczosParams {
            k: args.k,
            tol: args.tol,
            ..LanczosParams::default()
        },
        start,
        roof_reps: 3,
    };
    let bar = progress::timed_bar((est_total * 1e3) as u64, "sweep");
    let mut stream = Stream {
        csv: dir.csv("sweep.csv", &sweep::COLUMNS).map_err(out)?,
        bar: &bar,
        est: &est,
    };
    super::signals::catch("end the sweep without its sweep.json");
    let load_named = |name: &str| {
        let choice = args
            .datasets
            .iter()
            .find(|d| d.to_string() == name)
            .expect("points come from the grid's data sets");
        load(choice, &ctx.data_dir)
    };
    let finished = sweep::run_grid(&points, &settings, load_named, &mut stream);
    bar.finish_and_clear();
    let finished = finished.map_err(|e| match e {
        sweep::SweepError::Train { source, .. } => CliError::Train {
            run_dir: dir.path().to_path_buf(),
            source,
        },
        sweep::SweepError::Io(e) => CliError::Output(e),
        other => CliError::Sweep(format!("{other} (rows so far: {})", dir.path().display())),
    })?;
    let rows = &finished.rows;
    dir.write_json(
        "sweep.json",
        &json!({
            "meta": meta, "grid": grid, "window": window, "rows": rows,
            "seconds": finished.seconds, "estimated_seconds": est_total,
            "interrupted": finished.interrupted,
        }),
    )
    .map_err(out)?;

    let figures = sweep::figures(dir.path(), rows).map_err(out)?;
    let mut text = sweep::table(rows);
    let took = if finished.interrupted {
        format!(
            "interrupted after {} of {} points, {:.0} s",
            rows.len(),
            points.len(),
            finished.seconds
        )
    } else {
        format!(
            "{:.0} s for {} points (estimated {est_total:.0} s)",
            finished.seconds,
            points.len()
        )
    };
    text.push_str(&key_values(&[
        ("run", dir.path().display().to_string()),
        ("figures", figures.join(" ")),
        ("took", took),
    ]));
    let mut json = json!({
        "run_dir": dir.path(), "rows": rows, "seconds": finished.seconds,
        "interrupted": finished.interrupted,
    });
    let mut regressed = false;
    if let Some(old) = &args.compare {
        let (t, changes, r) = comparison(old, rows)?;
        text.push_str(&t);
        json["changes"] = changes;
        regressed = r;
    }
    let mut output = Output::ok(text, json);
    if regressed && args.fail_on_regression {
        output.failure = Some(CliError::Sweep(
            "a point regressed by ≥ 5 %, beyond the spread of its step times".into(),
        ));
    } else if finished.interrupted {
        output.failure = Some(CliError::SweepInterrupted {
            run_dir: dir.path().to_path_buf(),
            done: rows.len(),
            points: points.len(),
        });
    }
    Ok(output)
}
