//! The thin, only `unsafe` layer over the Asterisk bindings: it wraps
//! Asterisk (channels, JSON, HTTP, CLI, config, logging, module, Prometheus,
//! sorcery) and nothing else. It imports none of the module's behaviour:
//! where Asterisk needs a callback, the caller passes a function down (the
//! `extern "C"` functions of `crate::entry`).
//!
//! Everything above this module sees safe types: a borrowed [`channel::Channel`]
//! valid for one callback, owned references that unref on `Drop`, strings
//! copied out of Asterisk. Each `unsafe` block states why it holds.
//!
//! Callback arguments arrive as `…Arg<'call>` types: `#[repr(transparent)]`
//! over the raw pointer Asterisk passes, with no constructor outside this
//! layer, so only Asterisk makes them; the `'call` lifetime is the callback's
//! own and everything read through them borrows from it.

pub mod channel;
pub mod cli;
pub mod config;
pub mod json;
pub mod log;
pub mod module;
pub mod prometheus;
pub mod stasis;
// The module-served claim endpoint.
pub mod acl;
pub mod http;
pub mod sorcery;
// Pre-sorcery ARI's own credential check, looked up at run time.
pub mod ari_legacy;
// The claim node in ARI's own REST handler tree.
pub mod ari_tree;
pub mod system;

use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;

/// A C string argument of a callback (possibly NULL), valid for the call.
#[repr(transparent)]
pub struct CStrArg<'call> {
    raw: *const c_char,
    _call: PhantomData<&'call c_char>,
}

impl CStrArg<'_> {
    /// The text, copied; NULL reads as "".
    pub fn text(&self) -> String {
        string_from(self.raw)
    }

    /// The text, borrowed when it is UTF-8 (else copied, invalid bytes
    /// replaced); NULL reads as "".
    pub fn text_borrowed(&self) -> std::borrow::Cow<'_, str> {
        if self.raw.is_null() {
            return std::borrow::Cow::Borrowed("");
        }
        // SAFETY: a NUL-terminated string Asterisk lends for the call, which
        // the result (tied to `self`, whose lifetime is the call's) does not outlive.
        text_of(unsafe { CStr::from_ptr(self.raw) })
    }

    /// Whether it is NULL or "" (without measuring it).
    pub fn is_empty(&self) -> bool {
        // SAFETY: a non-NULL argument is a NUL-terminated string Asterisk
        // lends for the call: its first byte can be read.
        self.raw.is_null() || unsafe { *self.raw } == 0
    }

    /// The bytes (without the NUL); NULL reads as none.
    pub fn bytes(&self) -> &[u8] {
        if self.raw.is_null() {
            return b"";
        }
        // SAFETY: a NUL-terminated string Asterisk lends for the call, which
        // the result (tied to `self`) does not outlive.
        unsafe { CStr::from_ptr(self.raw) }.to_bytes()
    }

    /// The text, copied; NULL stays `None`.
    pub fn optional_text(&self) -> Option<String> {
        optional_string_from(self.raw)
    }
}

/// A C string for Asterisk: interior NULs (which C would truncate at) become '?'.
pub(crate) fn cstring(text: &str) -> CString {
    cstring_of(text.as_bytes())
}

fn cstring_of(text: &[u8]) -> CString {
    // Room for the NUL from the start: one allocation, no regrowth.
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend(text.iter().map(|&byte| if byte == 0 { b'?' } else { byte }));
    CString::new(bytes).unwrap_or_default()
}

/// Calls `f` with `text` as a C string, like [`cstring`] but without an
/// allocation for short text (the usual names, ids and values): it is copied
/// into a buffer on the stack.
pub(crate) fn with_cstr<R>(text: &str, f: impl FnOnce(&CStr) -> R) -> R {
    with_c_bytes(text.as_bytes(), f)
}

/// [`with_cstr`] of bytes (which C takes as they are, UTF-8 or not).
pub(crate) fn with_c_bytes<R>(bytes: &[u8], f: impl FnOnce(&CStr) -> R) -> R {
    // Most ids and names fit the small buffer, which costs little to clear.
    const SHORT: usize = 64;
    const ON_STACK: usize = 256;
    if bytes.len() < SHORT {
        // A short scan in place (memchr's call costs more than it saves).
        #[allow(clippy::manual_contains)]
        if !bytes.iter().any(|&byte| byte == 0) {
            let mut buffer = [0u8; SHORT];
            buffer[..bytes.len()].copy_from_slice(bytes);
            // SAFETY: the copy holds no NUL (checked above) and is followed
            // by one (the buffer was zeroed and is longer than the text).
            return f(unsafe { CStr::from_bytes_with_nul_unchecked(&buffer[..=bytes.len()]) });
        }
    } else if bytes.len() < ON_STACK {
        let mut buffer = [0u8; ON_STACK];
        buffer[..bytes.len()].copy_from_slice(bytes);
        if let Ok(text) = CStr::from_bytes_with_nul(&buffer[..=bytes.len()]) {
            return f(text);
        }
    }
    f(&cstring_of(bytes))
}

/// Copies a C string Asterisk lent us; NULL reads as "".
pub(crate) fn string_from(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: Asterisk hands us NUL-terminated strings that stay valid for the
    // duration of the call we are in; we copy before returning.
    text_of(unsafe { CStr::from_ptr(ptr) }).into_owned()
}

/// Bytes from Asterisk (a name it passed) as text: borrowed when they are
/// UTF-8 (ASCII checked a word at a time, where from_utf8 pays a setup that
/// dominates for short ids and names), else a copy with the invalid bytes
/// replaced.
pub(crate) fn text_of_bytes(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    String::from_utf8_lossy(bytes)
}

/// The text of a C string (see [`text_of_bytes`]).
fn text_of(text: &CStr) -> std::borrow::Cow<'_, str> {
    text_of_bytes(text.to_bytes())
}

/// Like [`string_from`] but keeps NULL distinct from "".
pub(crate) fn optional_string_from(ptr: *const c_char) -> Option<String> {
    (!ptr.is_null()).then(|| string_from(ptr))
}

/// A string allocated with Asterisk's allocator, for APIs whose caller frees
/// it with `ast_free` (such as `stasis_app_broadcast_winner`).
pub(crate) fn asterisk_strdup(text: &str) -> *mut c_char {
    let text = cstring(text);
    // SAFETY: ast_strdup copies the NUL-terminated string; the result (or NULL
    // on allocation failure) is owned by the caller.
    unsafe { crate::ffi::sbshim_strdup(text.as_ptr()) }
}
