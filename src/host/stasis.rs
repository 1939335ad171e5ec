//! Stasis applications: who is registered, sending them events, entering Stasis.

use std::ffi::{c_char, c_int};

use super::channel::Channel;
use super::json::Json;
use crate::ffi;

/// Names of every registered Stasis (ARI) application.
pub fn application_names() -> Vec<String> {
    let mut count = 0usize;
    let mut total = 0usize;
    // SAFETY: the shim returns an ast_malloc'd buffer of `total` bytes holding
    // `count` NUL-terminated names (or NULL); we copy it and free it.
    let buffer = unsafe { ffi::sbshim_stasis_app_names(&mut count, &mut total) };
    if buffer.is_null() {
        return Vec::new();
    }
    // SAFETY: `buffer` holds `total` initialised bytes (see above).
    let bytes = unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), total) };
    let names = bytes
        .split(|byte| *byte == 0)
        .take(count)
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    // SAFETY: the buffer came from ast_malloc and is not used after this.
    unsafe { ffi::sbshim_free(buffer.cast()) };
    names
}

/// Whether `name` is a registered Stasis application right now.
pub fn is_registered(name: &str) -> bool {
    let name = super::cstring(name);
    // SAFETY: NUL-terminated name; the shim drops the reference it looks up.
    unsafe { ffi::sbshim_stasis_app_is_registered(name.as_ptr()) != 0 }
}

/// What became of an event given to [`send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// An active application's handler took it (ARI stamps `application` on it).
    Delivered,
    /// Registered, but its handler is gone (WebSocket closed): dropped by Stasis.
    Inactive,
    /// No application of that name.
    NotRegistered,
}

/// `stasis_app_send`: delivers an event to one application's WebSocket.
/// `event` must be this application's own copy: whether its handler ran is
/// read back from it.
pub fn send(application: &str, event: &Json) -> Delivery {
    let name = super::cstring(application);
    // SAFETY: both pointers are valid for the call; stasis_app_send takes its
    // own reference to the message if it keeps it.
    if unsafe { ffi::stasis_app_send(name.as_ptr(), event.as_ptr()) } != 0 {
        return Delivery::NotRegistered;
    }
    // ARI's handler (res_ari_events / ari_websockets) sets "application" on the
    // message it is given; Stasis calls no handler for an inactive application.
    if event.string_member("application").is_some() {
        Delivery::Delivered
    } else {
        Delivery::Inactive
    }
}

/// `stasis_app_exec`: runs the channel in the application until it leaves
/// Stasis; true when that went without failure.
pub fn exec(channel: &Channel<'_>, application: &str, args: &[String]) -> bool {
    let application = super::cstring(application);
    let args: Vec<_> = args.iter().map(|arg| super::cstring(arg)).collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|arg| arg.as_ptr().cast_mut()).collect();
    let argc = c_int::try_from(argv.len()).unwrap_or(c_int::MAX);
    // SAFETY: the channel is the one lent to this callback; argv points at
    // `args`, alive until the call returns; stasis_app_exec only reads them.
    unsafe { channel.exec_in_stasis(application.as_ptr(), argc, argv.as_mut_ptr()) == 0 }
}

impl Channel<'_> {
    /// # Safety
    /// Same contract as `stasis_app_exec`.
    unsafe fn exec_in_stasis(&self, application: *const c_char, argc: c_int, argv: *mut *mut c_char) -> c_int {
        // SAFETY: forwarded contract.
        unsafe { ffi::stasis_app_exec(self.as_raw(), application, argc, argv) }
    }
}
