//! Live broadcasts, keyed by channel unique id, and the claim state machine.
//!
//! One `Mutex` guards the index and every broadcast's state, so "exactly one
//! claim wins" is a plain check-and-set under that lock. Under it, a winning
//! claim only takes what will wake the waiter ([`Wake::waking`]: another
//! reference to the channel, or a copy of its id); waking the channel and
//! dropping wakers happen after the lock is released, so no Asterisk lock
//! is ever taken inside ours (they must never nest inside ours).
//!
//! The waiting side does not block on a `Condvar`: the dialplan thread waits on
//! its channel (which is also what delivers hang-ups and incoming frames), and
//! a claim wakes it through [`Wake`]. Tests use a `Condvar`-backed `Wake`.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use rand::rngs::OsRng;
use rand::TryRngCore;

use super::text::InlineText;

/// A channel's unique id: kept in place up to 64 bytes (Asterisk's own,
/// `<system>-<epoch>.<n>`, and UUIDs given by ARI clients), on the heap
/// beyond (up to Asterisk's limit of 149).
pub type ChannelId = InlineText<64>;
/// A channel's or an application's name (the usual ones kept in place).
pub type Name = InlineText<48>;

/// Who may claim a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimPolicy {
    /// A registered Stasis application (else 404; the race stays open).
    Registered,
    /// A registered application the call was offered to.
    Offered,
    /// Any name, as the C reference allows (Stasis fails if it is not an application).
    Any,
}

impl ClaimPolicy {
    /// Whether a claimant may take a waiting call under this policy.
    /// `registered`: it is a registered Stasis application now; `offered`:
    /// the call was offered to it.
    pub fn allows(self, registered: bool, offered: bool) -> bool {
        match self {
            ClaimPolicy::Registered => registered,
            // An offered application that has since gone away cannot take the call either.
            ClaimPolicy::Offered => registered && offered,
            ClaimPolicy::Any => true,
        }
    }
}

/// Wakes whoever waits for a claim on one broadcast. The winning claim
/// takes a [`Wake::Waking`] under the registry lock and uses it after
/// releasing the lock, so the broadcast may end meanwhile.
pub trait Wake: Send + Sync {
    type Waking: Send;
    /// Under the registry lock: must not block, take any lock, or panic.
    fn waking(&self) -> Self::Waking;
    /// After the lock is released.
    fn wake(waking: Self::Waking);
}

/// What a claim attempt got, with the reference's return codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    Won,
    /// No broadcast for the channel, or it ended without a winner.
    NotFound,
    /// Another application won first (the call may be in its Stasis session).
    AlreadyClaimed,
    /// The broadcast is waiting, but the claim policy it started with does
    /// not let this application take it; the race stays open for others.
    NotAllowed,
}

impl ClaimOutcome {
    /// 0, -1, -2 as `stasis_app_claim_channel` returns them.
    pub fn code(self) -> i32 {
        match self {
            ClaimOutcome::Won => 0,
            ClaimOutcome::NotFound | ClaimOutcome::NotAllowed => -1,
            ClaimOutcome::AlreadyClaimed => -2,
        }
    }
}

/// Where a broadcast is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Offered; waiting for the first claim.
    Waiting,
    /// Claimed; the dialplan thread has not picked the winner up yet.
    Claimed { winner: Name },
    /// The winner's Stasis session is running: later claims get 409.
    InStasis { winner: Name },
    /// Ended without a winner: later claims get 404 until it is removed.
    Unclaimed,
}

/// What is known of a broadcast when it starts.
#[derive(Clone, Debug)]
pub struct BroadcastSpec {
    pub channel_id: ChannelId,
    pub channel_name: Name,
    pub timeout: Duration,
    pub filter: Option<String>,
    /// How many applications the call was offered to.
    pub offered_count: usize,
    /// Their names, in delivery order, when something needs them (claim
    /// policy `offered`, or `CallClaimed` to send); else empty.
    pub offered: Vec<String>,
    pub notify_claimed: bool,
    /// Who may claim it (from the settings it started with).
    pub claim_policy: ClaimPolicy,
}

