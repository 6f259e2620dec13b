//! ethgas-sidecar: a local auth sidecar for the ETHGas API.
//!
//! It logs in once with the account's credentials, keeps the token pair in
//! an `ArcSwap` cell, refreshes it before it expires, and forwards every
//! request that legacy programs on the same host send it to the API with
//! `Authorization: Bearer <token>` added. The programs never hold the
//! password or a live token.
//!
//! # Layout
//!
//! - [`cli`] — the command line (clap definitions; the man pages and completions come from them).
//! - [`config`] — the TOML file: raw serde structs, validated once into a typed
//!   `Config`, split into what needs a restart and what a reload applies.
//! - `reload` — SIGHUP: re-read, validate, name the restart-only changes, publish the live part.
//! - `access` — the one admission gate: client allow-list, one `Host`, head limits, browser `Origin`/`Sec-Fetch-Site`, `Host` rule (DNS rebinding), absolute form.
//! - `secret` — the `Secret` newtype whose formatting is a mask.
//! - [`eth`] — the wallet key (hex or keystore), its address, EIP-712 signing and signer recovery.
//! - `auth` — login, refresh, logout; the token cell and its single writer task.
//! - `upstream` — TLS (rustls, HTTP/1.1 + HTTP/2 by ALPN), the connector, the upstream origin.
//! - `pool` — connections to the API (a stack of HTTP/1, or one HTTP/2) for each proxy worker and the auth task; `warm` keeps one open per worker.
//! - [`memory`] — gives the allocator's free memory back to the system after a burst.
//! - `proxy` — request rewriting and forwarding, 401 replay; generic over the request body, so its unit tests
//!   drive it with requests built in memory.
//! - `intercept` — which requests are a program's own login/refresh/logout, and their placeholder answers;
//!   which are public market data (both read paths as a lenient upstream would).
//! - `ws` — WebSocket relay with the in-socket login rewritten and renewed.
//! - `error` — the sidecar's own errors and the one mapping to a status and envelope.
//! - `envelope` — the API's JSON envelopes (documented and live), chosen in one place.
//! - `admin` — `/healthz`, `/readyz`, `/metrics`.
//! - `metrics` — Prometheus series, pre-labelled for an allocation-free hot path.
//! - [`server`] — listeners (TCP, unix, systemd-activated), the proxy workers, connections, the drain.
//! - [`app`] — wiring: config + listeners → running sidecar; a dead auth task or worker stops it (exit 1).
//! - `liveness` — the parts that must stay alive (auth task, proxy workers): how an end is reported, heartbeats.
//! - [`notify`] — systemd readiness, status, and the watchdog (pings only while every heartbeat is fresh).
//! - `fault` — deliberate failures for the process tests (only with the `test-util` feature).
//! - [`signal`] — which signal arrived, and the process's signal policy.
//! - [`telemetry`] — log output (text or JSON; sd-daemon priorities when stderr is the journal).
//! - [`status`] — `ethgas-sidecar status`: `/readyz` of a running sidecar, for a person or a script.
//! - `clock` — the wall clock, for JWT times.
//! - [`demo`] — the `demo` and `mock-api` commands (the mock API is the `ethgas-mock` crate, mock/).
//!
//! The live API's names (paths, refresh cookie, bearer scheme, login typed
//! data) and `normalize_path` are the `ethgas-api` crate (api/), shared with the mock.
//!
//! `main.rs` only parses the command line and calls into these.

#![forbid(unsafe_code)]

pub(crate) mod access;
pub(crate) mod admin;
pub mod app;
pub(crate) mod audit;
pub(crate) mod auth;
pub mod cli;
pub(crate) mod clock;
pub mod config;
pub mod demo;
pub(crate) mod envelope;
pub(crate) mod error;
pub mod eth;
pub(crate) mod fault;
pub(crate) mod intercept;
pub(crate) mod liveness;
pub mod memory;
pub(crate) mod metrics;
pub mod notify;
pub(crate) mod policy;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod reload;
pub(crate) mod secret;
pub mod server;
pub mod signal;
pub mod status;
pub mod telemetry;
pub(crate) mod upstream;
pub(crate) mod ws;

/// What the fuzz targets (and `tests/fuzz_regressions.rs`, which runs their
/// checks) reach inside the crate. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::auth::{AuthError, jwt_exp, parse_grant};
    pub use crate::intercept::Placeholders;
    pub use crate::proxy::{ClientAuth, rewrite_request};
    pub use crate::upstream::Target;
}
