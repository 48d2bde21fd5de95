//! `tether-bench`: the affinity lab (demo backend, load generator, scenario runner).
//!
//! Reserved package: the lab lands with its own issue. Until then the binary only says so,
//! so that nobody mistakes an empty run for a passing scenario.

fn main() {
    eprintln!("tether-bench: the affinity lab is not built yet; see README.md");
    std::process::exit(2);
}
