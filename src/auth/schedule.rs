//! The auth task's policy, as pure functions of (state, now[, jitter]):
//! when to refresh, how long to back off after a failure and what to try
//! then, and whether a 401 seen by a request earns a re-authentication.
//!
//! Nothing here reads a clock, draws a random number or touches the network:
//! the task ([`super::task`]) passes `now` and the jitter in, and sleeps
//! until the deadline it gets back (the pattern of mini-redis'
//! `purge_expired_keys`). So every rule is a table test in microseconds
//! (see `schedule/tests.rs`) instead of a real-time integration test.

use std::time::Duration;

use tokio::time::Instant;

use super::grant::AuthError;
use crate::config::AuthSettings;

/// Base of the fast backoff after an outage (connect error, 5xx, garbage).
pub(super) const TRANSIENT_BASE: Duration = Duration::from_millis(250);
/// Base of the slow backoff after the API refused the credentials.
pub(super) const CREDENTIAL_BASE: Duration = Duration::from_secs(5);
/// The longest the floor between client-triggered re-authentications grows
/// to while the API keeps rejecting new tokens (see [`Reauth`]).
pub(super) const REAUTH_FLOOR_MAX: Duration = Duration::from_secs(300);
/// A renewal failing for outage reasons gets one more try this long before
/// the token stops being handed out.
pub(super) const LAST_CHANCE: Duration = Duration::from_millis(200);
/// How many auth calls may go out back to back (a refused refresh and the
/// login after it, a wallet login's two calls) before the pace applies.
pub(super) const PACE_BURST: u32 = 4;

/// The two ways to a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Login,
    Refresh,
}

/// What the task does next, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Next {
    pub step: Step,
    pub at: Instant,
}

/// The knobs of the policy, from `[auth]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Policy {
    /// Refresh when this share of the lifetime has passed.
    pub refresh_ratio: f64,
    /// Cap of the fast backoff (outages).
    pub retry_max: Duration,
    /// Cap of the slow backoff (refused credentials).
    pub credential_retry_max: Duration,
    /// The floor between client-triggered re-authentications.
    pub reauth_min_interval: Duration,
    /// The pace of auth calls: on average no closer than this (see [`Pace`]).
    pub min_call_interval: Duration,
    /// `auth.timeout`, the bound on one call: the least room kept before a
    /// session's end (see [`session_login_point`]).
    pub timeout: Duration,
}

impl Policy {
    pub(super) fn from_settings(settings: &AuthSettings) -> Policy {
        Policy {
            refresh_ratio: settings.refresh_ratio,
            retry_max: settings.retry_max,
            credential_retry_max: settings.credential_retry_max,
            reauth_min_interval: settings.reauth_min_interval,
            min_call_interval: settings.min_call_interval,
            timeout: settings.timeout,
        }
    }
}

/// A token's life on the monotonic clock: from the moment its request was
/// sent, for its lifetime; when the session it belongs to began (its login)
/// and ends, if the API said (the refresh token's `exp`); and whether a
/// refresh token is held to renew it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lease {
    pub obtained_at: Instant,
    pub lifetime: Duration,
    pub session_start: Instant,
    pub session_end: Option<Instant>,
    pub refreshable: bool,
}

impl Lease {
    pub(super) fn expires_at(&self) -> Instant {
        self.obtained_at + self.lifetime
    }

    /// The last moment the token is handed out: a margin for the request's
    /// trip is kept, its last second (or last tenth, for very short
    /// lifetimes).
    pub(super) fn valid_until(&self) -> Instant {
        self.expires_at() - Duration::from_secs(1).min(self.lifetime / 10)
    }
}

/// Exponential backoff with jitter: the `attempt`-th wait (0-based) is drawn
/// from [d/2, d) where d = base·2^attempt, capped.
pub fn backoff(base: Duration, cap: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20));
    let d = exp.min(cap);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The refresh point of a token: `refresh_ratio` of its lifetime, moved by
