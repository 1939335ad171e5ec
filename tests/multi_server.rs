//! Two Asterisk servers and one agent: the same ARI applications connected to
//! both, calls arriving on each. A broadcast lives on the server that holds
//! the call, so the claim must go there; `CallBroadcast` names that server in
//! `asterisk_id`, which is the entity id from asterisk.conf.
//!
//! The test plays the agent itself (the example agents in other languages are
//! in tests/agents.rs): it learns asterisk_id → server from
//! `GET /ari/asterisk/info` and sends each claim where the event says.

mod common;

use common::servers::*;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const APPS: [&str; 2] = ["agent-red", "agent-blue"];
/// The server each call is placed on, in order: three calls on the first,
/// two on the second, so each server's counters can only add up to its own.
const PLACED_ON: [usize; 5] = [0, 1, 0, 1, 0];
const WAIT: Duration = Duration::from_secs(5);

#[test]
fn every_call_is_claimed_on_its_own_server() {
    let servers = start_servers(2, "multi");
    let route = routing_table(&servers);
    let started = Instant::now();
    // connections[server][app]: the same applications on every server.
    let connections: Vec<Vec<AriApp>> = servers.iter().map(|s| APPS.iter().map(|app| s.asterisk.connect_app(app)).collect()).collect();

    let mut placed: Vec<Vec<String>> = vec![Vec::new(); servers.len()];
    for (n, &home) in PLACED_ON.iter().enumerate() {
        let id = servers[home].asterisk.originate(OriginateSpec::new("100", "incoming"));
        placed[home].push(id.clone());
        let what = format!("call {n} ({id}) on server {}", home + 1);

        // Offered to both applications on its own server, which it names.
        let offers: Vec<Value> = connections[home]
            .iter()
            .map(|app| app.wait_for_channel_event("CallBroadcast", &id, WAIT).unwrap_or_else(|| panic!("{what}: no CallBroadcast at {}", app.name())).1)
            .collect();
        for offer in &offers {
            assert_eq!(offer["asterisk_id"], servers[home].entity_id.as_str(), "{what}: {offer}");
        }
        let server_url = &route[offers[0]["asterisk_id"].as_str().expect("asterisk_id")];
        let routed = servers.iter().position(|s| &s.asterisk.base_url() == server_url).expect("a known server");
        assert_eq!(routed, home, "{what}: routed by asterisk_id to server {}", routed + 1);

        // A claim sent to the other server finds no broadcast there...
        let other = &servers[1 - home].asterisk;
        let wrong = other.claim(&id, APPS[0]);
        assert_eq!(wrong.status, 404, "{what}: claim on the other server: {}", wrong.body);
        assert!(wrong.json()["message"].is_string(), "{what}: 404 body {}", wrong.body);

        // ...and leaves the race where it was: on the call's own server both
        // applications claim at once, one wins, the other is told it lost.
        let statuses: Vec<u16> = race(&connections[home], &id).iter().map(|r| r.status).collect();
        let winner = statuses.iter().position(|&s| s == 204).unwrap_or_else(|| panic!("{what}: no 204 among {statuses:?}"));
        assert_eq!(statuses.iter().filter(|&&s| s == 409).count(), 1, "{what}: {statuses:?}");
        connections[home][winner]
            .wait_for_channel_event("StasisStart", &id, WAIT)
            .unwrap_or_else(|| panic!("{what}: no StasisStart at the winner {}", APPS[winner]));
        assert_eq!(servers[home].asterisk.continue_channel(&id).status, 204, "{what}: continue");
        assert_eq!(global(&servers[home].asterisk, &format!("RESULT_{id}")), "SUCCESS", "{what}");
        let loser = &connections[home][1 - winner];
        assert!(loser.events().iter().all(|(_, e)| !(e["type"] == "StasisStart" && mentions(e, &id))), "{what}: StasisStart at the loser");
        println!("{what}: 404 on server {}, then {statuses:?} on its own; {} won", 2 - home, APPS[winner]);
    }
    let took = started.elapsed();

    // Nothing about one server's calls ever reached the other server's connections.
    for (s, apps) in connections.iter().enumerate() {
        for app in apps {
            for (_, event) in app.events() {
                let ours = placed[s].iter().any(|id| mentions(&event, id));
                let theirs = placed[1 - s].iter().any(|id| mentions(&event, id));
                assert!(!theirs || ours, "server {} sent {} an event about the other server's call: {event}", s + 1, app.name());
            }
        }
    }

    // Each server counts its own calls, plus the wrong-server claims it turned away.
    for (s, server) in servers.iter().enumerate() {
        let stats = server.asterisk.cli("stasis broadcast show stats");
        let own = placed[s].len() as u64;
        let foreign = placed[1 - s].len() as u64;
        println!("server {} ({}):\n{stats}", s + 1, server.entity_id);
        assert_eq!(stat(&stats, "started:"), own, "server {}", s + 1);
        assert_eq!(stat(&stats, "claimed (Stasis ran):"), own, "server {}", s + 1);
        assert_eq!(stat(&stats, "timed out:"), 0, "server {}", s + 1);
        assert_eq!(stat(&stats, "in progress now:"), 0, "server {}", s + 1);
        assert_eq!(stat(&stats, "won (204):"), own, "server {}", s + 1);
        assert_eq!(stat(&stats, "rejected, already claimed (409):"), own, "server {}", s + 1);
        assert_eq!(stat(&stats, "rejected, no broadcast (404):"), foreign, "server {}", s + 1);
    }
    println!("{} calls on two servers, each claimed on its own, in {took:?}", PLACED_ON.len());
}

