//! round_robin is smooth weighted round robin: weights split requests exactly, interleaved.

use crate::common::config::{Config, Listener, Pool};
use crate::common::{Http1, TestBackend, Tether};

fn config(a: &TestBackend, a_weight: u32, b: &TestBackend, b_weight: u32) -> Config {
    Config::new().listener(Listener::web()).pool(
        Pool::app()
            .set("balance", "round_robin")
            .weighted_backend(&a.id, a.addr, a_weight)
            .weighted_backend(&b.id, b.addr, b_weight),
    )
}

async fn sequence(tether: &Tether, requests: usize) -> Vec<String> {
    let client = Http1::new(tether.addr("web"));
    let mut picks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200, "body: {}", reply.text());
        picks.push(reply.backend_id());
    }
    picks
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_one_to_two_split_exactly_a_third_and_two_thirds_interleaved() {
    let light = TestBackend::start("light").await;
    let heavy = TestBackend::start("heavy").await;
    let tether = Tether::start(config(&light, 1, &heavy, 2)).await;

    let picks = sequence(&tether, 300).await;

    let light_count = picks.iter().filter(|id| *id == "light").count();
    let heavy_count = picks.iter().filter(|id| *id == "heavy").count();
    assert_eq!((light_count, heavy_count), (100, 200), "picks: {picks:?}");
    for (i, window) in picks.windows(3).enumerate() {
        let lights = window.iter().filter(|id| *id == "light").count();
        assert_eq!(
            lights,
            1,
            "picks {i}..{} are {window:?}: smooth weighted round robin puts the weight-1 \
             backend exactly once in every 3 consecutive picks",
            i + 3
        );
    }
    assert_eq!(light.requests(), 100);
    assert_eq!(heavy.requests(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_two_to_three_interleave_instead_of_running_in_blocks() {
    // Smooth weighted round robin cycles b,a,b,a,b; a naive one would send a,a,b,b,b.
    let two = TestBackend::start("two").await;
    let three = TestBackend::start("three").await;
    let tether = Tether::start(config(&two, 2, &three, 3)).await;

    let picks = sequence(&tether, 100).await;

    for (i, pair) in picks.windows(2).enumerate() {
        assert!(
            pair != ["two", "two"],
            "picks {i} and {} both went to the weight-2 backend: {picks:?}",
            i + 1
        );
    }
    for (i, window) in picks.windows(5).enumerate() {
        let twos = window.iter().filter(|id| *id == "two").count();
        assert_eq!(twos, 2, "picks {i}..{} are {window:?}", i + 5);
    }
    assert_eq!((two.requests(), three.requests()), (40, 60));
}

#[tokio::test(flavor = "multi_thread")]
async fn equal_weights_alternate() {
    let a = TestBackend::start("a").await;
    let b = TestBackend::start("b").await;
    let tether = Tether::start(config(&a, 1, &b, 1)).await;

    let picks = sequence(&tether, 100).await;

    for (i, pair) in picks.windows(2).enumerate() {
        assert_ne!(
            pair[0],
            pair[1],
            "picks {i} and {} repeat: {picks:?}",
            i + 1
        );
    }
    assert_eq!((a.requests(), b.requests()), (50, 50));
}
