//! The session: login, refresh, the token cell and its one writer.
//!
//! [`Authenticator::run`] is a single background task that logs in, refreshes
//! at `refresh_ratio` of the token's lifetime, falls back to a full login when
//! a refresh is refused, backs off on failures (fast for outages, slowly for
//! refused credentials) and logs out at shutdown. It is the only writer of the
//! `ArcSwap` cell; the request path reads the cell through [`AuthHandle`]
//! without awaiting or locking.
//!
//! Lifetimes are the sooner of `expiresIn` and the JWT `exp` claim, measured on
//! the monotonic clock from the moment the request was sent. A token past its
//! expiry is never handed out. A request that meets an upstream 401 asks for a
//! re-authentication; the task runs one per stale token (single-flight) and
//! no more often than a cooldown allows, so a misbehaving API cannot cause a
//! login storm.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::AuthSettings;
use crate::metrics::{AuthKind, AuthResult, Metrics};
use crate::pool::Pool;
use crate::secret::Secret;
use crate::upstream::{self, Target};

/// The most of an auth answer the sidecar reads; real ones are a few hundred bytes.
const MAX_AUTH_BODY: usize = 1024 * 1024;
/// Base of the fast backoff after an outage (connect error, 5xx, garbage).
const TRANSIENT_BASE: Duration = Duration::from_millis(250);
/// Base of the slow backoff after the API refused the credentials.
const CREDENTIAL_BASE: Duration = Duration::from_secs(5);
/// A token that a 401-triggered renewal produced and that the API rejects
/// before it ever worked must have lived this long before the next renewal;
/// the wait doubles each time, so an API that rejects every token cannot
/// cause a login storm. Any other rejected token is renewed at once.
const REAUTH_COOLDOWN: Duration = Duration::from_secs(1);
const REAUTH_COOLDOWN_MAX: Duration = Duration::from_secs(60);
/// How long a logout at shutdown may take at most.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);
pub const USER_AGENT_VALUE: &str = concat!("ethgas-sidecar/", env!("CARGO_PKG_VERSION"));

// ---------------------------------------------------------------------------
// The session and its cell.

/// A token pair the API issued, with its timing on the monotonic clock.
pub struct Session {
    /// Increases with every new session, so a request can tell whether the
    /// token it used is still the current one.
    pub generation: u64,
    authorization: HeaderValue,
    access: Secret,
    pub obtained_at: Instant,
    /// When the token stops being handed out: the expiry minus a margin for
    /// the request's trip to the API.
    pub valid_until: Instant,
    pub expires_at: Instant,
    /// The expiry as a Unix time, for placeholders and status output.
    pub expires_at_unix: u64,
    pub lifetime: Duration,
    pub refresh_at: Instant,
    /// Set once the API accepted a request with this token; a 401 on a
    /// proven token is a revocation, not an API that rejects what it issues.
    proven: AtomicBool,
}

