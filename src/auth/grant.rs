//! What the API answered: the token pair a login or refresh yields
//! ([`Grant`]), the answer's parser ([`parse_grant`]) and JWT claims decoded
//! without verification; failures are [`AuthError`]s (`super::error`).
//!
//! Everything here is a pure function of the bytes received (and the wall
//! clock passed in), so the fuzzers can drive it: nothing may panic on any
//! input. A login method ([`super::method`]) calls these on the answers it
//! gets; the schedule ([`super::schedule`]) reads only the error class.

use std::time::Duration;

use base64::Engine as _;
use ethgas_api::REFRESH_COOKIE;
use http::header::{HeaderValue, RETRY_AFTER};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

pub use super::error::{AuthError, error_chain, quote};
use crate::secret::Secret;

/// A token pair read from a login or refresh answer.
pub struct Grant {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub lifetime: Duration,
    /// Where the lifetime came from, for the log line.
    pub lifetime_source: &'static str,
    /// How long the session lasts from now, when the API says: the refresh
    /// token's own JWT `exp`. After it only a login works (the live API's
    /// sessions end after 7 days). `None`: no end known, refreshes go on.
    pub session_lifetime: Option<Duration>,
    /// A warning about the answer (e.g. an `exp` in the past), for the log.
    pub note: Option<String>,
    /// The wallet login's `chainId` (from the challenge's typed data), which
    /// the placeholder challenges given to programs repeat.
    pub chain_id: Option<u64>,
}

/// The human message of an envelope, in any of the shapes seen in the wild:
/// the documented `message`, the live `errorMsg` (top level or in `data`),
/// `error`. The live API's `errorMsgKey` leads it when there is one
/// (`error.login.address_unknown: …`): the live API often sends no text at
/// all, and the key is what its error table and an operator search for.
fn envelope_message(v: &Value) -> Option<String> {
    let pick = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let live = |k: &str| pick(v, k).or_else(|| v.get("data").and_then(|d| pick(d, k)));
    let text = pick(v, "message")
        .or_else(|| live("errorMsg"))
        .or_else(|| pick(v, "error"));
    let message = match (live("errorMsgKey"), text) {
        (Some(key), Some(text)) if text != key => format!("{key}: {text}"),
        (Some(key), _) => key,
        (None, Some(text)) => text,
        (None, None) => return None,
    };
    Some(quote(&message))
}

fn number_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The documented envelope's `code`.
fn code_of(v: &Value) -> Option<i64> {
    number_of(v.get("code")?)
}

/// The live envelope's `errorCode`, at the top level (as python-ethgas
/// reads it) or inside `data`.
fn error_code_of(v: &Value) -> Option<i64> {
    v.get("errorCode")
        .and_then(number_of)
        .or_else(|| v.get("data")?.get("errorCode").and_then(number_of))
}

/// The shortest token lifetime the sidecar can work with.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The longest token lifetime believed. Further out is not a lifetime (a JWT
/// `exp` in milliseconds, say), and `sent + lifetime` would overflow the clock.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);

/// Seconds as a duration, from an integer, a float or a numeric string.
fn seconds_of(v: &Value) -> Result<Option<Duration>, String> {
    let secs = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let lifetime = secs
        .filter(|s| s.is_finite() && *s > 0.0 && *s < MAX_LIFETIME.as_secs_f64())
        .map(Duration::from_secs_f64);
    match (secs, lifetime) {
        // Below a nanosecond, a positive number still makes no lifetime at all.
        (_, Some(d)) if !d.is_zero() => Ok(Some(d)),
        (Some(s), _) => Err(format!("{s} is not a positive number of seconds")),
        (None, _) => match v {
            Value::String(s) => Err(format!("{} is not a number of seconds", quote(s))),
            _ => Err(format!("{} is not a number of seconds", quote(&v.to_string()))),
        },
    }
}

/// One claim of a JWT, decoded but not verified.
pub fn jwt_claim(token: &str, name: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let mut claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get_mut(name).map(Value::take)
}

