//! The way to the API: one small connection pool per proxy worker (and one
//! for the auth task), over hyper's connection API.
//!
//! hyper-util's general-purpose pool keys its connections by origin in a
//! hash map, builds a connect future for every request in case no idle
//! connection turns up, and spawns a task per response to hand the
//! connection back. A worker here only ever talks to
//! one origin from one thread, so its pool is a stack: the most recently used
//! HTTP/1 connection is taken first (it is the one least likely to have been
//! closed by the server, and the others can age out), and it goes back on the
//! stack the moment the client has read the response's last byte. An HTTP/2
//! API (chosen by ALPN) gets one multiplexed connection per worker instead;
//! until ALPN has answered, a burst of requests waits for the first
//! connection rather than opening a TLS connection each.
//!
//! A connection that turns out to be closed before the request was written
//! (the API dropped an idle keep-alive connection) is discarded and the
//! request goes out on another one: nothing was sent, so any method is safe
//! to retry. Once bytes have left, an error is the caller's to report. A
//! request opens at most [`MAX_CONNECTS`] new connections, with a short
//! pause before each further one, so an API that accepts connections and
//! closes them at once is not dialled in a loop until the timeout.
//!
//! Why not `hyper_util::client::legacy::Client` (issue 21, measured back to
//! back, `UPSTREAM=both CONNS="16 64 256" ROUNDS=2 DURATION=5s COST=0
//! bench/run.sh`, 2 vCPUs; req/s, p50 ms, CPU µs/req, legacy → this pool):
//! HTTPS 16: 45,608 0.318 20.4 → 47,546 0.301 19.0; 64: 57,434 1.022 16.6 →
//! 58,580 0.984 16.1; 256: 55,409 4.527 18.2 → 64,727 3.620 15.3. Plain 16:
//! 44,019 0.343 22.2 → 51,528 0.282 18.2; 64: 52,220 1.147 20.2 → 54,832
//! 1.105 18.7; 256: 51,667 4.617 21.0 → 55,408 4.354 19.0. More than 5 %
//! behind at HTTPS 256 and plain 16 and 256, and it would lose the warm
//! connection, the resend after a GOAWAY (502 instead), one TLS connection
//! per burst while ALPN is unknown (21 for 40 requests) and the retry on a
//! fresh connection closed before the request was written.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Parts, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tower_service::Service;
use tracing::debug;

use crate::config::UpstreamSettings;
use crate::upstream::{Body, Connector, Target};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bytes read from an upstream HTTP/1 connection at a time. hyper's default
/// (8 KiB, growing) costs each pooled connection 8–16 KiB while API answers
/// are mostly small JSON; larger bodies are simply read in more steps.
const UPSTREAM_READ_BUF: usize = 4096;

/// New connections one request may open when each one closes before the
/// request could be written; then the request fails as a connect error.
/// Stale idle connections taken from the pool do not count (there are at
/// most `pool_max_idle_per_host` of them).
pub const MAX_CONNECTS: u32 = 3;

/// The pause before a request's second new connection; doubled before the
/// third. Long enough not to hammer an API that drops connections, short
/// against any request timeout.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// HTTP/2 keep-alive pings, busy or idle.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Why a request got no response from the API.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be made (DNS, TCP, TLS or the HTTP/2 handshake).
    #[error(transparent)]
    Connect(BoxError),
    /// The connection failed while the request or response was in flight.
    #[error(transparent)]
    Request(#[from] hyper::Error),
}

impl PoolError {
    pub fn is_connect(&self) -> bool {
        matches!(self, PoolError::Connect(_))
    }

    /// Whether the API refused the request before processing any of it: an
    /// HTTP/2 stream above the last one a graceful GOAWAY lets finish (an API
    /// that retires a connection after so many requests, or goes down for a
    /// deploy), or one reset with REFUSED_STREAM. Such a request can be sent
    /// again whatever its method (RFC 9113, 8.7).
    pub fn is_unprocessed(&self) -> bool {
        let PoolError::Request(e) = self else { return false };
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            if let Some(e) = cause.downcast_ref::<h2::Error>() {
                return e.is_remote()
                    && ((e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR))
                        || (e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM)));
            }
            source = cause.source();
        }
        false
    }
}

/// A worker's connections to the API. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Connections>,
}

