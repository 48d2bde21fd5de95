//! Stickiness helpers: a one-pool config with affinity settings, tether's cookie and the
//! `x-tether-affinity` explain header read off replies, and requests that carry cookies.

use std::net::SocketAddr;

use http::{Method, StatusCode};

use super::body;
use super::client::{Http1, Reply};
use super::config::{Config, Listener, Pool};

/// The cookie tether issues for pool `app` unless the config names another.
pub const COOKIE: &str = "tether_app";

/// Characters in every sealed cookie value (33 bytes, base64url without padding).
pub const SEALED_LEN: usize = 44;

/// A config with an admin listener and listener `web` forwarding to `pool` (pool `app`, with
/// its affinity keys and cookie table set), which gets `explain = true` and `backends` as
/// `(id, addr)`.
pub fn config(pool: Pool, backends: &[(&str, SocketAddr)]) -> Config {
    Config::new()
        .admin()
        .listener(Listener::web())
        .pool(pool.set("explain", true).backends(backends))
}

/// How tether says it chose a backend: `x-tether-affinity: WHY; backend=ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explain {
    /// `new`, `hit`, `invalid`, `expired`, `redispatch_down`, ...
    pub why: String,
    /// The id of the backend that served the request.
    pub backend: String,
}

/// The explain header of `reply`; panics when it is missing or malformed, or when it names
/// another backend than the one that answered (`x-backend-id`).
pub fn explain(reply: &Reply) -> Explain {
    let raw = reply
        .headers
        .get("x-tether-affinity")
        .unwrap_or_else(|| {
            panic!(
                "no x-tether-affinity in {} reply; headers {:?}",
                reply.status, reply.headers
            )
        })
        .to_str()
        .expect("ascii explain header");
    let (why, backend) = raw
        .split_once("; backend=")
        .unwrap_or_else(|| panic!("explain header {raw:?} is not `WHY; backend=ID`"));
    let explain = Explain {
        why: why.to_string(),
        backend: backend.to_string(),
    };
    if reply.headers.contains_key("x-backend-id") {
        assert_eq!(
            explain.backend,
            reply.backend_id(),
            "explain header {raw:?} names another backend than the one that answered"
        );
    }
    explain
}

/// Every `Set-Cookie` header value of `reply`, in order.
pub fn set_cookies(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii set-cookie").to_string())
        .collect()
}

/// The value `reply` sets for cookie `name`, if it sets it; panics if it sets it twice.
pub fn issued(reply: &Reply, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    let values: Vec<String> = set_cookies(reply)
        .iter()
        .filter_map(|c| c.strip_prefix(&prefix))
        .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        .collect();
    assert!(
        values.len() <= 1,
        "cookie {name} set {} times: {:?}",
        values.len(),
        set_cookies(reply)
    );
    values.into_iter().next()
}

/// True when `value` looks like a sealed tether cookie: 44 base64url characters.
pub fn is_sealed(value: &str) -> bool {
    value.len() == SEALED_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET path` with `Cookie: cookie` (sent verbatim) when given; the whole reply.
pub async fn get(client: &Http1, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = client.request(Method::GET, path);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let request = request.body(body::empty()).expect("request");
    let response = client
        .send(request)
        .await
        .unwrap_or_else(|err| panic!("GET {path} (cookie {cookie:?}): transport error: {err:?}"));
    Reply::read(response).await
}

/// One client's cookie jar for tether's cookie: sends it when it has one, keeps what tether sets.
#[derive(Debug, Clone)]
pub struct Jar {
    /// Cookie name.
    pub name: String,
    /// Current value, once tether has set one.
    pub value: Option<String>,
}

impl Jar {
    /// An empty jar for cookie `name`.
    pub fn new(name: &str) -> Jar {
        Jar {
            name: name.to_string(),
            value: None,
        }
    }

    /// An empty jar for the default cookie of pool `app`.
    pub fn app() -> Jar {
        Jar::new(COOKIE)
    }

    /// The `Cookie` header this jar sends, if any.
    pub fn header(&self) -> Option<String> {
        self.value.as_ref().map(|v| format!("{}={v}", self.name))
    }

    /// `GET path` carrying the jar's cookie; asserts a 200 and keeps any cookie tether sets.
    pub async fn get(&mut self, client: &Http1, path: &str) -> Reply {
        let reply = get(client, path, self.header().as_deref()).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "GET {path} with {:?}: {}",
            self.header(),
            reply.text()
        );
        if let Some(value) = issued(&reply, &self.name) {
            self.value = Some(value);
        }
        reply
    }
}