/// The `exp` claim of a JWT, decoded but not verified.
pub fn jwt_exp(token: &str) -> Option<u64> {
    match jwt_claim(token, "exp")? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Reads a login or refresh answer. `now_unix` is the wall clock in whole
/// seconds (for the JWT `exp`); `default_lifetime` applies when the answer
/// gives no lifetime. The auth task calls [`parse_grant_at`] with the clock
/// to the nanosecond.
///
/// Success needs a 2xx status, a `code` of 200 or 1 (or none), and a non-empty
/// `data.accessToken`. A 401/403 (or other 4xx) or a success status with an
/// error code is a rejection; 5xx, 408 and 429 are server trouble; anything
/// unreadable is garbage. This function is a fuzz target: it must not panic.
pub fn parse_grant(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: u64,
    default_lifetime: Duration,
) -> Result<Grant, AuthError> {
    parse_grant_at(status, headers, body, Duration::from_secs(now_unix), default_lifetime)
}

/// [`parse_grant`] with the wall clock as the time since the Unix epoch, to
/// the nanosecond: a JWT `exp` is a whole second, and the token's lifetime
/// is what is left of it from `now`, not from the start of `now`'s second.
pub fn parse_grant_at(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: Duration,
    default_lifetime: Duration,
) -> Result<Grant, AuthError> {
    let v = answer_data(status, headers, body)?;
    grant_of(&v, headers, now, default_lifetime)
}

/// Checks an auth answer of either flavour — the documented
/// `{code, message, data}` or the live `{success, data}` with
/// `errorCode`/`errorMsgKey` (at the top level or inside `data`) — and
/// returns it parsed when it is a success with a `data` object. Failures are
/// classed as [`parse_grant`] says. A fuzz target through it.
pub fn answer_data(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Value, AuthError> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let code = status.as_u16();
    if status.is_server_error() || code == 408 || code == 429 {
        let message = parsed
            .as_ref()
            .ok()
            .and_then(envelope_message)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(AuthError::Server {
            status: code,
            message,
            retry_after,
        });
    }
    if status.is_client_error() {
        let v = parsed.as_ref().ok();
        return Err(AuthError::Rejected {
            status: code,
            code: v
                .and_then(|v| code_of(v).or_else(|| error_code_of(v)))
                .unwrap_or(i64::from(code)),
            message: v
                .and_then(envelope_message)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("refused").to_string()),
        });
    }
    if !status.is_success() {
        return Err(AuthError::Garbage {
            status: code,
            detail: "expected a 2xx status".into(),
        });
    }
    let v = parsed.map_err(|e| AuthError::Garbage {
        status: code,
        detail: quote(&e.to_string()),
    })?;
    if !v.is_object() {
        return Err(AuthError::Garbage {
            status: code,
            detail: "the body is not a JSON object".into(),
        });
    }
    // A success status with an error code: the codes that speak of the
    // credentials (401, 403; the live API's 2 and 1000, permission denied)
    // or of a malformed request (1001) are a refusal; "operation failed"
    // (1002), "unexpected" (99, 9999) and the like are the server's trouble
    // and are retried like a 5xx.
    let refused = |api_code: i64| {
        let message = envelope_message(&v).unwrap_or_else(|| "no message".into());
        if matches!(api_code, 401 | 403 | 2 | 1000 | 1001) {
            AuthError::Rejected {
                status: code,
                code: api_code,
                message,
            }
        } else {
            AuthError::Server {
                status: code,
                message: format!("code {api_code}: {message}"),
                retry_after: None,
            }
        }
    };
    match v.get("code") {
        None | Some(Value::Null) => {}
        Some(_) => match code_of(&v) {
            Some(200) | Some(1) => {}
            Some(other) => return Err(refused(other)),
            None => {
                return Err(AuthError::Shape {
                    field: "code",
                    detail: "not a number".into(),
                });
            }
        },
    }
    if v.get("success").and_then(Value::as_bool) == Some(false) {
        return Err(refused(error_code_of(&v).unwrap_or(401)));
    }
    if !v.get("data").is_some_and(Value::is_object) {
        return Err(AuthError::Shape {
            field: "data",
            detail: "missing or not an object".into(),
        });
    }
    Ok(v)
}

/// The value of the `x_auth_refresh_token` cookie a response sets, if any.
pub fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(name, _)| name.trim() == REFRESH_COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
}