/// What a pool's handles share: how to dial, and the idle connections.
struct Connections {
    connector: Connector,
    /// `scheme://authority/`, what the connector dials.
    origin: Uri,
    /// The `Host` header of HTTP/1 requests.
    host: HeaderValue,
    /// Idle HTTP/1 connections, most recently used last.
    idle: Mutex<Vec<Idle>>,
    /// The HTTP/2 connection, once ALPN chose HTTP/2, with its number.
    h2: Mutex<Option<(u64, http2::SendRequest<Body>)>>,
    /// Numbers HTTP/2 connections, so that a failed one is forgotten
    /// without forgetting one that replaced it meanwhile.
    h2_serial: AtomicU64,
    idle_timeout: Duration,
    max_idle: usize,
    /// Whether the task that drops expired idle connections runs.
    sweeping: AtomicBool,
    /// Whether the API can answer ALPN with HTTP/2 (https://) and has not
    /// yet been seen to choose HTTP/1.1.
    may_be_h2: AtomicBool,
    /// Held while connecting as long as `may_be_h2`: a burst of requests
    /// before the first connection is up waits for it and shares it if it
    /// is HTTP/2, instead of opening one TLS connection each.
    connecting: tokio::sync::Mutex<()>,
    /// Told whenever one of this pool's connections ends, so the warm
    /// connection ([`warm`]) is replaced at once.
    ended: Arc<tokio::sync::Notify>,
    /// `upstream.keep_warm`.
    warm: bool,
}

struct Idle {
    tx: http1::SendRequest<Body>,
    since: Instant,
}

/// Where a request goes.
enum Conn {
    H1(http1::SendRequest<Body>),
    H2(u64, http2::SendRequest<Body>),
}

impl Pool {
    /// An empty pool for the API of `settings`, dialling through `connector`.
    pub fn new(settings: &UpstreamSettings, connector: Connector) -> Pool {
        let target = Target::new(settings);
        let origin = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_else(|_| Uri::from_static("http://localhost/"));
        let host =
            HeaderValue::from_str(target.authority.as_str()).unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Pool {
            inner: Arc::new(Connections {
                connector,
                origin,
                host,
                idle: Mutex::new(Vec::new()),
                h2: Mutex::new(None),
                h2_serial: AtomicU64::new(0),
                idle_timeout: settings.pool_idle_timeout,
                max_idle: settings.pool_max_idle_per_host,
                sweeping: AtomicBool::new(false),
                may_be_h2: AtomicBool::new(settings.http2 && target.scheme == http::uri::Scheme::HTTPS),
                connecting: tokio::sync::Mutex::new(()),
                ended: Arc::new(tokio::sync::Notify::new()),
                warm: settings.keep_warm,
            }),
        }
    }

    /// Sends `req` (with an absolute URI for the API) and returns the
    /// response head; its body hands the connection back when it ends.
    pub async fn request(&self, mut req: Request<Body>) -> Result<Response<PooledBody>, PoolError> {
        let mut connects = 0;
        loop {
            let conn = match self.inner.checkout() {
                Some(conn) => conn,
                None => {
                    if connects >= MAX_CONNECTS {
                        return Err(PoolError::Connect(
                            format!("the API closed {connects} new connections before the request could be sent")
                                .into(),
                        ));
                    }
                    if connects > 0 {
                        tokio::time::sleep(RECONNECT_PAUSE * (1 << (connects - 1))).await;
                    }
                    connects += 1;
                    // Boxed: the connect and handshake futures are large and rare.
                    Box::pin(self.connect_or_join()).await?
                }
            };
            match conn {
                Conn::H2(serial, mut tx) => {
                    if poll_fn(|cx| tx.poll_ready(cx)).await.is_err() {
                        self.inner.forget_h2(serial);
                        continue;
                    }
                    return match tx.try_send_request(req).await {
                        Ok(resp) => Ok(resp.map(|body| PooledBody { body, returning: None })),
                        Err(mut e) => match e.take_message() {
                            Some(unsent) => {
                                self.inner.forget_h2(serial);
                                req = unsent;
                                continue;
                            }
                            None => {
                                let e = PoolError::Request(e.into_error());
                                if e.is_unprocessed() {
                                    // The API is retiring this connection:
                                    // the next request opens a new one.
                                    self.inner.forget_h2(serial);
                                }
                                Err(e)
                            }
                        },
                    };
                }
                Conn::H1(mut tx) => {
                    if poll_fn(|cx| tx.poll_ready(cx)).await.is_err() {
                        // Closed while idle: try the next one.
                        continue;
                    }
                    origin_form(&mut req, &self.inner.host);
                    return match tx.try_send_request(req).await {
                        Ok(resp) => {
                            let back = Returning {
                                tx,
                                pool: Arc::downgrade(&self.inner),
                            };
                            let mut resp = resp.map(|body| PooledBody {
                                body,
                                returning: Some(back),
                            });
                            if resp.body().body.is_end_stream() {
                                // No body (HEAD, 204, 304, Content-Length: 0).
                                resp.body_mut().give_back();
                            }
                            Ok(resp)
                        }
                        Err(mut e) => match e.take_message() {
                            Some(unsent) => {
                                req = unsent;
                                continue;
                            }
                            None => Err(PoolError::Request(e.into_error())),
                        },
                    };
                }
            }
        }
    }

    /// A new connection, or, while the API may turn out to speak HTTP/2,
    /// the one another request has just made.
    async fn connect_or_join(&self) -> Result<Conn, PoolError> {
        let inner = &*self.inner;
        // Held across the connect only while HTTP/2 is still possible.
        let _one_at_a_time = if inner.may_be_h2.load(Ordering::Relaxed) {
            let guard = inner.connecting.lock().await;
            if let Some(conn) = inner.checkout() {
                return Ok(conn);
            }
            inner.may_be_h2.load(Ordering::Relaxed).then_some(guard)
        } else {
            None
        };
        self.connect().await
    }

