//! Cookie affinity: tether pins a client with one sealed cookie, keeps it on its backend, hides the cookie from backends, and re-pins (never errors) on tampered, garbage, expired or rotated-key cookies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::admin::count;
use crate::common::affinity::{self, explain, is_sealed, issued, set_cookies, Jar, COOKIE};
use crate::common::config::{Config, Listener, Pool};
use crate::common::serial;
use crate::common::tether::{check_config, field};
use crate::common::{Admin, Http1, TestBackend, Tether};

const KEY_1: &str = "first-key-0123456789";
const KEY_2: &str = "second-key-9876543210";

struct Backends([TestBackend; 3]);

impl Backends {
    async fn start() -> Backends {
        Backends([
            TestBackend::start("alpha").await,
            TestBackend::start("bravo").await,
            TestBackend::start("charlie").await,
        ])
    }

    /// `pool` (pool `app` with its cookie table) with round robin and cookie affinity.
    fn config(&self, pool: Pool) -> Config {
        let [a, b, c] = &self.0;
        affinity::config(
            pool.set("balance", "round_robin").set("affinity", "cookie"),
            &[("alpha", a.addr), ("bravo", b.addr), ("charlie", c.addr)],
        )
    }

    fn by_id(&self, id: &str) -> &TestBackend {
        self.0.iter().find(|b| b.id == id).expect("known id")
    }

    fn requests(&self, id: &str) -> u64 {
        self.by_id(id).requests()
    }
}

/// Pool `app` whose cookie is sealed with `keys`, the first one for new cookies.
fn keys(keys: &[&str]) -> Pool {
    Pool::app().set_in("cookie", "keys", keys.to_vec())
}

