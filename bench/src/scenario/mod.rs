//! Scenario files: loading one (or a suite of them) from disk. What a scenario holds, how it
//! is validated and shrunk for `--quick` live in the files below.

mod app;
mod duration;
mod event;
mod expect;
mod flow;
mod model;
mod placeholder;
mod quick;
mod shop;
mod validate;

use std::path::Path;

use anyhow::Context as _;

pub use self::app::{AppSpec, Variant};
pub use self::duration::Dur;
pub use self::event::{Action, EventSpec};
pub use self::flow::{check_flow, demo_flow, load_flow, FlowStep};
pub use self::model::{backend_ids, Scenario, REDIS};
pub use self::placeholder::fill;
pub use self::shop::ShopVariant;
use self::validate::validate;

/// Loads a scenario; a suite (`include = [...]`) yields its members in order.
pub fn load(path: &Path) -> anyhow::Result<Vec<Scenario>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut sc: Scenario = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if !sc.include.is_empty() {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut all = Vec::new();
        for inc in &sc.include {
            all.extend(load(&dir.join(inc))?);
        }
        return Ok(all);
    }
    resolve_paths(&mut sc, path).with_context(|| format!("{}", path.display()))?;
    validate(&sc).with_context(|| format!("{}", path.display()))?;
    Ok(vec![sc])
}

/// Reads `flow_file` and anchors the app's working directory, both relative to the scenario
/// file, so a scenario runs the same from any directory.
fn resolve_paths(sc: &mut Scenario, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(f) = &sc.flow_file {
        anyhow::ensure!(
            sc.flow.is_empty(),
            "flow_file: give either flow_file or [[flow]] steps, not both"
        );
        sc.flow = load_flow(&dir.join(f)).context("flow_file")?;
    }
    if let Some(app) = &mut sc.app {
        app.dir = Some(match &app.dir {
            Some(d) => dir.join(d),
            None => dir,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notes_scenario_loads_its_flow_file_and_variants() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let sc = load(&dir.join("notes-failover.toml")).unwrap().remove(0);
        assert_eq!(sc.flow.len(), 3);
        assert_eq!(sc.axis(), ["memory", "redis"]);
        let app = sc.app.as_ref().unwrap();
        assert!(app.dir.as_ref().unwrap().join(&app.command[1]).is_file());
        assert!(sc.needs_redis() && !app.variant_uses_redis(&app.variants()[0]));
        assert!(sc.quick().events[0].at.0 < std::time::Duration::from_secs(6));
    }

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
