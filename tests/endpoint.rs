//! The module's own HTTP claim handler beside ARI (`claim_endpoint=http`, and
//! what `module` falls back to where its node cannot be put into ARI's tree),
//! checked against ARI's own answers on whatever Asterisk the runtime
//! carries; and how `claim_endpoint` chooses between ARI's route, the
//! module's node in ARI's tree and that handler.
//!
//! The credential matrix sends every request to the module's handler and to
//! ARI, and requires the same status, body and the headers a client acts on:
//! - where ARI has the claim route (20.20+, 22.10+, 23.4+), to a second
//!   instance with `claim_endpoint=ari`, for every case;
//! - elsewhere, to ARI's `POST /ari/events/user/{eventName}` on the same
//!   instance (see [`ARI_PROBE_PATH`]) for every answer ARI gives before it
//!   looks at the resource (body, credentials, read-only, method), and, when
//!   the credentials pass, the module's answer is checked against the claim
//!   table while ARI must have let the same credentials in.
//!
//! Where ARI answers differently for a reason the module cannot see, the case
//! names the reason and asserts both answers.

mod common;

use common::ari_facts::{at_least, AriFacts};
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const MS: Duration = Duration::from_millis(1);
use common::front_door::*;
/// ARI's stand-in for the claim route where it has none: `POST
/// /ari/events/user/{eventName}` (user events, in every ARI since 13). It
/// answers auth failures exactly as a claim route would, because ARI decides
/// those before it looks at the resource: the body is read (413/400), then
/// the credentials (401 with the realm), the user's ACL (403), boot (503),
/// `read_only` (403), all in ARI's common front door. Like the claim it is a
/// POST-only resource, so OPTIONS and other methods get the same `Allow:
/// OPTIONS,POST` (204 / 405). Past that, it serves user events: with the
/// claim's parameters it answers 404 "Application not found" (or a 400), which
/// shows ARI let the credentials in.
const ARI_PROBE_PATH: &str = PROBE_PATH;

const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(HRESULT_${UNIQUEID})=H:${STASISSTATUS})
";

#[test]
fn version_facts_read_per_branch() {
    let claim_route = |v| at_least(v, &[(20, 20, 0), (22, 10, 0), (23, 4, 0)]);
    assert!(!claim_route((20, 6, 0)) && claim_route((22, 10, 1)));
    assert!(!claim_route((21, 12, 3)) && claim_route((24, 0, 0)));
    let acls = |v| at_least(v, &[(20, 19, 0), (21, 12, 3), (22, 9, 0), (23, 3, 0)]);
    assert!(!acls((21, 12, 2)) && acls((21, 12, 3)) && acls((22, 9, 0)) && !acls((22, 8, 9)) && !acls((20, 6, 0)));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ari,
    /// The module's own HTTP handler.
    Http,
}

impl Mode {
    fn setting(self) -> &'static str {
        match self {
            Mode::Ari => "ari",
            Mode::Http => "http",
        }
    }
}


fn settings(claim_endpoint: &str) -> String {
    format!("[general]\nclaim_endpoint = {claim_endpoint}\n")
}

/// The users of the matrix (see [`with_front_door_users`]).
fn config(mode: Mode, facts: &AriFacts) -> AsteriskConfig {
    with_front_door_users(AsteriskConfig::new(ours()).dialplan(DIALPLAN), facts)
        .file("stasis_broadcast.conf", &settings(mode.setting()))
        .label(mode.setting())
}

fn boot(mode: Mode) -> Asterisk {
    let asterisk = Asterisk::start(config(mode, &AriFacts::of_runtime()));
    assert_mode(&asterisk, mode);
    asterisk
}

/// Boots one instance per mode, at the same time.
fn boot_both() -> (Asterisk, Asterisk) {
    at_once(|| boot(Mode::Ari), || boot(Mode::Http))
}

fn handler_linked(asterisk: &Asterisk) -> bool {
    asterisk.cli("http show status").lines().any(|line| line.contains("/ari/events/claim =>"))
}

fn assert_mode(asterisk: &Asterisk, mode: Mode) {
    assert_eq!(handler_linked(asterisk), mode == Mode::Http, "handler linked in {mode:?} mode");
    let expected = format!("claim endpoint: {} (claim_endpoint={}", mode.setting(), mode.setting());
    logged_through(asterisk, 0, &expected);
}

fn basic(user: &str, password: &str) -> String {
    basic_authorization(user, password)
}

/// Who decides a case's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// ARI's common front door (body, credentials, ACL, read-only, method):
    /// the same for every resource.
    FrontDoor,
    /// The claim resource, once the credentials passed.
    Claim,
}

/// One request of the matrix.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// What the module answers (and ARI, unless `difference`).
    status: u16,
    /// The module's `message` for a [`Stage::Claim`] answer with a body.
    message: Option<&'static str>,
    stage: Stage,
    /// `Some((reason, ARI's status))`: ARI and the module differ, for that reason.
    difference: Option<(&'static str, u16)>,
    /// The `access-control-*` headers both answer with (ARI's, for the
    /// request's `Origin` and preflight headers); none unless named.
    cors: Vec<(String, String)>,
}

fn case(name: &'static str, method: &'static str, query: &str, status: u16) -> Case {
    let path = if query.is_empty() { CLAIM_PATH.to_owned() } else { format!("{CLAIM_PATH}?{query}") };
    let (stage, message) = match status {
        401 | 403 | 405 | 413 => (Stage::FrontDoor, None),
        404 => (Stage::Claim, Some(CHANNEL_NOT_FOUND)),
        _ => (Stage::Claim, None),
    };
    Case { name, method, path, headers: Vec::new(), body: None, status, message, stage, difference: None, cors: Vec::new() }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    /// An `Origin` header, named as browsers name it; for an allowed origin
    /// both answer with ARI's `Access-Control-Allow-Origin` (the origin) and
    /// `Access-Control-Allow-Credentials: true`.
    fn origin(mut self, origin: &str) -> Case {
        if ALLOWED_ORIGINS.contains(&origin) {
            self = self.cors("access-control-allow-origin", origin).cors("access-control-allow-credentials", "true");
        }
        self.header("Origin", origin)
    }

    /// One more `access-control-*` header both must answer with.
    fn cors(mut self, name: &str, value: &str) -> Case {
        self.cors.push((name.to_owned(), value.to_owned()));
        self
    }

    fn auth(self, user: &str, password: &str) -> Case {
        self.header("Authorization", basic(user, password))
    }

    fn json(self, body: &str) -> Case {
        self.header("Content-Type", "application/json").body(body.as_bytes())
    }

    fn body(mut self, bytes: &[u8]) -> Case {
        self.body = Some(bytes.to_vec());
        self
    }

    fn path(mut self, path: &str) -> Case {
        self.path = path.to_owned();
        self
    }

    fn message(mut self, message: &'static str) -> Case {
        self.message = Some(message);
        self
    }

    fn front_door(mut self) -> Case {
        self.stage = Stage::FrontDoor;
        self.message = None;
        self
    }

    fn differs(mut self, reason: &'static str, ari_status: u16) -> Case {
        self.difference = Some((reason, ari_status));
        self
    }

    /// The same request to ARI's probe resource: the claim path swapped for
    /// [`ARI_PROBE_PATH`] in the same case, the rest (HTTP prefix, slash,
    /// query) kept.
    fn to_probe(&self) -> Case {
        let (lower, upper) = (CLAIM_PATH, CLAIM_PATH.to_ascii_uppercase());
        let path = if let Some(at) = self.path.find(lower) {
            format!("{}{ARI_PROBE_PATH}{}", &self.path[..at], &self.path[at + lower.len()..])
        } else if let Some(rest) = self.path.strip_prefix(upper.as_str()) {
            format!("{}{rest}", ARI_PROBE_PATH.to_ascii_uppercase())
        } else {
            panic!("{}: not a claim path: {}", self.name, self.path)
        };
        Case {
            name: self.name,
            method: self.method,
            path,
            headers: self.headers.clone(),
            body: self.body.clone(),
            status: self.status,
            message: self.message,
            stage: self.stage,
            difference: self.difference,
            cors: self.cors.clone(),
        }
    }
}


