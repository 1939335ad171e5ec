//! The claim inside ARI's own route tree (issue 20): `POST events/claim`
//! reached over HTTP and, where the version has it, as a REST request on the
//! application's own WebSocket (inbound `/ari/events`, and a persistent
//! outbound WebSocket whose server is this test), behind ARI's own front
//! door; and ARI's tree whole through unload, load and reload of this module
//! and of res_ari_events.
//!
//! The tests that need REST over WebSocket are named `websocket_*`. On a
//! release without it (before 20.14, 21.9, 22.4) or without outbound
//! WebSockets (before 20.15, 21.10, 22.5) they assert that ARI itself lacks
//! it (a `RESTRequest` gets no answer; res_websocket_client, through which
//! ARI connects out, is not installed) and say so, instead of the check they
//! could not make.

mod common;

use common::ari_facts::AriFacts;
use common::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const EVENTS: &str = "res_ari_events.so";
const MS: Duration = Duration::from_millis(1);
// PROBE_PATH (`events` → `user` → `{eventName}`): whatever ARI answers
// before it reaches a resource must be the same for it and the claim.
use common::front_door::*;
const NEED_APPLICATION: &str = "application parameter is required";
const RESOURCE_NOT_FOUND: &str = "Resource not found";
const WRITE_DENIED: &str = "Write access denied";
/// ARI's claim route (20.20+, 22.10+, 23.4+) without the module behind it.
const NO_BROADCAST: &str = "Broadcast functionality not available (res_stasis_broadcast not loaded)";

const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(HRESULT_${UNIQUEID})=H:${STASISSTATUS})
";

fn config(facts: &AriFacts) -> AsteriskConfig {
    with_front_door_users(AsteriskConfig::new(ours()).dialplan(DIALPLAN), facts)
}

fn boot(facts: &AriFacts) -> Asterisk {
    Asterisk::start(config(facts))
}

fn broadcast(asterisk: &Asterisk, timeout_ms: u32) -> String {
    asterisk.originate(OriginateSpec::new("100", "incoming").var("SB", &timeout_ms.to_string()))
}

fn result_of(asterisk: &Asterisk, id: &str) -> Option<String> {
    asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND)
}

/// Asserts that ARI leaves REST requests on its events WebSocket
/// unanswered (releases before 20.14, 21.9, 22.4 read and drop what the
/// application sends): no `RESTResponse` within 2 s, to a well-formed
/// request nor to text that is not JSON, and the socket still serves events.
fn assert_no_rest_over_websocket(app: &AriApp, facts: &AriFacts) {
    assert!(!facts.rest_over_websocket);
    app.send_text("not JSON");
    let answer = app.try_rest("GET", "asterisk/info", None, 2 * SECOND);
    assert!(answer.is_none(), "{}: ARI answered a RESTRequest: {answer:?}", facts.version);
    let before = app.events_before_barrier(5 * SECOND);
    assert!(before.iter().all(|(_, event)| event["type"] != "RESTResponse"), "{before:?}");
    assert!(app.is_connected());
    println!(
        "{}: ARI has no REST over WebSocket (asserted: RESTRequest and bad JSON left unanswered); \
         the claim over WebSocket cannot be checked on this release",
        facts.version
    );
}

/// How a claim reaches ARI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `POST /ari/events/claim` over HTTP, with the application's user's credentials.
    Http,
    /// A `RESTRequest` on the application's own WebSocket.
    WebSocket,
}

/// A claim's answer: status and ARI's `message` ("" when the body is empty).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    message: String,
    /// The body is empty (a 204 has none).
    empty: bool,
}

impl Answer {
    fn of(status: u16, message: &str) -> Answer {
        Answer { status, message: message.to_owned(), empty: false }
    }

    fn no_content() -> Answer {
        Answer { status: 204, message: String::new(), empty: true }
    }
}

/// Someone claiming: an application's socket and the credentials its user has over HTTP.
struct Claimer<'a> {
    app: &'a AriApp,
    http: AriHttp,
}

impl Claimer<'_> {
    /// `POST events/claim` with this query, via HTTP or the application's WebSocket.
    fn post(&self, via: Via, query: &str) -> Answer {
        match via {
            Via::Http => {
                let r = self.http.post(&format!("/events/claim?{query}"), None);
                Answer { status: r.status, message: r.json()["message"].as_str().unwrap_or("").to_owned(), empty: r.body.is_empty() }
            }
            Via::WebSocket => {
                let r = self.app.rest("POST", &format!("events/claim?{query}"), None);
                Answer { status: r.status, message: r.message().to_owned(), empty: r.raw["message_body"].is_null() }
            }
        }
    }

    /// Claims `channel_id` for this application.
    fn claim(&self, via: Via, channel_id: &str) -> Answer {
        self.post(via, &format!("channelId={}&application={}", encode(channel_id), encode(self.app.name())))
    }
}

