//! Renders a finished report: the terminal table, and the report directory (report.json,
//! report.md, SVG charts, index.html), a suite index and JUnit XML.

mod charts;
mod figures;
mod html;
mod junit;
mod markdown;
mod repeats;
mod rows;
mod terminal;

use std::path::Path;

use anyhow::Context as _;

pub use self::junit::junit;
pub use self::terminal::table;
use crate::report::ScenarioReport;

/// Writes report.json, report.md, the charts and index.html into `dir`.
pub fn write(r: &ScenarioReport, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("charts"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(dir.join("report.md"), markdown::markdown(r))?;
    for c in r.cells.iter().filter(|c| c.ran) {
        charts::cell_charts(c, &r.events_of(c), &dir.join("charts"))
            .with_context(|| format!("charts for {}", c.name()))?;
    }
    std::fs::write(dir.join("index.html"), html::html(r))?;
    Ok(())
}

/// Writes an index.html linking each scenario's page into `dir`, for a suite run.
pub fn write_suite_index(reports: &[ScenarioReport], dir: &Path) -> anyhow::Result<()> {
    std::fs::write(dir.join("index.html"), html::suite_index(reports))?;
    Ok(())
}
