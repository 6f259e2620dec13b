//! The live flavour's authentication endpoints: the EIP-712 wallet login of
//! the service at mainnet.app.ethgas.com (ethgas-api.md, "Live API").
//!
//! - `POST /api/v1/user/login?addr=0x…[&name=…]` issues a challenge: a fresh
//!   8-hex-digit `nonceHash` and the login typed data for it
//!   (`eth::login_typed_data`, the configured `chain_id`). A nonce works once,
//!   for that address, within [`CHALLENGE_LIFETIME`].
//! - `POST /api/v1/user/login/verify?addr&nonceHash&signature` recovers the
//!   signer of the challenge it issued (`eth::recover_typed_data_signer`); if
//!   it is the address, a session starts: the answer carries the access token
//!   as an object (`data.accessToken.{data, token}`) and the refresh token in
//!   `Set-Cookie: x_auth_refresh_token=…; Path=/; HttpOnly`.
//! - `POST /api/v1/user/login/refresh?refreshToken=…` (also a form or JSON
//!   body field, or the cookie) answers the same shape with a new access
//!   token and a new cookie. The refresh token keeps working until the
//!   session ends — python-ethgas reuses the login's refresh token for every
//!   refresh — and the new cookie ends when the session does: refreshing never
//!   extends a session, and no access token outlives it.
//! - `POST /api/v1/user/logout` with a valid bearer answers `{}` and ends the
//!   session.
//!
//! The live API answers some failures with HTTP 200 and others with 4xx; the
//! mock does both, so a client must read `success` whatever the status:
//!
//! | failure | HTTP | errorCode | errorMsgKey |
//! |---|---|---|---|
//! | login: `addr` missing or not an address | 200 | 1001 | `error.login.address_invalid` |
//! | login: not the configured address | 200 | 1001 | `error.login.address_unknown` |
//! | verify: signature does not recover to `addr` | 200 | 1000 | `error.login.signature_invalid` |
//! | verify: nonce unknown, used, expired or another address's | 401 | 1000 | `error.login.nonce_invalid` |
//! | refresh: no, unknown or revoked refresh token; logged out | 401 | 1000 | `error.login.refresh_token_invalid` |
//! | refresh: the session has ended | 401 | 1000 | `error.login.session_expired` |
//! | logout: bearer not a valid access token | 401 | 1000 | `error.unauthorized.*` |

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::counters::bump;
use super::tokens::{AccessToken, Check, RefreshToken, Session, Tokens, unix_now};
use super::wire::{self, Body, PERMISSION_DENIED, VALIDATION_ERROR};
use super::{Hook, Mock, Tamper};
use crate::eth::{self, Address};

/// How long a challenge's nonce may be verified.
pub(crate) const CHALLENGE_LIFETIME: Duration = Duration::from_secs(60);

/// The cookie that carries the refresh token.
pub(crate) const REFRESH_COOKIE: &str = "x_auth_refresh_token";

/// An outstanding challenge.
struct Challenge {
    address: Address,
    typed_data: String,
    expires: Instant,
}

/// A user, created at an address's first challenge.
struct User {
    user_id: u64,
    name: Option<String>,
}

/// The wallet side of the mock's state: challenges and users.
#[derive(Default)]
pub(crate) struct Wallets {
    challenges: HashMap<String, Challenge>,
    users: HashMap<Address, User>,
}

/// The parameters of a live request: the query first, then a form or JSON body.
struct Params {
    query: String,
    body: Bytes,
}

impl Params {
    async fn read(req: Request<Incoming>) -> (Params, http::request::Parts) {
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let query = parts.uri.query().unwrap_or("").to_string();
        (Params { query, body }, parts)
    }

    fn get(&self, name: &str) -> Option<String> {
        let from_body = || {
            let text = std::str::from_utf8(&self.body).ok()?;
            if text.trim_start().starts_with('{') {
                let v: Value = serde_json::from_str(text).ok()?;
                v.get(name)?.as_str().map(str::to_string)
            } else {
                wire::form_value(text, name)
            }
        };
        wire::form_value(&self.query, name)
            .or_else(from_body)
            .filter(|v| !v.is_empty())
    }
}

