//! ethgas-sidecar: a local auth sidecar for the ETHGas API.
//!
//! It logs in once with the account's username and password, keeps the token
//! pair in an `ArcSwap` cell, refreshes it before it expires, and forwards
//! every request that legacy programs on the same host send it to the API
//! with `Authorization: Bearer <token>` added. The programs never hold the
//! password or a live token.
//!
//! # Layout
//!
//! - [`cli`] — the command line (clap definitions; the man pages and completions come from them).
//! - [`config`] — the TOML file: raw serde structs, validated once into typed `Config`.
//! - [`secret`] — the `Secret` newtype whose formatting is a mask.
//! - [`auth`] — login, refresh, logout; the token cell and its single writer task.
//! - [`upstream`] — TLS (rustls, HTTP/1.1 + HTTP/2 by ALPN), the connector, the auth task's client.
//! - [`pool`] — each proxy worker's own connections to the API (a stack of HTTP/1, or one HTTP/2).
//! - [`proxy`] — request rewriting and forwarding, 401 replay, the error envelope mapping.
//! - [`intercept`] — answers a program's own login/refresh/logout with placeholders.
//! - [`ws`] — WebSocket relay with the in-socket login rewritten and renewed.
//! - [`framing`] — refuses requests with ambiguous length (smuggling guard).
//! - [`admin`] — `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`] — Prometheus series, pre-labelled for an allocation-free hot path.
//! - [`server`] — listeners (TCP, unix, systemd-activated), connections, the drain.
//! - [`app`] — wiring: config + listeners → running sidecar; SIGHUP reload.
//! - [`notify`] — systemd readiness, status and watchdog.
//! - [`signal`] — which signal arrived.
//! - [`telemetry`] — log output (text or JSON; sd-daemon priorities when stderr is the journal).
//! - [`status`] — `ethgas-sidecar status`: `/readyz` of a running sidecar, for a person or a script.
//! - [`envelope`] — the API's `{code, message, data}` JSON shape.
//! - [`mock`] — the built-in mock ETHGas API (demo, tests, offline use).
//!
//! `main.rs` only parses the command line and calls into these.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod envelope;
pub mod framing;
pub mod intercept;
pub mod metrics;
pub mod mock;
pub mod notify;
pub mod pool;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod signal;
pub mod status;
pub mod telemetry;
pub mod upstream;
pub mod ws;
