//! Checks a parsed scenario for mistakes serde cannot see: empty topologies, events on unknown
//! backends or after the run, expectation keys that name no metric.

use super::expect::METRICS;
use super::model::{backend_ids, Scenario};

/// Refuses a scenario that could not run as written; the error names the offending key.
pub fn validate(sc: &Scenario) -> anyhow::Result<()> {
    anyhow::ensure!(
        sc.topology.backends >= 1,
        "topology.backends must be at least 1"
    );
    anyhow::ensure!(
        sc.topology.proxies >= 1,
        "topology.proxies must be at least 1"
    );
    anyhow::ensure!(sc.load.users >= 1, "load.users must be at least 1");
    anyhow::ensure!(!sc.load.think.0.is_zero(), "load.think must be above 0");
    let ids = backend_ids(sc);
    for (i, e) in sc.events.iter().enumerate() {
        anyhow::ensure!(
            ids.contains(&e.backend),
            "event[{i}]: backend {:?} is not in the topology (ids: {})",
            e.backend,
            ids.join(", ")
        );
        anyhow::ensure!(
            e.at.0 <= sc.duration.0,
            "event[{i}]: at = {:?} is after the end of the run",
            e.at.0
        );
    }
    for (i, x) in sc.expects.iter().enumerate() {
        for key in x.limits.keys() {
            let metric = key
                .strip_suffix("_min")
                .or_else(|| key.strip_suffix("_max"))
                .filter(|m| METRICS.contains(m));
            anyhow::ensure!(
                metric.is_some(),
                "expect[{i}].{key}: not METRIC_min or METRIC_max; metrics: {}",
                METRICS.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_expectation_keys_are_refused() {
        let text = "name = \"x\"\n[[expect]]\nsessions_lots_max = 0\n";
        let sc: Scenario = toml::from_str(text).unwrap();
        let err = validate(&sc).unwrap_err().to_string();
        assert!(err.contains("sessions_lots_max"), "{err}");
    }

    #[test]
    fn events_must_name_a_known_backend() {
        let text = "name = \"x\"\n[[event]]\nat = \"1s\"\naction = \"kill\"\nbackend = \"app-9\"\n";
        let sc: Scenario = toml::from_str(text).unwrap();
        assert!(validate(&sc).unwrap_err().to_string().contains("app-9"));
    }
}
