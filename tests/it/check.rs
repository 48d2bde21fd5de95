//! `tether check` accepts the shipped configs and rejects bad ones with exit 1, naming each bad key.

use std::path::Path;
use std::process::Output;

use crate::common::tether::{check_config, check_file};

/// A valid config that exercises most sections; each rejection test breaks one thing in it.
const VALID: &str = r#"[runtime]
threads = 0
shutdown_timeout = "30s"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "app"
max_header_size = 32768
header_timeout = "10s"

[pool.app]
balance = "round_robin"
connect_timeout = "2s"
response_timeout = "30s"

[[pool.app.backend]]
id = "app-1"
addr = "127.0.0.1:9001"

[[pool.app.backend]]
id = "app-2"
addr = "127.0.0.1:9002"
weight = 2
"#;

/// `VALID` with `from` replaced by `to` (exactly once, so a typo here fails loudly).
fn broken(edits: &[(&str, &str)]) -> String {
    let mut config = VALID.to_string();
    for (from, to) in edits {
        assert_eq!(config.matches(from).count(), 1, "{from:?} must occur once");
        config = config.replacen(from, to, 1);
    }
    config
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\n--- stderr ---\n{}\n--- stdout ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    )
}

/// Checks `config`, expects exit 1, and expects stderr to name every one of `keys`.
fn assert_rejected(config: &str, keys: &[&str]) {
    let output = check_config(config);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in keys {
        assert!(
            stderr.contains(key),
            "stderr does not name {key:?}\n{}",
            describe(&output)
        );
    }
}

#[test]
fn every_shipped_config_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The examples, and the tether configs the benchmarks run.
    let tether_toml = |path: &Path| {
        path.extension().is_some_and(|ext| ext == "toml")
            && (path.starts_with(root.join("configs"))
                || path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("tether")))
    };
    let mut configs: Vec<_> = ["configs", "bench/peers", "bench/callgrind"]
        .iter()
        .map(|dir| root.join(dir))
        .flat_map(|dir| {
            std::fs::read_dir(&dir)
                .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
                .map(|entry| entry.expect("dir entry").path())
        })
        .filter(|path| tether_toml(path))
        .collect();
    configs.sort();
    assert!(configs.len() >= 9, "too few configs found: {configs:?}");
    for config in configs {
        let output = check_file(&config, false);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{} rejected: {}",
            config.display(),
            describe(&output)
        );
    }
}

#[test]
fn the_reference_config_is_valid_with_short_and_long_flags() {
    let output = check_config(VALID);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let file = tempfile::NamedTempFile::new().expect("tempfile");
    std::fs::write(file.path(), VALID).expect("write config");
    let output = check_file(file.path(), true);
    assert_eq!(
        output.status.code(),
        Some(0),
        "--config: {}",
        describe(&output)
    );
}

#[test]
fn a_bad_backend_address_is_named_by_its_key_path() {
    let config = broken(&[("\"127.0.0.1:9002\"", "\"127.0.0.1:notaport\"")]);
    assert_rejected(&config, &["pool.app.backend[1].addr"]);
}

#[test]
fn an_unknown_key_is_named() {
    let config = broken(&[(
        "balance = \"round_robin\"",
        "balance = \"round_robin\"\nbogus = 1",
    )]);
    assert_rejected(&config, &["bogus"]);
}

#[test]
fn a_bad_duration_is_named_by_its_key_path() {
    let config = broken(&[(
        "shutdown_timeout = \"30s\"",
        "shutdown_timeout = \"soonish\"",
    )]);
    assert_rejected(&config, &["runtime.shutdown_timeout"]);
}

#[test]
fn an_unknown_balance_is_named_by_its_key_path() {
    let config = broken(&[("\"round_robin\"", "\"fastest\"")]);
    assert_rejected(&config, &["pool.app.balance"]);
}

#[test]
fn a_listener_pointing_at_a_missing_pool_is_named() {
    let config = broken(&[("pool = \"app\"", "pool = \"nope\"")]);
    assert_rejected(&config, &["listener[0].pool"]);
}

#[test]
fn a_bad_listen_address_is_named_by_its_key_path() {
    let config = broken(&[("listen = \"127.0.0.1:0\"", "listen = \"everywhere\"")]);
    assert_rejected(&config, &["listener[0].listen"]);
}

#[test]
fn a_weight_out_of_range_is_named_by_its_key_path() {
    let config = broken(&[("weight = 2", "weight = 0")]);
    assert_rejected(&config, &["pool.app.backend[1].weight"]);
}

#[test]
fn a_duplicate_backend_id_is_named_at_the_second_occurrence() {
    let config = broken(&[("id = \"app-2\"", "id = \"app-1\"")]);
    assert_rejected(&config, &["pool.app.backend[1].id"]);
}

