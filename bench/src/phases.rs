//! The seven measurements. Each connects its own applications on every
//! instance (so the set of registered applications is exactly what it says),
//! runs in alternating rounds, and disconnects them at the end.

use crate::engine::{at_rate, closed_loop, cpu_ms, names, originate, wait_idle, Call, Outcome, Pool};
use crate::record::{CallRecord, Stage};
use crate::stats::{chi_square_uniform, Summary};
use crate::target::{alternate, Kind, Target};
use serde::Serialize;
use std::time::{Duration, Instant};

/// A call not over by then (its broadcast waits at most 5 s) has failed.
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(10);
/// Claimed calls: a 5 s window, the winner's StasisStart says `won`.
const SB_CLAIM: &str = "5000,,won";
/// A broadcast nobody is offered, over at once: TIMEOUT, then the fallback.
const SB_UNCLAIMED: &str = "0,^nobody$,won";
/// Requested timeout of the `tmo` extension, ms.
const REQUESTED_TIMEOUT_MS: f64 = 100.0;
/// Throughput: a step fails when p99 claim latency exceeds this (ms).
const P99_LIMIT_MS: f64 = 100.0;
/// Throughput: a step fails when fewer calls than this share of the rate could be placed.
const MIN_ACHIEVED: f64 = 0.9;
/// Errors kept per measurement, to say what went wrong.
const ERRORS_KEPT: usize = 5;

/// How much of everything to do.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub quick: bool,
    pub latency_calls: usize,
    pub latency_rounds: usize,
    pub fan_apps: Vec<usize>,
    pub fan_calls: usize,
    pub fan_rounds: usize,
    pub hangup_calls: usize,
    pub hangup_rounds: usize,
    pub timeout_calls: usize,
    pub timeout_rounds: usize,
    pub timeout_in_flight: usize,
    pub rate_start: f64,
    pub rate_max: f64,
    pub rate_step_secs: f64,
    pub rate_refinements: usize,
    pub fairness_calls: usize,
    pub fairness_rounds: usize,
    pub fairness_in_flight: usize,
    pub memory_calls: usize,
    pub memory_rounds: usize,
    pub memory_in_flight: usize,
    pub settle_secs: f64,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            quick: false,
            latency_calls: 1000,
            latency_rounds: 50,
            fan_apps: vec![1, 10, 50, 100],
            fan_calls: 100,
            fan_rounds: 10,
            hangup_calls: 60,
            hangup_rounds: 6,
            timeout_calls: 200,
            timeout_rounds: 10,
            timeout_in_flight: 4,
            rate_start: 10.0,
            rate_max: 1280.0,
            rate_step_secs: 4.0,
            rate_refinements: 2,
            fairness_calls: 2000,
            fairness_rounds: 10,
            fairness_in_flight: 4,
            memory_calls: 10_000,
            memory_rounds: 10,
            memory_in_flight: 8,
            settle_secs: 3.0,
        }
    }

    pub fn quick() -> Plan {
        Plan {
            quick: true,
            latency_calls: 100,
            latency_rounds: 2,
            fan_apps: vec![1, 10, 50, 100],
            fan_calls: 4,
            fan_rounds: 1,
            hangup_calls: 6,
            hangup_rounds: 2,
            timeout_calls: 20,
            timeout_rounds: 1,
            timeout_in_flight: 4,
            rate_start: 10.0,
            rate_max: 20.0,
            rate_step_secs: 1.0,
            rate_refinements: 0,
            fairness_calls: 200,
            fairness_rounds: 1,
            fairness_in_flight: 4,
            memory_calls: 500,
            memory_rounds: 1,
            memory_in_flight: 8,
            settle_secs: 1.0,
        }
    }
}

/// One value per implementation.
#[derive(Clone, Debug, Serialize)]
pub struct ByKind<T> {
    pub ours: Option<T>,
    pub reference: Option<T>,
    pub floor: Option<T>,
}

impl<T> Default for ByKind<T> {
    fn default() -> Self {
        ByKind {
            ours: None,
            reference: None,
            floor: None,
        }
    }
}

impl<T> ByKind<T> {
    pub fn get(&self, kind: Kind) -> Option<&T> {
        match kind {
            Kind::Ours => self.ours.as_ref(),
            Kind::Reference => self.reference.as_ref(),
            Kind::Floor => self.floor.as_ref(),
        }
    }

