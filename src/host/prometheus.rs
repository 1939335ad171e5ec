//! Asterisk's Prometheus support (res_prometheus), reached at run time.
//!
//! The module must load and work where res_prometheus is absent, so it has
//! no link-time reference to it: the two functions used are looked up with
//! `dlsym` when res_prometheus is loaded (it exports its symbols globally).

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use crate::ffi;

type Register = unsafe extern "C" fn(*mut ffi::prometheus_callback) -> i32;
type Unregister = unsafe extern "C" fn(*mut ffi::prometheus_callback);

/// The registered callback and how to unregister it. Kept under a Mutex only
/// taken at load/unload/reload; the scrape itself never touches it.
struct Registration {
    callback: *mut ffi::prometheus_callback,
    unregister: Unregister,
}

// SAFETY: the pointer is only dereferenced by res_prometheus and freed by us
// after unregistering; moving it between threads is fine.
unsafe impl Send for Registration {}

static REGISTRATION: Mutex<Option<Registration>> = Mutex::new(None);
/// The text producer, set while registered.
static RENDER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Why metrics are not registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    NotLoaded,
    SymbolsMissing,
    Refused,
}

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Registers `render` as a Prometheus callback; Ok(()) if registered (or already).
pub fn register(render: fn() -> String) -> Result<(), Unavailable> {
    let mut registration = REGISTRATION.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if registration.is_some() {
        return Ok(());
    }
    if !super::module::is_loaded(c"res_prometheus.so") {
        return Err(Unavailable::NotLoaded);
    }
    let (register, unregister) = (lookup(c"prometheus_callback_register"), lookup(c"prometheus_callback_unregister"));
    if register.is_null() || unregister.is_null() {
        return Err(Unavailable::SymbolsMissing);
    }
    // SAFETY: these are res_prometheus's functions with the prototypes of
    // res_prometheus.h (the header this module is built against).
    let (register, unregister) =
        unsafe { (std::mem::transmute::<*mut c_void, Register>(register), std::mem::transmute::<*mut c_void, Unregister>(unregister)) };
    RENDER.store(render as *mut (), Ordering::SeqCst);
    let callback = Box::into_raw(Box::new(ffi::prometheus_callback {
        name: c"res_stasis_broadcast_rs".as_ptr(),
        callback_fn: Some(scrape),
    }));
    // SAFETY: `callback` stays allocated until `unregister` has removed it.
    if unsafe { register(callback) } != 0 {
        // SAFETY: not registered, so nobody else holds it.
        drop(unsafe { Box::from_raw(callback) });
        return Err(Unavailable::Refused);
    }
    *registration = Some(Registration { callback, unregister });
    Ok(())
}

/// Unregisters the callback (idempotent).
pub fn unregister() {
    let taken = REGISTRATION.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(Registration { callback, unregister }) = taken {
        // SAFETY: `callback` was registered by `register`; res_prometheus
        // removes it under its own lock, so no scrape uses it afterwards.
        unsafe {
            unregister(callback);
            drop(Box::from_raw(callback));
        }
    }
}

pub fn is_registered() -> bool {
    REGISTRATION.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some()
}

/// Called by res_prometheus on each scrape of /metrics.
unsafe extern "C" fn scrape(output: *mut *mut ffi::ast_str) {
    crate::guard::guarded("Prometheus scrape", (), || {
        let render = RENDER.load(Ordering::SeqCst);
        if render.is_null() || output.is_null() {
            return;
        }
        // SAFETY: RENDER only ever holds a `fn() -> String` stored by `register`.
        let render = unsafe { std::mem::transmute::<*mut (), fn() -> String>(render) };
        let text = super::cstring(&render());
        // SAFETY: res_prometheus passes its output buffer; the shim appends as "%s".
        unsafe { ffi::sbshim_str_append(output, text.as_ptr() as *const c_char) };
    });
}
