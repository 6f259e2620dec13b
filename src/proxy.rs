//! Forwarding: one request from a legacy program, rewritten for the API.
//!
//! For every request the proxy reads the current token from the cell (no
//! await), rewrites the request in place — upstream URI, `Host`, the client's
//! `Authorization` replaced, hop-by-hop headers dropped — and streams the
//! bodies both ways. Small request bodies are kept so that a request the API
//! answers with 401 can be replayed once with a fresh token.
//!
//! Before forwarding it refuses what it must not carry: ambiguous framing,
//! oversized heads, `CONNECT`, absolute-form requests for any host but the
//! upstream's. It answers the account calls (login, refresh, logout) itself
//! when interception is on, and hands WebSocket upgrades to [`crate::ws`].
//!
//! Errors the sidecar makes itself are mapped to a status and the API's
//! envelope in one place, [`error_response`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body as _, Incoming};
use tokio::time::Instant;
use tracing::debug;

use crate::auth::{AuthHandle, Session, error_chain};
use crate::config::Config;
use crate::envelope;
use crate::intercept::{self, Call, Placeholders};
use crate::metrics::{AuthKind, LocalReason, Metrics};
use crate::pool::{Pool, PooledBody};
use crate::upstream::{self, Target};
use crate::ws::WsRelay;

/// A response on its way to the client: streamed from the API, or made here.
pub type Body = Either<PooledBody, Full<Bytes>>;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// `Expect` (the sidecar has answered it already) and `Host` (set from the
/// upstream URI).
const HOP_BY_HOP: [HeaderName; 11] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
    header::HOST,
];

/// The most of an error body kept from a 401 that is replayed.
const MAX_KEPT_401_BODY: usize = 64 * 1024;

/// An answer the sidecar gives instead of the API's.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no valid token for account {username:?} yet: {reason}")]
    NoToken {
        username: String,
        reason: String,
        retry_after: u64,
    },
    #[error("the API at {origin} is unreachable: {cause}")]
    Unreachable { origin: String, cause: String },
    #[error("the API at {origin} failed to answer: {cause}")]
    BadGateway { origin: String, cause: String },
    #[error("the API at {origin} did not answer within {} (upstream.request_timeout)", humantime::format_duration(*.limit))]
    Timeout { origin: String, limit: Duration },
    #[error(
        "host {host:?} is not the API ({upstream}); this sidecar forwards only there (add it to proxy.host_aliases if it is the same API)"
    )]
    RefusedHost { host: String, upstream: String },
    #[error("client {addr} is not in proxy.allowed_clients")]
    RefusedClient { addr: String },
    #[error(
        "CONNECT is not supported: a TLS tunnel cannot carry the injected token; use a plain http:// base URL pointing at the sidecar (or HTTP_PROXY with http:// API URLs) — the sidecar itself speaks HTTPS to the API"
    )]
    Connect,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("request headers are larger than {limit} bytes (proxy.max_header_bytes)")]
    HeadersTooLarge { limit: usize },
    #[error("request URI is longer than {limit} bytes (proxy.max_uri_bytes)")]
    UriTooLong { limit: usize },
}

impl ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoToken { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unreachable { .. } | ProxyError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RefusedHost { .. } | ProxyError::RefusedClient { .. } | ProxyError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            ProxyError::Connect => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
        }
    }

    fn reason(&self) -> LocalReason {
        match self {
            ProxyError::NoToken { .. } => LocalReason::NoToken,
            ProxyError::Unreachable { .. } => LocalReason::Unreachable,
            ProxyError::BadGateway { .. } => LocalReason::BadGateway,
            ProxyError::Timeout { .. } => LocalReason::Timeout,
            ProxyError::RefusedHost { .. } | ProxyError::Forbidden(_) => LocalReason::RefusedHost,
            ProxyError::RefusedClient { .. } => LocalReason::RefusedClient,
            ProxyError::Connect => LocalReason::Connect,
            ProxyError::BadRequest(_) => LocalReason::BadRequest,
            ProxyError::HeadersTooLarge { .. } | ProxyError::UriTooLong { .. } => LocalReason::TooLarge,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::NoToken { retry_after, .. } => Some(*retry_after),
            ProxyError::Unreachable { .. } | ProxyError::BadGateway { .. } => Some(1),
            _ => None,
        }
    }

    /// Whether the client connection should close after this answer.
    fn closes(&self) -> bool {
        matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::HeadersTooLarge { .. }
                | ProxyError::UriTooLong { .. }
                | ProxyError::Connect
        )
    }
}

