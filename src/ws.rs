//! WebSocket relay: a program's socket to the API's, with the account's token.
//!
//! An upgrade request is answered only once the upstream socket is open (so
//! the program sees the API's refusal, not a socket that dies at once). The
//! upstream handshake carries the bearer header. Inside the socket, ETHGas
//! authenticates with a `{"cmd":"login","data":{"accessToken":…}}` command:
//! the relay rewrites the program's login to carry the real token, sends a
//! fresh login by itself whenever the sidecar's token changes, and answers a
//! server `token_expired` push the same way — the program never sees it, and
//! the replies to the sidecar's own logins are kept from it too.
//!
//! Every socket is a door for memory, so both sides have explicit limits: a
//! message or frame over `proxy.ws_max_message_bytes` is refused before it is
//! buffered, and its socket closed with 1009 ("message too big"); messages are
//! only looked into when [`detect`] says they may matter. Opening the
//! upstream socket (connect, TLS, the HTTP upgrade) is bounded by
//! `upstream.request_timeout`; the program gets a 504 when it runs out.

mod bounded;
mod detect;
mod limits;
mod login;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{debug, info, warn};

use crate::auth::{AuthHandle, Session, USER_AGENT_VALUE, error_chain};
use crate::config::{Live, UpstreamSettings};
use crate::envelope::Envelope;
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::upstream;
use crate::upstream::ClientBody;
use bounded::FrameBounded;
use detect::{ApiPush, LoginStyle};
use limits::{LARGE, MemoryBudget, close, refuse_oversized, renew, socket_config, spent, too_big};

/// Replies to the sidecar's own logins are withheld from the program for at
/// most this long (in case the API does not answer logins at all).
const OWN_LOGIN_REPLY_WINDOW: Duration = Duration::from_secs(10);

/// Whether a request is a WebSocket handshake (RFC 6455 4.1): a GET with
/// `Upgrade: websocket` and `upgrade` among the `Connection` options. An
/// `Upgrade` header alone asks for nothing; such a request is an ordinary
/// one (and its hop-by-hop `Upgrade` is not forwarded).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::GET
        && has_token(req.headers(), header::UPGRADE, "websocket")
        && has_token(req.headers(), header::CONNECTION, "upgrade")
}

