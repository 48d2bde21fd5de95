//! The demo shop's WebSocket endpoint, `GET /ws`: echoes every text message ("echo " + it) and
//! pushes "push N" every `PUSH_EVERY`, until the client or the process goes away. A held
//! connection is state that lives in one backend process: the lab kills and drains backends
//! under it.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::reply::{text, Resp};

/// How often the server pushes a message of its own.
const PUSH_EVERY: Duration = Duration::from_millis(500);

/// Answers a WebSocket upgrade with 101 and serves the connection in the background; anything
/// else gets 400.
pub fn accept(mut req: Request<Incoming>) -> Resp {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "need a WebSocket upgrade\n");
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(io) = upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
            serve(ws).await;
        }
    });
    let mut resp = text(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = resp.headers_mut();
    h.remove(hyper::header::CONTENT_TYPE);
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

/// Echoes and pushes until the connection ends (bounded by the client: it closes or goes).
async fn serve<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut push = tokio::time::interval(PUSH_EVERY);
    push.tick().await;
    let mut n = 0u64;
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if ws.send(Message::text(format!("echo {t}"))).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = push.tick() => {
                n += 1;
                if ws.send(Message::text(format!("push {n}"))).await.is_err() {
                    return;
                }
            }
        }
    }
}
