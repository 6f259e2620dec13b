//! The admin listener: what an operator and a supervisor ask the sidecar.
//!
//! Endpoints:
//! - `GET /healthz` — 200 while the process serves.
//! - `GET /readyz` — 200 while a valid token is held, else 503; the body is a
//!   JSON summary (account, seconds to expiry, last login and refresh, last
//!   error, failures in a row) with no token or password in it.
//! - `GET /metrics` — Prometheus text format (see [`crate::metrics`]).
//!
//! It listens on its own address (loopback by default) so that it can be
//! scraped without reaching the proxy. Its answers always use the documented
//! envelope (`{"code", "message", "data"}`), whatever the login method, so
//! scripts and `ethgas-sidecar status` read one shape.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::AuthHandle;
use crate::envelope::{self, Envelope};
use crate::error::ProxyError;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Admin {
    auth: AuthHandle,
    metrics: Arc<Metrics>,
}

fn rfc3339(t: Option<SystemTime>) -> Value {
    t.map(|t| Value::String(humantime::format_rfc3339_seconds(t).to_string()))
        .unwrap_or(Value::Null)
}

impl Admin {
    pub fn new(auth: AuthHandle, metrics: Arc<Metrics>) -> Admin {
        Admin { auth, metrics }
    }

    /// The readiness summary, and whether the sidecar is ready.
    pub fn readiness(&self) -> (bool, Value) {
        let now = Instant::now();
        let status = self.auth.status();
        let session = self.auth.current();
        let valid = session.as_ref().filter(|s| s.is_valid(now));
        let ready = valid.is_some() && !status.stopped;
        let state = if status.stopped {
            "stopped"
        } else if valid.is_some() {
            "logged_in"
        } else if status.credentials_rejected {
            "credentials_rejected"
        } else if status.consecutive_failures > 0 {
            "login_failing"
        } else {
            "logging_in"
        };
        let secs = |d: Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
        let summary = json!({
            "ready": ready,
            "state": state,
            "method": status.method,
            "account": status.username,
            "username": (status.method != "wallet").then_some(&status.username),
            "address": (status.method == "wallet").then_some(&status.username),
            "token_expires_in_seconds": valid.map(|s| secs(s.expires_in(now))),
            "next_refresh_in_seconds": status.next_attempt.map(|t| secs(t.saturating_duration_since(now))),
            "last_login": rfc3339(status.last_login),
            "last_refresh": rfc3339(status.last_refresh),
            "logins": status.logins,
            "refreshes": status.refreshes,
            "consecutive_failures": status.consecutive_failures,
            "last_error": status.last_error.as_deref().map(scrub),
            "last_error_at": rfc3339(status.last_error_at),
        });
        (ready, summary)
    }

    /// Brings the gauges that depend on time up to date; called per scrape.
    fn refresh_gauges(&self) {
        let now = Instant::now();
        let valid = self.auth.current().filter(|s| s.is_valid(now));
        self.metrics
            .token_expires_in
            .set(valid.as_ref().map_or(0.0, |s| s.expires_in(now).as_secs_f64().floor()));
        self.metrics.ready.set(i64::from(valid.is_some()));
    }

    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return ProxyError::MethodNotAllowed {
                message: "admin endpoints answer GET and HEAD".into(),
                allow: "GET, HEAD",
            }
            .response(Envelope::Documented);
        }
        let mut resp = match req.uri().path() {
            "/healthz" | "/livez" => envelope::ok(json!({ "status": "serving" })),
            "/readyz" => {
                let (ready, summary) = self.readiness();
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let message = if ready { "ready" } else { "not ready" };
                envelope::response(status, status.as_u16(), message, summary)
            }
            "/metrics" => {
                self.refresh_gauges();
                let mut resp = Response::new(Full::new(Bytes::from(self.metrics.render())));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            _ => ProxyError::NotFound("no such admin endpoint; try /healthz, /readyz or /metrics".into())
                .response(Envelope::Documented),
        };
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// Hides anything in a message from the API that looks like a token (three
/// base64url segments joined by dots, as a JWT): an API may quote what it
/// was sent, and `/readyz` must never show a token.
fn scrub(message: &str) -> String {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let parts: Vec<&str> = word.split('.').collect();
        let looks_like_jwt = parts.len() >= 3 && parts.iter().take(3).all(|p| p.len() >= 10);
        out.push_str(if looks_like_jwt { "<redacted>" } else { word });
        word.clear();
    };
    for c in message.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_like_words_are_hidden_from_readyz() {
        let m = "refused token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl for user.name (v1.2.3)";
        assert_eq!(super::scrub(m), "refused token <redacted> for user.name (v1.2.3)");
        let key = "refused (HTTP 200, code 1001): error.login.address_unknown";
        assert_eq!(super::scrub(key), key, "an error key is not a token");
    }
}