    fn slot(&mut self, kind: Kind) -> &mut Option<T> {
        match kind {
            Kind::Ours => &mut self.ours,
            Kind::Reference => &mut self.reference,
            Kind::Floor => &mut self.floor,
        }
    }

    pub fn set(&mut self, kind: Kind, value: T) {
        *self.slot(kind) = Some(value);
    }

    pub(crate) fn entry(&mut self, kind: Kind) -> &mut T
    where
        T: Default,
    {
        self.slot(kind).get_or_insert_with(T::default)
    }

    pub(crate) fn map<U>(self, f: impl Fn(T) -> U) -> ByKind<U> {
        ByKind {
            ours: self.ours.map(&f),
            reference: self.reference.map(&f),
            floor: self.floor.map(&f),
        }
    }
}

/// Samples of one measurement (ms) and the calls that gave none.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    pub summary: Option<Summary>,
    pub failures: usize,
    pub errors: Vec<String>,
    pub samples: Vec<f64>,
    /// How many samples there were at the end of each round (for the intervals).
    pub rounds: Vec<usize>,
}

impl Measured {
    pub(crate) fn push(&mut self, ms: f64) {
        self.samples.push((ms * 1000.0).round() / 1000.0);
    }

    pub(crate) fn fail(&mut self, why: String) {
        self.failures += 1;
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(why);
        }
    }

    pub(crate) fn finish(mut self) -> Measured {
        self.summary = Summary::of(&self.samples);
        self
    }

    /// Marks the end of a round.
    pub(crate) fn end_round(&mut self) {
        self.rounds.push(self.samples.len());
    }

    /// The samples round by round (all in one when no round was marked).
    pub fn by_round(&self) -> Vec<&[f64]> {
        let mut start = 0;
        let mut out: Vec<&[f64]> = Vec::new();
        for &end in &self.rounds {
            out.push(&self.samples[start..end]);
            start = end;
        }
        if start < self.samples.len() || out.is_empty() {
            out.push(&self.samples[start..]);
        }
        out
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn all(targets: &[Target]) -> Vec<&Target> {
    targets.iter().collect()
}

fn broadcasters(targets: &[Target]) -> Vec<&Target> {
    targets.iter().filter(|t| t.kind.broadcasts()).collect()
}

fn pools(targets: &[&Target], apps: &[String], claimants: usize) -> Vec<Pool> {
    targets
        .iter()
        .map(|t| Pool::connect(t, apps, claimants))
        .collect()
}

/// Why a call gave no sample.
pub(crate) fn describe(outcome: &Outcome) -> String {
    if let Some(e) = &outcome.error {
        return e.clone();
    }
    let r = &outcome.record;
    format!(
        "call {}: {} offer(s), claims {:?}, last stage {:?}",
        outcome.id,
        r.offers.len(),
        r.claims,
        r.stage.map(|(s, app, _)| (s, app))
    )
}

pub(crate) fn progress(phase: &str, kind: Kind, detail: &str) {
    eprintln!("[bench] {phase:<14} {:<9} {detail}", kind.label());
}

pub(crate) fn p50_line(m: &Measured) -> String {
    match &m.summary {
        Some(s) => format!(
            "{} samples, p50 {:.2} ms, p99 {:.2} ms, {} failed",
            s.n, s.p50, s.p99, m.failures
        ),
        None => format!("no samples, {} failed", m.failures),
    }
}

// ------------------------------------------------------------ 1. claim latency

/// Four applications, one of which claims every call at once, one call at a
/// time: from the claimant's CallBroadcast to its StasisStart. Floor: from
/// the StasisStart of `Stasis(app,gate)` to the StasisStart of
/// `Stasis(app,won)`, the application's `continue` standing in for the claim.
/// The winner's claim latency in parts (see `CallRecord::claim_parts`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClaimParts {
    pub offer_to_request: Measured,
    pub request_to_answer: Measured,
    pub answer_to_stasis_start: Measured,
}

