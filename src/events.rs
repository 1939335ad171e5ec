//! The ARI events this module sends, built field for field as the C
//! reference builds them so existing ARI clients read them unchanged.

use crate::broadcast::liveness::Liveness;
use crate::host::channel::{Channel, ChannelIds};
use crate::host::json::Json;
use crate::host::stasis::{self, AppName, Delivery};

/// `CallBroadcast`: type, timestamp, channel, caller, called. `ids` are the
/// channel's, copied once for the call.
pub fn call_broadcast(channel: &Channel<'_>, ids: &ChannelIds) -> Option<Json> {
    let (caller, called) = channel.caller_and_extension_json();
    let mut event = Json::object()?;
    let complete = event.set(c"type", Json::c_string(c"CallBroadcast")?)
        && event.set(c"timestamp", Json::timestamp_now()?)
        && event.set(c"channel", Json::channel_snapshot_by_cstr(&ids.unique_id)?)
        && event.set(c"caller", caller?)
        && event.set(c"called", called?);
    complete.then_some(event)
}

/// `CallClaimed`: type, timestamp, channel, winner_app.
pub fn call_claimed(channel_id: &str, winner: &str) -> Option<Json> {
    let mut event = Json::object()?;
    let complete = event.set(c"type", Json::c_string(c"CallClaimed")?)
        && event.set(c"timestamp", Json::timestamp_now()?)
        && event.set(c"channel", Json::channel_snapshot(channel_id)?)
        && event.set(c"winner_app", Json::string(winner)?);
    complete.then_some(event)
}

/// Sends `event` to each application and remembers in `liveness` which were
/// found inactive (see [`crate::broadcast::liveness`]); returns how many
/// active applications took it.
///
/// Each application gets its own copy of the event object: Stasis sets
/// `asterisk_id` and ARI sets `application` on the message it is given
/// (`app_send`, `ari_websocket_send_event`), and ARI may keep it queued
/// while the application's WebSocket reconnects. Those are members of the
/// event itself; the values under it (the `channel` object, the strings)
/// are never changed by anyone, so the copies share them (a shallow copy)
/// instead of copying the whole channel model once per application. Two
/// threads may then encode the shared values at once (a queued copy and a
/// live one): jansson allows that from 2.11 on (thread-safe `json_dump*`
/// and atomic reference counts), and Asterisk's configure refuses anything
/// older (`jansson >= 2.11`, or the bundled copy).
pub fn send_to_each<'n>(liveness: &Liveness, applications: impl IntoIterator<Item = AppName<'n>>, event: &Json) -> usize {
    let forget_inactive = liveness.any_inactive();
    let mut delivered = 0;
    let mut changes: Vec<(String, bool)> = Vec::new();
    for application in applications {
        let Some(copy) = event.shallow_copy() else { continue };
        match stasis::send(application, &copy) {
            Delivery::Delivered => {
                delivered += 1;
                if forget_inactive {
                    changes.push((application.to_cstr().to_string_lossy().into_owned(), true));
                }
            }
            Delivery::Inactive => changes.push((application.to_cstr().to_string_lossy().into_owned(), false)),
            Delivery::NotRegistered => {}
        }
    }
    if !changes.is_empty() {
        liveness.record_all(&changes);
    }
    delivered
}

/// Whether `application` can take a call now: registered, and not found
/// inactive by the last event sent to it.
pub fn can_receive(liveness: &Liveness, application: &str) -> bool {
    stasis::is_registered(application.as_bytes()) && !liveness.is_known_inactive(application)
}
