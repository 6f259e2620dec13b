//! The built-in mock ETHGas API.
//!
//! What `demo` runs, what the tests run in-process, and what users can point
//! their programs at offline (`ethgas-sidecar mock-api`). It speaks the
//! authentication contract of `ethgas-api.md` — login, refresh with rotation,
//! verify, logout — with short-lived JWT-shaped tokens, guards a few private
//! endpoints that answer 401 to missing, expired or revoked tokens, serves a
//! WebSocket that wants a `login` command and pushes `token_expired`, and
//! counts everything it sees. Faults can be switched on while traffic flows
//! (status codes, garbage, error codes, slow answers, resets, revoked tokens),
//! which is how the chaos tests drive it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::envelope;

type Body = BoxBody<Bytes, std::io::Error>;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How the mock behaves at start.
#[derive(Clone)]
pub struct MockConfig {
    pub username: String,
    pub password: String,
    /// `expiresIn` of access tokens.
    pub token_lifetime: Duration,
    /// How long a session lasts: a refresh token may be used once, and the
    /// one a refresh issues ends when the session does (as the live API's
    /// do), so after this only a login works.
    pub refresh_lifetime: Duration,
    /// Send `expiresIn` as a string ("3600"), as some deployments do.
    pub expires_in_as_string: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            username: "demo".into(),
            password: "demo-password".into(),
            token_lifetime: Duration::from_secs(3600),
            refresh_lifetime: Duration::from_secs(7 * 86400),
            expires_in_as_string: false,
        }
    }
}

/// A fault to inject into the login or refresh endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Answer with this HTTP status and an error envelope.
    Status(u16),
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 200 with an envelope whose `code` is an error (1002).
    ErrorCode,
    /// Answer normally, after this delay.
    Slow(Duration),
    /// Close the connection without answering.
    Reset,
}

/// What the mock has seen. Every field counts requests or events.
#[derive(Debug, Default)]
pub struct Counters {
    pub logins_ok: AtomicU64,
    pub logins_refused: AtomicU64,
    pub refreshes_ok: AtomicU64,
    pub refreshes_refused: AtomicU64,
    pub verifies: AtomicU64,
    pub logouts: AtomicU64,
    pub faults_served: AtomicU64,
    pub private_ok: AtomicU64,
    pub private_unauthorized: AtomicU64,
    /// Requests that carried a token the mock issued but that had expired:
    /// the sidecar sent a token past its lifetime.
    pub expired_in_use: AtomicU64,
    pub connections: AtomicU64,
    pub ws_logins_ok: AtomicU64,
    pub ws_logins_refused: AtomicU64,
    pub ws_token_expired_pushes: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub logins_ok: u64,
    pub logins_refused: u64,
    pub refreshes_ok: u64,
    pub refreshes_refused: u64,
    pub verifies: u64,
    pub logouts: u64,
    pub faults_served: u64,
    pub private_ok: u64,
    pub private_unauthorized: u64,
    pub expired_in_use: u64,
    pub connections: u64,
    pub ws_logins_ok: u64,
    pub ws_logins_refused: u64,
    pub ws_token_expired_pushes: u64,
}

impl Counts {
    /// Login and refresh calls of any outcome.
    pub fn auth_calls(&self) -> u64 {
        self.logins_ok + self.logins_refused + self.refreshes_ok + self.refreshes_refused + self.faults_served
    }
}

struct AccessToken {
    expires: Instant,
    revoked: bool,
}

struct RefreshToken {
    expires: Instant,
    /// `expires` as a Unix time: the token's JWT `exp`.
    exp: u64,
    used: bool,
}

#[derive(Default)]
struct Tokens {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
}

#[derive(Default)]
struct Faults {
    login: Fault,
    refresh: Fault,
}

struct State {
    config: Mutex<MockConfig>,
    tokens: Mutex<Tokens>,
    faults: Mutex<Faults>,
    /// While set, connections are accepted and closed at once (an outage).
    down: AtomicBool,
    /// While set, every private request is refused with 401, whatever token
    /// it carries (an API that rejects what it issues).
    reject_all: AtomicBool,
    counters: Counters,
    serial: AtomicU64,
    /// Wakes every open socket to push `token_expired` now.
    expire_sockets: tokio::sync::Notify,
}

