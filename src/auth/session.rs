//! The session as the rest of the sidecar sees it: the token in use
//! ([`Session`]), the cell that holds it, what the auth task says about
//! itself ([`Status`]), and [`AuthHandle`], the request path's view of all
//! three.
//!
//! The cell is an `ArcSwapOption`: the request path loads it without
//! awaiting or locking, and only the auth task ([`super::task`]) stores into
//! it. A watch channel announces every change, so that requests waiting for a
//! token and the systemd notifier wake up; a command channel carries the
//! request path's wishes (a re-authentication after a 401, a reload) to the
//! task, which alone decides what to do with them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use http::header::HeaderValue;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::AuthSettings;
use crate::secret::Secret;

/// A token pair the API issued, with its timing on the monotonic clock.
pub struct Session {
    /// Increases with every new session, so a request can tell whether the
    /// token it used is still the current one.
    pub generation: u64,
    authorization: HeaderValue,
    access: Secret,
    pub timing: Timing,
    /// Set once the API accepted a request with this token: a 401 on a
    /// proven token looks like a revocation (the re-authentication log says
    /// which it was; the schedule's floor applies either way).
    proven: AtomicBool,
}

/// The timing of a [`Session`], as the schedule computed it.
pub struct Timing {
    pub obtained_at: Instant,
    /// When the token stops being handed out: the expiry minus a margin for
    /// the request's trip to the API.
    pub valid_until: Instant,
    pub expires_at: Instant,
    /// The expiry as a Unix time, for placeholders and status output.
    pub expires_at_unix: u64,
    pub lifetime: Duration,
    pub refresh_at: Instant,
}

impl Session {
    /// A session for `access`, or `None` if the token cannot travel in an
    /// HTTP header (the grant parser refuses such tokens already).
    pub(super) fn new(generation: u64, access: Secret, timing: Timing) -> Option<Session> {
        let mut authorization = HeaderValue::from_str(&format!("{}{}", ethgas_api::BEARER, access.expose())).ok()?;
        authorization.set_sensitive(true);
        Some(Session {
            generation,
            authorization,
            access,
            timing,
            proven: AtomicBool::new(false),
        })
    }

    /// Records that the API accepted this token. Cheap on the hot path: one
    /// relaxed load after the first time.
    pub fn mark_proven(&self) {
        if !self.proven.load(Ordering::Relaxed) {
            self.proven.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the API has accepted a request with this token.
    pub(super) fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    pub fn is_valid(&self, now: Instant) -> bool {
        now < self.timing.valid_until
    }

    /// `Bearer <access token>`, marked sensitive so HTTP/2 never indexes it.
    pub fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }

    pub fn access_token(&self) -> &Secret {
        &self.access
    }

    pub fn expires_in(&self, now: Instant) -> Duration {
        self.timing.expires_at.saturating_duration_since(now)
    }
}

/// What the auth task says about itself, for `/readyz` and systemd's STATUS.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The account, as the login method names it: the username, or the
    /// wallet's checksummed address.
    pub username: String,
    /// `auth.method`: "password" or "wallet".
    pub method: &'static str,
    pub last_login: Option<SystemTime>,
    pub last_refresh: Option<SystemTime>,
    /// The last failure in full, the API's message included (bounded), for
    /// the operator (`/readyz`, logs).
    pub last_error: Option<String>,
    /// The last failure in the sidecar's own words (status and code, no
    /// text from the API), for answers to clients.
    pub last_error_summary: Option<String>,
    pub last_error_at: Option<SystemTime>,
    pub consecutive_failures: u32,
    /// The refused-credentials state: the API said the password is wrong.
    pub credentials_rejected: bool,
    pub next_attempt: Option<Instant>,
    pub logins: u64,
    pub refreshes: u64,
    pub stopped: bool,
    /// The `chainId` of the last wallet login's challenge (method "wallet").
    pub chain_id: Option<u64>,
}

/// What the request path asks of the auth task.
pub(super) enum Command {
    /// The API rejected the token of generation `stale`; `reply` says
    /// whether a renewal was started or joined (`false`: declined).
    Reauth { stale: u64, reply: oneshot::Sender<bool> },
    /// New settings from a reloaded config.
    Reload {
        settings: Box<AuthSettings>,
        reply: oneshot::Sender<()>,
    },
}