/// An application whose claims `via` ARI ties to its user: over a
/// WebSocket, one opened with HTTP Basic. (Before 20.20.1, 21.12.3, 22.10.1
/// and 23.4.1 ARI passes the `api_key` of a socket's URL to none of its
/// requests, and while ari.conf has read-only users the module then refuses
/// such a socket's claims: see `error_answers`.)
fn claimer_app(asterisk: &Asterisk, via: Via, name: &str) -> AriApp {
    match via {
        Via::WebSocket => asterisk.connect_app_basic(name, "test", "test", ""),
        Via::Http => asterisk.connect_app(name),
    }
}

fn claimer<'a>(asterisk: &Asterisk, app: &'a AriApp) -> Claimer<'a> {
    Claimer { app, http: asterisk.ari() }
}

/// Whether `app` received no StasisStart for `channel_id` (checked behind a barrier).
fn no_stasis_start(app: &AriApp, channel_id: &str) -> bool {
    app.events_before_barrier(5 * SECOND)
        .iter()
        .all(|(_, event)| !(event["type"] == "StasisStart" && event["channel"]["id"] == channel_id))
}

/// Three applications race for each of `calls` calls: one 204 (no body),
/// two 409, StasisStart at the winner only, and STASISSTATUS=SUCCESS once
/// the winner lets the call continue.
fn race_of_three(asterisk: &Asterisk, via: Via, calls: usize) {
    const APPS: usize = 3;
    let apps: Vec<AriApp> = (0..APPS).map(|i| claimer_app(asterisk, via, &format!("racer-{i}"))).collect();
    let claimers: Vec<Claimer> = apps.iter().map(|app| claimer(asterisk, app)).collect();
    let mut wins = [0usize; APPS];
    for n in 0..calls {
        let id = broadcast(asterisk, 5000);
        for app in &apps {
            app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
        }
        let barrier = Barrier::new(APPS);
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let handles: Vec<_> = claimers
                .iter()
                .map(|claimer| {
                    let (barrier, id) = (&barrier, &id);
                    s.spawn(move || {
                        barrier.wait();
                        claimer.claim(via, id)
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().expect("claimer")).collect()
        });
        let winners: Vec<usize> = (0..APPS).filter(|&i| answers[i] == Answer::no_content()).collect();
        assert_eq!(winners.len(), 1, "{via:?} call {n}: {answers:?}");
        let conflicts = answers.iter().filter(|&a| *a == Answer::of(409, ALREADY_CLAIMED)).count();
        assert_eq!(conflicts, APPS - 1, "{via:?} call {n}: {answers:?}");
        let winner = &apps[winners[0]];
        wins[winners[0]] += 1;
        let (_, start) = winner.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart at the winner");
        assert_eq!(start["application"], winner.name());
        for (i, app) in apps.iter().enumerate() {
            if i != winners[0] {
                assert!(no_stasis_start(app, &id), "{via:?} call {n}: StasisStart at loser {}", app.name());
            }
        }
        assert_eq!(asterisk.continue_channel(&id).status, 204);
        assert_eq!(result_of(asterisk, &id).as_deref(), Some("SUCCESS"), "{via:?} call {n}");
    }
    println!("{via:?}: {calls} calls raced by {APPS} applications, wins per application {wins:?}");
}

/// Over `via`: 400 without channelId and without application, 404 for a
/// channel not being broadcast, 403 for a read-only user (whose claim does
/// not take the call), 204 for the winner, 409 for a late claim while the
/// winner has the call, 404 once the call is gone. The read-only user
/// claims twice: authenticated by `api_key` (over a WebSocket: in the
/// upgrade's URL, as ari-client does; before 20.20.1, 21.12.3, 22.10.1 and
/// 23.4.1 ARI does not see that user on the socket's REST requests,
/// advisory GHSA-wcvv-g26m-wx5c) and by `Authorization: Basic`.
fn error_answers(asterisk: &Asterisk, via: Via) {
    let winner_app = claimer_app(asterisk, via, "winner");
    let late_app = claimer_app(asterisk, via, "latecomer");
    let key_app = asterisk.connect_app_with("watcher", "api_key=viewer:v");
    let basic_app = asterisk.connect_app_basic("gazer", "viewer", "v", "");
    let winner = claimer(asterisk, &winner_app);
    let late = claimer(asterisk, &late_app);
    let viewers = [
        ("api_key", Claimer { app: &key_app, http: asterisk.ari().with_auth(Auth::ApiKey("viewer:v".into())) }),
        ("Basic", Claimer { app: &basic_app, http: asterisk.ari().with_auth(Auth::User("viewer".into(), "v".into())) }),
    ];

    if via == Via::WebSocket {
        // A read-write user on a socket opened with `api_key`: where ARI does
        // not pass that user on, the module cannot tell it from the read-only
        // one (ari.conf has one) and refuses, saying why; an `api_key` in the
        // request itself names the user on every version.
        let keyed_app = asterisk.connect_app("keyed");
        let keyed = claimer(asterisk, &keyed_app);
        let mark = asterisk.log_mark();
        let expected = if AriFacts::of_runtime().websocket_passes_api_key {
            Answer::of(404, CHANNEL_NOT_FOUND)
        } else {
            Answer::of(403, WRITE_DENIED)
        };
        assert_eq!(keyed.claim(via, "no-such-channel"), expected, "read-write user by api_key in the socket's URL");
        if expected.status == 403 {
            logged_through(asterisk, mark, "carries no credentials this module can check, and ari.conf has read_only users");
        }
        let named = keyed.post(via, "channelId=no-such-channel&application=keyed&api_key=test:test");
        assert_eq!(named, Answer::of(404, CHANNEL_NOT_FOUND), "api_key in the request");
    }
    assert_eq!(winner.post(via, "application=winner"), Answer::of(400, NEED_CHANNEL), "{via:?}: no channelId");
    assert_eq!(winner.post(via, "channelId=x"), Answer::of(400, NEED_APPLICATION), "{via:?}: no application");
    assert_eq!(winner.claim(via, "no-such-channel"), Answer::of(404, CHANNEL_NOT_FOUND), "{via:?}: no broadcast");

    let id = broadcast(asterisk, 5000);
    for app in [&winner_app, &late_app, &key_app, &basic_app] {
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    }
    for (how, viewer) in &viewers {
        assert_eq!(viewer.claim(via, &id), Answer::of(403, WRITE_DENIED), "{via:?}: read-only user by {how}");
    }
    assert_eq!(winner.claim(via, &id), Answer::no_content(), "{via:?}: the call stayed open after the 403s");
    assert_eq!(late.claim(via, &id), Answer::of(409, ALREADY_CLAIMED), "{via:?}: late claim");
    winner_app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart at the winner");
    assert_eq!(late.claim(via, &id), Answer::of(409, ALREADY_CLAIMED), "{via:?}: while the winner is in Stasis");
    for app in [&late_app, &key_app, &basic_app] {
        assert!(no_stasis_start(app, &id), "{via:?}: StasisStart at {}", app.name());
    }
    assert_eq!(asterisk.continue_channel(&id).status, 204);
    assert_eq!(result_of(asterisk, &id).as_deref(), Some("SUCCESS"));
    assert_eq!(late.claim(via, &id), Answer::of(404, CHANNEL_NOT_FOUND), "{via:?}: after the call left");
}

// ------------------------------------------------------------ WebSocket

/// A `RESTRequest` is answered where the version has REST over WebSocket
/// (`GET asterisk/info` 200, text that is not JSON 400), and left unanswered
/// before.
#[test]
fn websocket_rest_requests_are_answered_exactly_where_the_version_has_them() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    let app = asterisk.connect_app("asker");
    if !facts.rest_over_websocket {
        assert_no_rest_over_websocket(&app, &facts);
        return;
    }
    let info = app.rest("GET", "asterisk/info", None);
    assert_eq!(info.status, 200, "{:?}", info.raw);
    assert!(info.body["system"]["entity_id"].is_string(), "{:?}", info.raw);
    assert_eq!(info.raw["request_id"], info.raw["transaction_id"].as_str().unwrap_or("").trim_start_matches("tx-"));
    app.send_text("not JSON");
    let (_, bad) = app
        .wait_for(|event| event["type"] == "RESTResponse" && event["status_code"] == 400, 5 * SECOND)
        .expect("a RESTResponse to text that is not JSON");
    assert_eq!(bad["reason_phrase"], "Failed to parse request message JSON");
}