impl Mock {
    /// `POST /api/v1/user/login?addr=…[&name=…]`: a challenge to sign.
    pub(crate) async fn live_login(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if let Some(answer) = self.injected(Hook::Login).await {
            return answer;
        }
        let c = &self.state.counters;
        let (params, _) = Params::read(req).await;
        let Some(address) = params.get("addr").and_then(|a| eth::parse_address(a.as_str()).ok()) else {
            bump(&c.live_challenges_refused);
            return Ok(wire::live_fail(
                StatusCode::OK,
                VALIDATION_ERROR,
                "error.login.address_invalid",
            ));
        };
        let (allowed, chain_id) = match self.state.config.lock() {
            Ok(config) => (config.address.is_none_or(|a| a == address), config.chain_id),
            Err(_) => (false, 0),
        };
        if !allowed {
            bump(&c.live_challenges_refused);
            return Ok(wire::live_fail(
                StatusCode::OK,
                VALIDATION_ERROR,
                "error.login.address_unknown",
            ));
        }
        let Ok(mut wallets) = self.state.live.lock() else {
            return Ok(poisoned());
        };
        let now = Instant::now();
        wallets.challenges.retain(|_, ch| ch.expires > now);
        let nonce = loop {
            let mut bytes = [0u8; 4];
            rand::fill(&mut bytes);
            let nonce = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            if !wallets.challenges.contains_key(&nonce) {
                break nonce;
            }
        };
        let typed_data = eth::login_typed_data(&nonce, chain_id);
        let next_id = 1000 + wallets.users.len() as u64;
        let user = wallets.users.entry(address).or_insert(User {
            user_id: next_id,
            name: None,
        });
        if let Some(name) = params.get("name") {
            user.name = Some(name);
        }
        wallets.challenges.insert(
            nonce.clone(),
            Challenge {
                address,
                typed_data: typed_data.clone(),
                expires: now + CHALLENGE_LIFETIME,
            },
        );
        drop(wallets);
        bump(&c.live_challenges);
        Ok(wire::live_ok(json!({
            "status": "verify",
            "nonceHash": nonce,
            "eip712Message": typed_data,
        })))
    }

    /// `POST /api/v1/user/login/verify?addr&nonceHash&signature`.
    pub(crate) async fn live_verify(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if let Some(answer) = self.injected(Hook::Verify).await {
            return answer;
        }
        let c = &self.state.counters;
        let (params, _) = Params::read(req).await;
        let address = params.get("addr").and_then(|a| eth::parse_address(a.as_str()).ok());
        let nonce = params.get("nonceHash").unwrap_or_default();
        let signature = params.get("signature").unwrap_or_default();
        // The nonce is spent by any attempt that names it for its address.
        let challenge = match self.state.live.lock() {
            Ok(mut wallets) => match wallets.challenges.get(&nonce) {
                Some(ch) if Some(ch.address) == address => wallets.challenges.remove(&nonce),
                _ => None,
            },
            Err(_) => return Ok(poisoned()),
        };
        let Some(challenge) = challenge.filter(|ch| Instant::now() < ch.expires) else {
            bump(&c.live_verifies_refused);
            return Ok(wire::live_fail(
                StatusCode::UNAUTHORIZED,
                PERMISSION_DENIED,
                "error.login.nonce_invalid",
            ));
        };
        let signer = eth::recover_typed_data_signer(&challenge.typed_data, &signature);
        if signer.ok() != Some(challenge.address) {
            bump(&c.live_verifies_refused);
            return Ok(wire::live_fail(
                StatusCode::OK,
                PERMISSION_DENIED,
                "error.login.signature_invalid",
            ));
        }
        let Some((user_id, user)) = self.user_json(challenge.address) else {
            return Ok(poisoned());
        };
        let Ok(config) = self.state.config.lock().map(|c| c.clone()) else {
            return Ok(poisoned());
        };
        let Ok(mut t) = self.state.tokens.lock() else {
            return Ok(poisoned());
        };
        let now = Instant::now();
        let session = t.next_serial();
        t.sessions.insert(
            session,
            Session {
                user_id,
                address: challenge.address,
                ends: now + config.session_lifetime,
                logged_out: false,
            },
        );
        let refresh = mint_refresh(&mut t, session, user_id, challenge.address, config.session_lifetime);
        let answer = grant(&mut t, session, user, &refresh, config.token_lifetime, &self.tamper());
        drop(t);
        bump(&c.live_verifies_ok);
        Ok(answer)
    }

