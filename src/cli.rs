//! `stasis broadcast …` CLI commands.

use std::fmt::Write;

use crate::app::REGISTRY;
use crate::broadcast::registry::Phase;
use crate::host::cli::{CliCommand, CliOutcome};

pub static COMMANDS: [CliCommand; 1] = [CliCommand {
    command: c"stasis broadcast show broadcasts",
    summary: c"List broadcasts in progress",
    usage: c"Usage: stasis broadcast show broadcasts\n       Lists the calls being offered to ARI applications or held by a winner's Stasis session:\n       channel, age, timeout, filter, applications offered and state.\n",
    run: show_broadcasts,
}];

fn show_broadcasts(words: &[String]) -> CliOutcome {
    if words.len() != 4 {
        return CliOutcome::ShowUsage;
    }
    let views = REGISTRY.views();
    let mut out = String::new();
    let _ = writeln!(out, "{:<40} {:>8} {:>8} {:<16} {:>7}  {}", "Channel", "Age(ms)", "Timeout", "Filter", "Offered", "State");
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
            view.spec.offered.len(),
            state
        );
    }
    let _ = writeln!(out, "{} active broadcast(s)", views.len());
    CliOutcome::Output(out)
}
