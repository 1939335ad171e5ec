//! ARI's own REST handler tree: the module's `events/claim` node in it.
//!
//! res_ari routes every request, over HTTP and as a REST request over an ARI
//! WebSocket, through `ast_ari_invoke`, which walks the tree of
//! `struct stasis_rest_handlers` that the `res_ari_*` modules add their
//! top-level nodes to, and takes the first child whose segment matches. A
//! second top-level `events` node would never be reached, and
//! res_ari_events' own node is a `static` of that module. So the module
//! finds that node in res_ari_events' writable data (a strict match, see
//! [`find_events_node`]), builds a copy of it with a `claim` child added (or
//! in place of a `claim` child the release already has), adds the copy to
//! the tree and removes the original: no instant without an `events` node.
//! Removing does the reverse. ARI's front door (authentication, ACLs, CORS,
//! OPTIONS, 405, `read_only`, `enabled`) runs before any node's callback,
//! for the claim as for every other resource.
//!
//! The copy points at res_ari_events' children and (in 20.x) its WebSocket
//! server: res_ari_events is one of the module's required modules, so the
//! loader holds it loaded as long as this module is.
//!
//! `ast_ari_invoke` holds no reference that tells when a walk that found the
//! node has left it: a callback counts itself in flight from its first
//! instruction (see [`crate::in_flight`]), and removal waits until none is
//! inside and none entered for a quiet period, for a walk between ARI's
//! look-up and the callback, before the node's memory is freed (Asterisk's
//! own `res_ari_*` modules remove their static nodes and are unmapped at
//! once).

use std::alloc::{self, Layout};
use std::ffi::{c_int, c_void, CStr};
use std::marker::PhantomData;
use std::mem::{offset_of, size_of};
use std::ptr;
use std::time::Duration;

use super::http::{variables, SessionArg, VariablesArg};
use super::module::UseCount;
use crate::ari_types::Credentials;
use crate::ffi;
use crate::in_flight::{Calls, Inside};

type Node = ffi::stasis_rest_handlers;

/// Callbacks inside the module's node.
static CALLBACKS: Calls = Calls::new();
/// How long removal waits for callbacks in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long no callback must have entered before the node is freed: a walk
/// that found the node just before it was removed reaches it within a few
/// of ARI's instructions.
const DRAIN_QUIET: Duration = Duration::from_millis(50);

const EVENTS_MODULE: &[u8] = b"res_ari_events.so";

/// The JSON body argument of a REST callback (NULL without a body).
#[repr(transparent)]
pub struct BodyArg<'call> {
    raw: *mut ffi::ast_json,
    _call: PhantomData<&'call ()>,
}

/// The response a REST callback fills in.
#[repr(transparent)]
pub struct ResponseArg<'call> {
    raw: *mut ffi::ast_ari_response,
    _call: PhantomData<&'call ()>,
}

/// A REST callback's prototype (`stasis_rest_callback`).
pub type Callback = for<'call> extern "C" fn(
    SessionArg<'call>,
    VariablesArg<'call>,
    VariablesArg<'call>,
    VariablesArg<'call>,
    BodyArg<'call>,
    ResponseArg<'call>,
);

fn raw_callback(callback: Callback) -> ffi::stasis_rest_callback {
    // SAFETY: the argument types are repr(transparent) over the pointers of
    // stasis_rest_callback's prototype.
    Some(unsafe {
        std::mem::transmute::<
            Callback,
            unsafe extern "C" fn(
                *mut ffi::ast_tcptls_session_instance,
                *mut ffi::ast_variable,
                *mut ffi::ast_variable,
                *mut ffi::ast_variable,
                *mut ffi::ast_json,
                *mut ffi::ast_ari_response,
            ),
        >(callback)
    })
}

/// One REST request inside the module's node, valid for the callback.
pub struct RestRequest<'call> {
    came_over_websocket: bool,
    get_params: *mut ffi::ast_variable,
    headers: *mut ffi::ast_variable,
    body: *mut ffi::ast_json,
    response: *mut ffi::ast_ari_response,
    _call: PhantomData<&'call ()>,
}

