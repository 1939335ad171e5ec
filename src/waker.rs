//! What wakes a broadcast's waiter when a claim wins: the registry's
//! [`Wake`] over Asterisk channels. Below both the state that holds the
//! registry and the application that starts broadcasts.

use crate::broadcast::registry::Wake;
use crate::host::channel::{self, ChannelRef};
use crate::host::module::UseCount;

/// Wakes whoever waits for a claim. Holding it also holds one unit of the
/// module's use count, so the module cannot be unloaded while any broadcast
/// is registered.
pub enum Waker {
    /// The dialplan thread waiting on its channel (StasisBroadcast()).
    Channel { channel: ChannelRef, _in_use: UseCount },
    /// For broadcasts started through the optional API: the caller's thread
    /// may not be waiting yet, and no channel reference is kept (so a caller
    /// that never cleans up cannot keep the channel alive).
    UniqueId { unique_id: String, _in_use: UseCount },
}

/// What a winning claim wakes with, once the registry lock is released.
pub enum Waking {
    Channel(ChannelRef),
    UniqueId(String),
}

impl Wake for Waker {
    type Waking = Waking;

    fn waking(&self) -> Waking {
        match self {
            // Another channel reference: an atomic increment, no lock.
            Waker::Channel { channel, .. } => Waking::Channel(channel.clone()),
            Waker::UniqueId { unique_id, .. } => Waking::UniqueId(unique_id.clone()),
        }
    }

    fn wake(waking: Waking) {
        match waking {
            Waking::Channel(channel) => channel.wake(),
            Waking::UniqueId(unique_id) => channel::wake_by_unique_id(&unique_id),
        }
    }
}
