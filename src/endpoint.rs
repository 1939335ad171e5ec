//! The claim endpoint: who serves `POST /ari/events/claim` (see
//! [`crate::claim_mode`]): ARI's own route, or this module's `claim` node in
//! ARI's REST handler tree ([`crate::host::ari_tree`]), reached over HTTP and
//! over ARI's WebSocket with ARI's own front door. Where that node cannot be
//! installed (or `claim_endpoint=http`), the module's own HTTP handler
//! beside ARI, which has to apply ARI's authentication itself (see
//! [`crate::ari_auth`]): on pre-sorcery ARI, ARI itself validates each
//! request's credentials ([`crate::host::ari_legacy`]); on sorcery-based
//! ARI, from the module's reading of ari.conf, re-read whenever ARI reloads
//! it. Also ARI's API description of events, which the module serves (`GET
//! /ari/api-docs/events.json`, completed with its events and the claim
//! operation, see [`crate::api_docs`]) where Asterisk's own lacks them,
//! behind the same authentication: api-docs are answered by ARI before its
//! tree, so no node can serve them.
//!
//! Load, reload and unload run one at a time (Asterisk's module loader
//! serialises them); requests run on HTTP threads at any time and only read
//! the current ari.conf snapshot, an `Arc` swapped whole. All of it is one
//! [`Endpoint`] value, part of the module's state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::api_docs;
use crate::ari_auth::{
    self, AriConf, AriItself, AriVerdict, BodyField, Directory, Host, JsonFields, Request, Response,
};
use crate::broadcast::registry::ClaimOutcome;
use crate::claim_mode::{self, Decision, Served};
use crate::config::ClaimEndpoint;
use crate::host::acl::Acl;
use crate::host::config::ConfigFile;
use crate::host::ari_tree::{self, RestRequest};
use crate::host::http::{self, HttpRequest, RequestBody};
use crate::host::json::Json;
use crate::host::sorcery::{Observer, Watch};
use crate::host::{ari_legacy, log, module, sorcery, system};
use crate::throttle::Throttle;

/// The NOTICEs a request causes (an Origin that matches no allowed origin,
/// as ARI logs it): any client can send such requests at will, so one line
/// per interval, the rest at debug.
static REQUEST_NOTICES: Throttle = Throttle::new();

fn log_request_notice(notice: &str) {
    match REQUEST_NOTICES.allow() {
        Some(0) => log::notice(notice),
        Some(held_back) => log::notice(&format!("{notice} ({held_back} similar since the last, at debug level)")),
        None => log::debug(1, || notice.to_owned()),
    }
}

const ARI_CONF: &str = "ari.conf";

type Conf = AriConf<Arc<Acl>>;

/// The functions Asterisk calls for the endpoint (from `crate::entry`).
#[derive(Clone, Copy)]
pub struct Handlers {
    /// The POST callback of the claim node in ARI's tree.
    pub tree_claim: ari_tree::Callback,
    pub claim: http::Handler,
    pub docs: http::Handler,
    pub ari_observer: Observer,
}

/// A claim, as the module decides it (`crate::claim::claim` with the state).
pub type Claim<'c> = &'c dyn Fn(&str, &str) -> ClaimOutcome;

pub struct Endpoint {
    handlers: Handlers,
    /// ari.conf as the endpoint uses it; `None` unless this module serves
    /// claims or the API description.
    conf: RwLock<Option<Arc<Conf>>>,
    /// The last decision, for `show settings`.
    decision: RwLock<Option<Decision>>,
    /// Whether reading ARI's private configuration failed a check already (said once).
    ari_read_warned: AtomicBool,
    /// The last decision about the API description, for `show settings`.
    docs: RwLock<Option<api_docs::Decision>>,
    /// Observing ARI's configuration reloads, where ARI allows it.
    watch: Mutex<Option<Watch>>,
    /// The claim node in ARI's tree, while installed.
    tree: Mutex<Option<ari_tree::Installed>>,
    /// Why the node could not be installed (the HTTP handler stands in).
    tree_refused: RwLock<Option<String>>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) -> T {
    std::mem::replace(&mut *lock.write().unwrap_or_else(|poisoned| poisoned.into_inner()), value)
}

