//! The built-in mock ETHGas API.
//!
//! What `demo` runs, what users point their programs at offline
//! (`ethgas-sidecar mock-api`), and what the tests run in-process. It speaks
//! either flavour of `ethgas-api.md` ([`Flavour`]): the documented one —
//! username/password login, refresh with rotation, verify, logout, in the
//! `{code, message, data}` envelope — or the live one — EIP-712 wallet
//! challenge and signature, the access token as an object, the refresh token
//! in a cookie, sessions that end, in the `{success, data}` envelope. Either
//! way it issues short-lived JWT-shaped tokens, guards the private endpoints
//! (401 to missing, expired or revoked tokens), serves the public ones and a
//! WebSocket with the flavour's in-socket login, and counts everything it sees.
//!
//! # Layout
//!
//! - this file — the [`Mock`] handle, [`MockConfig`], routing, [`serve`] and [`spawn`].
//! - `wire` — the API's envelopes; reading bearer tokens, parameters, cookies.
//! - `counters` — [`Counts`], what the mock saw.
//! - `tokens` — the tokens it issued and the bearer check of private endpoints.
//! - `documented` — the username/password flavour's login, refresh, verify, logout.
//! - `live` — the wallet flavour's challenge, signature verify, refresh, logout.
//! - `endpoints` — public data, `/api/v1/user/info`, `/api/v1/mock/echo`.
//! - `signer` — addresses and the signer of a login signature.
//! - `socket` — the WebSocket protocol.
//! - `harness` (cargo feature `test-util`) — fault injection, test endpoints
//!   (upload, download, stream, slow) and the TLS server; the product binary
//!   does not carry them.

mod counters;
mod documented;
mod endpoints;
#[cfg(feature = "test-util")]
mod harness;
mod live;
mod signer;
mod socket;
mod tokens;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ethgas_api::{API_PREFIX, LOGIN_PATH, LOGOUT_PATH, PUBLIC_PREFIX, REFRESH_PATH, VERIFY_PATH};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

pub use alloy_primitives::Address;
pub use counters::Counts;
#[cfg(feature = "test-util")]
pub use harness::{Fault, Fnv, pattern_byte, serve_tls};

use counters::{Counters, bump};
use tokens::Tokens;
use wire::Body;

/// Which of the two APIs of `ethgas-api.md` the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavour {
    /// Username and password, `{code, message, data}` (method "password").
    #[default]
    Documented,
    /// EIP-712 wallet login, `{success, data}` (method "wallet"), as the
    /// service at mainnet.app.ethgas.com answers.
    Live,
}

impl std::str::FromStr for Flavour {
    type Err = String;

    fn from_str(s: &str) -> Result<Flavour, String> {
        match s {
            "documented" | "password" => Ok(Flavour::Documented),
            "live" | "wallet" => Ok(Flavour::Live),
            other => Err(format!("unknown API flavour {other:?}: use \"documented\" or \"live\"")),
        }
    }
}

/// How the mock behaves at start.
#[derive(Clone)]
pub struct MockConfig {
    pub flavour: Flavour,
    /// Documented flavour: the account's username and password.
    pub username: String,
    pub password: String,
    /// Live flavour: the one wallet address that may log in; `None` lets any
    /// address log in (each gets its own user), as the live service does.
    pub address: Option<Address>,
    /// Live flavour: the `chainId` of the login typed data (32382 in the
    /// published sample; it differs between networks).
    pub chain_id: u64,
    /// Lifetime of access tokens: `expiresIn` and the JWT `exp`.
    pub token_lifetime: Duration,
    /// How long refresh tokens work. Documented flavour: each from its issue,
    /// once (rotation). Live flavour: the session, from the wallet login — the
    /// refresh token's JWT `exp`; no access token outlives it, and after it
    /// only a new wallet login works.
    pub session_lifetime: Duration,
    /// Documented flavour: send `expiresIn` as a string ("3600"), as some
    /// deployments do.
    pub expires_in_as_string: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            flavour: Flavour::Documented,
            username: "demo".into(),
            password: "demo-password".into(),
            address: None,
            chain_id: 32382,
            token_lifetime: Duration::from_secs(3600),
            session_lifetime: Duration::from_secs(7 * 86400),
            expires_in_as_string: false,
        }
    }
}

/// A change to the grants the mock issues (feature `test-util`), for tests
/// of an API that states lifetimes badly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub enum Tamper {
    #[default]
    None,
    /// The access token's JWT `exp` is 10 s in the past, and the mock holds
    /// it expired: a request that carries it counts in `expired_in_use`.
    ExpiredExp,
    /// Documented flavour: `expiresIn` is this text.
    ExpiresIn(String),
    /// No refresh token: no `refreshToken` (documented), no cookie (live).
    NoRefreshToken,
}