/// A read-only view of one live broadcast (for the CLI).
#[derive(Clone, Debug)]
pub struct BroadcastView {
    pub spec: BroadcastSpec,
    pub age: Duration,
    pub phase: Phase,
}

/// What the claimant must do after a winning claim: tell the other
/// applications when the broadcast asked for `CallClaimed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedNotice {
    pub channel_id: String,
    pub winner: String,
    pub offered: Vec<String>,
}

#[derive(Debug)]
pub struct ClaimResult {
    pub outcome: ClaimOutcome,
    /// Set when the claim won and the broadcast wants `CallClaimed` sent.
    pub notice: Option<ClaimedNotice>,
}

impl ClaimResult {
    /// A claim that did not win.
    pub fn lost(outcome: ClaimOutcome) -> ClaimResult {
        ClaimResult { outcome, notice: None }
    }
}

/// The answer to a claim in `phase` when no claim can win there.
fn closed_answer(phase: &Phase) -> Option<ClaimOutcome> {
    match phase {
        Phase::Waiting => None,
        Phase::Claimed { .. } | Phase::InStasis { .. } => Some(ClaimOutcome::AlreadyClaimed),
        Phase::Unclaimed => Some(ClaimOutcome::NotFound),
    }
}

struct Entry<W> {
    spec: BroadcastSpec,
    started: Instant,
    phase: Phase,
    /// When the winning claim arrived.
    claimed_at: Option<Instant>,
    /// Distinguishes this broadcast from a later one on the same channel.
    generation: u64,
    /// Its channel id's hash in the index.
    hash: u64,
    waker: W,
}

/// The entries sit in slots that do not move while they live, so the
/// broadcast's own [`Active`] reaches its entry by slot, without a look-up;
/// claims find it through the index by channel id.
struct State<W> {
    /// Channel id → the slot of its entry: a table of slot numbers whose
    /// keys stay in the entries (a look-up hashes the id once and compares
    /// it only with entries filed under the same hash). Every occupied slot
    /// is in here exactly once.
    index: HashTable<usize>,
    /// foldhash, seeded from the OS at each load: fast on short ids, and a
    /// seed no client knows makes ids chosen to collide hard to find (not
    /// impossible: foldhash is no keyed MAC; ARI clients are authenticated).
    /// Its fixed-seed form, given that seed, because its random form keeps
    /// a thread-local, which would keep the module from unmapping at unload.
    hasher: FixedState,
    slots: Vec<Option<Entry<W>>>,
    /// Vacant slots, reused first: `slots` grows only to the most
    /// broadcasts ever live at once.
    free: Vec<usize>,
    next_generation: u64,
}

impl<W> State<W> {
    fn hash_of(&self, channel_id: &[u8]) -> u64 {
        self.hasher.hash_one(channel_id)
    }

    fn slot_of(&self, channel_id: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        let found = self.index.find(self.hash_of(channel_id), |&slot| {
            slots[slot].as_ref().is_some_and(|entry| entry.spec.channel_id.as_bytes() == channel_id)
        });
        found.copied()
    }

    fn by_id(&self, channel_id: &[u8]) -> Option<&Entry<W>> {
        self.slots[self.slot_of(channel_id)?].as_ref()
    }

    fn by_id_mut(&mut self, channel_id: &[u8]) -> Option<&mut Entry<W>> {
        let slot = self.slot_of(channel_id)?;
        self.slots[slot].as_mut()
    }

    /// The entry in `slot` if it is still the broadcast numbered `generation`.
    fn at_mut(&mut self, slot: usize, generation: u64) -> Option<&mut Entry<W>> {
        self.slots.get_mut(slot)?.as_mut().filter(|entry| entry.generation == generation)
    }

    /// Puts `entry` in a slot; returns the slot and the waker of the entry it
    /// replaced (the same channel's earlier broadcast), if any.
    fn insert(&mut self, entry: Entry<W>) -> (usize, Option<W>) {
        let earlier = self.slot_of(entry.spec.channel_id.as_bytes()).and_then(|earlier| self.remove_at(earlier));
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let hash = entry.hash;
        self.slots[slot] = Some(entry);
        let slots = &self.slots;
        // Growing the table rehashes from the hashes the entries keep.
        self.index.insert_unique(hash, slot, |&filed| slots[filed].as_ref().map_or(0, |entry| entry.hash));
        (slot, earlier)
    }

