//! Feature scenarios of StasisBroadcast, run against our module and, where the
//! SPEC says the behaviour is the same, against the C reference shipped with
//! Asterisk 22.10.1.

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const OURS: &str = "res_stasis_broadcast_rs.so";
const MS: Duration = Duration::from_millis(1);

/// `100@incoming` runs `StasisBroadcast(${SB})` (arguments chosen per call);
/// `200` is an answered call; `300` broadcasts twice; `400` runs Asterisk's
/// own `Wait()` instead. `NAME_<uniqueid>` holds the channel name;
/// `RESULT_<uniqueid>` the status after the application, `HRESULT_<uniqueid>`
/// the status seen by the h extension (prefixed `H:` so an empty status is
/// still visible) and `HTIME_<uniqueid>` when the h extension began (seconds
/// since the epoch, to the microsecond).
const DIALPLAN: &str = "[incoming]
exten => 100,1,Set(GLOBAL(NAME_${UNIQUEID})=${CHANNEL})
 same => n,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => 200,1,Answer()
 same => n,StasisBroadcast(5000)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => 300,1,StasisBroadcast(200)
 same => n,Set(GLOBAL(FIRST_${UNIQUEID})=${STASISSTATUS})
 same => n,StasisBroadcast(5000)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => 400,1,Set(GLOBAL(NAME_${UNIQUEID})=${CHANNEL})
 same => n,Wait(10)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(HTIME_${UNIQUEID})=${STRFTIME(,,%s.%6q)})
 same => n,Set(GLOBAL(HRESULT_${UNIQUEID})=H:${STASISSTATUS})

[tones]
exten => s,1,Playtones(440/200,0/200)
 same => n,Wait(10)
";

/// The channel variable ari.conf puts in every Channel model (`channelvars`).
const CHANNELVAR: &str = "SB_TAG";

fn boot(imp: Implementation) -> Asterisk {
    Asterisk::start(
        AsteriskConfig::new(imp.broadcaster())
            .dialplan(DIALPLAN)
            .channelvars(CHANNELVAR)
            // STRFTIME(), for HTIME_.
            .load("func_strings.so")
            .label(&format!("{imp:?}")),
    )
}

/// Boots one instance per implementation, at the same time.
fn boot_pair(a: Implementation, b: Implementation) -> (Asterisk, Asterisk) {
    std::thread::scope(|s| {
        let first = s.spawn(|| boot(a));
        let second = s.spawn(|| boot(b));
        (first.join().expect("boot"), second.join().expect("boot"))
    })
}

fn call(ast: &Asterisk, sb: &str) -> String {
    ast.originate(OriginateSpec::new("100", "incoming").var("SB", sb))
}

fn result(ast: &Asterisk, id: &str, timeout: Duration) -> Option<String> {
    ast.wait_for_global(&format!("RESULT_{id}"), timeout)
}

/// ARI timestamp: `2026-11-22T06:04:10.264+0000`.
fn is_ari_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 28
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && (b[23] == b'+' || b[23] == b'-')
        && digits(24..28)
}

/// The structure of a JSON value: objects keep their keys (recursively), every
/// leaf becomes the name of its type, arrays the union of their elements' shapes.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => {
            let mut shapes: Vec<Value> = a.iter().map(shape).collect();
            shapes.sort_by_key(|s| s.to_string());
            shapes.dedup();
            Value::Array(shapes)
        }
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// What users read of an event, for comparing one call placed on each
/// implementation: every field and value, except those that differ between
/// any two calls or instances (the timestamps, the channel's unique id, the
/// Local channel's sequence number in its name, the instance's entity id).
fn user_values(ev: &Value) -> Value {
    let mut v = ev.clone();
    for field in ["timestamp", "asterisk_id"] {
        v[field] = json!("(per call)");
    }
    for field in ["id", "creationtime"] {
        v["channel"][field] = json!("(per call)");
    }
    if let Some(name) = ev["channel"]["name"].as_str() {
        // Local/100@incoming-0000002a;2: the part between '-' and ';' counts channels.
        let (Some(dash), Some(semi)) = (name.rfind('-'), name.rfind(';')) else { panic!("channel name {name}") };
        v["channel"]["name"] = json!(format!("{}-N{}", &name[..dash], &name[semi..]));
    }
    v
}

/// Runs a scenario on ours and on the other implementation (the C reference
/// where the runtime has it) at the same time; returns ours, then the other's.
fn side_by_side<T: Send>(scenario: fn(Implementation) -> T) -> (T, T) {
    let other = reference_or_ours();
    std::thread::scope(|s| {
        let ours = s.spawn(|| scenario(Implementation::Ours));
        let theirs = s.spawn(move || scenario(other));
        (ours.join().expect("ours"), theirs.join().expect("the other implementation"))
    })
}

fn cli_active_line(ast: &Asterisk) -> String {
    let out = ast.cli("stasis broadcast show broadcasts");
    out.lines().rev().find(|l| l.contains("active broadcast")).unwrap_or("").trim().to_owned()
}

// ------------------------------------------------ every application its own event

