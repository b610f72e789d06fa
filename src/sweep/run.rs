//! Running a grid: its start (the initialization or a checkpoint), the time model's calibration,
//! the points one after another with each row handed to the caller as soon as it is measured
//! (so a table can be streamed and a stopped sweep keeps what it finished), and the text tables
//! of a sweep and of a comparison.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::Instant;

use super::{network, peak_rss_mb, run_point, Change, Grid, GridError, Point, SavedRow};
use crate::data::{synthetic, DataError, Dataset};
use crate::eig::LanczosParams;
use crate::mlp::roof::gradient_gemm_gflops;
use crate::model::load_checkpoint;
use crate::par::with_threads;
use crate::train::{TrackerChoice, TrainError};

/// What every point of a sweep shares.
#[derive(Clone, Debug)]
pub struct Settings {
    pub warmup: usize,
    pub steps: usize,
    pub lr: f64,
    /// `k`, tolerance and the other solver settings of the trackers.
    pub lanczos: LanczosParams,
    /// The parameters every point starts from (`None`: the initialization, seed 0).
    pub start: Option<Vec<f32>>,
    /// Timed runs of the roof GEMMs per data set, width and thread count (0: no roof).
    pub roof_reps: usize,
}

/// A sweep that could not run, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error("{0}")]
    Start(String),
    #[error("data set {name}: {source}")]
    Data { name: String, source: DataError },
    #[error("point {point}: {source}")]
    Train { point: String, source: TrainError },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What the caller sees of a running sweep.
pub trait Progress {
    /// Point `i` starts.
    fn starting(&mut self, _i: usize, _p: &Point) {}
    /// Point `i` is measured, on `ds` (e.g. write its row).
    fn finished(&mut self, i: usize, row: &SavedRow, ds: &Dataset) -> io::Result<()>;
    /// Checked between points: `true` ends the sweep with the rows done so far.
    fn stop(&self) -> bool {
        false
    }
}

/// The rows of a sweep, its wall-clock time, and whether it was stopped before its last point.
#[derive(Clone, Debug)]
pub struct Finished {
    pub rows: Vec<SavedRow>,
    pub seconds: f64,
    pub interrupted: bool,
}

/// The parameters of the checkpoint at `path` as the start of `grid`, which must ask for the
/// checkpoint's width (a single one) and, when the checkpoint records one, its data set.
pub fn start_from_checkpoint(path: &Path, grid: &Grid) -> Result<Vec<f32>, SweepError> {
    let (params, meta) = load_checkpoint::<f32>(path)
        .map_err(|e| SweepError::Start(format!("--from {}: {e}", path.display())))?;
    let spec = &params.spec;
    let h = spec.hidden.first().copied().unwrap_or(0);
    if !network(3072, h, 10).is_ok_and(|s| &s == spec) {
        return Err(SweepError::Start(format!(
            "{} holds the network {}, not a 3072-h-h-10 tanh network of the sweep",
            path.display(),
            spec.describe()
        )));
    }
    if grid.widths != [h] {
        return Err(SweepError::Start(format!(
            "{} holds a network of width {h}, but --widths asks for {:?}. Fix: --widths {h}",
            path.display(),
            grid.widths
        )));
    }
    if let Some(ds) = meta.extra.get("dataset") {
        if grid.datasets.iter().any(|d| d != ds) {
            return Err(SweepError::Start(format!(
                "{} was trained on {ds}, but --datasets asks for {}. Fix: --datasets {ds}",
                path.display(),
                grid.datasets.join(",")
            )));
        }
    }
    Ok(params.data)
}

/// GFLOP/s of one thread on a small gradient, for the time model (20 when it cannot run).
pub fn calibrate() -> f64 {
    let (n, h) = (400, 100);
    let ds = synthetic(n, 3072, 10, 0);
    let p = Point {
        width: h,
        threads: 1,
        dataset: "calibration".into(),
        tracker: TrackerChoice::None,
        eig_every: 1,
    };
    run_point(&ds, &p, None, 1, 3, 0.01, LanczosParams::default())
        .ok()
        .and_then(|s| SavedRow::new(p, (n, 3072, 10), s, None, None).grad_gflops)
        .unwrap_or(20.0)
}