/// A broadcast lives and dies with its server: once that server is gone a
/// claim for its call cannot be made anywhere (the other server has never
/// heard of it), and the other server goes on as before.
#[test]
fn a_server_that_goes_away_takes_only_its_own_calls() {
    let mut servers = start_servers(2, "gone");
    let second = servers.pop().expect("two servers");
    let first = servers.pop().expect("two servers");
    let on_first = first.asterisk.connect_app(APPS[0]);
    let on_second = second.asterisk.connect_app(APPS[0]);

    let id = second.asterisk.originate(OriginateSpec::new("100", "incoming"));
    let (_, offer) = on_second.wait_for_channel_event("CallBroadcast", &id, WAIT).expect("offered on the second server");
    assert_eq!(offer["asterisk_id"], second.entity_id.as_str());
    let second_url = second.asterisk.base_url();
    let exit = second.asterisk.stop();
    println!("second server stopped mid-race: {exit:?}");

    // The claim goes where asterisk_id says and fails there at connection
    // level; the other server has no broadcast for that call.
    let dead = AriHttp::new(&second_url).claim(&id, APPS[0]);
    assert_eq!(dead.status, 0, "claim to a stopped server: {} {}", dead.status, dead.body);
    println!("claim to the stopped server: {}", dead.body);
    let elsewhere = first.asterisk.claim(&id, APPS[0]);
    assert_eq!(elsewhere.status, 404, "claim for the dead server's call on the other: {}", elsewhere.body);
    let deadline = Instant::now() + WAIT;
    while on_second.is_connected() {
        assert!(Instant::now() < deadline, "the WebSocket to the stopped server stayed open");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The first server's calls are claimed as before.
    let id = first.asterisk.originate(OriginateSpec::new("100", "incoming"));
    let (_, offer) = on_first.wait_for_channel_event("CallBroadcast", &id, WAIT).expect("offered on the first server");
    assert_eq!(offer["asterisk_id"], first.entity_id.as_str());
    assert_eq!(on_first.claim(&id).status, 204);
    on_first.wait_for_channel_event("StasisStart", &id, WAIT).expect("StasisStart");
    assert_eq!(first.asterisk.continue_channel(&id).status, 204);
    assert_eq!(global(&first.asterisk, &format!("RESULT_{id}")), "SUCCESS");
    let stats = first.asterisk.cli("stasis broadcast show stats");
    assert_eq!(stat(&stats, "started:"), 1, "{stats}");
    assert_eq!(stat(&stats, "won (204):"), 1, "{stats}");
    assert_eq!(stat(&stats, "rejected, no broadcast (404):"), 1, "{stats}");
}

/// A channel id is unique on its server only (an Asterisk uniqueid is
/// `[systemname-]epoch.sequence`; without `systemname` two servers can make
/// the same one). With a call of the same id on each server, a claim sent to
/// the wrong server takes that server's call, not the one offered; routed by
/// `asterisk_id` it takes the right one.
#[test]
fn a_channel_id_names_a_call_only_together_with_its_server() {
    let servers = start_servers(2, "same-channel-id");
    let route = routing_table(&servers);
    let apps: Vec<AriApp> = servers.iter().map(|s| s.asterisk.connect_app(APPS[0])).collect();
    let id = format!("collide{}_2", std::process::id());
    for server in &servers {
        server.asterisk.originate(OriginateSpec::new("100", "incoming").other_channel_id(&id));
    }
    let offers: Vec<Value> = apps
        .iter()
        .map(|app| app.wait_for_channel_event("CallBroadcast", &id, WAIT).expect("offered on each server").1)
        .collect();

    // The first server's offer, claimed on the second server: 204, and the
    // second server's call is the one that enters Stasis.
    assert_eq!(offers[0]["asterisk_id"], servers[0].entity_id.as_str());
    assert_eq!(servers[1].asterisk.claim(&id, APPS[0]).status, 204, "misrouted claim");
    apps[1].wait_for_channel_event("StasisStart", &id, WAIT).expect("the second server's call taken");
    let first_server = apps[0].events_before_barrier(WAIT);
    assert!(!first_server.iter().any(|(_, v)| v["type"] == "StasisStart"), "the offered call was not taken: {first_server:?}");

    // Routed by asterisk_id, the claim takes the call that was offered.
    let home = &route[offers[0]["asterisk_id"].as_str().expect("asterisk_id")];
    assert_eq!(home, &servers[0].asterisk.base_url());
    assert_eq!(AriHttp::new(home).claim(&id, APPS[0]).status, 204, "claim routed by asterisk_id");
    apps[0].wait_for_channel_event("StasisStart", &id, WAIT).expect("the offered call taken");

    for server in &servers {
        assert_eq!(server.asterisk.continue_channel(&id).status, 204);
        assert_eq!(global(&server.asterisk, &format!("RESULT_{id}")), "SUCCESS");
        let stats = server.asterisk.cli("stasis broadcast show stats");
        assert_eq!((stat(&stats, "started:"), stat(&stats, "won (204):")), (1, 1), "{stats}");
    }
}
