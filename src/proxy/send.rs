//! The call to the API: one attempt through the worker's pool, bounded by
//! `upstream.request_timeout`, and once more when the API refused it
//! unprocessed; pool errors become the sidecar's own answers. After a 401
//! to the current token: the token renewed and the request replayed once.

use std::error::Error;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tracing::debug;

use super::Proxy;
use super::body::{self, Body};
use super::rewrite::Replay;
use crate::auth::Session;
use crate::auth::error_chain;
use crate::error::ProxyError;
use crate::pool::{PoolError, PooledBody};
use crate::upstream::{self, ClientFault};

/// The most of an error body kept from a 401 that is replayed.
const MAX_KEPT_401_BODY: usize = 64 * 1024;

/// How one attempt at the API failed.
enum Attempt {
    /// Refused before any processing: the request may go again.
    Unprocessed(ProxyError),
    Failed(ProxyError),
}

impl Attempt {
    fn into_error(self) -> ProxyError {
        match self {
            Attempt::Unprocessed(e) | Attempt::Failed(e) => e,
        }
    }
}

/// The answer for a failed call whose body the client streamed: the
/// client's fault when its body stalled (408) or could not be read (400 —
/// a malformed chunk is no failure of the API's), else the API's error.
pub(super) fn blame(streamed: Option<&(upstream::Fault, Duration)>, e: ProxyError) -> ProxyError {
    match streamed.and_then(|(fault, limit)| Some((fault.get()?, *limit))) {
        Some((ClientFault::Idle, limit)) => ProxyError::SlowBody { limit },
        Some((ClientFault::Broken(cause), _)) => ProxyError::BadRequest(format!(
            "the request body could not be read ({cause}); send a well-formed body (Content-Length or valid chunked coding)"
        )),
        None => e,
    }
}

impl Proxy {
    /// Sends one request upstream (the caller counts whether it carries the
    /// token), bounded by `upstream.request_timeout` (up to the response
    /// headers; bodies then stream for as long as they take).
    /// If the API refused it without processing it
    /// (an HTTP/2 connection it is retiring, see
    /// [`crate::pool::PoolError::is_unprocessed`]) and a copy was kept, the
    /// copy goes once more, on a new connection.
    pub(super) async fn send(
        &self,
        req: Request<upstream::Body>,
        resend: Option<(&Replay, Option<&HeaderValue>)>,
    ) -> Result<Response<PooledBody>, ProxyError> {
        match self.attempt(req).await {
            Err(Attempt::Unprocessed(e)) => match resend {
                Some((replay, authorization)) => {
                    debug!("the API refused a request unprocessed (HTTP/2 GOAWAY); sending it again");
                    self.shared.metrics.resent.inc();
                    self.attempt(replay.clone().request(authorization))
                        .await
                        .map_err(Attempt::into_error)
                }
                None => Err(e),
            },
            result => result.map_err(Attempt::into_error),
        }
    }

    async fn attempt(&self, req: Request<upstream::Body>) -> Result<Response<PooledBody>, Attempt> {
        let shared = &*self.shared;
        let started = Instant::now();
        let result = tokio::time::timeout_at(started + shared.request_timeout, self.pool.request(req)).await;
        shared.metrics.observe_upstream(started.elapsed());
        match result {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_unprocessed() => Err(Attempt::Unprocessed(self.upstream_error(&e))),
            Ok(Err(e)) => Err(Attempt::Failed(self.upstream_error(&e))),
            Err(_) => Err(Attempt::Failed(self.timeout())),
        }
    }

    pub(super) fn upstream_error(&self, e: &PoolError) -> ProxyError {
        let origin = self.shared.origin.clone();
        if out_of_descriptors(e) {
            return ProxyError::OutOfDescriptors;
        }
        if e.is_connect() {
            ProxyError::Unreachable {
                origin,
                cause: error_chain(e),
            }
        } else {
            ProxyError::BadGateway {
                origin,
                cause: error_chain(e),
            }
        }
    }

    pub(super) fn timeout(&self) -> ProxyError {
        ProxyError::Timeout {
            origin: self.shared.origin.clone(),
            limit: self.shared.request_timeout,
            setting: "upstream.request_timeout",
        }
    }
}

/// Whether the call failed because the sidecar, not the API, ran out of
/// file descriptors (EMFILE, ENFILE) somewhere down the error's causes.
fn out_of_descriptors(e: &PoolError) -> bool {
    match e {
        PoolError::Connect(e) => caused_by_fd_exhaustion(e.as_ref()),
        PoolError::Request(e) => caused_by_fd_exhaustion(e),
    }
}

/// Walks `e` and its sources. An `io::Error` that wraps another error
/// reports that error's source, not the error itself, so its inner error is
/// walked too.
fn caused_by_fd_exhaustion(mut e: &(dyn Error + 'static)) -> bool {
    loop {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                return true;
            }
            if io.get_ref().is_some_and(|inner| caused_by_fd_exhaustion(inner)) {
                return true;
            }
        }
        match e.source() {
            Some(next) => e = next,
            None => return false,
        }
    }
}

impl Proxy {
    /// The API rejected the token it was just given: renew it, and replay the
    /// request if its body was kept.
    pub(super) async fn after_401(
        &self,
        token_wait: Duration,
        session: Arc<Session>,
        resp: Response<PooledBody>,
        kept: Option<Replay>,
    ) -> Result<Response<Body>, ProxyError> {
        let shared = &*self.shared;
        shared.metrics.upstream_unauthorized.inc();
        let Some(replay) = kept else {
            // The body is gone; renew the token for the next requests and
            // hand this 401 back as it is.
            let auth = shared.auth.clone();
            let stale = session.clone();
            tokio::spawn(async move {
                auth.reauthenticate(&stale, token_wait).await;
            });
            return Ok(self.finish(resp.map(body::streamed), Some(&session)));
        };
        // The 401's body is read ahead (a bounded part of it) so that the
        // client gets the API's whole answer if no new token comes.
        let (resp_parts, resp_body) = resp.into_parts();
        let kept_401 = body::read_ahead(resp_body, MAX_KEPT_401_BODY).await;
        let Some(fresh) = shared.auth.reauthenticate(&session, token_wait).await else {
            return Ok(self.finish(Response::from_parts(resp_parts, kept_401), Some(&session)));
        };
        let again = replay.clone().request(Some(fresh.authorization()));
        shared.metrics.tokens_injected.inc();
        shared.metrics.replays.inc();
        debug!("replaying a request with a fresh token after a 401");
        let resp = self.send(again, Some((&replay, Some(fresh.authorization())))).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            shared.metrics.upstream_unauthorized.inc();
        }
        Ok(self.finish(resp.map(body::streamed), Some(&fresh)))
    }
}

#[cfg(test)]
mod tests;
