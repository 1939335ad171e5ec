//! Operating the module: stasis_broadcast.conf and reload, the CLI commands
//! and the Prometheus metrics, each checked on a real Asterisk.

mod common;

use common::*;
use std::time::{Duration, Instant};

const OURS: &str = "res_stasis_broadcast_rs.so";
const CONF: &str = "stasis_broadcast.conf";

/// `100@incoming` runs `StasisBroadcast(${SB})`; the status lands in the
/// global `RESULT_<uniqueid>`.
const DIALPLAN: &str = "[incoming]
exten => 100,1,StasisBroadcast(${SB})
 same => n,Set(GLOBAL(RESULT_${UNIQUEID})=${STASISSTATUS})
 same => n,Hangup()
";

fn boot(conf: Option<&str>) -> Asterisk {
    let mut config = AsteriskConfig::new(ours()).dialplan(DIALPLAN);
    if let Some(conf) = conf {
        config = config.file(CONF, conf);
    }
    Asterisk::start(config)
}

fn call(ast: &Asterisk, sb: &str) -> String {
    ast.originate(OriginateSpec::new("100", "incoming").var("SB", sb))
}

/// The `show broadcasts` row of the channel whose unique id is `id`, as
/// (timeout column, state column).
fn broadcast_row(ast: &Asterisk, id: &str) -> Option<(u64, String)> {
    let name = channel_name(ast, id)?;
    let out = ast.cli("stasis broadcast show broadcasts");
    let line = out.lines().find(|line| line.starts_with(&name))?.to_owned();
    let columns: Vec<&str> = line.split_whitespace().collect();
    let timeout = columns.get(2)?.parse().ok()?;
    let state = columns[5..].join(" ");
    Some((timeout, state))
}

fn channel_name(ast: &Asterisk, id: &str) -> Option<String> {
    let response = ast.ari().get(&format!("/channels/{id}"));
    (response.status == 200).then(|| response.json()["name"].as_str().unwrap_or_default().to_owned())
}

