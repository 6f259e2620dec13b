//! Wiring: from a validated [`Config`] and bound listeners to a running
//! sidecar, and back down again.
//!
//! [`run`] builds the upstream client, starts the auth task (the token cell's
//! one writer), the systemd notifier and the reload loop, and serves until the
//! shutdown token is cancelled. Then it drains the connections and only after
//! that stops the auth task, which logs out — so requests in flight keep a
//! token to the end. Tests call the same `run` on listeners bound to port 0.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::admin::Admin;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::pool::Pool;
use crate::proxy::Proxy;
use crate::server::{self, Access, Listener, Server};
use crate::telemetry::LogHandle;
use crate::upstream::{self, Target};
use crate::ws::WsRelay;

/// The sockets the sidecar serves on, already bound.
pub struct Listeners {
    pub proxy: Listener,
    pub admin: Option<Listener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let proxy = Listener::bind(&config.proxy.listen, config.proxy.unix_mode)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on proxy.listen = {}: {e}", config.proxy.listen))?;
        let admin = Listener::bind(&config.admin.listen, 0o660)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on admin.listen = {}: {e}", config.admin.listen))?;
        Ok(Listeners {
            proxy,
            admin: Some(admin),
        })
    }
}

/// What drives the sidecar from outside.
pub struct Control {
    /// Cancelled to stop (SIGTERM/SIGINT).
    pub shutdown: CancellationToken,
    /// One message per reload request (SIGHUP).
    pub reload: Option<mpsc::UnboundedReceiver<()>>,
    pub notifier: Notifier,
    pub log: Option<LogHandle>,
}

impl Control {
    /// No systemd, no reloads, no log handle: what tests use.
    pub fn new(shutdown: CancellationToken) -> Control {
        Control {
            shutdown,
            reload: None,
            notifier: Notifier::disabled(),
            log: None,
        }
    }
}

/// Runs the sidecar until `control.shutdown` is cancelled and the drain is
/// over. Errors only at start (e.g. an unusable `ca_file`).
pub async fn run(config: Config, listeners: Listeners, control: Control) -> anyhow::Result<()> {
    for w in &config.warnings {
        warn!("{w}");
    }
    let metrics = Arc::new(Metrics::new());
    // Without https:// or wss:// there is nothing to verify: the system's
    // certificates are not even read. Both TLS configurations share one store.
    let roots = Arc::new(
        if config.upstream.is_https() || config.upstream.websocket_url.scheme_str() == Some("wss") {
            upstream::root_store(&config.upstream)?
        } else {
            rustls::RootCertStore::empty()
        },
    );
    let connector = upstream::connector(&config.upstream, roots.clone())?;
    let ws_tls = upstream::tls_config(roots, &[b"http/1.1"])?;
    let target = Target::new(&config.upstream);

    // The auth task has a pool of its own, on the main runtime.
    let auth_pool = Pool::new(&config.upstream, connector.clone(), &target);
    let (authenticator, auth) = Authenticator::new(config.auth.clone(), auth_pool, target.clone(), metrics.clone());
    let auth_stop = CancellationToken::new();
    let auth_task = tokio::spawn(authenticator.run(auth_stop.clone()));

    let shutdown = control.shutdown.clone();
    let tasks = TaskTracker::new();
    let ws = WsRelay::new(
        config.upstream.websocket_url.clone(),
        ws_tls,
        config.upstream.connect_timeout,
        auth.clone(),
        metrics.clone(),
        tasks.clone(),
        shutdown.clone(),
    );
    let pool = Pool::new(&config.upstream, connector.clone(), &target);
    let proxy = Proxy::new(&config, pool, auth.clone(), metrics.clone(), ws);
    let admin = Admin::new(auth.clone(), metrics.clone());
    let access = Arc::new(ArcSwap::from_pointee(Access {
        allowed_clients: config.proxy.allowed_clients.clone(),
    }));

    tokio::spawn(notify::supervise(
        control.notifier.clone(),
        auth.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(notify::watchdog(control.notifier.clone()));
    if let Some(reloads) = control.reload {
        let reloader = Reloader {
            config: config.clone(),
            proxy: proxy.clone(),
            auth: auth.clone(),
            access: access.clone(),
            metrics: metrics.clone(),
            notifier: control.notifier.clone(),
            log: control.log,
        };
        tokio::spawn(reloader.run(reloads, shutdown.clone()));
    }

    let proxy_workers = match config.proxy.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let upstream_settings = config.upstream.clone();
    let server = Server {
        proxy,
        admin,
        access,
        max_buf: (config.proxy.max_header_bytes + config.proxy.max_uri_bytes) * 2 + 16 * 1024,
        grace: config.proxy.shutdown_grace,
        tasks,
        proxy_workers,
        new_pool: Box::new(move || Pool::new(&upstream_settings, connector.clone(), &target)),
    };
    server::run(server, listeners.proxy, listeners.admin, shutdown).await;

    auth_stop.cancel();
    if let Err(e) = auth_task.await {
        error!(error = %e, "the auth task ended abnormally");
    }
    info!("stopped");
    Ok(())
}

/// Applies SIGHUP: re-reads the file and the password source.
struct Reloader {
    config: Config,
    proxy: Proxy,
    auth: crate::auth::AuthHandle,
    access: Arc<ArcSwap<Access>>,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    log: Option<LogHandle>,
}

impl Reloader {
    async fn run(mut self, mut reloads: mpsc::UnboundedReceiver<()>, shutdown: CancellationToken) {
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

    async fn reload(&mut self) {
        let path = self.config.path.clone();
        info!(config = %path.display(), "reloading");
        let new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                self.metrics.reloads.with_label_values(&["rejected"]).inc();
                error!("reload rejected, the running configuration stays: {e}");
                return;
            }
        };
        for w in &new.warnings {
            warn!("{w}");
        }
        let fixed = self.config.restart_only_differences(&new);
        if !fixed.is_empty() {
            warn!(
                keys = %fixed.join(", "),
                "these settings changed but take effect only after a restart (systemctl restart ethgas-sidecar)"
            );
        }
        if let Some(log) = &self.log {
            if let Err(e) = log.set_level(new.log.level.as_deref()) {
                warn!("log.level not applied: {e}");
            }
        }
        self.proxy.reload(&new);
        self.access.store(Arc::new(Access {
            allowed_clients: new.proxy.allowed_clients.clone(),
        }));
        self.auth.reload(new.auth.clone()).await;
        self.metrics.reloads.with_label_values(&["applied"]).inc();
        info!("configuration reloaded");
        self.config = new;
    }
}