/// A handle on a running (or about to run) mock. Cheap to clone.
#[derive(Clone)]
pub struct Mock {
    state: Arc<State>,
}

enum Check {
    Ok,
    Missing,
    Unknown,
    Revoked,
    Expired,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

fn full(resp: Response<Full<Bytes>>) -> Response<Body> {
    resp.map(|b| b.map_err(|never| match never {}).boxed())
}

fn unauthorized(message: &str) -> Response<Body> {
    full(envelope::response(StatusCode::UNAUTHORIZED, 401, message, Value::Null))
}

impl Mock {
    pub fn new(config: MockConfig) -> Mock {
        Mock {
            state: Arc::new(State {
                config: Mutex::new(config),
                tokens: Mutex::new(Tokens::default()),
                faults: Mutex::new(Faults::default()),
                down: AtomicBool::new(false),
                reject_all: AtomicBool::new(false),
                counters: Counters::default(),
                serial: AtomicU64::new(0),
                expire_sockets: tokio::sync::Notify::new(),
            }),
        }
    }

    pub fn counts(&self) -> Counts {
        let c = &self.state.counters;
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Counts {
            logins_ok: l(&c.logins_ok),
            logins_refused: l(&c.logins_refused),
            refreshes_ok: l(&c.refreshes_ok),
            refreshes_refused: l(&c.refreshes_refused),
            verifies: l(&c.verifies),
            logouts: l(&c.logouts),
            faults_served: l(&c.faults_served),
            private_ok: l(&c.private_ok),
            private_unauthorized: l(&c.private_unauthorized),
            expired_in_use: l(&c.expired_in_use),
            connections: l(&c.connections),
            ws_logins_ok: l(&c.ws_logins_ok),
            ws_logins_refused: l(&c.ws_logins_refused),
            ws_token_expired_pushes: l(&c.ws_token_expired_pushes),
        }
    }

