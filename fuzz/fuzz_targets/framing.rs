//! `framing::Tracker` on a byte stream fed whole and in pieces; see
//! `fuzz/src/checks.rs` for the input layout and the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ethgas_sidecar_fuzz::check_framing(data));