#[test]
fn websocket_claim_race_of_three_has_one_winner() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    if !facts.rest_over_websocket {
        assert_no_rest_over_websocket(&asterisk.connect_app("asker"), &facts);
        return;
    }
    race_of_three(&asterisk, Via::WebSocket, 10);
}

#[test]
fn websocket_claim_errors_and_the_read_only_user() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    if !facts.rest_over_websocket {
        assert_no_rest_over_websocket(&asterisk.connect_app("asker"), &facts);
        return;
    }
    error_answers(&asterisk, Via::WebSocket);
}

/// An application on a persistent outbound WebSocket (the test is the
/// server Asterisk connects to) gets the call offered, claims it over that
/// connection and wins against an inbound application; StasisStart reaches
/// it there. A second outbound connection, whose `local_ari_user` is
/// read-only, gets 403 for its claims.
#[test]
fn websocket_outbound_application_claims_and_wins() {
    let facts = AriFacts::of_runtime();
    let runtime = Runtime::locate();
    if !facts.outbound_websocket {
        // ARI connects out through res_websocket_client, which these releases do not have.
        assert!(!runtime.has_module("res_websocket_client.so"), "{}: res_websocket_client.so is installed", facts.version);
        println!("{}: no outbound WebSockets (asserted: no res_websocket_client.so); the outbound claim cannot be checked", facts.version);
        return;
    }
    let (server, read_only_server) = (OutboundServer::bind(), OutboundServer::bind());
    let asterisk = Asterisk::start(
        config(&facts)
            .outbound_websocket("outbound", "outapp", "test", &server.uri())
            .outbound_websocket("watching", "outwatch", "viewer", &read_only_server.uri()),
    );
    let outbound = server.accept("outapp", asterisk.ari(), 10 * SECOND);
    // A connection whose local_ari_user is read-only: its claims are refused.
    let watching = read_only_server.accept("outwatch", asterisk.ari(), 10 * SECOND);
    let watcher = claimer(&asterisk, &watching);
    let rival_app = claimer_app(&asterisk, Via::WebSocket, "rival");
    let rival = claimer(&asterisk, &rival_app);
    let out = claimer(&asterisk, &outbound);
    for n in 0..3 {
        let id = broadcast(&asterisk, 5000);
        for app in [&outbound, &watching, &rival_app] {
            app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
        }
        assert_eq!(watcher.claim(Via::WebSocket, &id), Answer::of(403, WRITE_DENIED), "call {n}: read-only local_ari_user");
        assert_eq!(out.claim(Via::WebSocket, &id), Answer::no_content(), "call {n}: outbound claim");
        assert_eq!(rival.claim(Via::Http, &id), Answer::of(409, ALREADY_CLAIMED), "call {n}");
        if facts.rest_over_websocket {
            assert_eq!(rival.claim(Via::WebSocket, &id), Answer::of(409, ALREADY_CLAIMED), "call {n}");
        }
        let (_, start) = outbound.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart on the outbound socket");
        assert_eq!(start["application"], "outapp");
        assert!(no_stasis_start(&rival_app, &id) && no_stasis_start(&watching, &id));
        assert_eq!(asterisk.continue_channel(&id).status, 204);
        assert_eq!(result_of(&asterisk, &id).as_deref(), Some("SUCCESS"), "call {n}");
    }
    assert_eq!(out.claim(Via::WebSocket, "no-such-channel"), Answer::of(404, CHANNEL_NOT_FOUND));
}

