//! The module in a real Asterisk 22.10.1: it loads, unloads and loads again
//! without growing Asterisk, and a panic inside it is caught and logged.

mod common;

use common::*;

const OURS: &str = "res_stasis_broadcast_rs.so";

#[test]
fn module_loads_and_runs() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()));
    let line = module_line(&asterisk, OURS).expect("module listed");
    assert!(line.contains("Running"), "{line}");
    assert!(line.contains("extended"), "support level: {line}");
    assert!(asterisk.cli("core show applications like StasisBroadcast").contains("StasisBroadcast"));
    assert!(!asterisk.log().contains("did not register itself"));
}

#[test]
fn fifty_unload_load_cycles_keep_asterisk_up_and_small() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()).dialplan(TIMEOUT_DIALPLAN));
    let cycle = |n: usize| {
        let unloaded = asterisk.cli(&format!("module unload {OURS}"));
        assert!(unloaded.contains("Unloaded"), "cycle {n}: {unloaded}");
        let loaded = asterisk.cli(&format!("module load {OURS}"));
        assert!(loaded.contains("Loaded"), "cycle {n}: {loaded}");
        assert!(is_running(&asterisk, OURS), "cycle {n}: not running after load");
    };
    // What a load allocates and unload frees still leaves pages resident:
    // each `asterisk -rx` command runs in a new thread, which glibc gives one
    // of its per-thread malloc arenas (up to 8 per core; with none free, the
    // next in turn), and an arena keeps the pages its peak touched (glibc
    // trims an arena's heap only when 128 KiB or more is free at its top).
    // So the first cycles grow Asterisk by (arenas) x (what one load touches
    // at once) and then it stays flat: about 16 x 24 KiB for this module on
    // 2 cores (16 x 8 KiB for app_playtones.so), 16 x ~100 KiB when load
    // still parsed ARI's events.json into a serde_json::Value. The first
    // window bounds that warm-up; a leak grows every cycle, so the second
    // window, after the arenas have had their turn, bounds it per cycle
    // (under 10 KiB). Leaks the size of a few allocations are
    // tests/valgrind.rs's to find.
    for n in 0..5 {
        cycle(n);
    }
    let start = asterisk.rss_kib().expect("resident memory of Asterisk");
    for n in 0..50 {
        cycle(n);
    }
    let middle = asterisk.rss_kib().expect("resident memory of Asterisk");
    for n in 50..100 {
        cycle(n);
    }
    let end = asterisk.rss_kib().expect("resident memory of Asterisk");
    let (warm_up, steady) = (middle.saturating_sub(start), end.saturating_sub(middle));
    println!(
        "unload/load x50 twice: Asterisk RSS {start} KiB -> {middle} KiB -> {end} KiB \
         (growth {warm_up} KiB, then {steady} KiB)"
    );
    assert!(warm_up < 2048, "resident memory grew by {warm_up} KiB over the first 50 cycles");
    assert!(steady < 512, "resident memory grew by {steady} KiB over the next 50 cycles");
    assert!(asterisk.is_running());
    assert_eq!(asterisk.ari().get("/asterisk/info").status, 200, "ARI still answers");
    let log = asterisk.log();
    assert!(!log.contains("did not register itself"), "a reload found the module still mapped");
    assert!(!log.contains("could not be completely unloaded"));
    // And it still works after all that.
    let asterisk_call = asterisk.originate(OriginateSpec::new("100", "incoming"));
    let status = asterisk.wait_for_global(&format!("RESULT_{asterisk_call}"), 10 * SECOND);
    assert_eq!(status.as_deref(), Some("TIMEOUT"));
}

pub const TIMEOUT_DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(100)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

/// A call offered for 5 s; the status lands in `RESULT_<uniqueid>`.
const CLAIM_DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(5000)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

const PANIC_DIALPLAN: &str = "[incoming]
exten => 100,1,Set(STASISBROADCAST_INJECT_PANIC=${INJECT})
 same => n,StasisBroadcast(100)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => h,1,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
";

#[test]
fn a_panic_in_the_application_is_logged_and_fails_only_that_call() {
    let asterisk = Asterisk::start(AsteriskConfig::new(Broadcaster::Ours(fault_module())).dialplan(PANIC_DIALPLAN));
    let mark = asterisk.log_mark();
    let call = asterisk.originate(OriginateSpec::new("100", "incoming").var("INJECT", "yes"));
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{call}"), 10 * SECOND).as_deref(), Some("FAILED"));
    assert!(asterisk.wait_for_log_since(mark, "panic: fault injection: StasisBroadcast asked to panic", 5 * SECOND));
    let log = asterisk.log_since(mark);
    assert!(log.contains("ERROR"), "logged at ERROR:\n{log}");
    assert!(log.contains("panic in StasisBroadcast"), "{log}");
    assert!(asterisk.is_running(), "Asterisk survived the panic");

    // The next call through the same entry point works.
    let call = asterisk.originate(OriginateSpec::new("100", "incoming"));
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{call}"), 10 * SECOND).as_deref(), Some("TIMEOUT"));
}

