//! `stasis broadcast show …` CLI commands.

use std::fmt::Write;
use std::time::Duration;

use crate::broadcast::registry::Phase;
use crate::host::cli::{CliCommand, CliOutcome};
use crate::state::ModuleState;

pub static COMMANDS: [CliCommand<ModuleState>; 3] = [
    CliCommand {
        command: c"stasis broadcast show broadcasts",
        summary: c"List broadcasts in progress",
        usage: c"Usage: stasis broadcast show broadcasts [<channel>]\n       Lists the calls being offered to ARI applications or held by a winner's Stasis session:\n       channel, age, timeout, filter, applications offered and state (waiting, claimed by X,\n       in Stasis). With <channel>, only channels whose name starts with it.\n",
        run: show_broadcasts,
        complete: Some(complete_channel),
    },
    CliCommand {
        command: c"stasis broadcast show stats",
        summary: c"Show broadcast and claim counters",
        usage: c"Usage: stasis broadcast show stats\n       Counters since the module was loaded: broadcasts started and how they ended,\n       claims won and rejected, and claim-to-wake latency percentiles over the last\n       10000 claims.\n",
        run: show_stats,
        complete: None,
    },
    CliCommand {
        command: c"stasis broadcast show settings",
        summary: c"Show the effective configuration",
        usage: c"Usage: stasis broadcast show settings\n       The settings new broadcasts start with (stasis_broadcast.conf, re-read on\n       'module reload res_stasis_broadcast_rs.so'), which claim endpoint is in use, and\n       who serves ARI's API description of events (/ari/api-docs/events.json).\n",
        run: show_settings,
        complete: None,
    },
];

const ROW_LABEL_WIDTH: usize = 38;

fn row(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {label:<ROW_LABEL_WIDTH$}{value}");
}

fn show_broadcasts(state: &ModuleState, words: &[String]) -> CliOutcome {
    let prefix = match words.len() {
        4 => "",
        5 => words[4].as_str(),
        _ => return CliOutcome::ShowUsage,
    };
    let views: Vec<_> = state.registry.views().into_iter().filter(|view| view.spec.channel_name.as_str().starts_with(prefix)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "{:<40} {:>8} {:>8} {:<16} {:>7}  State", "Channel", "Age(ms)", "Timeout", "Filter", "Offered");
    for view in &views {
        let state = match &view.phase {
            Phase::Waiting => "waiting".to_owned(),
            Phase::Claimed { winner } => format!("claimed by {winner}"),
            Phase::InStasis { winner } => format!("in Stasis ({winner})"),
            Phase::Unclaimed => "unclaimed".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<40} {:>8} {:>8} {:<16} {:>7}  {}",
            view.spec.channel_name,
            view.age.as_millis(),
            view.spec.timeout.as_millis(),
            view.spec.filter.as_deref().unwrap_or("(all)"),
            view.spec.offered_count,
            state
        );
    }
    let _ = writeln!(out, "{} active broadcast(s)", views.len());
    CliOutcome::Output(out)
}

/// Channel names of live broadcasts, for `show broadcasts <channel>`.
fn complete_channel(state: &ModuleState, position: usize, word: &str) -> Vec<String> {
    if position != 4 {
        return Vec::new();
    }
    state
        .registry
        .views()
        .into_iter()
        .map(|view| view.spec.channel_name.as_str().to_owned())
        .filter(|name| name.starts_with(word))
        .collect()
}

fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

fn show_stats(state: &ModuleState, words: &[String]) -> CliOutcome {
    if words.len() != 4 {
        return CliOutcome::ShowUsage;
    }
    let stats = state.stats.snapshot();
    let mut out = String::new();
    let _ = writeln!(out, "Since load ({} s ago)", state.stats.since().as_secs());
    let _ = writeln!(out, "Broadcasts");
    row(&mut out, "started:", stats.started);
    row(&mut out, "claimed (Stasis ran):", stats.claimed);
    row(&mut out, "timed out:", stats.timed_out);
    row(&mut out, "hung up while waiting:", stats.hung_up);
    row(&mut out, "claimed, Stasis failed:", stats.stasis_failed);
    row(&mut out, "could not start:", stats.not_started);
    row(&mut out, "in progress now:", state.registry.len());
    let _ = writeln!(out, "Claims");
    row(&mut out, "won (204):", stats.claims_won);
    row(&mut out, "rejected, already claimed (409):", stats.rejected_conflict);
    row(&mut out, "rejected, no broadcast (404):", stats.rejected_not_found);
    row(&mut out, "rejected by claim_policy (404):", stats.rejected_policy);
    match state.stats.percentiles() {
        Some(p) => {
            let _ = writeln!(out, "Claim-to-wake latency (last {} claims)", p.samples);
            row(&mut out, "p50:", millis(p.p50));
            row(&mut out, "p90:", millis(p.p90));
            row(&mut out, "p99:", millis(p.p99));
            row(&mut out, "max:", millis(p.max));
        }
        None => {
            let _ = writeln!(out, "Claim-to-wake latency: no claims yet");
        }
    }
    CliOutcome::Output(out)
}

fn show_settings(state: &ModuleState, words: &[String]) -> CliOutcome {
    if words.len() != 4 {
        return CliOutcome::ShowUsage;
    }
    let settings = state.settings.current();
    let mut out = String::new();
    let _ = writeln!(out, "Settings for new broadcasts (from {})", settings.origin);
    row(&mut out, "default_timeout", format!("{} ms", settings.default_timeout_ms));
    row(&mut out, "max_timeout", format!("{} ms", settings.max_timeout_ms));
    row(&mut out, "filter_error", settings.filter_error);
    row(&mut out, "claim_policy", settings.claim_policy);
    row(&mut out, "claim_endpoint", settings.claim_endpoint);
    row(&mut out, "notify_claimed_default", if settings.notify_claimed_default { "yes" } else { "no" });
    let _ = writeln!(out, "In use");
    row(&mut out, "claim endpoint:", state.endpoint.describe());
    row(&mut out, "API description (events.json):", state.endpoint.describe_docs());
    row(&mut out, "Prometheus metrics:", crate::metrics::status(state));
    CliOutcome::Output(out)
}
