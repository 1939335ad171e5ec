//! CLI commands: a static table of plain Rust functions, registered with
//! `ast_cli_register_multiple`, all served by one handler the caller passes
//! down (see [`dispatch`]).
//!
//! Each entry is filled with its command words and usage before it is
//! registered, so Asterisk's `CLI_INIT` call has nothing to do; afterwards
//! the handler tells its commands apart by the full command Asterisk built
//! (`_full_cmd`). Nothing here is static: the entries belong to the
//! [`Registration`] value.

use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::ffi;

/// What a command printed, or that it was used wrongly.
pub enum CliOutcome {
    Output(String),
    ShowUsage,
}

/// Tab completion: given the position of the word being completed and what
/// is typed of it so far, every candidate (Asterisk asks for them one by one).
pub type Complete<C> = fn(&C, usize, &str) -> Vec<String>;

/// One command; `C` is what its functions are given (the module's state).
pub struct CliCommand<C: 'static> {
    /// The words, e.g. "stasis broadcast show broadcasts" (one space apart).
    pub command: &'static CStr,
    pub summary: &'static CStr,
    pub usage: &'static CStr,
    /// Receives the words typed (argv), returns what to print.
    pub run: fn(&C, &[String]) -> CliOutcome,
    pub complete: Option<Complete<C>>,
}

/// The entry argument of the CLI handler, valid for the call.
#[repr(transparent)]
pub struct EntryArg<'call> {
    raw: *mut ffi::ast_cli_entry,
    _call: PhantomData<&'call ffi::ast_cli_entry>,
}

/// The arguments argument of the CLI handler (NULL for `CLI_INIT`).
#[repr(transparent)]
pub struct ArgsArg<'call> {
    raw: *mut ffi::ast_cli_args,
    _call: PhantomData<&'call ffi::ast_cli_args>,
}

/// What the handler returns to Asterisk: `CLI_SUCCESS`, `CLI_FAILURE`,
/// `CLI_SHOWUSAGE`, NULL, or a completion candidate Asterisk frees.
#[repr(transparent)]
pub struct CliAnswer(*mut c_char);

impl CliAnswer {
    pub fn failure() -> CliAnswer {
        CliAnswer(ffi::CLI_FAILURE as *mut c_char)
    }
}

/// The CLI handler's prototype (`char *(*)(struct ast_cli_entry *, int, struct ast_cli_args *)`).
pub type Handler = for<'call> extern "C" fn(EntryArg<'call>, c_int, ArgsArg<'call>) -> CliAnswer;

/// The registered entries: an array Asterisk links into its CLI list and
/// writes from other threads (`inuse`, `_full_cmd`, the list link). So it is
/// held as the raw pointer `Box::into_raw` gave, never as a `Box` or through
/// a `&mut` while any entry may be linked; every field is reached through
/// raw pointers. Dropping it without [`Registration::unregister`] keeps the
/// entries allocated (Asterisk may still hold them).
pub struct Registration {
    entries: NonNull<ffi::ast_cli_entry>,
    len: usize,
}

// SAFETY: the entries' pointers are Asterisk's (its strings) or static; the
// value is only moved between the loader's threads, never shared.
unsafe impl Send for Registration {}
// SAFETY: no method reads the entries through a shared reference.
unsafe impl Sync for Registration {}

/// How long unregistering waits for a command that is running to return.
const IN_USE_LIMIT: Duration = Duration::from_secs(5);

