//! The charts, as inline SVG drawn by plotters (which escapes the text it
//! writes: metric and feature names go in as they are).

use std::collections::BTreeSet;

use model_persistence_core::FeatureStats;
use plotters::prelude::*;

use crate::gather::VersionEntry;

/// Every metric over the versions, one line each, versions in order on the
/// x axis. `None` when no version has a metric.
pub(crate) fn metrics_over_versions(versions: &[VersionEntry]) -> Option<String> {
    let names: BTreeSet<&str> = versions
        .iter()
        .flat_map(|v| v.info.metrics.keys().map(String::as_str))
        .collect();
    let values: Vec<f64> = versions
        .iter()
        .flat_map(|v| v.info.metrics.values().copied())
        .filter(|v| v.is_finite())
        .collect();
    if names.is_empty() || values.is_empty() {
        return None;
    }
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let labels: Vec<String> = versions.iter().map(|v| v.info.version.to_string()).collect();
    let n = versions.len();
    draw((760, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption("metrics by version", ("sans-serif", 16))
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5_f64..(n as f64 - 0.5), (lo - pad)..(hi + pad))?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(n.min(12) * 2 + 1)
            .x_label_formatter(&label)
            .light_line_style(WHITE)
            .y_desc("value")
            .draw()?;
        for (i, name) in names.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = versions
                .iter()
                .enumerate()
                .filter_map(|(x, v)| {
                    v.info
                        .metrics
                        .get(*name)
                        .filter(|m| m.is_finite())
                        .map(|&m| (x as f64, m))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        Ok(())
    })
}

/// A feature's training shares per decile bin, and the live shares beside
/// them when given.
pub(crate) fn histogram(stats: &FeatureStats, live: Option<&[f64]>) -> Option<String> {
    let training = &stats.bin_fractions;
    if training.is_empty() {
        return None;
    }
    let live = live.filter(|l| l.len() == training.len());
    let top = training
        .iter()
        .chain(live.unwrap_or_default())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(1e-3)
        * 1.15;
    let bins = training.len();
    let blue = RGBColor(52, 101, 164);
    let orange = RGBColor(230, 126, 34);
    draw((380, 200), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(40)
            .build_cartesian_2d(0.0_f64..bins as f64, 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(bins + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("training decile bin")
            .draw()?;
        let width = if live.is_some() { 0.42 } else { 0.84 };
        chart.draw_series(training.iter().enumerate().map(|(i, &f)| {
            let x = i as f64 + 0.08;
            Rectangle::new([(x, 0.0), (x + width, f)], blue.filled())
        }))?;
        if let Some(live) = live {
            chart.draw_series(live.iter().enumerate().map(|(i, &f)| {
                let x = i as f64 + 0.08 + width;
                Rectangle::new([(x, 0.0), (x + width, f)], orange.filled())
            }))?;
        }
        Ok(())
    })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws on an SVG of `size` and returns the SVG, or `None` if plotters
/// refused (the page then says the chart is missing).
fn draw(
    size: (u32, u32),
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> DrawResult,
) -> Option<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).ok()?;
        f(&root).ok()?;
        root.present().ok()?;
    }
    Some(svg)
}