impl<'call> RestRequest<'call> {
    pub fn new(
        ser: &SessionArg<'call>,
        get_params: &VariablesArg<'call>,
        headers: &VariablesArg<'call>,
        body: &BodyArg<'call>,
        response: &ResponseArg<'call>,
    ) -> Option<RestRequest<'call>> {
        (!response.raw.is_null()).then(|| RestRequest {
            // ARI passes no session for a REST request read from a WebSocket.
            came_over_websocket: ser.raw.is_null(),
            get_params: get_params.raw,
            headers: headers.raw,
            body: body.raw,
            response: response.raw,
            _call: PhantomData,
        })
    }

    /// Whether it came over an ARI WebSocket (its headers are then those of
    /// the WebSocket's upgrade request).
    pub fn came_over_websocket(&self) -> bool {
        self.came_over_websocket
    }

    /// Query-string (and form) parameters as ARI passes them, in order.
    pub fn params(&self) -> Vec<(String, String)> {
        // SAFETY: ARI's list, alive for this callback.
        unsafe { variables(self.get_params) }
    }

    /// `Authorization: Basic …` as Asterisk parses it.
    pub fn basic_auth(&self) -> Option<Credentials> {
        super::http::basic_auth_of(self.headers)
    }

    /// A member of the JSON body: `None` if there is no body or no such
    /// member, `Some(None)` if it is not a string.
    pub fn body_string(&self, key: &CStr) -> Option<Option<String>> {
        if self.body.is_null() {
            return None;
        }
        // SAFETY: ARI's body, alive for this callback; the member is borrowed
        // from it and read before returning.
        let member = unsafe { ffi::ast_json_object_get(self.body, key.as_ptr()) };
        if member.is_null() {
            return None;
        }
        // SAFETY: a live value; NULL when it is not a string.
        Some(super::optional_string_from(unsafe { ffi::ast_json_string_get(member) }))
    }

    /// ARI's error answer: `{"message": message}` with `status`. ARI keeps
    /// the reason phrase's pointer (it writes the status line later), hence
    /// a static one; the message it formats into a copy.
    pub fn error(&self, status: c_int, reason: &'static CStr, message: &str) {
        let message = super::cstring(message);
        // SAFETY: ARI's response for this callback; the format is "%s" with
        // one string argument; `reason` lives as long as the module, which
        // outlives the request (the callback is counted in flight).
        unsafe { ffi::ast_ari_response_error(self.response, status, reason.as_ptr(), c"%s".as_ptr(), message.as_ptr()) };
    }

    /// 204 No Content.
    pub fn no_content(&self) {
        // SAFETY: ARI's response for this callback.
        unsafe { ffi::ast_ari_response_no_content(self.response) };
    }
}

/// A callback inside the node: counted in flight (removal waits for it) and
/// holding a unit of the module's use count. Take it first thing.
pub struct InFlight {
    _inside: Inside,
    _use_count: UseCount,
}

pub fn in_flight() -> InFlight {
    InFlight { _inside: CALLBACKS.enter(), _use_count: UseCount::acquire() }
}

/// The module's node in ARI's tree: the copy of res_ari_events' `events`
/// node that replaced it, and the `claim` node in it.
pub struct Installed {
    original: *mut Node,
    events: *mut Node,
    events_layout: Layout,
    claim: *mut Node,
    claim_layout: Layout,
    /// Whether the release's own `events` node had a `claim` child (replaced).
    pub replaced_claim: bool,
}

// SAFETY: the pointers are to memory this value owns (the two nodes) or to
// res_ari_events' static node, which stays loaded while this module is; they
// are only used by load, reload and unload, which Asterisk serialises.
unsafe impl Send for Installed {}

/// Why the node could not be put into ARI's tree.
#[derive(Debug)]
pub struct NotInstalled(pub String);