/// Waits until `id`'s broadcast is listed, and returns its row.
fn wait_for_row(ast: &Asterisk, id: &str) -> (u64, String) {
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        if let Some(row) = broadcast_row(ast, id) {
            return row;
        }
        assert!(Instant::now() < deadline, "broadcast of {id} never listed:\n{}", ast.cli("stasis broadcast show broadcasts"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value printed after `label` in `stasis broadcast show stats`/`settings`.
fn value_after(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in:\n{text}"))
        .trim()
        .to_owned()
}

fn count(text: &str, label: &str) -> u64 {
    value_after(text, label).parse().unwrap_or_else(|_| panic!("'{label}' is not a number in:\n{text}"))
}

// ------------------------------------------------------------ configuration

#[test]
fn without_a_file_the_defaults_apply_and_a_notice_says_so() {
    let ast = boot(None);
    let log = boot_log(&ast);
    assert!(log.contains("stasis_broadcast.conf not found; using the default settings"), "{log}");
    let settings = ast.cli("stasis broadcast show settings");
    assert!(settings.contains("Settings for new broadcasts (from defaults (stasis_broadcast.conf not found))"), "{settings}");
    assert_eq!(value_after(&settings, "default_timeout"), "500 ms");
    assert_eq!(value_after(&settings, "max_timeout"), "60000 ms");
    assert_eq!(value_after(&settings, "filter_error"), "fail");
    assert_eq!(value_after(&settings, "claim_policy"), "registered");
    assert_eq!(value_after(&settings, "claim_endpoint"), "auto");
    assert_eq!(value_after(&settings, "notify_claimed_default"), "no");
    let _app = ast.connect_app("sales");
    let id = call(&ast, "");
    assert_eq!(wait_for_row(&ast, &id).0, 500);
    assert_eq!(result(&ast, &id).as_deref(), Some("TIMEOUT"));
}

#[test]
fn every_bad_value_is_logged_with_what_is_used_and_the_module_still_loads() {
    let conf = "[general]
default_timeout = soon
max_timeout = 0
filter_error = ignore
claim_policy = first
claim_endpoint = tree
notify_claimed_default = maybe
colour = blue
[extra]
x = 1
";
    let ast = boot(Some(conf));
    let log = boot_log(&ast);
    assert!(is_running(&ast, OURS), "{log}");
    for expected in [
        "stasis_broadcast.conf line 2: invalid value 'soon' for default_timeout (milliseconds, 0 or more); using 500 ms",
        "stasis_broadcast.conf line 3: invalid value '0' for max_timeout (milliseconds, 1 to 86400000); using 60000 ms",
        "stasis_broadcast.conf line 4: invalid value 'ignore' for filter_error (fail or broadcast_all); using fail",
        "stasis_broadcast.conf line 5: invalid value 'first' for claim_policy (registered, offered or any); using registered",
        "stasis_broadcast.conf line 6: invalid value 'tree' for claim_endpoint (auto, ari, module or http); using auto",
        "stasis_broadcast.conf line 7: invalid value 'maybe' for notify_claimed_default (yes or no); using no",
        "stasis_broadcast.conf line 8: unknown option 'colour' in [general] ignored",
        "stasis_broadcast.conf line 10: unknown section [extra] ignored (the options go in [general])",
    ] {
        let line = log.lines().find(|line| line.contains(expected)).unwrap_or_else(|| panic!("missing: {expected}\n{log}"));
        assert!(line.contains("WARNING"), "{line}");
    }
    let settings = ast.cli("stasis broadcast show settings");
    assert!(settings.contains("(from stasis_broadcast.conf)"), "{settings}");
    assert_eq!(value_after(&settings, "default_timeout"), "500 ms");
    assert_eq!(value_after(&settings, "claim_policy"), "registered");
}

#[test]
fn default_and_max_timeout_apply_to_the_dialplan_argument() {
    let ast = boot(Some("[general]\ndefault_timeout = 1500\nmax_timeout = 3000\n"));
    let _app = ast.connect_app("sales");
    let defaulted = call(&ast, "");
    assert_eq!(wait_for_row(&ast, &defaulted).0, 1500, "an empty timeout takes default_timeout");
    let allowed = call(&ast, "3000");
    assert_eq!(wait_for_row(&ast, &allowed).0, 3000);
    let mark = ast.log_mark();
    let too_long = call(&ast, "3001");
    assert_eq!(wait_for_row(&ast, &too_long).0, 1500, "above max_timeout the default is used");
    let name = channel_name(&ast, &too_long).expect("channel");
    let warning = format!("Channel {name}: invalid timeout value '3001' (must be 0-3000ms), using default 1500ms");
    logged_through(&ast, mark, &warning);
    for id in [defaulted, allowed, too_long] {
        assert_eq!(result(&ast, &id).as_deref(), Some("TIMEOUT"));
    }
}

#[test]
fn default_timeout_above_max_timeout_is_clamped_with_a_warning() {
    let ast = boot(Some("[general]\nmax_timeout = 800\ndefault_timeout = 5000\n"));
    let log = boot_log(&ast);
    assert!(log.contains("stasis_broadcast.conf line 3: default_timeout 5000 ms is above max_timeout 800 ms; using 800 ms"), "{log}");
    let _app = ast.connect_app("sales");
    let id = call(&ast, "");
    assert_eq!(wait_for_row(&ast, &id).0, 800);
    assert_eq!(result(&ast, &id).as_deref(), Some("TIMEOUT"));
}

#[test]
fn filter_error_fail_refuses_and_broadcast_all_offers_everyone() {
    for (policy, expect_offer) in [("fail", false), ("broadcast_all", true)] {
        let ast = boot(Some(&format!("[general]\nfilter_error = {policy}\n")));
        let app = ast.connect_app("sales");
        let mark = ast.log_mark();
        let id = call(&ast, "300,(unclosed");
        if expect_offer {
            app.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered despite the bad filter");
            logged_through(&ast, mark, "invalid app_filter '(unclosed'");
            logged_through(&ast, mark, "offering the call to every application (filter_error=broadcast_all)");
            assert_eq!(result(&ast, &id).as_deref(), Some("TIMEOUT"));
        } else {
            assert_eq!(result(&ast, &id).as_deref(), Some("FAILED"));
            let before = app.events_before_barrier(5 * SECOND);
            assert!(!before.iter().any(|(_, v)| v["type"] == "CallBroadcast"), "offered: {before:?}");
            logged_through(&ast, mark, "invalid app_filter '(unclosed'");
        }
    }
}

#[test]
fn claim_policy_registered_offered_and_any() {
    // registered: a name that is no Stasis application cannot win; the race stays open.
    let ast = boot(Some("[general]\nclaim_policy = registered\n"));
    let sales = ast.connect_app("sales");
    let id = call(&ast, "5000");
    sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
    assert_eq!(ast.claim(&id, "ghost").status, 404);
    assert_eq!(sales.claim(&id).status, 204);
    sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id).as_deref(), Some("SUCCESS"));
    drop(ast);

    // offered: a registered application the filter left out cannot win.
    let ast = boot(Some("[general]\nclaim_policy = offered\n"));
    let sales = ast.connect_app("sales");
    let support = ast.connect_app("support");
    let id = call(&ast, "5000,^sales$");
    sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered to sales");
    let mark = ast.log_mark();
    assert_eq!(support.claim(&id).status, 404, "support was not offered the call");
    logged_through(&ast, mark, "rejected: the call was not offered to it (claim_policy=offered)");
    // A client can repeat it at will: one NOTICE per 10 s, the rest at debug.
    let mark = ast.log_mark();
    for _ in 0..3 {
        assert_eq!(support.claim(&id).status, 404, "still refused");
    }
    assert_eq!(sales.claim(&id).status, 204);
    assert_eq!(support.claim(&id).status, 409, "a taken call answers 409 to everyone");
    sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id).as_deref(), Some("SUCCESS"));
    // The refusals were logged (if at all) before they were answered, so
    // before the dialplan set the result.
    let log = logged_through(&ast, mark, &format!("GLOBAL(RESULT_{id})"));
    let notices = log.lines().filter(|l| l.contains("NOTICE") && l.contains("rejected:")).count();
    assert_eq!(notices, 0, "{log}");
    drop(ast);

    // any: as the C reference, any name wins, and Stasis then fails.
    let ast = boot(Some("[general]\nclaim_policy = any\n"));
    let _sales = ast.connect_app("sales");
    let id = call(&ast, "5000");
    _sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
    assert_eq!(ast.claim(&id, "ghost").status, 204);
    assert_eq!(result(&ast, &id).as_deref(), Some("FAILED"));
}

