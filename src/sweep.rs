//! The overhead harness: what tracking the sharpness costs across network widths, thread
//! counts, data-set sizes, trackers and cadences, each grid point a window of real full-batch
//! gradient descent ([`measure_window`]).
//!
//! A point's network is the Figure-1 MLP `d-h-h-c` (tanh, MSE) at hidden width `h`, from the
//! PyTorch-default initialization (seed 0: the rising phase) or from a checkpoint of that width
//! (e.g. the end of a `train` run: the edge of stability). Results are one row per point
//! ([`COLUMNS`], [`row`]); the time model ([`estimate_seconds`]) sizes a grid before it runs.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::eig::LanczosParams;
use crate::mlp::{Data, Net, NetConfig};
use crate::model::{init_params, Activation, Loss, MlpSpec, SpecError};
use crate::par::with_threads;
use crate::report::CsvField;
use crate::train::{measure_window, TrackerChoice, TrainError, Window, WindowStats};

/// The grid: every combination of its lists is a point.
#[derive(Clone, Debug, Serialize)]
pub struct Grid {
    pub widths: Vec<usize>,
    pub threads: Vec<usize>,
    pub datasets: Vec<String>,
    pub trackers: Vec<TrackerChoice>,
    pub eig_every: Vec<usize>,
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
        Ok(())
    }

    /// The points in run order: data set, then width, threads, tracker and cadence (the
    /// untracked step once per network and thread count: cadence means nothing without a
    /// tracker).
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for dataset in &self.datasets {
            for &width in &self.widths {
                for &threads in &self.threads {
                    for &tracker in &self.trackers {
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

/// Multiply-adds ×2 of one gradient (forward and backward GEMMs, the first layer's `dX` not
/// formed) on `n` examples of the `d-h-h-c` network: `4 n (d h + h h + h c)`. A curvature
/// product costs about the same (R-forward and R-backward at the cached point).
pub fn gradient_flops(n: usize, d: usize, h: usize, c: usize) -> f64 {
    4.0 * n as f64 * (d * h + h * h + h * c) as f64
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

/// A point as `sweep.json` keeps it (the fields a comparison reads).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRow {
    pub point: Point,
    pub n: usize,
    pub stats: WindowStats,
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
}

/// The points of `new` also in `old` (same point and data-set size), with their median step
/// times; a ratio of at least `1 + threshold` is a regression. Points in one sweep only are
/// left out.
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
            })
        })
        .collect()
}

