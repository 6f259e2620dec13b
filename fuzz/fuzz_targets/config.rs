//! `Config::from_toml` on arbitrary text; see `fuzz/src/checks.rs` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ethgas_sidecar_fuzz::check_config(data));
