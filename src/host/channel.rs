//! Channels: a borrowed `Channel` valid for one callback, an owned
//! `ChannelRef` that holds a reference and can wake the channel's thread.

use std::any::Any;
use std::ffi::{CStr, c_int, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::Duration;

use super::json::Json;
use crate::ffi;

/// A channel Asterisk lent to the current callback (a dialplan application or
/// an optional-API call); it cannot outlive that callback.
pub struct Channel<'call> {
    raw: NonNull<ffi::ast_channel>,
    _borrow: PhantomData<&'call ffi::ast_channel>,
}

/// The channel argument of a callback (a dialplan application, an
/// optional-API function): made only by Asterisk, valid for the call.
#[repr(transparent)]
pub struct ChannelArg<'call> {
    raw: *mut ffi::ast_channel,
    _call: PhantomData<&'call ffi::ast_channel>,
}

impl<'call> ChannelArg<'call> {
    /// The channel, or `None` if Asterisk passed NULL.
    pub fn channel(&self) -> Option<Channel<'call>> {
        // SAFETY: a ChannelArg only ever comes from Asterisk, as the channel
        // argument of the callback running now, which Asterisk holds for
        // the call ('call).
        unsafe { Channel::from_raw(self.raw) }
    }
}

/// The argument of the condition callback of [`Channel::sleep_until`].
#[repr(transparent)]
pub struct ConditionArg<'call> {
    data: *mut c_void,
    _call: PhantomData<&'call ()>,
}

impl ConditionArg<'_> {
    /// Whether the condition `sleep_until` was given is true now.
    pub fn done(&self) -> bool {
        // SAFETY: `data` is the `&dyn Fn` that `sleep_until` set up and keeps
        // alive on its stack for the whole ast_safe_sleep_conditional call,
        // the only caller of the condition callback.
        let done = unsafe { &*self.data.cast::<&dyn Fn() -> bool>() };
        done()
    }
}

/// The condition callback of [`Channel::sleep_until`]: non-zero keeps sleeping.
pub type Condition = for<'call> extern "C" fn(ConditionArg<'call>) -> c_int;

/// How a [`Channel::sleep_until`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SleepEnd {
    /// The condition became true.
    Condition,
    /// The time ran out.
    TimedOut,
    /// The channel hung up (or reading it failed).
    HungUp,
}