    /// Removes the entry in `slot` from the index and the slot; returns its waker.
    fn remove_at(&mut self, slot: usize) -> Option<W> {
        let entry = self.slots.get_mut(slot)?.take()?;
        if let Ok(filed) = self.index.find_entry(entry.hash, |&filed| filed == slot) {
            filed.remove();
        }
        self.free.push(slot);
        Some(entry.waker)
    }

    /// Removes the entry of `channel_id` if it is the broadcast numbered
    /// `generation` (any, if None); returns its waker.
    fn remove_by_id(&mut self, channel_id: &[u8], generation: Option<u64>) -> Option<W> {
        let slot = self.slot_of(channel_id)?;
        if generation.is_some_and(|generation| self.slots[slot].as_ref().is_some_and(|entry| entry.generation != generation)) {
            return None;
        }
        self.remove_at(slot)
    }
}

/// All live broadcasts; `W` wakes a broadcast's waiter.
pub struct Registry<W> {
    state: Mutex<State<W>>,
}

impl<W: Wake> Default for Registry<W> {
    fn default() -> Self {
        Registry {
            state: Mutex::new(State {
                index: HashTable::new(),
                hasher: FixedState::with_seed(OsRng.try_next_u64().unwrap_or_default()),
                slots: Vec::new(),
                free: Vec::new(),
                next_generation: 0,
            }),
        }
    }
}

/// A started broadcast. Dropping it removes the broadcast, whatever path the
/// caller leaves by (return, hang-up, panic).
pub struct Active<'r, W: Wake> {
    registry: &'r Registry<W>,
    slot: usize,
    generation: u64,
    /// Set by [`Active::detach`]: dropping it then leaves the broadcast.
    detached: bool,
}

/// How a broadcast's claim window ended with a winner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub winner: Name,
    /// When the winning claim arrived.
    pub claimed_at: Option<Instant>,
}

/// Settles `entry` (see [`Registry::settle_by_id`]).
fn settle_entry<W>(entry: &mut Entry<W>) -> Option<Settled> {
    let winner = match std::mem::replace(&mut entry.phase, Phase::Unclaimed) {
        // Claimed and in Stasis alike: the winner stays, now in Stasis.
        Phase::InStasis { winner } | Phase::Claimed { winner } => {
            entry.phase = Phase::InStasis { winner: winner.clone() };
            winner
        }
        Phase::Waiting | Phase::Unclaimed => return None,
    };
    Some(Settled { winner, claimed_at: entry.claimed_at })
}

impl<W: Wake> Registry<W> {
    pub fn new() -> Registry<W> {
        Registry::default()
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A poisoned lock still guards consistent state: the only code of
        // a caller's run under it (`claim_if`'s check) runs before anything
        // changes, and the steps that update index and slots together
        // cannot panic between them (allocation failure aborts). So keep
        // serving rather than fail every call.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a broadcast. A previous one on the same channel (left behind by
    /// an optional-API caller that never cleaned up) is replaced.
    pub fn begin(&self, spec: BroadcastSpec, waker: W) -> Active<'_, W> {
        let started = Instant::now();
        let mut state = self.lock();
        state.next_generation += 1;
        let generation = state.next_generation;
        let hash = state.hash_of(spec.channel_id.as_bytes());
        let (slot, replaced) =
            state.insert(Entry { spec, started, phase: Phase::Waiting, claimed_at: None, generation, hash, waker });
        drop(state);
        // Dropping a waker may call into Asterisk: never under our lock.
        drop(replaced);
        Active { registry: self, slot, generation, detached: false }
    }

    /// A claim by `application` for the broadcast of `channel_id`, allowed by any policy.
    pub fn claim(&self, channel_id: &str, application: &str) -> ClaimResult {
        self.claim_if(channel_id, application, |_| true)
    }

