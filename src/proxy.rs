//! Forwarding: one request from a legacy program, rewritten for the API.
//!
//! For every request the proxy reads the current token from the cell (no
//! await), rewrites the request in place — upstream URI, `Host`, the client's
//! `Authorization` replaced, hop-by-hop headers dropped — and streams the
//! bodies both ways. Small request bodies are kept (within a budget shared by
//! all connections, [`kept`]) so that a request the API answers with 401 can
//! be replayed once with a fresh token. While no valid
//! token is held, public market data (`proxy.public_prefixes`, matched by
//! [`intercept::is_public`]) goes at once without `Authorization`; every
//! other request waits for the login.
//!
//! Before anything else, [`access::Gate::admit`] decides whether the request
//! may use the account at all (peer, one `Host`, head limits, browsers,
//! `Host`, absolute form); then the proxy refuses what it must not carry:
//! `CONNECT` and methods the API does not use. It answers the account calls (login, refresh, logout) itself
//! when interception is on, and hands WebSocket upgrades to [`crate::ws`].
//!
//! Errors the sidecar makes itself are [`ProxyError`]s, mapped to a status
//! and the API's envelope in [`crate::error`].
//!
//! [`Proxy::handle`] takes any request body ([`ClientBody`]): hyper's, from a
//! connection, or one built in memory, as the unit tests (`tests.rs`) do
//! against a stub API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::access;
use crate::audit::Sink;
use crate::auth::{AuthHandle, Session};
use crate::config::{Live, Restart, UpstreamSettings};
use crate::envelope::Envelope;
use crate::error::FORWARDED_METHODS;
pub use crate::error::ProxyError;
use crate::intercept::{self, Interceptor};
use crate::metrics::Metrics;
use crate::policy::{self, Class};
use crate::pool::Pool;
use crate::upstream::{self, ClientBody, Connector, Target};
use crate::ws::WsRelay;

mod audited;
mod body;
mod kept;
mod rewrite;
mod send;

pub use body::Body;

use kept::{ReplayBudget, RequestBody};
pub use rewrite::{ClientAuth, rewrite_request, strip_hop_by_hop};
use rewrite::{Replay, scrub_response_headers};

/// What every request shares, across the workers.
struct Shared {
    /// What a worker's own pool is built from ([`Proxy::for_worker`]).
    upstream: UpstreamSettings,
    connector: Connector,
    target: Target,
    origin: String,
    auth: AuthHandle,
    metrics: Arc<Metrics>,
    interceptor: Interceptor,
    /// The browser refusals already logged.
    refusals: access::Refusals,
    ws: WsRelay,
    request_timeout: Duration,
    /// Who may use the account.
    gate: access::Gate,
    /// Bounds the bodies kept for replay, across the workers.
    replay_budget: ReplayBudget,
    /// Where the records of calls that change the account go.
    audit: Arc<Sink>,
    /// What a reload changes; read once per request.
    live: Arc<ArcSwap<Live>>,
}

/// The forwarding service. Cheap to clone.
#[derive(Clone)]
pub struct Proxy {
    /// This worker's connections to the API.
    pool: Pool,
    shared: Arc<Shared>,
}

/// What the server knows about the request's connection.
#[derive(Debug, Clone)]
pub struct ConnContext {
    /// The listener it came in on: its index in the policy (0 is
    /// `proxy.listen`, then `[[listeners]]` in order).
    pub listener: usize,
    /// On a unix-socket listener, the peer's credentials (`SO_PEERCRED`).
    pub unix_peer: Option<Arc<crate::audit::Peer>>,
    /// The TCP peer; `None` on the unix-socket listener.
    pub peer: Option<SocketAddr>,
    /// The TCP connection's local address (the one the client dialled).
    pub local: Option<SocketAddr>,
}

/// Decrements the in-flight gauge however the handler ends.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

fn local(resp: Response<Full<Bytes>>) -> Response<Body> {
    resp.map(body::local)
}

impl Proxy {
    /// The proxy of `restart`'s upstream and limits, with a pool of its own
    /// dialling through `connector`.
    pub fn new(
        restart: &Restart,
        connector: Connector,
        live: Arc<ArcSwap<Live>>,
        auth: AuthHandle,
        metrics: Arc<Metrics>,
        ws: WsRelay,
        audit: Arc<Sink>,
    ) -> Proxy {
        let upstream = &restart.upstream;
        let target = Target::new(upstream);
        Proxy {
            pool: Pool::new(upstream, connector.clone()),
            shared: Arc::new(Shared {
                upstream: upstream.clone(),
                connector,
                origin: target.origin(),
                gate: access::Gate::new(&restart.proxy, &target),
                target,
                auth,
                metrics,
                interceptor: Interceptor::new(),
                refusals: access::Refusals::default(),
                ws,
                request_timeout: upstream.request_timeout,
                replay_budget: ReplayBudget::new(restart.proxy.replay_budget_bytes),
                audit,
                live,
            }),
        }
    }

