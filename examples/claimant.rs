//! A small ARI claimant for `StasisBroadcast()`: adapt it to your own client.
//!
//! What a claimant does, for every call it is offered:
//!
//! 1. it receives a `CallBroadcast` event on its ARI WebSocket;
//! 2. it waits `delay` (a real application would decide here whether it wants the call);
//! 3. it sends `POST /ari/events/claim?channelId=..&application=..`;
//! 4. on `204` it has won: the channel enters `Stasis(<this app>)` and a
//!    `StasisStart` event follows; the claimant keeps the call for `hold`
//!    (a real application would answer, play, bridge...) and then sends
//!    `POST /ari/channels/{id}/continue`, so the dialplan goes on after
//!    `StasisBroadcast()` with `STASISSTATUS=SUCCESS`;
//! 5. on `409` another application won the race; on `404` the broadcast was
//!    already over (timed out, or the winner's Stasis session had ended).
//!
//! The WebSocket side uses the test harness's `AriApp` (a thread that stores
//! every event with the instant it was read) and the HTTP side its `AriHttp`
//! (plain blocking requests). Replace both with your own ARI client: the claim
//! logic is all in `handle_offer`.
//!
//! `demo.rs` includes this file as a module. Built on its own
//! (`cargo run --example claimant`) it only prints how it is used.

#![allow(dead_code)]

use asterisk_harness::{AriApp, AriHttp};
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the winner waits for `StasisStart` after its `204`.
const STASIS_START_DEADLINE: Duration = Duration::from_secs(5);
/// How often the event loop looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);

/// How a claimant behaves.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Milliseconds to wait between `CallBroadcast` and the claim (picked at random in the range).
    pub delay_ms: RangeInclusive<u64>,
    /// How long the winner keeps the call in Stasis before `continue`.
    pub hold: Duration,
    /// Print one line per offer.
    pub verbose: bool,
}

/// What happened to one offer (one `CallBroadcast` received).
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Channel id from the event (`channel.id`).
    pub channel_id: String,
    /// Channel name from the event (`channel.name`).
    pub channel_name: String,
    /// When the `CallBroadcast` was read.
    pub offered_at: Instant,
    /// When the claim request was sent.
    pub claim_sent_at: Option<Instant>,
    /// HTTP status of the claim (204 won, 409 lost, 404 over).
    pub claim_status: Option<u16>,
    /// When `StasisStart` was read (winner only).
    pub stasis_start_at: Option<Instant>,
    /// HTTP status of `continue` (winner only).
    pub continue_status: Option<u16>,
}

/// A running claimant: one ARI application, one event-loop thread, one worker thread per offer.
pub struct Claimant {
    name: String,
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    event_loop: Option<JoinHandle<()>>,
}

impl Claimant {
    /// Starts claiming for `app` (already connected), using `http` for claim and continue.
    pub fn start(app: AriApp, http: AriHttp, policy: Policy) -> Claimant {
        let name = app.name().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let (s2, a2) = (stop.clone(), attempts.clone());
        let event_loop = std::thread::Builder::new()
            .name(format!("claimant-{name}"))
            .spawn(move || event_loop(Arc::new(app), http, policy, s2, a2))
            .expect("start claimant thread");
        Claimant { name, stop, attempts, event_loop: Some(event_loop) }
    }