    /// A claim that wins only if `allowed` accepts the waiting broadcast's
    /// spec. The check runs under the registry lock, so it must not call
    /// into Asterisk: whatever it needs from there is looked up beforehand.
    /// The channel id comes as bytes: it is only compared, never shown, so
    /// it need not be checked as UTF-8.
    pub fn claim_if(
        &self,
        channel_id: impl AsRef<[u8]>,
        application: &str,
        allowed: impl FnOnce(&BroadcastSpec) -> bool,
    ) -> ClaimResult {
        let channel_id = channel_id.as_ref();
        let mut state = self.lock();
        let Some(entry) = state.by_id_mut(channel_id) else {
            return ClaimResult::lost(ClaimOutcome::NotFound);
        };
        if let Some(outcome) = closed_answer(&entry.phase) {
            return ClaimResult::lost(outcome);
        }
        if !allowed(&entry.spec) {
            return ClaimResult::lost(ClaimOutcome::NotAllowed);
        }
        entry.phase = Phase::Claimed { winner: Name::new(application) };
        let now = Instant::now();
        entry.claimed_at = Some(now);
        let waking = entry.waker.waking();
        let notice = entry.spec.notify_claimed.then(|| ClaimedNotice {
            channel_id: String::from_utf8_lossy(channel_id).into_owned(),
            winner: application.to_owned(),
            offered: entry.spec.offered.clone(),
        });
        drop(state);
        W::wake(waking);
        ClaimResult { outcome: ClaimOutcome::Won, notice }
    }

    /// What any claim for `channel_id` gets now if no claim can win it (no
    /// broadcast, or its race is over); None while a claim may still win.
    /// Lets a caller skip the look-ups that only a claim that may win needs;
    /// [`Registry::claim_if`] checks again, so the race stays decided by it.
    pub fn closed_claim_answer(&self, channel_id: impl AsRef<[u8]>) -> Option<ClaimOutcome> {
        match self.lock().by_id(channel_id.as_ref()) {
            None => Some(ClaimOutcome::NotFound),
            Some(entry) => closed_answer(&entry.phase),
        }
    }

    /// Whether the broadcast of `channel_id` has a winner (for optional-API waiters).
    pub fn is_claimed_by_id(&self, channel_id: &str) -> bool {
        matches!(
            self.lock().by_id(channel_id.as_bytes()).map(|entry| &entry.phase),
            Some(Phase::Claimed { .. } | Phase::InStasis { .. })
        )
    }

    /// Ends the claim window of `channel_id`'s broadcast: returns the winner
    /// (the broadcast moves to `InStasis`, claims get 409) or None (it moves to
    /// `Unclaimed`, claims get 404). A claim racing this either got in before
    /// (and is returned) or gets an answer that is not 204.
    pub fn settle_by_id(&self, channel_id: &str) -> Option<Settled> {
        settle_entry(self.lock().by_id_mut(channel_id.as_bytes())?)
    }

    /// Whether a broadcast is registered for `channel_id`.
    pub fn contains(&self, channel_id: &str) -> bool {
        self.lock().slot_of(channel_id.as_bytes()).is_some()
    }

    /// Removes `channel_id`'s broadcast if it is still the one numbered
    /// `generation` (see [`Active::detach`]).
    pub fn remove_generation(&self, channel_id: &str, generation: u64) -> bool {
        let removed = self.lock().remove_by_id(channel_id.as_bytes(), Some(generation));
        removed.is_some()
    }

    /// Removes `channel_id`'s broadcast, whichever started it.
    pub fn remove_by_id(&self, channel_id: &str) -> bool {
        let removed = self.lock().remove_by_id(channel_id.as_bytes(), None);
        removed.is_some()
    }

    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live broadcast, oldest first.
    pub fn views(&self) -> Vec<BroadcastView> {
        let state = self.lock();
        let mut views: Vec<_> = state
            .slots
            .iter()
            .flatten()
            .map(|entry| BroadcastView { spec: entry.spec.clone(), age: entry.started.elapsed(), phase: entry.phase.clone() })
            .collect();
        views.sort_by_key(|view| std::cmp::Reverse(view.age));
        views
    }
}