impl<'call> Channel<'call> {
    /// # Safety
    /// `raw` must be a channel Asterisk passed to the running callback, which
    /// keeps it alive (and referenced) for `'call`.
    pub unsafe fn from_raw(raw: *mut ffi::ast_channel) -> Option<Channel<'call>> {
        NonNull::new(raw).map(|raw| Channel { raw, _borrow: PhantomData })
    }

    pub(super) fn as_raw(&self) -> *mut ffi::ast_channel {
        self.raw.as_ptr()
    }

    // The name and the unique id are copied under the channel lock, never
    // read in place: a masquerade (main/channel.c, channel_do_masquerade)
    // gives the channel the other one's name and swaps their unique ids,
    // under both channels' locks, while this thread may be reading them.

    /// The unique id and the name, copied together under one hold of the
    /// channel lock (on the stack unless the name is unusually long). A
    /// call copies them once and uses the copies throughout.
    #[inline]
    pub fn ids(&self) -> ChannelIds {
        let mut ids = ChannelIds { unique_id: CopiedText::new(), name: CopiedText::new() };
        loop {
            let (unique_id, unique_id_size) = ids.unique_id.buffer();
            let (name, name_size) = ids.name.buffer();
            let (mut unique_id_length, mut name_length) = (0, 0);
            // SAFETY: valid channel for 'call; the shim writes into each
            // buffer at most its size (NUL-terminated) and stores both lengths.
            unsafe {
                ffi::sbshim_channel_copy_ids(
                    self.raw.as_ptr(),
                    unique_id,
                    unique_id_size,
                    &mut unique_id_length,
                    name,
                    name_size,
                    &mut name_length,
                )
            };
            // Both must come from the same hold of the lock: if either did
            // not fit, both are copied again, into buffers now big enough.
            let unique_id_fits = ids.unique_id.took(unique_id_length);
            if ids.name.took(name_length) && unique_id_fits {
                return ids;
            }
        }
    }

    /// The name, for a log line off the hot path.
    pub fn name(&self) -> String {
        self.ids().name.text().into_owned()
    }

    /// The unique id, off the hot path.
    pub fn unique_id(&self) -> String {
        self.ids().unique_id.text().into_owned()
    }

    /// The caller id number ("" when unset) and the dialplan extension, as
    /// JSON strings made under the channel lock (None if out of memory).
    pub fn caller_and_extension_json(&self) -> (Option<Json>, Option<Json>) {
        let (mut caller, mut exten) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: valid channel for 'call; the shim locks it, and stores a
        // new JSON string (our reference) or NULL into each.
        unsafe { ffi::sbshim_channel_caller_and_exten_json(self.raw.as_ptr(), &mut caller, &mut exten) };
        (Json::from_raw(caller), Json::from_raw(exten))
    }

    pub fn set_variable(&self, name: &CStr, value: &CStr) {
        // SAFETY: pbx_builtin_setvar_helper locks the channel itself and copies both strings.
        unsafe { ffi::pbx_builtin_setvar_helper(self.raw.as_ptr(), name.as_ptr(), value.as_ptr()) };
    }

    pub fn is_hung_up(&self) -> bool {
        // SAFETY: valid channel; ast_check_hangup reads its soft-hangup flags.
        unsafe { ffi::ast_check_hangup(self.raw.as_ptr()) != 0 }
    }

    /// An owned reference, for code that must reach the channel from another thread.
    pub fn to_ref(&self) -> ChannelRef {
        // SAFETY: ast_channel_ref on a live channel; ChannelRef's Drop unrefs.
        unsafe { ffi::sbshim_channel_ref(self.raw.as_ptr()) };
        ChannelRef { raw: self.raw }
    }

    /// Services the channel until `done()` is true, `timeout` passes, or it
    /// hangs up. Incoming frames are read (voice is dropped, control frames
    /// are kept for whoever reads next), so an answered channel's queue never
    /// grows; DTMF is deferred (Asterisk leaves the digits queued, in order,
    /// for whoever reads after us: the winner's Stasis session). `done()` is
    /// re-checked every time the channel is woken, which [`ChannelRef::wake`]
    /// does from another thread. Asterisk asks through `condition`, which
    /// answers with [`ConditionArg::done`].
    pub fn sleep_until(&self, timeout: Duration, done: &dyn Fn() -> bool, condition: Condition) -> SleepEnd {
        let _digits_kept = DeferDtmf::new(self);
        let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        let mut closure: &dyn Fn() -> bool = done;
        let data = (&mut closure as *mut &dyn Fn() -> bool).cast::<c_void>();
        // SAFETY: ConditionArg is a repr(transparent) `*mut c_void`, so
        // `condition` has the prototype Asterisk calls.
        let callback =
            unsafe { std::mem::transmute::<Condition, unsafe extern "C" fn(*mut c_void) -> c_int>(condition) };
        // SAFETY: ast_safe_sleep_conditional calls `callback(data)` only
        // during this call, while the closure `data` points at is alive on this stack frame.
        let result = unsafe { ffi::ast_safe_sleep_conditional(self.raw.as_ptr(), timeout_ms, Some(callback), data) };
        if result != 0 || self.is_hung_up() {
            SleepEnd::HungUp
        } else if done() {
            SleepEnd::Condition
        } else {
            SleepEnd::TimedOut
        }
    }
}

/// A channel's unique id and name, copied together under its lock
/// ([`Channel::ids`]).
pub struct ChannelIds {
    pub unique_id: CopiedText,
    pub name: CopiedText,
}

