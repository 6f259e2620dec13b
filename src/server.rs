//! Listeners, connections and the drain.
//!
//! [`run`] takes listeners that are already bound (by [`Listener::bind`] or
//! handed over by systemd) and serves the proxy on one and the admin
//! endpoints on the other until the shutdown token is cancelled. Then it
//! stops accepting, asks every connection to finish its request in flight and
//! close (hyper's graceful shutdown), and waits for them up to the grace
//! period. It never binds sockets or reads signals itself.
//!
//! Each connection runs in its own task; its errors are logged there with the
//! peer, never stopping the accept loop. hyper frames every request and
//! answers what it cannot take by itself: a bare 400 for a malformed head,
//! 431 for one beyond its buffer (sized from the proxy's head limits) or
//! with more than [`access::MAX_HEADERS`] lines, 414 for a target over its
//! 64 KiB, and a silent close for a head (or an idle keep-alive connection)
//! that does not arrive within `proxy.header_read_timeout`. Who may use the
//! account is the proxy's first question ([`access::Gate`]).
//!
//! The proxy listener is served by worker threads (`workers`), each with its
//! own runtime. A worker that cannot start, or that ends while the sidecar
//! serves (a panic), is a [`crate::liveness::Ended`]: [`run`] logs it,
//! cancels the shutdown token, drains as usual and returns it, and the
//! process exits 1 so that systemd restarts it. Each worker also beats into
//! its heartbeat slot from its runtime, for the watchdog.
//!
//! It also takes over sockets passed by systemd (socket activation,
//! [`inherited_listeners`]), so the binary never deals with file descriptors.

mod activation;
mod admin_slots;
mod listener;
mod workers;

pub use activation::{Passed, inherited_listeners};
pub use admin_slots::{ADMIN_CONNECTIONS, ADMIN_HEADER_TIMEOUT};
use admin_slots::{AdminSlot, AdminSlots};
use listener::Stream;
pub use listener::{Inherited, Listener};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::access;
use crate::admin::Admin;
use crate::audit::Peer;
use crate::config::{Live, ProxyListener};
use crate::fault::Faults;
use crate::liveness::{Ended, Heartbeats};
use crate::proxy::{ConnContext, Proxy};

/// What [`run`] needs besides the listeners.
pub(crate) struct Server {
    proxy: Proxy,
    admin: Admin,
    /// What a reload changes; the allow-list is read per request (by the gate).
    live: Arc<ArcSwap<Live>>,
    grace: Duration,
    /// Connection tasks (and WebSocket relays) are tracked here so the drain
    /// can wait for them.
    tasks: TaskTracker,
    /// Threads that serve the proxy listener (at least one), each with its
    /// own single-threaded runtime and upstream pool (thread per core: no
    /// work stealing, no cross-thread wake-ups on the request path).
    proxy_workers: usize,
    /// Connections the proxy listener serves at once (`proxy.max_connections`),
    /// shared by the workers; a client beyond them gets a fast 503.
    proxy_slots: Arc<Semaphore>,
    /// The proxy cap, for the refusal's message.
    proxy_slots_total: usize,
    /// `proxy.header_read_timeout`.
    header_read_timeout: Duration,
    /// The workers' heartbeat slots (one per worker, by index).
    heartbeats: Arc<Heartbeats>,
    /// Test faults for the workers (feature `test-util`; empty otherwise).
    faults: Faults,
}

impl Server {
    /// The server of the proxy listener's `settings`: its limits, caps and
    /// worker count come from them. `tasks` tracks the connections (and the
    /// WebSocket relays) the drain waits for.
    pub(crate) fn new(
        settings: &ProxyListener,
        proxy: Proxy,
        admin: Admin,
        live: Arc<ArcSwap<Live>>,
        tasks: TaskTracker,
        heartbeats: Arc<Heartbeats>,
        faults: Faults,
    ) -> Server {
        Server {
            proxy,
            admin,
            live,
            grace: settings.shutdown_grace,
            tasks,
            proxy_workers: settings.workers(),
            proxy_slots: Arc::new(Semaphore::new(settings.max_connections)),
            proxy_slots_total: settings.max_connections,
            header_read_timeout: settings.header_read_timeout,
            heartbeats,
            faults,
        }
    }
}

