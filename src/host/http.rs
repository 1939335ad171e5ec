//! Asterisk's HTTP server, for the URIs the module serves itself: linking
//! the `ari/events/claim` handler and the `ari/api-docs/events.json` handler,
//! one request borrowed for one callback, reading its body and sending the
//! answer.
//!
//! Each `struct ast_http_uri` is a static in the shim, so it never moves while
//! linked. The HTTP server calls a handler after releasing its URI list
//! lock, so unlinking does not wait for requests already dispatched: each
//! request holds a unit of the module's use count (a plain `module unload`
//! is refused meanwhile) and is counted in flight from the handler's first
//! statement, each handler apart; unlinking a handler waits until none is
//! inside it and none entered it for `DRAIN_QUIET` (see [`crate::in_flight`]).
//!
//! What that cannot see (main/http.c, `handle_uri`, 20.x to 23.x): a thread
//! that found our `ast_http_uri` under the server's read lock, released it,
//! and has not yet entered the handler. Unlinking takes the write lock, so
//! every such thread had released the read lock before it; what it still
//! runs is `ast_debug(1, "Match made with [%s]", urih->uri)` (with debug on,
//! a log line formatted and queued), `ast_uri_decode` of its path unless our
//! entry's `no_decode_uri` is set, then a load of our entry's `callback` and
//! the call: no lock of the server held, no module reference. Only a thread
//! that spends longer than the quiet period in those instructions
//! (preempted, or held by the logger) can still enter after the drain; one
//! that enters during it restarts the wait. The HTTP server offers no hook
//! that would close this gap.
//!
//! The handlers themselves are the caller's (`crate::entry`): each makes an
//! [`HttpRequest`] from its arguments and holds an [`InFlight`] while inside.
//! The flags and the count below are static because what they describe is:
//! the shim's two `struct ast_http_uri` are C statics.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::in_flight::{Calls, Inside};
use super::json::Json;
use super::module::UseCount;
use super::CStrArg;
use crate::ari_types::{BodyError, Credentials, Method};
use crate::ffi;

static LINKED: AtomicBool = AtomicBool::new(false);
static DOCS_LINKED: AtomicBool = AtomicBool::new(false);
/// Requests inside the claim handler.
static CLAIM_REQUESTS: Calls = Calls::new();
/// Requests inside the API description handler: counted apart, so unlinking
/// one handler does not wait for the other's stream.
static DOCS_REQUESTS: Calls = Calls::new();

/// How long unlinking waits for requests in flight before giving up waiting.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long no request may have entered before the handlers count as left
/// (see the module documentation for the threads this is for).
const DRAIN_QUIET: Duration = Duration::from_millis(20);

/// The session argument of an HTTP handler, valid for the call.
#[repr(transparent)]
pub struct SessionArg<'call> {
    pub(super) raw: *mut ffi::ast_tcptls_session_instance,
    _call: PhantomData<&'call ()>,
}

/// The URI-entry argument of an HTTP handler (unused by this module).
#[repr(transparent)]
pub struct UriArg<'call> {
    _raw: *const ffi::ast_http_uri,
    _call: PhantomData<&'call ()>,
}

/// A variable list argument of an HTTP handler (query parameters, headers).
#[repr(transparent)]
pub struct VariablesArg<'call> {
    pub(super) raw: *mut ffi::ast_variable,
    _call: PhantomData<&'call ()>,
}

/// An HTTP handler's prototype (`ast_http_callback`).
pub type Handler = for<'call> extern "C" fn(
    SessionArg<'call>,
    UriArg<'call>,
    CStrArg<'call>,
    ffi::ast_http_method,
    VariablesArg<'call>,
    VariablesArg<'call>,
) -> c_int;

fn raw_handler(handler: Handler) -> ffi::ast_http_callback {
    // SAFETY: the argument types are repr(transparent) over the pointers of
    // ast_http_callback's prototype.
    Some(unsafe {
        std::mem::transmute::<
            Handler,
            unsafe extern "C" fn(
                *mut ffi::ast_tcptls_session_instance,
                *const ffi::ast_http_uri,
                *const c_char,
                ffi::ast_http_method,
                *mut ffi::ast_variable,
                *mut ffi::ast_variable,
            ) -> c_int,
        >(handler)
    })
}