/// Each application gets its own copy of the event object (Stasis and ARI
/// stamp `asterisk_id` and `application` on it) while the values under it
/// are shared between the copies: with many applications and two calls in a
/// row, every application receives exactly one CallBroadcast per call,
/// naming itself, and otherwise identical to everyone else's.
#[test]
fn many_applications_each_receive_their_own_correct_event() {
    const APPS: usize = 40;
    let ast = boot(Implementation::Ours);
    let names: Vec<String> = (0..APPS).map(|i| format!("own-{i:02}")).collect();
    let apps: Vec<AriApp> = names.iter().map(|name| ast.connect_app(name)).collect();
    let entity_id = ast.ari().get("/asterisk/info").json()["system"]["entity_id"].clone();
    let calls: Vec<(String, &str)> = ["5550001", "5550002"]
        .into_iter()
        .map(|number| (ast.originate(OriginateSpec::new("100", "incoming").var("SB", "0").caller_id(number)), number))
        .collect();
    for (id, _) in &calls {
        assert_eq!(result(&ast, id, 10 * SECOND).as_deref(), Some("TIMEOUT"));
    }
    for (id, number) in &calls {
        let mut common: Option<Value> = None;
        for (app, name) in apps.iter().zip(&names) {
            let (_, ev) = app.wait_for_channel_event("CallBroadcast", id, 5 * SECOND).expect("CallBroadcast");
            let count = app
                .events()
                .iter()
                .filter(|(_, e)| e["type"] == "CallBroadcast" && e["channel"]["id"] == id.as_str())
                .count();
            assert_eq!(count, 1, "{name}: {count} CallBroadcast events for {id}");
            assert_eq!(ev["application"], name.as_str(), "{ev}");
            assert_eq!(ev["asterisk_id"], entity_id, "{ev}");
            assert_eq!(ev["type"], "CallBroadcast", "{ev}");
            assert_eq!(ev["channel"]["id"], id.as_str(), "{ev}");
            assert_eq!(ev["channel"]["caller"]["number"], *number, "{ev}");
            assert_eq!(ev["caller"], *number, "{ev}");
            assert_eq!(ev["called"], "100", "{ev}");
            assert!(ev["timestamp"].as_str().is_some_and(is_ari_timestamp), "{ev}");
            let mut rest = ev.clone();
            rest.as_object_mut().expect("object").remove("application");
            match &common {
                None => common = Some(rest),
                Some(first) => assert_eq!(&rest, first, "{name}'s event differs beyond `application`"),
            }
        }
    }
}

// ---------------------------------------------------------------- 1. nominal

/// Returns the CallBroadcast event as received. The call arrives with a
/// stale `STASISSTATUS` (as after an earlier application) and the
/// `channelvars` variable set.
fn nominal(imp: Implementation) -> Value {
    let ast = boot(imp);
    let app = ast.connect_app("sales");
    let id = ast.originate(
        OriginateSpec::new("100", "incoming")
            .var("SB", "5000,,sales:priority-high")
            .var(CHANNELVAR, "tagged")
            .var("STASISSTATUS", "STALE")
            .caller_id("5551234"),
    );
    let (_, ev) = app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    println!("{imp:?} CallBroadcast: {ev}");
    assert_eq!(ev["type"], "CallBroadcast");
    let ts = ev["timestamp"].as_str().expect("timestamp string");
    assert!(is_ari_timestamp(ts), "timestamp format: {ts}");
    assert_eq!(ev["channel"]["id"], id.as_str(), "{ev}");
    let name = ast.global_var(&format!("NAME_{id}")).expect("channel name recorded");
    assert_eq!(ev["channel"]["name"], name.as_str(), "{ev}");
    assert!(name.starts_with("Local/100@incoming-") && name.ends_with(";2"), "{name}");
    assert_eq!(ev["channel"]["caller"]["number"], "5551234", "{ev}");
    assert_eq!(ev["channel"]["dialplan"]["exten"], "100", "{ev}");
    assert_eq!(ev["caller"], "5551234", "{ev}");
    assert_eq!(ev["called"], "100", "{ev}");
    let info = ast.ari().get("/asterisk/info").json();
    assert_eq!(ev["asterisk_id"], info["system"]["entity_id"], "{ev}");
    assert_eq!(ev["application"], "sales", "{ev}");
    // ari.conf's channelvars, in the channel of the event.
    assert_eq!(ev["channel"]["channelvars"], json!({ CHANNELVAR: "tagged" }), "{ev}");

    let r = app.claim(&id);
    assert_eq!(r.status, 204, "claim: {}", r.body);
    assert!(r.body.is_empty(), "204 body: {:?}", r.body);
    let (_, start) = app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(start["args"], json!(["sales", "priority-high"]), "{start}");
    assert_eq!(start["application"], "sales", "{start}");
    // STASISSTATUS was cleared on entry: the winner's session does not see the stale value.
    let status = ast.ari().get(&format!("/channels/{id}/variable?variable=STASISSTATUS"));
    println!("{imp:?}: STASISSTATUS during the winner's session: {} {}", status.status, status.body);
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.json()["value"], "", "cleared on entry: {}", status.body);
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));
    ev
}

