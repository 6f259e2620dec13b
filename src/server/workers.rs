//! The proxy workers: one thread each, with its own current-thread runtime,
//! upstream pool and share of the proxy listener (a duplicated descriptor;
//! the kernel hands each connection to one of them). Thread per core: no
//! work stealing, no cross-thread wake-ups on the request path.
//!
//! [`start`] starts them and waits until each has its runtime and listener:
//! a worker that cannot is fatal at start. [`Workers`] then hears from each
//! thread when it stops accepting (at shutdown) and when it ends; an end or
//! a stop before shutdown, or a panic at any time, is an [`Ended`] that
//! cancels the shutdown token. Each worker beats into its heartbeat slot from
//! the task that runs its accept loop, so a blocked runtime thread goes
//! silent for the watchdog.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Inherited, Listener, Role, Server, accept_loop};
use crate::liveness::{Ended, Failure, Part, panic_message};

/// What a worker's thread reports.
struct Event {
    index: usize,
    kind: Kind,
}

enum Kind {
    /// Its accept loop returned (which it does at shutdown only).
    StoppedAccepting,
    /// Its thread is about to end; with the panic's message if it panicked.
    Ended(Option<String>),
}

/// The running workers, as seen from the main runtime.
pub(super) struct Workers {
    events: mpsc::UnboundedReceiver<Event>,
    /// By index: still accepting connections.
    accepting: Vec<bool>,
    /// The first failure; it has cancelled the shutdown token.
    failure: Option<Ended>,
}

/// Starts `server.proxy_workers` workers (at least one), each serving its
/// share of every one of `listeners` (by policy index). The first one that
/// cannot start is recorded as a failure (and cancels `shutdown`); the
/// others are not started then.
pub(super) async fn start(server: &Arc<Server>, listeners: Vec<Listener>, shutdown: &CancellationToken) -> Workers {
    let n = server.proxy_workers.max(1);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut workers = Workers {
        events: rx,
        accepting: vec![false; n],
        failure: None,
    };
    // shares[listener][worker], turned into each worker's shares.
    let mut by_listener: Vec<_> = listeners.into_iter().map(|l| shares(l, n).into_iter()).collect();
    for index in 0..n {
        let share: std::io::Result<Vec<Inherited>> = by_listener
            .iter_mut()
            .map(|s| s.next().unwrap_or_else(|| Err(std::io::Error::other("no share left"))))
            .collect();
        let started = match share {
            Ok(share) => spawn(index, server.clone(), share, shutdown.clone(), tx.clone()).await,
            Err(e) => Err(format!("cannot take its share of the proxy listeners: {e}")),
        };
        match started {
            Ok(()) => workers.accepting[index] = true,
            Err(reason) => {
                workers.fail(Ended::new(Part::Worker(index), Failure::NotStarted(reason)), shutdown);
                break;
            }
        }
    }
    workers
}

impl Workers {
    /// Runs `serving` (which returns at shutdown) while listening to the
    /// workers.
    pub(super) async fn watch(&mut self, serving: impl Future<Output = ()>, shutdown: &CancellationToken) {
        tokio::pin!(serving);
        loop {
            tokio::select! {
                _ = &mut serving => return,
                Some(event) = self.events.recv() => self.handle(event, shutdown),
            }
        }
    }

    /// Waits (at most `limit`) until every worker has stopped accepting.
    pub(super) async fn wait_stopped(&mut self, limit: Duration, shutdown: &CancellationToken) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.accepting.contains(&true) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.handle(event, shutdown),
                Ok(None) => break,
                Err(_) => {
                    for (index, _) in self.accepting.iter().enumerate().filter(|(_, a)| **a) {
                        warn!(
                            part = %Part::Worker(index),
                            "proxy worker {index} did not stop accepting within the grace period; leaving it behind"
                        );
                    }
                    break;
                }
            }
        }
    }

    /// The first failure, counting what the workers reported by now (a
    /// panic during the drain included).
    pub(super) fn finish(mut self, shutdown: &CancellationToken) -> Option<Ended> {
        while let Ok(event) = self.events.try_recv() {
            self.handle(event, shutdown);
        }
        self.failure
    }

    fn handle(&mut self, event: Event, shutdown: &CancellationToken) {
        if let Some(accepting) = self.accepting.get_mut(event.index) {
            *accepting = false;
        }
        let failure = match event.kind {
            Kind::Ended(Some(message)) => Failure::Panicked(message),
            // A worker only stops when asked to.
            Kind::StoppedAccepting | Kind::Ended(None) if !shutdown.is_cancelled() => Failure::Returned,
            Kind::StoppedAccepting | Kind::Ended(None) => return,
        };
        self.fail(Ended::new(Part::Worker(event.index), failure), shutdown);
    }

    fn fail(&mut self, ended: Ended, shutdown: &CancellationToken) {
        ended.log();
        shutdown.cancel();
        self.failure.get_or_insert(ended);
    }
}

