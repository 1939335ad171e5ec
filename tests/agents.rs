//! The example agents in examples/agents (Node.js on ari-client 2.2.0, Python
//! on aiohttp) against real Asterisk servers: one, then two with their own
//! entity ids, then both agents racing on two.
//!
//! Each agent is started as a user would start it, connects to every server,
//! and prints one JSON line per thing it did. For every call this file checks
//! what the agents say (exactly one won, every claim went to the server named
//! by `asterisk_id`, the winner answered, played and hung up there) against
//! what Asterisk saw: the dialplan's globals (the other half of the call was
//! answered; `STASISSTATUS` and the hang-up cause), an observer application
//! subscribed to everything (the playback started and finished on that
//! channel, nothing about it on the other server) and each server's counters.
//! Then the agents are stopped with SIGTERM and must exit 0.
//!
//! Needs `make node-deps` and `make py-deps` (`make test` runs both).

mod common;

use common::child::*;
use common::servers::*;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ARI_CLIENT_VERSION: &str = "2.2.0";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Node,
    Python,
}

fn top() -> &'static Path {
    Path::new(REPO)
}

/// Where `make py-deps` puts the virtualenv.
fn python() -> PathBuf {
    top().join("target/python-venv/bin/python")
}

impl Lang {
    /// The ARI application the agent registers (contains `agent`, so the dialplan's filter offers it calls).
    fn app(self) -> &'static str {
        match self {
            Lang::Node => "node-agent",
            Lang::Python => "python-agent",
        }
    }

    fn command(self) -> Command {
        let dir = top().join("examples/agents");
        let mut command = match self {
            Lang::Node => {
                let mut c = Command::new("node");
                c.arg(dir.join("node/agent.js")).current_dir(dir.join("node"));
                c
            }
            Lang::Python => {
                let mut c = Command::new(python());
                c.arg(dir.join("python/agent.py")).current_dir(dir.join("python"));
                c
            }
        };
        command.args(["--app", self.app(), "--user", "test", "--password", "test"]);
        command
    }

    /// Fails (never skips) when the runtime or the pinned packages are missing.
    fn require(self) {
        match self {
            Lang::Node => {
                let version = Command::new("node").arg("--version").output();
                assert!(version.is_ok_and(|v| v.status.success()), "node not found: run `make node-deps`");
                let manifest = top().join("examples/agents/node/node_modules/ari-client/package.json");
                let text = std::fs::read_to_string(&manifest)
                    .unwrap_or_else(|e| panic!("{} ({e}): run `make node-deps`", manifest.display()));
                let installed: Value = serde_json::from_str(&text).expect("ari-client's package.json");
                assert_eq!(installed["version"], ARI_CLIENT_VERSION, "ari-client version in examples/agents/node: run `make node-deps`");
            }
            Lang::Python => {
                let pinned = std::fs::read_to_string(top().join("examples/agents/python/requirements.txt"))
                    .expect("requirements.txt")
                    .lines()
                    .find_map(|l| l.strip_prefix("aiohttp==").map(str::to_owned))
                    .expect("aiohttp pinned in requirements.txt");
                let out = Command::new(python()).args(["-c", "import aiohttp; print(aiohttp.__version__)"]).output();
                let installed = out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
                assert_eq!(installed.as_deref(), Some(pinned.as_str()), "aiohttp in {}: run `make py-deps`", python().display());
            }
        }
    }
}

/// A running agent: its language and the process (see `JsonLinesChild`
/// for how it is stopped, also when a test fails).
struct Agent {
    lang: Lang,
    process: JsonLinesChild,
}

impl Agent {
    fn spawn(lang: Lang, urls: &[String]) -> Agent {
        let mut command = lang.command();
        command.args(urls);
        Agent { lang, process: JsonLinesChild::spawn(&format!("{lang:?} agent"), command) }
    }

    fn has_exited(&self) -> bool {
        self.process.has_exited()
    }
}

impl std::ops::Deref for Agent {
    type Target = JsonLinesChild;
    fn deref(&self) -> &JsonLinesChild {
        &self.process
    }
}