/// The one mapping from the sidecar's own errors to a response: the status,
/// the API's envelope with a message that says what to do, `Retry-After`
/// where a retry helps.
pub fn error_response(e: &ProxyError) -> Response<Full<Bytes>> {
    let status = e.status();
    let mut resp = envelope::error(status, &format!("ethgas-sidecar: {e}"));
    if let Some(secs) = e.retry_after() {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        resp.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
        );
    }
    if e.closes() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Whether the client sent an `Authorization` of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Placeholder,
    Own,
}

/// Removes hop-by-hop headers, including those that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few headers a message has, instead of a lookup per
    // hop-by-hop name: most requests carry none of them.
    let mut present: u16 = 0;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // HOP_BY_HOP[0] is `Connection`.
    if present & 1 != 0 {
        // Bytes, not `to_str`: one non-ASCII byte in the value must not
        // spare the names listed beside it.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Rewrites a client request for the API, in place: upstream URI, hop-by-hop
/// headers dropped, `Authorization` set to `authorization`. Pure apart from
/// its arguments; a fuzz target, so it must not panic on any input.
pub fn rewrite_request(
    parts: &mut Parts,
    target: &Target,
    authorization: &HeaderValue,
    placeholders: &Placeholders,
) -> ClientAuth {
    strip_hop_by_hop(&mut parts.headers);
    let client_auth = match parts.headers.get(header::AUTHORIZATION) {
        None => ClientAuth::None,
        Some(v) if placeholders.is_placeholder(v.as_bytes()) => ClientAuth::Placeholder,
        Some(_) => ClientAuth::Own,
    };
    // `insert` replaces every value the client sent.
    parts.headers.insert(header::AUTHORIZATION, authorization.clone());
    parts.uri = target.uri(parts.uri.path_and_query().cloned());
    parts.version = Version::HTTP_11;
    client_auth
}

/// A forwarded request as it can be sent again after a 401, copied into
/// memory of its own. The parsed request's URI, header values and small body
/// are slices of hyper's read buffer for the client connection; holding them
/// for the round trip would make hyper allocate a second buffer for every
/// request in flight.
struct Replay {
    method: Method,
    uri: Uri,
    names: Vec<HeaderName>,
    /// Value `i` is `values[ends[i - 1]..ends[i]]`.
    ends: Vec<usize>,
    values: Vec<u8>,
    body: Bytes,
}

impl Replay {
    fn new(parts: &Parts, body: &Bytes) -> Replay {
        let n = parts.headers.len();
        let (mut names, mut ends) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut values = Vec::with_capacity(parts.headers.iter().map(|(_, v)| v.len()).sum());
        for (name, value) in &parts.headers {
            if name == header::AUTHORIZATION {
                continue;
            }
            names.push(name.clone());
            values.extend_from_slice(value.as_bytes());
            ends.push(values.len());
        }
        // Scheme and authority are the upstream's; the path is copied.
        let mut uri = http::uri::Parts::default();
        uri.scheme = parts.uri.scheme().cloned();
        uri.authority = parts.uri.authority().cloned();
        uri.path_and_query = parts
            .uri
            .path_and_query()
            .and_then(|pq| http::uri::PathAndQuery::try_from(pq.as_str()).ok());
        let uri = Uri::from_parts(uri).unwrap_or_else(|_| parts.uri.clone());
        Replay {
            method: parts.method.clone(),
            uri,
            names,
            ends,
            values,
            body: Bytes::copy_from_slice(body),
        }
    }

    /// The request again, with `authorization`.
    fn request(self, authorization: &HeaderValue) -> Request<upstream::Body> {
        let mut headers = HeaderMap::with_capacity(self.names.len() + 1);
        let mut start = 0;
        for (name, end) in self.names.into_iter().zip(self.ends) {
            if let Some(value) = self.values.get(start..end) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    headers.append(name, value);
                }
            }
            start = end;
        }
        headers.insert(header::AUTHORIZATION, authorization.clone());
        let mut again = Request::new(upstream::full(self.body));
        *again.method_mut() = self.method;
        *again.uri_mut() = self.uri;
        *again.headers_mut() = headers;
        again
    }
}

/// A request body, kept whole when it is small enough to replay.
enum RequestBody {
    Kept(Bytes),
    Stream(Incoming),
}