/// Whether a comma-separated header (on any of its lines) lists `token`.
fn has_token(headers: &http::HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Opens upstream sockets and relays them.
#[derive(Clone)]
pub struct WsRelay {
    url: Uri,
    /// The pool's connector (its TCP settings and roots), offering only
    /// http/1.1 in ALPN.
    connector: upstream::Connector,
    /// Bound on opening the upstream socket, connect to upgrade.
    request_timeout: Duration,
    /// Read when a socket opens, for its message limit.
    live: Arc<ArcSwap<Live>>,
    /// Bounds the large messages in flight across every socket.
    budget: MemoryBudget,
    auth: AuthHandle,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl WsRelay {
    /// Relays to `upstream.websocket_url` through `connector`
    /// ([`upstream::ws_connector`]).
    /// Each socket takes its message limit from `live` when it opens. Relays
    /// are spawned on `tasks` and closed with a Going Away frame when
    /// `shutdown` is cancelled.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstream: &UpstreamSettings,
        memory_budget: usize,
        connector: upstream::Connector,
        live: Arc<ArcSwap<Live>>,
        auth: AuthHandle,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> WsRelay {
        WsRelay {
            url: upstream.websocket_url.clone(),
            connector,
            request_timeout: upstream.request_timeout,
            live,
            budget: MemoryBudget::new(memory_budget),
            auth,
            metrics,
            tasks,
            shutdown,
        }
    }

    /// The upstream URL for a request's path and query (kept as sent).
    /// `websocket_url`'s own path (`/ws` on the live hosts) is the endpoint:
    /// a program that connects to `/` and one that connects to that path
    /// (the live URL with only the host changed) both reach it; any other
    /// path goes below it, unless it already starts with it. The query is
    /// the program's, else `websocket_url`'s own.
    fn upstream_url(&self, req_uri: &Uri) -> String {
        let scheme = self.url.scheme_str().unwrap_or("ws");
        let authority = self.url.authority().map_or("localhost", |a| a.as_str());
        let own = self.url.path().trim_end_matches('/');
        let path = req_uri.path();
        let path = if own.is_empty() || path == own || path.starts_with(&format!("{own}/")) {
            path.to_string()
        } else if path.is_empty() || path == "/" {
            own.to_string()
        } else {
            format!("{own}{path}")
        };
        match req_uri.query().or(self.url.query()) {
            Some(query) => format!("{scheme}://{authority}{path}?{query}"),
            None => format!("{scheme}://{authority}{path}"),
        }
    }

    /// TCP, and TLS for `wss://`, by the pool's connector.
    async fn connect(&self, url: &str) -> Result<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad upstream URL {url}: {e}"))?;
        let scheme = if uri.scheme_str() == Some("wss") {
            "https"
        } else {
            "http"
        };
        let authority = uri.authority().map_or("localhost", |a| a.as_str());
        let dst: Uri = format!("{scheme}://{authority}/")
            .parse()
            .map_err(|e| format!("bad upstream URL {url}: {e}"))?;
        let stream = self
            .connector
            .clone()
            .call(dst)
            .await
            .map_err(|e| format!("connecting to {authority}: {}", error_chain(e.as_ref())))?;
        Ok(TokioIo::new(stream))
    }

    /// Opens the upstream socket and, if that works, answers 101 and starts
    /// relaying; otherwise answers with the reason in the API's envelope.
    pub async fn upgrade(
        &self,
        req: Request<impl ClientBody>,
        session: Arc<Session>,
        envelope: Envelope,
    ) -> Response<Full<Bytes>> {
        match self.open(req, session).await {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.local(e.reason());
                e.response(envelope)
            }
        }
    }

    async fn open(
        &self,
        mut req: Request<impl ClientBody>,
        session: Arc<Session>,
    ) -> Result<Response<Full<Bytes>>, ProxyError> {
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(ProxyError::BadRequest(
                "WebSocket upgrade without Sec-WebSocket-Key".into(),
            ));
        };
        if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
            return Err(ProxyError::WebSocketVersion);
        }
        let url = self.upstream_url(req.uri());
        let origin = || self.url.to_string();
        let mut up_req = url.as_str().into_client_request().map_err(|e| ProxyError::BadGateway {
            origin: origin(),
            cause: format!("bad upstream WebSocket URL {url}: {e}"),
        })?;
        {
            let h = up_req.headers_mut();
            h.insert(header::AUTHORIZATION, session.authorization().clone());
            h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            // Not `Origin`: a page's origin is none of the API's business.
            for name in [header::SEC_WEBSOCKET_PROTOCOL, header::COOKIE] {
                if let Some(v) = req.headers().get(&name) {
                    h.insert(name, v.clone());
                }
            }
        }
        let max_message = self.live.load().proxy.ws_max_message_bytes;
        let limit = self.request_timeout;
        let handshake = async {
            let io = self.connect(&url).await.map_err(|cause| ProxyError::Unreachable {
                origin: origin(),
                cause,
            })?;
            let io = FrameBounded::after_http_head(io);
            match tokio_tungstenite::client_async_with_config(up_req, io, Some(socket_config(max_message))).await {
                Ok(pair) => Ok(pair),
                Err(tungstenite::Error::Http(resp)) => {
                    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                    Err(ProxyError::WebSocketRefused { status })
                }
                Err(e) => Err(ProxyError::BadGateway {
                    origin: origin(),
                    cause: format!("WebSocket handshake failed: {e}"),
                }),
            }
        };
        let (upstream, up_resp) = tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| ProxyError::Timeout {
                origin: origin(),
                limit,
                setting: "upstream.request_timeout",
            })??;
        let on_upgrade = hyper::upgrade::on(&mut req);
        let mut resp = Response::new(Full::default());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = up_resp.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, p.clone());
        }
        let relay = self.clone();
        self.tasks.spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let config = socket_config(max_message);
                    let io = FrameBounded::frames(TokioIo::new(upgraded));
                    let client = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    relay.metrics.websocket_open.inc();
                    relay.relay(client, upstream, max_message).await;
                    relay.metrics.websocket_open.dec();
                }
                Err(e) => debug!(error = %e, "client WebSocket upgrade failed"),
            }
        });
        Ok(resp)
    }

    async fn send_login<S>(&self, upstream: &mut WebSocketStream<S>, session: &Session, style: LoginStyle) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let text = login::own(style, session.access_token().expose());
        self.metrics.websocket_logins.inc();
        upstream.send(Message::text(text)).await.is_ok()
    }

    /// A program's login with the account's token in place of every
    /// credential of its own; `None` (the message dropped) if it cannot be
    /// rewritten, so that what it carries never reaches the API.
    fn program_login(&self, text: &str, found: LoginStyle, session: &Session) -> Option<Message> {
        match login::rewrite(text, found, session.access_token().expose()) {
            Some(rewritten) => {
                self.metrics.websocket_logins.inc();
                Some(Message::text(rewritten))
            }
            None => {
                warn!("a program's WebSocket login could not be rewritten; dropped");
                None
            }
        }
    }

    /// Relays until either side closes. `max_message` is the limit both
    /// sockets were opened with, for the close reasons.
    async fn relay<C, U>(
        &self,
        mut client: WebSocketStream<FrameBounded<C>>,
        mut upstream: WebSocketStream<FrameBounded<U>>,
        max_message: usize,
    ) where
        C: AsyncRead + AsyncWrite + Unpin,
        U: AsyncRead + AsyncWrite + Unpin,
    {
        let mut changes = self.auth.subscribe();
        // The generation of the token this socket is logged in with, once the
        // program has logged in.
        let mut logged_in: Option<u64> = None;
        let mut own_logins: Vec<Instant> = Vec::new();
        // A program's login that came while no token was held, its format,
        // and until when it may wait for one.
        let mut held: Option<(tungstenite::Utf8Bytes, LoginStyle, Instant)> = None;
        // The format the sidecar's own logins use: the API's, until the
        // program shows which it speaks.
        let mut style = match self.live.load().auth.envelope() {
            Envelope::Documented => LoginStyle::Cmd,
            Envelope::Live => LoginStyle::Op,
        };
        // A large message went through: both sockets' buffers are renewed
        // once each has read up to a message's end.
        let (mut client_grown, mut upstream_grown) = (false, false);
        info!("WebSocket relay open");
        loop {
            if client_grown && client.get_ref().quiescent() {
                client = renew(client, Role::Server, max_message).await;
                client_grown = false;
            }
            if upstream_grown && upstream.get_ref().quiescent() {
                upstream = renew(upstream, Role::Client, max_message).await;
                upstream_grown = false;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    let frame = CloseFrame { code: CloseCode::Away, reason: "ethgas-sidecar is shutting down".into() };
                    close(&mut client, Some(frame.clone())).await;
                    close(&mut upstream, Some(frame)).await;
                    break;
                }
                // While a login waits for a token, nothing else of the
                // program's goes before it.
                msg = client.next(), if held.is_none() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(_charge) = self.budget.charge(text.len()) else {
                            spent(&mut client, &mut upstream, text.len()).await;
                            break;
                        };
                        (client_grown, upstream_grown) = (client_grown || text.len() > LARGE, upstream_grown || text.len() > LARGE);
                        let out = match detect::client_login(text.as_str()) {
                            Some(found) => match self.auth.valid() {
                                Some(session) => {
                                    logged_in = Some(session.generation);
                                    style = found;
                                    match self.program_login(text.as_str(), found, &session) {
                                        Some(out) => out,
                                        None => continue,
                                    }
                                }
                                None => {
                                    // Its own credential must not go in its place.
                                    debug!("WebSocket login while no valid token is held; holding it until one comes (proxy.token_wait)");
                                    held = Some((text, found, Instant::now() + self.live.load().proxy.token_wait));
                                    continue;
                                }
                            },
                            None => Message::Text(text),
                        };
                        if upstream.send(out).await.is_err() { break; }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        close(&mut upstream, frame).await;
                        break;
                    }
                    Some(Ok(msg @ Message::Binary(_))) => {
                        let Ok(_charge) = self.budget.charge(msg.len()) else {
                            spent(&mut client, &mut upstream, msg.len()).await;
                            break;
                        };
                        (client_grown, upstream_grown) = (client_grown || msg.len() > LARGE, upstream_grown || msg.len() > LARGE);
                        if upstream.send(msg).await.is_err() { break; }
                    }
                    // Pings are answered by each side's own socket.
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        warn!(error = %e, limit = max_message, "a program sent a WebSocket message over proxy.ws_max_message_bytes; closing its socket (1009)");
                        refuse_oversized(&mut client, too_big(format!("message over {max_message} bytes (proxy.ws_max_message_bytes)"))).await;
                        close(&mut upstream, None).await;
                        break;
                    }
                    Some(Err(e)) => { debug!(error = %e, "client WebSocket error"); close(&mut upstream, None).await; break; }
                    None => { close(&mut upstream, None).await; break; }
                },
                msg = upstream.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(_charge) = self.budget.charge(text.len()) else {
                            spent(&mut client, &mut upstream, text.len()).await;
                            break;
                        };
                        (client_grown, upstream_grown) = (client_grown || text.len() > LARGE, upstream_grown || text.len() > LARGE);
                        match detect::api_push(text.as_str()) {
                            Some(ApiPush::TokenExpired) => {
                                if let Some(session) = self.auth.valid() {
                                    debug!("the API pushed token_expired; logging the socket in again");
                                    if !self.send_login(&mut upstream, &session, style).await { break; }
                                    logged_in = Some(session.generation);
                                    own_logins.push(Instant::now());
                                    continue;
                                }
                            }
                            Some(ApiPush::LoginReply) => {
                                own_logins.retain(|t| t.elapsed() < OWN_LOGIN_REPLY_WINDOW);
                                if !own_logins.is_empty() {
                                    own_logins.remove(0);
                                    continue;
                                }
                            }
                            None => {}
                        }
                        if client.send(Message::Text(text)).await.is_err() { break; }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        close(&mut client, frame).await;
                        break;
                    }
                    Some(Ok(msg @ Message::Binary(_))) => {
                        let Ok(_charge) = self.budget.charge(msg.len()) else {
                            spent(&mut client, &mut upstream, msg.len()).await;
                            break;
                        };
                        (client_grown, upstream_grown) = (client_grown || msg.len() > LARGE, upstream_grown || msg.len() > LARGE);
                        if client.send(msg).await.is_err() { break; }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        warn!(error = %e, limit = max_message, "the API sent a WebSocket message over proxy.ws_max_message_bytes; closing the socket (1009)");
                        close(&mut upstream, Some(too_big(format!("message over {max_message} bytes")))).await;
                        close(&mut client, Some(too_big(format!("the API sent a message over {max_message} bytes (proxy.ws_max_message_bytes)")))).await;
                        break;
                    }
                    Some(Err(e)) => { debug!(error = %e, "upstream WebSocket error"); close(&mut client, None).await; break; }
                    None => { close(&mut client, None).await; break; }
                },
                _ = tokio::time::sleep_until(held.as_ref().map_or_else(Instant::now, |h| h.2)), if held.is_some() => {
                    warn!("a program's WebSocket login found no token within proxy.token_wait; closing its socket (1013)");
                    let frame = CloseFrame { code: CloseCode::Again, reason: "ethgas-sidecar: no token for the account within proxy.token_wait; reconnect later".into() };
                    close(&mut client, Some(frame)).await;
                    close(&mut upstream, None).await;
                    break;
                }
                changed = changes.changed() => {
                    if changed.is_err() { break; }
                    if let Some((text, found, _)) = held.take_if(|_| self.auth.valid().is_some()) {
                        let Some(session) = self.auth.valid() else { continue };
                        debug!("a token came; the program's WebSocket login goes with it");
                        logged_in = Some(session.generation);
                        style = found;
                        if let Some(out) = self.program_login(text.as_str(), found, &session) {
                            if upstream.send(out).await.is_err() { break; }
                        }
                        continue;
                    }
                    let Some(generation) = logged_in else { continue };
                    if let Some(session) = self.auth.valid().filter(|s| s.generation != generation) {
                        debug!("token renewed; logging the WebSocket in with it");
                        if !self.send_login(&mut upstream, &session, style).await { break; }
                        logged_in = Some(session.generation);
                        own_logins.push(Instant::now());
                    }
                }
            }
        }
        info!("WebSocket relay closed");
    }
}

#[cfg(test)]
mod tests;