// ----------------------------------------------------------------- HTTP

#[test]
fn http_claim_race_of_three_has_one_winner() {
    let facts = AriFacts::of_runtime();
    race_of_three(&boot(&facts), Via::Http, 10);
}

#[test]
fn http_claim_errors_and_the_read_only_user() {
    let facts = AriFacts::of_runtime();
    error_answers(&boot(&facts), Via::Http);
}

// ------------------------------------------------------------ front door

/// What a front-door case must give.
#[derive(Clone, Copy, Debug)]
enum Door {
    /// ARI answers before the resource: the same status, body and headers for both paths.
    Same(u16),
    /// ARI lets the request through to the resource: the claim answers the
    /// claim table's 404 (the channel is unknown), the user event its own 404.
    Through,
}

/// One request, sent to the claim and to [`PROBE_PATH`].
struct DoorCase {
    name: &'static str,
    method: &'static str,
    /// Path with `{}` where the resource path goes (`{}?query`, `{}/`, …).
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    door: Door,
}

fn door(name: &'static str, method: &'static str, path: &str, door: Door) -> DoorCase {
    DoorCase { name, method, path: path.to_owned(), headers: Vec::new(), body: None, door }
}

impl DoorCase {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> DoorCase {
        self.headers.push((name, value.into()));
        self
    }

    fn auth(self, user: &str, password: &str) -> DoorCase {
        self.header("Authorization", basic_authorization(user, password))
    }

    fn body(mut self, content_type: &str, bytes: &[u8]) -> DoorCase {
        self.body = Some(bytes.to_vec());
        self.header("Content-Type", content_type.to_owned())
    }

    /// The request to `resource` (`/ari/events/claim` or the probe, in the case's letter case).
    fn send(&self, asterisk: &Asterisk, resource: &str) -> Response {
        let path = self.path.replace("{}", resource);
        let headers: Vec<(&str, &str)> = self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        asterisk.ari().raw(self.method, &path, &headers, self.body.as_deref())
    }
}