/// Settings a reload may change.
struct Knobs {
    intercept_login: bool,
    login_path: String,
    refresh_path: String,
    logout_path: String,
    username: String,
    host_aliases: Vec<String>,
    token_wait: Duration,
    replay_buffer: usize,
    max_header_bytes: usize,
    max_uri_bytes: usize,
}

impl Knobs {
    fn new(config: &Config) -> Knobs {
        Knobs {
            intercept_login: config.proxy.intercept_login,
            login_path: config.auth.login_path.clone(),
            refresh_path: config.auth.refresh_path.clone(),
            logout_path: config.auth.logout_path.clone(),
            username: config.auth.username.clone(),
            host_aliases: config.proxy.host_aliases.clone(),
            token_wait: config.proxy.token_wait,
            replay_buffer: config.proxy.replay_buffer,
            max_header_bytes: config.proxy.max_header_bytes,
            max_uri_bytes: config.proxy.max_uri_bytes,
        }
    }
}

struct Shared {
    pool: Pool,
    target: Target,
    origin: String,
    auth: AuthHandle,
    metrics: Arc<Metrics>,
    placeholders: Arc<Placeholders>,
    ws: WsRelay,
    request_timeout: Duration,
    knobs: Arc<ArcSwap<Knobs>>,
}

/// The forwarding service. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// What the server knows about the request's connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnContext {
    pub peer: Option<SocketAddr>,
    /// False when the framing guard found this request's length ambiguous.
    pub framing_ok: bool,
}

/// Decrements the in-flight gauge however the handler ends.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

