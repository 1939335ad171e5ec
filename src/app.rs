//! The `StasisBroadcast()` dialplan application.

use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::broadcast::args::parse_app_args;
use crate::broadcast::filter::{AppFilter, FilterError};
use crate::broadcast::registry::{self, BroadcastSpec, ChannelId, ClaimPolicy, Name};
use crate::broadcast::stats::Ending;
use crate::broadcast::text::LineText;
use crate::config::{FilterErrorPolicy, Settings};
use crate::events;
use crate::host::channel::{self, Channel, ChannelIds, SleepEnd, TiePayload};
use crate::host::module::{self, UseCount};
use crate::host::stasis::{self, ApplicationNames};
use crate::host::log;
use crate::state::ModuleState;
use crate::waker::Waker;

type Active<'r> = registry::Active<'r, Waker>;

pub const APP_NAME: &CStr = c"StasisBroadcast";

const STATUS: &CStr = c"STASISSTATUS";

/// What a dialplan application returns: keep running the dialplan, or stop
/// because the channel is gone.
pub const CONTINUE: i32 = 0;
pub const HANG_UP: i32 = -1;

/// Why a broadcast could not start.
pub enum StartError {
    Filter { pattern: String, error: FilterError },
    Event,
}

/// What a caller asks of one broadcast.
struct Offer<'a> {
    timeout: Duration,
    filter: Option<&'a str>,
    notify_claimed: bool,
}

/// Offers the call to every matching application, in a fresh random order,
/// and registers the broadcast so claims can find it. `ids` are the
/// channel's, copied once for the call.
fn start<'r>(
    state: &'r ModuleState,
    channel: &Channel<'_>,
    ids: &ChannelIds,
    settings: &Settings,
    offer: Offer<'_>,
    waker: Waker,
) -> Result<Active<'r>, StartError> {
    let Offer { timeout, filter, notify_claimed } = offer;
    let pattern = filter.unwrap_or("");
    let filter = match AppFilter::from_arg(pattern) {
        Ok(filter) => filter,
        Err(error) if settings.filter_error == FilterErrorPolicy::BroadcastAll => {
            log::warning(&format!(
                "Channel {}: invalid app_filter '{pattern}': {error}; offering the call to every application (filter_error=broadcast_all)",
                ids.name.text()
            ));
            None
        }
        Err(error) => return Err(StartError::Filter { pattern: pattern.to_owned(), error }),
    };
    // The registered applications, narrowed and shuffled in place into the
    // ones offered (the names stay where Asterisk keeps them).
    let mut offered = ApplicationNames::registered();
    state.liveness.retain_registered(|name| offered.iter().any(|registered| registered.to_bytes() == name.as_bytes()));
    if let Some(filter) = &filter {
        offered.retain(|name| filter.matches(&name.to_string_lossy()));
    }
    offered.reorder(|names| state.shuffler.shuffle(names));
    let event = events::call_broadcast(channel, ids).ok_or(StartError::Event)?;
    // The names themselves only when a claim or CallClaimed will need them.
    let names_needed = notify_claimed || settings.claim_policy == ClaimPolicy::Offered;
    let offered_names =
        if names_needed { offered.iter().map(|name| name.to_string_lossy().into_owned()).collect() } else { Vec::new() };
    let active = state.registry.begin(
        BroadcastSpec {
            channel_id: ChannelId::new(&ids.unique_id.text()),
            channel_name: Name::new(&ids.name.text()),
            timeout,
            filter: filter.map(|filter| filter.pattern().to_owned()),
            offered_count: offered.len(),
            offered: offered_names,
            notify_claimed,
            claim_policy: settings.claim_policy,
        },
        waker,
    );
    // Registered before the first event leaves, so no claim can arrive first.
    events::send_to_each(&state.liveness, offered.app_names(), &event);
    log::debug(1, || format!("Channel {}: offered to {} application(s)", ids.name.text(), offered.len()));
    Ok(active)
}

fn log_start_error(channel_name: &str, error: &StartError) {
    match error {
        StartError::Filter { pattern, error } => log::error(&format!(
            "Channel {channel_name}: invalid app_filter '{pattern}': {error}; not broadcasting (STASISSTATUS=FAILED)"
        )),
        StartError::Event => log::error(&format!(
            "Channel {channel_name}: could not build the CallBroadcast event (no channel snapshot?); not broadcasting"
        )),
    }
}