/// A string of the channel's copied under its lock: NUL-terminated, on the
/// stack when it fits in `COPY_ON_STACK` bytes (every unique id does:
/// Asterisk's are shorter than `AST_MAX_UNIQUEID`, 152), else on the heap.
pub struct CopiedText {
    on_stack: [u8; COPY_ON_STACK],
    on_heap: Vec<u8>,
    len: usize,
}

const COPY_ON_STACK: usize = 160;

impl CopiedText {
    fn new() -> CopiedText {
        CopiedText { on_stack: [0; COPY_ON_STACK], on_heap: Vec::new(), len: 0 }
    }

    /// The buffer the shim copies into, and its size.
    fn buffer(&mut self) -> (*mut std::ffi::c_char, usize) {
        if self.on_heap.is_empty() {
            (self.on_stack.as_mut_ptr().cast(), COPY_ON_STACK)
        } else {
            (self.on_heap.as_mut_ptr().cast(), self.on_heap.len())
        }
    }

    /// The shim found a string of `len` bytes: whether it fitted the buffer
    /// (and is now this text); if not, the buffer grows to take it.
    fn took(&mut self, len: usize) -> bool {
        let size = if self.on_heap.is_empty() { COPY_ON_STACK } else { self.on_heap.len() };
        if len < size {
            self.len = len;
            return true;
        }
        self.on_heap.resize(len + 1, 0);
        false
    }

    fn bytes_with_nul(&self) -> &[u8] {
        if self.on_heap.is_empty() { &self.on_stack[..=self.len] } else { &self.on_heap[..=self.len] }
    }

    /// The text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        let bytes = self.bytes_with_nul();
        super::text_of_bytes(&bytes[..bytes.len() - 1])
    }
}

impl std::ops::Deref for CopiedText {
    type Target = CStr;

    fn deref(&self) -> &CStr {
        // SAFETY: the shim copied a C string of `len` bytes and its NUL
        // (strlen found no NUL before), so these bytes end in their only NUL.
        unsafe { CStr::from_bytes_with_nul_unchecked(self.bytes_with_nul()) }
    }
}

/// DTMF deferred on the channel for the guard's lifetime: `ast_read` leaves
/// digit frames on the read queue (and queues those the driver delivers),
/// while every other frame is read as usual. Only undone by the guard that
/// set it, so a caller that had already deferred DTMF keeps it deferred.
struct DeferDtmf<'a> {
    channel: &'a Channel<'a>,
    set_here: bool,
}

impl<'a> DeferDtmf<'a> {
    fn new(channel: &'a Channel<'a>) -> Self {
        // With only deferred digits left on its read queue, ast_read disables
        // the channel's timer without checking there is one: a channel made
        // while no timing module was loaded has none, and deferring would
        // crash Asterisk. Such a channel keeps the old behaviour (digits read
        // and dropped with the voice).
        // SAFETY: valid channel for 'call; the timer is set when the channel
        // is allocated and only released when it is destroyed.
        if unsafe { ffi::ast_channel_timer(channel.raw.as_ptr()) }.is_null() {
            return DeferDtmf { channel, set_here: false };
        }
        // SAFETY: valid channel for 'call; ast_channel_defer_dtmf locks it and
        // returns whether the flag was already set.
        let already = unsafe { ffi::ast_channel_defer_dtmf(channel.raw.as_ptr()) } != 0;
        DeferDtmf { channel, set_here: !already }
    }
}

impl Drop for DeferDtmf<'_> {
    fn drop(&mut self) {
        if self.set_here {
            // SAFETY: valid channel; clears the flag set in `new` (under the
            // channel lock) and re-arms the alert for the digits it kept.
            unsafe { ffi::sbshim_channel_undefer_dtmf(self.channel.raw.as_ptr()) };
        }
    }
}

/// What a channel tie carries: any value of the module's, handed back when
/// the tie ends.
pub type TiePayload = Box<dyn Any + Send>;

