//! Prometheus text exposition (format 0.0.4) of backend and listener counters.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::backend::State;
use crate::control::Control;
use crate::stats::LATENCY_BUCKETS;

/// Renders every metric family.
pub fn render(control: &Control) -> String {
    let routes = control.shared.snapshot.load();
    let mut pools: Vec<_> = routes.pools.iter().collect();
    pools.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(4096);

    let families: [(&str, &str, &str); 12] = [
        (
            "tether_backend_responses_total",
            "counter",
            "Responses received from the backend, by status class.",
        ),
        (
            "tether_backend_failures_total",
            "counter",
            "Attempts that produced no response, by kind (connect, timeout, upstream).",
        ),
        (
            "tether_backend_in_flight",
            "gauge",
            "Requests in flight to the backend (until the response body ends).",
        ),
        (
            "tether_backend_state",
            "gauge",
            "1 for the backend's current state, 0 for the others.",
        ),
        (
            "tether_backend_health_transitions_total",
            "counter",
            "Active health check verdict changes.",
        ),
        (
            "tether_backend_ejections_total",
            "counter",
            "Passive ejections after consecutive failures.",
        ),
        (
            "tether_backend_pins_total",
            "counter",
            "Clients newly pinned to the backend.",
        ),
        (
            "tether_backend_redispatches_total",
            "counter",
            "Pinned clients moved away from the backend.",
        ),
        (
            "tether_backend_pinned_while_draining_total",
            "counter",
            "Requests from pinned clients that arrived while the backend was draining.",
        ),
        (
            "tether_backend_queue_full_total",
            "counter",
            "Requests answered 503 at the backend's max_connections (queue full or queue_timeout).",
        ),
        (
            "tether_backend_retries_refused_total",
            "counter",
            "Failed attempts not retried elsewhere: max_attempts reached or retry budget spent.",
        ),
        (
            "tether_backend_response_seconds",
            "histogram",
            "Time from sending the request to the backend's response headers.",
        ),
    ];
    for (name, kind, help) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (pool_name, pool) in &pools {
            // One series set per id: an earlier instance still draining after an address change
            // shares the current one's counters, and its requests count in `in_flight`.
            for g in pool.by_id() {
                let b = g.current;
                let labels = format!(
                    "pool=\"{}\",backend=\"{}\",addr=\"{}\"",
                    escape(pool_name),
                    escape(&b.id),
                    b.addr
                );
                let s = b.stats.snapshot();
                match name {
                    "tether_backend_responses_total" => {
                        for (i, n) in s.responses.iter().enumerate() {
                            let _ = writeln!(out, "{name}{{{labels},class=\"{}xx\"}} {n}", i + 1);
                        }
                    }
                    "tether_backend_failures_total" => {
                        for (kind, n) in [
                            ("connect", s.connect_errors),
                            ("timeout", s.timeouts),
                            ("upstream", s.upstream_errors),
                        ] {
                            let _ = writeln!(out, "{name}{{{labels},kind=\"{kind}\"}} {n}");
                        }
                    }
                    "tether_backend_in_flight" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", g.in_flight());
                    }
                    "tether_backend_state" => {
                        let now = b.state(&pool.settings.drain);
                        for st in State::ALL {
                            let v = u8::from(st == now);
                            let _ =
                                writeln!(out, "{name}{{{labels},state=\"{}\"}} {v}", st.as_str());
                        }
                    }
                    "tether_backend_health_transitions_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.health_transitions);
                    }
                    "tether_backend_ejections_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.ejections);
                    }
                    "tether_backend_pins_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.pins);
                    }
                    "tether_backend_redispatches_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.redispatches);
                    }
                    "tether_backend_retries_refused_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.retries_refused);
                    }
                    "tether_backend_queue_full_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.queue_full);
                    }
                    "tether_backend_pinned_while_draining_total" => {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", s.pinned_while_draining);
                    }
                    _ => {
                        let (buckets, sum) = b.stats.latency();
                        let mut cumulative = 0;
                        for (i, n) in buckets.iter().enumerate() {
                            cumulative += n;
                            let le = LATENCY_BUCKETS
                                .get(i)
                                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                            let _ =
                                writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
                        }
                        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
                        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
                    }
                }
            }
        }
    }

    let listeners = control.listener_stats();
    let _ = writeln!(
        out,
        "# HELP tether_listener_connections_total Client connections accepted."
    );
    let _ = writeln!(out, "# TYPE tether_listener_connections_total counter");
    for (name, s) in &listeners {
        let _ = writeln!(
            out,
            "tether_listener_connections_total{{listener=\"{}\"}} {}",
            escape(name),
            s.accepted.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tether_listener_connections Client connections open now."
    );
    let _ = writeln!(out, "# TYPE tether_listener_connections gauge");
    for (name, s) in &listeners {
        let _ = writeln!(
            out,
            "tether_listener_connections{{listener=\"{}\"}} {}",
            escape(name),
            s.active.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tether_listener_idle_releases_total Idle HTTP/1 connections that gave their parser and buffers back (idle_release)."
    );
    let _ = writeln!(out, "# TYPE tether_listener_idle_releases_total counter");
    for (name, s) in &listeners {
        let _ = writeln!(
            out,
            "tether_listener_idle_releases_total{{listener=\"{}\"}} {}",
            escape(name),
            s.idle_releases.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tether_route_requests_total Requests a listener's route sent to its pool."
    );
    let _ = writeln!(out, "# TYPE tether_route_requests_total counter");
    for l in &routes.config.listeners {
        let Some(table) = routes.listeners.get(&l.name) else {
            continue;
        };
        for r in &table.routes {
            let _ = writeln!(
                out,
                "tether_route_requests_total{{listener=\"{}\",route=\"{}\",pool=\"{}\"}} {}",
                escape(&l.name),
                escape(&r.config.name),
                escape(&r.config.pool),
                r.requests.load(Ordering::Relaxed)
            );
        }
    }
    crate::discovery::write_metrics(&mut out, &control.discovery_stats());
    out
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
