//! Chaos soak: many calls against one real Asterisk, each with a randomly
//! chosen misfortune, and the invariants that must hold whatever happens.
//!
//! Knobs (environment): `SOAK_CALLS` (default 40, `make soak` sets more),
//! `SOAK_SEED` (default 1; the same seed replays the same choices),
//! `SOAK_RUNTIME_SECS` (stop starting calls after this long; no limit unless
//! set), `SOAK_VALGRIND=1` (Asterisk under valgrind memcheck; at the end the
//! module is unloaded and valgrind's report must name it in no leak and no
//! invalid access; only where the runtime has valgrind).
//!
//! Per call: at most one 204; StasisStart only for the application that got
//! it; the call ends; STASISSTATUS agrees with what happened; no 5xx.
//! At the end: no broadcast and no channel left, Asterisk still answering.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);
const RACERS: usize = 8;

const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(HRESULT_${UNIQUEID})=H:${STASISSTATUS})
";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scenario {
    Race,
    Timeout,
    CallerHangsUp,
    WinnerDrops,
    ClaimFlood,
    LeaveAndRejoin,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::Race,
    Scenario::Timeout,
    Scenario::CallerHangsUp,
    Scenario::WinnerDrops,
    Scenario::ClaimFlood,
    Scenario::LeaveAndRejoin,
];

/// The call's final status: the dialplan's (`RESULT_`) or, after a hang-up,
/// the h extension's (`HRESULT_`, prefixed `H:`).
fn final_status(ast: &Asterisk, id: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = ast.global_var(&format!("RESULT_{id}")) {
            return Some(v);
        }
        if let Some(v) = ast.global_var(&format!("HRESULT_{id}")) {
            // The dialplan sets RESULT_ before hanging up, so it may have
            // appeared since the first look: it wins.
            return Some(ast.global_var(&format!("RESULT_{id}")).unwrap_or(v));
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(10 * MS);
    }
}

fn channel_gone(ast: &Asterisk, id: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while ast.ari().get(&format!("/channels/{id}")).status != 404 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(20 * MS);
    }
    true
}

/// Unloads the module, stops Asterisk and judges valgrind's report.
fn unload_under_valgrind(ast: Asterisk) {
    let module = "res_stasis_broadcast_rs.so";
    let answer = ast.cli(&format!("module unload {module}"));
    let deadline = Instant::now() + 60 * SECOND;
    while module_line(&ast, module).is_some() {
        assert!(Instant::now() < deadline, "module not unloaded: {answer}\n{}", ast.diagnostics());
        std::thread::sleep(200 * MS);
    }
    let (exit, report) = ast.stop_with_valgrind_report();
    let verdict = memcheck::Verdict::of(&report);
    println!("soak: valgrind (Asterisk exit {exit:?}): {}", verdict.summary());
    verdict.assert_clean();
}