fn local(resp: Response<Full<Bytes>>) -> Response<Body> {
    resp.map(Either::Right)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Proxy {
    pub fn new(config: &Config, pool: Pool, auth: AuthHandle, metrics: Arc<Metrics>, ws: WsRelay) -> Proxy {
        let target = Target::new(&config.upstream);
        Proxy {
            shared: Arc::new(Shared {
                origin: target.origin(),
                target,
                pool,
                auth,
                metrics,
                placeholders: Arc::new(Placeholders::new()),
                ws,
                request_timeout: config.upstream.request_timeout,
                knobs: Arc::new(ArcSwap::from_pointee(Knobs::new(config))),
            }),
        }
    }

    /// The same proxy with its own connection pool, for a worker thread:
    /// each worker keeps its upstream connections on its own runtime.
    /// Reloads reach every copy.
    pub fn with_pool(&self, pool: Pool) -> Proxy {
        let s = &*self.shared;
        Proxy {
            shared: Arc::new(Shared {
                pool,
                target: s.target.clone(),
                origin: s.origin.clone(),
                auth: s.auth.clone(),
                metrics: s.metrics.clone(),
                placeholders: s.placeholders.clone(),
                ws: s.ws.clone(),
                request_timeout: s.request_timeout,
                knobs: s.knobs.clone(),
            }),
        }
    }

    /// Takes the reloadable settings of a new configuration.
    pub fn reload(&self, config: &Config) {
        self.shared.knobs.store(Arc::new(Knobs::new(config)));
    }

    /// Handles one request; never fails (errors become envelopes).
    pub async fn handle(&self, req: Request<Incoming>, ctx: ConnContext) -> Response<Body> {
        let s = &*self.shared;
        s.metrics.in_flight.inc();
        let _in_flight = InFlight(&s.metrics);
        let method = req.method().clone();
        // Only the debug line needs these; the clock is not free in a VM.
        let debug_line =
            tracing::enabled!(tracing::Level::DEBUG).then(|| (Instant::now(), req.uri().path().to_string()));
        let resp = match self.route(req, ctx).await {
            Ok(resp) => resp,
            Err(e) => {
                s.metrics.local(e.reason());
                debug!(error = %e, "answered by the sidecar");
                local(error_response(&e))
            }
        };
        s.metrics.request(&method, resp.status().as_u16());
        if let Some((started, path)) = debug_line {
            debug!(
                method = %method,
                path,
                status = resp.status().as_u16(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                peer = ?ctx.peer,
                "request"
            );
        }
        resp
    }

    /// The answer for a TCP client outside `proxy.allowed_clients`.
    pub fn refuse_client(&self, addr: SocketAddr) -> Response<Body> {
        let e = ProxyError::RefusedClient {
            addr: addr.ip().to_string(),
        };
        self.shared.metrics.local(e.reason());
        let mut resp = error_response(&e);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        local(resp)
    }

    async fn route(&self, req: Request<Incoming>, ctx: ConnContext) -> Result<Response<Body>, ProxyError> {
        let s = &*self.shared;
        let k = s.knobs.load_full();
        let k = &*k;
        if !ctx.framing_ok {
            return Err(ProxyError::BadRequest(
                "ambiguous request framing (Content-Length together with Transfer-Encoding, or Content-Length repeated); send exactly one of them".into(),
            ));
        }
        if req.method() == Method::CONNECT {
            return Err(ProxyError::Connect);
        }
        let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len())
            + req.uri().authority().map_or(0, |a| a.as_str().len());
        if uri_len > k.max_uri_bytes {
            return Err(ProxyError::UriTooLong { limit: k.max_uri_bytes });
        }
        let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > k.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: k.max_header_bytes,
            });
        }
        if let Some(authority) = req.uri().authority() {
            self.check_absolute_form(k, req.uri().scheme_str(), authority)?;
        }
        if k.intercept_login && req.method() == Method::POST {
            let path = req.uri().path();
            let call = if path == k.login_path {
                Some(Call::Login)
            } else if path == k.refresh_path {
                Some(Call::Refresh)
            } else if path == k.logout_path {
                Some(Call::Logout)
            } else {
                None
            };
            if let Some(call) = call {
                // Rare paths are boxed: the future of every request (which
                // each client connection keeps allocated) stays small.
                return Box::pin(self.intercept(k, call, req)).await;
            }
        }
        if crate::ws::is_upgrade(&req) {
            return Box::pin(async {
                let session = self.session(k).await?;
                Ok(s.ws.upgrade(req, session, &s.target).await)
            })
            .await;
        }
        self.forward(k, req).await
    }

    /// An absolute-form request (HTTP_PROXY) must name the upstream's host
    /// (or an alias) — and its port, if it names one that is not the
    /// scheme's default.
    fn check_absolute_form(
        &self,
        k: &Knobs,
        scheme: Option<&str>,
        authority: &http::uri::Authority,
    ) -> Result<(), ProxyError> {
        let s = &*self.shared;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = host == s.target.host || k.host_aliases.contains(&host);
        let port_ok = match authority.port_u16() {
            None => true,
            Some(p) => {
                p == s.target.port || (scheme == Some("http") && p == 80) || (scheme == Some("https") && p == 443)
            }
        };
        if host_ok && port_ok {
            Ok(())
        } else {
            Err(ProxyError::RefusedHost {
                host: authority.as_str().to_string(),
                upstream: s.origin.clone(),
            })
        }
    }

    /// A valid session, waiting up to `proxy.token_wait` for one.
    async fn session(&self, k: &Knobs) -> Result<Arc<Session>, ProxyError> {
        let s = &*self.shared;
        if let Some(session) = s.auth.valid() {
            return Ok(session);
        }
        if let Some(session) = s.auth.wait_valid(k.token_wait).await {
            return Ok(session);
        }
        let status = s.auth.status();
        let retry_after = status
            .next_attempt
            .map(|at| at.saturating_duration_since(Instant::now()).as_secs().clamp(1, 60))
            .unwrap_or(1);
        Err(ProxyError::NoToken {
            username: status.username,
            reason: status
                .last_error
                .unwrap_or_else(|| "the login is still in progress".into()),
            retry_after,
        })
    }

    async fn forward(&self, k: &Knobs, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
        let s = &*self.shared;
        let session = match s.auth.valid() {
            Some(session) => session,
            None => Box::pin(self.session(k)).await?,
        };
        let (mut parts, body) = req.into_parts();
        let body = if body.is_end_stream() {
            RequestBody::Kept(Bytes::new())
        } else {
            Box::pin(self.read_body(k, &parts.headers, body)).await?
        };
        match rewrite_request(&mut parts, &s.target, session.authorization(), &s.placeholders) {
            ClientAuth::Own => s.metrics.client_authorization_overwritten.inc(),
            ClientAuth::None | ClientAuth::Placeholder => {}
        }
        let (first, kept) = match body {
            RequestBody::Kept(bytes) => {
                let replay = Replay::new(&parts, &bytes);
                (Request::from_parts(parts, upstream::full(bytes)), Some(replay))
            }
            RequestBody::Stream(incoming) => (Request::from_parts(parts, Either::Right(incoming)), None),
        };
        // Boxed: built in place once, instead of being copied up through
        // every enclosing future of the request (memmove showed in profiles).
        let resp = Box::pin(self.send(first)).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            session.mark_proven();
            return Ok(finish(resp.map(Either::Left)));
        }

        Box::pin(self.after_401(k, session, resp, kept)).await
    }

    /// The API rejected the token it was just given: renew it, and replay the
    /// request if its body was kept.
    async fn after_401(
        &self,
        k: &Knobs,
        session: Arc<Session>,
        resp: Response<PooledBody>,
        kept: Option<Replay>,
    ) -> Result<Response<Body>, ProxyError> {
        let s = &*self.shared;
        s.metrics.upstream_unauthorized.inc();
        let Some(replay) = kept else {
            // The body is gone; renew the token for the next requests and
            // hand this 401 back as it is.
            let auth = s.auth.clone();
            let wait = k.token_wait;
            tokio::spawn(async move {
                auth.reauthenticate(&session, wait).await;
            });
            return Ok(finish(resp.map(Either::Left)));
        };
        let (resp_parts, resp_body) = resp.into_parts();
        let kept_401 = Limited::new(resp_body, MAX_KEPT_401_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let Some(fresh) = s.auth.reauthenticate(&session, k.token_wait).await else {
            return Ok(finish(Response::from_parts(
                resp_parts,
                Either::Right(Full::new(kept_401)),
            )));
        };
        let again = replay.request(fresh.authorization());
        s.metrics.replays.inc();
        debug!("replaying a request with a fresh token after a 401");
        let resp = self.send(again).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            s.metrics.upstream_unauthorized.inc();
        }
        Ok(finish(resp.map(Either::Left)))
    }

    /// Keeps a small body whole (so it can be replayed); streams the rest.
    /// (An empty body never gets here: `forward` keeps it without a wait.)
    async fn read_body(&self, k: &Knobs, headers: &HeaderMap, body: Incoming) -> Result<RequestBody, ProxyError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n <= k.replay_buffer as u64 => {
                let bytes = Limited::new(body, k.replay_buffer)
                    .collect()
                    .await
                    .map_err(|e| ProxyError::BadRequest(format!("reading the request body failed: {e}")))?
                    .to_bytes();
                Ok(RequestBody::Kept(bytes))
            }
            _ => Ok(RequestBody::Stream(body)),
        }
    }

    /// Sends one request upstream, bounded by `upstream.request_timeout` (up
    /// to the response headers; bodies then stream for as long as they take).
    async fn send(&self, req: Request<upstream::Body>) -> Result<Response<PooledBody>, ProxyError> {
        let s = &*self.shared;
        s.metrics.tokens_injected.inc();
        let started = Instant::now();
        let result = tokio::time::timeout_at(started + s.request_timeout, s.pool.request(req)).await;
        s.metrics.observe_upstream(started.elapsed());
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => Err(ProxyError::Unreachable {
                origin: s.origin.clone(),
                cause: error_chain(&e),
            }),
            Ok(Err(e)) => Err(ProxyError::BadGateway {
                origin: s.origin.clone(),
                cause: error_chain(&e),
            }),
            Err(_) => Err(ProxyError::Timeout {
                origin: s.origin.clone(),
                limit: s.request_timeout,
            }),
        }
    }

    /// Answers a program's own login, refresh or logout call.
    async fn intercept(&self, k: &Knobs, call: Call, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
        let s = &*self.shared;
        let (_, body) = req.into_parts();
        let body = Limited::new(body, 64 * 1024)
            .collect()
            .await
            .map_err(|e| ProxyError::BadRequest(format!("reading the request body failed: {e}")))?
            .to_bytes();
        match call {
            Call::Logout => {
                s.metrics.intercepted(AuthKind::Logout);
                // The real session stays: other programs use it too.
                return Ok(local(envelope::ok(serde_json::json!({ "loggedOut": true }))));
            }
            Call::Login => {
                if let Ok(Some(name)) = intercept::login_username(&body) {
                    if name != k.username {
                        return Err(ProxyError::Forbidden(format!(
                            "this sidecar holds the session of account {:?}, not {name:?}; point the program for {name:?} at its own sidecar",
                            k.username
                        )));
                    }
                }
            }
            Call::Refresh => {}
        }
        let session = self.session(k).await?;
        let expires_in = session.expires_in(Instant::now()).as_secs().max(1);
        s.metrics.intercepted(if call == Call::Login {
            AuthKind::Login
        } else {
            AuthKind::Refresh
        });
        let data = s.placeholders.grant(&k.username, unix_now(), expires_in);
        Ok(local(envelope::ok(data)))
    }
}

/// The API's response, made fit for the client: hop-by-hop headers removed.
fn finish(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests;
