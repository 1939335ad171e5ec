//! `make demo`: boots a real Asterisk with res_stasis_broadcast_rs.so, connects
//! three ARI claimants, places calls through `StasisBroadcast()` and shows who
//! won each one. Exits non-zero if anything is not as it should be.
//!
//! Module path: `STASIS_BROADCAST_MODULE`, else `./res_stasis_broadcast_rs.so`.

#[path = "claimant.rs"]
mod claimant;

use asterisk_harness::{Asterisk, AsteriskConfig, Broadcaster, OriginateSpec};
use claimant::{Attempt, Claimant, Policy};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DIALPLAN: &str = "\
[incoming]
; 101..198: offered to the applications whose name starts with fast- or slow-
exten => _1XX,1,StasisBroadcast(1500,^(fast|slow)-,demo:${EXTEN})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
; 199: no application matches, so nobody can claim it: TIMEOUT, then the fallback
exten => 199,1,StasisBroadcast(700,^nobody$)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Playtones(congestion)
 same => n,Wait(0.1)
 same => n,Hangup()
";

const CALLS: usize = 12;
const CONCURRENT: usize = 4;
const RESULT_DEADLINE: Duration = Duration::from_secs(5);

struct Call {
    exten: String,
    id: String,
    status: Option<String>,
}

fn main() {
    let started = Instant::now();
    let code = run();
    println!("\ndemo finished in {:.1} s: {}", started.elapsed().as_secs_f64(), if code == 0 { "OK" } else { "FAILED" });
    std::process::exit(code);
}

