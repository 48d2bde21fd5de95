//! Under continuous load, a reload that swaps backends, an admin add and an admin remove fail zero requests.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use http_body_util::BodyExt;

use crate::common::admin::ids_in;
use crate::common::config::{Config, Listener, Pool};
use crate::common::{body, Admin, Http1, TestBackend, Tether};

const CLIENTS: usize = 8;
/// Per client: with the deadline below, this bounds the load whatever happens to the test.
const MAX_REQUESTS_PER_CLIENT: u64 = 1000;
const LOAD_DEADLINE: Duration = Duration::from_secs(20);

fn config(backends: &[&TestBackend]) -> Config {
    let pool = backends.iter().fold(
        Pool::app()
            .set("balance", "round_robin")
            .set("drain_quiet", "300ms"),
        |pool, b| pool.backend(&b.id, b.addr),
    );
    Config::new().admin().listener(Listener::web()).pool(pool)
}

#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Load {
    fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// One client: GETs back to back until told to stop, at its request cap, or at the deadline.
async fn client(load: Arc<Load>, http: Http1, n: usize, started: Instant) {
    for i in 0..MAX_REQUESTS_PER_CLIENT {
        if load.stop.load(Ordering::SeqCst) || started.elapsed() > LOAD_DEADLINE {
            return;
        }
        // Some slow requests keep work in flight on the backends as they leave.
        let path = if i % 10 == 0 {
            "/slow?ms=30".to_string()
        } else {
            format!("/c{n}/{i}")
        };
        let request = http
            .request(Method::GET, &path)
            .body(body::empty())
            .expect("request");
        let response = match http.send(request).await {
            Ok(response) => response,
            Err(err) => {
                load.fail(format!("GET {path}: {err:?}"));
                continue;
            }
        };
        let status = response.status();
        match response.into_body().collect().await {
            Ok(body) if status == 200 => {
                let _ = body;
                load.ok.fetch_add(1, Ordering::SeqCst);
            }
            Ok(body) => load.fail(format!(
                "GET {path}: {status} {:?}",
                String::from_utf8_lossy(&body.to_bytes())
            )),
            Err(err) => load.fail(format!("GET {path}: {status}, body broke: {err:?}")),
        }
    }
}

/// Waits until `done` holds, failing the test at `within`.
async fn until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_an_add_and_a_remove_under_load_fail_no_request() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let c = TestBackend::start("c").await;
    let d = TestBackend::start("d").await;
    let tether = Tether::start(config(&[&a, &b])).await;
    let admin = Admin::new(tether.addr("admin"));

    let load = Arc::new(Load::default());
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let http = Http1::new(tether.addr("web"));
            tokio::spawn(client(load.clone(), http, n, started))
        })
        .collect();
    let step = Duration::from_secs(10);
    until("load running", step, || load.ok() >= 300).await;

    // 1. Reload: b leaves, c joins.
    tether.rewrite_config(config(&[&a, &c]));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "reload: {}", reply.text());
    until("c takes traffic", step, || c.requests() >= 100).await;
    admin.wait_gone("app", "b", step).await;

    // 2. Admin add: d joins.
    let put = format!(r#"{{"addr": "{}", "weight": 1}}"#, d.addr);
    let reply = admin.put("/pools/app/backends/d", &put).await;
    assert_eq!(reply.status, 201, "add d: {}", reply.text());
    until("d takes traffic", step, || d.requests() >= 100).await;

    // 3. Admin remove: a leaves.
    let reply = admin.delete("/pools/app/backends/a").await;
    assert_eq!(reply.status, 202, "remove a: {}", reply.text());
    admin.wait_gone("app", "a", step).await;
    let after = load.ok();
    until("load after the changes", step, || load.ok() >= after + 300).await;

    load.stop.store(true, Ordering::SeqCst);
    for task in clients {
        task.await.expect("client task");
    }
    let failures = load.failures.lock().unwrap().clone();
    let total = load.ok();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first ones: {:#?}",
        failures.len(),
        total + failures.len() as u64,
        &failures[..failures.len().min(10)]
    );
    assert_eq!(ids_in(&admin.status().await, "app"), ["c", "d"]);
    let served = a.requests() + b.requests() + c.requests() + d.requests();
    assert_eq!(
        served, total,
        "every 200 came from exactly one backend request"
    );
    assert!(b.requests() > 0, "b served before it was reloaded away");
    eprintln!(
        "zero_loss: {total} requests in {:?}; a={} b={} c={} d={}",
        started.elapsed(),
        a.requests(),
        b.requests(),
        c.requests(),
        d.requests()
    );
}