pub fn claim_latency(targets: &[Target], plan: &Plan) -> (ByKind<Measured>, ByKind<ClaimParts>) {
    let apps = names("claim", 4, 1);
    let targets = all(targets);
    let _pools = pools(&targets, &apps, 1);
    let mut out: ByKind<Measured> = ByKind::default();
    let mut parts: ByKind<ClaimParts> = ByKind::default();
    let per_round = plan.latency_calls.div_ceil(plan.latency_rounds);
    alternate(&targets, plan.latency_rounds, |t, round| {
        let m = out.entry(t.kind);
        let p = parts.entry(t.kind);
        for o in closed_loop(t, per_round, 1, CALL_DEADLINE, |_| {
            Call::new("claim", &apps[0]).var("SB", SB_CLAIM)
        }) {
            match o.record.claim_latency() {
                Some((0, d)) if o.error.is_none() => m.push(ms(d)),
                _ => m.fail(describe(&o)),
            }
            if let Some([a, b, c]) = o.record.claim_parts() {
                p.offer_to_request.push(a);
                p.request_to_answer.push(b);
                p.answer_to_stasis_start.push(c);
            }
        }
        m.end_round();
        if (round + 1) % 10 == 0 || round + 1 == plan.latency_rounds {
            progress(
                "claim latency",
                t.kind,
                &format!(
                    "round {}/{}: {}",
                    round + 1,
                    plan.latency_rounds,
                    p50_line(&m.clone().finish())
                ),
            );
        }
    });
    let parts = parts.map(|p| ClaimParts {
        offer_to_request: p.offer_to_request.finish(),
        request_to_answer: p.request_to_answer.finish(),
        answer_to_stasis_start: p.answer_to_stasis_start.finish(),
    });
    (out.map(Measured::finish), parts)
}

// ------------------------------------------------------------------ 2. fan-out

/// One fan-out size: delivery spread and dialplan time.
#[derive(Clone, Debug, Serialize)]
pub struct FanPoint {
    pub apps: usize,
    /// First to last CallBroadcast of one call, across the applications.
    pub spread: ByKind<Measured>,
    /// Dialplan time inside `StasisBroadcast(0)` (floor: `NoOp()`).
    pub start: ByKind<Measured>,
}

/// Reads `GLOBAL(T_<id>)` = `<t0> <t1> <status>`: dialplan seconds, and the status.
pub(crate) fn timed_global(t: &Target, id: &str) -> Result<(f64, String), String> {
    let value = t
        .ast
        .global_var(&format!("T_{id}"))
        .ok_or_else(|| format!("call {id}: no T_{id} global"))?;
    let mut parts = value.split_whitespace();
    let mut stamp = || parts.next().and_then(|p| p.parse::<f64>().ok());
    let (Some(t0), Some(t1)) = (stamp(), stamp()) else {
        return Err(format!("call {id}: bad time stamps {value:?}"));
    };
    Ok((t1 - t0, parts.next().unwrap_or("").to_owned()))
}

/// With 1, 10, 50, 100 registered applications, each call broadcast with a 0
/// ms timeout (nobody claims): first-to-last delivery and dialplan time.
pub fn fan_out(targets: &[Target], plan: &Plan) -> Vec<FanPoint> {
    let mut points = Vec::new();
    for &n in &plan.fan_apps {
        let apps = names("fan", n, 3);
        // The floor has nothing to fan out: one application for its `done` stage.
        let _pools: Vec<Pool> = targets
            .iter()
            .map(|t| {
                Pool::connect(
                    t,
                    if t.kind.broadcasts() {
                        &apps
                    } else {
                        &apps[..1]
                    },
                    0,
                )
            })
            .collect();
        let mut spread: ByKind<Measured> = ByKind::default();
        let mut start: ByKind<Measured> = ByKind::default();
        alternate(&all(targets), plan.fan_rounds, |t, _| {
            let outcomes = closed_loop(
                t,
                plan.fan_calls.div_ceil(plan.fan_rounds),
                1,
                CALL_DEADLINE,
                |_| Call::new("fan", &apps[0]),
            );
            for o in outcomes {
                let (sp, st) = (spread.entry(t.kind), start.entry(t.kind));
                if o.error.is_some() {
                    sp.fail(describe(&o));
                    st.fail(describe(&o));
                    continue;
                }
                if t.kind.broadcasts() {
                    match o.record.offer_spread() {
                        Some(d) if o.record.offers.len() == n => sp.push(ms(d)),
                        _ => sp.fail(format!(
                            "call {}: {} of {n} applications offered",
                            o.id,
                            o.record.offers.len()
                        )),
                    }
                }
                match timed_global(t, &o.id) {
                    Ok((secs, _)) => st.push(secs * 1000.0),
                    Err(e) => st.fail(e),
                }
            }
            spread.entry(t.kind).end_round();
            start.entry(t.kind).end_round();
        });
        for kind in Kind::ALL {
            if let Some(m) = start.get(kind) {
                progress(
                    "fan-out",
                    kind,
                    &format!("{n} apps: start {}", p50_line(&m.clone().finish())),
                );
            }
        }
        let mut spread = spread.map(Measured::finish);
        spread.floor = None;
        points.push(FanPoint {
            apps: n,
            spread,
            start: start.map(Measured::finish),
        });
    }
    points
}

