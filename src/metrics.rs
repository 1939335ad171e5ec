//! Prometheus metrics: the counters of `stasis broadcast show stats`, served
//! at Asterisk's /metrics when res_prometheus is loaded.

use crate::broadcast::stats::prometheus_text;
use crate::host::log;
use crate::host::prometheus::{self, Unavailable};
use crate::state::ModuleState;

/// The text of one scrape.
pub fn render(state: &ModuleState) -> String {
    prometheus_text(&state.stats.snapshot(), state.registry.len())
}

/// Registers with res_prometheus if it is there and the module is not
/// registered yet; the module works the same without it.
pub fn start(state: &ModuleState) {
    if state.registrations().metrics.is_some() {
        return;
    }
    // Not under the registrations lock: this calls into Asterisk.
    match prometheus::register(state.callbacks.scrape, state.callbacks.prometheus_unloading) {
        Ok(registration) => {
            state.registrations().metrics = Some(registration);
            log::verbose(2, "res_stasis_broadcast_rs: Prometheus metrics registered (asterisk_stasis_broadcast_*)")
        }
        Err(Unavailable::NotRunning) => {
            log::debug(1, || "res_prometheus is not running; no Prometheus metrics".to_owned())
        }
        Err(Unavailable::SymbolsMissing) => {
            log::warning("res_prometheus is loaded but its callback functions were not found; no Prometheus metrics")
        }
        Err(Unavailable::Refused) => log::warning("res_prometheus refused the metrics callback; no Prometheus metrics"),
    }
}

/// res_prometheus is unloading: forget the registration without calling
/// into it. A later `module reload res_stasis_broadcast_rs.so` registers
/// again with a res_prometheus loaded anew.
pub fn forget(state: &ModuleState) {
    let registration = state.registrations().metrics.take();
    if let Some(registration) = registration {
        registration.forget();
        log::verbose(2, "res_stasis_broadcast_rs: res_prometheus is unloading; Prometheus metrics unregistered");
    }
}

pub fn stop(state: &ModuleState) {
    let registration = state.registrations().metrics.take();
    if let Some(registration) = registration {
        registration.unregister();
    }
}

/// For `stasis broadcast show settings`.
pub fn status(state: &ModuleState) -> &'static str {
    if state.registrations().metrics.is_some() {
        "registered with res_prometheus"
    } else {
        "not registered (res_prometheus not running at load or reload)"
    }
}
