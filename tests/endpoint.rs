//! The claim endpoint served by the module itself (`claim_endpoint=module`,
//! what Asterisk versions without a claim route get) against ARI's own route
//! and authentication (`claim_endpoint=ari`), on a real Asterisk 22.10.1.
//!
//! The credential matrix sends every request once to an instance in each
//! mode and requires the same status, body and the headers a client acts on.
//! Where ARI answers differently for a reason the module cannot see, the case
//! names the reason and asserts both answers.

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const MS: Duration = Duration::from_millis(1);
/// `openssl passwd -6 -salt sbtestsalt hunter2`.
const HUNTER2_HASH: &str =
    "$6$sbtestsalt$shGzwJLG1jVnBszQRvAYiFmNOS.QQuNd1Yl9h.Z7..IgiimpN4a7O23qzAiTmuO0uaet3dys89skax.W29Alf.";
const REALM: &str = "Claims Realm";
const CLAIM_PATH: &str = "/ari/events/claim";

const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(HRESULT_${UNIQUEID})=H:${STASISSTATUS})
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ari,
    Module,
}

impl Mode {
    fn setting(self) -> &'static str {
        match self {
            Mode::Ari => "ari",
            Mode::Module => "module",
        }
    }
}

fn settings(claim_endpoint: &str) -> String {
    format!("[general]\nclaim_endpoint = {claim_endpoint}\n")
}

/// The users of the matrix: plain, crypt, read-only, three ACL variants.
fn config(mode: Mode) -> AsteriskConfig {
    AsteriskConfig::new(ours())
        .dialplan(DIALPLAN)
        .ari_general(&format!("auth_realm = {REALM}"))
        // After the harness's `allowed_origins = *`: the last value counts, in ARI and here.
        .ari_general("allowed_origins = http://good.example,http://other.example")
        .ari_user(AriUser::crypt("hashed", HUNTER2_HASH))
        .ari_user(AriUser::plain("viewer", "v").read_only(true))
        .ari_user(AriUser::plain("local", "l").extra("deny=0.0.0.0/0.0.0.0\npermit=127.0.0.1"))
        .ari_user(AriUser::plain("fenced", "f").extra("deny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/255.0.0.0"))
        .ari_user(AriUser::plain("named", "n").extra("acl=blocked"))
        .file("acl.conf", "[blocked]\ndeny=0.0.0.0/0.0.0.0\n")
        .file("stasis_broadcast.conf", &settings(mode.setting()))
        .label(mode.setting())
}

fn boot(mode: Mode) -> Asterisk {
    let asterisk = Asterisk::start(config(mode));
    assert_mode(&asterisk, mode);
    asterisk
}

/// Boots one instance per mode, at the same time.
fn boot_both() -> (Asterisk, Asterisk) {
    std::thread::scope(|s| {
        let ari = s.spawn(|| boot(Mode::Ari));
        let module = s.spawn(|| boot(Mode::Module));
        (ari.join().expect("boot ari"), module.join().expect("boot module"))
    })
}

fn handler_linked(asterisk: &Asterisk) -> bool {
    asterisk.cli("http show status").lines().any(|line| line.contains("/ari/events/claim =>"))
}

fn assert_mode(asterisk: &Asterisk, mode: Mode) {
    assert_eq!(handler_linked(asterisk), mode == Mode::Module, "handler linked in {mode:?} mode");
    let expected = format!("claim endpoint: {} (claim_endpoint={}", mode.setting(), mode.setting());
    assert!(asterisk.wait_for_log(&expected, 5 * SECOND), "log line '{expected}'");
}

fn basic(user: &str, password: &str) -> String {
    basic_authorization(user, password)
}

/// One request of the matrix.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// What both modes answer (checked, so the matrix also documents ARI).
    status: u16,
    /// `Some(reason)`: ARI and the module differ, for that reason.
    difference: Option<&'static str>,
}

