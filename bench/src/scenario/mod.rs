//! Scenario files: loading one (or a suite of them) from disk. What a scenario holds, how it
//! is validated and shrunk for `--quick` live in the files below.

mod duration;
mod event;
mod expect;
mod model;
mod quick;
mod validate;

use std::path::Path;

use anyhow::Context as _;

pub use self::event::{Action, EventSpec};
pub use self::model::{backend_ids, Scenario};
use self::validate::validate;

/// Loads a scenario; a suite (`include = [...]`) yields its members in order.
pub fn load(path: &Path) -> anyhow::Result<Vec<Scenario>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let sc: Scenario = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if !sc.include.is_empty() {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut all = Vec::new();
        for inc in &sc.include {
            all.extend(load(&dir.join(inc))?);
        }
        return Ok(all);
    }
    validate(&sc).with_context(|| format!("{}", path.display()))?;
    Ok(vec![sc])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_scenarios_load_and_shrink() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let all = load(&dir.join("matrix.toml")).unwrap();
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        for want in [
            "failover",
            "scale-out",
            "rolling-deploy",
            "hot-spot",
            "multi-proxy",
        ] {
            assert!(names.contains(&want), "matrix.toml lacks {want}");
        }
        for sc in all {
            let full: f64 = sc.matrix.affinity.len() as f64 * sc.duration.0.as_secs_f64();
            let q = sc.clone().quick();
            assert!(q.duration.0 <= sc.duration.0, "{}", sc.name);
            assert!(
                q.events.iter().all(|e| e.at.0 <= q.duration.0),
                "{}",
                sc.name
            );
            assert!(
                full > 0.0 && !sc.expects.is_empty(),
                "{} has no expectations",
                sc.name
            );
        }
    }
}
