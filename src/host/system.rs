//! Facts about the running Asterisk the claim endpoint needs.

use crate::ffi;

/// The version string (`ast_get_version`), e.g. "22.10.1".
pub fn asterisk_version() -> String {
    // SAFETY: returns a static string.
    super::string_from(unsafe { ffi::ast_get_version() })
}

/// Whether Asterisk has finished booting.
pub fn fully_booted() -> bool {
    // SAFETY: reads a flag of Asterisk's global options.
    unsafe { ffi::sbshim_fully_booted() != 0 }
}

/// `ast_crypt_validate`: whether `password` matches the crypt(3) `hash`.
pub fn crypt_matches(password: &[u8], hash: &str) -> bool {
    // A C string cannot hold a NUL: such a password never matches (nor can it in ARI).
    let Ok(password) = std::ffi::CString::new(password) else { return false };
    let hash = super::cstring(hash);
    // SAFETY: two NUL-terminated strings, only read.
    unsafe { ffi::ast_crypt_validate(password.as_ptr(), hash.as_ptr()) != 0 }
}

/// Asterisk's data directory (`astdatadir`), where `rest-api/` lives.
pub fn data_dir() -> String {
    // SAFETY: a string Asterisk sets at startup and keeps for its lifetime.
    super::string_from(unsafe { ffi::sbshim_data_dir() })
}

/// Whether Asterisk's global variable `name` is `value`; if so it is removed
/// (the fault-injection hook of the test build, see `guard`).
#[cfg(feature = "fault-injection")]
pub fn take_global(name: &str, value: &str) -> bool {
    let name = super::cstring(name);
    // SAFETY: with no channel, pbx_builtin_getvar_helper reads the global
    // variables; the value is copied at once.
    let current = super::optional_string_from(unsafe { ffi::pbx_builtin_getvar_helper(std::ptr::null_mut(), name.as_ptr()) });
    if current.as_deref() != Some(value) {
        return false;
    }
    // SAFETY: with no channel and no value, removes the global variable.
    unsafe { ffi::pbx_builtin_setvar_helper(std::ptr::null_mut(), name.as_ptr(), std::ptr::null()) };
    true
}
