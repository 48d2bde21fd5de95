//! index.html pages: a scenario's table with its charts side by side and its failures, and the
//! suite page linking every scenario.

use std::fmt::Write as _;

use super::charts;
use super::figures::figure_lines;
use super::repeats::repeat_lines;
use super::rows::{latency_notes, phase_line, rows, theory_lines, LEGEND};
use crate::report::ScenarioReport;

/// Escapes text for HTML and XML bodies and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// index.html: the verdict and the claims checked, a legend, the figures beside their
/// theory, the table, then per cell its three charts.
pub fn html(r: &ScenarioReport) -> String {
    let (head, body) = rows(r);
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tether lab: {0}</title>\
         <style>body{{font-family:sans-serif;font-size:15px;margin:1.5em;max-width:1400px;color:#111}}\
         table{{border-collapse:collapse;font-size:14px}}\
         td,th{{border:1px solid #999;padding:3px 8px;text-align:right}}td:nth-child(-n+2){{text-align:left}}\
         .legend td{{text-align:left}}.row{{display:flex;gap:8px;flex-wrap:wrap}}\
         .row img{{width:640px;max-width:100%;border:1px solid #ccc}}\
         .bad{{color:#b00;font-weight:bold}}.good{{color:#1b5e20;font-weight:bold}}\
         .note{{font-size:14px}}</style></head><body><h1>{0}{1}</h1><p>{2}</p>",
        esc(&r.scenario),
        if r.quick { " (quick)" } else { "" },
        esc(&r.description)
    );
    verdict(&mut out, r);
    let _ = write!(
        out,
        "<p class=\"note\">{} users, think {:.0} ms, {:.0} s per cell, {} backend(s), {} proxy(ies). \
         Full text: <a href=\"report.md\">report.md</a>; data: <a href=\"report.json\">report.json</a> and \
         <code>cells/*/requests.jsonl</code> (one line per request; <code>tether-bench recompute DIR</code> re-derives this page's numbers).</p>",
        r.users, r.think_ms, r.duration_s, r.backends, r.proxies
    );
    let theory = theory_lines(r);
    let _ = write!(out, "<h2>Every number beside its theory</h2><ul>");
    if theory.is_empty() {
        let _ = write!(
            out,
            "<li>No figure of this scenario has a theory the lab can derive.</li>"
        );
    }
    for t in theory {
        let class = if t.ends_with("OFF") { "bad" } else { "" };
        let _ = write!(out, "<li class=\"{class}\">{}</li>", esc(&t));
    }
    let figures = figure_lines(r);
    if !figures.is_empty() {
        let _ = write!(out, "</ul><h2>Figures</h2><ul>");
    }
    for f in figures {
        let _ = write!(out, "<li>{}</li>", esc(&f));
    }
    let _ = write!(out, "</ul><h2>Results</h2><table><tr>");
    for h in &head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    let _ = write!(out, "</tr>");
    for row in body {
        let _ = write!(out, "<tr>");
        for c in row {
            let bad = c.starts_with("FAILED") || c.starts_with("OFF");
            let class = if bad { " class=\"bad\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", esc(&c));
        }
        let _ = write!(out, "</tr>");
    }
    let _ = write!(out, "</table><div class=\"note\">");
    for note in latency_notes(r) {
        let _ = write!(out, "<p>{}</p>", esc(&note));
    }
    for line in repeat_lines(r) {
        let _ = write!(out, "<p>{}</p>", esc(&line));
    }
    let events: Vec<String> = r
        .cells
        .iter()
        .find(|c| c.ran)
        .map(|c| {
            r.events
                .iter()
                .filter(|e| e.cell == c.name())
                .map(|e| format!("{} {} at {:.1}s", e.action, e.backend, e.at_s))
                .collect()
        })
        .unwrap_or_default();
    let events = if events.is_empty() {
        "none (the scenario's load alone)".to_string()
    } else {
        events.join("; ")
    };
    let _ = write!(out, "<p>Events: {}</p><ul>", esc(&events));
    for c in r.cells.iter().filter(|c| c.ran && c.stats.phases.len() > 1) {
        let _ = write!(out, "<li>{}</li>", esc(&phase_line(c)));
    }
    let _ = write!(
        out,
        "</ul></div><h2>What the columns mean</h2><table class=\"legend\">"
    );
    for (col, meaning) in LEGEND {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(col),
            esc(meaning)
        );
    }
    let _ = write!(out, "</table>");
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

/// The page's opening: whether every expectation held, then each claim with its cells.
fn verdict(out: &mut String, r: &ScenarioReport) {
    let checks: Vec<(&str, &crate::report::Check)> = r
        .cells
        .iter()
        .flat_map(|c| c.checks.iter().map(move |k| (c.affinity.as_str(), k)))
        .collect();
    let failed = checks.iter().filter(|(_, k)| !k.pass).count();
    if failed == 0 {
        let _ = write!(
            out,
            "<p class=\"good\">Verdict: all {} expectations held.</p>",
            checks.len()
        );
    } else {
        let _ = write!(
            out,
            "<p class=\"bad\">Verdict: {failed} of {} expectations FAILED.</p>",
            checks.len()
        );
    }
    // One line per claim: how many of its checks held, and which cells failed it.
    let mut claims: Vec<&str> = checks.iter().map(|(_, k)| k.claim.as_str()).collect();
    claims.dedup();
    claims.sort_unstable();
    claims.dedup();
    let _ = write!(out, "<h2>The claims checked</h2><ul>");
    for claim in claims {
        let of: Vec<&crate::report::Check> = checks
            .iter()
            .filter(|(_, k)| k.claim == claim)
            .map(|(_, k)| *k)
            .collect();
        let bad: Vec<String> = r
            .cells
            .iter()
            .flat_map(|c| {
                c.checks
                    .iter()
                    .filter(|k| k.claim == claim && !k.pass)
                    .map(move |k| {
                        format!(
                            "{} {} = {}",
                            c.name(),
                            k.expect,
                            k.value.map_or("never".into(), |v| format!("{v:.3}"))
                        )
                    })
            })
            .collect();
        let held = of.iter().filter(|k| k.pass).count();
        if bad.is_empty() {
            let _ = write!(
                out,
                "<li><span class=\"good\">held</span> ({held}/{} checks): {}</li>",
                of.len(),
                esc(claim)
            );
        } else {
            let _ = write!(
                out,
                "<li><span class=\"bad\">FAILED</span> ({held}/{} checks held): {} <br>failed: {}</li>",
                of.len(),
                esc(claim),
                esc(&bad.join("; "))
            );
        }
    }
    let _ = write!(out, "</ul>");
}

/// The page linking each scenario's page, for a suite run: the verdict first, then each
/// scenario with its claim and whether its expectations held.
pub fn suite_index(reports: &[ScenarioReport]) -> String {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.scenario.as_str())
        .collect();
    let verdict = if failed.is_empty() {
        format!(
            "<p class=\"good\">Verdict: every expectation of all {} scenarios held.</p>",
            reports.len()
        )
    } else {
        format!(
            "<p class=\"bad\">Verdict: expectations failed in {} of {} scenarios: {}.</p>",
            failed.len(),
            reports.len(),
            esc(&failed.join(", "))
        )
    };
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tether lab</title>\
         <style>body{{font-family:sans-serif;font-size:15px;margin:1.5em;max-width:1100px;color:#111}}\
         li{{margin-bottom:.5em}}.bad{{color:#b00;font-weight:bold}}.good{{color:#1b5e20;font-weight:bold}}</style>\
         </head><body><h1>tether affinity lab</h1>{verdict}<p>Each scenario encodes claims about \
         sticky and stateless backends as expectations; its page has the verdict, every number \
         beside its theory, and the charts.</p><ul>"
    );
    for r in reports {
        let _ = write!(
            out,
            "<li><a href=\"{0}/index.html\">{0}</a>{1}: {2} {3}</li>",
            esc(&r.scenario),
            if r.quick { " (quick)" } else { "" },
            esc(&r.description),
            if r.passed {
                "<span class=\"good\">(all expectations held)</span>"
            } else {
                "<span class=\"bad\">(expectations failed)</span>"
            }
        );
    }
    out.push_str("</ul></body></html>\n");
    out
}
