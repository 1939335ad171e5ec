//! Every function Asterisk calls into this module, in one place: open this
//! file first.
//!
//! Each is a few lines: it takes the module's state through the one
//! accessor ([`state::get`], `None` once unload has begun), reads its
//! arguments through the host layer's safe argument types, and runs the safe
//! code under the panic guard, which turns a panic into the function's
//! failure value. The host layer never calls up into the module: what it
//! registers with Asterisk, it gets from [`callbacks`] here.

use std::ffi::{c_int, c_uint};

use crate::broadcast::registry::ClaimOutcome;
use crate::endpoint::{self, Handlers};
use crate::guard::{self, guarded};
use crate::host::ari_tree::{self, BodyArg, ResponseArg, RestRequest};
use crate::host::channel::{ChannelArg, ConditionArg, TieArg};
use crate::host::cli::{self as host_cli, ArgsArg, CliAnswer, EntryArg};
use crate::host::http::{self, HttpRequest, SessionArg, UriArg, VariablesArg};
use crate::host::module::{self, AsteriskString, OptionalFunction};
use crate::host::prometheus::OutputArg;
use crate::host::sorcery::SorceryArg;
use crate::host::CStrArg;
use crate::state::{self, Callbacks, ModuleState};
use crate::{app, claim, cli, ffi, lifecycle, metrics};

/// What the module registers with Asterisk: these functions.
fn callbacks() -> Callbacks {
    Callbacks {
        application: stasis_broadcast_exec,
        optional_api: [
            OptionalFunction::broadcast_channel(api_broadcast_channel),
            OptionalFunction::claim_channel(api_claim_channel),
            OptionalFunction::broadcast_winner(api_broadcast_winner),
            OptionalFunction::broadcast_wait(api_broadcast_wait),
            OptionalFunction::broadcast_cleanup(api_broadcast_cleanup),
        ],
        cli: cli_handler,
        scrape: prometheus_scrape,
        prometheus_unloading,
        sleep_condition,
        endpoint: Handlers { tree_claim: claim_rest, claim: claim_http, docs: docs_http, ari_observer: ari_config_loaded },
    }
}

// ------------------------------------------------------------ module

#[no_mangle]
pub extern "C" fn load_module() -> c_int {
    // Before the guard: a panic anywhere in load is logged through Asterisk.
    guard::install_panic_hook();
    let loaded = guarded("load_module", ffi::AST_MODULE_LOAD_DECLINE, || lifecycle::load(callbacks()));
    if loaded != ffi::AST_MODULE_LOAD_SUCCESS {
        guard::remove_panic_hook();
    }
    loaded
}

#[no_mangle]
pub extern "C" fn unload_module() -> c_int {
    guarded("unload_module", -1, lifecycle::unload)
}

#[no_mangle]
pub extern "C" fn reload_module() -> c_int {
    guarded("reload_module", ffi::AST_MODULE_LOAD_DECLINE, lifecycle::reload)
}

// ------------------------------------------------------------ dialplan

/// The StasisBroadcast() application. A module that is unloading leaves the
/// call to the dialplan (`STASISSTATUS=FAILED`); a panic hangs it up.
extern "C" fn stasis_broadcast_exec(chan: ChannelArg<'_>, data: CStrArg<'_>) -> c_int {
    let _call = module::call_inside();
    let Some(channel) = chan.channel() else { return app::HANG_UP };
    let data = data.text_borrowed();
    let executed = guarded("StasisBroadcast", None, || {
        Some(match state::get() {
            Some(state) => app::execute(&state, &channel, &data),
            None => app::while_unloading(&channel),
        })
    });
    executed.unwrap_or_else(|| {
        app::after_panic(&channel);
        app::HANG_UP
    })
}

/// Asked by Asterisk while a channel waits for a claim: non-zero keeps waiting.
extern "C" fn sleep_condition(arg: ConditionArg<'_>) -> c_int {
    guarded("sleep condition", 0, || c_int::from(!arg.done()))
}

