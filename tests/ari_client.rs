//! A race between ARI applications written with the official `ari-client`
//! npm package (pinned at 2.2.0 in tests/node, installed by `make node-deps`),
//! on whichever Asterisk `STASIS_BROADCAST_ROOT` selects.
//!
//! `tests/node/race.js` connects three applications, each with its own
//! ari-client; each claims every `CallBroadcast` it receives with
//! `client.events.claimChannel`, and the winner sends the channel back to the
//! dialplan with `channel.continueInDialplan()` once its `StasisStart`
//! arrives. The script prints one JSON line per event; this file starts it,
//! originates calls and checks, for every call, what each application saw
//! and what the dialplan ended with. ari-client builds its models from
//! `/ari/api-docs/*.json`: a version whose description lacks `CallBroadcast`
//! or the claim operation makes it throw, which shows here as a `fatal` line
//! and a non-zero exit.

mod common;

use common::child::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const APPS: [&str; 3] = ["acl-alpha", "acl-bravo", "acl-charlie"];
const CALLS: usize = 10;
const ARI_CLIENT_VERSION: &str = "2.2.0";

/// `100@incoming` offers the call for 5 s and records what the application
/// left in `STASISSTATUS` once the winner sent the channel back.
const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(5000)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

fn node_dir() -> PathBuf {
    PathBuf::from(REPO).join("tests/node")
}

/// Fails (never skips) when Node.js or the pinned package is missing.
fn require_node_and_ari_client() {
    let version = Command::new("node").arg("--version").output().unwrap_or_else(|e| {
        panic!("node not found ({e}): run `make node-deps` (installs Node.js and tests/node's packages)")
    });
    assert!(version.status.success(), "`node --version` failed: run `make node-deps`");
    let manifest = node_dir().join("node_modules/ari-client/package.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{} missing ({e}): run `make node-deps`", manifest.display()));
    let installed: Value = serde_json::from_str(&text).expect("ari-client's package.json");
    assert_eq!(
        installed["version"], ARI_CLIENT_VERSION,
        "ari-client {} installed, the test pins {ARI_CLIENT_VERSION}: run `make node-deps`",
        installed["version"]
    );
    println!(
        "node {}, ari-client {}",
        String::from_utf8_lossy(&version.stdout).trim(),
        installed["version"].as_str().unwrap_or("?")
    );
}

/// Starts `race.js` for `apps` against `asterisk`; it exits when its stdin
/// closes, and says `fatal` if ari-client threw.
fn spawn_race(asterisk: &Asterisk, apps: &[&str]) -> JsonLinesChild {
    let mut command = Command::new("node");
    command
        .arg(node_dir().join("race.js"))
        .args([asterisk.base_url().as_str(), "test", "test"])
        .args(apps)
        .current_dir(node_dir());
    JsonLinesChild::spawn("node race.js", command).fatal_event("fatal")
}

