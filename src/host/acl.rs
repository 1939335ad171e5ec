//! Asterisk ACL lists (`permit`/`deny`/`acl` lines), compiled with the same
//! functions ARI uses and applied to an HTTP request's peer.

use std::ffi::c_int;

use super::http::HttpRequest;
use crate::ari_types::AclRule;
use crate::ffi;

/// What ARI passes as the purpose of a user ACL check (it appears in
/// Asterisk's log when the check refuses a peer).
const PURPOSE: &std::ffi::CStr = c"ARI User ACL";

/// An owned `ast_acl_list`; NULL when the user has no rules.
pub struct Acl {
    raw: *mut ffi::ast_acl_list,
}

// SAFETY: an ast_acl_list carries its own lock, which ast_apply_acl takes;
// nothing here mutates it after compilation, and it is freed once, on Drop.
unsafe impl Send for Acl {}
// SAFETY: as above.
unsafe impl Sync for Acl {}

impl Acl {
    /// Compiles `rules` in order with `ast_append_acl`; a rule Asterisk
    /// refuses (bad address, unknown named ACL) is an error, as for ARI.
    pub fn compile(rules: &[AclRule]) -> Result<Acl, String> {
        let mut acl = Acl { raw: std::ptr::null_mut() };
        for rule in rules {
            let sense = super::cstring(&rule.sense);
            let value = super::cstring(&rule.value);
            let mut error: c_int = 0;
            let mut named: c_int = 0;
            // SAFETY: NUL-terminated strings; `acl.raw` is NULL or a list made
            // by earlier calls, which ast_append_acl extends in place.
            unsafe { ffi::ast_append_acl(sense.as_ptr(), value.as_ptr(), &mut acl.raw, &mut error, &mut named) };
            if error != 0 {
                return Err(format!("bad ACL '{}={}'", rule.sense, rule.value));
            }
        }
        Ok(acl)
    }

    /// Whether the request's peer passes (no rules: it does).
    pub fn allows(&self, request: &HttpRequest<'_>) -> bool {
        if self.raw.is_null() {
            return true;
        }
        // SAFETY: a live list; the address belongs to the request's session.
        unsafe {
            ffi::ast_acl_list_is_empty(self.raw) != 0
                || ffi::ast_apply_acl(self.raw, request.remote_address(), PURPOSE.as_ptr())
                    != ffi::ast_acl_sense_AST_SENSE_DENY
        }
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: the list is ours and no longer used.
            unsafe { ffi::ast_free_acl_list(self.raw) };
        }
    }
}