/// One share of the listener per worker: the listener itself and `n - 1`
/// duplicates of its descriptor.
fn shares(first: Listener, n: usize) -> Vec<std::io::Result<Inherited>> {
    let first = match first {
        Listener::Tcp(l) => l.into_std().map(Inherited::Tcp),
        Listener::Unix { listener, .. } => listener.into_std().map(Inherited::Unix),
    };
    let first = match first {
        Ok(first) => first,
        Err(e) => return vec![Err(e)],
    };
    let mut out: Vec<_> = (1..n)
        .map(|_| match &first {
            Inherited::Tcp(l) => l.try_clone().map(Inherited::Tcp),
            Inherited::Unix(l) => l.try_clone().map(Inherited::Unix),
        })
        .collect();
    out.insert(0, Ok(first));
    out
}

/// Starts worker `index` on its thread and waits until its runtime runs and
/// owns its listener, or says why not. Its runtime is built on its own
/// thread: a runtime must not be dropped inside another one.
async fn spawn(
    index: usize,
    server: Arc<Server>,
    shares: Vec<Inherited>,
    shutdown: CancellationToken,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(), String> {
    let (started_tx, started) = oneshot::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name(format!("proxy-worker-{index}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = started_tx.send(Err(format!("cannot build its runtime: {e}")));
                    return;
                }
            };
            let listeners = {
                let _entered = rt.enter();
                shares
                    .into_iter()
                    .map(Listener::adopt)
                    .collect::<std::io::Result<Vec<_>>>()
            };
            let listeners = match listeners {
                Ok(l) => l,
                Err(e) => {
                    let _ = started_tx.send(Err(format!("cannot use its share of the proxy listener: {e}")));
                    return;
                }
            };
            let _ = started_tx.send(Ok(()));
            let heart = server.heartbeats.heart(Part::Worker(index));
            let faults = server.faults.clone();
            let work = accept_and_drain(index, server, listeners, shutdown, events.clone());
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(heart.beating(faults.worker(index, work)))
            }));
            drop(heart);
            drop(rt);
            let panicked = outcome.err().map(|payload| panic_message(payload.as_ref()));
            let _ = events.send(Event {
                index,
                kind: Kind::Ended(panicked),
            });
        })
        .map_err(|e| format!("cannot start its thread: {e}"))?;
    match started.await {
        Ok(result) => result,
        Err(_) => Err("its thread ended before its runtime ran".into()),
    }
}

/// A worker's work: accept until shutdown, then keep the runtime alive while
/// its connections drain (the main runtime closes the tracker).
async fn accept_and_drain(
    index: usize,
    server: Arc<Server>,
    listeners: Vec<Listener>,
    shutdown: CancellationToken,
    events: mpsc::UnboundedSender<Event>,
) {
    let proxy = server.proxy.for_worker();
    // One accept loop per listener, all on this worker's runtime.
    let loops = listeners.into_iter().enumerate().map(|(door, listener)| {
        accept_loop(
            server.clone(),
            listener,
            Role::Proxy(proxy.clone(), door),
            shutdown.clone(),
        )
    });
    futures_util::future::join_all(loops).await;
    let _ = events.send(Event {
        index,
        kind: Kind::StoppedAccepting,
    });
    let _ = tokio::time::timeout(server.grace + Duration::from_secs(1), server.tasks.wait()).await;
}