/// Puts a `claim` node whose POST callback is `callback` into ARI's tree,
/// under res_ari_events' `events` node.
pub fn install(callback: Callback) -> Result<Installed, NotInstalled> {
    // The test build can refuse, to prove the HTTP handler that stands in.
    #[cfg(feature = "fault-injection")]
    if super::system::take_global("STASISBROADCAST_REFUSE_TREE", "yes") {
        return Err(NotInstalled("refused by the test build's fault injection".into()));
    }
    let original = find_events_node()?;
    let children_at = offset_of!(Node, children);
    // SAFETY: `original` was validated by find_events_node: a whole node
    // with `num_children` child pointers, in res_ari_events' mapped data.
    let (count, children): (usize, Vec<*mut Node>) = unsafe {
        let count = (*original).num_children;
        let first = original.cast::<u8>().add(children_at).cast::<*mut Node>();
        (count, (0..count).map(|i| ptr::read(first.add(i))).collect())
    };

    let (claim, claim_layout) = allocate_node(0)?;
    // SAFETY: a zeroed node of ours; "claim" is a static string of this
    // module, which outlives the node (removed before unload finishes).
    unsafe {
        (*claim).path_segment = c"claim".as_ptr();
        (*claim).callbacks[ffi::ast_http_method_AST_HTTP_POST as usize] = raw_callback(callback);
    }

    // SAFETY: every child pointer was validated as a node with a readable
    // segment name.
    let existing_claim = children.iter().position(|&child| unsafe { segment_of(child) } == Some(b"claim".as_slice()));
    let total = if existing_claim.is_some() { count } else { count + 1 };
    let (events, events_layout) = match allocate_node(total) {
        Ok(allocated) => allocated,
        Err(error) => {
            // SAFETY: allocated above with this layout, never shared.
            unsafe { alloc::dealloc(claim.cast(), claim_layout) };
            return Err(error);
        }
    };
    // SAFETY: both nodes have room for their header; the copy takes the
    // original's segment, callbacks and WebSocket marker as they are, then
    // gets its own children.
    unsafe {
        ptr::copy_nonoverlapping(original.cast::<u8>(), events.cast::<u8>(), children_at);
        (*events).num_children = total;
        let slots = events.cast::<u8>().add(children_at).cast::<*mut Node>();
        for (i, &child) in children.iter().enumerate() {
            ptr::write(slots.add(i), if Some(i) == existing_claim { claim } else { child });
        }
        if existing_claim.is_none() {
            ptr::write(slots.add(count), claim);
        }
    }
    let installed = Installed {
        original,
        events,
        events_layout,
        claim,
        claim_layout,
        replaced_claim: existing_claim.is_some(),
    };
    // The copy first, then the original out: `ast_ari_invoke` takes the
    // first match, so every request finds one `events` node or the other.
    // SAFETY: our node stays valid until removed and drained (remove()).
    if unsafe { ffi::ast_ari_add_handler(installed.events) } != 0 {
        installed.free();
        return Err(NotInstalled("res_ari could not add a node to its tree (out of memory)".into()));
    }
    // SAFETY: the pointer res_ari_events added; removal is by identity.
    if unsafe { ffi::ast_ari_remove_handler(installed.original) } != 0 {
        // SAFETY: ours, just added.
        unsafe { ffi::ast_ari_remove_handler(installed.events) };
        drain();
        installed.free();
        return Err(NotInstalled("res_ari could not remove res_ari_events' node (out of memory)".into()));
    }
    Ok(installed)
}

impl Installed {
    /// Gives res_ari_events its own node back and frees the module's once no
    /// callback is inside it. `Err(self)`, still installed, if res_ari could
    /// not change its tree or a callback did not leave in time.
    pub fn remove(self) -> Result<(), Installed> {
        // SAFETY: res_ari_events' static node, loaded while this module is.
        if unsafe { ffi::ast_ari_add_handler(self.original) } != 0 {
            return Err(self);
        }
        // SAFETY: ours, in the tree since install.
        if unsafe { ffi::ast_ari_remove_handler(self.events) } != 0 {
            // SAFETY: the original, just added back: take it out again.
            unsafe { ffi::ast_ari_remove_handler(self.original) };
            return Err(self);
        }
        if !drain() {
            // A callback is still inside: put the node back rather than free it.
            // SAFETY: as in install.
            unsafe {
                ffi::ast_ari_add_handler(self.events);
                ffi::ast_ari_remove_handler(self.original);
            }
            return Err(self);
        }
        self.free();
        Ok(())
    }

