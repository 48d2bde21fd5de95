//! `tether-bench rate`: a fixed-rate, latency-corrected HTTP/1.1 load generator for the peer
//! benchmark (bench/peers), in the spirit of wrk2.
//!
//! Request `i` is due at `start + i / rate`. A pacer thread releases each request into a bounded
//! queue at its due time and the next idle keep-alive connection sends it. Latency is measured
//! from the *intended* send time, so when every connection is busy a due request waits in the
//! queue (or the pacer waits for room) and that wait is counted (no coordinated omission).
//!
//! Pacing does not use tokio's timer, whose millisecond granularity would be charged to the
//! proxy under test. The pacer is a plain OS thread sleeping in `std::thread::sleep` (an hrtimer,
//! its timer slack lowered from Linux's default to 1 ns) until each due time, then waking the
//! current-thread runtime through the queue; nothing spins, as the generator shares its core
//! with the backends. The pacer wakes at most once per [`MIN_WAKE_INTERVAL`], so at high rates
//! requests due close together go out together. Evenly paced requests cost the generator and the
//! backends more CPU per request than bursts of them would (a wake-up each). The generator records its own send lag (actual minus
//! intended send time, including any wait for a free connection) and reports it with the
//! latencies, so a run whose pacing was poor is visible as such. It is one process (the runtime
//! thread and the pacer) meant for one core: run it pinned, with the proxy pinned elsewhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Mutex};

/// Due requests the pacer may queue ahead of the connections before it waits for room. Waiting
/// loses nothing: each entry carries its intended send time, not the time it was queued.
const QUEUE: usize = 1024;

/// The pacer wakes at most this often. Every wake-up costs CPU on the core the generator shares
/// with the backends, so requests due within the same interval go out together (their send lag
/// shows it) rather than each with its own wake-up.
const MIN_WAKE_INTERVAL: Duration = Duration::from_micros(100);

/// How often the pacer retries while the queue is full.
const FULL_QUEUE_POLL: Duration = Duration::from_millis(1);

/// Lead time before the first request is due, for the connections to connect.
const WARMUP: Duration = Duration::from_millis(200);

/// Intended send times, shared by the connections: an idle connection takes the next one.
type Due = Arc<Mutex<mpsc::Receiver<Instant>>>;

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
    let total = args.rate * args.duration.as_millis() as u64 / 1000;
    let (tx, rx) = mpsc::channel(QUEUE);
    let start = Instant::now() + WARMUP;
    let rate = args.rate;
    let pacer = spawn_precise("rate-pacer", move || pace(tx, start, rate, total))
        .context("starting the pacer thread")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(drive(args, Arc::new(Mutex::new(rx)), start));
    // Dropping the runtime drops the queue's receiver, so a pacer still sending stops at once.
    drop(rt);
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    result
}

/// The pacer: releases request `i` into the queue at `start + i / rate`, for `i < total`, waking
/// at most once per [`MIN_WAKE_INTERVAL`] and then releasing every request due by then.
fn pace(tx: mpsc::Sender<Instant>, start: Instant, rate: u64, total: u64) {
    let mut last_wake: Option<Instant> = None;
    for i in 0..total {
        let due =
            start + Duration::from_nanos((u128::from(i) * 1_000_000_000 / u128::from(rate)) as u64);
        let now = Instant::now();
        if due > now {
            let until = last_wake.map_or(due, |w| due.max(w + MIN_WAKE_INTERVAL));
            std::thread::sleep(until - now);
            last_wake = Some(Instant::now());
        }
        // A full queue means a backlog of QUEUE overdue requests, every connection busy: wait for
        // room by polling rather than being woken for each freed slot, which would cost a pair
        // of context switches per request just when the core is busiest. The wait loses nothing:
        // the entries carry their due times, and QUEUE requests outlast the poll.
        loop {
            match tx.try_send(due) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(_)) => std::thread::sleep(FULL_QUEUE_POLL),
                Err(mpsc::error::TrySendError::Closed(_)) => return, // the connections are gone
            }
        }
    }
}