impl Session {
    /// Records that the API accepted this token. Cheap on the hot path: one
    /// relaxed load after the first time.
    pub fn mark_proven(&self) {
        if !self.proven.load(Ordering::Relaxed) {
            self.proven.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_valid(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// `Bearer <access token>`, marked sensitive so HTTP/2 never indexes it.
    pub fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }

    pub fn access_token(&self) -> &Secret {
        &self.access
    }

    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

/// What the auth task says about itself, for `/readyz` and systemd's STATUS.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub username: String,
    pub last_login: Option<SystemTime>,
    pub last_refresh: Option<SystemTime>,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    pub consecutive_failures: u32,
    /// The refused-credentials state: the API said the password is wrong.
    pub credentials_rejected: bool,
    pub next_attempt: Option<Instant>,
    pub logins: u64,
    pub refreshes: u64,
    pub stopped: bool,
}

enum Command {
    Reauth {
        stale: u64,
        reply: oneshot::Sender<bool>,
    },
    Reload {
        settings: Box<AuthSettings>,
        reply: oneshot::Sender<()>,
    },
}

struct Shared {
    cell: ArcSwapOption<Session>,
    /// Bumped on every change of session or status; waiters and the systemd
    /// notifier watch it.
    changes: watch::Sender<u64>,
    status: Mutex<Status>,
    commands: mpsc::UnboundedSender<Command>,
}

/// The request path's view of the session. Cheap to clone.
#[derive(Clone)]
pub struct AuthHandle {
    shared: Arc<Shared>,
}

impl AuthHandle {
    /// The current session if its token may still be sent. Never waits.
    pub fn valid(&self) -> Option<Arc<Session>> {
        let session = self.shared.cell.load_full()?;
        session.is_valid(Instant::now()).then_some(session)
    }

    /// The current session, valid or not (for status output).
    pub fn current(&self) -> Option<Arc<Session>> {
        self.shared.cell.load_full()
    }

    /// A valid session, waiting up to `limit` for the login in progress.
    pub async fn wait_valid(&self, limit: Duration) -> Option<Arc<Session>> {
        if let Some(s) = self.valid() {
            return Some(s);
        }
        let mut rx = self.shared.changes.subscribe();
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
    /// new session, or `None` when none came within `limit` or the cooldown
    /// declined the request.
    pub async fn reauthenticate(&self, stale: &Session, limit: Duration) -> Option<Arc<Session>> {
        let newer = |s: &Arc<Session>| s.generation > stale.generation;
        if let Some(s) = self.valid().filter(newer) {
            return Some(s);
        }
        let mut rx = self.shared.changes.subscribe();
        let (reply, accepted) = oneshot::channel();
        let cmd = Command::Reauth {
            stale: stale.generation,
            reply,
        };
        if self.shared.commands.send(cmd).is_err() {
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
    /// username or password changed it logs in with them; the old token keeps
    /// serving until the new one is in the cell.
    pub async fn reload(&self, settings: AuthSettings) {
        let (reply, done) = oneshot::channel();
        let cmd = Command::Reload {
            settings: Box::new(settings),
            reply,
        };
        if self.shared.commands.send(cmd).is_ok() {
            let _ = done.await;
        }
    }

    pub fn status(&self) -> Status {
        self.shared.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A receiver that sees every change of session or status.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }
}

// ---------------------------------------------------------------------------
// Reading the API's answers.

/// Why a login, refresh or logout did not yield a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("{url} did not answer within {}", humantime::format_duration(*.limit))]
    Timeout { url: String, limit: Duration },
    #[error("the API answered HTTP {status}: {message}")]
    Server {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the API refused it (HTTP {status}, code {code}): {message}")]
    Rejected { status: u16, code: i64, message: String },
    #[error("the API answered HTTP {status} with a body that is not the expected JSON: {detail}")]
    Garbage { status: u16, detail: String },
    #[error("the API's answer has no usable `{field}`: {detail}")]
    Shape { field: &'static str, detail: String },
}

impl AuthError {
    /// The API refused the credentials or the refresh token (as opposed to
    /// not answering properly).
    pub fn is_rejection(&self) -> bool {
        matches!(self, AuthError::Rejected { .. })
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A token pair read from a login or refresh answer.
pub struct Grant {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub lifetime: Duration,
    /// Where the lifetime came from, for the log line.
    pub lifetime_source: &'static str,
    /// A warning about the answer (e.g. an `exp` in the past), for the log.
    pub note: Option<String>,
}

/// Cuts a server-supplied message to a printable line of bounded length.
fn clean_message(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The human message of an envelope, in any of the shapes seen in the wild.
fn envelope_message(v: &Value) -> Option<String> {
    let pick = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    pick(v, "message")
        .or_else(|| pick(v, "errorMsg"))
        .or_else(|| v.get("data").and_then(|d| pick(d, "errorMsg")))
        .or_else(|| pick(v, "error"))
        .map(|m| clean_message(&m))
}

fn code_of(v: &Value) -> Option<i64> {
    match v.get("code")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The shortest token lifetime the sidecar can work with.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The longest token lifetime believed. Further out is not a lifetime (a JWT
/// `exp` in milliseconds, say), and `sent + lifetime` would overflow the clock.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);

/// Seconds as a duration, from an integer, a float or a numeric string.
fn seconds_of(v: &Value) -> Result<Option<Duration>, String> {
    let secs = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let lifetime = secs
        .filter(|s| s.is_finite() && *s > 0.0 && *s < MAX_LIFETIME.as_secs_f64())
        .map(Duration::from_secs_f64);
    match (secs, lifetime) {
        // Below a nanosecond, a positive number still makes no lifetime at all.
        (_, Some(d)) if !d.is_zero() => Ok(Some(d)),
        (Some(s), _) => Err(format!("{s} is not a positive number of seconds")),
        (None, _) => Err(format!("{v} is not a number of seconds")),
    }
}

/// One claim of a JWT, decoded but not verified.
pub fn jwt_claim(token: &str, name: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let mut claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get_mut(name).map(Value::take)
}

/// The `exp` claim of a JWT, decoded but not verified.
pub fn jwt_exp(token: &str) -> Option<u64> {
    match jwt_claim(token, "exp")? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Reads a login or refresh answer. `now_unix` is the wall clock (for the JWT
/// `exp`); `default_lifetime` applies when the answer gives no lifetime.
///
/// Success needs a 2xx status, a `code` of 200 or 1 (or none), and a non-empty
/// `data.accessToken`. A 401/403 (or other 4xx) or a success status with an
/// error code is a rejection; 5xx, 408 and 429 are server trouble; anything
/// unreadable is garbage. This function is a fuzz target: it must not panic.
pub fn parse_grant(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: u64,
    default_lifetime: Duration,
) -> Result<Grant, AuthError> {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let code = status.as_u16();
    if status.is_server_error() || code == 408 || code == 429 {
        let message = parsed
            .as_ref()
            .ok()
            .and_then(envelope_message)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(AuthError::Server {
            status: code,
            message,
            retry_after,
        });
    }
    if status.is_client_error() {
        let v = parsed.as_ref().ok();
        return Err(AuthError::Rejected {
            status: code,
            code: v.and_then(code_of).unwrap_or(i64::from(code)),
            message: v
                .and_then(envelope_message)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("refused").to_string()),
        });
    }
    if !status.is_success() {
        return Err(AuthError::Garbage {
            status: code,
            detail: "expected a 2xx status".into(),
        });
    }
    let v = parsed.map_err(|e| AuthError::Garbage {
        status: code,
        detail: clean_message(&e.to_string()),
    })?;
    if !v.is_object() {
        return Err(AuthError::Garbage {
            status: code,
            detail: "the body is not a JSON object".into(),
        });
    }
    // A success status with an error code: the codes that speak of the
    // credentials (401, 403) or of a malformed request (1001) are a refusal;
    // "operation failed" (1002), "unexpected" (9999) and the like are the
    // server's trouble and are retried like a 5xx.
    let refused = |api_code: i64| {
        let message = envelope_message(&v).unwrap_or_else(|| "no message".into());
        if matches!(api_code, 401 | 403 | 1001) {
            AuthError::Rejected {
                status: code,
                code: api_code,
                message,
            }
        } else {
            AuthError::Server {
                status: code,
                message: format!("code {api_code}: {message}"),
                retry_after: None,
            }
        }
    };
    match v.get("code") {
        None | Some(Value::Null) => {}
        Some(_) => match code_of(&v) {
            Some(200) | Some(1) => {}
            Some(other) => return Err(refused(other)),
            None => {
                return Err(AuthError::Shape {
                    field: "code",
                    detail: "not a number".into(),
                });
            }
        },
    }
    if v.get("success").and_then(Value::as_bool) == Some(false) {
        let api_code = v
            .get("data")
            .and_then(|d| d.get("errorCode"))
            .and_then(Value::as_i64)
            .unwrap_or(401);
        return Err(refused(api_code));
    }
    let data = match v.get("data") {
        Some(d @ Value::Object(_)) => d,
        _ => {
            return Err(AuthError::Shape {
                field: "data",
                detail: "missing or not an object".into(),
            });
        }
    };
    let access = match data.get("accessToken") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => {
            return Err(AuthError::Shape {
                field: "data.accessToken",
                detail: "missing, empty or not a string".into(),
            });
        }
    };
    let refresh = match data.get("refreshToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
        Some(Value::String(_)) => None,
        Some(_) => {
            return Err(AuthError::Shape {
                field: "data.refreshToken",
                detail: "not a string".into(),
            });
        }
    };
    // A header value must not carry control characters; a token that cannot
    // be sent is no token.
    if HeaderValue::from_str(&access).is_err() {
        return Err(AuthError::Shape {
            field: "data.accessToken",
            detail: "contains characters not allowed in an HTTP header".into(),
        });
    }
    let expires_in = seconds_of(data.get("expiresIn").unwrap_or(&Value::Null)).map_err(|detail| AuthError::Shape {
        field: "data.expiresIn",
        detail,
    })?;
    let mut note = None;
    let from_exp = match jwt_exp(&access) {
        Some(exp) if exp > now_unix && exp - now_unix <= MAX_LIFETIME.as_secs() => {
            Some(Duration::from_secs(exp - now_unix))
        }
        Some(exp) if exp > now_unix => {
            note = Some(format!(
                "the token's JWT exp ({exp}) is more than ten years after this host's clock ({now_unix}); ignoring it — is it in milliseconds?"
            ));
            None
        }
        Some(exp) => {
            note = Some(format!(
                "the token's JWT exp ({exp}) is not after this host's clock ({now_unix}); ignoring it — is the clock right?"
            ));
            None
        }
        None => None,
    };
    let (lifetime, lifetime_source) = match (expires_in, from_exp) {
        (Some(a), Some(b)) if b < a => (b, "JWT exp"),
        (Some(a), _) => (a, "expiresIn"),
        (None, Some(b)) => (b, "JWT exp"),
        (None, None) => (default_lifetime, "auth.default_lifetime"),
    };
    // A token that expires within a second cannot be used (and would be
    // renewed in a tight loop): treat it as a broken answer, retried with
    // backoff.
    if lifetime < MIN_LIFETIME {
        return Err(AuthError::Shape {
            field: if lifetime_source == "JWT exp" {
                "accessToken exp"
            } else {
                "data.expiresIn"
            },
            detail: format!("a lifetime of {lifetime:?} is too short to use (at least 1 s)"),
        });
    }
    Ok(Grant {
        access: Secret::new(access),
        refresh,
        lifetime,
        lifetime_source,
        note,
    })
}

/// Exponential backoff with jitter: the `attempt`-th wait (0-based) is drawn
/// from [d/2, d) where d = base·2^attempt, capped.
pub fn backoff(base: Duration, cap: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20));
    let d = exp.min(cap);
    d.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Joins an error with its sources: "client error (Connect): tcp connect
/// error: Connection refused (os error 111)".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

// ---------------------------------------------------------------------------
// The task.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Login,
    Refresh,
}

/// The single writer of the token cell.
pub struct Authenticator {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    settings: AuthSettings,
    pool: Pool,
    target: Target,
    metrics: Arc<Metrics>,
    generation: u64,
    /// The newest refresh token; it outlives the access token's validity.
    refresh_token: Option<Secret>,
    step: Step,
    at: Instant,
    transient_failures: u32,
    credential_failures: u32,
    reauth_cooldown: Duration,
    /// The generation a 401-triggered renewal produced, and whether one is
    /// under way: the loop guard above.
    reactive_generation: u64,
    reactive_pending: bool,
}

impl Authenticator {
    pub fn new(
        settings: AuthSettings,
        pool: Pool,
        target: Target,
        metrics: Arc<Metrics>,
    ) -> (Authenticator, AuthHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Status {
            username: settings.username.clone(),
            ..Status::default()
        };
        let shared = Arc::new(Shared {
            cell: ArcSwapOption::empty(),
            changes: watch::Sender::new(0),
            status: Mutex::new(status),
            commands: tx,
        });
        let auth = Authenticator {
            shared: shared.clone(),
            commands: rx,
            settings,
            pool,
            target,
            metrics,
            generation: 0,
            refresh_token: None,
            step: Step::Login,
            at: Instant::now(),
            transient_failures: 0,
            credential_failures: 0,
            reauth_cooldown: REAUTH_COOLDOWN,
            reactive_generation: 0,
            reactive_pending: false,
        };
        (auth, AuthHandle { shared })
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.shared.cell.load_full()
    }

    fn update_status(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.shared.status.lock() {
            f(&mut s);
        }
        self.shared.changes.send_modify(|v| *v += 1);
    }

    /// Runs until `stop` is cancelled, then logs out (if configured) and
    /// returns. Cancel `stop` only after the server has drained, so that
    /// requests in flight keep a token to the end.
    pub async fn run(mut self, stop: CancellationToken) {
        info!(username = %self.settings.username, api = %self.target.origin(), "logging in");
        loop {
            let expiry = self.current().map(|s| s.valid_until);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                _ = tokio::time::sleep_until(expiry.unwrap_or(self.at)), if expiry.is_some_and(|e| e < self.at) => {
                    self.expire();
                }
                _ = tokio::time::sleep_until(self.at) => self.attempt().await,
            }
        }
        self.logout().await;
        self.update_status(|s| s.stopped = true);
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Reauth { stale, reply } => {
                let now = Instant::now();
                let stale_session = self.current().filter(|s| s.generation == stale);
                let age = stale_session
                    .as_ref()
                    .map(|s| now.saturating_duration_since(s.obtained_at));
                let proven = stale_session.is_some_and(|s| s.proven.load(Ordering::Relaxed));
                // Suspicious only if the rejected token is itself the fruit of
                // a 401-triggered renewal and never worked: the API rejects
                // what it issues, and renewing again at once would loop.
                let suspicious = !proven && stale == self.reactive_generation;
                let accepted = if stale < self.generation {
                    // A newer token exists already.
                    true
                } else if self.step_is_immediate(now) {
                    // One is already scheduled; share it.
                    true
                } else if suspicious && age.is_some_and(|a| a < self.reauth_cooldown) {
                    // The API rejects a token before it ever worked; doing
                    // it again at once would only repeat that.
                    debug!(
                        cooldown_ms = self.reauth_cooldown.as_millis() as u64,
                        "the API rejected a token that never worked; not re-authenticating yet"
                    );
                    false
                } else {
                    // A token that served requests was revoked: renew at
                    // once. One that never worked makes the next wait longer.
                    self.reauth_cooldown = if suspicious {
                        (self.reauth_cooldown * 2).min(REAUTH_COOLDOWN_MAX)
                    } else {
                        REAUTH_COOLDOWN
                    };
                    self.reactive_pending = true;
                    self.metrics.reauthentications.inc();
                    info!("the API rejected the current token; re-authenticating now");
                    self.step = if self.refresh_token.is_some() {
                        Step::Refresh
                    } else {
                        Step::Login
                    };
                    self.at = now;
                    true
                };
                let _ = reply.send(accepted);
            }
            Command::Reload { settings, reply } => {
                let credentials_changed = settings.username != self.settings.username
                    || settings.password != self.settings.password
                    || settings.login_path != self.settings.login_path;
                self.settings = *settings;
                if credentials_changed {
                    info!(username = %self.settings.username, "credentials changed; logging in with the new ones (the current token keeps serving meanwhile)");
                    self.step = Step::Login;
                    self.at = Instant::now();
                    self.credential_failures = 0;
                    self.transient_failures = 0;
                    let username = self.settings.username.clone();
                    self.update_status(|s| {
                        s.username = username;
                        s.credentials_rejected = false;
                    });
                } else {
                    debug!("auth settings reloaded; credentials unchanged");
                }
                let _ = reply.send(());
            }
        }
    }

    fn step_is_immediate(&self, now: Instant) -> bool {
        self.at <= now
    }

    /// The token in the cell has passed its validity: take it out so that
    /// readiness and metrics say so.
    fn expire(&mut self) {
        if self.current().is_some() {
            warn!(username = %self.settings.username, "the access token expired before it could be renewed; requests wait for a new one");
            self.shared.cell.store(None);
            self.update_status(|_| {});
        }
    }

    async fn attempt(&mut self) {
        match self.step {
            Step::Refresh => match self.refresh().await {
                Ok(()) => {}
                Err(e) if e.is_rejection() => {
                    info!(reason = %e, "refresh refused; logging in again");
                    self.refresh_token = None;
                    if let Err(e) = self.login().await {
                        self.failed(Step::Login, e);
                    }
                }
                Err(e) => self.failed(Step::Refresh, e),
            },
            Step::Login => {
                if let Err(e) = self.login().await {
                    self.failed(Step::Login, e);
                }
            }
        }
    }

    async fn login(&mut self) -> Result<(), AuthError> {
        let body = serde_json::json!({
            "username": self.settings.username,
            "password": self.settings.password.expose(),
        });
        let uri = self.target.api_uri(&self.settings.login_path);
        let sent = Instant::now();
        let result = self
            .call(uri, None, Some(Bytes::from(body.to_string())))
            .await
            .and_then(|(status, headers, body)| {
                parse_grant(status, &headers, &body, unix_now(), self.settings.default_lifetime)
            });
        match result {
            Ok(grant) => {
                self.metrics.auth(AuthKind::Login, AuthResult::Success);
                self.install(grant, sent, Step::Login);
                Ok(())
            }
            Err(e) => {
                let result = if e.is_rejection() {
                    AuthResult::Rejected
                } else {
                    AuthResult::Error
                };
                self.metrics.auth(AuthKind::Login, result);
                Err(e)
            }
        }
    }

    async fn refresh(&mut self) -> Result<(), AuthError> {
        let Some(token) = self.refresh_token.clone() else {
            return Err(AuthError::Rejected {
                status: 0,
                code: 0,
                message: "no refresh token held".into(),
            });
        };
        let uri = self.target.api_uri(&self.settings.refresh_path);
        let sent = Instant::now();
        let result = self
            .call(uri, Some(&token), None)
            .await
            .and_then(|(status, headers, body)| {
                parse_grant(status, &headers, &body, unix_now(), self.settings.default_lifetime)
            });
        match result {
            Ok(mut grant) => {
                self.metrics.auth(AuthKind::Refresh, AuthResult::Success);
                // Rotation: the answer's refresh token replaces ours; an API
                // that sends none keeps the old one valid.
                if grant.refresh.is_none() {
                    grant.refresh = Some(token);
                }
                self.install(grant, sent, Step::Refresh);
                Ok(())
            }
            Err(e) => {
                let result = if e.is_rejection() {
                    AuthResult::Rejected
                } else {
                    AuthResult::Error
                };
                self.metrics.auth(AuthKind::Refresh, result);
                Err(e)
            }
        }
    }

    /// Puts a new session in the cell and schedules its refresh.
    fn install(&mut self, grant: Grant, sent: Instant, how: Step) {
        let lifetime = grant.lifetime;
        // Keep a margin for the request's trip: a token is not sent in its
        // last second (or last tenth, for very short lifetimes).
        let margin = Duration::from_secs(1).min(lifetime / 10);
        let expires_at = sent + lifetime;
        let jitter = (rand::random::<f64>() - 0.5) * 0.1;
        let ratio = (self.settings.refresh_ratio + jitter).clamp(0.05, 0.95);
        let refresh_at = sent + lifetime.mul_f64(ratio);
        let mut authorization = match HeaderValue::from_str(&format!("Bearer {}", grant.access.expose())) {
            Ok(v) => v,
            // parse_grant checked the token; keep the old session if not.
            Err(_) => return,
        };
        authorization.set_sensitive(true);
        self.generation += 1;
        let session = Session {
            generation: self.generation,
            authorization,
            access: grant.access,
            obtained_at: sent,
            valid_until: expires_at - margin,
            expires_at,
            expires_at_unix: unix_now() + lifetime.as_secs(),
            lifetime,
            refresh_at,
            proven: AtomicBool::new(false),
        };
        self.refresh_token = grant.refresh;
        self.shared.cell.store(Some(Arc::new(session)));
        if std::mem::take(&mut self.reactive_pending) {
            self.reactive_generation = self.generation;
        }
        self.step = Step::Refresh;
        self.at = refresh_at;
        let recovered = self.transient_failures + self.credential_failures > 0;
        self.transient_failures = 0;
        self.credential_failures = 0;
        self.metrics.auth_consecutive_failures.set(0);
        if let Some(note) = &grant.note {
            warn!("{note}");
        }
        let next = refresh_at.saturating_duration_since(Instant::now());
        let what = if how == Step::Login {
            "logged in"
        } else {
            "token refreshed"
        };
        info!(
            username = %self.settings.username,
            expires_in_s = lifetime.as_secs(),
            lifetime_from = grant.lifetime_source,
            next_refresh_in_ms = next.as_millis() as u64,
            recovered,
            "{what}; next refresh in {}",
            humantime::format_duration(Duration::from_millis(next.as_millis() as u64))
        );
        let now = SystemTime::now();
        self.update_status(|s| {
            if how == Step::Login {
                s.last_login = Some(now);
                s.logins += 1;
            } else {
                s.last_refresh = Some(now);
                s.refreshes += 1;
            }
            s.consecutive_failures = 0;
            s.credentials_rejected = false;
            s.next_attempt = Some(refresh_at);
        });
    }

    /// Schedules the retry of a failed step and says why it failed.
    fn failed(&mut self, step: Step, e: AuthError) {
        let now = Instant::now();
        let credential = step == Step::Login && e.is_rejection();
        let wait = if credential {
            self.credential_failures += 1;
            backoff(
                CREDENTIAL_BASE,
                self.settings.credential_retry_max,
                self.credential_failures - 1,
                rand::random(),
            )
        } else {
            self.transient_failures += 1;
            let w = backoff(
                TRANSIENT_BASE,
                self.settings.retry_max,
                self.transient_failures - 1,
                rand::random(),
            );
            match e.retry_after() {
                Some(ra) => w.max(ra.min(self.settings.retry_max)),
                None => w,
            }
        };
        let mut at = now + wait;
        // A failing refresh is tried again before the token runs out.
        if step == Step::Refresh {
            if let Some(s) = self.current().filter(|s| s.valid_until > now) {
                let last_chance = s.valid_until.checked_sub(Duration::from_millis(200)).unwrap_or(now);
                if at > last_chance && last_chance > now {
                    at = last_chance;
                }
            }
        }
        self.step = step;
        self.at = at;
        let failures = self.transient_failures + self.credential_failures;
        self.metrics.auth_consecutive_failures.set(i64::from(failures));
        let what = match step {
            Step::Login => "login",
            Step::Refresh => "refresh",
        };
        let retry = humantime::format_duration(Duration::from_millis(wait.as_millis() as u64));
        if credential {
            error!(
                username = %self.settings.username,
                reason = %e,
                retry_in = %retry,
                "login refused: the API rejected the credentials of {:?}; check auth.username and the password source, then reload (retrying slowly)",
                self.settings.username
            );
        } else {
            warn!(username = %self.settings.username, reason = %e, retry_in = %retry, failures, "{what} failed");
        }
        let message = if credential {
            format!("login for {:?} refused: {e}", self.settings.username)
        } else {
            format!("{what} failed: {e}")
        };
        let at_wall = SystemTime::now();
        self.update_status(|s| {
            s.last_error = Some(message);
            s.last_error_at = Some(at_wall);
            s.consecutive_failures = failures;
            s.credentials_rejected = credential;
            s.next_attempt = Some(at);
        });
    }

    async fn logout(&mut self) {
        if !self.settings.logout_on_shutdown {
            return;
        }
        let Some(session) = self.current().filter(|s| s.is_valid(Instant::now())) else {
            return;
        };
        let uri = self.target.api_uri(&self.settings.logout_path);
        let limit = self.settings.timeout.min(LOGOUT_TIMEOUT);
        let result = tokio::time::timeout(limit, self.call(uri, Some(session.access_token()), None)).await;
        self.shared.cell.store(None);
        match result {
            Ok(Ok((status, _, _))) if status.is_success() => {
                self.metrics.auth(AuthKind::Logout, AuthResult::Success);
                info!(username = %self.settings.username, "logged out");
            }
            Ok(Ok((status, _, _))) => {
                self.metrics.auth(AuthKind::Logout, AuthResult::Rejected);
                warn!(
                    status = status.as_u16(),
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

    /// One POST to the API, bounded by `auth.timeout`, body read whole (capped).
    async fn call(
        &self,
        uri: Uri,
        bearer: Option<&Secret>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), AuthError> {
        let url = format!("{}{}", self.target.origin(), uri.path());
        let mut req = Request::post(uri);
        if let Some(headers) = req.headers_mut() {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            if body.is_some() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            if let Some(token) = bearer {
                if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
                    v.set_sensitive(true);
                    headers.insert(AUTHORIZATION, v);
                }
            }
        }
        let req = req
            .body(upstream::full(body.unwrap_or_default()))
            .map_err(|e| AuthError::Unreachable {
                url: url.clone(),
                cause: e.to_string(),
            })?;
        let limit = self.settings.timeout;
        let exchange = async {
            let resp = self.pool.request(req).await.map_err(|e| AuthError::Unreachable {
                url: url.clone(),
                cause: error_chain(&e),
            })?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, MAX_AUTH_BODY)
                .collect()
                .await
                .map_err(|e| AuthError::Garbage {
                    status: parts.status.as_u16(),
                    detail: format!("reading the body failed: {e}"),
                })?
                .to_bytes();
            Ok((parts.status, parts.headers, bytes))
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(AuthError::Timeout { url, limit }),
        }
    }
}

#[cfg(test)]
mod tests;
