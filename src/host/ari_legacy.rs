//! ARI's own verdict on credentials, on Asterisk versions whose ARI keeps its
//! configuration outside sorcery (20.0–20.14, 21.0–21.9, 22.0–22.4).
//!
//! There res_ari exports `ast_ari_config_validate_user` and
//! `ast_ari_config_get` (its module is loaded with global symbols). The
//! module looks them up at run time with `dlsym`, so the claim endpoint
//! accepts exactly the passwords ARI accepts at that moment, including right
//! after `module reload res_ari.so`. Sorcery-based ARI (20.15+, 21.10+,
//! 22.5+, 23+) has neither symbol (its functions are renamed and local), so
//! finding them also tells which ARI this is.
//!
//! # The private layouts
//!
//! Whether ARI accepted the credentials is the returned pointer being
//! non-NULL: that needs no layout. `read_only`, `enabled` and `auth_realm`
//! are fields of structs declared in `res/ari/internal.h`, which Asterisk
//! does not install. The `#[repr(C)]` mirrors below were compared with that
//! header in every release of those branches (20.0.0–20.14.1, 21.0.0–21.9.1,
//! 22.0.0–22.4.1): `ast_ari_conf` and `ast_ari_conf_user` never changed;
//! `ast_ari_conf_general` only grew `auth_realm` from 80 to 256 bytes (20.6.0,
//! 21.1.0), which moves nothing read here (the realm is read up to its NUL,
//! which ARI always writes inside the array). Only the leading fields are
//! read: nothing after `auth_realm`, whose offset differs between the two.
//!
//! Every read is checked against what ARI can have written (its booleans are
//! `ast_true`'s 0/-1, the enums' small values, the user's name equal to the
//! one asked for, a plain password equal to the one ARI just compared); a
//! value that fails is reported as [`Unverified`] and not used.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::offset_of;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::ffi;

/// `ARI_PASSWORD_LEN` in every release that has these functions.
const PASSWORD_LEN: usize = 256;
/// The longest `auth_realm` array (`ARI_AUTH_REALM_LEN`: 80 before 20.6.0 and
/// 21.1.0, 256 since); ARI's string in it always ends inside the array.
const REALM_MAX: usize = 256;

/// `struct ast_ari_conf` (an ao2 object).
#[repr(C)]
struct RawConf {
    general: *const RawGeneralHead,
    users: *const c_void,
}

/// The fields of `struct ast_ari_conf_general` up to the realm's first byte.
#[repr(C)]
struct RawGeneralHead {
    enabled: c_int,
    write_timeout: c_int,
    format: c_int,
    auth_realm: [c_char; 1],
}

/// `struct ast_ari_conf_user` (an ao2 object).
#[repr(C)]
struct RawUser {
    username: *const c_char,
    password: [c_char; PASSWORD_LEN],
    password_format: c_int,
    read_only: c_int,
}

type ValidateUser = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut RawUser;
type ConfigGet = unsafe extern "C" fn() -> *mut RawConf;

static VALIDATE_USER: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static CONFIG_GET: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// A value read from ARI's private struct that did not pass its check; the
/// text says which.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified(pub String);

/// `[general]` as ARI holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct General {
    pub enabled: bool,
    pub auth_realm: String,
}

/// What ARI said about a user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Refused,
    /// Accepted; `read_only` as ARI holds it, or why it could not be read.
    Accepted { read_only: Result<bool, Unverified> },
}

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Looks the functions up; true if this ARI has them. The module requires
/// res_ari, so they stay mapped until [`forget`] runs at the module's unload.
pub fn find() -> bool {
    let (validate, get) = (lookup(c"ast_ari_config_validate_user"), lookup(c"ast_ari_config_get"));
    let found = !validate.is_null() && !get.is_null();
    let (validate, get) = if found { (validate, get) } else { (std::ptr::null_mut(), std::ptr::null_mut()) };
    VALIDATE_USER.store(validate, Ordering::SeqCst);
    CONFIG_GET.store(get, Ordering::SeqCst);
    found
}

/// Drops the looked-up functions (at unload: res_ari may go after us).
pub fn forget() {
    VALIDATE_USER.store(std::ptr::null_mut(), Ordering::SeqCst);
    CONFIG_GET.store(std::ptr::null_mut(), Ordering::SeqCst);
}

pub fn is_available() -> bool {
    !VALIDATE_USER.load(Ordering::SeqCst).is_null() && !CONFIG_GET.load(Ordering::SeqCst).is_null()
}

fn config_get() -> Option<ConfigGet> {
    let raw = CONFIG_GET.load(Ordering::SeqCst);
    // SAFETY: only ever res_ari's `ast_ari_config_get`, whose prototype
    // (internal.h) is `struct ast_ari_conf *(void)`.
    (!raw.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, ConfigGet>(raw) })
}

fn validate_user() -> Option<ValidateUser> {
    let raw = VALIDATE_USER.load(Ordering::SeqCst);
    // SAFETY: only ever res_ari's `ast_ari_config_validate_user`, prototype
    // `struct ast_ari_conf_user *(const char *, const char *)`.
    (!raw.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, ValidateUser>(raw) })
}

/// `ast_true`/`ast_false` as aco stores them (0 or -1); 1 is taken too.
fn boolean(value: c_int) -> Option<bool> {
    match value {
        0 => Some(false),
        -1 | 1 => Some(true),
        _ => None,
    }
}

