//! The sidecar's own answers: one error type for everything it refuses or
//! cannot do itself — on the proxy, the WebSocket relay and the admin
//! listener — and the one mapping from an error to a status, an envelope and
//! the headers that help the client (`Retry-After`, `Allow`, `Connection`).
//!
//! Like linkerd's `errors` module, each kind of failure has its status here
//! and nowhere else: a timeout is a 504, a missing token a 503, an
//! unreachable API a 502, a refused host a 403.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

use crate::auth::Status;
use crate::envelope::Envelope;
use crate::metrics::LocalReason;

/// The methods the proxy forwards: those the ETHGas API uses. Any other
/// (`TRACE`, which would reflect the injected token; `CONNECT`; extension
/// methods) is answered 405 with this list in `Allow`.
pub const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// An answer the sidecar gives instead of the API's.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no valid token for account {account:?} yet: {reason}")]
    NoToken {
        account: String,
        reason: String,
        retry_after: u64,
    },
    #[error("the API at {origin} is unreachable: {cause}")]
    Unreachable { origin: String, cause: String },
    #[error("the API at {origin} failed to answer: {cause}")]
    BadGateway { origin: String, cause: String },
    #[error("the API at {origin} did not answer within {} ({setting})", humantime::format_duration(*.limit))]
    Timeout {
        origin: String,
        limit: Duration,
        setting: &'static str,
    },
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
    #[error("request URI is longer than {limit} bytes ({setting})")]
    UriTooLong { limit: usize, setting: &'static str },
    #[error("only WebSocket version 13 is supported")]
    WebSocketVersion,
    #[error("the WebSocket API refused the upgrade with HTTP {status}")]
    WebSocketRefused { status: StatusCode },
    #[error("{0}")]
    NotFound(String),
    #[error("too many connections: this listener serves {limit} at once (proxy.max_connections); retry shortly")]
    TooManyConnections { limit: usize },
    #[error("the sidecar is out of file descriptors; raise LimitNOFILE= (or lower proxy.max_connections)")]
    OutOfDescriptors,
    #[error("the request body sent nothing for {} (proxy.body_idle_timeout)", humantime::format_duration(*.limit))]
    SlowBody { limit: Duration },
    #[error("{message}")]
    MethodNotAllowed { message: String, allow: &'static str },
    #[error(
        "{method} {path} is a {class} call, which listener {listener:?} may not make (add \"{class}\" to policy.{listener} to allow it)"
    )]
    NotAllowed {
        method: String,
        /// The normalised path, cut.
        path: String,
        class: crate::policy::Class,
        listener: String,
    },
}

impl ProxyError {
    /// The answer for a request that found no valid token in time: the
    /// sidecar's own summary of the auth state (never the API's words, which
    /// a client has no business reading; `/readyz` has them for the
    /// operator), and when the next attempt is due.
    pub fn no_token(status: &Status) -> ProxyError {
        let retry_after = status
            .next_attempt
            .map(|at| at.saturating_duration_since(Instant::now()).as_secs().clamp(1, 60))
            .unwrap_or(1);
        let reason = if status.credentials_rejected {
            "the API refused the account's credentials; the operator must fix them (see /readyz)".to_string()
        } else if status.consecutive_failures > 0 {
            format!(
                "{} failure(s) in a row (last: {}); retrying (see /readyz)",
                status.consecutive_failures,
                status.last_error_summary.as_deref().unwrap_or("unknown")
            )
        } else {
            "the login is still in progress".to_string()
        };
        ProxyError::NoToken {
            account: status.username.clone(),
            reason,
            retry_after,
        }
    }

