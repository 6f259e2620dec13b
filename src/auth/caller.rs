//! The auth task's way to the API: one POST, bounded by `auth.timeout`, its
//! answer read whole (capped).
//!
//! A login method ([`super::method`]) says what to send; the [`Caller`] sends
//! it over the task's own connection pool and turns transport failures into
//! [`AuthError`]s. It lives apart from the task so that the methods and the
//! task both use it without importing each other.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderValue, USER_AGENT};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::grant::{AuthError, error_chain};
use crate::pool::Pool;
use crate::secret::Secret;
use crate::upstream::{self, Target};

/// The most of an auth answer the sidecar reads; real ones are a few hundred bytes.
const MAX_AUTH_BODY: usize = 1024 * 1024;

pub const USER_AGENT_VALUE: &str = concat!("ethgas-sidecar/", env!("CARGO_PKG_VERSION"));

/// One request to the API's auth endpoints.
pub(super) struct Post<'a> {
    /// The API path, with a query when the method needs one. Only the path
    /// (never the query, which may carry a token) appears in errors.
    pub path: &'a str,
    /// The config key the path comes from (`auth.login_path`…), named when
    /// nothing answers at it.
    pub key: &'static str,
    /// Sent as `Authorization: Bearer …`.
    pub bearer: Option<&'a Secret>,
    /// A JSON body.
    pub json: Option<Bytes>,
    /// Sent as the live API's refresh cookie (`Cookie: x_auth_refresh_token=…`).
    pub refresh_cookie: Option<&'a Secret>,
}

/// The API's answer, read whole.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The token pair of a login or refresh answer (either envelope).
    pub(super) fn grant(&self, default_lifetime: Duration) -> Result<super::grant::Grant, AuthError> {
        super::grant::parse_grant_at(
            self.status,
            &self.headers,
            &self.body,
            crate::clock::unix_time(),
            default_lifetime,
        )
    }
}

/// Sends the auth task's requests. Owned by the task.
pub(super) struct Caller {
    pool: Pool,
    target: Target,
    /// `auth.timeout`: the bound on one call, answer included.
    timeout: Duration,
}

impl Caller {
    pub(super) fn new(pool: Pool, target: Target, timeout: Duration) -> Caller {
        Caller { pool, target, timeout }
    }

    pub(super) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `scheme://authority` of the API, for log lines.
    pub(super) fn origin(&self) -> String {
        self.target.origin()
    }

    /// One POST to the API, bounded by `auth.timeout`, body read whole (capped).
    pub(super) async fn post(&self, post: Post<'_>) -> Result<Answer, AuthError> {
        let uri = self.target.api_uri(post.path);
        let url = format!("{}{}", self.target.origin(), uri.path());
        let mut req = Request::post(uri);
        if let Some(headers) = req.headers_mut() {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            if post.json.is_some() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            if let Some(token) = post.bearer {
                if let Ok(mut v) = HeaderValue::from_str(&format!("{}{}", ethgas_api::BEARER, token.expose())) {
                    v.set_sensitive(true);
                    headers.insert(AUTHORIZATION, v);
                }
            }
            if let Some(token) = post.refresh_cookie {
                let cookie = format!("{}={}", ethgas_api::REFRESH_COOKIE, token.expose());
                if let Ok(mut v) = HeaderValue::from_str(&cookie) {
                    v.set_sensitive(true);
                    headers.insert(COOKIE, v);
                }
            }
        }
        let req = req
            .body(upstream::full(post.json.unwrap_or_default()))
            .map_err(|e| AuthError::Unreachable {
                url: url.clone(),
                cause: e.to_string(),
            })?;
        let limit = self.timeout;
        let exchange = async {
            let resp = self.pool.request(req).await.map_err(|e| AuthError::Unreachable {
                url: url.clone(),
                cause: error_chain(&e),
            })?;
            let (parts, body) = resp.into_parts();
            // Nothing there: a wrong path, not a refusal of the credentials.
            if matches!(parts.status.as_u16(), 404 | 405 | 410) {
                return Err(AuthError::NoEndpoint {
                    url: url.clone(),
                    status: parts.status.as_u16(),
                    key: post.key,
                });
            }
            let bytes = Limited::new(body, MAX_AUTH_BODY)
                .collect()
                .await
                .map_err(|e| AuthError::Garbage {
                    status: parts.status.as_u16(),
                    detail: format!("reading the body failed: {e}"),
                })?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body: bytes,
            })
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(AuthError::Timeout { url, limit }),
        }
    }
}

/// `path?name=value&…`, each value percent-encoded.
pub(super) fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::from(path);
    for (i, (name, value)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.extend(percent_encoding::utf8_percent_encode(
            value,
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    out
}