fn matrix_cases(facts: &AriFacts) -> Vec<Case> {
    let big = format!("{{\"channelId\":\"{}\",\"application\":\"claimer\"}}", "x".repeat(50_000));
    let mut cases = vec![
        case("no credentials", "POST", UNKNOWN, 401),
        case("Basic, good password", "POST", UNKNOWN, 404).auth("test", "test"),
        case("Basic, bad password", "POST", UNKNOWN, 401).auth("test", "wrong"),
        case("Basic, unknown user", "POST", UNKNOWN, 401).auth("nobody", "test"),
        // Sorcery-based ARI finds users by exact name; older ARI with strcasecmp.
        case("Basic, user name differs in case", "POST", UNKNOWN, if facts.sorcery { 401 } else { 404 })
            .auth("TEST", "test"),
        case("Basic without ':' (ignored; no api_key)", "POST", UNKNOWN, 401)
            .header("Authorization", "Basic dGVzdHRlc3Q="),
        case("Basic without ':' falls back to api_key", "POST", &format!("{UNKNOWN}&api_key=test:test"), 404)
            .header("Authorization", "Basic dGVzdHRlc3Q="),
        case("Basic, bad password, good api_key (Basic wins)", "POST", &format!("{UNKNOWN}&api_key=test:test"), 401)
            .auth("test", "wrong"),
        case("Bearer scheme", "POST", UNKNOWN, 401).header("Authorization", "Bearer abc"),
        case("api_key, good", "POST", &format!("{UNKNOWN}&api_key=test:test"), 404),
        case("api_key, bad password", "POST", &format!("{UNKNOWN}&api_key=test:nope"), 401),
        case("api_key, malformed (no ':')", "POST", &format!("{UNKNOWN}&api_key=testtest"), 401),
        case("api_key, empty password", "POST", &format!("{UNKNOWN}&api_key=test:"), 401),
        case("api_key, empty user", "POST", &format!("{UNKNOWN}&api_key=:test"), 401),
        case("api_key, unknown user", "POST", &format!("{UNKNOWN}&api_key=nobody:test"), 401),
        case("api_key, first one counts", "POST", &format!("{UNKNOWN}&api_key=test:nope&api_key=test:test"), 401),
        case("crypt password, good", "POST", UNKNOWN, 404).auth("hashed", "hunter2"),
        case("crypt password, bad", "POST", UNKNOWN, 401).auth("hashed", "hunter3"),
        case("crypt password, the hash itself", "POST", UNKNOWN, 401).auth("hashed", HUNTER2_HASH),
        case("read-only user, POST", "POST", UNKNOWN, 403).auth("viewer", "v"),
        case("read-only user, GET", "GET", UNKNOWN, 405).auth("viewer", "v"),
        case("GET", "GET", UNKNOWN, 405).auth("test", "test"),
        case("PUT", "PUT", UNKNOWN, 405).auth("test", "test"),
        case("DELETE", "DELETE", UNKNOWN, 405).auth("test", "test"),
        case("GET without credentials", "GET", UNKNOWN, 401),
        case("OPTIONS", "OPTIONS", "", 204).auth("test", "test").front_door(),
        case("OPTIONS, CORS preflight", "OPTIONS", "", 204)
            .auth("test", "test")
            .origin("http://good.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "Content-Type")
            .cors("access-control-allow-methods", "OPTIONS,POST")
            .cors("access-control-allow-headers", "Content-Type")
            .front_door(),
        // ARI answers a preflight only for a method the resource serves.
        case("OPTIONS, CORS preflight for GET", "OPTIONS", "", 204)
            .auth("test", "test")
            .origin("http://good.example")
            .header("Access-Control-Request-Method", "GET")
            .front_door(),
        case("OPTIONS, CORS preflight, refused Origin", "OPTIONS", "", 204)
            .auth("test", "test")
            .origin("http://evil.example")
            .header("Access-Control-Request-Method", "POST")
            .front_door(),
        // ARI reads these request headers by their exact names (strcmp).
        case("preflight, access-control-request-method (lower)", "OPTIONS", "", 204)
            .auth("test", "test")
            .origin("http://good.example")
            .header("access-control-request-method", "POST")
            .front_door(),
        case("allowed Origin", "POST", UNKNOWN, 404).auth("test", "test").origin("http://other.example"),
        case("refused Origin", "POST", UNKNOWN, 404).auth("test", "test").origin("http://evil.example"),
        case("allowed Origin, no credentials", "POST", UNKNOWN, 401).origin("http://good.example"),
        case("allowed Origin, bad password", "POST", UNKNOWN, 401).auth("test", "wrong").origin("http://good.example"),
        case("allowed Origin, read-only user", "POST", UNKNOWN, 403).auth("viewer", "v").origin("http://good.example"),
        case("allowed Origin, GET", "GET", UNKNOWN, 405).auth("test", "test").origin("http://good.example"),
        case("allowed Origin, malformed JSON body", "POST", UNKNOWN, 400)
            .origin("http://good.example")
            .json("{\"channelId\":")
            .front_door(),
        case("Origin, an allowed one in upper case", "POST", UNKNOWN, 404)
            .auth("test", "test")
            .origin("HTTP://GOOD.EXAMPLE"),
        case("allowed origin, header named origin (lower)", "POST", UNKNOWN, 404)
            .auth("test", "test")
            .header("origin", "http://good.example"),
        case("missing channelId", "POST", "application=claimer", 400).auth("test", "test").message(NEED_CHANNEL),
        case("missing application", "POST", "channelId=no-such-channel", 400)
            .auth("test", "test")
            .message("application parameter is required"),
        case("empty channelId", "POST", "channelId=&application=claimer", 400)
            .auth("test", "test")
            .message(NEED_CHANNEL),
        case("no parameters", "POST", "", 400).auth("test", "test").message(NEED_CHANNEL),
        case("percent-encoded parameters", "POST", "channelId=no%2Dsuch%20channel&application=claim%65r", 404)
            .auth("test", "test"),
        case("JSON body", "POST", "", 404)
            .auth("test", "test")
            .json(r#"{"channelId":"no-such-channel","application":"claimer"}"#),
        case("JSON body with charset", "POST", "", 404)
            .auth("test", "test")
            .header("Content-Type", "application/json; charset=utf-8")
            .body(br#"{"channelId":"no-such-channel","application":"claimer"}"#),
        case("JSON body overrides the query string", "POST", "channelId=no-such-channel&application=claimer", 400)
            .auth("test", "test")
            .json(r#"{"channelId":""}"#)
            .message(NEED_CHANNEL),
        case("JSON body, non-string parameter", "POST", "channelId=no-such-channel&application=claimer", 400)
            .auth("test", "test")
            .json(r#"{"application":5}"#)
            .message("application parameter is required"),
        case("JSON body that is not an object", "POST", UNKNOWN, 404).auth("test", "test").json("[1,2]"),
        case("malformed JSON body, no credentials", "POST", UNKNOWN, 400).json("{\"channelId\":").front_door(),
        case("JSON body over 40960 bytes", "POST", "", 413).auth("test", "test").json(&big),
        case("form body parameters", "POST", "", 404)
            .auth("test", "test")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b"channelId=no-such-channel&application=claimer"),
        case("api_key in a form body", "POST", "", 404)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b"channelId=no-such-channel&application=claimer&api_key=test%3Atest"),
        case("unknown channel", "POST", UNKNOWN, 404).auth("test", "test"),
        case("trailing slash", "POST", UNKNOWN, 404).auth("test", "test").path(&format!("{CLAIM_PATH}/?{UNKNOWN}")),
        case("upper-case path", "POST", UNKNOWN, 404)
            .auth("test", "test")
            .path(&format!("/ARI/EVENTS/CLAIM?{UNKNOWN}")),
    ];
    // The api_key parameter's name in another case.
    let upper_key = format!("{UNKNOWN}&API_KEY=test:test");
    cases.push(match (facts.exact_api_key, facts.sorcery) {
        (true, _) => case("API_KEY (name in upper case)", "POST", &upper_key, 401),
        // Pre-sorcery ARI: the module mirrors its strcasecmp.
        (false, false) => case("API_KEY (name in upper case)", "POST", &upper_key, 404),
        (false, true) => case("API_KEY (name in upper case)", "POST", &upper_key, 401).differs(
            "ARI before the security releases 20.20.1/21.12.3/22.10.1/23.4.1 matches the api_key name \
             case-insensitively; the module on sorcery-based ARI matches it exactly, as those releases do",
            404,
        ),
    });
    if facts.user_acls {
        cases.extend([
            case("deny=0.0.0.0/0.0.0.0 permit=127.0.0.1", "POST", UNKNOWN, 404).auth("local", "l"),
            case("denied by permit/deny", "POST", UNKNOWN, 403).auth("fenced", "f"),
            case("denied by a named ACL (acl=blocked)", "POST", UNKNOWN, 403).auth("named", "n"),
            case("ACL refusal before a bad method", "GET", UNKNOWN, 403).auth("fenced", "f"),
        ]);
    } else {
        println!(
            "{}: no per-user ACL cases: ARI has per-user ACLs only from 20.19, 21.12.3, 22.9 and 23.3, and refuses \
             a user section with permit/deny/acl before that",
            facts.version
        );
    }
    if facts.claim_route {
        for case in cases.iter_mut() {
            match case.name {
                "trailing slash" => {
                    case.difference = Some((
                        "Asterisk's HTTP server hands ari/events/claim and ari/events/claim/ to the handler \
                         alike; ARI sees the slash and answers 'ARI URLs do not end with a slash', the module \
                         serves the claim",
                        404,
                    ))
                }
                "upper-case path" => {
                    case.difference = Some((
                        "Asterisk's HTTP server matches handler URIs case-insensitively and passes the matched part \
                         to neither; ARI's own router compares path segments case-sensitively and answers \
                         'Resource not found'",
                        404,
                    ))
                }
                _ => {}
            }
        }
    }
    cases
}

/// The `access-control-*` headers of an answer, in order, names lower-case.
fn cors_headers(response: &Response) -> Vec<(String, String)> {
    let mut headers = significant_headers(response);
    headers.retain(|(name, _)| name.starts_with("access-control-"));
    headers
}

/// Sends `case` with its header names as written (`Origin`, as browsers send it).
fn send(asterisk: &Asterisk, case: &Case) -> Response {
    let headers: Vec<(&str, &str)> = case.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    asterisk.ari().raw(case.method, &case.path, &headers, case.body.as_deref())
}

/// HEAD goes over its own connection: Asterisk sends a body with an error
/// answer to HEAD, which a client would otherwise read as the next answer.
fn head(asterisk: &Asterisk, path: &str, authorization: Option<&str>) -> (String, String) {
    let mut request = format!("HEAD {path}?{UNKNOWN} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    let raw = asterisk.ari().raw_tcp(request.as_bytes(), 5 * SECOND);
    let status = raw.lines().next().unwrap_or("").to_owned();
    let body = raw.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// Where ARI's answers come from: ARI's own claim route on a second instance,
/// or, where ARI has no claim route, its probe resource on the same instance.
enum AriSide {
    Route(Box<Asterisk>),
    Probe,
}

impl AriSide {
    /// ARI's side and the instance whose claims the module serves, as the runtime allows.
    fn boot(facts: &AriFacts) -> (AriSide, Asterisk) {
        if facts.claim_route {
            let (ari, module) = boot_both();
            (AriSide::Route(Box::new(ari)), module)
        } else {
            (AriSide::Probe, boot(Mode::Http))
        }
    }

    /// Every instance a configuration change must reach: ARI's (if apart) and the module's.
    fn instances<'a>(&'a self, module: &'a Asterisk) -> Vec<&'a Asterisk> {
        match self {
            AriSide::Route(ari) => vec![ari, module],
            AriSide::Probe => vec![module],
        }
    }
}

#[test]
fn credential_matrix_answers_as_ari_does() {
    let facts = AriFacts::of_runtime();
    let (ari_side, module) = if facts.claim_route {
        let (ari, module) = boot_both();
        println!("{}: ARI's own claim route (claim_endpoint=ari) against the module's handler", facts.version);
        (AriSide::Route(Box::new(ari)), module)
    } else {
        println!("{}: no claim route in ARI; ARI's answers come from POST {ARI_PROBE_PATH}", facts.version);
        (AriSide::Probe, boot(Mode::Http))
    };
    let ari_answer = |case: &Case| match &ari_side {
        AriSide::Route(ari) => send(ari, case),
        AriSide::Probe => send(&module, &case.to_probe()),
    };
    let mut table = Vec::new();
    let mut failures = Vec::new();
    let mut compared = (0, 0);
    for case in matrix_cases(&facts) {
        let from_ari = ari_answer(&case);
        let from_module = send(&module, &case);
        let same = from_ari.status == from_module.status
            && from_ari.body == from_module.body
            && significant_headers(&from_ari) == significant_headers(&from_module);
        table.push(format!(
            "{:<52} ari {} {:<70} module {} {}{}",
            case.name,
            from_ari.status,
            from_ari.body,
            from_module.status,
            from_module.body,
            if case.cors.is_empty() { String::new() } else { format!(" / both {:?}", cors_headers(&from_module)) }
        ));
        // Both with the CORS headers ARI gives for this Origin, or neither.
        if cors_headers(&from_ari) != case.cors || cors_headers(&from_module) != case.cors {
            failures.push(format!(
                "{}: CORS headers: expected {:?}\n  ari:    {:?}\n  module: {:?}",
                case.name,
                case.cors,
                cors_headers(&from_ari),
                cors_headers(&from_module)
            ));
        }
        let module_message = from_module.json()["message"].as_str().map(str::to_owned);
        let claim_message_ok = case.stage == Stage::FrontDoor || module_message.as_deref() == case.message;
        let compare_all = matches!(ari_side, AriSide::Route(_)) || case.stage == Stage::FrontDoor;
        let show = |why: &str| {
            format!(
                "{}: {why}; expected {} {:?}\n  ari:    {} {:?} {}\n  module: {} {:?} {}",
                case.name,
                case.status,
                case.message,
                from_ari.status,
                significant_headers(&from_ari),
                from_ari.body,
                from_module.status,
                significant_headers(&from_module),
                from_module.body
            )
        };
        match case.difference {
            None if compare_all => {
                compared.0 += 1;
                if !(same && from_module.status == case.status && claim_message_ok) {
                    failures.push(show("ARI and the module should answer alike"));
                }
            }
            None => {
                // The claim resource answered; ARI must have let the same
                // credentials in, with the same CORS headers.
                compared.1 += 1;
                if from_module.status != case.status || !claim_message_ok || matches!(from_ari.status, 401 | 403) {
                    failures.push(show("the module's claim answer, with credentials ARI accepts"));
                }
            }
            Some((reason, ari_status)) => {
                println!("named difference, {}: {reason}", case.name);
                if same || from_module.status != case.status || from_ari.status != ari_status {
                    failures.push(show(&format!("the named difference (ARI {ari_status}) did not show")));
                }
            }
        }
        // Every answer with a body is ARI's {"message": …} in JSON.
        for response in [&from_ari, &from_module] {
            if !response.body.is_empty() {
                assert!(response.json()["message"].is_string(), "{}: body {}", case.name, response.body);
                assert_eq!(response.header("content-type"), Some("application/json"), "{}", case.name);
            }
        }
    }
    // HEAD, over raw connections: ARI's front door or method check answers it.
    for (name, authorization) in [("HEAD", Some(basic("test", "test"))), ("HEAD without credentials", None)] {
        let from_ari = match &ari_side {
            AriSide::Route(ari) => head(ari, CLAIM_PATH, authorization.as_deref()),
            AriSide::Probe => head(&module, ARI_PROBE_PATH, authorization.as_deref()),
        };
        let from_module = head(&module, CLAIM_PATH, authorization.as_deref());
        table.push(format!("{name:<52} ari {} {} module {} {}", from_ari.0, from_ari.1, from_module.0, from_module.1));
        compared.0 += 1;
        if from_ari != from_module {
            failures.push(format!("{name}: ari {from_ari:?} module {from_module:?}"));
        }
    }
    match &ari_side {
        AriSide::Route(ari) => {
            // The named differences, asserted as they are.
            let find = |name| matrix_cases(&facts).into_iter().find(|case| case.name == name).expect("case");
            let slash = send(ari, &find("trailing slash"));
            assert_eq!(slash.json()["message"], "ARI URLs do not end with a slash. Try /ari/events/claim");
            let upper = send(ari, &find("upper-case path"));
            assert_eq!(upper.json()["message"], "Resource not found");
            live_cases_both(ari, &module, &mut table, &mut failures);
        }
        AriSide::Probe => {
            // ARI's probe did serve user events past the front door.
            let probe = send(&module, &case("probe", "POST", UNKNOWN, 404).auth("test", "test").to_probe());
            assert_eq!((probe.status, probe.json()["message"].as_str()), (404, Some("Application not found")));
            live_cases_module(&module, &mut table, &mut failures);
        }
    }
    println!("{}", table.join("\n"));
    println!(
        "{}: {} answers compared with ARI's, {} claim answers checked with credentials ARI accepted, {} rows",
        facts.version,
        compared.0,
        compared.1,
        table.len()
    );
    assert!(failures.is_empty(), "answers differ:\n{}", failures.join("\n"));
    assert!(module.is_running());
}

/// Cases that need a call being broadcast: unregistered application, a
/// read-only user, a race of three with JSON bodies (one 204, two 409), a
/// claim while the winner is in Stasis, a claim after it left.
fn live_answers(asterisk: &Asterisk) -> Vec<(String, u16, String)> {
    let apps: Vec<AriApp> = ["racer-a", "racer-b", "racer-c"].iter().map(|name| asterisk.connect_app(name)).collect();
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "10000"));
    for app in &apps {
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    }
    let http = asterisk.ari();
    let auth = basic("test", "test");
    let headers = [("Authorization", auth.as_str())];
    let path = |app: &str| format!("{CLAIM_PATH}?channelId={}&application={app}", encode(&id));
    let mut answers = Vec::new();
    let r = http.raw("POST", &path("ghost"), &headers, None);
    answers.push(("unregistered application".to_owned(), r.status, r.body));
    let r = http.raw("POST", &path("racer-a"), &[("Authorization", &basic("viewer", "v"))], None);
    answers.push(("read-only user, live call".to_owned(), r.status, r.body));
    let barrier = Barrier::new(apps.len());
    let mut race: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .iter()
            .map(|app| {
                let (barrier, http, id, auth) = (&barrier, &http, &id, &auth);
                s.spawn(move || {
                    let body = json!({"channelId": id, "application": app.name()}).to_string();
                    barrier.wait();
                    let r = http.raw(
                        "POST",
                        CLAIM_PATH,
                        &[("Authorization", auth), ("Content-Type", "application/json")],
                        Some(body.as_bytes()),
                    );
                    (r.status, r.body)
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("claimer")).collect()
    });
    race.sort();
    for (n, (status, body)) in race.into_iter().enumerate() {
        answers.push((format!("race of three (JSON bodies), answer {n}"), status, body));
    }
    let winner = apps
        .iter()
        .find(|app| app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).is_some())
        .expect("a winner got StasisStart");
    let r = http.raw("POST", &path("racer-b"), &headers, None);
    answers.push(("claim while the winner is in Stasis".to_owned(), r.status, r.body));
    assert_eq!(asterisk.continue_channel(&id).status, 204);
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).as_deref(), Some("SUCCESS"));
    let r = http.raw("POST", &path(winner.name()), &headers, None);
    answers.push(("claim after the call left Stasis".to_owned(), r.status, r.body));
    answers
}

/// What [`live_answers`] must give.
const LIVE_EXPECTED: [(u16, Option<&str>); 7] = [
    (404, Some(CHANNEL_NOT_FOUND)),
    (403, Some("Write access denied")),
    (204, None),
    (409, Some(ALREADY_CLAIMED)),
    (409, Some(ALREADY_CLAIMED)),
    (409, Some(ALREADY_CLAIMED)),
    (404, Some(CHANNEL_NOT_FOUND)),
];

fn live_matches(n: usize, status: u16, body: &str) -> bool {
    let message = serde_json::from_str::<Value>(body).ok().and_then(|v| v["message"].as_str().map(str::to_owned));
    (status, message.as_deref()) == LIVE_EXPECTED[n]
}

fn live_cases_both(ari: &Asterisk, module: &Asterisk, table: &mut Vec<String>, failures: &mut Vec<String>) {
    let from_ari = live_answers(ari);
    let from_module = live_answers(module);
    for (n, ((name, ari_status, ari_body), (_, module_status, module_body))) in
        from_ari.iter().zip(&from_module).enumerate()
    {
        table.push(format!("{name:<52} ari {ari_status} {ari_body:<70} module {module_status} {module_body}"));
        if (ari_status, ari_body) != (module_status, module_body) || !live_matches(n, *module_status, module_body) {
            failures.push(format!(
                "{name}: expected {:?}; ari {ari_status} {ari_body}, module {module_status} {module_body}",
                LIVE_EXPECTED[n]
            ));
        }
    }
}

/// Where ARI has no claim route, the live answers are checked against the claim table.
fn live_cases_module(module: &Asterisk, table: &mut Vec<String>, failures: &mut Vec<String>) {
    for (n, (name, status, body)) in live_answers(module).into_iter().enumerate() {
        table.push(format!("{name:<52} module {status} {body}"));
        if !live_matches(n, status, &body) {
            failures.push(format!("{name}: expected {:?}; module {status} {body}", LIVE_EXPECTED[n]));
        }
    }
}

/// `claim_endpoint=auto` takes ARI's route where the running Asterisk has one
/// that refuses read_only users over its WebSocket (20.20.1+, 22.10.1+,
/// 23.4.1+) and the module's node in ARI's tree elsewhere; a reload of the
/// module switches between ARI's route, the node and the HTTP handler, and
/// each answers a claim.
#[test]
fn auto_mode_follows_the_claim_route_and_reload_switches_modes() {
    let facts = AriFacts::of_runtime();
    let (major, minor, patch) = Runtime::locate().version();
    let version = format!("Asterisk {major}.{minor}.{patch}");
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()).dialplan(DIALPLAN));
    let settings_path = asterisk.dir().join("etc/stasis_broadcast.conf");
    let switch = |setting: &str, line: &str| {
        std::fs::write(&settings_path, settings(setting)).expect("write settings");
        let mark = asterisk.log_mark();
        asterisk.cli(&format!("module reload {OURS}"));
        logged_through(&asterisk, mark, line);
    };
    let message = |r: &Response| r.json()["message"].as_str().unwrap_or("").to_owned();
    let settings_shown = || asterisk.cli("stasis broadcast show settings");
    let in_tree = "in ARI's own tree, over HTTP and WebSocket";

    if facts.claim_route {
        // No stasis_broadcast.conf: auto, and this Asterisk has the route.
        let line = format!("claim endpoint: ari (claim_endpoint=auto: {version}");
        assert!(asterisk.wait_for_log(&line, 5 * SECOND));
        assert!(!handler_linked(&asterisk));
        let shown = settings_shown();
        assert!(shown.contains("claim endpoint:") && shown.contains(&line["claim endpoint: ".len()..]), "{shown}");

        switch("module", "claim endpoint: module (claim_endpoint=module");
        assert!(!handler_linked(&asterisk));
        let shown = settings_shown();
        println!("{shown}");
        assert!(shown.contains("in place of the route") && shown.contains(in_tree), "{shown}");
        assert!(asterisk.wait_for_log("in ARI's own tree, in place of res_ari_events' own", 5 * SECOND));
        let r = asterisk.claim("no-such-channel", "x");
        assert_eq!((r.status, message(&r).as_str()), (404, CHANNEL_NOT_FOUND));

        switch("auto", "claim endpoint: ari (claim_endpoint=auto");
        assert!(asterisk.wait_for_log("res_ari_events' own 'events' node is back in ARI's tree", 5 * SECOND));
        let r = asterisk.claim("no-such-channel", "x");
        assert_eq!((r.status, message(&r).as_str()), (404, CHANNEL_NOT_FOUND), "ARI's route, the module's answer");
    } else {
        let line = format!("claim endpoint: module (claim_endpoint=auto: {version}");
        logged_through(&asterisk, 0, &line);
        assert!(!handler_linked(&asterisk));
        let shown = settings_shown();
        println!("{shown}");
        assert!(shown.contains("this module serves it in ARI's tree") && shown.contains(in_tree), "{shown}");
        let r = asterisk.claim("no-such-channel", "x");
        assert_eq!((r.status, message(&r).as_str()), (404, CHANNEL_NOT_FOUND));

        // Forcing ARI where it has no route: a WARNING, and ARI's router answers.
        switch("ari", "claim endpoint: ari (claim_endpoint=ari, but");
        assert!(asterisk.wait_for_log("res_ari_events' own 'events' node is back in ARI's tree", 5 * SECOND));
        assert!(!handler_linked(&asterisk));
        let r = asterisk.claim("no-such-channel", "x");
        assert_eq!((r.status, message(&r).as_str()), (404, "Resource not found"));

        switch("auto", "claim endpoint: module (claim_endpoint=auto");
        assert!(!handler_linked(&asterisk));
        assert_eq!(message(&asterisk.claim("no-such-channel", "x")), CHANNEL_NOT_FOUND);
    }
    // The HTTP handler beside ARI, on any version.
    switch("http", "claim endpoint: http (claim_endpoint=http");
    assert!(handler_linked(&asterisk));
    let shown = settings_shown();
    assert!(shown.contains("handler linked") && !shown.contains(in_tree), "{shown}");
    assert_eq!(message(&asterisk.claim("no-such-channel", "x")), CHANNEL_NOT_FOUND);
}