/// `StasisBroadcast([timeout[,app_filter[,args[,notify_claimed]]]])`.
pub fn execute(state: &ModuleState, channel: &Channel<'_>, data: &str) -> i32 {
    channel.set_variable(STATUS, c"");
    warn_if_c_implementation_loaded(state, channel);
    // This call keeps these settings to its end, whatever a reload does meanwhile.
    let settings = state.settings.current();
    // Copied once, under the channel lock, for every use below.
    let ids = channel.ids();
    let (args, warnings) = parse_app_args(data, &settings.arg_defaults());
    for warning in &warnings {
        log::warning(&format!("Channel {}: {warning}", ids.name.text()));
    }
    let timeout = Duration::from_millis(u64::from(args.timeout_ms));
    let waker = Waker::Channel { channel: channel.to_ref(), _in_use: UseCount::acquire() };
    let active = match start(
        state,
        channel,
        &ids,
        &settings,
        Offer { timeout, filter: args.filter.as_deref(), notify_claimed: args.notify_claimed },
        waker,
    ) {
        Ok(active) => active,
        Err(error) => {
            state.stats.not_started();
            log_start_error(&ids.name.text(), &error);
            channel.set_variable(STATUS, c"FAILED");
            return CONTINUE;
        }
    };

    state.stats.started();
    // No time to wait: settle below still takes a claim that came already.
    let ended = if timeout.is_zero() {
        if channel.is_hung_up() { SleepEnd::HungUp } else { SleepEnd::TimedOut }
    } else {
        channel.sleep_until(timeout, &|| active.is_claimed(), state.callbacks.sleep_condition)
    };
    // A claim may land between the wait ending and this line: settle decides
    // once, under the registry lock, whether it counts.
    let Some(settled) = active.settle() else {
        drop(active);
        channel.set_variable(STATUS, c"TIMEOUT");
        if ended == SleepEnd::HungUp {
            state.stats.ended(Ending::HungUp);
            log::verbose_args(3, format_args!("Channel {} hung up while waiting for a claim", ids.name.text()));
            return HANG_UP;
        }
        state.stats.ended(Ending::TimedOut);
        log::warning_line(
            log::source_line!(),
            LineText::new()
                .text("Channel ")
                .c_text(&ids.name)
                .text(": not claimed within ")
                .number(u64::from(args.timeout_ms))
                .text("ms timeout")
                .as_bytes(),
        );
        return CONTINUE;
    };
    if let Some(claimed_at) = settled.claimed_at {
        state.stats.claim_to_wake(claimed_at.elapsed());
    }
    let winner = &settled.winner;

    log::debug(3, || format!("Channel {} claimed by {winner}, entering Stasis", ids.name.text()));
    // The broadcast stays registered (claims get 409) until the session ends.
    let stasis_args = &args.stasis_args;
    let succeeded = stasis::exec(channel, winner.as_bytes(), stasis_args.iter_bytes());
    drop(active);
    if succeeded {
        state.stats.ended(Ending::Claimed);
        channel.set_variable(STATUS, c"SUCCESS");
        return CONTINUE;
    }
    state.stats.ended(Ending::StasisFailed);
    channel.set_variable(STATUS, c"FAILED");
    if channel.is_hung_up() {
        HANG_UP
    } else {
        CONTINUE
    }
}

