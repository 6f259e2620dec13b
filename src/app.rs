//! Wiring: from a validated [`Config`] and bound listeners to a running
//! sidecar, and back down again.
//!
//! [`run`] builds the upstream client, starts the auth task (the token cell's
//! one writer), the systemd notifier and the reload loop, and serves until the
//! shutdown token is cancelled. Then it drains the connections and only after
//! that stops the auth task, which logs out — so requests in flight keep a
//! token to the end. Tests call the same `run` on listeners bound to port 0.
//! The reload path itself is [`crate::reload`].
//!
//! It also watches the parts the sidecar cannot serve without
//! ([`crate::liveness`]): the auth task here, the proxy workers in
//! [`crate::server`]. When one ends before shutdown was requested (or panics
//! at any time), the end is logged at error level, the shutdown token is
//! cancelled so the connections drain as on SIGTERM, and `run` returns it as
//! an error: the process exits 1 and systemd's `Restart=on-failure` starts
//! it again. The heartbeats the systemd watchdog checks are set up here too.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admin::Admin;
use crate::audit;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::fault::Faults;
use crate::liveness::{Ended, Failure, Heartbeats, Part, panic_message};
use crate::memory;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::proxy::Proxy;
use crate::reload::Reloader;
use crate::server::{self, Inherited, Listener, Passed, Server};
use crate::telemetry::{self, LogHandle};
use crate::upstream;
use crate::ws::WsRelay;

/// The sockets the sidecar serves on, already bound.
pub struct Listeners {
    pub proxy: Listener,
    pub admin: Option<Listener>,
    /// The listeners of `[[listeners]]`, in the file's order.
    pub more: Vec<Listener>,
}

