//! The request flow a virtual user runs against the service: `[[flow]]` steps (in a scenario
//! or a flow file), their placeholders and expectations, and the demo shop's own flow.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

use super::placeholder;

/// Placeholders a flow step may use: a fresh unique value, the user's identity, the step's
/// index and the action's number within the session.
pub const FLOW_PLACEHOLDERS: &[&str] = &["nonce", "user", "step", "n"];

/// One request of the flow.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct FlowStep {
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Path and query, placeholders allowed.
    pub path: String,
    /// Request body, placeholders allowed.
    #[serde(default)]
    pub body: String,
    /// Extra request headers, placeholders allowed in values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Statuses that count as success (empty: any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
    /// This step's `{nonce}` must be readable later in the session.
    #[serde(default)]
    pub write: bool,
    /// The response body must contain every nonce the session wrote.
    #[serde(default)]
    pub expect_writes: bool,
    /// Sent this many times at once, each copy with its own `{nonce}` on a connection of its
    /// own, with the same cookies (one user's concurrent requests).
    #[serde(default = "one")]
    pub concurrent: u32,
    /// Opens a WebSocket on `path` and holds it for the rest of the run, a message every think
    /// time (echoed by the server), reconnecting when it drops. The last step of a flow.
    #[serde(default)]
    pub websocket: bool,
}

fn one() -> u32 {
    1
}

fn default_method() -> String {
    "GET".into()
}

impl FlowStep {
    /// Whether `status` is what this step expects.
    pub fn status_ok(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    /// "POST /notes", for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A flow file: only `[[flow]]` steps (what `verify --flow` reads).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    #[serde(default)]
    flow: Vec<FlowStep>,
}

/// Reads a flow file and checks it.
pub fn load_flow(path: &Path) -> anyhow::Result<Vec<FlowStep>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let f: FlowFile = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    check_flow(&f.flow).with_context(|| format!("{}", path.display()))?;
    Ok(f.flow)
}

/// Refuses a flow that cannot run: no steps, a bad method, an unknown placeholder, a check of
/// writes before any write. The error names the key.
pub fn check_flow(flow: &[FlowStep]) -> anyhow::Result<()> {
    anyhow::ensure!(
        !flow.is_empty(),
        "flow: no steps (add [[flow]] tables: method, path, ...)"
    );
    for (i, s) in flow.iter().enumerate() {
        let key = format!("flow[{i}]");
        hyper::Method::from_bytes(s.method.as_bytes())
            .map_err(|_| anyhow::anyhow!("{key}.method: {:?} is not an HTTP method", s.method))?;
        anyhow::ensure!(
            s.path.starts_with('/'),
            "{key}.path: {:?} must start with /",
            s.path
        );
        placeholder::check(&s.path, FLOW_PLACEHOLDERS, &format!("{key}.path"))?;
        let sample = placeholder::fill(
            &s.path,
            &[("nonce", "n1x1z"), ("user", "1"), ("step", "1"), ("n", "1")],
        );
        anyhow::ensure!(
            sample.parse::<hyper::Uri>().is_ok(),
            "{key}.path: {:?} is not a valid request path (escape spaces and the like)",
            s.path
        );
        placeholder::check(&s.body, FLOW_PLACEHOLDERS, &format!("{key}.body"))?;
        for (h, v) in &s.headers {
            placeholder::check(v, FLOW_PLACEHOLDERS, &format!("{key}.headers.{h}"))?;
            hyper::header::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| anyhow::anyhow!("{key}.headers: {h:?} is not a header name"))?;
        }
        anyhow::ensure!(
            !s.write || placeholder::uses(&s.path, "nonce") || placeholder::uses(&s.body, "nonce"),
            "{key}.write: the step writes nothing checkable (put {{nonce}} in its path or body)"
        );
        anyhow::ensure!(
            (1..=64).contains(&s.concurrent),
            "{key}.concurrent: {} is not between 1 and 64",
            s.concurrent
        );
        anyhow::ensure!(
            i > 0 || s.concurrent == 1,
            "{key}.concurrent: the first step starts the session; it cannot be sent concurrently"
        );
        anyhow::ensure!(
            !s.websocket || (i > 0 && i + 1 == flow.len() && s.method == "GET"),
            "{key}.websocket: a WebSocket is a GET and the last step, after the first"
        );
        anyhow::ensure!(
            !s.expect_writes || flow[..i].iter().any(|p| p.write),
            "{key}.expect_writes: no earlier step has write = true"
        );
    }
    Ok(())
}

/// The demo shop's flow: log in, add an item, read the cart back.
pub fn demo_flow() -> Vec<FlowStep> {
    let step = |method: &str, path: &str, write: bool, expect_writes: bool| FlowStep {
        method: method.into(),
        path: path.into(),
        body: String::new(),
        headers: BTreeMap::new(),
        expect_status: Vec::new(),
        write,
        expect_writes,
        concurrent: 1,
        websocket: false,
    };
    vec![
        step("POST", "/login", false, false),
        step("POST", "/cart/add?item={nonce}", true, false),
        step("GET", "/cart", false, true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_are_checked() {
        assert!(check_flow(&demo_flow()).is_ok());
        assert!(check_flow(&[])
            .unwrap_err()
            .to_string()
            .contains("no steps"));
        let mut f = demo_flow();
        f[1].body = "{nonse}".into();
        let e = check_flow(&f).unwrap_err().to_string();
        assert!(e.contains("flow[1].body") && e.contains("{nonse}"), "{e}");
        let mut f = demo_flow();
        f[0].concurrent = 2;
        let e = check_flow(&f).unwrap_err().to_string();
        assert!(e.contains("flow[0].concurrent"), "{e}");
    }
}
