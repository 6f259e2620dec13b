//! `proxy::rewrite_request` (and `strip_hop_by_hop`) on a request hyper would
//! accept; see `fuzz/src/checks.rs` for the invariants.
#![no_main]

use ethgas_sidecar_fuzz::RewriteInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: RewriteInput| ethgas_sidecar_fuzz::check_rewrite(input));