    /// The same proxy with a connection pool of its own, for a worker
    /// thread: each worker keeps its upstream connections on its own
    /// runtime, one of them warm (`upstream.keep_warm`), so this must run
    /// on that runtime. Everything else (and every reload) is shared.
    pub fn for_worker(&self) -> Proxy {
        let pool = Pool::new(&self.shared.upstream, self.shared.connector.clone());
        pool.keep_warm();
        Proxy {
            pool,
            shared: self.shared.clone(),
        }
    }

    /// The envelope of the sidecar's own answers, from the auth method.
    fn envelope(&self) -> Envelope {
        self.shared.live.load().auth.envelope()
    }

    /// Handles one request; never fails (errors become envelopes).
    pub async fn handle<B: ClientBody>(&self, req: Request<B>, ctx: ConnContext) -> Response<Body> {
        let shared = &*self.shared;
        shared.metrics.in_flight.inc();
        let _in_flight = InFlight(&shared.metrics);
        let method = req.method().clone();
        // Only the debug line needs these; the clock is not free in a VM.
        let debug_line =
            tracing::enabled!(tracing::Level::DEBUG).then(|| (Instant::now(), req.uri().path().to_string()));
        let mut resp = match self.route(req, &ctx).await {
            Ok(resp) => resp,
            Err(e) => {
                shared.metrics.local(e.reason());
                debug!(error = %e, "answered by the sidecar");
                local(e.response(self.envelope()))
            }
        };
        // No page this listener hands out may act as its origin.
        access::sandbox(resp.headers_mut());
        shared.metrics.request(&method, resp.status().as_u16());
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

    /// hyper's read buffer and largest request head for this proxy's
    /// connections ([`access::Gate::head_buffer`]).
    pub fn head_buffer(&self) -> usize {
        self.shared.gate.head_buffer()
    }

    /// Counts an answer the server gave for the proxy by itself.
    pub fn count_local(&self, e: &ProxyError) {
        self.shared.metrics.local(e.reason());
    }

    async fn route<B: ClientBody>(&self, req: Request<B>, ctx: &ConnContext) -> Result<Response<Body>, ProxyError> {
        let shared = &*self.shared;
        let live = shared.live.load_full();
        let arrival = access::Arrival {
            peer: ctx.peer,
            local: ctx.local,
        };
        if let Err(refusal) = shared.gate.admit(&live.proxy, &req, arrival) {
            shared.refusals.log(&refusal);
            return Err(refusal.error());
        }
        if req.method() == Method::CONNECT {
            let target = access::quote(req.uri().to_string().as_bytes());
            if shared.refusals.first_time(format!("connect {target}")) {
                warn!(
                    target = %target,
                    "refused CONNECT {target:?} with 405 (a program with HTTPS_PROXY and an https:// API URL): \
                     a TLS tunnel cannot carry the account's token; point the program's base URL at this \
                     sidecar (http://127.0.0.1:PORT), or give it an http:// API URL with HTTP_PROXY (logged once per target)"
                );
            }
            return Err(ProxyError::Connect);
        }
        if !rewrite::forwarded_method(req.method()) {
            return Err(ProxyError::MethodNotAllowed {
                message: format!(
                    "{:.32} is not a method the API uses; this sidecar forwards only {FORWARDED_METHODS}",
                    req.method().as_str()
                ),
                allow: FORWARDED_METHODS,
            });
        }
        if let Some(call) = intercept::recognise(&live, req.uri().path()) {
            // Rare paths are boxed: the future of every request (which
            // each client connection keeps allocated) stays small.
            return Box::pin(async {
                if !live.proxy.intercept_login {
                    // The program logs in by itself: its call goes as it
                    // is, never with the account's token.
                    return self.forward_as_sent(req).await;
                }
                if req.method() != Method::POST {
                    return Err(ProxyError::MethodNotAllowed {
                        message: format!(
                            "{} is the account's {call:?} endpoint, which this sidecar answers itself, and only to POST",
                            req.uri().path()
                        ),
                        allow: "POST",
                    });
                }
                let resp = shared
                    .interceptor
                    .answer(call, req, &live, &shared.auth, &shared.metrics)
                    .await?;
                Ok(local(resp))
            })
            .await;
        }
        let upgrade = crate::ws::is_upgrade(&req);
        // The relay only reads; anything else by what the table says.
        let class = if upgrade {
            Class::Read
        } else {
            policy::classify(req.method(), req.uri().path())
        };
        let audited = self.decide(&live, ctx, &req, class)?;
        if upgrade {
            return Box::pin(async {
                let session = self.session(&live).await?;
                Ok(local(shared.ws.upgrade(req, session, live.auth.envelope()).await))
            })
            .await;
        }
        let result = self.forward(&live, req).await;
        match audited {
            None => result,
            Some(call) => call.finish(result),
        }
    }

    /// A valid session, waiting up to `proxy.token_wait` for one.
    async fn session(&self, live: &Live) -> Result<Arc<Session>, ProxyError> {
        let shared = &*self.shared;
        if let Some(session) = shared.auth.valid() {
            return Ok(session);
        }
        match shared.auth.wait_valid(live.proxy.token_wait).await {
            Some(session) => Ok(session),
            None => Err(ProxyError::no_token(&shared.auth.status())),
        }
    }

    async fn forward<B: ClientBody>(&self, live: &Live, req: Request<B>) -> Result<Response<Body>, ProxyError> {
        let shared = &*self.shared;
        let session = match shared.auth.valid() {
            Some(session) => Some(session),
            // Public market data needs no token: it goes at once, without one.
            None if intercept::is_public(&live.proxy.public_prefixes, req.uri().path()) => None,
            None => Some(Box::pin(self.session(live)).await?),
        };
        let (mut parts, body) = req.into_parts();
        let body = if body.is_end_stream() {
            RequestBody::Kept(Bytes::new(), None)
        } else {
            let (limit, idle) = (live.proxy.replay_buffer, live.proxy.body_idle_timeout);
            Box::pin(kept::read(&shared.replay_budget, limit, idle, &parts.headers, body)).await?
        };
        match rewrite_request(
            &mut parts,
            &shared.target,
            session.as_ref().map(|s| s.authorization()),
            shared.interceptor.placeholders(),
        ) {
            ClientAuth::Own => shared.metrics.client_authorization_overwritten.inc(),
            ClientAuth::None | ClientAuth::Placeholder => {}
        }
        match &session {
            Some(_) => shared.metrics.tokens_injected.inc(),
            None => shared.metrics.public_without_token.inc(),
        }
        let mut slow = None;
        // The kept body's share of the replay budget, given back when the
        // request is done (replayed or not).
        let mut _budget = None;
        let (first, kept) = match body {
            RequestBody::Kept(bytes, permit) => {
                _budget = permit;
                // In memory of its own already (`kept::read`): the first
                // request and the replay share it.
                let replay = Replay::new(&parts, &bytes);
                (Request::from_parts(parts, upstream::full(bytes)), Some(replay))
            }
            RequestBody::Stream(incoming, idle) => {
                let (body, fault) = upstream::Idle::new(incoming, idle);
                slow = Some((fault, idle));
                (Request::from_parts(parts, Either::Right(body)), None)
            }
        };
        // Boxed: built in place once, instead of being copied up through
        // every enclosing future of the request (memmove showed in profiles).
        let resend = kept.as_ref().map(|r| (r, session.as_ref().map(|s| s.authorization())));
        let resp = match Box::pin(self.send(first, resend)).await {
            Ok(resp) => resp,
            Err(e) => return Err(send::blame(slow.as_ref(), e)),
        };
        let Some(session) = session else {
            // No token went with it: the API's answer, 401 included, is all there is.
            return Ok(self.finish(resp.map(body::streamed), None));
        };
        if resp.status() != StatusCode::UNAUTHORIZED {
            session.mark_proven();
            return Ok(self.finish(resp.map(body::streamed), Some(&session)));
        }

        Box::pin(self.after_401(live.proxy.token_wait, session, resp, kept)).await
    }

    /// Forwards a request with the client's own headers and no token of
    /// the sidecar's (an account call while interception is off).
    async fn forward_as_sent<B: ClientBody>(&self, req: Request<B>) -> Result<Response<Body>, ProxyError> {
        let shared = &*self.shared;
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::ORIGIN);
        parts.uri = shared.target.uri(parts.uri.path_and_query().cloned());
        parts.version = http::Version::HTTP_11;
        let started = Instant::now();
        let idle = shared.live.load().proxy.body_idle_timeout;
        let (body, fault) = upstream::Idle::new(body, idle);
        let result = tokio::time::timeout_at(
            started + shared.request_timeout,
            self.pool.request(Request::from_parts(parts, Either::Right(body))),
        )
        .await;
        match result {
            Ok(Ok(resp)) => Ok(self.finish(resp.map(body::streamed), None)),
            Ok(Err(e)) => Err(send::blame(Some(&(fault, idle)), self.upstream_error(&e))),
            Err(_) => Err(self.timeout()),
        }
    }

    /// The API's response, made fit for the client: hop-by-hop headers
    /// removed, and no header that carries the account's token (an API that
    /// reflects `Authorization`, or sets the live refresh cookie).
    fn finish(&self, resp: Response<Body>, session: Option<&Session>) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        // RFC 9112 §6.3: a Transfer-Encoding overrides a Content-Length, and
        // hyper read the body by its chunks; the stated length must not go on
        // to cut the body the client gets.
        if parts.headers.contains_key(header::TRANSFER_ENCODING) {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        strip_hop_by_hop(&mut parts.headers);
        let token = session.map(|s| s.access_token().expose().as_bytes());
        let removed = scrub_response_headers(&mut parts.headers, token);
        if removed > 0 {
            self.shared.metrics.response_headers_redacted.inc_by(removed as u64);
            warn!(
                headers = removed,
                "the API's response carried the account's token in a header; removed before it reached the client"
            );
        }
        Response::from_parts(parts, body)
    }
}

#[cfg(test)]
mod tests;
