//! The logout at shutdown (`auth.logout_on_shutdown`): the session's token
//! handed back to the API, bounded, and taken out of the cell whatever the
//! answer; a failure only means the token expires on its own.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::Authenticator;
use crate::auth::grant::AuthError;
use crate::metrics::{AuthKind, AuthResult};

/// How long a logout at shutdown may take at most.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

impl Authenticator {
    pub(super) async fn logout(&mut self) {
        if !self.logout_on_shutdown {
            return;
        }
        let Some(session) = self.current().filter(|s| s.is_valid(Instant::now())) else {
            return;
        };
        let limit = self.http.timeout().min(LOGOUT_TIMEOUT);
        let result = tokio::time::timeout(limit, self.method.logout(&self.http, session.access_token())).await;
        self.cell.store(None);
        match result {
            Ok(Ok(())) => {
                self.metrics.auth(AuthKind::Logout, AuthResult::Success);
                info!(username = %self.method.account(), "logged out");
            }
            Ok(Err(AuthError::Rejected { status, .. })) => {
                self.metrics.auth(AuthKind::Logout, AuthResult::Rejected);
                warn!(
                    status,
                    "logout answered with an error status; the token expires on its own"
                );
            }
            Ok(Err(e)) => {
                self.metrics.auth(AuthKind::Logout, AuthResult::Error);
                warn!(reason = %e, "logout failed; the token expires on its own");
            }
            Err(_) => {
                self.metrics.auth(AuthKind::Logout, AuthResult::Error);
                warn!(
                    "logout did not finish within {}; the token expires on its own",
                    humantime::format_duration(limit)
                );
            }
        }
    }
}