#[test]
fn nominal_ours() {
    nominal(Implementation::Ours);
}

#[test]
fn nominal_reference() {
    nominal(reference_or_ours());
}

// ---------------------------------------------------- 2. identical JSON structure

/// The same call placed on each implementation: the same keys and JSON
/// types, and the same values in everything a user reads (the channel's
/// state, dialplan location, caller, connected line, language, channelvars,
/// and `caller`/`called`/`application`).
#[test]
fn call_broadcast_json_matches_reference() {
    let (ours, reference) = side_by_side(nominal);
    assert_eq!(
        shape(&ours),
        shape(&reference),
        "CallBroadcast structure differs\nours: {ours}\nreference: {reference}"
    );
    assert_eq!(
        user_values(&ours),
        user_values(&reference),
        "CallBroadcast values differ\nours: {ours}\nreference: {reference}"
    );
}

// ------------------------------------------------------------------- 3. race

fn race(imp: Implementation, calls: usize) {
    const APPS: usize = 8;
    let ast = boot(imp);
    let apps: Vec<AriApp> = (0..APPS).map(|i| ast.connect_app(&format!("racer-{i}"))).collect();
    let mut wins = vec![0usize; APPS];
    let mut won: Vec<Vec<String>> = vec![Vec::new(); APPS];
    let started = Instant::now();
    for n in 0..calls {
        let id = call(&ast, "5000");
        for app in &apps {
            app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND)
                .unwrap_or_else(|| panic!("call {n}: {} got no CallBroadcast", app.name()));
        }
        let barrier = Barrier::new(APPS);
        let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = apps
                .iter()
                .map(|app| {
                    let barrier = &barrier;
                    let id = &id;
                    s.spawn(move || {
                        barrier.wait();
                        let r = app.claim(id);
                        (r.status, r.body)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("claimer thread")).collect()
        });
        let winners: Vec<usize> = statuses.iter().enumerate().filter(|(_, (s, _))| *s == 204).map(|(i, _)| i).collect();
        let conflicts = statuses.iter().filter(|(s, _)| *s == 409).count();
        assert_eq!(winners.len(), 1, "call {n}: exactly one 204: {statuses:?}");
        assert_eq!(conflicts, APPS - 1, "call {n}: seven 409: {statuses:?}");
        let w = winners[0];
        wins[w] += 1;
        won[w].push(id.clone());
        let (_, start) = apps[w]
            .wait_for_channel_event("StasisStart", &id, 5 * SECOND)
            .unwrap_or_else(|| panic!("call {n}: winner {} got no StasisStart", apps[w].name()));
        assert_eq!(start["application"], apps[w].name());
        let h = ast.hangup(&id);
        assert_eq!(h.status, 204, "call {n}: hangup {}", h.body);
    }
    let elapsed = started.elapsed();
    println!("{imp:?} race: {calls} calls x {APPS} claimants in {elapsed:?}; wins per app {wins:?}");
    // StasisStart went only to the winners (each was sent as its winner's was).
    for (i, app) in apps.iter().enumerate() {
        let mut got: Vec<String> = app
            .events_before_barrier(5 * SECOND)
            .into_iter()
            .filter(|(_, v)| v["type"] == "StasisStart")
            .map(|(_, v)| v["channel"]["id"].as_str().unwrap_or("").to_owned())
            .collect();
        got.sort();
        let mut expected = won[i].clone();
        expected.sort();
        assert_eq!(got, expected, "StasisStart of {} are exactly its wins", app.name());
    }
    // Every application wins some of 200 races (delivery order: see
    // delivery_order_is_a_fresh_uniform_shuffle_per_call).
    if calls >= 100 {
        assert!(wins.iter().all(|&w| w > 0), "some app never won: {wins:?}");
    }
    if imp == Implementation::Ours {
        let deadline = Instant::now() + 5 * SECOND;
        while cli_active_line(&ast) != "0 active broadcast(s)" && Instant::now() < deadline {
            std::thread::sleep(50 * MS);
        }
        assert_eq!(cli_active_line(&ast), "0 active broadcast(s)");
    }
}

#[test]
fn race_ours() {
    race(Implementation::Ours, 200);
}

#[test]
fn race_reference() {
    race(reference_or_ours(), 200);
}

// ---------------------------------------------------------- 3b. delivery order