/// Fills the entry at `entry` with `command`'s words and `handler`.
///
/// # Safety
/// `entry` points at an entry of a [`Registration`] that Asterisk does not
/// hold linked now (not registered yet, or removed by unregistering).
unsafe fn fill<C>(entry: *mut ffi::ast_cli_entry, command: &CliCommand<C>, handler: Handler) {
    // SAFETY: EntryArg, ArgsArg and CliAnswer are repr(transparent) over
    // the pointers of Asterisk's CLI handler prototype.
    let handler = unsafe {
        std::mem::transmute::<
            Handler,
            unsafe extern "C" fn(*mut ffi::ast_cli_entry, c_int, *mut ffi::ast_cli_args) -> *mut c_char,
        >(handler)
    };
    // SAFETY: caller's contract: nobody else reads or writes the entry now.
    unsafe {
        (&raw mut (*entry).summary).write(command.summary.as_ptr());
        (&raw mut (*entry).usage).write(command.usage.as_ptr());
        // Asterisk copies the words (ast_strdup) and never frees this pointer.
        (&raw mut (*entry).command).write(command.command.as_ptr().cast_mut());
        (&raw mut (*entry).handler).write(Some(handler));
    }
}

/// Registers `commands`, served by `handler`; `None` (and nothing
/// registered) on failure.
pub fn register<C>(commands: &'static [CliCommand<C>], handler: Handler) -> Option<Registration> {
    let entries: Box<[ffi::ast_cli_entry]> = commands.iter().map(|_| ffi::ast_cli_entry::default()).collect();
    let len = entries.len();
    // From here on only this pointer: the array never moves and is freed
    // (Box::from_raw) only once Asterisk holds none of it.
    let entries = NonNull::new(Box::into_raw(entries).cast::<ffi::ast_cli_entry>())?;
    let registration = Registration { entries, len };
    for (index, command) in commands.iter().enumerate() {
        // SAFETY: an entry of the array just allocated, not registered yet.
        unsafe { fill(registration.entry(index), command, handler) };
    }
    let count = c_int::try_from(len).unwrap_or(0);
    // SAFETY: `len` filled entries that stay allocated until unregister has
    // removed them; Asterisk links them into its list.
    let failed = unsafe { ffi::sbshim_cli_register_multiple(entries.as_ptr(), count) } != 0;
    if failed {
        // What did register is removed again; what did not is not in use.
        // Entries Asterisk refused to remove stay allocated: a Registration
        // dropped without unregistering frees nothing.
        let _ = registration.unregister();
        return None;
    }
    Some(registration)
}

impl Registration {
    /// The entry at `index` (< len), as a raw pointer.
    fn entry(&self, index: usize) -> *mut ffi::ast_cli_entry {
        debug_assert!(index < self.len);
        // SAFETY: within the array of `len` entries (from Box::into_raw).
        unsafe { self.entries.as_ptr().add(index) }
    }

    fn entries(&self) -> impl Iterator<Item = *mut ffi::ast_cli_entry> + '_ {
        (0..self.len).map(|index| self.entry(index))
    }

    /// Unregisters every entry and frees them. A command still running
    /// after [`IN_USE_LIMIT`] cannot be removed (Asterisk refuses, keeping
    /// the entry): then the entries already removed are registered again and
    /// the registration is handed back, so Asterisk never holds a freed entry.
    pub fn unregister(self) -> Result<(), Registration> {
        let deadline = Instant::now() + IN_USE_LIMIT;
        while self.entries().any(in_use) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let count = c_int::try_from(self.len).unwrap_or(0);
        // SAFETY: the entries registered by `register`.
        unsafe { ffi::ast_cli_unregister_multiple(self.entries.as_ptr(), count) };
        // ast_cli_unregister clears `_full_cmd` (under its list lock, which
        // it has released by now) when it removed the entry, and leaves it
        // (with a warning) when the command was in use.
        if !self.entries().all(removed) {
            return Err(self);
        }
        // SAFETY: Asterisk holds none of the entries any more: the array goes
        // back to the Box it came from (same pointer and length), once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.entries.as_ptr(), self.len)) });
        Ok(())
    }

    /// Registers again the entries a failed [`Registration::unregister`] removed.
    pub fn restore<C>(&mut self, commands: &'static [CliCommand<C>], handler: Handler) {
        for (index, command) in commands.iter().enumerate().take(self.len) {
            let entry = self.entry(index);
            if removed(entry) {
                // SAFETY: removed, so Asterisk holds this entry no more; the
                // registration keeps it allocated while it is registered again.
                unsafe {
                    fill(entry, command, handler);
                    ffi::sbshim_cli_register_multiple(entry, 1);
                }
            }
        }
    }
}

