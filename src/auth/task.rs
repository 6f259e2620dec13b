//! The auth task: the single writer of the token cell.
//!
//! [`Authenticator::run`] is one background task. It sleeps until the
//! deadline the schedule ([`super::schedule`]) gave it, then logs in or
//! refreshes through the configured method ([`super::method`]), puts the new
//! session in the cell ([`super::session`]) and asks the schedule what comes
//! next; on a failure it asks the schedule when to try what. Between
//! attempts it serves the request path's commands (a re-authentication after
//! a 401, a reload) and takes an expired token out of the cell. At shutdown
//! it logs out ([`logout`]). It holds the state the schedule's functions read — the
//! failure counts, the re-authentication record — and draws their jitter.
//!
//! With a systemd watchdog it also beats ([`crate::liveness`]): its loop
//! wakes at the beat period, even while the next refresh is hours away, and
//! keeps beating while a login or refresh is in flight (each is bounded by
//! `auth.timeout`), so only a main runtime that stops polling silences it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::caller::Caller;
use super::grant::{AuthError, Grant};
use super::method::{Held, Method};
use super::schedule::{self, Class, Failure, Failures, Lease, Next, Pace, Policy, Reauth, Rejection, Step, Verdict};
use super::session::{AuthHandle, Command, Session, SessionCell, Status, Timing};
use crate::clock::unix_now;
use crate::config::{AuthSettings, UpstreamSettings};
use crate::liveness::Heart;
use crate::metrics::{AuthKind, AuthResult, Metrics};
use crate::pool::Pool;
use crate::secret::Secret;
use crate::upstream::{Connector, Target};

mod logout;

/// The single writer of the token cell.
pub struct Authenticator {
    cell: Arc<SessionCell>,
    commands: mpsc::UnboundedReceiver<Command>,
    method: Method,
    http: Caller,
    policy: Policy,
    logout_on_shutdown: bool,
    metrics: Arc<Metrics>,
    generation: u64,
    /// The newest refresh token; it outlives the access token's validity.
    refresh_token: Option<Secret>,
    /// The newest token's timing and its session's end, kept after the
    /// token leaves the cell: what the schedule reads.
    lease: Option<Lease>,
    next: Next,
    failures: Failures,
    reauth: Reauth,
    /// The auth calls made, for the pace every renewal waits for.
    pace: Pace,
    /// The grant shapes (how it came, where its lifetime came from, whether
    /// its session's end or a missing refresh token set the renewal) already
    /// warned about as too short for the pace: one warning each.
    warned: Vec<(Step, &'static str, bool, bool)>,
}

impl Authenticator {
    pub fn new(
        settings: AuthSettings,
        upstream: &UpstreamSettings,
        connector: Connector,
        metrics: Arc<Metrics>,
    ) -> (Authenticator, AuthHandle) {
        let method = Method::from_settings(&settings);
        let status = Status {
            username: method.account().to_string(),
            method: method.name(),
            ..Status::default()
        };
        let (cell, commands) = SessionCell::new(status);
        let auth = Authenticator {
            cell: cell.clone(),
            commands,
            method,
            http: Caller::new(Pool::new(upstream, connector), Target::new(upstream), settings.timeout),
            policy: Policy::from_settings(&settings),
            logout_on_shutdown: settings.logout_on_shutdown,
            metrics,
            generation: 0,
            refresh_token: None,
            lease: None,
            next: Next {
                step: Step::Login,
                at: Instant::now(),
            },
            failures: Failures::default(),
            reauth: Reauth::default(),
            pace: Pace::default(),
            warned: Vec::new(),
        };
        (auth, AuthHandle::new(cell))
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.cell.load()
    }

