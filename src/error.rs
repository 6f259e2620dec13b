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

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoToken { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Unreachable { .. } | ProxyError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::RefusedHost { .. }
            | ProxyError::RefusedClient { .. }
            | ProxyError::Forbidden(_)
            | ProxyError::NotAllowed { .. } => StatusCode::FORBIDDEN,
            ProxyError::Connect | ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ProxyError::WebSocketVersion => StatusCode::UPGRADE_REQUIRED,
            ProxyError::WebSocketRefused { status } => *status,
            ProxyError::NotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::TooManyConnections { .. } | ProxyError::OutOfDescriptors => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::SlowBody { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The metric label of a locally answered proxy request.
    pub fn reason(&self) -> LocalReason {
        match self {
            ProxyError::NoToken { .. } => LocalReason::NoToken,
            ProxyError::Unreachable { .. } => LocalReason::Unreachable,
            ProxyError::BadGateway { .. } | ProxyError::WebSocketRefused { .. } => LocalReason::BadGateway,
            ProxyError::Timeout { .. } => LocalReason::Timeout,
            ProxyError::RefusedHost { .. } | ProxyError::Forbidden(_) => LocalReason::RefusedHost,
            ProxyError::RefusedClient { .. } => LocalReason::RefusedClient,
            ProxyError::Connect | ProxyError::MethodNotAllowed { .. } => LocalReason::Connect,
            ProxyError::BadRequest(_) | ProxyError::WebSocketVersion | ProxyError::NotFound(_) => {
                LocalReason::BadRequest
            }
            ProxyError::HeadersTooLarge { .. } | ProxyError::UriTooLong { .. } => LocalReason::TooLarge,
            ProxyError::TooManyConnections { .. } | ProxyError::OutOfDescriptors => LocalReason::Overloaded,
            ProxyError::SlowBody { .. } => LocalReason::SlowClient,
            ProxyError::NotAllowed { .. } => LocalReason::NotAllowed,
        }
    }

    /// The reason as the live envelope's `errorMsgKey` suffix.
    fn key(&self) -> &'static str {
        match self {
            ProxyError::NoToken { .. } => "no_token",
            ProxyError::Unreachable { .. } => "unreachable",
            ProxyError::BadGateway { .. } | ProxyError::WebSocketRefused { .. } => "bad_gateway",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::RefusedHost { .. } => "refused_host",
            ProxyError::RefusedClient { .. } => "refused_client",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::Connect => "connect_unsupported",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::HeadersTooLarge { .. } => "headers_too_large",
            ProxyError::UriTooLong { .. } => "uri_too_long",
            ProxyError::WebSocketVersion => "websocket_version",
            ProxyError::NotFound(_) => "not_found",
            ProxyError::TooManyConnections { .. } => "too_many_connections",
            ProxyError::OutOfDescriptors => "out_of_descriptors",
            ProxyError::SlowBody { .. } => "request_timeout",
            ProxyError::NotAllowed { .. } => "not_allowed",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::NoToken { retry_after, .. } => Some(*retry_after),
            ProxyError::Unreachable { .. }
            | ProxyError::BadGateway { .. }
            | ProxyError::TooManyConnections { .. }
            | ProxyError::OutOfDescriptors => Some(1),
            _ => None,
        }
    }

    fn allow(&self) -> Option<&'static str> {
        match self {
            ProxyError::Connect => Some(FORWARDED_METHODS),
            ProxyError::MethodNotAllowed { allow, .. } => Some(allow),
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
                | ProxyError::RefusedClient { .. }
                | ProxyError::TooManyConnections { .. }
                | ProxyError::SlowBody { .. }
        )
    }

    /// The one mapping from the sidecar's own errors to a response: the
    /// status, the API's envelope with a message that says what to do,
    /// `Retry-After` where a retry helps.
    pub fn response(&self, envelope: Envelope) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut resp = envelope.error(status, self.key(), &self.message());
        let headers = resp.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow() {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let ProxyError::WebSocketVersion = self {
            headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        if self.closes() {
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
        let body = envelope.error_body(self.status(), self.key(), &self.message());
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

#[cfg(test)]
mod tests;
