//! Reload (SIGHUP): the one path by which a running sidecar takes a changed
//! configuration.
//!
//! [`Reloader::run`] waits for reload requests; each one reads and validates
//! the file again (a broken file is rejected and the running configuration
//! stays), computes which changed keys need a restart and names them, then
//! publishes the [`Live`] part once: the proxy and the server read it per
//! request and per connection from the shared cell, the auth task gets the
//! new credentials (and logs in with them if they changed, the old token
//! serving meanwhile), and the log level follows. The [`Restart`] part stays
//! as it was started, so the next reload is compared with what really runs.
//!
//! Requests are coalesced (one reload running, at most one pending) and a
//! reload is bounded in time, so neither a burst of SIGHUPs nor a read that
//! never ends piles up work or blocks a later reload or the stop.
//!
//! [`Restart`]: crate::config::Restart

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::auth::AuthHandle;
use crate::config::{Config, Live};
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::telemetry::LogHandle;

/// The longest a reload may take to read and validate the file and its
/// secrets (unlocking a keystore at the heaviest accepted scrypt cost takes
/// seconds): after it the reload is given up, so that a read that never
/// ends cannot hold up later reloads.
const RELOAD_LIMIT: Duration = Duration::from_secs(120);

/// Removes the requests already queued; how many there were.
fn drain(reloads: &mut mpsc::UnboundedReceiver<()>) -> usize {
    let mut n = 0;
    while reloads.try_recv().is_ok() {
        n += 1;
    }
    n
}

/// Applies reload requests to a running sidecar.
pub struct Reloader {
    /// What runs: the restart part as started, the live part as last applied.
    running: Config,
    live: Arc<ArcSwap<Live>>,
    auth: AuthHandle,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    log: Option<LogHandle>,
}

/// What a reload did, for the caller and the tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file was refused; nothing changed.
    Rejected,
    /// The live part was applied; these keys changed but need a restart.
    Applied { needs_restart: Vec<String> },
}

impl Reloader {
    pub fn new(
        running: Config,
        live: Arc<ArcSwap<Live>>,
        auth: AuthHandle,
        metrics: Arc<Metrics>,
        notifier: Notifier,
        log: Option<LogHandle>,
    ) -> Reloader {
        Reloader {
            running,
            live,
            auth,
            metrics,
            notifier,
            log,
        }
    }

    /// Applies reload requests until `shutdown`. Requests are coalesced: one
    /// reload runs, and every request that arrives meanwhile is served by
    /// one more reload after it (which reads the file as it is then) — so a
    /// burst of SIGHUPs costs at most two keystore unlocks, not one each.
    /// A stop never waits for a reload.
    pub async fn run(mut self, mut reloads: mpsc::UnboundedReceiver<()>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = reloads.recv() => if r.is_none() { break },
            }
            let merged = drain(&mut reloads);
            if merged > 0 {
                info!(requests = merged + 1, "reload requests merged into one reload");
            }
            self.notifier.reloading();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.reload() => {}
            }
            self.notifier.ready(&notify::status_line(&self.auth));
        }
    }

    /// Reads the file again and applies what it can.
    pub async fn reload(&mut self) -> Outcome {
        let path = self.running.path.clone();
        info!(config = %path.display(), "reloading");
        // Off the runtime: unlocking a keystore takes seconds (scrypt).
        let load = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Config::load(&path))
        };
        let loaded = match tokio::time::timeout(RELOAD_LIMIT, load).await {
            Ok(Ok(result)) => result,
            Err(_) => {
                // The read goes on in its thread; it no longer holds up anything.
                self.metrics.reloads.with_label_values(&["rejected"]).inc();
                error!(
                    limit = %humantime::format_duration(RELOAD_LIMIT),
                    "reload rejected, the running configuration stays: reading the configuration and its secrets did not finish in time (a file on a stuck network mount?); a later SIGHUP tries again"
                );
                return Outcome::Rejected;
            }
            Ok(Err(e)) => {
                self.metrics.reloads.with_label_values(&["rejected"]).inc();
                error!("reload rejected, the running configuration stays: loading it failed: {e}");
                return Outcome::Rejected;
            }
        };
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                self.metrics.reloads.with_label_values(&["rejected"]).inc();
                error!("reload rejected, the running configuration stays: {e}");
                return Outcome::Rejected;
            }
        };
        for w in &new.warnings {
            warn!("{w}");
        }
        let needs_restart = self.running.restart_differences(&new);
        if !needs_restart.is_empty() {
            warn!(
                keys = %needs_restart.join(", "),
                "these settings changed but take effect only after a restart (systemctl restart ethgas-sidecar)"
            );
        }
        if let Some(log) = &self.log {
            if let Err(e) = log.set_level(new.live.log.level.as_deref()) {
                warn!("log.level not applied: {e}");
            }
        }
        self.live.store(Arc::new(new.live.clone()));
        self.auth.reload(new.live.auth.clone()).await;
        self.running.live = new.live;
        self.metrics.reloads.with_label_values(&["applied"]).inc();
        info!("configuration reloaded");
        Outcome::Applied { needs_restart }
    }
}
