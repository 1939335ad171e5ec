//! Claims: the answer to `POST /ari/events/claim`, and `CallClaimed`.

use std::ffi::CString;

use crate::broadcast::registry::{ClaimOutcome, ClaimResult};
use crate::broadcast::stats::ClaimAnswer;
use crate::events;
use crate::host::stasis::AppName;
use crate::host::{cstring, log};
use crate::host::module::UseCount;
use crate::state::ModuleState;

/// A claim for the broadcast of `channel_id` by `application`.
///
/// Who may win is the `claim_policy` the broadcast started with. A refused
/// claimant is answered "not found" and the race stays open for the others;
/// a call that is already taken answers 409 to everyone.
pub fn claim(state: &ModuleState, channel_id: &str, application: &str) -> ClaimOutcome {
    // The module stays loaded while a claim is inside it.
    let _in_use = UseCount::acquire();
    if channel_id.is_empty() || application.is_empty() {
        state.stats.claim(ClaimAnswer::NotFound);
        return ClaimOutcome::NotFound;
    }
    // Asked of Stasis before taking the registry lock (never call Asterisk
    // under it). An application registered but inactive (its WebSocket has
    // closed; it stays registered while it has channels) counts as not
    // registered: Stasis would refuse it the channel.
    // Only a claim that may still win needs it: the others (409 once the
    // call is taken, 404 when nothing waits) are answered without asking.
    let mut registered = false;
    let result = match state.registry.closed_claim_answer(channel_id) {
        Some(outcome) => ClaimResult::lost(outcome),
        None => {
            registered = events::can_receive(&state.liveness, application);
            state.registry.claim_if(channel_id, application, |spec| {
                spec.claim_policy.allows(registered, spec.offered.iter().any(|name| name == application))
            })
        }
    };
    match result.outcome {
        ClaimOutcome::Won => {
            state.stats.claim(ClaimAnswer::Won);
            log::verbose_args(3, format_args!("Channel {channel_id} claimed by application {application}"));
        }
        ClaimOutcome::AlreadyClaimed => {
            state.stats.claim(ClaimAnswer::Conflict);
            log::debug(1, || format!("Channel {channel_id} already claimed (attempt by {application} refused)"));
        }
        ClaimOutcome::NotFound => {
            state.stats.claim(ClaimAnswer::NotFound);
            log::debug(1, || format!("No broadcast waiting for channel {channel_id} (claim by {application})"));
        }
        ClaimOutcome::NotAllowed => {
            state.stats.claim(ClaimAnswer::Policy);
            let why = if registered {
                "the call was not offered to it (claim_policy=offered)"
            } else {
                "no active Stasis application of that name is registered"
            };
            // Any ARI user can send these at will: one NOTICE per interval.
            let line = format!("Claim for channel {channel_id} by '{application}' rejected: {why}");
            match state.claim_refusal_logged.allow() {
                Some(0) => log::notice(&line),
                Some(held_back) => log::notice(&format!("{line} ({held_back} similar since the last, at debug level)")),
                None => log::debug(1, || line),
            }
        }
    }
    if let Some(notice) = result.notice {
        match events::call_claimed(&notice.channel_id, &notice.winner) {
            Some(event) => {
                // Only to those still able to receive it: an offered
                // application that has gone since would only make Stasis
                // log a warning (or drop it, if inactive).
                let reachable: Vec<CString> = notice
                    .offered
                    .iter()
                    .filter(|name| events::can_receive(&state.liveness, name))
                    .map(|name| cstring(name))
                    .collect();
                events::send_to_each(&state.liveness, reachable.iter().map(|name| AppName::from(name.as_c_str())), &event);
            }
            None => log::warning(&format!("Channel {channel_id}: could not build the CallClaimed event")),
        }
    }
    result.outcome
}
