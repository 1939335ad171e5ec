//! Owned `ast_json` values (unref on Drop) and the ARI pieces events need.

use std::ptr::NonNull;

use crate::ffi;

/// An owned reference to an `ast_json` value. Not `Send`: built and consumed
/// on one thread.
pub struct Json {
    raw: NonNull<ffi::ast_json>,
}

impl Json {
    fn from_raw(raw: *mut ffi::ast_json) -> Option<Json> {
        NonNull::new(raw).map(|raw| Json { raw })
    }

    pub fn object() -> Option<Json> {
        // SAFETY: allocates a new object; we own the reference.
        Json::from_raw(unsafe { ffi::ast_json_object_create() })
    }

    pub fn string(value: &str) -> Option<Json> {
        let value = super::cstring(value);
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
        let unique_id = super::cstring(unique_id);
        // SAFETY: the shim looks up the snapshot, converts it and drops its
        // snapshot reference; the JSON reference is ours.
        Json::from_raw(unsafe { ffi::sbshim_channel_snapshot_json(unique_id.as_ptr()) })
    }

    /// Sets `key` to `value`, transferring our reference to the object.
    pub fn set(&mut self, key: &str, value: Json) -> bool {
        let key = super::cstring(key);
        let value = std::mem::ManuallyDrop::new(value);
        // SAFETY: ast_json_object_set steals the value reference (also on failure).
        unsafe { ffi::ast_json_object_set(self.raw.as_ptr(), key.as_ptr(), value.raw.as_ptr()) == 0 }
    }

    /// A deep copy: `stasis_app_send` adds fields to the message it is given,
    /// so each application gets its own.
    pub fn deep_copy(&self) -> Option<Json> {
        // SAFETY: copies a valid value into a new one we own.
        Json::from_raw(unsafe { ffi::ast_json_deep_copy(self.raw.as_ptr()) })
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
