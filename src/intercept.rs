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
//! forwarded as the program sent it, without the sidecar's token. The same
//! reading of paths decides which requests are public market data
//! ([`is_public`]), which go without a token while none is held.
//!
//! The program gets placeholder tokens: JWT-shaped (some programs read the
//! `exp` claim to time their own refresh), with the real session's expiry, an
//! `alg` of `none` and a random id, so they are unique, unguessable and
//! worthless anywhere but at this sidecar — which replaces any
//! `Authorization` with the real token anyway. Placeholders are not
//! credentials: who may use the account is decided by who can reach the
//! listener. The signature segment is a per-process random value, which lets
//! the proxy tell a placeholder from a token the program brought itself.

use crate::upstream::ClientBody;
use base64::Engine as _;
use bytes::Bytes;
use ethgas_api::{BEARER, REFRESH_COOKIE, normalize_path};
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::AuthHandle;
use crate::config::{Credentials, Live};
use crate::envelope::Envelope;
use crate::error::ProxyError;
use crate::eth::Address;
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

/// Whether a request for `path` is public market data (`proxy.public_prefixes`),
/// which the proxy forwards without a token while it holds none. The path
/// must start with a prefix both as sent (case-sensitive: `/API/V1/P/x` does
/// not count) and once normalised as a lenient upstream would read it
/// ([`normalize_path`]), so `/api/v1/p/../user/info`, `/api/v1/p/%2e%2e/user/info`
/// and `/api/v1/p/..;/user/info` are not public. A path misjudged public
/// could only reach the API without a token, never with one.
pub fn is_public(prefixes: &[String], path: &str) -> bool {
    if !prefixes.iter().any(|p| path.starts_with(p.as_str())) {
        return false;
    }
    // The normalised form has no trailing slash: the prefix itself counts.
    let normal = normalize_path(path) + "/";
    prefixes.iter().any(|p| normal.starts_with(p.as_str()))
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
        req: Request<impl ClientBody>,
        live: &Live,
        auth: &AuthHandle,
        metrics: &Metrics,
    ) -> Result<Response<Full<Bytes>>, ProxyError> {
        if let Credentials::Wallet { address, .. } = &live.auth.credentials {
            return self.answer_live(call, req, live, address, auth, metrics).await;
        }
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
        let expires_in = placeholder_lifetime(auth, live, metrics, kind).await?;
        let data = self.placeholders.grant(username, crate::clock::unix_now(), expires_in);
        Ok(crate::envelope::ok(data))
    }

    /// The live flow (python-ethgas and the like): `login?addr=` for the
    /// sidecar's own address gets a challenge a client can sign; any
    /// signature is accepted at `login/verify` (whoever reaches the listener
    /// acts as the account anyway); verify and refresh get placeholder
    /// tokens in the live shape and the refresh cookie; logout gets `{}`.
    /// Another address is refused.
    async fn answer_live(
        &self,
        call: Call,
        req: Request<impl ClientBody>,
        live: &Live,
        address: &Address,
        auth: &AuthHandle,
        metrics: &Metrics,
    ) -> Result<Response<Full<Bytes>>, ProxyError> {
        let query = req.uri().query().unwrap_or("").to_string();
        let body = Limited::new(req.into_body(), MAX_LOGIN_BODY)
            .collect()
            .await
            .map_err(|e| ProxyError::BadRequest(format!("reading the request body failed: {e}")))?
            .to_bytes();
        // Parameters come in the query (the reference's samples) or as a form body.
        let addr = param(&query, "addr").or_else(|| param(std::str::from_utf8(&body).unwrap_or(""), "addr"));
        if let Some(given) = &addr {
            let same = crate::eth::parse_address(given.trim()).is_ok_and(|a| a == *address);
            if !same {
                return Err(ProxyError::Forbidden(format!(
                    "this sidecar holds the session of {address}, not {given:?}; point the program for that wallet at its own sidecar"
                )));
            }
        }
        let envelope = Envelope::Live;
        let kind = match call {
            Call::Logout => {
                metrics.intercepted(AuthKind::Logout);
                let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                return Ok(resp);
            }
            Call::Login => {
                if addr.is_none() {
                    return Err(ProxyError::BadRequest(format!(
                        "the wallet login needs ?addr=<address>; this sidecar holds the session of {address}"
                    )));
                }
                let mut nonce = [0u8; 4];
                rand::fill(&mut nonce);
                let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
                let chain_id = chain_id(auth, live).await;
                metrics.intercepted(AuthKind::Login);
                return Ok(envelope.ok(json!({
                    "status": "verify",
                    "nonceHash": nonce,
                    "eip712Message": ethgas_api::login_typed_data(&nonce, chain_id),
                })));
            }
            Call::Verify => AuthKind::Login,
            Call::Refresh => AuthKind::Refresh,
        };
        let expires_in = placeholder_lifetime(auth, live, metrics, kind).await?;
        let (data, refresh) = self
            .placeholders
            .live_grant(&address.to_string(), crate::clock::unix_now(), expires_in);
        let mut resp = envelope.ok(data);
        let cookie = format!("{REFRESH_COOKIE}={refresh}; Path=/; HttpOnly");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        Ok(resp)
    }
}

