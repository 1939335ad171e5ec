//! Hearing about ARI's configuration reloads, so the module-served claim
//! endpoint re-reads ari.conf when ARI does (`module reload res_ari.so`).
//!
//! ARI keeps its configuration in a sorcery instance registered under its
//! module name (Asterisk 20.15+, 21.10+, 22.5+, 23+); the module observes that
//! instance. Sorcery calls the observer synchronously, under the instance's
//! observer lock, which removing the observer also takes: once
//! the [`Watch`] is dropped, no call is in progress or will come.
//! Older ARI has no such instance; there `module reload` of this module
//! re-reads ari.conf.

use std::ffi::{c_char, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;

use super::CStrArg;
use crate::ffi;

/// The sorcery-instance argument of an observer call (unused by this module).
#[repr(transparent)]
pub struct SorceryArg<'call> {
    _raw: *const ffi::ast_sorcery,
    _call: PhantomData<&'call ()>,
}

/// An "instance loaded" observer's prototype: module name, instance, object
/// type, whether it was a reload.
pub type Observer = for<'call> extern "C" fn(CStrArg<'call>, SorceryArg<'call>, CStrArg<'call>, c_int);

/// Observing ARI's sorcery instance; dropping it stops observing.
pub struct Watch {
    sorcery: NonNull<ffi::ast_sorcery>,
}

// SAFETY: an ao2 reference to the instance, released once (on drop) from
// whichever thread; the instance's own locks guard it.
unsafe impl Send for Watch {}
// SAFETY: no method uses it through a shared reference.
unsafe impl Sync for Watch {}

/// Starts observing ARI's configuration with `observer`; `None` where ARI
/// has no sorcery instance.
pub fn watch_ari_reloads(observer: Observer) -> Option<Watch> {
    // SAFETY: the argument types are repr(transparent) over the pointers of
    // the observer prototype the shim takes.
    let observer = unsafe {
        std::mem::transmute::<
            Observer,
            unsafe extern "C" fn(*const c_char, *const ffi::ast_sorcery, *const c_char, c_int),
        >(observer)
    };
    // SAFETY: static name; the callback is a function of this module, removed
    // when the Watch drops, before the module unloads.
    let sorcery = unsafe { ffi::sbshim_sorcery_observe(c"res_ari".as_ptr(), Some(observer)) };
    NonNull::new(sorcery).map(|sorcery| Watch { sorcery })
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: the instance and reference sbshim_sorcery_observe returned.
        unsafe { ffi::sbshim_sorcery_unobserve(self.sorcery.as_ptr()) };
    }
}
