//! The overhead harness: what tracking the sharpness costs across network widths, thread
//! counts, data-set sizes, trackers and cadences, each grid point a window of real full-batch
//! gradient descent ([`measure_window`]).
//!
//! A point's network is the Figure-1 MLP `d-h-h-c` (tanh, MSE) at hidden width `h`, from the
//! PyTorch-default initialization (seed 0: the rising phase) or from a checkpoint of that width
//! (e.g. the end of a `train` run: the edge of stability). Results are one row per point
//! ([`COLUMNS`], [`row`]); the time model ([`estimate_seconds`]) sizes a grid before it runs.
//! [`run_grid`] runs a grid's points (streaming each row to its caller, stopping early on
//! request), [`figures`] draws them, [`compare`] sets two sweeps side by side.

mod figures;
pub mod ops;
pub mod run;

pub use figures::figures;
pub use run::{
    calibrate, change_table, plan, run_grid, start_from_checkpoint, table, Finished, Settings,
    SweepError,
};

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::eig::LanczosParams;
use crate::mlp::{flops, Data, Net, NetConfig};
use crate::model::{init_params, Activation, Loss, MlpSpec, SpecError};
use crate::par::with_threads;
use crate::report::CsvField;
use crate::train::{measure_window, TrackerChoice, TrainError, Window, WindowStats};

/// The grid: every combination of its lists is a point, except that the trackers run on the
/// `tracked` data sets only (the others measure the untracked step alone: enough for the step
/// time against the data-set size, at a fraction of the cost).
#[derive(Clone, Debug, Serialize)]
pub struct Grid {
    pub widths: Vec<usize>,
    pub threads: Vec<usize>,
    pub datasets: Vec<String>,
    pub trackers: Vec<TrackerChoice>,
    pub eig_every: Vec<usize>,
    /// The data sets whose points run every tracker (a subset of `datasets`).
    pub tracked: Vec<String>,
}

/// One grid point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub width: usize,
    pub threads: usize,
    pub dataset: String,
    pub tracker: TrackerChoice,
    pub eig_every: usize,
}

