//! Claims: the answer to `POST /ari/events/claim`, and `CallClaimed`.

use std::ffi::CString;

use crate::broadcast::registry::ClaimOutcome;
use crate::broadcast::stats::ClaimAnswer;
use crate::events;
use crate::host::stasis::AppName;
use crate::host::log::VerboseTwo;
use crate::host::{self, cstring, log, CStrArg};
use crate::state::ModuleState;

/// A claim for the broadcast of `channel_id` by `application`, as they
/// came (bytes: most claims are answered by one look-up of the id, and
/// neither needs checking as text for that).
///
/// Who may win is the `claim_policy` the broadcast started with. A refused
/// claimant is answered "not found" and the race stays open for the others;
/// a call that is already taken answers 409 to everyone.
///
/// The module stays loaded while a claim is inside it: the caller holds the
/// module's state, which unload waits for.
// Inlined: a claim is one look-up, and a call frame is a good part of it.
#[inline(always)]
pub fn claim(state: &ModuleState, channel_id: &[u8], application: impl ClaimantName) -> ClaimOutcome {
    if channel_id.is_empty() || application.is_empty() {
        return answered(state, ClaimOutcome::NotFound, channel_id, &application);
    }
    // Most claims lose (409 once the call is taken, 404 when nothing waits):
    // they are answered by this one look-up.
    if let Some(outcome) = state.registry.closed_claim_answer(channel_id) {
        return answered(state, outcome, channel_id, &application);
    }
    // Asked of Stasis before taking the registry lock (never call Asterisk
    // under it). An application registered but inactive (its WebSocket has
    // closed; it stays registered while it has channels) counts as not
    // registered: Stasis would refuse it the channel.
    let application = application.bytes();
    let application_name = host::text_of_bytes(application);
    let registered = events::can_receive(&state.liveness, &application_name);
    let result = state.registry.claim_if(channel_id, &application_name, |spec| {
        spec.claim_policy.allows(registered, spec.offered.iter().any(|name| *name == application_name))
    });
    let text = String::from_utf8_lossy;
    match result.outcome {
        ClaimOutcome::Won => {
            state.stats.claim(ClaimAnswer::Won);
            log::verbose_two(3, VerboseTwo::CLAIMED, channel_id, application);
        }
        ClaimOutcome::AlreadyClaimed | ClaimOutcome::NotFound => {
            answered(state, result.outcome, channel_id, &application);
        }
        ClaimOutcome::NotAllowed => {
            state.stats.claim(ClaimAnswer::Policy);
            let why = if registered {
                "the call was not offered to it (claim_policy=offered)"
            } else {
                "no active Stasis application of that name is registered"
            };
            // Any ARI user can send these at will: one NOTICE per interval.
            let line = format!("Claim for channel {} by '{}' rejected: {why}", text(channel_id), text(application));
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
            None => log::warning(&format!("Channel {}: could not build the CallClaimed event", notice.channel_id)),
        }
    }
    result.outcome
}

/// Counts and logs (at debug level) a claim answered 409 or 404.
#[inline(always)]
fn answered(state: &ModuleState, outcome: ClaimOutcome, channel_id: &[u8], application: &impl ClaimantName) -> ClaimOutcome {
    let text = String::from_utf8_lossy;
    match outcome {
        ClaimOutcome::AlreadyClaimed => {
            state.stats.claim(ClaimAnswer::Conflict);
            log::debug(1, || {
                format!("Channel {} already claimed (attempt by {} refused)", text(channel_id), text(application.bytes()))
            });
        }
        _ => {
            state.stats.claim(ClaimAnswer::NotFound);
            log::debug(1, || {
                format!("No broadcast waiting for channel {} (claim by {})", text(channel_id), text(application.bytes()))
            });
        }
    }
    outcome
}

/// A claimant's application name as the claim came with it: measured only
/// when read (most claims lose, and a loser's name goes only into a debug
/// line).
pub trait ClaimantName {
    fn is_empty(&self) -> bool;
    fn bytes(&self) -> &[u8];
}

impl ClaimantName for &[u8] {
    fn is_empty(&self) -> bool {
        <[u8]>::is_empty(self)
    }

    fn bytes(&self) -> &[u8] {
        self
    }
}

impl ClaimantName for CStrArg<'_> {
    fn is_empty(&self) -> bool {
        CStrArg::is_empty(self)
    }

    fn bytes(&self) -> &[u8] {
        CStrArg::bytes(self)
    }
}
