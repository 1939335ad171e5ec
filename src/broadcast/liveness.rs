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
use std::sync::Mutex;

#[derive(Default)]
pub struct Liveness {
    inactive: Mutex<HashSet<String>>,
}

impl Liveness {
    pub fn new() -> Liveness {
        Liveness::default()
    }

    /// Records whether the last event sent to `application` reached an active handler.
    pub fn record(&self, application: &str, delivered: bool) {
        let mut inactive = self.inactive.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if delivered {
            inactive.remove(application);
        } else if !inactive.contains(application) {
            inactive.insert(application.to_owned());
        }
    }

    /// Whether the last event sent to `application` found it inactive.
    pub fn is_known_inactive(&self, application: &str) -> bool {
        self.inactive.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(application)
    }

    /// Forgets applications no longer registered (so the set cannot grow without bound).
    pub fn retain_registered(&self, registered: &[String]) {
        let mut inactive = self.inactive.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        inactive.retain(|name| registered.iter().any(|registered| registered == name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_is_presumed_active_and_the_last_delivery_decides() {
        let liveness = Liveness::new();
        assert!(!liveness.is_known_inactive("a"));
        liveness.record("a", false);
        assert!(liveness.is_known_inactive("a"));
        liveness.record("a", false);
        assert!(liveness.is_known_inactive("a"));
        liveness.record("a", true);
        assert!(!liveness.is_known_inactive("a"));
    }

    #[test]
    fn unregistered_names_are_forgotten() {
        let liveness = Liveness::new();
        liveness.record("a", false);
        liveness.record("b", false);
        liveness.retain_registered(&["b".to_owned()]);
        assert!(!liveness.is_known_inactive("a"));
        assert!(liveness.is_known_inactive("b"));
    }
}
