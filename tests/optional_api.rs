//! The optional API of stasis_app_broadcast.h, called by a C module the way
//! Asterisk's own app_stasis_broadcast.c calls it: tests/cmodule/test_broadcast_api.c,
//! built here with `cc` against the headers the module under test was built
//! with (ASTERISK_INCLUDE_DIR, else asterisk-headers/, else /usr/include) and
//! loaded into the real Asterisk next to our module.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const TEST_MODULE: &str = "test_broadcast_api.so";

/// `run` does broadcast_channel + wait + winner + stasis_app_exec + cleanup;
/// `start` only broadcast_channel (no cleanup, ever) and hangs up after `W`
/// seconds; `wait` calls wait with no broadcast; `claim` calls claim_channel.
/// Each copies its results into `API_<uniqueid>`.
const DIALPLAN: &str = "[api]
exten => run,1,BroadcastApiRun(${T})
 same => n,Set(GLOBAL(API_${UNIQUEID})=${API_START}|${API_WAIT}|${API_WINNER}|${API_EXEC})
 same => n,Hangup()
exten => start,1,BroadcastApiStart(5000)
 same => n,Set(GLOBAL(API_${UNIQUEID})=${API_START})
 same => n,Wait(${W})
 same => n,Hangup()
exten => wait,1,BroadcastApiWait(2000)
 same => n,Set(GLOBAL(API_${UNIQUEID})=${API_WAIT}|${API_WAIT_MS})
 same => n,Hangup()
exten => claim,1,BroadcastApiClaim(${CID},${CAPP})
 same => n,Set(GLOBAL(API_${UNIQUEID})=${API_CLAIM})
 same => n,Hangup()
";

/// Where build.rs takes the headers from, in the same order.
fn include_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ASTERISK_INCLUDE_DIR") {
        return PathBuf::from(dir);
    }
    let local = Path::new(REPO).join("asterisk-headers");
    if local.join("asterisk/module.h").is_file() {
        return local;
    }
    PathBuf::from("/usr/include")
}

/// Builds the C test module once per test binary.
fn test_module() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let source = Path::new(REPO).join("tests/cmodule/test_broadcast_api.c");
            let include = include_dir();
            let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cmodule-{}", std::process::id()));
            std::fs::create_dir_all(&out_dir).expect("create cmodule dir");
            let output = out_dir.join(TEST_MODULE);
            let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            let status = Command::new(&compiler)
                .args(["-shared", "-fPIC", "-O1", "-g", "-Wall", "-Werror", "-Wno-unused-function"])
                .arg(format!("-I{}", include.display()))
                .arg("-o")
                .arg(&output)
                .arg(&source)
                .status()
                .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
            assert!(status.success(), "{compiler} failed to build {} against {}", source.display(), include.display());
            output
        })
        .clone()
}

fn boot() -> Asterisk {
    boot_with(ours())
}

fn boot_with(module: Broadcaster) -> Asterisk {
    Asterisk::start(
        AsteriskConfig::new(module).dialplan(DIALPLAN).module_file(TEST_MODULE, test_module()).load(TEST_MODULE),
    )
}

fn api_result(ast: &Asterisk, id: &str, timeout: Duration) -> Option<String> {
    ast.wait_for_global(&format!("API_{id}"), timeout)
}

