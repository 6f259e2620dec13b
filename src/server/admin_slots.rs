//! The admin listener's connections, which no client may fill up: at most
//! [`ADMIN_CONNECTIONS`] are open, and one beyond them closes the oldest
//! (not the newcomer) — so idle connections, whoever holds them, never keep
//! a health check or `ethgas-sidecar status` out. Every admin answer is made
//! at once, so the oldest connection is an idle one in practice; an idle one
//! is also closed by hyper after [`ADMIN_HEADER_TIMEOUT`] without a request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Connections the admin listener keeps open at once; a new one beyond them
/// closes the oldest.
pub const ADMIN_CONNECTIONS: usize = 256;

/// How long an admin connection may wait for a request head (the first or
/// the next on a kept-alive connection) before it is closed: health checks
/// send theirs at once.
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The open admin connections, oldest first.
#[derive(Default)]
pub(super) struct AdminSlots {
    open: Mutex<VecDeque<(u64, CancellationToken)>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// One admin connection's place; its token is cancelled when a newer
/// connection takes the place, and dropping it frees the place.
pub(super) struct AdminSlot {
    slots: Arc<AdminSlots>,
    id: u64,
    pub(super) evicted: CancellationToken,
}

impl AdminSlots {
    /// A place for a new connection; whether the oldest was closed for it.
    pub(super) fn admit(self: &Arc<Self>) -> (AdminSlot, bool) {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let full = open.len() >= ADMIN_CONNECTIONS;
        if full {
            if let Some((_, oldest)) = open.pop_front() {
                oldest.cancel();
            }
        }
        open.push_back((id, evicted.clone()));
        let slot = AdminSlot {
            slots: self.clone(),
            id,
            evicted,
        };
        (slot, full)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for AdminSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.iter().position(|(id, _)| *id == self.id) {
            open.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_cap_the_oldest_connection_is_closed_and_the_newest_kept() {
        let slots = Arc::new(AdminSlots::default());
        let mut held: Vec<AdminSlot> = (0..ADMIN_CONNECTIONS).map(|_| slots.admit().0).collect();
        assert!(held.iter().all(|s| !s.evicted.is_cancelled()));
        let (newest, full) = slots.admit();
        assert!(full);
        assert!(held[0].evicted.is_cancelled(), "the oldest goes");
        assert!(held[1..].iter().all(|s| !s.evicted.is_cancelled()));
        assert!(!newest.evicted.is_cancelled());
        assert_eq!(slots.len(), ADMIN_CONNECTIONS);
        // The evicted connection's task ends later; its place is already gone.
        drop(held.remove(0));
        assert_eq!(slots.len(), ADMIN_CONNECTIONS);
        drop(held);
        assert_eq!(slots.len(), 1);
        drop(newest);
        assert_eq!(slots.len(), 0);
    }
}