/// The order in which the module sent CallBroadcast to the applications, seen
/// on one WebSocket that serves them all (`app=a,b,c,d`): Asterisk writes an
/// application's events from inside `stasis_app_send`, under the WebSocket
/// session's lock, so they arrive in the order they were sent; `application`
/// says which application each copy was for.
#[test]
fn delivery_order_is_a_fresh_uniform_shuffle_per_call() {
    const APPS: [&str; 4] = ["order-a", "order-b", "order-c", "order-d"];
    const CALLS: usize = 240;
    let ast = boot(Implementation::Ours);
    let all = ast.connect_app(&APPS.join(","));
    // Timeout 0: the offers go out, nobody claims, the call ends at once.
    let ids: Vec<String> = (0..CALLS).map(|_| call(&ast, "0")).collect();
    let mut orders: std::collections::HashMap<String, Vec<String>> = ids.iter().map(|id| (id.clone(), Vec::new())).collect();
    let deadline = Instant::now() + 30 * SECOND;
    let mut complete = 0;
    while complete < CALLS {
        assert!(Instant::now() < deadline, "{complete} of {CALLS} calls offered to all {} applications", APPS.len());
        for (_, v) in all.take_events(SECOND) {
            if v["type"] != "CallBroadcast" {
                continue;
            }
            let id = v["channel"]["id"].as_str().unwrap_or_default();
            let order = orders.get_mut(id).unwrap_or_else(|| panic!("CallBroadcast for an unknown call: {v}"));
            order.push(v["application"].as_str().unwrap_or_default().to_owned());
            if order.len() == APPS.len() {
                complete += 1;
            }
        }
    }
    let mut first = [0usize; 4];
    let mut permutations: std::collections::BTreeMap<Vec<String>, usize> = Default::default();
    for order in orders.values() {
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, APPS, "each application offered each call once: {order:?}");
        first[APPS.iter().position(|a| *a == order[0]).expect("known app")] += 1;
        *permutations.entry(order.clone()).or_default() += 1;
    }
    // Pearson's chi-square against the uniform distribution. Under a uniform
    // shuffle, P(chi2 > 33) with 3 degrees of freedom (the first application)
    // is 3.2e-7 and P(chi2 > 73) with 23 (the whole order, 24 permutations) is
    // 4.1e-7: this test fails wrongly with probability below 1e-6. One fixed
    // order gives 720 and 5520.
    let chi2 = |counts: &[usize], cells: usize| {
        let expected = CALLS as f64 / cells as f64;
        let seen: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        seen + (cells - counts.len()) as f64 * expected
    };
    let counts: Vec<usize> = permutations.values().copied().collect();
    let (chi2_first, chi2_order) = (chi2(&first, 4), chi2(&counts, 24));
    println!(
        "{CALLS} calls: first application {first:?} (chi2 {chi2_first:.1}, 3 df); {} distinct orders (chi2 {chi2_order:.1}, 23 df)",
        permutations.len()
    );
    assert!(permutations.len() > 1, "the order never varies: {permutations:?}");
    assert!(chi2_first < 33.0, "some application is first far more often than the others: {first:?}");
    assert!(chi2_order < 73.0, "the orders are not uniform: {permutations:?}");
}

// ------------------------------------------------------------------ 4. filter

fn filter_apps(ast: &Asterisk) -> Vec<AriApp> {
    ["ivr-a", "ivr-b", "sales-x", "ivr-2"].iter().map(|n| ast.connect_app(n)).collect()
}

/// Whether `app` got a `event_type` event about `channel_id` before a barrier
/// (see [`AriApp::events_before_barrier`]): call it once the application
/// that would have sent it has returned.
fn got_before_barrier(app: &AriApp, event_type: &str, channel_id: &str) -> bool {
    app.events_before_barrier(5 * SECOND)
        .iter()
        .any(|(_, v)| v["type"] == event_type && v["channel"]["id"] == channel_id)
}

/// Offers a call with `filter` and checks which apps got it: the others have
/// nothing before a barrier sent once the application has returned.
fn assert_offered(ast: &Asterisk, apps: &[AriApp], filter: &str, expected: &[&str]) -> String {
    let id = call(ast, &format!("5000,{filter}"));
    for app in apps.iter().filter(|a| expected.contains(&a.name())) {
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND)
            .unwrap_or_else(|| panic!("filter {filter}: {} got no CallBroadcast", app.name()));
    }
    assert_eq!(ast.hangup(&id).status, 204);
    assert!(ast.wait_for_global(&format!("HRESULT_{id}"), 5 * SECOND).is_some());
    for app in apps.iter().filter(|a| !expected.contains(&a.name())) {
        assert!(
            !got_before_barrier(app, "CallBroadcast", &id),
            "filter {filter}: {} must not be offered the call",
            app.name()
        );
    }
    id
}

