//! The test harness around the mock (cargo feature `test-util`): what the
//! integration tests need and the product does not ship.
//!
//! - Fault injection, switched while traffic flows: a [`Fault`] on the login,
//!   refresh or (live) verify endpoint, answered in the flavour's envelope; an
//!   outage (`set_down`), an API that refuses every token (`set_reject_all`),
//!   grants that state lifetimes badly (`set_tamper`),
//!   revoked tokens, ended live sessions, a forced token-expired push on
//!   every socket.
//! - Test endpoints behind the bearer check: `/api/v1/mock/upload` (size and
//!   checksum of a streamed upload), `/api/v1/mock/download?bytes=` (a
//!   deterministic pattern, streamed), `/api/v1/mock/stream?chunks=&interval_ms=`
//!   (lines over time) and `/api/v1/mock/slow?ms=`; with [`pattern_byte`] and
//!   [`Fnv`] to check them.
//! - [`serve_tls`]: the mock over TLS, HTTP/1.1 or HTTP/2 by ALPN, which alone
//!   needs hyper-util's `server-auto`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::counters::bump;
use super::wire::{self, Body};
use super::{Flavour, Hook, Mock, Tamper};

/// A fault to inject into an authentication endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Answer with this HTTP status and an error envelope.
    Status(u16),
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// HTTP 200 with an envelope whose code is an error (1002).
    ErrorCode,
    /// Answer normally, after this delay.
    Slow(Duration),
    /// Close the connection without answering.
    Reset,
}

/// The harness's switches, part of the mock's state.
#[derive(Default)]
pub(crate) struct Switches {
    faults: Mutex<[Fault; Hook::COUNT]>,
    /// While set, connections are accepted and closed at once (an outage).
    down: AtomicBool,
    /// While set, every private request is refused with 401, whatever token
    /// it carries (an API that rejects what it issues).
    reject_all: AtomicBool,
    /// Wakes every open socket to push `token_expired` now.
    expire_sockets: Notify,
    /// What to change in the grants issued from now on.
    tamper: Mutex<Tamper>,
}

impl Mock {
    pub fn set_login_fault(&self, fault: Fault) {
        self.set_fault(Hook::Login, fault);
    }

    pub fn set_refresh_fault(&self, fault: Fault) {
        self.set_fault(Hook::Refresh, fault);
    }

    /// A fault on the live flavour's `login/verify`.
    pub fn set_verify_fault(&self, fault: Fault) {
        self.set_fault(Hook::Verify, fault);
    }

    fn set_fault(&self, hook: Hook, fault: Fault) {
        if let Ok(mut f) = self.state.harness.faults.lock() {
            f[hook as usize] = fault;
        }
    }

    /// An outage: connections are closed as soon as they are accepted.
    pub fn set_down(&self, down: bool) {
        self.state.harness.down.store(down, Ordering::SeqCst);
    }

    /// Refuse every private request with 401, valid token or not.
    pub fn set_reject_all(&self, reject: bool) {
        self.state.harness.reject_all.store(reject, Ordering::SeqCst);
    }

    /// Changes the grants (logins, verifies, refreshes) issued from now on.
    pub fn set_tamper(&self, tamper: Tamper) {
        if let Ok(mut t) = self.state.harness.tamper.lock() {
            *t = tamper;
        }
    }

    /// The password the documented login accepts from now on.
    pub fn set_password(&self, password: &str) {
        if let Ok(mut c) = self.state.config.lock() {
            c.password = password.to_string();
        }
    }

