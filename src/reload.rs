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
//! [`Restart`]: crate::config::Restart

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::auth::AuthHandle;
use crate::config::{Config, Live};
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::telemetry::LogHandle;

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

    /// Applies one reload per message until `shutdown`.
    pub async fn run(mut self, mut reloads: mpsc::UnboundedReceiver<()>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = reloads.recv() => if r.is_none() { break },
            }
            self.notifier.reloading();
            self.reload().await;
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
        let loaded = match load.await {
            Ok(result) => result,
            Err(e) => {
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
