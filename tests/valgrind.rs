//! `module unload` leaves nothing behind: Asterisk runs under valgrind
//! memcheck, the module broadcasts well over a hundred calls (claimed, timed
//! out, hung up), serves its CLI and a reload, is unloaded, and Asterisk is
//! stopped. valgrind's report must then hold no leak record and no invalid
//! access whose stack names this module (Asterisk's own records do not count).
//!
//! Slow by nature (Asterisk under valgrind boots in tens of seconds); one test.

mod common;

use common::*;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const APP: &str = "vg";
/// How many calls are claimed; the rest time out or hang up.
const CLAIMED: usize = 110;
const TIMED_OUT: usize = 10;
const HUNG_UP: usize = 10;
/// Calls in flight at once.
const BATCH: usize = 10;

/// `100@incoming` broadcasts with `${SB}`; the status lands in `RESULT_<uniqueid>`.
const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

/// Generous: everything is 20-50 times slower under valgrind.
const WAIT: Duration = Duration::from_secs(60);

#[test]
fn unload_leaves_nothing_behind_under_valgrind() {
    let began = Instant::now();
    let ast = Asterisk::start(AsteriskConfig::new(ours()).dialplan(DIALPLAN).under_valgrind());
    eprintln!("valgrind: booted in {:?}", began.elapsed());
    let app = ast.connect_app(APP);

    // Claimed calls, BATCH at a time: offered, claimed, into Stasis, continued.
    let mut claimed = 0;
    while claimed < CLAIMED {
        let ids: Vec<String> = (0..BATCH.min(CLAIMED - claimed))
            .map(|_| ast.originate(OriginateSpec::new("100", "incoming").var("SB", "30000,^vg$,a:b,yes")))
            .collect();
        for id in &ids {
            assert!(
                app.wait_for_channel_event("CallBroadcast", id, WAIT).is_some(),
                "no CallBroadcast for {id}\n{}",
                ast.diagnostics()
            );
            let answer = app.claim(id);
            assert_eq!(answer.status, 204, "claim of {id}: {} {}", answer.status, answer.body);
            // A second claim is refused (409): the conflict path runs too.
            assert_eq!(app.claim(id).status, 409);
        }
        for id in &ids {
            assert!(app.wait_for_channel_event("StasisStart", id, WAIT).is_some(), "{id} never entered Stasis");
            assert_eq!(ast.continue_channel(id).status, 204, "continue {id}");
        }
        for id in &ids {
            assert_eq!(ast.wait_for_global(&format!("RESULT_{id}"), WAIT).as_deref(), Some("SUCCESS"), "{id}");
        }
        claimed += ids.len();
    }

    // Timeouts (and a claim that finds nothing: 404).
    let ids: Vec<String> = (0..TIMED_OUT)
        .map(|_| ast.originate(OriginateSpec::new("100", "incoming").var("SB", "100,vg")))
        .collect();
    for id in &ids {
        assert_eq!(ast.wait_for_global(&format!("RESULT_{id}"), WAIT).as_deref(), Some("TIMEOUT"), "{id}");
    }
    assert_eq!(app.claim(&ids[0]).status, 404);

    // Hang-ups while waiting.
    let ids: Vec<String> = (0..HUNG_UP)
        .map(|_| ast.originate(OriginateSpec::new("100", "incoming").var("SB", "30000")))
        .collect();
    for id in &ids {
        assert!(app.wait_for_channel_event("CallBroadcast", id, WAIT).is_some(), "no CallBroadcast for {id}");
        ast.hangup(id);
    }
    let deadline = Instant::now() + WAIT;
    while !ast.cli("stasis broadcast show broadcasts").contains("0 active broadcast(s)") {
        assert!(Instant::now() < deadline, "broadcasts left:\n{}", ast.cli("stasis broadcast show broadcasts"));
        std::thread::sleep(Duration::from_millis(200));
    }

    // The CLI and a reload allocate too.
    let stats = ast.cli("stasis broadcast show stats");
    assert!(stats.contains("won (204):"), "{stats}");
    assert!(ast.cli("stasis broadcast show settings").contains("claim_policy"));
    ast.cli(&format!("module reload {OURS}"));
    drop(app);

    let unloaded = ast.cli(&format!("module unload {OURS}"));
    let deadline = Instant::now() + WAIT;
    while module_line(&ast, OURS).is_some() {
        assert!(Instant::now() < deadline, "module not unloaded: {unloaded}\n{}", ast.diagnostics());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (exit, report) = ast.stop_with_valgrind_report();
    eprintln!("valgrind: whole run {:?}, exit {exit:?}", began.elapsed());

    let verdict = memcheck::Verdict::of(&report);
    eprintln!("valgrind: {}", verdict.summary());
    verdict.assert_clean();
}