    /// The lifetime of access tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        if let Ok(mut c) = self.state.config.lock() {
            c.token_lifetime = lifetime;
        }
    }

    /// The lifetime of live sessions started from now on.
    pub fn set_session_lifetime(&self, lifetime: Duration) {
        if let Ok(mut c) = self.state.config.lock() {
            c.session_lifetime = lifetime;
        }
    }

    /// Ends every live session now, as if its lifetime had run out: their
    /// access tokens expire and a refresh is refused as on an ended session.
    pub fn end_sessions(&self) {
        let now = tokio::time::Instant::now();
        if let Ok(mut t) = self.state.tokens.lock() {
            t.sessions.values_mut().for_each(|s| s.ends = s.ends.min(now));
            t.access
                .values_mut()
                .filter(|a| a.session.is_some())
                .for_each(|a| a.expires = a.expires.min(now));
        }
    }

    /// Revokes every access token issued so far (as a server-side logout or a
    /// security event would).
    pub fn revoke_access_tokens(&self) {
        if let Ok(mut t) = self.state.tokens.lock() {
            t.access.values_mut().for_each(|a| a.revoked = true);
        }
    }

    /// Spends every refresh token issued so far.
    pub fn revoke_refresh_tokens(&self) {
        if let Ok(mut t) = self.state.tokens.lock() {
            t.refresh.values_mut().for_each(|r| r.used = true);
        }
    }

    /// Makes every open WebSocket push that its token expired now, as the
    /// API does when a socket's token runs out.
    pub fn push_token_expired(&self) {
        self.state.harness.expire_sockets.notify_waiters();
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

    // --- hooks the product paths call (no-ops without this feature) ---

    pub(crate) fn tamper(&self) -> Tamper {
        self.state.harness.tamper.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub(crate) fn is_down(&self) -> bool {
        self.state.harness.down.load(Ordering::SeqCst)
    }

    pub(crate) fn rejects_all(&self) -> bool {
        self.state.harness.reject_all.load(Ordering::SeqCst)
    }

    /// Resolves when a test forces a `token_expired` push.
    pub(crate) async fn forced_expiry(&self) {
        self.state.harness.expire_sockets.notified().await
    }

    /// Applies the fault set on `hook`; `Some` is the faulty answer (or `Err`
    /// for a reset), `None` means answer normally.
    pub(crate) async fn injected(&self, hook: Hook) -> Option<Result<Response<Body>, std::io::Error>> {
        let fault = self
            .state
            .harness
            .faults
            .lock()
            .map(|f| f[hook as usize])
            .unwrap_or_default();
        let c = &self.state.counters;
        let answer = match fault {
            Fault::None => return None,
            Fault::Slow(d) => {
                bump(&c.faults_served);
                tokio::time::sleep(d).await;
                return None;
            }
            Fault::Status(code) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Ok(match self.flavour() {
                    Flavour::Documented => wire::response(status, code, "injected fault", Value::Null),
                    Flavour::Live => wire::live_fail(status, code, "error.injected_fault"),
                })
            }
            Fault::Garbage => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"<html><body>502 Bad Gateway</body></html>",
                )));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                Ok(wire::full(r))
            }
            Fault::ErrorCode => Ok(match self.flavour() {
                Flavour::Documented => {
                    wire::response(StatusCode::OK, wire::OPERATION_FAILED, "operation failed", Value::Null)
                }
                Flavour::Live => wire::live_fail(StatusCode::OK, wire::OPERATION_FAILED, "error.operation_failed"),
            }),
            Fault::Reset => Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            )),
        };
        bump(&c.faults_served);
        Some(answer)
    }

    /// Serves a test endpoint, or hands the request back if `path` is none.
    pub(crate) async fn test_endpoint(
        &self,
        req: Request<Incoming>,
        path: &str,
    ) -> Result<Response<Body>, Request<Incoming>> {
        let query = req.uri().query().unwrap_or("").to_string();
        let param = |name: &str| wire::form_value(&query, name).and_then(|v| v.parse::<u64>().ok());
        match path {
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
                        Err(_) => return Ok(wire::error(StatusCode::BAD_REQUEST, "upload broken")),
                    }
                }
                Ok(self.success(json!({ "bytes": n, "fnv1a64": format!("{:016x}", sum.0) })))
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
                Ok(resp)
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
                Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))))
            }
            // Answers after `ms` milliseconds.
            "/api/v1/mock/slow" => {
                tokio::time::sleep(Duration::from_millis(param("ms").unwrap_or(1000))).await;
                Ok(self.success(json!({ "slow": true })))
            }
            _ => Err(req),
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

/// Serves the mock over TLS (HTTP/1.1 or HTTP/2, as ALPN decides), for
/// tests of the sidecar's HTTPS upstream path.
pub async fn serve_tls(listener: TcpListener, mock: Mock, tls: tokio_rustls::TlsAcceptor, shutdown: CancellationToken) {
    super::accept_loop(listener, mock, shutdown, true, move |stream, mock, stop| {
        serve_tls_connection(stream, mock, tls.clone(), stop)
    })
    .await
}

async fn serve_tls_connection(
    stream: TcpStream,
    mock: Mock,
    tls: tokio_rustls::TlsAcceptor,
    stop: CancellationToken,
) -> Result<(), String> {
    let stream = tls.accept(stream).await.map_err(|e| format!("TLS handshake: {e}"))?;
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), Mock::service(mock));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r.map_err(|e| e.to_string()),
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await.map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_and_pattern_are_stable() {
        let mut f = Fnv::default();
        f.update(b"a");
        assert_eq!(f.0, 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 of \"a\"");
        assert_eq!(pattern_byte(0), 0);
        assert_eq!(pattern_byte(1), 31);
        assert!((0..100_000).all(|i| pattern_byte(i) < 251));
    }
}