/// Every answer of ARI's front door the issue names: credentials (401 with
/// the realm), read-only and ACL (403), methods (405), OPTIONS and CORS,
/// body errors, a trailing slash, an upper-case path, `api_key`/`API_KEY`.
fn door_cases(facts: &AriFacts) -> Vec<DoorCase> {
    let q = format!("{{}}?{UNKNOWN}");
    let big = format!("{{\"channelId\":\"{}\",\"application\":\"claimer\"}}", "x".repeat(50_000));
    let mut cases = vec![
        door("no credentials", "POST", &q, Door::Same(401)),
        door("Basic, wrong password", "POST", &q, Door::Same(401)).auth("test", "wrong"),
        door("Basic, unknown user", "POST", &q, Door::Same(401)).auth("nobody", "x"),
        door("Bearer scheme", "POST", &q, Door::Same(401)).header("Authorization", "Bearer abc"),
        door("Basic, good", "POST", &q, Door::Through).auth("test", "test"),
        door("crypt password, good", "POST", &q, Door::Through).auth("hashed", "hunter2"),
        door("api_key, good", "POST", &format!("{q}&api_key=test:test"), Door::Through),
        door("api_key, wrong password", "POST", &format!("{q}&api_key=test:nope"), Door::Same(401)),
        door("api_key without ':'", "POST", &format!("{q}&api_key=testtest"), Door::Same(401)),
        // The parameter name in upper case: ARI matched it case-insensitively until the
        // security releases 20.20.1, 21.12.3, 22.10.1, 23.4.1.
        door("API_KEY", "POST", &format!("{q}&API_KEY=test:test"), if facts.exact_api_key { Door::Same(401) } else { Door::Through }),
        door("read-only user", "POST", &q, Door::Same(403)).auth("viewer", "v"),
        door("read-only user, api_key", "POST", &format!("{q}&api_key=viewer:v"), Door::Same(403)),
        door("GET", "GET", &q, Door::Same(405)).auth("test", "test"),
        door("PUT", "PUT", &q, Door::Same(405)).auth("test", "test"),
        door("DELETE", "DELETE", &q, Door::Same(405)).auth("test", "test"),
        door("PUT without credentials", "PUT", &q, Door::Same(401)),
        door("read-only user, DELETE", "DELETE", &q, Door::Same(403)).auth("viewer", "v"),
        door("OPTIONS", "OPTIONS", "{}", Door::Same(204)).auth("test", "test"),
        door("OPTIONS without credentials", "OPTIONS", "{}", Door::Same(401)),
        door("OPTIONS, CORS preflight, allowed Origin", "OPTIONS", "{}", Door::Same(204))
            .auth("test", "test")
            .header("Origin", "http://good.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "Content-Type"),
        door("OPTIONS, CORS preflight, refused Origin", "OPTIONS", "{}", Door::Same(204))
            .auth("test", "test")
            .header("Origin", "http://evil.example")
            .header("Access-Control-Request-Method", "POST"),
        door("OPTIONS, CORS preflight for GET", "OPTIONS", "{}", Door::Same(204))
            .auth("test", "test")
            .header("Origin", "http://good.example")
            .header("Access-Control-Request-Method", "GET"),
        door("POST, allowed Origin, no credentials", "POST", &q, Door::Same(401)).header("Origin", "http://other.example"),
        door("POST, allowed Origin, read-only user", "POST", &q, Door::Same(403))
            .auth("viewer", "v")
            .header("Origin", "http://good.example"),
        door("POST, refused Origin, wrong password", "POST", &q, Door::Same(401))
            .auth("test", "wrong")
            .header("Origin", "http://evil.example"),
        door("malformed JSON body", "POST", &q, Door::Same(400)).auth("test", "test").body("application/json", b"{\"channelId\":"),
        door("malformed JSON body, no credentials", "POST", &q, Door::Same(400)).body("application/json", b"{"),
        door("JSON body over 40960 bytes", "POST", "{}", Door::Same(413)).auth("test", "test").body("application/json", big.as_bytes()),
        // ARI reads only JSON bodies: another type's body is left unread and the query counts.
        door("text/plain body", "POST", &q, Door::Through).auth("test", "test").body("text/plain", b"channelId=x"),
        door("form body, api_key in it, wrong", "POST", "{}", Door::Same(401))
            .body("application/x-www-form-urlencoded", format!("{UNKNOWN}&api_key=test%3Anope").as_bytes()),
        door("form body, api_key in it", "POST", "{}", Door::Through)
            .body("application/x-www-form-urlencoded", format!("{UNKNOWN}&api_key=test%3Atest").as_bytes()),
        door("trailing slash", "POST", &format!("{{}}/?{UNKNOWN}"), Door::Same(404)).auth("test", "test"),
        door("trailing slash, no credentials", "POST", &format!("{{}}/?{UNKNOWN}"), Door::Same(401)),
        door("upper-case path", "POST", &format!("{{UPPER}}?{UNKNOWN}"), Door::Same(404)).auth("test", "test"),
        door("upper-case path, read-only user", "POST", &format!("{{UPPER}}?{UNKNOWN}"), Door::Same(403)).auth("viewer", "v"),
    ];
    if facts.user_acls {
        cases.extend([
            door("ACL allows 127.0.0.1", "POST", &q, Door::Through).auth("local", "l"),
            door("ACL, refused by permit/deny", "POST", &q, Door::Same(403)).auth("fenced", "f"),
            door("ACL, refused by a named ACL", "POST", &q, Door::Same(403)).auth("named", "n"),
            door("ACL refusal before a bad method", "PUT", &q, Door::Same(403)).auth("fenced", "f"),
        ]);
    } else {
        println!("{}: no ACL cases (per-user ACLs exist from 20.19, 21.12.3, 22.9, 23.3)", facts.version);
    }
    cases
}

/// On one instance, every request of [`door_cases`] gets from
/// `/ari/events/claim` what ARI answers for `/ari/events/user/{eventName}`:
/// status, body (the resource's own path in a trailing-slash hint set
/// aside) and the headers a client acts on, or, where ARI lets the request
/// through, the claim's own 404.
#[test]
fn front_door_answers_alike_for_the_claim_and_a_user_event() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    let cases = door_cases(&facts);
    let mut failures = Vec::new();
    for case in &cases {
        let (claim_path, probe_path) = if case.path.contains("{UPPER}") {
            (CLAIM_PATH.to_ascii_uppercase(), PROBE_PATH.to_ascii_uppercase())
        } else {
            (CLAIM_PATH.to_owned(), PROBE_PATH.to_owned())
        };
        let case_paths = DoorCase { path: case.path.replace("{UPPER}", "{}"), headers: case.headers.clone(), body: case.body.clone(), ..*case };
        let claim = case_paths.send(&asterisk, &claim_path);
        let probe = case_paths.send(&asterisk, &probe_path);
        let line = format!(
            "{}: claim {} {} | user event {} {}",
            case.name,
            claim.status,
            claim.body.trim(),
            probe.status,
            probe.body.trim()
        );
        let ok = match case.door {
            Door::Same(status) => {
                let probe_body = probe.body.replace(&probe_path[5..], &claim_path[5..]);
                claim.status == status
                    && probe.status == status
                    && claim.body == probe_body
                    && significant_headers(&claim) == significant_headers(&probe)
                    && (status != 401 || claim.header("www-authenticate") == Some(&format!("Basic realm=\"{REALM}\"")))
            }
            Door::Through => {
                claim.status == 404
                    && claim.json()["message"] == CHANNEL_NOT_FOUND
                    && probe.status == 404
                    && probe.json()["message"] != RESOURCE_NOT_FOUND
            }
        };
        if !ok {
            failures.push(format!(
                "{line}\n    claim headers {:?}\n    probe headers {:?}",
                significant_headers(&claim),
                significant_headers(&probe)
            ));
        }
        println!("{} {line}", if ok { "ok  " } else { "FAIL" });
    }
    assert!(failures.is_empty(), "{}: {} of {} cases differ:\n{}", facts.version, failures.len(), cases.len(), failures.join("\n"));
}