impl<W: Wake> Active<'_, W> {
    /// Whether a claim has won this broadcast.
    pub fn is_claimed(&self) -> bool {
        let mut state = self.registry.lock();
        matches!(
            state.at_mut(self.slot, self.generation),
            Some(Entry { phase: Phase::Claimed { .. } | Phase::InStasis { .. }, .. })
        )
    }

    /// See [`Registry::settle_by_id`].
    pub fn settle(&self) -> Option<Settled> {
        settle_entry(self.registry.lock().at_mut(self.slot, self.generation)?)
    }

    /// Keeps the broadcast registered after this handle is gone: for the
    /// optional API, whose caller removes it with `stasis_app_broadcast_cleanup`.
    /// Returns its generation, for [`Registry::remove_generation`].
    pub fn detach(mut self) -> u64 {
        self.detached = true;
        self.generation
    }
}

impl<W: Wake> Drop for Active<'_, W> {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        let removed = {
            let mut state = self.registry.lock();
            match state.at_mut(self.slot, self.generation) {
                Some(_) => state.remove_at(self.slot),
                None => None,
            }
        };
        // The waker goes after the lock is released.
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier, Condvar};
    use std::thread;

    /// A waiter that blocks on a Condvar until woken: what a channel does in Asterisk.
    #[derive(Default)]
    struct CondvarWake {
        woken: Mutex<usize>,
        signal: Condvar,
    }

    impl Wake for Arc<CondvarWake> {
        type Waking = Arc<CondvarWake>;

        fn waking(&self) -> Arc<CondvarWake> {
            Arc::clone(self)
        }

        fn wake(waking: Arc<CondvarWake>) {
            *waking.woken.lock().unwrap() += 1;
            waking.signal.notify_all();
        }
    }

    /// The winner a settle found, as text.
    fn winner(settled: Option<Settled>) -> Option<String> {
        settled.map(|settled| settled.winner.as_str().to_owned())
    }

    impl CondvarWake {
        fn wait(&self, timeout: Duration) -> usize {
            let guard = self.woken.lock().unwrap();
            let (guard, _) = self.signal.wait_timeout_while(guard, timeout, |woken| *woken == 0).unwrap();
            *guard
        }
    }

    fn spec(channel_id: &str, offered: &[&str], notify: bool) -> BroadcastSpec {
        BroadcastSpec {
            channel_id: channel_id.into(),
            channel_name: Name::new(&format!("PJSIP/{channel_id}")),
            timeout: Duration::from_millis(500),
            filter: None,
            offered_count: offered.len(),
            offered: offered.iter().map(|name| (*name).to_owned()).collect(),
            notify_claimed: notify,
            claim_policy: ClaimPolicy::Registered,
        }
    }

    #[test]
    fn first_claim_wins_and_later_ones_conflict() {
        let registry = Registry::new();
        let wake = Arc::new(CondvarWake::default());
        let active = registry.begin(spec("c1", &["a", "b"], false), wake.clone());
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::Won);
        assert_eq!(registry.claim("c1", "b").outcome, ClaimOutcome::AlreadyClaimed);
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::AlreadyClaimed);
        assert!(active.is_claimed());
        assert_eq!(*wake.woken.lock().unwrap(), 1, "the waiter is woken once, by the winning claim");
    }

    #[test]
    fn a_refused_claim_leaves_the_race_open_and_a_claimed_call_still_conflicts() {
        let registry = Registry::new();
        let _active = registry.begin(spec("c1", &["a", "b"], false), Arc::new(CondvarWake::default()));
        let offered = |app: &'static str| move |spec: &BroadcastSpec| spec.offered.iter().any(|name| name == app);
        assert_eq!(registry.claim_if("c1", "x", offered("x")).outcome, ClaimOutcome::NotAllowed);
        assert_eq!(ClaimOutcome::NotAllowed.code(), -1);
        let won = registry.claim_if("c1", "b", offered("b"));
        assert_eq!(won.outcome, ClaimOutcome::Won);
        assert_eq!(registry.claim_if("c1", "x", offered("x")).outcome, ClaimOutcome::AlreadyClaimed);
        assert_eq!(registry.claim_if("nope", "a", offered("a")).outcome, ClaimOutcome::NotFound);
    }

    #[test]
    fn closed_claim_answer_is_what_a_claim_would_get_once_none_can_win() {
        let registry = Registry::new();
        assert_eq!(registry.closed_claim_answer("c1"), Some(ClaimOutcome::NotFound));
        let active = registry.begin(spec("c1", &["a", "b"], false), Arc::new(CondvarWake::default()));
        assert_eq!(registry.closed_claim_answer("c1"), None, "waiting: a claim may win");
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::Won);
        assert_eq!(registry.closed_claim_answer("c1"), Some(ClaimOutcome::AlreadyClaimed));
        assert_eq!(winner(active.settle()).as_deref(), Some("a"));
        assert_eq!(registry.closed_claim_answer("c1"), Some(ClaimOutcome::AlreadyClaimed), "in Stasis");
        drop(active);
        assert_eq!(registry.closed_claim_answer("c1"), Some(ClaimOutcome::NotFound));
        let unclaimed = registry.begin(spec("c2", &["a"], false), Arc::new(CondvarWake::default()));
        assert_eq!(unclaimed.settle(), None);
        assert_eq!(registry.closed_claim_answer("c2"), Some(ClaimOutcome::NotFound));
        assert_eq!(registry.claim("c2", "a").outcome, ClaimOutcome::NotFound);
    }

    #[test]
    fn claimed_at_is_set_by_the_winning_claim() {
        let registry = Registry::new();
        let active = registry.begin(spec("c1", &["a"], false), Arc::new(CondvarWake::default()));
        let before = Instant::now();
        registry.claim("c1", "a");
        let at = active.settle().and_then(|settled| settled.claimed_at).expect("claimed");
        assert!(at >= before && at <= Instant::now());
    }

    #[test]
    fn slots_are_reused_and_each_handle_keeps_to_its_own_broadcast() {
        let registry = Registry::new();
        for round in 0..1000 {
            let id = format!("c{round}");
            let active = registry.begin(spec(&id, &["a"], false), Arc::new(CondvarWake::default()));
            assert_eq!(registry.claim(&id, "a").outcome, ClaimOutcome::Won);
            assert_eq!(winner(active.settle()).as_deref(), Some("a"));
        }
        assert!(registry.is_empty());
        assert_eq!(registry.lock().slots.len(), 1, "one broadcast at a time needs one slot");

        // Interleaved: a replaced broadcast's slot is reused by a later one,
        // and the replaced handle neither sees nor removes that one.
        let first = registry.begin(spec("x", &[], false), Arc::new(CondvarWake::default()));
        let second = registry.begin(spec("x", &[], false), Arc::new(CondvarWake::default()));
        let third = registry.begin(spec("y", &[], false), Arc::new(CondvarWake::default()));
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.claim("y", "b").outcome, ClaimOutcome::Won);
        assert!(!first.is_claimed(), "its slot now holds y's broadcast");
        assert_eq!(first.settle(), None);
        drop(first);
        assert_eq!(registry.len(), 2, "the replaced handle removed nothing");
        assert!(third.is_claimed());
        assert!(!second.is_claimed());
        drop(second);
        assert_eq!(registry.claim("x", "a").outcome, ClaimOutcome::NotFound);
        assert_eq!(winner(third.settle()).as_deref(), Some("b"));
        drop(third);
        assert!(registry.is_empty());
        assert!(registry.lock().slots.len() <= 3);
    }

    #[test]
    fn finds_what_it_holds_as_a_std_map_does_through_growth_and_removals() {
        // Few distinct ids, so starts, replacements and removals of the same
        // ids mix, and the index grows and empties again.
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        use std::collections::HashMap;

        let registry = Registry::<Arc<CondvarWake>>::new();
        let mut model: HashMap<String, u64> = HashMap::new();
        let mut rng = SmallRng::seed_from_u64(5);
        for step in 0..20_000 {
            // Asterisk's ids (short), and ids beyond the inline 64 bytes.
            let n = rng.random_range(0..300);
            let id = if n % 7 == 0 { format!("{}-1764640000.{n}", "x".repeat(60)) } else { format!("1764640000.{n}") };
            match rng.random_range(0..10) {
                0..=3 => {
                    let generation = registry.begin(spec(&id, &[], false), Arc::new(CondvarWake::default())).detach();
                    model.insert(id, generation);
                }
                4 | 5 => assert_eq!(registry.remove_by_id(&id), model.remove(&id).is_some(), "step {step}"),
                6 => {
                    let generation = model.get(&id).copied().unwrap_or(0);
                    let removed = registry.remove_generation(&id, generation);
                    assert_eq!(removed, model.get(&id) == Some(&generation), "step {step}");
                    if removed {
                        model.remove(&id);
                    }
                }
                _ => assert_eq!(registry.contains(&id), model.contains_key(&id), "step {step}"),
            }
            assert_eq!(registry.len(), model.len(), "step {step}");
            if step % 997 == 0 {
                let state = registry.lock();
                assert_eq!(state.slots.iter().flatten().count(), model.len());
                for (id, generation) in &model {
                    let entry = state.by_id(id.as_bytes()).expect("filed");
                    assert_eq!(entry.generation, *generation, "step {step}, {id}");
                }
            }
        }
    }

    #[test]
    fn an_empty_registry_allocates_nothing_and_finds_nothing() {
        let registry = Registry::<Arc<CondvarWake>>::new();
        assert_eq!(registry.lock().index.capacity(), 0);
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::NotFound);
        assert!(registry.is_empty());
    }

    #[test]
    fn ids_that_differ_in_any_byte_or_the_length_are_different_broadcasts() {
        let registry = Registry::<Arc<CondvarWake>>::new();
        for len in 1..80 {
            let id: String = (0..len).map(|n| char::from(b'a' + (n % 26) as u8)).collect();
            let _active = registry.begin(spec(&id, &[], false), Arc::new(CondvarWake::default()));
            for at in 0..len {
                let mut other = id.clone().into_bytes();
                other[at] = b'#';
                assert_eq!(registry.closed_claim_answer(&other), Some(ClaimOutcome::NotFound), "length {len}, byte {at}");
            }
            assert!(!registry.contains(&format!("{id}a")));
            assert!(!registry.contains(&id[..len - 1]));
            assert_eq!(registry.closed_claim_answer(id.as_bytes()), None);
        }
    }

    #[test]
    fn unknown_channel_is_not_found() {
        let registry = Registry::<Arc<CondvarWake>>::new();
        assert_eq!(registry.claim("nope", "a").outcome, ClaimOutcome::NotFound);
        assert_eq!(ClaimOutcome::NotFound.code(), -1);
        assert_eq!(ClaimOutcome::AlreadyClaimed.code(), -2);
        assert_eq!(ClaimOutcome::Won.code(), 0);
    }

    #[test]
    fn settled_without_winner_answers_not_found_until_removed() {
        let registry = Registry::new();
        let active = registry.begin(spec("c1", &["a"], false), Arc::new(CondvarWake::default()));
        assert_eq!(active.settle(), None);
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::NotFound);
        drop(active);
        assert!(registry.is_empty());
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::NotFound);
    }

    #[test]
    fn winner_stays_findable_during_stasis_so_late_claims_conflict() {
        let registry = Registry::new();
        let active = registry.begin(spec("c1", &["a", "b"], false), Arc::new(CondvarWake::default()));
        registry.claim("c1", "b");
        assert_eq!(winner(active.settle()).as_deref(), Some("b"));
        assert!(matches!(registry.views()[0].phase, Phase::InStasis { ref winner } if winner.as_str() == "b"));
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::AlreadyClaimed);
        drop(active);
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::NotFound);
    }

    #[test]
    fn dropping_the_handle_removes_the_broadcast_even_on_panic() {
        let registry = Registry::new();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _active = registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default()));
            panic!("boom");
        }));
        assert!(result.is_err());
        assert!(registry.is_empty());
    }
    use std::panic::AssertUnwindSafe;

    #[test]
    fn a_second_broadcast_on_the_channel_is_not_removed_by_the_first_handle() {
        let registry = Registry::new();
        let first = registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default()));
        let second = registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default()));
        drop(first);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.claim("c1", "a").outcome, ClaimOutcome::Won);
        assert!(second.is_claimed());
        drop(second);
        assert!(registry.is_empty());
    }

    #[test]
    fn notice_only_when_asked_and_lists_the_offered_apps() {
        let registry = Registry::new();
        let _quiet = registry.begin(spec("c1", &["a", "b"], false), Arc::new(CondvarWake::default()));
        assert_eq!(registry.claim("c1", "a").notice, None);
        let _loud = registry.begin(spec("c2", &["a", "b"], true), Arc::new(CondvarWake::default()));
        let notice = registry.claim("c2", "b").notice.expect("notice requested");
        assert_eq!(notice, ClaimedNotice { channel_id: "c2".into(), winner: "b".into(), offered: vec!["a".into(), "b".into()] });
    }

    #[test]
    fn detached_broadcast_stays_until_removed_by_id() {
        let registry = Registry::new();
        registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default())).detach();
        assert_eq!(registry.len(), 1);
        assert!(!registry.is_claimed_by_id("c1"));
        registry.claim("c1", "x");
        assert!(registry.is_claimed_by_id("c1"));
        assert_eq!(winner(registry.settle_by_id("c1")).as_deref(), Some("x"));
        assert!(registry.remove_by_id("c1"));
        assert!(registry.is_empty());
    }

    #[test]
    fn remove_generation_spares_a_later_broadcast_on_the_channel() {
        let registry = Registry::new();
        let first = registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default())).detach();
        assert!(registry.contains("c1"));
        let second = registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default())).detach();
        assert!(!registry.remove_generation("c1", first));
        assert!(registry.contains("c1"));
        assert!(registry.remove_generation("c1", second));
        assert!(!registry.contains("c1"));
    }

    #[test]
    fn a_claim_wakes_a_blocked_waiter() {
        let registry = Arc::new(Registry::new());
        let wake = Arc::new(CondvarWake::default());
        let active = registry.begin(spec("c1", &["a"], false), wake.clone());
        let claimer = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || registry.claim("c1", "a").outcome)
        };
        assert_eq!(wake.wait(Duration::from_secs(10)), 1);
        assert_eq!(claimer.join().unwrap(), ClaimOutcome::Won);
        assert_eq!(winner(active.settle()).as_deref(), Some("a"));
    }

    #[test]
    fn concurrent_claims_have_exactly_one_winner() {
        for round in 0..200 {
            let registry = Arc::new(Registry::new());
            let wake = Arc::new(CondvarWake::default());
            let id = format!("c{round}");
            let active = registry.begin(spec(&id, &[], false), wake.clone());
            let start = Arc::new(Barrier::new(8));
            let wins = Arc::new(AtomicUsize::new(0));
            let claimants: Vec<_> = (0..8)
                .map(|n| {
                    let (registry, start, wins, id) = (registry.clone(), start.clone(), wins.clone(), id.clone());
                    thread::spawn(move || {
                        start.wait();
                        let outcome = registry.claim(&id, &format!("app{n}")).outcome;
                        if outcome == ClaimOutcome::Won {
                            wins.fetch_add(1, Ordering::SeqCst);
                        } else {
                            assert_eq!(outcome, ClaimOutcome::AlreadyClaimed);
                        }
                    })
                })
                .collect();
            for claimant in claimants {
                claimant.join().unwrap();
            }
            assert_eq!(wins.load(Ordering::SeqCst), 1, "round {round}");
            assert_eq!(*wake.woken.lock().unwrap(), 1);
            assert!(active.settle().is_some());
        }
    }

    #[test]
    fn claims_racing_the_settle_never_win_after_it() {
        for round in 0..200 {
            let registry = Arc::new(Registry::new());
            let active = registry.begin(spec("c1", &[], false), Arc::new(CondvarWake::default()));
            let claimer = {
                let registry = registry.clone();
                thread::spawn(move || registry.claim("c1", "a").outcome)
            };
            let winner = active.settle();
            let outcome = claimer.join().unwrap();
            match winner {
                Some(_) => assert_eq!(outcome, ClaimOutcome::Won, "round {round}"),
                None => assert_eq!(outcome, ClaimOutcome::NotFound, "round {round}: a 204 for a call that timed out"),
            }
        }
    }
}
