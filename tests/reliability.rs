//! Reliability scenarios from production use: an application whose WebSocket
//! has closed while it still has a channel in Stasis (registered, not active),
//! and digits the caller types while the call is being offered.

mod common;

use common::*;
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// `100` broadcasts with `${SB}`; `dtmf` answers first, so the other half
/// runs `[keys]`, which puts it in `Stasis(keyer)`, from where ARI sends the
/// digits (source-built runtimes have no app_senddtmf); `stasis` just enters
/// `Stasis(ghost)`.
const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => dtmf,1,Answer()
 same => n,StasisBroadcast(10000)
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
exten => stasis,1,Stasis(ghost)
 same => n,Hangup()

[keys]
exten => s,1,Stasis(keyer)
";

/// With a timing module, as on any production system: channels get a timer,
/// which Asterisk needs to defer DTMF safely (see host/channel.rs).
fn boot(imp: Implementation) -> Asterisk {
    Asterisk::start(
        AsteriskConfig::new(imp.broadcaster()).dialplan(DIALPLAN).load("res_timing_timerfd.so").label(&format!("{imp:?}")),
    )
}

fn stats_row(ast: &Asterisk, label: &str) -> u64 {
    let out = ast.cli("stasis broadcast show stats");
    out.lines()
        .find_map(|line| line.trim().strip_prefix(label).map(|rest| rest.trim().parse().unwrap_or(u64::MAX)))
        .unwrap_or_else(|| panic!("no '{label}' row in:\n{out}"))
}

/// An application that still has a channel in Stasis and whose WebSocket has
/// closed stays registered but inactive: Stasis would refuse it the call. Its
/// claim is refused like an unregistered one (404), the race stays open, and
/// a live application then wins with 204 and StasisStart. CallClaimed goes
/// only to applications that can still receive it.
#[test]
fn a_registered_but_inactive_application_cannot_win() {
    let ast = boot(Implementation::Ours);
    let ghost = ast.connect_app("ghost");
    let held = ast.originate(OriginateSpec::new("stasis", "incoming"));
    ghost.wait_for_channel_event("StasisStart", &held, 5 * SECOND).expect("ghost holds a channel in Stasis");
    drop(ghost);
    logged_through(&ast, 0, "Deactivating Stasis app 'ghost'");
    assert_eq!(ast.ari().get("/applications/ghost").status, 200, "ghost must still be registered (it has a channel)");

    let live = ast.connect_app("live");
    let leaver = ast.connect_app("leaver");
    let id = ast.originate(OriginateSpec::new("100", "incoming").var("SB", "8000,,,yes"));
    live.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast to live");
    leaver.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast to leaver");
    // Offered, then gone altogether (no channel keeps it registered).
    drop(leaver);
    let deadline = Instant::now() + 5 * SECOND;
    while ast.ari().get("/applications/leaver").status != 404 {
        assert!(Instant::now() < deadline, "leaver still registered");
        std::thread::sleep(20 * MS);
    }

    let policy_before = stats_row(&ast, "rejected by claim_policy (404):");
    let r = ast.claim(&id, "ghost");
    assert_eq!(r.status, 404, "claim by an inactive application: {} {}", r.status, r.body);
    assert_eq!(stats_row(&ast, "rejected by claim_policy (404):"), policy_before + 1);

    let mark = ast.log_mark();
    let r = live.claim(&id);
    assert_eq!(r.status, 204, "the race stayed open: {}", r.body);
    live.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart for the live winner");
    live.wait_for_channel_event("CallClaimed", &id, 5 * SECOND).expect("CallClaimed to the live winner");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id).as_deref(), Some("SUCCESS"));
    // CallClaimed went out before the 204, so before the dialplan set the
    // result: once that line is in the log, anything sending it logged is too.
    let log = logged_through(&ast, mark, &format!("GLOBAL(RESULT_{id})"));
    assert!(!log.contains("Stasis app 'leaver' not registered"), "CallClaimed sent to an unregistered app:\n{log}");
    assert!(!log.contains("Inactive Stasis app 'ghost' missed message"), "CallClaimed sent to an inactive app:\n{log}");
    assert!(!log.contains("not active"), "{log}");
    assert_eq!(ast.hangup(&held).status, 204);
}

/// Digits typed while the call is offered stay queued for the winner (as with
/// the C module, which does not read the channel while it waits): the winner
/// gets ChannelDtmfReceived for each in its Stasis session.
fn dtmf_kept_for_the_winner(imp: Implementation) {
    let ast = boot(imp);
    let app = ast.connect_app("agent");
    let keyer = ast.connect_app("keyer");
    let call = ast
        .try_originate(OriginateSpec::new("dtmf", "incoming").caller_context("keys"))
        .unwrap_or_else(|r| panic!("originate: {} {}", r.status, r.body));
    let id = call.id.clone();
    app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("CallBroadcast");
    keyer.wait_for_channel_event("StasisStart", &call.local_one_id, 5 * SECOND).expect("caller half in Stasis(keyer)");
    let r = ast.ari().post(&format!("/channels/{}/dtmf?dtmf=123&duration=100&between=100", call.local_one_id), None);
    assert_eq!(r.status, 204, "send DTMF: {}", r.body);
    // Then a tone, as a real call carries audio: Asterisk reads queued digits
    // one at a time (45 ms apart at least) and only when woken, which the
    // voice frames do. The broadcast drains that voice while it waits.
    let r = ast.ari().post(&format!("/channels/{}/play?media=tone:440", call.local_one_id), None);
    assert_eq!(r.status, 201, "play a tone: {}", r.body);
    // Three digits of 100 ms, 100 ms apart, then some slack for the frames to
    // reach the broadcast channel.
    std::thread::sleep(1500 * MS);
    let r = app.claim(&id);
    assert_eq!(r.status, 204, "{}", r.body);
    app.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    let deadline = Instant::now() + 5 * SECOND;
    let digits = loop {
        let digits: String = app
            .events()
            .iter()
            .filter(|(_, v)| v["type"] == "ChannelDtmfReceived" && v["channel"]["id"] == id.as_str())
            .filter_map(|(_, v)| v["digit"].as_str().map(str::to_owned))
            .collect();
        if digits.len() >= 3 || Instant::now() > deadline {
            break digits;
        }
        std::thread::sleep(20 * MS);
    };
    println!("{imp:?}: digits seen by the winner: {digits:?}");
    assert_eq!(digits, "123", "{imp:?}: DTMF typed during the broadcast must reach the winner");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id).as_deref(), Some("SUCCESS"));
}

#[test]
fn dtmf_kept_for_the_winner_ours() {
    dtmf_kept_for_the_winner(Implementation::Ours);
}

#[test]
fn dtmf_kept_for_the_winner_vs_c_module() {
    require_c_module();
    dtmf_kept_for_the_winner(Implementation::Reference);
}