/// Runs `points` in order, loading each data set (by name) when the points move to it and
/// measuring the roof once per data set, width and thread count. Every row goes to
/// `progress.finished` as soon as it is measured; when `progress.stop()` turns true the sweep
/// ends after the current point.
pub fn run_grid(
    points: &[Point],
    settings: &Settings,
    mut load: impl FnMut(&str) -> Result<Dataset, DataError>,
    progress: &mut dyn Progress,
) -> Result<Finished, SweepError> {
    let t0 = Instant::now();
    let mut rows = Vec::with_capacity(points.len());
    let mut loaded: Option<Dataset> = None;
    let mut roofs: HashMap<(usize, usize, usize), f64> = HashMap::new();
    for (i, p) in points.iter().enumerate() {
        if progress.stop() {
            return Ok(Finished {
                rows,
                seconds: t0.elapsed().as_secs_f64(),
                interrupted: true,
            });
        }
        progress.starting(i, p);
        if loaded.as_ref().is_none_or(|d| d.name != p.dataset) {
            let mut ds = load(&p.dataset).map_err(|source| SweepError::Data {
                name: p.dataset.clone(),
                source,
            })?;
            ds.name = p.dataset.clone();
            loaded = Some(ds);
        }
        let ds = loaded.as_ref().expect("loaded above");
        let describe = || {
            format!(
                "{} h={} threads={} {} every {}",
                p.dataset,
                p.width,
                p.threads,
                p.tracker.name(),
                p.eig_every
            )
        };
        let stats = run_point(
            ds,
            p,
            settings.start.as_deref(),
            settings.warmup,
            settings.steps,
            settings.lr,
            settings.lanczos,
        )
        .map_err(|source| SweepError::Train {
            point: describe(),
            source,
        })?;
        let roof_gflops = (settings.roof_reps > 0).then(|| {
            *roofs.entry((ds.n, p.width, p.threads)).or_insert_with(|| {
                let spec = network(ds.d, p.width, ds.classes).expect("the point ran");
                with_threads(p.threads, |_| {
                    gradient_gemm_gflops(&spec, ds.n, p.threads, settings.roof_reps)
                })
            })
        });
        let row = SavedRow::new(
            p.clone(),
            (ds.n, ds.d, ds.classes),
            stats,
            roof_gflops,
            peak_rss_mb(),
        );
        progress.finished(i, &row, ds)?;
        rows.push(row);
    }
    Ok(Finished {
        rows,
        seconds: t0.elapsed().as_secs_f64(),
        interrupted: false,
    })
}

/// The grid's points with the time model's estimate of each (`--dry-run`), and the total at
/// `gflops` GFLOP/s per thread.
pub fn plan(points: &[Point], est: &[f64], steps: usize, gflops: f64) -> String {
    let mut text = String::new();
    for (p, e) in points.iter().zip(est) {
        text.push_str(&format!(
            "{:<14} h={:<4} threads={:<2} {:<8} every {:<3} ~{e:.0} s\n",
            p.dataset,
            p.width,
            p.threads,
            p.tracker.name(),
            p.eig_every
        ));
    }
    let total: f64 = est.iter().sum();
    text.push_str(&format!(
        "{} points, {steps} steps each: about {total:.0} s ({:.1} min) at {gflops:.0} GFLOP/s per thread\n",
        points.len(),
        total / 60.0
    ));
    text
}

/// Two decimals, or "–" for a missing value.
fn num(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.2}"))
}

/// The sweep's rows as a text table: per point the median step, untracked step, products per
/// estimate, overhead ratio, and the gradient's share of the roof.
pub fn table(rows: &[SavedRow]) -> String {
    let mut text = String::from(
        "dataset         h     threads tracker  every  step ms  untracked ms  products  overhead  grad/roof\n",
    );
    for r in rows {
        let (p, s) = (&r.point, &r.stats);
        text.push_str(&format!(
            "{:<15} {:<5} {:<7} {:<8} {:<6} {:<8} {:<13} {:<9} {:<9} {}\n",
            p.dataset,
            p.width,
            p.threads,
            p.tracker.name(),
            p.eig_every,
            num(Some(s.step_ms.median)),
            num(Some(s.untracked_ms.median)),
            num(s.products.map(|x| x.median)),
            num(s.overhead.map(|x| x.median)),
            num(r.of_roof(r.grad_gflops)),
        ));
    }
    text
}

