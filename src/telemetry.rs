//! Log output: tracing-subscriber, text or JSON, on stderr.
//!
//! Text by default, without ANSI colour unless stderr is a terminal (so
//! journald and files get clean lines); JSON with `log.format = "json"`, one
//! object a line with the event's fields at the top level, which is what
//! journald and log shippers filter on. The level comes from `RUST_LOG` if set,
//! else `log.level`, else `info`, and can be changed by a reload. Filters are
//! `RUST_LOG`-style target lists (`info,hyper_util=debug`); span and field
//! filters are not supported, which keeps a regex engine out of the binary.
//!
//! Secrets never reach a log line: they live in `Secret`, whose formatting is a
//! mask, and the `Authorization` header value is marked sensitive (its `Debug`
//! prints "Sensitive"). HTTP/2 internals are capped at `info` unless asked for
//! by name, and `log`-crate records from dependencies (which could print raw
//! WebSocket frames) are not collected at all.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, fmt, reload};

use crate::config::{LogFormat, LogSettings};

/// Changes the level of a running logger.
pub struct LogHandle {
    handle: reload::Handle<Targets, Registry>,
    from_env: bool,
}

/// A `RUST_LOG`-style filter: a default level and `target=level` pairs,
/// e.g. `info,ethgas_sidecar=debug,hyper_util=warn`. HTTP/2 internals stay
/// at `info` unless named.
pub fn filter(spec: &str) -> Result<Targets, String> {
    let mut f: Targets = spec.trim().parse().map_err(|e| {
        format!("bad log filter {spec:?}: {e}; use a level (error, warn, info, debug, trace) or target=level pairs")
    })?;
    if !spec.contains("h2") {
        f = f.with_target("h2", tracing::Level::INFO);
    }
    Ok(f)
}

/// Installs the global subscriber. Fails if one is installed already.
pub fn init(settings: &LogSettings) -> Result<LogHandle, String> {
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let from_env = env.is_some();
    let spec = env.or_else(|| settings.level.clone()).unwrap_or_else(|| "info".into());
    let (layer, handle) = reload::Layer::new(filter(&spec)?);
    let registry = tracing_subscriber::registry().with(layer);
    let ansi = std::io::stderr().is_terminal();
    let result = match settings.format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| e.to_string())?;
    Ok(LogHandle { handle, from_env })
}

impl LogHandle {
    /// Applies `log.level` from a reloaded config (unless `RUST_LOG` rules).
    pub fn set_level(&self, level: Option<&str>) -> Result<(), String> {
        if self.from_env {
            return Ok(());
        }
        let f = filter(level.unwrap_or("info"))?;
        self.handle.reload(f).map_err(|e| e.to_string())
    }
}