/// The endpoints a fault can be injected into (feature `test-util`).
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub(crate) enum Hook {
    /// Documented login; live challenge (`login?addr=`).
    Login,
    Refresh,
    /// Live signature verify (`login/verify`).
    Verify,
}

impl Hook {
    #[cfg(feature = "test-util")]
    const COUNT: usize = 3;
}

struct State {
    config: Mutex<MockConfig>,
    tokens: Mutex<Tokens>,
    /// Live flavour: outstanding challenges and the users seen.
    live: Mutex<live::Wallets>,
    /// The path and query of the first [`socket::PATHS_KEPT`] WebSocket
    /// handshakes, in order: where a relay sent its programs.
    ws_paths: Mutex<Vec<String>>,
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
                live: Mutex::new(live::Wallets::default()),
                ws_paths: Mutex::default(),
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

    /// The path and query of each WebSocket handshake so far (the first
    /// hundred), in order.
    pub fn websocket_paths(&self) -> Vec<String> {
        self.state.ws_paths.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn username(&self) -> String {
        self.state.config.lock().map(|c| c.username.clone()).unwrap_or_default()
    }

    fn flavour(&self) -> Flavour {
        self.state.config.lock().map(|c| c.flavour).unwrap_or_default()
    }

    /// A refusal in this mock's envelope: the documented `{code: status,
    /// message}` or the live `{success: false, errorCode, errorMsgKey}`.
    fn failure(&self, status: StatusCode, message: &str, live_code: u16, live_key: &str) -> Response<Body> {
        match self.flavour() {
            Flavour::Documented => wire::response(status, status.as_u16(), message, serde_json::Value::Null),
            Flavour::Live => wire::live_fail(status, live_code, live_key),
        }
    }

    /// Routes one request.
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if wire::is_upgrade(&req) {
            return Ok(self.websocket(req));
        }
        let path = req.uri().path().to_string();
        let flavour = self.flavour();
        match (req.method(), path.as_str(), flavour) {
            (&Method::POST, LOGIN_PATH, Flavour::Documented) => self.login(req).await,
            (&Method::POST, REFRESH_PATH, Flavour::Documented) => self.refresh(req).await,
            (&Method::POST, VERIFY_PATH, Flavour::Documented) => Ok(self.verify(&req)),
            (&Method::POST, LOGOUT_PATH, Flavour::Documented) => Ok(self.logout(&req)),
            (&Method::POST, LOGIN_PATH, Flavour::Live) => self.live_login(req).await,
            (&Method::POST, VERIFY_PATH, Flavour::Live) => self.live_verify(req).await,
            (&Method::POST, REFRESH_PATH, Flavour::Live) => self.live_refresh(req).await,
            (&Method::POST, LOGOUT_PATH, Flavour::Live) => Ok(self.live_logout(&req)),
            (_, p, _) if p.starts_with(PUBLIC_PREFIX) => Ok(self.public(&req)),
            (_, p, _) if p.starts_with(API_PREFIX) => match self.guard(&req) {
                Ok(()) => Ok(self.private(req, &path).await),
                Err(refusal) => Ok(self.failure(
                    StatusCode::UNAUTHORIZED,
                    refusal.message,
                    wire::PERMISSION_DENIED,
                    refusal.key,
                )),
            },
            _ => {
                bump(&self.state.counters.not_found);
                Ok(self.failure(StatusCode::NOT_FOUND, "Not Found", 404, "error.not_found"))
            }
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

    fn tamper(&self) -> Tamper {
        Tamper::None
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

/// One plain HTTP/1.1 connection (with upgrades, for the WebSocket). The
/// drain is a `select!` rather than hyper-util's `GracefulShutdown`, which
/// does not take hyper's `http1::UpgradeableConnection`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavours_parse_by_either_name() {
        assert_eq!("documented".parse(), Ok(Flavour::Documented));
        assert_eq!("password".parse(), Ok(Flavour::Documented));
        assert_eq!("live".parse(), Ok(Flavour::Live));
        assert_eq!("wallet".parse(), Ok(Flavour::Live));
        assert!("mainnet".parse::<Flavour>().unwrap_err().contains("\"live\""));
        assert_eq!(MockConfig::default().flavour, Flavour::Documented);
        assert_eq!(MockConfig::default().chain_id, 32382);
    }
}