/// The harness's figures from its rows, written into `dir` as SVG; returns their file names.
/// The reference data set is the one nearest 5000 examples; the figures are:
/// - `overhead-vs-width.svg`: the tracked step over the untracked one (median per step), one
///   line per thread count, tracker and cadence;
/// - `speedup-vs-threads.svg`: the step time at the fewest threads over the step time, one line
///   per width and tracker, with the ideal line;
/// - `step-vs-n.svg`: the untracked step time against the data-set size at the most threads, one
///   line per width, with the proportional line through the smallest size of each;
/// - `products.svg`: curvature products per estimate against the width, one line per tracker
///   and cadence, at the most threads.
pub fn figures(dir: &std::path::Path, rows: &[SavedRow]) -> std::io::Result<Vec<String>> {
    use crate::report::{line_figure, Series};
    use std::collections::BTreeMap;
    let Some(ref_n) = rows.iter().map(|r| r.n).min_by_key(|&n| n.abs_diff(5000)) else {
        return Ok(Vec::new());
    };
    let max_t = rows.iter().map(|r| r.point.threads).max().unwrap_or(1);
    let min_t = rows.iter().map(|r| r.point.threads).min().unwrap_or(1);
    let reference = || rows.iter().filter(move |r| r.n == ref_n);
    let sorted = |mut v: Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let series_of = |groups: BTreeMap<String, Vec<(f64, f64)>>| -> Vec<Series> {
        groups
            .into_iter()
            .map(|(label, points)| Series {
                label,
                points: sorted(points),
                dashed: false,
            })
            .collect()
    };
    let data = rows
        .iter()
        .find(|r| r.n == ref_n)
        .map_or(String::new(), |r| r.point.dataset.clone());
    let mut written = Vec::new();
    // Each figure: written into `dir`, its name kept.
    let draw = |written: &mut Vec<String>,
                name: &str,
                title: &str,
                x_desc: &str,
                y_desc: &str,
                series: &[Series]|
     -> std::io::Result<()> {
        line_figure(&dir.join(name), title, x_desc, y_desc, series)?;
        written.push(name.to_string());
        Ok(())
    };

    let mut g: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in reference().filter(|r| r.point.tracker != TrackerChoice::None) {
        if let Some(o) = r.stats.overhead {
            let key = format!(
                "{} t={} every {}",
                r.point.tracker.name(),
                r.point.threads,
                r.point.eig_every
            );
            g.entry(key)
                .or_default()
                .push((r.point.width as f64, o.median));
        }
    }
    if !g.is_empty() {
        draw(
            &mut written,
            "overhead-vs-width.svg",
            &format!("tracked / untracked step, {data}"),
            "hidden width h",
            "tracked step / untracked step (median)",
            &series_of(g),
        )?;
    }

    let mut g: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in reference() {
        let base = reference().find(|b| {
            b.point.threads == min_t
                && Point {
                    threads: min_t,
                    ..r.point.clone()
                } == b.point
        });
        if let Some(b) = base {
            let key = format!(
                "h={} {} every {}",
                r.point.width,
                r.point.tracker.name(),
                r.point.eig_every
            );
            let speedup = b.stats.step_ms.median / r.stats.step_ms.median;
            g.entry(key)
                .or_default()
                .push((r.point.threads as f64, speedup));
        }
    }
    if max_t > min_t && !g.is_empty() {
        let mut series = series_of(g);
        let ideal = (min_t..=max_t)
            .filter(|t| rows.iter().any(|r| r.point.threads == *t))
            .map(|t| (t as f64, t as f64 / min_t as f64))
            .collect();
        series.push(Series {
            label: "ideal".into(),
            points: ideal,
            dashed: true,
        });
        draw(
            &mut written,
            "speedup-vs-threads.svg",
            &format!("speed-up over {min_t} thread(s), {data}"),
            "threads",
            "speed-up of the step (median)",
            &series,
        )?;
    }

    let mut g: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.point.tracker == TrackerChoice::None && r.point.threads == max_t)
    {
        let key = format!("h={}", r.point.width);
        g.entry(key)
            .or_default()
            .push((r.n as f64, r.stats.untracked_ms.median));
    }
    let distinct_n = rows
        .iter()
        .map(|r| r.n)
        .collect::<std::collections::BTreeSet<_>>();
    if distinct_n.len() > 1 && !g.is_empty() {
        let mut series = series_of(g);
        let proportional: Vec<Series> = series
            .iter()
            .filter_map(|s| {
                let &(n0, t0) = s.points.first()?;
                let n1 = s.points.last()?.0;
                Some(Series {
                    label: format!("{} ∝ n", s.label),
                    points: vec![(n0, t0), (n1, t0 * n1 / n0)],
                    dashed: true,
                })
            })
            .collect();
        series.extend(proportional);
        draw(
            &mut written,
            "step-vs-n.svg",
            &format!("untracked step against the data-set size, {max_t} thread(s)"),
            "examples n",
            "untracked step (ms, median)",
            &series,
        )?;
    }

    let mut g: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in reference().filter(|r| r.point.threads == max_t) {
        if let Some(p) = r.stats.products {
            let key = format!("{} every {}", r.point.tracker.name(), r.point.eig_every);
            g.entry(key)
                .or_default()
                .push((r.point.width as f64, p.median));
        }
    }
    if !g.is_empty() {
        draw(
            &mut written,
            "products.svg",
            &format!("curvature products per estimate, {data}, {max_t} thread(s)"),
            "hidden width h",
            "products per estimate (median)",
            &series_of(g),
        )?;
    }
    Ok(written)
}

/// `sweep.csv`'s header.
pub const COLUMNS: [&str; 22] = [
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
    "overhead",
    "cost_ratio",
    "grad_gflops",
    "last_sharpness",
    "peak_rss_mb",
];

