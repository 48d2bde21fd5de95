//! A client for tether's admin API: raw calls for status-code tests, typed helpers for the
//! backend state the other tests poll.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use super::body;
use super::client::{Http1, Reply};

/// How often the polling helpers look at `/status` again.
const POLL: Duration = Duration::from_millis(20);

/// The admin API of one tether, optionally sending a bearer token.
#[derive(Clone)]
pub struct Admin {
    http: Http1,
    token: Option<String>,
}

impl Admin {
    /// A client for the admin listener at `addr`, without a token.
    pub fn new(addr: SocketAddr) -> Admin {
        Admin {
            http: Http1::new(addr),
            token: None,
        }
    }

    /// The same client, sending `Authorization: Bearer <token>` on every call.
    pub fn with_token(&self, token: &str) -> Admin {
        Admin {
            http: self.http.clone(),
            token: Some(token.to_string()),
        }
    }

    /// Sends `method path` with `body` (and the token, if any); the whole reply.
    pub async fn call(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        self.call_with(method, path, body, &[]).await
    }

    /// Like [`Admin::call`], with extra request headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method.clone(), path);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body::full(body)).expect("admin request");
        let response = self
            .http
            .send(request)
            .await
            .unwrap_or_else(|err| panic!("admin {method} {path}: transport error: {err:?}"));
        Reply::read(response).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Bytes::new()).await
    }

    /// `POST path` with an empty body.
    pub async fn post(&self, path: &str) -> Reply {
        self.call(Method::POST, path, Bytes::new()).await
    }

    /// `PUT path` with `body` as sent (not necessarily valid JSON).
    pub async fn put(&self, path: &str, body: &str) -> Reply {
        self.call(Method::PUT, path, body.to_string()).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, Bytes::new()).await
    }

    /// `GET /status`, asserted 200 and parsed.
    pub async fn status(&self) -> Value {
        let reply = self.get("/status").await;
        assert_eq!(reply.status, StatusCode::OK, "/status: {}", reply.text());
        json(&reply)
    }

    /// The `/status` entry of backend `id` in `pool`, if listed.
    pub async fn backend(&self, pool: &str, id: &str) -> Option<Value> {
        backend_in(&self.status().await, pool, id).cloned()
    }

    /// The `/status` entry of backend `id` in `pool`; panics if it is not listed.
    pub async fn expect_backend(&self, pool: &str, id: &str) -> Value {
        let status = self.status().await;
        backend_in(&status, pool, id)
            .cloned()
            .unwrap_or_else(|| panic!("backend {pool}/{id} not in /status: {status}"))
    }

    /// The reported state of backend `id` in `pool`, if it is listed.
    pub async fn state(&self, pool: &str, id: &str) -> Option<String> {
        self.backend(pool, id)
            .await
            .map(|b| b["state"].as_str().expect("state is a string").to_string())
    }

    /// Polls `/status` until backend `id` reports `state`; returns how long that took.
    pub async fn wait_state(
        &self,
        pool: &str,
        id: &str,
        state: &str,
        within: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.state(pool, id).await;
            if now.as_deref() == Some(state) {
                return start.elapsed();
            }
            if start.elapsed() > within {
                panic!(
                    "{pool}/{id} not {state:?} within {within:?} (last: {now:?}); /status: {}",
                    self.status().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `/status` until backend `id`'s numeric `field` equals `want`; returns how long
    /// that took.
    pub async fn wait_count(
        &self,
        pool: &str,
        id: &str,
        field: &str,
        want: u64,
        within: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let now = count(&self.expect_backend(pool, id).await, field);
            if now == want {
                return start.elapsed();
            }
            if start.elapsed() > within {
                panic!("{pool}/{id}: {field} is {now}, not {want}, after {within:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `/status` until backend `id` is no longer listed in `pool`; returns how long that
    /// took, and every state it was seen in on the way (deduplicated, in order).
    pub async fn wait_gone(
        &self,
        pool: &str,
        id: &str,
        within: Duration,
    ) -> (Duration, Vec<String>) {
        let start = Instant::now();
        let mut seen: Vec<String> = Vec::new();
        loop {
            let Some(state) = self.state(pool, id).await else {
                return (start.elapsed(), seen);
            };
            if seen.last() != Some(&state) {
                seen.push(state);
            }
            if start.elapsed() > within {
                panic!(
                    "{pool}/{id} still listed after {within:?} (states seen {seen:?}); /status: {}",
                    self.status().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `GET /metrics`, asserted 200, as text.
    pub async fn metrics(&self) -> String {
        let reply = self.get("/metrics").await;
        assert_eq!(reply.status, StatusCode::OK, "/metrics: {}", reply.text());
        reply.text()
    }
}

/// A reply body parsed as JSON; panics with the body when it is not JSON.
pub fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|err| {
        panic!(
            "{} reply is not JSON ({err}): {:?}",
            reply.status,
            reply.text()
        )
    })
}

/// Backend `id` of `pool` in a parsed `/status`.
pub fn backend_in<'a>(status: &'a Value, pool: &str, id: &str) -> Option<&'a Value> {
    status["pools"][pool]["backends"]
        .as_array()
        .unwrap_or_else(|| panic!("no pools.{pool}.backends array in /status: {status}"))
        .iter()
        .find(|b| b["id"] == id)
}

/// The ids `pool` lists in a parsed `/status`, in order.
pub fn ids_in(status: &Value, pool: &str) -> Vec<String> {
    status["pools"][pool]["backends"]
        .as_array()
        .unwrap_or_else(|| panic!("no pools.{pool}.backends array in /status: {status}"))
        .iter()
        .map(|b| b["id"].as_str().expect("id is a string").to_string())
        .collect()
}

/// A numeric field of a backend's `/status` entry.
pub fn count(backend: &Value, field: &str) -> u64 {
    backend[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number in {backend}"))
}