/// The chain id of a placeholder challenge when the API's is not known: the
/// one the published sample carries.
const PLACEHOLDER_CHAIN_ID: u64 = 32382;

/// The chain id of a placeholder challenge: the one in the sidecar's own
/// last real challenge, so a program that checks the domain sees the network
/// of the API the sidecar is logged in to. Before the first login it waits
/// for one, up to `proxy.token_wait`; if none comes in time, or the API's
/// challenge named no chain id, it is [`PLACEHOLDER_CHAIN_ID`] (a program
/// signs it and the sidecar accepts any signature, so it only has to be well
/// formed).
async fn chain_id(auth: &AuthHandle, live: &Live) -> u64 {
    let deadline = Instant::now() + live.proxy.token_wait;
    let mut changes = auth.subscribe();
    loop {
        let status = auth.status();
        if let Some(id) = status.chain_id {
            return id;
        }
        if status.logins > 0 {
            return PLACEHOLDER_CHAIN_ID;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            _ => return PLACEHOLDER_CHAIN_ID,
        }
    }
}

/// The value of `name` in `a=b&c=d` text, percent-decoded.
/// How long a placeholder grant says it lives: as long as the real token
/// (waited for, up to `proxy.token_wait`, if none is held yet). Counts the
/// intercepted call.
async fn placeholder_lifetime(
    auth: &AuthHandle,
    live: &Live,
    metrics: &Metrics,
    kind: AuthKind,
) -> Result<u64, ProxyError> {
    let session = auth
        .wait_valid(live.proxy.token_wait)
        .await
        .ok_or_else(|| ProxyError::no_token(&auth.status()))?;
    metrics.intercepted(kind);
    Ok(session.expires_in(Instant::now()).as_secs().max(1))
}

fn param(text: &str, name: &str) -> Option<String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
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
            .strip_prefix(BEARER.as_bytes())
            .or_else(|| authorization.strip_prefix(b"bearer "))
            .unwrap_or(authorization);
        token.len() > self.mark.len() + 1
            && token.ends_with(self.mark.as_bytes())
            && token[token.len() - self.mark.len() - 1] == b'.'
    }

    /// The `data` of a live verify or refresh answer, and the placeholder
    /// refresh token for its cookie: placeholders that expire with the real
    /// session, in the live shape (`accessToken` is an object whose
    /// `data.payload` shows the claims and whose `token` is the JWT).
    pub fn live_grant(&self, address: &str, now_unix: u64, expires_in: u64) -> (Value, String) {
        let exp = now_unix + expires_in;
        let access = self.token("access", address, now_unix, exp);
        let refresh = self.token("refresh", address, now_unix, now_unix + REFRESH_PLACEHOLDER_LIFETIME);
        let user = json!({ "address": address.to_ascii_lowercase() });
        let data = json!({
            "user": user,
            "accessToken": {
                "data": {
                    "header": { "alg": "none", "typ": "JWT" },
                    "payload": { "user": user, "access_type": "access_token", "iat": now_unix, "exp": exp },
                },
                "token": access,
            },
        });
        (data, refresh)
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
