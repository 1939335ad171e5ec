//! The copies of one CallBroadcast that the applications get. The module
//! makes one per application as a shallow copy of one event (src/events.rs):
//! all copies share the nested `channel` object, and ARI stamps only
//! top-level members (`application`, `asterisk_id`) on its own copy. That is
//! safe only while jansson counts references atomically and ARI writes
//! nothing nested; these tests pin it down where it would show: one
//! application's copies are held back in ARI's queue while its WebSocket
//! reconnects (an outbound WebSocket, replayed when it is back), while the
//! other applications' copies of the same calls are written live, on other
//! threads, and the calls end meanwhile. Every copy must arrive whole: its
//! own `application`, the same channel, nothing else different.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;

const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

/// ARI outbound WebSockets (ari.conf `type = outbound_websocket`) exist from these releases on.
const OUTBOUND_RELEASES: &[(u32, u32)] = &[(20, 15), (22, 5), (23, 0)];

const LIVE: [&str; 2] = ["alpha", "gamma"];
const AWAY: &str = "away";

fn call(ast: &Asterisk, timeout_ms: u32) -> String {
    ast.originate(OriginateSpec::new("100", "incoming").var("SB", &timeout_ms.to_string()))
}

fn result(ast: &Asterisk, id: &str) -> Option<String> {
    ast.wait_for_global(&format!("RESULT_{id}"), 10 * SECOND)
}

/// Each copy names its own application and the call's channel; apart from
/// `application` the copies are equal.
fn assert_copies(id: &str, copies: &[(&str, Value)]) {
    let without_application = |event: &Value| {
        let mut event = event.clone();
        event.as_object_mut().expect("an object").remove("application");
        event
    };
    let (first_app, first) = &copies[0];
    for (app, event) in copies {
        assert_eq!(event["type"], "CallBroadcast", "{app}: {event}");
        assert_eq!(event["application"], *app, "{app}: {event}");
        assert_eq!(event["channel"]["id"], id, "{app}: {event}");
        assert!(event["channel"]["name"].as_str().is_some_and(|name| name.starts_with("Local/100@incoming-")), "{event}");
        assert_eq!(
            without_application(event),
            without_application(first),
            "{app}'s copy differs from {first_app}'s"
        );
    }
}

/// The live applications' copies of the call's CallBroadcast.
fn live_copies<'a>(apps: &'a [AriApp], id: &str) -> Vec<(&'a str, Value)> {
    apps.iter()
        .map(|app| {
            let (_, event) = app
                .wait_for_channel_event("CallBroadcast", id, 5 * SECOND)
                .unwrap_or_else(|| panic!("{}: no CallBroadcast for {id}", app.name()));
            (app.name(), event)
        })
        .collect()
}

