//! ARI's front door, re-implemented for what the module serves beside ARI
//! (the claim's HTTP handler, `claim_endpoint=http` or where the node in
//! ARI's tree cannot be installed; the API description, which ARI answers
//! before its tree) and for the node's `read_only` check of WebSocket claims
//! on releases whose ARI lets them through.
//!
//! Everything here is pure: `ari.conf` arrives as sections already read by
//! Asterisk's config API, a request arrives as plain values, and the few
//! things only Asterisk can do (crypt(3) validation, ACL evaluation against
//! the peer's address, "fully booted", the claim itself) are asked of a
//! [`Host`]. Who judges credentials is a [`Directory`]: on pre-sorcery ARI
//! ([`AriItself`]) it is ARI's own verdict, asked for every request; on
//! sorcery-based ARI, the module's reading of ari.conf ([`AriConf`]). The
//! order of the checks, the status lines and the messages are those of
//! `res_ari.c`/`res_ari_events.c` in Asterisk 22.10.1 (pre-sorcery ARI has
//! the same order, without step 3), so a client cannot tell which of the two
//! answered:
//!
//! 1. request body unreadable: 413/500/400 (before authentication, as ARI);
//! 2. no or bad credentials: 401 with `WWW-Authenticate: Basic realm="…"`;
//! 3. the user's `permit`/`deny`/`acl` refuse the peer: 403 "Access denied by ACL";
//! 4. not fully booted: 503 (connection closed);
//! 5. `read_only` user and a method other than GET/OPTIONS: 403 "Write access denied";
//! 6. OPTIONS: 204 with `Allow` (and the CORS preflight answer);
//! 7. any other method but POST: 405 with `Allow: OPTIONS,POST`;
//! 8. `channelId`/`application` missing: 400; then the claim: 204/404/409.

use std::collections::HashMap;

use crate::broadcast::args::is_true;
use crate::broadcast::registry::ClaimOutcome;
use crate::config::Section;
pub use crate::ari_types::{AclRule, BodyError, Credentials, Method};

/// `auth_realm` when ari.conf does not set one.
pub const DEFAULT_AUTH_REALM: &str = "Asterisk REST Interface";
/// What `Allow` lists for the claim resource (ARI prefixes OPTIONS to the
/// methods the resource has).
pub const ALLOW: &str = "OPTIONS,POST";

/// The `[general]` options that matter to the claim endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct General {
    pub enabled: bool,
    pub auth_realm: String,
    /// Comma-separated; `*` allows every origin.
    pub allowed_origins: String,
}

impl Default for General {
    fn default() -> General {
        General { enabled: true, auth_realm: DEFAULT_AUTH_REALM.into(), allowed_origins: String::new() }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordFormat {
    Plain,
    Crypt,
}

/// An ari.conf user. `A` is the compiled form of its ACL rules (Asterisk's
/// ACL list in the module; anything in tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User<A> {
    pub name: String,
    pub password: String,
    pub password_format: PasswordFormat,
    pub read_only: bool,
    pub rules: Vec<AclRule>,
    pub acl: A,
}

/// What ARI would know from ari.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AriConf<A> {
    /// `None` when ari.conf has no usable `[general]`: ARI then serves nothing.
    pub general: Option<General>,
    pub users: HashMap<String, User<A>>,
}

impl<A> AriConf<A> {
    /// Whether ARI serves HTTP at all with this configuration.
    pub fn enabled(&self) -> bool {
        self.general.as_ref().is_some_and(|general| general.enabled)
    }
}

impl<A> Default for AriConf<A> {
    fn default() -> AriConf<A> {
        AriConf { general: None, users: HashMap::new() }
    }
}

const GENERAL: &str = "general";
/// Options ARI 22.10.1 registers for `[general]`; others are ignored here.
const GENERAL_OPTIONS: [&str; 7] =
    ["type", "enabled", "pretty", "auth_realm", "allowed_origins", "channelvars", "websocket_write_timeout"];

/// Reads ari.conf's sections the way ARI's configuration does:
/// - `[general]` holds `enabled` (default yes), `auth_realm`, `allowed_origins`;
/// - a user is a section with `type=user`; it needs a non-empty `password`,
///   `password_format` `plain` or `crypt`, and no option ARI does not know
///   (ARI refuses such a user); `read_only` is an Asterisk truth value;
/// - a refused user keeps what `previous` had for that name (ARI keeps the
///   object it had); two sections with the same user name, or two
///   `[general]`, keep all of `previous`'s users or general.
///
/// `compile_acl` turns a user's rules into `A`; an error refuses the user.
/// Returns the configuration and a warning for everything refused.
pub fn parse<A: Clone>(
    sections: &[Section],
    previous: Option<&AriConf<A>>,
    mut compile_acl: impl FnMut(&[AclRule]) -> Result<A, String>,
) -> (AriConf<A>, Vec<String>) {
    let mut warnings = Vec::new();
    let general_sections: Vec<&Section> = sections.iter().filter(|section| section.name == GENERAL).collect();
    let general = match general_sections.as_slice() {
        [] => None,
        [section] => parse_general(section),
        _ => {
            warnings.push("ari.conf: more than one [general]; keeping the previous general settings".into());
            previous.and_then(|conf| conf.general.clone())
        }
    };

    let user_sections: Vec<&Section> = sections.iter().filter(|section| is_user_section(section)).collect();
    let mut names: Vec<&str> = user_sections.iter().map(|section| section.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        warnings.push(format!("ari.conf: user '{}' is defined twice; keeping the previous users", pair[0]));
        let users = previous.map(|conf| conf.users.clone()).unwrap_or_default();
        return (AriConf { general, users }, warnings);
    }

    let mut users = HashMap::new();
    for section in user_sections {
        match parse_user(section, &mut compile_acl) {
            Ok(user) => {
                users.insert(user.name.clone(), user);
            }
            Err(why) => {
                let kept = previous.and_then(|conf| conf.users.get(&section.name));
                let outcome = if kept.is_some() { "keeping its previous settings" } else { "it cannot authenticate" };
                warnings.push(format!("ari.conf: user '{}' refused ({why}); {outcome}", section.name));
                if let Some(user) = kept {
                    users.insert(user.name.clone(), user.clone());
                }
            }
        }
    }
    (AriConf { general, users }, warnings)
}