// ------------------------------------------------- ari.conf changes, reloads

fn write_ari_conf(asterisk: &Asterisk, general: &str, users: &str) {
    let text = format!("[general]\nenabled = yes\npretty = no\nallowed_origins = *\n{general}\n{users}");
    std::fs::write(asterisk.dir().join("etc/ari.conf"), text).expect("write ari.conf");
}

/// ARI's side of a comparison where ARI has no claim route, or the module's
/// instance is the only one: the same request to [`ARI_PROBE_PATH`].
fn ari_answer(ari_side: &AriSide, module: &Asterisk, case: &Case) -> Response {
    match ari_side {
        AriSide::Route(ari) => send(ari, case),
        AriSide::Probe => send(module, &case.to_probe()),
    }
}

/// A claim with Basic credentials, to the module and to ARI: for an answer of
/// ARI's front door (401, 403, the HTTP server's 404) both must be the same;
/// for credentials that pass, the module answers the claim table's 404 and ARI
/// must have let the same credentials in. Returns the module's answer.
fn agree(ari_side: &AriSide, module: &Asterisk, what: &str, user: &str, password: &str, status: u16) -> Response {
    let request = case("", "POST", UNKNOWN, status).auth(user, password);
    let (a, m) = (ari_answer(ari_side, module, &request), send(module, &request));
    println!("{what}: ari {} {} / module {} {}", a.status, a.body.trim(), m.status, m.body.trim());
    assert_eq!(m.status, status, "{what}: module {}", m.body);
    if matches!(ari_side, AriSide::Route(_)) || status != 404 || m.header("content-type") != Some("application/json") {
        assert_eq!((a.status, &a.body), (m.status, &m.body), "{what}");
        assert_eq!(significant_headers(&a), significant_headers(&m), "{what}");
    } else {
        assert_eq!(m.json()["message"], CHANNEL_NOT_FOUND, "{what}");
        assert!(!matches!(a.status, 401 | 403), "{what}: ARI refused the credentials: {} {}", a.status, a.body);
    }
    m
}

