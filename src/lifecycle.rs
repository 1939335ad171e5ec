//! Loading, unloading and reloading: register everything as one unit, in a
//! fixed order, and undo what was done when a step fails.

use std::ffi::CStr;

use crate::app::{APP_NAME, REGISTRY, STATS};
use crate::config::{self, Origin, Settings};
use crate::host::config::ConfigFile;
use crate::host::{cli, entry, log, module};
use crate::{endpoint, ffi, guard};

/// The C implementation that Asterisk 20.20+/22.10+/23.4+ ships. Running both
/// would split one call's claims between two registries.
const C_IMPLEMENTATION: [&CStr; 2] = [c"res_stasis_broadcast.so", c"app_stasis_broadcast.so"];

pub fn load() -> i32 {
    guard::install_panic_hook();
    if !module::link_module_info() {
        log::error("res_stasis_broadcast_rs: module handle missing; declining");
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    let loaded = c_implementation_loaded();
    if !loaded.is_empty() {
        log::error(&format!(
            "res_stasis_broadcast_rs declined: Asterisk's own C implementation is loaded ({}). \
             Only one may run: add 'noload => res_stasis_broadcast.so' and 'noload => app_stasis_broadcast.so' \
             to modules.conf and restart, or unload them first",
            loaded.join(", ")
        ));
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    STATS.reset();
    apply_config(false);
    if !module::register_application(APP_NAME, entry::stasis_broadcast_exec) {
        log::error("res_stasis_broadcast_rs: could not register the StasisBroadcast application");
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    if !cli::register(&crate::cli::COMMANDS) {
        log::error("res_stasis_broadcast_rs: could not register its CLI commands");
        module::unregister_application(APP_NAME);
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    module::provide(&entry::optional_functions());
    crate::metrics::start();
    // Last: from here on HTTP threads may call in.
    endpoint::start();
    ffi::AST_MODULE_LOAD_SUCCESS
}

/// Idempotent. Refused while broadcasts are live (Asterisk's use count
/// already refuses a plain `module unload`; this also covers a forced one).
pub fn unload() -> i32 {
    let live = REGISTRY.len();
    if live > 0 {
        log::warning(&format!("res_stasis_broadcast_rs: {live} broadcast(s) in progress; not unloading"));
        return -1;
    }
    // First: no HTTP thread may be inside the module when it goes away.
    if !endpoint::stop() {
        return -1;
    }
    crate::metrics::stop();
    module::unprovide(&entry::optional_functions());
    cli::unregister();
    module::unregister_application(APP_NAME);
    guard::remove_panic_hook();
    0
}

pub fn reload() -> i32 {
    apply_config(true);
    // res_prometheus may have been loaded since.
    crate::metrics::start();
    endpoint::reload();
    ffi::AST_MODULE_LOAD_SUCCESS
}

/// Reads stasis_broadcast.conf and makes it the snapshot new broadcasts use.
/// Nothing in the file can stop the module: every bad value is logged with
/// what is used instead. On reload, a file that no longer parses keeps the
/// settings in force.
fn apply_config(reloading: bool) {
    let settings = match crate::host::config::read(config::FILE_NAME) {
        ConfigFile::Loaded(sections) => {
            let (settings, warnings) = config::parse(&sections);
            for warning in &warnings {
                log::warning(&warning.to_string());
            }
            settings
        }
        ConfigFile::Missing => {
            log::notice(&format!("{} not found; using the default settings", config::FILE_NAME));
            Settings { origin: Origin::FileMissing, ..Settings::default() }
        }
        ConfigFile::Invalid if reloading => {
            log::error(&format!("{} could not be parsed; keeping the settings in force", config::FILE_NAME));
            return;
        }
        ConfigFile::Invalid => {
            log::error(&format!("{} could not be parsed; using the default settings", config::FILE_NAME));
            Settings { origin: Origin::FileInvalid, ..Settings::default() }
        }
    };
    let previous = config::replace(settings);
    let current = config::current();
    if reloading && *previous != *current {
        log::verbose(2, &format!("{} reloaded; new broadcasts use the new settings", config::FILE_NAME));
    }
    log::debug(1, || format!("settings: {current:?}"));
}

/// Who answers POST /ari/events/claim, for `stasis broadcast show settings`.
pub fn claim_endpoint_status() -> String {
    endpoint::describe()
}

/// Which of Asterisk's own C modules for this feature are loaded.
pub fn c_implementation_loaded() -> Vec<String> {
    C_IMPLEMENTATION
        .iter()
        .filter(|name| module::is_loaded(name))
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}
