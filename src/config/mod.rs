//! Config file: raw serde structs (unknown keys rejected) validated into a typed [`Config`].
//!
//! Parsing happens in two steps so that `tether check` can report *every* problem at once:
//! the structural pass (`structure`) runs serde again after each unknown key or wrong-typed
//! value, taking it out, so it collects them all (with "did you mean" for near misses, from
//! `suggest`); then [`validate`] walks the raw tree and collects every semantic problem. Each
//! names its key path and line, e.g. `pool.app.backend[1].addr (line 14): ...`, sorted by line.

mod affinity;
mod discover;
mod pool;
mod problems;
mod raw;
mod retry;
pub mod route;
mod structure;
mod suggest;
mod types;
mod validate;

pub use problems::ConfigErrors;
pub use types::*;
pub use validate::{load, parse, parse_in};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "app"

[pool.app]
balance = "least_conn"

[[pool.app.backend]]
id = "app-1"
addr = "127.0.0.1:9001"

[[pool.app.backend]]
id = "app-2"
addr = "127.0.0.1:9002"
weight = 2
"#;

    #[test]
    fn defaults_fill_in() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.runtime.shutdown_timeout, Duration::from_secs(30));
        let l = &c.listeners[0];
        assert_eq!(l.max_header_size, 32 * 1024);
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        let pool = &c.pools["app"];
        assert_eq!(pool.balance, Balance::LeastConn);
        assert_eq!(pool.backends[1].weight, 2);
        assert_eq!(pool.connect_timeout, Duration::from_secs(2));
    }

    #[test]
    fn every_semantic_problem_is_reported_with_key_and_line() {
        let bad = GOOD
            .replace("127.0.0.1:9002", "127.0.0.1:notaport")
            .replace("least_conn", "fastest")
            .replace("pool = \"app\"", "pool = \"nope\"");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains(
                "pool.app.backend[1].addr (line 16): invalid socket address \"127.0.0.1:notaport\""
            ),
            "{err}"
        );
        assert!(
            err.contains("pool.app.balance (line 8): unknown balance \"fastest\""),
            "{err}"
        );
        assert!(
            err.contains("listener[0].pool (line 5): no pool named \"nope\""),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_path() {
        let bad = GOOD.replace("weight = 2", "weight = 2\nwieght = 3");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with("pool.app.backend[1].wieght (line 18): unknown key `wieght`"),
            "{err}"
        );
        assert!(err.contains("did you mean `weight`?"), "{err}");
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_values_are_reported_together_in_line_order() {
        let bad = GOOD
            .replace("weight = 2", "wieght = 2")
            .replace(
                "balance = \"least_conn\"",
                "balance = \"least_con\"\nhelth = 1",
            )
            .replace("addr = \"127.0.0.1:9001\"", "addr = 9001");
        let err = parse(&bad).unwrap_err();
        let lines: Vec<&str> = err.0.iter().map(String::as_str).collect();
        assert_eq!(
            lines,
            [
                "pool.app.balance (line 8): unknown balance \"least_con\"; did you mean \"least_conn\"? \
                 (expected round_robin, least_conn, random or hash)",
                "pool.app.helth (line 9): unknown key `helth`; did you mean `health`?",
                "pool.app.backend[0].addr (line 13): invalid type: integer `9001`, expected a string",
                "pool.app.backend[1].wieght (line 18): unknown key `wieght`; did you mean `weight`?",
            ],
        );
    }

    #[test]
    fn bad_durations_weights_and_duplicates() {
        let bad = GOOD
            .replace("weight = 2", "weight = 0\nid2 = 1")
            .replace("id2 = 1", "")
            .replace("\"app-2\"", "\"app-1\"")
            .replace("balance = \"least_conn\"", "connect_timeout = \"soon\"");
        let err = parse(&bad).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.0.len(), 3, "{text}");
        assert!(text.contains("pool.app.connect_timeout"), "{text}");
        assert!(text.contains("pool.app.backend[1].id"), "{text}");
        assert!(text.contains("pool.app.backend[1].weight"), "{text}");
    }

    #[test]
    fn idle_release_defaults_to_a_second_and_zero_turns_it_off() {
        let listener =
            |extra: &str| GOOD.replace("pool = \"app\"\n", &format!("pool = \"app\"\n{extra}\n"));
        let cfg = parse(GOOD).expect("good config");
        assert_eq!(cfg.listeners[0].idle_release, Some(Duration::from_secs(1)));
        let cfg = parse(&listener("idle_release = \"0s\"")).expect("zero is allowed");
        assert_eq!(cfg.listeners[0].idle_release, None);
        let err = parse(&listener("idle_release = \"soon\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listener[0].idle_release"), "{err}");
        let err = parse(&listener("idle_timeout = \"0s\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("idle_timeout") && err.contains("greater than zero"),
            "{err}"
        );
    }

    #[test]
    fn pool_idle_release_defaults_to_a_second_and_zero_turns_it_off() {
        let pool = |extra: &str| {
            GOOD.replace(
                "balance = \"least_conn\"",
                &format!("balance = \"least_conn\"\n{extra}"),
            )
        };
        let cfg = parse(GOOD).expect("good config");
        assert_eq!(cfg.pools["app"].idle_release, Some(Duration::from_secs(1)));
        let cfg = parse(&pool("idle_release = \"0s\"")).expect("zero is allowed");
        assert_eq!(cfg.pools["app"].idle_release, None);
        let cfg = parse(&pool("idle_release = \"250ms\"")).expect("good config");
        assert_eq!(
            cfg.pools["app"].idle_release,
            Some(Duration::from_millis(250))
        );
        let err = parse(&pool("idle_release = \"later\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pool.app.idle_release"), "{err}");
    }

    #[test]
    fn log_format_is_text_by_default_json_on_request_and_a_typo_is_named() {
        assert_eq!(parse(GOOD).unwrap().log.format, LogFormat::Text);
        let with = |f: &str| format!("{GOOD}\n[log]\nformat = \"{f}\"\n");
        assert_eq!(parse(&with("json")).unwrap().log.format, LogFormat::Json);
        let err = parse(&with("jsno")).unwrap_err().to_string();
        assert!(err.contains("log.format (line 20)"), "{err}");
        assert!(err.contains("did you mean \"json\"?"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("[[listener]\nname = 1").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn backend_names_discover_and_resolver() {
        let text = GOOD.replace("127.0.0.1:9002", "App.Internal:9002")
            + r#"
[pool.found]
discover = { dns = "app.internal", port = 8080, interval = "5s", weight = 3 }

[pool.srv]
discover = { srv = "_http._tcp.app.internal" }

[resolver]
nameservers = ["127.0.0.1:5353", "10.0.0.1"]
min_ttl = "500ms"
"#;
        let c = parse(&text).unwrap();
        let app = &c.pools["app"];
        assert_eq!(app.backends.len(), 1);
        assert_eq!(
            app.named,
            [NamedBackend {
                id: "app-2".into(),
                host: "app.internal".into(),
                port: 9002,
                weight: 2
            }]
        );
        let found = &c.pools["found"];
        assert!(found.backends.is_empty());
        assert_eq!(
            found.discover,
            Some(DiscoverConfig {
                query: DiscoverQuery::Dns {
                    name: "app.internal".into(),
                    port: 8080
                },
                interval: Some(Duration::from_secs(5)),
                weight: 3,
            })
        );
        assert_eq!(
            c.pools["srv"].discover.as_ref().map(|d| &d.query),
            Some(&DiscoverQuery::Srv {
                name: "_http._tcp.app.internal".into()
            })
        );
        assert_eq!(
            c.resolver.nameservers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "10.0.0.1:53".parse().unwrap()
            ]
        );
        assert_eq!(c.resolver.min_ttl, Duration::from_millis(500));
        assert_eq!(c.resolver.max_ttl, Duration::from_secs(30));
    }

    #[test]
    fn discover_and_resolver_errors_name_key_and_line() {
        let text = GOOD.replace("127.0.0.1:9002", "app internal:9002")
            + "[pool.a]\ndiscover = { dns = \"app.internal\" }\n\
               [pool.b]\ndiscover = { srv = \"_x._tcp.b\", port = 80 }\n\
               [pool.c]\ndiscover = { dns = \"c\", srv = \"_x._tcp.c\", port = 1 }\n\
               [pool.d]\n\
               [resolver]\nnameservers = [\"dns.example\"]\n";
        let err = parse(&text).unwrap_err().to_string();
        for expected in [
            "pool.app.backend[1].addr (line 16): invalid socket address \"app internal:9002\": \
             \"app internal\" is neither an IP address nor a DNS name; expected IP:port or name:port",
            "pool.a.discover (line 19): discover.dns needs a port",
            "pool.b.discover.port (line 21): an SRV record carries its own port",
            "pool.c.discover (line 23): expected exactly one of",
            "pool.d.backend: a pool needs at least one [[pool.NAME.backend]] or discover",
            "resolver.nameservers[0] (line 26): invalid name server \"dns.example\"",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn tls_to_backends_reached_by_name_needs_no_tls_sni() {
        // By name, or discovered under a name: that name is the server name, no warning.
        let named = GOOD
            .replace("127.0.0.1:9002", "app.internal:9002")
            .replace("balance = \"least_conn\"", "tls = true");
        let c = parse(&named).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let pool = |discover: &str| {
            GOOD.replace(
                "balance = \"least_conn\"",
                &format!("tls = true\ndiscover = {{ {discover} }}"),
            )
        };
        for discover in [
            "dns = \"app.internal\", port = 8443",
            "srv = \"_https._tcp.app.internal\"",
        ] {
            let c = parse(&pool(discover)).unwrap();
            assert!(c.warnings.is_empty(), "{discover}: {:?}", c.warnings);
        }
    }

    #[test]
    fn an_admin_token_of_blanks_or_with_spaces_is_refused() {
        let with = |token: &str| {
            format!("{GOOD}\n[admin]\nlisten = \"127.0.0.1:9000\"\ntoken = \"{token}\"\n")
        };
        for token in [
            " ".repeat(20),
            "\\t".repeat(20),
            "correct horse battery staple".into(),
        ] {
            let err = parse(&with(&token)).unwrap_err().to_string();
            assert!(err.contains("admin.token"), "{token:?}: {err}");
            assert!(err.contains("without spaces"), "{token:?}: {err}");
        }
        let err = parse(&with("short")).unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");
        assert!(parse(&with("0123456789abcdef-token")).is_ok());
    }
}