/// ARI's sorcery criterion: the section's `type` is exactly `user`.
fn is_user_section(section: &Section) -> bool {
    section.entries.iter().find(|entry| entry.name == "type").is_some_and(|entry| entry.value == "user")
}

/// ARI takes `[general]` by name only when every option in it is one it knows,
/// otherwise by `type=general`.
fn parse_general(section: &Section) -> Option<General> {
    let all_known = section.entries.iter().all(|entry| GENERAL_OPTIONS.contains(&entry.name.as_str()));
    let typed = section.entries.iter().find(|entry| entry.name == "type").is_some_and(|entry| entry.value == GENERAL);
    if !all_known && !typed {
        return None;
    }
    let mut general = General::default();
    for entry in &section.entries {
        match entry.name.as_str() {
            "enabled" => general.enabled = is_true(&entry.value),
            "auth_realm" => general.auth_realm = entry.value.clone(),
            "allowed_origins" => general.allowed_origins = entry.value.clone(),
            _ => {}
        }
    }
    Some(general)
}

fn parse_user<A>(
    section: &Section,
    compile_acl: &mut impl FnMut(&[AclRule]) -> Result<A, String>,
) -> Result<User<A>, String> {
    let mut password = String::new();
    let mut password_format = PasswordFormat::Plain;
    let mut read_only = false;
    let mut rules = Vec::new();
    for entry in &section.entries {
        match entry.name.as_str() {
            "type" => {}
            "password" => password = entry.value.clone(),
            "read_only" => read_only = is_true(&entry.value),
            "password_format" => {
                password_format = if entry.value.eq_ignore_ascii_case("plain") {
                    PasswordFormat::Plain
                } else if entry.value.eq_ignore_ascii_case("crypt") {
                    PasswordFormat::Crypt
                } else {
                    return Err(format!("password_format '{}' is neither plain nor crypt", entry.value));
                }
            }
            "permit" | "deny" | "acl" => rules.push(AclRule { sense: entry.name.clone(), value: entry.value.clone() }),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if password.is_empty() {
        return Err("no password".into());
    }
    let acl = compile_acl(&rules)?;
    Ok(User { name: section.name.clone(), password, password_format, read_only, rules, acl })
}

/// One of the claim parameters in a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyField {
    Absent,
    /// Present but not a string (ARI then treats the parameter as missing).
    NotString,
    Text(String),
}

/// `channelId` and `application` from a JSON request body; they override the
/// query string, as in ARI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonFields {
    pub channel_id: BodyField,
    pub application: BodyField,
}

/// A request to the claim resource.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    pub method: Method,
    /// Form-body parameters followed by query parameters, as ARI merges them.
    pub params: &'a [(String, String)],
    /// From `Authorization: Basic …`, as Asterisk's parser read it.
    pub basic: Option<Credentials>,
    /// Request headers, names as the client wrote them.
    pub headers: &'a [(String, String)],
    pub json: Option<&'a JsonFields>,
}

/// What only Asterisk knows or does.
pub trait Host<A> {
    /// crypt(3) validation of `password` against `hash`.
    fn crypt_matches(&self, password: &[u8], hash: &str) -> bool;
    /// Whether the user's ACL lets the peer in (an empty ACL does).
    fn acl_allows(&self, acl: &A) -> bool;
    fn fully_booted(&self) -> bool;
    fn claim(&mut self, channel_id: &str, application: &str) -> ClaimOutcome;
}

/// An answer, before serialisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    /// In the order ARI writes them.
    pub headers: Vec<(String, String)>,
    /// The `message` of the `{"message": …}` body; `None`: no body.
    pub message: Option<String>,
    /// Close the connection after answering.
    pub close: bool,
    /// Things ARI logs at NOTICE for such a request.
    pub notices: Vec<String>,
}

impl Response {
    fn new(status: u16, reason: &'static str, message: Option<&str>, headers: Vec<(String, String)>) -> Response {
        Response { status, reason, headers, message: message.map(str::to_owned), close: false, notices: Vec::new() }
    }

    fn with_header(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.to_owned(), value));
        self
    }

    fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// The headers as Asterisk's HTTP server takes them: `Name: value\r\n` each,
    /// then the JSON content type when there is a body.
    pub fn header_block(&self) -> String {
        let mut block: String = self.headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
        if self.message.is_some() {
            block.push_str("Content-type: application/json\r\n");
        }
        block
    }
}

/// The answer ARI gives when the body cannot be read (before any authentication).
pub fn body_error(conf_headers: &[(String, String)], origin_notices: Vec<String>, error: BodyError) -> Response {
    let headers = conf_headers.to_vec();
    let mut response = match error {
        BodyError::TooLarge => Response::new(413, "Request Entity Too Large", Some("Request body too large"), headers),
        BodyError::OutOfMemory { form: true } => {
            Response::new(500, "Internal Server Error", Some("Out of memory"), headers).closing()
        }
        BodyError::OutOfMemory { form: false } => {
            Response::new(500, "Internal Server Error", Some("Error processing request"), headers)
        }
        BodyError::Malformed => Response::new(400, "Bad Request", Some("Error parsing request body"), headers),
    };
    response.notices = origin_notices;
    response
}

/// The CORS headers ARI adds to every answer when the `Origin` header names an
/// allowed origin, and the notice it logs when it does not.
pub fn cors(general: Option<&General>, headers: &[(String, String)]) -> (Vec<(String, String)>, Vec<String>) {
    let Some(origin) = last_header(headers, "Origin") else { return (Vec::new(), Vec::new()) };
    if !origin_allowed(general, origin) {
        return (Vec::new(), vec![format!("Origin header '{origin}' does not match an allowed origin.")]);
    }
    (
        vec![
            ("Access-Control-Allow-Origin".into(), origin.to_owned()),
            ("Access-Control-Allow-Credentials".into(), "true".into()),
        ],
        Vec::new(),
    )
}

/// ARI matches header names case-sensitively here, and the last one wins.
fn last_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().rev().find(|(header, _)| header == name).map(|(_, value)| value.as_str())
}