    fn free(self) {
        // SAFETY: both allocated by allocate_node with these layouts, out of
        // ARI's tree and drained (or never added).
        unsafe {
            alloc::dealloc(self.events.cast(), self.events_layout);
            alloc::dealloc(self.claim.cast(), self.claim_layout);
        }
    }
}

fn drain() -> bool {
    CALLBACKS.drain(DRAIN_LIMIT, DRAIN_QUIET)
}

/// A zeroed node with room for `children` child pointers.
fn allocate_node(children: usize) -> Result<(*mut Node, Layout), NotInstalled> {
    let layout = Layout::from_size_align(
        offset_of!(Node, children) + children * size_of::<*mut Node>(),
        std::mem::align_of::<Node>(),
    )
    .map_err(|error| NotInstalled(format!("node layout: {error}")))?;
    // SAFETY: a non-zero size (the header alone is several words).
    let node = unsafe { alloc::alloc_zeroed(layout) }.cast::<Node>();
    if node.is_null() {
        return Err(NotInstalled("out of memory".into()));
    }
    Ok((node, layout))
}

/// The segment name of a validated node.
///
/// # Safety
/// `node` must have been validated by [`Segments::node_at`].
unsafe fn segment_of<'n>(node: *const Node) -> Option<&'n [u8]> {
    let name = (*node).path_segment;
    (!name.is_null()).then(|| CStr::from_ptr(name).to_bytes())
}

/// res_ari_events' mapped segments, as the dynamic linker lists them.
struct Segments {
    /// `[start, end)` and whether the segment is writable.
    ranges: Vec<(usize, usize, bool)>,
}

/// Finds res_ari_events' `events` node: in that module's writable data, the
/// one `stasis_rest_handlers` whose segment is "events", not a wildcard,
/// with a WebSocket marker, one to eight children, each a node of the same
/// module, among them `user` with its single wildcard child `eventName` that
/// has a POST callback (its user-event route, in every release since ARI
/// began). Anything else, or more than one match, is refused.
fn find_events_node() -> Result<*mut Node, NotInstalled> {
    let segments = Segments::of_loaded(EVENTS_MODULE)
        .ok_or_else(|| NotInstalled("res_ari_events.so is not mapped in this process".into()))?;
    let word = size_of::<usize>();
    let mut found = Vec::new();
    for &(start, end, writable) in &segments.ranges {
        if !writable {
            continue;
        }
        let mut at = start.next_multiple_of(std::mem::align_of::<Node>());
        while at + offset_of!(Node, children) <= end {
            if segments.is_events_node(at) {
                found.push(at as *mut Node);
            }
            at += word;
        }
    }
    match found.as_slice() {
        [node] => Ok(*node),
        [] => Err(NotInstalled("res_ari_events.so holds no ARI 'events' node this module recognises".into())),
        _ => Err(NotInstalled(format!("res_ari_events.so holds {} candidate 'events' nodes; none is used", found.len()))),
    }
}

struct PhdrSearch<'a> {
    name: &'a [u8],
    ranges: Option<Vec<(usize, usize, bool)>>,
}

