//! Liveness of the parts the sidecar cannot serve without: the proxy workers
//! (one thread and runtime each) and the auth task (the token cell's writer).
//!
//! A part can fail in two ways, and each ends in a restart by systemd:
//!
//! - It **ends** while it should run: a panic, or a worker whose runtime or
//!   listener cannot be set up. Whoever started it notices ([`crate::server`]
//!   for the workers, [`crate::app`] for the auth task) and reports an
//!   [`Ended`]: logged at error level, the shutdown token is cancelled so the
//!   connections drain as on SIGTERM, and the process exits 1, which
//!   `Restart=on-failure` restarts.
//! - It **stops making progress** but is still there (a blocking call on a
//!   worker's runtime, a runtime that no longer polls): nothing ends. Each
//!   part therefore beats into its slot of [`Heartbeats`] from its own
//!   runtime, and the watchdog ([`crate::notify`]) sends `WATCHDOG=1` only
//!   while every slot has beaten within `WATCHDOG_USEC`. Once one has not, it
//!   names the part and stops pinging, and systemd kills and restarts the
//!   service. Without a watchdog there are no beats (no timers, no cost).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::error;

/// A part whose end or silence stops the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    AuthTask,
    /// A proxy worker, by index (the thread `proxy-worker-N`).
    Worker(usize),
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::AuthTask => f.write_str("the auth task"),
            Part::Worker(i) => write!(f, "proxy worker {i}"),
        }
    }
}

/// How a part ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It panicked, with this message (see [`panic_message`]).
    Panicked(String),
    /// It returned while the sidecar was still meant to serve.
    Returned,
    /// It could not be set up at start.
    NotStarted(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panicked(message) => write!(f, "panicked: {message}"),
            Failure::Returned => f.write_str("ended unexpectedly"),
            Failure::NotStarted(reason) => write!(f, "could not start: {reason}"),
        }
    }
}

/// A part that ended while it should have kept running: the process stops
/// with a non-zero status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} {failure}")]
pub struct Ended {
    pub part: Part,
    pub failure: Failure,
}

impl Ended {
    pub fn new(part: Part, failure: Failure) -> Ended {
        Ended { part, failure }
    }

    /// The error line that says what ended and what happens next.
    pub(crate) fn log(&self) {
        error!(
            part = %self.part,
            "{self}; the sidecar stops with exit status 1 (systemd's Restart=on-failure starts it again)"
        );
    }
}

/// The longest panic message repeated in a log line or an exit message.
const PANIC_MESSAGE_MAX: usize = 200;

/// The text of a panic's payload, cut at [`PANIC_MESSAGE_MAX`] characters.
/// Only the message is kept, never the payload's other contents; secrets
/// that reach one are masked by their own `Display`.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    match text.char_indices().nth(PANIC_MESSAGE_MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A slot that no longer counts: its part ended (and was reported as such,
/// if that was a failure).
const RETIRED: u64 = u64::MAX;

/// The shortest time between two beats, whatever `WATCHDOG_USEC` says.
const MIN_BEAT: Duration = Duration::from_millis(10);

/// The last beat of every part, written by the parts (lock-free), read by
/// the watchdog.
pub(crate) struct Heartbeats {
    /// What the beats' times count from.
    origin: Instant,
    /// `WATCHDOG_USEC`; `None`: no watchdog, nothing beats.
    interval: Option<Duration>,
    slots: Vec<Slot>,
}

struct Slot {
    part: Part,
    /// Milliseconds from `origin` to the last beat, or [`RETIRED`].
    last: AtomicU64,
}

impl Heartbeats {
    /// One slot for the auth task and one per proxy worker, each counted as
    /// beaten now.
    pub(crate) fn new(interval: Option<Duration>, workers: usize) -> Arc<Heartbeats> {
        let parts = std::iter::once(Part::AuthTask).chain((0..workers).map(Part::Worker));
        Arc::new(Heartbeats {
            origin: Instant::now(),
            interval,
            slots: parts
                .map(|part| Slot {
                    part,
                    last: AtomicU64::new(0),
                })
                .collect(),
        })
    }

    /// The handle `part` beats with; its slot retires when it is dropped.
    pub(crate) fn heart(self: &Arc<Self>, part: Part) -> Heart {
        Heart {
            beats: self.clone(),
            slot: self.slots.iter().position(|s| s.part == part),
        }
    }

    /// A quarter of the watchdog interval: a part is stale only after
    /// missing about four beats in a row.
    fn beat_period(&self) -> Option<Duration> {
        self.interval.map(|i| (i / 4).max(MIN_BEAT))
    }

    /// How long a part may stay silent: the watchdog interval.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.interval.zip(self.beat_period()).map(|(i, b)| i.max(b * 4))
    }

    fn now(&self) -> u64 {
        millis(self.origin.elapsed())
    }

    /// The first part (slot order: the auth task, then the workers) whose
    /// last beat is more than `limit` before `now` (both measured from the
    /// origin), and how long it has been silent.
    pub(crate) fn stale_at(&self, limit: Duration, now: Duration) -> Option<(Part, Duration)> {
        let now = millis(now);
        self.slots.iter().find_map(|slot| {
            let last = slot.last.load(Ordering::Relaxed);
            let silent = now.saturating_sub(last);
            (last != RETIRED && silent > millis(limit)).then(|| (slot.part, Duration::from_millis(silent)))
        })
    }

    /// [`Heartbeats::stale_at`] now, with the watchdog's limit.
    pub(crate) fn stale(&self) -> Option<(Part, Duration)> {
        let limit = self.limit()?;
        self.stale_at(limit, self.origin.elapsed())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(RETIRED - 1)
}

/// One part's slot in [`Heartbeats`].
pub(crate) struct Heart {
    beats: Arc<Heartbeats>,
    slot: Option<usize>,
}

impl Heart {
    /// Records that the part is making progress now.
    pub(crate) fn beat(&self) {
        if let Some(slot) = self.slot.and_then(|i| self.beats.slots.get(i)) {
            slot.last.store(self.beats.now(), Ordering::Relaxed);
        }
    }

    /// Fires at the beat period; never without a watchdog.
    pub(crate) fn ticker(&self) -> Ticker {
        Ticker(self.beats.beat_period().map(|period| {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        }))
    }

    /// Runs `work`, beating at the beat period meanwhile from the same task:
    /// when the runtime stops polling that task, the beats stop too.
    pub(crate) async fn beating<F: Future>(&self, work: F) -> F::Output {
        let mut ticker = self.ticker();
        if ticker.0.is_none() {
            return work.await;
        }
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                _ = ticker.tick() => self.beat(),
            }
        }
    }
}

impl Drop for Heart {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.and_then(|i| self.beats.slots.get(i)) {
            slot.last.store(RETIRED, Ordering::Relaxed);
        }
    }
}

/// The beat timer of one part: `None` without a watchdog.
pub(crate) struct Ticker(Option<tokio::time::Interval>);

impl Ticker {
    /// The next beat time; pending forever without a watchdog.
    pub(crate) async fn tick(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests;
