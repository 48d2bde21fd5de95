//! The tether side of a cell: the config written for it, and whether this tether accepts it.

use std::net::SocketAddr;
use std::path::Path;

use toml::{Table, Value};

use super::stop::Stop;
use crate::dns_server::NAME;
use crate::scenario::Scenario;

/// Asks `tether check` whether it accepts `config`. A refusal skips the cell rather than failing
/// it: the scenario asks for something this tether does not offer, which says nothing of the
/// claims.
pub async fn check_config(tether: &Path, config: &Path) -> Result<(), Stop> {
    let out = tokio::process::Command::new(tether)
        .args(["check", "-c"])
        .arg(config)
        .output()
        .await
        .map_err(|e| Stop::Broken(format!("cannot run {}: {e}", tether.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let first: Vec<&str> = why.lines().take(3).collect();
    Err(Stop::Skip(format!(
        "this tether rejects the cell's config ({}): {}",
        config.display(),
        first.join(" / ")
    )))
}

/// The tether config of a cell: one listener, one pool `app` holding the `pooled` backends,
/// with the scenario's pool keys passed through. With `dns` (the cell's name server, and the
/// port every backend listens on) the pool discovers its backends under `dns_server::NAME`
/// instead, and `[resolver]` asks that server alone.
pub fn tether_config(
    sc: &Scenario,
    affinity: &str,
    axis: &str,
    pooled: &[(String, SocketAddr)],
    dns: Option<(SocketAddr, u16)>,
) -> String {
    let t = &sc.topology;
    let mut pool = Table::new();
    pool.insert("balance".into(), t.balance.clone().into());
    pool.insert("affinity".into(), affinity.into());
    pool.insert("connect_timeout".into(), "1s".into());
    pool.insert("response_timeout".into(), t.response_timeout.clone().into());
    // The user's app need not say who it is: tether names the backend in a response header.
    if sc.app.is_some() {
        pool.insert("explain".into(), true.into());
    }
    for (k, v) in &t.pool {
        pool.insert(k.clone(), v.clone());
    }
    if let (Some(c), "cookie" | "spread") = (&t.cookie, affinity) {
        pool.insert("cookie".into(), c.clone());
    }
    let backends: Vec<Value> = pooled
        .iter()
        .map(|(id, addr)| {
            let mut b = Table::new();
            b.insert("id".into(), id.clone().into());
            b.insert("addr".into(), addr.to_string().into());
            Value::Table(b)
        })
        .collect();
    let mut root = Table::new();
    match dns {
        Some((server, port)) => {
            let mut discover = Table::new();
            discover.insert("dns".into(), NAME.into());
            discover.insert("port".into(), i64::from(port).into());
            discover.insert("interval".into(), "1s".into());
            pool.insert("discover".into(), Value::Table(discover));
            let mut resolver = Table::new();
            let servers = vec![Value::from(server.to_string())];
            resolver.insert("nameservers".into(), Value::Array(servers));
            // dnsmasq answers with TTL 0: this floor is how soon tether sees a change.
            resolver.insert("min_ttl".into(), "200ms".into());
            resolver.insert("timeout".into(), "500ms".into());
            root.insert("resolver".into(), Value::Table(resolver));
        }
        None => {
            pool.insert("backend".into(), Value::Array(backends));
        }
    }
    let mut runtime = Table::new();
    runtime.insert("shutdown_timeout".into(), "2s".into());
    root.insert("runtime".into(), Value::Table(runtime));
    let mut admin = Table::new();
    admin.insert("listen".into(), "127.0.0.1:0".into());
    root.insert("admin".into(), Value::Table(admin));
    let mut listener = Table::new();
    listener.insert("name".into(), "web".into());
    listener.insert("listen".into(), "127.0.0.1:0".into());
    listener.insert("pool".into(), "app".into());
    root.insert(
        "listener".into(),
        Value::Array(vec![Value::Table(listener)]),
    );
    let mut pools = Table::new();
    pools.insert("app".into(), Value::Table(pool));
    root.insert("pool".into(), Value::Table(pools));
    format!(
        "# written by tether-bench for scenario {:?}, cell {}/{}\n{}",
        sc.name,
        affinity,
        axis,
        toml::to_string(&root).expect("a toml table serializes")
    )
}