fn run() -> i32 {
    let module = std::env::var_os("STASIS_BROADCAST_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./res_stasis_broadcast_rs.so"));
    let module = std::fs::canonicalize(&module).unwrap_or_else(|e| {
        eprintln!("demo: module {}: {e} (run `make` first, or set STASIS_BROADCAST_MODULE)", module.display());
        std::process::exit(2)
    });

    println!("== Booting Asterisk with {}", module.display());
    let ast = Asterisk::start(AsteriskConfig::new(Broadcaster::Ours(module)).dialplan(DIALPLAN).label("demo"));
    println!("Asterisk pid {}, ARI at {}", ast.pid(), ast.base_url());
    print!("{}", indent(&ast.cli("module show like res_stasis_broadcast_rs")));
    println!("Dialplan:\n{}", indent(DIALPLAN));

    println!("== Connecting ARI applications");
    let fast = Claimant::start(
        ast.connect_app("fast-claimer"),
        ast.ari(),
        Policy { delay_ms: 0..=0, hold: Duration::from_millis(150), verbose: true },
    );
    let slow = Claimant::start(
        ast.connect_app("slow-claimer"),
        ast.ari(),
        Policy { delay_ms: 30..=80, hold: Duration::from_millis(150), verbose: true },
    );
    let filtered = Claimant::start(
        ast.connect_app("filtered-out"),
        ast.ari(),
        Policy { delay_ms: 0..=0, hold: Duration::from_millis(0), verbose: true },
    );
    let apps = ast.ari().get("/applications").json();
    let names: Vec<&str> = apps.as_array().into_iter().flatten().filter_map(|a| a["name"].as_str()).collect();
    println!("  applications registered: {}", names.join(", "));
    println!("  fast-claimer claims at once, slow-claimer after 30-80 ms, filtered-out does not match ^(fast|slow)-\n");

    println!("== Placing {CALLS} calls to 101..{} ({CONCURRENT} at a time), then one to 199", 100 + CALLS);
    let mut calls: Vec<Call> = Vec::new();
    let extens: Vec<String> = (1..=CALLS).map(|n| format!("{}", 100 + n)).collect();
    for wave in extens.chunks(CONCURRENT) {
        let ids: Vec<(String, String)> = wave
            .iter()
            .map(|e| (e.clone(), ast.originate(OriginateSpec::new(e, "incoming").caller_id(&format!("555{e}")))))
            .collect();
        for (exten, id) in ids {
            let status = ast.wait_for_global(&format!("RESULT_{id}"), RESULT_DEADLINE);
            calls.push(Call { exten, id, status });
        }
    }
    println!("  call to 199 (filter ^nobody$, timeout 700 ms)");
    let t = Instant::now();
    let id = ast.originate(OriginateSpec::new("199", "incoming").caller_id("555199"));
    let status = ast.wait_for_global(&format!("RESULT_{id}"), RESULT_DEADLINE);
    println!("  199 finished after {} ms with {}", t.elapsed().as_millis(), status.as_deref().unwrap_or("(no status)"));
    calls.push(Call { exten: "199".into(), id, status });

    // Leave time for any last claim in flight, then stop the claimants.
    std::thread::sleep(Duration::from_millis(100));
    let fast_log = fast.stop();
    let slow_log = slow.stop();
    let filtered_log = filtered.stop();
    let broadcasts = ast.cli("stasis broadcast show broadcasts");

    // ---- Table ----
    let logs: [(&str, &[Attempt]); 3] = [("fast-claimer", &fast_log), ("slow-claimer", &slow_log), ("filtered-out", &filtered_log)];
    let mut problems: Vec<String> = Vec::new();
    println!("\n== Results");
    println!(
        "{:<5} {:<22} {:<27} {:<13} {:>12}  {:<20} STASISSTATUS",
        "exten", "channel id", "offered to", "winner", "claim->SS ms", "other claims"
    );
    let (mut claimed, mut timeouts) = (0, 0);
    for call in &calls {
        let mine: Vec<(&str, &Attempt)> =
            logs.iter().filter_map(|(n, l)| l.iter().find(|a| a.channel_id == call.id).map(|a| (*n, a))).collect();
        let offered: Vec<&str> = mine.iter().map(|(n, _)| *n).collect();
        let winners: Vec<&(&str, &Attempt)> = mine.iter().filter(|(_, a)| a.claim_status == Some(204)).collect();
        let winner = winners.first();
        let latency = winner
            .and_then(|(_, a)| Some(a.stasis_start_at?.saturating_duration_since(a.claim_sent_at?).as_secs_f64() * 1000.0))
            .map(|ms| format!("{ms:.2}"))
            .unwrap_or_else(|| "-".into());
        let others: Vec<String> = mine
            .iter()
            .filter(|(_, a)| a.claim_status != Some(204))
            .map(|(n, a)| format!("{n} {}", a.claim_status.map(|s| s.to_string()).unwrap_or_else(|| "none".into())))
            .collect();
        let status = call.status.clone().unwrap_or_else(|| "(none)".into());
        println!(
            "{:<5} {:<22} {:<27} {:<13} {:>12}  {:<20} {}",
            call.exten,
            call.id,
            if offered.is_empty() { "(nobody)".into() } else { offered.join(",") },
            winner.map(|(n, _)| *n).unwrap_or("-"),
            latency,
            if others.is_empty() { "-".into() } else { others.join(",") },
            status
        );

        // Checks.
        if call.status.is_none() {
            problems.push(format!("{}: no final STASISSTATUS within {RESULT_DEADLINE:?}", call.exten));
        }
        if winners.len() > 1 {
            problems.push(format!("{}: {} claims got 204", call.exten, winners.len()));
        }
        if call.exten == "199" {
            timeouts += usize::from(call.status.as_deref() == Some("TIMEOUT"));
            if call.status.as_deref() != Some("TIMEOUT") {
                problems.push(format!("199: STASISSTATUS {status}, expected TIMEOUT"));
            }
            if !offered.is_empty() {
                problems.push(format!("199: offered to {offered:?}, expected nobody"));
            }
        } else {
            if offered != ["fast-claimer", "slow-claimer"] {
                problems.push(format!("{}: offered to {offered:?}, expected fast-claimer and slow-claimer", call.exten));
            }
            match winner {
                None => problems.push(format!("{}: nobody won the claim", call.exten)),
                Some((n, a)) => {
                    claimed += 1;
                    if a.stasis_start_at.is_none() {
                        problems.push(format!("{}: {n} won but got no StasisStart", call.exten));
                    }
                    if a.continue_status != Some(204) {
                        problems.push(format!("{}: continue answered {:?}", call.exten, a.continue_status));
                    }
                }
            }
            if call.status.as_deref() != Some("SUCCESS") {
                problems.push(format!("{}: claimed call ended with STASISSTATUS {status}, expected SUCCESS", call.exten));
            }
        }
    }
    let filtered_count = filtered_log.len();
    if filtered_count != 0 {
        problems.push(format!("filtered-out received {filtered_count} CallBroadcast, expected 0"));
    }
    let losses_409: usize = logs.iter().map(|(_, l)| l.iter().filter(|a| a.claim_status == Some(409)).count()).sum();
    println!(
        "\n{} calls: {claimed} claimed (fast-claimer won {}, slow-claimer won {}), {timeouts} timeout(s), {losses_409} claim(s) lost with 409; \
         filtered-out received {filtered_count} CallBroadcast",
        calls.len(),
        fast_log.iter().filter(|a| a.claim_status == Some(204)).count(),
        slow_log.iter().filter(|a| a.claim_status == Some(204)).count(),
    );

    println!("\n== stasis broadcast show broadcasts");
    print!("{}", indent(&broadcasts));
    if !broadcasts.contains("0 active broadcast(s)") {
        problems.push("broadcasts still active at the end".into());
    }

    println!("\n== Stopping Asterisk");
    let exit = ast.stop();
    println!("  Asterisk {}{}", exit.status, if exit.forced { " (killed after the grace period)" } else { "" });
    if !exit.is_clean() {
        problems.push(format!("Asterisk did not stop cleanly: {exit:?}"));
    }

    if problems.is_empty() {
        0
    } else {
        println!("\nPROBLEMS:");
        for p in &problems {
            println!("  - {p}");
        }
        1
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