fn filter(imp: Implementation) {
    let ast = boot(imp);
    let apps = filter_apps(&ast);
    assert_offered(&ast, &apps, "^ivr-", &["ivr-a", "ivr-b", "ivr-2"]);
    assert_offered(&ast, &apps, "^ivr-[a-z]", &["ivr-a", "ivr-b"]);
    // POSIX bracket classes.
    assert_offered(&ast, &apps, "^[[:alpha:]]+-[[:alpha:]]$", &["ivr-a", "ivr-b", "sales-x"]);

    // A legal pattern the reference rejects by heuristic (quantified groups).
    let mark = ast.log_mark();
    match imp {
        // Ours has linear-time matching and no reason to reject it: it filters.
        Implementation::Ours => {
            assert_offered(&ast, &apps, "(i)+(v)+(r)+(-)+", &["ivr-a", "ivr-b", "ivr-2"]);
            assert!(!ast.log_since(mark).to_lowercase().contains("rejecting app_filter regex"));
        }
        // The reference logs the rejection and broadcasts unfiltered.
        Implementation::Reference => {
            assert_offered(&ast, &apps, "(i)+(v)+(r)+(-)+", &["ivr-a", "ivr-b", "sales-x", "ivr-2"]);
            // Logged as "Channel <id>: rejecting app_filter regex as potentially
            // dangerous: ..." then "proceeding without application filtering".
            let log = ast.log_since(mark);
            assert!(log.contains("rejecting app_filter regex") && log.contains("(i)+(v)+(r)+(-)+"), "{log}");
            assert!(log.contains("proceeding without application filtering"), "{log}");
        }
    }

    // An invalid pattern.
    let mark = ast.log_mark();
    match imp {
        // Ours refuses to broadcast: FAILED, an ERROR naming channel and pattern.
        Implementation::Ours => {
            let id = call(&ast, "5000,ivr-(");
            assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("FAILED"));
            for app in &apps {
                assert!(!got_before_barrier(app, "CallBroadcast", &id), "{} offered", app.name());
            }
            let name = ast.global_var(&format!("NAME_{id}")).expect("name");
            let log = logged_through_the_result(&ast, mark, &id);
            assert!(
                log.lines().any(|l| l.contains("ERROR") && l.contains(&name) && l.contains("ivr-(")),
                "ERROR line with {name} and ivr-(:\n{log}"
            );
        }
        // The reference broadcasts to everybody.
        Implementation::Reference => {
            let id = assert_offered(&ast, &apps, "ivr-(", &["ivr-a", "ivr-b", "sales-x", "ivr-2"]);
            println!("reference, invalid filter: log since:\n{}", ast.log_since(mark));
            let _ = id;
        }
    }
}

#[test]
fn filter_ours() {
    filter(Implementation::Ours);
}

#[test]
fn filter_reference() {
    filter(reference_or_ours());
}

// ----------------------------------------------------------------- 5. timeout

fn timeout(imp: Implementation) {
    let ast = boot(imp);
    let app = ast.connect_app("nobody");

    let t0 = Instant::now();
    let id = call(&ast, "300");
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("TIMEOUT"));
    let e = t0.elapsed();
    println!("{imp:?} timeout=300 -> TIMEOUT after {e:?}");
    assert!(e >= 250 * MS && e < 2000 * MS, "timeout 300 took {e:?}");

    let t0 = Instant::now();
    let id = call(&ast, "0");
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("TIMEOUT"));
    let e = t0.elapsed();
    println!("{imp:?} timeout=0 -> TIMEOUT after {e:?}");
    assert!(e < 1000 * MS, "timeout 0 took {e:?}");

    let mark = ast.log_mark();
    let t0 = Instant::now();
    let id = call(&ast, "abc");
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("TIMEOUT"));
    let e = t0.elapsed();
    println!("{imp:?} timeout=abc -> TIMEOUT after {e:?}");
    assert!(e >= 450 * MS && e < 2000 * MS, "default 500 ms: took {e:?}");
    let name = ast.global_var(&format!("NAME_{id}")).expect("name");
    let log = logged_through_the_result(&ast, mark, &id);
    assert!(
        log.lines().any(|l| l.contains("WARNING") && l.contains(&name) && l.contains("abc")),
        "WARNING naming {name} and abc:\n{log}"
    );

    // More than 128 Stasis arguments: the first 128 reach the winner.
    let args: Vec<String> = (0..130).map(|n| format!("a{n}")).collect();
    let mark = ast.log_mark();
    let id = call(&ast, &format!("5000,,{}", args.join(":")));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(app.claim(&id).status, 204);
    let (_, start) = app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(start["args"], json!(args[..128]), "{imp:?}: StasisStart.args");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));
    let name = ast.global_var(&format!("NAME_{id}")).expect("name");
    let log = logged_through_the_result(&ast, mark, &id);
    let warned = log.lines().any(|l| l.contains("WARNING") && l.contains(&name) && l.contains("130 Stasis arguments given"));
    match imp {
        // Ours says so, naming the channel and how many were given.
        Implementation::Ours => assert!(warned, "WARNING naming {name} and 130:\n{log}"),
        // The C module drops them silently.
        Implementation::Reference => assert!(!warned, "{log}"),
    }
}

/// The log since `mark` once it holds the line that sets the call's
/// result (see [`logged_through`]).
fn logged_through_the_result(ast: &Asterisk, mark: usize, id: &str) -> String {
    logged_through(ast, mark, &format!("GLOBAL(RESULT_{id})"))
}

/// The log since `mark` once it holds a line with `last`: Asterisk's logger
/// writes from a thread of its own, in order, so by then every line logged
/// before that one is in the file too.
fn logged_through(ast: &Asterisk, mark: usize, last: &str) -> String {
    assert!(ast.wait_for_log_since(mark, last, 5 * SECOND), "{last} never logged:\n{}", ast.log_since(mark));
    ast.log_since(mark)
}

#[test]
fn timeout_ours() {
    timeout(Implementation::Ours);
}

#[test]
fn timeout_reference() {
    timeout(reference_or_ours());
}

// ------------------------------------------------------------------ 6. errors