fn origin_allowed(general: Option<&General>, origin: &str) -> bool {
    let allowed = general.map_or("", |general| general.allowed_origins.as_str());
    allowed.split(',').any(|candidate| candidate == "*" || candidate == origin)
}

/// A user ARI accepted, with what the later checks need.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted<'d, A> {
    pub read_only: bool,
    /// The user's ACL; `None` where ARI has no per-user ACLs.
    pub acl: Option<&'d A>,
}

/// Where ARI's `[general]` and its verdict on credentials come from.
pub trait Directory<A> {
    /// `None` when ARI has no configuration (it answers 500).
    fn general(&self) -> Option<&General>;
    /// Whether a request parameter called `name` is the `api_key`.
    fn is_api_key(&self, name: &str) -> bool;
    fn validate<H: Host<A>>(&self, credentials: &Credentials, host: &H) -> Option<Accepted<'_, A>>;
}

/// The module's own reading of ari.conf (sorcery-based ARI, whose reloads the
/// module observes).
impl<A> Directory<A> for AriConf<A> {
    fn general(&self) -> Option<&General> {
        self.general.as_ref()
    }

    /// As ARI 22.10.1 compares it: exactly.
    fn is_api_key(&self, name: &str) -> bool {
        name == "api_key"
    }

    fn validate<H: Host<A>>(&self, credentials: &Credentials, host: &H) -> Option<Accepted<'_, A>> {
        if credentials.user.is_empty() || credentials.password.is_empty() {
            return None;
        }
        let user = std::str::from_utf8(&credentials.user).ok().and_then(|name| self.users.get(name))?;
        let valid = match user.password_format {
            PasswordFormat::Plain => user.password.as_bytes() == credentials.password.as_slice(),
            PasswordFormat::Crypt => host.crypt_matches(&credentials.password, &user.password),
        };
        valid.then_some(Accepted { read_only: user.read_only, acl: Some(&user.acl) })
    }
}

/// What pre-sorcery ARI (`ast_ari_config_validate_user`) answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AriVerdict {
    Refused,
    /// `read_only: None`: accepted, but the flag could not be read safely.
    Accepted { read_only: Option<bool> },
}

/// Pre-sorcery ARI (Asterisk 20.0–20.14, 21.0–21.9, 22.0–22.4) as the checks
/// see it: ARI itself validates every request's credentials, so a password
/// changed by `module reload res_ari.so` applies at once; `enabled` and the
/// realm are ARI's own too. ARI offers nothing for `allowed_origins`, which
/// comes from the module's reading of ari.conf (`own`), as does whatever
/// could not be read from ARI safely. That ARI has no per-user ACLs.
pub struct AriItself<'o, A, V> {
    general: Option<General>,
    own: &'o AriConf<A>,
    verdict: V,
}

impl<'o, A, V: Fn(&[u8], &[u8]) -> AriVerdict> AriItself<'o, A, V> {
    /// `ari_general`: ARI's `enabled` and realm, `Ok(None)` when ARI has no
    /// configuration, `Err(())` when they could not be read safely.
    pub fn new(ari_general: Result<Option<(bool, String)>, ()>, own: &'o AriConf<A>, verdict: V) -> Self {
        let general = match ari_general {
            Ok(Some((enabled, auth_realm))) => {
                let allowed_origins = own.general.as_ref().map(|general| general.allowed_origins.clone());
                Some(General { enabled, auth_realm, allowed_origins: allowed_origins.unwrap_or_default() })
            }
            Ok(None) => None,
            Err(()) => own.general.clone(),
        };
        AriItself { general, own, verdict }
    }
}

impl<A, V: Fn(&[u8], &[u8]) -> AriVerdict> Directory<A> for AriItself<'_, A, V> {
    fn general(&self) -> Option<&General> {
        self.general.as_ref()
    }

    /// That ARI compares the parameter name with strcasecmp.
    fn is_api_key(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("api_key")
    }

    fn validate<H: Host<A>>(&self, credentials: &Credentials, _host: &H) -> Option<Accepted<'_, A>> {
        match (self.verdict)(&credentials.user, &credentials.password) {
            AriVerdict::Refused => None,
            AriVerdict::Accepted { read_only: Some(read_only) } => Some(Accepted { read_only, acl: None }),
            // ARI finds users case-insensitively; a user the module's reading
            // does not know is taken as read-only (no write without proof).
            AriVerdict::Accepted { read_only: None } => {
                let known =
                    self.own.users.values().find(|user| user.name.as_bytes().eq_ignore_ascii_case(&credentials.user));
                Some(Accepted { read_only: known.is_none_or(|user| user.read_only), acl: None })
            }
        }
    }
}

/// The user the request authenticates as: HTTP Basic if the header parsed,
/// else the first `api_key=user:password` parameter.
pub fn authenticate<'d, A, D: Directory<A>>(
    directory: &'d D,
    request: &Request<'_>,
    host: &impl Host<A>,
) -> Option<Accepted<'d, A>> {
    let credentials = request.basic.clone().or_else(|| api_key(request.params, |name| directory.is_api_key(name)))?;
    directory.validate(&credentials, host)
}

/// ARI looks at the first `api_key` only; without a non-empty password after
/// the first ':' it is no credential at all.
fn api_key(params: &[(String, String)], is_api_key: impl Fn(&str) -> bool) -> Option<Credentials> {
    let (_, value) = params.iter().find(|(name, _)| is_api_key(name))?;
    let (user, password) = value.split_once(':')?;
    (!password.is_empty())
        .then(|| Credentials { user: user.as_bytes().to_vec(), password: password.as_bytes().to_vec() })
}

/// The whole answer to a request whose body was read.
pub fn answer<A>(directory: &impl Directory<A>, request: &Request<'_>, host: &mut impl Host<A>) -> Response {
    let (headers, notices) = cors(directory.general(), request.headers);
    let mut response = checked_answer(directory, request, host, headers);
    response.notices.splice(0..0, notices);
    response
}

/// A request ARI's checks let through.
pub struct Admitted<'c> {
    pub general: &'c General,
    /// The CORS headers given to [`admit`], for the answer.
    pub headers: Vec<(String, String)>,
}

