//! HTTP clients the tests talk to tether with: HTTP/1.1 (pooled), h2c prior knowledge, raw TCP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::backend::Echo;
use super::body::{self, TestBody};

/// No single test request may take longer than this: a hang is a failure, not a wait.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(15);

/// A complete response: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    /// Response status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The full response body.
    pub body: Bytes,
}

impl Reply {
    /// Reads a response's body to the end.
    pub async fn read(response: Response<Incoming>) -> Reply {
        let (parts, incoming) = response.into_parts();
        let body = incoming
            .collect()
            .await
            .expect("read response body")
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The `x-backend-id` header: which test backend answered.
    pub fn backend_id(&self) -> String {
        self.headers
            .get("x-backend-id")
            .map(|v| v.to_str().expect("ascii backend id").to_string())
            .unwrap_or_else(|| {
                panic!(
                    "no x-backend-id in {} reply: {:?}",
                    self.status,
                    self.text()
                )
            })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as a backend `/echo` dump.
    pub fn echo(&self) -> Echo {
        assert_eq!(self.status, StatusCode::OK, "echo failed: {}", self.text());
        Echo::parse(&self.body)
    }
}

/// A pooled HTTP/1.1 keep-alive client aimed at one address.
#[derive(Clone)]
pub struct Http1 {
    client: Client<HttpConnector, TestBody>,
    addr: SocketAddr,
}

impl Http1 {
    /// A client for `addr`; it opens connections lazily and keeps them alive.
    pub fn new(addr: SocketAddr) -> Http1 {
        let client = Client::builder(TokioExecutor::new())
            // A request tether dropped must show up as an error, not be resent silently.
            .retry_canceled_requests(false)
            .build_http();
        Http1 { client, addr }
    }

    /// `GET path`, whole reply.
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, body::empty()).await
    }

    /// `POST path` with `body`, whole reply.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.call(Method::POST, path, body::full(body)).await
    }

    /// Sends `method path` with `body` and reads the whole reply; panics on transport errors
    /// and after [`REQUEST_DEADLINE`].
    pub async fn call(&self, method: Method, path: &str, body: TestBody) -> Reply {
        let what = format!("{method} {path}");
        let request = self.request(method, path).body(body).expect("request");
        let response = self.send(request).await.unwrap_or_else(|err| {
            panic!("{what} via tether {}: transport error: {err:?}", self.addr)
        });
        tokio::time::timeout(REQUEST_DEADLINE, Reply::read(response))
            .await
            .unwrap_or_else(|_| panic!("{what}: body not complete within {REQUEST_DEADLINE:?}"))
    }

    /// A request builder with the URI pointed at tether.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path))
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &self,
        request: Request<TestBody>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        tokio::time::timeout(REQUEST_DEADLINE, self.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("no response headers within {REQUEST_DEADLINE:?}"))
    }
}

/// One HTTP/2 connection with prior knowledge (h2c); clone it for concurrent streams.
#[derive(Clone)]
pub struct H2c {
    sender: hyper::client::conn::http2::SendRequest<TestBody>,
}

impl H2c {
    /// Opens a TCP connection to `addr` and starts HTTP/2 on it without upgrade.
    pub async fn connect(addr: SocketAddr) -> H2c {
        let stream = TcpStream::connect(addr).await.expect("connect for h2c");
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2c handshake");
        tokio::spawn(connection);
        H2c { sender }
    }

    /// `GET uri` (absolute: its authority becomes `:authority`), whole reply.
    pub async fn get(&mut self, uri: &str) -> Reply {
        self.get_with_host(uri, None).await
    }

    /// `GET uri` with a `Host` header beside `:authority` when `host` is given.
    pub async fn get_with_host(&mut self, uri: &str, host: Option<&str>) -> Reply {
        let mut request = Request::get(uri);
        if let Some(host) = host {
            request = request.header(http::header::HOST, host);
        }
        let request = request.body(body::empty()).expect("request");
        self.sender.ready().await.expect("h2 connection ready");
        let response = tokio::time::timeout(REQUEST_DEADLINE, self.sender.send_request(request))
            .await
            .unwrap_or_else(|_| panic!("GET {uri} over h2c: no response in time"))
            .unwrap_or_else(|err| panic!("GET {uri} over h2c: {err:?}"));
        tokio::time::timeout(REQUEST_DEADLINE, Reply::read(response))
            .await
            .unwrap_or_else(|_| panic!("GET {uri} over h2c: body not complete in time"))
    }
}

/// A raw HTTP/1.1 connection, for what a well-behaved client library will not do:
/// stall mid-head, send odd headers, or watch the server close an idle connection.
pub struct RawConn {
    stream: TcpStream,
    buffered: Vec<u8>,
}

/// A response read off a [`RawConn`].
#[derive(Debug)]
pub struct RawResponse {
    /// Status code from the status line.
    pub status: u16,
    /// Header lines as (lowercase name, value).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was chunked.
    pub body: Vec<u8>,
}

impl RawConn {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect(addr).await.expect("raw connect");
        RawConn {
            stream,
            buffered: Vec::new(),
        }
    }

    /// The client side of the connection, as tether sees it in `client.addr`.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Writes raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads one response; `Err` if the connection ends or errors first, or after 10 s.
    pub async fn read_response(&mut self) -> std::io::Result<RawResponse> {
        tokio::time::timeout(Duration::from_secs(10), self.read_response_inner())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response"))?
    }

    /// Waits for the server to close the connection, discarding anything it sends; returns
    /// how long that took, or `None` if it is still open after `within`.
    pub async fn closed_within(&mut self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut scratch = [0u8; 4096];
        loop {
            let left = within.checked_sub(start.elapsed())?;
            match tokio::time::timeout(left, self.stream.read(&mut scratch)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut scratch = [0u8; 16 * 1024];
        let n = self.stream.read(&mut scratch).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buffered.extend_from_slice(&scratch[..n]);
        Ok(())
    }

    async fn read_line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = self.buffered.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buffered.drain(..end + 2).collect();
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            self.fill().await?;
        }
    }

    async fn read_exact_buffered(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buffered.len() < n {
            self.fill().await?;
        }
        Ok(self.buffered.drain(..n).collect())
    }

    async fn read_response_inner(&mut self) -> std::io::Result<RawResponse> {
        let status_line = self.read_line().await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let size_line = self.read_line().await?;
                let size_hex = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_hex, 16)
                    .map_err(|_| bad(format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    while !self.read_line().await?.is_empty() {}
                    break;
                }
                body.extend(self.read_exact_buffered(size).await?);
                self.read_line().await?;
            }
            body
        } else if let Some(len) = header("content-length") {
            let len = len
                .parse()
                .map_err(|_| bad(format!("bad content-length {len:?}")))?;
            self.read_exact_buffered(len).await?
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            // Delimited by close.
            let mut body = std::mem::take(&mut self.buffered);
            self.stream.read_to_end(&mut body).await?;
            body
        };
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

fn bad(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