/// up to ±5 % of the lifetime (`jitter` in [0, 1)) so that sidecars started
/// together do not refresh together.
pub(super) fn refresh_point(policy: &Policy, lease: Lease, jitter: f64) -> Instant {
    let jitter = (jitter.clamp(0.0, 1.0) - 0.5) * 0.1;
    let ratio = (policy.refresh_ratio + jitter).clamp(0.05, 0.95);
    lease.obtained_at + lease.lifetime.mul_f64(ratio)
}

/// When a session that ends must be renewed by a login instead of a
/// refresh: its end minus a margin that scales with the session — a tenth
/// of it, at least `auth.timeout` (a refresh sent before this point has its
/// whole exchange, however slow, before the end; the task decides between
/// refresh and login when it sends, so a late wake-up cannot send a refresh
/// past it) and at least the share of a token's lifetime a failing refresh
/// has before expiry ((1 − refresh_ratio)·lifetime, so the login has the
/// same room for retries) — but never more than half the session, so a
/// short session does not make every login due at once. The live API's
/// 7-day sessions: 16.8 hours before the end; 60 s sessions: 30 s.
pub(super) fn session_login_point(policy: &Policy, lease: Lease) -> Option<Instant> {
    let end = lease.session_end?;
    let session = end.saturating_duration_since(lease.session_start);
    let margin = (session / 10)
        .max(policy.timeout)
        .max(lease.lifetime.mul_f64(1.0 - policy.refresh_ratio))
        .min(session / 2);
    Some(end.checked_sub(margin).unwrap_or(end))
}

/// What follows a new token: its refresh; or a login, when no refresh token
/// is held or that refresh would come too close to the end of the session
/// (no refresh is ever tried on a session that is ending, and no request
/// meets one). The task then holds it to the [`Pace`].
pub(super) fn after_grant(policy: &Policy, lease: Lease, jitter: f64) -> Next {
    let refresh_at = refresh_point(policy, lease, jitter);
    if !lease.refreshable {
        return Next {
            step: Step::Login,
            at: refresh_at,
        };
    }
    match session_login_point(policy, lease) {
        Some(login_by) if refresh_at >= login_by => Next {
            step: Step::Login,
            at: login_by,
        },
        _ => Next {
            step: Step::Refresh,
            at: refresh_at,
        },
    }
}

/// How to renew right now (a re-authentication): a refresh while a refresh
/// token is held and the session is not about to end, else a login.
pub(super) fn renewal_step(policy: &Policy, lease: Option<Lease>, has_refresh_token: bool, now: Instant) -> Step {
    let session_over = lease
        .and_then(|l| session_login_point(policy, l))
        .is_some_and(|login_by| now >= login_by);
    if has_refresh_token && !session_over {
        Step::Refresh
    } else {
        Step::Login
    }
}

/// Refreshes in a row that may fail for outage reasons (5xx, timeouts,
/// garbage) before the next try is a login: the refresh endpoint may be
/// broken while the login works.
pub(super) const REFRESH_OUTAGES_BEFORE_LOGIN: u32 = 3;

/// When a refresh that keeps failing for outage reasons gives way to a
/// login at the latest: when less than half of the refresh window (the
/// (1 − refresh_ratio) share of the lifetime) is left, so the login has the
/// other half to succeed before the token expires.
pub(super) fn refresh_fallback_point(policy: &Policy, lease: Lease) -> Instant {
    let share = 1.0 - (1.0 - policy.refresh_ratio) / 2.0;
    lease.obtained_at + lease.lifetime.mul_f64(share)
}

/// The last moment a refresh is still tried: the fallback point, or the
/// session's login point if that comes first.
pub(super) fn refresh_deadline(policy: &Policy, lease: Lease) -> Instant {
    let fallback = refresh_fallback_point(policy, lease);
    session_login_point(policy, lease).map_or(fallback, |login_by| login_by.min(fallback))
}

