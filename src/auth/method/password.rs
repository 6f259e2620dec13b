//! The documented login: username and password in a JSON body, the refresh
//! token as the bearer of the refresh call, `{code, message, data}` answers
//! read by [`crate::auth::grant::parse_grant`].

use std::time::Duration;

use bytes::Bytes;

use super::Held;
use crate::auth::caller::{Caller, Post};
use crate::auth::grant::{AuthError, Grant};
use crate::config::AuthSettings;
use crate::secret::Secret;

/// The account and the endpoints of the password login.
pub(in crate::auth) struct Password {
    username: String,
    password: Secret,
    login_path: String,
    refresh_path: String,
    logout_path: String,
    /// Lifetime assumed when an answer gives neither `expiresIn` nor a JWT `exp`.
    default_lifetime: Duration,
}

impl Password {
    pub(super) fn from_settings(settings: &AuthSettings, username: &str, password: &Secret) -> Password {
        Password {
            username: username.to_string(),
            password: password.clone(),
            login_path: settings.login_path.clone(),
            refresh_path: settings.refresh_path.clone(),
            logout_path: settings.logout_path.clone(),
            default_lifetime: settings.default_lifetime,
        }
    }

    pub(super) fn username(&self) -> &str {
        &self.username
    }

    pub(super) fn credentials_differ(&self, other: &Password) -> bool {
        self.username != other.username || self.password != other.password || self.login_path != other.login_path
    }

    /// `POST login_path` with `{"username", "password"}`.
    pub(super) async fn login(&self, http: &Caller) -> Result<Grant, AuthError> {
        let body = serde_json::json!({
            "username": self.username,
            "password": self.password.expose(),
        });
        let answer = http
            .post(Post {
                path: &self.login_path,
                key: "auth.login_path",
                bearer: None,
                json: Some(Bytes::from(body.to_string())),
                refresh_cookie: None,
            })
            .await?;
        answer.grant(self.default_lifetime)
    }

    /// `POST refresh_path` with the refresh token as the bearer.
    pub(super) async fn refresh(&self, http: &Caller, held: Held<'_>) -> Result<Grant, AuthError> {
        let answer = http
            .post(Post {
                path: &self.refresh_path,
                key: "auth.refresh_path",
                bearer: Some(held.refresh),
                json: None,
                refresh_cookie: None,
            })
            .await?;
        answer.grant(self.default_lifetime)
    }

    /// `POST logout_path` with the access token as the bearer.
    pub(super) async fn logout(&self, http: &Caller, access: &Secret) -> Result<(), AuthError> {
        let answer = http
            .post(Post {
                path: &self.logout_path,
                key: "auth.logout_path",
                bearer: Some(access),
                json: None,
                refresh_cookie: None,
            })
            .await?;
        if answer.status.is_success() {
            return Ok(());
        }
        Err(AuthError::Rejected {
            status: answer.status.as_u16(),
            code: i64::from(answer.status.as_u16()),
            message: answer.status.canonical_reason().unwrap_or("refused").to_string(),
        })
    }
}