#[test]
fn invalid_toml_syntax_names_the_line() {
    let config = broken(&[("connect_timeout = \"2s\"", "connect_timeout = \"2s")]);
    let line = 1 + config
        .lines()
        .position(|l| l == "connect_timeout = \"2s")
        .expect("broken line");

    let output = check_config(&config);

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(
        stderr.contains(&format!("line {line}")) || stderr.contains(&format!(":{line}:")),
        "stderr does not point at line {line}\n{}",
        describe(&output)
    );
}

#[test]
fn every_problem_in_a_file_is_reported_at_once() {
    let config = broken(&[
        ("\"127.0.0.1:9002\"", "\"127.0.0.1:notaport\""),
        (
            "shutdown_timeout = \"30s\"",
            "shutdown_timeout = \"soonish\"",
        ),
    ]);
    assert_rejected(
        &config,
        &["pool.app.backend[1].addr", "runtime.shutdown_timeout"],
    );
}

/// The lines of `output`'s stderr that name a problem (every line but the closing count).
fn problems(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.ends_with("problem(s)"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_kind_of_mistake_is_reported_in_one_run_in_line_order_with_suggestions() {
    let config = broken(&[
        (
            "shutdown_timeout = \"30s\"",
            "shutdown_timeout = \"soonish\"",
        ),
        ("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:99999\""),
        (
            "balance = \"round_robin\"",
            "balance = \"least_con\"\nhelth = { path = \"/healthz\" }",
        ),
        ("max_header_size = 32768", "max_header_size = \"32k\""),
        ("addr = \"127.0.0.1:9001\"", "addr = \"10.0.0.5\""),
        ("weight = 2", "wieght = 2"),
    ]);

    let output = check_config(&config);

    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let expected = [
        "runtime.shutdown_timeout (line 3): invalid duration \"soonish\"",
        "listener[0].listen (line 7): invalid socket address \"127.0.0.1:99999\": \
         port 99999 is out of range (0-65535)",
        "listener[0].max_header_size (line 9): invalid type: string \"32k\", expected usize",
        "pool.app.balance (line 13): unknown balance \"least_con\"; did you mean \"least_conn\"?",
        "pool.app.helth (line 14): unknown key `helth`; did you mean `health`?",
        "pool.app.backend[0].addr (line 20): invalid socket address \"10.0.0.5\": no port; \
         expected IP:port or name:port, e.g. \"10.0.0.5:9001\"",
        "pool.app.backend[1].wieght (line 25): unknown key `wieght`; did you mean `weight`?",
    ];
    let lines = problems(&output);
    assert_eq!(lines.len(), expected.len(), "{}", describe(&output));
    for (line, want) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "{line:?} should start with {want:?}"
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} problem(s)", expected.len())),
        "{}",
        describe(&output)
    );
}

#[test]
fn an_unknown_key_without_a_near_miss_lists_the_valid_keys_at_its_level() {
    let config = broken(&[("weight = 2", "weight = 2\nbogus = 1")]);
    let output = check_config(&config);
    assert_eq!(
        problems(&output),
        ["pool.app.backend[1].bogus (line 25): unknown key `bogus`; valid keys here: id, addr, weight"],
        "{}",
        describe(&output)
    );
}

#[test]
fn a_misspelled_required_key_is_named_and_the_rest_of_the_file_still_checked() {
    let config = broken(&[
        ("addr = \"127.0.0.1:9001\"", "adr = \"127.0.0.1:9001\""),
        ("weight = 2", "weight = 0"),
    ]);
    let output = check_config(&config);
    assert_eq!(
        problems(&output),
        [
            "pool.app.backend[0] (line 17): missing field `addr`",
            "pool.app.backend[0].adr (line 19): unknown key `adr`; did you mean `addr`?",
            "pool.app.backend[1].weight (line 24): weight 0 out of range 1..=1000",
        ],
        "{}",
        describe(&output)
    );
}

#[test]
fn a_backend_name_is_accepted_and_a_bad_addr_says_what_is() {
    let named = broken(&[("127.0.0.1:9002", "app.internal:9002")]);
    let output = check_config(&named);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_rejected(
        &broken(&[("127.0.0.1:9002", "app internal:9002")]),
        &[
            "pool.app.backend[1].addr (line 23)",
            "expected IP:port or name:port",
        ],
    );
    assert_rejected(
        &format!(
            "{}\n[resolver]\nnameservers = [\"ns.example\"]\n",
            broken(&[(
                "balance = \"round_robin\"",
                "discover = { dns = \"app.internal\" }",
            )])
        ),
        &[
            "pool.app.discover (line 13): discover.dns needs a port",
            "resolver.nameservers[0] (line 27)",
        ],
    );
}