/// Links `handler` for `<prefix>/ari/events/claim` (idempotent). The HTTP
/// server tries longer URIs first, so it is chosen before ARI's `ari`.
pub fn link_claim_handler(handler: Handler) {
    if !LINKED.swap(true, Ordering::SeqCst) {
        // SAFETY: the shim's static ast_http_uri gets the handler, a function
        // of this module that stays mapped until unlink has drained.
        unsafe { ffi::sbshim_http_claim_link(raw_handler(handler)) };
    }
}

/// Unlinks the handler (idempotent) and waits until no request is inside
/// it, even if it was already unlinked (a drain that timed out
/// earlier is waited for again). False if requests were still in flight
/// after [`DRAIN_LIMIT`].
pub fn unlink_claim_handler() -> bool {
    if LINKED.swap(false, Ordering::SeqCst) {
        // SAFETY: unlinks the static entry linked above; takes the server's
        // write lock, so no new request can find it afterwards.
        unsafe { ffi::sbshim_http_claim_unlink() };
        return drain(&CLAIM_REQUESTS);
    }
    CLAIM_REQUESTS.is_empty() || drain(&CLAIM_REQUESTS)
}

pub fn is_linked() -> bool {
    LINKED.load(Ordering::SeqCst)
}

/// Links `handler` for `<prefix>/ari/api-docs/events.json` (idempotent),
/// chosen before ARI's `ari` like the claim handler.
pub fn link_docs_handler(handler: Handler) {
    if !DOCS_LINKED.swap(true, Ordering::SeqCst) {
        // SAFETY: as for link_claim_handler, with the shim's other static URI.
        unsafe { ffi::sbshim_http_docs_link(raw_handler(handler)) };
    }
}

/// Unlinks the API description handler (idempotent) and waits like
/// [`unlink_claim_handler`].
pub fn unlink_docs_handler() -> bool {
    if DOCS_LINKED.swap(false, Ordering::SeqCst) {
        // SAFETY: as for unlink_claim_handler.
        unsafe { ffi::sbshim_http_docs_unlink() };
        return drain(&DOCS_REQUESTS);
    }
    DOCS_REQUESTS.is_empty() || drain(&DOCS_REQUESTS)
}

pub fn docs_handler_linked() -> bool {
    DOCS_LINKED.load(Ordering::SeqCst)
}

/// Waits until no request is inside the handler `requests` counts; false
/// after [`DRAIN_LIMIT`].
fn drain(requests: &Calls) -> bool {
    requests.drain(DRAIN_LIMIT, DRAIN_QUIET)
}

/// A request inside a handler: counted in flight (unlinking waits for it)
/// and holding a unit of the module's use count (a plain `module unload` is
/// refused meanwhile). Take it first thing in a handler.
pub struct InFlight {
    _inside: Inside,
    _use_count: UseCount,
}

/// A request inside the claim handler.
pub fn claim_in_flight() -> InFlight {
    InFlight { _inside: CLAIM_REQUESTS.enter(), _use_count: UseCount::acquire() }
}

/// A request inside the API description handler.
pub fn docs_in_flight() -> InFlight {
    InFlight { _inside: DOCS_REQUESTS.enter(), _use_count: UseCount::acquire() }
}

/// What res_ari's own `ast_ari_get_docs` answers for one api-docs file.
pub struct AriDocs {
    pub status: u16,
    pub reason: String,
    /// The document, or ARI's `{"message": …}`; `None`: no body.
    pub body: Option<Json>,
}

/// The body of a request, read as ARI reads it.
pub enum RequestBody {
    None,
    /// `application/x-www-form-urlencoded` parameters.
    Form(Vec<(String, String)>),
    /// An `application/json` body.
    Json(Json),
}

/// One HTTP request, valid for the callback it arrived in.
pub struct HttpRequest<'a> {
    ser: NonNull<ffi::ast_tcptls_session_instance>,
    method: ffi::ast_http_method,
    get_params: *mut ffi::ast_variable,
    headers: *mut ffi::ast_variable,
    answered: Cell<bool>,
    _callback: PhantomData<&'a ()>,
}