fn errors(imp: Implementation) {
    let ast = boot(imp);
    let http = ast.ari();
    let app = ast.connect_app("winner");
    // A second registered application (a claim naming an unregistered one is a different case, below).
    let _latecomer = ast.connect_app("latecomer");

    // Unknown channel.
    let r = ast.claim("no-such-channel", "winner");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.json()["message"].is_string(), "{}", r.body);

    // Missing parameters.
    let r = http.post("/events/claim?application=winner", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "channelId parameter is required", "{}", r.body);
    let r = http.post("/events/claim?channelId=x", None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "application parameter is required", "{}", r.body);

    // After a TIMEOUT.
    let id = call(&ast, "100");
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("TIMEOUT"));
    let r = ast.claim(&id, "winner");
    assert_eq!(r.status, 404, "claim after TIMEOUT: {}", r.body);

    // While the winner is in Stasis.
    let id = call(&ast, "5000");
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(app.claim(&id).status, 204);
    let immediate = ast.claim(&id, "latecomer");
    println!("{imp:?}: claim right after the 204 -> {} {}", immediate.status, immediate.body);
    assert_eq!(immediate.status, 409, "claim right after the winning claim: {}", immediate.body);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    std::thread::sleep(200 * MS);
    let late = ast.claim(&id, "latecomer");
    println!("{imp:?}: claim while the winner is in Stasis -> {} {}", late.status, late.body);
    // 409 from both: the broadcast stays findable while the winner's session runs.
    assert_eq!(late.status, 409, "claim while the winner is in Stasis: {}", late.body);
    // An unregistered application's claim on an already claimed call.
    let ghost_late = ast.claim(&id, "ghost");
    println!("{imp:?}: unregistered app's claim while the winner is in Stasis -> {} {}", ghost_late.status, ghost_late.body);
    // A taken call answers 409 to everyone, registered name or not (both implementations).
    assert_eq!(ghost_late.status, 409, "{}", ghost_late.body);
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));

    // Claim naming an application that is not registered.
    let id = call(&ast, "5000");
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    let ghost = ast.claim(&id, "ghost");
    println!("{imp:?}: claim for unregistered app ghost -> {} {}", ghost.status, ghost.body);
    match imp {
        // Ours: the ghost cannot receive the channel, so its claim is not a win.
        Implementation::Ours => {
            assert_eq!(ghost.status, 404, "{}", ghost.body);
            let r = app.claim(&id);
            assert_eq!(r.status, 204, "{}", r.body);
            app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
            assert_eq!(ast.continue_channel(&id).status, 204);
            assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));
        }
        // Reference (observed): the ghost's claim wins (204), entering Stasis for
        // an unregistered app fails, the call ends FAILED, and the real app's
        // claim then gets 404. Ours deliberately refuses the ghost instead.
        Implementation::Reference => {
            assert_eq!(ghost.status, 204, "{}", ghost.body);
            let status = result(&ast, &id, 7 * SECOND);
            let r = app.claim(&id);
            println!("reference: then the real app's claim -> {} {}; STASISSTATUS {status:?}", r.status, r.body);
            assert_eq!(status.as_deref(), Some("FAILED"));
            assert_eq!(r.status, 404, "{}", r.body);
        }
    }
}

#[test]
fn errors_ours() {
    errors(Implementation::Ours);
}

#[test]
fn errors_reference() {
    errors(reference_or_ours());
}

// ---------------------------------------------------------- 7. notify_claimed

/// Returns the CallClaimed event ivr-b received.
fn notify_claimed(imp: Implementation) -> Value {
    let ast = boot(imp);
    let a = ast.connect_app("ivr-a");
    let b = ast.connect_app("ivr-b");
    let x = ast.connect_app("sales-x");
    let id = call(&ast, "5000,^ivr-,,yes");
    a.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("ivr-a offered");
    b.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("ivr-b offered");
    assert_eq!(a.claim(&id).status, 204);
    let (_, ev) = b.wait_for_channel_event("CallClaimed", &id, 5 * SECOND).expect("ivr-b gets CallClaimed");
    println!("{imp:?} CallClaimed: {ev}");
    assert_eq!(ev["type"], "CallClaimed");
    assert!(is_ari_timestamp(ev["timestamp"].as_str().unwrap_or("")), "{ev}");
    assert_eq!(ev["channel"]["id"], id.as_str());
    assert_eq!(ev["winner_app"], "ivr-a");
    // StasisStart: the application has stopped waiting, so the offers are all
    // sent, and CallClaimed went out before the claim was answered.
    a.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    let before = x.events_before_barrier(5 * SECOND);
    let got = |event_type: &str| before.iter().filter(|(_, v)| v["type"] == event_type).count();
    assert_eq!(got("CallBroadcast"), 0, "sales-x was not offered the call");
    assert_eq!(got("CallClaimed"), 0, "sales-x was not offered the call");
    // The winner was offered the call too, so it also hears CallClaimed (both implementations).
    let to_winner = a.wait_for_channel_event("CallClaimed", &id, 2 * SECOND).expect("CallClaimed to the winner");
    assert_eq!(to_winner.1["winner_app"], "ivr-a");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));
    ev
}