/// The regression table of a comparison against the sweep at `old`: `SLOWER` marks a
/// significant regression, `slower within the spread` one the windows' p10–p90 ranges explain.
pub fn change_table(old: &Path, changes: &[Change]) -> String {
    let mut text = format!(
        "against {}: {} common points\ndataset         h     threads tracker  every  old ms    new ms    ratio\n",
        old.display(),
        changes.len()
    );
    for c in changes {
        text.push_str(&format!(
            "{:<15} {:<5} {:<7} {:<8} {:<6} {:<9.2} {:<9.2} {:.3}{}\n",
            c.point.dataset,
            c.point.width,
            c.point.threads,
            c.point.tracker.name(),
            c.point.eig_every,
            c.old_ms,
            c.new_ms,
            c.ratio,
            match (c.regressed, c.beyond_spread) {
                (true, true) => "  SLOWER",
                (true, false) => "  slower within the spread",
                _ => "",
            }
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Collect {
        seen: Vec<String>,
        stop_after: usize,
        done: Cell<usize>,
    }

    impl Progress for Collect {
        fn starting(&mut self, i: usize, p: &Point) {
            self.seen
                .push(format!("{i}:{}:{}", p.dataset, p.tracker.name()));
        }
        fn finished(&mut self, _i: usize, row: &SavedRow, ds: &Dataset) -> io::Result<()> {
            assert_eq!(
                (row.n, ds.name.as_str()),
                (ds.n, row.point.dataset.as_str())
            );
            self.done.set(self.done.get() + 1);
            Ok(())
        }
        fn stop(&self) -> bool {
            self.done.get() >= self.stop_after
        }
    }

    fn grid() -> Grid {
        Grid {
            widths: vec![4],
            threads: vec![1],
            datasets: vec!["synthetic-30".into(), "synthetic-60".into()],
            trackers: vec![TrackerChoice::None, TrackerChoice::History],
            eig_every: vec![1],
            tracked: vec!["synthetic-60".into()],
        }
    }

    fn settings() -> Settings {
        Settings {
            warmup: 0,
            steps: 2,
            lr: 0.1,
            lanczos: LanczosParams::default(),
            start: None,
            roof_reps: 1,
        }
    }

    /// Data sets load once each, in point order; every row reaches the caller with its roof;
    /// a stop request ends the sweep between points with the rows done so far.
    #[test]
    fn points_stream_in_order_and_a_stop_keeps_the_rows_done() {
        let points = grid().points();
        assert_eq!(points.len(), 3);
        let loads = std::cell::RefCell::new(Vec::new());
        let load = |name: &str| {
            loads.borrow_mut().push(name.to_string());
            let n = name.trim_start_matches("synthetic-").parse().unwrap();
            Ok(synthetic(n, 6, 3, 0))
        };
        let mut c = Collect {
            seen: vec![],
            stop_after: usize::MAX,
            done: Cell::new(0),
        };
        // The synthetic rows are shaped 6 → 4 → 4 → 3; the roof uses the data set's shape.
        let f = run_grid(&points, &settings(), load, &mut c).unwrap();
        assert!(!f.interrupted);
        assert_eq!(f.rows.len(), 3);
        assert_eq!(*loads.borrow(), ["synthetic-30", "synthetic-60"]);
        assert_eq!(
            c.seen,
            [
                "0:synthetic-30:none",
                "1:synthetic-60:none",
                "2:synthetic-60:history"
            ]
        );
        assert!(f
            .rows
            .iter()
            .all(|r| r.roof_gflops.is_some_and(|g| g > 0.0)));
        assert!(table(&f.rows).lines().count() == 4);

        let mut c = Collect {
            seen: vec![],
            stop_after: 2,
            done: Cell::new(0),
        };
        let f = run_grid(&points, &settings(), load, &mut c).unwrap();
        assert!(f.interrupted);
        assert_eq!(f.rows.len(), 2);
    }

    /// A data set that cannot load is named in the error.
    #[test]
    fn a_missing_data_set_is_named() {
        let points = grid().points();
        let mut c = Collect {
            seen: vec![],
            stop_after: usize::MAX,
            done: Cell::new(0),
        };
        let err = run_grid(
            &points,
            &settings(),
            |_| {
                Err(DataError::BadName {
                    name: "x".into(),
                    reason: "no such data".into(),
                })
            },
            &mut c,
        )
        .unwrap_err();
        assert!(err.to_string().contains("synthetic-30"), "{err}");
    }
}