    pub fn set_login_fault(&self, fault: Fault) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.login = fault;
        }
    }

    pub fn set_refresh_fault(&self, fault: Fault) {
        if let Ok(mut f) = self.state.faults.lock() {
            f.refresh = fault;
        }
    }

    /// An outage: connections are closed as soon as they are accepted.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Refuse every private request with 401, valid token or not.
    pub fn set_reject_all(&self, reject: bool) {
        self.state.reject_all.store(reject, Ordering::SeqCst);
    }

    pub fn set_password(&self, password: &str) {
        if let Ok(mut c) = self.state.config.lock() {
            c.password = password.to_string();
        }
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        if let Ok(mut c) = self.state.config.lock() {
            c.token_lifetime = lifetime;
        }
    }

    /// Revokes every access token issued so far (as a server-side logout or a
    /// security event would).
    pub fn revoke_access_tokens(&self) {
        if let Ok(mut t) = self.state.tokens.lock() {
            t.access.values_mut().for_each(|a| a.revoked = true);
        }
    }

    /// Makes every open WebSocket push `token_expired` now, as the API does
    /// when a socket's token runs out.
    pub fn push_token_expired(&self) {
        self.state.expire_sockets.notify_waiters();
    }

    /// Spends every refresh token issued so far.
    pub fn revoke_refresh_tokens(&self) {
        if let Ok(mut t) = self.state.tokens.lock() {
            t.refresh.values_mut().for_each(|r| r.used = true);
        }
    }

    /// Every token (access and refresh) issued so far, for tests that check
    /// no token leaked into a log.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state
            .tokens
            .lock()
            .map(|t| t.access.keys().chain(t.refresh.keys()).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `token` is an access token this mock issued (any state).
    pub fn issued(&self, token: &str) -> bool {
        self.state
            .tokens
            .lock()
            .map(|t| t.access.contains_key(token))
            .unwrap_or(false)
    }

    /// Whether `token` is an access token that is valid right now.
    pub fn is_valid(&self, token: &str) -> bool {
        matches!(self.check(Some(token)), Check::Ok)
    }

    fn new_token(&self, kind: &str, username: &str, exp: u64) -> String {
        let serial = self.state.serial.fetch_add(1, Ordering::SeqCst);
        let mut sig = [0u8; 24];
        rand::fill(&mut sig);
        let claims = json!({ "sub": "user_123", "username": username, "typ": kind, "iat": unix_now(), "exp": exp, "jti": serial });
        format!(
            "{}.{}.{}",
            B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            B64.encode(claims.to_string()),
            B64.encode(sig)
        )
    }

    /// Issues a token pair and answers with it; the refresh token ends with
    /// `session` (when and `exp`), or a new session starts.
    fn grant(&self, session: Option<(Instant, u64)>) -> Response<Body> {
        let config = match self.state.config.lock() {
            Ok(c) => c.clone(),
            Err(_) => {
                return full(envelope::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "mock state poisoned",
                ));
            }
        };
        let lifetime = config.token_lifetime;
        let exp = unix_now() + lifetime.as_secs().max(1);
        let access = self.new_token("access", &config.username, exp);
        let now = Instant::now();
        let (session_end, session_exp) = session.unwrap_or((
            now + config.refresh_lifetime,
            unix_now() + config.refresh_lifetime.as_secs(),
        ));
        let refresh = self.new_token("refresh", &config.username, session_exp);
        if let Ok(mut t) = self.state.tokens.lock() {
            t.access.insert(
                access.clone(),
                AccessToken {
                    expires: now + lifetime,
                    revoked: false,
                },
            );
            t.refresh.insert(
                refresh.clone(),
                RefreshToken {
                    expires: session_end,
                    exp: session_exp,
                    used: false,
                },
            );
        }
        let secs = lifetime.as_secs_f64();
        let expires_in = if config.expires_in_as_string {
            json!(format!("{}", lifetime.as_secs()))
        } else if secs.fract() == 0.0 {
            json!(lifetime.as_secs())
        } else {
            json!(secs)
        };
        full(envelope::ok(
            json!({ "accessToken": access, "refreshToken": refresh, "expiresIn": expires_in }),
        ))
    }

    fn check(&self, token: Option<&str>) -> Check {
        let Some(token) = token else { return Check::Missing };
        let Ok(t) = self.state.tokens.lock() else {
            return Check::Unknown;
        };
        match t.access.get(token) {
            None => Check::Unknown,
            Some(a) if a.revoked => Check::Revoked,
            Some(a) if Instant::now() >= a.expires => Check::Expired,
            Some(_) => Check::Ok,
        }
    }

    /// Checks the bearer token of a private request; `Err` is the 401.
    fn guard(&self, req: &Request<Incoming>) -> Result<(), Box<Response<Body>>> {
        let c = &self.state.counters;
        let token = bearer(req);
        let check = if self.state.reject_all.load(Ordering::SeqCst) {
            Check::Revoked
        } else {
            self.check(token.as_deref())
        };
        let refusal = match check {
            Check::Ok => {
                c.private_ok.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
            Check::Missing => "Unauthorized: no bearer token",
            Check::Unknown => "Unauthorized: unknown token",
            Check::Revoked => "Unauthorized: token revoked",
            Check::Expired => {
                c.expired_in_use.fetch_add(1, Ordering::SeqCst);
                "Unauthorized: token expired"
            }
        };
        c.private_unauthorized.fetch_add(1, Ordering::SeqCst);
        Err(Box::new(unauthorized(refusal)))
    }

    /// Applies a fault; `Some` is the faulty answer (or `Err` for a reset).
    async fn fault(&self, fault: Fault) -> Option<Result<Response<Body>, std::io::Error>> {
        let c = &self.state.counters;
        let answer = match fault {
            Fault::None => return None,
            Fault::Slow(d) => {
                c.faults_served.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(d).await;
                return None;
            }
            Fault::Status(code) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Ok(full(envelope::response(status, code, "injected fault", Value::Null)))
            }
            Fault::Garbage => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"<html><body>502 Bad Gateway</body></html>",
                )));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                Ok(full(r))
            }
            Fault::ErrorCode => Ok(full(envelope::response(
                StatusCode::OK,
                1002,
                "operation failed",
                Value::Null,
            ))),
            Fault::Reset => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            )),
        };
        c.faults_served.fetch_add(1, Ordering::SeqCst);
        Some(answer)
    }

    async fn login(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        let fault = self.state.faults.lock().map(|f| f.login).unwrap_or_default();
        if let Some(answer) = self.fault(fault).await {
            return answer;
        }
        let c = &self.state.counters;
        let body = Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (user, pass) = (
            v.get("username").and_then(Value::as_str),
            v.get("password").and_then(Value::as_str),
        );
        let ok = self
            .state
            .config
            .lock()
            .map(|c| user == Some(c.username.as_str()) && pass == Some(c.password.as_str()))
            .unwrap_or(false);
        if !ok {
            c.logins_refused.fetch_add(1, Ordering::SeqCst);
            return Ok(unauthorized("Unauthorized"));
        }
        c.logins_ok.fetch_add(1, Ordering::SeqCst);
        Ok(self.grant(None))
    }

    async fn refresh(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        let fault = self.state.faults.lock().map(|f| f.refresh).unwrap_or_default();
        if let Some(answer) = self.fault(fault).await {
            return answer;
        }
        let c = &self.state.counters;
        let token = bearer(&req);
        let session = match (token, self.state.tokens.lock()) {
            (Some(token), Ok(mut t)) => match t.refresh.get_mut(&token) {
                Some(r) if !r.used && Instant::now() < r.expires => {
                    // Rotation: a refresh token works once.
                    r.used = true;
                    Some((r.expires, r.exp))
                }
                _ => None,
            },
            _ => None,
        };
        let Some(session) = session else {
            c.refreshes_refused.fetch_add(1, Ordering::SeqCst);
            return Ok(unauthorized("Refresh token is invalid or expired"));
        };
        c.refreshes_ok.fetch_add(1, Ordering::SeqCst);
        Ok(self.grant(Some(session)))
    }

    fn verify(&self, req: &Request<Incoming>) -> Response<Body> {
        self.state.counters.verifies.fetch_add(1, Ordering::SeqCst);
        let token = bearer(req);
        match self.check(token.as_deref()) {
            Check::Ok => {
                let exp = token.as_deref().and_then(crate::auth::jwt_exp).unwrap_or(0);
                full(envelope::ok(
                    json!({ "valid": true, "userId": "user_123", "expiresAt": exp }),
                ))
            }
            _ => unauthorized("Unauthorized"),
        }
    }

    fn logout(&self, req: &Request<Incoming>) -> Response<Body> {
        let token = bearer(req);
        if !matches!(self.check(token.as_deref()), Check::Ok) {
            return unauthorized("Unauthorized");
        }
        self.state.counters.logouts.fetch_add(1, Ordering::SeqCst);
        if let (Some(token), Ok(mut t)) = (token, self.state.tokens.lock()) {
            if let Some(a) = t.access.get_mut(&token) {
                a.revoked = true;
            }
        }
        full(envelope::ok(json!({ "loggedOut": true })))
    }

    /// Routes one request.
    async fn handle(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let param = |name: &str| -> Option<u64> {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.parse().ok())
        };
        if crate::ws::is_upgrade(&req) {
            return Ok(self.websocket(req));
        }
        let method = req.method().clone();
        match (method, path.as_str()) {
            (Method::POST, "/api/v1/user/login") => self.login(req).await,
            (Method::POST, "/api/v1/user/login/refresh") => self.refresh(req).await,
            (Method::POST, "/api/v1/user/login/verify") => Ok(self.verify(&req)),
            (Method::POST, "/api/v1/user/logout") => Ok(self.logout(&req)),
            (_, p) if p.starts_with("/api/v1/p/") => Ok(full(envelope::ok(
                json!({ "symbol": "ETH", "price": "3500.00", "public": true }),
            ))),
            (_, p) if p.starts_with("/api/v1/") => {
                if let Err(refusal) = self.guard(&req) {
                    return Ok(*refusal);
                }
                Ok(self.private(req, &path, param).await)
            }
            _ => Ok(full(envelope::error(StatusCode::NOT_FOUND, "Not Found"))),
        }
    }

    /// Private endpoints, after the token check.
    async fn private(&self, req: Request<Incoming>, path: &str, param: impl Fn(&str) -> Option<u64>) -> Response<Body> {
        match path {
            "/api/v1/user/info" => full(envelope::ok(
                json!({ "userId": "user_123", "username": self.username() }),
            )),
            // Echoes what arrived: method, path, query, headers, body.
            "/api/v1/mock/echo" => {
                let method = req.method().to_string();
                let uri = req.uri().to_string();
                let version = format!("{:?}", req.version());
                let headers: serde_json::Map<String, Value> = req
                    .headers()
                    .keys()
                    .map(|k| {
                        let values: Vec<Value> = req
                            .headers()
                            .get_all(k)
                            .iter()
                            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect();
                        (k.as_str().to_string(), Value::Array(values))
                    })
                    .map(|(k, v)| {
                        // The token itself is not echoed: say what it is.
                        if k != "authorization" {
                            return (k, v);
                        }
                        let raw = v.get(0).and_then(Value::as_str).unwrap_or("");
                        let token = raw.strip_prefix("Bearer ").unwrap_or(raw);
                        let described = json!({
                            "values": v.as_array().map_or(0, Vec::len),
                            "issued_by_mock": self.issued(token),
                            "valid": self.is_valid(token),
                            "jti": crate::auth::jwt_claim(token, "jti"),
                        });
                        (k, described)
                    })
                    .collect();
                let body = Limited::new(req.into_body(), 1 << 20)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                full(envelope::ok(json!({
                    "method": method,
                    "uri": uri,
                    "version": version,
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                })))
            }
            // Reads an upload as it streams; answers its size and checksum.
            "/api/v1/mock/upload" => {
                let mut body = req.into_body();
                let mut n = 0u64;
                let mut sum = Fnv::default();
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(f) => {
                            if let Some(d) = f.data_ref() {
                                n += d.len() as u64;
                                sum.update(d);
                            }
                        }
                        Err(_) => return full(envelope::error(StatusCode::BAD_REQUEST, "upload broken")),
                    }
                }
                full(envelope::ok(
                    json!({ "bytes": n, "fnv1a64": format!("{:016x}", sum.0) }),
                ))
            }
            // `bytes` of a deterministic pattern, streamed in 64 KiB chunks.
            "/api/v1/mock/download" => {
                let total = param("bytes").unwrap_or(1 << 20);
                let stream = futures_util::stream::unfold(0u64, move |sent| async move {
                    if sent >= total {
                        return None;
                    }
                    let n = (total - sent).min(64 * 1024);
                    let chunk: Vec<u8> = (sent..sent + n).map(pattern_byte).collect();
                    Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk))), sent + n))
                });
                let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
                resp
            }
            // `chunks` lines, one every `interval_ms`.
            "/api/v1/mock/stream" => {
                let chunks = param("chunks").unwrap_or(5);
                let interval = Duration::from_millis(param("interval_ms").unwrap_or(200));
                let stream = futures_util::stream::unfold(0u64, move |i| async move {
                    if i >= chunks {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(interval).await;
                    }
                    let line = format!("{{\"chunk\":{i}}}\n");
                    Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(line))), i + 1))
                });
                Response::new(BodyExt::boxed(StreamBody::new(stream)))
            }
            // Answers after `ms` milliseconds.
            "/api/v1/mock/slow" => {
                tokio::time::sleep(Duration::from_millis(param("ms").unwrap_or(1000))).await;
                full(envelope::ok(json!({ "slow": true })))
            }
            _ => full(envelope::ok(json!({ "path": path, "ok": true }))),
        }
    }

    fn username(&self) -> String {
        self.state.config.lock().map(|c| c.username.clone()).unwrap_or_default()
    }

    /// Accepts a WebSocket and runs the ETHGas socket protocol on it.
    fn websocket(&self, mut req: Request<Incoming>) -> Response<Body> {
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return full(envelope::error(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        let mock = self.clone();
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                mock.socket(ws).await;
            }
        });
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        full(resp)
    }

    async fn socket<S>(&self, mut ws: WebSocketStream<S>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let c = &self.state.counters;
        let mut token: Option<String> = None;
        let mut expiry: Option<Instant> = None;
        loop {
            let wake = expiry.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let reply = tokio::select! {
                _ = self.state.expire_sockets.notified() => {
                    expiry = None;
                    token = None;
                    c.ws_token_expired_pushes.fetch_add(1, Ordering::SeqCst);
                    json!({ "cmd": "token_expired", "message": "access token expired; send login again" })
                }
                _ = tokio::time::sleep_until(wake), if expiry.is_some() => {
                    expiry = None;
                    token = None;
                    c.ws_token_expired_pushes.fetch_add(1, Ordering::SeqCst);
                    json!({ "cmd": "token_expired", "message": "access token expired; send login again" })
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let v: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        match v.get("cmd").and_then(Value::as_str) {
                            Some("login") => {
                                let t = v.get("data").and_then(|d| d.get("accessToken")).and_then(Value::as_str).map(str::to_string);
                                if let Some(t) = t.filter(|t| self.is_valid(t)) {
                                    c.ws_logins_ok.fetch_add(1, Ordering::SeqCst);
                                    expiry = self.state.tokens.lock().ok().and_then(|m| m.access.get(&t).map(|a| a.expires));
                                    token = Some(t);
                                    json!({ "cmd": "login", "code": 200, "message": "OK" })
                                } else {
                                    c.ws_logins_refused.fetch_add(1, Ordering::SeqCst);
                                    json!({ "cmd": "login", "code": 401, "message": "Unauthorized" })
                                }
                            }
                            Some("whoami") => {
                                let authenticated = token.as_deref().is_some_and(|t| self.is_valid(t));
                                json!({ "cmd": "whoami", "authenticated": authenticated, "username": if authenticated { self.username() } else { String::new() } })
                            }
                            Some(other) => json!({ "cmd": other, "code": 200, "message": "OK" }),
                            None => json!({ "cmd": "error", "code": 1001, "message": "expected a JSON command with a cmd field" }),
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                },
            };
            if ws.send(Message::text(reply.to_string())).await.is_err() {
                break;
            }
        }
    }
}