/// How many CallBroadcast events for each call these events hold.
fn per_call(events: impl Iterator<Item = Value>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events.filter(|event| event["type"] == "CallBroadcast") {
        *counts.entry(event["channel"]["id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    counts
}

/// An application served over an outbound WebSocket whose server goes away:
/// the calls made meanwhile reach the live applications at once, time out
/// and end; their copies for the absent application wait in ARI's queue and
/// are replayed, whole, when it is back; afterwards it gets calls live again
/// and can win one. Where Asterisk has no outbound WebSockets, an inbound
/// application closes its WebSocket and connects again instead (the calls
/// made meanwhile are not offered to it: it is not registered).
#[test]
fn every_copy_is_whole_while_one_application_reconnects() {
    if Runtime::locate().at_least(OUTBOUND_RELEASES) {
        outbound_reconnects();
    } else {
        eprintln!("{}: no outbound WebSockets; an inbound application reconnects", Runtime::locate().asterisk_version());
        inbound_reconnects();
    }
}

fn outbound_reconnects() {
    let server = OutboundServer::bind();
    let ast = Asterisk::start(
        AsteriskConfig::new(ours()).dialplan(DIALPLAN).outbound_websocket("away", AWAY, "test", &server.uri()),
    );
    let away = server.accept(AWAY, ast.ari(), 10 * SECOND);
    let live: Vec<AriApp> = LIVE.iter().map(|name| ast.connect_app(name)).collect();
    let copy_at = |app: &AriApp, id: &str| {
        app.wait_for_channel_event("CallBroadcast", id, 10 * SECOND)
            .unwrap_or_else(|| panic!("{AWAY}: no CallBroadcast for {id}\n{}", ast.diagnostics()))
            .1
    };

    // Everyone present: every copy live.
    let first = call(&ast, 20_000);
    let mut copies = live_copies(&live, &first);
    copies.push((AWAY, copy_at(&away, &first)));
    assert_copies(&first, &copies);

    // The server goes away; Asterisk keeps the application and queues its events.
    let mark = ast.log_mark();
    server.go_away();
    let mut seen: Vec<Value> = away.events().into_iter().map(|(_, event)| event).collect();
    drop(away);
    assert!(
        ast.wait_for_log_since(mark, "Websocket disconnected", 5 * SECOND),
        "Asterisk did not notice the outbound WebSocket close\n{}",
        ast.diagnostics()
    );
    let meanwhile: Vec<String> = (0..5).map(|_| call(&ast, 1_000)).collect();
    let live_meanwhile: Vec<Vec<(&str, Value)>> = meanwhile.iter().map(|id| live_copies(&live, id)).collect();
    assert!(
        ast.wait_for_log_since(mark, &format!("Queued 'CallBroadcast' message for Stasis app '{AWAY}'"), 5 * SECOND),
        "ARI did not queue the absent application's copies\n{}",
        ast.diagnostics()
    );
    // They time out and end while their copies wait in the queue.
    for id in &meanwhile {
        assert_eq!(result(&ast, id).as_deref(), Some("TIMEOUT"), "{id}");
    }
    let r = live[0].claim(&first);
    assert_eq!(r.status, 204, "claim while {AWAY} is away: {}", r.body);
    live[0].wait_for_channel_event("StasisStart", &first, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&first).status, 204);
    assert_eq!(result(&ast, &first).as_deref(), Some("SUCCESS"));

    // Back: the queued copies are replayed, each whole.
    server.come_back();
    let back = server.accept(AWAY, ast.ari(), 10 * SECOND);
    for (id, mut copies) in meanwhile.iter().zip(live_meanwhile) {
        copies.push((AWAY, copy_at(&back, id)));
        assert_copies(id, &copies);
    }

    // And live again: the application that came back wins a call.
    let last = call(&ast, 20_000);
    let mut copies = live_copies(&live, &last);
    copies.push((AWAY, copy_at(&back, &last)));
    assert_copies(&last, &copies);
    let r = ast.claim(&last, AWAY);
    assert_eq!(r.status, 204, "claim by {AWAY} after it came back: {}", r.body);
    back.wait_for_channel_event("StasisStart", &last, 5 * SECOND).expect("StasisStart over the outbound WebSocket");
    assert_eq!(ast.continue_channel(&last).status, 204);
    assert_eq!(result(&ast, &last).as_deref(), Some("SUCCESS"));

    // Exactly one copy of each call per application.
    let calls: Vec<&String> = [&first].into_iter().chain(&meanwhile).chain([&last]).collect();
    seen.extend(back.events().into_iter().map(|(_, event)| event));
    let counts = per_call(seen.into_iter());
    for app in &live {
        let app_counts = per_call(app.events().into_iter().map(|(_, event)| event));
        for id in &calls {
            assert_eq!(app_counts.get(id.as_str()), Some(&1), "{}: CallBroadcasts for {id}", app.name());
        }
    }
    for id in &calls {
        assert_eq!(counts.get(id.as_str()), Some(&1), "{AWAY}: CallBroadcasts for {id}");
    }
    assert!(ast.is_running(), "{}", ast.diagnostics());
}

fn inbound_reconnects() {
    let ast = Asterisk::start(AsteriskConfig::new(ours()).dialplan(DIALPLAN));
    let live: Vec<AriApp> = LIVE.iter().map(|name| ast.connect_app(name)).collect();
    let back = |ast: &Asterisk| ast.connect_app(AWAY);
    let away = back(&ast);
    let first = call(&ast, 1_000);
    let mut copies = live_copies(&live, &first);
    copies.push((AWAY, away.wait_for_channel_event("CallBroadcast", &first, 5 * SECOND).expect("CallBroadcast").1));
    assert_copies(&first, &copies);
    drop(away);
    let meanwhile: Vec<String> = (0..5).map(|_| call(&ast, 500)).collect();
    for id in &meanwhile {
        live_copies(&live, id);
    }
    let away = back(&ast);
    let last = call(&ast, 1_000);
    let mut copies = live_copies(&live, &last);
    copies.push((AWAY, away.wait_for_channel_event("CallBroadcast", &last, 5 * SECOND).expect("CallBroadcast").1));
    assert_copies(&last, &copies);
    for id in meanwhile.iter().chain([&first, &last]) {
        assert_eq!(result(&ast, id).as_deref(), Some("TIMEOUT"), "{id}");
    }
    assert!(ast.is_running(), "{}", ast.diagnostics());
}
