//! ARI applications that act on what they are offered (writing what they
//! see into the call's record), and the ways calls are placed: N in
//! flight, or at a fixed rate.
//!
//! Every instant comes from the harness's WebSocket reader threads (the
//! moment an event was read), so a latency is the difference of two events
//! as one application saw them.

use crate::record::{CallRecord, Stage, Tracker};
use crate::target::Target;
use asterisk_harness::{AriApp, AriHttp, OriginateSpec};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often an application's worker looks at its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Threads that send `continue` for calls that reached their last stage.
const FINISHERS: usize = 2;


/// A set of connected ARI applications on one instance, each with a worker
/// that acts on its events: it records offers, claims at once when it is a
/// claimant (floor: sends `continue` for the gate), and sends `continue` for
/// every call that reaches its last stage so the dialplan can hang it up.
pub struct Pool {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    finish: Option<Sender<String>>,
    finishers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Connects `names` on `target`; the first `claimants` of them claim what they are offered.
    pub fn connect(target: &Target, names: &[String], claimants: usize) -> Pool {
        let stop = Arc::new(AtomicBool::new(false));
        let (finish, jobs) = channel::<String>();
        let jobs = Arc::new(Mutex::new(jobs));
        let finishers = (0..FINISHERS)
            .map(|_| {
                let (jobs, http) = (jobs.clone(), target.ast.ari());
                std::thread::spawn(move || finisher(&jobs, &http))
            })
            .collect();
        let workers = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let app = target.ast.connect_app(name);
                let worker = Worker {
                    index,
                    claims: index < claimants,
                    http: target.ast.ari(),
                    tracker: target.tracker.clone(),
                    finish: finish.clone(),
                };
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("bench-{name}"))
                    .spawn(move || worker.run(app, &stop))
                    .expect("start application worker")
            })
            .collect();
        Pool {
            stop,
            workers,
            finish: Some(finish),
            finishers,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.finish = None;
        for f in self.finishers.drain(..) {
            let _ = f.join();
        }
    }
}

/// Names `prefix-0`, `prefix-1`, … (zero-padded to `width` digits).
pub fn names(prefix: &str, count: usize, width: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{prefix}-{i:0width$}"))
        .collect()
}

fn finisher(jobs: &Mutex<Receiver<String>>, http: &AriHttp) {
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(id) = job else { return };
        http.continue_channel(&id);
    }
}

struct Worker {
    index: usize,
    claims: bool,
    http: AriHttp,
    tracker: Arc<Tracker>,
    finish: Sender<String>,
}

impl Worker {
    fn run(self, app: AriApp, stop: &AtomicBool) {
        let name = app.name().to_owned();
        while !stop.load(Ordering::SeqCst) {
            for (at, ev) in app.take_events(POLL) {
                let Some(id) = ev["channel"]["id"].as_str() else {
                    continue;
                };
                match (ev["type"].as_str().unwrap_or(""), ev["args"][0].as_str()) {
                    ("CallBroadcast", _) => {
                        self.offered(id, at, || self.http.claim(id, &name).status)
                    }
                    ("StasisStart", Some("gate")) => {
                        self.offered(id, at, || self.http.continue_channel(id).status)
                    }
                    ("StasisStart", Some(stage)) => {
                        let stage = match stage {
                            "won" => Stage::Won,
                            "fallback" => Stage::Fallback,
                            "done" => Stage::Done,
                            _ => continue,
                        };
                        self.tracker
                            .update(id, |r| r.stage = Some((stage, self.index, at)));
                        let _ = self.finish.send(id.to_owned());
                    }
                    ("StasisEnd", _) => self.tracker.update(id, |r| {
                        if r.stage.is_some_and(|(_, app, _)| app == self.index) {
                            r.ended = Some(at);
                        }
                    }),
                    _ => {}
                }
            }
        }
        // Dropping `app` closes the WebSocket and waits until Asterisk forgets it.
    }

    /// Records an offer and, for a claimant, takes the call at once.
    fn offered(&self, id: &str, at: Instant, take: impl FnOnce() -> u16) {
        self.tracker.update(id, |r| r.offers.push((self.index, at)));
        if self.claims {
            let sent = Instant::now();
            let status = take();
            let answered = Instant::now();
            self.tracker.count_claim(status);
            self.tracker.update(id, |r| {
                r.claims.push((self.index, status));
                r.claim_times.push((self.index, sent, answered));
            });
        }
    }
}

/// A call to place: extension of `[bench]` and channel variables.
#[derive(Clone, Debug)]
pub struct Call {
    pub exten: &'static str,
    pub vars: Vec<(&'static str, String)>,
}

impl Call {
    pub fn new(exten: &'static str, app: &str) -> Call {
        Call {
            exten,
            vars: vec![("APP", app.to_owned())],
        }
    }

