//! systemd integration: readiness, status, watchdog (sd_notify).
//!
//! `READY=1` is sent once, after the first successful login — not when the
//! sockets are bound — so that units ordered after the sidecar start only
//! when requests will succeed. `STATUS=` says what the session is doing
//! ("logged in as alice, token expires in 2712 s", "login failing: …").
//!
//! `WATCHDOG=1` is sent at half of `WATCHDOG_USEC` from the main runtime
//! (admin endpoints, signals, the auth task), and only while every part in
//! [`crate::liveness::Heartbeats`] — each proxy worker's runtime and the auth
//! task — has beaten within `WATCHDOG_USEC`. A stuck part (a blocked worker
//! thread, a main runtime that no longer polls) thus stops the pings, the
//! watchdog names it once at error level, and systemd kills and restarts the
//! service; should it beat again before that, the pings resume. Without
//! `NOTIFY_SOCKET` nothing is sent and nothing fails.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::auth::AuthHandle;
use crate::liveness::{Heartbeats, Part};

/// How often the STATUS line is refreshed even without a change, so the
/// seconds-to-expiry in `systemctl status` stay roughly current.
const STATUS_REFRESH: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    /// `WATCHDOG_USEC`, when it is meant for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Enabled when systemd gave a notification socket; with a watchdog when
    /// it also gave `WATCHDOG_USEC` (and `WATCHDOG_PID` is unset or ours).
    pub fn from_env() -> Notifier {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some();
        Notifier {
            enabled,
            watchdog: sd_notify::watchdog_enabled().filter(|_| enabled),
        }
    }

    pub fn disabled() -> Notifier {
        Notifier {
            enabled: false,
            watchdog: None,
        }
    }

    /// The interval systemd expects `WATCHDOG=1` within, if it does.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(states) {
                debug!(error = %e, "sd_notify failed");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading configuration"),
            ]),
            Err(_) => self.send(&[NotifyState::Reloading, NotifyState::Status("reloading configuration")]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: draining requests"),
        ]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}

/// The STATUS line for the session's state now.
pub fn status_line(auth: &AuthHandle) -> String {
    let status = auth.status();
    let now = Instant::now();
    match auth.current().filter(|s| s.is_valid(now)) {
        Some(s) => format!(
            "logged in as {}, token expires in {} s",
            status.username,
            s.expires_in(now).as_secs()
        ),
        None => match status.last_error {
            Some(e) => format!("login failing: {e}"),
            None => format!("logging in as {}", status.username),
        },
    }
}

/// Sends READY once a token is held and STATUS on every change, until
/// `shutdown` (which sends STOPPING).
pub async fn supervise(notifier: Notifier, auth: AuthHandle, shutdown: CancellationToken) {
    if !notifier.enabled {
        return;
    }
    let mut refresh = tokio::time::interval(STATUS_REFRESH);
    let mut changes = auth.subscribe();
    let mut ready = false;
    let mut last = String::new();
    loop {
        let line = status_line(&auth);
        if !ready && auth.valid().is_some() {
            notifier.ready(&line);
            ready = true;
            last = line;
        } else if line != last {
            notifier.status(&line);
            last = line;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = refresh.tick() => {}
            r = changes.changed() => if r.is_err() { break },
        }
    }
    notifier.stopping();
}

/// Sends WATCHDOG=1 at half the interval systemd asked for, while every
/// part's heartbeat is fresh, for as long as the main runtime runs (the drain
/// included: a part that has ended no longer counts). Spawn it on the main
/// runtime.
pub(crate) async fn watchdog(notifier: Notifier, beats: Arc<Heartbeats>) {
    let Some(interval) = notifier.watchdog_interval() else {
        return;
    };
    let mut ping = tokio::time::interval((interval / 2).max(Duration::from_millis(50)));
    let mut stuck: Option<Part> = None;
    loop {
        ping.tick().await;
        match beats.stale() {
            None => {
                if let Some(part) = stuck.take() {
                    warn!(part = %part, "{part} is making progress again; WATCHDOG=1 resumes");
                }
                notifier.watchdog();
            }
            Some((part, silent)) => {
                if stuck != Some(part) {
                    error!(
                        part = %part,
                        silent_ms = silent.as_millis() as u64,
                        "{part} is stuck: no heartbeat for {}; WATCHDOG=1 is no longer sent, so systemd restarts the service (WatchdogSec=)",
                        humantime::format_duration(Duration::from_millis(silent.as_millis() as u64))
                    );
                    stuck = Some(part);
                }
            }
        }
    }
}
