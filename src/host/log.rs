//! Logging through `ast_log`, always with the message as a `"%s"` argument.

use std::panic::Location;

use crate::ffi;

#[derive(Clone, Copy, Debug)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Debug,
}

fn level_code(level: Level) -> i32 {
    // SAFETY: the shim functions return the constants of logger.h.
    unsafe {
        match level {
            Level::Error => ffi::sbshim_log_level_error(),
            Level::Warning => ffi::sbshim_log_level_warning(),
            Level::Notice => ffi::sbshim_log_level_notice(),
            Level::Debug => ffi::sbshim_log_level_debug(),
        }
    }
}

/// Logs `message` with the Rust source location of `location` and `function`.
pub fn log_at(level: Level, location: &Location<'_>, function: &str, message: &str) {
    let file = super::cstring(location.file());
    let function = super::cstring(function);
    let message = super::cstring(message);
    let line = i32::try_from(location.line()).unwrap_or(i32::MAX);
    // SAFETY: all three strings are NUL-terminated and outlive the call;
    // the shim passes `message` as a "%s" argument, never as a format.
    unsafe { ffi::sbshim_log(level_code(level), file.as_ptr(), line, function.as_ptr(), message.as_ptr()) }
}

#[track_caller]
pub fn error(message: &str) {
    log_at(Level::Error, Location::caller(), "res_stasis_broadcast_rs", message);
}

#[track_caller]
pub fn warning(message: &str) {
    log_at(Level::Warning, Location::caller(), "res_stasis_broadcast_rs", message);
}

#[track_caller]
pub fn notice(message: &str) {
    log_at(Level::Notice, Location::caller(), "res_stasis_broadcast_rs", message);
}

/// `ast_debug(level, ...)`: the message is only built when that debug level is on.
#[track_caller]
pub fn debug(level: i32, message: impl FnOnce() -> String) {
    // SAFETY: reads the module's debug level; no pointers involved.
    if unsafe { ffi::sbshim_debug_enabled(level) } != 0 {
        log_at(Level::Debug, Location::caller(), "res_stasis_broadcast_rs", &message());
    }
}

/// `ast_verb(level, ...)`.
pub fn verbose(level: i32, message: &str) {
    let message = super::cstring(message);
    // SAFETY: NUL-terminated message passed as a "%s" argument.
    unsafe { ffi::sbshim_verb(level, message.as_ptr()) }
}