// ------------------------------------------------------------ 3. hang-up release

/// A 10 s broadcast (floor: a call in `Stasis()`); 100 to 300 ms after the
/// offer (spread evenly over the calls, so a polling wait is caught at every
/// phase of its period) the caller (the Local channel's other half) hangs up.
/// From just before the hang-up request to the ChannelDestroyed of the
/// broadcast channel, as seen by an application subscribed to all channels.
pub fn hangup_release(targets: &[Target], plan: &Plan) -> ByKind<Measured> {
    let apps = names("watch", 1, 1);
    let targets = all(targets);
    let _pools = pools(&targets, &apps, 0);
    let observers: Vec<_> = targets
        .iter()
        .map(|t| {
            t.ast
                .connect_app_with("observer", "api_key=test:test&subscribeAll=true")
        })
        .collect();
    let mut out: ByKind<Measured> = ByKind::default();
    alternate(&targets, plan.hangup_rounds, |t, _| {
        let observer = &observers[targets
            .iter()
            .position(|x| std::ptr::eq(*x, t))
            .expect("target")];
        let m = out.entry(t.kind);
        let per_round = plan.hangup_calls.div_ceil(plan.hangup_rounds);
        for i in 0..per_round {
            let delay = Duration::from_millis(100 + (200 * i as u64) / per_round as u64);
            match hangup_once(t, observer, &apps[0], delay) {
                Ok(d) => m.push(ms(d)),
                Err(e) => m.fail(e),
            }
        }
        m.end_round();
        progress("hang-up", t.kind, &p50_line(&m.clone().finish()));
    });
    out.map(Measured::finish)
}

fn hangup_once(
    t: &Target,
    observer: &asterisk_harness::AriApp,
    app: &str,
    delay: Duration,
) -> Result<Duration, String> {
    let (id, caller) = originate(t, &Call::new("hang", app))?;
    let result = (|| {
        if !t
            .tracker
            .wait_for(&id, Duration::from_secs(5), |r| !r.offers.is_empty())
        {
            return Err(format!("call {id}: not offered within 5 s"));
        }
        std::thread::sleep(delay);
        observer.take_events(Duration::ZERO);
        let hung_up = Instant::now();
        let r = t.ast.hangup(&caller);
        if r.status != 204 {
            return Err(format!(
                "call {id}: hang-up of {caller} answered {} {}",
                r.status, r.body
            ));
        }
        let deadline = hung_up + Duration::from_secs(5);
        while Instant::now() < deadline {
            for (at, ev) in observer.take_events(Duration::from_millis(50)) {
                if ev["type"] == "ChannelDestroyed" && ev["channel"]["id"] == id.as_str() {
                    return Ok(at.saturating_duration_since(hung_up));
                }
            }
        }
        Err(format!(
            "call {id}: no ChannelDestroyed within 5 s of the hang-up"
        ))
    })();
    t.tracker.take(&id);
    result
}

// ---------------------------------------------------------- 4. timeout accuracy

/// `StasisBroadcast(100)` with one application that never claims (floor:
/// `Wait(0.1)`): dialplan time stamps around it, minus 100 ms.
pub fn timeout_accuracy(targets: &[Target], plan: &Plan) -> ByKind<Measured> {
    let apps = names("idle", 1, 1);
    let targets = all(targets);
    let _pools = pools(&targets, &apps, 0);
    let mut out: ByKind<Measured> = ByKind::default();
    alternate(&targets, plan.timeout_rounds, |t, _| {
        let m = out.entry(t.kind);
        let per_round = plan.timeout_calls.div_ceil(plan.timeout_rounds);
        for o in closed_loop(t, per_round, plan.timeout_in_flight, CALL_DEADLINE, |_| {
            Call::new("tmo", &apps[0])
        }) {
            if o.error.is_some() {
                m.fail(describe(&o));
                continue;
            }
            match timed_global(t, &o.id) {
                Ok((_, status)) if t.kind.broadcasts() && status != "TIMEOUT" => {
                    m.fail(format!("call {}: STASISSTATUS {status:?}", o.id))
                }
                Ok((secs, _)) => m.push(secs * 1000.0 - REQUESTED_TIMEOUT_MS),
                Err(e) => m.fail(e),
            }
        }
        m.end_round();
        progress("timeout", t.kind, &p50_line(&m.clone().finish()));
    });
    out.map(Measured::finish)
}

