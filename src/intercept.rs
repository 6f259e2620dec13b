//! Login interception: the sidecar answers a legacy program's own login,
//! refresh and logout calls, so the program keeps working unchanged while the
//! account's real session stays with the sidecar.
//!
//! This module owns the whole behaviour: which requests are account calls
//! ([`recognise`], which reads the path as a normalising upstream would, so
//! look-alikes such as `//api/v1/user/logout/` cannot slip past), the answers
//! ([`Interceptor::answer`]) and the placeholder tokens they carry. An account
//! call is never forwarded with the real token: it is answered here (POST),
//! refused (other methods), or — with `proxy.intercept_login = false` —
//! forwarded as the program sent it, without the sidecar's token.
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
use http::{Request, Response};
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
    Verify,
    Logout,
}

/// The account call a request's path names, whatever its method, read the
/// way an upstream that normalises paths would read it ([`normalize_path`]):
/// `//api/v1/user/logout/`, `/api/v1/user/logout;x`, `/api/v1/user/%6Cogout`
/// and `/api/v1/p/../user/logout` are all the logout endpoint.
pub fn recognise(live: &Live, path: &str) -> Option<Call> {
    let a = &live.auth;
    let endpoints = [
        (a.login_path.as_str(), Call::Login),
        (a.refresh_path.as_str(), Call::Refresh),
        (a.verify_path.as_str(), Call::Verify),
        (a.logout_path.as_str(), Call::Logout),
    ];
    // The common case costs no allocation: a plain path that is not one of
    // them. Anything unusual is normalised first.
    let unusual = path.len() > 1 && path.ends_with('/')
        || path.contains("//")
        || path
            .bytes()
            .any(|b| matches!(b, b'%' | b';' | b'.' | b'\\') || b.is_ascii_uppercase());
    if !unusual {
        return endpoints.iter().find(|(p, _)| *p == path).map(|(_, c)| *c);
    }
    let normal = normalize_path(path);
    endpoints
        .iter()
        .find(|(p, _)| normalize_path(p) == normal)
        .map(|(_, c)| *c)
}

/// A path as the most lenient upstream would route it: percent-escapes
/// decoded (twice, for double encoding), `\\` taken as `/`, `;parameters`
/// dropped from each segment, empty and `.` segments dropped, `..` resolved,
/// no trailing slash, lower case. Only used to recognise the account
/// endpoints; the request itself is forwarded as the client wrote it.
pub fn normalize_path(path: &str) -> String {
    let decoded = percent_decode(&percent_decode(path.as_bytes()));
    let text = String::from_utf8_lossy(&decoded).to_lowercase().replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match (
            input[i],
            input.get(i + 1).copied().and_then(hex),
            input.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
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
        let username = &live.auth.account();
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
            Call::Verify => {
                // Any token a program holds stands for the sidecar's session:
                // it is valid for as long as that session is.
                let session = auth
                    .wait_valid(live.proxy.token_wait)
                    .await
                    .ok_or_else(|| ProxyError::no_token(&auth.status()))?;
                let expires_at = crate::clock::unix_now() + session.expires_in(Instant::now()).as_secs();
                metrics.intercepted(AuthKind::Refresh);
                return Ok(crate::envelope::ok(
                    json!({ "valid": true, "userId": username, "expiresAt": expires_at }),
                ));
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