impl Channel<'_> {
    /// Ties `payload` to the channel through a channel datastore: it comes
    /// back, once, to the datastore's destroy callback (the entry point
    /// `sbrs_broadcast_datastore_destroy`, through [`TieArg::take`]) when the
    /// channel is destroyed, or when [`untie`] is called for it first. While
    /// the datastore exists Asterisk holds a reference to this module
    /// (`ast_datastore_alloc` takes one on `AST_MODULE_SELF`, released after
    /// the destroy callback returns), so a plain `module unload` is refused.
    /// `Err(payload)` when the datastore could not be made.
    pub fn tie(&self, payload: TiePayload) -> Result<(), TiePayload> {
        let data = Box::into_raw(Box::new(payload)).cast::<c_void>();
        // SAFETY: valid channel for 'call; on success the datastore owns
        // `data` and hands it to the destroy callback exactly once.
        if unsafe { ffi::sbshim_channel_attach_broadcast_datastore(self.raw.as_ptr(), data) } == 0 {
            return Ok(());
        }
        // SAFETY: not taken by the shim: still ours, made by Box::into_raw above.
        Err(*unsafe { Box::from_raw(data.cast::<TiePayload>()) })
    }
}

/// Ends now every tie of the channel with this unique id (if it still
/// exists): each payload goes to the destroy callback before this returns.
pub fn untie(unique_id: &str) {
    let unique_id = super::cstring(unique_id);
    // SAFETY: NUL-terminated id; the shim looks the channel up, detaches its
    // datastores under the channel lock and frees them after releasing it.
    unsafe { ffi::sbshim_channel_detach_broadcast_datastores(unique_id.as_ptr()) };
}

/// The argument of the tie datastore's destroy callback: made only by
/// Asterisk, which passes each datastore's data once.
#[repr(transparent)]
pub struct TieArg {
    data: *mut c_void,
}

impl TieArg {
    /// The payload given to [`Channel::tie`].
    pub fn take(self) -> Option<TiePayload> {
        if self.data.is_null() {
            return None;
        }
        // SAFETY: a TieArg only comes from Asterisk, as the data of a tie
        // datastore, which Channel::tie made with Box::into_raw and which
        // Asterisk hands to the destroy callback once; `self` is consumed.
        Some(*unsafe { Box::from_raw(self.data.cast::<TiePayload>()) })
    }
}

/// An owned channel reference (ao2), released on Drop.
pub struct ChannelRef {
    raw: NonNull<ffi::ast_channel>,
}

// SAFETY: ast_channel is an ao2 object with an atomic reference count and its
// own lock; ast_queue_frame (the only thing done through this) locks it.
unsafe impl Send for ChannelRef {}
// SAFETY: as above; no method takes &mut.
unsafe impl Sync for ChannelRef {}

impl Clone for ChannelRef {
    /// Another reference: an atomic increment, no lock taken.
    fn clone(&self) -> ChannelRef {
        // SAFETY: we hold a reference, so the channel is alive; Drop unrefs the new one.
        unsafe { ffi::sbshim_channel_ref(self.raw.as_ptr()) };
        ChannelRef { raw: self.raw }
    }
}

impl ChannelRef {
    /// Wakes the thread servicing the channel (a null frame on its queue).
    pub fn wake(&self) {
        // SAFETY: we hold a reference, so the channel is alive; ast_queue_frame locks it.
        unsafe { ffi::sbshim_channel_wake(self.raw.as_ptr()) };
    }
}

/// Wakes the thread servicing the channel with this unique id, if it exists:
/// for broadcasts started through the optional API, where no reference is kept.
pub fn wake_by_unique_id(unique_id: &str) {
    let unique_id = super::cstring(unique_id);
    // SAFETY: the lookup returns a new reference or NULL; ChannelRef takes it
    // over and releases it on drop.
    let raw = unsafe { ffi::sbshim_channel_get_by_uniqueid(unique_id.as_ptr()) };
    if let Some(raw) = NonNull::new(raw) {
        ChannelRef { raw }.wake();
    }
}

impl Drop for ChannelRef {
    fn drop(&mut self) {
        // SAFETY: releases the reference taken in `Channel::to_ref`.
        unsafe { ffi::sbshim_channel_unref(self.raw.as_ptr()) };
    }
}
