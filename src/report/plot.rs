//! Figures as SVG: the two panels of the Edge-of-Stability papers' Figure 1, train loss and
//! sharpness against the step, one color per run (step size), each run's `2/η` line dashed in
//! its color.

use std::io;
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::atomic_write;

/// One run of [`training_figure`]: points `(step, value)`; non-finite values are left out.
pub struct RunCurves<'a> {
    /// Legend entry (the step size).
    pub label: String,
    pub loss: &'a [(f64, f64)],
    /// The top eigenvalue per estimate.
    pub sharpness: &'a [(f64, f64)],
    /// The stability threshold `2/η`, drawn dashed in the sharpness panel.
    pub threshold: Option<f64>,
    /// Whose top eigenvalue `sharpness` is: `"Hessian"` or `"Gauss–Newton"`.
    pub curvature: &'static str,
}

/// Run colors, in order (a run past the last reuses them).
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Writes the loss panel above the sharpness panel, titled `title`, to `path` (SVG,
/// atomically) and as PNG beside it (same name, `.png`). The output depends only on the
/// arguments.
pub fn training_figure(path: &Path, title: &str, runs: &[RunCurves<'_>]) -> io::Result<()> {
    write_figure(path, |svg| draw(svg, title, runs))
}

/// Draws a figure into an SVG string with `draw` and writes it to `path` (atomically) and as
/// PNG beside it; a drawing error names the file.
fn write_figure(path: &Path, draw: impl FnOnce(&mut String) -> DrawResult) -> io::Result<()> {
    let mut svg = String::new();
    draw(&mut svg).map_err(|e| {
        io::Error::other(format!("cannot draw the figure '{}': {e}", path.display()))
    })?;
    atomic_write(path, svg.as_bytes())?;
    super::svg_to_png(&svg, &path.with_extension("png"))
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

type Panel<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A panel over steps `0 ..= last` and values `0 ..= top`, its mesh drawn (value ticks by
/// `y_label`, else plotters' default).
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    (last, top): (f64, f64),
    y_desc: &str,
    y_label: Option<&dyn Fn(&f64) -> String>,
) -> Result<Panel<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..last, 0.0..top.max(1e-12))?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_desc);
    if let Some(f) = y_label {
        mesh.y_label_formatter(f);
    }
    mesh.draw()?;
    Ok(chart)
}

/// The panel's legend, boxed, at `pos`.
fn legend<'a, 'b: 'a>(chart: &mut Panel<'a, 'b>, pos: SeriesLabelPosition) -> DrawResult {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn finite(pts: &[(f64, f64)]) -> Vec<(f64, f64)> {
    pts.iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect()
}

fn draw(svg: &mut String, title: &str, runs: &[RunCurves<'_>]) -> DrawResult {
    let loss: Vec<_> = runs.iter().map(|r| finite(r.loss)).collect();
    let sharp: Vec<_> = runs.iter().map(|r| finite(r.sharpness)).collect();
    let points = || loss.iter().chain(&sharp).flatten();
    let last = points().map(|p| p.0).fold(1.0, f64::max);
    let root = SVGBackend::with_string(svg, (900, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(360);

    let top_y = loss.iter().flatten().map(|p| p.1).fold(0.0, f64::max) * 1.05;
    let mut chart = panel(&top, (last, top_y), "train loss", None)?;
    for (i, (run, pts)) in runs.iter().zip(&loss).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
            .label(run.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    let thresholds = runs.iter().filter_map(|r| r.threshold);
    let bottom_y = sharp
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(thresholds)
        .fold(0.0, f64::max);
    // The operator the runs tracked, named on the axis; runs of both share a neutral name.
    let y_desc = match runs.first().map(|r| r.curvature) {
        Some(c) if runs.iter().all(|r| r.curvature == c) => {
            format!("sharpness (top {c} eigenvalue)")
        }
        _ => "top eigenvalue (Hessian or Gauss–Newton)".to_string(),
    };
    let whole = |y: &f64| format!("{y:.0}");
    let mut chart = panel(&bottom, (last, bottom_y * 1.15), &y_desc, Some(&whole))?;
    for (i, (run, pts)) in runs.iter().zip(&sharp).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        if let Some(t) = run.threshold {
            let dashed = DashedLineSeries::new([(0.0, t), (last, t)], 8, 6, color.stroke_width(1));
            chart
                .draw_series(dashed)?
                .label(format!("2/η = {t}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

/// One line of [`line_figure`]: points `(x, y)` in drawing order; non-finite ones are left out.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a reference line, e.g. proportional scaling).
    pub dashed: bool,
}

/// A single-panel line chart: `series` over `0 ..= max x` and `0 ..= 1.1 · max y`, with markers
/// at the points, axes named `x_desc` and `y_desc`; written atomically as SVG to `path` and as
/// PNG beside it (same name, `.png`).
pub fn line_figure(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> io::Result<()> {
    write_figure(path, |svg| draw_lines(svg, title, x_desc, y_desc, series))
}

fn draw_lines(
    svg: &mut String,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> DrawResult {
    let pts: Vec<Vec<(f64, f64)>> = series.iter().map(|s| finite(&s.points)).collect();
    let max_x = pts
        .iter()
        .flatten()
        .map(|p| p.0)
        .fold(0.0, f64::max)
        .max(1e-12);
    let max_y = pts
        .iter()
        .flatten()
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1e-12);
    let root = SVGBackend::with_string(svg, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max_x * 1.05, 0.0..max_y * 1.1)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for (i, (s, p)) in series.iter().zip(&pts).enumerate() {
        let color = COLORS[i % COLORS.len()];
        if s.dashed {
            let line = DashedLineSeries::new(p.iter().copied(), 8, 6, color.stroke_width(1));
            chart
                .draw_series(line)?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        } else {
            chart
                .draw_series(LineSeries::new(p.iter().copied(), color.stroke_width(2)))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(p.iter().map(|&q| Circle::new(q, 3, color.filled())))?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}