impl Endpoint {
    pub fn new(handlers: Handlers) -> Endpoint {
        Endpoint {
            handlers,
            conf: RwLock::new(None),
            decision: RwLock::new(None),
            ari_read_warned: AtomicBool::new(false),
            docs: RwLock::new(None),
            watch: Mutex::new(None),
            tree: Mutex::new(None),
            tree_refused: RwLock::new(None),
        }
    }

    fn current_conf(&self) -> Option<Arc<Conf>> {
        read(&self.conf)
    }

    fn replace_conf(&self, conf: Option<Arc<Conf>>) -> Option<Arc<Conf>> {
        write(&self.conf, conf)
    }

    /// At load: decide who serves claims and, if this module does, link its handler.
    pub fn start(&self, setting: ClaimEndpoint) {
        if ari_legacy::find() {
            log::debug(1, || {
                "claim endpoint: pre-sorcery ARI; its own ast_ari_config_validate_user checks each claim's credentials"
                    .into()
            });
        } else if let Some(watch) = sorcery::watch_ari_reloads(self.handlers.ari_observer) {
            *self.watch.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(watch);
        } else {
            log::debug(1, || {
                "claim endpoint: ARI's configuration cannot be observed; module reload re-reads ari.conf".into()
            });
        }
        self.apply(setting, false);
    }

    /// At reload (after the settings were re-read): decide again, re-read ari.conf.
    pub fn reload(&self, setting: ClaimEndpoint) {
        self.apply(setting, true);
    }

    /// At unload: unlink the handlers and wait for requests inside them to leave.
    /// False, with the handlers linked again, if some did not leave in time (a
    /// forced unload then has to be refused: the module's code is still running).
    pub fn stop(&self) -> bool {
        if !self.remove_tree_node() {
            log::warning("claim endpoint: ARI's tree could not be given its own 'events' node back; not unloading");
            return false;
        }
        let (claim_linked, docs_linked) = (http::is_linked(), http::docs_handler_linked());
        let docs_drained = http::unlink_docs_handler();
        if !http::unlink_claim_handler() || !docs_drained {
            log::warning("claim endpoint: requests still inside the handler 5 s after it was unlinked; not unloading");
            if claim_linked {
                http::link_claim_handler(self.handlers.claim);
            }
            if docs_linked {
                http::link_docs_handler(self.handlers.docs);
            }
            if self.serving(Served::Module) {
                self.install_tree_node();
            }
            return false;
        }
        // Unload runs alone (the loader serialises it with ARI's reload), so
        // nothing re-links the handler between the two steps.
        // Taken out of our lock, then dropped: unobserving calls into Asterisk.
        let watch = self.watch.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        drop(watch);
        ari_legacy::forget();
        // Dropped outside our lock: freeing ACLs calls into Asterisk.
        drop(self.replace_conf(None));
        write(&self.decision, None);
        write(&self.docs, None);
        write(&self.tree_refused, None);
        true
    }

    fn apply(&self, setting: ClaimEndpoint, reloading: bool) {
        let version = system::asterisk_version();
        let decision = claim_mode::decide(setting, &version);
        let previous = read(&self.decision);
        if previous.as_ref() != Some(&decision) {
            let line = format!("claim endpoint: {} ({})", decision.served, decision.reason);
            if decision.warn {
                log::warning(&line);
            } else {
                log::notice(&line);
            }
        }
        let served = decision.served;
        write(&self.decision, Some(decision));
        if served == Served::Module {
            self.install_tree_node();
        } else if !self.remove_tree_node() {
            log::warning("claim endpoint: this module's node is still in ARI's tree (a claim was still inside it)");
        }
        let docs = self.decide_docs();
        if self.serving_claims() || docs {
            self.serve_from_module(reloading);
        } else {
            http::unlink_claim_handler();
            http::unlink_docs_handler();
            drop(self.replace_conf(None));
        }
    }

    /// Whether this module serves the API description: decided from Asterisk's
    /// own `rest-api/events.json`, logged when the decision changes.
    fn decide_docs(&self) -> bool {
        let path = format!("{}/rest-api/{}", system::data_dir(), api_docs::FILE_NAME);
        let decision = api_docs::decide_file(&path);
        let previous = read(&self.docs);
        if previous.as_ref() != Some(&decision) {
            let line = format!("API description: {}", docs_summary(&decision));
            if decision.warn() {
                log::warning(&line);
            } else {
                log::notice(&line);
            }
        }
        let serves = decision.serves();
        if !serves {
            http::unlink_docs_handler();
        }
        write(&self.docs, Some(decision));
        serves
    }