impl Listeners {
    /// Binds the addresses of `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let (proxy, admin) = (&config.restart.proxy, &config.restart.admin);
        let proxy = Listener::bind(&proxy.listen, proxy.unix_mode)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on proxy.listen = {}: {e}", proxy.listen))?;
        let admin = Listener::bind(&admin.listen, 0o660)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on admin.listen = {}: {e}", admin.listen))?;
        Ok(Listeners {
            proxy,
            admin: Some(admin),
            more: Self::bind_more(config, Vec::new()).await?,
        })
    }

    /// The `[[listeners]]`: the socket systemd passed under a listener's
    /// name, or else its own address bound.
    async fn bind_more(config: &Config, mut passed: Vec<(String, Inherited)>) -> anyhow::Result<Vec<Listener>> {
        let mut more = Vec::new();
        for (i, door) in config.restart.listeners.iter().enumerate() {
            let listener = match passed.iter().position(|(name, _)| *name == door.name) {
                Some(at) => Listener::adopt(passed.swap_remove(at).1)
                    .map_err(|e| anyhow::anyhow!("cannot use the socket systemd passed as {:?}: {e}", door.name))?,
                None => Listener::bind(&door.listen, door.unix_mode)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on listeners[{i}].listen = {}: {e}", door.listen))?,
            };
            more.push(listener);
        }
        for (name, _) in passed {
            warn!("systemd passed a socket named {name:?}, which no [[listeners]] entry names; it is not served");
        }
        Ok(more)
    }

    /// The sockets systemd passed (socket activation), or else those of
    /// `config`. An admin socket that systemd did not pass is bound from
    /// `admin.listen`; so is a further listener's address. Must run inside
    /// the runtime.
    pub async fn open(config: &Config, inherited: Option<Passed>) -> anyhow::Result<Listeners> {
        let Some(passed) = inherited else {
            return Listeners::bind(config).await;
        };
        let adopt = |l| Listener::adopt(l).map_err(|e| anyhow::anyhow!("cannot use the socket passed by systemd: {e}"));
        let proxy = adopt(passed.proxy)?;
        info!(proxy = %proxy.describe(), "using sockets passed by systemd");
        let admin = match passed.admin {
            Some(a) => adopt(a)?,
            None => {
                let listen = &config.restart.admin.listen;
                Listener::bind(listen, 0o660)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on admin.listen = {listen}: {e}"))?
            }
        };
        Ok(Listeners {
            proxy,
            admin: Some(admin),
            more: Self::bind_more(config, passed.named).await?,
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
    /// Returns the allocator's free memory to the system after bursts
    /// (see [`crate::memory`]); the binary passes glibc's `malloc_trim`.
    pub trim: Option<memory::Trim>,
}

impl Control {
    /// No systemd, no reloads, no log handle: what tests use.
    pub fn new(shutdown: CancellationToken) -> Control {
        Control {
            shutdown,
            reload: None,
            notifier: Notifier::disabled(),
            log: None,
            trim: None,
        }
    }
}

/// Runs the sidecar until `control.shutdown` is cancelled and the drain is
/// over. Errors at start (e.g. an unusable `ca_file`, a proxy worker that
/// cannot start), or after the drain when the auth task or a proxy worker
/// ended while the sidecar served ([`Ended`]).
pub async fn run(config: Config, listeners: Listeners, control: Control) -> anyhow::Result<()> {
    for w in &config.warnings {
        warn!("{w}");
    }
    let upstream = &config.restart.upstream;
    let metrics = Arc::new(Metrics::new());
    // A series per listener from the start, so `increase()` sees the first
    // refused money call.
    for index in 0..=config.restart.listeners.len() {
        let name = config.live.policy.name(index);
        metrics.policy_decisions.with_label_values(&[name, "funds", "refused"]);
    }
    // Without https:// or wss:// there is nothing to verify: the system's
    // certificates are not even read. Both TLS configurations share one store.
    let roots = Arc::new(
        if upstream.is_https() || upstream.websocket_url.scheme_str() == Some("wss") {
            upstream::root_store(upstream)?
        } else {
            rustls::RootCertStore::empty()
        },
    );
    let connector = upstream::connector(upstream, roots.clone())?;
    let ws_connector = upstream::ws_connector(upstream, roots)?;
    // The one cell a reload publishes to; proxy and server read it.
    let live = Arc::new(ArcSwap::from_pointee(config.live.clone()));

    let heartbeats = Heartbeats::new(control.notifier.watchdog_interval(), config.restart.proxy.workers());

    // The auth task has a pool of its own, on the main runtime.
    let (authenticator, auth) =
        Authenticator::new(config.live.auth.clone(), upstream, connector.clone(), metrics.clone());
    let faults = Faults::from_env(&auth);
    let auth_stop = CancellationToken::new();
    let auth_run = authenticator.run(auth_stop.clone(), heartbeats.heart(Part::AuthTask));
    let mut auth_task = tokio::spawn(faults.clone().auth_task(auth_run));

    let shutdown = control.shutdown.clone();
    let tasks = TaskTracker::new();
    let ws = WsRelay::new(
        upstream,
        config.restart.proxy.ws_memory_budget_bytes,
        ws_connector,
        live.clone(),
        auth.clone(),
        metrics.clone(),
        tasks.clone(),
        shutdown.clone(),
    );
    let audit = audit::Sink::open(&config.restart.audit.output, telemetry::stderr_is_journal())
        .map_err(|e| anyhow::anyhow!("audit.output: {e}"))?;
    let proxy = Proxy::new(
        &config.restart,
        connector,
        live.clone(),
        auth.clone(),
        metrics.clone(),
        ws,
        Arc::new(audit),
    );
    let admin = Admin::new(auth.clone(), metrics.clone());
    let server = Server::new(
        &config.restart.proxy,
        proxy,
        admin,
        live.clone(),
        tasks.clone(),
        heartbeats.clone(),
        faults.clone(),
    );

    tokio::spawn(notify::supervise(
        control.notifier.clone(),
        auth.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(notify::watchdog(control.notifier.clone(), heartbeats.clone()));

    if let Some(reloads) = control.reload {
        let reloader = Reloader::new(
            config,
            live.clone(),
            auth.clone(),
            metrics.clone(),
            control.notifier.clone(),
            control.log,
        );
        tokio::spawn(reloader.run(reloads, shutdown.clone()));
    }

    if let Some(trim) = control.trim {
        tokio::spawn(memory::give_back(trim, tasks.clone(), shutdown.clone()));
    }

    let proxy_listeners: Vec<Listener> = std::iter::once(listeners.proxy).chain(listeners.more).collect();
    let serving = server::run(server, proxy_listeners, listeners.admin, shutdown.clone());
    tokio::pin!(serving);
    // Serve; should the auth task end meanwhile, stop (and drain) because of it.
    let (served, auth_ended) = tokio::select! {
        served = &mut serving => (served, None),
        joined = &mut auth_task => {
            let ended = auth_end(joined, false);
            if let Some(e) = &ended {
                e.log();
            }
            shutdown.cancel();
            (serving.await, Some(ended))
        }
    };
    // Then stop the auth task, which logs out.
    let auth_failure = match auth_ended {
        Some(ended) => ended,
        None => {
            auth_stop.cancel();
            let ended = auth_end(auth_task.await, true);
            if let Some(e) = &ended {
                e.log();
            }
            ended
        }
    };
    info!("stopped");
    match (auth_failure, served) {
        (Some(ended), _) | (None, Err(ended)) => Err(ended.into()),
        (None, Ok(_drained)) => Ok(()),
    }
}

/// What the auth task's end means: nothing when it returned after being
/// asked to stop (`asked`), else how it failed.
fn auth_end(joined: Result<(), JoinError>, asked: bool) -> Option<Ended> {
    let failure = match joined {
        Ok(()) if asked => return None,
        Ok(()) => Failure::Returned,
        Err(e) if e.is_panic() => Failure::Panicked(panic_message(e.into_panic().as_ref())),
        Err(_) => Failure::Returned,
    };
    Some(Ended::new(Part::AuthTask, failure))
}