    async fn connect(&self) -> Result<Conn, PoolError> {
        let inner = &*self.inner;
        let mut connector = inner.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::Connect)?;
        let io = connector.call(inner.origin.clone()).await.map_err(PoolError::Connect)?;
        if io.connected().is_negotiated_h2() {
            // With `keep_warm`, pings while idle too: they keep the
            // connection (and any NAT or balancer state on the way) alive and
            // find a dead one before a request does.
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(H2_PING_INTERVAL)
                .keep_alive_while_idle(inner.warm)
                .handshake(io)
                .await
                .map_err(|e| PoolError::Connect(Box::new(e)))?;
            drive(conn, "HTTP/2", inner.ended.clone());
            let serial = inner.h2_serial.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut slot) = inner.h2.lock() {
                *slot = Some((serial, tx.clone()));
            }
            return Ok(Conn::H2(serial, tx));
        }
        inner.may_be_h2.store(false, Ordering::Relaxed);
        let (tx, conn) = http1::Builder::new()
            // Queued, not flattened: a flattened request body is copied into
            // the connection's write buffer, which then keeps its size for
            // as long as the connection lives (64 KiB per pooled connection
            // after one 64 KiB POST, issue 18 item 5).
            .writev(true)
            .read_buf_exact_size(Some(UPSTREAM_READ_BUF))
            .handshake(io)
            .await
            .map_err(|e| PoolError::Connect(Box::new(e)))?;
        drive(conn, "HTTP/1", inner.ended.clone());
        self.start_sweeper();
        Ok(Conn::H1(tx))
    }

    /// Drops idle connections older than `pool_idle_timeout`, so that a
    /// burst's connections do not stay open once traffic is back to normal.
    fn start_sweeper(&self) {
        if self.inner.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let every = (self.inner.idle_timeout / 2).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let now = Instant::now();
                if let Ok(mut idle) = inner.idle.lock() {
                    let before = idle.len();
                    idle.retain(|c| now.duration_since(c.since) < inner.idle_timeout && !c.tx.is_closed());
                    if idle.len() < before {
                        crate::memory::pool_shrank();
                    }
                }
            }
        });
    }

    /// How many idle HTTP/1 connections the pool keeps.
    #[cfg(test)]
    pub fn idle_connections(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Connections {
    fn checkout(&self) -> Option<Conn> {
        if let Ok(slot) = self.h2.lock() {
            if let Some((serial, tx)) = slot.as_ref().filter(|(_, tx)| !tx.is_closed()) {
                return Some(Conn::H2(*serial, tx.clone()));
            }
        }
        let mut idle = self.idle.lock().ok()?;
        while let Some(c) = idle.pop() {
            if c.since.elapsed() >= self.idle_timeout {
                // The rest are older still.
                idle.clear();
                return None;
            }
            if !c.tx.is_closed() {
                return Some(Conn::H1(c.tx));
            }
        }
        None
    }

    fn checkin(&self, tx: http1::SendRequest<Body>) {
        if tx.is_closed() || self.max_idle == 0 {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() >= self.max_idle {
                idle.remove(0);
            }
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// Stops handing out HTTP/2 connection `serial`: it failed a request.
    fn forget_h2(&self, serial: u64) {
        if let Ok(mut slot) = self.h2.lock() {
            if slot.as_ref().is_some_and(|(current, _)| *current == serial) {
                *slot = None;
            }
        }
    }
}

/// Runs a connection's I/O as a task of its own until the connection ends,
/// then tells the pool.
fn drive(
    conn: impl Future<Output = hyper::Result<()>> + Send + 'static,
    protocol: &'static str,
    ended: Arc<tokio::sync::Notify>,
) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            debug!(error = %e, "{protocol} connection to the API ended");
        }
        ended.notify_one();
    });
}

/// Turns an absolute URI into the origin form an HTTP/1 request line carries,
/// with the authority moved to `Host`.
fn origin_form(req: &mut Request<Body>, host: &HeaderValue) {
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut parts = Parts::default();
    parts.path_and_query = Some(pq);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req.headers_mut().insert(header::HOST, host.clone());
}

/// An HTTP/1 connection on its way back to the pool, once its response
/// has been read to the end.
struct Returning {
    tx: http1::SendRequest<Body>,
    pool: Weak<Connections>,
}

/// A response body from the API. When it has been read to the end, its
/// HTTP/1 connection goes back to the pool; dropped early, the connection
/// is closed (hyper cannot reuse a connection with unread bytes).
pub struct PooledBody {
    body: Incoming,
    returning: Option<Returning>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(back) = self.returning.take() {
            if let Some(pool) = back.pool.upgrade() {
                pool.checkin(back.tx);
            }
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.returning = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

mod warm;

#[cfg(test)]
mod tests;
