//! Calls that Asterisk makes into the module without holding a reference to
//! it (HTTP handlers, optional-API functions, the application under a forced
//! unload), for the host layer: counted from the callee's first statement,
//! so unload can wait until none is inside before the module's code goes
//! away. Pure, so the unit tests cover it.
//!
//! What no count can see is a thread that has already fetched one of the
//! module's function pointers (under the caller's own lock, or with none)
//! and not yet run its first statement: a few of the caller's instructions.
//! [`Calls::drain`] therefore also waits for a quiet period in which no call
//! entered; a call that does enter meanwhile proves such a thread existed,
//! and is waited for in turn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One kind of call into the module.
pub struct Calls {
    /// Two counts in one word, so entering is one atomic add: the calls
    /// inside (low half) and the calls that ever entered (high half, modulo
    /// 2^32): a change of the latter tells that one entered meanwhile.
    counts: AtomicU64,
}

/// What one entering call adds to [`Calls::counts`].
const ENTER: u64 = (1 << 32) | 1;
/// The bits of [`Calls::counts`] that count the calls inside.
const INSIDE_BITS: u64 = u32::MAX as u64;

/// A call inside the module: counted until dropped.
pub struct Inside {
    calls: &'static Calls,
}

impl Calls {
    pub const fn new() -> Calls {
        Calls { counts: AtomicU64::new(0) }
    }

    /// Counts a call from now until the result is dropped. Take it first thing.
    pub fn enter(&'static self) -> Inside {
        // Carries into the high half never: fewer than 2^32 calls are inside.
        self.counts.fetch_add(ENTER, Ordering::SeqCst);
        Inside { calls: self }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.load(Ordering::SeqCst) & INSIDE_BITS == 0
    }

    /// Waits until no call is inside and none entered for `quiet`; false if
    /// that did not happen within `limit`. Call it once nothing of Asterisk's
    /// leads to the functions any more (unlinked, unprovided).
    pub fn drain(&self, limit: Duration, quiet: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let entered = || self.counts.load(Ordering::SeqCst) >> 32;
        let mut seen = entered();
        let mut quiet_since = Instant::now();
        loop {
            let entered = entered();
            if entered != seen || !self.is_empty() {
                seen = entered;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= quiet {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        self.calls.counts.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_waits_for_calls_inside_and_for_quiet() {
        static CALLS: Calls = Calls::new();
        assert!(CALLS.drain(Duration::from_millis(200), Duration::from_millis(5)));
        let inside = CALLS.enter();
        assert!(!CALLS.drain(Duration::from_millis(20), Duration::from_millis(5)), "a call is inside");
        let started = Instant::now();
        let leaving = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(inside);
        });
        assert!(CALLS.drain(Duration::from_secs(5), Duration::from_millis(20)));
        // The call left 30 ms in at the earliest; the quiet is counted from the
        // last look that still saw it (at most a 1 ms poll before it left).
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(48), "returned after {took:?}, before the call left and the quiet passed");
        leaving.join().unwrap();
        assert!(CALLS.is_empty());
    }

    #[test]
    fn a_call_entering_during_the_quiet_period_restarts_it() {
        static CALLS: Calls = Calls::new();
        let started = Instant::now();
        let late = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(40));
            drop(CALLS.enter());
        });
        assert!(CALLS.drain(Duration::from_secs(5), Duration::from_millis(60)));
        // Entered 40 ms in at the earliest, seen after that: 60 ms of quiet from then.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100), "quiet did not restart: returned after {took:?}");
        late.join().unwrap();
    }
}