// ------------------------------------------------------- unload, reload

/// Which of the two modules are running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loaded {
    ours: bool,
    events: bool,
}

fn loaded(asterisk: &Asterisk) -> Loaded {
    Loaded { ours: is_running(asterisk, OURS), events: is_running(asterisk, EVENTS) }
}

/// Runs a CLI command and returns the state after it, which must be one of `allowed`.
fn step(asterisk: &Asterisk, command: &str, allowed: &[Loaded]) -> Loaded {
    let output = asterisk.cli(command);
    let state = loaded(asterisk);
    assert!(allowed.contains(&state), "`{command}` left {state:?}, allowed {allowed:?}: {output}");
    println!("`{command}` -> {state:?}: {}", output.trim());
    state
}

/// What ARI answers a claim of an unknown channel when this module is not
/// loaded and res_ari_events is: its claim route without the module where it
/// has one, else its router.
fn unloaded_claim_answer(facts: &AriFacts) -> Answer {
    if facts.claim_route {
        Answer::of(501, NO_BROADCAST)
    } else {
        Answer::of(404, RESOURCE_NOT_FOUND)
    }
}

/// After a step: the events WebSocket connects (or is refused without
/// res_ari_events), a user event answers as ARI does, and the claim answers
/// as the state wants; with both modules a live call is claimed over HTTP
/// and, with `websocket` where the version has REST over WebSocket, another
/// over the application's socket (204), and a late claim gets 409. What the
/// claim answers wrongly is added to `failures` (every step is checked
/// before the test fails); a broken WebSocket or user event panics at once.
fn check_state(asterisk: &Asterisk, facts: &AriFacts, state: Loaded, websocket: bool, what: &str, failures: &mut Vec<String>) {
    let http = asterisk.ari();
    let mut expect = |got: Answer, want: Answer, claim: &str| {
        if got != want {
            failures.push(format!("{what}: {claim}: got {got:?}, want {want:?}"));
        }
    };
    let over_http = || {
        let r = http.claim("no-such-channel", "claimer");
        Answer { status: r.status, message: r.json()["message"].as_str().unwrap_or("").to_owned(), empty: r.body.is_empty() }
    };
    if !state.events {
        let refused = asterisk.try_connect_app("cycler", "api_key=test:test");
        assert!(refused.is_err(), "{what}: /ari/events accepted a WebSocket without res_ari_events");
        let r = http.post("/events/user/sbprobe?application=cycler", None);
        assert_eq!((r.status, r.json()["message"].as_str()), (404, Some(RESOURCE_NOT_FOUND)), "{what}: user event");
        expect(over_http(), Answer::of(404, RESOURCE_NOT_FOUND), "HTTP claim without res_ari_events");
        return;
    }
    let app = asterisk
        .try_connect_app("cycler", "api_key=test:test")
        .unwrap_or_else(|e| panic!("{what}: events WebSocket: {e}"));
    let r = http.post("/events/user/sbprobe?application=cycler", None);
    assert_eq!(r.status, 204, "{what}: user event: {}", r.body);
    app.wait_for(|event| event["type"] == "ChannelUserevent" && event["eventname"] == "sbprobe", 5 * SECOND)
        .unwrap_or_else(|| panic!("{what}: the user event never reached the WebSocket"));
    let websocket = websocket && facts.rest_over_websocket;
    let over_ws = || {
        // The request names its user (the socket's api_key reaches ARI's
        // requests only from 20.20.1, 21.12.3, 22.10.1, 23.4.1).
        let r = app.rest("POST", &format!("events/claim?{UNKNOWN}&api_key=test:test"), None);
        Answer { status: r.status, message: r.message().to_owned(), empty: r.raw["message_body"].is_null() }
    };
    if !state.ours {
        expect(over_http(), unloaded_claim_answer(facts), "HTTP claim without the module");
        if websocket {
            expect(over_ws(), unloaded_claim_answer(facts), "WebSocket claim without the module");
        }
        return;
    }
    expect(over_http(), Answer::of(404, CHANNEL_NOT_FOUND), "HTTP claim of an unknown channel");
    let mut vias = vec![Via::Http];
    if websocket {
        expect(over_ws(), Answer::of(404, CHANNEL_NOT_FOUND), "WebSocket claim of an unknown channel");
        vias.push(Via::WebSocket);
    }
    for via in vias {
        let id = broadcast(asterisk, 5000);
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND)
            .unwrap_or_else(|| panic!("{what}: no CallBroadcast"));
        // The request names its user, as `over_ws` does.
        let got = claimer(asterisk, &app).post(via, &format!("channelId={}&application=cycler&api_key=test:test", encode(&id)));
        if got != Answer::no_content() {
            expect(got, Answer::no_content(), &format!("live claim over {via:?}"));
            asterisk.hangup(&id);
            continue;
        }
        let r = http.claim(&id, "someone-else");
        assert_eq!((r.status, r.json()["message"].as_str()), (409, Some(ALREADY_CLAIMED)), "{what}: late claim");
        app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
        assert_eq!(asterisk.continue_channel(&id).status, 204);
        assert_eq!(result_of(asterisk, &id).as_deref(), Some("SUCCESS"), "{what}");
    }
}

