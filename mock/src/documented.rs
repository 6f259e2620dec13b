//! The documented flavour's authentication endpoints: username/password
//! login, refresh with rotation, verify and logout, answered in the
//! `{code, message, data}` envelope (ethgas-api.md, "Login" to "Logout").
//!
//! A login or refresh grants a pair — an access token that lives
//! `token_lifetime` (`expiresIn`) and a refresh token that works once within
//! `session_lifetime` — and every refusal is a 401.

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::counters::bump;
use super::tokens::{AccessToken, Check, RefreshToken, claim, unix_now};
use super::wire::{self, Body};
use super::{Hook, Mock, Tamper};

impl Mock {
    /// `POST /api/v1/user/login` with `{"username", "password"}`.
    pub(crate) async fn login(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if let Some(answer) = self.injected(Hook::Login).await {
            return answer;
        }
        let c = &self.state.counters;
        let body = Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (user, pass) = (
            v.get("username").and_then(Value::as_str),
            v.get("password").and_then(Value::as_str),
        );
        let ok = self
            .state
            .config
            .lock()
            .map(|c| user == Some(c.username.as_str()) && pass == Some(c.password.as_str()))
            .unwrap_or(false);
        if !ok {
            bump(&c.logins_refused);
            return Ok(unauthorized("Unauthorized"));
        }
        bump(&c.logins_ok);
        Ok(self.grant(None))
    }

    /// `POST /api/v1/user/login/refresh` with the refresh token as bearer.
    pub(crate) async fn refresh(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if let Some(answer) = self.injected(Hook::Refresh).await {
            return answer;
        }
        let c = &self.state.counters;
        let token = wire::bearer(&req);
        let session = match (token, self.state.tokens.lock()) {
            (Some(token), Ok(mut t)) => match t.refresh.get_mut(&token) {
                Some(r) if !r.used && Instant::now() < r.expires => {
                    // Rotation: a refresh token works once.
                    r.used = true;
                    Some((r.expires, wire_exp(&token)))
                }
                _ => None,
            },
            _ => None,
        };
        let Some(session) = session else {
            bump(&c.refreshes_refused);
            return Ok(unauthorized("Refresh token is invalid or expired"));
        };
        bump(&c.refreshes_ok);
        Ok(self.grant(Some(session)))
    }

    /// `POST /api/v1/user/login/verify`: is the bearer a valid access token?
    pub(crate) fn verify(&self, req: &Request<Incoming>) -> Response<Body> {
        bump(&self.state.counters.verifies);
        let token = wire::bearer(req);
        match self.check(token.as_deref()) {
            Check::Ok => {
                let exp = token
                    .as_deref()
                    .and_then(|t| claim(t, "exp"))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                wire::ok(json!({ "valid": true, "userId": "user_123", "expiresAt": exp }))
            }
            _ => unauthorized("Unauthorized"),
        }
    }

    /// `POST /api/v1/user/logout`: revokes the bearer access token.
    pub(crate) fn logout(&self, req: &Request<Incoming>) -> Response<Body> {
        let token = wire::bearer(req);
        if !matches!(self.check(token.as_deref()), Check::Ok) {
            return unauthorized("Unauthorized");
        }
        bump(&self.state.counters.logouts);
        if let (Some(token), Ok(mut t)) = (token, self.state.tokens.lock()) {
            if let Some(a) = t.access.get_mut(&token) {
                a.revoked = true;
            }
        }
        wire::ok(json!({ "loggedOut": true }))
    }

    /// Issues a token pair and answers with it. The refresh token ends with
    /// `session` (its end and `exp`), as the live API's do, or a new session
    /// starts: after `session_lifetime` only a login works.
    fn grant(&self, session: Option<(Instant, u64)>) -> Response<Body> {
        let Ok(config) = self.state.config.lock().map(|c| c.clone()) else {
            return wire::error(StatusCode::INTERNAL_SERVER_ERROR, "mock state poisoned");
        };
        let lifetime = config.token_lifetime;
        let now = Instant::now();
        let claims = |kind: &str, exp: u64| json!({ "sub": "user_123", "username": config.username, "typ": kind, "iat": unix_now(), "exp": exp });
        let Ok(mut t) = self.state.tokens.lock() else {
            return wire::error(StatusCode::INTERNAL_SERVER_ERROR, "mock state poisoned");
        };
        let tamper = self.tamper();
        let expired = tamper == Tamper::ExpiredExp;
        let access_exp = if expired {
            unix_now().saturating_sub(10)
        } else {
            unix_now() + lifetime.as_secs().max(1)
        };
        let (access, _) = t.mint(claims("access", access_exp));
        let (session_end, session_exp) = session.unwrap_or((
            now + config.session_lifetime,
            unix_now() + config.session_lifetime.as_secs(),
        ));
        let (refresh, _) = t.mint(claims("refresh", session_exp));
        t.access.insert(
            access.clone(),
            AccessToken {
                expires: if expired { now } else { now + lifetime },
                revoked: false,
                session: None,
            },
        );
        t.refresh.insert(
            refresh.clone(),
            RefreshToken {
                expires: session_end,
                used: false,
                session: None,
            },
        );
        drop(t);
        let secs = lifetime.as_secs_f64();
        let expires_in = if let Tamper::ExpiresIn(text) = &tamper {
            json!(text)
        } else if config.expires_in_as_string {
            json!(format!("{}", lifetime.as_secs()))
        } else if secs.fract() == 0.0 {
            json!(lifetime.as_secs())
        } else {
            json!(secs)
        };
        if tamper == Tamper::NoRefreshToken {
            return wire::ok(json!({ "accessToken": access, "expiresIn": expires_in }));
        }
        wire::ok(json!({ "accessToken": access, "refreshToken": refresh, "expiresIn": expires_in }))
    }
}

fn unauthorized(message: &str) -> Response<Body> {
    wire::response(StatusCode::UNAUTHORIZED, 401, message, Value::Null)
}

/// The `exp` claim of a token the mock issued (0 if it has none).
fn wire_exp(token: &str) -> u64 {
    claim(token, "exp").and_then(|v| v.as_u64()).unwrap_or(0)
}