    /// The ARI application name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything this claimant was offered so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the event loop, waits for the offers in progress, disconnects the application.
    pub fn stop(mut self) -> Vec<Attempt> {
        self.shutdown();
        self.attempts()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.event_loop.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Claimant {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Reads `CallBroadcast` events and hands each new one to its own worker thread.
fn event_loop(app: Arc<AriApp>, http: AriHttp, policy: Policy, stop: Arc<AtomicBool>, attempts: Arc<Mutex<Vec<Attempt>>>) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut workers = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let next = app.wait_for(
            |ev| ev["type"] == "CallBroadcast" && !seen.contains(ev["channel"]["id"].as_str().unwrap_or("")),
            POLL,
        );
        let Some((offered_at, ev)) = next else { continue };
        let channel_id = ev["channel"]["id"].as_str().unwrap_or("").to_string();
        let channel_name = ev["channel"]["name"].as_str().unwrap_or("").to_string();
        seen.insert(channel_id.clone());
        let index = {
            let mut g = attempts.lock().unwrap_or_else(|e| e.into_inner());
            g.push(Attempt {
                channel_id,
                channel_name,
                offered_at,
                claim_sent_at: None,
                claim_status: None,
                stasis_start_at: None,
                continue_status: None,
            });
            g.len() - 1
        };
        let (app, http, policy, attempts) = (app.clone(), http.clone(), policy.clone(), attempts.clone());
        workers.push(std::thread::spawn(move || handle_offer(&app, &http, &policy, &attempts, index)));
    }
    for w in workers {
        let _ = w.join();
    }
    // Dropping the last reference to `app` closes the WebSocket.
}

/// The claim logic for one offer.
fn handle_offer(app: &AriApp, http: &AriHttp, policy: &Policy, attempts: &Mutex<Vec<Attempt>>, index: usize) {
    let record = |f: &dyn Fn(&mut Attempt)| f(&mut attempts.lock().unwrap_or_else(|e| e.into_inner())[index]);
    let (channel_id, channel_name) = {
        let g = attempts.lock().unwrap_or_else(|e| e.into_inner());
        (g[index].channel_id.clone(), g[index].channel_name.clone())
    };
    let me = app.name();

    // 1. Think about it.
    let delay = rand::rngs::SmallRng::from_os_rng().random_range(policy.delay_ms.clone());
    std::thread::sleep(Duration::from_millis(delay));

    // 2. Claim.
    let sent = Instant::now();
    let r = http.claim(&channel_id, me);
    record(&|a| {
        a.claim_sent_at = Some(sent);
        a.claim_status = Some(r.status);
    });
    match r.status {
        204 => {
            // 3. Won: the channel enters Stasis(me); StasisStart may even arrive before the 204.
            let Some((at, _)) = app.wait_for_channel_event("StasisStart", &channel_id, STASIS_START_DEADLINE) else {
                eprintln!("  [{me}] {channel_name}: claimed (204) but no StasisStart within {STASIS_START_DEADLINE:?}");
                return;
            };
            record(&|a| a.stasis_start_at = Some(at));
            // 4. "Handle" the call, then give it back to the dialplan.
            std::thread::sleep(policy.hold);
            let c = http.continue_channel(&channel_id);
            record(&|a| a.continue_status = Some(c.status));
            if policy.verbose {
                let ms = at.saturating_duration_since(sent).as_secs_f64() * 1000.0;
                println!(
                    "  [{me}] {channel_name}: waited {delay} ms, claim 204 (won), StasisStart after {ms:.2} ms, continue {}",
                    c.status
                );
            }
        }
        409 => {
            if policy.verbose {
                println!("  [{me}] {channel_name}: waited {delay} ms, claim 409 (lost: already claimed by another application)");
            }
        }
        404 => {
            if policy.verbose {
                println!("  [{me}] {channel_name}: waited {delay} ms, claim 404 (broadcast over: timed out or winner done)");
            }
        }
        other => eprintln!("  [{me}] {channel_name}: claim answered {other}: {}", r.body),
    }
}

fn main() {
    println!(
        "claimant: the ARI claimant used by the StasisBroadcast demo.\n\
         \n\
         Run the demo, which boots Asterisk with the module and starts three claimants:\n\
         \n    make demo\n\n\
         This file is meant to be read and adapted: on each CallBroadcast it waits,\n\
         POSTs /ari/events/claim?channelId=..&application=.., and on 204 waits for\n\
         StasisStart and POSTs /ari/channels/{{id}}/continue; on 409 it lost the race.\n\
         It takes its WebSocket events from the test harness (tests/harness), which\n\
         only connects to Asterisk instances it started itself; to use it against\n\
         your own Asterisk, give Claimant your ARI client's WebSocket and HTTP."
    );
}
