//! `auth::parse_grant` and `auth::jwt_exp` on a login/refresh answer; see
//! `fuzz/src/checks.rs` for the invariants.
#![no_main]

use ethgas_sidecar_fuzz::GrantInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: GrantInput<'_>| ethgas_sidecar_fuzz::check_grant(input));
