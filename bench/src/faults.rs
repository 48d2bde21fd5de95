//! The demo shop's fault switches: an added delay, an error rate and a hang, set at start from
//! flags and later by `POST /fault`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};

use crate::reply::{json, query, text, Resp};

/// Live fault switches.
#[derive(Default)]
pub struct Faults {
    delay_ms: AtomicU64,
    /// Error rate in parts per million, so it fits an atomic integer.
    error_ppm: AtomicU64,
    hang: AtomicBool,
}

impl Faults {
    /// Switches as the flags set them.
    pub fn new(delay_ms: u64, error_rate: f64) -> Faults {
        let f = Faults::default();
        f.delay_ms.store(delay_ms, Ordering::Relaxed);
        f.error_ppm
            .store((error_rate.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Relaxed);
        f
    }

    /// Applies the switches; `Some` is the response that replaces the real one.
    pub async fn injected(&self) -> Option<Resp> {
        if self.hang.load(Ordering::Relaxed) {
            // Never answer: the client or the proxy must give up on its own timeout.
            std::future::pending::<()>().await;
        }
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let ppm = self.error_ppm.load(Ordering::Relaxed);
        (ppm > 0 && fastrand::u64(0..1_000_000) < ppm)
            .then(|| text(StatusCode::INTERNAL_SERVER_ERROR, "injected fault\n"))
    }

    /// `POST /fault?delay_ms=N&error_rate=F&hang=0|1` sets switches (absent ones are kept);
    /// `GET /fault` shows them.
    pub fn handle(&self, req: &Request<Incoming>) -> Resp {
        if req.method() == Method::POST {
            for (k, v) in query(req) {
                match k {
                    "delay_ms" => match v.parse() {
                        Ok(n) => self.delay_ms.store(n, Ordering::Relaxed),
                        Err(_) => return text(StatusCode::BAD_REQUEST, "bad delay_ms\n"),
                    },
                    "error_rate" => match v.parse::<f64>() {
                        Ok(r) if (0.0..=1.0).contains(&r) => {
                            self.error_ppm.store((r * 1e6) as u64, Ordering::Relaxed)
                        }
                        _ => return text(StatusCode::BAD_REQUEST, "bad error_rate\n"),
                    },
                    "hang" => self.hang.store(v == "1" || v == "true", Ordering::Relaxed),
                    _ => return text(StatusCode::BAD_REQUEST, &format!("unknown switch {k}\n")),
                }
            }
        }
        json(
            StatusCode::OK,
            serde_json::json!({
                "delay_ms": self.delay_ms.load(Ordering::Relaxed),
                "error_rate": self.error_ppm.load(Ordering::Relaxed) as f64 / 1e6,
                "hang": self.hang.load(Ordering::Relaxed),
            }),
        )
    }
}