#[test]
fn notify_claimed_default_turns_call_claimed_on_unless_the_dialplan_says_no() {
    let ast = boot(Some("[general]\nnotify_claimed_default = yes\n"));
    let sales = ast.connect_app("sales");
    let support = ast.connect_app("support");
    for (args, expect_notice) in [("5000", true), ("5000,,,no", false)] {
        let id = call(&ast, args);
        support.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
        sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
        assert_eq!(sales.claim(&id).status, 204);
        sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
        // CallClaimed goes out before the claim is answered: if it was sent,
        // it is there before a barrier sent now.
        let notice = support
            .events_before_barrier(5 * SECOND)
            .iter()
            .any(|(_, v)| v["type"] == "CallClaimed" && v["channel"]["id"] == id.as_str());
        assert_eq!(notice, expect_notice, "SB={args}");
        assert_eq!(ast.continue_channel(&id).status, 204);
        assert_eq!(result(&ast, &id).as_deref(), Some("SUCCESS"));
    }
}

#[test]
fn reload_applies_to_new_broadcasts_and_not_to_one_in_flight() {
    let ast = boot(Some("[general]\ndefault_timeout = 6000\nclaim_policy = registered\n"));
    let sales = ast.connect_app("sales");
    let conf_path = ast.dir().join("etc").join(CONF);

    // First call, under the first settings; it is still waiting across the reload.
    let in_flight = call(&ast, "");
    sales.wait_for_channel_event("CallBroadcast", &in_flight, 5 * SECOND).expect("offered");
    assert_eq!(wait_for_row(&ast, &in_flight).0, 6000);

    std::fs::write(&conf_path, "[general]\ndefault_timeout = 4000\nclaim_policy = any\n").expect("rewrite config");
    let mark = ast.log_mark();
    ast.cli("module reload res_stasis_broadcast_rs.so");
    logged_through(&ast, mark, "stasis_broadcast.conf reloaded; new broadcasts use the new settings");
    let settings = ast.cli("stasis broadcast show settings");
    assert_eq!(value_after(&settings, "default_timeout"), "4000 ms");
    assert_eq!(value_after(&settings, "claim_policy"), "any");

    // Second call, after the reload: the new default timeout and the new policy.
    let after = call(&ast, "");
    sales.wait_for_channel_event("CallBroadcast", &after, 5 * SECOND).expect("offered");
    assert_eq!(wait_for_row(&ast, &after).0, 4000);
    // The call in flight keeps its 6000 ms and its `registered` policy.
    assert_eq!(wait_for_row(&ast, &in_flight).0, 6000);
    assert_eq!(ast.claim(&in_flight, "ghost").status, 404, "in-flight broadcast keeps claim_policy=registered");
    assert_eq!(ast.claim(&after, "ghost").status, 204, "new broadcast uses claim_policy=any");
    assert_eq!(result(&ast, &after).as_deref(), Some("FAILED"));
    assert_eq!(sales.claim(&in_flight).status, 204);
    sales.wait_for_channel_event("StasisStart", &in_flight, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&in_flight).status, 204);
    assert_eq!(result(&ast, &in_flight).as_deref(), Some("SUCCESS"));

    // A file that no longer parses keeps the settings in force (and `core
    // reload` reloads the module too).
    std::fs::write(&conf_path, "[general\ndefault_timeout = 100\n").expect("rewrite config");
    let mark = ast.log_mark();
    ast.cli("core reload");
    logged_through(&ast, mark, "stasis_broadcast.conf could not be parsed; keeping the settings in force");
    assert_eq!(value_after(&ast.cli("stasis broadcast show settings"), "default_timeout"), "4000 ms");
}