fn case(name: &'static str, method: &'static str, query: &str, status: u16) -> Case {
    let path = if query.is_empty() { CLAIM_PATH.to_owned() } else { format!("{CLAIM_PATH}?{query}") };
    Case { name, method, path, headers: Vec::new(), body: None, status, difference: None }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
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

    fn differs(mut self, reason: &'static str) -> Case {
        self.difference = Some(reason);
        self
    }
}

const UNKNOWN: &str = "channelId=no-such-channel&application=claimer";

fn matrix_cases() -> Vec<Case> {
    let big = format!("{{\"channelId\":\"{}\",\"application\":\"claimer\"}}", "x".repeat(50_000));
    vec![
        case("no credentials", "POST", UNKNOWN, 401),
        case("Basic, good password", "POST", UNKNOWN, 404).auth("test", "test"),
        case("Basic, bad password", "POST", UNKNOWN, 401).auth("test", "wrong"),
        case("Basic, unknown user", "POST", UNKNOWN, 401).auth("nobody", "test"),
        case("Basic, user name differs in case", "POST", UNKNOWN, 401).auth("TEST", "test"),
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
        case("deny=0.0.0.0/0.0.0.0 permit=127.0.0.1", "POST", UNKNOWN, 404).auth("local", "l"),
        case("denied by permit/deny", "POST", UNKNOWN, 403).auth("fenced", "f"),
        case("denied by a named ACL (acl=blocked)", "POST", UNKNOWN, 403).auth("named", "n"),
        case("ACL refusal before a bad method", "GET", UNKNOWN, 403).auth("fenced", "f"),
        case("GET", "GET", UNKNOWN, 405).auth("test", "test"),
        case("PUT", "PUT", UNKNOWN, 405).auth("test", "test"),
        case("DELETE", "DELETE", UNKNOWN, 405).auth("test", "test"),
        case("GET without credentials", "GET", UNKNOWN, 401),
        case("OPTIONS", "OPTIONS", "", 204).auth("test", "test"),
        case("OPTIONS, CORS preflight", "OPTIONS", "", 204)
            .auth("test", "test")
            .header("Origin", "http://good.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "Content-Type"),
        case("allowed Origin", "POST", UNKNOWN, 404).auth("test", "test").header("Origin", "http://other.example"),
        case("refused Origin", "POST", UNKNOWN, 404).auth("test", "test").header("Origin", "http://evil.example"),
        case("allowed Origin, no credentials", "POST", UNKNOWN, 401).header("Origin", "http://good.example"),
        case("missing channelId", "POST", "application=claimer", 400).auth("test", "test"),
        case("missing application", "POST", "channelId=no-such-channel", 400).auth("test", "test"),
        case("empty channelId", "POST", "channelId=&application=claimer", 400).auth("test", "test"),
        case("no parameters", "POST", "", 400).auth("test", "test"),
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
            .json(r#"{"channelId":""}"#),
        case("JSON body, non-string parameter", "POST", "channelId=no-such-channel&application=claimer", 400)
            .auth("test", "test")
            .json(r#"{"application":5}"#),
        case("JSON body that is not an object", "POST", UNKNOWN, 404).auth("test", "test").json("[1,2]"),
        case("malformed JSON body, no credentials", "POST", UNKNOWN, 400).json("{\"channelId\":"),
        case("JSON body over 40960 bytes", "POST", "", 413).auth("test", "test").json(&big),
        case("form body parameters", "POST", "", 404)
            .auth("test", "test")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b"channelId=no-such-channel&application=claimer"),
        case("api_key in a form body", "POST", "", 404)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b"channelId=no-such-channel&application=claimer&api_key=test%3Atest"),
        case("unknown channel", "POST", UNKNOWN, 404).auth("test", "test"),
        case("trailing slash", "POST", UNKNOWN, 404)
            .auth("test", "test")
            .path(&format!("{CLAIM_PATH}/?{UNKNOWN}"))
            .differs(
                "Asterisk's HTTP server hands ari/events/claim and ari/events/claim/ to the handler alike; \
             ARI sees the slash and answers 'ARI URLs do not end with a slash', the module serves the claim",
            ),
        case("upper-case path", "POST", UNKNOWN, 404)
            .auth("test", "test")
            .path(&format!("/ARI/EVENTS/CLAIM?{UNKNOWN}"))
            .differs(
                "Asterisk's HTTP server matches handler URIs case-insensitively and passes the matched part to \
                 neither; ARI's own router compares path segments case-sensitively and answers 'Resource not found'",
            ),
    ]
}

/// The headers a client acts on, names lower-case, in order.
fn significant_headers(response: &Response) -> Vec<(String, String)> {
    const NAMES: [&str; 8] = [
        "www-authenticate",
        "allow",
        "content-type",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "connection",
    ];
    response
        .headers
        .iter()
        .filter(|(name, _)| NAMES.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect()
}

fn send(asterisk: &Asterisk, case: &Case) -> Response {
    let headers: Vec<(&str, &str)> = case.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    asterisk.ari().raw(case.method, &case.path, &headers, case.body.as_deref())
}

/// HEAD goes over its own connection: Asterisk sends a body with an error
/// answer to HEAD, which a client would otherwise read as the next answer.
fn head(asterisk: &Asterisk, authorization: Option<&str>) -> (String, String) {
    let mut request = format!("HEAD {CLAIM_PATH}?{UNKNOWN} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    let raw = asterisk.ari().raw_tcp(request.as_bytes(), 5 * SECOND);
    let status = raw.lines().next().unwrap_or("").to_owned();
    let body = raw.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn credential_matrix_answers_alike_in_both_modes() {
    let (ari, module) = boot_both();
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for case in matrix_cases() {
        let from_ari = send(&ari, &case);
        let from_module = send(&module, &case);
        let same = from_ari.status == from_module.status
            && from_ari.body == from_module.body
            && significant_headers(&from_ari) == significant_headers(&from_module);
        table.push(format!(
            "{:<52} ari {} {:<70} module {} {}",
            case.name, from_ari.status, from_ari.body, from_module.status, from_module.body
        ));
        let expected_status = from_ari.status == case.status && from_module.status == case.status;
        match case.difference {
            None if same && expected_status => {}
            None => failures.push(format!(
                "{}: expected {} from both\n  ari:    {} {:?} {}\n  module: {} {:?} {}",
                case.name,
                case.status,
                from_ari.status,
                significant_headers(&from_ari),
                from_ari.body,
                from_module.status,
                significant_headers(&from_module),
                from_module.body
            )),
            Some(reason) => {
                println!("named difference, {}: {reason}", case.name);
                if same || !expected_status {
                    failures.push(format!(
                        "{}: the named difference did not show as expected\n  ari: {} {}\n  module: {} {}",
                        case.name, from_ari.status, from_ari.body, from_module.status, from_module.body
                    ));
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
    // HEAD, over raw connections.
    for (name, authorization) in [("HEAD", Some(basic("test", "test"))), ("HEAD without credentials", None)] {
        let from_ari = head(&ari, authorization.as_deref());
        let from_module = head(&module, authorization.as_deref());
        table.push(format!("{name:<52} ari {} {} module {} {}", from_ari.0, from_ari.1, from_module.0, from_module.1));
        if from_ari != from_module {
            failures.push(format!("{name}: ari {from_ari:?} module {from_module:?}"));
        }
    }
    // The named differences, asserted as they are.
    let slash = send(&ari, &matrix_cases().into_iter().find(|case| case.name == "trailing slash").expect("case"));
    assert_eq!(slash.json()["message"], "ARI URLs do not end with a slash. Try /ari/events/claim");
    let upper = send(&ari, &matrix_cases().into_iter().find(|case| case.name == "upper-case path").expect("case"));
    assert_eq!(upper.json()["message"], "Resource not found");

    live_cases(&ari, &module, &mut table, &mut failures);
    println!("{}", table.join("\n"));
    println!("{} cases compared", table.len());
    assert!(failures.is_empty(), "answers differ:\n{}", failures.join("\n"));
    assert!(module.is_running() && ari.is_running());
}

/// Cases that need a call being broadcast: unregistered application, JSON
/// body winning, a race of three (one 204, two 409), a late claim.
fn live_cases(ari: &Asterisk, module: &Asterisk, table: &mut Vec<String>, failures: &mut Vec<String>) {
    let run = |asterisk: &Asterisk| -> Vec<(String, u16, String)> {
        let apps: Vec<AriApp> =
            ["racer-a", "racer-b", "racer-c"].iter().map(|name| asterisk.connect_app(name)).collect();
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
    };
    let from_ari = run(ari);
    let from_module = run(module);
    let expected = [404, 403, 204, 409, 409, 409, 404];
    for (n, ((name, ari_status, ari_body), (_, module_status, module_body))) in
        from_ari.iter().zip(&from_module).enumerate()
    {
        table.push(format!("{name:<52} ari {ari_status} {ari_body:<70} module {module_status} {module_body}"));
        if (ari_status, ari_body) != (module_status, module_body) || *ari_status != expected[n] {
            failures.push(format!(
                "{name}: expected {}; ari {ari_status} {ari_body}, module {module_status} {module_body}",
                expected[n]
            ));
        }
    }
}

// ------------------------------------------------------------ mode choice

#[test]
fn auto_mode_on_22_10_uses_aris_route_and_reload_switches_modes() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()).dialplan(DIALPLAN));
    // No stasis_broadcast.conf: auto, and 22.10.1 has the route.
    assert!(asterisk.wait_for_log("claim endpoint: ari (claim_endpoint=auto: Asterisk 22.10.1", 5 * SECOND));
    assert!(!handler_linked(&asterisk));
    let shown = asterisk.cli("stasis broadcast show settings");
    assert!(
        shown.contains("claim endpoint:") && shown.contains("ari (claim_endpoint=auto: Asterisk 22.10.1"),
        "{shown}"
    );
    let settings_path = asterisk.dir().join("etc/stasis_broadcast.conf");

    std::fs::write(&settings_path, settings("module")).expect("write settings");
    let mark = asterisk.log_mark();
    asterisk.cli(&format!("module reload {OURS}"));
    assert!(asterisk.wait_for_log_since(mark, "claim endpoint: module (claim_endpoint=module", 5 * SECOND));
    assert!(handler_linked(&asterisk));
    let shown = asterisk.cli("stasis broadcast show settings");
    println!("{shown}");
    assert!(
        shown.contains("module (claim_endpoint=module: this module's handler serves it, in front of the route"),
        "{shown}"
    );
    assert!(shown.contains("handler linked, 1 ARI user(s)"), "{shown}");
    let r = asterisk.claim("no-such-channel", "x");
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("Channel not found or not in broadcast state")));

    std::fs::write(&settings_path, settings("auto")).expect("write settings");
    let mark = asterisk.log_mark();
    asterisk.cli(&format!("module reload {OURS}"));
    assert!(asterisk.wait_for_log_since(mark, "claim endpoint: ari (claim_endpoint=auto", 5 * SECOND));
    assert!(!handler_linked(&asterisk));
    assert_eq!(asterisk.claim("no-such-channel", "x").status, 404);
}

// ------------------------------------------------- ari.conf changes, reloads

fn write_ari_conf(asterisk: &Asterisk, general: &str, users: &str) {
    let text = format!("[general]\nenabled = yes\npretty = no\nallowed_origins = *\n{general}\n{users}");
    std::fs::write(asterisk.dir().join("etc/ari.conf"), text).expect("write ari.conf");
}

/// When ARI reloads its configuration the module re-reads ari.conf too (it
/// observes ARI's configuration): only `module reload res_ari.so` is run here.
#[test]
fn ari_conf_changes_apply_alike_after_aris_reload() {
    let (ari, module) = boot_both();
    let reload_both = || {
        for asterisk in [&ari, &module] {
            let mark = asterisk.log_mark();
            asterisk.cli("module reload res_ari.so");
            if std::ptr::eq(asterisk, &module) {
                assert!(asterisk.wait_for_log_since(
                    mark,
                    "ARI reloaded its configuration; re-reading ari.conf",
                    5 * SECOND
                ));
            }
        }
    };
    let claim = |asterisk: &Asterisk, user: &str, password: &str| {
        asterisk.ari().raw(
            "POST",
            &format!("{CLAIM_PATH}?{UNKNOWN}"),
            &[("Authorization", &basic(user, password))],
            None,
        )
    };
    let same = |what: &str, user: &str, password: &str, status: u16| {
        let (a, m) = (claim(&ari, user, password), claim(&module, user, password));
        assert_eq!((a.status, &a.body), (m.status, &m.body), "{what}");
        assert_eq!(a.status, status, "{what}: {}", a.body);
        a
    };

    // A new password and a new realm.
    for asterisk in [&ari, &module] {
        write_ari_conf(asterisk, "auth_realm = Second", "[test]\ntype=user\npassword=changed\n");
    }
    reload_both();
    same("old password after reload", "test", "test", 401);
    same("new password after reload", "test", "changed", 404);
    let a = same("realm after reload", "x", "y", 401);
    assert_eq!(a.header("www-authenticate"), Some("Basic realm=\"Second\""));

    // pretty = yes changes the body's format; the module follows ARI's.
    for asterisk in [&ari, &module] {
        write_ari_conf(asterisk, "pretty = yes", "[test]\ntype=user\npassword=changed\n");
    }
    reload_both();
    let a = same("pretty JSON", "test", "changed", 404);
    assert!(a.body.contains('\n'), "pretty body: {:?}", a.body);

    // A user ARI refuses on reload (unknown option) keeps its previous settings.
    for asterisk in [&ari, &module] {
        write_ari_conf(asterisk, "", "[test]\ntype=user\npassword=third\ncolour=blue\n");
    }
    reload_both();
    same("refused user keeps the previous password", "test", "changed", 404);
    same("refused user's new password", "test", "third", 401);

    // ARI disabled: neither serves the endpoint; the HTTP server's own 404.
    for asterisk in [&ari, &module] {
        std::fs::write(
            asterisk.dir().join("etc/ari.conf"),
            "[general]\nenabled = no\n\n[test]\ntype=user\npassword=test\n",
        )
        .expect("write ari.conf");
    }
    reload_both();
    assert!(!handler_linked(&module));
    let (a, m) = (claim(&ari, "test", "test"), claim(&module, "test", "test"));
    assert_eq!((a.status, &a.body), (m.status, &m.body));
    assert_eq!(a.status, 404);
    assert!(a.body.contains("The requested URL was not found on this server."), "{}", a.body);
    assert!(module.log().contains("ARI is disabled in ari.conf, so /ari/events/claim is not served"));

    // Enabled again.
    for asterisk in [&ari, &module] {
        write_ari_conf(asterisk, "", "[test]\ntype=user\npassword=test\n");
    }
    reload_both();
    assert!(handler_linked(&module));
    same("enabled again", "test", "test", 404);
}

/// The handler is linked under the HTTP server's prefix like every other URI.
#[test]
fn http_prefix_is_honoured() {
    let (ari, module) = boot_both();
    for asterisk in [&ari, &module] {
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
    let auth = basic("test", "test");
    for path in [format!("/sb{CLAIM_PATH}?{UNKNOWN}"), format!("{CLAIM_PATH}?{UNKNOWN}")] {
        let a = ari.ari().raw("POST", &path, &[("Authorization", &auth)], None);
        let m = module.ari().raw("POST", &path, &[("Authorization", &auth)], None);
        println!("{path}: ari {} {} / module {} {}", a.status, a.body, m.status, m.body);
        assert_eq!((a.status, &a.body), (m.status, &m.body), "{path}");
        assert_eq!(a.status, 404);
    }
    let prefixed = module.ari().raw("POST", &format!("/sb{CLAIM_PATH}?{UNKNOWN}"), &[("Authorization", &auth)], None);
    assert_eq!(prefixed.json()["message"], "Channel not found or not in broadcast state");
}

// ------------------------------------------------------------ the feature

/// The race of the feature tests, over the module's own endpoint: every call
/// has exactly one 204 and seven 409, and the winner gets the call.
#[test]
fn race_over_the_module_endpoint() {
    const APPS: usize = 8;
    const CALLS: usize = 60;
    let asterisk = boot(Mode::Module);
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
    let asterisk = boot(Mode::Module);
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
        .file("stasis_broadcast.conf", &settings("module"));
    let asterisk = Asterisk::start(config);
    assert!(handler_linked(&asterisk));
    let app = asterisk.connect_app("claimer");
    let id = asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", "10000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    let mark = asterisk.log_mark();
    let r = asterisk.claim(&id, "inject-panic");
    // What res_ari_events answers when the claim function fails unexpectedly.
    assert_eq!((r.status, r.json()["message"].as_str()), (500, Some("Failed to claim channel")), "{}", r.body);
    assert!(asterisk.wait_for_log_since(mark, "panic in claim endpoint", 5 * SECOND));
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
    let asterisk = boot(Mode::Module);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (statuses, cycles, refused) = std::thread::scope(|s| {
        let hammer = s.spawn(|| {
            let http = asterisk.ari();
            let auth = basic("test", "test");
            let mut seen = std::collections::BTreeMap::<(u16, String), usize>::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = http.raw("POST", &format!("{CLAIM_PATH}?{UNKNOWN}"), &[("Authorization", &auth)], None);
                *seen.entry((r.status, r.json()["message"].as_str().unwrap_or(&r.body).to_owned())).or_default() += 1;
            }
            seen
        });
        let mut cycles = 0;
        let mut refused = 0;
        for n in 0..20 {
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
            // ARI's own route answers now (22.10.1 has one; the claim function is gone with the module).
            assert_eq!(r.status, 501, "cycle {n}: after unload: {}", r.body);
            assert_eq!(r.json()["message"], "Broadcast functionality not available (res_stasis_broadcast not loaded)");
            let out = asterisk.cli(&format!("module load {OURS}"));
            assert!(out.contains("Loaded"), "cycle {n}: {out}");
            assert!(handler_linked(&asterisk), "cycle {n}: handler not linked after load");
            cycles += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (hammer.join().expect("hammer"), cycles, refused)
    });
    println!("{cycles} unload/load cycles ({refused} unloads refused while a request was in flight); answers seen: {statuses:?}");
    for ((status, message), count) in &statuses {
        assert!(
            (*status == 404 && message == "Channel not found or not in broadcast state")
                || (*status == 501 && message.starts_with("Broadcast functionality not available")),
            "unexpected answer during the cycles ({count}x): {status} {message}"
        );
    }
    assert!(asterisk.is_running());
    let log = asterisk.log();
    assert!(!log.contains("could not be completely unloaded"));
    assert!(!log.contains("did not register itself"));
    let r = asterisk.claim("no-such-channel", "x");
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("Channel not found or not in broadcast state")));
}

/// 10,000 malformed or unauthenticated requests: each a 4xx, Asterisk up,
/// its memory flat.
#[test]
fn ten_thousand_bad_requests_keep_asterisk_up_and_small() {
    let asterisk = boot(Mode::Module);
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
        case("refused by ACL", "POST", UNKNOWN, 403).auth("fenced", "f"),
    ];
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    let mut fire = |n: usize| {
        let kind = &kinds[n % kinds.len()];
        let r = send(&asterisk, kind);
        assert_eq!(r.status, kind.status, "request {n} ({}): {}", kind.name, r.body);
        assert!((400..500).contains(&r.status));
        *counts.entry(r.status).or_default() += 1;
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
    println!("10,000 bad requests in {elapsed:?}: statuses {counts:?}; Asterisk RSS {before} KiB -> {after} KiB (growth {growth} KiB)");
    assert!(asterisk.is_running());
    assert!(growth < 2048, "resident memory grew by {growth} KiB");
    assert_eq!(asterisk.claim("no-such-channel", "x").status, 404, "still serving");
}

#[test]
fn the_json_body_and_query_string_claims_win_alike() {
    // A claim in a JSON body and one in the query string, each on its own call, in module mode.
    let asterisk = boot(Mode::Module);
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
