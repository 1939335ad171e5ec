//! ARI's API description of events (`GET /ari/api-docs/events.json`) on the
//! Asterisk selected by `STASIS_BROADCAST_ROOT`: where Asterisk's own
//! `events.json` lacks `CallBroadcast`, `CallClaimed` and `POST /events/claim`
//! (before 20.20, 22.10, 23.4) the module serves it with them added, exactly
//! as ARI serves api-docs otherwise; where it has them (Debian's 22.10.1) the
//! module links nothing and the answer is ARI's own, byte for byte.
//!
//! Tests with their own copy of `rest-api/` (`own_rest_api`) change the file
//! to drive the decision on any version.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const EVENTS: &str = "/ari/api-docs/events.json";
const CHANNELS: &str = "/ari/api-docs/channels.json";
/// The first release of each branch whose events.json describes the broadcast entries.
const DESCRIBED_FROM: &[(u32, u32)] = &[(20, 20), (22, 10), (23, 4)];
const MODELS: [&str; 2] = ["CallBroadcast", "CallClaimed"];
/// Property, type, required: as Asterisk 22.10's events.json has them (checked
/// against the file itself where the runtime is such an Asterisk).
const CALL_BROADCAST: [(&str, &str, bool); 3] =
    [("channel", "Channel", true), ("caller", "string", false), ("called", "string", false)];
const CALL_CLAIMED: [(&str, &str, bool); 2] = [("channel", "Channel", true), ("winner_app", "string", true)];
/// `openssl passwd -6 -salt sbtestsalt hunter2`.
const HUNTER2_HASH: &str =
    "$6$sbtestsalt$shGzwJLG1jVnBszQRvAYiFmNOS.QQuNd1Yl9h.Z7..IgiimpN4a7O23qzAiTmuO0uaet3dys89skax.W29Alf.";

fn docs_linked(asterisk: &Asterisk) -> bool {
    asterisk.cli("http show status").lines().any(|line| line.contains("/ari/api-docs/events.json =>"))
}

fn get(asterisk: &Asterisk, path: &str) -> Response {
    asterisk.ari().raw("GET", path, &[("Authorization", &basic_authorization("test", "test"))], None)
}

fn events_file(asterisk: &Asterisk) -> PathBuf {
    asterisk.rest_api_dir().join("events.json")
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn write_json(path: &PathBuf, doc: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(doc).expect("encode")).expect("write events.json");
}

/// A file as ARI serves it to this test's client: `basePath` from the Host header.
fn as_served(file: &Value, asterisk: &Asterisk) -> Value {
    let mut doc = file.clone();
    if doc.get("basePath").is_some() {
        doc["basePath"] = Value::from(format!("http://127.0.0.1:{}/ari", asterisk.http_port()));
    }
    doc
}

/// Whether a description has the broadcast entries (read independently of the module).
fn describes_broadcast(doc: &Value) -> bool {
    let models = MODELS.iter().all(|name| doc["models"][name].is_object());
    let claim = doc["apis"].as_array().into_iter().flatten().any(|api| {
        api["path"] == "/events/claim"
            && api["operations"].as_array().into_iter().flatten().any(|operation| operation["httpMethod"] == "POST")
    });
    models && claim
}

/// The description without the broadcast entries, the rest in its order.
fn without_entries(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let models = doc["models"].as_object_mut().expect("models");
    for name in MODELS {
        models.shift_remove(name);
    }
    if let Some(subtypes) = models.get_mut("Event").and_then(|event| event["subTypes"].as_array_mut()) {
        subtypes.retain(|name| !MODELS.iter().any(|model| name == model));
    }
    doc["apis"].as_array_mut().expect("apis").retain(|api| api["path"] != "/events/claim");
    doc
}

fn properties(doc: &Value, model: &str) -> Vec<(String, String, bool)> {
    doc["models"][model]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{model} has properties"))
        .iter()
        .map(|(name, p)| {
            (name.clone(), p["type"].as_str().unwrap_or("?").to_owned(), p["required"].as_bool().unwrap_or(false))
        })
        .collect()
}

fn owned(list: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    list.iter().map(|(name, kind, required)| ((*name).to_owned(), (*kind).to_owned(), *required)).collect()
}