/// A grid that cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GridError {
    #[error("the grid is empty: --{0} lists nothing")]
    Empty(&'static str),
    #[error("--{0} holds 0: widths, thread counts and cadences must be ≥ 1")]
    Zero(&'static str),
    #[error("--eig-every matters only with a tracker: the grid tracks nothing but asks for cadences {0:?} (add --trackers history, or drop --eig-every)")]
    CadenceWithoutTracker(Vec<usize>),
    #[error("--track-on names {0}, which --datasets does not list ({1}): track on one of those, or add it to --datasets")]
    TrackedNotInGrid(String, String),
}

impl Grid {
    /// Checks that every list is non-empty and holds no zero.
    pub fn validate(&self) -> Result<(), GridError> {
        let lists: [(&'static str, &[usize]); 3] = [
            ("widths", &self.widths),
            ("threads", &self.threads),
            ("eig-every", &self.eig_every),
        ];
        for (name, v) in lists {
            if v.is_empty() {
                return Err(GridError::Empty(name));
            }
            if v.contains(&0) {
                return Err(GridError::Zero(name));
            }
        }
        if self.datasets.is_empty() {
            return Err(GridError::Empty("datasets"));
        }
        if self.trackers.is_empty() {
            return Err(GridError::Empty("trackers"));
        }
        if self.trackers == [TrackerChoice::None] && self.eig_every != [1] {
            return Err(GridError::CadenceWithoutTracker(self.eig_every.clone()));
        }
        if let Some(t) = self.tracked.iter().find(|t| !self.datasets.contains(t)) {
            return Err(GridError::TrackedNotInGrid(
                t.clone(),
                self.datasets.join(","),
            ));
        }
        Ok(())
    }

    /// The points in run order: data set, then width, threads, tracker and cadence (the
    /// untracked step once per network and thread count: cadence means nothing without a
    /// tracker). Data sets outside `tracked` get the untracked points only.
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for dataset in &self.datasets {
            let trackers: &[TrackerChoice] = if self.tracked.contains(dataset) {
                &self.trackers
            } else {
                &[TrackerChoice::None]
            };
            for &width in &self.widths {
                for &threads in &self.threads {
                    for &tracker in trackers {
                        let cadences: &[usize] = if tracker == TrackerChoice::None {
                            &[1]
                        } else {
                            &self.eig_every
                        };
                        for &eig_every in cadences {
                            out.push(Point {
                                width,
                                threads,
                                dataset: dataset.clone(),
                                tracker,
                                eig_every,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// The Figure-1 network at hidden width `h` for `d` inputs and `c` classes.
pub fn network(d: usize, h: usize, c: usize) -> Result<MlpSpec, SpecError> {
    MlpSpec::new(d, &[h, h], c, Activation::Tanh)
}

/// FLOPs of the GEMMs of one gradient on `n` examples of the `d-h-h-c` network
/// ([`flops::gradient`]; 0 for a width of 0).
pub fn gradient_flops(n: usize, d: usize, h: usize, c: usize) -> f64 {
    network(d, h, c).map_or(0.0, |s| flops::gradient(&s, n))
}

/// Curvature products per estimate to expect, for the time model (measured on fc-tanh /
/// cifar10-5k while the sharpness rises).
fn products_guess(t: TrackerChoice) -> f64 {
    match t {
        TrackerChoice::None => 0.0,
        TrackerChoice::Cold => 12.0,
        TrackerChoice::Lanczos | TrackerChoice::History | TrackerChoice::Lobpcg => 2.5,
    }
}

/// Seconds a point of `steps` (warm-up included) on `n` examples should take at `gflops` GFLOP/s
/// per thread (scaled by 0.9 per doubling of threads), with a curvature product at 1.2 gradients.
pub fn estimate_seconds(p: &Point, n: usize, d: usize, c: usize, steps: usize, gflops: f64) -> f64 {
    let rate = gflops * 1e9 * p.threads as f64 * 0.9f64.powf((p.threads as f64).log2());
    let grad = gradient_flops(n, d, p.width, c) / rate;
    let per_step = grad * (1.0 + 1.2 * products_guess(p.tracker) / p.eig_every as f64);
    steps as f64 * per_step
}

/// Measures `p` on `ds` from `start` (the parameters of the point's network; `None`: the
/// initialization, seed 0), in a pool of `p.threads` threads.
pub fn run_point(
    ds: &Dataset,
    p: &Point,
    start: Option<&[f32]>,
    warmup: usize,
    steps: usize,
    lr: f64,
    lanczos: LanczosParams,
) -> Result<WindowStats, TrainError> {
    let spec = network(ds.d, p.width, ds.classes).map_err(|e| TrainError::Config(e.to_string()))?;
    let params = match start {
        Some(s) if s.len() == spec.num_params() => s.to_vec(),
        Some(s) => {
            return Err(TrainError::Config(format!(
                "the start holds {} parameters, the network {} has {}",
                s.len(),
                spec.describe(),
                spec.num_params()
            )))
        }
        None => init_params::<f32>(&spec, 0).data,
    };
    with_threads(p.threads, |par| {
        let data = Data::new(ds.features::<f32>(), ds.labels.clone(), ds.d, ds.classes);
        let mut net = Net::new(&spec, Loss::Mse, data, NetConfig::default());
        let w = Window {
            warmup,
            steps,
            lr,
            tracker: p.tracker,
            eig_every: p.eig_every,
            lanczos: LanczosParams { par, ..lanczos },
        };
        measure_window(&mut net, params, &w, par)
    })
}

/// A point as `sweep.json` keeps it: what it measured, the rates of its gradient (from the
/// untracked median) and of one curvature product (from its median time) under the FLOP model
/// of [`flops`], the roof (GFLOP/s of the gradient's GEMMs alone at its shape and threads) and
/// the process's peak resident memory after it. Fields after `stats` are absent from files
/// written before they were recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRow {
    pub point: Point,
    pub n: usize,
    pub stats: WindowStats,
    #[serde(default)]
    pub params: usize,
    #[serde(default)]
    pub grad_gflops: Option<f64>,
    #[serde(default)]
    pub hvp_gflops: Option<f64>,
    #[serde(default)]
    pub roof_gflops: Option<f64>,
    #[serde(default)]
    pub peak_rss_mb: Option<f64>,
}

impl SavedRow {
    /// The row of `point` measured on `n` examples of `d` inputs and `c` classes.
    pub fn new(
        point: Point,
        (n, d, c): (usize, usize, usize),
        stats: WindowStats,
        roof_gflops: Option<f64>,
        peak_rss_mb: Option<f64>,
    ) -> Self {
        let spec = network(d, point.width, c).ok();
        let rate = |flops: f64, ms: f64| flops / (ms * 1e-3) / 1e9;
        SavedRow {
            params: spec.as_ref().map_or(0, |s| s.num_params()),
            grad_gflops: spec
                .as_ref()
                .map(|s| rate(flops::gradient(s, n), stats.untracked_ms.median)),
            hvp_gflops: spec
                .as_ref()
                .zip(stats.product_ms)
                .map(|(s, t)| rate(flops::hvp(s, n), t.median)),
            point,
            n,
            stats,
            roof_gflops,
            peak_rss_mb,
        }
    }

    /// A rate as a fraction of the roof.
    pub fn of_roof(&self, gflops: Option<f64>) -> Option<f64> {
        Some(gflops? / self.roof_gflops?)
    }
}

/// `sweep.json`'s rows, from its text.
pub fn saved_rows(json: &str) -> Result<Vec<SavedRow>, serde_json::Error> {
    #[derive(Deserialize)]
    struct File {
        rows: Vec<SavedRow>,
    }
    serde_json::from_str::<File>(json).map(|f| f.rows)
}

/// A point measured in two sweeps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub point: Point,
    pub n: usize,
    /// Median step time (ms, estimates included) before and after.
    pub old_ms: f64,
    pub new_ms: f64,
    /// `new_ms / old_ms`.
    pub ratio: f64,
    /// Slower by at least the threshold.
    pub regressed: bool,
    /// Slower beyond the spread of the two windows: the new p10 step above the old p90.
    pub beyond_spread: bool,
}

impl Change {
    /// A regression that the step times' spread does not explain (what `--fail-on-regression`
    /// fails on: on a shared machine, two runs of the same code differ by up to ~13 % in median
    /// over a 10-step window, but their p10–p90 ranges overlap).
    pub fn significant(&self) -> bool {
        self.regressed && self.beyond_spread
    }
}

/// The points of `new` also in `old` (same point and data-set size), with their median step
/// times; a ratio of at least `1 + threshold` is a regression, significant when the new p10 is
/// above the old p90 as well. Points in one sweep only are left out.
pub fn compare(old: &[SavedRow], new: &[SavedRow], threshold: f64) -> Vec<Change> {
    new.iter()
        .filter_map(|b| {
            let a = old.iter().find(|a| a.point == b.point && a.n == b.n)?;
            let (old_ms, new_ms) = (a.stats.step_ms.median, b.stats.step_ms.median);
            let ratio = new_ms / old_ms;
            Some(Change {
                point: b.point.clone(),
                n: b.n,
                old_ms,
                new_ms,
                ratio,
                regressed: ratio >= 1.0 + threshold,
                beyond_spread: b.stats.step_ms.p10 > a.stats.step_ms.p90,
            })
        })
        .collect()
}

/// `sweep.csv`'s header.
pub const COLUMNS: [&str; 27] = [
    "dataset",
    "n",
    "width",
    "p",
    "threads",
    "tracker",
    "eig_every",
    "steps",
    "step_ms",
    "step_ms_p10",
    "step_ms_p90",
    "untracked_ms",
    "untracked_ms_p10",
    "untracked_ms_p90",
    "eig_ms",
    "products",
    "products_p90",
    "product_ms",
    "overhead",
    "cost_ratio",
    "grad_gflops",
    "hvp_gflops",
    "roof_gflops",
    "grad_roof",
    "hvp_roof",
    "last_sharpness",
    "peak_rss_mb",
];

/// A `sweep.csv` row: the point, its parameter count, what it measured, the rates of its
/// gradient and curvature product, each also as a fraction of the roof, and the peak resident
/// memory.
pub fn row(r: &SavedRow) -> Vec<CsvField<'_>> {
    let (p, s) = (&r.point, &r.stats);
    vec![
        CsvField::from(p.dataset.as_str()),
        r.n.into(),
        p.width.into(),
        r.params.into(),
        p.threads.into(),
        p.tracker.name().into(),
        p.eig_every.into(),
        s.steps.into(),
        s.step_ms.median.into(),
        s.step_ms.p10.into(),
        s.step_ms.p90.into(),
        s.untracked_ms.median.into(),
        s.untracked_ms.p10.into(),
        s.untracked_ms.p90.into(),
        s.eig_ms.map(|e| e.median).into(),
        s.products.map(|e| e.median).into(),
        s.products.map(|e| e.p90).into(),
        s.product_ms.map(|e| e.median).into(),
        s.overhead.map(|e| e.median).into(),
        s.cost_ratio.into(),
        r.grad_gflops.into(),
        r.hvp_gflops.into(),
        r.roof_gflops.into(),
        r.of_roof(r.grad_gflops).into(),
        r.of_roof(r.hvp_gflops).into(),
        s.last_sharpness.into(),
        r.peak_rss_mb.into(),
    ]
}

/// The process's peak resident memory in MB (`VmHWM` of `/proc/self/status`; `None` off Linux).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid {
            widths: vec![8, 16],
            threads: vec![1, 2],
            datasets: vec!["synthetic-50".into()],
            trackers: vec![TrackerChoice::None, TrackerChoice::History],
            eig_every: vec![1, 10],
            tracked: vec!["synthetic-50".into()],
        }
    }

    #[test]
    fn the_untracked_step_is_one_point_per_network_and_thread_count() {
        let g = grid();
        g.validate().unwrap();
        let pts = g.points();
        // 2 widths × 2 thread counts × (none + history × 2 cadences).
        assert_eq!(pts.len(), 12);
        let untracked = pts.iter().filter(|p| p.tracker == TrackerChoice::None);
        assert!(untracked.clone().all(|p| p.eig_every == 1));
        assert_eq!(untracked.count(), 4);

        // A second data set that is not tracked adds its untracked points only.
        let mut g = grid();
        g.datasets.push("synthetic-80".into());
        g.validate().unwrap();
        let pts = g.points();
        assert_eq!(pts.len(), 12 + 4);
        assert!(pts
            .iter()
            .filter(|p| p.dataset == "synthetic-80")
            .all(|p| p.tracker == TrackerChoice::None));
    }

    #[test]
    fn comparisons_match_points_and_flag_slowdowns() {
        let ds = crate::data::synthetic(40, 6, 3, 1);
        let p = Point {
            width: 4,
            threads: 1,
            dataset: "synthetic-40".into(),
            tracker: TrackerChoice::None,
            eig_every: 1,
        };
        let stats = run_point(&ds, &p, None, 0, 2, 0.1, LanczosParams::default()).unwrap();
        // Step times spread ±1 ms around `ms`.
        let row = |ms: f64, width: usize| {
            let mut s = stats.clone();
            (s.step_ms.p10, s.step_ms.median, s.step_ms.p90) = (ms - 1.0, ms, ms + 1.0);
            SavedRow::new(Point { width, ..p.clone() }, (40, 6, 3), s, None, None)
        };
        let old = vec![row(10.0, 4), row(10.0, 8), row(10.0, 12)];
        let new = vec![row(10.4, 4), row(11.0, 8), row(12.5, 12), row(5.0, 16)];
        let c = compare(&old, &new, 0.05);
        assert_eq!(c.len(), 3, "the width-16 point is new");
        assert!(!c[0].regressed && c[1].regressed && c[2].regressed);
        assert!((c[1].ratio - 1.1).abs() < 1e-12);
        // 11 ± 1 overlaps 10 ± 1; 12.5 ± 1 does not.
        assert!(!c[1].significant() && c[2].significant());
        // Through sweep.json's layout.
        // Through sweep.json's layout (serde_json's float text may move the last bit).
        let json = serde_json::json!({ "meta": {}, "rows": old }).to_string();
        let back = saved_rows(&json).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in back.iter().zip(&old) {
            assert_eq!(
                (&a.point, a.n, a.stats.steps),
                (&b.point, b.n, b.stats.steps)
            );
            assert!((a.stats.step_ms.median - b.stats.step_ms.median).abs() <= 1e-12);
        }
    }

    #[test]
    fn bad_grids_are_named() {
        let mut g = grid();
        g.widths.clear();
        assert_eq!(g.validate(), Err(GridError::Empty("widths")));
        let mut g = grid();
        g.threads.push(0);
        assert_eq!(g.validate(), Err(GridError::Zero("threads")));
        let mut g = grid();
        g.trackers = vec![TrackerChoice::None];
        assert!(matches!(
            g.validate(),
            Err(GridError::CadenceWithoutTracker(_))
        ));
        let mut g = grid();
        g.tracked = vec!["cifar10-5k".into()];
        let e = g.validate().unwrap_err();
        assert!(e.to_string().contains("cifar10-5k") && e.to_string().contains("synthetic-50"));
    }

    #[test]
    fn the_time_model_scales_with_size_and_cadence() {
        let p = |width, tracker, eig_every| Point {
            width,
            threads: 1,
            dataset: "x".into(),
            tracker,
            eig_every,
        };
        let t = |q: &Point, n| estimate_seconds(q, n, 3072, 10, 10, 50.0);
        let base = p(200, TrackerChoice::None, 1);
        assert!((t(&base, 10_000) / t(&base, 5000) - 2.0).abs() < 1e-12);
        assert!(t(&p(400, TrackerChoice::None, 1), 5000) > 1.9 * t(&base, 5000));
        let every = t(&p(200, TrackerChoice::History, 1), 5000);
        let tenth = t(&p(200, TrackerChoice::History, 10), 5000);
        assert!(every > tenth && tenth > t(&base, 5000));
    }

    #[test]
    fn a_point_runs_and_its_row_fills_the_header() {
        let ds = crate::data::synthetic(60, 12, 3, 1);
        let p = Point {
            width: 8,
            threads: 2,
            dataset: "synthetic-60".into(),
            tracker: TrackerChoice::History,
            eig_every: 1,
        };
        let s = run_point(&ds, &p, None, 1, 3, 0.1, LanczosParams::default()).unwrap();
        assert_eq!((s.steps, s.estimates), (3, 3));
        let saved = SavedRow::new(p.clone(), (60, 12, 3), s.clone(), Some(2.0), peak_rss_mb());
        let r = row(&saved);
        assert_eq!(r.len(), COLUMNS.len());
        let spec = network(12, 8, 3).unwrap();
        let col = |name: &str| &r[COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert_eq!(*col("p"), CsvField::UInt(spec.num_params() as u64));
        // The rates follow the FLOP model and the roof divides them.
        let grad = flops::gradient(&spec, 60) / (s.untracked_ms.median * 1e-3) / 1e9;
        let hvp = flops::hvp(&spec, 60) / (s.product_ms.unwrap().median * 1e-3) / 1e9;
        let num = |f: &CsvField| match f {
            CsvField::F64(x) => *x,
            other => panic!("{other:?}"),
        };
        assert!((num(col("grad_gflops")) - grad).abs() <= 1e-9 * grad);
        assert!((num(col("hvp_roof")) - hvp / 2.0).abs() <= 1e-9 * hvp);
        assert!(num(col("peak_rss_mb")) > 0.0);
        // A start of the wrong size is an error, not a silent re-initialization.
        let bad = run_point(
            &ds,
            &p,
            Some(&[0.0; 5]),
            1,
            3,
            0.1,
            LanczosParams::default(),
        );
        assert!(matches!(bad, Err(TrainError::Config(_))));
    }
}