/// The token pair of a successful answer: `data.accessToken` as a string
/// (documented) or as an object whose `token` is the JWT (live); the refresh
/// token as `data.refreshToken` or, on the live API, the
/// `x_auth_refresh_token` cookie.
fn grant_of(v: &Value, headers: &HeaderMap, now: Duration, default_lifetime: Duration) -> Result<Grant, AuthError> {
    let data = v.get("data").unwrap_or(&Value::Null);
    let (access, field) = match data.get("accessToken") {
        Some(Value::String(s)) if !s.trim().is_empty() => (s.trim().to_string(), "data.accessToken"),
        Some(Value::Object(o)) => match o.get("token") {
            Some(Value::String(s)) if !s.trim().is_empty() => (s.trim().to_string(), "data.accessToken.token"),
            _ => {
                return Err(AuthError::Shape {
                    field: "data.accessToken.token",
                    detail: "missing, empty or not a string".into(),
                });
            }
        },
        _ => {
            return Err(AuthError::Shape {
                field: "data.accessToken",
                detail: "missing, empty or not a string (or an object with a `token`)".into(),
            });
        }
    };
    let refresh = match data.get("refreshToken") {
        None | Some(Value::Null) => refresh_cookie(headers)
            .filter(|c| HeaderValue::from_str(c).is_ok())
            .map(Secret::new),
        Some(Value::String(s)) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
        Some(Value::String(_)) => None,
        Some(_) => {
            return Err(AuthError::Shape {
                field: "data.refreshToken",
                detail: "not a string".into(),
            });
        }
    };
    // A header value must not carry control characters; a token that cannot
    // be sent is no token.
    if HeaderValue::from_str(&access).is_err() {
        return Err(AuthError::Shape {
            field,
            detail: "contains characters not allowed in an HTTP header".into(),
        });
    }
    let expires_in = seconds_of(data.get("expiresIn").unwrap_or(&Value::Null)).map_err(|detail| AuthError::Shape {
        field: "data.expiresIn",
        detail,
    })?;
    let mut note = None;
    let now_unix = now.as_secs();
    let from_exp = match jwt_exp(&access) {
        Some(exp) if exp > now_unix && exp - now_unix <= MAX_LIFETIME.as_secs() => {
            Some(Duration::from_secs(exp).saturating_sub(now))
        }
        Some(exp) if exp > now_unix => {
            note = Some(format!(
                "the token's JWT exp ({exp}) is more than ten years after this host's clock ({now_unix}); ignoring it — is it in milliseconds?"
            ));
            None
        }
        // Expired when it came: no token is sent after its expiry, whatever
        // `expiresIn` says.
        Some(exp) => {
            return Err(AuthError::Shape {
                field: "accessToken exp",
                detail: format!(
                    "the token expired (JWT exp {exp}) before it came (this host's clock: {now_unix}); is the clock right?"
                ),
            });
        }
        None => None,
    };
    let (lifetime, lifetime_source) = match (expires_in, from_exp) {
        (Some(a), Some(b)) if b < a => (b, "JWT exp"),
        (Some(a), _) => (a, "expiresIn"),
        (None, Some(b)) => (b, "JWT exp"),
        (None, None) => (default_lifetime, "auth.default_lifetime"),
    };
    // A token that expires within a second cannot be used (and would be
    // renewed in a tight loop): treat it as a broken answer, retried with
    // the schedule's backoff.
    if lifetime < MIN_LIFETIME {
        return Err(AuthError::Shape {
            field: if lifetime_source == "JWT exp" {
                "accessToken exp"
            } else {
                "data.expiresIn"
            },
            detail: format!(
                "a lifetime of {} is too short to use (at least 1s)",
                humantime::format_duration(Duration::from_millis(lifetime.as_millis() as u64))
            ),
        });
    }
    let session_lifetime = refresh.as_ref().and_then(|r| session_lifetime(r.expose(), now));
    Ok(Grant {
        access: Secret::new(access),
        refresh,
        lifetime,
        lifetime_source,
        session_lifetime,
        note,
        chain_id: None,
    })
}

/// How long a refresh token lasts from `now` (the wall clock since the
/// epoch), by its JWT `exp`: zero when it has passed (the session is over,
/// only a login works). `None` when it has no `exp`, or an implausibly far
/// one (then the API is the judge: a refused refresh falls back to a login
/// anyway).
pub(super) fn session_lifetime(refresh: &str, now: Duration) -> Option<Duration> {
    let exp = jwt_exp(refresh)?;
    (exp.saturating_sub(now.as_secs()) <= MAX_LIFETIME.as_secs()).then(|| Duration::from_secs(exp).saturating_sub(now))
}

#[cfg(test)]
mod tests;
