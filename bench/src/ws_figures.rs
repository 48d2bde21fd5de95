//! What users holding WebSockets saw: connections opened and dropped (per backend, with the
//! span of the drop times), reconnections and where they landed, messages echoed and lost.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::load::{LoadResult, Outcome, Sample};

/// The connections one backend dropped.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Drops {
    /// How many.
    pub count: u64,
    /// The first drop (s since the load began).
    pub first_s: f64,
    /// The last drop (s).
    pub last_s: f64,
}

/// A WebSocket cell's figures.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct WsFigures {
    /// Connections opened.
    pub opened: u64,
    /// Attempts that failed.
    pub failed_opens: u64,
    /// Connections opened after one of the same user had dropped.
    pub reconnects: u64,
    /// Where they landed, by backend.
    pub reconnected_to: BTreeMap<String, u64>,
    /// Drops, by the backend that held the connection.
    pub drops: BTreeMap<String, Drops>,
    /// Messages echoed.
    pub echoes: u64,
    /// Messages sent whose echo never came: the connection dropped first.
    pub messages_lost: u64,
}

fn kind(x: &Sample, k: &str) -> bool {
    x.ws == Some(k)
}

/// The figures of a cell whose users held WebSockets (`None`: none did).
pub fn ws_figures(r: &LoadResult) -> Option<WsFigures> {
    if !r.samples.iter().any(|x| x.ws.is_some()) {
        return None;
    }
    let mut f = WsFigures::default();
    let mut dropped: HashMap<u32, bool> = HashMap::new();
    for x in &r.samples {
        let ok = x.outcome == Outcome::Ok;
        let backend = x.backend.as_deref().unwrap_or("?").to_string();
        if kind(x, "open") && ok {
            f.opened += 1;
            if dropped.get(&x.identity).copied().unwrap_or(false) {
                f.reconnects += 1;
                *f.reconnected_to.entry(backend).or_default() += 1;
            }
        } else if kind(x, "open") {
            f.failed_opens += 1;
        } else if kind(x, "echo") && ok {
            f.echoes += 1;
        } else if kind(x, "echo") {
            f.messages_lost += 1;
        } else if kind(x, "drop") {
            dropped.insert(x.identity, true);
            let t = x.at.as_secs_f64();
            let d = f.drops.entry(backend).or_insert(Drops {
                count: 0,
                first_s: t,
                last_s: t,
            });
            d.count += 1;
            d.first_s = d.first_s.min(t);
            d.last_s = d.last_s.max(t);
        }
    }
    Some(f)
}

/// Connections `id` held at `t` (s): opened there before `t` and not dropped before `t`.
pub fn open_on(r: &LoadResult, id: &str, t: f64) -> u64 {
    let mut on: HashMap<u32, bool> = HashMap::new();
    for x in r.samples.iter().filter(|x| x.at.as_secs_f64() < t) {
        if kind(x, "open") && x.outcome == Outcome::Ok {
            on.insert(x.identity, x.backend.as_deref() == Some(id));
        } else if kind(x, "drop") {
            on.insert(x.identity, false);
        }
    }
    on.values().filter(|v| **v).count() as u64
}

/// The times (s) of the drops of connections `id` held, at or after `t`.
pub fn drops_after(r: &LoadResult, id: &str, t: f64) -> Vec<f64> {
    r.samples
        .iter()
        .filter(|x| kind(x, "drop") && x.backend.as_deref() == Some(id))
        .map(|x| x.at.as_secs_f64())
        .filter(|at| *at >= t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn ws(user: u32, kind: &'static str, at_ms: u64, backend: &str) -> Sample {
        let t = Duration::from_millis(at_ms);
        Sample {
            identity: user,
            ws: Some(kind),
            backend: Some(Arc::from(backend)),
            outcome: if kind == "drop" {
                Outcome::Error("ws dropped".into())
            } else {
                Outcome::Ok
            },
            ..Sample::timed(t, t, t)
        }
    }

    #[test]
    fn drops_and_reconnects_are_told_by_backend() {
        let r = LoadResult {
            samples: vec![
                ws(1, "open", 0, "app-2"),
                ws(2, "open", 0, "app-2"),
                ws(3, "open", 0, "app-1"),
                ws(1, "drop", 2000, "app-2"),
                ws(2, "drop", 2001, "app-2"),
                ws(1, "open", 2002, "app-1"),
                ws(2, "open", 2003, "app-3"),
            ],
            ..Default::default()
        };
        assert_eq!(open_on(&r, "app-2", 1.5), 2);
        assert_eq!(open_on(&r, "app-2", 2.5), 0);
        assert_eq!(drops_after(&r, "app-2", 1.0).len(), 2);
        let f = ws_figures(&r).unwrap();
        assert_eq!((f.opened, f.reconnects), (5, 2));
        assert_eq!(f.drops["app-2"].count, 2);
        assert_eq!(f.reconnected_to.get("app-2"), None);
    }
}