/// How a failed attempt is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// The API refused the refresh: the refresh token is spent, log in now.
    RefreshRefused,
    /// The API refused the credentials of a login: retry slowly.
    Credential,
    /// The API was unreachable, too slow, answered 5xx, 404 or garbage, or
    /// a token that cannot be used: retry fast.
    Outage,
}

/// A refused refresh means its token is spent; a login refused for the
/// credentials (401, 403, an error code in a 2xx answer) is retried slowly;
/// everything else — a path nothing answers at (404), another 4xx, an
/// outage, an unusable grant — with the fast backoff.
pub(super) fn classify(step: Step, e: &AuthError) -> Class {
    match step {
        Step::Refresh if e.is_rejection() => Class::RefreshRefused,
        Step::Login if e.is_credential_refusal() => Class::Credential,
        _ => Class::Outage,
    }
}

/// Consecutive failures since the last token, by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Failures {
    pub outage: u32,
    pub credential: u32,
}

impl Failures {
    pub(super) fn total(&self) -> u32 {
        self.outage + self.credential
    }
}

/// A failed attempt, as the schedule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failure {
    pub step: Step,
    pub class: Class,
    /// The API's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

/// After a failed attempt: counts it in `failures` and says what to try
/// when. `held` is the newest token's lease (expired or not), if any;
/// `jitter` is in [0, 1).
pub(super) fn after_failure(
    policy: &Policy,
    failures: &mut Failures,
    failure: Failure,
    held: Option<Lease>,
    now: Instant,
    jitter: f64,
) -> Next {
    let Failure {
        step,
        class,
        retry_after,
    } = failure;
    let wait = match class {
        // Not a failure to back off from: the refresh token is spent.
        Class::RefreshRefused => {
            return Next {
                step: Step::Login,
                at: now,
            };
        }
        Class::Credential => {
            failures.credential += 1;
            backoff(
                CREDENTIAL_BASE,
                policy.credential_retry_max,
                failures.credential - 1,
                jitter,
            )
        }
        Class::Outage => {
            failures.outage += 1;
            let w = backoff(TRANSIENT_BASE, policy.retry_max, failures.outage - 1, jitter);
            match retry_after {
                Some(ra) => w.max(ra.min(policy.retry_max)),
                None => w,
            }
        }
    };
    let mut at = now + wait;
    let mut step = step;
    // A refresh that keeps failing for outage reasons gives way to a login:
    // after a few failures, or when its retry would come after the refresh
    // deadline (at that deadline, then).
    if step == Step::Refresh {
        let deadline = held.map(|l| refresh_deadline(policy, l));
        if failures.outage >= REFRESH_OUTAGES_BEFORE_LOGIN || deadline.is_some_and(|d| at >= d) {
            step = Step::Login;
        }
        if let Some(deadline) = deadline {
            at = at.min(deadline.max(now));
        }
    }
    // A failing renewal is tried again before the token runs out.
    if class == Class::Outage {
        if let Some(lease) = held.filter(|l| l.valid_until() > now) {
            let last_chance = lease.valid_until().checked_sub(LAST_CHANCE).unwrap_or(now);
            if at > last_chance && last_chance > now {
                at = last_chance;
            }
        }
    }
    Next { step, at }
}

/// The pace of auth calls, whatever lifetimes the API states: on average
/// no closer than `auth.min_call_interval` (5 s by default: at most 12 calls
/// a minute), with bursts of up to [`PACE_BURST`] calls (a refused refresh
/// and the login after it, a wallet login's challenge and verify).
///
/// A generic cell rate algorithm: `due` is when the calls made so far would
/// have been paid for at one per interval; a step of `n` calls may start
/// once it leaves at most `PACE_BURST` intervals owed. The renewals that
/// lifetimes and clients ask for wait for it ([`paced`]); every call made
/// spends from it, retries after a failure included (those follow their own
/// backoff, which is slower than the pace once it reaches its cap). An API
/// whose tokens live shorter than the pace allows gets one renewal per
/// pace, and between them the token lapses: requests wait for the next one
/// (up to `proxy.token_wait`) rather than cost more calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pace {
    due: Option<Instant>,
}