/// ARI's `[general]` now: `None` if this ARI is not the pre-sorcery one;
/// `Some(Ok(None))` if ARI has no configuration (it then answers 500).
pub fn general() -> Option<Result<Option<General>, Unverified>> {
    let get = config_get()?;
    // SAFETY: ast_ari_config_get takes no argument and returns a new
    // reference (or NULL), given back below.
    let conf = unsafe { get() };
    if conf.is_null() {
        return Some(Ok(None));
    }
    // SAFETY: `conf` is a live ast_ari_conf we hold a reference to; its
    // `general` is an ao2 object it owns, alive as long as `conf`.
    let read = unsafe { read_general((*conf).general) };
    // SAFETY: gives back the reference ast_ari_config_get returned.
    unsafe { ffi::sbshim_ao2_cleanup(conf.cast()) };
    Some(read)
}

/// # Safety
/// `general` is NULL or points to a live `ast_ari_conf_general`.
unsafe fn read_general(general: *const RawGeneralHead) -> Result<Option<General>, Unverified> {
    if general.is_null() {
        return Ok(None);
    }
    // SAFETY: the leading ints of a live struct (caller's contract).
    let (enabled, write_timeout, format) =
        unsafe { ((*general).enabled, (*general).write_timeout, (*general).format) };
    let enabled = boolean(enabled).ok_or_else(|| Unverified(format!("ARI general 'enabled' reads {enabled}")))?;
    if write_timeout < 1 {
        return Err(Unverified(format!("ARI general 'websocket_write_timeout' reads {write_timeout}")));
    }
    if !(0..=1).contains(&format) {
        return Err(Unverified(format!("ARI general JSON format reads {format}")));
    }
    // SAFETY: the realm array starts at this field; ARI's string ends with a
    // NUL inside the array (80 or 256 bytes), and reading stops there.
    let realm = unsafe { bounded_string(general.cast::<u8>().add(offset_of!(RawGeneralHead, auth_realm)), REALM_MAX) }
        .ok_or_else(|| Unverified("ARI general 'auth_realm' has no end".into()))?;
    Ok(Some(General { enabled, auth_realm: String::from_utf8_lossy(&realm).into_owned() }))
}

/// The bytes before the first NUL within `max` bytes; `None` if there is none.
///
/// # Safety
/// `start` points to at least `max` readable bytes, or to a NUL-terminated
/// string shorter than `max`.
unsafe fn bounded_string(start: *const u8, max: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    for offset in 0..max {
        // SAFETY: within the string or the `max` bytes (caller's contract);
        // reading stops at the first NUL.
        let byte = unsafe { *start.add(offset) };
        if byte == 0 {
            return Some(bytes);
        }
        bytes.push(byte);
    }
    None
}

/// Asks ARI whether `user`/`password` are good: `None` if this ARI is not
/// the pre-sorcery one. A NUL in either never matches (C could not hold it).
pub fn validate(user: &[u8], password: &[u8]) -> Option<Verdict> {
    let validate = validate_user()?;
    let (Ok(c_user), Ok(c_password)) = (CString::new(user), CString::new(password)) else {
        return Some(Verdict::Refused);
    };
    // SAFETY: two NUL-terminated strings, only read; the result is a new
    // reference (or NULL), given back below.
    let found = unsafe { validate(c_user.as_ptr(), c_password.as_ptr()) };
    if found.is_null() {
        return Some(Verdict::Refused);
    }
    // SAFETY: `found` is a live ast_ari_conf_user we hold a reference to.
    let read_only = unsafe { read_user(found, user, password) };
    // SAFETY: gives back the reference ast_ari_config_validate_user returned.
    unsafe { ffi::sbshim_ao2_cleanup(found.cast()) };
    Some(Verdict::Accepted { read_only })
}

/// `read_only` of a user ARI just accepted for `user`/`password`, after
/// checking the fields before it hold what ARI compared.
///
/// # Safety
/// `found` points to a live `ast_ari_conf_user`.
unsafe fn read_user(found: *const RawUser, user: &[u8], password: &[u8]) -> Result<bool, Unverified> {
    // SAFETY: fields of a live struct (caller's contract).
    let (name, format, read_only) = unsafe { ((*found).username, (*found).password_format, (*found).read_only) };
    if name.is_null() {
        return Err(Unverified("ARI user has no name".into()));
    }
    // SAFETY: ARI's own NUL-terminated copy of the section name.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    // ARI finds users with strcasecmp.
    if !name.eq_ignore_ascii_case(user) {
        return Err(Unverified("ARI user's name is not the one asked for".into()));
    }
    match format {
        // Plain: ARI just found the stored password equal to this one.
        0 => {
            // SAFETY: the array is PASSWORD_LEN bytes; ARI's copy ends inside it.
            let stored = unsafe { bounded_string(found.cast::<u8>().add(offset_of!(RawUser, password)), PASSWORD_LEN) };
            if stored.as_deref() != Some(password) {
                return Err(Unverified("ARI user's plain password is not the one it accepted".into()));
            }
        }
        1 => {}
        other => return Err(Unverified(format!("ARI user's password format reads {other}"))),
    }
    boolean(read_only).ok_or_else(|| Unverified(format!("ARI user's 'read_only' reads {read_only}")))
}
