//! The wall clock, where the sidecar needs it: JWT `exp` claims and the
//! expiry of placeholder tokens are Unix times. Everything that schedules
//! work uses tokio's monotonic `Instant` instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The time since the Unix epoch, to the nanosecond (zero if the clock is
/// set before it): what is left of a JWT `exp` is measured from here, not
/// from the start of the current second.
pub fn unix_time() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO)
}