/// Whether Asterisk is running the entry's command now.
fn in_use(entry: *mut ffi::ast_cli_entry) -> bool {
    // SAFETY: an entry of a live Registration; `inuse` is an int Asterisk
    // changes with atomic operations (ast_atomic_fetchadd_int): read it
    // atomically, as Asterisk writes it, with no reference to the entry.
    unsafe { AtomicI32::from_ptr(&raw mut (*entry).inuse) }.load(Ordering::SeqCst) > 0
}

/// Whether the entry is not (or no longer) in Asterisk's list: its
/// `_full_cmd`, which Asterisk sets when it links the entry and clears when
/// it removes it, is NULL.
fn removed(entry: *mut ffi::ast_cli_entry) -> bool {
    // SAFETY: an entry of a live Registration; Asterisk writes `_full_cmd`
    // only while registering or unregistering it, which only the loader's
    // thread (this one) asks for.
    unsafe { (&raw const (*entry)._full_cmd).read() }.is_null()
}

/// One call of the CLI handler: which of `commands` it is for, and what to do
/// (`CLI_INIT`: nothing, the entry is filled; completion; execution). The
/// command's function gets what `context` returns; without it the call fails.
pub fn dispatch<C, R: std::ops::Deref<Target = C>>(
    entry: &EntryArg<'_>,
    cmd: c_int,
    args: &ArgsArg<'_>,
    commands: &'static [CliCommand<C>],
    context: impl FnOnce() -> Option<R>,
) -> CliAnswer {
    if cmd == ffi::ast_cli_command_CLI_INIT {
        return CliAnswer(std::ptr::null_mut());
    }
    if entry.raw.is_null() || args.raw.is_null() {
        return CliAnswer(std::ptr::null_mut());
    }
    // SAFETY: Asterisk passes a registered entry, whose `_full_cmd` it set.
    let full = super::string_from(unsafe { (*entry.raw)._full_cmd });
    let Some(command) = commands.iter().find(|command| command.command.to_bytes() == full.as_bytes()) else {
        return CliAnswer::failure();
    };
    let Some(context) = context() else { return CliAnswer::failure() };
    if cmd == ffi::ast_cli_command_CLI_GENERATE {
        let Some(complete) = command.complete else { return CliAnswer(std::ptr::null_mut()) };
        // SAFETY: for completion Asterisk passes valid args with `word` set.
        let (pos, word, n) = unsafe {
            let args = &*args.raw;
            (
                usize::try_from(args.pos).unwrap_or(0),
                super::string_from(args.word),
                usize::try_from(args.n).unwrap_or(0),
            )
        };
        // Asterisk frees the string it is given (ast_free).
        return CliAnswer(
            complete(&context, pos, &word)
                .get(n)
                .map_or(std::ptr::null_mut(), |candidate| super::asterisk_strdup(candidate)),
        );
    }
    // SAFETY: for execution Asterisk passes valid args with argc entries in argv.
    let (fd, words) = unsafe {
        let args = &*args.raw;
        let argc = usize::try_from(args.argc).unwrap_or(0);
        let words = (0..argc).map(|i| super::string_from(*args.argv.add(i))).collect::<Vec<_>>();
        (args.fd, words)
    };
    match (command.run)(&context, &words) {
        CliOutcome::Output(text) => {
            let text = super::cstring(&text);
            // SAFETY: prints a NUL-terminated string as "%s" to the CLI's fd.
            unsafe { ffi::sbshim_cli_print(fd, text.as_ptr()) };
            CliAnswer(ffi::CLI_SUCCESS as *mut c_char)
        }
        CliOutcome::ShowUsage => CliAnswer(ffi::CLI_SHOWUSAGE as *mut c_char),
    }
}
