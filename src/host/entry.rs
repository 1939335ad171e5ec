//! Every function Asterisk calls into this module. Each one converts its raw
//! arguments to safe types and runs the safe code through the panic guard,
//! which turns a panic into the function's failure value.

use std::ffi::{c_char, c_int, c_uint};

use super::channel::Channel;
use super::module::OptionalFunction;
use crate::guard::guarded;
use crate::{app, claim, ffi, lifecycle};

#[no_mangle]
pub extern "C" fn load_module() -> c_int {
    guarded("load_module", ffi::AST_MODULE_LOAD_DECLINE, lifecycle::load)
}

#[no_mangle]
pub extern "C" fn unload_module() -> c_int {
    guarded("unload_module", -1, lifecycle::unload)
}

#[no_mangle]
pub extern "C" fn reload_module() -> c_int {
    guarded("reload_module", ffi::AST_MODULE_LOAD_DECLINE, lifecycle::reload)
}

/// The StasisBroadcast() application.
pub unsafe extern "C" fn stasis_broadcast_exec(chan: *mut ffi::ast_channel, data: *const c_char) -> c_int {
    // SAFETY: Asterisk runs the application on `chan`'s PBX thread, holding it for the call.
    let Some(channel) = (unsafe { Channel::from_raw(chan) }) else { return app::HANG_UP };
    let data = super::string_from(data);
    guarded("StasisBroadcast", None, || Some(app::execute(&channel, &data))).unwrap_or_else(|| {
        app::after_panic(&channel);
        app::HANG_UP
    })
}

unsafe extern "C" fn api_broadcast_channel(
    chan: *mut ffi::ast_channel,
    timeout_ms: c_int,
    app_filter: *const c_char,
    flags: c_uint,
) -> c_int {
    // SAFETY: the optional-API caller passes a channel it holds for the call.
    let Some(channel) = (unsafe { Channel::from_raw(chan) }) else { return -1 };
    let filter = super::optional_string_from(app_filter);
    guarded("stasis_app_broadcast_channel", -1, || {
        app::api_broadcast_channel(&channel, timeout_ms, filter.as_deref(), flags)
    })
}

/// -3: not one of the documented results, so res_ari_events answers 500.
const CLAIM_INTERNAL_ERROR: c_int = -3;

unsafe extern "C" fn api_claim_channel(channel_id: *const c_char, app_name: *const c_char) -> c_int {
    let channel_id = super::string_from(channel_id);
    let application = super::string_from(app_name);
    guarded("stasis_app_claim_channel", CLAIM_INTERNAL_ERROR, || {
        #[cfg(feature = "fault-injection")]
        if application == "inject-panic" {
            panic!("fault injection: claim of {channel_id} asked to panic");
        }
        claim::claim(&channel_id, &application).code()
    })
}

unsafe extern "C" fn api_broadcast_winner(channel_id: *const c_char) -> *mut c_char {
    let channel_id = super::string_from(channel_id);
    guarded("stasis_app_broadcast_winner", std::ptr::null_mut(), || {
        app::REGISTRY
            .settle_by_id(&channel_id)
            .map_or(std::ptr::null_mut(), |winner| super::asterisk_strdup(&winner))
    })
}

unsafe extern "C" fn api_broadcast_wait(chan: *mut ffi::ast_channel, timeout_ms: c_int) -> c_int {
    // SAFETY: as for api_broadcast_channel.
    let Some(channel) = (unsafe { Channel::from_raw(chan) }) else { return -1 };
    guarded("stasis_app_broadcast_wait", -1, || app::api_wait(&channel, timeout_ms))
}

unsafe extern "C" fn api_broadcast_cleanup(channel_id: *const c_char) {
    let channel_id = super::string_from(channel_id);
    guarded("stasis_app_broadcast_cleanup", (), || app::api_cleanup(&channel_id));
}

/// Destroy callback of the channel datastore that ties an optional-API
/// broadcast to its channel (src/shim.c).
#[no_mangle]
pub unsafe extern "C" fn sbrs_broadcast_datastore_destroy(data: *mut std::ffi::c_void) {
    // SAFETY: Asterisk passes the datastore's data, set by Channel::on_destroy, once.
    guarded("broadcast datastore destroy", (), || unsafe { super::channel::destroy_hook(data) });
}

/// The five functions of stasis_app_broadcast.h, under the names its users look up.
pub fn optional_functions() -> [OptionalFunction; 5] {
    // SAFETY (all five): Asterisk's optional API stores every function as
    // `void (*)(void)`; each user casts it back to the prototype the header
    // declares for that name, which is the prototype of the function given here.
    unsafe {
        [
            OptionalFunction {
                name: c"stasis_app_broadcast_channel",
                address: std::mem::transmute::<
                    unsafe extern "C" fn(*mut ffi::ast_channel, c_int, *const c_char, c_uint) -> c_int,
                    unsafe extern "C" fn(),
                >(api_broadcast_channel),
            },
            OptionalFunction {
                name: c"stasis_app_claim_channel",
                address: std::mem::transmute::<
                    unsafe extern "C" fn(*const c_char, *const c_char) -> c_int,
                    unsafe extern "C" fn(),
                >(api_claim_channel),
            },
            OptionalFunction {
                name: c"stasis_app_broadcast_winner",
                address: std::mem::transmute::<
                    unsafe extern "C" fn(*const c_char) -> *mut c_char,
                    unsafe extern "C" fn(),
                >(api_broadcast_winner),
            },
            OptionalFunction {
                name: c"stasis_app_broadcast_wait",
                address: std::mem::transmute::<
                    unsafe extern "C" fn(*mut ffi::ast_channel, c_int) -> c_int,
                    unsafe extern "C" fn(),
                >(api_broadcast_wait),
            },
            OptionalFunction {
                name: c"stasis_app_broadcast_cleanup",
                address: std::mem::transmute::<unsafe extern "C" fn(*const c_char), unsafe extern "C" fn()>(
                    api_broadcast_cleanup,
                ),
            },
        ]
    }
}