/// `module reload res_ari.so`; returns the log it wrote. On sorcery-based ARI
/// the module serving claims re-reads ari.conf when ARI's reload is done
/// (logged); on older ARI nothing of the module runs: ARI answers for itself
/// at each request.
fn reload_ari(asterisk: &Asterisk, facts: &AriFacts) -> String {
    let serving = handler_linked(asterisk);
    let mark = asterisk.log_mark();
    asterisk.cli("module reload res_ari.so");
    let reread = "ARI reloaded its configuration; re-reading ari.conf";
    if facts.sorcery && serving {
        logged_through(asterisk, mark, reread);
    }
    logged_through(asterisk, mark, "Reloading module 'res_ari.so'");
    // Anything ARI's reload set off is logged by the time a later line is.
    let log = log_barrier(asterisk, mark);
    assert!(!log.contains("Reloading module 'res_stasis_broadcast_rs.so'"), "{log}");
    if !facts.sorcery {
        assert!(!log.contains(reread), "pre-sorcery ARI cannot be observed: {log}");
    }
    log
}

/// After `module reload res_ari.so` (and nothing else) the module's handler
/// answers as ARI does: a new password and realm, `pretty`, a user ARI refuses
/// on reload, ARI disabled and enabled again. Compared with ARI's own claim
/// route on a second instance where ARI has one, else with ARI's probe
/// resource on the same instance.
#[test]
fn ari_conf_changes_apply_alike_after_aris_reload() {
    let facts = AriFacts::of_runtime();
    let (ari_side, module) = AriSide::boot(&facts);
    let instances = ari_side.instances(&module);
    let rewrite = |general: &str, users: &str| {
        for asterisk in &instances {
            write_ari_conf(asterisk, general, users);
        }
        for asterisk in &instances {
            reload_ari(asterisk, &facts);
        }
    };
    let same = |what: &str, user: &str, password: &str, status: u16| {
        agree(&ari_side, &module, what, user, password, status)
    };

    // A new password and a new realm.
    rewrite("auth_realm = Second", "[test]\ntype=user\npassword=changed\n");
    same("old password after reload", "test", "test", 401);
    same("new password after reload", "test", "changed", 404);
    let m = same("realm after reload", "x", "y", 401);
    assert_eq!(m.header("www-authenticate"), Some("Basic realm=\"Second\""));

    // pretty = yes changes the body's format; the module follows ARI's.
    rewrite("pretty = yes", "[test]\ntype=user\npassword=changed\n");
    let m = same("pretty JSON", "test", "changed", 404);
    assert!(m.body.contains('\n'), "pretty body: {:?}", m.body);

    // A user ARI refuses on reload (unknown option) keeps its previous
    // settings (pre-sorcery ARI refuses the whole file and keeps all of them).
    rewrite("", "[test]\ntype=user\npassword=third\ncolour=blue\n");
    same("refused user keeps the previous password", "test", "changed", 404);
    same("refused user's new password", "test", "third", 401);

    // ARI disabled: neither serves the endpoint; the HTTP server's own 404.
    for asterisk in &instances {
        std::fs::write(
            asterisk.dir().join("etc/ari.conf"),
            "[general]\nenabled = no\n\n[test]\ntype=user\npassword=test\n",
        )
        .expect("write ari.conf");
    }
    for asterisk in &instances {
        reload_ari(asterisk, &facts);
    }
    let m = same("ARI disabled", "test", "test", 404);
    assert!(m.body.contains("The requested URL was not found on this server."), "{}", m.body);
    if facts.sorcery {
        assert!(!handler_linked(&module));
        logged_through(&module, 0, "ARI is disabled in ari.conf, so /ari/events/claim is not served");
    } else {
        // Pre-sorcery: ARI's own `enabled` is read at each request; the
        // handler stays linked and answers as the HTTP server does.
        assert!(handler_linked(&module));
    }

    // Enabled again.
    rewrite("", "[test]\ntype=user\npassword=test\n");
    assert!(handler_linked(&module));
    same("enabled again", "test", "test", 404);
}