    fn serving(&self, served: Served) -> bool {
        read(&self.decision).as_ref().map(|decision| decision.served) == Some(served)
    }

    fn tree_installed(&self) -> bool {
        self.tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some()
    }

    /// Whether the module's own HTTP handler serves claims: asked for, or
    /// standing in for a node ARI's tree could not take.
    fn http_claims(&self) -> bool {
        self.serving(Served::Http) || (self.serving(Served::Module) && !self.tree_installed())
    }

    /// Whether ari.conf is read: for the HTTP handlers, and for the node's
    /// check of WebSocket claims.
    fn serving_claims(&self) -> bool {
        self.http_claims() || self.tree_installed()
    }

    /// Puts the claim node into ARI's tree (if not there yet); on failure
    /// says why in one WARNING (again only when the reason changes).
    fn install_tree_node(&self) {
        let mut tree = self.tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if tree.is_some() {
            return;
        }
        match ari_tree::install(self.handlers.tree_claim) {
            Ok(installed) => {
                let replaced = if installed.replaced_claim { ", in place of res_ari_events' own" } else { "" };
                log::verbose(
                    2,
                    &format!("claim endpoint: POST /ari/events/claim is in ARI's own tree{replaced} (HTTP and WebSocket)"),
                );
                *tree = Some(installed);
                write(&self.tree_refused, None);
            }
            Err(ari_tree::NotInstalled(why)) => {
                drop(tree);
                if read(&self.tree_refused).as_deref() != Some(why.as_str()) {
                    log::warning(&format!(
                        "claim endpoint: the claim cannot be put into ARI's tree ({why}); this module's own HTTP \
                         handler serves POST /ari/events/claim instead (not over ARI's WebSocket)"
                    ));
                }
                write(&self.tree_refused, Some(why));
            }
        }
    }

    /// Gives res_ari_events its own node back; false if the node had to stay.
    fn remove_tree_node(&self) -> bool {
        let mut tree = self.tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(installed) = tree.take() else { return true };
        match installed.remove() {
            Ok(()) => {
                log::verbose(2, "claim endpoint: res_ari_events' own 'events' node is back in ARI's tree");
                true
            }
            Err(kept) => {
                *tree = Some(kept);
                false
            }
        }
    }

    fn serving_docs(&self) -> bool {
        read(&self.docs).as_ref().is_some_and(api_docs::Decision::serves)
    }

    /// ARI re-read its configuration: so does the endpoint, when it serves claims
    /// or the API description.
    pub fn ari_reloaded(&self) {
        if self.serving_claims() || self.serving_docs() {
            log::verbose(3, "claim endpoint: ARI reloaded its configuration; re-reading ari.conf");
            self.serve_from_module(true);
        }
    }