/// `value` with the character at `at` replaced by another base64url character.
fn flip(value: &str, at: usize) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_stays_pinned_across_100_requests_and_gets_the_cookie_once() {
    let backends = Backends::start().await;
    let tether = Tether::start(&backends.config(keys(&[KEY_1]))).await;
    let client = Http1::new(tether.addr("web"));
    let admin = Admin::new(tether.addr("admin"));

    let first = affinity::get(&client, "/", None).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let pinned = explain(&first);
    assert_eq!(pinned.why, "new", "{pinned:?}");
    let cookies = set_cookies(&first);
    assert_eq!(
        cookies.len(),
        1,
        "one Set-Cookie on the first reply: {cookies:?}"
    );
    let value = issued(&first, COOKIE).expect("tether's cookie on the first reply");
    assert!(is_sealed(&value), "not a 44-char opaque value: {value:?}");
    let port = backends.by_id(&pinned.backend).addr.port().to_string();
    assert!(
        !value.contains(&pinned.backend) && !value.contains(&port),
        "{value:?} names the backend or its port"
    );
    assert_eq!(
        cookies[0],
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax"),
        "default cookie attributes"
    );

    // Round robin would spread these over all three backends; the cookie must hold them.
    let cookie = format!("{COOKIE}={value}");
    for i in 0..100 {
        let reply = affinity::get(&client, &format!("/r/{i}"), Some(&cookie)).await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        let seen = explain(&reply);
        assert_eq!(seen.backend, pinned.backend, "request {i} left its pin");
        assert_eq!(seen.why, "hit", "request {i}");
        assert!(
            set_cookies(&reply).is_empty(),
            "request {i} re-issued a cookie needlessly: {:?}",
            set_cookies(&reply)
        );
    }
    for id in ["alpha", "bravo", "charlie"] {
        let expected = if id == pinned.backend { 101 } else { 0 };
        assert_eq!(backends.requests(id), expected, "requests reaching {id}");
        let status = admin.expect_backend("app", id).await;
        let pins = if id == pinned.backend { 1 } else { 0 };
        assert_eq!(count(&status, "pins"), pins, "{status}");
    }
    // The access log says why, per request.
    for why in ["new", "hit"] {
        tether
            .wait_for_line(Duration::from_secs(5), |l| {
                l.contains("tether::access") && field(l, "affinity").as_deref() == Some(why)
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backend_never_sees_tethers_cookie_but_sees_the_clients_own() {
    let backends = Backends::start().await;
    let tether = Tether::start(&backends.config(keys(&[KEY_1]))).await;
    let client = Http1::new(tether.addr("web"));

    let first = affinity::get(&client, "/echo", Some("session=abc")).await;
    assert_eq!(first.echo().values("cookie"), ["session=abc"]);
    let value = issued(&first, COOKIE).expect("cookie issued");

    let cases = [
        format!("session=abc; {COOKIE}={value}; theme=dark"),
        format!("{COOKIE}={value}; session=abc; theme=dark"),
        format!("{COOKIE}=garbage; session=abc; theme=dark"),
    ];
    for sent in &cases {
        let reply = affinity::get(&client, "/echo", Some(sent)).await;
        let received = reply.echo().joined("cookie");
        assert_eq!(
            received.as_deref(),
            Some("session=abc; theme=dark"),
            "sent Cookie: {sent}"
        );
    }
    let alone = affinity::get(&client, "/echo", Some(&format!("{COOKIE}={value}"))).await;
    assert_eq!(explain(&alone).why, "hit");
    let echo = alone.echo();
    assert!(
        echo.values("cookie").iter().all(|c| !c.contains(COOKIE)),
        "tether's cookie reached the backend: {:?}",
        echo.values("cookie")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_or_garbage_cookie_is_re_pinned_without_error() {
    let backends = Backends::start().await;
    let tether = Tether::start(&backends.config(keys(&[KEY_1]))).await;
    let client = Http1::new(tether.addr("web"));

    let first = affinity::get(&client, "/", None).await;
    let value = issued(&first, COOKIE).expect("cookie issued");
    let mut bad: Vec<(String, String)> = [0, 5, 12, 20, 30, 43]
        .into_iter()
        .map(|at| (format!("char {at} flipped"), flip(&value, at)))
        .collect();
    bad.push(("garbage".into(), "garbage".into()));
    bad.push(("44 x".into(), "x".repeat(44)));
    bad.push(("too long".into(), format!("{value}AAAA")));
    bad.push(("truncated".into(), value[..40].to_string()));

    for (what, sent) in &bad {
        let reply = affinity::get(&client, "/", Some(&format!("{COOKIE}={sent}"))).await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        assert_eq!(explain(&reply).why, "invalid", "{what}: {sent:?}");
        let fresh = issued(&reply, COOKIE).unwrap_or_else(|| panic!("{what}: not re-issued"));
        assert!(is_sealed(&fresh), "{what}: re-issued {fresh:?}");
        assert_ne!(&fresh, sent, "{what}");
        // The re-issued cookie is a working pin.
        let again = affinity::get(&client, "/", Some(&format!("{COOKIE}={fresh}"))).await;
        let seen = explain(&again);
        assert_eq!(seen.why, "hit", "{what}: re-issued cookie not honoured");
        assert_eq!(seen.backend, explain(&reply).backend, "{what}");
    }
}

/// Sleeps until just after the next whole unix second, so a short exchange stays within it.
async fn align_to_second() {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    let to_next = Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos().into());
    tokio::time::sleep(to_next + Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_age_expires_the_pin_and_re_pins() {
    let _timed = serial::timed().await;
    let backends = Backends::start().await;
    let tether =
        Tether::start(&backends.config(keys(&[KEY_1]).set_in("cookie", "max_age", "1s"))).await;
    let client = Http1::new(tether.addr("web"));

    // Pins carry whole seconds: issue and reuse within one second, so "hit" is certain.
    align_to_second().await;
    let mut jar = Jar::app();
    let first = jar.get(&client, "/").await;
    let issued_at = std::time::Instant::now();
    let cookies = set_cookies(&first);
    assert!(
        cookies.len() == 1 && cookies[0].contains("; Max-Age=1"),
        "Max-Age missing: {cookies:?}"
    );
    let pinned = jar.value.clone().expect("cookie issued");
    let hit = jar.get(&client, "/").await;
    assert!(
        issued_at.elapsed() < Duration::from_millis(900),
        "too slow to test a 1 s pin"
    );
    assert_eq!(explain(&hit).why, "hit", "a fresh pin was not honoured");

    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(issued_at.elapsed())).await;
    let expired = jar.get(&client, "/").await;
    assert_eq!(
        explain(&expired).why,
        "expired",
        "{:?} after issue",
        issued_at.elapsed()
    );
    let renewed = issued(&expired, COOKIE).expect("an expired pin is re-issued");
    assert!(is_sealed(&renewed), "{renewed:?}");
    assert_ne!(renewed, pinned);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_key_still_opens_old_cookies_and_re_seals_them() {
    let backends = Backends::start().await;
    let old = Tether::start(&backends.config(keys(&[KEY_1]))).await;
    let new = Tether::start(&backends.config(keys(&[KEY_2, KEY_1]))).await;
    let old_client = Http1::new(old.addr("web"));
    let new_client = Http1::new(new.addr("web"));

    let first = affinity::get(&old_client, "/", None).await;
    let pinned = explain(&first).backend;
    let sealed_1 = issued(&first, COOKIE).expect("cookie issued");

    let rotated = affinity::get(&new_client, "/", Some(&format!("{COOKIE}={sealed_1}"))).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let seen = explain(&rotated);
    assert_eq!(seen.why, "hit", "the old key must still open the cookie");
    assert_eq!(seen.backend, pinned);
    let sealed_2 = issued(&rotated, COOKIE).expect("re-sealed under the new key");
    assert!(is_sealed(&sealed_2), "{sealed_2:?}");
    assert_ne!(sealed_2, sealed_1);

    // Round robin would move these; the re-sealed pin holds them, and is not re-issued again.
    for i in 0..6 {
        let reply = affinity::get(&new_client, "/", Some(&format!("{COOKIE}={sealed_2}"))).await;
        let seen = explain(&reply);
        assert_eq!(
            (seen.why.as_str(), seen.backend.as_str()),
            ("hit", pinned.as_str()),
            "{i}"
        );
        assert!(
            set_cookies(&reply).is_empty(),
            "{i}: {:?}",
            set_cookies(&reply)
        );
    }
    // Sealed with the new key indeed: the instance that only knows the old key rejects it.
    let reply = affinity::get(&old_client, "/", Some(&format!("{COOKIE}={sealed_2}"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(explain(&reply).why, "invalid");
}

#[test]
fn cookie_affinity_without_keys_passes_check_with_a_warning() {
    let addr = "127.0.0.1:9".parse().expect("addr");
    let without = affinity::config(Pool::app().set("affinity", "cookie"), &[("a", addr)]);
    let output = check_config(&without);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}\n{stdout}");
    let warnings: Vec<&str> = stderr
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert!(
        warnings.iter().any(|l| l.contains("pool.app.cookie.keys")),
        "no `warning:` line naming pool.app.cookie.keys\n{stderr}\n{stdout}"
    );

    let with = affinity::config(keys(&[KEY_1]).set("affinity", "cookie"), &[("a", addr)]);
    let output = check_config(&with);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning:"), "keys are set, yet: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_from_one_pool_is_refused_by_another_with_the_same_key() {
    let backends = Backends::start().await;
    let [a, b, c] = &backends.0;
    let ids = [("alpha", a.addr), ("bravo", b.addr), ("charlie", c.addr)];
    // Same key, same backend ids, same cookie name: only the pool differs.
    let pool = |name: &str| {
        Pool::new(name)
            .set("affinity", "cookie")
            .set("explain", true)
            .set_in("cookie", "keys", vec![KEY_1])
            .set_in("cookie", "name", COOKIE)
            .backends(&ids)
    };
    let config = Config::new()
        .listener(Listener::web())
        .listener(Listener::new("other", "other"))
        .pool(pool("app"))
        .pool(pool("other"));
    let tether = Tether::start(&config).await;
    let app = Http1::new(tether.addr("web"));
    let other = Http1::new(tether.addr("other"));

    let first = affinity::get(&app, "/", None).await;
    let value = issued(&first, COOKIE).expect("cookie issued");
    let cookie = format!("{COOKIE}={value}");
    assert_eq!(
        explain(&affinity::get(&app, "/", Some(&cookie)).await).why,
        "hit"
    );
    let reply = affinity::get(&other, "/", Some(&cookie)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        explain(&reply).why,
        "invalid",
        "pool app's cookie opened in pool other"
    );
}