// --------------------------------------------------------------------- CLI

#[test]
fn cli_commands_are_listed_with_usage() {
    let ast = boot(None);
    let help = ast.cli("core show help stasis broadcast");
    for (command, summary) in [
        ("stasis broadcast show broadcasts", "List broadcasts in progress"),
        ("stasis broadcast show stats", "Show broadcast and claim counters"),
        ("stasis broadcast show settings", "Show the effective configuration"),
    ] {
        assert!(help.lines().any(|l| l.contains(command) && l.contains(summary)), "{command}:\n{help}");
        let usage = ast.cli(&format!("core show help {command}"));
        assert!(usage.contains(&format!("Usage: {command}")), "{usage}");
    }
    let wrong = ast.cli("stasis broadcast show stats extra");
    assert!(wrong.contains("Usage: stasis broadcast show stats"), "{wrong}");
}

#[test]
fn show_broadcasts_lists_states_and_completes_channel_names() {
    let ast = boot(None);
    let sales = ast.connect_app("sales");
    let waiting = call(&ast, "8000,^sal");
    let taken = call(&ast, "8000");
    sales.wait_for_channel_event("CallBroadcast", &taken, 5 * SECOND).expect("offered");
    assert_eq!(sales.claim(&taken).status, 204);
    sales.wait_for_channel_event("StasisStart", &taken, 5 * SECOND).expect("StasisStart");

    let out = ast.cli("stasis broadcast show broadcasts");
    let waiting_name = channel_name(&ast, &waiting).expect("name");
    let taken_name = channel_name(&ast, &taken).expect("name");
    let waiting_line = out.lines().find(|l| l.starts_with(&waiting_name)).unwrap_or_else(|| panic!("{out}"));
    let columns: Vec<_> = waiting_line.split_whitespace().collect();
    assert_eq!(columns[2], "8000", "{waiting_line}");
    assert_eq!(columns[3], "^sal", "{waiting_line}");
    assert_eq!(columns[4], "1", "offered to one application: {waiting_line}");
    assert_eq!(columns[5], "waiting", "{waiting_line}");
    let taken_line = out.lines().find(|l| l.starts_with(&taken_name)).unwrap_or_else(|| panic!("{out}"));
    assert!(taken_line.ends_with("in Stasis (sales)"), "{taken_line}");
    assert!(out.contains("2 active broadcast(s)"), "{out}");

    // One channel by name, and tab completion of the names.
    let one = ast.cli(&format!("stasis broadcast show broadcasts {waiting_name}"));
    assert!(one.contains("1 active broadcast(s)") && one.contains(&waiting_name), "{one}");
    let prefix = &waiting_name[..waiting_name.len() - 3];
    let completions = ast.cli(&format!("_command matchesarray \"stasis broadcast show broadcasts {prefix}\" \"{prefix}\""));
    assert!(completions.contains(&waiting_name) || completions.contains(&taken_name), "completion of {prefix}: {completions:?}");
    let every = ast.cli("_command matchesarray \"stasis broadcast show broadcasts Local/\" \"Local/\"");
    assert!(every.contains(&waiting_name) && every.contains(&taken_name), "{every}");

    assert_eq!(ast.continue_channel(&taken).status, 204);
    assert_eq!(ast.hangup(&waiting).status, 204);
    assert_eq!(result(&ast, &taken).as_deref(), Some("SUCCESS"));
}

