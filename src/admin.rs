//! The admin API: a separate listener for tether's own health and the backends' live state.
//!
//! This version serves `GET /healthz` and `GET /status`; it is read-only, so it has no
//! authentication yet and should stay on loopback.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::proxy::{local_response, Shared};
use crate::server::stopped;

/// Serves the admin API on `tcp` until `stop` turns true.
pub async fn serve(tcp: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = stopped(&mut stop) => break,
        };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, Infallible>(route(&shared, &req)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<ProxyBody> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => local_response(StatusCode::OK, "ok\n"),
        (&Method::GET, "/status") => {
            let mut resp = Response::new(ProxyBody::local(status_json(shared)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        (_, "/healthz" | "/status") => {
            local_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        (_, path) => local_response(
            StatusCode::NOT_FOUND,
            &format!("no admin endpoint {path}\n"),
        ),
    }
}

/// `{"pools": {"<pool>": {"backends": [{"id", "addr", "weight", "state", "in_flight", "requests"}]}}}`
fn status_json(shared: &Shared) -> String {
    let routes = shared.routes.load();
    let mut names: Vec<&String> = routes.pools.keys().collect();
    names.sort();
    let mut out = String::from("{\"pools\":{");
    for (pi, name) in names.into_iter().enumerate() {
        let pool = &routes.pools[name];
        if pi > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{{\"backends\":[", json_str(name));
        for (bi, b) in pool.backends.iter().enumerate() {
            if bi > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"id\":{},\"addr\":\"{}\",\"weight\":{},\"state\":\"up\",\"in_flight\":{},\"requests\":{},\"idle_connections\":{}}}",
                json_str(&b.id),
                b.addr,
                b.weight,
                b.in_flight(),
                b.requests(),
                b.idle.len()
            );
        }
        out.push_str("]}");
    }
    out.push_str("}}\n");
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