/// The entries ari-client needs, with Asterisk 22.10's names and types.
fn assert_entries(doc: &Value, whose: &str) {
    assert_eq!(properties(doc, "CallBroadcast"), owned(&CALL_BROADCAST), "{whose}: CallBroadcast");
    assert_eq!(properties(doc, "CallClaimed"), owned(&CALL_CLAIMED), "{whose}: CallClaimed");
    for name in MODELS {
        assert_eq!(doc["models"][name]["id"], name, "{whose}: {name}.id");
        let subtypes = doc["models"]["Event"]["subTypes"].as_array().expect("Event.subTypes");
        assert!(subtypes.iter().any(|subtype| subtype == name), "{whose}: {name} among Event's subTypes");
    }
    let api = doc["apis"].as_array().unwrap().iter().find(|api| api["path"] == "/events/claim").expect("claim api");
    let operation = api["operations"].as_array().unwrap().iter().find(|o| o["httpMethod"] == "POST").expect("POST");
    assert_eq!(operation["nickname"], "claimChannel", "{whose}");
    assert_eq!(operation["responseClass"], "void", "{whose}");
    let parameters: Vec<(&str, &str, bool, &str)> = operation["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["paramType"].as_str().unwrap(),
                p["required"].as_bool().unwrap(),
                p["dataType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parameters,
        [("channelId", "query", true, "string"), ("application", "query", true, "string")],
        "{whose}"
    );
    let codes: Vec<u64> =
        operation["errorResponses"].as_array().unwrap().iter().map(|e| e["code"].as_u64().unwrap()).collect();
    assert!(codes.contains(&404) && codes.contains(&409), "{whose}: {codes:?}");
}

fn unload(asterisk: &Asterisk) {
    let deadline = Instant::now() + 10 * SECOND;
    loop {
        let out = asterisk.cli(&format!("module unload {OURS}"));
        if out.contains("Unloaded") {
            return;
        }
        assert!(Instant::now() < deadline, "unload never succeeded: {out}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn load(asterisk: &Asterisk) {
    let out = asterisk.cli(&format!("module load {OURS}"));
    assert!(out.contains("Loaded"), "{out}");
}

/// Rewrites ari.conf `[general]` and has ARI reload it; waits until ARI
/// answers with that configuration (`pretty` shows in channels.json).
fn reconfigure_ari(asterisk: &Asterisk, general: &str, pretty: bool) {
    let text =
        format!("[general]\nenabled = yes\nallowed_origins = *\n{general}\n\n[test]\ntype=user\npassword=test\n");
    std::fs::write(asterisk.dir().join("etc/ari.conf"), text).expect("write ari.conf");
    asterisk.cli("module reload res_ari.so");
    let deadline = Instant::now() + 5 * SECOND;
    while get(asterisk, CHANNELS).body.contains('\n') != pretty {
        assert!(Instant::now() < deadline, "ARI did not take pretty = {pretty}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What each version must show: the module completes events.json exactly
/// where Asterisk's lacks the entries, in ARI's own text, compact and
/// pretty; after unload ARI's own answer is back.
#[test]
fn events_json_is_completed_exactly_where_asterisk_lacks_the_entries() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()));
    let file = read_json(&events_file(&asterisk));
    let described = asterisk.runtime().at_least(DESCRIBED_FROM);
    let version = asterisk.runtime().version();
    assert_eq!(describes_broadcast(&file), described, "Asterisk {version:?}: its events.json");
    let channels = get(&asterisk, CHANNELS);
    assert_eq!(channels.status, 200, "{}", channels.body);
    assert_eq!(channels.json()["basePath"], format!("http://127.0.0.1:{}/ari", asterisk.http_port()));

    let shown = asterisk.cli("stasis broadcast show settings");
    println!("{shown}");
    let served = get(&asterisk, EVENTS);
    assert_eq!(served.status, 200, "{}", served.body);
    assert_eq!(served.header("content-type"), Some("application/json"));
    if described {
        assert!(!docs_linked(&asterisk), "Asterisk {version:?} describes the entries: nothing to link");
        logged_through(
            &asterisk,
            0,
            "API description: ari (Asterisk's events.json already describes CallBroadcast, CallClaimed and \
             POST /events/claim; ARI serves it unchanged)",
        );
        assert!(
            shown.contains("API description (events.json):")
                && shown.contains("ari (Asterisk's events.json already describes"),
            "{shown}"
        );
        // The names and types this test expects elsewhere are Asterisk's own.
        assert_entries(&file, "Asterisk's events.json");
        assert_eq!(served.json(), as_served(&file, &asterisk));
    } else {
        assert!(docs_linked(&asterisk), "Asterisk {version:?} lacks the entries: the module serves events.json");
        logged_through(
            &asterisk,
            0,
            "API description: module (Asterisk's events.json lacks the CallBroadcast and CallClaimed models, \
             POST /events/claim; this module serves GET /ari/api-docs/events.json with them added)",
        );
        assert!(
            shown.contains("API description (events.json):") && shown.contains("module (Asterisk's events.json lacks"),
            "{shown}"
        );
        let doc = served.json();
        assert_entries(&doc, "served events.json");
        assert_eq!(without_entries(&doc), as_served(&file, &asterisk), "the rest is Asterisk's file");
    }

    unload(&asterisk);
    assert!(!docs_linked(&asterisk));
    let own = get(&asterisk, EVENTS);
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.json(), as_served(&file, &asterisk), "ARI's own answer");
    assert_same_text(&served, &own, described, false);
    load(&asterisk);
    assert_eq!(docs_linked(&asterisk), !described);
    assert_eq!(get(&asterisk, EVENTS).body, served.body, "after load again");

    // pretty = yes: ARI's formatting, followed by the module.
    reconfigure_ari(&asterisk, "pretty = yes", true);
    let pretty = get(&asterisk, EVENTS);
    assert_eq!(pretty.status, 200, "{}", pretty.body);
    assert!(pretty.body.contains('\n'), "pretty body");
    assert_eq!(pretty.json(), served.json());
    unload(&asterisk);
    let own_pretty = get(&asterisk, EVENTS);
    assert_same_text(&pretty, &own_pretty, described, true);
    load(&asterisk);
}

/// `served` is ARI's `own` answer (same text, headers) with the entries added
/// after what was there, in the same JSON format.
fn assert_same_text(served: &Response, own: &Response, described: bool, pretty: bool) {
    let encode = |doc: &Value| {
        if pretty {
            serde_json::to_string_pretty(doc).expect("encode")
        } else {
            serde_json::to_string(doc).expect("encode")
        }
    };
    assert_eq!(served.header("content-type"), own.header("content-type"));
    assert_eq!(served.header("content-length").is_some(), own.header("content-length").is_some());
    if described {
        assert_eq!(served.body, own.body, "byte for byte ARI's own");
        return;
    }
    // serde_json writes ARI's (jansson's) text for this document: the
    // comparison below is then one of texts.
    assert_eq!(encode(&own.json()), own.body, "serde_json reproduces ARI's text");
    assert_eq!(encode(&without_entries(&served.json())), own.body, "ARI's text, key order included");
    assert_eq!(encode(&served.json()), served.body, "the module's text has ARI's format");
}

// ------------------------------------------------------- answered as ARI does

/// One request, sent to channels.json (ARI) and to events.json.
struct Case {
    name: &'static str,
    method: &'static str,
    query: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
}

fn case(name: &'static str, method: &'static str, status: u16) -> Case {
    Case { name, method, query: "", headers: Vec::new(), body: None, status }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }

    fn auth(self, user: &str, password: &str) -> Case {
        self.header("Authorization", basic_authorization(user, password))
    }

    fn query(mut self, query: &'static str) -> Case {
        self.query = query;
        self
    }

    fn body(mut self, content_type: &str, bytes: &[u8]) -> Case {
        self.body = Some(bytes.to_vec());
        self.header("Content-Type", content_type)
    }
}

fn cases() -> Vec<Case> {
    let big = format!("{{\"x\":\"{}\"}}", "x".repeat(50_000));
    vec![
        case("no credentials", "GET", 401),
        case("Basic, good password", "GET", 200).auth("test", "test"),
        case("Basic, bad password", "GET", 401).auth("test", "wrong"),
        case("Basic, unknown user", "GET", 401).auth("nobody", "test"),
        case("api_key, good", "GET", 200).query("api_key=test:test"),
        case("api_key, bad password", "GET", 401).query("api_key=test:nope"),
        case("api_key, malformed", "GET", 401).query("api_key=testtest"),
        case("api_key in a form body", "GET", 200).body("application/x-www-form-urlencoded", b"api_key=test%3Atest"),
        case("crypt password, good", "GET", 200).auth("hashed", "hunter2"),
        case("crypt password, bad", "GET", 401).auth("hashed", "hunter3"),
        case("read-only user, GET", "GET", 200).auth("viewer", "v"),
        case("read-only user, POST", "POST", 403).auth("viewer", "v"),
        case("read-only user, OPTIONS", "OPTIONS", 405).auth("viewer", "v"),
        case("POST", "POST", 405).auth("test", "test"),
        case("PUT", "PUT", 405).auth("test", "test"),
        case("DELETE", "DELETE", 405).auth("test", "test"),
        case("OPTIONS", "OPTIONS", 405).auth("test", "test"),
        case("OPTIONS without credentials", "OPTIONS", 401),
        case("malformed JSON body, no credentials", "GET", 400).body("application/json", b"{\"x\":"),
        case("JSON body over 40960 bytes", "GET", 413).auth("test", "test").body("application/json", big.as_bytes()),
        case("a JSON body is ignored", "GET", 200).auth("test", "test").body("application/json", b"{\"x\":1}"),
    ]
}

/// A raw HTTP exchange on its own connection: status line, lower-case header
/// names, body.
fn raw(asterisk: &Asterisk, request: &str) -> (String, Vec<(String, String)>, String) {
    let text = asterisk.ari().raw_tcp(request.as_bytes(), 5 * SECOND);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .filter(|(name, _)| name != "date")
        .collect();
    (status, headers, body.to_owned())
}

/// Authentication, methods, CORS, body errors, `basePath` from the Host
/// header and the HTTP prefix: events.json, served by the module, is
/// answered as ARI answers another api-docs file on the same instance. The
/// instance's events.json lacks the entries on every version (on 22.10+ they
/// are taken out of its copy), so the module serves it everywhere.
#[test]
fn events_json_is_answered_as_ari_answers_api_docs() {
    let asterisk = Asterisk::start(
        AsteriskConfig::new(ours())
            .own_rest_api()
            .ari_general("auth_realm = Docs Realm")
            .ari_general("allowed_origins = http://good.example")
            .ari_user(AriUser::crypt("hashed", HUNTER2_HASH))
            .ari_user(AriUser::plain("viewer", "v").read_only(true)),
    );
    let path = events_file(&asterisk);
    write_json(&path, &without_entries(&read_json(&path)));
    reload_and_wait(&asterisk, "module (");
    assert!(docs_linked(&asterisk));
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for case in cases() {
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let send = |path: &str| {
            let path = if case.query.is_empty() { path.to_owned() } else { format!("{path}?{}", case.query) };
            asterisk.ari().raw(case.method, &path, &headers, case.body.as_deref())
        };
        let (ari, ours) = (send(CHANNELS), send(EVENTS));
        table.push(format!(
            "{:<40} channels.json {} / events.json {} {}",
            case.name,
            ari.status,
            ours.status,
            if ours.status == 200 { "(document)".to_owned() } else { ours.body.clone() }
        ));
        let bodies_agree = if ari.status == 200 {
            ours.json()["basePath"] == ari.json()["basePath"] && describes_broadcast(&ours.json())
        } else {
            ours.body == ari.body
        };
        if ari.status != case.status
            || ours.status != case.status
            || significant_headers(&ari) != significant_headers(&ours)
            || !bodies_agree
        {
            failures.push(format!(
                "{}: expected {}\n  channels.json: {} {:?} {}\n  events.json:   {} {:?} {}",
                case.name,
                case.status,
                ari.status,
                significant_headers(&ari),
                ari.body.chars().take(200).collect::<String>(),
                ours.status,
                significant_headers(&ours),
                ours.body.chars().take(200).collect::<String>()
            ));
        }
    }
    let realm = asterisk.ari().raw("GET", EVENTS, &[], None);
    assert_eq!(realm.header("www-authenticate"), Some("Basic realm=\"Docs Realm\""));

    // Raw requests, for what an HTTP client library would change: basePath
    // from the Host header (or none without one), HEAD, and CORS (ARI matches
    // the header name `Origin` case-sensitively; ureq sends names in lower case).
    let auth = basic_authorization("test", "test");
    let port = asterisk.http_port();
    let host = format!("127.0.0.1:{port}");
    let request = |method: &str, version: &str, headers: &[String]| {
        let mut text = format!("{method} {{}} HTTP/{version}\r\n");
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text
    };
    let authorization = format!("Authorization: {auth}");
    let close = "Connection: close".to_owned();
    let good_origin = "Origin: http://good.example".to_owned();
    // (name, request, status, basePath of a 200, CORS headers expected)
    let requests: Vec<(&str, String, u16, Option<String>, bool)> = vec![
        (
            "Host with a port",
            request("GET", "1.1", &["Host: docs.example:8088".into(), authorization.clone(), close.clone()]),
            200,
            Some("http://docs.example:8088/ari".into()),
            false,
        ),
        (
            "Host without a port",
            request("GET", "1.1", &["Host: docs.example".into(), authorization.clone(), close.clone()]),
            200,
            Some("http://docs.example/ari".into()),
            false,
        ),
        ("HTTP/1.0 without Host", request("GET", "1.0", std::slice::from_ref(&authorization)), 200, None, false),
        (
            "HEAD",
            request("HEAD", "1.1", &[format!("Host: {host}"), authorization.clone(), close.clone()]),
            405,
            None,
            false,
        ),
        (
            "Origin allowed",
            request(
                "GET",
                "1.1",
                &[format!("Host: {host}"), authorization.clone(), good_origin.clone(), close.clone()],
            ),
            200,
            Some(format!("http://{host}/ari")),
            true,
        ),
        (
            "Origin refused",
            request(
                "GET",
                "1.1",
                &[format!("Host: {host}"), authorization.clone(), "Origin: http://evil.example".into(), close.clone()],
            ),
            200,
            Some(format!("http://{host}/ari")),
            false,
        ),
        (
            "Origin allowed, no credentials",
            request("GET", "1.1", &[format!("Host: {host}"), good_origin.clone(), close.clone()]),
            401,
            None,
            true,
        ),
        (
            "Origin allowed, CORS preflight",
            request(
                "OPTIONS",
                "1.1",
                &[
                    format!("Host: {host}"),
                    authorization.clone(),
                    good_origin.clone(),
                    "Access-Control-Request-Method: GET".into(),
                    close.clone(),
                ],
            ),
            405,
            None,
            true,
        ),
        (
            "Origin allowed, read-only POST",
            request(
                "POST",
                "1.1",
                &[
                    format!("Host: {host}"),
                    format!("Authorization: {}", basic_authorization("viewer", "v")),
                    good_origin.clone(),
                    close.clone(),
                ],
            ),
            403,
            None,
            true,
        ),
    ];
    for (name, template, status, base, cors) in &requests {
        let (ari, ours) =
            (raw(&asterisk, &template.replace("{}", CHANNELS)), raw(&asterisk, &template.replace("{}", EVENTS)));
        table.push(format!("{name:<40} channels.json {} / events.json {}", ari.0, ours.0));
        let parse = |body: &str| serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
        let headers = |response: &(String, Vec<(String, String)>, String)| -> Vec<(String, String)> {
            response.1.iter().filter(|(name, _)| name != "content-length").cloned().collect()
        };
        let has_cors = headers(&ours)
            .iter()
            .any(|(name, value)| name == "access-control-allow-origin" && value == "http://good.example");
        let agree = ari.0 == ours.0
            && ari.0.starts_with(&format!("HTTP/1.1 {status} "))
            && headers(&ari) == headers(&ours)
            && has_cors == *cors
            && if *status == 200 {
                parse(&ari.2).get("basePath").and_then(Value::as_str) == base.as_deref()
                    && parse(&ours.2).get("basePath") == parse(&ari.2).get("basePath")
                    && describes_broadcast(&parse(&ours.2))
            } else {
                ari.2 == ours.2
            };
        if !agree {
            failures.push(format!(
                "{name}: expected {status}\n  channels.json: {ari:?}\n  events.json:   {:?}",
                (&ours.0, &ours.1, ours.2.chars().take(300).collect::<String>())
            ));
        }
    }
    // The module logs a refused Origin as ARI does (a NOTICE), but any client
    // can send such requests at will: one NOTICE per 10 s, the rest at debug.
    let refused_origin = "Origin header 'http://evil.example' does not match an allowed origin.";
    let our_notices = |log: &str| {
        log.lines().filter(|l| l.contains("NOTICE") && l.contains("src/endpoint.rs") && l.contains(refused_origin)).count()
    };
    logged_through(&asterisk, 0, refused_origin);
    let log = log_barrier(&asterisk, 0);
    assert_eq!(our_notices(&log), 1, "{log}");
    let mark = asterisk.log_mark();
    for _ in 0..3 {
        raw(&asterisk, &requests[5].1.replace("{}", EVENTS));
    }
    // Each refusal was logged, if at all, before it was answered.
    let log = log_barrier(&asterisk, mark);
    assert_eq!(our_notices(&log), 0, "{log}");

    // Named differences: the HTTP server hands the handler `events.json/` and
    // any letter case of the path alike, without the path; ARI's router sees
    // them and answers 404. The module serves the document.
    for (channels, events, message) in [
        (
            format!("{CHANNELS}/"),
            format!("{EVENTS}/"),
            "ARI URLs do not end with a slash. Try /ari/api-docs/channels.json",
        ),
        (CHANNELS.to_uppercase(), EVENTS.to_uppercase(), "Resource not found"),
    ] {
        let (ari, ours) = (get(&asterisk, &channels), get(&asterisk, &events));
        table.push(format!(
            "{:<40} channels.json {} / events.json {} (named difference)",
            events, ari.status, ours.status
        ));
        assert_eq!((ari.status, ari.json()["message"].as_str()), (404, Some(message)), "{channels}");
        assert_eq!(ours.status, 200, "{events}: {}", ours.body);
        assert!(describes_broadcast(&ours.json()), "{events}");
    }

    // Under an HTTP prefix.
    std::fs::write(
        asterisk.dir().join("etc/http.conf"),
        format!("[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {port}\nprefix = sb\n"),
    )
    .expect("write http.conf");
    asterisk.cli("module reload http");
    assert!(asterisk.cli("http show status").contains("Prefix: /sb"));
    assert!(asterisk.cli("http show status").contains("/sb/ari/api-docs/events.json =>"));
    for path_prefix in ["/sb", ""] {
        let (ari, ours) =
            (get(&asterisk, &format!("{path_prefix}{CHANNELS}")), get(&asterisk, &format!("{path_prefix}{EVENTS}")));
        table.push(format!(
            "{:<40} channels.json {} / events.json {}",
            format!("prefix sb, path {path_prefix}/ari/…"),
            ari.status,
            ours.status
        ));
        if path_prefix.is_empty() {
            assert_eq!((ari.status, &ari.body), (ours.status, &ours.body), "unprefixed, with the prefix set");
            assert_eq!(ari.status, 404);
        } else {
            assert_eq!((ari.status, ours.status), (200, 200));
            assert_eq!(ari.json()["basePath"], format!("http://127.0.0.1:{port}/sb/ari"));
            assert_eq!(ours.json()["basePath"], ari.json()["basePath"]);
            assert_eq!(ours.json()["models"]["CallBroadcast"]["id"], "CallBroadcast");
        }
    }
    println!("{}", table.join("\n"));
    println!("{} requests compared", table.len());
    assert!(failures.is_empty(), "answers differ:\n{}", failures.join("\n"));
    assert!(asterisk.is_running());
}

// -------------------------------------------- the decision follows the file

/// Asterisk's events.json without the broadcast entries, and with them (its
/// own where it has them; else entries of the same names written here).
fn lacking_and_complete(file: &Value) -> (Value, Value) {
    let lacking = without_entries(file);
    let mut complete = file.clone();
    if !describes_broadcast(&complete) {
        for name in MODELS {
            complete["models"][name] = serde_json::json!({"id": name, "properties": {}});
            complete["models"]["Event"]["subTypes"].as_array_mut().expect("Event.subTypes").push(Value::from(name));
        }
        complete["apis"].as_array_mut().expect("apis").push(serde_json::json!({
            "path": "/events/claim",
            "operations": [{"httpMethod": "POST", "nickname": "claimChannel", "parameters": []}]
        }));
    }
    assert!(describes_broadcast(&complete));
    (lacking, complete)
}

/// `module reload` of this module; then `show settings` must say `expect`
/// about the API description. Returns the log mark from before the reload,
/// for [`logged_through`] (the decision is logged when it changes).
fn reload_and_wait(asterisk: &Asterisk, expect: &str) -> usize {
    let mark = asterisk.log_mark();
    asterisk.cli(&format!("module reload {OURS}"));
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let shown = asterisk.cli("stasis broadcast show settings");
        let row = shown.lines().find(|line| line.contains("API description (events.json):")).unwrap_or("").to_owned();
        if row.contains(expect) {
            return mark;
        }
        assert!(Instant::now() < deadline, "after reload, 'show settings' says {row:?}, not '{expect}'");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the module serves events.json is decided from the file's content
/// at load and reload, on any version; while it serves, each request reads
/// the file again (as ARI does); ARI disabled, it serves nothing.
#[test]
fn the_decision_follows_asterisk_s_file_at_reload() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()).own_rest_api());
    let path = events_file(&asterisk);
    assert!(path.starts_with(asterisk.dir()), "the instance's own copy: {}", path.display());
    let (lacking, complete) = lacking_and_complete(&read_json(&path));

    write_json(&path, &lacking);
    reload_and_wait(
        &asterisk,
        "module (Asterisk's events.json lacks the CallBroadcast and CallClaimed models, POST /events/claim;",
    );
    assert!(docs_linked(&asterisk));
    let served = get(&asterisk, EVENTS);
    assert_eq!(served.status, 200, "{}", served.body);
    assert_entries(&served.json(), "served events.json");
    assert_eq!(without_entries(&served.json()), as_served(&lacking, &asterisk));
    let shown = asterisk.cli("stasis broadcast show settings");
    assert!(shown.contains("module (Asterisk's events.json lacks"), "{shown}");

    // Read again at every request, as ARI does.
    let mut changed = lacking.clone();
    changed["apiVersion"] = Value::from("9.9.9");
    write_json(&path, &changed);
    let served = get(&asterisk, EVENTS);
    assert_eq!(served.json()["apiVersion"], "9.9.9");
    assert_entries(&served.json(), "served events.json, file changed");

    write_json(&path, &complete);
    let mark = reload_and_wait(
        &asterisk,
        "ari (Asterisk's events.json already describes CallBroadcast, CallClaimed and POST /events/claim",
    );
    // The change is logged.
    logged_through(&asterisk, mark, "API description: ari (Asterisk's events.json already describes");
    assert!(!docs_linked(&asterisk));
    let own = get(&asterisk, EVENTS);
    assert_eq!(own.json(), as_served(&complete, &asterisk));
    let shown = asterisk.cli("stasis broadcast show settings");
    assert!(shown.contains("ari (Asterisk's events.json already describes"), "{shown}");

    std::fs::write(&path, "{\"models\": ").expect("write");
    let mark = reload_and_wait(&asterisk, "is not valid JSON");
    let log = logged_through(&asterisk, mark, "is not valid JSON");
    let line = log.lines().find(|line| line.contains("is not valid JSON")).unwrap_or_default();
    assert!(line.contains("WARNING"), "{log}");
    logged_through(&asterisk, mark, "API description: ari (");
    assert!(!docs_linked(&asterisk));
    // ARI's own answer to its unparseable file.
    let own = get(&asterisk, EVENTS);
    assert_eq!((own.status, own.json()["message"].as_str()), (500, Some("Yikes! Cannot parse resource")));

    std::fs::remove_file(&path).expect("remove events.json");
    reload_and_wait(&asterisk, "events.json: No such file or directory");
    assert!(!docs_linked(&asterisk));
    assert_eq!(get(&asterisk, EVENTS).status, 404);

    write_json(&path, &lacking);
    let mark = reload_and_wait(&asterisk, "module (");
    // The change is logged.
    logged_through(&asterisk, mark, "API description: module (Asterisk's events.json lacks");
    assert!(docs_linked(&asterisk));

    // ARI disabled: ARI serves no api-docs, neither does the module.
    std::fs::write(
        asterisk.dir().join("etc/ari.conf"),
        "[general]\nenabled = no\n\n[test]\ntype=user\npassword=test\n",
    )
    .expect("write ari.conf");
    let mark = asterisk.log_mark();
    reload_ari_then_module(&asterisk);
    // ARI's configuration in sorcery: 20.15, 21.10, 22.5, 23.0 on. Before it,
    // ARI's own `enabled` is read at each request (as for the claim handler),
    // so the handler stays linked and gives the HTTP server's 404 itself.
    let sorcery = asterisk.runtime().at_least(&[(20, 15), (21, 10), (22, 5), (23, 0)]);
    if sorcery {
        logged_through(&asterisk, mark, "API description: ARI is disabled in ari.conf");
        assert!(!docs_linked(&asterisk));
        let shown = asterisk.cli("stasis broadcast show settings");
        assert!(shown.contains("not served: ARI is disabled or not configured"), "{shown}");
    } else {
        logged_through(&asterisk, mark, "Reloading module 'res_stasis_broadcast_rs.so'");
        assert!(docs_linked(&asterisk), "pre-sorcery ARI: ARI's own setting decides per request");
    }
    let (ari, ours) = (get(&asterisk, CHANNELS), get(&asterisk, EVENTS));
    assert_eq!((ari.status, ours.status), (404, 404));
    assert_eq!(ari.body, ours.body, "the HTTP server's own 404 for both");

    std::fs::write(
        asterisk.dir().join("etc/ari.conf"),
        "[general]\nenabled = yes\n\n[test]\ntype=user\npassword=test\n",
    )
    .expect("write ari.conf");
    reload_ari_then_module(&asterisk);
    let deadline = Instant::now() + 5 * SECOND;
    while !docs_linked(&asterisk) {
        assert!(Instant::now() < deadline, "handler not linked again once ARI is enabled");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_entries(&get(&asterisk, EVENTS).json(), "enabled again");
}