    /// `POST /api/v1/user/login/refresh?refreshToken=…` (bearer optional).
    pub(crate) async fn live_refresh(&self, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
        if let Some(answer) = self.injected(Hook::Refresh).await {
            return answer;
        }
        let c = &self.state.counters;
        let (params, parts) = Params::read(req).await;
        let token = params
            .get("refreshToken")
            .or_else(|| wire::cookie(&parts.headers, REFRESH_COOKIE));
        let Ok(lifetime) = self.state.config.lock().map(|c| c.token_lifetime) else {
            return Ok(poisoned());
        };
        let Ok(t) = self.state.tokens.lock() else {
            return Ok(poisoned());
        };
        let now = Instant::now();
        let found = token
            .as_deref()
            .and_then(|token| t.refresh.get(token))
            .filter(|r| !r.used)
            .and_then(|r| r.session)
            .and_then(|id| t.sessions.get(&id).map(|s| (id, s)))
            .filter(|(_, s)| !s.logged_out)
            .map(|(id, s)| (id, s.user_id, s.address, s.ends));
        let Some((session, user_id, address, ends)) = found else {
            drop(t);
            bump(&c.live_refreshes_refused);
            return Ok(wire::live_fail(
                StatusCode::UNAUTHORIZED,
                PERMISSION_DENIED,
                "error.login.refresh_token_invalid",
            ));
        };
        if now >= ends {
            drop(t);
            bump(&c.live_refreshes_refused);
            bump(&c.live_refreshes_on_ended_session);
            return Ok(wire::live_fail(
                StatusCode::UNAUTHORIZED,
                PERMISSION_DENIED,
                "error.login.session_expired",
            ));
        }
        drop(t);
        let Some((_, user)) = self.user_json(address) else {
            return Ok(poisoned());
        };
        let Ok(mut t) = self.state.tokens.lock() else {
            return Ok(poisoned());
        };
        let refresh = mint_refresh(&mut t, session, user_id, address, ends - now);
        let answer = grant(&mut t, session, user, &refresh, lifetime, &self.tamper());
        drop(t);
        bump(&c.live_refreshes_ok);
        Ok(answer)
    }

    /// `POST /api/v1/user/logout`: `{}`, and the session is over.
    pub(crate) fn live_logout(&self, req: &Request<Incoming>) -> Response<Body> {
        let token = wire::bearer(req);
        if !matches!(self.check(token.as_deref()), Check::Ok) {
            return wire::live_fail(
                StatusCode::UNAUTHORIZED,
                PERMISSION_DENIED,
                "error.unauthorized.token_invalid",
            );
        }
        if let (Some(token), Ok(mut t)) = (token, self.state.tokens.lock()) {
            let session = t.access.get(&token).and_then(|a| a.session);
            if let Some(s) = session.and_then(|id| t.sessions.get_mut(&id)) {
                s.logged_out = true;
            }
            for a in t.access.values_mut() {
                if a.session == session {
                    a.revoked = true;
                }
            }
        }
        bump(&self.state.counters.logouts);
        wire::json_response(StatusCode::OK, &json!({}))
    }

    /// The user behind a live access token, as `/api/v1/user/info` shows it.
    pub(crate) fn user_of<B>(&self, req: &Request<B>) -> Value {
        let token = wire::bearer(req).unwrap_or_default();
        let address = self.state.tokens.lock().ok().and_then(|t| {
            let session = t.access.get(&token)?.session?;
            t.sessions.get(&session).map(|s| s.address)
        });
        address
            .and_then(|a| self.user_json(a))
            .map_or(Value::Null, |(_, user)| user)
    }