    /// Reads ari.conf into a new snapshot and links or unlinks the handlers this
    /// module serves as ARI is enabled or not. On pre-sorcery ARI the handlers
    /// stay linked: ARI's own `enabled`, read at each request, decides there, and
    /// the snapshot only supplies `allowed_origins` (and what ARI's struct could
    /// not give safely).
    fn serve_from_module(&self, reloading: bool) {
        let legacy = ari_legacy::is_available();
        let previous = self.current_conf();
        let conf = match crate::host::config::read(ARI_CONF) {
            ConfigFile::Loaded(sections) => {
                let (conf, warnings) =
                    ari_auth::parse(&sections, previous.as_deref(), |rules| Acl::compile(rules).map(Arc::new));
                for warning in &warnings {
                    if legacy {
                        // ARI, not this reading, decides who gets in there.
                        log::debug(1, || format!("claim endpoint: {warning}"));
                    } else {
                        log::warning(&format!("claim endpoint: {warning}"));
                    }
                }
                warn_of_websocket_acl_crash(&conf);
                Arc::new(conf)
            }
            missing_or_invalid => {
                let what =
                    if matches!(missing_or_invalid, ConfigFile::Missing) { "not found" } else { "could not be parsed" };
                match previous.clone() {
                    Some(previous) if reloading => {
                        log::warning(&format!("claim endpoint: {ARI_CONF} {what}; keeping the ARI users already read"));
                        previous
                    }
                    _ => {
                        log::warning(&format!(
                            "claim endpoint: {ARI_CONF} {what}; ARI is not configured, claims are not served"
                        ));
                        Arc::new(Conf::default())
                    }
                }
            }
        };
        let enabled = conf.enabled();
        drop(self.replace_conf(Some(conf)));
        drop(previous);
        let (claims, docs) = (self.http_claims(), self.serving_docs());
        if claims && legacy {
            if !http::is_linked() {
                log::verbose(2, "claim endpoint: serving POST /ari/events/claim; ARI itself checks the credentials");
            }
            http::link_claim_handler(self.handlers.claim);
        } else if enabled && claims {
            if !http::is_linked() {
                log::verbose(
                    2,
                    "claim endpoint: serving POST /ari/events/claim with ARI's authentication from ari.conf",
                );
            }
            http::link_claim_handler(self.handlers.claim);
        } else {
            if claims && (http::is_linked() || !reloading) {
                log::notice("claim endpoint: ARI is disabled in ari.conf, so /ari/events/claim is not served");
            }
            http::unlink_claim_handler();
        }
        if (enabled || legacy) && docs {
            if !http::docs_handler_linked() {
                log::verbose(2, "API description: serving GET /ari/api-docs/events.json with ARI's authentication");
            }
            http::link_docs_handler(self.handlers.docs);
        } else {
            if docs && (http::docs_handler_linked() || !reloading) {
                log::notice("API description: ARI is disabled in ari.conf, so this module does not serve it either");
            }
            http::unlink_docs_handler();
        }
    }

    /// One line for `stasis broadcast show settings`: the effective endpoint and why.
    pub fn describe(&self) -> String {
        let decision = read(&self.decision);
        match decision {
            None => "not started".into(),
            Some(decision) => {
                let state = match decision.served {
                    Served::Ari if module::is_running(c"res_ari_events.so") => String::new(),
                    Served::Ari => "; but res_ari_events.so is not running, so nothing serves it".into(),
                    Served::Module if self.tree_installed() => "; in ARI's own tree, over HTTP and WebSocket".into(),
                    Served::Module | Served::Http if !http::is_linked() => {
                        "; not served: ARI is disabled or not configured".into()
                    }
                    Served::Module => format!(
                        "; not in ARI's tree ({}), own HTTP handler linked instead",
                        read(&self.tree_refused).unwrap_or_default()
                    ),
                    Served::Http if ari_legacy::is_available() => {
                        "; handler linked, credentials checked by ARI itself".into()
                    }
                    Served::Http => {
                        let users = self.current_conf().map_or(0, |conf| conf.users.len());
                        format!("; handler linked, {users} ARI user(s)")
                    }
                };
                format!("{} ({}{state})", decision.served, decision.reason)
            }
        }
    }

    /// One line for `stasis broadcast show settings`: who serves the API
    /// description of events, and why.
    pub fn describe_docs(&self) -> String {
        let decision = read(&self.docs);
        match decision {
            None => "not started".into(),
            Some(decision) if decision.serves() && !http::docs_handler_linked() => {
                format!("{}; not served: ARI is disabled or not configured", docs_summary(&decision))
            }
            Some(decision) => docs_summary(&decision),
        }
    }

    /// Answers one request to the API description handler: ARI's checks as for
    /// the claim (body read first, then authentication), the method ARI allows
    /// on api-docs, then ARI's own answer for events.json with the module's
    /// entries added, in ARI's JSON format.
    pub fn serve_docs(&self, request: &HttpRequest<'_>) {
        self.judged(request, Docs);
    }

    /// Answers one request to the claim handler.
    pub fn serve(&self, request: &HttpRequest<'_>, claim: Claim<'_>) {
        self.judged(request, Claims { claim });
    }