/// A scripted set of calls; the counters must say exactly what was done.
fn scripted_calls(ast: &Asterisk) {
    let sales = ast.connect_app("sales");
    let support = ast.connect_app("support");
    // Three claimed calls, each with a losing second claim (409).
    for _ in 0..3 {
        let id = call(ast, "5000");
        support.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
        assert_eq!(sales.claim(&id).status, 204);
        assert_eq!(support.claim(&id).status, 409);
        sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
        assert_eq!(ast.continue_channel(&id).status, 204);
        assert_eq!(result(ast, &id).as_deref(), Some("SUCCESS"));
    }
    // Two timeouts.
    for _ in 0..2 {
        let id = call(ast, "100");
        assert_eq!(result(ast, &id).as_deref(), Some("TIMEOUT"));
    }
    // One caller that hangs up while waiting.
    let id = call(ast, "8000");
    sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
    assert_eq!(ast.hangup(&id).status, 204);
    // One that cannot start (bad filter).
    let id = call(ast, "100,(");
    assert_eq!(result(ast, &id).as_deref(), Some("FAILED"));
    // A claim for a channel that has no broadcast, and one by a name that is no application.
    assert_eq!(ast.claim("no-such-channel", "sales").status, 404);
    let id = call(ast, "5000");
    sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
    assert_eq!(ast.claim(&id, "ghost").status, 404);
    assert_eq!(sales.claim(&id).status, 204);
    sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(ast, &id).as_deref(), Some("SUCCESS"));
    // Let the hung-up call's application return.
    let deadline = Instant::now() + 5 * SECOND;
    while !ast.cli("stasis broadcast show broadcasts").contains("0 active broadcast(s)") {
        assert!(Instant::now() < deadline, "broadcasts left: {}", ast.cli("stasis broadcast show broadcasts"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn show_stats_counts_what_the_calls_did() {
    let ast = boot(None);
    scripted_calls(&ast);
    let stats = ast.cli("stasis broadcast show stats");
    println!("{stats}");
    assert_eq!(count(&stats, "started:"), 7, "{stats}");
    assert_eq!(count(&stats, "claimed (Stasis ran):"), 4);
    assert_eq!(count(&stats, "timed out:"), 2);
    assert_eq!(count(&stats, "hung up while waiting:"), 1);
    assert_eq!(count(&stats, "claimed, Stasis failed:"), 0);
    assert_eq!(count(&stats, "could not start:"), 1);
    assert_eq!(count(&stats, "in progress now:"), 0);
    assert_eq!(count(&stats, "won (204):"), 4);
    assert_eq!(count(&stats, "rejected, already claimed (409):"), 3);
    assert_eq!(count(&stats, "rejected, no broadcast (404):"), 1);
    assert_eq!(count(&stats, "rejected by claim_policy (404):"), 1);
    assert!(stats.contains("Claim-to-wake latency (last 4 claims)"), "{stats}");
    for label in ["p50:", "p90:", "p99:", "max:"] {
        let value = value_after(&stats, label);
        let ms: f64 = value.trim_end_matches(" ms").parse().unwrap_or_else(|_| panic!("{label} {value}"));
        assert!((0.0..1000.0).contains(&ms), "{label} {value}");
    }
    // The counters start again from zero when the module is loaded again.
    ast.cli("module unload res_stasis_broadcast_rs.so");
    ast.cli("module load res_stasis_broadcast_rs.so");
    let fresh = ast.cli("stasis broadcast show stats");
    assert_eq!(count(&fresh, "started:"), 0, "{fresh}");
    assert!(fresh.contains("Claim-to-wake latency: no claims yet"), "{fresh}");
}

// ----------------------------------------------------------------- metrics

const PROMETHEUS_CONF: &str = "[general]\nenabled = yes\nuri = metrics\n";
/// res_prometheus links against res_pjsip (for its registration metrics), so
/// it loads only with res_pjsip and what that needs.
const PROMETHEUS_MODULES: [&str; 6] = [
    "res_pjproject.so",
    "res_sorcery_memory.so",
    "res_sorcery_astdb.so",
    "res_pjsip.so",
    "res_pjsip_outbound_registration.so",
    "res_prometheus.so",
];

fn scrape(ast: &Asterisk) -> String {
    let response = ast.ari().get_outside_ari("/metrics");
    assert_eq!(response.status, 200, "GET /metrics: {}", response.body);
    response.body
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{series} is not a number"))
}

#[test]
fn metrics_appear_at_asterisks_prometheus_endpoint() {
    let config = PROMETHEUS_MODULES
        .iter()
        .fold(AsteriskConfig::new(ours()).dialplan(DIALPLAN), |config, module| config.load(module))
        .file("prometheus.conf", PROMETHEUS_CONF);
    let ast = Asterisk::start(config);
    logged_through(&ast, 0, "Prometheus metrics registered (asterisk_stasis_broadcast_*)");
    assert_eq!(value_after(&ast.cli("stasis broadcast show settings"), "Prometheus metrics:"), "registered with res_prometheus");
    scripted_calls(&ast);
    let text = scrape(&ast);
    assert!(text.contains("# TYPE asterisk_stasis_broadcast_claim_wake_seconds histogram"), "{text}");
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_started_total"), 7.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_ended_total{outcome=\"claimed\"}"), 4.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_ended_total{outcome=\"timed_out\"}"), 2.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_ended_total{outcome=\"hung_up\"}"), 1.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_not_started_total"), 1.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_claims_total{result=\"won\"}"), 4.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_claims_total{result=\"conflict\"}"), 3.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_claims_total{result=\"not_found\"}"), 1.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_claims_total{result=\"policy\"}"), 1.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_active"), 0.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_claim_wake_seconds_count"), 4.0);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_claim_wake_seconds_bucket{le=\"+Inf\"}"), 4.0);
    // Asterisk's own metrics are still there beside ours.
    assert!(text.contains("asterisk_core_uptime_seconds"), "{text}");

    // Unloading removes them; loading again brings them back, from zero.
    ast.cli("module unload res_stasis_broadcast_rs.so");
    assert!(!scrape(&ast).contains("asterisk_stasis_broadcast_"), "metrics left after unload");
    ast.cli("module load res_stasis_broadcast_rs.so");
    assert_eq!(metric(&scrape(&ast), "asterisk_stasis_broadcast_started_total"), 0.0);
}