#[test]
fn chaos_soak() {
    let calls: usize = env_or("SOAK_CALLS", 40);
    let seed: u64 = env_or("SOAK_SEED", 1);
    let runtime: Option<Duration> = std::env::var("SOAK_RUNTIME_SECS").ok().and_then(|v| v.parse().ok()).map(Duration::from_secs);
    let valgrind = env_or("SOAK_VALGRIND", 0u8) == 1;
    // Everything runs 20-50 times slower under valgrind: waits stretch by this.
    let slow: u32 = if valgrind { 20 } else { 1 };
    let mut rng = Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let config = AsteriskConfig::new(ours())
        .dialplan(DIALPLAN)
        .load("res_timing_timerfd.so")
        .http_general("sessionlimit = 1000")
        .label("soak");
    let ast = Asterisk::start(if valgrind { config.under_valgrind() } else { config });
    let mut apps: Vec<AriApp> = (0..RACERS).map(|n| ast.connect_app(&format!("racer{n}"))).collect();
    let began = Instant::now();
    let mut outcomes: BTreeMap<(Scenario, String), usize> = BTreeMap::new();
    let mut violations: Vec<String> = Vec::new();
    let mut done = 0;

    for call in 0..calls {
        if runtime.is_some_and(|limit| began.elapsed() > limit) {
            println!("soak: SOAK_RUNTIME_SECS reached after {call} of {calls} calls");
            break;
        }
        let scenario = SCENARIOS[rng.below(SCENARIOS.len() as u64) as usize];
        let timeout_ms = match scenario {
            Scenario::Timeout => 50 + rng.below(250),
            // Long enough for every racer to claim, also under valgrind.
            _ => 3000 * slow.min(5) as u64,
        };
        let id = ast.originate(OriginateSpec::new("100", "incoming").var("SB", &format!("{timeout_ms},^racer,,yes")));
        let mut statuses: Vec<(String, u16)> = Vec::new();
        let mut hung_up = false;
        let mut continued = false;
        let offered = apps[0].wait_for_channel_event("CallBroadcast", &id, 5 * slow * SECOND).is_some();
        if !offered && scenario != Scenario::Timeout {
            violations.push(format!("call {call} ({scenario:?}) {id}: no CallBroadcast"));
        }
        let mut winner: Option<String> = None;
        match scenario {
            Scenario::Race | Scenario::LeaveAndRejoin => {
                if scenario == Scenario::LeaveAndRejoin {
                    // One racer leaves while the call is offered, and comes back to race.
                    let n = rng.below(RACERS as u64) as usize;
                    let name = apps[n].name().to_owned();
                    drop(apps.remove(n));
                    apps.insert(n, ast.connect_app(&name));
                }
                let results = race(&apps, &id);
                statuses.extend(apps.iter().zip(&results).map(|(app, r)| (app.name().to_owned(), r.status)));
            }
            Scenario::Timeout => {}
            Scenario::CallerHangsUp => {
                let delay = rng.below(300);
                let claim_too = rng.below(2) == 0;
                std::thread::scope(|scope| {
                    let http = ast.ari();
                    let id2 = id.clone();
                    scope.spawn(move || {
                        std::thread::sleep(Duration::from_millis(delay));
                        http.hangup(&id2);
                    });
                    if claim_too {
                        std::thread::sleep(Duration::from_millis(rng.below(300)));
                        let r = apps[0].claim(&id);
                        statuses.push((apps[0].name().to_owned(), r.status));
                    }
                });
                hung_up = true;
            }
            Scenario::WinnerDrops => {
                let dropper = ast.connect_app("racer-dropper");
                let r = dropper.claim(&id);
                statuses.push(("racer-dropper".into(), r.status));
                drop(dropper);
                // If it got the channel into Stasis, nobody can continue it now.
                std::thread::sleep(200 * slow * MS);
                if ast.ari().get(&format!("/channels/{id}")).status == 200 && final_status(&ast, &id, 500 * slow * MS).is_none() {
                    ast.hangup(&id);
                    hung_up = true;
                }
            }
            Scenario::ClaimFlood => {
                let http = ast.ari();
                for k in 0..10 {
                    let r = http.claim(&format!("no-such-channel-{call}-{k}"), "racer0");
                    statuses.push(("unknown-channel".into(), r.status));
                    if r.status != 404 {
                        violations.push(format!("call {call}: claim for an unknown channel got {}", r.status));
                    }
                    let r = http.claim(&id, &format!("unregistered-{k}"));
                    statuses.push(("unregistered".into(), r.status));
                    if r.status != 404 {
                        violations.push(format!("call {call}: claim by an unregistered name got {}", r.status));
                    }
                }
                let n = rng.below(RACERS as u64) as usize;
                let r = apps[n].claim(&id);
                statuses.push((apps[n].name().to_owned(), r.status));
            }
        }
        let won: Vec<&(String, u16)> = statuses.iter().filter(|(_, s)| *s == 204).collect();
        if won.len() > 1 {
            violations.push(format!("call {call} {id}: {} claims got 204: {won:?}", won.len()));
        }
        if let Some((name, s)) = statuses.iter().find(|(_, s)| *s >= 500) {
            violations.push(format!("call {call} {id}: {name} got {s}"));
        }
        if let Some((name, _)) = won.first() {
            winner = Some(name.clone());
        }
        // The winner (if still connected) gets StasisStart and lets the call go on.
        if let Some(name) = &winner {
            if let Some(app) = apps.iter().find(|a| a.name() == name) {
                if app.wait_for_channel_event("StasisStart", &id, 5 * slow * SECOND).is_some() {
                    if !hung_up {
                        continued = ast.continue_channel(&id).status == 204;
                    }
                } else if !hung_up {
                    violations.push(format!("call {call} {id}: winner {name} got no StasisStart"));
                }
            }
        }
        let status = final_status(&ast, &id, 10 * slow * SECOND);
        if status.is_none() {
            // Make sure it ends, and say that it did not by itself.
            ast.hangup(&id);
            violations.push(format!("call {call} ({scenario:?}) {id}: did not end"));
        }
        let status = status.unwrap_or_else(|| "NONE".into());
        let expected_ok = match (&winner, scenario) {
            (None, _) => status == "TIMEOUT" || status == "H:TIMEOUT",
            (Some(_), _) if continued => status == "SUCCESS",
            (Some(_), _) => matches!(status.as_str(), "SUCCESS" | "FAILED" | "H:SUCCESS" | "H:FAILED"),
        };
        if !expected_ok {
            violations.push(format!("call {call} ({scenario:?}) {id}: winner {winner:?}, continued {continued}, status {status}"));
        }
        // StasisStart only for the 204.
        for app in &apps {
            let started = app.events().iter().any(|(_, v)| v["type"] == "StasisStart" && v["channel"]["id"] == id.as_str());
            if started && winner.as_deref() != Some(app.name()) {
                violations.push(format!("call {call} {id}: StasisStart to {} which did not win", app.name()));
            }
        }
        if !channel_gone(&ast, &id, 10 * slow * SECOND) {
            ast.hangup(&id);
            violations.push(format!("call {call} {id}: channel still there"));
        }
        *outcomes.entry((scenario, status)).or_default() += 1;
        done += 1;
    }

    let elapsed = began.elapsed();
    let broadcasts = ast.cli("stasis broadcast show broadcasts");
    if !broadcasts.contains("0 active broadcast(s)") {
        violations.push(format!("broadcasts left:\n{broadcasts}"));
    }
    let channels = ast.ari().get("/channels");
    if channels.status != 200 || channels.json().as_array().is_none_or(|a| !a.is_empty()) {
        violations.push(format!("channels left: {} {}", channels.status, channels.body));
    }
    if !ast.is_running() || ast.ari().get("/asterisk/info").status != 200 {
        violations.push("Asterisk no longer answers".into());
    }
    println!("soak: seed {seed}, {done} calls in {:.1} s", elapsed.as_secs_f64());
    for ((scenario, status), n) in &outcomes {
        println!("soak:   {scenario:?} -> {status}: {n}");
    }
    println!("soak: {} invariant violation(s)", violations.len());
    assert!(violations.is_empty(), "{}\n{}", violations.join("\n"), ast.diagnostics());
    if valgrind {
        drop(apps);
        unload_under_valgrind(ast);
    }
}
