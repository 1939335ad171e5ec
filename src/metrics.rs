//! Prometheus metrics: the counters of `stasis broadcast show stats`, served
//! at Asterisk's /metrics when res_prometheus is loaded.

use crate::app::{REGISTRY, STATS};
use crate::broadcast::stats::prometheus_text;
use crate::host::log;
use crate::host::prometheus::{self, Unavailable};

fn render() -> String {
    prometheus_text(&STATS.snapshot(), REGISTRY.len())
}

/// Registers with res_prometheus if it is there; the module works the same without it.
pub fn start() {
    match prometheus::register(render) {
        Ok(()) => log::verbose(2, "res_stasis_broadcast_rs: Prometheus metrics registered (asterisk_stasis_broadcast_*)"),
        Err(Unavailable::NotLoaded) => {
            log::debug(1, || "res_prometheus is not loaded; no Prometheus metrics".to_owned())
        }
        Err(Unavailable::SymbolsMissing) => log::warning(
            "res_prometheus is loaded but its callback functions were not found; no Prometheus metrics",
        ),
        Err(Unavailable::Refused) => log::warning("res_prometheus refused the metrics callback; no Prometheus metrics"),
    }
}

pub fn stop() {
    prometheus::unregister();
}

/// For `stasis broadcast show settings`.
pub fn status() -> &'static str {
    if prometheus::is_registered() {
        "registered with res_prometheus"
    } else {
        "not registered (res_prometheus not loaded at load or reload)"
    }
}
