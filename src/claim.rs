//! Claims: the answer to `POST /ari/events/claim`, and `CallClaimed`.

use crate::app::REGISTRY;
use crate::broadcast::registry::ClaimOutcome;
use crate::events;
use crate::host::{log, stasis};

/// A claim for the broadcast of `channel_id` by `application`.
///
/// An application that is not a registered Stasis application cannot take the
/// call (Stasis would fail and the caller hear silence), so its claim is
/// answered "not found" and the race stays open for the others.
pub fn claim(channel_id: &str, application: &str) -> ClaimOutcome {
    if channel_id.is_empty() || application.is_empty() {
        return ClaimOutcome::NotFound;
    }
    if !stasis::is_registered(application) {
        // A call that is already taken answers 409 to everyone, as it would
        // have had the name been valid.
        if REGISTRY.is_claimed_by_id(channel_id) {
            return ClaimOutcome::AlreadyClaimed;
        }
        log::notice(&format!(
            "Claim for channel {channel_id} by '{application}' rejected: no Stasis application of that name is registered"
        ));
        return ClaimOutcome::NotFound;
    }
    let result = REGISTRY.claim(channel_id, application);
    match result.outcome {
        ClaimOutcome::Won => log::verbose(3, &format!("Channel {channel_id} claimed by application {application}")),
        ClaimOutcome::AlreadyClaimed => {
            log::debug(1, || format!("Channel {channel_id} already claimed (attempt by {application} refused)"))
        }
        ClaimOutcome::NotFound => log::debug(1, || format!("No broadcast waiting for channel {channel_id} (claim by {application})")),
    }
    if let Some(notice) = result.notice {
        match events::call_claimed(&notice.channel_id, &notice.winner) {
            Some(event) => {
                events::send_to_each(&notice.offered, &event);
            }
            None => log::warning(&format!("Channel {channel_id}: could not build the CallClaimed event")),
        }
    }
    result.outcome
}
