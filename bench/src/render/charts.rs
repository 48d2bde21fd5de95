//! SVG charts of one cell, drawn with plotters: per-backend request rate with event markers,
//! errors and session losses, and latency percentiles, all over time.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{CellReport, EventRecord};

/// The chart kinds, in the order index.html shows them; files are `<cell>-<kind>.svg`.
pub const KINDS: [&str; 3] = ["load", "errors", "latency"];

const SIZE: (u32, u32) = (640, 320);

/// Draws the three charts of `cell` into `dir`.
pub fn cell_charts(cell: &CellReport, events: &[EventRecord], dir: &Path) -> anyhow::Result<()> {
    let tl = &cell.stats.timeline;
    let width = tl.get(1).map_or(1.0, |b| b.t) - tl.first().map_or(0.0, |b| b.t);
    let tmax = tl.last().map_or(1.0, |b| b.t + width).max(1.0);
    let name = cell.name();
    let mut ids: Vec<&String> = tl.iter().flat_map(|b| b.rps.keys()).collect();
    ids.sort();
    ids.dedup();

    let load: Vec<(String, Vec<(f64, f64)>)> = ids
        .iter()
        .map(|id| {
            let pts = tl
                .iter()
                .map(|b| (b.t, b.rps.get(*id).copied().unwrap_or(0.0)))
                .collect();
            (id.to_string(), pts)
        })
        .collect();
    draw(
        &dir.join(format!("{}-load.svg", cell.slug())),
        &format!("{name}: requests/s per backend"),
        "req/s",
        tmax,
        &load,
        events,
    )?;

    let errors = vec![
        (
            "errors".to_string(),
            tl.iter().map(|b| (b.t, b.errors as f64)).collect(),
        ),
        (
            "sessions lost".to_string(),
            tl.iter().map(|b| (b.t, b.sessions_lost as f64)).collect(),
        ),
    ];
    draw(
        &dir.join(format!("{}-errors.svg", cell.slug())),
        &format!("{name}: errors and sessions lost per bucket"),
        "count",
        tmax,
        &errors,
        events,
    )?;

    // Drawn in this order so p99 stays visible where it meets max.
    let latency = vec![
        ("max".to_string(), tl.iter().map(|b| (b.t, b.max)).collect()),
        ("p99".to_string(), tl.iter().map(|b| (b.t, b.p99)).collect()),
        ("p50".to_string(), tl.iter().map(|b| (b.t, b.p50)).collect()),
    ];
    draw(
        &dir.join(format!("{}-latency.svg", cell.slug())),
        &format!("{name}: latency from intended send (ms)"),
        "ms",
        tmax,
        &latency,
        events,
    )
}

fn draw(
    path: &Path,
    title: &str,
    y_desc: &str,
    tmax: f64,
    series: &[(String, Vec<(f64, f64)>)],
    events: &[EventRecord],
) -> anyhow::Result<()> {
    let ymax = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..tmax, 0.0..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .draw()
        .map_err(plot_err)?;
    for (i, e) in events.iter().enumerate() {
        let style = if e.ok { BLACK.mix(0.6) } else { RED.mix(0.8) };
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(e.actual_s, 0.0), (e.actual_s, ymax)],
                style.stroke_width(1),
            )))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{} {}", e.action, e.backend),
                // Staggered, so events close in time do not print over each other.
                (e.actual_s, ymax * (0.97 - 0.06 * (i % 4) as f64)),
                ("sans-serif", 11),
            )))
            .map_err(plot_err)?;
    }
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}
