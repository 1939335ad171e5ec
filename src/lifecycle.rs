//! Loading, unloading and reloading: make the module's state, register
//! everything as one unit in a fixed order, undo what was done when a step
//! fails, and on unload unregister everything and drop the state.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{self, APP_NAME};
use crate::config::{self, Origin, Settings};
use crate::host::config::{ConfigFile, FromCategory};
use crate::host::{cli, log, module};
use crate::state::{self, Callbacks, ModuleState};
use crate::{ffi, guard, metrics};

/// How long unload waits for callbacks that got the state before it was
/// taken (an HTTP request, a CLI command) to return.
const HOLDERS_LIMIT: Duration = Duration::from_secs(5);

/// Entered with the panic hook installed; the caller removes it unless this succeeds.
pub fn load(callbacks: Callbacks) -> i32 {
    if !module::link_module_info() {
        log::error("res_stasis_broadcast_rs: module handle missing; declining");
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    let loaded = app::c_implementation_running();
    if !loaded.is_empty() {
        log::error(&format!(
            "res_stasis_broadcast_rs declined: Asterisk's own C implementation is loaded ({}). \
             Only one may run: add 'noload => res_stasis_broadcast.so' and 'noload => app_stasis_broadcast.so' \
             to modules.conf and restart, or unload them first",
            loaded.join(", ")
        ));
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    let state = Arc::new(ModuleState::new(callbacks));
    apply_config(&state, false);
    // Before registering: callbacks find it from the first one on.
    state::install(Arc::clone(&state));
    if !module::register_application(APP_NAME, state.callbacks.application) {
        log::error("res_stasis_broadcast_rs: could not register the StasisBroadcast application");
        abandon();
        return ffi::AST_MODULE_LOAD_DECLINE;
    }
    let Some(commands) = cli::register(&crate::cli::COMMANDS, state.callbacks.cli) else {
        log::error("res_stasis_broadcast_rs: could not register its CLI commands");
        module::unregister_application(APP_NAME);
        abandon();
        return ffi::AST_MODULE_LOAD_DECLINE;
    };
    state.registrations().cli = Some(commands);
    module::provide(&state.callbacks.optional_api);
    metrics::start(&state);
    // Last: from here on HTTP threads may call in.
    state.endpoint.start(state.settings.current().claim_endpoint);
    ffi::AST_MODULE_LOAD_SUCCESS
}

/// A load that failed after the state was installed: nothing is registered.
fn abandon() {
    drop(state::take());
}

/// Idempotent. Refused while broadcasts are live (Asterisk's use count
/// already refuses a plain `module unload`; this also covers a forced one),
/// and whenever something of the module could not be unregistered: then
/// everything stays as it was.
///
/// The HTTP handlers go first (unlinked and drained, so a request arriving
/// meanwhile gets ARI's own answer, never a failure), then the CLI; only
/// then is the state taken out of reach of callbacks, the application and
/// the optional API withdrawn (waiting until no call of them is inside), the
/// rest unregistered and the state dropped.
pub fn unload() -> i32 {
    let Some(state) = state::get() else { return 0 };
    let live = state.registry.len();
    if live > 0 {
        log::warning(&format!("res_stasis_broadcast_rs: {live} broadcast(s) in progress; not unloading"));
        return -1;
    }
    // A channel datastore of an optional-API broadcast (which Asterisk's use
    // count covers too, but not a forced unload) would call into the module
    // when its channel goes.
    let ties = state.ties.load(Ordering::SeqCst);
    if ties > 0 {
        log::warning(&format!(
            "res_stasis_broadcast_rs: {ties} channel(s) still tied to an optional-API broadcast; not unloading"
        ));
        return -1;
    }
    // No HTTP thread may be inside the module when it goes away.
    if !state.endpoint.stop() {
        return -1;
    }
    // A CLI command still running cannot be unregistered: refuse, with the
    // commands registered again.
    let commands = state.registrations().cli.take();
    if let Some(commands) = commands {
        if let Err(mut kept) = commands.unregister() {
            log::warning("res_stasis_broadcast_rs: a CLI command is still running; not unloading");
            kept.restore(&crate::cli::COMMANDS, state.callbacks.cli);
            state.registrations().cli = Some(kept);
            state.endpoint.start(state.settings.current().claim_endpoint);
            return -1;
        }
    }
    drop(state);
    let Some(state) = state::take() else { return 0 };
    // Counted again once no callback holds the state any more: one that
    // started a broadcast (or tied one to its channel) just before the take
    // has returned by then.
    let busy = |state: &ModuleState| state.registry.len() + state.ties.load(Ordering::SeqCst) > 0;
    if busy(&state) || !state::wait_sole_owner(&state, HOLDERS_LIMIT) || busy(&state) {
        return refuse(state, "a broadcast or a callback is still running");
    }
    module::unprovide(&state.callbacks.optional_api);
    module::unregister_application(APP_NAME);
    // Users of the optional API call without a module reference, and a
    // forced unload ignores the application's: once both are withdrawn, none
    // may still be inside (each counts itself from its first statement, also
    // when it finds no state).
    if !module::calls_drained() {
        module::register_application(APP_NAME, state.callbacks.application);
        module::provide(&state.callbacks.optional_api);
        return refuse(state, "a call of the application or the optional API is still inside the module");
    }
    metrics::stop(&state);
    // Nothing of Asterisk's refers to the module any more: free everything.
    drop(state);
    guard::remove_panic_hook();
    0
}

/// An unload that found the module busy after taking the state: everything
/// unregistered so far is registered again and the state put back.
fn refuse(state: Arc<ModuleState>, why: &str) -> i32 {
    log::warning(&format!("res_stasis_broadcast_rs: {why}; not unloading"));
    state.registrations().cli = cli::register(&crate::cli::COMMANDS, state.callbacks.cli);
    state.endpoint.start(state.settings.current().claim_endpoint);
    state::install(state);
    -1
}

pub fn reload() -> i32 {
    let Some(state) = state::get() else { return ffi::AST_MODULE_LOAD_DECLINE };
    apply_config(&state, true);
    // res_prometheus may have been loaded since.
    metrics::start(&state);
    state.endpoint.reload(state.settings.current().claim_endpoint);
    ffi::AST_MODULE_LOAD_SUCCESS
}

/// The files the module reads (stasis_broadcast.conf, ari.conf), as the
/// pure parsers take them: `host` builds them without knowing them.
impl FromCategory for config::Section {
    type Variable = config::Entry;

    fn variable(name: String, value: String, line: i32) -> config::Entry {
        config::Entry { name, value, line }
    }

    fn category(name: String, entries: Vec<config::Entry>) -> config::Section {
        config::Section { name, entries }
    }
}

/// Reads stasis_broadcast.conf and makes it the snapshot new broadcasts use.
/// Nothing in the file can stop the module: every bad value is logged with
/// what is used instead. On reload, a file that no longer parses keeps the
/// settings in force.
fn apply_config(state: &ModuleState, reloading: bool) {
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
    let previous = state.settings.replace(settings);
    let current = state.settings.current();
    if reloading && *previous != *current {
        log::verbose(2, &format!("{} reloaded; new broadcasts use the new settings", config::FILE_NAME));
    }
    log::debug(1, || format!("settings: {current:?}"));
}
