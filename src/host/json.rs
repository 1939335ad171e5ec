//! Owned `ast_json` values (unref on Drop) and the ARI pieces events need.

use std::ffi::CStr;
use std::ptr::NonNull;

use crate::ffi;

/// An owned reference to an `ast_json` value. Not `Send`: built and consumed
/// on one thread.
pub struct Json {
    raw: NonNull<ffi::ast_json>,
}

impl Json {
    pub(super) fn from_raw(raw: *mut ffi::ast_json) -> Option<Json> {
        NonNull::new(raw).map(|raw| Json { raw })
    }

    pub fn object() -> Option<Json> {
        // SAFETY: allocates a new object; we own the reference.
        Json::from_raw(unsafe { ffi::ast_json_object_create() })
    }

    pub fn string(value: &str) -> Option<Json> {
        super::with_cstr(value, Json::c_string)
    }

    /// A JSON string of a C string (no copy to make it NUL-terminated first).
    pub fn c_string(value: &CStr) -> Option<Json> {
        // SAFETY: copies the string into a new JSON string we own.
        Json::from_raw(unsafe { ffi::ast_json_string_create(value.as_ptr()) })
    }

    /// The current time in ARI's timestamp format.
    pub fn timestamp_now() -> Option<Json> {
        // SAFETY: new JSON string we own.
        Json::from_raw(unsafe { ffi::sbshim_json_timestamp_now() })
    }

    /// The ARI `Channel` model of the channel's latest snapshot (with ari.conf
    /// `channelvars`), or None if Asterisk has no snapshot for that id.
    pub fn channel_snapshot(unique_id: &str) -> Option<Json> {
        super::with_cstr(unique_id, Json::channel_snapshot_by_cstr)
    }

    /// [`Json::channel_snapshot`] of an id that is C text already.
    pub fn channel_snapshot_by_cstr(unique_id: &CStr) -> Option<Json> {
        // SAFETY: the shim looks up the snapshot, converts it and drops its
        // snapshot reference; the JSON reference is ours.
        Json::from_raw(unsafe { ffi::sbshim_channel_snapshot_json(unique_id.as_ptr()) })
    }

    /// Sets `key` to `value`, transferring our reference to the object.
    pub fn set(&mut self, key: &CStr, value: Json) -> bool {
        let value = std::mem::ManuallyDrop::new(value);
        // SAFETY: ast_json_object_set steals the value reference (also on failure).
        unsafe { ffi::ast_json_object_set(self.raw.as_ptr(), key.as_ptr(), value.raw.as_ptr()) == 0 }
    }

    /// A shallow copy of an object: a new object whose members are the same
    /// values, each with one more reference. Setting a member of the copy
    /// leaves the original alone; the member values themselves are shared.
    pub fn shallow_copy(&self) -> Option<Json> {
        // SAFETY: copies a valid value into a new one we own.
        Json::from_raw(unsafe { ffi::ast_json_copy(self.raw.as_ptr()) })
    }

    /// Whether an object has a member `key` (of any type).
    pub fn has_member(&self, key: &CStr) -> bool {
        // SAFETY: valid value and key; the member is only compared with NULL.
        !unsafe { ffi::ast_json_object_get(self.raw.as_ptr(), key.as_ptr()) }.is_null()
    }

    pub(super) fn as_ptr(&self) -> *mut ffi::ast_json {
        self.raw.as_ptr()
    }
}

impl Drop for Json {
    fn drop(&mut self) {
        // SAFETY: releases the reference this value owns.
        unsafe { ffi::ast_json_unref(self.raw.as_ptr()) };
    }
}

/// Reading request bodies and writing ARI answers (the module-served claim endpoint).
impl Json {
    /// A member of an object: `None` if absent (or `self` is not an object),
    /// `Some(None)` if present but not a string.
    pub fn string_member(&self, key: &str) -> Option<Option<String>> {
        let key = super::cstring(key);
        // SAFETY: valid value and key; the member is borrowed from `self` and
        // only read before returning.
        let member = unsafe { ffi::ast_json_object_get(self.raw.as_ptr(), key.as_ptr()) };
        if member.is_null() {
            return None;
        }
        // SAFETY: `member` is alive (owned by `self`); NULL when not a string.
        Some(super::optional_string_from(unsafe { ffi::ast_json_string_get(member) }))
    }

    /// Parses JSON text with Asterisk's parser; `None` if it is not JSON.
    pub fn parse(text: &str) -> Option<Json> {
        let text = super::cstring(text);
        // SAFETY: NUL-terminated input, only read; NULL error report allowed;
        // the value returned is ours.
        Json::from_raw(unsafe { ffi::ast_json_load_string(text.as_ptr(), std::ptr::null_mut()) })
    }

    /// The text of this value in compact form.
    pub fn compact(&self) -> Option<String> {
        self.dump(ffi::ast_json_encoding_format_AST_JSON_COMPACT)
    }

    /// The text of this value in `format`.
    pub fn dump(&self, format: ffi::ast_json_encoding_format) -> Option<String> {
        // SAFETY: encodes a valid value; the result is ours to free with ast_json_free.
        let text = unsafe { ffi::ast_json_dump_string_format(self.raw.as_ptr(), format) };
        if text.is_null() {
            return None;
        }
        let copy = super::string_from(text);
        // SAFETY: allocated by ast_json_dump_string_format, not used after this.
        unsafe { ffi::ast_json_free(text.cast()) };
        Some(copy)
    }
}