/// ARI's checks before it looks at which resource is asked for (steps 2 to 5
/// above, for every resource the module serves): the request goes on, or
/// gets the refusal.
pub fn admit<'c, A>(
    directory: &'c impl Directory<A>,
    request: &Request<'_>,
    host: &impl Host<A>,
    headers: Vec<(String, String)>,
) -> Result<Admitted<'c>, Response> {
    let Some(general) = directory.general() else {
        return Err(Response::new(500, "Server Error", Some("URI handler config missing"), headers).closing());
    };
    let Some(user) = authenticate(directory, request, host) else {
        return Err(Response::new(401, "Unauthorized", Some("Authentication required"), headers)
            .with_header("WWW-Authenticate", format!("Basic realm=\"{}\"", general.auth_realm)));
    };
    if user.acl.is_some_and(|acl| !host.acl_allows(acl)) {
        return Err(Response::new(403, "Forbidden", Some("Access denied by ACL"), headers));
    }
    if !host.fully_booted() {
        return Err(Response::new(503, "Service Unavailable", Some("Asterisk not booted"), headers).closing());
    }
    if user.read_only && !matches!(request.method, Method::Get | Method::Options) {
        return Err(Response::new(403, "Forbidden", Some("Write access denied"), headers));
    }
    Ok(Admitted { general, headers })
}

fn checked_answer<A>(
    directory: &impl Directory<A>,
    request: &Request<'_>,
    host: &mut impl Host<A>,
    headers: Vec<(String, String)>,
) -> Response {
    let Admitted { general, headers } = match admit(directory, request, host, headers) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    match request.method {
        Method::Options => return preflight(general, request, headers),
        Method::Post => {}
        _ => {
            return Response::new(405, "Method Not Allowed", Some("Invalid method"), headers)
                .with_header("Allow", ALLOW.into())
        }
    }
    let (channel_id, application) = claim_parameters(request);
    let Some(channel_id) = channel_id.filter(|value| !value.is_empty()) else {
        return Response::new(400, "Bad Request", Some("channelId parameter is required"), headers);
    };
    let Some(application) = application.filter(|value| !value.is_empty()) else {
        return Response::new(400, "Bad Request", Some("application parameter is required"), headers);
    };
    match host.claim(&channel_id, &application) {
        ClaimOutcome::Won => Response::new(204, "No Content", None, headers),
        ClaimOutcome::NotFound | ClaimOutcome::NotAllowed => {
            Response::new(404, "Not Found", Some("Channel not found or not in broadcast state"), headers)
        }
        ClaimOutcome::AlreadyClaimed => {
            Response::new(409, "Conflict", Some("Channel has already been claimed by another application"), headers)
        }
    }
}

/// The answer to a claim that failed inside the module (as res_ari_events
/// answers an unexpected result of the claim function).
pub fn internal_error() -> Response {
    Response::new(500, "Internal Server Error", Some("Failed to claim channel"), Vec::new())
}

/// OPTIONS: 204 with `Allow`; for an allowed `Origin` asking about POST, the
/// CORS preflight headers too.
fn preflight(general: &General, request: &Request<'_>, headers: Vec<(String, String)>) -> Response {
    let mut response = Response::new(204, "No Content", None, headers).with_header("Allow", ALLOW.into());
    let Some(origin) = last_header(request.headers, "Origin") else { return response };
    if !origin_allowed(Some(general), origin) {
        response.notices.push(format!("Origin header '{origin}' does not match an allowed origin."));
        return response;
    }
    if last_header(request.headers, "Access-Control-Request-Method") != Some("POST") {
        return response;
    }
    response = response.with_header("Access-Control-Allow-Methods", ALLOW.into());
    match last_header(request.headers, "Access-Control-Request-Headers") {
        Some(asked) if !asked.is_empty() => response.with_header("Access-Control-Allow-Headers", asked.to_owned()),
        _ => response,
    }
}

/// `channelId` and `application`: the last of each in the parameters, then a
/// JSON body's field (a non-string one counts as missing).
fn claim_parameters(request: &Request<'_>) -> (Option<String>, Option<String>) {
    let last = |name: &str| request.params.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let mut channel_id = last("channelId");
    let mut application = last("application");
    if let Some(json) = request.json {
        override_with(&mut channel_id, &json.channel_id);
        override_with(&mut application, &json.application);
    }
    (channel_id, application)
}

