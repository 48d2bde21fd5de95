//! Checks a parsed scenario for mistakes serde cannot see: empty topologies, events on unknown
//! backends or after the run, expectation keys that name no metric.

use super::event::Action;
use super::expect::{METRICS, THEORY_METRICS};
use super::flow::check_flow;
use super::model::{backend_ids, Scenario, REDIS};

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
        if e.backend == REDIS {
            anyhow::ensure!(
                matches!(
                    e.action,
                    Action::Kill | Action::Freeze | Action::Resume | Action::Start | Action::Stop
                ),
                "event[{i}].action: {} cannot act on redis (kill, freeze, resume, start, stop can)",
                e.action.name()
            );
        }
        anyhow::ensure!(
            e.backend == REDIS || ids.contains(&e.backend),
            "event[{i}]: backend {:?} is not in the topology (ids: {}, or redis)",
            e.backend,
            ids.join(", ")
        );
        let dns_event = matches!(e.action, Action::DnsAdd | Action::DnsRemove);
        anyhow::ensure!(
            !dns_event || sc.topology.discover,
            "event[{i}].action: {} changes the DNS answer, which needs topology.discover = true",
            e.action.name()
        );
        anyhow::ensure!(
            !(sc.topology.discover && matches!(e.action, Action::Add | Action::Remove)),
            "event[{i}].action: tether refuses admin API {} on a pool that discovers its backends; use dns-{}",
            e.action.name(),
            e.action.name()
        );
        anyhow::ensure!(
            !(sc.app.is_some() && e.action == Action::Fault),
            "event[{i}].action: fault switches exist only in the demo shop, not in an [app]"
        );
        anyhow::ensure!(
            e.at.0 <= sc.duration.0,
            "event[{i}]: at = {:?} is after the end of the run",
            e.at.0
        );
    }
    anyhow::ensure!(
        !(sc.topology.discover && sc.app.is_some()),
        "topology.discover: needs the demo shop, which binds each backend to its own 127.0.0.N \
         (an [app] is given only a {{port}} on 127.0.0.1)"
    );
    anyhow::ensure!(
        !sc.topology.discover || sc.topology.backends + sc.topology.spares <= 250,
        "topology.discover: at most 250 backends (one 127.0.0.N address each)"
    );
    match &sc.app {
        Some(app) => {
            app.check()?;
            check_flow(&sc.flow)?;
        }
        None if sc.flow.is_empty() => {}
        None => check_flow(&sc.flow)?,
    }
    anyhow::ensure!(
        sc.app.is_none() || sc.shop.variants.is_empty(),
        "shop.variant: an [app] scenario has [[app.variant]] instead"
    );
    sc.shop.check()?;
    let axis = sc.axis();
    for (i, x) in sc.expects.iter().enumerate() {
        for m in &x.within_theory {
            anyhow::ensure!(
                THEORY_METRICS.contains(&m.as_str()),
                "expect[{i}].within_theory: no theory for {m:?} (theories exist for {})",
                THEORY_METRICS.join(", ")
            );
        }
        for s in &x.sessions {
            anyhow::ensure!(
                axis.contains(s),
                "expect[{i}].sessions: {s:?} is not in the matrix (known: {})",
                axis.join(", ")
            );
        }
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
    fn app_scenarios_need_a_port_and_a_flow() {
        let base = "name = \"x\"\n[app]\ncommand = [\"srv\", \"--port\", \"{port}\"]\n";
        let sc: Scenario = toml::from_str(base).unwrap();
        assert!(validate(&sc)
            .unwrap_err()
            .to_string()
            .contains("flow: no steps"));
        let text = format!(
            "{base}[[app.variant]]\nname = \"m\"\nargs = [\"{{prot}}\"]\n[[flow]]\npath = \"/\"\n"
        );
        let sc: Scenario = toml::from_str(&text).unwrap();
        let e = validate(&sc).unwrap_err().to_string();
        assert!(
            e.contains("app.variant[0].args[0]") && e.contains("{prot}"),
            "{e}"
        );
        let text = format!("{base}[[flow]]\npath = \"/\"\n[[expect]]\nvariant = [\"nope\"]\n");
        let sc: Scenario = toml::from_str(&text).unwrap();
        let e = validate(&sc).unwrap_err().to_string();
        assert!(
            e.contains("expect[0].sessions") && e.contains("nope"),
            "{e}"
        );
        assert!(toml::from_str::<Scenario>(&format!("{base}colour = 1\n")).is_err());
    }

    #[test]
    fn events_may_act_on_redis_with_signals_only() {
        let ev = |action: &str| {
            format!("name = \"x\"\n[[event]]\nat = \"1s\"\naction = \"{action}\"\nbackend = \"redis\"\n")
        };
        let sc: Scenario = toml::from_str(&ev("freeze")).unwrap();
        assert!(validate(&sc).is_ok() && sc.targets_redis() && !sc.needs_redis());
        let sc: Scenario = toml::from_str(&ev("drain")).unwrap();
        assert!(validate(&sc)
            .unwrap_err()
            .to_string()
            .contains("drain cannot act on redis"));
    }

    #[test]
    fn dns_events_need_a_discovering_pool_and_replace_add_and_remove() {
        let ev = |discover: bool, action: &str| {
            let text = format!(
                "name = \"x\"\n[topology]\ndiscover = {discover}\nspares = 1\n[[event]]\nat = \"1s\"\naction = \"{action}\"\nbackend = \"app-5\"\n"
            );
            validate(&toml::from_str(&text).unwrap()).map_err(|e| e.to_string())
        };
        assert!(ev(true, "dns-add").is_ok() && ev(true, "dns-remove").is_ok());
        assert!(ev(false, "dns-add")
            .unwrap_err()
            .contains("topology.discover"));
        assert!(ev(true, "add").unwrap_err().contains("use dns-add"));
    }

    #[test]
    fn events_must_name_a_known_backend() {
        let text = "name = \"x\"\n[[event]]\nat = \"1s\"\naction = \"kill\"\nbackend = \"app-9\"\n";
        let sc: Scenario = toml::from_str(text).unwrap();
        assert!(validate(&sc).unwrap_err().to_string().contains("app-9"));
    }
}
