//! The verdict of `verify`: the first failure of a phase in words a developer can act on (the
//! step, the instances involved, the kind), and the JUnit file for CI.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::load::{LoadResult, Loss, Outcome};
use crate::report::CellReport;
use crate::scenario::FlowStep;

/// Errors a phase may have before it fails: the requests in flight on a killed instance.
const ERROR_BUDGET: f64 = 0.02;

/// One phase as it ended.
pub struct PhaseResult {
    /// "anti-affinity", "kill", "restart".
    pub name: &'static str,
    /// What it does, for the report.
    pub what: &'static str,
    /// The one-line summary.
    pub summary: String,
    /// The first failure, in words (`None`: the phase passed).
    pub failure: Option<String>,
}

/// Judges one phase: its first lost session, else its first error if errors exceed the
/// in-flight budget, else a failed event.
pub fn judge(
    name: &'static str,
    what: &'static str,
    flow: &[FlowStep],
    cell: &CellReport,
    r: &LoadResult,
) -> PhaseResult {
    let s = &cell.stats;
    let step = |i: usize| step_label(flow, i);
    let failure = if let Some(l) = r.losses.first() {
        Some(describe_loss(l, flow))
    } else if s.error_rate > ERROR_BUDGET {
        let first = r.samples.iter().find_map(|x| match &x.outcome {
            Outcome::Error(kind) => Some((x.step, kind.clone(), x.backend.clone())),
            _ => None,
        });
        first.map(|(i, kind, b)| {
            format!(
                "{}: error ({kind}) from {}; {} of {} requests failed (more than the {:.0}% in flight at a kill)",
                step(i),
                who(&b),
                s.errors,
                s.requests,
                ERROR_BUDGET * 100.0
            )
        })
    } else {
        None
    };
    let failure = failure.or_else(|| {
        cell.events
            .iter()
            .find(|e| !e.ok)
            .map(|e| format!("event {} {} failed: {}", e.action, e.backend, e.detail))
    });
    // The events as carried out, so a pass shows the kill or restart really happened.
    let events: Vec<String> = cell
        .events
        .iter()
        .map(|e| match e.action.as_str() {
            "crashed" => format!("{} crashed at {:.1}s", e.backend, e.at_s),
            a => format!("{a} {} at {:.1}s: {}", e.backend, e.actual_s, e.detail),
        })
        .collect();
    let summary = format!(
        "{name} ({what}): {} requests, {} errors, {} / {} sessions lost{}: {}",
        s.requests,
        s.errors,
        s.sessions_lost,
        s.sessions_started,
        if events.is_empty() {
            String::new()
        } else {
            format!(" ({})", events.join(", "))
        },
        if failure.is_some() { "FAILED" } else { "ok" }
    );
    PhaseResult {
        name,
        what,
        summary,
        failure,
    }
}

/// A lost session in words: the step and its kind, the instances involved, what to fix.
fn describe_loss(l: &Loss, flow: &[FlowStep]) -> String {
    let step = |i: usize| step_label(flow, i);
    let status = l.status.map_or(String::new(), |s| format!(" (HTTP {s})"));
    let mut text = format!("{}: {}{status}", step(l.step), l.reason);
    let _ = write!(
        text,
        "\n  instances: the session was started on {} by {}",
        who(&l.session_on),
        step(0)
    );
    if l.step > 1 {
        let _ = write!(
            text,
            "; {} was answered by {}",
            step(l.step - 1),
            who(&l.previous)
        );
    }
    let _ = write!(
        text,
        "; {} was answered by {}{}",
        step(l.step),
        who(&l.backend),
        if l.reason == "write missing" {
            ", without the write"
        } else {
            ", which did not know the session"
        }
    );
    let hint = if l.reason == "write missing" {
        "a write made on one instance is not visible on another: keep the data in a shared store"
    } else {
        "an instance does not know a session another one started: keep sessions in a shared store or a signed token"
    };
    let _ = write!(text, "\n  {hint}");
    text
}

/// "flow[1] (POST /notes)".
fn step_label(flow: &[FlowStep], i: usize) -> String {
    let label = flow.get(i).map_or(String::new(), FlowStep::label);
    format!("flow[{i}] ({label})")
}

/// The instance that answered, by the id tether or the app gave.
fn who(b: &Option<Arc<str>>) -> &str {
    b.as_deref().unwrap_or("an unknown instance")
}

/// JUnit XML: one suite, one case per phase that ran.
pub fn junit(command: &str, phases: &[PhaseResult]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let failures = phases.iter().filter(|p| p.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    let _ = writeln!(
        out,
        "  <testsuite name=\"tether-verify\" tests=\"{}\" failures=\"{failures}\">",
        phases.len()
    );
    let _ = writeln!(
        out,
        "    <properties><property name=\"app\" value=\"{}\"/></properties>",
        esc(command)
    );
    for p in phases {
        let _ = write!(
            out,
            "    <testcase classname=\"tether-verify\" name=\"{} ({})\">",
            esc(p.name),
            esc(p.what)
        );
        if let Some(f) = &p.failure {
            let first = f.lines().next().unwrap_or("");
            let _ = write!(
                out,
                "<failure message=\"{}\">{}</failure>",
                esc(first),
                esc(f)
            );
        }
        let _ = writeln!(
            out,
            "<system-out>{}</system-out></testcase>",
            esc(&p.summary)
        );
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::scenario::demo_flow;

    #[test]
    fn a_missing_write_names_the_step_and_every_instance() {
        let cell = CellReport::new("none", "default", "round_robin");
        let mut r = LoadResult::default();
        r.losses.push(Loss {
            at: Duration::from_secs(1),
            reason: "write missing",
            status: Some(200),
            step: 2,
            backend: Some(Arc::from("app-3")),
            session_on: Some(Arc::from("app-1")),
            previous: Some(Arc::from("app-2")),
        });
        let p = judge("kill", "a kill", &demo_flow(), &cell, &r);
        let f = p.failure.clone().expect("a loss fails the phase");
        assert!(f.starts_with("flow[2] (GET /cart): write missing"), "{f}");
        for want in [
            "started on app-1",
            "flow[1] (POST /cart/add?item={nonce}) was answered by app-2",
            "answered by app-3, without the write",
        ] {
            assert!(f.contains(want), "{want:?} not in {f}");
        }
        assert!(
            junit("cmd", &[p]).contains("<failure message=\"flow[2] (GET /cart): write missing")
        );
    }
}
