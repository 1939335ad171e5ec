//! At most one log line per interval for what a client can trigger at will
//! (a claim refused by claim_policy): the rest go to debug and are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds between two lines of one kind.
pub const INTERVAL_SECS: u64 = 10;

#[derive(Default)]
pub struct Throttle {
    /// Seconds since the epoch of the last line logged; 0 for never.
    last: AtomicU64,
    /// Lines held back since then.
    suppressed: AtomicU64,
}

impl Throttle {
    #[cfg_attr(test, allow(dead_code))] // its one user is not built for unit tests
    pub const fn new() -> Throttle {
        Throttle { last: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(held back since the last line)` if a line may be logged now;
    /// `None` (and one more held back) if not.
    #[cfg_attr(test, allow(dead_code))] // its one user is not built for unit tests
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        self.allow_at(now)
    }

    fn allow_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < INTERVAL_SECS)
            || self.last.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let throttle = Throttle::default();
        assert_eq!(throttle.allow_at(1000), Some(0));
        assert_eq!(throttle.allow_at(1000), None);
        assert_eq!(throttle.allow_at(1000 + INTERVAL_SECS - 1), None);
        assert_eq!(throttle.allow_at(1000 + INTERVAL_SECS), Some(2));
        assert_eq!(throttle.allow_at(1000 + INTERVAL_SECS), None);
    }
}