// ------------------------------------------------------------ optional API (stasis_app_broadcast.h)
//
// Asterisk's optional API holds no module reference for its users: each
// function counts itself in flight first thing (`module::call_inside`), and
// unload waits until none is inside once it has withdrawn them.

extern "C" fn api_broadcast_channel(
    chan: ChannelArg<'_>,
    timeout_ms: c_int,
    app_filter: CStrArg<'_>,
    flags: c_uint,
) -> c_int {
    let _call = module::call_inside();
    let Some(channel) = chan.channel() else { return -1 };
    let filter = app_filter.optional_text();
    guarded("stasis_app_broadcast_channel", -1, || {
        let Some(state) = state::get() else { return -1 };
        app::api_broadcast_channel(&state, &channel, timeout_ms, filter.as_deref(), flags)
    })
}

/// -3: not one of the documented results, so res_ari_events answers 500.
const CLAIM_INTERNAL_ERROR: c_int = -3;

extern "C" fn api_claim_channel(channel_id: CStrArg<'_>, app_name: CStrArg<'_>) -> c_int {
    let _call = module::call_inside();
    let channel_id = channel_id.bytes();
    guarded("stasis_app_claim_channel", CLAIM_INTERNAL_ERROR, || {
        let Some(state) = state::get() else { return ClaimOutcome::NotFound.code() };
        claim::claim(&state, channel_id, app_name).code()
    })
}

extern "C" fn api_broadcast_winner(channel_id: CStrArg<'_>) -> AsteriskString {
    let _call = module::call_inside();
    let channel_id = channel_id.text();
    guarded("stasis_app_broadcast_winner", AsteriskString::none(), || {
        let winner = state::get().and_then(|state| app::api_winner(&state, &channel_id));
        winner.map_or_else(AsteriskString::none, |winner| AsteriskString::copy_of(&winner))
    })
}

extern "C" fn api_broadcast_wait(chan: ChannelArg<'_>, timeout_ms: c_int) -> c_int {
    let _call = module::call_inside();
    let Some(channel) = chan.channel() else { return -1 };
    guarded("stasis_app_broadcast_wait", -1, || {
        let Some(state) = state::get() else { return -1 };
        app::api_wait(&state, &channel, timeout_ms)
    })
}

extern "C" fn api_broadcast_cleanup(channel_id: CStrArg<'_>) {
    let _call = module::call_inside();
    let channel_id = channel_id.text();
    guarded("stasis_app_broadcast_cleanup", (), || {
        if let Some(state) = state::get() {
            app::api_cleanup(&state, &channel_id);
        }
    });
}

/// Destroy callback of the channel datastore that ties an optional-API
/// broadcast to its channel (`src/shim.c`): the channel is gone, or
/// `stasis_app_broadcast_cleanup` detached it. The datastore holds a
/// reference to this module until after this returns. The payload reaches
/// the state by itself (see `app::channel_gone`), also during an unload.
#[no_mangle]
pub extern "C" fn sbrs_broadcast_datastore_destroy(data: TieArg) {
    guarded("broadcast datastore destroy", (), || {
        if let Some(payload) = data.take() {
            app::channel_gone(payload);
        }
    });
}

// ------------------------------------------------------------ ARI's REST handler tree

/// `POST /ari/events/claim` as ARI routes it to the module's node, over HTTP
/// or as a REST request over an ARI WebSocket (`ser` is then NULL).
extern "C" fn claim_rest(
    ser: SessionArg<'_>,
    get_params: VariablesArg<'_>,
    _path_vars: VariablesArg<'_>,
    headers: VariablesArg<'_>,
    body: BodyArg<'_>,
    response: ResponseArg<'_>,
) {
    let _in_flight = ari_tree::in_flight();
    let Some(request) = RestRequest::new(&ser, &get_params, &headers, &body, &response) else { return };
    let served = guarded("claim (ARI route)", false, || match state::get() {
        Some(state) => {
            let claim = |channel_id: &str, application: &str| -> ClaimOutcome {
                claim::claim(&state, channel_id.as_bytes(), application.as_bytes())
            };
            state.endpoint.serve_tree(&request, &claim);
            true
        }
        None => false,
    });
    if !served {
        // As res_ari_events answers a claim function's unexpected result.
        guarded("claim (ARI route)", (), || request.error(500, c"Internal Server Error", "Failed to claim channel"));
    }
}

