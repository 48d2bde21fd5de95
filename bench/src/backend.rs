//! `tether-bench backend`: the demo shop (log in, add to cart, read cart) with a choice of
//! session store, an `x-backend-id` header on every response, and fault switches.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::cart_write::{self, CartWrite};
use crate::faults::Faults;
use crate::http::cookie;
use crate::limiter::{Limiter, RateStore};
use crate::reply::{json, no_session, query, set_cookie, text, Resp};
use crate::resp::Redis;
use crate::revoke;
use crate::sessions::SessionStore;
use crate::token::{self, Cart};
use crate::util::hex;
use crate::ws_echo;

/// Command-line options of `tether-bench backend`.
#[derive(clap::Args, Debug)]
pub struct BackendArgs {
    /// Address to listen on; port 0 picks a free one (logged as `listener.addr=`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The backend's id, sent back in `x-backend-id`.
    #[arg(long)]
    pub id: String,
    /// Session store.
    #[arg(long, value_enum, default_value = "local")]
    pub sessions: SessionStore,
    /// Redis URL for `--sessions shared` (redis://127.0.0.1:6379).
    #[arg(long)]
    pub redis: Option<String>,
    /// Secret that seals `token` carts; every instance must share it.
    #[arg(long, default_value = "tether-lab-secret")]
    pub secret: String,
    /// Extra delay before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Fraction of requests answered 500 on purpose (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Lifetime of a sealed cart in ms, renewed at every write (0: never expires). For
    /// `token-refresh`, the access token's lifetime.
    #[arg(long, default_value_t = 0)]
    pub token_ttl_ms: u64,
    /// Requests a session may make in any sliding second (0: no limit); over it: 429.
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Where the rate limit counts requests (`redis` needs --redis).
    #[arg(long, value_enum, default_value = "memory")]
    pub rate_store: RateStore,
    /// How `shared` sessions add to a cart: read-modify-write or atomic.
    #[arg(long, value_enum, default_value = "rmw")]
    pub cart_write: CartWrite,
    /// Read-modify-write only: pause between reading the cart and writing it back, in ms.
    #[arg(long, default_value_t = 0)]
    pub rmw_delay_ms: u64,
}

struct App {
    id: String,
    id_header: HeaderValue,
    store: SessionStore,
    local: Mutex<HashMap<String, Vec<String>>>,
    redis: Option<Redis>,
    secret: Vec<u8>,
    token_ttl_ms: u64,
    faults: Faults,
    limiter: Option<Limiter>,
    cart_write: CartWrite,
    rmw_delay: Duration,
}

/// Sessions in Redis expire after this, so a long lab run does not grow the store forever.
const SESSION_TTL_SECS: u64 = 3600;

/// Serves the shop until SIGTERM or SIGINT.
pub fn run(args: BackendArgs) -> anyhow::Result<()> {
    let redis = match (args.sessions, &args.redis) {
        (s, None) if s.uses_redis() => {
            anyhow::bail!("--sessions {} needs --redis URL", s.name())
        }
        (_, None) if args.rate_limit > 0 && args.rate_store == RateStore::Redis => {
            anyhow::bail!("--rate-store redis needs --redis URL")
        }
        (_, Some(url)) => Some(Redis::new(url)?),
        (_, None) => None,
    };
    let app = Arc::new(App {
        id_header: HeaderValue::from_str(&args.id)?,
        id: args.id,
        store: args.sessions,
        local: Mutex::new(HashMap::new()),
        redis,
        secret: args.secret.into_bytes(),
        token_ttl_ms: args.token_ttl_ms,
        faults: Faults::new(args.delay_ms, args.error_rate),
        limiter: (args.rate_limit > 0).then(|| Limiter::new(args.rate_limit, args.rate_store)),
        cart_write: args.cart_write,
        rmw_delay: Duration::from_millis(args.rmw_delay_ms),
    });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(app, args.listen))
}

