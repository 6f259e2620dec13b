//! What the mock saw: one atomic counter per kind of request or event, and
//! [`Counts`], a snapshot of them.
//!
//! Tests assert on the snapshot (how many logins, refreshes, 401s the API
//! answered); `mock-api` logs it when it stops, so a user who pointed a
//! program at the mock sees what the program did. The list of counters is
//! written once, in the macro call below; the atomic struct, the snapshot and
//! its log line follow from it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// The live counters, bumped by the endpoints.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $( $(#[$doc])* pub(crate) $name: AtomicU64, )*
        }

        /// A snapshot of what the mock saw. Every field counts requests or events.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counts {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Counts {
                Counts { $( $name: self.$name.load(Ordering::SeqCst), )* }
            }
        }

        impl fmt::Display for Counts {
            /// The counters that are not zero, as `name=value` pairs.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                $(
                    if self.$name != 0 {
                        write!(f, "{}{}={}", if first { "" } else { " " }, stringify!($name), self.$name)?;
                        first = false;
                    }
                )*
                if first {
                    f.write_str("nothing")?;
                }
                Ok(())
            }
        }
    };
}

counters! {
    /// Documented logins with the right username and password.
    logins_ok,
    /// Documented logins refused (401).
    logins_refused,
    /// Documented refreshes that rotated the token pair.
    refreshes_ok,
    /// Documented refreshes refused (401): unknown, spent or expired refresh token.
    refreshes_refused,
    /// Documented token verifications, of any outcome.
    verifies,
    /// Logouts with a valid token.
    logouts,
    /// Answers replaced by an injected fault (feature `test-util`).
    faults_served,
    /// Public market data requests (`/api/v1/p/…`), answered 200.
    public_requests,
    /// Public market data requests that carried an `Authorization` header.
    public_with_authorization,
    /// Requests for paths the mock does not serve (404).
    not_found,
    /// Private requests that carried a valid access token.
    private_ok,
    /// Private requests refused with 401.
    private_unauthorized,
    /// Requests that carried a token the mock issued but that had expired:
    /// the sidecar sent a token past its lifetime.
    expired_in_use,
    /// TCP connections accepted.
    connections,
    /// WebSocket `login` commands accepted.
    ws_logins_ok,
    /// WebSocket `login` commands refused.
    ws_logins_refused,
    /// Pushes on WebSockets that their token expired (documented
    /// `token_expired`, live `{"event":"error","msg":"token expired"}`).
    ws_token_expired_pushes,
    /// Live challenges issued (`login?addr=`).
    live_challenges,
    /// Live challenges refused: no address, or not the configured one.
    live_challenges_refused,
    /// Live signature verifies that started a session.
    live_verifies_ok,
    /// Live signature verifies refused: bad signature, or a nonce that is
    /// unknown, spent, expired or another address's.
    live_verifies_refused,
    /// Live refreshes answered with a new access token.
    live_refreshes_ok,
    /// Live refreshes refused, whatever the reason (ended sessions included).
    live_refreshes_refused,
    /// Live refreshes refused because their session had ended: the client
    /// should have logged in by wallet before then.
    live_refreshes_on_ended_session,
    /// Live WebSocket handshakes whose `Authorization: Bearer` was valid.
    ws_bearer_ok,
    /// Live WebSocket handshakes with a bearer that was not valid.
    ws_bearer_refused,
    /// Live in-socket `{"op":"login"}` accepted.
    ws_op_logins_ok,
    /// Live in-socket `{"op":"login"}` refused.
    ws_op_logins_refused,
    /// Live in-socket `{"op":"subscribe"}` acknowledged.
    ws_op_subscribes,
    /// Live text `ping` messages, answered `pong`.
    ws_text_pings,
}

impl Counts {
    /// Login and refresh calls of any outcome, either flavour (live: the
    /// challenge, the verify and the refresh each count).
    pub fn auth_calls(&self) -> u64 {
        self.logins_ok
            + self.logins_refused
            + self.refreshes_ok
            + self.refreshes_refused
            + self.faults_served
            + self.live_challenges
            + self.live_challenges_refused
            + self.live_verifies_ok
            + self.live_verifies_refused
            + self.live_refreshes_ok
            + self.live_refreshes_refused
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_log_line() {
        let c = Counters::default();
        assert_eq!(c.snapshot().to_string(), "nothing");
        bump(&c.logins_ok);
        bump(&c.logins_ok);
        bump(&c.private_unauthorized);
        let s = c.snapshot();
        assert_eq!(s.logins_ok, 2);
        assert_eq!(s.auth_calls(), 2);
        assert_eq!(s.to_string(), "logins_ok=2 private_unauthorized=1");
    }
}
