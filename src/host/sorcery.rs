//! Hearing about ARI's configuration reloads, so the module-served claim
//! endpoint re-reads ari.conf when ARI does (`module reload res_ari.so`).
//!
//! ARI keeps its configuration in a sorcery instance registered under its
//! module name (Asterisk 20.15+, 21.10+, 22.5+, 23+); the module observes that
//! instance. Sorcery calls the observer synchronously, under the instance's
//! observer lock, which removing the observer also takes: once
//! `unwatch_ari_reloads` returns, no call is in progress or will come.
//! Older ARI has no such instance; there `module reload` of this module
//! re-reads ari.conf.

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::ffi;
use crate::guard::guarded;

static WATCHED: AtomicPtr<ffi::ast_sorcery> = AtomicPtr::new(std::ptr::null_mut());

/// Starts observing ARI's configuration (idempotent); false where ARI has no
/// sorcery instance.
pub fn watch_ari_reloads() -> bool {
    if !WATCHED.load(Ordering::SeqCst).is_null() {
        return true;
    }
    // SAFETY: static name; the callback is a guarded function of this module,
    // removed by unwatch_ari_reloads before the module unloads.
    let sorcery = unsafe { ffi::sbshim_sorcery_observe(c"res_ari".as_ptr(), Some(ari_type_loaded)) };
    WATCHED.store(sorcery, Ordering::SeqCst);
    !sorcery.is_null()
}

/// Stops observing (idempotent).
pub fn unwatch_ari_reloads() {
    let sorcery = WATCHED.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !sorcery.is_null() {
        // SAFETY: the instance and reference sbshim_sorcery_observe returned.
        unsafe { ffi::sbshim_sorcery_unobserve(sorcery) };
    }
}

unsafe extern "C" fn ari_type_loaded(
    _name: *const c_char,
    _sorcery: *const ffi::ast_sorcery,
    object_type: *const c_char,
    reloaded: c_int,
) {
    let object_type = super::string_from(object_type);
    guarded("ARI configuration observer", (), || {
        // ARI reloads "general" then "user": when the users are in, both are.
        if reloaded != 0 && object_type == "user" {
            crate::endpoint::ari_reloaded();
        }
    });
}