/// ARI re-reads ari.conf, then the module: where ARI's configuration is not
/// in sorcery (before 20.15/21.10/22.5) the module does not see ARI reload.
fn reload_ari_then_module(asterisk: &Asterisk) {
    asterisk.cli("module reload res_ari.so");
    asterisk.cli(&format!("module reload {OURS}"));
}

// ------------------------------------------------------ unload, panics

/// Unload/load with the handler linked and requests arriving all the time:
/// each gets the completed document or ARI's own, never a dead socket; the
/// handler is gone after each unload.
#[test]
fn unload_load_cycles_while_events_json_is_requested() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()).own_rest_api());
    let path = events_file(&asterisk);
    let lacking = without_entries(&read_json(&path));
    write_json(&path, &lacking);
    reload_and_wait(&asterisk, "module (");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (seen, cycles) = std::thread::scope(|s| {
        let hammer = s.spawn(|| {
            let mut seen = std::collections::BTreeMap::<(u16, bool), usize>::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = get(&asterisk, EVENTS);
                *seen.entry((r.status, describes_broadcast(&r.json()))).or_default() += 1;
            }
            seen
        });
        let mut cycles = 0;
        for n in 0..15 {
            unload(&asterisk);
            assert!(!docs_linked(&asterisk), "cycle {n}: handler left behind after unload");
            let r = get(&asterisk, EVENTS);
            assert_eq!(r.status, 200);
            assert_eq!(r.json(), as_served(&lacking, &asterisk), "cycle {n}: ARI's own after unload");
            load(&asterisk);
            assert!(docs_linked(&asterisk), "cycle {n}: handler not linked after load");
            assert!(describes_broadcast(&get(&asterisk, EVENTS).json()), "cycle {n}");
            cycles += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (hammer.join().expect("hammer"), cycles)
    });
    println!("{cycles} unload/load cycles; answers (status, completed): {seen:?}");
    assert!(seen.keys().all(|(status, _)| *status == 200), "{seen:?}");
    assert!(seen.contains_key(&(200, true)), "{seen:?}");
    assert!(asterisk.is_running());
    // The unloads ran within their CLI commands, all returned by now.
    let log = log_barrier(&asterisk, 0);
    assert!(!log.contains("could not be completely unloaded"), "{log}");
}

#[test]
fn a_panic_while_serving_events_json_answers_500_and_the_next_request_works() {
    let asterisk = Asterisk::start(AsteriskConfig::new(Broadcaster::Ours(fault_module())).own_rest_api());
    let path = events_file(&asterisk);
    write_json(&path, &without_entries(&read_json(&path)));
    reload_and_wait(&asterisk, "module (");
    let mark = asterisk.log_mark();
    inject_panic(&asterisk, "API description endpoint");
    let r = get(&asterisk, EVENTS);
    assert_eq!((r.status, r.json()["message"].as_str()), (500, Some("Cannot serve the API description")), "{}", r.body);
    assert_panic_logged(&asterisk, mark, "API description endpoint");
    assert!(asterisk.is_running());
    let r = get(&asterisk, EVENTS);
    assert_eq!(r.status, 200);
    assert!(describes_broadcast(&r.json()));
}