impl<'call> HttpRequest<'call> {
    /// The request of a handler call; `None` without a session.
    pub fn new(
        ser: &SessionArg<'call>,
        method: ffi::ast_http_method,
        get_params: &VariablesArg<'call>,
        headers: &VariablesArg<'call>,
    ) -> Option<HttpRequest<'call>> {
        let ser = NonNull::new(ser.raw)?;
        Some(HttpRequest {
            ser,
            method,
            get_params: get_params.raw,
            headers: headers.raw,
            answered: Cell::new(false),
            _callback: PhantomData,
        })
    }

    /// Whether an answer was sent (or an error page).
    pub fn answered(&self) -> bool {
        self.answered.get()
    }

    pub fn method(&self) -> Method {
        match self.method {
            ffi::ast_http_method_AST_HTTP_GET => Method::Get,
            ffi::ast_http_method_AST_HTTP_POST => Method::Post,
            ffi::ast_http_method_AST_HTTP_HEAD => Method::Head,
            ffi::ast_http_method_AST_HTTP_PUT => Method::Put,
            ffi::ast_http_method_AST_HTTP_DELETE => Method::Delete,
            ffi::ast_http_method_AST_HTTP_OPTIONS => Method::Options,
            _ => Method::Unknown,
        }
    }

    /// Query-string parameters, decoded by the HTTP server, in order.
    pub fn query_params(&self) -> Vec<(String, String)> {
        // SAFETY: the server's list, alive for this callback.
        unsafe { variables(self.get_params) }
    }

    /// Request headers, names as the client wrote them, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        // SAFETY: the server's list, alive for this callback.
        unsafe { variables(self.headers) }
    }

    /// `Authorization: Basic …` as Asterisk parses it (`ast_http_get_auth`).
    pub fn basic_auth(&self) -> Option<Credentials> {
        basic_auth_of(self.headers)
    }

    /// Reads the body as ARI does: form parameters, else a JSON body (each
    /// only with its content type).
    pub fn read_body(&self) -> Result<RequestBody, BodyError> {
        let mut error: c_int = 0;
        // SAFETY: a live session and header list; the variables returned are
        // ours and destroyed after copying.
        let vars = unsafe { ffi::sbshim_http_get_post_vars(self.ser.as_ptr(), self.headers, &mut error) };
        if !vars.is_null() {
            // SAFETY: the list returned above, copied, then destroyed and not used again.
            let form = unsafe {
                let form = variables(vars);
                ffi::ast_variables_destroy(vars);
                form
            };
            return Ok(RequestBody::Form(form));
        }
        if let Some(error) = body_error(error, true) {
            return Err(error);
        }
        // SAFETY: as above; the JSON reference returned is ours.
        let json = unsafe { ffi::sbshim_http_get_json(self.ser.as_ptr(), self.headers, &mut error) };
        match Json::from_raw(json) {
            Some(json) => Ok(RequestBody::Json(json)),
            None => body_error(error, false).map_or(Ok(RequestBody::None), Err),
        }
    }

    /// The HTTP server's own answer for a URI no handler serves.
    pub fn not_found(&self) {
        self.answered.set(true);
        // SAFETY: live session of this callback; static strings.
        unsafe {
            ffi::ast_http_error(
                self.ser.as_ptr(),
                404,
                c"Not Found".as_ptr(),
                c"The requested URL was not found on this server.".as_ptr(),
            )
        };
    }

    /// Closes the connection once the answer is sent.
    pub fn close_on_completion(&self) {
        // SAFETY: live session of this callback.
        unsafe { ffi::ast_http_request_close_on_completion(self.ser.as_ptr()) };
    }

    /// Sends the answer: status line, `header_block` (`Name: value\r\n`…) and body.
    pub fn send(&self, status: u16, reason: &str, header_block: &str, body: &str) {
        let reason = super::cstring(reason);
        let header_block = super::cstring(header_block);
        let body = super::cstring(body);
        self.answered.set(true);
        // SAFETY: both ast_str are new (NULL on allocation failure, which
        // ast_http_send accepts) and ast_http_send frees them; `reason` lives
        // until it returns.
        unsafe {
            let headers = ffi::sbshim_str_from(header_block.as_ptr());
            let out = ffi::sbshim_str_from(body.as_ptr());
            ffi::ast_http_send(
                self.ser.as_ptr(),
                self.method,
                c_int::from(status),
                reason.as_ptr(),
                headers,
                out,
                0,
                0,
            );
        }
    }

    /// res_ari's answer for `file` of its api-docs, as ARI itself builds it
    /// for this request (file read from Asterisk's data directory, `basePath`
    /// from the `Host` header and the HTTP prefix, its 403/404/500s).
    pub fn ari_docs(&self, file: &str) -> AriDocs {
        let file = super::cstring(file);
        let mut status: c_int = 0;
        let mut reason: *const c_char = std::ptr::null();
        // SAFETY: res_ari (which this module requires) exports it; the header
        // list is the server's, alive for this callback; the JSON reference
        // returned is ours; `reason` is a static string or NULL.
        let body = unsafe { ffi::sbshim_ari_get_docs(file.as_ptr(), self.headers, &mut status, &mut reason) };
        AriDocs {
            status: u16::try_from(status).unwrap_or(500),
            reason: super::string_from(reason),
            body: Json::from_raw(body),
        }
    }

    pub(super) fn remote_address(&self) -> *const ffi::ast_sockaddr {
        // SAFETY: address of a field of the live session.
        unsafe { ffi::sbshim_http_remote_address(self.ser.as_ptr()) }
    }
}