/// The token cell with its change announcements, the task's status and the
/// way to send it commands: everything the task and the handles share.
pub(super) struct SessionCell {
    current: ArcSwapOption<Session>,
    /// Bumped on every change of session or status; waiters and the systemd
    /// notifier watch it.
    changes: watch::Sender<u64>,
    status: Mutex<Status>,
    commands: mpsc::UnboundedSender<Command>,
}

impl SessionCell {
    /// An empty cell, and the receiving end of its command channel (for the
    /// task).
    pub(super) fn new(status: Status) -> (Arc<SessionCell>, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let cell = SessionCell {
            current: ArcSwapOption::empty(),
            changes: watch::Sender::new(0),
            status: Mutex::new(status),
            commands: tx,
        };
        (Arc::new(cell), rx)
    }

    pub(super) fn load(&self) -> Option<Arc<Session>> {
        self.current.load_full()
    }

    /// Puts a session in the cell (or takes it out). Only the auth task calls
    /// this; it announces the change with its next status update.
    pub(super) fn store(&self, session: Option<Arc<Session>>) {
        self.current.store(session);
    }

    /// Changes the status and announces the change.
    pub(super) fn update_status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
        self.changes.send_modify(|v| *v += 1);
    }
}

/// The request path's view of the session. Cheap to clone.
#[derive(Clone)]
pub struct AuthHandle {
    cell: Arc<SessionCell>,
}

impl AuthHandle {
    pub(super) fn new(cell: Arc<SessionCell>) -> AuthHandle {
        AuthHandle { cell }
    }

    /// The current session if its token may still be sent. Never waits.
    pub fn valid(&self) -> Option<Arc<Session>> {
        let session = self.cell.load()?;
        session.is_valid(Instant::now()).then_some(session)
    }

    /// The current session, valid or not (for status output).
    pub fn current(&self) -> Option<Arc<Session>> {
        self.cell.load()
    }

    /// A valid session, waiting up to `limit` for the login in progress.
    pub async fn wait_valid(&self, limit: Duration) -> Option<Arc<Session>> {
        if let Some(s) = self.valid() {
            return Some(s);
        }
        let mut rx = self.cell.changes.subscribe();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.valid() {
                return Some(s);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.valid(),
            }
        }
    }

    /// Asks for a new token because the API rejected `stale`'s. All callers
    /// that saw the same stale token share one re-authentication. Returns the
    /// new session, or `None` when none came within `limit` or the task
    /// declined the request (see [`super::schedule`]).
    pub async fn reauthenticate(&self, stale: &Session, limit: Duration) -> Option<Arc<Session>> {
        let newer = |s: &Arc<Session>| s.generation > stale.generation;
        if let Some(s) = self.valid().filter(newer) {
            return Some(s);
        }
        let mut rx = self.cell.changes.subscribe();
        let (reply, accepted) = oneshot::channel();
        let cmd = Command::Reauth {
            stale: stale.generation,
            reply,
        };
        if self.cell.commands.send(cmd).is_err() {
            return None;
        }
        let deadline = Instant::now() + limit;
        match tokio::time::timeout_at(deadline, accepted).await {
            Ok(Ok(true)) => {}
            _ => return None,
        }
        loop {
            if let Some(s) = self.valid().filter(newer) {
                return Some(s);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.valid().filter(newer),
            }
        }
    }

    /// Hands new settings (a reloaded config) to the auth task. If the
    /// credentials changed it logs in with them; the old token keeps serving
    /// until the new one is in the cell.
    pub async fn reload(&self, settings: AuthSettings) {
        let (reply, done) = oneshot::channel();
        let cmd = Command::Reload {
            settings: Box::new(settings),
            reply,
        };
        if self.cell.commands.send(cmd).is_ok() {
            let _ = done.await;
        }
    }

    pub fn status(&self) -> Status {
        self.cell.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A receiver that sees every change of session or status.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.cell.changes.subscribe()
    }
}
