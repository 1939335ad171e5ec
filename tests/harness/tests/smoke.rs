//! Smoke tests of the harness against the real Asterisk and the C reference modules.

use asterisk_harness::{Asterisk, AsteriskConfig, Auth, Broadcaster, OriginateSpec};
use std::time::Duration;

const INCOMING: &str = "[incoming]\n\
exten => 100,1,StasisBroadcast(2000,,a:b)\n\
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})\n\
 same => n,Hangup()\n";

#[test]
fn reference_modules_are_running() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference));
    let out = ast.cli("module show like stasis_broadcast");
    for m in ["res_stasis_broadcast.so", "app_stasis_broadcast.so"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(m) && l.contains(" Running ")),
            "{m} not Running:\n{out}"
        );
    }
    assert!(ast.rss_kib().unwrap_or(0) > 1000, "VmRSS readable");
    // Nothing noisy at boot.
    let log = ast.log();
    assert!(!log.contains("ERROR["), "errors at boot:\n{log}");
}

#[test]
fn broadcast_claim_continue_success() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference).dialplan(INCOMING));
    let app = ast.connect_app("smoke");
    let id = ast.originate(
        OriginateSpec::new("100", "incoming")
            .caller_id("5551234")
            .var("FOO", "bar"),
    );

    let (_, ev) = app
        .wait_for_type("CallBroadcast", Duration::from_secs(5))
        .expect("CallBroadcast");
    assert_eq!(
        ev["channel"]["id"],
        id.as_str(),
        "the broadcast channel is otherChannelId: {ev}"
    );
    assert_eq!(ev["called"], "100", "{ev}");
    assert_eq!(ev["caller"], "5551234", "{ev}");
    assert!(
        ev["channel"]["name"].as_str().unwrap().ends_with(";2"),
        "{ev}"
    );

    // The channel that runs the dialplan has the id we chose.
    let ch = ast.ari().get(&format!("/channels/{id}"));
    assert_eq!(ch.status, 200, "{}", ch.body);
    assert_eq!(ch.json()["dialplan"]["context"], "incoming", "{}", ch.body);
    assert_eq!(
        ch.json()["dialplan"]["app_name"],
        "StasisBroadcast",
        "{}",
        ch.body
    );
    let var = ast
        .ari()
        .get(&format!("/channels/{id}/variable?variable=FOO"));
    assert_eq!(
        var.json()["value"],
        "bar",
        "variables reach the ;2 half: {}",
        var.body
    );

    let r = app.claim(&id);
    assert_eq!(r.status, 204, "claim: {}", r.body);
    let loser = ast.claim(&id, "other");
    assert_eq!(loser.status, 409, "second claim: {}", loser.body);

    let (_, start) = app
        .wait_for_channel_event("StasisStart", &id, Duration::from_secs(5))
        .expect("StasisStart");
    assert_eq!(start["args"], serde_json::json!(["a", "b"]), "{start}");

    let c = ast.continue_channel(&id);
    assert_eq!(c.status, 204, "continue: {}", c.body);
    assert_eq!(
        ast.wait_for_global(&format!("RESULT_{id}"), Duration::from_secs(5))
            .as_deref(),
        Some("SUCCESS")
    );
    assert!(app
        .wait_for_channel_event("StasisEnd", &id, Duration::from_secs(5))
        .is_some());
    drop(app);
    let exit = ast.stop();
    assert!(exit.is_clean(), "{exit:?}");
}

#[test]
fn claim_errors_and_auth() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference));
    let http = ast.ari();
    assert_eq!(http.claim("nope", "app").status, 404);
    let r = http.post("/events/claim?channelId=x", None);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = http.request("GET", "/asterisk/info", None, &Auth::None);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some(), "{:?}", r.headers);
    let r = http.request(
        "GET",
        "/asterisk/info",
        None,
        &Auth::ApiKey("test:test".into()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn nobody_claims_timeout() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference).dialplan(
        "[incoming]\nexten => 100,1,StasisBroadcast(100)\n same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})\n same => n,Hangup()\n",
    ));
    let id = ast.originate(OriginateSpec::new("100", "incoming"));
    assert_eq!(
        ast.wait_for_global(&format!("RESULT_{id}"), Duration::from_secs(5))
            .as_deref(),
        Some("TIMEOUT")
    );
}

#[test]
fn drop_kills_asterisk() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Neither));
    let pid = ast.pid();
    let dir = ast.dir().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "asterisk",
        "chroot execs asterisk: the child pid is Asterisk's"
    );
    assert!(ast
        .cli("module show like stasis_broadcast")
        .contains("0 modules loaded"));
    assert!(ast.is_running());
    drop(ast);
    // SAFETY: kill(pid, 0) only probes for existence.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "Asterisk {pid} survived drop");
    assert!(!dir.exists(), "instance dir removed");
}

#[test]
fn app_unregisters_on_drop() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference));
    let app = ast.connect_app("gone");
    assert_eq!(ast.ari().get("/applications/gone").status, 200);
    drop(app);
    assert_ne!(ast.ari().get("/applications/gone").status, 200);
}

