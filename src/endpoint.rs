//! The claim endpoint: who serves `POST /ari/events/claim` (ARI's route or
//! this module's own handler, see [`crate::claim_mode`]), and, when it is
//! this module, serving it with ARI's authentication (see [`crate::ari_auth`]):
//! on pre-sorcery ARI, ARI itself validates each request's credentials
//! ([`crate::host::ari_legacy`]); on sorcery-based ARI, from the module's
//! reading of ari.conf, re-read whenever ARI reloads it.
//!
//! Load, reload and unload run one at a time (Asterisk's module loader
//! serialises them); requests run on HTTP threads at any time and only read
//! the current ari.conf snapshot, an `Arc` swapped whole.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::ari_auth::{self, AriConf, AriItself, AriVerdict, BodyField, Directory, Host, JsonFields, Request, Response};
use crate::broadcast::registry::ClaimOutcome;
use crate::claim_mode::{self, Decision, Served};
use crate::config;
use crate::host::acl::Acl;
use crate::host::config::ConfigFile;
use crate::host::http::{self, HttpRequest, RequestBody};
use crate::host::{ari_legacy, log, module, sorcery, system};

const ARI_CONF: &str = "ari.conf";

type Conf = AriConf<Arc<Acl>>;

/// ari.conf as the endpoint uses it; `None` unless this module serves claims.
static CONF: RwLock<Option<Arc<Conf>>> = RwLock::new(None);
/// The last decision, for `show settings`.
static DECISION: RwLock<Option<Decision>> = RwLock::new(None);
/// Whether reading ARI's private configuration failed a check already (said once).
static ARI_READ_WARNED: AtomicBool = AtomicBool::new(false);

fn current_conf() -> Option<Arc<Conf>> {
    CONF.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
}

fn replace_conf(conf: Option<Arc<Conf>>) -> Option<Arc<Conf>> {
    std::mem::replace(&mut *CONF.write().unwrap_or_else(|poisoned| poisoned.into_inner()), conf)
}

/// At load: decide who serves claims and, if this module does, link its handler.
pub fn start() {
    if ari_legacy::find() {
        log::debug(1, || {
            "claim endpoint: pre-sorcery ARI; its own ast_ari_config_validate_user checks each claim's credentials"
                .into()
        });
    } else if !sorcery::watch_ari_reloads() {
        log::debug(1, || {
            "claim endpoint: ARI's configuration cannot be observed; module reload re-reads ari.conf".into()
        });
    }
    apply(false);
}

/// At reload (after the settings were re-read): decide again, re-read ari.conf.
pub fn reload() {
    apply(true);
}

/// At unload: unlink the handler and wait for requests inside it to leave.
/// False, with the handler linked again, if some did not leave in time (a
/// forced unload then has to be refused: the module's code is still running).
pub fn stop() -> bool {
    if !http::unlink_claim_handler() {
        log::warning("claim endpoint: requests still inside the handler 5 s after it was unlinked; not unloading");
        http::link_claim_handler();
        return false;
    }
    // Unload runs alone (the loader serialises it with ARI's reload), so
    // nothing re-links the handler between the two steps.
    sorcery::unwatch_ari_reloads();
    ari_legacy::forget();
    // Dropped outside our lock: freeing ACLs calls into Asterisk.
    drop(replace_conf(None));
    *DECISION.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    true
}

fn apply(reloading: bool) {
    let version = system::asterisk_version();
    let decision = claim_mode::decide(config::current().claim_endpoint, &version);
    let previous = DECISION.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    if previous.as_ref() != Some(&decision) {
        let line = format!("claim endpoint: {} ({})", decision.served, decision.reason);
        if decision.warn {
            log::warning(&line);
        } else {
            log::notice(&line);
        }
    }
    match decision.served {
        Served::Module => serve_from_module(reloading),
        Served::Ari => {
            http::unlink_claim_handler();
            drop(replace_conf(None));
        }
    }
    *DECISION.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(decision);
}

/// ARI re-read its configuration: so does the endpoint, when it serves claims.
pub fn ari_reloaded() {
    if DECISION.read().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref().map(|decision| decision.served)
        == Some(Served::Module)
    {
        log::verbose(3, "claim endpoint: ARI reloaded its configuration; re-reading ari.conf");
        serve_from_module(true);
    }
}

