//! The live API's login: an EIP-712 signature of the account's Ethereum key.
//!
//! Logging in is two calls: `POST login?addr=…[&name=…]` returns a challenge
//! (`nonceHash` and the typed data to sign, as a JSON string); the signature
//! goes back in `POST login/verify?addr=…&nonceHash=…&signature=0x…`, which
//! answers the access token as `data.accessToken.token` and the refresh token
//! in the `x_auth_refresh_token` cookie. A refresh is
//! `POST login/refresh?refreshToken=…` with the access token as the bearer
//! (and the cookie). Every answer is `{success, data}`; failures carry
//! `errorCode`/`errorMsgKey`, with HTTP 200 or 4xx/5xx alike — read by the
//! same [`answer_data`] as the documented flavour. The typed data is parsed
//! as sent (its domain, chain id included, is never assumed).
//!
//! The key never leaves the process: only signatures and the address do.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::Held;
use crate::auth::caller::{Caller, Post, with_query};
use crate::auth::grant::{AuthError, Grant, answer_data, quote};
use crate::config::AuthSettings;
use crate::eth::{Address, WalletKey};
use crate::secret::Secret;

/// The account key and the endpoints of the wallet login.
pub(in crate::auth) struct Wallet {
    key: Arc<WalletKey>,
    /// Checksummed, as logs and `/readyz` show it.
    address: String,
    /// Lower case, as the live clients send it in `addr`.
    addr_param: String,
    display_name: Option<String>,
    login_path: String,
    verify_path: String,
    refresh_path: String,
    logout_path: String,
    default_lifetime: Duration,
}

impl Wallet {
    pub(super) fn from_settings(
        settings: &AuthSettings,
        key: &Arc<WalletKey>,
        address: &Address,
        display_name: Option<&str>,
    ) -> Wallet {
        Wallet {
            key: key.clone(),
            address: address.to_string(),
            addr_param: format!("{address:#x}"),
            display_name: display_name.map(str::to_string),
            login_path: settings.login_path.clone(),
            verify_path: settings.verify_path.clone(),
            refresh_path: settings.refresh_path.clone(),
            logout_path: settings.logout_path.clone(),
            default_lifetime: settings.default_lifetime,
        }
    }

    pub(super) fn address(&self) -> &str {
        &self.address
    }

    pub(super) fn credentials_differ(&self, other: &Wallet) -> bool {
        self.address != other.address
            || self.display_name != other.display_name
            || self.login_path != other.login_path
            || self.verify_path != other.verify_path
    }

    /// Challenge, signature, verify.
    pub(super) async fn login(&self, http: &Caller) -> Result<Grant, AuthError> {
        let mut params = vec![("addr", self.addr_param.as_str())];
        if let Some(name) = &self.display_name {
            params.push(("name", name.as_str()));
        }
        let path = with_query(&self.login_path, &params);
        let answer = http.post(post("auth.login_path", &path, None, None)).await?;
        let v = answer_data(answer.status, &answer.headers, &answer.body)?;
        let (nonce_hash, typed_data) = challenge(&v)?;
        let signature = self.key.sign_typed_data(&typed_data).map_err(|e| AuthError::Shape {
            field: "data.eip712Message",
            detail: quote(&e.to_string()),
        })?;
        let path = with_query(
            &self.verify_path,
            &[
                ("addr", self.addr_param.as_str()),
                ("nonceHash", nonce_hash.as_str()),
                ("signature", signature.as_str()),
            ],
        );
        let answer = http.post(post("auth.verify_path", &path, None, None)).await?;
        let mut grant = answer.grant(self.default_lifetime)?;
        grant.chain_id = chain_id(&typed_data);
        Ok(grant)
    }

    /// `POST refresh?refreshToken=…` with the access token as the bearer and
    /// the refresh token as the cookie too.
    pub(super) async fn refresh(&self, http: &Caller, held: Held<'_>) -> Result<Grant, AuthError> {
        let path = with_query(&self.refresh_path, &[("refreshToken", held.refresh.expose())]);
        let answer = http
            .post(post("auth.refresh_path", &path, held.access, Some(held.refresh)))
            .await?;
        answer.grant(self.default_lifetime)
    }

    /// `POST logout` with the access token as the bearer; the live API
    /// answers `{}` (or `{success: true}`).
    pub(super) async fn logout(&self, http: &Caller, access: &Secret) -> Result<(), AuthError> {
        let answer = http
            .post(post("auth.logout_path", &self.logout_path, Some(access), None))
            .await?;
        let refused = serde_json::from_slice::<Value>(&answer.body)
            .is_ok_and(|v| v.get("success").and_then(Value::as_bool) == Some(false));
        if answer.status.is_success() && !refused {
            return Ok(());
        }
        Err(AuthError::Rejected {
            status: answer.status.as_u16(),
            code: i64::from(answer.status.as_u16()),
            message: answer.status.canonical_reason().unwrap_or("refused").to_string(),
        })
    }
}

fn post<'a>(key: &'static str, path: &'a str, bearer: Option<&'a Secret>, cookie: Option<&'a Secret>) -> Post<'a> {
    Post {
        path,
        key,
        bearer,
        json: None,
        refresh_cookie: cookie,
    }
}

/// The `nonceHash` and the typed data (as JSON text) of a login challenge.
/// The typed data may come as a JSON string (as published) or as an object.
pub(in crate::auth) fn challenge(v: &Value) -> Result<(String, String), AuthError> {
    let data = v.get("data").unwrap_or(&Value::Null);
    let nonce = match data.get("nonceHash") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(AuthError::Shape {
                field: "data.nonceHash",
                detail: "missing, empty or not a string".into(),
            });
        }
    };
    let typed = match data.get("eip712Message") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(o @ Value::Object(_)) => o.to_string(),
        _ => {
            return Err(AuthError::Shape {
                field: "data.eip712Message",
                detail: "missing, or neither a JSON string nor an object".into(),
            });
        }
    };
    Ok((nonce, typed))
}

/// The `domain.chainId` of login typed data (a number, a decimal string or
/// a `0x` hex string; the document may come once more as a JSON string).
fn chain_id(typed_data: &str) -> Option<u64> {
    let mut v: Value = serde_json::from_str(typed_data).ok()?;
    if let Value::String(inner) = &v {
        v = serde_json::from_str(inner).ok()?;
    }
    match v.get("domain")?.get("chainId")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}