// ---------------------------------------------------------------- 5. throughput

/// One rate tried.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub rate: f64,
    pub achieved_rate: f64,
    pub calls: usize,
    pub failures: usize,
    pub latency: Option<Summary>,
    /// Asterisk's CPU time per call over the step and its drain (ms).
    pub cpu_ms_per_call: Option<f64>,
    pub pass: bool,
    pub why: String,
}

/// The rates tried on one implementation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ladder {
    /// Highest rate (calls/s) that passed; 0 if none did.
    pub sustained: f64,
    pub first_failed: Option<f64>,
    /// Asterisk's CPU time per call (ms) over the steps at rates every
    /// implementation passed: less noisy than where the ladder stops.
    pub cpu_ms_per_call: Option<f64>,
    pub steps: Vec<Step>,
}

/// Eight racing applications, calls placed at a fixed rate for a few
/// seconds; the rate doubles every two steps (×√2) until a step fails (p99
/// claim latency over 100 ms, a call not won and over, or the rate not
/// reached), then bisects between the last pass and the first failure.
pub fn throughput(targets: &[Target], plan: &Plan) -> ByKind<Ladder> {
    let apps = names("race", 8, 1);
    let targets = all(targets);
    let _pools = pools(&targets, &apps, apps.len());
    let mut out: ByKind<Ladder> = ByKind::default();
    let mut rate = plan.rate_start;
    let mut rung = 0;
    while rate <= plan.rate_max + 1e-9 {
        let mut climbing: Vec<&Target> = targets
            .iter()
            .copied()
            .filter(|t| out.get(t.kind).is_none_or(|l| l.first_failed.is_none()))
            .collect();
        // A different implementation first at every rate.
        let first = rung % climbing.len().max(1);
        climbing.rotate_left(first);
        if climbing.is_empty() {
            break;
        }
        alternate(&climbing, 1, |t, _| {
            try_step(t, &apps, rate, plan, out.entry(t.kind))
        });
        rung += 1;
        rate = plan.rate_start * 2f64.powf(rung as f64 / 2.0);
    }
    for refinement in 0..plan.rate_refinements {
        let mut refinable: Vec<&Target> = targets
            .iter()
            .copied()
            .filter(|t| {
                out.get(t.kind)
                    .is_some_and(|l| l.sustained > 0.0 && l.first_failed.is_some())
            })
            .collect();
        let first = (rung + refinement) % refinable.len().max(1);
        refinable.rotate_left(first);
        alternate(&refinable, 1, |t, _| {
            let ladder = out.entry(t.kind);
            let rate = (ladder.sustained * ladder.first_failed.unwrap_or(ladder.sustained)).sqrt();
            try_step(t, &apps, rate, plan, ladder);
        });
    }
    let passed_by_all = |rate: f64| passed_by_all(&out, rate);
    let per_call: Vec<(Kind, Option<f64>)> = Kind::ALL
        .iter()
        .filter_map(|&kind| {
            let (cpu, calls) = out
                .get(kind)?
                .steps
                .iter()
                .filter(|st| st.pass && passed_by_all(st.rate))
                .filter_map(|st| Some((st.cpu_ms_per_call? * st.calls as f64, st.calls)))
                .fold((0.0, 0), |(c, n), (sc, sn)| (c + sc, n + sn));
            Some((kind, (calls > 0).then(|| cpu / calls as f64)))
        })
        .collect();
    for (kind, cpu) in per_call {
        out.entry(kind).cpu_ms_per_call = cpu;
    }
    out
}

/// Whether every implementation passed the step at `rate`.
pub(crate) fn passed_by_all(ladders: &ByKind<Ladder>, rate: f64) -> bool {
    Kind::ALL.iter().all(|&k| {
        ladders.get(k).is_none_or(|l| {
            l.steps
                .iter()
                .any(|st| st.pass && (st.rate - rate).abs() < 0.05)
        })
    })
}

