//! This module's identity in Asterisk: use count, other modules, optional API.

use std::ffi::{c_char, c_int, c_uint, CStr};
use std::time::Duration;

use super::channel::ChannelArg;
use crate::in_flight::{Calls, Inside};
use super::CStrArg;
use crate::ffi;

/// A dialplan application: the channel and the argument string.
pub type AppExec = for<'call> extern "C" fn(ChannelArg<'call>, CStrArg<'call>) -> c_int;

/// Makes sure the shim's object file, which carries the `AST_MODULE_INFO`
/// constructor, is linked: the linker keeps it because this references it.
pub fn link_module_info() -> bool {
    // SAFETY: returns the module handle Asterisk registered; we only test it.
    !unsafe { ffi::sbshim_module_self() }.is_null()
}

/// One unit of this module's use count: while any exists, `module unload`
/// refuses to unload the module.
pub struct UseCount(());

impl UseCount {
    pub fn acquire() -> UseCount {
        // SAFETY: ast_module_ref on our own module handle.
        unsafe { ffi::sbshim_module_ref() };
        UseCount(())
    }
}

impl Drop for UseCount {
    fn drop(&mut self) {
        // SAFETY: balances the ast_module_ref taken in `acquire`.
        unsafe { ffi::sbshim_module_unref() };
    }
}

extern "C" fn nothing(_data: *mut std::ffi::c_void) {}

/// Whether the module `name` is running: loaded and not declined. Takes
/// Asterisk's module-list lock (recursively, from load/reload/unload, which
/// already hold it): not for every call.
pub fn is_running(name: &CStr) -> bool {
    // SAFETY: NUL-terminated name; `nothing` ignores its argument.
    unsafe { ffi::sbshim_with_running_module(name.as_ptr(), Some(nothing), std::ptr::null_mut()) != 0 }
}

struct MappedSearch<'a> {
    file_name: &'a [u8],
    found: bool,
}