fn race(config: AsteriskConfig) {
    require_node_and_ari_client();
    let asterisk = Asterisk::start(config.dialplan(DIALPLAN));
    println!("{}", asterisk.runtime().asterisk_version());
    let started = Instant::now();
    let node = spawn_race(&asterisk, &APPS);
    node.wait_until("every application ready", Duration::from_secs(30), |lines| {
        lines.iter().filter(|v| v["event"] == "ready").count() == APPS.len()
    });
    let ready = node.lines();
    for app in APPS {
        assert!(
            ready.iter().any(|v| v["event"] == "ready" && v["app"] == app && v["claimChannel"] == "function"),
            "{app}: not ready, or client.events.claimChannel is not a function\n{}",
            node.transcript()
        );
    }
    for app in APPS {
        let deadline = Instant::now() + Duration::from_secs(10);
        while asterisk.ari().get(&format!("/applications/{app}")).status != 200 {
            assert!(Instant::now() < deadline, "{app} not registered in Asterisk\n{}", node.transcript());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let connected = started.elapsed();

    let calls_started = Instant::now();
    let ids: Vec<String> = (0..CALLS).map(|_| asterisk.originate(OriginateSpec::new("100", "incoming"))).collect();
    for (n, id) in ids.iter().enumerate() {
        node.wait_until(&format!("call {n} ({id}): three claim results and the winner's continue"), Duration::from_secs(10), |lines| {
            about(lines, "claim", id).len() >= APPS.len() && !about(lines, "continue", id).is_empty()
        });
        let result = asterisk.wait_for_global(&format!("RESULT_{id}"), Duration::from_secs(5));
        assert_eq!(result.as_deref(), Some("SUCCESS"), "call {n} ({id}): STASISSTATUS after the winner's session\n{}", node.transcript());
    }
    let calls_took = calls_started.elapsed();

    // Exact counts only once node has exited: a late extra line cannot hide.
    let (status, transcript) = node.finish(Stop::CloseStdin);
    let lines = &transcript.lines;
    let all = transcript.render();
    let mut wins: BTreeMap<&str, usize> = APPS.iter().map(|a| (*a, 0)).collect();
    for (n, id) in ids.iter().enumerate() {
        let offered: Vec<&str> = about(lines, "CallBroadcast", id).iter().filter_map(|v| v["app"].as_str()).collect();
        let mut sorted = offered.clone();
        sorted.sort();
        assert_eq!(sorted, APPS, "call {n} ({id}): one CallBroadcast per application\n{all}");

        let claims = about(lines, "claim", id);
        let won: Vec<&&Value> = claims.iter().filter(|v| v["status"] == 204).collect();
        let lost: Vec<&&Value> = claims.iter().filter(|v| v["status"] == 409).collect();
        assert!(claims.len() == APPS.len() && won.len() == 1 && lost.len() == 2, "call {n} ({id}): claims must be one 204 and two 409: {claims:?}\n{all}");
        assert_eq!(won[0]["outcome"], "resolved", "call {n}: the 204 resolves claimChannel's promise: {}", won[0]);
        for loser in &lost {
            assert_eq!(loser["outcome"], "rejected", "call {n}: a 409 rejects claimChannel's promise: {loser}");
        }
        let winner = won[0]["app"].as_str().expect("winner app");
        let starts = about(lines, "StasisStart", id);
        assert!(starts.len() == 1 && starts[0]["app"] == winner, "call {n} ({id}): StasisStart at the winner {winner} only: {starts:?}\n{all}");
        let continued = about(lines, "continue", id);
        assert!(continued.len() == 1 && continued[0]["outcome"] == "resolved", "call {n} ({id}): the winner's continueInDialplan: {continued:?}\n{all}");
        *wins.get_mut(winner).expect("known app") += 1;
    }

    let problems: Vec<&Value> = lines.iter().filter(|v| ["fatal", "error", "unparsed"].contains(&v["event"].as_str().unwrap_or(""))).collect();
    assert!(problems.is_empty(), "node reported problems: {problems:?}\n{all}");
    assert!(!all.contains("TypeError"), "a TypeError in node's output\n{all}");
    assert_eq!(lines.last().map(|v| &v["event"]), Some(&json!("exit")), "node's last line is its clean exit\n{all}");
    assert!(status.success(), "node exited with {status}\n{all}");
    assert!(asterisk.is_running(), "Asterisk died during the race");
    println!(
        "{CALLS} calls raced by {} ari-client applications in {calls_took:?} (clients connected in {connected:?}); wins: {wins:?}",
        APPS.len()
    );
}

/// The endpoint `claim_endpoint=auto` picks for this version: ARI's own route
/// on 20.20.1+/22.10.1+/23.4.1+, the module's node in ARI's tree before.
#[test]
fn ari_client_race() {
    race(AsteriskConfig::new(ours()).label("ari-client"));
}

/// The module's claim node in ARI's tree, whatever the version (on
/// 20.20+/22.10+/23.4+ in place of ARI's own claim route).
#[test]
fn ari_client_race_module_endpoint() {
    race(
        AsteriskConfig::new(ours())
            .file("stasis_broadcast.conf", "[general]\nclaim_endpoint = module\n")
            .label("ari-client-module"),
    );
}
