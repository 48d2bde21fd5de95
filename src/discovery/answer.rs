//! What a lookup answered, turned into backends (pure): stable ids derived from addresses,
//! SRV priority and weight, the address a named backend keeps, and when to look again.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{
    BackendConfig, DiscoverConfig, DiscoverQuery, NamedBackend, PoolConfig, MAX_WEIGHT,
};

/// One thing of a pool that DNS answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A backend whose `addr` is `name:port`.
    Named(NamedBackend),
    /// The pool's `discover`.
    Discover(DiscoverConfig),
}

impl Source {
    /// The name looked up, for logs.
    pub fn name(&self) -> &str {
        match self {
            Source::Named(n) => &n.host,
            Source::Discover(d) => match &d.query {
                DiscoverQuery::Dns { name, .. } | DiscoverQuery::Srv { name } => name,
            },
        }
    }
}

/// Every source of a pool, named backends first (in file order), then `discover`.
pub fn sources(pool: &PoolConfig) -> Vec<Source> {
    pool.named
        .iter()
        .cloned()
        .map(Source::Named)
        .chain(pool.discover.clone().map(Source::Discover))
        .collect()
}

/// One address of an answer, with the weight its backend gets and the name it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// Where the backend listens.
    pub addr: SocketAddr,
    /// Its share of traffic.
    pub weight: u32,
    /// The name whose address records gave it (an SRV record's target, or the name looked
    /// up): the backend's TLS server name unless the pool sets `tls_sni`.
    pub name: String,
}

/// A successful, non-empty lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Addresses, sorted and without duplicates.
    pub targets: Vec<Target>,
    /// The shortest TTL of the records behind them.
    pub ttl: Duration,
}

/// One SRV record with the addresses its target resolved to.
#[derive(Debug, Clone)]
pub struct SrvRecord {
    /// Lower is preferred; only the lowest priority present is used.
    pub priority: u16,
    /// Relative weight within the priority.
    pub weight: u16,
    /// Port on every address of the target.
    pub port: u16,
    /// The target's name, without the root's trailing dot.
    pub target: String,
    /// The target's addresses.
    pub ips: Vec<std::net::IpAddr>,
}

/// Targets of an SRV answer: the records of the lowest priority (RFC 2782: higher ones are
/// fallbacks, which tether's own health checks and ejection already provide), weight 0 taken
/// as 1 (an SRV weight of 0 means "rarely", a tether weight must be positive), capped at
/// [`MAX_WEIGHT`].
pub fn srv_targets(records: &[SrvRecord]) -> Vec<Target> {
    let Some(best) = records
        .iter()
        .filter(|r| !r.ips.is_empty())
        .map(|r| r.priority)
        .min()
    else {
        return Vec::new();
    };
    let targets = records
        .iter()
        .filter(|r| r.priority == best)
        .flat_map(|r| {
            let weight = u32::from(r.weight).clamp(1, MAX_WEIGHT);
            r.ips.iter().map(move |ip| Target {
                addr: SocketAddr::new(*ip, r.port),
                weight,
                name: r.target.clone(),
            })
        })
        .collect();
    normalize(targets)
}

/// Sorted by address, one target per address (the first seen keeps its weight).
pub fn normalize(mut targets: Vec<Target>) -> Vec<Target> {
    targets.sort_by_key(|t| t.addr);
    targets.dedup_by_key(|t| t.addr);
    targets
}

/// The backends a source stands for after `answer`, each with the name it is reached by (for
/// TLS). A discovered backend's id is its address (`10.0.0.5:8080`, `[fd00::5]:8080`), so
/// every tether instance asking the same name server gives a client the same cookie and hash
/// position. A named backend keeps its current
/// address while the answer still has it (round-robin DNS reorders answers; following the
/// order would drain it for nothing), else takes the lowest.
pub fn backends(source: &Source, answer: &Answer, current: &[BackendConfig]) -> Vec<BackendConfig> {
    match source {
        Source::Named(n) => {
            let keep = current
                .iter()
                .find(|b| b.id == n.id)
                .map(|b| b.addr)
                .filter(|addr| answer.targets.iter().any(|t| t.addr.ip() == addr.ip()));
            let addr = keep.or_else(|| {
                answer
                    .targets
                    .first()
                    .map(|t| SocketAddr::new(t.addr.ip(), n.port))
            });
            addr.map(|addr| BackendConfig {
                id: n.id.clone(),
                addr,
                weight: n.weight,
                name: Some(n.host.clone()),
            })
            .into_iter()
            .collect()
        }
        Source::Discover(_) => answer
            .targets
            .iter()
            .map(|t| BackendConfig {
                id: t.addr.to_string(),
                addr: t.addr,
                weight: t.weight,
                name: Some(t.name.clone()),
            })
            .collect(),
    }
}

