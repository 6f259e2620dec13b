//! The session: logging in, keeping the token pair fresh, the token cell and
//! its one writer.
//!
//! A single background task ([`Authenticator::run`]) logs in, refreshes at
//! `refresh_ratio` of the token's lifetime, falls back to a full login when a
//! refresh is refused, backs off on failures (fast for outages, slowly for
//! refused credentials) and logs out at shutdown. It is the only writer of
//! the `ArcSwap` cell; the request path reads the cell through
//! [`AuthHandle`] without awaiting or locking.
//!
//! Lifetimes are the sooner of `expiresIn` and what is left of the JWT `exp`
//! claim (to the nanosecond), measured on the monotonic clock from the
//! moment the request was sent. A token past its expiry is never handed
//! out, and a grant whose `exp` has passed (or is less than a second away)
//! when it comes is no grant: an error, retried with the backoff. When the
//! refresh token has an `exp` of its own (the session's end: 7 days on the
//! live API), renewals from a margin before it (a tenth of the session, at
//! least `auth.timeout`) are logins, decided when they are sent. Auth calls
//! are paced (`auth.min_call_interval`, at most 12 a minute by default,
//! bursts of a few) whatever lifetimes the API states: tokens too short for
//! the pace lapse between renewals and requests wait for the next one. A
//! request that meets an upstream 401 asks for a re-authentication; the
//! task runs one per stale token (single-flight) and no more often than the
//! schedule allows, so a misbehaving API cannot cause a login storm.
//!
//! # Layout
//!
//! - `session` — [`Session`], [`Status`], the token cell and [`AuthHandle`].
//! - `grant` — [`Grant`], the answer parser [`parse_grant`] (a fuzz target),
//!   JWT claims.
//! - `error` — [`AuthError`], and `quote`: how API text appears in errors
//!   and logs.
//! - `schedule` — the policy as pure functions of (state, now): refresh
//!   point, backoff, fallbacks, the re-authentication decision.
//! - `task` — [`Authenticator`]: the select loop that sleeps until the
//!   schedule's deadline and writes the cell.
//! - `caller` — the task's one POST to the API.
//! - `method` — one module per way of obtaining a grant (`password` today).

mod caller;
mod error;
mod grant;
mod method;
mod schedule;
mod session;
mod task;

pub use caller::USER_AGENT_VALUE;
pub use error::{AuthError, error_chain};
pub use grant::{jwt_exp, parse_grant};
pub use session::{AuthHandle, Session, Status};
pub use task::Authenticator;