/// One rate on one implementation; a failed step is tried once more before
/// it counts, so a spike of the (shared) machine does not end the ladder.
/// The failed try stays in the steps, marked as retried.
fn try_step(t: &Target, apps: &[String], rate: f64, plan: &Plan, ladder: &mut Ladder) {
    let mut step = rate_step(t, apps, rate, plan);
    if !step.pass {
        step.why = format!("{} (tried again)", step.why);
        ladder.steps.push(step);
        step = rate_step(t, apps, rate, plan);
    }
    record_step(ladder, step);
}

fn record_step(ladder: &mut Ladder, step: Step) {
    if step.pass {
        ladder.sustained = ladder.sustained.max(step.rate);
    } else {
        ladder.first_failed = Some(ladder.first_failed.map_or(step.rate, |f| f.min(step.rate)));
    }
    ladder.steps.push(step);
}

fn rate_step(t: &Target, apps: &[String], rate: f64, plan: &Plan) -> Step {
    t.tracker.take_claim_counts();
    let cpu_before = cpu_ms(t.ast.pid());
    let run = at_rate(
        t,
        rate,
        Duration::from_secs_f64(plan.rate_step_secs),
        4,
        CALL_DEADLINE,
        |i| Call::new("claim", &apps[i % apps.len()]).var("SB", SB_CLAIM),
    );
    let claims = t.tracker.take_claim_counts();
    let mut m = Measured::default();
    for o in &run.outcomes {
        match o.record.claim_latency() {
            Some((_, d)) if o.error.is_none() && wins(&o.record) == 1 => m.push(ms(d)),
            _ => m.fail(describe(o)),
        }
    }
    let m = m.finish();
    let p99 = m.summary.as_ref().map_or(f64::INFINITY, |s| s.p99);
    let won = run.outcomes.len() - m.failures;
    let extra_wins = claims
        .get(&204)
        .copied()
        .unwrap_or(0)
        .saturating_sub(won as u64);
    let why = if m.failures > 0 {
        format!(
            "{} call(s) failed: {}",
            m.failures,
            m.errors.first().cloned().unwrap_or_default()
        )
    } else if extra_wins > 0 {
        format!("{extra_wins} claim(s) answered 204 beyond one per call")
    } else if p99 > P99_LIMIT_MS {
        format!("p99 {p99:.1} ms > {P99_LIMIT_MS} ms")
    } else if run.achieved_rate < MIN_ACHIEVED * rate {
        format!("placed only {:.1} calls/s", run.achieved_rate)
    } else {
        String::new()
    };
    let drained = wait_idle(t, Duration::from_secs(15));
    if !drained {
        eprintln!("[bench] {}: channels left after the step", t.kind.label());
    }
    // Let the instance finish tearing down (threads, taskprocessors) before
    // the next step, which may be another implementation's.
    std::thread::sleep(Duration::from_secs_f64(plan.settle_secs / 3.0));
    let cpu = cpu_before
        .zip(cpu_ms(t.ast.pid()))
        .map(|(a, b)| (b - a) / run.outcomes.len().max(1) as f64);
    let step = Step {
        rate: (rate * 10.0).round() / 10.0,
        achieved_rate: (run.achieved_rate * 10.0).round() / 10.0,
        calls: run.outcomes.len(),
        failures: m.failures,
        latency: m.summary,
        cpu_ms_per_call: cpu.map(|c| (c * 1000.0).round() / 1000.0),
        pass: why.is_empty(),
        why,
    };
    progress(
        "throughput",
        t.kind,
        &format!(
            "{:.1} calls/s: {} calls, p99 {:.1} ms, {}",
            step.rate,
            step.calls,
            p99,
            if step.pass {
                "pass".to_owned()
            } else {
                format!("FAIL ({})", step.why)
            }
        ),
    );
    step
}

/// Claims of one call answered 204.
pub(crate) fn wins(r: &CallRecord) -> usize {
    r.claims.iter().filter(|(_, s)| *s == 204).count()
}

// ------------------------------------------------------------------ 6. fairness

/// Win counts of equally fast racing applications.
#[derive(Clone, Debug, Serialize)]
pub struct Fairness {
    pub calls: usize,
    pub wins: Vec<u64>,
    pub chi2: f64,
    pub p_value: f64,
    pub failures: usize,
    pub errors: Vec<String>,
}