    /// Everything the answer is made of but the message, from one exhaustive
    /// `match`: a new variant cannot compile without saying its status,
    /// `Retry-After`, `Allow` and whether the connection closes.
    pub fn describe(&self) -> Description {
        use LocalReason as R;
        use StatusCode as S;
        let d = Description::new;
        match self {
            ProxyError::NoToken { retry_after, .. } => {
                d(S::SERVICE_UNAVAILABLE, R::NoToken, "no_token").retry_after(*retry_after)
            }
            ProxyError::Unreachable { .. } => d(S::BAD_GATEWAY, R::Unreachable, "unreachable").retry_after(1),
            ProxyError::BadGateway { .. } => d(S::BAD_GATEWAY, R::BadGateway, "bad_gateway").retry_after(1),
            ProxyError::Timeout { .. } => d(S::GATEWAY_TIMEOUT, R::Timeout, "timeout"),
            ProxyError::RefusedHost { .. } => d(S::FORBIDDEN, R::RefusedHost, "refused_host"),
            ProxyError::RefusedClient { .. } => d(S::FORBIDDEN, R::RefusedClient, "refused_client").closes(),
            ProxyError::Connect => d(S::METHOD_NOT_ALLOWED, R::Connect, "connect_unsupported")
                .allow(FORWARDED_METHODS)
                .closes(),
            ProxyError::BadRequest(_) => d(S::BAD_REQUEST, R::BadRequest, "bad_request").closes(),
            ProxyError::Forbidden(_) => d(S::FORBIDDEN, R::RefusedHost, "forbidden"),
            ProxyError::HeadersTooLarge { .. } => {
                d(S::REQUEST_HEADER_FIELDS_TOO_LARGE, R::TooLarge, "headers_too_large").closes()
            }
            ProxyError::UriTooLong { .. } => d(S::URI_TOO_LONG, R::TooLarge, "uri_too_long").closes(),
            ProxyError::WebSocketVersion => Description {
                websocket_version: true,
                ..d(S::UPGRADE_REQUIRED, R::BadRequest, "websocket_version")
            },
            ProxyError::WebSocketRefused { status } => d(*status, R::BadGateway, "bad_gateway"),
            ProxyError::NotFound(_) => d(S::NOT_FOUND, R::BadRequest, "not_found"),
            ProxyError::TooManyConnections { .. } => d(S::SERVICE_UNAVAILABLE, R::Overloaded, "too_many_connections")
                .retry_after(1)
                .closes(),
            ProxyError::OutOfDescriptors => {
                d(S::SERVICE_UNAVAILABLE, R::Overloaded, "out_of_descriptors").retry_after(1)
            }
            ProxyError::SlowBody { .. } => d(S::REQUEST_TIMEOUT, R::SlowClient, "request_timeout").closes(),
            ProxyError::MethodNotAllowed { allow, .. } => {
                d(S::METHOD_NOT_ALLOWED, R::Connect, "method_not_allowed").allow(allow)
            }
            ProxyError::NotAllowed { .. } => d(S::FORBIDDEN, R::NotAllowed, "not_allowed"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.describe().status
    }

    /// The metric label of a locally answered proxy request.
    pub fn reason(&self) -> LocalReason {
        self.describe().reason
    }

    /// The one mapping from the sidecar's own errors to a response: the
    /// status, the API's envelope with a message that says what to do,
    /// `Retry-After` where a retry helps.
    pub fn response(&self, envelope: Envelope) -> Response<Full<Bytes>> {
        let d = self.describe();
        let mut resp = envelope.error(d.status, d.key, &self.message());
        let headers = resp.headers_mut();
        if let Some(secs) = d.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = d.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if d.websocket_version {
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        if d.closes {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// The message of the envelope.
    fn message(&self) -> String {
        format!("ethgas-sidecar: {self}")
    }

    /// The same answer as HTTP/1.1 bytes, for a socket written outside
    /// hyper (a connection over the cap).
    pub fn wire(&self, envelope: Envelope) -> Vec<u8> {
        let resp = self.response(envelope);
        let body = envelope.error_body(resp.status(), self.describe().key, &self.message());
        let status = resp.status();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in resp.headers() {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// What a [`ProxyError`] answers with, besides its message (its `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Description {
    pub status: StatusCode,
    /// The metric label.
    pub reason: LocalReason,
    /// The live envelope's `errorMsgKey` suffix.
    pub key: &'static str,
    /// Seconds for `Retry-After`, where a retry helps.
    pub retry_after: Option<u64>,
    /// The methods for `Allow` on a 405.
    pub allow: Option<&'static str>,
    /// Whether the client connection closes after the answer
    /// (`Connection: close`).
    pub closes: bool,
    /// Whether to name the one WebSocket version served
    /// (`Sec-WebSocket-Version: 13`).
    pub websocket_version: bool,
}

impl Description {
    const fn new(status: StatusCode, reason: LocalReason, key: &'static str) -> Description {
        Description {
            status,
            reason,
            key,
            retry_after: None,
            allow: None,
            closes: false,
            websocket_version: false,
        }
    }

    const fn retry_after(self, secs: u64) -> Description {
        Description {
            retry_after: Some(secs),
            ..self
        }
    }

    const fn allow(self, methods: &'static str) -> Description {
        Description {
            allow: Some(methods),
            ..self
        }
    }

    const fn closes(self) -> Description {
        Description { closes: true, ..self }
    }
}

#[cfg(test)]
mod tests;
