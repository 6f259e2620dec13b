//! The fuzzers' findings, replayed by plain `cargo test` (no libFuzzer, no
//! nightly flags).
//!
//! Each target's checks live in `fuzz/src/checks.rs`, which the fuzz targets
//! call and which this test includes as a module, so a replay runs exactly
//! the assertions the fuzzer ran. Inputs: every `.bin` (or, for `config`,
//! `.toml`) file in `fuzz/regressions/<target>/` (crash inputs and a few
//! interesting corpus entries) and in `fuzz/seeds/<target>/` (the
//! hand-written seeds). A file with any other extension fails the test rather
//! than being skipped, and each target must replay at least one regression,
//! so the test cannot pass by reading nothing.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The input files of `dir` (`fuzz/<kind>/<target>`), sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .path();
        if !path.is_file() {
            continue;
        }
        let ext = path.extension().and_then(OsStr::to_str);
        let known = matches!((target, ext), (_, Some("bin")) | ("config", Some("toml")));
        assert!(
            known,
            "{}: regression inputs are named *.bin (or *.toml for config); rename it so it is replayed",
            path.display()
        );
        files.push(path);
    }
    files.sort();
    files
}

/// Runs `check` on every regression and seed of `target`.
fn replay(target: &str, check: fn(&[u8])) {
    let regressions = inputs("regressions", target);
    let seeds = inputs("seeds", target);
    for path in regressions.iter().chain(&seeds) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        eprintln!("replaying {}", path.display());
        check(&data);
    }
    assert!(
        !regressions.is_empty(),
        "no regression inputs in fuzz/regressions/{target}/: the replay checked nothing"
    );
}

#[test]
fn config_regressions() {
    replay("config", checks::run_config);
}

#[test]
fn grant_regressions() {
    replay("grant", checks::run_grant);
}

#[test]
fn rewrite_regressions() {
    replay("rewrite", checks::run_rewrite);
}