/// ARI's reading of the errno left by a body reader that returned nothing.
fn body_error(error: c_int, form: bool) -> Option<BodyError> {
    match error {
        libc::EFBIG => Some(BodyError::TooLarge),
        libc::ENOMEM => Some(BodyError::OutOfMemory { form }),
        libc::EIO => Some(BodyError::Malformed),
        _ => None,
    }
}

/// `{"message": text}` in ARI's current JSON format (`pretty` in ari.conf).
pub fn ari_message_body(text: &str) -> String {
    let body =
        Json::object().and_then(|mut object| Json::string(text).map(|value| (object.set(c"message", value), object)));
    // SAFETY: res_ari (which this module requires) exports it; it only reads ARI's config.
    let format = unsafe { ffi::ast_ari_json_format() };
    match body {
        Some((true, object)) => object.dump(format).unwrap_or_default(),
        _ => String::new(),
    }
}

/// A JSON value's text in ARI's current format (`pretty` in ari.conf), as ARI
/// writes its answers.
pub fn ari_json_text(json: &Json) -> Option<String> {
    // SAFETY: res_ari (which this module requires) exports it; it only reads ARI's config.
    json.dump(unsafe { ffi::ast_ari_json_format() })
}

/// Copies an `ast_variable` list.
///
/// # Safety
/// `list` is NULL or a valid list that stays alive during the call.
pub(super) unsafe fn variables(mut list: *mut ffi::ast_variable) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !list.is_null() {
        // SAFETY: a node of the valid list (caller's contract).
        let node = unsafe { &*list };
        out.push((super::string_from(node.name), super::string_from(node.value)));
        list = node.next;
    }
    out
}

/// `Authorization: Basic …` in a header list, as Asterisk parses it
/// (`ast_http_get_auth`).
pub(super) fn basic_auth_of(headers: *mut ffi::ast_variable) -> Option<Credentials> {
    // SAFETY: reads the header list; returns an ao2 object we release below.
    let auth = unsafe { ffi::ast_http_get_auth(headers) };
    if auth.is_null() {
        return None;
    }
    // SAFETY: `auth` holds two NUL-terminated strings inside its own
    // allocation, copied before it is released.
    let credentials = unsafe {
        Credentials {
            user: CStr::from_ptr((*auth).userid).to_bytes().to_vec(),
            password: CStr::from_ptr((*auth).password).to_bytes().to_vec(),
        }
    };
    // SAFETY: drops the reference ast_http_get_auth gave us.
    unsafe { ffi::sbshim_ao2_cleanup(auth.cast()) };
    Some(credentials)
}