impl Pace {
    /// Records `calls` auth calls sent at `at`.
    pub(super) fn spend(&mut self, policy: &Policy, calls: u32, at: Instant) {
        let from = self.due.map_or(at, |due| due.max(at));
        self.due = Some(from + policy.min_call_interval.saturating_mul(calls));
    }

    /// The earliest a step of `calls` calls may start (`None`: at once).
    pub(super) fn earliest(&self, policy: &Policy, calls: u32) -> Option<Instant> {
        let due = self.due?;
        let allowance = policy
            .min_call_interval
            .saturating_mul(PACE_BURST.saturating_sub(calls));
        Some(due.checked_sub(allowance).unwrap_or(due))
    }
}

/// `next`, no sooner than the pace allows a step of `calls` calls.
pub(super) fn paced(policy: &Policy, pace: &Pace, next: Next, calls: u32) -> Next {
    match pace.earliest(policy, calls) {
        Some(earliest) if earliest > next.at => Next { at: earliest, ..next },
        _ => next,
    }
}

/// A request's report that the API answered 401 to its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rejection {
    /// The generation of the rejected token.
    pub stale: u64,
    /// The generation in the cell.
    pub current: u64,
    /// A login or refresh is due now anyway (scheduled, or already granted).
    pub renewal_due: bool,
}

/// The answer to a [`Rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A newer token is in the cell already: the request may use it.
    Newer,
    /// A renewal is due now; the request waits for it.
    Join,
    /// Not before `until`: the client gets the API's 401.
    Decline { until: Instant },
    /// Renew now; the next client-triggered renewal waits `floor`.
    Renew { floor: Duration },
}

/// The last renewal that a client's 401 caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LastRenewal {
    at: Instant,
    /// How long no other client-triggered renewal may follow it.
    floor: Duration,
    /// The generation whose rejection caused it.
    replaced: u64,
    /// Whether a token it (or a later renewal) produced was rejected again
    /// within `floor`: then the next floor is twice as long.
    rejected_again: bool,
}

/// The record behind the re-authentication decision.
///
/// Clients cannot drive renewals: an API that answers 401 on one endpoint
/// to a token that works on another (or a program that keeps calling such
/// an endpoint) would otherwise cost one refresh per 401. So a renewal that
/// a 401 causes is granted at most once per token generation (later 401s
/// on an older token get the newer one) and no sooner than a floor after
/// the previous one (`auth.reauth_min_interval`); while the new tokens keep
/// being rejected within their floor, the floor doubles (up to
/// [`REAUTH_FLOOR_MAX`]); once a token survives its floor, it is back to
/// the configured value. A declined 401 reaches the client as the API sent
/// it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Reauth {
    last: Option<LastRenewal>,
}

impl Reauth {
    /// Decides on a request's 401, and records a renewal it grants.
    pub(super) fn judge(&mut self, policy: &Policy, r: &Rejection, now: Instant) -> Verdict {
        if r.stale < r.current {
            return Verdict::Newer;
        }
        if r.renewal_due {
            return Verdict::Join;
        }
        if let Some(last) = self.last.as_mut() {
            let until = last.at + last.floor;
            if now < until {
                // A token newer than the one that caused the renewal: the
                // renewal's fruit did not survive.
                if r.stale > last.replaced {
                    last.rejected_again = true;
                }
                return Verdict::Decline { until };
            }
        }
        let base = policy.reauth_min_interval;
        let floor = match self.last {
            Some(last) if last.rejected_again => (last.floor * 2).min(REAUTH_FLOOR_MAX.max(base)),
            _ => base,
        };
        self.last = Some(LastRenewal {
            at: now,
            floor,
            replaced: r.stale,
            rejected_again: false,
        });
        Verdict::Renew { floor }
    }
}

#[cfg(test)]
mod tests;