async fn serve(app: Arc<App>, listen: SocketAddr) -> anyhow::Result<()> {
    let tcp = TcpListener::bind(listen).await?;
    eprintln!(
        "listening listener.name=backend listener.addr={} backend.id={} sessions={}",
        tcp.local_addr()?,
        app.id,
        app.store.name()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

impl App {
    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let mut resp = if req.uri().path() == "/fault" {
            self.faults.handle(&req)
        } else if req.uri().path() == "/ws" {
            ws_echo::accept(req)
        } else {
            match self.faults.injected().await {
                Some(r) => r,
                None => self.route(&req).await,
            }
        };
        resp.headers_mut()
            .insert("x-backend-id", self.id_header.clone());
        resp
    }

    async fn route(&self, req: &Request<Incoming>) -> Resp {
        if let Some(r) = self.limited(req).await {
            return r;
        }
        let result = match (req.method(), req.uri().path()) {
            (&Method::GET, "/healthz") => return text(StatusCode::OK, "ok\n"),
            (&Method::POST, "/login") => self.login().await,
            (&Method::POST, "/cart/add") => match query(req).find(|(k, _)| *k == "item") {
                Some((_, item)) if valid_item(item) => self.add(req, item).await,
                _ => return text(StatusCode::BAD_REQUEST, "need ?item=[A-Za-z0-9_-]{1,32}\n"),
            },
            (&Method::GET, "/cart") => self.cart(req).await,
            (&Method::POST, "/logout") => self.logout(req).await,
            _ => return text(StatusCode::NOT_FOUND, "not found\n"),
        };
        match result {
            Ok(r) => r,
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("session store unavailable: {e}\n"),
            ),
        }
    }

    /// The rate limit, on every request of a session but its login: `Some` is the 429 (or
    /// the 503 of an unreachable counter) that replaces the real response.
    async fn limited(&self, req: &Request<Incoming>) -> Option<Resp> {
        let limiter = self.limiter.as_ref()?;
        let sid = cookie(req.headers(), "sid")?;
        if matches!(req.uri().path(), "/login" | "/healthz") {
            return None;
        }
        match limiter.admit(self.redis.as_ref(), sid).await {
            Ok(true) => None,
            Ok(false) => Some(text(StatusCode::TOO_MANY_REQUESTS, "rate limited\n")),
            Err(e) => Some(text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("rate limit store unavailable: {e}\n"),
            )),
        }
    }

    async fn login(&self) -> std::io::Result<Resp> {
        let sid = hex(&fastrand::u128(..).to_be_bytes());
        let mut resp = json(
            StatusCode::OK,
            serde_json::json!({"session": sid, "backend": self.id}),
        );
        match self.store {
            SessionStore::Local => {
                self.local
                    .lock()
                    .expect("sessions lock")
                    .insert(sid.clone(), Vec::new());
            }
            SessionStore::Shared => {
                self.redis()
                    .set_ex(&key(&sid), b"", SESSION_TTL_SECS)
                    .await?
            }
            SessionStore::Token | SessionStore::TokenDenylist | SessionStore::TokenRefresh => {
                revoke::on_login(self.store, self.redis.as_ref(), &sid).await?;
                let cart = Cart {
                    sid: sid.clone(),
                    items: Vec::new(),
                    exp_ms: revoke::expiry(self.token_ttl_ms),
                };
                set_cookie(&mut resp, "cart", &token::seal(&self.secret, &cart));
            }
        }
        set_cookie(&mut resp, "sid", &sid);
        Ok(resp)
    }

    async fn add(&self, req: &Request<Incoming>, item: &str) -> std::io::Result<Resp> {
        let sid = cookie(req.headers(), "sid").unwrap_or_default();
        if self.store == SessionStore::Local {
            // Read and write under one lock: an in-process add is atomic.
            let mut local = self.local.lock().expect("sessions lock");
            return Ok(match local.get_mut(sid) {
                Some(items) => {
                    items.push(item.to_string());
                    json(StatusCode::OK, serde_json::json!({"items": items.len()}))
                }
                None => no_session(),
            });
        }
        let Some(mut items) = self.load(req).await? else {
            return Ok(no_session());
        };
        if self.store == SessionStore::Shared {
            let (how, pause) = (self.cart_write, self.rmw_delay);
            let n = cart_write::add(
                self.redis(),
                how,
                pause,
                &key(sid),
                items,
                item,
                SESSION_TTL_SECS,
            )
            .await?;
            return Ok(json(StatusCode::OK, serde_json::json!({"items": n})));
        }
        items.push(item.to_string());
        let mut resp = json(StatusCode::OK, serde_json::json!({"items": items.len()}));
        let cart = Cart {
            sid: sid.to_string(),
            items,
            exp_ms: revoke::expiry(self.token_ttl_ms),
        };
        set_cookie(&mut resp, "cart", &token::seal(&self.secret, &cart));
        Ok(resp)
    }

    async fn cart(&self, req: &Request<Incoming>) -> std::io::Result<Resp> {
        Ok(match self.load(req).await? {
            Some(items) => json(StatusCode::OK, serde_json::json!({"items": items})),
            None => no_session(),
        })
    }

    /// The request's cart, or `None` when this backend does not know the session.
    async fn load(&self, req: &Request<Incoming>) -> std::io::Result<Option<Vec<String>>> {
        let Some(sid) = cookie(req.headers(), "sid") else {
            return Ok(None);
        };
        Ok(match self.store {
            SessionStore::Local => self.local.lock().expect("sessions lock").get(sid).cloned(),
            SessionStore::Shared => self.redis().get(&key(sid)).await?.map(|v| {
                String::from_utf8_lossy(&v)
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
            SessionStore::Token | SessionStore::TokenDenylist | SessionStore::TokenRefresh => {
                let cart = cookie(req.headers(), "cart")
                    .and_then(|t| token::open(&self.secret, t))
                    .filter(|c| c.sid == sid);
                match cart {
                    Some(c) if revoke::admit(self.store, self.redis.as_ref(), &c).await? => {
                        Some(c.items)
                    }
                    _ => None,
                }
            }
        })
    }

    /// `POST /logout`: ends the session as far as this store can (see `revoke`) and asks the
    /// client to drop its cookies.
    async fn logout(&self, req: &Request<Incoming>) -> std::io::Result<Resp> {
        let Some(sid) = cookie(req.headers(), "sid") else {
            return Ok(no_session());
        };
        match self.store {
            SessionStore::Local => {
                self.local.lock().expect("sessions lock").remove(sid);
            }
            SessionStore::Shared => self.redis().del(&key(sid)).await?,
            _ => revoke::on_logout(self.store, self.redis.as_ref(), sid).await?,
        }
        let mut resp = text(StatusCode::OK, "logged out\n");
        for name in ["sid", "cart"] {
            if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0")) {
                resp.headers_mut().append(SET_COOKIE, v);
            }
        }
        Ok(resp)
    }

    fn redis(&self) -> &Redis {
        self.redis
            .as_ref()
            .expect("shared store is only built with a redis url")
    }
}

fn key(sid: &str) -> String {
    format!("sess:{sid}")
}

fn valid_item(item: &str) -> bool {
    (1..=32).contains(&item.len())
        && item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