#[test]
fn a_panic_in_a_claim_answers_500_and_the_next_claim_works() {
    let dialplan = "[incoming]
exten => 100,1,StasisBroadcast(10000)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";
    let asterisk = Asterisk::start(AsteriskConfig::new(Broadcaster::Ours(fault_module())).dialplan(dialplan));
    let app = asterisk.connect_app("claimer");
    let call = asterisk.originate(OriginateSpec::new("100", "incoming"));
    app.wait_for_channel_event("CallBroadcast", &call, 5 * SECOND).expect("CallBroadcast");
    let mark = asterisk.log_mark();
    let panicked = asterisk.claim(&call, "inject-panic");
    assert_eq!(panicked.status, 500, "{}", panicked.body);
    // ARI's own route calls the optional API where it exists (20.20+/22.10+/23.4+);
    // elsewhere the module's own HTTP handler serves the claim.
    let entry_point = if asterisk.runtime().at_least(C_IMPLEMENTATION_RELEASES) {
        "stasis_app_claim_channel"
    } else {
        "claim endpoint"
    };
    assert!(asterisk.wait_for_log_since(mark, &format!("panic in {entry_point}"), 5 * SECOND), "{}", asterisk.log_since(mark));
    assert!(asterisk.is_running());
    assert_eq!(asterisk.claim(&call, "claimer").status, 204);
    app.wait_for_channel_event("StasisStart", &call, 5 * SECOND).expect("StasisStart after the claim");
    assert_eq!(asterisk.continue_channel(&call).status, 204);
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{call}"), 10 * SECOND).as_deref(), Some("SUCCESS"));
}

/// On a release without the C implementation (asserted by `reference_present`):
/// ours runs, loading the C module by hand finds nothing, and ours still
/// answers the call.
fn without_the_c_modules_ours_stays_in_charge() {
    let asterisk = Asterisk::start(AsteriskConfig::new(ours()).dialplan(TIMEOUT_DIALPLAN));
    assert!(is_running(&asterisk, OURS));
    for c_module in ["res_stasis_broadcast.so", "app_stasis_broadcast.so"] {
        let out = asterisk.cli(&format!("module load {c_module}"));
        assert!(module_line(&asterisk, c_module).is_none(), "{c_module} loaded on a release without it: {out}");
    }
    let id = asterisk.originate(OriginateSpec::new("100", "incoming"));
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).as_deref(), Some("TIMEOUT"));
}

#[test]
fn the_harness_also_boots_the_c_reference() {
    if !reference_present() {
        return without_the_c_modules_ours_stays_in_charge();
    }
    let asterisk = Asterisk::start(AsteriskConfig::new(Broadcaster::Reference).dialplan(TIMEOUT_DIALPLAN));
    assert!(is_running(&asterisk, "res_stasis_broadcast.so"));
    assert!(is_running(&asterisk, "app_stasis_broadcast.so"));
    assert!(module_line(&asterisk, OURS).is_none());
}

#[test]
fn ours_declines_beside_the_c_modules_with_a_clear_error() {
    if !reference_present() {
        return without_the_c_modules_ours_stays_in_charge();
    }
    let config = AsteriskConfig::new(Broadcaster::Reference)
        .dialplan(CLAIM_DIALPLAN)
        .module_file(OURS, our_module())
        .load(OURS)
        .tolerate_load_failures();
    let asterisk = Asterisk::start(config);
    assert!(is_running(&asterisk, "res_stasis_broadcast.so"), "the C module keeps running");
    assert!(!is_running(&asterisk, OURS), "ours must not run beside it");
    assert!(asterisk.wait_for_log("res_stasis_broadcast_rs declined: Asterisk's own C implementation is loaded", 5 * SECOND));
    let log = asterisk.log();
    assert!(log.contains("noload => res_stasis_broadcast.so"), "the error says what to put in modules.conf");
    assert!(log.contains("res_stasis_broadcast.so, app_stasis_broadcast.so"), "and which modules were found");
    // The C implementation still broadcasts and answers claims: ours did not
    // take the optional API over. Told apart by what only the C module does:
    // a claim naming an application that is not registered wins (ours, with
    // its registry and claim_policy=registered, would answer 404), and the
    // call then fails to enter Stasis.
    let agent = asterisk.connect_app("agent");
    let id = asterisk.originate(OriginateSpec::new("100", "incoming"));
    agent.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("the C module broadcast the call");
    let ghost = asterisk.claim(&id, "ghost");
    assert_eq!(ghost.status, 204, "the C module's claim: {}", ghost.body);
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{id}"), 10 * SECOND).as_deref(), Some("FAILED"));
}

#[test]
fn a_c_module_loaded_by_hand_after_ours_is_reported_when_a_call_comes() {
    if !reference_present() {
        return without_the_c_modules_ours_stays_in_charge();
    }
    let config = AsteriskConfig::new(ours()).dialplan(TIMEOUT_DIALPLAN).link_reference_modules();
    let asterisk = Asterisk::start(config);
    assert!(is_running(&asterisk, OURS));
    let out = asterisk.cli("module load res_stasis_broadcast.so");
    assert!(is_running(&asterisk, "res_stasis_broadcast.so"), "{out}");
    let mark = asterisk.log_mark();
    let id = asterisk.originate(OriginateSpec::new("100", "incoming"));
    let expected = "Asterisk's own C implementation was loaded after res_stasis_broadcast_rs (res_stasis_broadcast.so)";
    assert!(asterisk.wait_for_log_since(mark, expected, 5 * SECOND), "{}", asterisk.log_since(mark));
    let line = asterisk.log_since(mark).lines().find(|l| l.contains(expected)).unwrap_or_default().to_owned();
    assert!(line.contains("ERROR") && line.contains("Channel Local/100@incoming-"), "{line}");
    assert!(asterisk.wait_for_global(&format!("RESULT_{id}"), 5 * SECOND).is_some());
    // Once a minute at most: the next call, run to its end, logs nothing more.
    let mark = asterisk.log_mark();
    let second = asterisk.originate(OriginateSpec::new("100", "incoming"));
    assert_eq!(asterisk.wait_for_global(&format!("RESULT_{second}"), 5 * SECOND).as_deref(), Some("TIMEOUT"));
    assert!(!asterisk.log_since(mark).contains(expected), "logged again within a minute");
}