/// Starts `langs` against `server_count` servers, places `calls_per_server`
/// calls on each (interleaved) and checks every call as the file header says.
fn serve_calls(label: &str, langs: &[Lang], server_count: usize, calls_per_server: usize) {
    for lang in langs {
        lang.require();
    }
    let servers = start_servers(server_count, label);
    let urls: Vec<String> = servers.iter().map(|s| s.asterisk.base_url()).collect();
    let observers: Vec<AriApp> = servers.iter().map(|s| s.asterisk.connect_app_with("observer", "api_key=test:test&subscribeAll=true")).collect();

    let started = Instant::now();
    let agents: Vec<Agent> = langs.iter().map(|&lang| Agent::spawn(lang, &urls)).collect();
    for agent in &agents {
        agent.wait_until("connected to every server", Duration::from_secs(30), |lines| {
            urls.iter().all(|u| lines.iter().any(|v| v["event"] == "connected" && v["server"] == u.as_str()))
        });
        let learnt = agent.lines().into_iter().find(|v| v["event"] == "servers").expect("a servers line");
        assert_eq!(learnt["servers"], json!(routing_table(&servers)), "{:?} agent: asterisk_id → server learnt at start", agent.lang);
        for server in &servers {
            let deadline = Instant::now() + Duration::from_secs(10);
            while server.asterisk.ari().get(&format!("/applications/{}", agent.lang.app())).status != 200 {
                assert!(Instant::now() < deadline, "{} not registered on {}\n{}", agent.lang.app(), server.entity_id, agent.transcript());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let connected = started.elapsed();

    let calls_started = Instant::now();
    let mut calls = Vec::new();
    for _ in 0..calls_per_server {
        for (home, server) in servers.iter().enumerate() {
            let call = server.asterisk.try_originate(OriginateSpec::new("100", "incoming").caller_context("answered"));
            calls.push((home, call.unwrap_or_else(|r| panic!("originate on {}: {} {}", server.entity_id, r.status, r.body))));
        }
    }
    for (n, (home_index, call)) in calls.iter().enumerate() {
        let (home, id, observer) = (&servers[*home_index], &call.id, &observers[*home_index]);
        let what = format!("call {n} ({id}) on {}", home.entity_id);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !agents.iter().any(|a| !about(&a.lines(), "hungup", id).is_empty()) {
            let all: String = agents.iter().map(|a| format!("--- {:?}\n{}", a.lang, a.transcript())).collect();
            let gone = agents.iter().any(Agent::has_exited);
            assert!(!gone && Instant::now() < deadline, "{what}: no agent hung it up{}\n{all}\n{}", if gone { " (an agent exited)" } else { "" }, home.asterisk.diagnostics());
            std::thread::sleep(Duration::from_millis(20));
        }

        // What the agents say: each claimed once, on the call's own server; one won.
        let mut winners = Vec::new();
        for agent in &agents {
            let lines = agent.lines();
            let claims = about(&lines, "claim", id);
            assert_eq!(claims.len(), 1, "{what}: {:?} agent's claims: {claims:?}", agent.lang);
            let claim = claims[0];
            assert_eq!(claim["server"], home.asterisk.base_url().as_str(), "{what}: {:?} agent claimed on the wrong server: {claim}", agent.lang);
            assert_eq!(claim["asterisk_id"], home.entity_id.as_str(), "{what}: {claim}");
            match claim["result"].as_str() {
                Some("won") => winners.push(agent),
                Some("lost") if agent.lang == Lang::Python => assert_eq!(claim["status"], 409, "{what}: {claim}"),
                Some("lost") => assert!(claim["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {claim}"),
                _ => panic!("{what}: {claim}"),
            }
        }
        assert_eq!(winners.len(), 1, "{what}: winners {:?}", winners.iter().map(|a| a.lang).collect::<Vec<_>>());
        let winner = winners[0].lines();
        for step in ["answered", "playing", "hungup"] {
            let done = about(&winner, step, id);
            assert!(done.len() == 1 && done[0]["server"] == home.asterisk.base_url().as_str(), "{what}: {step}: {done:?}");
        }
        for agent in agents.iter().filter(|a| a.lang != winners[0].lang) {
            assert!(about(&agent.lines(), "answered", id).is_empty(), "{what}: the loser {:?} answered it", agent.lang);
        }
        let playback = about(&winner, "playing", id)[0]["playback"].clone();

        // What Asterisk saw, on the call's own server.
        assert_eq!(global(&home.asterisk, &format!("ANSWERED_{}", call.local_one_id)), "yes", "{what}: answered");
        for event in ["PlaybackStarted", "PlaybackFinished"] {
            observer
                .wait_for(|e| e["type"] == event && e["playback"]["id"] == playback && mentions(e, id), Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{what}: no {event} for playback {playback}"));
        }
        // Stopped by the agent ("done"), not cut off by the hang-up ("failed"), and before it.
        observer.wait_for_channel_event("ChannelDestroyed", id, Duration::from_secs(5)).unwrap_or_else(|| panic!("{what}: never destroyed"));
        let seen: Vec<Value> = observer.events().into_iter().map(|(_, e)| e).filter(|e| mentions(e, id)).collect();
        let finished = seen.iter().position(|e| e["type"] == "PlaybackFinished").expect("seen above");
        let destroyed = seen.iter().position(|e| e["type"] == "ChannelDestroyed").expect("seen above");
        assert!(seen[finished]["playback"]["state"] == "done" && finished < destroyed, "{what}: the playback ended with the call: {seen:?}");
        assert_eq!(global(&home.asterisk, &format!("HANGUP_{id}")), "SUCCESS:16", "{what}: Stasis ran, then a normal hang-up");
        assert_eq!(home.asterisk.ari().get(&format!("/channels/{id}")).status, 404, "{what}: the channel is gone");
        for (other, watcher) in observers.iter().enumerate().filter(|(i, _)| i != home_index) {
            let seen: Vec<Value> = watcher.events().into_iter().map(|(_, e)| e).filter(|e| mentions(e, id)).collect();
            assert!(seen.is_empty(), "{what}: server {} saw events about it: {seen:?}", other + 1);
        }
    }
    let calls_took = calls_started.elapsed();

    // Each server counts its own calls, claimed where they were, none turned away as unknown.
    for (s, server) in servers.iter().enumerate() {
        let own = calls.iter().filter(|(home, _)| *home == s).count() as u64;
        let stats = server.asterisk.cli("stasis broadcast show stats");
        assert_eq!(stat(&stats, "started:"), own, "{}:\n{stats}", server.entity_id);
        assert_eq!(stat(&stats, "claimed (Stasis ran):"), own, "{}:\n{stats}", server.entity_id);
        assert_eq!(stat(&stats, "won (204):"), own, "{}:\n{stats}", server.entity_id);
        assert_eq!(stat(&stats, "rejected, already claimed (409):"), own * (langs.len() as u64 - 1), "{}:\n{stats}", server.entity_id);
        assert_eq!(stat(&stats, "rejected, no broadcast (404):"), 0, "{}:\n{stats}", server.entity_id);
    }

    let mut wins = Vec::new();
    for agent in agents {
        let lang = agent.lang;
        let (status, transcript) = agent.process.finish(Stop::Terminate);
        let all = transcript.render();
        let lines = &transcript.lines;
        let bad: Vec<&Value> = lines.iter().filter(|v| ["error", "unparsed", "disconnected"].contains(&v["event"].as_str().unwrap_or(""))).collect();
        assert!(bad.is_empty(), "{lang:?} agent reported problems: {bad:?}\n{all}");
        assert_eq!(lines.last().map(|v| &v["event"]), Some(&json!("exit")), "{lang:?} agent's last line is its clean exit\n{all}");
        assert!(status.success(), "{lang:?} agent exited with {status}\n{all}");
        wins.push((lang, lines.iter().filter(|v| v["event"] == "claim" && v["result"] == "won").count()));
    }
    println!(
        "{label}: {} calls on {server_count} server(s) served in {calls_took:?} (agents connected in {connected:?}); wins {wins:?}",
        calls.len()
    );
}

#[test]
fn node_agent_on_one_server() {
    serve_calls("node-one", &[Lang::Node], 1, 3);
}

#[test]
fn python_agent_on_one_server() {
    serve_calls("python-one", &[Lang::Python], 1, 3);
}

#[test]
fn node_agent_on_two_servers() {
    serve_calls("node-two", &[Lang::Node], 2, 2);
}

#[test]
fn python_agent_on_two_servers() {
    serve_calls("python-two", &[Lang::Python], 2, 2);
}

/// Both agents connected to both servers: every call has one winner, on its own server.
#[test]
fn node_and_python_agents_race_on_two_servers() {
    serve_calls("race-two", &[Lang::Node, Lang::Python], 2, 3);
}

/// Two servers with one entity id would make claims unroutable: the agents
/// refuse to start, saying why. (Giving one server twice is the simplest way
/// to have two answers with one id.)
#[test]
fn agents_refuse_servers_that_share_an_entity_id() {
    Lang::Node.require();
    Lang::Python.require();
    let servers = start_servers(1, "same-id");
    let url = servers[0].asterisk.base_url();
    for lang in [Lang::Node, Lang::Python] {
        let (status, transcript) = Agent::spawn(lang, &[url.clone(), format!("{url}/")]).process.finish(Stop::Wait);
        let all = transcript.render();
        assert!(!status.success(), "{lang:?} agent accepted two servers with one entity id\n{all}");
        assert!(transcript.stderr.contains("share the entity id 02:00:00:00:00:01"), "{lang:?} agent's reason\n{all}");
        assert!(!transcript.lines.iter().any(|v| v["event"] == "connected"), "{lang:?} agent connected anyway\n{all}");
        println!("{lang:?} agent refused: {}", transcript.stderr.lines().last().unwrap_or(""));
    }
}
