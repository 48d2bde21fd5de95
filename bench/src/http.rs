//! HTTP/1.1 client plumbing shared by the load generator and the runner: a connection bound to
//! a chosen source address, a buffered reply, a one-shot call for admin APIs, and a cookie jar.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, COOKIE, HOST, SET_COOKIE};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

/// The sending half of one keep-alive connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// A response read to its end.
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// Opens a connection to `target`, from `source` when given (a distinct 127.x.y.z per virtual
/// user is how ip_hash sees distinct clients on loopback).
pub async fn connect(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<Sender> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(target).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Builds a request with the Host header HTTP/1.1 requires.
pub fn request(
    method: Method,
    target: SocketAddr,
    path: &str,
    body: Bytes,
    cookie: Option<&str>,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().expect("paths built by the lab are valid");
    let headers = req.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(&target.to_string()).expect("an address is a valid header"),
    );
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(COOKIE, c);
    }
    req
}

/// Sends `req` on `sender` and reads the whole response.
pub async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<Reply, hyper::Error> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// One request on a fresh connection, for admin and fault calls: returns status and body.
pub async fn call(
    target: SocketAddr,
    method: Method,
    path: &str,
    body: Option<String>,
    within: Duration,
) -> anyhow::Result<(u16, String)> {
    let work = async {
        let mut sender = connect(target, None)
            .await
            .with_context(|| format!("connect {target}"))?;
        let body = body.map(Bytes::from).unwrap_or_default();
        let mut req = request(method, target, path, body, None);
        req.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        let reply = send(&mut sender, req).await?;
        Ok::<_, anyhow::Error>((
            reply.status,
            String::from_utf8_lossy(&reply.body).trim().to_string(),
        ))
    };
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {target} within {within:?}"))?
}

/// A client's cookies: what `Set-Cookie` stored, sent back in a `Cookie` header.
#[derive(Default, Debug, Clone)]
pub struct Jar {
    cookies: Vec<(String, String)>,
}

impl Jar {
    /// Stores every `Set-Cookie` in `headers`; `Max-Age=0` deletes the cookie.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let mut parts = value.split(';');
            let Some((name, val)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.cookies.retain(|(n, _)| n != name);
            if !expired {
                self.cookies.push((name.to_string(), val.to_string()));
            }
        }
    }

    /// The `Cookie` header value, if any cookie is stored.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        Some(pairs.join("; "))
    }

    /// Forgets every cookie (a new visitor).
    pub fn clear(&mut self) {
        self.cookies.clear();
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jar_stores_replaces_and_expires() {
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, "sid=abc; Path=/; HttpOnly".parse().unwrap());
        h.append(SET_COOKIE, "tether=x1; Max-Age=3600".parse().unwrap());
        let mut jar = Jar::default();
        jar.absorb(&h);
        assert_eq!(jar.header().unwrap(), "sid=abc; tether=x1");
        let mut h = HeaderMap::new();
        h.append(SET_COOKIE, "sid=def".parse().unwrap());
        h.append(SET_COOKIE, "tether=; Max-Age=0".parse().unwrap());
        jar.absorb(&h);
        assert_eq!(jar.header().unwrap(), "sid=def");
    }

    #[test]
    fn cookie_lookup() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; sid=abc".parse().unwrap());
        assert_eq!(cookie(&h, "sid"), Some("abc"));
        assert_eq!(cookie(&h, "cart"), None);
    }
}
