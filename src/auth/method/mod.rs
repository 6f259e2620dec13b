//! The ways of obtaining a grant: one module per login method.
//!
//! A method knows what to send to log in, to refresh and to log out, and how
//! to read the answers into a [`Grant`]; it knows nothing of timing, retries
//! or the token cell. The task ([`super::task`]) calls it through [`Method`]
//! and treats every method alike: a login or refresh yields a `Grant` (an
//! access token, perhaps a refresh token, the access token's lifetime and,
//! when the API says so, when the session itself ends) or an [`AuthError`]
//! whose class the schedule reads.
//!
//! Today there is one method, [`password`] (the documented username and
//! password login). A second one — the live API's EIP-712 wallet login, two
//! calls to log in, the refresh token in a cookie — plugs in as another
//! variant beside it.

mod password;

use super::caller::Caller;
use super::grant::{AuthError, Grant};
use crate::config::AuthSettings;
use crate::secret::Secret;

/// The tokens a refresh may need: the refresh token, and the access token
/// for APIs that also want it (the live API's refresh does).
pub(super) struct Held<'a> {
    pub refresh: &'a Secret,
    #[allow(dead_code)] // read by the next method (wallet), not by password
    pub access: Option<&'a Secret>,
}

/// The configured login method.
pub(super) enum Method {
    Password(password::Password),
}

impl Method {
    pub(super) fn from_settings(settings: &AuthSettings) -> Method {
        Method::Password(password::Password::from_settings(settings))
    }

    /// The account, as log lines, `/readyz` and the status name it.
    pub(super) fn account(&self) -> &str {
        match self {
            Method::Password(p) => p.username(),
        }
    }

    /// Whether `other` logs in as someone else, or with other credentials:
    /// then a reload must log in again.
    pub(super) fn credentials_differ(&self, other: &Method) -> bool {
        match (self, other) {
            (Method::Password(a), Method::Password(b)) => a.credentials_differ(b),
        }
    }

    /// What the credentials are called in messages ("the password").
    pub(super) fn credential_hint(&self) -> &'static str {
        match self {
            Method::Password(_) => "check auth.username and the password source",
        }
    }

    pub(super) async fn login(&self, http: &Caller) -> Result<Grant, AuthError> {
        match self {
            Method::Password(p) => p.login(http).await,
        }
    }

    pub(super) async fn refresh(&self, http: &Caller, held: Held<'_>) -> Result<Grant, AuthError> {
        match self {
            Method::Password(p) => p.refresh(http, held).await,
        }
    }

    /// Ends the session upstream. `Err` with a rejection: the API answered
    /// with an error status.
    pub(super) async fn logout(&self, http: &Caller, access: &Secret) -> Result<(), AuthError> {
        match self {
            Method::Password(p) => p.logout(http, access).await,
        }
    }
}