// ------------------------------------------------------------ HTTP (module-served endpoints)

/// `POST /ari/events/claim`, when this module serves it.
extern "C" fn claim_http(
    ser: SessionArg<'_>,
    _urih: UriArg<'_>,
    _uri: CStrArg<'_>,
    method: ffi::ast_http_method,
    get_params: VariablesArg<'_>,
    headers: VariablesArg<'_>,
) -> c_int {
    let _in_flight = http::claim_in_flight();
    let Some(request) = HttpRequest::new(&ser, method, &get_params, &headers) else { return 0 };
    serve_http(
        "claim endpoint",
        &request,
        |state, request| {
            let claim =
                |channel_id: &str, application: &str| -> ClaimOutcome {
                    claim::claim(state, channel_id.as_bytes(), application.as_bytes())
                };
            state.endpoint.serve(request, &claim);
        },
        endpoint::answer_internal_error,
    );
    0
}

/// `GET /ari/api-docs/events.json`, when this module serves it.
extern "C" fn docs_http(
    ser: SessionArg<'_>,
    _urih: UriArg<'_>,
    _uri: CStrArg<'_>,
    method: ffi::ast_http_method,
    get_params: VariablesArg<'_>,
    headers: VariablesArg<'_>,
) -> c_int {
    let _in_flight = http::docs_in_flight();
    let Some(request) = HttpRequest::new(&ser, method, &get_params, &headers) else { return 0 };
    serve_http(
        "API description endpoint",
        &request,
        |state, request| state.endpoint.serve_docs(request),
        endpoint::answer_docs_error,
    );
    0
}

/// One request under the panic guard; a panic (or an unloading module)
/// before the answer was sent gets `fallback`.
fn serve_http(
    what: &str,
    request: &HttpRequest<'_>,
    serve: impl FnOnce(&ModuleState, &HttpRequest<'_>),
    fallback: fn(&HttpRequest<'_>),
) {
    let served = guarded(what, false, || match state::get() {
        Some(state) => {
            serve(&state, request);
            true
        }
        None => false,
    });
    if !served && !request.answered() {
        guarded(what, (), || fallback(request));
    }
}

// ------------------------------------------------------------ CLI, Prometheus, ARI configuration

/// Every `stasis broadcast …` command.
extern "C" fn cli_handler(entry: EntryArg<'_>, cmd: c_int, args: ArgsArg<'_>) -> CliAnswer {
    guarded("CLI command", CliAnswer::failure(), || host_cli::dispatch(&entry, cmd, &args, &cli::COMMANDS, state::get))
}

/// A scrape of Asterisk's /metrics.
extern "C" fn prometheus_scrape(output: OutputArg<'_>) {
    guarded("Prometheus scrape", (), || {
        if let Some(state) = state::get() {
            output.append(&metrics::render(&state));
        }
    });
}

/// res_prometheus's unload_module: it is about to go (see host::prometheus).
extern "C" fn prometheus_unloading() {
    guarded("res_prometheus unloading", (), || {
        if let Some(state) = state::get() {
            metrics::forget(&state);
        }
    });
}

/// ARI (re)loaded a type of its sorcery configuration.
extern "C" fn ari_config_loaded(
    _name: CStrArg<'_>,
    _sorcery: SorceryArg<'_>,
    object_type: CStrArg<'_>,
    reloaded: c_int,
) {
    let object_type = object_type.text();
    guarded("ARI configuration observer", (), || {
        // ARI reloads "general" then "user": when the users are in, both are.
        if reloaded != 0 && object_type == "user" {
            if let Some(state) = state::get() {
                state.endpoint.ari_reloaded();
            }
        }
    });
}
