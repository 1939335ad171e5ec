//! Which Stasis applications are known to be registered but inactive.
//!
//! An ARI application whose WebSocket has closed stays registered while it
//! still has a channel in Stasis, but it is inactive: Stasis refuses it any
//! new channel ("Stasis app ... not active"), so a claim it wins becomes a
//! FAILED call. Asterisk's public API has no "is active" question, but every
//! event this module sends tells: an active application's handler stamps the
//! event with its name, an inactive one's is never called. This remembers the
//! last answer per application; an application never sent anything is
//! presumed active.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Liveness {
    inactive: Mutex<HashSet<String>>,
    /// Whether `inactive` has anything (read without the lock: the usual
    /// answer, "no", then costs one load).
    any: AtomicBool,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// Whether any application is known to be inactive (when none is, a
    /// delivery changes nothing).
    pub fn any_inactive(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Records, for each application, whether the last event sent to it
    /// reached an active handler.
    pub fn record_all(&self, deliveries: &[(String, bool)]) {
        let mut inactive = self.lock();
        for (application, delivered) in deliveries {
            if *delivered {
                inactive.remove(application.as_str());
            } else if !inactive.contains(application.as_str()) {
                inactive.insert(application.clone());
            }
        }
        self.any.store(!inactive.is_empty(), Ordering::Release);
    }

    /// Whether the last event sent to `application` found it inactive.
    pub fn is_known_inactive(&self, application: &str) -> bool {
        self.any_inactive() && self.lock().contains(application)
    }

    /// Forgets applications no longer registered (so the set cannot grow without bound).
    pub fn retain_registered(&self, is_registered: impl Fn(&str) -> bool) {
        if !self.any_inactive() {
            return;
        }
        let mut inactive = self.lock();
        inactive.retain(|name| is_registered(name));
        self.any.store(!inactive.is_empty(), Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inactive.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_presumed_active_and_the_last_delivery_decides() {
        let liveness = Liveness::new();
        assert!(!liveness.is_known_inactive("a"));
        assert!(!liveness.any_inactive());
        liveness.record_all(&[("a".to_owned(), false)]);
        assert!(liveness.is_known_inactive("a"));
        assert!(liveness.any_inactive());
        liveness.record_all(&[("a".to_owned(), false), ("b".to_owned(), true)]);
        assert!(liveness.is_known_inactive("a"));
        assert!(!liveness.is_known_inactive("b"));
        liveness.record_all(&[("a".to_owned(), true)]);
        assert!(!liveness.is_known_inactive("a"));
        assert!(!liveness.any_inactive());
    }

    #[test]
    fn unregistered_names_are_forgotten() {
        let liveness = Liveness::new();
        liveness.record_all(&[("a".to_owned(), false), ("b".to_owned(), false)]);
        liveness.retain_registered(|name| name == "b");
        assert!(!liveness.is_known_inactive("a"));
        assert!(liveness.is_known_inactive("b"));
    }
}
