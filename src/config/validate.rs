//! Reading a config file: the structural pass deserializes the raw tree (collecting syntax,
//! unknown-key and wrong-type problems), then validation walks it and turns it into a typed [`Config`], collecting every semantic problem.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::pool;
use super::problems::{ConfigErrors, Problems};
use super::raw::{self, RawConfig};
use super::route::validate_routes;
use super::structure;
use super::suggest;
use super::types::*;

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_in(&text, base)
}

/// Parses and validates config text; relative file paths are taken from the current directory.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_in(text, Path::new(""))
}

/// Parses and validates config text; relative file paths are resolved against `base`.
pub fn parse_in(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let structure = structure::parse(text);
    let Some(raw) = structure.raw else {
        let mut list = structure.problems;
        list.sort_by_key(|(line, _)| *line);
        return Err(ConfigErrors(list.into_iter().map(|(_, msg)| msg).collect()));
    };
    let mut p = Problems::new(text);
    let config = validate(&mut p, raw, base);
    // Problems on a line the structural pass took out are its echoes (an `addr` that was
    // `8080` reads as `""` to validation).
    p.list.retain(|(line, _)| !structure.touched.contains(line));
    p.list.extend(structure.problems);
    match config {
        Some(config) if p.list.is_empty() => Ok(config),
        _ => {
            // Report in file order, as an editor would show them.
            p.list.sort_by_key(|(line, _)| *line);
            Err(ConfigErrors(
                p.list.into_iter().map(|(_, msg)| msg).collect(),
            ))
        }
    }
}

/// Checks a listener's `tls` table and loads its certificates, so `check` catches bad files.
fn validate_tls(
    p: &mut Problems<'_>,
    key: &str,
    t: &Spanned<raw::RawTls>,
    base: &Path,
) -> Vec<CertFiles> {
    let raw = t.get_ref();
    let pairs: Vec<(String, String)> = match (&raw.cert, &raw.key, &raw.certs) {
        (Some(c), Some(k), None) => vec![(c.clone(), k.clone())],
        (None, None, Some(list)) if !list.is_empty() => list
            .iter()
            .map(|c| (c.cert.clone(), c.key.clone()))
            .collect(),
        _ => {
            p.add(
                key,
                t,
                "expected { cert = \"...\", key = \"...\" } or { certs = [{ cert, key }, ...] }",
            );
            return Vec::new();
        }
    };
    let files: Vec<CertFiles> = pairs
        .into_iter()
        .map(|(cert, key)| CertFiles {
            cert: crate::tls::resolve(base, Path::new(&cert)),
            key: crate::tls::resolve(base, Path::new(&key)),
        })
        .collect();
    if let Err(e) = crate::tls::acceptor(&files) {
        p.add(key, t, e);
    }
    files
}

