//! A minimal Redis client speaking RESP over tokio TCP: PING, GET, SET .. EX, DEL, FLUSHALL.
//! Enough for the `shared` session store; idle connections are kept for reuse.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Every command must finish within this, so a frozen Redis shows up as an error, not a hang.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis server address and a stack of idle connections to it.
pub struct Redis {
    addr: SocketAddr,
    idle: Mutex<Vec<BufStream<TcpStream>>>,
}

/// A reply the lab cares about.
#[derive(Debug, PartialEq)]
pub enum Value {
    /// `$-1`: no such key.
    Nil,
    /// A simple or bulk string.
    Bytes(Vec<u8>),
    /// An integer reply.
    Int(i64),
}

impl Redis {
    /// Parses `redis://HOST:PORT` or `HOST:PORT`.
    pub fn new(url: &str) -> io::Result<Redis> {
        let hostport = url.strip_prefix("redis://").unwrap_or(url);
        let hostport = hostport.trim_end_matches('/');
        let addr = hostport.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("redis url {url:?}: expected redis://IP:PORT"),
            )
        })?;
        Ok(Redis {
            addr,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs one command; an error reply becomes an `io::Error`.
    pub async fn command(&self, args: &[&[u8]]) -> io::Result<Value> {
        let pooled = self.idle.lock().expect("redis pool lock").pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => BufStream::new(TcpStream::connect(self.addr).await?),
        };
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, roundtrip(&mut conn, args))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis command timed out"))?;
        // Only a connection that completed a round trip is known to be in sync.
        if reply.is_ok() {
            self.idle.lock().expect("redis pool lock").push(conn);
        }
        reply
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `PING`, true on `PONG`.
    pub async fn ping(&self) -> bool {
        matches!(self.command(&[b"PING"]).await, Ok(Value::Bytes(b)) if b == b"PONG")
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match self.command(&[b"GET", key.as_bytes()]).await? {
            Value::Bytes(b) => Ok(Some(b)),
            _ => Ok(None),
        }
    }

    /// `SET key value EX secs`.
    pub async fn set_ex(&self, key: &str, value: &[u8], secs: u64) -> io::Result<()> {
        let secs = secs.to_string();
        self.command(&[b"SET", key.as_bytes(), value, b"EX", secs.as_bytes()])
            .await
            .map(|_| ())
    }

    /// `DEL key`.
    pub async fn del(&self, key: &str) -> io::Result<()> {
        self.command(&[b"DEL", key.as_bytes()]).await.map(|_| ())
    }

    /// `FLUSHALL`: the runner empties the store between matrix cells.
    pub async fn flushall(&self) -> io::Result<()> {
        self.command(&[b"FLUSHALL"]).await.map(|_| ())
    }
}

async fn roundtrip(conn: &mut BufStream<TcpStream>, args: &[&[u8]]) -> io::Result<Value> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    conn.write_all(&out).await?;
    conn.flush().await?;
    read_value(conn).await
}

async fn read_value(conn: &mut BufStream<TcpStream>) -> io::Result<Value> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "redis closed the connection",
        ));
    }
    let line = line.trim_end_matches("\r\n");
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    match kind {
        "+" => Ok(Value::Bytes(rest.as_bytes().to_vec())),
        "-" => Err(io::Error::other(format!("redis: {rest}"))),
        ":" => rest.parse().map(Value::Int).map_err(|_| bad()),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Value::Nil);
            }
            let mut buf = vec![0; len as usize + 2];
            conn.read_exact(&mut buf).await?;
            buf.truncate(len as usize);
            Ok(Value::Bytes(buf))
        }
        _ => Err(bad()),
    }
}