    /// Runs `handler` with who judges the request's credentials: ARI itself on
    /// pre-sorcery ARI, else the module's reading of ari.conf.
    fn judged(&self, request: &HttpRequest<'_>, handler: impl Handler) {
        let Some(conf) = self.current_conf() else {
            handler.unconfigured(request);
            return;
        };
        let warn = |unverified: &ari_legacy::Unverified| self.warn_unverified(unverified);
        match ari_legacy::general() {
            None => handler.serve(request, conf.as_ref()),
            Some(read) => {
                let general = match read {
                    Ok(general) => Ok(general.map(|general| (general.enabled, general.auth_realm))),
                    Err(unverified) => {
                        warn(&unverified);
                        Err(())
                    }
                };
                let verdict = |user: &[u8], password: &[u8]| ari_verdict(user, password, &warn);
                let directory = AriItself::new(general, conf.as_ref(), verdict);
                // ARI disabled (or without configuration) has no `ari` URI linked:
                // the HTTP server answers 404, and so does the handler.
                if !Directory::<Arc<Acl>>::general(&directory).is_some_and(|general| general.enabled) {
                    request.not_found();
                    return;
                }
                handler.serve(request, &directory);
            }
        }
    }

    /// Answers a claim that reached the module's node in ARI's tree: ARI has
    /// authenticated it (or, over a WebSocket, the WebSocket) and applied its
    /// front door; the parameters as res_ari_events reads them (the last of
    /// each in the query, then a JSON body's member, which wins; a member
    /// that is not a string counts as missing).
    pub fn serve_tree(&self, request: &RestRequest<'_>, claim: Claim<'_>) {
        if request.came_over_websocket() && !self.websocket_may_write(request) {
            request.error(403, c"Forbidden", "Write access denied");
            return;
        }
        let params = request.params();
        let last = |name: &str| params.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let from_body = |value: Option<String>, member: Option<Option<String>>| member.unwrap_or(value);
        let channel_id = from_body(last("channelId"), request.body_string(c"channelId"));
        let application = from_body(last("application"), request.body_string(c"application"));
        let Some(channel_id) = channel_id.filter(|value| !value.is_empty()) else {
            return request.error(400, c"Bad Request", "channelId parameter is required");
        };
        let Some(application) = application.filter(|value| !value.is_empty()) else {
            return request.error(400, c"Bad Request", "application parameter is required");
        };
        match claim(&channel_id, &application) {
            ClaimOutcome::Won => request.no_content(),
            ClaimOutcome::NotFound | ClaimOutcome::NotAllowed => {
                request.error(404, c"Not Found", "Channel not found or not in broadcast state")
            }
            ClaimOutcome::AlreadyClaimed => {
                request.error(409, c"Conflict", "Channel has already been claimed by another application")
            }
        }
    }

    /// Whether a claim sent over an ARI WebSocket may write. ARI refuses a
    /// `read_only` user it has identified before the node is reached; but
    /// before 20.20.1, 21.12.3, 22.10.1 and 23.4.1 a WebSocket authenticated
    /// with `api_key` passes no user to its requests (GHSA-wcvv-g26m-wx5c).
    /// So: the credentials the request carries (the upgrade's Basic header,
    /// else an `api_key` parameter) as ARI would judge them; without any
    /// that pass, the request may write only if no ARI user is `read_only`.
    fn websocket_may_write(&self, request: &RestRequest<'_>) -> bool {
        let Some(conf) = self.current_conf() else { return false };
        let params = request.params();
        let ari_request =
            Request { method: ari_auth::Method::Post, params: &params, basic: request.basic_auth(), headers: &[], json: None };
        let host = CredentialsOnly;
        let warn = |unverified: &ari_legacy::Unverified| self.warn_unverified(unverified);
        let read_only = if ari_legacy::is_available() {
            let verdict = |user: &[u8], password: &[u8]| ari_verdict(user, password, &warn);
            let directory = AriItself::new(Err(()), conf.as_ref(), verdict);
            ari_auth::authenticate(&directory, &ari_request, &host).map(|accepted| accepted.read_only)
        } else {
            ari_auth::authenticate(conf.as_ref(), &ari_request, &host).map(|accepted| accepted.read_only)
        };
        match read_only {
            Some(read_only) => !read_only,
            None if conf.users.values().any(|user| user.read_only) => {
                log_request_notice(
                    "claim endpoint: a claim over an ARI WebSocket carries no credentials this module can check, \
                     and ari.conf has read_only users: refused (403). This Asterisk does not pass a WebSocket's \
                     api_key to its requests (fixed in 20.20.1, 21.12.3, 22.10.1, 23.4.1): open the WebSocket \
                     with HTTP Basic authentication, or add api_key to the request's query string",
                );
                false
            }
            None => true,
        }
    }

