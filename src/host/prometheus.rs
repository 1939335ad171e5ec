//! Asterisk's Prometheus support (res_prometheus), reached at run time.
//!
//! The module must load and work where res_prometheus is absent, so it has
//! no link-time reference to it: the two functions used are looked up with
//! `dlsym` when res_prometheus is running (it exports its symbols globally).

use std::ffi::{c_char, c_void, CStr};
use std::marker::PhantomData;

use crate::ffi;

type Register = unsafe extern "C" fn(*mut ffi::prometheus_callback) -> i32;
type Unregister = unsafe extern "C" fn(*mut ffi::prometheus_callback);
type Provide = unsafe extern "C" fn(*const ffi::prometheus_metrics_provider);

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

/// What res_prometheus calls from its unload_module, before it frees its
/// callback list: the registration must then be forgotten, not unregistered.
pub type Unloading = extern "C" fn();

/// A callback registered with res_prometheus, and how to unregister it.
///
/// How this follows res_prometheus (Asterisk's loader, main/loader.c):
/// - There is no public way to take a reference on another module: the
///   `struct ast_module *` of res_prometheus is only returned by its
///   `__internal_res_prometheus_self`, which res_prometheus.exports.in keeps
///   local, and `ast_module_ref` needs that pointer. So `module unload
///   res_prometheus.so` cannot be refused; this module learns of it instead.
/// - With the registration comes a `prometheus_metrics_provider` whose
///   `unload_cb` res_prometheus's unload_module calls (under its scrape lock,
///   before it frees the callback list and before the loader dlcloses it):
///   the registration is then forgotten, so no pointer into res_prometheus
///   is kept once it may go. A loader updater (`ast_loader_register`) would
///   be too late: `ast_update_use_count` runs after the dlclose.
/// - Registering and unregistering run inside [`with_running`], under the
///   loader's module-list lock, as does every module's unload (and load and
///   reload): res_prometheus cannot start unloading in between, and a
///   res_prometheus that is present but declined (no prometheus.conf) is not
///   "Running" and is left alone.
/// - res_prometheus has no provider unregister: a provider stays in its list
///   until it unloads. Ours is allocated on the heap (it outlives this
///   module's image) and its `unload_cb` is cleared when this module
///   unregisters, so res_prometheus never calls into an unloaded module.
///   Each registration leaks that one small struct.
pub struct Registration {
    callback: *mut ffi::prometheus_callback,
    provider: *mut ffi::prometheus_metrics_provider,
    unregister: Unregister,
}

// SAFETY: the pointers are only dereferenced by res_prometheus and by us
// under the module-list lock; moving them between threads is fine.
unsafe impl Send for Registration {}
// SAFETY: no method reads through a shared reference.
unsafe impl Sync for Registration {}

/// Why metrics are not registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    NotRunning,
    SymbolsMissing,
    Refused,
}

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

extern "C" fn run_closure<F: FnMut()>(data: *mut c_void) {
    // SAFETY: `data` is the `&mut F` given by `with_running`, alive for this call.
    let body = unsafe { &mut *(data as *mut F) };
    // A panic must not unwind into the loader; the closures below do not panic.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
}

/// Runs `body` if res_prometheus is running, with the loader's module list
/// locked so that it cannot begin to unload meanwhile. Takes Asterisk's
/// module-list lock: for load, reload and unload only.
fn with_running<F: FnMut()>(mut body: F) -> bool {
    // SAFETY: the name is NUL-terminated; `run_closure::<F>` is given a
    // pointer to `body`, which outlives the call.
    unsafe {
        ffi::sbshim_with_running_module(
            c"res_prometheus.so".as_ptr(),
            Some(run_closure::<F>),
            &mut body as *mut F as *mut c_void,
        ) != 0
    }
}

/// Registers `scrape` as a Prometheus callback, and `unloading` to hear
/// that res_prometheus goes.
pub fn register(scrape: Scrape, unloading: Unloading) -> Result<Registration, Unavailable> {
    let mut outcome = Err(Unavailable::NotRunning);
    with_running(|| outcome = register_running(scrape, unloading));
    outcome
}

/// Under the module-list lock, res_prometheus running.
fn register_running(scrape: Scrape, unloading: Unloading) -> Result<Registration, Unavailable> {
    let (register, unregister, provide) = (
        lookup(c"prometheus_callback_register"),
        lookup(c"prometheus_callback_unregister"),
        lookup(c"prometheus_metrics_provider_register"),
    );
    if register.is_null() || unregister.is_null() || provide.is_null() {
        return Err(Unavailable::SymbolsMissing);
    }
    // SAFETY: these are res_prometheus's functions with the prototypes of
    // res_prometheus.h (the header this module is built against).
    let (register, unregister, provide) = unsafe {
        (
            std::mem::transmute::<*mut c_void, Register>(register),
            std::mem::transmute::<*mut c_void, Unregister>(unregister),
            std::mem::transmute::<*mut c_void, Provide>(provide),
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
    // Heap memory, not this module's image: res_prometheus keeps the pointer
    // until it unloads, which may be after this module has.
    let name = std::ffi::CString::from(c"res_stasis_broadcast_rs").into_raw();
    // SAFETY: Unloading is `extern "C" fn()`, the prototype of `unload_cb`.
    let unload_cb = unsafe { std::mem::transmute::<Unloading, unsafe extern "C" fn()>(unloading) };
    let provider = Box::into_raw(Box::new(ffi::prometheus_metrics_provider {
        name,
        reload_cb: None,
        unload_cb: Some(unload_cb),
    }));
    // SAFETY: `provider` is never freed; its callback is cleared before this
    // module unloads.
    unsafe { provide(provider) };
    Ok(Registration { callback, provider, unregister })
}

impl Registration {
    /// Unregisters the callback and frees it (if res_prometheus is still
    /// running; if not, its unload has already been heard and this is
    /// [`Registration::forget`]).
    pub fn unregister(self) {
        let mut registration = Some(self);
        with_running(|| {
            if let Some(registration) = registration.take() {
                // SAFETY: res_prometheus is running and cannot unload while the
                // module list is locked; `callback` was registered by
                // `register`, and is removed under res_prometheus's scrape
                // lock, so no scrape uses it afterwards. Clearing `unload_cb`
                // keeps res_prometheus from calling into this module later.
                unsafe {
                    (*registration.provider).unload_cb = None;
                    (registration.unregister)(registration.callback);
                    drop(Box::from_raw(registration.callback));
                }
            }
        });
        if let Some(registration) = registration {
            registration.forget();
        }
    }

    /// res_prometheus is unloading (or gone): drop our pointers into it
    /// without calling it. Its scrape lock is held and its HTTP handler
    /// unlinked, so no scrape can be using the callback.
    pub fn forget(self) {
        // SAFETY: the callback was ours; res_prometheus frees its list, not
        // the entries, and uses none of them again.
        drop(unsafe { Box::from_raw(self.callback) });
    }
}