/// Password rotation with `module reload res_ari.so` only, never a reload of
/// this module: right after it the old password gets 401 (with ARI's new
/// realm) from the claim endpoint, the new one is accepted, a `read_only`
/// set by the reload refuses the claim, a crypt password works, and ARI's own
/// answer to the same credentials ([`ARI_PROBE_PATH`]) agrees at each step.
///
/// Every version does this, by one of two mechanisms, asserted per version:
/// - pre-sorcery ARI (20.0–20.14, 21.0–21.9, 22.0–22.4): ARI itself checks
///   each claim's credentials (`ast_ari_config_validate_user`); `show
///   settings` says so, and nothing of the module runs on ARI's reload;
/// - sorcery-based ARI (20.15+, 21.10+, 22.5+, 23+): the module observes ARI's
///   reload and re-reads ari.conf, and logs that it does.
#[test]
fn password_rotation_follows_aris_reload_without_reloading_the_module() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(Mode::Http);
    let shown = asterisk.cli("stasis broadcast show settings");
    println!("{shown}");
    if facts.sorcery {
        assert!(shown.contains("handler linked, ") && shown.contains(" ARI user(s)"), "{shown}");
    } else {
        assert!(shown.contains("handler linked, credentials checked by ARI itself"), "{shown}");
    }
    let same = |what: &str, user: &str, password: &str, status: u16| {
        agree(&AriSide::Probe, &asterisk, what, user, password, status)
    };
    same("before: the first password", "test", "test", 404);

    write_ari_conf(&asterisk, "auth_realm = Rotated", "[test]\ntype=user\npassword=rotated\n");
    reload_ari(&asterisk, &facts);
    let old = same("old password after ARI's reload", "test", "test", 401);
    assert_eq!(old.header("www-authenticate"), Some("Basic realm=\"Rotated\""));
    same("new password after ARI's reload", "test", "rotated", 404);

    write_ari_conf(&asterisk, "", "[test]\ntype=user\npassword=rotated\nread_only=yes\n");
    reload_ari(&asterisk, &facts);
    let refused = same("read_only set by ARI's reload", "test", "rotated", 403);
    assert_eq!(refused.json()["message"], "Write access denied");

    let crypt = format!("[test]\ntype=user\npassword_format=crypt\npassword={HUNTER2_HASH}\n");
    write_ari_conf(&asterisk, "", &crypt);
    reload_ari(&asterisk, &facts);
    same("crypt password after ARI's reload", "test", "hunter2", 404);
    same("the previous plain password", "test", "rotated", 401);
    let realm = same("realm back to the default", "test", "rotated", 401);
    assert_eq!(realm.header("www-authenticate"), Some("Basic realm=\"Asterisk REST Interface\""));

    let log = log_barrier(&asterisk, 0);
    assert!(!log.contains("Reloading module 'res_stasis_broadcast_rs.so'"), "the module was never reloaded");
    // Pre-sorcery: read_only and the realm came from ARI's own structs, every check passed.
    assert!(!log.contains("not what this module knows of ARI's private configuration"), "{log}");
    println!(
        "{}: rotation followed ARI's reloads ({})",
        facts.version,
        if facts.sorcery { "the module re-read ari.conf on each" } else { "ARI itself checked every claim" }
    );
}

