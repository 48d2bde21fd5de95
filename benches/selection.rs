//! Microbenchmarks of the request-path decisions: backend selection for every balancer and
//! affinity mode at 3, 100 and 10,000 backends, and sealing/opening the affinity cookie.
//!
//! Run: `cargo bench --bench selection` (HTML-free, plain text). Results: bench/RESULTS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue, Uri};
use tether::affinity::cookie::CookieSealer;
use tether::backend::Backend;
use tether::balance::hash::{hash_key, ConsistentHash};
use tether::balance::Balancer;
use tether::config::{self, Balance};
use tether::snapshot::Snapshot;

const SIZES: [usize; 3] = [3, 100, 10_000];

fn backends(n: usize) -> Vec<Arc<Backend>> {
    (0..n)
        .map(|i| {
            let addr = format!("127.0.{}.{}:80", i / 250, 1 + i % 250)
                .parse()
                .unwrap();
            Arc::new(Backend::new(&format!("b{i}"), addr, 1 + (i % 3) as u32, 1))
        })
        .collect()
}

fn balancers(c: &mut Criterion) {
    let mut g = c.benchmark_group("balance");
    for n in SIZES {
        let b = backends(n);
        let weights: Vec<u32> = b.iter().map(|b| b.weight()).collect();
        for (name, kind) in [
            ("round_robin", Balance::RoundRobin),
            ("least_conn", Balance::LeastConn),
            ("random", Balance::Random),
        ] {
            let bal = Balancer::new(kind, &weights);
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| black_box(bal.pick(&b, |_| false)))
            });
        }
        let ids: Vec<&str> = b.iter().map(|b| &*b.id).collect();
        let ring = ConsistentHash::new(&ids, &weights);
        let mut k = 0u64;
        g.bench_with_input(BenchmarkId::new("hash_ring", n), &n, |bench, _| {
            bench.iter(|| {
                k = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
                black_box(ring.pick(k, |_| false))
            })
        });
    }
    g.finish();
}

/// A whole pool snapshot's decision, as the request path makes it (state checks included).
fn pools(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool");
    for n in SIZES {
        for (name, extra) in [
            ("round_robin", "balance = \"round_robin\""),
            ("least_conn", "balance = \"least_conn\""),
            (
                "cookie",
                "affinity = \"cookie\"\ncookie = { keys = [\"0123456789abcdef0123\"] }",
            ),
            ("ip_hash", "affinity = \"ip_hash\""),
        ] {
            let mut text = format!(
                "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n{extra}\n"
            );
            for i in 0..n {
                text.push_str(&format!(
                    "[[pool.p.backend]]\nid = \"b{i}\"\naddr = \"127.0.{}.{}:80\"\n",
                    i / 250,
                    1 + i % 250
                ));
            }
            let cfg = config::parse(&text).unwrap();
            let snapshot = Snapshot::build(&cfg, None);
            let pool = &snapshot.pools["p"];
            let mut headers = HeaderMap::new();
            if name == "cookie" {
                // A returning client: the common case is a valid cookie (a hit).
                let value = pool
                    .sticky
                    .set_cookie(&pool.backends[n / 2].id, 1_700_000_000, false)
                    .unwrap();
                let pair = value
                    .to_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_string();
                headers.insert(http::header::COOKIE, HeaderValue::from_str(&pair).unwrap());
            }
            let uri = Uri::from_static("/");
            let mut ip = 0u32;
            g.bench_with_input(BenchmarkId::new(name, n), &n, |bench, _| {
                bench.iter(|| {
                    ip = ip.wrapping_add(1);
                    let plan = pool.plan(
                        &headers,
                        &uri,
                        std::net::Ipv4Addr::from(ip).into(),
                        1_700_000_100,
                    );
                    black_box(plan.first.or_else(|| pool.pick_new(&[])))
                })
            });
        }
    }
    g.finish();
}

fn cookies(c: &mut Criterion) {
    let sealer = CookieSealer::new("app", &["0123456789abcdef0123".to_string()]).unwrap();
    let pin = sealer.pin("app-7", 1_700_000_000);
    let sealed = sealer.seal(&pin);
    c.bench_function("cookie/seal", |b| {
        b.iter(|| black_box(sealer.seal(black_box(&pin))))
    });
    c.bench_function("cookie/open", |b| {
        b.iter(|| black_box(sealer.open(black_box(&sealed))))
    });
    c.bench_function("cookie/open_tampered", |b| {
        let mut bad = sealed.clone().into_bytes();
        bad[20] ^= 1;
        let bad = String::from_utf8(bad).unwrap();
        b.iter(|| black_box(sealer.open(black_box(&bad))))
    });
    c.bench_function("hash_key/ipv4", |b| {
        b.iter(|| black_box(hash_key(black_box(&[10, 1, 2, 3]))))
    });
}

criterion_group!(benches, balancers, pools, cookies);
criterion_main!(benches);
