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