/// `module reload res_stasis_broadcast_rs.so`, and no reload of ARI, re-reads
/// ari.conf for the module's handler: a new `allowed_origins` (read from
/// ari.conf on every ARI) and, on sorcery-based ARI, where the module judges
/// credentials from its own reading, a new password. (Pre-sorcery ARI checks
/// credentials itself; there a new password waits for ARI's own reload.)
#[test]
fn the_modules_own_reload_rereads_ari_conf() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(Mode::Http);
    // The status and the Access-Control-Allow-Origin value.
    let claim = |user: &str, password: &str, origin: &str| {
        let r = send(&asterisk, &case("", "POST", UNKNOWN, 0).auth(user, password).origin(origin));
        let allowed = r.header("access-control-allow-origin").map(str::to_owned);
        println!("{user}:{password} from {origin}: {} / Access-Control-Allow-Origin {allowed:?}", r.status);
        (r.status, allowed)
    };
    const NOT_FOUND: u16 = 404;
    let good = claim("test", "test", "http://good.example");
    assert_eq!(good, (NOT_FOUND, Some("http://good.example".into())), "allowed at start");
    let before = claim("test", "test", "http://new.example");
    assert_eq!(before, (NOT_FOUND, None), "not allowed yet");

    let password = if facts.sorcery { "renewed" } else { "test" };
    write_ari_conf(&asterisk, "allowed_origins = http://new.example", &format!("[test]\ntype=user\npassword={password}\n"));
    let mark = asterisk.log_mark();
    asterisk.cli(&format!("module reload {OURS}"));
    logged_through(&asterisk, mark, "Reloading module 'res_stasis_broadcast_rs.so'");
    let log = log_barrier(&asterisk, mark);
    assert!(!log.contains("Reloading module 'res_ari.so'"), "{log}");

    let new_origin = claim("test", password, "http://new.example");
    assert_eq!(new_origin, (NOT_FOUND, Some("http://new.example".into())), "the new allowed origin");
    let old_origin = claim("test", password, "http://good.example");
    assert_eq!(old_origin, (NOT_FOUND, None), "the old allowed origin");
    if facts.sorcery {
        let old = claim("test", "test", "http://new.example");
        assert_eq!(old.0, 401, "the old password after the module's reload");
    }
}

/// The handler is linked under the HTTP server's prefix like every other URI.
#[test]
fn http_prefix_is_honoured() {
    let facts = AriFacts::of_runtime();
    let (ari_side, module) = AriSide::boot(&facts);
    let instances = ari_side.instances(&module);
    for asterisk in instances {
        let port = asterisk.http_port();
        std::fs::write(
            asterisk.dir().join("etc/http.conf"),
            format!("[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {port}\nprefix = sb\n"),
        )
        .expect("write http.conf");
        asterisk.cli("module reload http");
        assert!(asterisk.cli("http show status").contains("Prefix: /sb"));
    }
    assert!(module.cli("http show status").contains("/sb/ari/events/claim =>"));
    for (path, prefixed) in [(format!("/sb{CLAIM_PATH}?{UNKNOWN}"), true), (format!("{CLAIM_PATH}?{UNKNOWN}"), false)] {
        let request = case("prefix", "POST", UNKNOWN, 404).auth("test", "test").path(&path);
        let (a, m) = (ari_answer(&ari_side, &module, &request), send(&module, &request));
        println!("{path}: ari {} {} / module {} {}", a.status, a.body.trim(), m.status, m.body.trim());
        assert_eq!((a.status, m.status), (404, 404), "{path}");
        if prefixed {
            assert_eq!(m.json()["message"], CHANNEL_NOT_FOUND);
            if matches!(ari_side, AriSide::Route(_)) {
                assert_eq!(a.body, m.body);
            } else {
                assert_eq!(a.json()["message"], "Application not found", "ARI serves the prefixed path too");
            }
        } else {
            // Outside the prefix: the HTTP server's own 404, from both.
            assert_eq!(a.body, m.body, "{path}");
            assert!(m.body.contains("The requested URL was not found on this server."), "{}", m.body);
        }
    }
}

// ------------------------------------------------------------ the feature

/// The race of the feature tests, over the module's own endpoint: every call
/// has exactly one 204 and seven 409, and the winner gets the call.
#[test]
fn race_over_the_module_endpoint() {
    const APPS: usize = 8;
    const CALLS: usize = 60;
    let asterisk = boot(Mode::Http);
    let apps: Vec<AriApp> = (0..APPS).map(|i| asterisk.connect_app(&format!("racer-{i}"))).collect();
    let mut wins = [0usize; APPS];
    for n in 0..CALLS {
        let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "5000"));
        for app in &apps {
            app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
        }
        let barrier = Barrier::new(APPS);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = apps
                .iter()
                .map(|app| {
                    let (barrier, id) = (&barrier, &id);
                    s.spawn(move || {
                        barrier.wait();
                        app.claim(id).status
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("claimer")).collect()
        });
        let winners: Vec<usize> = (0..APPS).filter(|&i| statuses[i] == 204).collect();
        assert_eq!(winners.len(), 1, "call {n}: {statuses:?}");
        assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), APPS - 1, "call {n}: {statuses:?}");
        wins[winners[0]] += 1;
        let (_, start) = apps[winners[0]].wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
        assert_eq!(start["application"], apps[winners[0]].name());
        assert_eq!(asterisk.hangup(&id).status, 204);
    }
    println!("module endpoint race: {CALLS} calls x {APPS} claimants, wins per app {wins:?}");
    for app in &apps {
        let starts = app.events().iter().filter(|(_, event)| event["type"] == "StasisStart").count();
        let index = apps.iter().position(|other| other.name() == app.name()).expect("app");
        assert_eq!(starts, wins[index], "{}: StasisStart only for its wins", app.name());
    }
}