/// Unload, load and reload of this module and of res_ari_events in several
/// orders. Unloading res_ari_events while this module is loaded may be
/// refused (the module may hold it); after every step the state is what the
/// command allows and ARI answers as that state wants.
#[test]
fn unload_load_reload_of_ours_and_res_ari_events_keep_the_tree_whole() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    let both = Loaded { ours: true, events: true };
    let events_only = Loaded { ours: false, events: true };
    let neither = Loaded { ours: false, events: false };
    let ours_only = Loaded { ours: true, events: false };
    let mut failures = Vec::new();
    check_state(&asterisk, &facts, both, true, "at boot", &mut failures);
    let sequences: Vec<(&str, Vec<(String, Vec<Loaded>)>)> = vec![
        (
            "ours out first, back last",
            vec![
                (format!("module unload {OURS}"), vec![events_only]),
                (format!("module unload {EVENTS}"), vec![neither]),
                (format!("module load {EVENTS}"), vec![events_only]),
                (format!("module load {OURS}"), vec![both]),
            ],
        ),
        (
            "res_ari_events out under ours",
            vec![
                (format!("module unload {EVENTS}"), vec![both, ours_only]),
                (format!("module load {EVENTS}"), vec![both]),
            ],
        ),
        (
            "reloads",
            vec![
                (format!("module reload {OURS}"), vec![both]),
                (format!("module reload {EVENTS}"), vec![both]),
                (format!("module unload {OURS}"), vec![events_only]),
                (format!("module reload {EVENTS}"), vec![events_only]),
                (format!("module load {OURS}"), vec![both]),
            ],
        ),
        (
            "res_ari_events out first, ours out, back in the same order",
            vec![
                (format!("module unload {EVENTS}"), vec![both, ours_only]),
                (format!("module unload {OURS}"), vec![events_only, neither]),
                (format!("module load {EVENTS}"), vec![events_only]),
                (format!("module load {OURS}"), vec![both]),
            ],
        ),
    ];
    for (name, steps) in sequences {
        for (command, allowed) in steps {
            // After a refused unload the module is still there: nothing to load.
            if let Some(module) = command.strip_prefix("module load ") {
                if is_running(&asterisk, module) {
                    println!("`{command}` skipped: {module} is running (its unload was refused)");
                    continue;
                }
            }
            let state = step(&asterisk, &command, &allowed);
            check_state(&asterisk, &facts, state, true, &format!("{name}: after `{command}` ({state:?})"), &mut failures);
        }
    }
    assert!(asterisk.is_running());
    let log = asterisk.log();
    assert!(!log.contains("could not be completely unloaded"), "a module could not be completely unloaded");
    assert!(failures.is_empty(), "{}: {} wrong claim answers:\n{}", facts.version, failures.len(), failures.join("\n"));
}

