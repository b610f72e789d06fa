//! The harness's figures, drawn from its rows (SVG and PNG).

use super::{Point, SavedRow};
use crate::train::TrackerChoice;

/// The harness's figures from its rows, written into `dir` as SVG and PNG; returns the SVGs'
/// file names.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eig::LanczosParams;
    use crate::sweep::run_point;

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
                        let point = Point {
                            width,
                            threads,
                            dataset: dataset.into(),
                            tracker,
                            eig_every: 1,
                        };
                        rows.push(SavedRow::new(point, (n, 6, 3), s, None, None));
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
            let svg = std::fs::read_to_string(scratch.path.join(&name)).unwrap();
            assert!(svg.starts_with("<svg") && svg.contains("h=") || svg.contains("history"));
            let png = std::fs::read(scratch.path.join(name.replace(".svg", ".png"))).unwrap();
            assert_eq!(&png[1..4], b"PNG", "{name}: a PNG beside the SVG");
        }
        assert!(figures(&scratch.path, &[]).unwrap().is_empty());
    }
}
