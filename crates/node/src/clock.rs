//! The one wall clock of a node's jobs: seconds since the Unix epoch, as the
//! replicated records store times (ticket keys, bans, certificates, mtimes).

use std::time::SystemTime;

/// Now, in whole seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Now, in milliseconds since the epoch (event times).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