#[test]
fn notify_claimed_ours() {
    notify_claimed(Implementation::Ours);
}

#[test]
fn notify_claimed_reference() {
    notify_claimed(reference_or_ours());
}

#[test]
fn call_claimed_json_matches_reference() {
    let (ours, reference) = side_by_side(notify_claimed);
    assert_eq!(shape(&ours), shape(&reference), "CallClaimed structure differs\nours: {ours}\nreference: {reference}");
    assert_eq!(
        user_values(&ours),
        user_values(&reference),
        "CallClaimed values differ\nours: {ours}\nreference: {reference}"
    );
}

// --------------------------------------------------------- 8. hang-up in wait

/// How many calls each hang-up measurement takes the median of.
const HANGUPS: usize = 5;

/// Hangs up `id` 20 ms after `waiting` returned and returns how long after
/// the hang-up request its h extension began (Asterisk's clock against this
/// process's: one machine).
fn release_after_hangup(ast: &Asterisk, id: &str, waiting: impl FnOnce()) -> Duration {
    waiting();
    std::thread::sleep(20 * MS);
    let requested = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    assert_eq!(ast.hangup(id).status, 204);
    let began = ast.wait_for_global(&format!("HTIME_{id}"), 5 * SECOND).expect("h extension ran");
    let began: f64 = began.parse().unwrap_or_else(|_| panic!("HTIME {began}"));
    Duration::from_secs_f64((began - requested.as_secs_f64()).max(0.0))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Hangs up a call while StasisBroadcast waits on it (offered to `app`);
/// checks how it ended and returns the release time.
fn hangup_during_broadcast(ast: &Asterisk, app: &AriApp, imp: Implementation) -> Duration {
    let mark = ast.log_mark();
    let id = call(ast, "10000");
    let released = release_after_hangup(ast, &id, || {
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    });
    assert_eq!(ast.global_var(&format!("HRESULT_{id}")).as_deref(), Some("H:TIMEOUT"), "status seen by the h extension");
    assert_eq!(ast.global_var(&format!("RESULT_{id}")), None, "the priority after StasisBroadcast ran");
    let name = ast.global_var(&format!("NAME_{id}")).expect("name");
    // The PBX logs this when an application returns -1 (at verbose 2).
    let stopped = format!("Spawn extension (incoming, 100, 2) exited non-zero on '{name}'");
    // The h extension runs after that line would be logged.
    let log = logged_through(ast, mark, &format!("GLOBAL(HRESULT_{id})"));
    match imp {
        // Ours returns -1: the channel is gone.
        Implementation::Ours => assert!(log.contains(&stopped), "ours returns -1 on a hang-up: no '{stopped}' in\n{log}"),
        // The C module returns 0 (and logs "not claimed within" as on a timeout).
        Implementation::Reference => assert!(!log.contains(&stopped), "{log}"),
    }
    if imp == Implementation::Ours {
        assert_eq!(cli_active_line(ast), "0 active broadcast(s)");
        assert_eq!(ast.claim(&id, "watcher").status, 404);
    }
    released
}

/// Hangs up a call while Asterisk's own `Wait(10)` runs on it (which a
/// hang-up interrupts at once); returns the release time.
fn hangup_during_builtin_wait(ast: &Asterisk) -> Duration {
    let id = ast.originate(OriginateSpec::new("400", "incoming"));
    release_after_hangup(ast, &id, || {
        ast.wait_for_global(&format!("NAME_{id}"), 5 * SECOND).expect("Wait() reached");
    })
}

/// A hang-up ends the wait at once, and the application returns -1; the C
/// module notices a hang-up only at its next 200 ms poll, and returns 0.
/// Compared in one run, `HANGUPS` hang-ups each, taken in turns so that the
/// machine's load weighs on all alike: ours against the C module where the
/// runtime has it, and, on every runtime, against Asterisk's own Wait() on
/// the same instance.
#[test]
fn hangup_during_wait_ends_it_at_once() {
    let other = reference_or_ours();
    let (ast, other_ast) = boot_pair(Implementation::Ours, other);
    let (app, other_app) = (ast.connect_app("watcher"), other_ast.connect_app("watcher"));
    let (mut ours, mut builtin, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..HANGUPS {
        ours.push(hangup_during_broadcast(&ast, &app, Implementation::Ours));
        builtin.push(hangup_during_builtin_wait(&ast));
        theirs.push(hangup_during_broadcast(&other_ast, &other_app, other));
    }
    println!("released after a hang-up: ours {ours:?}, Wait() {builtin:?}, {other:?} {theirs:?}");
    let (ours, builtin, theirs) = (median(ours), median(builtin), median(theirs));
    println!("median release after a hang-up: ours {ours:?}, Wait() {builtin:?}, {other:?} {theirs:?}");
    // As soon as Asterisk's own hang-up-aware Wait(), give or take the noise.
    assert!(ours <= builtin * 4 + 2 * MS, "ours {ours:?} against Wait() {builtin:?}");
    if other == Implementation::Reference {
        assert!(ours * 4 < theirs, "ours {ours:?} is not well before the C module's {theirs:?}");
    }
}

// ------------------------------------------------- 9. answered call with audio

fn answered_with_audio(imp: Implementation) {
    // Playtones is a generator: without a timing module nothing drives it and
    // no audio would reach the broadcast channel.
    let ast = Asterisk::start(
        AsteriskConfig::new(imp.broadcaster()).dialplan(DIALPLAN).load("res_timing_timerfd.so").label(&format!("{imp:?}")),
    );
    let _app = ast.connect_app("idle");
    let mark = ast.log_mark();
    let id = ast.originate(OriginateSpec::new("200", "incoming").caller_context("tones"));
    assert_eq!(result(&ast, &id, 10 * SECOND).as_deref(), Some("TIMEOUT"));
    let log = logged_through_the_result(&ast, mark, &id);
    let long = log.lines().filter(|l| l.contains("Exceptionally long")).count();
    println!("{imp:?}: 'Exceptionally long' lines during a 5 s answered broadcast with audio: {long}");
    match imp {
        // Ours reads and drops the frames while it waits.
        Implementation::Ours => assert_eq!(long, 0, "{log}"),
        // The reference does not read the channel while it waits, so its queue
        // overflows; this also proves audio reached the broadcast channel.
        Implementation::Reference => assert!(long > 0, "no audio reached the channel? {log}"),
    }
}

#[test]
fn answered_with_audio_ours() {
    answered_with_audio(Implementation::Ours);
}

#[test]
fn answered_with_audio_reference() {
    answered_with_audio(reference_or_ours());
}

// --------------------------------------------- 10. second broadcast same channel

fn second_broadcast(imp: Implementation) {
    let ast = boot(imp);
    let app = ast.connect_app("second");
    let id = ast.originate(OriginateSpec::new("300", "incoming"));
    assert_eq!(ast.wait_for_global(&format!("FIRST_{id}"), 5 * SECOND).as_deref(), Some("TIMEOUT"));
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        let n = app.events().iter().filter(|(_, v)| v["type"] == "CallBroadcast" && v["channel"]["id"] == id.as_str()).count();
        if n >= 2 {
            assert_eq!(n, 2);
            break;
        }
        assert!(Instant::now() < deadline, "second CallBroadcast not received ({n})");
        std::thread::sleep(10 * MS);
    }
    let r = app.claim(&id);
    assert_eq!(r.status, 204, "{}", r.body);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));
}

