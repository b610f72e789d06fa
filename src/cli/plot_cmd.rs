//! `eosbench plot`: redraws the figure of `eosbench train` run directories from their tables —
//! one run (after an interrupted run, whose figure was never drawn), or several overlaid, one
//! color per step size, as in Figure 1 of the Edge-of-Stability paper.

use std::io;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::train_cmd::{figure_title, run_curves};
use super::{key_values, CliError, Output};
use crate::report::training_figure;

#[derive(Args, Clone, Debug)]
pub struct PlotArgs {
    /// Run directories written by `eosbench train` (one color each)
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,

    /// The SVG to write [default: RUN_DIR/figure.svg for one run; needed for several]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// What the figure needs of one run directory.
struct Run {
    describe: String,
    dataset: String,
    loss_fn: String,
    lr: f64,
    curvature: String,
    loss: Vec<(f64, f64)>,
    sharpness: Vec<(f64, f64)>,
}

fn invalid(path: &Path, what: String) -> CliError {
    CliError::Output(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    ))
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::Output(io::Error::new(
            e.kind(),
            format!(
                "cannot read '{}': {e} (is the directory one that `eosbench train` wrote?)",
                path.display()
            ),
        ))
    })
}

/// Columns `x` and `y` of a CSV table written by `eosbench train`; an empty cell is NaN.
fn columns(path: &Path, x: &str, y: &str) -> Result<Vec<(f64, f64)>, CliError> {
    let text = read(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| invalid(path, format!("no column '{name}' in the header")))
    };
    let (ix, iy) = (col(x)?, col(y)?);
    let cell = |row: &[&str], i: usize, line: usize| -> Result<f64, CliError> {
        match row.get(i).copied() {
            Some("") => Ok(f64::NAN),
            Some(v) => v
                .parse()
                .map_err(|_| invalid(path, format!("line {line}: '{v}' is not a number"))),
            None => Err(invalid(path, format!("line {line} is short"))),
        }
    };
    lines
        .enumerate()
        .map(|(i, l)| {
            let row: Vec<&str> = l.split(',').collect();
            Ok((cell(&row, ix, i + 2)?, cell(&row, iy, i + 2)?))
        })
        .collect()
}

fn load(dir: &Path) -> Result<Run, CliError> {
    let run_json = dir.join("run.json");
    let v: Value = serde_json::from_str(&read(&run_json)?)
        .map_err(|e| invalid(&run_json, format!("not JSON ({e})")))?;
    let c = &v["config"];
    let text = |k: &str| {
        c[k].as_str()
            .map(String::from)
            .ok_or_else(|| invalid(&run_json, format!("no string config.{k}")))
    };
    let lr = c["lr"]
        .as_f64()
        .ok_or_else(|| invalid(&run_json, "no number config.lr".into()))?;
    let eigs = dir.join("eigs.csv");
    Ok(Run {
        describe: text("describe")?,
        dataset: text("dataset")?,
        loss_fn: text("loss_fn")?,
        lr,
        // (A run.json without it: the default, the Hessian.)
        curvature: c["curvature"].as_str().unwrap_or("Hessian").to_string(),
        loss: columns(&dir.join("steps.csv"), "step", "train_loss")?,
        sharpness: if eigs.exists() {
            columns(&eigs, "step", "lambda_1")?
        } else {
            Vec::new()
        },
    })
}

pub fn plot(args: &PlotArgs) -> Result<Output, CliError> {
    let out = match (&args.out, &args.runs[..]) {
        (Some(out), _) => out.clone(),
        (None, [one]) => one.join("figure.svg"),
        (None, _) => {
            return Err(CliError::Output(io::Error::new(
                io::ErrorKind::InvalidInput,
                "several runs make one figure: name it with --out FILE",
            )))
        }
    };
    let runs = args
        .runs
        .iter()
        .map(|d| load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let keys: Vec<_> = runs
        .iter()
        .map(|r| (&*r.describe, &*r.dataset, &*r.loss_fn, r.lr))
        .collect();
    let curves: Vec<_> = runs
        .iter()
        .map(|r| run_curves(r.lr, &r.curvature, &r.loss, &r.sharpness))
        .collect();
    let title = figure_title(&keys);
    training_figure(&out, &title, &curves).map_err(CliError::Output)?;
    let text = key_values(&[
        ("figure", out.display().to_string()),
        ("title", title.clone()),
        (
            "runs",
            runs.iter()
                .zip(&args.runs)
                .map(|(r, d)| format!("{} (η = {}, {} steps)", d.display(), r.lr, r.loss.len()))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ]);
    let json = json!({
        "figure": out, "title": title,
        "runs": runs.iter().zip(&args.runs).map(|(r, d)| json!({
            "dir": d, "lr": r.lr, "steps": r.loss.len(), "estimates": r.sharpness.len(),
        })).collect::<Vec<_>>(),
    });
    Ok(Output::ok(text, json))
}
