//! The ARI events this module sends, built field for field as the C
//! reference builds them so existing ARI clients read them unchanged.

use crate::broadcast::liveness::Liveness;
use crate::host::channel::Channel;
use crate::host::json::Json;
use crate::host::stasis::{self, Delivery};

/// `CallBroadcast`: type, timestamp, channel, caller, called.
pub fn call_broadcast(channel: &Channel<'_>) -> Option<Json> {
    let (caller, called) = channel.caller_and_extension();
    let mut event = Json::object()?;
    let complete = event.set("type", Json::string("CallBroadcast")?)
        && event.set("timestamp", Json::timestamp_now()?)
        && event.set("channel", Json::channel_snapshot(&channel.unique_id())?)
        && event.set("caller", Json::string(&caller)?)
        && event.set("called", Json::string(&called)?);
    complete.then_some(event)
}

/// `CallClaimed`: type, timestamp, channel, winner_app.
pub fn call_claimed(channel_id: &str, winner: &str) -> Option<Json> {
    let mut event = Json::object()?;
    let complete = event.set("type", Json::string("CallClaimed")?)
        && event.set("timestamp", Json::timestamp_now()?)
        && event.set("channel", Json::channel_snapshot(channel_id)?)
        && event.set("winner_app", Json::string(winner)?);
    complete.then_some(event)
}

/// Sends `event` to each application, each its own copy, and remembers in
/// `liveness` which were found inactive (see [`crate::broadcast::liveness`]).
pub fn send_to_each(liveness: &Liveness, applications: &[String], event: &Json) -> usize {
    applications
        .iter()
        .filter(|application| {
            let Some(copy) = event.deep_copy() else { return false };
            let delivery = stasis::send(application, &copy);
            if delivery != Delivery::NotRegistered {
                liveness.record(application, delivery == Delivery::Delivered);
            }
            delivery == Delivery::Delivered
        })
        .count()
}

/// Whether `application` can take a call now: registered, and not found
/// inactive by the last event sent to it.
pub fn can_receive(liveness: &Liveness, application: &str) -> bool {
    stasis::is_registered(application) && !liveness.is_known_inactive(application)
}
