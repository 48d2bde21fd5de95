//! index.html pages: a scenario's table with its charts side by side and its failures, and the
//! suite page linking every scenario.

use std::fmt::Write as _;

use super::charts;
use super::rows::rows;
use crate::report::ScenarioReport;

/// Escapes text for HTML and XML bodies and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// index.html: the table, then per cell its three charts side by side.
pub fn html(r: &ScenarioReport) -> String {
    let (head, body) = rows(r);
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tether lab: {0}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:nth-child(-n+2){{text-align:left}}\
         .row{{display:flex;gap:8px;flex-wrap:wrap}}.row img{{width:32%;min-width:380px;border:1px solid #eee}}\
         .bad{{color:#b00;font-weight:bold}}</style></head><body><h1>{0}{1}</h1><p>{2}</p>",
        esc(&r.scenario),
        if r.quick { " (quick)" } else { "" },
        esc(&r.description)
    );
    let _ = write!(out, "<table><tr>");
    for h in &head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    let _ = write!(out, "</tr>");
    for row in body {
        let _ = write!(out, "<tr>");
        for c in row {
            let class = if c.starts_with("FAILED") {
                " class=\"bad\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(&c));
        }
        let _ = write!(out, "</tr>");
    }
    let _ = write!(out, "</table><p>Events: ");
    if let Some(c) = r.cells.iter().find(|c| c.ran) {
        for e in r.events.iter().filter(|e| e.cell == c.name()) {
            let _ = write!(
                out,
                "{} {} at {:.1}s; ",
                esc(&e.action),
                esc(&e.backend),
                e.at_s
            );
        }
    }
    let _ = write!(out, "</p>");
    for c in &r.cells {
        let _ = write!(out, "<h2>{}</h2>", esc(&c.name()));
        if !c.ran {
            if let Some(why) = &c.skip_reason {
                let _ = write!(out, "<p>skipped: {}</p>", esc(why));
            }
            for k in c.checks.iter().filter(|k| !k.pass) {
                let _ = write!(out, "<p class=\"bad\">FAILED: {}</p>", esc(&k.claim));
            }
            continue;
        }
        let _ = write!(out, "<div class=\"row\">");
        for kind in charts::KINDS {
            let _ = write!(
                out,
                "<img src=\"charts/{0}-{1}.svg\" alt=\"{1} over time, {2}\">",
                c.slug(),
                kind,
                esc(&c.name())
            );
        }
        let _ = write!(out, "</div><ul>");
        for k in c.checks.iter().filter(|k| !k.pass) {
            let _ = write!(
                out,
                "<li class=\"bad\">FAILED {} (limit {}): {}</li>",
                esc(&k.expect),
                k.limit,
                esc(&k.claim)
            );
        }
        for e in c.events.iter().filter(|e| !e.ok) {
            let _ = write!(
                out,
                "<li class=\"bad\">event {} {} failed: {}</li>",
                esc(&e.action),
                esc(&e.backend),
                esc(&e.detail)
            );
        }
        let _ = write!(out, "</ul>");
    }
    out.push_str("<p>Latency is measured from each request's intended send time (no coordinated omission). \
                  Sessions lost are detected by the users themselves (a 401 or a cart missing items).</p></body></html>\n");
    out
}

/// The page linking each scenario's page, for a suite run.
pub fn suite_index(reports: &[ScenarioReport]) -> String {
    let mut out = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>tether lab</title></head><body><h1>tether affinity lab</h1><ul>");
    for r in reports {
        let _ = write!(
            out,
            "<li><a href=\"{0}/index.html\">{0}</a>: {1} {2}</li>",
            esc(&r.scenario),
            esc(&r.description),
            if r.passed {
                "(all expectations held)"
            } else {
                "<b>(expectations failed)</b>"
            }
        );
    }
    out.push_str("</ul></body></html>\n");
    out
}