/// Reads ari.conf into a new snapshot and links or unlinks the handler as ARI
/// is enabled or not. On pre-sorcery ARI the handler stays linked: ARI's own
/// `enabled`, read at each request, decides there, and the snapshot only
/// supplies `allowed_origins` (and what ARI's struct could not give safely).
fn serve_from_module(reloading: bool) {
    let legacy = ari_legacy::is_available();
    let previous = current_conf();
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
    drop(replace_conf(Some(conf)));
    drop(previous);
    if legacy {
        if !http::is_linked() {
            log::verbose(2, "claim endpoint: serving POST /ari/events/claim; ARI itself checks the credentials");
        }
        http::link_claim_handler();
    } else if enabled {
        if !http::is_linked() {
            log::verbose(2, "claim endpoint: serving POST /ari/events/claim with ARI's authentication from ari.conf");
        }
        http::link_claim_handler();
    } else {
        if http::is_linked() || !reloading {
            log::notice("claim endpoint: ARI is disabled in ari.conf, so /ari/events/claim is not served");
        }
        http::unlink_claim_handler();
    }
}

/// One line for `stasis broadcast show settings`: the effective endpoint and why.
pub fn describe() -> String {
    let decision = DECISION.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    match decision {
        None => "not started".into(),
        Some(decision) => {
            let state = match decision.served {
                Served::Ari if module::is_loaded(c"res_ari_events.so") => String::new(),
                Served::Ari => "; but res_ari_events.so is not loaded, so nothing serves it".into(),
                Served::Module if http::is_linked() && ari_legacy::is_available() => {
                    "; handler linked, credentials checked by ARI itself".into()
                }
                Served::Module if http::is_linked() => {
                    let users = current_conf().map_or(0, |conf| conf.users.len());
                    format!("; handler linked, {users} ARI user(s)")
                }
                Served::Module => "; not served: ARI is disabled or not configured".into(),
            };
            format!("{} ({}{state})", decision.served, decision.reason)
        }
    }
}

/// Answers one request to the handler.
pub fn serve(request: &HttpRequest<'_>) {
    let Some(conf) = current_conf() else {
        answer_internal_error(request);
        return;
    };
    match ari_legacy::general() {
        None => serve_with(request, conf.as_ref()),
        Some(read) => {
            let general = match read {
                Ok(general) => Ok(general.map(|general| (general.enabled, general.auth_realm))),
                Err(unverified) => {
                    warn_unverified(&unverified);
                    Err(())
                }
            };
            let directory = AriItself::new(general, conf.as_ref(), ari_verdict);
            // ARI disabled (or without configuration) has no `ari` URI linked:
            // the HTTP server answers 404, and so does the handler.
            if !Directory::<Arc<Acl>>::general(&directory).is_some_and(|general| general.enabled) {
                request.not_found();
                return;
            }
            serve_with(request, &directory);
        }
    }
}

/// Pre-sorcery ARI's verdict on a user name and password.
fn ari_verdict(user: &[u8], password: &[u8]) -> AriVerdict {
    match ari_legacy::validate(user, password) {
        None | Some(ari_legacy::Verdict::Refused) => AriVerdict::Refused,
        Some(ari_legacy::Verdict::Accepted { read_only }) => AriVerdict::Accepted {
            read_only: read_only.map_err(|unverified| warn_unverified(&unverified)).ok(),
        },
    }
}

fn warn_unverified(unverified: &ari_legacy::Unverified) {
    if !ARI_READ_WARNED.swap(true, Ordering::SeqCst) {
        log::warning(&format!(
            "claim endpoint: {}, not what this module knows of ARI's private configuration; \
             the module's own reading of ari.conf stands in for it whenever that happens (said once)",
            unverified.0
        ));
    }
}

fn serve_with(request: &HttpRequest<'_>, directory: &impl Directory<Arc<Acl>>) {
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
    let response = ari_auth::answer(directory, &ari_request, &mut EndpointHost { request });
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
        log::notice(notice);
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
        #[cfg(feature = "fault-injection")]
        if application == "inject-panic" {
            panic!("fault injection: claim of {channel_id} asked to panic");
        }
        crate::claim::claim(channel_id, application)
    }
}
