//! Stasis applications: who is registered, sending them events, entering Stasis.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::channel::Channel;
use super::json::Json;
use crate::ffi;

/// The names of the registered Stasis (ARI) applications, as one walk of
/// Asterisk's copy of them (`stasis_app_get_all`) found them: borrowed from
/// that copy, which this holds one reference on, so no name is copied. The
/// list of them is on the stack for up to [`NAMES_ON_STACK`] applications.
/// The caller narrows and reorders it ([`ApplicationNames::retain`],
/// [`ApplicationNames::reorder`]) into the list of applications to offer.
pub struct ApplicationNames {
    container: Option<NonNull<ffi::ao2_container>>,
    on_stack: [NameSlot; NAMES_ON_STACK],
    on_heap: Vec<NameSlot>,
    len: usize,
}

/// Up to this many registered applications cost no allocation per call.
pub const NAMES_ON_STACK: usize = 16;

/// One application name in an [`ApplicationNames`]: opaque, it can only be
/// moved around (to reorder them).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct NameSlot(*const c_char);

#[allow(clippy::len_without_is_empty)]
impl ApplicationNames {
    /// The applications registered now; none if Asterisk cannot say.
    pub fn registered() -> ApplicationNames {
        let mut names =
            ApplicationNames { container: None, on_stack: [NameSlot(std::ptr::null()); NAMES_ON_STACK], on_heap: Vec::new(), len: 0 };
        // SAFETY: returns a new container (one reference, ours) or NULL.
        let Some(container) = NonNull::new(unsafe { ffi::stasis_app_get_all() }) else {
            return names;
        };
        names.container = Some(container);
        // SAFETY: a valid container; only its size is read.
        let count = usize::try_from(unsafe { ffi::ao2_container_count(container.as_ptr()) }).unwrap_or(0);
        // SAFETY (both calls of the shim): it stores at most the given count
        // of non-NULL object pointers (NameSlot has a pointer's layout) at
        // the given address and says how many. The container holds ao2
        // strings (NUL-terminated), each kept alive by the container, which
        // nothing else changes (it is our copy) and which we hold until Drop.
        if count <= NAMES_ON_STACK {
            let slots = names.on_stack.as_mut_ptr().cast::<*mut c_void>();
            let stored = unsafe { ffi::sbshim_ao2_objects(container.as_ptr(), slots, count) };
            names.len = stored.min(count);
        } else {
            // Not cleared first: the shim writes every slot that is then
            // counted (with hundreds of applications, clearing them costs
            // more than the rest of the walk).
            names.on_heap = Vec::with_capacity(count);
            let slots = names.on_heap.as_mut_ptr().cast::<*mut c_void>();
            let stored = unsafe { ffi::sbshim_ao2_objects(container.as_ptr(), slots, count) }.min(count);
            // SAFETY: the first `stored` slots were written just now, within capacity.
            unsafe { names.on_heap.set_len(stored) };
            names.len = stored;
        }
        names
    }

    fn slots(&self) -> &[NameSlot] {
        if self.on_heap.is_empty() { &self.on_stack[..self.len] } else { &self.on_heap[..self.len] }
    }

    fn slots_mut(&mut self) -> &mut [NameSlot] {
        if self.on_heap.is_empty() { &mut self.on_stack[..self.len] } else { &mut self.on_heap[..self.len] }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn name_of(&self, slot: NameSlot) -> &CStr {
        // SAFETY: a non-NULL, NUL-terminated string owned by the container,
        // alive while `self` is (see `registered`).
        unsafe { CStr::from_ptr(slot.0) }
    }

    /// The names, in their current order.
    pub fn iter(&self) -> impl Iterator<Item = &CStr> + '_ {
        self.slots().iter().map(|&slot| self.name_of(slot))
    }

    /// The names as [`stasis_app_send`](send) takes them (their length not measured).
    pub fn app_names(&self) -> impl Iterator<Item = AppName<'_>> + '_ {
        // The shim stores no NULL; the names live as long as `self`.
        self.slots().iter().filter_map(|slot| NonNull::new(slot.0.cast_mut())).map(|raw| AppName { raw, _borrowed: PhantomData })
    }

    /// Keeps the names `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&CStr) -> bool) {
        let mut kept = 0;
        for index in 0..self.len {
            let slot = self.slots()[index];
            if keep(self.name_of(slot)) {
                self.slots_mut()[kept] = slot;
                kept += 1;
            }
        }
        self.len = kept;
    }

    /// Lets `order` move the names around (to shuffle them).
    pub fn reorder(&mut self, order: impl FnOnce(&mut [NameSlot])) {
        order(self.slots_mut());
    }
}

impl Drop for ApplicationNames {
    fn drop(&mut self) {
        if let Some(container) = self.container {
            // SAFETY: the reference stasis_app_get_all gave us; no name is used after this.
            unsafe { ffi::sbshim_ao2_cleanup(container.as_ptr().cast()) };
        }
    }
}

/// Whether `name` is a registered Stasis application right now.
pub fn is_registered(name: &[u8]) -> bool {
    // SAFETY: NUL-terminated name; the shim drops the reference it looks up.
    super::with_c_bytes(name, |name| unsafe { ffi::sbshim_stasis_app_is_registered(name.as_ptr()) != 0 })
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
/// Stasis; true when that went without failure. `args` are the arguments,
/// walked once to size the buffers and once to fill them.
pub fn exec<'a>(channel: &Channel<'_>, application: &[u8], args: impl Iterator<Item = &'a [u8]> + Clone) -> bool {
    let count = args.clone().count();
    let c_size: usize = args.clone().map(|arg| arg.len() + 1).sum();
    // The arguments as C strings one after the other in one buffer (interior
    // NULs become '?', as in `cstring`): on the stack for the usual short
    // arguments, on the heap otherwise, sized up front so it never moves.
    const TEXT_ON_STACK: usize = 64;
    let mut text_on_stack = [0u8; TEXT_ON_STACK];
    let mut text_on_heap = Vec::new();
    let text: &mut [u8] = if c_size <= TEXT_ON_STACK {
        &mut text_on_stack[..c_size]
    } else {
        text_on_heap.resize(c_size, 0);
        &mut text_on_heap
    };
    // argv on the stack for the usual few arguments.
    const ARGV_ON_STACK: usize = 8;
    let mut argv_on_stack = [std::ptr::null_mut::<c_char>(); ARGV_ON_STACK];
    let mut argv_on_heap = Vec::new();
    let argv: &mut [*mut c_char] = if count <= ARGV_ON_STACK {
        &mut argv_on_stack[..count]
    } else {
        argv_on_heap.resize(count, std::ptr::null_mut());
        &mut argv_on_heap
    };
    let mut rest = text;
    let mut filled = 0;
    for (slot, arg) in argv.iter_mut().zip(args) {
        // Each argument and its NUL fit, the buffer being sized from these
        // same arguments; an iterator whose clones differed would only get
        // fewer of them passed, never a string without its NUL.
        let Some((bytes, after)) = std::mem::take(&mut rest).split_at_mut_checked(arg.len() + 1) else { break };
        for (byte, &from) in bytes.iter_mut().zip(arg) {
            *byte = if from == 0 { b'?' } else { from };
        }
        // bytes[arg.len()] stays 0: the terminator.
        *slot = bytes.as_mut_ptr().cast::<c_char>();
        filled += 1;
        rest = after;
    }
    let argv = &mut argv[..filled];
    let argc = c_int::try_from(argv.len()).unwrap_or(c_int::MAX);
    super::with_c_bytes(application, |application| {
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
