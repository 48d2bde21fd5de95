//! Names as backend addresses and other DNS sources against a real name server (dnsmasq on a
//! loopback port): an `addr` of `name:port` follows its answer (the old address drains) and
//! cannot be edited through the admin API; `localhost` through the system's resolver; SRV
//! records give ports and weights; a reload keeps the running answer and looks a changed name
//! up.

use crate::common::config::{Config, Listener, Pool};
use crate::common::dns::{
    backends_on_one_port, pool_ids, resolver, skip, wait_until, NAME, WITHIN,
};
use crate::common::dnsmasq::Dnsmasq;
use crate::common::serial;
use crate::common::{Admin, Http1, TestBackend, Tether};

#[tokio::test(flavor = "multi_thread")]
async fn a_named_addr_follows_its_answer_and_the_old_address_drains() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(2).await;
    let (old, new) = (&backends[0], &backends[1]);
    let dns = Dnsmasq::start(&[(&old.addr.ip().to_string(), "web.test")], &[])
        .await
        .expect("dnsmasq");
    let pool = Pool::app().set("drain_quiet", "500ms");
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    )
    .to_string()
        + &format!(
            "\n[[pool.app.backend]]\nid = \"web\"\naddr = \"web.test:{}\"\n",
            old.addr.port()
        );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    assert_eq!(client.get("/").await.backend_id(), old.id);
    let status = admin.expect_backend("app", "web").await;
    assert_eq!(status["addr"], old.addr.to_string());

    dns.set_hosts(&[(&new.addr.ip().to_string(), "web.test")]);
    wait_until("requests follow web.test to its new address", || async {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.backend_id() == new.id
    })
    .await;
    // The admin API cannot take over a backend DNS names.
    let refused = admin.delete("/pools/app/backends/web").await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("comes from DNS"),
        "{}",
        refused.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn localhost_resolves_through_the_system_resolver() {
    let backend = TestBackend::start("local").await;
    let config = format!(
        "{}\n[[pool.app.backend]]\nid = \"local\"\naddr = \"localhost:{}\"\n",
        Config::new().listener(Listener::web()).pool(Pool::app()),
        backend.addr.port()
    );
    let tether = Tether::start(&config).await;
    let reply = Http1::new(tether.addr("web")).get("/").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend_id(), "local");
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_records_give_ports_and_weights() {
    if skip() {
        return;
    }
    let heavy = TestBackend::start("heavy").await;
    let light = TestBackend::start("light").await;
    let srv = |target: &str, port: u16, weight: u16| {
        format!("--srv-host=_http._tcp.{NAME},{target},{port},0,{weight}")
    };
    let dns = Dnsmasq::start(
        &[
            ("127.0.0.1", "heavy.app.test"),
            ("127.0.0.1", "light.app.test"),
        ],
        &[
            srv("heavy.app.test", heavy.addr.port(), 3),
            srv("light.app.test", light.addr.port(), 1),
        ],
    )
    .await
    .expect("dnsmasq");
    let pool = Pool::app().set_in("discover", "srv", format!("_http._tcp.{NAME}"));
    let config = resolver(
        Config::new().admin().listener(Listener::web()).pool(pool),
        &dns,
    );
    let tether = Tether::start(&config).await;
    let admin = Admin::new(tether.addr("admin"));
    for (backend, weight) in [(&heavy, 3), (&light, 1)] {
        let status = admin.expect_backend("app", &backend.addr.to_string()).await;
        assert_eq!(status["weight"], weight, "{status}");
    }
    let client = Http1::new(tether.addr("web"));
    for _ in 0..40 {
        assert_eq!(client.get("/").await.status, 200);
    }
    let (h, l) = (heavy.requests(), light.requests());
    assert_eq!((h, l), (30, 10), "a 3:1 weighted round robin");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_discovered_backends_and_looks_a_changed_name_up() {
    if skip() {
        return;
    }
    let _timed = serial::timed().await;
    let backends = backends_on_one_port(2).await;
    let (a, b) = (&backends[0], &backends[1]);
    let dns = Dnsmasq::start(
        &[
            (&a.addr.ip().to_string(), NAME),
            (&b.addr.ip().to_string(), "other.test"),
        ],
        &[],
    )
    .await
    .expect("dnsmasq");
    let config = |name: &str| {
        let pool = Pool::app()
            .set("drain_quiet", "300ms")
            .set_in("discover", "dns", name)
            .set_in("discover", "port", i64::from(a.addr.port()));
        resolver(
            Config::new().admin().listener(Listener::web()).pool(pool),
            &dns,
        )
    };
    let tether = Tether::start(&config(NAME)).await;
    let admin = Admin::new(tether.addr("admin"));
    let client = Http1::new(tether.addr("web"));
    assert_eq!(client.get("/").await.backend_id(), a.id);

    // The same file: the running answer is kept, nothing is removed and re-added.
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("no changes"), "{}", reply.text());
    assert_eq!(pool_ids(&admin).await, vec![a.id.clone()]);

    // Another name: looked up before the new config is stored, the old address drains.
    tether.rewrite_config(config("other.test"));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert!(
        text.contains(&format!("backend {} added", b.id))
            && text.contains(&format!("backend {} removed", a.id)),
        "{text}"
    );
    assert_eq!(client.get("/").await.backend_id(), b.id);
    admin.wait_gone("app", &a.id, WITHIN).await;
    assert_eq!(pool_ids(&admin).await, vec![b.id.clone()]);
}
