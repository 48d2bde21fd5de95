//! Lookups through hickory-resolver: A/AAAA of a name, SRV with each target's addresses.
//! tether schedules lookups itself (TTL floor and ceiling, jitter), so the resolver's cache
//! is bounded by the floor: a refresh always asks the name server.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig as HickoryConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use super::answer::{normalize, srv_targets, Answer, Source, SrvRecord, Target};
use crate::config::{DiscoverQuery, ResolverConfig};

/// A resolver for `[resolver]`: its name servers, or the system's.
pub struct Resolver {
    inner: TokioResolver,
    timeout: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds the resolver; fails when the system configuration cannot be read.
    pub fn new(config: &ResolverConfig) -> Result<Self, String> {
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?
        } else {
            let mut group = NameServerConfigGroup::new();
            for ns in &config.nameservers {
                // TCP too, for answers too large for UDP.
                group.push(NameServerConfig::new(*ns, Protocol::Udp));
                group.push(NameServerConfig::new(*ns, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(
                HickoryConfig::from_parts(None, Vec::new(), group),
                TokioConnectionProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = config.timeout;
        opts.attempts = 1;
        // A dual-stack replica is one backend: its IPv4 addresses, IPv6 only without any.
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        opts.positive_max_ttl = Some(config.min_ttl);
        opts.negative_max_ttl = Some(config.min_ttl);
        Ok(Self {
            inner: builder.build(),
            timeout: config.timeout,
        })
    }

    /// Looks a source up. An empty answer is an error: it must never empty a pool.
    pub async fn lookup(&self, source: &Source) -> Result<Answer, String> {
        // The resolver times out each query (A then AAAA, UDP then TCP); this bounds the
        // whole lookup, and the SRV case's several lookups, a little later.
        let limit = self.timeout.saturating_mul(8);
        let answer = match source {
            Source::Named(n) => {
                tokio::time::timeout(limit, self.hosts(&n.host, n.port, n.weight)).await
            }
            Source::Discover(d) => match &d.query {
                DiscoverQuery::Dns { name, port } => {
                    tokio::time::timeout(limit, self.hosts(name, *port, d.weight)).await
                }
                DiscoverQuery::Srv { name } => tokio::time::timeout(limit, self.srv(name)).await,
            },
        }
        .map_err(|_| format!("no answer within {limit:?}"))??;
        if answer.targets.is_empty() {
            return Err("the answer has no addresses".into());
        }
        Ok(answer)
    }

    async fn hosts(&self, name: &str, port: u16, weight: u32) -> Result<Answer, String> {
        let found = self
            .inner
            .lookup_ip(name)
            .await
            .map_err(|e| describe(&e, self.timeout))?;
        let ttl = min_ttl(found.as_lookup());
        let targets = found
            .iter()
            .map(|ip| Target {
                addr: SocketAddr::new(ip, port),
                weight,
                name: name.to_string(),
            })
            .collect();
        Ok(Answer {
            targets: normalize(targets),
            ttl,
        })
    }

    async fn srv(&self, name: &str) -> Result<Answer, String> {
        let found = self
            .inner
            .srv_lookup(name)
            .await
            .map_err(|e| describe(&e, self.timeout))?;
        let mut ttl = min_ttl(found.as_lookup());
        let mut records = Vec::new();
        // Bounded by what one answer can hold; each target is asked for its addresses.
        for srv in found.iter().take(64) {
            let ips = match self.inner.lookup_ip(srv.target().clone()).await {
                Ok(ips) => {
                    ttl = ttl.min(min_ttl(ips.as_lookup()));
                    ips.iter().collect()
                }
                Err(e) => {
                    tracing::debug!(srv.name = %name, srv.target = %srv.target(), error = %e, "SRV target has no address");
                    Vec::new()
                }
            };
            records.push(SrvRecord {
                priority: srv.priority(),
                weight: srv.weight(),
                port: srv.port(),
                target: srv.target().to_utf8().trim_end_matches('.').to_string(),
                ips,
            });
        }
        Ok(Answer {
            targets: srv_targets(&records),
            ttl,
        })
    }
}

/// A failure in words that stay the same while the failure does, so that it is logged once
/// per change (hickory's own text names the query, which varies between A and AAAA).
fn describe(error: &hickory_resolver::ResolveError, timeout: Duration) -> String {
    use hickory_resolver::proto::ProtoErrorKind;
    use hickory_resolver::ResolveErrorKind;
    if error.is_nx_domain() {
        return "no such name (NXDOMAIN)".into();
    }
    if error.is_no_records_found() {
        return "no address records".into();
    }
    match error.kind() {
        ResolveErrorKind::Proto(p) if matches!(p.kind(), ProtoErrorKind::Timeout) => {
            format!("no answer from the name server within {timeout:?}")
        }
        _ => error.to_string(),
    }
}

fn min_ttl(lookup: &hickory_resolver::lookup::Lookup) -> Duration {
    let secs = lookup.record_iter().map(|r| r.ttl()).min().unwrap_or(0);
    Duration::from_secs(u64::from(secs))
}