#[test]
fn eight_racing_claims_one_winner() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference).dialplan(INCOMING));
    let apps: Vec<_> = (0..8)
        .map(|i| ast.connect_app(&format!("racer{i}")))
        .collect();
    let id = ast.originate(OriginateSpec::new("100", "incoming"));
    for a in &apps {
        a.wait_for_channel_event("CallBroadcast", &id, Duration::from_secs(5))
            .expect("offered to every app");
    }
    let barrier = std::sync::Barrier::new(8);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = apps
            .iter()
            .map(|a| {
                let (b, id) = (&barrier, &id);
                s.spawn(move || {
                    b.wait();
                    a.claim(id).status
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&s| s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        7,
        "{statuses:?}"
    );
    let winner = apps
        .iter()
        .zip(&statuses)
        .find(|(_, &s)| s == 204)
        .unwrap()
        .0;
    winner
        .wait_for_channel_event("StasisStart", &id, Duration::from_secs(5))
        .expect("winner gets StasisStart");
    assert_eq!(ast.hangup(&id).status, 204);
    winner
        .wait_for_channel_event("StasisEnd", &id, Duration::from_secs(5))
        .expect("StasisEnd");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ast.ari().get(&format!("/channels/{id}")).status != 404 {
        assert!(std::time::Instant::now() < deadline, "channel still there");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ast.global_var(&format!("RESULT_{id}")),
        None,
        "hung up in Stasis: the dialplan does not continue"
    );
}

#[test]
fn plain_dialplan_and_stasis() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Neither).dialplan(
        "[t]\n\
         exten => 1,1,Answer()\n\
          same => n,Playtones(ring)\n\
          same => n,Wait(0.2)\n\
          same => n,StopPlaytones()\n\
          same => n,GotoIf($[\"${FOO}\" = \"x\"]?yes)\n\
          same => n,Set(GLOBAL(R_${UNIQUEID})=no)\n\
          same => n,Hangup()\n\
          same => n(yes),Stasis(plain,p1)\n\
          same => n,Set(GLOBAL(R_${UNIQUEID})=${STASISSTATUS})\n\
          same => n,Hangup()\n",
    ));
    let app = ast.connect_app("plain");
    let id = ast.originate(OriginateSpec::new("1", "t").var("FOO", "x"));
    let (_, ev) = app
        .wait_for_channel_event("StasisStart", &id, Duration::from_secs(5))
        .expect("StasisStart");
    assert_eq!(ev["args"], serde_json::json!(["p1"]));
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(
        ast.wait_for_global(&format!("R_{id}"), Duration::from_secs(5))
            .as_deref(),
        Some("SUCCESS")
    );
    let id2 = ast.originate(OriginateSpec::new("1", "t"));
    assert_eq!(
        ast.wait_for_global(&format!("R_{id2}"), Duration::from_secs(5))
            .as_deref(),
        Some("no")
    );
    assert!(
        ast.log().contains("Executing [1@t:2] PlayTones("),
        "dialplan ran PlayTones"
    );
    assert!(
        !ast.log().contains("Unable to start playtones"),
        "{}",
        ast.log()
    );
    assert!(!ast.log().contains("ERROR["), "{}", ast.log());
}

#[test]
fn channel_id_prefix_of_live_channel_is_refused() {
    // Asterisk quirk the harness works around with fixed-width ids: a new
    // channel id that is a prefix of a live channel's id is refused.
    let ast = Asterisk::start(
        AsteriskConfig::new(Broadcaster::Neither)
            .dialplan("[t]\nexten => 1,1,Answer()\n same => n,Wait(10)\n"),
    );
    let spec = |other: &str, one: &str| {
        let mut s = OriginateSpec::new("1", "t").other_channel_id(other);
        s.channel_id = Some(one.into());
        s
    };
    ast.try_originate(spec("abcdef", "q1")).expect("first");
    let r = ast
        .try_originate(spec("abc", "q2"))
        .expect_err("prefix of a live id refused");
    assert_eq!(r.status, 409, "{}", r.body);
    let r = ast.try_originate(spec("abcdefgh", "q3"));
    eprintln!(
        "longer id with a live id as prefix: {}",
        r.map(|o| o.response.status).unwrap_or_else(|r| r.status)
    );
}

#[test]
fn take_events_hands_out_each_event_once_in_order() {
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Neither).dialplan(
        "[t]\n\
         exten => 1,1,Stasis(stream,first)\n\
          same => n,Stasis(stream,second)\n\
          same => n,Hangup()\n",
    ));
    let app = ast.connect_app("stream");
    assert!(
        app.take_events(Duration::from_millis(100)).is_empty(),
        "nothing before the call"
    );
    let id = ast.originate(OriginateSpec::new("1", "t"));
    let mut taken = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let batch = app.take_events(Duration::from_millis(200));
        for (_, ev) in &batch {
            if ev["type"] == "StasisStart" {
                assert_eq!(ast.continue_channel(&id).status, 204);
            }
        }
        taken.extend(batch);
        if taken
            .iter()
            .filter(|(_, v)| v["type"] == "StasisEnd")
            .count()
            == 2
        {
            break;
        }
    }
    let starts: Vec<&serde_json::Value> = taken
        .iter()
        .filter(|(_, v)| v["type"] == "StasisStart")
        .map(|(_, v)| &v["args"])
        .collect();
    assert_eq!(
        starts,
        [
            &serde_json::json!(["first"]),
            &serde_json::json!(["second"])
        ],
        "both StasisStart, once each, in order"
    );
    assert!(taken.windows(2).all(|w| w[0].0 <= w[1].0), "arrival order");
    assert!(app.events().is_empty(), "taken events are no longer stored");
}
