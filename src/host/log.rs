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
    let line = i32::try_from(location.line()).unwrap_or(i32::MAX);
    super::with_cstr(location.file(), |file| {
        super::with_cstr(function, |function| {
            super::with_cstr(message, |message| {
                // SAFETY: all three strings are NUL-terminated and outlive the call;
                // the shim passes `message` as a "%s" argument, never as a format.
                unsafe { ffi::sbshim_log(level_code(level), file.as_ptr(), line, function.as_ptr(), message.as_ptr()) }
            })
        })
    })
}

/// A message formatted into a buffer on the stack (a heap copy only when it is long).
struct StackText {
    buffer: [u8; 256],
    used: usize,
    overflow: Option<String>,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        if let Some(long) = &mut self.overflow {
            long.push_str(text);
        } else if self.used + text.len() <= self.buffer.len() {
            self.buffer[self.used..self.used + text.len()].copy_from_slice(text.as_bytes());
            self.used += text.len();
        } else {
            let mut long = String::from_utf8_lossy(&self.buffer[..self.used]).into_owned();
            long.push_str(text);
            self.overflow = Some(long);
        }
        Ok(())
    }
}

/// Calls `f` with the text `args` formats to, without building a `String`
/// for short text.
fn with_formatted<R>(args: std::fmt::Arguments<'_>, f: impl FnOnce(&str) -> R) -> R {
    let mut text = StackText { buffer: [0; 256], used: 0, overflow: None };
    let _ = std::fmt::Write::write_fmt(&mut text, args);
    match &text.overflow {
        Some(long) => f(long),
        // Whole UTF-8 pieces only were copied in, so this cannot fail.
        None => f(std::str::from_utf8(&text.buffer[..text.used]).unwrap_or("")),
    }
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
// Inlined: the check is what every call pays, the message only when on.
#[track_caller]
#[inline(always)]
pub fn debug(level: i32, message: impl FnOnce() -> String) {
    // SAFETY: reads the module's debug level; no pointers involved.
    if unsafe { ffi::sbshim_debug_enabled(level) } != 0 {
        log_at(Level::Debug, Location::caller(), "res_stasis_broadcast_rs", &message());
    }
}

/// `ast_verb(level, ...)`: the message is only formatted when that
/// verbosity is on, and then without building a `String` first.
pub fn verbose_args(level: i32, args: std::fmt::Arguments<'_>) {
    // SAFETY: reads Asterisk's verbosity; no pointers involved.
    if unsafe { ffi::sbshim_verb_enabled(level) } != 0 {
        with_formatted(args, |text| verbose(level, text));
    }
}

/// `ast_verb(level, ...)`.
pub fn verbose(level: i32, message: &str) {
    super::with_cstr(message, |message| {
        // SAFETY: NUL-terminated message passed as a "%s" argument.
        unsafe { ffi::sbshim_verb(level, message.as_ptr()) }
    })
}

/// Where a log line comes from, as C text made at compile time (see
/// [`source_line!`]): what `__FILE__` and `__LINE__` give a C module.
#[derive(Clone, Copy)]
pub struct SourceLine {
    pub file: &'static std::ffi::CStr,
    pub line: u32,
}

/// The [`SourceLine`] of the place it is written at.
macro_rules! source_line {
    () => {
        $crate::host::log::SourceLine {
            file: {
                const FILE: &::std::ffi::CStr =
                    match ::std::ffi::CStr::from_bytes_with_nul(concat!(file!(), "\0").as_bytes()) {
                        Ok(file) => file,
                        Err(_) => c"?",
                    };
                FILE
            },
            line: line!(),
        }
    };
}
pub(crate) use source_line;

/// The length of a text for "%.*s" (a text beyond `c_int` is cut there).
fn length_of(text: &[u8]) -> std::ffi::c_int {
    std::ffi::c_int::try_from(text.len()).unwrap_or(std::ffi::c_int::MAX)
}

/// Logs a WARNING of `line` (put together without `core::fmt`, see
/// `broadcast::text::LineText`): no copy, no allocation. For lines a call
/// may log every time.
pub fn warning_line(at: SourceLine, line: &[u8]) {
    let number = i32::try_from(at.line).unwrap_or(i32::MAX);
    // SAFETY: `file` and MODULE are NUL-terminated; the shim reads `length`
    // bytes of the text (as "%.*s": it is data, never a format).
    unsafe {
        ffi::sbshim_log_text(
            level_code(Level::Warning),
            at.file.as_ptr(),
            number,
            MODULE.as_ptr(),
            line.as_ptr().cast(),
            length_of(line),
        )
    }
}

/// A line of two pieces of text for `ast_verb(level, ...)`, formatted by
/// Asterisk only when that verbosity is on (so a call pays nothing to build
/// it): `format` is one of [`VerboseTwo`]'s.
pub fn verbose_two(level: i32, format: VerboseTwo, first: &[u8], second: &[u8]) {
    // SAFETY: the format holds exactly two "%.*s", matched by two (length,
    // pointer) pairs of which the shim reads at most `length` bytes (printf
    // stops at a NUL).
    unsafe {
        ffi::sbshim_verb_two(
            level,
            format.0.as_ptr(),
            first.as_ptr().cast(),
            length_of(first),
            second.as_ptr().cast(),
            length_of(second),
        )
    }
}

/// A printf format with exactly two "%.*s" and nothing else to convert:
/// only the constants here exist.
#[derive(Clone, Copy)]
pub struct VerboseTwo(&'static std::ffi::CStr);

impl VerboseTwo {
    /// As res_stasis_broadcast.c says it.
    pub const CLAIMED: VerboseTwo = VerboseTwo(c"Channel %.*s claimed by application %.*s\n");
}

/// The function name every line of this module's logs under.
const MODULE: &std::ffi::CStr = c"res_stasis_broadcast_rs";
