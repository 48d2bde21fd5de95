//! `tether-bench rate`: a fixed-rate, latency-corrected HTTP/1.1 load generator for the peer
//! benchmark (bench/peers), in the spirit of wrk2.
//!
//! Request `i` is due at `start + i / rate`; connection `i % connections` sends it. Latency is
//! measured from the *intended* send time, so a stalled response delays the requests queued
//! behind it and that delay is counted (no coordinated omission). Timers here fire up to ~1 ms
//! late, which would be charged to the proxy under test; the generator therefore also records
//! its own send lag (actual minus intended send time) and reports both, so a run whose pacing
//! was poor is visible as such. It is one process on one core: run it pinned, with the proxy
//! pinned elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// `tether-bench rate` options.
#[derive(clap::Args, Debug)]
pub struct RateArgs {
    /// Target `IP:PORT` (plain HTTP/1.1, keep-alive).
    #[arg(long)]
    pub target: SocketAddr,
    /// Requests per second to offer.
    #[arg(long)]
    pub rate: u64,
    /// How long to send, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Keep-alive connections to spread the requests over.
    #[arg(long, default_value_t = 64)]
    pub connections: u64,
    /// Request path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("bad duration {s:?}"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("bad duration {s:?}: use e.g. 10s or 500ms")),
    }
}

struct ConnResult {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    errors: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Runs the load and prints the result.
pub fn run(args: RateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0 && args.connections > 0,
        "rate and connections must be positive"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(drive(args))
}

async fn drive(args: RateArgs) -> anyhow::Result<()> {
    let total = args.rate * args.duration.as_millis() as u64 / 1000;
    let interval = Duration::from_nanos(1_000_000_000 / args.rate);
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (target, path) = (args.target, args.path.clone());
        let stride = args.connections;
        tasks.push(tokio::spawn(async move {
            connection(target, path, c, stride, total, start, interval).await
        }));
    }
    let (mut latency, mut lag, mut errors) = (histogram(), histogram(), 0);
    for t in tasks {
        let r = t.await.context("connection task")??;
        latency.add(&r.latency).ok();
        lag.add(&r.lag).ok();
        errors += r.errors;
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let elapsed = (Instant::now() - start).as_secs_f64();
    if args.json {
        println!(
            "{{\"offered_rps\":{},\"requests\":{},\"errors\":{errors},\"achieved_rps\":{:.0},\"latency_ms\":{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}},\"send_lag_ms\":{{\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}}}}",
            args.rate,
            latency.len(),
            latency.len() as f64 / elapsed,
            ms(&latency, 0.5),
            ms(&latency, 0.9),
            ms(&latency, 0.99),
            ms(&latency, 0.999),
            latency.max() as f64 / 1000.0,
            ms(&lag, 0.5),
            ms(&lag, 0.99),
            lag.max() as f64 / 1000.0,
        );
    } else {
        println!(
            "offered {} req/s for {:?}: {} requests, {errors} errors, {:.0} req/s achieved",
            args.rate,
            args.duration,
            latency.len(),
            latency.len() as f64 / elapsed
        );
        println!(
            "latency from intended send (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            ms(&latency, 0.5),
            ms(&latency, 0.9),
            ms(&latency, 0.99),
            ms(&latency, 0.999),
            latency.max() as f64 / 1000.0
        );
        println!(
            "generator send lag (ms): p50 {:.3}  p99 {:.3}  max {:.3}",
            ms(&lag, 0.5),
            ms(&lag, 0.99),
            lag.max() as f64 / 1000.0
        );
    }
    Ok(())
}

async fn connection(
    target: SocketAddr,
    path: String,
    first: u64,
    stride: u64,
    total: u64,
    start: Instant,
    interval: Duration,
) -> anyhow::Result<ConnResult> {
    let mut result = ConnResult {
        latency: histogram(),
        lag: histogram(),
        errors: 0,
    };
    let mut sender = None;
    let mut i = first;
    while i < total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        if sender.is_none() {
            let tcp = tokio::net::TcpStream::connect(target).await?;
            tcp.set_nodelay(true)?;
            let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(conn);
            sender = Some(s);
        }
        let s = sender.as_mut().expect("connected above");
        let req = http::Request::get(path.as_str())
            .header(http::header::HOST, target.to_string())
            .body(Empty::<Bytes>::new())?;
        let ok = match s.send_request(req).await {
            Ok(resp) => resp.status().is_success() && resp.into_body().collect().await.is_ok(),
            Err(_) => false,
        };
        if !ok {
            result.errors += 1;
            sender = None;
        }
        let done = Instant::now();
        result
            .latency
            .saturating_record((done - due).as_micros() as u64);
        result
            .lag
            .saturating_record((sent - due).as_micros() as u64);
        i += stride;
    }
    Ok(result)
}
