//! The built-in mock ETHGas API.
//!
//! What `demo` runs, what users point their programs at offline
//! (`ethgas-sidecar mock-api`), and what the tests run in-process. It speaks
//! the authentication contract of `ethgas-api.md` — login, refresh with
//! rotation, verify, logout — with short-lived JWT-shaped tokens, guards the
//! private endpoints (401 to missing, expired or revoked tokens), serves the
//! public ones, a WebSocket that wants a `login` command and pushes
//! `token_expired`, and counts everything it sees.
//!
//! # Layout
//!
//! - this file — the [`Mock`] handle, [`MockConfig`], routing, [`serve`] and [`spawn`].
//! - `wire` — the API's envelopes; reading bearer tokens, parameters, cookies.
//! - `counters` — [`Counts`], what the mock saw.
//! - `tokens` — the tokens it issued and the bearer check of private endpoints.
//! - `documented` — the username/password flavour's login, refresh, verify, logout.
//! - `endpoints` — public data, `/api/v1/user/info`, `/api/v1/mock/echo`.
//! - `socket` — the WebSocket protocol.
//! - `harness` (cargo feature `test-util`) — fault injection, test endpoints
//!   (upload, download, stream, slow) and the TLS server; the product binary
//!   does not carry them.

mod counters;
mod documented;
mod endpoints;
#[cfg(feature = "test-util")]
mod harness;
mod socket;
mod tokens;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

pub use counters::Counts;
#[cfg(feature = "test-util")]
pub use harness::{Fault, Fnv, pattern_byte, serve_tls};

use counters::{Counters, bump};
use tokens::Tokens;
use wire::Body;

/// How the mock behaves at start.
#[derive(Clone)]
pub struct MockConfig {
    pub username: String,
    pub password: String,
    /// Lifetime of access tokens (`expiresIn`).
    pub token_lifetime: Duration,
    /// How long a refresh token works from its issue (once: rotation).
    pub session_lifetime: Duration,
    /// Send `expiresIn` as a string ("3600"), as some deployments do.
    pub expires_in_as_string: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            username: "demo".into(),
            password: "demo-password".into(),
            token_lifetime: Duration::from_secs(3600),
            session_lifetime: Duration::from_secs(7 * 86400),
            expires_in_as_string: false,
        }
    }
}

/// The endpoints a fault can be injected into (feature `test-util`).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub(crate) enum Hook {
    Login,
    Refresh,
}

impl Hook {
    #[cfg(feature = "test-util")]
    const COUNT: usize = 2;
}

struct State {
    config: Mutex<MockConfig>,
    tokens: Mutex<Tokens>,
    counters: Counters,
    #[cfg(feature = "test-util")]
    harness: harness::Switches,
}

/// A handle on a running (or about to run) mock. Cheap to clone.
#[derive(Clone)]
pub struct Mock {
    state: Arc<State>,
}

impl Mock {
    pub fn new(config: MockConfig) -> Mock {
        Mock {
            state: Arc::new(State {
                config: Mutex::new(config),
                tokens: Mutex::new(Tokens::default()),
                counters: Counters::default(),
                #[cfg(feature = "test-util")]
                harness: harness::Switches::default(),
            }),
        }
    }

    /// What the mock has seen so far.
    pub fn counts(&self) -> Counts {
        self.state.counters.snapshot()
    }

    fn username(&self) -> String {
        self.state.config.lock().map(|c| c.username.clone()).unwrap_or_default()
    }

    /// Routes one request.
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if wire::is_upgrade(&req) {
            return Ok(self.websocket(req));
        }
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::POST, "/api/v1/user/login") => self.login(req).await,
            (&Method::POST, "/api/v1/user/login/refresh") => self.refresh(req).await,
            (&Method::POST, "/api/v1/user/login/verify") => Ok(self.verify(&req)),
            (&Method::POST, "/api/v1/user/logout") => Ok(self.logout(&req)),
            (_, p) if p.starts_with("/api/v1/p/") => Ok(self.public()),
            (_, p) if p.starts_with("/api/v1/") => match self.guard(&req) {
                Ok(()) => Ok(self.private(req, &path).await),
                Err(refusal) => Ok(wire::response(
                    StatusCode::UNAUTHORIZED,
                    401,
                    refusal.message,
                    serde_json::Value::Null,
                )),
            },
            _ => Ok(wire::error(StatusCode::NOT_FOUND, "Not Found")),
        }
    }

    /// The mock as a hyper service.
    fn service(
        mock: Mock,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = std::io::Error,
        Future = impl Future<Output = Result<Response<Body>, std::io::Error>> + Send,
    > + Clone
    + Send
    + 'static {
        service_fn(move |req| {
            let mock = mock.clone();
            async move { mock.handle(req).await }
        })
    }
}

/// Without the `test-util` feature nothing is ever injected: these are the
/// harness's hooks as no-ops, so the request paths need no `cfg`.
#[cfg(not(feature = "test-util"))]
impl Mock {
    fn is_down(&self) -> bool {
        false
    }

    fn rejects_all(&self) -> bool {
        false
    }

    async fn forced_expiry(&self) {
        std::future::pending().await
    }

    async fn injected(&self, _hook: Hook) -> Option<Result<Response<Body>, std::io::Error>> {
        None
    }
}

/// Serves the mock on `listener` until `shutdown` is cancelled, then lets
/// open connections finish (for at most 5 s) and logs what it saw.
pub async fn serve(listener: TcpListener, mock: Mock, shutdown: CancellationToken) {
    accept_loop(listener, mock, shutdown, false, serve_connection).await
}

/// Binds `addr` and serves the mock on it in the background; returns the
/// bound address. For tests and `demo`.
pub async fn spawn(addr: SocketAddr, mock: Mock, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, mock, shutdown));
    Ok(bound)
}

/// One plain HTTP/1.1 connection (with upgrades, for the WebSocket).
async fn serve_connection(stream: TcpStream, mock: Mock, stop: CancellationToken) -> Result<(), String> {
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), Mock::service(mock))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r.map_err(|e| e.to_string()),
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await.map_err(|e| e.to_string())
        }
    }
}

/// Accepts connections and serves each with `connection` in its own task.
async fn accept_loop<F, Fut>(listener: TcpListener, mock: Mock, shutdown: CancellationToken, tls: bool, connection: F)
where
    F: Fn(TcpStream, Mock, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let tasks = TaskTracker::new();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, tls, "mock ETHGas API listening");
    }
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    debug!(error = %e, "mock accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        bump(&mock.state.counters.connections);
        if mock.is_down() {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let served = connection(stream, mock.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = served.await {
                debug!(%peer, error = %e, "mock connection ended with an error");
            }
        });
    }
    // Refuse new connections at once, then let the open ones finish.
    drop(listener);
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    info!(seen = %mock.counts(), "mock ETHGas API stopped");
}
