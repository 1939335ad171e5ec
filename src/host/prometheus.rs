//! Asterisk's Prometheus support (res_prometheus), reached at run time.
//!
//! The module must load and work where res_prometheus is absent, so it has
//! no link-time reference to it: the two functions used are looked up with
//! `dlsym` when res_prometheus is loaded (it exports its symbols globally).

use std::ffi::{c_char, c_void, CStr};
use std::marker::PhantomData;

use crate::ffi;

type Register = unsafe extern "C" fn(*mut ffi::prometheus_callback) -> i32;
type Unregister = unsafe extern "C" fn(*mut ffi::prometheus_callback);

/// The output argument of a scrape callback, valid for the call.
#[repr(transparent)]
pub struct OutputArg<'call> {
    raw: *mut *mut ffi::ast_str,
    _call: PhantomData<&'call ()>,
}

impl OutputArg<'_> {
    /// Appends `text` to the scrape's output.
    pub fn append(&self, text: &str) {
        if self.raw.is_null() {
            return;
        }
        let text = super::cstring(text);
        // SAFETY: res_prometheus passes its output buffer for this call; the shim appends as "%s".
        unsafe { ffi::sbshim_str_append(self.raw, text.as_ptr() as *const c_char) };
    }
}

/// A scrape callback's prototype (`void (*)(struct ast_str **)`).
pub type Scrape = for<'call> extern "C" fn(OutputArg<'call>);

/// A callback registered with res_prometheus, and how to unregister it.
/// [`Registration::unregister`] must run before res_prometheus or this
/// module goes away.
pub struct Registration {
    callback: *mut ffi::prometheus_callback,
    unregister: Unregister,
}

// SAFETY: the pointer is only dereferenced by res_prometheus and freed by us
// after unregistering; moving it between threads is fine.
unsafe impl Send for Registration {}
// SAFETY: no method reads through a shared reference.
unsafe impl Sync for Registration {}

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

/// Registers `scrape` as a Prometheus callback.
pub fn register(scrape: Scrape) -> Result<Registration, Unavailable> {
    if !super::module::is_loaded(c"res_prometheus.so") {
        return Err(Unavailable::NotLoaded);
    }
    let (register, unregister) = (lookup(c"prometheus_callback_register"), lookup(c"prometheus_callback_unregister"));
    if register.is_null() || unregister.is_null() {
        return Err(Unavailable::SymbolsMissing);
    }
    // SAFETY: these are res_prometheus's functions with the prototypes of
    // res_prometheus.h (the header this module is built against).
    let (register, unregister) = unsafe {
        (
            std::mem::transmute::<*mut c_void, Register>(register),
            std::mem::transmute::<*mut c_void, Unregister>(unregister),
        )
    };
    // SAFETY: OutputArg is repr(transparent) over `struct ast_str **`.
    let scrape = unsafe { std::mem::transmute::<Scrape, unsafe extern "C" fn(*mut *mut ffi::ast_str)>(scrape) };
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
    Ok(Registration { callback, unregister })
}

impl Registration {
    /// Unregisters the callback and frees it.
    pub fn unregister(self) {
        // SAFETY: `callback` was registered by `register`; res_prometheus
        // removes it under its own lock, so no scrape uses it afterwards.
        unsafe {
            (self.unregister)(self.callback);
            drop(Box::from_raw(self.callback));
        }
    }
}
