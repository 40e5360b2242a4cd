//! The wall clock: the one place reprise (and its CLI) reads the current time as a Unix
//! timestamp. Events, segment and snapshot headers, ownership claims, retention ages and
//! Sonora files are all stamped from here, so every stamp uses the same conversion (a clock set
//! before 1970 reads as 0; one past `u64::MAX` milliseconds saturates).

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix milliseconds (0 if the clock is set before 1970).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The current time in whole Unix seconds (0 if the clock is set before 1970), as Sonora's
/// `timestamp` holds it.
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let ms = now_unix_ms();
        let secs = now_unix_secs();
        let ms_after = now_unix_ms();
        // Some time after 2020 and before 2100, and the two read the same clock.
        assert!(ms > 1_577_836_800_000 && ms < 4_102_444_800_000, "{ms}");
        assert!(
            ms / 1000 <= secs && secs <= ms_after / 1000,
            "{ms} {secs} {ms_after}"
        );
    }
}
