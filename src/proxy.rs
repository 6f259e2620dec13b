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
//! Errors the sidecar makes itself are [`ProxyError`]s, mapped to a status
//! and the API's envelope in [`crate::error`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
use crate::config::{Live, Restart};
use crate::envelope::Envelope;
pub use crate::error::ProxyError;
use crate::intercept::{self, Interceptor, Placeholders};
use crate::metrics::Metrics;
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

/// What every request of one worker shares.
struct Shared {
    pool: Pool,
    target: Target,
    origin: String,
    auth: AuthHandle,
    metrics: Arc<Metrics>,
    interceptor: Arc<Interceptor>,
    ws: WsRelay,
    request_timeout: Duration,
    max_header_bytes: usize,
    max_uri_bytes: usize,
    /// What a reload changes; read once per request.
    live: Arc<ArcSwap<Live>>,
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

impl Proxy {
    pub fn new(
        restart: &Restart,
        live: Arc<ArcSwap<Live>>,
        pool: Pool,
        auth: AuthHandle,
        metrics: Arc<Metrics>,
        ws: WsRelay,
    ) -> Proxy {
        let target = Target::new(&restart.upstream);
        Proxy {
            shared: Arc::new(Shared {
                origin: target.origin(),
                target,
                pool,
                auth,
                metrics,
                interceptor: Arc::new(Interceptor::new()),
                ws,
                request_timeout: restart.upstream.request_timeout,
                max_header_bytes: restart.proxy.max_header_bytes,
                max_uri_bytes: restart.proxy.max_uri_bytes,
                live,
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
                interceptor: s.interceptor.clone(),
                ws: s.ws.clone(),
                request_timeout: s.request_timeout,
                max_header_bytes: s.max_header_bytes,
                max_uri_bytes: s.max_uri_bytes,
                live: s.live.clone(),
            }),
        }
    }

    /// The envelope of the sidecar's own answers, from the auth method.
    fn envelope(&self) -> Envelope {
        self.shared.live.load().auth.envelope()
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
                local(e.response(self.envelope()))
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
        local(e.response(self.envelope()))
    }

    async fn route(&self, req: Request<Incoming>, ctx: ConnContext) -> Result<Response<Body>, ProxyError> {
        let s = &*self.shared;
        let live = s.live.load_full();
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
        if uri_len > s.max_uri_bytes {
            return Err(ProxyError::UriTooLong { limit: s.max_uri_bytes });
        }
        let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > s.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: s.max_header_bytes,
            });
        }
        if let Some(authority) = req.uri().authority() {
            self.check_absolute_form(&live, req.uri().scheme_str(), authority)?;
        }
        if let Some(call) = intercept::recognise(&live, req.method(), req.uri().path()) {
            // Rare paths are boxed: the future of every request (which
            // each client connection keeps allocated) stays small.
            return Box::pin(async {
                let resp = s.interceptor.answer(call, req, &live, &s.auth, &s.metrics).await?;
                Ok(local(resp))
            })
            .await;
        }
        if crate::ws::is_upgrade(&req) {
            return Box::pin(async {
                let session = self.session(&live).await?;
                Ok(local(s.ws.upgrade(req, session, live.auth.envelope()).await))
            })
            .await;
        }
        self.forward(&live, req).await
    }

    /// An absolute-form request (HTTP_PROXY) must name the upstream's host
    /// (or an alias) — and its port, if it names one that is not the
    /// scheme's default.
    fn check_absolute_form(
        &self,
        live: &Live,
        scheme: Option<&str>,
        authority: &http::uri::Authority,
    ) -> Result<(), ProxyError> {
        let s = &*self.shared;
        let host = crate::config::normalize_host(authority.host());
        let host_ok = host == s.target.host || live.proxy.host_aliases.contains(&host);
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
    async fn session(&self, live: &Live) -> Result<Arc<Session>, ProxyError> {
        let s = &*self.shared;
        if let Some(session) = s.auth.valid() {
            return Ok(session);
        }
        match s.auth.wait_valid(live.proxy.token_wait).await {
            Some(session) => Ok(session),
            None => Err(ProxyError::no_token(&s.auth.status())),
        }
    }

    async fn forward(&self, live: &Live, req: Request<Incoming>) -> Result<Response<Body>, ProxyError> {
        let s = &*self.shared;
        let session = match s.auth.valid() {
            Some(session) => session,
            None => Box::pin(self.session(live)).await?,
        };
        let (mut parts, body) = req.into_parts();
        let body = if body.is_end_stream() {
            RequestBody::Kept(Bytes::new())
        } else {
            Box::pin(self.read_body(live.proxy.replay_buffer, &parts.headers, body)).await?
        };
        match rewrite_request(
            &mut parts,
            &s.target,
            session.authorization(),
            s.interceptor.placeholders(),
        ) {
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

        Box::pin(self.after_401(live.proxy.token_wait, session, resp, kept)).await
    }

    /// The API rejected the token it was just given: renew it, and replay the
    /// request if its body was kept.
    async fn after_401(
        &self,
        token_wait: Duration,
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
            tokio::spawn(async move {
                auth.reauthenticate(&session, token_wait).await;
            });
            return Ok(finish(resp.map(Either::Left)));
        };
        let (resp_parts, resp_body) = resp.into_parts();
        let kept_401 = Limited::new(resp_body, MAX_KEPT_401_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let Some(fresh) = s.auth.reauthenticate(&session, token_wait).await else {
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
    async fn read_body(&self, limit: usize, headers: &HeaderMap, body: Incoming) -> Result<RequestBody, ProxyError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n <= limit as u64 => {
                let bytes = Limited::new(body, limit)
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
                setting: "upstream.request_timeout",
            }),
        }
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