    fn warn_unverified(&self, unverified: &ari_legacy::Unverified) {
        if !self.ari_read_warned.swap(true, Ordering::SeqCst) {
            log::warning(&format!(
                "claim endpoint: {}, not what this module knows of ARI's private configuration; \
             the module's own reading of ari.conf stands in for it whenever that happens (said once)",
                unverified.0
            ));
        }
    }
}

/// `module (why)` when this module serves the description, `ari (why)` when ARI does.
/// On the releases whose ARI crashes on a WebSocket request from a user with
/// an ACL ([`claim_mode::websocket_crashes_on_acl_users`]), says which users
/// of ari.conf that is: a claim over the WebSocket, which this module makes
/// possible there, would take Asterisk down.
fn warn_of_websocket_acl_crash(conf: &Conf) {
    let version = system::asterisk_version();
    if !claim_mode::parse_version(&version).is_some_and(claim_mode::websocket_crashes_on_acl_users) {
        return;
    }
    let mut fenced: Vec<&str> =
        conf.users.values().filter(|user| !user.rules.is_empty()).map(|user| user.name.as_str()).collect();
    if fenced.is_empty() {
        return;
    }
    fenced.sort_unstable();
    log::warning(&format!(
        "claim endpoint: ARI of Asterisk {version} crashes (SIGSEGV) on any REST request over its WebSocket \
         that carries the credentials of a user with an ACL, a claim included; in ari.conf that is: {}. \
         Their applications must send claims over HTTP, not over the WebSocket (20.20.1, 22.10.1 and 23.4.1 fix this)",
        fenced.join(", ")
    ));
}

fn docs_summary(decision: &api_docs::Decision) -> String {
    format!("{} ({decision})", if decision.serves() { "module" } else { "ari" })
}

fn docs_with(request: &HttpRequest<'_>, directory: &impl Directory<Arc<Acl>>) {
    let headers = request.headers();
    let (cors, notices) = ari_auth::cors(directory.general(), &headers);
    let body = match request.read_body() {
        Ok(body) => body,
        Err(error) => {
            respond(request, &ari_auth::body_error(&cors, notices, error));
            return;
        }
    };
    for notice in &notices {
        log_request_notice(notice);
    }
    let params = match body {
        RequestBody::Form(mut form) => {
            form.extend(request.query_params());
            form
        }
        _ => request.query_params(),
    };
    let ari_request = Request {
        method: request.method(),
        params: &params,
        basic: request.basic_auth(),
        headers: &headers,
        json: None,
    };
    let cors = match ari_auth::admit(directory, &ari_request, &EndpointHost { request, claim: None }, cors) {
        Ok(admitted) => admitted.headers,
        Err(refusal) => return respond(request, &refusal),
    };
    if let Some(refusal) = api_docs::refuse_method(ari_request.method, cors.clone()) {
        return respond(request, &refusal);
    }
    let answer = request.ari_docs(api_docs::FILE_NAME);
    let completed = match &answer.body {
        Some(document) if answer.status == 200 => {
            document.compact().as_deref().and_then(api_docs::complete).as_deref().and_then(Json::parse)
        }
        _ => None,
    };
    let mut header_block: String = cors.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let text = match completed.as_ref().or(answer.body.as_ref()) {
        Some(json) => {
            header_block.push_str("Content-type: application/json\r\n");
            http::ari_json_text(json).unwrap_or_default()
        }
        None => String::new(),
    };
    request.send(answer.status, &answer.reason, &header_block, &text);
}

/// A 500 `{"message": …}` for an API description request the module could not answer.
pub fn answer_docs_error(request: &HttpRequest<'_>) {
    respond(request, &api_docs::internal_error());
}

/// What one of the module's HTTP handlers does once it knows who judges credentials.
trait Handler {
    /// The answer when ARI's configuration is not there at all.
    fn unconfigured(&self, request: &HttpRequest<'_>);
    fn serve(&self, request: &HttpRequest<'_>, directory: &impl Directory<Arc<Acl>>);
}

struct Claims<'c> {
    claim: Claim<'c>,
}

impl Handler for Claims<'_> {
    fn unconfigured(&self, request: &HttpRequest<'_>) {
        answer_internal_error(request);
    }
    fn serve(&self, request: &HttpRequest<'_>, directory: &impl Directory<Arc<Acl>>) {
        serve_with(request, directory, self.claim);
    }
}

