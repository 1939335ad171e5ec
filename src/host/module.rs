//! This module's identity in Asterisk: use count, other modules, optional API.

use std::ffi::CStr;

use crate::ffi;

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

/// Whether Asterisk has the module `name` (e.g. "res_stasis_broadcast.so") loaded.
pub fn is_loaded(name: &CStr) -> bool {
    // SAFETY: NUL-terminated name; ast_module_check only reads it.
    unsafe { ffi::ast_module_check(name.as_ptr()) != 0 }
}

/// A function offered to other modules through Asterisk's optional API.
#[derive(Clone, Copy)]
pub struct OptionalFunction {
    pub name: &'static CStr,
    pub address: unsafe extern "C" fn(),
}

/// `ast_optional_api_provide` for each function: modules built against
/// `stasis_app_broadcast.h` (res_ari_events) start calling ours.
pub fn provide(functions: &[OptionalFunction]) {
    for function in functions {
        // SAFETY: the name is a static C string; the address is a function of
        // this module with the prototype the header declares for that name
        // (see `entry`), valid until `unprovide` runs at unload.
        unsafe { ffi::sbshim_optional_api_provide(function.name.as_ptr(), Some(function.address)) };
    }
}

/// `ast_optional_api_unprovide`: users fall back to the header's stub.
pub fn unprovide(functions: &[OptionalFunction]) {
    for function in functions {
        // SAFETY: same name/address pair as given to `provide`.
        unsafe { ffi::sbshim_optional_api_unprovide(function.name.as_ptr(), Some(function.address)) };
    }
}

/// Registers a dialplan application whose documentation comes from XML.
pub fn register_application(
    name: &'static CStr,
    execute: unsafe extern "C" fn(*mut ffi::ast_channel, *const std::ffi::c_char) -> i32,
) -> bool {
    // SAFETY: static name; the callback is a guarded entry point of this module.
    unsafe { ffi::sbshim_register_application(name.as_ptr(), Some(execute)) == 0 }
}

pub fn unregister_application(name: &'static CStr) -> bool {
    // SAFETY: static name given to register_application.
    unsafe { ffi::ast_unregister_application(name.as_ptr()) == 0 }
}
