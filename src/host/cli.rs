//! CLI commands: a static table of plain Rust functions, registered with
//! `ast_cli_register_multiple` through one guarded handler.

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::ffi;

/// What a command printed, or that it was used wrongly.
pub enum CliOutcome {
    Output(String),
    ShowUsage,
}

pub struct CliCommand {
    /// The words, e.g. "stasis broadcast show broadcasts".
    pub command: &'static CStr,
    pub summary: &'static CStr,
    pub usage: &'static CStr,
    /// Receives the words typed (argv), returns what to print.
    pub run: fn(&[String]) -> CliOutcome,
    /// Tab completion: given the position of the word being completed and
    /// what is typed of it so far, every candidate (Asterisk asks for them
    /// one by one).
    pub complete: Option<fn(usize, &str) -> Vec<String>>,
}

// The handler must not take a lock of ours: Asterisk calls it with its own CLI
// lock held (also from inside ast_cli_register_multiple). So the table and the
// registered entries are reached through atomics.
static COMMANDS: AtomicPtr<CliCommand> = AtomicPtr::new(std::ptr::null_mut());
static ENTRIES: AtomicPtr<ffi::ast_cli_entry> = AtomicPtr::new(std::ptr::null_mut());
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// Registers `commands`; false (and nothing registered) on failure.
pub fn register(commands: &'static [CliCommand]) -> bool {
    let entries: Box<[ffi::ast_cli_entry]> = commands
        .iter()
        .map(|command| ffi::ast_cli_entry {
            summary: command.summary.as_ptr(),
            handler: Some(handle),
            ..Default::default()
        })
        .collect();
    let entries = Box::into_raw(entries);
    COMMANDS.store(commands.as_ptr().cast_mut(), Ordering::SeqCst);
    COUNT.store(commands.len(), Ordering::SeqCst);
    ENTRIES.store(entries.cast::<ffi::ast_cli_entry>(), Ordering::SeqCst);
    let count = c_int::try_from(commands.len()).unwrap_or(0);
    // SAFETY: `entries` stays allocated until `unregister` frees it after
    // ast_cli_unregister_multiple; Asterisk links them into its list.
    let failed = unsafe { ffi::sbshim_cli_register_multiple(entries.cast(), count) } != 0;
    if failed {
        unregister();
    }
    !failed
}

/// Unregisters what `register` registered (idempotent).
pub fn unregister() {
    let entries = ENTRIES.swap(std::ptr::null_mut(), Ordering::SeqCst);
    let count = COUNT.swap(0, Ordering::SeqCst);
    if entries.is_null() {
        return;
    }
    // SAFETY: `entries` is the boxed slice of `count` entries made in
    // `register`; after unregistering Asterisk no longer refers to it.
    unsafe {
        ffi::ast_cli_unregister_multiple(entries, c_int::try_from(count).unwrap_or(0));
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(entries, count)));
    }
}

/// Which of our commands `entry` is, by its place in the registered array.
fn command_of(entry: *const ffi::ast_cli_entry) -> Option<&'static CliCommand> {
    let base = ENTRIES.load(Ordering::SeqCst);
    let commands = COMMANDS.load(Ordering::SeqCst);
    let count = COUNT.load(Ordering::SeqCst);
    if base.is_null() || commands.is_null() {
        return None;
    }
    let offset = (entry as usize).checked_sub(base as usize)?;
    let index = offset / std::mem::size_of::<ffi::ast_cli_entry>();
    // SAFETY: `commands` is the 'static table of `count` items given to register.
    (index < count).then(|| unsafe { &*commands.add(index) })
}

unsafe extern "C" fn handle(entry: *mut ffi::ast_cli_entry, cmd: c_int, args: *mut ffi::ast_cli_args) -> *mut c_char {
    let failure = ffi::CLI_FAILURE as *mut c_char;
    crate::guard::guarded("CLI command", failure, || {
        let Some(command) = command_of(entry) else { return failure };
        if cmd == ffi::ast_cli_command_CLI_INIT {
            // SAFETY: Asterisk passes the entry being registered; it copies
            // `command` and keeps `usage`, both 'static.
            unsafe {
                (*entry).command = command.command.as_ptr().cast_mut();
                (*entry).usage = command.usage.as_ptr();
            }
            return std::ptr::null_mut();
        }
        if args.is_null() {
            return std::ptr::null_mut();
        }
        if cmd == ffi::ast_cli_command_CLI_GENERATE {
            let Some(complete) = command.complete else { return std::ptr::null_mut() };
            // SAFETY: for completion Asterisk passes valid args with `word` set.
            let (pos, word, n) = unsafe {
                let args = &*args;
                (usize::try_from(args.pos).unwrap_or(0), super::string_from(args.word), usize::try_from(args.n).unwrap_or(0))
            };
            // Asterisk frees the string it is given (ast_free).
            return complete(pos, &word).get(n).map_or(std::ptr::null_mut(), |candidate| super::asterisk_strdup(candidate));
        }
        // SAFETY: for execution Asterisk passes valid args with argc entries in argv.
        let (fd, words) = unsafe {
            let args = &*args;
            let argc = usize::try_from(args.argc).unwrap_or(0);
            let words = (0..argc).map(|i| super::string_from(*args.argv.add(i))).collect::<Vec<_>>();
            (args.fd, words)
        };
        match (command.run)(&words) {
            CliOutcome::Output(text) => {
                let text = super::cstring(&text);
                // SAFETY: prints a NUL-terminated string as "%s" to the CLI's fd.
                unsafe { ffi::sbshim_cli_print(fd, text.as_ptr()) };
                ffi::CLI_SUCCESS as *mut c_char
            }
            CliOutcome::ShowUsage => ffi::CLI_SHOWUSAGE as *mut c_char,
        }
    })
}
