//! The module's state: one value, made by `load_module` and dropped by
//! `unload_module` (made anew on the next load), so that after `module
//! unload` nothing the module allocated is left.
//!
//! Every callback reaches it through [`get`], which answers `None` once
//! unload has begun: the callback then returns its failure value. Unload
//! [`take`]s it out of the slot, waits for callbacks still holding it to
//! let go, unregisters from Asterisk and drops it; if it cannot (broadcasts
//! in progress, a request that does not leave), it [`install`]s it back and
//! refuses. The slot itself is the only static that holds anything, and it
//! holds nothing between an unload and the next load.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::broadcast::liveness::Liveness;
use crate::broadcast::registry::Registry;
use crate::broadcast::shuffle::Shuffler;
use crate::broadcast::stats::Stats;
use crate::config;
use crate::endpoint::{Endpoint, Handlers};
use crate::host::channel::Condition;
use crate::host::module::{AppExec, OptionalFunction};
use crate::host::{cli, prometheus};
use crate::throttle::Throttle;
use crate::waker::Waker;

/// The functions Asterisk calls, as `crate::entry` hands them down: what the
/// module registers is passed to Asterisk from here.
pub struct Callbacks {
    pub application: AppExec,
    pub optional_api: [OptionalFunction; 5],
    pub cli: cli::Handler,
    pub scrape: prometheus::Scrape,
    pub prometheus_unloading: prometheus::Unloading,
    pub sleep_condition: Condition,
    pub endpoint: Handlers,
}

/// What the module registered with Asterisk that it must unregister, touched
/// only by load, reload and unload (which Asterisk runs one at a time).
#[derive(Default)]
pub struct Registrations {
    pub cli: Option<cli::Registration>,
    pub metrics: Option<prometheus::Registration>,
}

pub struct ModuleState {
    /// Every live broadcast.
    pub registry: Registry<Waker>,
    /// Each call's delivery order.
    pub shuffler: Shuffler,
    /// What the module did since it was loaded.
    pub stats: Stats,
    /// Applications the last event sent to them found inactive.
    pub liveness: Liveness,
    /// Optional-API broadcasts tied to their channel by a datastore not yet
    /// freed (see `app::Tie`): unload refuses while there is any.
    pub ties: AtomicUsize,
    /// stasis_broadcast.conf as new broadcasts use it.
    pub settings: config::Current,
    /// The module-served claim and API-description endpoints.
    pub endpoint: Endpoint,
    pub callbacks: Callbacks,
    /// Seconds (since the epoch) of the last "C implementation loaded" error.
    pub c_implementation_logged: AtomicU64,
    /// `module::mapping_changes()` when the last look found no C implementation.
    pub c_implementation_absent_at: AtomicU64,
    /// The NOTICE for a claim refused by claim_policy.
    pub claim_refusal_logged: Throttle,
    registrations: Mutex<Registrations>,
}

impl ModuleState {
    pub fn new(callbacks: Callbacks) -> ModuleState {
        ModuleState {
            registry: Registry::new(),
            shuffler: Shuffler::new(),
            stats: Stats::new(),
            liveness: Liveness::new(),
            ties: AtomicUsize::new(0),
            settings: config::Current::default(),
            endpoint: Endpoint::new(callbacks.endpoint),
            callbacks,
            c_implementation_logged: AtomicU64::new(0),
            c_implementation_absent_at: AtomicU64::new(u64::MAX),
            claim_refusal_logged: Throttle::default(),
            registrations: Mutex::new(Registrations::default()),
        }
    }

    /// Never held while calling into Asterisk: take what is needed out first.
    pub fn registrations(&self) -> MutexGuard<'_, Registrations> {
        self.registrations.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

static SLOT: RwLock<Option<Arc<ModuleState>>> = RwLock::new(None);

/// The module's state, unless the module is not loaded or is unloading.
pub fn get() -> Option<Arc<ModuleState>> {
    SLOT.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

/// Makes `state` the one callbacks get (at load; back after a refused unload).
pub fn install(state: Arc<ModuleState>) {
    *SLOT.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(state);
}

/// Empties the slot: from now on callbacks get `None`.
pub fn take() -> Option<Arc<ModuleState>> {
    SLOT.write().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
}

/// Waits until `state` is the only holder left (callbacks that got it before
/// [`take`] have returned); false after `limit`.
pub fn wait_sole_owner(state: &Arc<ModuleState>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Arc::strong_count(state) > 1 {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
