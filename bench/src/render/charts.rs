//! SVG charts of one cell, drawn with plotters: per-backend request rate with event markers,
//! errors and session losses, and latency percentiles, all over time.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{CellReport, EventRecord};

/// The chart kinds, in the order index.html shows them; files are `<cell>-<kind>.svg`.
pub const KINDS: [&str; 3] = ["load", "errors", "latency"];

const SIZE: (u32, u32) = (640, 320);

/// Dark, mutually distinct line colours (no yellow or pale tones on white).
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x4e, 0x9c),
    RGBColor(0xb7, 0x1c, 0x1c),
    RGBColor(0x1b, 0x6e, 0x20),
    RGBColor(0x6a, 0x1b, 0x9a),
    RGBColor(0xbf, 0x4d, 0x00),
    RGBColor(0x00, 0x60, 0x64),
    RGBColor(0x4e, 0x34, 0x2e),
    RGBColor(0x21, 0x21, 0x21),
];

/// A bucketed series as steps: each bucket's value held over its own width, starting no
/// earlier than the last event inside it (`clip`), so nothing an event caused is drawn
/// before the event.
fn steps(
    tl: &[crate::stats::Bucket],
    width: f64,
    clip: &[f64],
    v: impl Fn(&crate::stats::Bucket) -> f64,
) -> Vec<(f64, f64)> {
    let mut pts = Vec::with_capacity(tl.len() * 2);
    for b in tl {
        let end = b.t + width;
        let from = clip
            .iter()
            .copied()
            .filter(|e| *e > b.t && *e < end)
            .fold(b.t, f64::max);
        if from > b.t {
            pts.push((b.t, 0.0));
            pts.push((from, 0.0));
        }
        pts.push((from, v(b)));
        pts.push((end, v(b)));
    }
    pts
}

/// Draws the three charts of `cell` into `dir`.
pub fn cell_charts(cell: &CellReport, events: &[EventRecord], dir: &Path) -> anyhow::Result<()> {
    let tl = &cell.stats.timeline;
    let width = tl.get(1).map_or(1.0, |b| b.t) - tl.first().map_or(0.0, |b| b.t);
    let tmax = tl.last().map_or(1.0, |b| b.t + width).max(1.0);
    let name = cell.name();
    let mut ids: Vec<&String> = tl.iter().flat_map(|b| b.rps.keys()).collect();
    ids.sort();
    ids.dedup();

    let clip: Vec<f64> = events.iter().map(|e| e.actual_s).collect();
    let per = format!("{:.0} ms", width * 1000.0);
    let load: Vec<(String, Vec<(f64, f64)>)> = ids
        .iter()
        .map(|id| {
            let pts = steps(tl, width, &[], |b| b.rps.get(*id).copied().unwrap_or(0.0));
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
        false,
    )?;

    let errors = vec![
        (
            "errors".to_string(),
            steps(tl, width, &clip, |b| b.errors as f64),
        ),
        (
            "sessions lost".to_string(),
            steps(tl, width, &clip, |b| b.sessions_lost as f64),
        ),
    ];
    draw(
        &dir.join(format!("{}-errors.svg", cell.slug())),
        &format!("{name}: errors and sessions lost per {per}"),
        &format!("count per {per}"),
        tmax,
        &errors,
        events,
        true,
    )?;

    // Drawn in this order so p99 stays visible where it meets max.
    let latency = vec![
        ("max".to_string(), steps(tl, width, &[], |b| b.max)),
        ("p99".to_string(), steps(tl, width, &[], |b| b.p99)),
        ("p50".to_string(), steps(tl, width, &[], |b| b.p50)),
    ];
    draw(
        &dir.join(format!("{}-latency.svg", cell.slug())),
        &format!("{name}: latency from intended send, per {per}"),
        "ms",
        tmax,
        &latency,
        events,
        false,
    )
}

fn draw(
    path: &Path,
    title: &str,
    y_desc: &str,
    tmax: f64,
    series: &[(String, Vec<(f64, f64)>)],
    events: &[EventRecord],
    counts: bool,
) -> anyhow::Result<()> {
    let top = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1.0);
    // Counts get whole-number ticks: a top that is a whole number and at most 10 labels.
    let ymax = if counts {
        (top * 1.1).ceil().max(2.0)
    } else {
        top * 1.1
    };
    let y_labels = if counts {
        (ymax as usize).min(10) + 1
    } else {
        8
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..tmax, 0.0..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the load began")
        .y_desc(y_desc)
        .y_labels(y_labels)
        .y_label_formatter(&|v| {
            if counts {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 13))
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
                ("sans-serif", 13),
            )))
            .map_err(plot_err)?;
    }
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = COLOURS[i % COLOURS.len()];
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
        .label_font(("sans-serif", 13))
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