fn prometheus_config(load_prometheus: bool, conf: Option<&str>) -> AsteriskConfig {
    prometheus_config_for(ours(), load_prometheus, conf)
}

fn prometheus_config_for(module: Broadcaster, load_prometheus: bool, conf: Option<&str>) -> AsteriskConfig {
    let config = PROMETHEUS_MODULES
        .iter()
        .filter(|module| load_prometheus || **module != "res_prometheus.so")
        .fold(AsteriskConfig::new(module).dialplan(DIALPLAN), |config, module| config.load(module));
    match conf {
        Some(conf) => config.file("prometheus.conf", conf),
        None => config,
    }
}

fn settings_metrics(ast: &Asterisk) -> String {
    value_after(&ast.cli("stasis broadcast show settings"), "Prometheus metrics:")
}

fn answered_call_succeeds(ast: &Asterisk) {
    let sales = ast.connect_app("sales");
    let id = call(ast, "5000");
    sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
    assert_eq!(sales.claim(&id).status, 204);
    sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(ast, &id).as_deref(), Some("SUCCESS"));
}

/// res_prometheus without prometheus.conf declines to load (its config
/// cannot be processed). It stays in the module list, "Not Running": the
/// module must load beside it, at start-up and by `module load`.
#[test]
fn a_declined_res_prometheus_does_not_keep_the_module_from_loading() {
    let ast = Asterisk::start(prometheus_config(true, None));
    assert!(module_line(&ast, "res_prometheus.so").is_some(), "res_prometheus is not even present");
    assert!(!is_running(&ast, "res_prometheus.so"), "res_prometheus did not decline");
    let log = boot_log(&ast);
    assert!(is_running(&ast, "res_stasis_broadcast_rs.so"), "{log}");
    assert!(!log.contains("due to dependencies"), "{log}");
    assert_eq!(settings_metrics(&ast), "not registered (res_prometheus not running at load or reload)");
    answered_call_succeeds(&ast);

    ast.cli("module unload res_stasis_broadcast_rs.so");
    assert!(!is_running(&ast, "res_stasis_broadcast_rs.so"));
    ast.cli("module load res_stasis_broadcast_rs.so");
    assert!(is_running(&ast, "res_stasis_broadcast_rs.so"), "{}", ast.log());
    ast.cli("module reload res_stasis_broadcast_rs.so");
    assert_eq!(settings_metrics(&ast), "not registered (res_prometheus not running at load or reload)");
}