/// Eight applications claim every call at once, a few calls in flight.
pub fn fairness(targets: &[Target], plan: &Plan) -> ByKind<Fairness> {
    let apps = names("fair", 8, 1);
    let targets = broadcasters(targets);
    let _pools = pools(&targets, &apps, apps.len());
    let mut wins: ByKind<(Vec<u64>, Measured)> = ByKind::default();
    alternate(&targets, plan.fairness_rounds, |t, _| {
        let (counts, m) = wins.entry(t.kind);
        counts.resize(apps.len(), 0);
        let per_round = plan.fairness_calls.div_ceil(plan.fairness_rounds);
        for o in closed_loop(t, per_round, plan.fairness_in_flight, CALL_DEADLINE, |i| {
            Call::new("claim", &apps[i % apps.len()]).var("SB", SB_CLAIM)
        }) {
            match o.record.claim_latency() {
                Some((app, _)) if o.error.is_none() => counts[app] += 1,
                _ => m.fail(describe(&o)),
            }
        }
        progress(
            "fairness",
            t.kind,
            &format!("wins {counts:?}, {} failed", m.failures),
        );
    });
    wins.map(|(counts, m)| {
        let (chi2, p_value) = chi_square_uniform(&counts);
        Fairness {
            calls: counts.iter().sum::<u64>() as usize,
            wins: counts,
            chi2,
            p_value,
            failures: m.failures,
            errors: m.errors,
        }
    })
}

// -------------------------------------------------------------------- 7. memory

/// Resident memory of one instance around many calls.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    pub calls: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub growth_kib: i64,
    pub failures: usize,
    pub errors: Vec<String>,
}

/// Eight racing applications; one call in ten is offered to nobody and times
/// out at once (then the fallback `Stasis()`), the rest are claimed. RSS after
/// a warm-up of a tenth as many calls and a settle, then after the last round
/// and a settle.
pub fn memory(targets: &[Target], plan: &Plan) -> ByKind<Memory> {
    let apps = names("mem", 8, 1);
    let targets = all(targets);
    let _pools = pools(&targets, &apps, apps.len());
    let settle = Duration::from_secs_f64(plan.settle_secs);
    let rss = |t: &Target| {
        wait_idle(t, Duration::from_secs(15));
        std::thread::sleep(settle);
        t.ast.rss_kib().unwrap_or(0)
    };
    // A warm-up first, so the allocator's arenas have grown before "before".
    alternate(&targets, 1, |t, _| {
        closed_loop(
            t,
            plan.memory_calls / 10,
            plan.memory_in_flight,
            CALL_DEADLINE,
            |i| memory_call(&apps, i),
        );
        t.tracker.take_claim_counts();
    });
    let before: Vec<u64> = targets.iter().map(|t| rss(t)).collect();
    let mut done: ByKind<(usize, Measured)> = ByKind::default();
    alternate(&targets, plan.memory_rounds, |t, round| {
        let (calls, m) = done.entry(t.kind);
        let per_round = plan.memory_calls.div_ceil(plan.memory_rounds);
        let outcomes = closed_loop(t, per_round, plan.memory_in_flight, CALL_DEADLINE, |i| {
            memory_call(&apps, i)
        });
        for o in outcomes {
            *calls += 1;
            let over = o
                .record
                .stage
                .is_some_and(|(s, _, _)| s == Stage::Won || s == Stage::Fallback);
            if o.error.is_some() || !over {
                m.fail(describe(&o));
            }
        }
        t.tracker.take_claim_counts();
        progress(
            "memory",
            t.kind,
            &format!(
                "round {}/{}: {} calls, {} failed, RSS {} KiB",
                round + 1,
                plan.memory_rounds,
                calls,
                m.failures,
                t.ast.rss_kib().unwrap_or(0)
            ),
        );
    });
    let mut out = ByKind::default();
    for (i, t) in targets.iter().enumerate() {
        let after = rss(t);
        let (calls, m) = done.get(t.kind).cloned().unwrap_or_default();
        out.set(
            t.kind,
            Memory {
                calls,
                rss_before_kib: before[i],
                rss_after_kib: after,
                growth_kib: after as i64 - before[i] as i64,
                failures: m.failures,
                errors: m.errors,
            },
        );
    }
    out
}

/// Nine calls in ten claimed by the racers; the tenth offered to nobody.
fn memory_call(apps: &[String], i: usize) -> Call {
    let sb = if i % 10 == 9 { SB_UNCLAIMED } else { SB_CLAIM };
    Call::new("claim", &apps[i % apps.len()]).var("SB", sb)
}