/// 20 unload/load cycles of this module with claims arriving all the time
/// over HTTP: each gets the module's answer (404, the channel is unknown) or
/// ARI's own without the module; then a live claim still wins.
#[test]
fn twenty_unload_load_cycles_under_a_claim_stream() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    let ari_answer = unloaded_claim_answer(&facts);
    let module_answer = Answer::of(404, CHANNEL_NOT_FOUND);
    let stop = AtomicBool::new(false);
    let (module_answers, ari_answers) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let answered = |counter: &AtomicUsize, n: usize, what: &str| {
        let (before, deadline) = (counter.load(SeqCst), Instant::now() + 10 * SECOND);
        while counter.load(SeqCst) == before {
            assert!(Instant::now() < deadline, "cycle {n}: the claim stream got no {what} answer in 10 s");
            std::thread::sleep(MS);
        }
    };
    let (seen, refused) = std::thread::scope(|s| {
        let stream = s.spawn(|| {
            let http = asterisk.ari();
            let mut seen = BTreeMap::<(u16, String), usize>::new();
            while !stop.load(SeqCst) {
                let r = http.claim("no-such-channel", "claimer");
                let answer = Answer { status: r.status, message: r.json()["message"].as_str().unwrap_or(&r.body).to_owned(), empty: r.body.is_empty() };
                if answer == module_answer {
                    module_answers.fetch_add(1, SeqCst);
                } else if answer == ari_answer {
                    ari_answers.fetch_add(1, SeqCst);
                }
                *seen.entry((answer.status, answer.message)).or_default() += 1;
            }
            seen
        });
        let mut refused = 0;
        for n in 0..20 {
            answered(&module_answers, n, "module's");
            let deadline = Instant::now() + 10 * SECOND;
            while !asterisk.cli(&format!("module unload {OURS}")).contains("Unloaded") {
                // A claim being served holds the module: a plain unload waits for it.
                refused += 1;
                assert!(Instant::now() < deadline, "cycle {n}: unload never succeeded");
                std::thread::sleep(5 * MS);
            }
            answered(&ari_answers, n, "ARI's own");
            let out = asterisk.cli(&format!("module load {OURS}"));
            assert!(out.contains("Loaded"), "cycle {n}: {out}");
        }
        answered(&module_answers, 20, "module's");
        stop.store(true, SeqCst);
        (stream.join().expect("claim stream"), refused)
    });
    println!("20 unload/load cycles ({refused} unloads refused while a claim was served); answers: {seen:?}");
    for ((status, message), count) in &seen {
        let answer = Answer::of(*status, message);
        assert!(answer == module_answer || answer == ari_answer, "unexpected answer ({count}x): {status} {message}");
    }
    // This test is about HTTP claims: the WebSocket ones are checked by the test above.
    let mut failures = Vec::new();
    check_state(&asterisk, &facts, loaded(&asterisk), false, "after 20 cycles", &mut failures);
    assert!(failures.is_empty(), "{failures:#?}");
}

const ACL_CRASH_WARNING: &str = "crashes (SIGSEGV) on any REST request over its WebSocket";

/// ARI of 20.19–20.20.0, 22.9–22.10.0 and 23.3–23.4.0 applies a user's ACL
/// to a WebSocket request through the HTTP connection it does not have, and
/// crashes. Where it does, the module's WARNING at load names ari.conf's
/// users with an ACL, and a REST request over the WebSocket from one of
/// them (not even a claim: `GET asterisk/info`) takes Asterisk down with
/// SIGSEGV, as the WARNING says. Elsewhere there is no such line, and where
/// ARI has per-user ACLs such a request is answered.
#[test]
fn the_websocket_acl_crash_is_named_where_ari_has_it() {
    let facts = AriFacts::of_runtime();
    let asterisk = boot(&facts);
    let log = boot_log(&asterisk);
    let warned = log.lines().find(|line| line.contains(ACL_CRASH_WARNING));
    let crashes = facts.user_acls && !facts.websocket_passes_api_key;
    if !crashes {
        assert!(warned.is_none(), "{}: no ACL crash to warn of, yet: {warned:?}", facts.version);
        if facts.user_acls && facts.rest_over_websocket {
            let app = asterisk.connect_app_basic("fenced-in", "local", "l", "");
            assert_eq!(app.rest("GET", "asterisk/info", None).status, 200, "{}", facts.version);
        }
        return;
    }
    let line = warned.unwrap_or_else(|| panic!("{}: no WARNING of the ACL crash; the boot log:\n{log}", facts.version));
    assert!(line.contains("WARNING"), "{line}");
    assert!(line.contains("in ari.conf that is: fenced, local, named."), "{line}");
    // The crash itself, which is ARI's: the user `local` is let in by its ACL.
    let app = asterisk.connect_app_basic("fenced-in", "local", "l", "");
    let answer = app.try_rest("GET", "asterisk/info", None, 5 * SECOND);
    assert!(answer.is_none(), "{}: answered after all: {answer:?}", facts.version);
    let deadline = Instant::now() + 5 * SECOND;
    let status = loop {
        if let Some(status) = asterisk.exit_status() {
            break status;
        }
        assert!(Instant::now() < deadline, "{}: Asterisk still runs", facts.version);
        std::thread::sleep(10 * MS);
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(11), "{}: {status:?}", facts.version);
}

#[test]
fn version_facts_of_rest_over_websocket() {
    use common::ari_facts::at_least;
    let rest = |v| at_least(v, &[(20, 14, 0), (21, 9, 0), (22, 4, 0), (23, 0, 0)]);
    assert!(!rest((20, 6, 0)) && rest((20, 14, 0)) && rest((22, 9, 0)) && rest((23, 3, 0)) && !rest((22, 3, 9)));
    let outbound = |v| at_least(v, &[(20, 15, 0), (21, 10, 0), (22, 5, 0), (23, 0, 0)]);
    assert!(!outbound((20, 14, 0)) && outbound((22, 9, 0)) && outbound((24, 0, 0)) && !outbound((21, 9, 5)));
}