/// Loading Asterisk's own C module by hand after this one is up takes the
/// optional API over: res_ari_events then sends claims there and every
/// broadcast of this module times out. Say so, at most once a minute.
///
/// Every call looks, so the first call after such a load says so; but not in
/// Asterisk's module list (ast_module_check would take its lock, and a
/// `core reload` or a slow unload would then hold every new call): in the
/// process's list of shared objects, which a present module is in, and only
/// when an object has been mapped or unmapped since the last look found
/// none. Within a minute of the last error it does not look at all.
fn warn_if_c_implementation_loaded(state: &ModuleState, channel: &Channel<'_>) {
    let changes = module::mapping_changes();
    if changes != 0 && state.c_implementation_absent_at.load(Ordering::Relaxed) == changes {
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let logged = &state.c_implementation_logged;
    let last = logged.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 60 {
        return;
    }
    let loaded = c_implementation_mapped();
    if loaded.is_empty() {
        state.c_implementation_absent_at.store(changes, Ordering::Relaxed);
        return;
    }
    if logged.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    log::error(&format!(
        "Channel {}: Asterisk's own C implementation was loaded after res_stasis_broadcast_rs ({}); \
         claims through res_ari_events may now reach it instead of this module. Unload one of them \
         (and add 'noload => res_stasis_broadcast.so' and 'noload => app_stasis_broadcast.so' to modules.conf)",
        channel.name(),
        loaded.join(", ")
    ));
}

/// Called by the entry point instead of `execute` while the module is
/// unloading: nothing is offered, and the dialplan goes on.
pub fn while_unloading(channel: &Channel<'_>) -> i32 {
    log::warning(&format!(
        "Channel {}: res_stasis_broadcast_rs is unloading; not broadcasting (STASISSTATUS=FAILED)",
        channel.name()
    ));
    channel.set_variable(STATUS, c"FAILED");
    CONTINUE
}

/// Called by the entry point when `execute` panicked.
pub fn after_panic(channel: &Channel<'_>) {
    channel.set_variable(STATUS, c"FAILED");
}

// The optional API of stasis_app_broadcast.h, with its return conventions.

/// `stasis_app_broadcast_channel`: 0 when the broadcast started, -1 otherwise.
pub fn api_broadcast_channel(
    state: &Arc<ModuleState>,
    channel: &Channel<'_>,
    timeout_ms: i32,
    filter: Option<&str>,
    flags: u32,
) -> i32 {
    const SUPPRESS_CLAIMED: u32 = 1;
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    let ids = channel.ids();
    let unique_id = ids.unique_id.text().into_owned();
    let waker = Waker::UniqueId { unique_id: unique_id.clone(), _in_use: UseCount::acquire() };
    let offer = Offer { timeout, filter, notify_claimed: flags & SUPPRESS_CLAIMED == 0 };
    match start(state, channel, &ids, &state.settings.current(), offer, waker) {
        Ok(active) => {
            // The caller removes it with stasis_app_broadcast_cleanup; should
            // it never do so, the broadcast goes with the channel.
            let generation = active.detach();
            let tie = Tie::new(state, unique_id, generation);
            if channel.tie(Box::new(tie)).is_err() {
                log::warning(&format!(
                    "Channel {}: could not tie the broadcast to the channel; it lasts until stasis_app_broadcast_cleanup",
                    ids.name.text()
                ));
            }
            0
        }
        Err(error) => {
            log_start_error(&ids.name.text(), &error);
            -1
        }
    }
}

/// What ties an optional-API broadcast to its channel (a channel datastore,
/// see [`Channel::tie`]): when the channel goes before its caller called
/// `stasis_app_broadcast_cleanup`, [`channel_gone`] removes the broadcast.
/// Counted in `ModuleState::ties` from birth to drop; unload refuses while
/// any exists, so none outlives the state. It reaches the state through a
/// weak reference rather than [`crate::state::get`], which answers `None`
/// while an unload is deciding: a channel destroyed then still has its
/// broadcast removed.
struct Tie {
    state: Weak<ModuleState>,
    channel_id: String,
    generation: u64,
}

impl Tie {
    fn new(state: &Arc<ModuleState>, channel_id: String, generation: u64) -> Tie {
        state.ties.fetch_add(1, Ordering::SeqCst);
        Tie { state: Arc::downgrade(state), channel_id, generation }
    }
}

impl Drop for Tie {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state.ties.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The tie datastore of a channel was freed (channel destroyed, or
/// [`api_cleanup`]): removes the broadcast it was made for, unless that one
/// is gone already or a later broadcast has taken the channel's place.
pub fn channel_gone(payload: TiePayload) {
    let Ok(tie) = payload.downcast::<Tie>() else { return };
    let Some(state) = tie.state.upgrade() else { return };
    if state.registry.remove_generation(&tie.channel_id, tie.generation) {
        log::verbose(
            3,
            &format!("Channel {} is gone: removed the broadcast its caller never cleaned up", tie.channel_id),
        );
    }
}

/// `stasis_app_broadcast_wait`: 0 when claimed within the timeout, -1 otherwise.
pub fn api_wait(state: &ModuleState, channel: &Channel<'_>, timeout_ms: i32) -> i32 {
    let _in_use = UseCount::acquire();
    let unique_id = channel.unique_id();
    // No broadcast to wait for: answer at once, as upstream does.
    if !state.registry.contains(&unique_id) {
        return -1;
    }
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    let claimed = || state.registry.is_claimed_by_id(&unique_id);
    if channel.sleep_until(timeout, &claimed, state.callbacks.sleep_condition) == SleepEnd::Condition {
        0
    } else {
        -1
    }
}

/// `stasis_app_broadcast_winner`: the winner, once the broadcast is settled.
pub fn api_winner(state: &ModuleState, channel_id: &str) -> Option<String> {
    state.registry.settle_by_id(channel_id).map(|settled| settled.winner.as_str().to_owned())
}

/// `stasis_app_broadcast_cleanup`: removes the broadcast and the channel
/// datastore that would have removed it with the channel.
pub fn api_cleanup(state: &ModuleState, channel_id: &str) {
    let _in_use = UseCount::acquire();
    state.registry.remove_by_id(channel_id);
    channel::untie(channel_id);
}

/// The C implementation that Asterisk 20.20+/22.10+/23.4+ ships. Running both
/// would split one call's claims between two registries.
pub const C_IMPLEMENTATION: [&CStr; 2] = [c"res_stasis_broadcast.so", c"app_stasis_broadcast.so"];

/// Which of Asterisk's own C modules for this feature are running (a
/// declined one takes nothing over). Takes Asterisk's module-list lock: for
/// load, which holds it already.
pub fn c_implementation_running() -> Vec<String> {
    c_implementation_where(module::is_running)
}

/// Which of them are mapped into the process (loaded, running or declined).
/// For every call: none of Asterisk's locks (see `module::is_mapped`).
pub fn c_implementation_mapped() -> Vec<String> {
    c_implementation_where(module::is_mapped)
}

fn c_implementation_where(test: impl Fn(&CStr) -> bool) -> Vec<String> {
    C_IMPLEMENTATION.iter().filter(|name| test(name)).map(|name| name.to_string_lossy().into_owned()).collect()
}
