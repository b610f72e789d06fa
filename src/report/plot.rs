//! Figures as SVG: the two panels of the Edge-of-Stability papers' Figure 1, train loss and
//! sharpness against the step, with the `2/η` line.

use std::io;
use std::path::Path;

use plotters::prelude::*;

use super::atomic_write;

/// What [`training_figure`] draws: points `(step, value)`; non-finite values are left out.
pub struct TrainingCurves<'a> {
    /// Figure title (network, data set, step size).
    pub title: &'a str,
    pub loss: &'a [(f64, f64)],
    /// The top eigenvalue per estimate.
    pub sharpness: &'a [(f64, f64)],
    /// The stability threshold `2/η`, drawn dashed in the sharpness panel.
    pub threshold: Option<f64>,
}

/// Writes the loss panel above the sharpness panel to `path` (SVG, atomically).
pub fn training_figure(path: &Path, c: &TrainingCurves<'_>) -> io::Result<()> {
    let mut svg = String::new();
    draw(&mut svg, c).map_err(|e| {
        io::Error::other(format!("cannot draw the figure '{}': {e}", path.display()))
    })?;
    atomic_write(path, svg.as_bytes())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, c: &TrainingCurves<'_>) -> DrawResult {
    let finite = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let (loss, sharp) = (finite(c.loss), finite(c.sharpness));
    let last = loss.iter().chain(&sharp).map(|p| p.0).fold(1.0, f64::max);
    let root = SVGBackend::with_string(svg, (900, 760)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(c.title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(360);

    let top_y = loss.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-12) * 1.05;
    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..last, 0.0..top_y)?;
    let steps = |x: &f64| format!("{x:.0}");
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&steps)
        .y_desc("train loss")
        .draw()?;
    chart.draw_series(LineSeries::new(loss, BLUE.stroke_width(2)))?;

    let sharp_max = sharp.iter().map(|p| p.1).fold(0.0, f64::max);
    let bottom_y = sharp_max.max(c.threshold.unwrap_or(0.0)).max(1e-12) * 1.15;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..last, 0.0..bottom_y)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&steps)
        .y_desc("sharpness (top Hessian eigenvalue)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    chart
        .draw_series(LineSeries::new(sharp, RED.stroke_width(2)))?
        .label("sharpness")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    if let Some(t) = c.threshold {
        let dashed = DashedLineSeries::new([(0.0, t), (last, t)], 8, 6, BLACK.stroke_width(1));
        chart
            .draw_series(dashed)?
            .label(format!("2/η = {t}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
