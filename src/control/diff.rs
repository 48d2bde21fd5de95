//! What a new config changes against the running one: listeners, pools and backends added,
//! removed or changed. A pure function of the two configs, so a reload can say exactly what it
//! did (and a no-op reload says so).

use std::collections::BTreeMap;
use std::fmt;

use crate::config::{BackendConfig, Config};

/// Names added, removed and changed between two sets keyed by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// In the new set only.
    pub added: Vec<String>,
    /// In the old set only.
    pub removed: Vec<String>,
    /// In both, but different.
    pub changed: Vec<String>,
}

impl Changes {
    /// Compares two sets keyed by name; the result lists names in sorted order.
    pub fn between<'a, T: PartialEq + 'a>(
        old: impl IntoIterator<Item = (&'a str, &'a T)>,
        new: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Self {
        let old: BTreeMap<&str, &T> = old.into_iter().collect();
        let new: BTreeMap<&str, &T> = new.into_iter().collect();
        let mut changes = Changes::default();
        for (name, n) in &new {
            match old.get(name) {
                None => changes.added.push(name.to_string()),
                Some(o) if o != n => changes.changed.push(name.to_string()),
                Some(_) => {}
            }
        }
        changes.removed = old
            .keys()
            .filter(|name| !new.contains_key(*name))
            .map(|name| name.to_string())
            .collect();
        changes
    }

    /// True when nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The difference between a running config and a new one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Listeners by name (a changed one is rebound).
    pub listeners: Changes,
    /// Pools by name; `changed` lists pools whose settings other than backends differ.
    pub pools: Changes,
    /// Backends by id, for each pool present in both configs whose backends differ.
    pub backends: BTreeMap<String, Changes>,
}

/// Compares `old` and `new`.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let listeners = Changes::between(
        old.listeners.iter().map(|l| (l.name.as_str(), l)),
        new.listeners.iter().map(|l| (l.name.as_str(), l)),
    );
    // A pool's own settings, with its backends left out: those are compared one by one.
    let settings = |c: &Config| -> BTreeMap<String, crate::config::PoolConfig> {
        c.pools
            .iter()
            .map(|(name, p)| {
                let mut p = p.clone();
                p.backends.clear();
                p.resolved.clear();
                (name.clone(), p)
            })
            .collect()
    };
    let (old_settings, new_settings) = (settings(old), settings(new));
    let pools = Changes::between(
        old_settings.iter().map(|(k, v)| (k.as_str(), v)),
        new_settings.iter().map(|(k, v)| (k.as_str(), v)),
    );
    let by_id = |b: &[BackendConfig]| -> Vec<(String, BackendConfig)> {
        b.iter().map(|b| (b.id.clone(), b.clone())).collect()
    };
    let mut backends = BTreeMap::new();
    for (name, new_pool) in &new.pools {
        let Some(old_pool) = old.pools.get(name) else {
            continue;
        };
        // What DNS answered counts as backends too: a discovery update is reported like an edit.
        let all = |p: &crate::config::PoolConfig| [by_id(&p.backends), by_id(&p.resolved)].concat();
        let (o, n) = (all(old_pool), all(new_pool));
        let changes = Changes::between(
            o.iter().map(|(k, v)| (k.as_str(), v)),
            n.iter().map(|(k, v)| (k.as_str(), v)),
        );
        if !changes.is_empty() {
            backends.insert(name.clone(), changes);
        }
    }
    ConfigDiff {
        listeners,
        pools,
        backends,
    }
}

impl ConfigDiff {
    /// True when the new config changes nothing that is compared here.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty() && self.pools.is_empty() && self.backends.is_empty()
    }
}

impl fmt::Display for ConfigDiff {
    /// `listener web2 added; pool app: backend a3 added, backend a1 removed`, or `no changes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let list = |what: &str, c: &Changes, out: &mut Vec<String>| {
            for (names, verb) in [
                (&c.added, "added"),
                (&c.removed, "removed"),
                (&c.changed, "changed"),
            ] {
                out.extend(names.iter().map(|n| format!("{what} {n} {verb}")));
            }
        };
        list("listener", &self.listeners, &mut parts);
        list("pool", &self.pools, &mut parts);
        for (pool, c) in &self.backends {
            let mut items = Vec::new();
            list("backend", c, &mut items);
            parts.push(format!("pool {pool}: {}", items.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("no changes")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(text).unwrap()
    }

    const BASE: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "app"
[pool.app]
[[pool.app.backend]]
id = "a1"
addr = "127.0.0.1:9001"
[[pool.app.backend]]
id = "a2"
addr = "127.0.0.1:9002"
"#;

    #[test]
    fn the_same_file_changes_nothing() {
        let d = diff(&config(BASE), &config(BASE));
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no changes");
    }

    #[test]
    fn backends_are_compared_by_id_not_position() {
        let swapped = BASE
            .replace("a1", "tmp")
            .replace("a2", "a1")
            .replace("tmp", "a2");
        let swapped = swapped
            .replace("9001", "tmp")
            .replace("9002", "9001")
            .replace("tmp", "9002");
        assert!(diff(&config(BASE), &config(&swapped)).is_empty());
    }

    #[test]
    fn added_removed_and_changed_backends_are_named() {
        let new = BASE
            .replace("id = \"a1\"", "id = \"a3\"")
            .replace("9002", "9012");
        let d = diff(&config(BASE), &config(&new));
        assert_eq!(
            d.backends["app"],
            Changes {
                added: vec!["a3".into()],
                removed: vec!["a1".into()],
                changed: vec!["a2".into()],
            }
        );
        assert!(d.listeners.is_empty() && d.pools.is_empty());
        assert_eq!(
            d.to_string(),
            "pool app: backend a3 added, backend a1 removed, backend a2 changed"
        );
    }

    #[test]
    fn weights_are_changes_too() {
        let new = BASE.replace(
            "addr = \"127.0.0.1:9001\"",
            "addr = \"127.0.0.1:9001\"\nweight = 3",
        );
        assert_eq!(
            diff(&config(BASE), &config(&new)).backends["app"].changed,
            ["a1"]
        );
    }

    #[test]
    fn listeners_and_pool_settings() {
        let new = format!(
            "{}\n[[listener]]\nname = \"api\"\nlisten = \"127.0.0.1:0\"\npool = \"app\"\n",
            BASE.replace("[pool.app]", "[pool.app]\nbalance = \"least_conn\"")
                .replace(
                    "name = \"web\"\nlisten = \"127.0.0.1:0\"",
                    "name = \"web\"\nlisten = \"127.0.0.1:1\""
                )
        );
        let d = diff(&config(BASE), &config(&new));
        assert_eq!(d.listeners.added, ["api"]);
        assert_eq!(d.listeners.changed, ["web"]);
        assert_eq!(d.pools.changed, ["app"]);
        assert!(d.backends.is_empty());
        assert_eq!(
            d.to_string(),
            "listener api added; listener web changed; pool app changed"
        );
    }
}