/// Serves until `shutdown` is cancelled, then drains for up to the grace
/// period. Returns whether every connection finished in time, or the first
/// worker that could not start or ended while serving (after the drain).
///
/// `proxy_listeners` are the proxy's doors by policy index: `proxy.listen`
/// first, then `[[listeners]]` in order; every worker serves all of them.
pub(crate) async fn run(
    server: Server,
    proxy_listeners: Vec<Listener>,
    admin_listener: Option<Listener>,
    shutdown: CancellationToken,
) -> Result<bool, Ended> {
    let server = Arc::new(server);
    for (index, l) in proxy_listeners.iter().enumerate() {
        let name = server.live.load().policy.name(index).to_string();
        info!(listener = %name, listen = %l.describe(), workers = server.proxy_workers.max(1), "proxy listening");
    }
    if let Some(a) = &admin_listener {
        info!(listen = %a.describe(), "admin listening (/healthz, /readyz, /metrics)");
    }
    let cleanup: Vec<PathBuf> = proxy_listeners.iter().filter_map(Listener::socket_path).collect();
    let mut workers = workers::start(&server, proxy_listeners, &shutdown).await;
    let admin = {
        let (server, shutdown) = (server.clone(), shutdown.clone());
        async move {
            match admin_listener {
                // Its own connections: a flood of proxy clients never takes
                // the place of a health check.
                Some(l) => accept_loop(server, l, Role::Admin(Arc::default()), shutdown).await,
                None => shutdown.cancelled().await,
            }
        }
    };
    // The admin loop returns at shutdown; a worker's end meanwhile causes it.
    workers.watch(admin, &shutdown).await;
    workers.wait_stopped(server.grace, &shutdown).await;
    for path in cleanup {
        let _ = std::fs::remove_file(path);
    }

    let open = server.tasks.len();
    if open > 0 {
        info!(connections = open, grace = %humantime::format_duration(server.grace), "draining connections");
    }
    server.tasks.close();
    let drained = tokio::time::timeout(server.grace, server.tasks.wait()).await.is_ok();
    if !drained {
        warn!(
            still_open = server.tasks.len(),
            "grace period over; closing the connections that are left"
        );
    }
    match workers.finish(&shutdown) {
        Some(ended) => Err(ended),
        None => Ok(drained),
    }
}

/// What a listener serves; a proxy listener carries its worker's proxy and
/// its index in the policy, the admin listener its open connections.
#[derive(Clone)]
enum Role {
    Proxy(Proxy, usize),
    Admin(Arc<AdminSlots>),
}

/// A connection's place under its listener's cap, held while it is served.
enum Place {
    /// One of `proxy.max_connections`.
    Proxy { _permit: tokio::sync::OwnedSemaphorePermit },
    /// One of the admin listener's; cancelled when a newer one needs it.
    Admin(AdminSlot),
}

