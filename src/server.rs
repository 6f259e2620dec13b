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
//! peer, never stopping the accept loop. TCP clients outside
//! `proxy.allowed_clients` get a 403 envelope and are disconnected.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::admin::Admin;
use crate::config::Listen;
use crate::framing::{Guarded, Verdicts};
use crate::proxy::{ConnContext, Proxy};

/// A bound listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
}

/// A listening socket handed over by systemd, before the runtime runs.
pub enum Inherited {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// An accepted connection.
enum Stream {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

impl Listener {
    /// Binds `listen`. A unix socket gets `mode`; a stale socket file left by
    /// a previous run is replaced.
    pub async fn bind(listen: &Listen, mode: u32) -> std::io::Result<Listener> {
        match listen {
            Listen::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Listen::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(Listener::Unix {
                    listener,
                    path: Some(path.clone()),
                })
            }
        }
    }

    /// Takes over a listener inherited from systemd (socket activation).
    /// Must run inside the runtime.
    pub fn adopt(inherited: Inherited) -> std::io::Result<Listener> {
        match inherited {
            Inherited::Tcp(l) => {
                l.set_nonblocking(true)?;
                Ok(Listener::Tcp(TcpListener::from_std(l)?))
            }
            Inherited::Unix(l) => {
                l.set_nonblocking(true)?;
                // systemd owns the socket file; it is not removed at exit.
                Ok(Listener::Unix {
                    listener: UnixListener::from_std(l)?,
                    path: None,
                })
            }
        }
    }

    /// The bound TCP address, if this is a TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix { .. } => None,
        }
    }

    /// What it listens on, for log lines.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "tcp".into()),
            Listener::Unix { listener, .. } => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix socket".into()),
        }
    }

    async fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s, peer))
            }
            Listener::Unix { listener, .. } => Ok(Stream::Unix(listener.accept().await?.0)),
        }
    }

    fn cleanup(&self) {
        if let Listener::Unix { path: Some(path), .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Server settings that a reload may change.
#[derive(Debug, Clone)]
pub struct Access {
    pub allowed_clients: Vec<IpNet>,
}

/// What [`run`] needs besides the listeners.
pub struct Server {
    pub proxy: Proxy,
    pub admin: Admin,
    pub access: Arc<ArcSwap<Access>>,
    /// hyper's own read-buffer limit; heads beyond it get a bare 431.
    pub max_buf: usize,
    pub grace: Duration,
    /// Connection tasks (and WebSocket relays) are tracked here so the drain
    /// can wait for them.
    pub tasks: TaskTracker,
}

/// Serves until `shutdown` is cancelled, then drains for up to the grace
/// period. Returns whether every connection finished in time.
pub async fn run(
    server: Server,
    proxy_listener: Listener,
    admin_listener: Option<Listener>,
    shutdown: CancellationToken,
) -> bool {
    let server = Arc::new(server);
    info!(listen = %proxy_listener.describe(), "proxy listening");
    if let Some(a) = &admin_listener {
        info!(listen = %a.describe(), "admin listening (/healthz, /readyz, /metrics)");
    }
    let proxy_loop = accept_loop(server.clone(), proxy_listener, Role::Proxy, shutdown.clone());
    let admin_loop = async {
        if let Some(l) = admin_listener {
            accept_loop(server.clone(), l, Role::Admin, shutdown.clone()).await;
        }
    };
    tokio::join!(proxy_loop, admin_loop);

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
    drained
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Proxy,
    Admin,
}

async fn accept_loop(server: Arc<Server>, listener: Listener, role: Role, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (peer, span) = match &stream {
            Stream::Tcp(_, peer) => (Some(*peer), info_span!("conn", %peer)),
            Stream::Unix(_) => (None, info_span!("conn", peer = "unix")),
        };
        let server2 = server.clone();
        let stop = shutdown.clone();
        server.tasks.spawn(
            async move {
                match stream {
                    Stream::Tcp(s, _) => serve(server2, s, peer, role, stop).await,
                    Stream::Unix(s) => serve(server2, s, None, role, stop).await,
                }
            }
            .instrument(span),
        );
    }
    listener.cleanup();
}

async fn serve<S>(server: Arc<Server>, stream: S, peer: Option<SocketAddr>, role: Role, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(server.max_buf)
        .max_headers(256);

    let allowed = match (role, peer) {
        (Role::Proxy, Some(addr)) => {
            let access = server.access.load();
            access.allowed_clients.iter().any(|net| net.contains(&addr.ip()))
                || addr.ip().to_canonical() != addr.ip()
                    && access
                        .allowed_clients
                        .iter()
                        .any(|net| net.contains(&addr.ip().to_canonical()))
        }
        _ => true,
    };

    let result = match role {
        Role::Admin => {
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
            }
        }
        Role::Proxy if !allowed => {
            let addr = peer.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            warn!(client = %addr.ip(), "refused a client outside proxy.allowed_clients");
            let proxy = server.proxy.clone();
            let svc = service_fn(move |_req| {
                let resp = proxy.refuse_client(addr);
                async move { Ok::<_, Infallible>(resp) }
            });
            builder.keep_alive(false);
            builder.serve_connection(TokioIo::new(stream), svc).await
        }
        Role::Proxy => {
            let verdicts = Arc::new(Verdicts::default());
            let io = TokioIo::new(Guarded::new(stream, verdicts.clone()));
            let proxy = server.proxy.clone();
            let svc = service_fn(move |req| {
                let proxy = proxy.clone();
                let ctx = ConnContext {
                    peer,
                    framing_ok: verdicts.next_request_ok(),
                };
                async move { Ok::<_, Infallible>(proxy.handle(req, ctx).await) }
            });
            let conn = builder.serve_connection(io, svc).with_upgrades();
            tokio::pin!(conn);
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
