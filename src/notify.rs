//! systemd integration: readiness, status, watchdog (sd_notify).
//!
//! `READY=1` is sent once, after the first successful login — not when the
//! sockets are bound — so that units ordered after the sidecar start only
//! when requests will succeed. `STATUS=` says what the session is doing
//! ("logged in as alice, token expires in 2712 s", "login failing: …").
//! `WATCHDOG=1` is sent from a task on the same runtime that serves requests,
//! at half of `WATCHDOG_USEC`, so a stuck runtime stops the pings and systemd
//! restarts the service. Without `NOTIFY_SOCKET` nothing is sent and nothing
//! fails.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::auth::AuthHandle;

/// How often the STATUS line is refreshed even without a change, so the
/// seconds-to-expiry in `systemctl status` stay roughly current.
const STATUS_REFRESH: Duration = Duration::from_secs(15);

#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    /// Enabled when systemd gave a notification socket.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    pub fn disabled() -> Notifier {
        Notifier { enabled: false }
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

/// Sends WATCHDOG=1 at half the interval systemd asked for, for as long as
/// the runtime runs (the drain included). Spawn it on the serving runtime.
pub async fn watchdog(notifier: Notifier) {
    let Some(interval) = sd_notify::watchdog_enabled().filter(|_| notifier.enabled) else {
        return;
    };
    let mut ping = tokio::time::interval((interval / 2).max(Duration::from_millis(50)));
    loop {
        ping.tick().await;
        notifier.watchdog();
    }
}
