//! The tokens the mock issued, and the checks a bearer token goes through.
//!
//! Tokens are JWT-shaped (base64url header, claims, random signature) so the
//! sidecar can read `exp` from them as it does from the real API's, but the
//! mock never verifies a signature: a token is valid because it is in this
//! store, unexpired and not revoked. Expiry is kept on the monotonic clock;
//! the `exp` claim is the wall-clock second at or before it, so a client that
//! trusts `exp` never holds a token the mock already considers expired.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::Request;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Mock;
use super::counters::bump;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The header of every token the mock mints.
pub(crate) const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

pub(crate) struct AccessToken {
    pub(crate) expires: Instant,
    pub(crate) revoked: bool,
    /// Live flavour: the wallet session it belongs to.
    pub(crate) session: Option<u64>,
}

pub(crate) struct RefreshToken {
    pub(crate) expires: Instant,
    /// Spent: documented flavour, a refresh token works once (rotation);
    /// either flavour, revoked by a test.
    pub(crate) used: bool,
    /// Live flavour: the wallet session it belongs to.
    pub(crate) session: Option<u64>,
}

/// A live-flavour session: one wallet login, and the refreshes it allows
/// until `ends` (the refresh token's `exp`).
pub(crate) struct Session {
    pub(crate) user_id: u64,
    pub(crate) address: alloy_primitives::Address,
    pub(crate) ends: Instant,
    /// Ended early by a logout.
    pub(crate) logged_out: bool,
}

#[derive(Default)]
pub(crate) struct Tokens {
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshToken>,
    pub(crate) sessions: HashMap<u64, Session>,
    /// The last `jti` claim (and session id) handed out: all distinct.
    serial: u64,
}

/// The outcome of checking an access token.
pub(crate) enum Check {
    Ok,
    Missing,
    Unknown,
    Revoked,
    Expired,
}

impl Tokens {
    /// A JWT-shaped token with these claims, a `jti` added; returns the
    /// token and the claims it carries.
    pub(crate) fn mint(&mut self, mut claims: Value) -> (String, Value) {
        let jti = self.next_serial();
        if let Some(map) = claims.as_object_mut() {
            map.insert("jti".into(), json!(jti));
        }
        let mut sig = [0u8; 24];
        rand::fill(&mut sig);
        let token = format!(
            "{}.{}.{}",
            B64.encode(JWT_HEADER),
            B64.encode(claims.to_string()),
            B64.encode(sig)
        );
        (token, claims)
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    pub(crate) fn check(&self, token: Option<&str>, now: Instant) -> Check {
        let Some(token) = token else { return Check::Missing };
        match self.access.get(token) {
            None => Check::Unknown,
            Some(a) if a.revoked => Check::Revoked,
            Some(a) if now >= a.expires => Check::Expired,
            Some(_) => Check::Ok,
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The `exp` claim for a token that expires `lifetime` from now: the whole
/// second at or before that instant.
pub(crate) fn exp_after(lifetime: Duration) -> u64 {
    SystemTime::now()
        .checked_add(lifetime)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A claim of a JWT-shaped token, decoded but not verified.
pub(crate) fn claim(token: &str, name: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64.decode(payload.trim_end_matches('=')).ok()?;
    let mut claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get_mut(name).map(Value::take)
}

/// Why a private request was refused, for the 401's message.
pub(crate) struct Refusal {
    /// The documented flavour's `message`.
    pub(crate) message: &'static str,
    /// The live flavour's `errorMsgKey`.
    pub(crate) key: &'static str,
}

impl Mock {
    /// Checks an access token as a private endpoint does.
    pub(crate) fn check(&self, token: Option<&str>) -> Check {
        self.state
            .tokens
            .lock()
            .map(|t| t.check(token, Instant::now()))
            .unwrap_or(Check::Unknown)
    }

    /// Whether `token` is an access token this mock issued (any state).
    pub fn issued(&self, token: &str) -> bool {
        self.state
            .tokens
            .lock()
            .map(|t| t.access.contains_key(token))
            .unwrap_or(false)
    }

    /// Whether `token` is an access token that is valid right now.
    pub fn is_valid(&self, token: &str) -> bool {
        matches!(self.check(Some(token)), Check::Ok)
    }

    /// When a valid access token expires.
    pub(crate) fn expiry(&self, token: &str) -> Option<Instant> {
        self.state.tokens.lock().ok()?.access.get(token).map(|a| a.expires)
    }

    /// Checks the bearer token of a private request and counts the outcome;
    /// `Err` says why it is refused.
    pub(crate) fn guard<B>(&self, req: &Request<B>) -> Result<(), Refusal> {
        let c = &self.state.counters;
        let token = super::wire::bearer(req);
        let check = if self.rejects_all() {
            Check::Revoked
        } else {
            self.check(token.as_deref())
        };
        let refusal = match check {
            Check::Ok => {
                bump(&c.private_ok);
                return Ok(());
            }
            Check::Missing => Refusal {
                message: "Unauthorized: no bearer token",
                key: "error.unauthorized.no_token",
            },
            Check::Unknown => Refusal {
                message: "Unauthorized: unknown token",
                key: "error.unauthorized.unknown_token",
            },
            Check::Revoked => Refusal {
                message: "Unauthorized: token revoked",
                key: "error.unauthorized.token_revoked",
            },
            Check::Expired => {
                bump(&c.expired_in_use);
                Refusal {
                    message: "Unauthorized: token expired",
                    key: "error.unauthorized.token_expired",
                }
            }
        };
        bump(&c.private_unauthorized);
        Err(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_carry_their_claims_and_differ() {
        let mut t = Tokens::default();
        let (a, claims) = t.mint(json!({ "exp": 123, "sub": "user_123" }));
        let (b, _) = t.mint(json!({ "exp": 123, "sub": "user_123" }));
        assert_eq!(claims, json!({ "exp": 123, "sub": "user_123", "jti": 1 }));
        assert_ne!(a, b);
        assert_eq!(claim(&a, "exp"), Some(json!(123)));
        assert_eq!(claim(&a, "jti"), Some(json!(1)));
        assert_eq!(claim(&b, "jti"), Some(json!(2)));
        assert_eq!(claim("not-a-jwt", "exp"), None);
    }

    #[test]
    fn checks() {
        let mut t = Tokens::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let token = |expires, revoked| AccessToken {
            expires,
            revoked,
            session: None,
        };
        t.access.insert("ok".into(), token(later, false));
        t.access.insert("revoked".into(), token(later, true));
        t.access.insert("old".into(), token(now, false));
        assert!(matches!(t.check(Some("ok"), now), Check::Ok));
        assert!(matches!(t.check(Some("ok"), later), Check::Expired));
        assert!(matches!(t.check(Some("revoked"), now), Check::Revoked));
        assert!(matches!(t.check(Some("old"), now), Check::Expired));
        assert!(matches!(t.check(Some("other"), now), Check::Unknown));
        assert!(matches!(t.check(None, now), Check::Missing));
    }

    #[test]
    fn exp_is_never_after_the_real_expiry() {
        let before = unix_now();
        let exp = exp_after(Duration::from_millis(2500));
        assert!(exp >= before + 2 && exp <= before + 3, "{before} {exp}");
    }
}
