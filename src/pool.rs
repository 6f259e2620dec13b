//! The proxy's way to the API: one small connection pool per worker, over
//! hyper's connection API.
//!
//! hyper-util's general-purpose pool (still used by the auth task) keys its
//! connections by origin in a hash map, builds a connect future for every
//! request in case no idle connection turns up, and spawns a task per
//! response to hand the connection back. A worker here only ever talks to
//! one origin from one thread, so its pool is a stack: the most recently used
//! HTTP/1 connection is taken first (it is the one least likely to have been
//! closed by the server, and the others can age out), and it goes back on the
//! stack the moment the client has read the response's last byte. An HTTP/2
//! API (chosen by ALPN) gets one multiplexed connection per worker instead.
//!
//! A connection that turns out to be closed before the request was written
//! (the API dropped an idle keep-alive connection) is discarded and the
//! request goes out on another one: nothing was sent, so any method is safe
//! to retry. Once bytes have left, an error is the caller's to report.

use std::future::poll_fn;
use std::pin::Pin;
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
}

/// A worker's connections to the API. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    /// `scheme://authority/`, what the connector dials.
    origin: Uri,
    /// The `Host` header of HTTP/1 requests.
    host: HeaderValue,
    /// Idle HTTP/1 connections, most recently used last.
    idle: Mutex<Vec<Idle>>,
    /// The HTTP/2 connection, once ALPN chose HTTP/2.
    h2: Mutex<Option<http2::SendRequest<Body>>>,
    idle_timeout: Duration,
    max_idle: usize,
    /// Whether the task that drops expired idle connections runs.
    sweeping: std::sync::atomic::AtomicBool,
}

struct Idle {
    tx: http1::SendRequest<Body>,
    since: Instant,
}

/// Where a request goes.
enum Conn {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

impl Pool {
    pub fn new(settings: &UpstreamSettings, connector: Connector, target: &Target) -> Pool {
        let origin = Uri::builder()
            .scheme(target.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_else(|_| Uri::from_static("http://localhost/"));
        let host =
            HeaderValue::from_str(target.authority.as_str()).unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Pool {
            inner: Arc::new(Inner {
                connector,
                origin,
                host,
                idle: Mutex::new(Vec::new()),
                h2: Mutex::new(None),
                idle_timeout: settings.pool_idle_timeout,
                max_idle: settings.pool_max_idle_per_host,
                sweeping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` (with an absolute URI for the API) and returns the
    /// response head; its body hands the connection back when it ends.
    pub async fn request(&self, mut req: Request<Body>) -> Result<Response<PooledBody>, PoolError> {
        loop {
            let conn = match self.inner.checkout() {
                Some(conn) => conn,
                // Boxed: the connect and handshake futures are large and rare.
                None => Box::pin(self.connect()).await?,
            };
            match conn {
                Conn::H2(mut tx) => {
                    if poll_fn(|cx| tx.poll_ready(cx)).await.is_err() {
                        self.inner.forget_h2(&tx);
                        continue;
                    }
                    return match tx.try_send_request(req).await {
                        Ok(resp) => Ok(resp.map(|body| PooledBody { body, back: None })),
                        Err(mut e) => match e.take_message() {
                            Some(unsent) => {
                                self.inner.forget_h2(&tx);
                                req = unsent;
                                continue;
                            }
                            None => Err(PoolError::Request(e.into_error())),
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
                            let back = Back {
                                tx,
                                pool: Arc::downgrade(&self.inner),
                            };
                            let mut resp = resp.map(|body| PooledBody { body, back: Some(back) });
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

    async fn connect(&self) -> Result<Conn, PoolError> {
        let inner = &*self.inner;
        let mut connector = inner.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::Connect)?;
        let io = connector.call(inner.origin.clone()).await.map_err(PoolError::Connect)?;
        if io.connected().is_negotiated_h2() {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_while_idle(false)
                .handshake(io)
                .await
                .map_err(|e| PoolError::Connect(Box::new(e)))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(error = %e, "HTTP/2 connection to the API ended");
                }
            });
            if let Ok(mut slot) = inner.h2.lock() {
                *slot = Some(tx.clone());
            }
            return Ok(Conn::H2(tx));
        }
        let (tx, conn) = http1::Builder::new()
            .writev(false)
            .read_buf_exact_size(Some(UPSTREAM_READ_BUF))
            .handshake(io)
            .await
            .map_err(|e| PoolError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "HTTP/1 connection to the API ended");
            }
        });
        self.start_sweeper();
        Ok(Conn::H1(tx))
    }

    /// Drops idle connections older than `pool_idle_timeout`, so that a
    /// burst's connections do not stay open once traffic is back to normal.
    fn start_sweeper(&self) {
        use std::sync::atomic::Ordering;
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
                    idle.retain(|c| now.duration_since(c.since) < inner.idle_timeout && !c.tx.is_closed());
                }
            }
        });
    }

    /// Idle HTTP/1 connections (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

impl Inner {
    fn checkout(&self) -> Option<Conn> {
        if let Ok(slot) = self.h2.lock() {
            if let Some(tx) = slot.as_ref().filter(|tx| !tx.is_closed()) {
                return Some(Conn::H2(tx.clone()));
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

    fn forget_h2(&self, dead: &http2::SendRequest<Body>) {
        if let Ok(mut slot) = self.h2.lock() {
            // Only if no one has replaced it with a live one meanwhile.
            if slot.as_ref().is_some_and(|tx| tx.is_closed()) || dead.is_closed() {
                *slot = None;
            }
        }
    }
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

/// An HTTP/1 connection to return once its response has been read.
struct Back {
    tx: http1::SendRequest<Body>,
    pool: Weak<Inner>,
}

/// A response body from the API. When it has been read to the end, its
/// HTTP/1 connection goes back to the pool; dropped early, the connection
/// is closed (hyper cannot reuse a connection with unread bytes).
pub struct PooledBody {
    body: Incoming,
    back: Option<Back>,
}

impl PooledBody {
    fn give_back(&mut self) {
        if let Some(back) = self.back.take() {
            if let Some(pool) = back.pool.upgrade() {
                pool.checkin(back.tx);
            }
        }
    }

    /// The body without the connection (the connection is not reused).
    pub fn into_incoming(self) -> Incoming {
        self.body
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
            Poll::Ready(Some(Err(_))) => this.back = None,
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

#[cfg(test)]
mod tests;