/// Spawns a thread whose timer slack is 1 ns instead of Linux's default, so its sleeps end
/// within the scheduler's wake-up latency of their deadline rather than up to the slack later. The
/// slack is per thread and a new thread inherits its creator's, and a thread may only set its
/// own through `/proc/self/timerslack_ns` when it is the process's main thread: so the caller's
/// slack is lowered just for the spawn and then restored. Best effort: elsewhere (not Linux, not
/// the main thread) the thread gets the default slack.
fn spawn_precise<F>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    const SLACK: &str = "/proc/self/timerslack_ns";
    let main_thread = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| {
            let (pid, tid) = p.to_str()?.split_once("/task/")?;
            Some(pid == tid)
        })
        .unwrap_or(false);
    let saved = if main_thread {
        std::fs::read_to_string(SLACK).ok()
    } else {
        None
    };
    let lowered = saved.is_some() && std::fs::write(SLACK, "1").is_ok();
    let spawned = std::thread::Builder::new().name(name.into()).spawn(f);
    if let (true, Some(saved)) = (lowered, saved) {
        let _ = std::fs::write(SLACK, saved.trim());
    }
    spawned
}

async fn drive(args: RateArgs, due: Due, start: Instant) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (target, path, due) = (args.target, args.path.clone(), due.clone());
        tasks.push(tokio::spawn(
            async move { connection(target, path, due).await },
        ));
    }
    drop(due);
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

async fn connect(
    target: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(target).await?;
    tcp.set_nodelay(true)?;
    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(s)
}

/// One keep-alive connection: connects during the warm-up, then sends whichever due request it
/// takes from the queue whenever it is idle, until the pacer has released them all.
async fn connection(target: SocketAddr, path: String, queue: Due) -> anyhow::Result<ConnResult> {
    let mut result = ConnResult {
        latency: histogram(),
        lag: histogram(),
        errors: 0,
    };
    let mut sender = Some(connect(target).await?);
    loop {
        // The lock is held only while waiting for the next due time; idle connections queue
        // for it in turn.
        let next = queue.lock().await.recv().await;
        let Some(due) = next else { break };
        let sent = Instant::now();
        if sender.is_none() {
            sender = Some(connect(target).await?);
        }
        let s = sender.as_mut().expect("connected above");
        let req = http::Request::get(path.as_str())
            .header(http::header::HOST, target.to_string())
            .body(Empty::<Bytes>::new())?;
        let ok = s.ready().await.is_ok()
            && match s.send_request(req).await {
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
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::{AtomicU64, Ordering};

    fn due_times(
        rate: u64,
        total: u64,
        queue: usize,
        consume: Duration,
    ) -> (Instant, Vec<Instant>) {
        let (tx, mut rx) = mpsc::channel(queue);
        let start = Instant::now() + Duration::from_millis(5);
        let pacer = std::thread::spawn(move || pace(tx, start, rate, total));
        let mut got = Vec::new();
        while let Some(due) = rx.blocking_recv() {
            assert!(
                Instant::now() >= due,
                "request {} released early",
                got.len()
            );
            got.push(due);
            std::thread::sleep(consume);
        }
        pacer.join().unwrap();
        (start, got)
    }

    #[test]
    fn pacer_releases_every_request_at_or_after_its_intended_time() {
        // 20k req/s: closer together than MIN_WAKE_INTERVAL, so some go out together.
        let (start, got) = due_times(20_000, 200, QUEUE, Duration::ZERO);
        assert_eq!(got.len(), 200);
        for (i, due) in got.iter().enumerate() {
            assert_eq!(*due - start, Duration::from_micros(50 * i as u64));
        }
    }

    #[test]
    fn a_full_queue_delays_the_pacer_but_not_the_intended_times() {
        // The consumer is far slower than the rate: the pacer waits for room, and the times it
        // hands over are still the schedule's, so the wait is counted as latency.
        let (start, got) = due_times(10_000, 50, 1, Duration::from_millis(1));
        assert_eq!(got.len(), 50);
        for (i, due) in got.iter().enumerate() {
            assert_eq!(*due - start, Duration::from_micros(100 * i as u64));
        }
    }

    #[test]
    fn sends_rate_times_duration_requests_over_the_connections() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        // Answers every request on every connection; detached, it ends with the test process.
        std::thread::spawn(move || {
            for mut s in listener.incoming().map_while(Result::ok) {
                let served = counter.clone();
                std::thread::spawn(move || {
                    let (mut buf, mut n) = ([0u8; 4096], 0);
                    while let Ok(k @ 1..) = s.read(&mut buf[n..]) {
                        n += k;
                        while let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.copy_within(end + 4..n, 0);
                            n -= end + 4;
                            served.fetch_add(1, Ordering::Relaxed);
                            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .unwrap();
                        }
                    }
                });
            }
        });
        run(RateArgs {
            target,
            rate: 2000,
            duration: Duration::from_millis(100),
            connections: 4,
            path: "/".into(),
            json: true,
        })
        .unwrap();
        // Every response was read before `run` returned, so every request was counted.
        assert_eq!(served.load(Ordering::Relaxed), 200);
    }
}