    /// Runs until `stop` is cancelled, then logs out (if configured) and
    /// returns. Cancel `stop` only after the server has drained, so that
    /// requests in flight keep a token to the end. Beats into `heart` until
    /// then.
    pub(crate) async fn run(mut self, stop: CancellationToken, heart: Heart) {
        info!(username = %self.method.account(), api = %self.http.origin(), "logging in");
        let mut beat = heart.ticker();
        loop {
            let expiry = self.current().map(|s| s.timing.valid_until);
            let at = self.next.at;
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                _ = tokio::time::sleep_until(expiry.unwrap_or(at)), if expiry.is_some_and(|e| e < at) => {
                    self.expire();
                }
                _ = tokio::time::sleep_until(at) => heart.beating(self.attempt()).await,
                _ = beat.tick() => heart.beat(),
            }
        }
        // The logout is bounded; the watchdog no longer waits for this task.
        drop(heart);
        self.logout().await;
        self.cell.update_status(|s| s.stopped = true);
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Reauth { stale, reply } => {
                let now = Instant::now();
                let proven = self
                    .current()
                    .filter(|s| s.generation == stale)
                    .is_some_and(|s| s.is_proven());
                let rejection = Rejection {
                    stale,
                    current: self.generation,
                    renewal_due: self.next.at <= now,
                };
                let accepted = match self.reauth.judge(&self.policy, &rejection, now) {
                    Verdict::Newer | Verdict::Join => true,
                    Verdict::Decline { until } => {
                        let wait = until.saturating_duration_since(now);
                        debug!(
                            proven,
                            declined_for_ms = wait.as_millis() as u64,
                            "the API rejected the current token, but a re-authentication happened moments ago; passing the 401 on instead of renewing again"
                        );
                        false
                    }
                    Verdict::Renew { floor } => {
                        self.metrics.reauthentications.inc();
                        info!(
                            proven,
                            next_allowed_in_ms = floor.as_millis() as u64,
                            "the API rejected the current token; re-authenticating now"
                        );
                        let step = schedule::renewal_step(&self.policy, self.lease, self.refresh_token.is_some(), now);
                        self.next = self.paced(Next { step, at: now });
                        true
                    }
                };
                let _ = reply.send(accepted);
            }
            Command::Reload { settings, reply } => {
                let method = Method::from_settings(&settings);
                let credentials_changed = self.method.credentials_differ(&method);
                self.method = method;
                self.policy = Policy::from_settings(&settings);
                self.http.set_timeout(settings.timeout);
                self.logout_on_shutdown = settings.logout_on_shutdown;
                if credentials_changed {
                    info!(username = %self.method.account(), "credentials changed; logging in with the new ones (the current token keeps serving meanwhile)");
                    self.next = Next {
                        step: Step::Login,
                        at: Instant::now(),
                    };
                    self.failures = Failures::default();
                    let account = self.method.account().to_string();
                    let name = self.method.name();
                    self.cell.update_status(|s| {
                        s.username = account;
                        s.method = name;
                        s.credentials_rejected = false;
                    });
                } else {
                    debug!("auth settings reloaded; credentials unchanged");
                }
                let _ = reply.send(());
            }
        }
    }

    /// The token in the cell has passed its validity: take it out so that
    /// readiness and metrics say so. A lapse the pace planned (tokens that
    /// live shorter than it allows, warned about once) is no news.
    fn expire(&mut self) {
        if let Some(session) = self.current() {
            if self.failures.total() == 0 && self.next.at > session.timing.valid_until {
                debug!("the access token lapsed; the next renewal waits for the pace of auth calls");
            } else {
                warn!(username = %self.method.account(), "the access token expired before it could be renewed; requests wait for a new one");
            }
            self.cell.store(None);
            self.cell.update_status(|_| {});
        }
    }

    /// The step that is due: a login or a refresh.
    async fn attempt(&mut self) {
        let sent = Instant::now();
        // Decided now, not when it was planned: a wake-up that comes late
        // (a loaded machine) sends a login, never a refresh on a session
        // that is ending.
        let step = match self.next.step {
            Step::Refresh => schedule::renewal_step(&self.policy, self.lease, self.refresh_token.is_some(), sent),
            Step::Login => Step::Login,
        };
        self.pace.spend(&self.policy, self.method.calls(step), sent);
        let result = match step {
            Step::Login => {
                let result = self.method.login(&self.http).await;
                self.count(AuthKind::Login, &result);
                result
            }
            Step::Refresh => match self.refresh_token.clone() {
                Some(refresh) => {
                    let current = self.current();
                    let held = Held {
                        refresh: &refresh,
                        access: current.as_ref().map(|s| s.access_token()),
                    };
                    let result = self.method.refresh(&self.http, held).await;
                    self.count(AuthKind::Refresh, &result);
                    result
                }
                None => Err(AuthError::Rejected {
                    status: 0,
                    code: 0,
                    message: "no refresh token held".into(),
                }),
            },
        };
        match result {
            Ok(grant) => self.install(grant, sent, step),
            Err(e) => self.failed(step, e),
        }
    }

    /// `next`, no sooner than the pace of auth calls allows.
    fn paced(&self, next: Next) -> Next {
        schedule::paced(&self.policy, &self.pace, next, self.method.calls(next.step))
    }

    fn count(&self, kind: AuthKind, result: &Result<Grant, AuthError>) {
        let outcome = match result {
            Ok(_) => AuthResult::Success,
            Err(e) if e.is_rejection() => AuthResult::Rejected,
            Err(_) => AuthResult::Error,
        };
        self.metrics.auth(kind, outcome);
    }

    /// Puts a new session in the cell and schedules what follows.
    fn install(&mut self, grant: Grant, sent: Instant, how: Step) {
        let lifetime = grant.lifetime;
        // Rotation: the answer's refresh token replaces ours (and its `exp`
        // says when the session ends); an API that sends none with a refresh
        // keeps the old one, and the old session end, valid.
        let (refresh_token, session_end) = match grant.refresh {
            Some(refresh) => (Some(refresh), grant.session_lifetime.map(|l| sent + l)),
            None if how == Step::Refresh => (self.refresh_token.clone(), self.lease.and_then(|l| l.session_end)),
            None => (None, None),
        };
        let session_start = match how {
            Step::Login => sent,
            Step::Refresh => self.lease.map_or(sent, |l| l.session_start),
        };
        let lease = Lease {
            obtained_at: sent,
            lifetime,
            session_start,
            session_end,
            refreshable: refresh_token.is_some(),
        };
        let planned = schedule::after_grant(&self.policy, lease, rand::random());
        let next = self.paced(planned);
        let timing = Timing {
            obtained_at: sent,
            valid_until: lease.valid_until(),
            expires_at: lease.expires_at(),
            expires_at_unix: unix_now() + lifetime.as_secs(),
            lifetime,
            refresh_at: next.at,
        };
        // parse_grant checked the token; keep the old session if not.
        let Some(session) = Session::new(self.generation + 1, grant.access, timing) else {
            return;
        };
        self.generation += 1;
        self.refresh_token = refresh_token;
        self.lease = Some(lease);
        self.cell.store(Some(Arc::new(session)));
        self.next = next;
        let recovered = self.failures.total() > 0;
        self.failures = Failures::default();
        self.metrics.auth_consecutive_failures.set(0);
        if let Some(note) = &grant.note {
            warn!("{note}");
        }
        if next.at > lease.valid_until() {
            self.warn_short_lived(how, grant.lifetime_source, lease, planned, next);
        }
        let wait = next.at.saturating_duration_since(Instant::now());
        let what = if how == Step::Login {
            "logged in"
        } else {
            "token refreshed"
        };
        let then = match next.step {
            Step::Refresh => "refresh",
            Step::Login if lease.refreshable => "login (the session ends)",
            Step::Login => "login (no refresh token)",
        };
        info!(
            username = %self.method.account(),
            expires_in_s = lifetime.as_secs(),
            lifetime_from = grant.lifetime_source,
            session_ends_in_s = session_end.map(|e| e.saturating_duration_since(sent).as_secs()),
            next_refresh_in_ms = wait.as_millis() as u64,
            recovered,
            "{what}; next {then} in {}",
            humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
        );
        let now = SystemTime::now();
        let chain_id = grant.chain_id;
        self.cell.update_status(|s| {
            if how == Step::Login {
                s.last_login = Some(now);
                s.logins += 1;
                s.chain_id = chain_id.or(s.chain_id);
            } else {
                s.last_refresh = Some(now);
                s.refreshes += 1;
            }
            s.consecutive_failures = 0;
            s.credentials_rejected = false;
            s.next_attempt = Some(next.at);
        });
    }

    /// Schedules what follows a failed step and says why it failed.
    fn failed(&mut self, step: Step, e: AuthError) {
        let now = Instant::now();
        let class = schedule::classify(step, &e);
        let failure = Failure {
            step,
            class,
            retry_after: e.retry_after(),
        };
        let next = schedule::after_failure(
            &self.policy,
            &mut self.failures,
            failure,
            self.lease,
            now,
            rand::random(),
        );
        self.next = next;
        if class == Class::RefreshRefused {
            info!(reason = %e, "refresh refused; logging in again");
            self.refresh_token = None;
            self.next = self.paced(next);
            return;
        }
        let credential = class == Class::Credential;
        let failures = self.failures.total();
        self.metrics.auth_consecutive_failures.set(i64::from(failures));
        let what = match step {
            Step::Login => "login",
            Step::Refresh => "refresh",
        };
        let account = self.method.account();
        let wait = next.at.saturating_duration_since(now);
        let retry_in = humantime::format_duration(Duration::from_millis(wait.as_millis() as u64));
        if credential {
            error!(
                username = %account,
                reason = %e,
                retry_in = %retry_in,
                "login refused: the API rejected the credentials of {account:?}; {}, then reload (retrying slowly)",
                self.method.credential_hint()
            );
        } else {
            warn!(username = %account, reason = %e, retry_in = %retry_in, failures, "{what} failed");
            if step == Step::Refresh && next.step == Step::Login {
                info!(
                    username = %account,
                    "the refresh keeps failing; the next attempt is a full login, before the token expires"
                );
            }
        }
        let message = if credential {
            format!("login for {account:?} refused: {e}")
        } else {
            format!("{what} failed: {e}")
        };
        let at_wall = SystemTime::now();
        let at = next.at;
        let summary = format!("{what}: {}", e.summary());
        self.cell.update_status(|s| {
            s.last_error = Some(message);
            s.last_error_summary = Some(summary);
            s.last_error_at = Some(at_wall);
            s.consecutive_failures = failures;
            s.credentials_rejected = credential;
            s.next_attempt = Some(at);
        });
    }

    /// The API's lifetimes ask for renewals faster than the pace allows: the
    /// token lapses before its renewal. Said once per grant shape.
    fn warn_short_lived(&mut self, how: Step, source: &'static str, lease: Lease, planned: Next, next: Next) {
        let session = planned.step == Step::Login && lease.refreshable;
        let shape = (how, source, session, lease.refreshable);
        if self.warned.contains(&shape) {
            return;
        }
        self.warned.push(shape);
        let span = |d: Duration| humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string();
        let why = match (session, lease.refreshable) {
            (true, _) => format!(
                "its session ends {} after it began (the refresh token's JWT exp)",
                span(
                    lease
                        .session_end
                        .map_or(Duration::ZERO, |e| e - lease.session_start.min(e))
                )
            ),
            (false, false) => "no refresh token came with it, so each renewal is a login".into(),
            (false, true) => "it is refreshed before it expires".into(),
        };
        warn!(
            username = %self.method.account(),
            lifetime_s = lease.lifetime.as_secs_f64(),
            lifetime_from = source,
            "the API gave a token that lives {} ({source}); {why}: renewing that often would exceed the pace of auth calls (auth.min_call_interval = {}), so the token lapses {} before its renewal and requests wait for the next one (up to proxy.token_wait)",
            span(lease.lifetime),
            span(self.policy.min_call_interval),
            span(next.at.saturating_duration_since(lease.valid_until())),
        );
    }
}