extern "C" fn mapped_entry(info: *mut libc::dl_phdr_info, _size: usize, data: *mut std::ffi::c_void) -> c_int {
    // SAFETY: `data` is the MappedSearch given to dl_iterate_phdr below, and
    // `info` the dynamic linker's entry, both valid for this call.
    let (search, info) = unsafe { (&mut *(data as *mut MappedSearch<'_>), &*info) };
    if info.dlpi_name.is_null() {
        return 0;
    }
    // SAFETY: dlpi_name is a NUL-terminated path owned by the dynamic linker.
    let path = unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes();
    let base = path.rsplit(|byte| *byte == b'/').next().unwrap_or(path);
    if base == search.file_name {
        search.found = true;
        return 1;
    }
    0
}

/// Whether a shared object of this file name (e.g. "res_stasis_broadcast.so")
/// is mapped in the process: what a module present in Asterisk is, running
/// or declined. Takes none of Asterisk's locks, only the dynamic linker's
/// list lock for the walk (not held while modules load or unload): cheap
/// enough for every call, and never waits for a `core reload` or a slow
/// module unload.
pub fn is_mapped(file_name: &CStr) -> bool {
    let mut search = MappedSearch { file_name: file_name.to_bytes(), found: false };
    // SAFETY: `mapped_entry` only reads the entries, and `search` outlives the walk.
    unsafe { libc::dl_iterate_phdr(Some(mapped_entry), &mut search as *mut MappedSearch<'_> as *mut std::ffi::c_void) };
    search.found
}

extern "C" fn first_entry(info: *mut libc::dl_phdr_info, size: usize, data: *mut std::ffi::c_void) -> c_int {
    // SAFETY: `data` is the u64 given to dl_iterate_phdr below, and `info`
    // the dynamic linker's entry of `size` bytes, both valid for this call.
    let (changes, info) = unsafe { (&mut *(data as *mut u64), &*info) };
    if size >= std::mem::size_of::<libc::dl_phdr_info>() {
        *changes = info.dlpi_adds.wrapping_add(info.dlpi_subs);
    }
    1
}

/// How many times a shared object has been mapped or unmapped in the
/// process so far (the dynamic linker's `dlpi_adds + dlpi_subs`, read from
/// the first entry only): the same number means the same set of objects.
/// Cheap enough for every call; 0 if the linker does not say.
pub fn mapping_changes() -> u64 {
    let mut changes = 0u64;
    // SAFETY: `first_entry` only reads the first entry, and `changes` outlives the walk.
    unsafe { libc::dl_iterate_phdr(Some(first_entry), &mut changes as *mut u64 as *mut std::ffi::c_void) };
    changes
}

/// A function offered to other modules through Asterisk's optional API.
/// Made only by the constructors below, one per function of
/// `stasis_app_broadcast.h`, each fixing the name and the prototype the
/// header declares for it.
#[derive(Clone, Copy)]
pub struct OptionalFunction {
    name: &'static CStr,
    address: unsafe extern "C" fn(),
}

/// A string Asterisk allocated (ast_strdup), handed to a caller that frees it
/// with ast_free; NULL for "none".
#[repr(transparent)]
pub struct AsteriskString(*mut c_char);

impl AsteriskString {
    pub fn none() -> AsteriskString {
        AsteriskString(std::ptr::null_mut())
    }

    pub fn copy_of(text: &str) -> AsteriskString {
        AsteriskString(super::asterisk_strdup(text))
    }
}

pub type BroadcastChannelFn = for<'call> extern "C" fn(ChannelArg<'call>, c_int, CStrArg<'call>, c_uint) -> c_int;
pub type ClaimChannelFn = for<'call> extern "C" fn(CStrArg<'call>, CStrArg<'call>) -> c_int;
pub type BroadcastWinnerFn = for<'call> extern "C" fn(CStrArg<'call>) -> AsteriskString;
pub type BroadcastWaitFn = for<'call> extern "C" fn(ChannelArg<'call>, c_int) -> c_int;
pub type BroadcastCleanupFn = for<'call> extern "C" fn(CStrArg<'call>);

// SAFETY (all five constructors): Asterisk's optional API stores every
// function as `void (*)(void)`; each user casts it back to the prototype the
// header declares for that name. The argument types here are
// repr(transparent) over the header's pointer types, so the function given
// has exactly that prototype.
impl OptionalFunction {
    /// `int stasis_app_broadcast_channel(struct ast_channel *, int, const char *, unsigned int)`
    pub fn broadcast_channel(function: BroadcastChannelFn) -> OptionalFunction {
        // SAFETY: see above.
        let address = unsafe { std::mem::transmute::<BroadcastChannelFn, unsafe extern "C" fn()>(function) };
        OptionalFunction { name: c"stasis_app_broadcast_channel", address }
    }

    /// `int stasis_app_claim_channel(const char *channel_id, const char *app_name)`
    pub fn claim_channel(function: ClaimChannelFn) -> OptionalFunction {
        // SAFETY: see above.
        let address = unsafe { std::mem::transmute::<ClaimChannelFn, unsafe extern "C" fn()>(function) };
        OptionalFunction { name: c"stasis_app_claim_channel", address }
    }

    /// `char *stasis_app_broadcast_winner(const char *channel_id)` (caller frees)
    pub fn broadcast_winner(function: BroadcastWinnerFn) -> OptionalFunction {
        // SAFETY: see above.
        let address = unsafe { std::mem::transmute::<BroadcastWinnerFn, unsafe extern "C" fn()>(function) };
        OptionalFunction { name: c"stasis_app_broadcast_winner", address }
    }

    /// `int stasis_app_broadcast_wait(struct ast_channel *, int timeout_ms)`
    pub fn broadcast_wait(function: BroadcastWaitFn) -> OptionalFunction {
        // SAFETY: see above.
        let address = unsafe { std::mem::transmute::<BroadcastWaitFn, unsafe extern "C" fn()>(function) };
        OptionalFunction { name: c"stasis_app_broadcast_wait", address }
    }

    /// `void stasis_app_broadcast_cleanup(const char *channel_id)`
    pub fn broadcast_cleanup(function: BroadcastCleanupFn) -> OptionalFunction {
        // SAFETY: see above.
        let address = unsafe { std::mem::transmute::<BroadcastCleanupFn, unsafe extern "C" fn()>(function) };
        OptionalFunction { name: c"stasis_app_broadcast_cleanup", address }
    }
}

/// `ast_optional_api_provide` for each function: modules built against
/// `stasis_app_broadcast.h` (res_ari_events) start calling ours.
pub fn provide(functions: &[OptionalFunction]) {
    for function in functions {
        // SAFETY: the name is a static C string; the address is a function of
        // this module with the prototype the header declares for that name
        // (see the constructors), valid until `unprovide` runs at unload.
        unsafe { ffi::sbshim_optional_api_provide(function.name.as_ptr(), Some(function.address)) };
    }
}

/// `ast_optional_api_unprovide`: users fall back to the header's stub.
/// Calls already on their way may still arrive: see [`calls_drained`].
pub fn unprovide(functions: &[OptionalFunction]) {
    for function in functions {
        // SAFETY: same name/address pair as given to `provide`.
        unsafe { ffi::sbshim_optional_api_unprovide(function.name.as_ptr(), Some(function.address)) };
    }
}

/// Calls of the dialplan application and of the optional-API functions
/// inside the module. Asterisk's optional API takes no module reference: a
/// user loads the function pointer `provide` stored and calls it whenever it
/// likes; the application's callers hold a module use, which a forced
/// unload ignores.
static CALLS: Calls = Calls::new();

/// How long [`calls_drained`] waits for calls inside before giving up.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long no call may have entered before none counts as on its way: a
/// caller that loaded our pointer just before it was withdrawn is a few of
/// its own instructions from our first statement.
const DRAIN_QUIET: Duration = Duration::from_millis(20);

/// A call of the application or of an optional-API function inside the
/// module: take it first thing in each; [`calls_drained`] waits for it.
pub fn call_inside() -> Inside {
    CALLS.enter()
}

/// Once the application is unregistered and the optional API withdrawn:
/// waits until no call of them is inside (see `crate::in_flight`); false if
/// one still was after a few seconds, and the module must not go.
pub fn calls_drained() -> bool {
    CALLS.drain(DRAIN_LIMIT, DRAIN_QUIET)
}

/// Registers a dialplan application whose documentation comes from XML.
pub fn register_application(name: &'static CStr, execute: AppExec) -> bool {
    // SAFETY: ChannelArg and CStrArg are repr(transparent) over the pointers
    // of Asterisk's application prototype.
    let execute = unsafe {
        std::mem::transmute::<AppExec, unsafe extern "C" fn(*mut ffi::ast_channel, *const c_char) -> c_int>(execute)
    };
    // SAFETY: static name; the callback is a function of this module,
    // unregistered before it unloads.
    unsafe { ffi::sbshim_register_application(name.as_ptr(), Some(execute)) == 0 }
}

pub fn unregister_application(name: &'static CStr) -> bool {
    // SAFETY: static name given to register_application.
    unsafe { ffi::ast_unregister_application(name.as_ptr()) == 0 }
}