    pub fn var(mut self, name: &'static str, value: &str) -> Call {
        self.vars.push((name, value.to_owned()));
        self
    }
}

/// What became of one call.
#[derive(Debug)]
pub struct Outcome {
    /// Id of the channel that ran `[bench]` (empty when originate failed).
    pub id: String,
    pub record: CallRecord,
    /// Why the call failed to be placed or to end in time.
    pub error: Option<String>,
}

/// Channel ids of the form Asterisk gives a channel by default (`epoch.n`,
/// main/channel_internal_api.c) for both halves of a Local pair, always 16
/// bytes: the time now in seconds and a sequence number of five digits,
/// unique unless 100,000 ids were made within one second. The harness's
/// own ids carry the bench's PID, and the cost of hashing an id (in the
/// module's registry, row 8) depends on its length: with these, instruction
/// counts change neither with the PID nor with how many calls came before.
fn asterisk_style_ids() -> (String, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let n = NEXT.fetch_add(2, Ordering::Relaxed) % 100_000;
    (format!("{now}.{n:05}"), format!("{now}.{:05}", n + 1))
}

/// Originates `call`: a Local channel whose `;2` half runs `exten@bench`.
pub fn originate(target: &Target, call: &Call) -> Result<(String, String), String> {
    let (one, two) = asterisk_style_ids();
    let spec = call
        .vars
        .iter()
        .fold(OriginateSpec::new(call.exten, "bench"), |spec, (k, v)| {
            spec.var(k, v)
        })
        .channel_id(&one)
        .other_channel_id(&two);
    target
        .ast
        .try_originate(spec)
        .map(|o| (o.id, o.local_one_id))
        .map_err(|r| format!("originate {}: {} {}", call.exten, r.status, r.body.trim()))
}

/// Places `total` calls keeping `in_flight` of them going (a new one as soon
/// as one ends); a call that has not ended `deadline` after it was placed is
/// given up as failed.
pub fn closed_loop(
    target: &Target,
    total: usize,
    in_flight: usize,
    deadline: Duration,
    mut make: impl FnMut(usize) -> Call,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(total);
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut next = 0;
    while next < total || !pending.is_empty() {
        while pending.len() < in_flight && next < total {
            match originate(target, &make(next)) {
                Ok((id, _)) => pending.push((id, Instant::now())),
                Err(e) => outcomes.push(Outcome {
                    id: String::new(),
                    record: CallRecord::default(),
                    error: Some(e),
                }),
            }
            next += 1;
        }
        let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
        let ended = target.tracker.wait_ended(&ids, Duration::from_millis(250));
        let now = Instant::now();
        pending.retain(|(id, placed)| {
            let done = ended.contains(id);
            let expired = !done && now.duration_since(*placed) > deadline;
            if done || expired {
                let error = expired.then(|| format!("call {id} did not end within {deadline:?}"));
                outcomes.push(Outcome {
                    id: id.clone(),
                    record: target.tracker.take(id),
                    error,
                });
            }
            !(done || expired)
        });
    }
    outcomes
}

/// Calls placed at a fixed rate.
pub struct RateRun {
    pub outcomes: Vec<Outcome>,
    /// Calls placed per second, from the first scheduled instant to the last originate answered.
    pub achieved_rate: f64,
}

/// Places calls at `rate` per second for `duration` from `originators`
/// threads, then waits for all of them to end (`deadline` after the last).
pub fn at_rate(
    target: &Target,
    rate: f64,
    duration: Duration,
    originators: usize,
    deadline: Duration,
    make: impl Fn(usize) -> Call + Sync,
) -> RateRun {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    let start = Instant::now() + Duration::from_millis(20);
    let next = AtomicUsize::new(0);
    let placed: Mutex<Vec<Result<(String, String), String>>> =
        Mutex::new(Vec::with_capacity(total));
    let last_answer = Mutex::new(start);
    std::thread::scope(|s| {
        for _ in 0..originators {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return;
                }
                let when = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = when.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let result = originate(target, &make(i));
                let now = Instant::now();
                let mut last = last_answer.lock().unwrap_or_else(|e| e.into_inner());
                *last = (*last).max(now);
                drop(last);
                placed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(result);
            });
        }
    });
    let placed = placed.into_inner().unwrap_or_else(|e| e.into_inner());
    let elapsed = last_answer
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .duration_since(start)
        .as_secs_f64();
    let achieved_rate = if total > 1 && elapsed > 0.0 {
        (total - 1) as f64 / elapsed
    } else {
        rate
    };
    let ids: Vec<String> = placed
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(id, _)| id.clone()))
        .collect();
    // Polled, not woken per event: hundreds of calls may be pending.
    let until = Instant::now() + deadline;
    let mut waiting = ids;
    while !waiting.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        let ended = target.tracker.ended_among(&waiting);
        waiting.retain(|id| !ended.contains(id));
    }
    let outcomes = placed
        .into_iter()
        .map(|r| match r {
            Ok((id, _)) => {
                let record = target.tracker.take(&id);
                let error = record
                    .ended
                    .is_none()
                    .then(|| format!("call {id} did not end within {deadline:?} of the last call"));
                Outcome { id, record, error }
            }
            Err(e) => Outcome {
                id: String::new(),
                record: CallRecord::default(),
                error: Some(e),
            },
        })
        .collect();
    RateRun {
        outcomes,
        achieved_rate,
    }
}

/// Waits until the instance has no channel left (false after `timeout`).
pub fn wait_idle(target: &Target, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let r = target.ast.ari().get("/channels");
        if r.status == 200 && r.json().as_array().is_some_and(|a| a.is_empty()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU time (user + system, all threads) the process has used so far, in ms
/// (`/proc/<pid>/stat`, in USER_HZ = 100 ticks per second).
pub fn cpu_ms(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}