fn override_with(value: &mut Option<String>, field: &BodyField) {
    match field {
        BodyField::Absent => {}
        BodyField::NotString => *value = None,
        BodyField::Text(text) => *value = Some(text.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Entry;

    fn section(name: &str, lines: &[(&str, &str)]) -> Section {
        Section {
            name: name.into(),
            entries: lines
                .iter()
                .enumerate()
                .map(|(n, (name, value))| Entry { name: (*name).into(), value: (*value).into(), line: n as i32 + 1 })
                .collect(),
        }
    }

    /// ACLs in tests: the rules themselves; "bad" values do not compile.
    fn compile(rules: &[AclRule]) -> Result<Vec<AclRule>, String> {
        match rules.iter().find(|rule| rule.value == "bad") {
            Some(rule) => Err(format!("bad ACL '{}'", rule.value)),
            None => Ok(rules.to_vec()),
        }
    }

    fn standard() -> AriConf<Vec<AclRule>> {
        let sections = vec![
            section(
                "general",
                &[
                    ("enabled", "yes"),
                    ("auth_realm", "Claims"),
                    ("allowed_origins", "http://a.example,http://b.example"),
                ],
            ),
            section("test", &[("type", "user"), ("password", "test")]),
            section("hashed", &[("type", "user"), ("password", "$6$salt$hash"), ("password_format", "crypt")]),
            section("viewer", &[("type", "user"), ("password", "v"), ("read_only", "yes")]),
            section(
                "fenced",
                &[("type", "user"), ("password", "f"), ("deny", "0.0.0.0/0.0.0.0"), ("permit", "10.0.0.0/8")],
            ),
        ];
        let (conf, warnings) = parse(&sections, None, compile);
        assert!(warnings.is_empty(), "{warnings:?}");
        conf
    }

    /// A host where crypt hashes are "$6$salt$" + the password, ACLs deny when
    /// they contain a `deny` rule and no `permit` of 127.0.0.1, and claims
    /// answer from a fixed table.
    struct FakeHost {
        booted: bool,
        claims: Vec<(String, String)>,
        outcome: ClaimOutcome,
    }

    impl FakeHost {
        fn new() -> FakeHost {
            FakeHost { booted: true, claims: Vec::new(), outcome: ClaimOutcome::Won }
        }
    }

    impl Host<Vec<AclRule>> for FakeHost {
        fn crypt_matches(&self, password: &[u8], hash: &str) -> bool {
            hash.strip_prefix("$6$salt$").is_some_and(|plain| plain.as_bytes() == password)
        }
        fn acl_allows(&self, acl: &Vec<AclRule>) -> bool {
            !acl.iter().any(|rule| rule.sense == "deny")
                || acl.iter().any(|rule| rule.sense == "permit" && rule.value == "127.0.0.1")
        }
        fn fully_booted(&self) -> bool {
            self.booted
        }
        fn claim(&mut self, channel_id: &str, application: &str) -> ClaimOutcome {
            self.claims.push((channel_id.into(), application.into()));
            self.outcome
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| ((*name).into(), (*value).into())).collect()
    }

    fn basic(user: &str, password: &str) -> Option<Credentials> {
        Some(Credentials { user: user.as_bytes().to_vec(), password: password.as_bytes().to_vec() })
    }

    const CLAIM: &[(&str, &str)] = &[("channelId", "chan-1"), ("application", "app-1")];

    fn post<'a>(params: &'a [(String, String)], basic: Option<Credentials>) -> Request<'a> {
        Request { method: Method::Post, params, basic, headers: &[], json: None }
    }

    fn run(conf: &AriConf<Vec<AclRule>>, request: &Request<'_>) -> (Response, FakeHost) {
        let mut host = FakeHost::new();
        let response = answer(conf, request, &mut host);
        (response, host)
    }

    #[test]
    fn basic_credentials_claim() {
        let conf = standard();
        let claim = params(CLAIM);
        let (response, host) = run(&conf, &post(&claim, basic("test", "test")));
        assert_eq!((response.status, response.reason, response.message), (204, "No Content", None));
        assert_eq!(host.claims, vec![("chan-1".to_owned(), "app-1".to_owned())]);
        assert_eq!(response.headers, vec![]);
    }

    #[test]
    fn no_credentials_is_401_with_the_realm() {
        let conf = standard();
        let claim = params(CLAIM);
        let (response, host) = run(&conf, &post(&claim, None));
        assert_eq!(response.status, 401);
        assert_eq!(response.reason, "Unauthorized");
        assert_eq!(response.message.as_deref(), Some("Authentication required"));
        assert_eq!(response.headers, vec![("WWW-Authenticate".to_owned(), "Basic realm=\"Claims\"".to_owned())]);
        assert_eq!(
            response.header_block(),
            "WWW-Authenticate: Basic realm=\"Claims\"\r\nContent-type: application/json\r\n"
        );
        assert!(host.claims.is_empty());
    }

    #[test]
    fn default_realm() {
        let (conf, _) =
            parse(&[section("general", &[]), section("u", &[("type", "user"), ("password", "p")])], None, compile);
        let claim = params(CLAIM);
        let (response, _) = run(&conf, &post(&claim, basic("u", "wrong")));
        assert_eq!(response.headers[0].1, "Basic realm=\"Asterisk REST Interface\"");
    }

    #[test]
    fn wrong_password_unknown_user_empty_parts_are_401() {
        let conf = standard();
        let claim = params(CLAIM);
        for credentials in [
            basic("test", "nope"),
            basic("nobody", "test"),
            basic("", "test"),
            basic("test", ""),
            basic("TEST", "test"),
        ] {
            let (response, _) = run(&conf, &post(&claim, credentials.clone()));
            assert_eq!(response.status, 401, "{credentials:?}");
        }
    }

    #[test]
    fn api_key_rules() {
        let conf = standard();
        let cases: &[(&[(&str, &str)], u16)] = &[
            (&[("api_key", "test:test")], 204),
            (&[("api_key", "test:bad")], 401),
            (&[("api_key", "test")], 401),
            (&[("api_key", "test:")], 401),
            (&[("api_key", ":test")], 401),
            (&[("api_key", "")], 401),
            // The password runs to the end: only the first ':' splits.
            (&[("api_key", "test:test:x")], 401),
            // Only the first api_key counts.
            (&[("api_key", "test:bad"), ("api_key", "test:test")], 401),
            (&[("api_key", "test:test"), ("api_key", "test:bad")], 204),
        ];
        for (keys, expected) in cases {
            let mut list = params(keys);
            list.extend(params(CLAIM));
            let (response, _) = run(&conf, &post(&list, None));
            assert_eq!(response.status, *expected, "{keys:?}");
        }
    }

    #[test]
    fn basic_header_wins_over_api_key() {
        let conf = standard();
        let mut list = params(&[("api_key", "test:test")]);
        list.extend(params(CLAIM));
        let (response, _) = run(&conf, &post(&list, basic("test", "bad")));
        assert_eq!(response.status, 401);
        let (response, _) =
            run(&conf, &post(&params(&[("api_key", "test:bad"), CLAIM[0], CLAIM[1]]), basic("test", "test")));
        assert_eq!(response.status, 204);
    }

    #[test]
    fn crypt_passwords_go_to_the_host() {
        let conf = standard();
        let claim = params(CLAIM);
        assert_eq!(run(&conf, &post(&claim, basic("hashed", "hash"))).0.status, 204);
        assert_eq!(run(&conf, &post(&claim, basic("hashed", "$6$salt$hash"))).0.status, 401);
    }

    #[test]
    fn read_only_user_may_not_post_but_gets_405_for_get() {
        let conf = standard();
        let claim = params(CLAIM);
        let (response, host) = run(&conf, &post(&claim, basic("viewer", "v")));
        assert_eq!((response.status, response.message.as_deref()), (403, Some("Write access denied")));
        assert!(host.claims.is_empty());
        let get = Request { method: Method::Get, ..post(&claim, basic("viewer", "v")) };
        let (response, _) = run(&conf, &get);
        assert_eq!((response.status, response.message.as_deref()), (405, Some("Invalid method")));
        let head = Request { method: Method::Head, ..post(&claim, basic("viewer", "v")) };
        assert_eq!(run(&conf, &head).0.status, 403);
        let options = Request { method: Method::Options, ..post(&claim, basic("viewer", "v")) };
        assert_eq!(run(&conf, &options).0.status, 204);
    }

    #[test]
    fn acl_refusal_is_403_before_everything_else() {
        let conf = standard();
        let claim = params(CLAIM);
        let (response, host) = run(&conf, &post(&claim, basic("fenced", "f")));
        assert_eq!((response.status, response.reason), (403, "Forbidden"));
        assert_eq!(response.message.as_deref(), Some("Access denied by ACL"));
        assert!(host.claims.is_empty());
    }

    #[test]
    fn acl_check_comes_before_boot_and_boot_before_read_only() {
        let conf = standard();
        let claim = params(CLAIM);
        let mut host = FakeHost { booted: false, ..FakeHost::new() };
        assert_eq!(answer(&conf, &post(&claim, basic("fenced", "f")), &mut host).status, 403);
        let response = answer(&conf, &post(&claim, basic("viewer", "v")), &mut host);
        assert_eq!(
            (response.status, response.message.as_deref(), response.close),
            (503, Some("Asterisk not booted"), true)
        );
        assert_eq!(answer(&conf, &post(&claim, None), &mut host).status, 401);
    }

    #[test]
    fn methods() {
        let conf = standard();
        let claim = params(CLAIM);
        for method in [Method::Get, Method::Head, Method::Put, Method::Delete, Method::Unknown] {
            let request = Request { method, ..post(&claim, basic("test", "test")) };
            let (response, host) = run(&conf, &request);
            assert_eq!((response.status, response.reason), (405, "Method Not Allowed"), "{method:?}");
            assert_eq!(response.headers, vec![("Allow".to_owned(), "OPTIONS,POST".to_owned())]);
            assert!(host.claims.is_empty());
        }
        let request = Request { method: Method::Options, ..post(&claim, basic("test", "test")) };
        let (response, _) = run(&conf, &request);
        assert_eq!((response.status, response.message.clone()), (204, None));
        assert_eq!(response.header_block(), "Allow: OPTIONS,POST\r\n");
        // Without credentials, every method is 401 first.
        let request = Request { method: Method::Get, ..post(&claim, None) };
        assert_eq!(run(&conf, &request).0.status, 401);
    }

    #[test]
    fn missing_and_empty_parameters() {
        let conf = standard();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("application", "a")], "channelId parameter is required"),
            (&[("channelId", ""), ("application", "a")], "channelId parameter is required"),
            (&[("channelId", "c")], "application parameter is required"),
            (&[], "channelId parameter is required"),
        ];
        for (list, message) in cases {
            let list = params(list);
            let (response, host) = run(&conf, &post(&list, basic("test", "test")));
            assert_eq!((response.status, response.message.as_deref()), (400, Some(*message)), "{list:?}");
            assert!(host.claims.is_empty());
        }
    }

    #[test]
    fn last_parameter_wins_and_json_overrides() {
        let conf = standard();
        let list = params(&[("channelId", "first"), ("channelId", "second"), ("application", "a")]);
        let (_, host) = run(&conf, &post(&list, basic("test", "test")));
        assert_eq!(host.claims, vec![("second".to_owned(), "a".to_owned())]);

        let json = JsonFields { channel_id: BodyField::Text("from-body".into()), application: BodyField::Absent };
        let request = Request { json: Some(&json), ..post(&list, basic("test", "test")) };
        let (_, host) = run(&conf, &request);
        assert_eq!(host.claims, vec![("from-body".to_owned(), "a".to_owned())]);

        let json = JsonFields { channel_id: BodyField::Text("c".into()), application: BodyField::NotString };
        let request = Request { json: Some(&json), ..post(&list, basic("test", "test")) };
        let (response, _) = run(&conf, &request);
        assert_eq!(response.message.as_deref(), Some("application parameter is required"));
    }

    #[test]
    fn claim_outcomes() {
        let conf = standard();
        let claim = params(CLAIM);
        for (outcome, status, message) in [
            (ClaimOutcome::NotFound, 404, "Channel not found or not in broadcast state"),
            (ClaimOutcome::NotAllowed, 404, "Channel not found or not in broadcast state"),
            (ClaimOutcome::AlreadyClaimed, 409, "Channel has already been claimed by another application"),
        ] {
            let mut host = FakeHost { outcome, ..FakeHost::new() };
            let response = answer(&conf, &post(&claim, basic("test", "test")), &mut host);
            assert_eq!((response.status, response.message.as_deref()), (status, Some(message)));
            assert_eq!(response.header_block(), "Content-type: application/json\r\n");
        }
    }

    #[test]
    fn cors_headers_for_allowed_origins_only() {
        let conf = standard();
        let claim = params(CLAIM);
        let headers = params(&[("Origin", "http://b.example")]);
        let request = Request { headers: &headers, ..post(&claim, None) };
        let (response, _) = run(&conf, &request);
        assert_eq!(
            response.header_block(),
            "Access-Control-Allow-Origin: http://b.example\r\nAccess-Control-Allow-Credentials: true\r\n\
             WWW-Authenticate: Basic realm=\"Claims\"\r\nContent-type: application/json\r\n"
        );
        let headers = params(&[("Origin", "http://evil.example")]);
        let request = Request { headers: &headers, ..post(&claim, basic("test", "test")) };
        let (response, _) = run(&conf, &request);
        assert!(response.headers.is_empty());
        assert_eq!(
            response.notices,
            vec!["Origin header 'http://evil.example' does not match an allowed origin.".to_owned()]
        );
        // The header name is matched case-sensitively, as ARI does.
        let headers = params(&[("origin", "http://b.example")]);
        let request = Request { headers: &headers, ..post(&claim, basic("test", "test")) };
        assert!(run(&conf, &request).0.headers.is_empty());
    }

    #[test]
    fn preflight_answer() {
        let conf = standard();
        let claim = params(CLAIM);
        let headers = params(&[
            ("Origin", "http://a.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "Content-Type"),
        ]);
        let request = Request { method: Method::Options, headers: &headers, ..post(&claim, basic("test", "test")) };
        let (response, _) = run(&conf, &request);
        assert_eq!(
            response.header_block(),
            "Access-Control-Allow-Origin: http://a.example\r\nAccess-Control-Allow-Credentials: true\r\n\
             Allow: OPTIONS,POST\r\nAccess-Control-Allow-Methods: OPTIONS,POST\r\n\
             Access-Control-Allow-Headers: Content-Type\r\n"
        );
        let headers = params(&[("Origin", "http://a.example"), ("Access-Control-Request-Method", "GET")]);
        let request = Request { method: Method::Options, headers: &headers, ..post(&claim, basic("test", "test")) };
        let (response, _) = run(&conf, &request);
        assert_eq!(
            response.header_block(),
            "Access-Control-Allow-Origin: http://a.example\r\nAccess-Control-Allow-Credentials: true\r\nAllow: OPTIONS,POST\r\n"
        );
    }

    #[test]
    fn wildcard_origin() {
        let (conf, _) = parse(&[section("general", &[("allowed_origins", "*")])], None, compile);
        let (headers, notices) = cors(conf.general.as_ref(), &params(&[("Origin", "http://x")]));
        assert_eq!(headers.len(), 2);
        assert!(notices.is_empty());
    }

    #[test]
    fn body_errors() {
        let response = body_error(&[], Vec::new(), BodyError::Malformed);
        assert_eq!(
            (response.status, response.reason, response.message.as_deref()),
            (400, "Bad Request", Some("Error parsing request body"))
        );
        let response = body_error(&[], Vec::new(), BodyError::TooLarge);
        assert_eq!((response.status, response.message.as_deref()), (413, Some("Request body too large")));
        assert!(body_error(&[], Vec::new(), BodyError::OutOfMemory { form: true }).close);
        assert!(!body_error(&[], Vec::new(), BodyError::OutOfMemory { form: false }).close);
    }

    #[test]
    fn general_section() {
        let (conf, _) = parse::<Vec<AclRule>>(&[], None, compile);
        assert!(!conf.enabled(), "no [general]: ARI serves nothing");
        let (conf, _) = parse::<Vec<AclRule>>(&[section("general", &[("enabled", "no")])], None, compile);
        assert!(!conf.enabled());
        let (conf, _) =
            parse::<Vec<AclRule>>(&[section("general", &[("enabled", "yes"), ("pretty", "yes")])], None, compile);
        assert!(conf.enabled());
        // ARI does not take a [general] with an option it does not know (unless type=general).
        let (conf, _) = parse::<Vec<AclRule>>(&[section("general", &[("bogus", "1")])], None, compile);
        assert!(conf.general.is_none());
        let (conf, _) =
            parse::<Vec<AclRule>>(&[section("general", &[("type", "general"), ("bogus", "1")])], None, compile);
        assert!(conf.enabled());
    }

    #[test]
    fn user_sections() {
        let sections = vec![
            section("general", &[]),
            section("ok", &[("type", "user"), ("password", "p"), ("read_only", "on"), ("password_format", "PLAIN")]),
            section("notype", &[("password", "p")]),
            section("othertype", &[("type", "User"), ("password", "p")]),
            section("nopass", &[("type", "user")]),
            section("badformat", &[("type", "user"), ("password", "p"), ("password_format", "md5")]),
            section("unknown", &[("type", "user"), ("password", "p"), ("colour", "blue")]),
            section("badacl", &[("type", "user"), ("password", "p"), ("permit", "bad")]),
            section(
                "acl",
                &[
                    ("type", "user"),
                    ("password", "p"),
                    ("deny", "0.0.0.0/0"),
                    ("permit", "127.0.0.1"),
                    ("acl", "named"),
                ],
            ),
        ];
        let (conf, warnings) = parse(&sections, None, compile);
        let mut names: Vec<&str> = conf.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["acl", "ok"]);
        assert!(conf.users["ok"].read_only);
        assert_eq!(
            conf.users["acl"].rules.iter().map(|rule| (rule.sense.as_str(), rule.value.as_str())).collect::<Vec<_>>(),
            [("deny", "0.0.0.0/0"), ("permit", "127.0.0.1"), ("acl", "named")]
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("'unknown'") && w.contains("colour")), "{warnings:?}");
    }

    #[test]
    fn reload_keeps_what_ari_keeps() {
        let first = vec![
            section("general", &[("auth_realm", "One")]),
            section("a", &[("type", "user"), ("password", "old")]),
            section("b", &[("type", "user"), ("password", "b")]),
        ];
        let (previous, _) = parse(&first, None, compile);
        // A user refused on reload keeps its previous settings; others update.
        let second = vec![
            section("general", &[("auth_realm", "Two")]),
            section("a", &[("type", "user"), ("password", "new"), ("password_format", "rot13")]),
            section("b", &[("type", "user"), ("password", "b2")]),
        ];
        let (conf, warnings) = parse(&second, Some(&previous), compile);
        assert_eq!(conf.users["a"].password, "old");
        assert_eq!(conf.users["b"].password, "b2");
        assert_eq!(conf.general.as_ref().map(|g| g.auth_realm.as_str()), Some("Two"));
        assert!(warnings[0].contains("keeping its previous settings"), "{warnings:?}");
        // A duplicate user keeps all previous users.
        let third = vec![
            section("general", &[]),
            section("c", &[("type", "user"), ("password", "c")]),
            section("c", &[("type", "user"), ("password", "c")]),
        ];
        let (conf, warnings) = parse(&third, Some(&previous), compile);
        let mut names: Vec<&str> = conf.users.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b"]);
        assert!(warnings[0].contains("defined twice"));
    }

    #[test]
    fn non_utf8_credentials_never_match() {
        let conf = standard();
        let claim = params(CLAIM);
        let credentials = Some(Credentials { user: b"test".to_vec(), password: vec![0xff, 0xfe] });
        assert_eq!(run(&conf, &post(&claim, credentials)).0.status, 401);
        let credentials = Some(Credentials { user: vec![0xff], password: b"test".to_vec() });
        assert_eq!(run(&conf, &post(&claim, credentials)).0.status, 401);
    }

    /// Pre-sorcery ARI: `test` now has the password "rotated" (ARI reloaded);
    /// the module's reading (`standard()`) still says "test".
    fn ari_itself(
        own: &AriConf<Vec<AclRule>>,
        general: Result<Option<(bool, String)>, ()>,
        read_only: Option<bool>,
    ) -> AriItself<'_, Vec<AclRule>, impl Fn(&[u8], &[u8]) -> AriVerdict> {
        AriItself::new(general, own, move |user: &[u8], password: &[u8]| {
            let known = [(&b"test"[..], &b"rotated"[..]), (b"fenced", b"f"), (b"viewer", b"v")];
            // ARI finds users case-insensitively.
            if known.iter().any(|(name, secret)| name.eq_ignore_ascii_case(user) && *secret == password) {
                AriVerdict::Accepted { read_only }
            } else {
                AriVerdict::Refused
            }
        })
    }

    fn ari_general(realm: &str) -> Result<Option<(bool, String)>, ()> {
        Ok(Some((true, realm.to_owned())))
    }

    fn run_with(directory: &impl Directory<Vec<AclRule>>, request: &Request<'_>) -> (Response, FakeHost) {
        let mut host = FakeHost::new();
        let response = answer(directory, request, &mut host);
        (response, host)
    }

    #[test]
    fn pre_sorcery_ari_decides_the_password_not_the_modules_reading() {
        let own = standard();
        let ari = ari_itself(&own, ari_general("ARI's realm"), Some(false));
        let claim = params(CLAIM);
        let (response, host) = run_with(&ari, &post(&claim, basic("test", "rotated")));
        assert_eq!(response.status, 204);
        assert_eq!(host.claims.len(), 1);
        let (response, host) = run_with(&ari, &post(&claim, basic("test", "test")));
        assert_eq!(response.status, 401, "the old password, still in the module's reading");
        assert!(host.claims.is_empty());
        assert_eq!(response.headers, vec![("WWW-Authenticate".to_owned(), "Basic realm=\"ARI's realm\"".to_owned())]);
        // The same user name in another case: that ARI finds users with strcasecmp.
        assert_eq!(run_with(&ari, &post(&claim, basic("TEST", "rotated"))).0.status, 204);
    }

    #[test]
    fn api_key_name_is_case_insensitive_only_on_pre_sorcery_ari() {
        let own = standard();
        let ari = ari_itself(&own, ari_general("R"), Some(false));
        let mut list = params(&[("API_Key", "test:rotated")]);
        list.extend(params(CLAIM));
        assert_eq!(run_with(&ari, &post(&list, None)).0.status, 204);
        let mut list = params(&[("API_Key", "test:test")]);
        list.extend(params(CLAIM));
        assert_eq!(run(&own, &post(&list, None)).0.status, 401, "22.10.1 compares the name exactly");
        // Still only the first api_key counts, whatever its case.
        let mut list = params(&[("Api_key", "test:bad"), ("api_key", "test:rotated")]);
        list.extend(params(CLAIM));
        assert_eq!(run_with(&ari, &post(&list, None)).0.status, 401);
    }

    #[test]
    fn pre_sorcery_ari_has_no_user_acls_and_its_read_only_counts() {
        let own = standard();
        let claim = params(CLAIM);
        let ari = ari_itself(&own, ari_general("R"), Some(false));
        assert_eq!(run_with(&ari, &post(&claim, basic("fenced", "f"))).0.status, 204, "no ACL check");
        let ari = ari_itself(&own, ari_general("R"), Some(true));
        let (response, host) = run_with(&ari, &post(&claim, basic("test", "rotated")));
        assert_eq!((response.status, response.message.as_deref()), (403, Some("Write access denied")));
        assert!(host.claims.is_empty());
    }

    #[test]
    fn unreadable_read_only_falls_back_to_the_modules_reading_or_denies_writes() {
        let own = standard();
        let claim = params(CLAIM);
        let ari = ari_itself(&own, ari_general("R"), None);
        assert_eq!(run_with(&ari, &post(&claim, basic("test", "rotated"))).0.status, 204, "test: not read-only");
        assert_eq!(run_with(&ari, &post(&claim, basic("VIEWER", "v"))).0.status, 403, "viewer: read-only");
        let empty = AriConf::<Vec<AclRule>>::default();
        let ari = ari_itself(&empty, ari_general("R"), None);
        let (response, _) = run_with(&ari, &post(&claim, basic("test", "rotated")));
        assert_eq!((response.status, response.message.as_deref()), (403, Some("Write access denied")));
    }

    #[test]
    fn pre_sorcery_general_comes_from_ari_with_the_modules_origins() {
        let own = standard();
        let ari = ari_itself(&own, Ok(Some((false, "Off".into()))), Some(false));
        let general = Directory::<Vec<AclRule>>::general(&ari).expect("general");
        assert_eq!((general.enabled, general.auth_realm.as_str()), (false, "Off"));
        assert_eq!(general.allowed_origins, "http://a.example,http://b.example");
        // Unreadable: the module's reading stands in.
        let ari = ari_itself(&own, Err(()), Some(false));
        assert_eq!(Directory::<Vec<AclRule>>::general(&ari), own.general.as_ref());
        // ARI without configuration: 500, as ARI answers.
        let ari = ari_itself(&own, Ok(None), Some(false));
        let claim = params(CLAIM);
        let (response, _) = run_with(&ari, &post(&claim, basic("test", "rotated")));
        assert_eq!((response.status, response.message.as_deref()), (500, Some("URI handler config missing")));
    }

    #[test]
    fn missing_general_is_500_config_missing() {
        let (conf, _) = parse(&[section("u", &[("type", "user"), ("password", "p")])], None, compile);
        let claim = params(CLAIM);
        let (response, _) = run(&conf, &post(&claim, basic("u", "p")));
        assert_eq!(
            (response.status, response.message.as_deref(), response.close),
            (500, Some("URI handler config missing"), true)
        );
    }
}