/// The typed config, or `None` when `p` holds problems.
fn validate(p: &mut Problems<'_>, raw: RawConfig, base: &Path) -> Option<Config> {
    let runtime = RuntimeConfig {
        threads: raw.runtime.threads.unwrap_or(0),
        shutdown_timeout: p.duration(
            "runtime.shutdown_timeout",
            &raw.runtime.shutdown_timeout,
            Duration::from_secs(30),
        ),
    };

    let admin = raw.admin.as_ref().and_then(|a| {
        let listen = p.addr("admin.listen", &a.listen)?;
        let token = a.token.as_ref().map(|t| t.get_ref().clone());
        if let Some(t) = &a.token {
            if !t.get_ref().bytes().all(|b| b.is_ascii_graphic()) {
                p.add(
                    "admin.token",
                    t,
                    "must be visible ASCII without spaces (clients send it as a bearer token)",
                );
            } else if t.get_ref().len() < 16 {
                p.add("admin.token", t, "must be at least 16 characters");
            }
        }
        if token.is_none() && !listen.ip().is_loopback() {
            p.add(
                "admin.listen",
                &a.listen,
                "the admin API is bound off loopback: set admin.token (a bearer token) too",
            );
        }
        Some(AdminConfig { listen, token })
    });

    let resolver = super::discover::validate_resolver(p, raw.resolver.as_ref());
    let mut pools = BTreeMap::new();
    for (name, rp) in &raw.pool {
        if let Some(pool) = pool::validate_pool(p, name, rp, base) {
            pools.insert(name.clone(), pool);
        }
    }

    if raw.listener.is_empty() {
        p.add_plain("listener", "at least one [[listener]] is required");
    }
    let mut listeners = Vec::new();
    let mut names = HashSet::new();
    for (i, rl) in raw.listener.iter().enumerate() {
        let key = format!("listener[{i}]");
        let name = rl.name.clone().unwrap_or_else(|| format!("listener{i}"));
        if !names.insert(name.clone()) {
            p.add_plain(
                &format!("{key}.name"),
                format_args!("duplicate listener name {name:?}"),
            );
        }
        let listen = p.addr(&format!("{key}.listen"), &rl.listen);
        match &rl.pool {
            Some(pool) if !raw.pool.contains_key(pool.get_ref()) => p.add(
                &format!("{key}.pool"),
                pool,
                format_args!(
                    "no pool named {:?} (define [pool.{}])",
                    pool.get_ref(),
                    pool.get_ref()
                ),
            ),
            None if rl.route.is_empty() => p.add(
                &key,
                &rl.listen,
                "needs a pool (where requests go) or at least one [[listener.route]]",
            ),
            _ => {}
        }
        let routes = validate_routes(p, &key, &rl.route, |name| raw.pool.contains_key(name));
        let max_connections = match &rl.max_connections {
            Some(v) if *v.get_ref() == 0 => {
                p.add(&format!("{key}.max_connections"), v, "must be at least 1");
                1
            }
            Some(v) => *v.get_ref(),
            None => 10_000,
        };
        let max_header_size = match &rl.max_header_size {
            Some(v) if !(8192..=1 << 20).contains(v.get_ref()) => {
                p.add(
                    &format!("{key}.max_header_size"),
                    v,
                    "must be between 8192 and 1048576 bytes",
                );
                32 * 1024
            }
            Some(v) => *v.get_ref(),
            None => 32 * 1024,
        };
        let header_timeout = p.duration(
            &format!("{key}.header_timeout"),
            &rl.header_timeout,
            Duration::from_secs(10),
        );
        let idle_timeout = p.duration(
            &format!("{key}.idle_timeout"),
            &rl.idle_timeout,
            Duration::from_secs(60),
        );
        let idle_release = p.duration_or_zero(
            &format!("{key}.idle_release"),
            &rl.idle_release,
            Duration::from_secs(1),
        );
        if let Some(listen) = listen {
            let tls = rl
                .tls
                .as_ref()
                .map(|t| validate_tls(p, &format!("{key}.tls"), t, base))
                .unwrap_or_default();
            listeners.push(ListenerConfig {
                name,
                listen,
                pool: rl.pool.as_ref().map(|p| p.get_ref().clone()),
                routes,
                max_connections,
                max_header_size,
                header_timeout,
                idle_timeout,
                idle_release: (!idle_release.is_zero()).then_some(idle_release),
                tls,
                proxy_protocol: rl.proxy_protocol.unwrap_or(false),
                min_body_rate: rl.min_body_rate.unwrap_or(1024),
                max_connections_per_ip: rl.max_connections_per_ip.unwrap_or(0),
            });
        }
    }

    let log = LogConfig {
        format: match raw.log.as_ref().and_then(|l| l.format.as_ref()) {
            None => LogFormat::Text,
            Some(f) => match f.get_ref().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    p.add(
                        "log.format",
                        f,
                        suggest::unknown_value("log format", other, &["text", "json"]),
                    );
                    LogFormat::Text
                }
            },
        },
    };

    p.list.is_empty().then(|| Config {
        runtime,
        admin,
        listeners,
        pools,
        resolver,
        log,
        warnings: std::mem::take(&mut p.warnings),
    })
}
