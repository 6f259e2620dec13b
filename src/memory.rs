//! Giving memory back after a burst.
//!
//! The C allocator keeps the memory a burst of connections freed, in the
//! arenas of the threads that used it: the sidecar's RSS stays at its peak
//! long after the load is gone. Every few seconds a task on the main
//! runtime looks at the open connections and the RSS; when the load has
//! fallen to half of what it was (or a pool has closed idle connections)
//! and the RSS is above its resting level, it asks the allocator to return
//! its free pages to the system. The call itself comes from the binary
//! (`malloc_trim` on glibc), so the library stays free of `unsafe`; without
//! one, nothing runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Returns the allocator's free memory to the system.
pub type Trim = fn();

/// How often the load and the RSS are looked at.
const TICK: Duration = Duration::from_secs(5);

/// RSS above the resting level that is worth a trim.
const SLACK_KIB: u64 = 512;

static POOL_SHRANK: AtomicBool = AtomicBool::new(false);

/// Called when a pool closed idle connections: their buffers are free.
pub(crate) fn pool_shrank() {
    POOL_SHRANK.store(true, Ordering::Relaxed);
}

/// What the trimming policy remembers between looks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// Most open connections since the last trim.
    peak: usize,
    /// Lowest RSS seen right after a trim (or at start), in KiB.
    floor_kib: u64,
}

impl Policy {
    pub(crate) fn new(rss_kib: u64, open: usize) -> Policy {
        Policy {
            peak: open,
            floor_kib: rss_kib,
        }
    }

    /// Whether to trim now, given the open connections, the RSS and whether
    /// a pool closed connections since the last look.
    pub(crate) fn should_trim(&mut self, open: usize, rss_kib: u64, pool_shrank: bool) -> bool {
        self.peak = self.peak.max(open);
        let calmer = open <= self.peak / 2 && self.peak > open;
        (calmer || pool_shrank) && rss_kib > self.floor_kib + SLACK_KIB
    }

    /// After a trim: the load now is the new reference.
    pub(crate) fn trimmed(&mut self, open: usize, rss_kib: u64) {
        self.peak = open;
        self.floor_kib = self.floor_kib.min(rss_kib);
    }
}

/// Resident memory of this process in KiB (`VmRSS`), if readable.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Looks every few seconds and trims when the policy says so, until
/// `shutdown`. `open` counts the connections being served.
pub async fn give_back(trim: Trim, open: TaskTracker, shutdown: CancellationToken) {
    let Some(start) = rss_kib() else { return };
    let mut policy = Policy::new(start, open.len());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(before) = rss_kib() else { return };
        let connections = open.len();
        if policy.should_trim(connections, before, POOL_SHRANK.swap(false, Ordering::Relaxed)) {
            trim();
            let after = rss_kib().unwrap_or(before);
            debug!(
                before_kib = before,
                after_kib = after,
                connections,
                "gave free memory back to the system"
            );
            policy.trimmed(connections, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_the_load_has_halved_and_memory_is_above_rest() {
        let mut p = Policy::new(7_000, 0);
        // The burst builds up: no trim while it lasts.
        assert!(!p.should_trim(256, 20_000, false));
        assert!(!p.should_trim(250, 21_000, false));
        // Half the connections are gone, RSS is up: trim.
        assert!(p.should_trim(100, 21_000, false));
        p.trimmed(100, 12_000);
        // Nothing new: no trim on every tick.
        assert!(!p.should_trim(100, 12_000, false));
        // The rest are gone.
        assert!(p.should_trim(0, 12_000, false));
        p.trimmed(0, 7_300);
        assert!(!p.should_trim(0, 7_300, false));
    }

    #[test]
    fn a_pool_that_closed_connections_asks_for_a_trim_only_above_rest() {
        let mut p = Policy::new(7_000, 3);
        assert!(p.should_trim(3, 9_000, true));
        p.trimmed(3, 7_200);
        assert!(!p.should_trim(3, 7_300, true), "within the slack of the resting RSS");
    }

    #[test]
    fn steady_load_with_churn_never_trims() {
        let mut p = Policy::new(7_000, 0);
        for open in [60, 64, 58, 63, 61, 64, 59] {
            assert!(!p.should_trim(open, 15_000, false), "{open} open");
        }
    }

    #[test]
    fn reads_its_own_rss() {
        let kib = rss_kib().expect("VmRSS in /proc/self/status");
        assert!(kib > 100, "{kib} KiB");
    }
}
