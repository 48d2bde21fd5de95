//! Carries out timeline events: signals to backend processes (the demo shop's or the user's
//! app's), restarts at the same address, admin API calls to every tether, changes of the DNS
//! answer a discovering pool follows, and fault switches on a demo backend.

use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;

use super::fleet::Fleet;
use crate::scenario::{Action, EventSpec, REDIS};

/// Carries out one event; the `Ok` string says what was done, for the report.
pub async fn apply(fleet: &mut Fleet, e: &EventSpec) -> anyhow::Result<String> {
    let id = e.backend.as_str();
    if id == REDIS {
        return redis(fleet, e.action).await;
    }
    match e.action {
        Action::Kill => {
            fleet.stopping(id);
            let p = fleet.proc_of(id)?;
            anyhow::ensure!(p.running(), "{id} is not running");
            p.kill().await?;
            Ok(format!("SIGKILL pid {}", p.pid))
        }
        Action::Freeze | Action::Resume => {
            let sig = if e.action == Action::Freeze {
                "STOP"
            } else {
                "CONT"
            };
            let p = fleet.proc_of(id)?;
            p.signal(sig).await?;
            Ok(format!("SIG{sig} pid {}", p.pid))
        }
        Action::Start => {
            let addr = fleet.start_backend(id).await?;
            Ok(format!("started at {addr}"))
        }
        Action::Stop => {
            fleet.stopping(id);
            let p = fleet.proc_of(id)?;
            let how = p.stop(Duration::from_secs(2)).await;
            Ok(format!("pid {} {how}", p.pid))
        }
        Action::Restart => {
            fleet.stopping(id);
            let p = fleet.proc_of(id)?;
            let (old, how) = (p.pid, p.stop(Duration::from_secs(2)).await);
            let addr = fleet.start_backend(id).await?;
            Ok(format!("pid {old} {how}; new process at {addr}"))
        }
        Action::Add => {
            let addr = match fleet.running_addr(id)? {
                Some(a) => a,
                None => fleet.start_backend(id).await?,
            };
            let body =
                serde_json::json!({"addr": addr.to_string(), "weight": e.weight.unwrap_or(1)});
            fleet
                .admin_all(
                    Method::PUT,
                    &format!("/pools/app/backends/{id}"),
                    Some(body.to_string()),
                )
                .await
        }
        Action::Drain | Action::Enable | Action::Disable => {
            let path = format!(
                "/pools/app/backends/{}/{}",
                fleet.tether_id(id),
                e.action.name()
            );
            fleet.admin_all(Method::POST, &path, None).await
        }
        Action::Remove => {
            fleet
                .admin_all(Method::DELETE, &format!("/pools/app/backends/{id}"), None)
                .await
        }
        Action::DnsAdd => {
            let started = match fleet.running_addr(id)? {
                Some(_) => String::new(),
                None => format!("started at {}; ", fleet.start_backend(id).await?),
            };
            Ok(format!("{started}{}", fleet.set_in_dns(id, true).await?))
        }
        Action::DnsRemove => fleet.set_in_dns(id, false).await,
        Action::Fault => {
            let addr = fleet.addr(id).context("backend has no address yet")?;
            let mut q = Vec::new();
            if let Some(d) = e.delay_ms {
                q.push(format!("delay_ms={d}"));
            }
            if let Some(r) = e.error_rate {
                q.push(format!("error_rate={r}"));
            }
            if let Some(h) = e.hang {
                q.push(format!("hang={}", u8::from(h)));
            }
            let path = format!("/fault?{}", q.join("&"));
            let (status, body) =
                crate::http::call(addr, Method::POST, &path, None, Duration::from_secs(2)).await?;
            anyhow::ensure!(status == 200, "POST {path}: HTTP {status}: {body}");
            Ok(format!("POST {path}: {body}"))
        }
    }
}

/// An event on the cell's own redis-server: the store `shared` sessions live in.
async fn redis(fleet: &mut Fleet, action: Action) -> anyhow::Result<String> {
    match action {
        Action::Kill => {
            let p = fleet.redis_proc()?;
            anyhow::ensure!(p.running(), "redis is not running");
            p.kill().await?;
            Ok(format!("SIGKILL redis pid {}", p.pid))
        }
        Action::Freeze | Action::Resume => {
            let sig = if action == Action::Freeze {
                "STOP"
            } else {
                "CONT"
            };
            let p = fleet.redis_proc()?;
            p.signal(sig).await?;
            Ok(format!("SIG{sig} redis pid {}", p.pid))
        }
        Action::Stop => {
            let p = fleet.redis_proc()?;
            let how = p.stop(Duration::from_secs(2)).await;
            Ok(format!("redis pid {} {how}", p.pid))
        }
        Action::Start => fleet.restart_redis().await,
        a => anyhow::bail!("{} cannot act on redis", a.name()),
    }
}