    /// The address a live access token belongs to.
    pub(crate) fn address_of(&self, token: &str) -> Option<Address> {
        let t = self.state.tokens.lock().ok()?;
        let session = t.access.get(token)?.session?;
        t.sessions.get(&session).map(|s| s.address)
    }

    /// A user's id and the `user` object the live answers carry, in the
    /// shape of the live `GET /api/v1/user/info` (ethgas-api.md): clients
    /// such as python-ethgas pick their trading account from `accounts` by
    /// `type` (1 "Current", 2 "InPreconf").
    fn user_json(&self, address: Address) -> Option<(u64, Value)> {
        let wallets = self.state.live.lock().ok()?;
        let user = wallets.users.get(&address)?;
        let id = user.user_id;
        let account = |offset: u64, kind: u64, name: &str| json!({ "accountId": id * 2 + offset, "userId": id, "type": kind, "name": name, "status": 1, "updateDate": 1_751_854_737_000u64 });
        let address = format!("{address:#x}");
        Some((
            id,
            json!({
                "userId": id,
                "address": address,
                "status": 1,
                "userType": 1,
                "userClass": 1,
                "displayName": user.name,
                "payoutAddress": address,
                "collateralPerSlot": "0",
                "onchainPayout": true,
                "accounts": [account(0, 1, "Current"), account(1, 2, "InPreconf")],
            }),
        ))
    }
}

/// Mints a session's refresh token, ending `remaining` from now.
fn mint_refresh(t: &mut Tokens, session: u64, user_id: u64, address: Address, remaining: Duration) -> String {
    let (token, _) = t.mint(payload(user_id, address, "refresh_token", remaining));
    t.refresh.insert(
        token.clone(),
        RefreshToken {
            expires: Instant::now() + remaining,
            used: false,
            session: Some(session),
        },
    );
    token
}

/// Mints an access token for a session and answers verify or refresh with it
/// and the refresh cookie.
fn grant(
    t: &mut Tokens,
    session: u64,
    user: Value,
    refresh: &str,
    lifetime: Duration,
    tamper: &Tamper,
) -> Response<Body> {
    let now = Instant::now();
    let ends = t.sessions.get(&session).map_or(now, |s| s.ends);
    let expired = *tamper == Tamper::ExpiredExp;
    let expires = if expired { now } else { (now + lifetime).min(ends) };
    let (user_id, address) = t
        .sessions
        .get(&session)
        .map(|s| (s.user_id, s.address))
        .unwrap_or((0, Address::from([0; 20])));
    let mut claims = payload(user_id, address, "access_token", expires - now);
    if expired {
        claims["exp"] = json!(unix_now().saturating_sub(10));
    }
    let (token, claims) = t.mint(claims);
    t.access.insert(
        token.clone(),
        AccessToken {
            expires,
            revoked: false,
            session: Some(session),
        },
    );
    let header: Value = serde_json::from_str(super::tokens::JWT_HEADER).unwrap_or(Value::Null);
    let mut resp = wire::live_ok(json!({
        "user": user,
        "accessToken": { "data": { "header": header, "payload": claims }, "token": token },
    }));
    if *tamper == Tamper::NoRefreshToken {
        return resp;
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{REFRESH_COOKIE}={refresh}; Path=/; HttpOnly")) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The claims of a live token, as the reference shows them.
fn payload(user_id: u64, address: Address, access_type: &str, lifetime: Duration) -> Value {
    json!({
        "user": { "userId": user_id, "address": format!("{address:#x}"), "roles": ["ROLE_USER"] },
        "access_type": access_type,
        "iat": unix_now(),
        "exp": super::tokens::exp_after(lifetime),
    })
}

fn poisoned() -> Response<Body> {
    wire::live_fail(StatusCode::INTERNAL_SERVER_ERROR, 9999, "error.unexpected")
}