/// Byte `i` of the download pattern.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 11) % 251) as u8
}

/// FNV-1a, 64 bit: a checksum for uploads and downloads in tests.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Serves the mock on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, mock: Mock, shutdown: CancellationToken) {
    serve_with(listener, mock, None, shutdown).await
}

/// Serves the mock over TLS (HTTP/1.1 or HTTP/2, as ALPN decides), for
/// tests of the sidecar's HTTPS upstream path.
pub async fn serve_tls(listener: TcpListener, mock: Mock, tls: tokio_rustls::TlsAcceptor, shutdown: CancellationToken) {
    serve_with(listener, mock, Some(tls), shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    mock: Mock,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, tls = tls.is_some(), "mock ETHGas API listening");
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
        mock.state.counters.connections.fetch_add(1, Ordering::SeqCst);
        if mock.state.down.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let m = mock.clone();
        let stop = shutdown.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            let svc = service_fn(move |req| {
                let m = m.clone();
                async move { m.handle(req).await }
            });
            let result = match tls {
                None => {
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), svc)
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
                Some(acceptor) => match acceptor.accept(stream).await {
                    Err(e) => Err(format!("TLS handshake: {e}")),
                    Ok(stream) => {
                        let builder =
                            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        tokio::pin!(conn);
                        tokio::select! {
                            r = conn.as_mut() => r.map_err(|e| e.to_string()),
                            _ = stop.cancelled() => {
                                conn.as_mut().graceful_shutdown();
                                conn.await.map_err(|e| e.to_string())
                            }
                        }
                    }
                },
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "mock connection ended with an error");
            }
        });
    }
    // Refuse new connections at once, then let the open ones finish.
    drop(listener);
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
}

/// Binds `addr` and serves the mock on it in the background; returns the
/// bound address. For tests and `demo`.
pub async fn spawn(addr: SocketAddr, mock: Mock, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, mock, shutdown));
    Ok(bound)
}
