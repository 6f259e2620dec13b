//! The tokens the mock issued, and the checks a bearer token goes through.
//!
//! Tokens are JWT-shaped (base64url header, claims, random signature) so the
//! sidecar can read `exp` from them as it does from the real API's, but the
//! mock never verifies a signature: a token is valid because it is in this
//! store, unexpired and not revoked. Expiry is kept on the monotonic clock;
//! the `exp` claim is the wall-clock second at or before it, so a client that
//! trusts `exp` never holds a token the mock already considers expired.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::Request;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Mock;
use super::counters::bump;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(crate) struct AccessToken {
    pub(crate) expires: Instant,
    pub(crate) revoked: bool,
}

pub(crate) struct RefreshToken {
    pub(crate) expires: Instant,
    /// Documented flavour: a refresh token works once (rotation).
    pub(crate) used: bool,
}

#[derive(Default)]
pub(crate) struct Tokens {
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshToken>,
    /// The next `jti` claim: every token the mock mints is distinct.
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
    /// A JWT-shaped token with these claims (a `jti` is added).
    pub(crate) fn mint(&mut self, mut claims: Value) -> String {
        self.serial += 1;
        if let Some(map) = claims.as_object_mut() {
            map.insert("jti".into(), json!(self.serial));
        }
        let mut sig = [0u8; 24];
        rand::fill(&mut sig);
        format!(
            "{}.{}.{}",
            B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            B64.encode(claims.to_string()),
            B64.encode(sig)
        )
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

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
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
    pub(crate) message: &'static str,
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
            },
            Check::Unknown => Refusal {
                message: "Unauthorized: unknown token",
            },
            Check::Revoked => Refusal {
                message: "Unauthorized: token revoked",
            },
            Check::Expired => {
                bump(&c.expired_in_use);
                Refusal {
                    message: "Unauthorized: token expired",
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
    use std::time::Duration;

    #[test]
    fn minted_tokens_carry_their_claims_and_differ() {
        let mut t = Tokens::default();
        let a = t.mint(json!({ "exp": 123, "sub": "user_123" }));
        let b = t.mint(json!({ "exp": 123, "sub": "user_123" }));
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
        t.access.insert(
            "ok".into(),
            AccessToken {
                expires: later,
                revoked: false,
            },
        );
        t.access.insert(
            "revoked".into(),
            AccessToken {
                expires: later,
                revoked: true,
            },
        );
        t.access.insert(
            "old".into(),
            AccessToken {
                expires: now,
                revoked: false,
            },
        );
        assert!(matches!(t.check(Some("ok"), now), Check::Ok));
        assert!(matches!(t.check(Some("ok"), later), Check::Expired));
        assert!(matches!(t.check(Some("revoked"), now), Check::Revoked));
        assert!(matches!(t.check(Some("old"), now), Check::Expired));
        assert!(matches!(t.check(Some("other"), now), Check::Unknown));
        assert!(matches!(t.check(None, now), Check::Missing));
    }
}
