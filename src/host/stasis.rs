//! Stasis applications: who is registered, sending them events, entering Stasis.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::channel::Channel;
use super::json::Json;
use crate::ffi;

/// The names of the registered Stasis (ARI) applications, as one walk of
/// Asterisk's copy of them (`stasis_app_get_all`) found them: borrowed from
/// that copy, which this holds one reference on, so no name is copied.
pub struct ApplicationNames {
    container: NonNull<ffi::ao2_container>,
    names: Vec<NonNull<c_char>>,
}

#[allow(clippy::len_without_is_empty)]
impl ApplicationNames {
    /// The applications registered now; none if Asterisk cannot say.
    pub fn registered() -> ApplicationNames {
        // SAFETY: returns a new container (one reference, ours) or NULL.
        let Some(container) = NonNull::new(unsafe { ffi::stasis_app_get_all() }) else {
            return ApplicationNames { container: NonNull::dangling(), names: Vec::new() };
        };
        // SAFETY: a valid container; only its size is read.
        let count = usize::try_from(unsafe { ffi::ao2_container_count(container.as_ptr()) }).unwrap_or(0);
        let mut names: Vec<NonNull<c_char>> = Vec::with_capacity(count);
        // SAFETY: the shim stores at most `count` non-NULL object pointers
        // (NonNull<c_char> has a pointer's layout) into the Vec's spare
        // capacity and says how many, which become its length. The container
        // holds ao2 strings (NUL-terminated), each kept alive by the
        // container, which nothing else changes (it is our copy) and which we
        // hold until Drop.
        unsafe {
            let stored = ffi::sbshim_ao2_objects(container.as_ptr(), names.as_mut_ptr().cast::<*mut c_void>(), count);
            names.set_len(stored.min(count));
        }
        ApplicationNames { container, names }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The `index`th name.
    pub fn get(&self, index: usize) -> &CStr {
        // SAFETY: a NUL-terminated string owned by the container, alive while `self` is.
        unsafe { CStr::from_ptr(self.names[index].as_ptr()) }
    }

    /// The `index`th name, its length not measured (all `stasis_app_send` needs).
    pub fn name(&self, index: usize) -> AppName<'_> {
        AppName { raw: self.names[index], _borrowed: PhantomData }
    }

    pub fn iter(&self) -> impl Iterator<Item = &CStr> + '_ {
        (0..self.names.len()).map(|index| self.get(index))
    }
}

impl Drop for ApplicationNames {
    fn drop(&mut self) {
        if self.container != NonNull::dangling() {
            // SAFETY: the reference stasis_app_get_all gave us; no name is used after this.
            unsafe { ffi::sbshim_ao2_cleanup(self.container.as_ptr().cast()) };
        }
    }
}

/// Whether `name` is a registered Stasis application right now.
pub fn is_registered(name: &str) -> bool {
    // SAFETY: NUL-terminated name; the shim drops the reference it looks up.
    super::with_cstr(name, |name| unsafe { ffi::sbshim_stasis_app_is_registered(name.as_ptr()) != 0 })
}

/// An application's name as a C string borrowed for `'a` (from
/// [`ApplicationNames`] or a `CStr`).
#[derive(Clone, Copy)]
pub struct AppName<'a> {
    raw: NonNull<c_char>,
    _borrowed: PhantomData<&'a CStr>,
}

impl<'a> From<&'a CStr> for AppName<'a> {
    fn from(name: &'a CStr) -> AppName<'a> {
        AppName { raw: NonNull::from(name).cast(), _borrowed: PhantomData }
    }
}

impl<'a> AppName<'a> {
    pub fn to_cstr(self) -> &'a CStr {
        // SAFETY: a NUL-terminated string alive for 'a (see the constructors).
        unsafe { CStr::from_ptr(self.raw.as_ptr()) }
    }
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
/// `event` must be this application's own (top-level) copy: Stasis and ARI
/// set members on it, and whether its handler ran is read back from it.
#[inline]
pub fn send(application: AppName<'_>, event: &Json) -> Delivery {
    // SAFETY: both pointers are valid for the call; stasis_app_send takes its
    // own reference to the message if it keeps it.
    if unsafe { ffi::stasis_app_send(application.raw.as_ptr(), event.as_ptr()) } != 0 {
        return Delivery::NotRegistered;
    }
    // ARI's handler (res_ari_events / ari_websockets) sets "application" on the
    // message it is given; Stasis calls no handler for an inactive application.
    if event.has_member(c"application") {
        Delivery::Delivered
    } else {
        Delivery::Inactive
    }
}

/// `stasis_app_exec`: runs the channel in the application until it leaves
/// Stasis; true when that went without failure.
pub fn exec(channel: &Channel<'_>, application: &str, args: &[String]) -> bool {
    // The arguments as C strings one after the other in one buffer (interior
    // NULs become '?', as in `cstring`), sized up front so it never moves.
    let mut text: Vec<u8> = Vec::with_capacity(args.iter().map(|arg| arg.len() + 1).sum());
    for arg in args {
        text.extend(arg.bytes().map(|byte| if byte == 0 { b'?' } else { byte }));
        text.push(0);
    }
    // argv on the stack for the usual few arguments.
    const ON_STACK: usize = 8;
    let mut on_stack = [std::ptr::null_mut::<c_char>(); ON_STACK];
    let mut on_heap = Vec::new();
    let argv: &mut [*mut c_char] = if args.len() <= ON_STACK {
        &mut on_stack[..args.len()]
    } else {
        on_heap.resize(args.len(), std::ptr::null_mut());
        &mut on_heap
    };
    let mut start = 0;
    for (slot, arg) in argv.iter_mut().zip(args) {
        *slot = text[start..].as_ptr().cast::<c_char>().cast_mut();
        start += arg.len() + 1;
    }
    let argc = c_int::try_from(argv.len()).unwrap_or(c_int::MAX);
    super::with_cstr(application, |application| {
        // SAFETY: the channel is the one lent to this callback; argv points at
        // NUL-terminated strings in `text`, which neither moves nor changes
        // until the call returns; stasis_app_exec only reads them.
        unsafe { channel.exec_in_stasis(application.as_ptr(), argc, argv.as_mut_ptr()) == 0 }
    })
}

impl Channel<'_> {
    /// # Safety
    /// Same contract as `stasis_app_exec`.
    unsafe fn exec_in_stasis(&self, application: *const c_char, argc: c_int, argv: *mut *mut c_char) -> c_int {
        // SAFETY: forwarded contract.
        unsafe { ffi::stasis_app_exec(self.as_raw(), application, argc, argv) }
    }
}