/// When to look again after an answer with this TTL: within `[floor, ceiling]`, a little
/// early at random (down to 80%, never below the floor) so that tether instances started
/// together do not ask the name server in step. `unit` is a random number in `[0, 1)`.
pub fn refresh_after(ttl: Duration, floor: Duration, ceiling: Duration, unit: f64) -> Duration {
    let ceiling = ceiling.max(floor);
    let base = ttl.clamp(floor, ceiling);
    base.mul_f64(0.8 + 0.2 * unit.clamp(0.0, 1.0)).max(floor)
}

/// When to try again after `failures` failed lookups in a row: the floor, doubling up to the
/// ceiling, with the same jitter as [`refresh_after`].
pub fn retry_after(failures: u32, floor: Duration, ceiling: Duration, unit: f64) -> Duration {
    let backoff = floor.saturating_mul(1 << failures.saturating_sub(1).min(16));
    refresh_after(backoff, floor, ceiling, unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answer(addrs: &[&str]) -> Answer {
        Answer {
            targets: normalize(
                addrs
                    .iter()
                    .map(|a| Target {
                        addr: a.parse().unwrap(),
                        weight: 1,
                        name: "app.internal".into(),
                    })
                    .collect(),
            ),
            ttl: Duration::from_secs(5),
        }
    }

    fn discover() -> Source {
        Source::Discover(DiscoverConfig {
            query: DiscoverQuery::Dns {
                name: "app.internal".into(),
                port: 8080,
            },
            interval: None,
            weight: 1,
        })
    }

    #[test]
    fn discovered_ids_are_addresses_whatever_the_answer_order() {
        let a = backends(
            &discover(),
            &answer(&["10.0.0.6:8080", "[fd00::5]:8080", "10.0.0.5:8080"]),
            &[],
        );
        let b = backends(
            &discover(),
            &answer(&["[fd00::5]:8080", "10.0.0.5:8080", "10.0.0.6:8080"]),
            &[],
        );
        assert_eq!(a, b);
        let ids: Vec<&str> = a.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["10.0.0.5:8080", "10.0.0.6:8080", "[fd00::5]:8080"]);
    }

    #[test]
    fn a_named_backend_keeps_its_address_while_answered() {
        let named = Source::Named(NamedBackend {
            id: "app".into(),
            host: "app.internal".into(),
            port: 9000,
            weight: 2,
        });
        let first = backends(&named, &answer(&["10.0.0.7:0", "10.0.0.9:0"]), &[]);
        assert_eq!(first[0].addr, "10.0.0.7:9000".parse().unwrap());
        assert_eq!(first[0].weight, 2);
        let current = [BackendConfig {
            addr: "10.0.0.9:9000".parse().unwrap(),
            ..first[0].clone()
        }];
        let kept = backends(&named, &answer(&["10.0.0.7:0", "10.0.0.9:0"]), &current);
        assert_eq!(kept[0].addr, "10.0.0.9:9000".parse().unwrap());
        let moved = backends(&named, &answer(&["10.0.0.8:0"]), &current);
        assert_eq!(moved[0].addr, "10.0.0.8:9000".parse().unwrap());
    }

    #[test]
    fn srv_uses_the_lowest_priority_with_addresses_and_positive_weights() {
        let rec = |priority, weight, port, ips: &[&str]| SrvRecord {
            priority,
            weight,
            port,
            target: format!("t{port}.internal"),
            ips: ips.iter().map(|s| ip(s)).collect(),
        };
        let targets = srv_targets(&[
            rec(0, 5, 80, &[]),
            rec(10, 0, 81, &["10.0.0.2"]),
            rec(10, 60000, 82, &["10.0.0.1", "10.0.0.1"]),
            rec(20, 1, 83, &["10.0.0.3"]),
        ]);
        assert_eq!(
            targets,
            [
                Target {
                    addr: "10.0.0.1:82".parse().unwrap(),
                    weight: MAX_WEIGHT,
                    name: "t82.internal".into(),
                },
                Target {
                    addr: "10.0.0.2:81".parse().unwrap(),
                    weight: 1,
                    name: "t81.internal".into(),
                },
            ]
        );
        assert!(srv_targets(&[rec(0, 1, 80, &[])]).is_empty());
    }

    #[test]
    fn refreshes_respect_the_floor_and_ceiling_and_jitter_early() {
        let (floor, ceiling) = (Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(refresh_after(Duration::ZERO, floor, ceiling, 0.0), floor);
        assert_eq!(
            refresh_after(Duration::from_secs(3600), floor, ceiling, 1.0),
            ceiling
        );
        assert_eq!(
            refresh_after(Duration::from_secs(10), floor, ceiling, 0.0),
            Duration::from_secs(8)
        );
        for unit in [0.0, 0.3, 0.99] {
            let d = refresh_after(Duration::from_secs(10), floor, ceiling, unit);
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
        assert_eq!(retry_after(1, floor, ceiling, 1.0), floor);
        assert_eq!(retry_after(3, floor, ceiling, 1.0), Duration::from_secs(4));
        assert_eq!(retry_after(40, floor, ceiling, 1.0), ceiling);
    }
}