unsafe extern "C" fn collect_segments(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes a valid entry and our search.
    let (info, search) = unsafe { (&*info, &mut *data.cast::<PhdrSearch<'_>>()) };
    if info.dlpi_name.is_null() {
        return 0;
    }
    // SAFETY: the loader's NUL-terminated path of the object.
    let path = unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes();
    let base = path.rsplit(|&byte| byte == b'/').next().unwrap_or(path);
    if base != search.name {
        return 0;
    }
    let mut ranges = Vec::new();
    for i in 0..usize::from(info.dlpi_phnum) {
        // SAFETY: dlpi_phdr has dlpi_phnum entries.
        let header = unsafe { &*info.dlpi_phdr.add(i) };
        if header.p_type == libc::PT_LOAD && header.p_memsz > 0 {
            let start = (info.dlpi_addr as usize).wrapping_add(header.p_vaddr as usize);
            ranges.push((start, start + header.p_memsz as usize, header.p_flags & libc::PF_W != 0));
        }
    }
    search.ranges = Some(ranges);
    1
}

impl Segments {
    fn of_loaded(name: &[u8]) -> Option<Segments> {
        let mut search = PhdrSearch { name, ranges: None };
        // SAFETY: the callback only reads the loader's entries and writes
        // into `search`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(collect_segments), ptr::addr_of_mut!(search).cast()) };
        search.ranges.map(|ranges| Segments { ranges })
    }

    /// Whether `[at, at + len)` lies inside one segment (writable if asked).
    fn contains(&self, at: usize, len: usize, writable: bool) -> bool {
        at.checked_add(len).is_some_and(|end| {
            self.ranges.iter().any(|&(start, stop, w)| start <= at && end <= stop && (w || !writable))
        })
    }

    /// A NUL-terminated name of at most 64 bytes at `at`, inside the module.
    fn name_at(&self, at: usize) -> Option<&[u8]> {
        let &(_, stop, _) = self.ranges.iter().find(|&&(start, stop, _)| start <= at && at < stop)?;
        let readable = (stop - at).min(65);
        // SAFETY: `[at, at + readable)` is inside a mapped segment of the module.
        let bytes = unsafe { std::slice::from_raw_parts(at as *const u8, readable) };
        let len = bytes.iter().position(|&byte| byte == 0)?;
        (len > 0 && len <= 64).then(|| &bytes[..len])
    }

    /// Reads the pointer-sized word at `at` (inside a segment, checked by the caller).
    fn word(at: usize) -> usize {
        // SAFETY: callers check that the word lies inside a mapped segment;
        // volatile: another thread of Asterisk may write neighbouring data.
        unsafe { ptr::read_volatile(at as *const usize) }
    }

    /// A plausible node at `at`: its header inside a writable segment, its
    /// name a short string of the module; returns its name and children.
    fn node_at(&self, at: usize, max_children: usize) -> Option<(&[u8], bool, Vec<usize>)> {
        let header = offset_of!(Node, children);
        if at % std::mem::align_of::<Node>() != 0 || !self.contains(at, header, true) {
            return None;
        }
        let name = self.name_at(Segments::word(at + offset_of!(Node, path_segment)))?;
        let wildcard = {
            // SAFETY: inside the header checked above.
            let value = unsafe { ptr::read_volatile((at + offset_of!(Node, is_wildcard)) as *const c_int) };
            match value {
                0 => false,
                1 => true,
                _ => return None,
            }
        };
        let count = Segments::word(at + offset_of!(Node, num_children));
        if count > max_children || !self.contains(at + header, count * size_of::<usize>(), true) {
            return None;
        }
        let children = (0..count).map(|i| Segments::word(at + header + i * size_of::<usize>())).collect();
        Some((name, wildcard, children))
    }

    /// The WebSocket marker between the callbacks and `num_children`: the
    /// `ws_server` pointer of 20.x before 20.14, or the `is_websocket` flag
    /// that shares its place later.
    fn has_websocket_marker(&self, at: usize) -> bool {
        let from = offset_of!(Node, callbacks) + size_of::<[ffi::stasis_rest_callback; ffi::ast_http_method_AST_HTTP_MAX_METHOD as usize]>();
        let to = offset_of!(Node, num_children);
        // SAFETY: inside the header, checked by node_at.
        (from..to).any(|offset| unsafe { ptr::read_volatile((at + offset) as *const u8) } != 0)
    }

    fn callback_at(at: usize, method: ffi::ast_http_method) -> usize {
        Segments::word(at + offset_of!(Node, callbacks) + method as usize * size_of::<ffi::stasis_rest_callback>())
    }

    fn is_events_node(&self, at: usize) -> bool {
        let Some((b"events", false, children)) = self.node_at(at, 8) else { return false };
        if children.is_empty() || !self.has_websocket_marker(at) {
            return false;
        }
        let mut has_user_route = false;
        for &child in &children {
            let Some((name, false, grandchildren)) = self.node_at(child, 8) else { return false };
            if name == b"user" {
                let [event_name] = grandchildren.as_slice() else { return false };
                let Some((b"eventName", true, _)) = self.node_at(*event_name, 8) else { return false };
                has_user_route = Segments::callback_at(*event_name, ffi::ast_http_method_AST_HTTP_POST) != 0;
            }
        }
        has_user_route
    }
}