/// res_prometheus loaded after the module, unloaded under it, loaded again:
/// the module registers at its reload, forgets the registration when
/// res_prometheus unloads (no pointer into it kept), and registers again at
/// its next reload.
#[test]
fn metrics_follow_res_prometheus_loaded_later_unloaded_and_loaded_again() {
    let ast = Asterisk::start(prometheus_config(false, Some(PROMETHEUS_CONF)));
    assert!(!is_running(&ast, "res_prometheus.so"));
    assert_eq!(settings_metrics(&ast), "not registered (res_prometheus not running at load or reload)");

    // Loaded later: the metrics come with the module's reload.
    ast.cli("module load res_prometheus.so");
    assert!(is_running(&ast, "res_prometheus.so"), "{}", ast.log());
    assert!(!scrape(&ast).contains("asterisk_stasis_broadcast_"));
    ast.cli("module reload res_stasis_broadcast_rs.so");
    assert_eq!(settings_metrics(&ast), "registered with res_prometheus");
    assert_eq!(metric(&scrape(&ast), "asterisk_stasis_broadcast_started_total"), 0.0);

    // Unloaded under the module: allowed, and the module lets go first.
    let mark = ast.log_mark();
    ast.cli("module unload res_prometheus.so");
    assert!(!is_running(&ast, "res_prometheus.so"), "{}", ast.log_since(mark));
    logged_through(&ast, mark, "res_prometheus is unloading; Prometheus metrics unregistered");
    assert_eq!(settings_metrics(&ast), "not registered (res_prometheus not running at load or reload)");
    // Nothing of the module calls into the unloaded res_prometheus: a reload,
    // then an unload and load of the module (which unregister what is
    // registered) leave Asterisk running.
    ast.cli("module reload res_stasis_broadcast_rs.so");
    ast.cli("module unload res_stasis_broadcast_rs.so");
    ast.cli("module load res_stasis_broadcast_rs.so");
    assert!(ast.is_running(), "Asterisk died:\n{}", ast.log_since(mark));
    assert!(is_running(&ast, "res_stasis_broadcast_rs.so"));

    // Loaded again: back at the module's next reload, counting what ran meanwhile.
    ast.cli("module load res_prometheus.so");
    assert!(is_running(&ast, "res_prometheus.so"), "{}", ast.log_since(mark));
    assert!(!scrape(&ast).contains("asterisk_stasis_broadcast_"));
    answered_call_succeeds(&ast);
    ast.cli("module reload res_stasis_broadcast_rs.so");
    assert_eq!(settings_metrics(&ast), "registered with res_prometheus");
    let text = scrape(&ast);
    assert_eq!(metric(&text, "asterisk_stasis_broadcast_ended_total{outcome=\"claimed\"}"), 1.0);

    // And the module's own unload takes them away, res_prometheus staying.
    ast.cli("module unload res_stasis_broadcast_rs.so");
    assert!(!scrape(&ast).contains("asterisk_stasis_broadcast_"));
    ast.cli("module unload res_prometheus.so");
    assert!(!is_running(&ast, "res_prometheus.so"));
    assert!(ast.is_running(), "Asterisk died:\n{}", ast.log_since(mark));
}

