//! Fuzz target: `tether::config::parse` on arbitrary UTF-8 must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // Ok or a list of errors are both fine; only a panic (or a hang) is a finding.
    let _ = tether::config::parse(text);
});
