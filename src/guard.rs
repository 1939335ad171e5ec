//! The one panic guard every `extern "C"` entry point goes through.
//!
//! A panic must never unwind into Asterisk's C frames (undefined behaviour)
//! nor abort the process (every call on the box would drop). It is caught,
//! logged at ERROR with its message and location, and turned into the entry
//! point's failure value.

use std::panic::{self, AssertUnwindSafe, PanicHookInfo};

use crate::host::log;

/// Runs `body`; if it panics, logs and returns `failure`.
pub fn guarded<R>(entry_point: &str, failure: R, body: impl FnOnce() -> R) -> R {
    let run = || {
        #[cfg(feature = "fault-injection")]
        fault_injection::panic_if_asked(entry_point);
        #[cfg(feature = "fault-injection")]
        fault_injection::delay_if_asked(entry_point);
        body()
    };
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(value) => value,
        Err(_) => {
            log::error(&format!("panic in {entry_point}: the call failed safely, Asterisk keeps running"));
            failure
        }
    }
}

/// Installs the hook that logs a panic's message and source location through
/// ast_log. Rust's default hook prints to stderr, which Asterisk's users never
/// see, and asks for the current thread's handle (a thread-local that would
/// keep this shared object from unloading).
pub fn install_panic_hook() {
    panic::set_hook(Box::new(log_panic));
}

/// Restores the default hook before the module's code goes away.
pub fn remove_panic_hook() {
    drop(panic::take_hook());
}

fn log_panic(info: &PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned());
    // The location in the text too: Asterisk's log files show a message's
    // source file but not its line.
    match info.location() {
        Some(location) => log::log_at(
            log::Level::Error,
            location,
            "panic",
            &format!("panic at {}:{}: {message}", location.file(), location.line()),
        ),
        None => log::error(&format!("panic: {message}")),
    }
}

/// Test builds only (`--features fault-injection`, never the module users
/// get): an entry point panics, once, when Asterisk's global variable
/// STASISBROADCAST_INJECT_PANIC names it; it waits [`fault_injection::DELAY`]
/// before its body (before it looks for the module's state), once, when
/// STASISBROADCAST_INJECT_DELAY names it, so a test can unload the module
/// while a call is inside. The variable is cleared first.
#[cfg(feature = "fault-injection")]
mod fault_injection {
    use std::time::Duration;

    const VARIABLE: &str = "STASISBROADCAST_INJECT_PANIC";
    const DELAY_VARIABLE: &str = "STASISBROADCAST_INJECT_DELAY";
    pub const DELAY: Duration = Duration::from_secs(2);

    pub fn panic_if_asked(entry_point: &str) {
        if crate::host::system::take_global(VARIABLE, entry_point) {
            panic!("fault injection: {entry_point} asked to panic");
        }
    }

    pub fn delay_if_asked(entry_point: &str) {
        if crate::host::system::take_global(DELAY_VARIABLE, entry_point) {
            crate::host::log::notice(&format!("fault injection: {entry_point} waits {DELAY:?} inside the module"));
            std::thread::sleep(DELAY);
        }
    }
}