/// The fault-injection build: a scrape that panics leaves the module's
/// metrics out of that answer only; res_prometheus's unload notice that
/// panics leaves Asterisk running, res_prometheus unloaded, and the module
/// still unloading and loading cleanly.
#[test]
fn a_panic_in_a_scrape_or_at_res_prometheus_unload_is_caught() {
    let ast = Asterisk::start(prometheus_config_for(Broadcaster::Ours(fault_module()), true, Some(PROMETHEUS_CONF)));
    assert_eq!(settings_metrics(&ast), "registered with res_prometheus");
    let mark = ast.log_mark();
    inject_panic(&ast, "Prometheus scrape");
    let text = scrape(&ast);
    assert_panic_logged(&ast, mark, "Prometheus scrape");
    assert!(!text.contains("asterisk_stasis_broadcast_"), "the scrape that panicked still wrote: {text}");
    assert!(text.contains("asterisk_core_uptime_seconds"), "Asterisk's own metrics are still there: {text}");
    assert_eq!(metric(&scrape(&ast), "asterisk_stasis_broadcast_started_total"), 0.0, "the next scrape");

    let mark = ast.log_mark();
    inject_panic(&ast, "res_prometheus unloading");
    ast.cli("module unload res_prometheus.so");
    assert_panic_logged(&ast, mark, "res_prometheus unloading");
    assert!(!is_running(&ast, "res_prometheus.so"));
    answered_call_succeeds(&ast);
    ast.cli("module reload res_stasis_broadcast_rs.so");
    ast.cli("module unload res_stasis_broadcast_rs.so");
    ast.cli("module load res_stasis_broadcast_rs.so");
    assert!(ast.is_running(), "Asterisk died:\n{}", ast.log_since(mark));
    assert!(is_running(&ast, "res_stasis_broadcast_rs.so"));
    answered_call_succeeds(&ast);
}

#[test]
fn without_res_prometheus_the_module_works_and_says_metrics_are_off() {
    let ast = boot(None);
    assert!(!is_running(&ast, "res_prometheus.so"));
    assert_eq!(
        value_after(&ast.cli("stasis broadcast show settings"), "Prometheus metrics:"),
        "not registered (res_prometheus not running at load or reload)"
    );
    let sales = ast.connect_app("sales");
    let id = call(&ast, "5000");
    sales.wait_for_channel_event("CallBroadcast", &id, 5 * SECOND).expect("offered");
    assert_eq!(sales.claim(&id).status, 204);
    sales.wait_for_channel_event("StasisStart", &id, 5 * SECOND).expect("StasisStart");
    assert_eq!(ast.continue_channel(&id).status, 204);
    assert_eq!(result(&ast, &id).as_deref(), Some("SUCCESS"));
}
