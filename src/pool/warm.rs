//! The warm connection: each proxy worker keeps one connection to the API
//! open, so that the first request after start or after a quiet period does
//! not wait for a TCP and TLS handshake.
//!
//! With HTTP/2 that is the worker's one multiplexed connection, kept alive
//! by pings; with HTTP/1 it is one idle connection, replaced by a fresh one
//! shortly before `pool_idle_timeout` would retire it. Whenever it closes
//! (the API's idle timeout, a GOAWAY, a failed ping) a new one is opened at
//! once. An idle sidecar thus holds exactly one connection per worker, and
//! an API that is down is dialled with a growing pause (1 s up to a minute),
//! as is one that closes every connection soon after it opens.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::{Conn, Connections, Pool};

/// The pause after a failed attempt, doubled up to [`MAX_PAUSE`].
const MIN_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// A warm connection that lived less than this did not really stay warm:
/// the next one waits a growing pause too.
const SHORT_LIFE: Duration = Duration::from_secs(5);

/// How long before `pool_idle_timeout` an idle HTTP/1 connection is replaced.
fn refresh_margin(idle_timeout: Duration) -> Duration {
    (idle_timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

/// Without any news, the keeper looks again this often (it also notices a
/// pool that is gone).
const RECHECK: Duration = Duration::from_secs(30);

impl Pool {
    /// Starts keeping one connection open, on the current runtime, for as
    /// long as the pool exists (unless `upstream.keep_warm` is off).
    pub fn keep_warm(&self) {
        if !self.inner.warm {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let ended = self.inner.ended.clone();
        tokio::spawn(async move {
            let mut pause = MIN_PAUSE;
            let mut last_attempt: Option<Instant> = None;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if let Some(fresh_for) = inner.warm_until() {
                    drop(inner);
                    tokio::select! {
                        _ = ended.notified() => {}
                        _ = tokio::time::sleep(fresh_for.min(RECHECK)) => {}
                    }
                    continue;
                }
                drop(inner);
                // Cold. If the last attempt failed or its connection died
                // young, wait a growing pause first; otherwise start over.
                if let Some(at) = last_attempt {
                    if at.elapsed() < SHORT_LIFE {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(MAX_PAUSE);
                    } else {
                        pause = MIN_PAUSE;
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                if inner.warm_until().is_some() {
                    // A request connected meanwhile.
                    continue;
                }
                last_attempt = Some(Instant::now());
                let pool = Pool { inner };
                match Box::pin(pool.connect_or_join()).await {
                    Ok(Conn::H1(tx)) => pool.inner.checkin(tx),
                    Ok(Conn::H2(..)) => {}
                    Err(e) => debug!(error = %e, "could not open the warm connection to the API"),
                }
            }
        });
    }

    /// Whether the pool holds a connection a request could use now.
    #[cfg(test)]
    pub fn is_warm(&self) -> bool {
        self.inner.warm_until().is_some()
    }
}

impl Connections {
    /// How long the pool stays warm without news: `Some(MAX)` with an open
    /// HTTP/2 connection, the time until the freshest idle HTTP/1 connection
    /// is due for replacement, or `None` when no usable connection is held.
    fn warm_until(&self) -> Option<Duration> {
        if let Ok(slot) = self.h2.lock() {
            if slot.as_ref().is_some_and(|(_, tx)| !tx.is_closed()) {
                return Some(Duration::MAX);
            }
        }
        let idle = self.idle.lock().ok()?;
        let freshest = idle.iter().rev().find(|c| !c.tx.is_closed())?;
        let usable_for = self
            .idle_timeout
            .saturating_sub(refresh_margin(self.idle_timeout))
            .checked_sub(freshest.since.elapsed())?;
        (!usable_for.is_zero()).then_some(usable_for)
    }
}
