//! The record of every call: what the ARI applications saw of it, kept
//! per instance and read by the phases once the call has ended.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The last stage of a call, as the `Stasis()` argument says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The claimant's own Stasis session (the floor's second `Stasis()`).
    Won,
    /// `Stasis(${APP},fallback)` after a TIMEOUT.
    Fallback,
    /// `Stasis(${APP},done)` at the end of the timed extensions.
    Done,
}

/// What the applications saw of one call.
#[derive(Clone, Debug, Default)]
pub struct CallRecord {
    /// Which application was offered the call (CallBroadcast; the floor's first StasisStart), and when.
    pub offers: Vec<(usize, Instant)>,
    /// Which application claimed (floor: sent `continue`), and the HTTP status.
    pub claims: Vec<(usize, u16)>,
    /// When each claim request was sent and its answer read: (app, sent, answered).
    pub claim_times: Vec<(usize, Instant, Instant)>,
    /// The last stage reached: by which application, when its StasisStart arrived.
    pub stage: Option<(Stage, usize, Instant)>,
    /// When that application's StasisEnd for the last stage arrived.
    pub ended: Option<Instant>,
}

impl CallRecord {
    /// The winning application and its claim latency: from the winner's
    /// offer to the winner's StasisStart.
    pub fn claim_latency(&self) -> Option<(usize, Duration)> {
        let (Stage::Won, app, at) = self.stage? else {
            return None;
        };
        let offered = self.offers.iter().find(|(i, _)| *i == app)?.1;
        Some((app, at.saturating_duration_since(offered)))
    }

    /// The winner's claim latency in three parts (ms): offer to claim sent
    /// (the bench's own reaction), claim sent to its answer read (the HTTP
    /// round trip), answer read to StasisStart read (negative when the
    /// StasisStart came first).
    pub fn claim_parts(&self) -> Option<[f64; 3]> {
        let (Stage::Won, app, started) = self.stage? else {
            return None;
        };
        let offered = self.offers.iter().find(|(i, _)| *i == app)?.1;
        let &(_, sent, answered) = self.claim_times.iter().find(|(i, _, _)| *i == app)?;
        let ms = |a: Instant, b: Instant| match b.checked_duration_since(a) {
            Some(d) => d.as_secs_f64() * 1000.0,
            None => -(a.duration_since(b).as_secs_f64() * 1000.0),
        };
        Some([ms(offered, sent), ms(sent, answered), ms(answered, started)])
    }

    /// First to last offer (how long delivering the offers took).
    pub fn offer_spread(&self) -> Option<Duration> {
        let first = self.offers.iter().map(|(_, at)| *at).min()?;
        let last = self.offers.iter().map(|(_, at)| *at).max()?;
        Some(last - first)
    }
}

#[derive(Default)]
struct Calls {
    live: HashMap<String, CallRecord>,
    /// Calls already handed out: late events about them are not recorded.
    closed: HashSet<String>,
    /// Every claim answer by HTTP status, since the last `take_claim_counts`.
    claim_counts: HashMap<u16, u64>,
}

/// Every call of one instance, as its applications saw it.
#[derive(Default)]
pub struct Tracker {
    calls: Mutex<Calls>,
    changed: Condvar,
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to the call's record; wakes the waiters when the call was
    /// first offered or has ended (the only changes anybody waits for).
    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut CallRecord)) {
        let mut calls = self.lock();
        if calls.closed.contains(id) {
            return;
        }
        let record = calls.live.entry(id.to_owned()).or_default();
        let before = (record.offers.is_empty(), record.ended.is_none());
        f(record);
        let wake = before != (record.offers.is_empty(), record.ended.is_none());
        drop(calls);
        if wake {
            self.changed.notify_all();
        }
    }

    pub(crate) fn count_claim(&self, status: u16) {
        *self.lock().claim_counts.entry(status).or_default() += 1;
    }

    /// Claim answers by HTTP status since the last call, and resets them.
    pub fn take_claim_counts(&self) -> HashMap<u16, u64> {
        std::mem::take(&mut self.lock().claim_counts)
    }

    /// Removes the call's record (later events about it are ignored).
    pub fn take(&self, id: &str) -> CallRecord {
        let mut calls = self.lock();
        calls.closed.insert(id.to_owned());
        calls.live.remove(id).unwrap_or_default()
    }

    /// Waits until `check` returns something (or `timeout` passes: `None`),
    /// looking again whenever a call is first offered or ends.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Calls) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut calls = self.lock();
        loop {
            if let Some(found) = check(&calls) {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            calls = self
                .changed
                .wait_timeout(calls, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until `pred` holds for the call's record; false on timeout.
    pub fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        pred: impl Fn(&CallRecord) -> bool,
    ) -> bool {
        self.wait_until(timeout, |calls| {
            calls.live.get(id).is_some_and(&pred).then_some(())
        })
        .is_some()
    }

    /// Those of `ids` whose call has ended, without waiting.
    pub(crate) fn ended_among(&self, ids: &[String]) -> HashSet<String> {
        ended(&self.lock(), ids).collect()
    }

    /// Those of `ids` whose call has ended, waiting up to `timeout` for at least one.
    pub(crate) fn wait_ended(&self, ids: &[String], timeout: Duration) -> Vec<String> {
        self.wait_until(timeout, |calls| {
            Some(ended(calls, ids).collect::<Vec<_>>()).filter(|e| !e.is_empty())
        })
        .unwrap_or_default()
    }
}

fn ended<'a>(calls: &'a Calls, ids: &'a [String]) -> impl Iterator<Item = String> + 'a {
    ids.iter()
        .filter(|id| {
            calls
                .live
                .get(id.as_str())
                .is_some_and(|r| r.ended.is_some())
        })
        .cloned()
}