fn broadcasts_line(ast: &Asterisk) -> String {
    let out = ast.cli("stasis broadcast show broadcasts");
    out.lines().rev().find(|l| l.contains("active broadcast")).unwrap_or("").trim().to_owned()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// broadcast_channel, wait, winner, stasis_app_exec, cleanup: the claim made
/// over HTTP wins, the winner gets the channel, everything is cleaned up.
#[test]
fn broadcast_wait_winner_cleanup_with_a_claim() {
    let ast = boot();
    let app = ast.connect_app("alpha");
    let id = ast.originate(OriginateSpec::new("run", "api").var("T", "5000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast through the optional API");
    let r = app.claim(&id);
    assert_eq!(r.status, 204, "{}", r.body);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart for the winner");
    // While the winner holds the channel, the broadcast is still registered: 409.
    assert_eq!(ast.claim(&id, "alpha").status, 409);
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(api_result(&ast, &id, 5 * SECOND).as_deref(), Some("0|0|alpha|0"));
    wait_until("broadcast removed by cleanup", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");
    assert_eq!(ast.claim(&id, "alpha").status, 404);
}

/// Without a claim: wait returns -1 after the timeout, winner is NULL.
#[test]
fn broadcast_wait_winner_cleanup_without_a_claim() {
    let ast = boot();
    let app = ast.connect_app("alpha");
    let started = Instant::now();
    let id = ast.originate(OriginateSpec::new("run", "api").var("T", "400"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(api_result(&ast, &id, 5 * SECOND).as_deref(), Some("0|-1||"));
    assert!(started.elapsed() >= Duration::from_millis(400));
    wait_until("broadcast removed by cleanup", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");
}

/// stasis_app_claim_channel from C: 0 for the first claim, -2 once claimed,
/// -1 for a channel with no broadcast.
#[test]
fn claim_channel_return_codes() {
    let ast = boot();
    let app = ast.connect_app("alpha");
    let id = ast.originate(OriginateSpec::new("run", "api").var("T", "5000"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    let claim = |cid: &str| {
        let claimer = ast.originate(OriginateSpec::new("claim", "api").var("CID", cid).var("CAPP", "alpha"));
        api_result(&ast, &claimer, 5 * SECOND)
    };
    assert_eq!(claim(&id).as_deref(), Some("0"));
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart after a claim made from C");
    assert_eq!(claim(&id).as_deref(), Some("-2"));
    assert_eq!(claim("no-such-channel").as_deref(), Some("-1"));
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(api_result(&ast, &id, 5 * SECOND).as_deref(), Some("0|0|alpha|0"));
}

/// wait with no broadcast on the channel returns -1 at once (as upstream),
/// instead of sleeping the whole timeout.
#[test]
fn wait_without_a_broadcast_returns_at_once() {
    let ast = boot();
    let id = ast.originate(OriginateSpec::new("wait", "api"));
    let result = api_result(&ast, &id, 5 * SECOND).expect("BroadcastApiWait result");
    let (code, ms) = result.split_once('|').expect("code|ms");
    assert_eq!(code, "-1", "{result}");
    let ms: u64 = ms.parse().expect("elapsed ms");
    assert!(ms < 200, "wait without a broadcast took {ms} ms (timeout 2000)");
}

/// A caller that starts a broadcast and never cleans up: when the channel
/// goes, so does the broadcast (claims for it get 404) and the module can be
/// unloaded.
#[test]
fn a_broadcast_never_cleaned_up_goes_with_its_channel() {
    let ast = boot();
    let app = ast.connect_app("alpha");
    let id = ast.originate(OriginateSpec::new("start", "api").var("W", "1"));
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(api_result(&ast, &id, 5 * SECOND).as_deref(), Some("0"));
    assert_eq!(broadcasts_line(&ast), "1 active broadcast(s)");
    wait_until("channel gone", 5 * SECOND, || ast.ari().get(&format!("/channels/{id}")).status == 404);
    wait_until("broadcast removed with its channel", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");
    let r = ast.claim(&id, "alpha");
    assert_eq!(r.status, 404, "claim for a channel that is gone: {}", r.body);
    drop(app);
    let out = ast.cli(&format!("module unload {OURS}"));
    assert!(out.contains("Unloaded"), "module unload after an abandoned broadcast: {out}\n{}", ast.diagnostics());
    assert!(!is_running(&ast, OURS));
    assert!(ast.is_running());
}

/// While a channel carries the datastore that ties a never-cleaned-up
/// broadcast to it, the module stays loaded: the datastore holds a reference
/// to it (on top of the broadcast's own), and even a forced unload is
/// refused, since the datastore would call into the module when the channel
/// goes. Once the channel is gone, both are released and unload works.
#[test]
fn a_tied_channel_keeps_the_module_loaded() {
    let ast = boot();
    let base = use_count(&ast, OURS);
    let id = ast.originate(OriginateSpec::new("start", "api").var("W", "30"));
    assert_eq!(api_result(&ast, &id, 5 * SECOND).as_deref(), Some("0"));
    assert_eq!(use_count(&ast, OURS), base + 2, "the broadcast and its channel datastore each hold the module");
    for command in ["module unload", "module unload -f"] {
        let out = ast.cli(&format!("{command} {OURS}"));
        assert!(!out.contains("Unloaded"), "{command} while a channel is tied: {out}");
        assert!(is_running(&ast, OURS), "{command} while a channel is tied left it not running");
    }
    assert_eq!(ast.hangup(&id).status, 204);
    wait_until("broadcast removed with its channel", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");
    wait_until("use count back", 5 * SECOND, || use_count(&ast, OURS) == base);
    let out = ast.cli(&format!("module unload {OURS}"));
    assert!(out.contains("Unloaded"), "module unload once the channel is gone: {out}\n{}", ast.diagnostics());
}

/// Each function of the optional API, and the destroy callback of the
/// datastore it ties to a channel, panicking once (the fault-injection
/// build): the caller gets the function's failure value, Asterisk keeps
/// running, and the next call works.
#[test]
fn a_panic_in_each_optional_api_function_gives_its_failure_value() {
    let ast = boot_with(Broadcaster::Ours(fault_module()));
    let app = ast.connect_app("alpha");
    let panicking = |entry_point: &str, call: &dyn Fn() -> String| {
        let mark = ast.log_mark();
        inject_panic(&ast, entry_point);
        let result = call();
        assert_panic_logged(&ast, mark, entry_point);
        assert!(ast.is_running(), "{entry_point}: Asterisk died\n{}", ast.diagnostics());
        result
    };
    let run = |timeout_ms: &str| ast.originate(OriginateSpec::new("run", "api").var("T", timeout_ms));
    let result = |id: &str| api_result(&ast, id, 10 * SECOND).unwrap_or_else(|| panic!("no result for {id}"));

    // broadcast_channel: -1 (the caller goes no further), nothing offered.
    let outcome = panicking("stasis_app_broadcast_channel", &|| result(&run("5000")));
    assert_eq!(outcome, "-1|||");
    assert_eq!(app.count_type("CallBroadcast"), 0, "offered although broadcast_channel failed");

    // wait: -1 at once, not after the broadcast's 60 s; cleanup then removes it.
    let outcome = panicking("stasis_app_broadcast_wait", &|| result(&run("60000")));
    assert_eq!(outcome, "0|-1||");
    wait_until("broadcast removed by cleanup", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");

    // winner: NULL although the claim won, so the caller does not run stasis_app_exec.
    let outcome = panicking("stasis_app_broadcast_winner", &|| {
        let id = run("5000");
        app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
        assert_eq!(app.claim(&id).status, 204);
        result(&id)
    });
    assert_eq!(outcome, "0|0||");

    // claim_channel from C: -3, which res_ari_events answers with 500; the next claim wins.
    let id = run("5000");
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    let claim = || {
        let claimer = ast.originate(OriginateSpec::new("claim", "api").var("CID", &id).var("CAPP", "alpha"));
        result(&claimer)
    };
    assert_eq!(panicking("stasis_app_claim_channel", &claim), "-3");
    assert_eq!(claim(), "0");
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart after the claim");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&id), "0|0|alpha|0");

    // cleanup: does nothing; the broadcast goes with its channel instead (the datastore).
    let outcome = panicking("stasis_app_broadcast_cleanup", &|| result(&run("200")));
    assert_eq!(outcome, "0|-1||");
    wait_until("broadcast removed with its channel", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");

    // The datastore's destroy callback: nothing to return; Asterisk goes on.
    panicking("broadcast datastore destroy", &|| result(&run("200")));

    // And the whole API still works.
    let id = run("5000");
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    assert_eq!(app.claim(&id).status, 204);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&id), "0|0|alpha|0");
}

/// A forced unload while an optional-API call is inside the module and has
/// not looked for the module's state yet (the fault-injection build holds it
/// there 2 s): the unload waits for it to leave, then unloads; the call gets
/// the answer of a module that is unloading (-1); Asterisk runs on and the
/// module loads again. Without the count of calls in flight the unload
/// would unmap the code the call is still running.
#[test]
fn a_forced_unload_waits_for_an_optional_api_call_inside() {
    let ast = boot_with(Broadcaster::Ours(fault_module()));
    let mark = ast.log_mark();
    inject_delay(&ast, "stasis_app_claim_channel");
    let claimer = ast.originate(OriginateSpec::new("claim", "api").var("CID", "no-such-channel").var("CAPP", "alpha"));
    assert!(
        ast.wait_for_log_since(mark, "fault injection: stasis_app_claim_channel waits", 5 * SECOND),
        "the call never entered\n{}",
        ast.diagnostics()
    );
    let started = Instant::now();
    let out = ast.cli(&format!("module unload -f {OURS}"));
    let took = started.elapsed();
    assert!(out.contains("Unloaded"), "forced unload with a call inside: {out}\n{}", ast.diagnostics());
    assert!(took >= Duration::from_millis(1000), "the unload returned after {took:?}: it did not wait for the call");
    assert_eq!(api_result(&ast, &claimer, 5 * SECOND).as_deref(), Some("-1"));
    assert!(ast.is_running(), "{}", ast.diagnostics());
    let out = ast.cli(&format!("module load {OURS}"));
    assert!(is_running(&ast, OURS), "load after the unload: {out}");
    assert_eq!(ast.claim("no-such-channel", "alpha").status, 404, "ARI's claim route reaches the module again");
}

/// `module unload` (forced, and plain) and `module load`, over and over,
/// while C callers run the optional API in tight loops on three channels:
/// claim_channel, wait, and broadcast_channel + wait + winner + cleanup.
/// Each call gets our answer or, once the functions are withdrawn, the
/// header's stub; Asterisk never crashes; unloads succeed in the middle of
/// it (else the test would prove nothing) and the last one leaves nothing.
#[test]
fn unloading_while_optional_api_calls_run_crashes_nothing() {
    // (extension, call, the variable it sets, our success value, pause per
    // round): the broadcasting loop pauses, else a broadcast would be
    // registered nearly all the time and every unload refused.
    let loops = [
        ("claim", "BroadcastApiClaim(no-such-channel,alpha)", "API_CLAIM", "-1", ""),
        ("wait", "BroadcastApiWait(0)", "API_WAIT", "-1", ""),
        ("run", "BroadcastApiRun(0)", "API_START", "0", "Wait(0.02)"),
    ];
    let dialplan = format!("{DIALPLAN}\n[stress]\n{}", loops.iter().map(|l| stress_loop(l.0, l.1, l.2, l.3, l.4)).collect::<String>());
    let ast = Asterisk::start(
        AsteriskConfig::new(ours()).dialplan(&dialplan).module_file(TEST_MODULE, test_module()).load(TEST_MODULE),
    );
    let callers: Vec<(String, &str)> =
        loops.iter().map(|(exten, _, variable, _, _)| (ast.originate(OriginateSpec::new(exten, "stress")), *variable)).collect();
    // The loops are running (and calling ours) before the first unload.
    std::thread::sleep(Duration::from_millis(300));
    let mut unloaded = 0;
    let cycles = 12;
    for cycle in 0..cycles {
        let command = if cycle % 3 == 2 { "module unload" } else { "module unload -f" };
        let out = ast.cli(&format!("{command} {OURS}"));
        assert!(ast.is_running(), "Asterisk died on {command} (cycle {cycle}): {out}\n{}", ast.diagnostics());
        if out.contains("Unloaded") {
            unloaded += 1;
            assert!(!is_running(&ast, OURS), "cycle {cycle}: unloaded but still listed running");
            // The loops go on against the stub meanwhile.
            std::thread::sleep(Duration::from_millis(100));
            let out = ast.cli(&format!("module load {OURS}"));
            assert!(is_running(&ast, OURS), "cycle {cycle}: load again: {out}\n{}", ast.diagnostics());
        } else {
            assert!(is_running(&ast, OURS), "cycle {cycle}: refused, yet not running: {out}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ast.is_running(), "{}", ast.diagnostics());
    eprintln!("{unloaded} of {cycles} unloads succeeded while the calls ran");
    assert!(unloaded >= cycles / 3, "only {unloaded} of {cycles} unloads succeeded while the calls ran");
    assert!(!ast.log().contains("did not register itself"), "a load found the module still mapped");

    let stop = ast.ari().post("/asterisk/variable?variable=STOP&value=1", None);
    assert_eq!(stop.status, 204, "{}", stop.body);
    for (id, variable) in &callers {
        let result = api_result(&ast, id, 10 * SECOND).unwrap_or_else(|| panic!("{variable} loop gave no result"));
        let (ours, stub) = result.split_once('|').unwrap_or_else(|| panic!("{variable} loop: {result}"));
        let (ours, stub): (u64, u64) = (ours.parse().expect(&result), stub.parse().expect(&result));
        eprintln!("{variable} loop: answered by ours {ours} times, by the stub {stub} times");
        assert!(ours > 0 && stub > 0, "{variable} loop saw ours {ours} times and the stub {stub} times");
    }
    wait_until("broadcasts gone with their channels", 5 * SECOND, || broadcasts_line(&ast) == "0 active broadcast(s)");
    let out = ast.cli(&format!("module unload {OURS}"));
    assert!(out.contains("Unloaded"), "module unload once the calls stopped: {out}\n{}", ast.diagnostics());
    assert!(ast.is_running());
    let log = ast.log();
    assert!(!log.contains("panic"), "a panic was logged:\n{}", ast.diagnostics());
}

/// One optional-API call in a loop until the global STOP is set. Each result
/// must be ours (`ours`, or -1 from a module that is unloading) or the
/// header's stub (-2147483648, AST_OPTIONAL_API_UNAVAILABLE: withdrawn).
/// Counts both into `API_<uniqueid>` as `ours|stub`; any other result ends
/// the loop with `bad …`.
fn stress_loop(exten: &str, call: &str, variable: &str, ours: &str, pause: &str) -> String {
    let pause = if pause.is_empty() { String::new() } else { format!(" same => n,{pause}\n") };
    format!(
        "exten => {exten},1,Set(N_OURS=0)
 same => n,Set(N_STUB=0)
 same => n(top),{call}
 same => n,GotoIf($[\"${{{variable}}}\" = \"{ours}\" | \"${{{variable}}}\" = \"-1\"]?ours)
 same => n,GotoIf($[\"${{{variable}}}\" = \"-2147483648\"]?stub)
 same => n,Set(GLOBAL(API_${{UNIQUEID}})=bad {variable}=${{{variable}}})
 same => n,Hangup()
 same => n(ours),Set(N_OURS=$[${{N_OURS}}+1])
 same => n,Goto(next)
 same => n(stub),Set(N_STUB=$[${{N_STUB}}+1])
 same => n(next),NoOp()
{pause} same => n,GotoIf($[\"${{GLOBAL(STOP)}}\" = \"\"]?top)
 same => n,Set(GLOBAL(API_${{UNIQUEID}})=${{N_OURS}}|${{N_STUB}})
 same => n,Hangup()
"
    )
}