/// The error scenarios of the feature tests, over the module's own endpoint.
#[test]
fn errors_over_the_module_endpoint() {
    let asterisk = boot(Mode::Http);
    let http = asterisk.ari();
    let app = asterisk.connect_app("winner");
    let _latecomer = asterisk.connect_app("latecomer");
    let message = |r: &Response| r.json()["message"].as_str().unwrap_or("").to_owned();

    let r = asterisk.claim("no-such-channel", "winner");
    assert_eq!((r.status, message(&r).as_str()), (404, "Channel not found or not in broadcast state"));
    let r = http.post("/events/claim?application=winner", None);
    assert_eq!((r.status, message(&r).as_str()), (400, "channelId parameter is required"));
    let r = http.post("/events/claim?channelId=x", None);
    assert_eq!((r.status, message(&r).as_str()), (400, "application parameter is required"));

    // After a TIMEOUT.
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "100"));
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).as_deref(), Some("TIMEOUT"));
    assert_eq!(asterisk.claim(&id, "winner").status, 404, "claim after TIMEOUT");

    // Claimed, then while the winner is in Stasis.
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "5000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(app.claim(&id).status, 204);
    let r = asterisk.claim(&id, "latecomer");
    assert_eq!((r.status, message(&r).as_str()), (409, "Channel has already been claimed by another application"));
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(asterisk.claim(&id, "latecomer").status, 409, "while the winner is in Stasis");
    assert_eq!(asterisk.claim(&id, "ghost").status, 409, "an unregistered name on a taken call");
    assert_eq!(asterisk.continue_channel(&id).status, 204);
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).as_deref(), Some("SUCCESS"));

    // A claim naming an unregistered application does not win; the race stays open.
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "5000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(asterisk.claim(&id, "ghost").status, 404);
    assert_eq!(app.claim(&id).status, 204);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(asterisk.continue_channel(&id).status, 204);
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).as_deref(), Some("SUCCESS"));

    // Hang-up while waiting: the broadcast is gone, claims get 404.
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "10000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(asterisk.hangup(&id).status, 204);
    assert!(asterisk.wait_for_global(&format!("HRESULT_{id}"), 5 * SECOND).is_some());
    assert_eq!(asterisk.claim(&id, "winner").status, 404);
}

#[test]
fn a_panic_while_serving_a_claim_answers_500_and_the_next_claim_works() {
    let config = AsteriskConfig::new(Broadcaster::Ours(fault_module()))
        .dialplan(DIALPLAN)
        .file("stasis_broadcast.conf", &settings("http"));
    let asterisk = Asterisk::start(config);
    assert!(handler_linked(&asterisk));
    let app = asterisk.connect_app("claimer");
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "10000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    let mark = asterisk.log_mark();
    inject_panic(&asterisk, "claim endpoint");
    let r = asterisk.claim(&id, "claimer");
    // What res_ari_events answers when the claim function fails unexpectedly.
    assert_eq!((r.status, r.json()["message"].as_str()), (500, Some("Failed to claim channel")), "{}", r.body);
    assert_panic_logged(&asterisk, mark, "claim endpoint");
    assert!(asterisk.is_running());
    assert_eq!(asterisk.claim(&id, "claimer").status, 204);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(asterisk.continue_channel(&id).status, 204);
}

// ------------------------------------------------------- unload, abuse

/// Unload/load with the handler linked, with requests arriving all the
/// time: each gets the module's answer or ARI's own, never a dead socket.
#[test]
fn unload_load_cycles_leave_no_handler_behind() {
    let facts = AriFacts::of_runtime();
    // What ARI answers once the handler is gone: its claim route without the
    // claim function, or, where it has no claim route, its router.
    let (ari_status, ari_message) = if facts.claim_route {
        (501, "Broadcast functionality not available (res_stasis_broadcast not loaded)")
    } else {
        (404, "Resource not found")
    };
    let asterisk = boot(Mode::Http);
    let stop = AtomicBool::new(false);
    // Answers the request stream got so far: the module's (404, the channel
    // is unknown) and ARI's own (the handler gone).
    let (module_answers, ari_answers) = (AtomicUsize::new(0), AtomicUsize::new(0));
    // Each cycle waits, unloaded, for the stream to get ARI's answer, and,
    // loaded again, the module's: the stream is seen to run through both.
    let answered = |counter: &AtomicUsize, n: usize, what: &str| {
        let (before, deadline) = (counter.load(SeqCst), Instant::now() + 10 * SECOND);
        while counter.load(SeqCst) == before {
            assert!(Instant::now() < deadline, "cycle {n}: the request stream got no {what} answer in 10 s");
            std::thread::sleep(MS);
        }
    };
    let (statuses, cycles, refused) = std::thread::scope(|s| {
        let hammer = s.spawn(|| {
            let http = asterisk.ari();
            let auth = basic("test", "test");
            let mut seen = std::collections::BTreeMap::<(u16, String), usize>::new();
            while !stop.load(SeqCst) {
                let r = http.raw("POST", &format!("{CLAIM_PATH}?{UNKNOWN}"), &[("Authorization", &auth)], None);
                let message = r.json()["message"].as_str().unwrap_or(&r.body).to_owned();
                if (r.status, message.as_str()) == (404, CHANNEL_NOT_FOUND) {
                    module_answers.fetch_add(1, SeqCst);
                } else if (r.status, message.as_str()) == (ari_status, ari_message) {
                    ari_answers.fetch_add(1, SeqCst);
                }
                *seen.entry((r.status, message)).or_default() += 1;
            }
            seen
        });
        let mut cycles = 0;
        let mut refused = 0;
        for n in 0..20 {
            answered(&module_answers, n, "module's");
            let deadline = Instant::now() + 10 * SECOND;
            loop {
                let out = asterisk.cli(&format!("module unload {OURS}"));
                if out.contains("Unloaded") {
                    break;
                }
                // A request inside the handler holds the use count: a plain unload waits for it.
                refused += 1;
                assert!(Instant::now() < deadline, "cycle {n}: unload never succeeded: {out}");
                std::thread::sleep(5 * MS);
            }
            assert!(!handler_linked(&asterisk), "cycle {n}: handler left behind after unload");
            let r = asterisk.ari().raw(
                "POST",
                &format!("{CLAIM_PATH}?{UNKNOWN}"),
                &[("Authorization", &basic("test", "test"))],
                None,
            );
            assert_eq!(r.status, ari_status, "cycle {n}: after unload: {}", r.body);
            assert_eq!(r.json()["message"], ari_message);
            answered(&ari_answers, n, "ARI's own");
            let out = asterisk.cli(&format!("module load {OURS}"));
            assert!(out.contains("Loaded"), "cycle {n}: {out}");
            assert!(handler_linked(&asterisk), "cycle {n}: handler not linked after load");
            cycles += 1;
        }
        answered(&module_answers, cycles, "module's");
        stop.store(true, SeqCst);
        (hammer.join().expect("hammer"), cycles, refused)
    });
    println!("{cycles} unload/load cycles ({refused} unloads refused while a request was in flight); answers seen: {statuses:?}");
    for ((status, message), count) in &statuses {
        assert!(
            (*status == 404 && message == CHANNEL_NOT_FOUND) || (*status == ari_status && message == ari_message),
            "unexpected answer during the cycles ({count}x): {status} {message}"
        );
    }
    let (module_answers, ari_answers) = (module_answers.into_inner(), ari_answers.into_inner());
    assert_eq!(module_answers + ari_answers, statuses.values().sum::<usize>(), "{statuses:?}");
    assert!(module_answers > cycles && ari_answers >= cycles, "module's {module_answers}, ARI's {ari_answers}");
    assert!(asterisk.is_running());
    let log = log_barrier(&asterisk, 0);
    assert!(!log.contains("could not be completely unloaded"), "{log}");
    assert!(!log.contains("did not register itself"), "{log}");
    let r = asterisk.claim("no-such-channel", "x");
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("Channel not found or not in broadcast state")));
}

/// A request written as raw bytes on its own connection, as no HTTP client
/// would: in pieces, each followed by a pause, then `end`.
struct Framing {
    name: &'static str,
    pieces: Vec<(Vec<u8>, Duration)>,
    end: End,
    /// Each answer, in order: its status line, and text its body contains.
    answers: Vec<(&'static str, &'static str)>,
}

/// The well-formed claim of an unknown channel, as bytes: the module answers 404.
fn claim_bytes(connection: &str) -> Vec<u8> {
    format!(
        "POST {CLAIM_PATH}?{UNKNOWN} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: {connection}\r\n\r\n",
        basic("test", "test")
    )
    .into_bytes()
}

/// A claim with a JSON body whose framing says `content_length`.
fn claim_with_body(content_length: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {CLAIM_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\nConnection: close\r\n\r\n{body}",
        basic("test", "test")
    )
    .into_bytes()
}

/// How the client ends its side of the connection.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// Leaves it open, reading the answers (the server closes).
    Open,
    /// Closes its write side, then reads the answers.
    CloseWrite,
    /// Closes the connection without reading anything.
    Vanish,
}

fn framing(name: &'static str, bytes: Vec<u8>, end: End, answers: &[(&'static str, &'static str)]) -> Framing {
    Framing { name, pieces: vec![(bytes, Duration::ZERO)], end, answers: answers.to_vec() }
}

