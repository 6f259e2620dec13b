//! Login interception: the sidecar answers a legacy program's own login,
//! refresh and logout calls, so the program keeps working unchanged while the
//! account's real session stays with the sidecar.
//!
//! This module owns the whole behaviour: which requests are account calls
//! ([`recognise`]), the answers ([`Interceptor::answer`]) and the placeholder
//! tokens they carry. `verify` is not intercepted: it only reads the session,
//! and the API answers it for the real token.
//!
//! The program gets placeholder tokens: JWT-shaped (some programs read the
//! `exp` claim to time their own refresh), with the real session's expiry, an
//! `alg` of `none` and a random id, so they are unique, unguessable and
//! worthless anywhere but at this sidecar — which replaces any
//! `Authorization` with the real token anyway. Placeholders are not
//! credentials: who may use the account is decided by who can reach the
//! listener. The signature segment is a per-process random value, which lets
//! the proxy tell a placeholder from a token the program brought itself.

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::AuthHandle;
use crate::config::Live;
use crate::error::ProxyError;
use crate::metrics::{AuthKind, Metrics};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Placeholder refresh tokens outlive any real session; the program may
/// "refresh" with them whenever it likes.
const REFRESH_PLACEHOLDER_LIFETIME: u64 = 30 * 86400;

/// The most of a program's login body read.
const MAX_LOGIN_BODY: usize = 64 * 1024;

/// Which of the account calls a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Login,
    Refresh,
    Logout,
}

/// The account call a request makes, if it makes one (and interception is on).
pub fn recognise(live: &Live, method: &Method, path: &str) -> Option<Call> {
    if !live.proxy.intercept_login || method != Method::POST {
        return None;
    }
    let a = &live.auth;
    if path == a.login_path {
        Some(Call::Login)
    } else if path == a.refresh_path {
        Some(Call::Refresh)
    } else if path == a.logout_path {
        Some(Call::Logout)
    } else {
        None
    }
}

/// Answers account calls with placeholders.
pub struct Interceptor {
    placeholders: Placeholders,
}

impl Default for Interceptor {
    fn default() -> Self {
        Interceptor::new()
    }
}

impl Interceptor {
    pub fn new() -> Interceptor {
        Interceptor {
            placeholders: Placeholders::new(),
        }
    }

    pub fn placeholders(&self) -> &Placeholders {
        &self.placeholders
    }

    /// Answers a program's own login, refresh or logout call. A login or
    /// refresh waits up to `proxy.token_wait` for the real session, whose
    /// expiry the placeholders carry.
    pub async fn answer(
        &self,
        call: Call,
        req: Request<Incoming>,
        live: &Live,
        auth: &AuthHandle,
        metrics: &Metrics,
    ) -> Result<Response<Full<Bytes>>, ProxyError> {
        let username = &live.auth.username;
        let body = Limited::new(req.into_body(), MAX_LOGIN_BODY)
            .collect()
            .await
            .map_err(|e| ProxyError::BadRequest(format!("reading the request body failed: {e}")))?
            .to_bytes();
        let kind = match call {
            Call::Logout => {
                metrics.intercepted(AuthKind::Logout);
                // The real session stays: other programs use it too.
                return Ok(crate::envelope::ok(json!({ "loggedOut": true })));
            }
            Call::Login => {
                if let Ok(Some(name)) = login_username(&body) {
                    if &name != username {
                        return Err(ProxyError::Forbidden(format!(
                            "this sidecar holds the session of account {username:?}, not {name:?}; point the program for {name:?} at its own sidecar"
                        )));
                    }
                }
                AuthKind::Login
            }
            Call::Refresh => AuthKind::Refresh,
        };
        let session = auth
            .wait_valid(live.proxy.token_wait)
            .await
            .ok_or_else(|| ProxyError::no_token(&auth.status()))?;
        let expires_in = session.expires_in(Instant::now()).as_secs().max(1);
        metrics.intercepted(kind);
        let data = self.placeholders.grant(username, crate::clock::unix_now(), expires_in);
        Ok(crate::envelope::ok(data))
    }
}

/// Issues and recognises placeholder tokens.
pub struct Placeholders {
    /// Per-process random signature segment.
    mark: String,
    header: String,
}

impl Default for Placeholders {
    fn default() -> Self {
        Placeholders::new()
    }
}

impl Placeholders {
    pub fn new() -> Placeholders {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Placeholders {
            mark: B64.encode(key),
            header: B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        }
    }

    fn token(&self, kind: &str, username: &str, now_unix: u64, exp_unix: u64) -> String {
        let mut jti = [0u8; 16];
        rand::fill(&mut jti);
        let claims = json!({
            "iss": "ethgas-sidecar",
            "sub": username,
            "typ": kind,
            "iat": now_unix,
            "exp": exp_unix,
            "jti": B64.encode(jti),
        });
        format!("{}.{}.{}", self.header, B64.encode(claims.to_string()), self.mark)
    }

    /// Whether an `Authorization` value carries one of this process's
    /// placeholders.
    pub fn is_placeholder(&self, authorization: &[u8]) -> bool {
        let token = authorization
            .strip_prefix(b"Bearer ")
            .or_else(|| authorization.strip_prefix(b"bearer "))
            .unwrap_or(authorization);
        token.len() > self.mark.len() + 1
            && token.ends_with(self.mark.as_bytes())
            && token[token.len() - self.mark.len() - 1] == b'.'
    }

    /// The `data` of a login or refresh answer: placeholders that expire
    /// with the real session.
    pub fn grant(&self, username: &str, now_unix: u64, expires_in: u64) -> Value {
        json!({
            "accessToken": self.token("access", username, now_unix, now_unix + expires_in),
            "refreshToken": self.token("refresh", username, now_unix, now_unix + REFRESH_PLACEHOLDER_LIFETIME),
            "expiresIn": expires_in,
        })
    }

    /// Rewrites a WebSocket `login` command to carry `token`. Returns `None`
    /// if `text` is not a login command.
    pub fn rewrite_ws_login(text: &str, token: &str) -> Option<String> {
        let mut v: Value = serde_json::from_str(text).ok()?;
        if v.get("cmd").and_then(Value::as_str) != Some("login") {
            return None;
        }
        let obj = v.as_object_mut()?;
        let data = obj.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        data.as_object_mut()?
            .insert("accessToken".into(), Value::String(token.to_string()));
        Some(v.to_string())
    }
}

/// The username a program's login body names, if any. Errors say what is
/// wrong with the body.
pub fn login_username(body: &[u8]) -> Result<Option<String>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "the login body is not JSON")?;
    Ok(v.get("username").and_then(Value::as_str).map(str::to_string))
}

#[cfg(test)]
mod tests;