#[test]
fn second_broadcast_ours() {
    second_broadcast(Implementation::Ours);
}

#[test]
fn second_broadcast_reference() {
    second_broadcast(reference_or_ours());
}

// ------------------------------------------------ 11. unload while waiting

/// The module's use count (`module show`): Asterisk counts one while a
/// dialplan application of the module runs, the module one per broadcast.
fn use_count(ast: &Asterisk) -> u32 {
    let line = module_line(ast, OURS).expect("module listed");
    let columns: Vec<&str> = line.split_whitespace().collect();
    let running = columns.iter().position(|c| *c == "Running").unwrap_or_else(|| panic!("{line}"));
    columns[running - 1].parse().unwrap_or_else(|_| panic!("use count in {line}"))
}

/// `module unload` is refused while a broadcast waits and while the winner's
/// Stasis session runs, and succeeds once neither is left. The module's own
/// use count covers both (Asterisk's, for the application running, would
/// refuse a plain unload by itself).
#[test]
fn unload_refused_while_a_broadcast_waits_ours() {
    let ast = boot(Implementation::Ours);
    let app = ast.connect_app("waiter");
    assert_eq!(use_count(&ast), 0);
    let id = call(&ast, "10000");
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(use_count(&ast), 2, "Asterisk's for the application and the module's for the broadcast");
    let out = ast.cli(&format!("module unload {OURS}"));
    println!("unload while waiting: {out}");
    assert!(!out.contains("Unloaded"), "{out}");
    assert!(is_running(&ast, OURS), "still running after refused unload");
    assert!(ast.is_running());
    assert_eq!(ast.hangup(&id).status, 204);
    assert!(ast.wait_for_global(&format!("HRESULT_{id}"), 5 * SECOND).is_some());

    // Refused too while the winner's Stasis session runs.
    let id = call(&ast, "10000");
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(app.claim(&id).status, 204);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(use_count(&ast), 2, "the broadcast still counts during the winner's session");
    let out = ast.cli(&format!("module unload {OURS}"));
    println!("unload during the winner's Stasis session: {out}");
    assert!(!out.contains("Unloaded"), "{out}");
    assert!(is_running(&ast, OURS), "still running after refused unload");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id, 5 * SECOND).as_deref(), Some("SUCCESS"));
    assert_eq!(use_count(&ast), 0);

    let deadline = Instant::now() + 5 * SECOND;
    let out = loop {
        let out = ast.cli(&format!("module unload {OURS}"));
        if out.contains("Unloaded") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(100 * MS);
    };
    assert!(out.contains("Unloaded"), "{out}");
    assert!(!is_running(&ast, OURS));
    assert!(ast.is_running());
}

