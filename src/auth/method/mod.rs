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
//! Two methods: [`password`] (the documented username and password login)
//! and [`wallet`] (the live API's EIP-712 wallet login: two calls to log in,
//! the refresh token in a cookie).

mod password;
mod wallet;

use super::caller::Caller;
use super::grant::{AuthError, Grant};
use super::schedule::Step;
use crate::config::{AuthSettings, Credentials};
use crate::secret::Secret;

/// The tokens a refresh may need: the refresh token, and the access token
/// for APIs that also want it (the live API's refresh does).
pub(super) struct Held<'a> {
    pub refresh: &'a Secret,
    pub access: Option<&'a Secret>,
}

/// The configured login method.
pub(super) enum Method {
    Password(password::Password),
    Wallet(wallet::Wallet),
}

impl Method {
    pub(super) fn from_settings(settings: &AuthSettings) -> Method {
        match &settings.credentials {
            Credentials::Password { username, password, .. } => {
                Method::Password(password::Password::from_settings(settings, username, password))
            }
            Credentials::Wallet {
                key,
                address,
                display_name,
                ..
            } => Method::Wallet(wallet::Wallet::from_settings(
                settings,
                key,
                address,
                display_name.as_deref(),
            )),
        }
    }

    /// `auth.method` as written in the config.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Method::Password(_) => "password",
            Method::Wallet(_) => "wallet",
        }
    }

    /// The account, as log lines, `/readyz` and the status name it.
    pub(super) fn account(&self) -> &str {
        match self {
            Method::Password(p) => p.username(),
            Method::Wallet(w) => w.address(),
        }
    }

    /// Whether `other` logs in as someone else, or with other credentials:
    /// then a reload must log in again.
    pub(super) fn credentials_differ(&self, other: &Method) -> bool {
        match (self, other) {
            (Method::Password(a), Method::Password(b)) => a.credentials_differ(b),
            (Method::Wallet(a), Method::Wallet(b)) => a.credentials_differ(b),
            _ => true,
        }
    }

    /// What the credentials are called in messages ("the password").
    pub(super) fn credential_hint(&self) -> &'static str {
        match self {
            Method::Password(_) => "check auth.username and the password source",
            Method::Wallet(_) => "check that the key (auth.private_key_* or auth.keystore_file) is the account's",
        }
    }

    /// How many calls to the API a step takes: a wallet login is two (the
    /// challenge and the verify). What the pace counts.
    pub(super) fn calls(&self, step: Step) -> u32 {
        match (self, step) {
            (Method::Wallet(_), Step::Login) => 2,
            _ => 1,
        }
    }

    pub(super) async fn login(&self, http: &Caller) -> Result<Grant, AuthError> {
        match self {
            Method::Password(p) => p.login(http).await,
            Method::Wallet(w) => w.login(http).await,
        }
    }

    pub(super) async fn refresh(&self, http: &Caller, held: Held<'_>) -> Result<Grant, AuthError> {
        match self {
            Method::Password(p) => p.refresh(http, held).await,
            Method::Wallet(w) => w.refresh(http, held).await,
        }
    }

    /// Ends the session upstream. `Err` with a rejection: the API answered
    /// with an error status.
    pub(super) async fn logout(&self, http: &Caller, access: &Secret) -> Result<(), AuthError> {
        match self {
            Method::Password(p) => p.logout(http, access).await,
            Method::Wallet(w) => w.logout(http, access).await,
        }
    }
}