async fn accept_loop(server: Arc<Server>, listener: Listener, role: Role, shutdown: CancellationToken) {
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: say so (once a
                    // second at most), and do not spin.
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        last_warning = Some(tokio::time::Instant::now());
                        if matches!(e.raw_os_error(), Some(23 | 24)) {
                            warn!(error = %e, "out of file descriptors: raise LimitNOFILE= or lower proxy.max_connections");
                        } else {
                            warn!(error = %e, "accept failed");
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let place = match &role {
            Role::Proxy(proxy, _) => match server.proxy_slots.clone().try_acquire_owned() {
                Ok(permit) => Place::Proxy { _permit: permit },
                Err(_) => {
                    // Over the cap: a fast, clear answer instead of a hang.
                    let envelope = server.live.load().auth.envelope();
                    tokio::spawn(refuse_busy(stream, server.proxy_slots_total, envelope, proxy.clone()));
                    continue;
                }
            },
            Role::Admin(slots) => {
                let (slot, full) = slots.admit();
                if full && last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_warning = Some(tokio::time::Instant::now());
                    warn!(
                        limit = ADMIN_CONNECTIONS,
                        "the admin listener has {ADMIN_CONNECTIONS} connections open; closed the oldest for a new one"
                    );
                }
                Place::Admin(slot)
            }
        };
        let (peer, local, span) = match &stream {
            Stream::Tcp(s, peer) => (Some(*peer), s.local_addr().ok(), info_span!("conn", %peer)),
            Stream::Unix(_) => (None, None, info_span!("conn", peer = "unix")),
        };
        // Who is on a unix socket, as the kernel vouches (for the audit
        // trail): once per connection.
        let unix_peer = match (&stream, &role) {
            (Stream::Unix(s), Role::Proxy(..)) => Some(Arc::new(Peer::of_unix(s))),
            _ => None,
        };
        let (server2, role, stop) = (server.clone(), role.clone(), shutdown.clone());
        server.tasks.spawn(
            async move {
                let evicted = match &place {
                    Place::Admin(slot) => slot.evicted.clone(),
                    Place::Proxy { .. } => CancellationToken::new(),
                };
                match stream {
                    Stream::Tcp(s, _) => serve(server2, s, (peer, local, None), role, stop, evicted).await,
                    Stream::Unix(s) => serve(server2, s, (None, None, unix_peer), role, stop, evicted).await,
                }
                drop(place);
            }
            .instrument(span),
        );
    }
}

/// Serves one connection, given its peer and local addresses (TCP) or the
/// peer's credentials (a unix socket of the proxy).
async fn serve<S>(
    server: Arc<Server>,
    stream: S,
    (peer, local, unix_peer): (Option<SocketAddr>, Option<SocketAddr>, Option<Arc<Peer>>),
    role: Role,
    shutdown: CancellationToken,
    evicted: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = http1::Builder::new();
    // A head that does not arrive whole within the timeout (a stalled one,
    // or none on an idle keep-alive connection) ends the connection
    // silently: hyper's timer.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_headers(access::MAX_HEADERS);

    let result = match role {
        Role::Admin(_) => {
            // Health checks send their request at once: an idle admin
            // connection is closed soon.
            builder.header_read_timeout(ADMIN_HEADER_TIMEOUT);
            let admin = server.admin.clone();
            let svc = service_fn(move |req| {
                let resp = admin.handle(&req);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => { conn.as_mut().graceful_shutdown(); conn.await }
                // A newer connection took its place: closed at once.
                _ = evicted.cancelled() => Ok(()),
            }
        }
        Role::Proxy(proxy, listener) => {
            builder
                .max_buf_size(proxy.head_buffer())
                .max_header_size(proxy.head_buffer());
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let proxy = proxy.clone();
                let ctx = ConnContext {
                    listener,
                    unix_peer: unix_peer.clone(),
                    peer,
                    local,
                };
                async move { Ok::<_, Infallible>(proxy.handle(req, ctx).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
            tokio::pin!(conn);
            // Not hyper_util's GracefulShutdown (hyper-util 0.1.21): it has no
            // GracefulConnection for http1's UpgradeableConnection, which the
            // WebSocket needs, and the one it has, auto's, ignores http1_only
            // (serves HTTP/2 after the h2 preface) and reads the first 24
            // bytes with no timer (a silent connection is never closed).
            tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => { conn.as_mut().graceful_shutdown(); conn.await }
            }
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

/// Answers a connection over the cap with a 503 in the API's envelope and
/// closes it, within a second whatever the client does. What the client sent
/// is read and dropped meanwhile: closing a socket with unread data resets
/// it, and the reset could reach the client before the answer.
async fn refuse_busy(stream: Stream, limit: usize, envelope: crate::envelope::Envelope, proxy: Proxy) {
    let error = crate::error::ProxyError::TooManyConnections { limit };
    proxy.count_local(&error);
    let answer = error.wire(envelope);
    let write = async move {
        match stream {
            Stream::Tcp(s, _) => answer_and_close(s, &answer).await,
            Stream::Unix(s) => answer_and_close(s, &answer).await,
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, answer: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.write_all(answer).await.is_ok() && s.shutdown().await.is_ok() {
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    }
}