/// A `sweep.csv` row: the point, its data-set size and parameter count, what it measured, the
/// gradient's GFLOP/s (from the untracked median) and the process's peak resident memory.
pub fn row<'a>(
    p: &'a Point,
    n: usize,
    d: usize,
    c: usize,
    s: &WindowStats,
    peak_rss_mb: Option<f64>,
) -> Vec<CsvField<'a>> {
    let params = d * p.width + p.width + p.width * p.width + p.width + p.width * c + c;
    let gflops = gradient_flops(n, d, p.width, c) / (s.untracked_ms.median * 1e-3) / 1e9;
    vec![
        CsvField::from(p.dataset.as_str()),
        n.into(),
        p.width.into(),
        params.into(),
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
        s.overhead.map(|e| e.median).into(),
        s.cost_ratio.into(),
        gflops.into(),
        s.last_sharpness.into(),
        peak_rss_mb.into(),
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
        let row = |ms: f64, width: usize| {
            let mut s = stats.clone();
            s.step_ms.median = ms;
            SavedRow {
                point: Point { width, ..p.clone() },
                n: 40,
                stats: s,
            }
        };
        let old = vec![row(10.0, 4), row(10.0, 8)];
        let new = vec![row(10.4, 4), row(11.0, 8), row(5.0, 16)];
        let c = compare(&old, &new, 0.05);
        assert_eq!(c.len(), 2, "the width-16 point is new");
        assert!(!c[0].regressed && c[1].regressed);
        assert!((c[1].ratio - 1.1).abs() < 1e-12);
        // Through sweep.json's layout.
        // Through sweep.json's layout (serde_json's float text may move the last bit).
        let json = serde_json::json!({ "meta": {}, "rows": old }).to_string();
        let back = saved_rows(&json).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in back.iter().zip(&old) {
            assert_eq!(
                (&a.point, a.n, a.stats.steps),
                (&b.point, b.n, b.stats.steps)
            );
            assert!((a.stats.step_ms.median - b.stats.step_ms.median).abs() <= 1e-12);
        }
    }

    /// Two data-set sizes, two widths, two thread counts, two trackers: all four figures.
    #[test]
    fn figures_are_drawn_from_rows() {
        let ds = crate::data::synthetic(30, 6, 3, 1);
        let p = Point {
            width: 4,
            threads: 1,
            dataset: "synthetic-30".into(),
            tracker: TrackerChoice::History,
            eig_every: 1,
        };
        let stats = run_point(&ds, &p, None, 0, 2, 0.1, LanczosParams::default()).unwrap();
        let mut rows = Vec::new();
        for (n, dataset) in [(1000, "a"), (5000, "b")] {
            for width in [100, 200] {
                for threads in [1, 2] {
                    for tracker in [TrackerChoice::None, TrackerChoice::History] {
                        let mut s = stats.clone();
                        s.step_ms.median = (n * width / threads) as f64 * 1e-3;
                        s.untracked_ms.median = s.step_ms.median / 2.0;
                        rows.push(SavedRow {
                            point: Point {
                                width,
                                threads,
                                dataset: dataset.into(),
                                tracker,
                                eig_every: 1,
                            },
                            n,
                            stats: s,
                        });
                    }
                }
            }
        }
        let scratch = crate::data::ScratchDir::new("sweep-figures").unwrap();
        let names = figures(&scratch.path, &rows).unwrap();
        assert_eq!(
            names,
            [
                "overhead-vs-width.svg",
                "speedup-vs-threads.svg",
                "step-vs-n.svg",
                "products.svg"
            ]
        );
        for name in names {
            let svg = std::fs::read_to_string(scratch.path.join(name)).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("h=") || svg.contains("history"));
        }
        assert!(figures(&scratch.path, &[]).unwrap().is_empty());
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
        let r = row(&p, 60, 12, 3, &s, peak_rss_mb());
        assert_eq!(r.len(), COLUMNS.len());
        let spec = network(12, 8, 3).unwrap();
        assert_eq!(r[3], CsvField::UInt(spec.num_params() as u64));
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