struct Docs;

impl Handler for Docs {
    fn unconfigured(&self, request: &HttpRequest<'_>) {
        answer_docs_error(request);
    }
    fn serve(&self, request: &HttpRequest<'_>, directory: &impl Directory<Arc<Acl>>) {
        docs_with(request, directory);
    }
}

/// Pre-sorcery ARI's verdict on a user name and password.
fn ari_verdict(user: &[u8], password: &[u8], warn: &dyn Fn(&ari_legacy::Unverified)) -> AriVerdict {
    match ari_legacy::validate(user, password) {
        None | Some(ari_legacy::Verdict::Refused) => AriVerdict::Refused,
        Some(ari_legacy::Verdict::Accepted { read_only }) => {
            AriVerdict::Accepted { read_only: read_only.map_err(|unverified| warn(&unverified)).ok() }
        }
    }
}

fn serve_with(request: &HttpRequest<'_>, directory: &impl Directory<Arc<Acl>>, claim: Claim<'_>) {
    let headers = request.headers();
    let body = match request.read_body() {
        Ok(body) => body,
        Err(error) => {
            let (cors, notices) = ari_auth::cors(directory.general(), &headers);
            respond(request, &ari_auth::body_error(&cors, notices, error));
            return;
        }
    };
    let mut params = match &body {
        RequestBody::Form(form) => form.clone(),
        _ => Vec::new(),
    };
    params.extend(request.query_params());
    let json = match &body {
        RequestBody::Json(json) => Some(JsonFields {
            channel_id: body_field(json.string_member("channelId")),
            application: body_field(json.string_member("application")),
        }),
        _ => None,
    };
    let ari_request = Request {
        method: request.method(),
        params: &params,
        basic: request.basic_auth(),
        headers: &headers,
        json: json.as_ref(),
    };
    let response = ari_auth::answer(directory, &ari_request, &mut EndpointHost { request, claim: Some(claim) });
    respond(request, &response);
}

/// A 500 `{"message": …}` for a request the module could not answer.
pub fn answer_internal_error(request: &HttpRequest<'_>) {
    respond(request, &ari_auth::internal_error());
}

fn body_field(member: Option<Option<String>>) -> BodyField {
    match member {
        None => BodyField::Absent,
        Some(None) => BodyField::NotString,
        Some(Some(text)) => BodyField::Text(text),
    }
}

fn respond(request: &HttpRequest<'_>, response: &Response) {
    for notice in &response.notices {
        log_request_notice(notice);
    }
    let body = response.message.as_deref().map(http::ari_message_body).unwrap_or_default();
    if response.close {
        request.close_on_completion();
    }
    request.send(response.status, response.reason, &response.header_block(), &body);
}

/// What the ARI checks need from Asterisk, for one request.
struct EndpointHost<'r, 'a> {
    request: &'r HttpRequest<'a>,
    /// How claims are decided (`None` for the API description, which claims nothing).
    claim: Option<Claim<'r>>,
}

impl Host<Arc<Acl>> for EndpointHost<'_, '_> {
    fn crypt_matches(&self, password: &[u8], hash: &str) -> bool {
        system::crypt_matches(password, hash)
    }

    fn acl_allows(&self, acl: &Arc<Acl>) -> bool {
        acl.allows(self.request)
    }

    fn fully_booted(&self) -> bool {
        system::fully_booted()
    }

    fn claim(&mut self, channel_id: &str, application: &str) -> ClaimOutcome {
        self.claim.map_or(ClaimOutcome::NotFound, |claim| claim(channel_id, application))
    }
}

/// Authentication alone (the node's WebSocket check): nothing else is asked.
struct CredentialsOnly;

impl Host<Arc<Acl>> for CredentialsOnly {
    fn crypt_matches(&self, password: &[u8], hash: &str) -> bool {
        system::crypt_matches(password, hash)
    }

    fn acl_allows(&self, _acl: &Arc<Acl>) -> bool {
        true
    }

    fn fully_booted(&self) -> bool {
        true
    }

    fn claim(&mut self, _channel_id: &str, _application: &str) -> ClaimOutcome {
        ClaimOutcome::NotFound
    }
}