/// Malformed framing of the claim request, clients gone mid-request, and
/// two well-formed ways to frame it no client library uses (pipelined, and
/// last, trickled byte by byte with pauses).
fn framings() -> Vec<Framing> {
    let claim = claim_bytes("close");
    // The module's answer, and Asterisk's HTTP server's to framing it refuses.
    let not_found = ("HTTP/1.1 404 Not Found", CHANNEL_NOT_FOUND);
    let refused = |why: &'static str| ("HTTP/1.1 400 Bad Request", why);
    let bad_length = refused("<p>Invalid Content-Length in request!</p>");
    let half = claim.len() / 2;
    let mut trickled: Vec<(Vec<u8>, Duration)> = claim.iter().map(|byte| (vec![*byte], Duration::ZERO)).collect();
    for at in [10, half, claim.len() - 3] {
        trickled[at].1 = 5 * MS;
    }
    let mut pipelined = claim_bytes("keep-alive");
    pipelined.extend(claim_bytes("close"));
    let oversized_header = {
        let mut bytes = claim.clone();
        let padding = format!("X-Padding: {}\r\n", "a".repeat(64 * 1024));
        let at = claim.len() - 2;
        bytes.splice(at..at, padding.into_bytes());
        bytes
    };
    vec![
        framing("truncated body", claim_with_body("40", r#"{"channelId":"#), End::CloseWrite, &[refused("Error parsing request body")]),
        framing("Content-Length not a number", claim_with_body("abc", "{}"), End::CloseWrite, &[bad_length]),
        framing("negative Content-Length", claim_with_body("-5", "{}"), End::CloseWrite, &[bad_length]),
        framing("oversized Content-Length", claim_with_body("99999999999999999999", "{}"), End::CloseWrite, &[bad_length]),
        framing(
            "Content-Length over Asterisk's limit",
            claim_with_body("41000000", "{}"),
            End::CloseWrite,
            &[("HTTP/1.1 413 Request Entity Too Large", "Request body too large")],
        ),
        framing("oversized header", oversized_header, End::CloseWrite, &[refused("<p>Header line too long</p>")]),
        framing("closed mid-headers", claim[..half].to_vec(), End::CloseWrite, &[refused("<p>Timeout</p>")]),
        framing("gone before the body", claim_with_body("40", ""), End::Vanish, &[]),
        framing("gone mid-headers", claim[..half].to_vec(), End::Vanish, &[]),
        framing("pipelined", pipelined, End::Open, &[not_found, not_found]),
        Framing { name: "trickled byte by byte", pieces: trickled, end: End::Open, answers: vec![not_found] },
    ]
}

/// Sends `framing`; every answer read back, and the raw text.
fn exchange(asterisk: &Asterisk, framing: &Framing) -> (Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", asterisk.http_port())).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(5 * SECOND)).expect("read timeout");
    for (bytes, pause) in &framing.pieces {
        // The server may close early (an answer to what it read so far).
        if stream.write_all(bytes).is_err() {
            break;
        }
        std::thread::sleep(*pause);
    }
    match framing.end {
        End::Open => {}
        End::CloseWrite => {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        End::Vanish => return (Vec::new(), String::new()),
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    (answers(&raw), String::from_utf8_lossy(&raw).into_owned())
}

/// The answers in `raw`, one after the other: (status line, body).
fn answers(mut raw: &[u8]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    while let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let length = head
            .lines()
            .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        let body_end = (end + 4 + length).min(raw.len());
        let body = String::from_utf8_lossy(&raw[end + 4..body_end]).into_owned();
        found.push((head.lines().next().unwrap_or_default().to_owned(), body));
        raw = &raw[body_end..];
    }
    found
}

/// Whether `got` are the answers `framing` expects.
fn answered_as_expected(framing: &Framing, got: &[(String, String)]) -> bool {
    got.len() == framing.answers.len()
        && got.iter().zip(&framing.answers).all(|((status, body), (want, text))| status == want && body.contains(text))
}

/// 10,000 requests: bad credentials, bad bodies and malformed HTTP framing
/// (nearly half), each answered as it must be; Asterisk up, its memory flat.
#[test]
fn ten_thousand_bad_requests_keep_asterisk_up_and_small() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(Mode::Http);
    let kinds = vec![
        case("no credentials", "POST", UNKNOWN, 401),
        case("bad password", "POST", UNKNOWN, 401).auth("test", "wrong"),
        case("api_key without ':'", "POST", &format!("{UNKNOWN}&api_key=test"), 401),
        case("api_key ':'", "POST", &format!("{UNKNOWN}&api_key=:"), 401),
        case("Basic, not base64", "POST", UNKNOWN, 401).header("Authorization", "Basic !!!not-base64"),
        case("Bearer", "POST", UNKNOWN, 401).header("Authorization", "Bearer x"),
        case("bad JSON, no credentials", "POST", UNKNOWN, 400).json("{not json"),
        case("no parameters", "POST", "", 400).auth("test", "test"),
        case("GET", "GET", UNKNOWN, 405).auth("test", "test"),
        case("DELETE, no credentials", "DELETE", UNKNOWN, 401),
        case("truncated JSON", "POST", UNKNOWN, 400).auth("test", "test").json("["),
        // Without per-user ACLs in ARI, a read-only user's POST is the 403.
        if facts.user_acls {
            case("refused by ACL", "POST", UNKNOWN, 403).auth("fenced", "f")
        } else {
            case("read-only user", "POST", UNKNOWN, 403).auth("viewer", "v")
        },
    ];
    let all = framings();
    // The slow sender (some 20 ms a request) goes in once every 100 requests.
    let (slow, framings) = all.split_last().expect("framings");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut fire = |n: usize| {
        let turn = n % (kinds.len() + framings.len());
        let framing = match turn.checked_sub(kinds.len()) {
            _ if n % 100 == 99 => Some(slow),
            Some(framing) => Some(&framings[framing]),
            None => None,
        };
        if let Some(framing) = framing {
            let (got, raw) = exchange(&asterisk, framing);
            assert!(answered_as_expected(framing, &got), "request {n} ({}): want {:?}, got:\n{raw}", framing.name, framing.answers);
            *counts.entry(framing.name.to_owned()).or_default() += 1;
        } else {
            let kind = &kinds[turn];
            let r = send(&asterisk, kind);
            assert_eq!(r.status, kind.status, "request {n} ({}): {}", kind.name, r.body);
            assert!((400..500).contains(&r.status));
            if r.status == 404 {
                assert_eq!(r.json()["message"], CHANNEL_NOT_FOUND, "request {n} ({})", kind.name);
            }
            *counts.entry(r.status.to_string()).or_default() += 1;
        }
    };
    // Warm-up: allocator arenas, HTTP sessions, Asterisk's caches.
    for n in 0..1_000 {
        fire(n);
    }
    let before = asterisk.rss_kib().expect("resident memory of Asterisk");
    let started = Instant::now();
    for n in 0..10_000 {
        fire(n);
    }
    let elapsed = started.elapsed();
    let after = asterisk.rss_kib().expect("resident memory of Asterisk");
    let growth = after.saturating_sub(before);
    println!("10,000 bad requests in {elapsed:?}: {counts:?}; Asterisk RSS {before} KiB -> {after} KiB (growth {growth} KiB)");
    assert!(asterisk.is_running());
    assert!(growth < 2048, "resident memory grew by {growth} KiB");
    assert_eq!(asterisk.claim("no-such-channel", "x").status, 404, "still serving");
}

#[test]
fn the_json_body_and_query_string_claims_win_alike() {
    // A claim in a JSON body and one in the query string, each on its own call, in module mode.
    let asterisk = boot(Mode::Http);
    let app = asterisk.connect_app("claimer");
    for body in [true, false] {
        let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "5000"));
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
        let r = if body {
            let payload: Value = json!({"channelId": id, "application": "claimer"});
            asterisk.ari().post("/events/claim", Some(&payload))
        } else {
            asterisk.claim(&id, "claimer")
        };
        assert_eq!((r.status, r.body.as_str()), (204, ""), "JSON body: {body}");
        assert_eq!(r.header("content-type"), None);
        app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
        assert_eq!(asterisk.continue_channel(&id).status, 204);
        assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).as_deref(), Some("SUCCESS"));
    }
}
