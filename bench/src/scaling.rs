//! How the cost grows with the work, ours vs the C reference (and the floor
//! where it means something): (a) connected applications, (b) broadcasts
//! waiting at once, (c) racing claimants. Written to `scaling.{md,json,png}`
//! beside the main table, with a line fitted through every curve.

use crate::engine::{at_rate, closed_loop, cpu_ms, names, originate, wait_idle, Call, Pool};
use crate::phases::{
    self, describe, ms, p50_line, progress, wins, ByKind, FanPoint, Measured, Plan, CALL_DEADLINE,
};
use crate::meta::Meta;
use crate::stats::{bootstrap, fit_line, pct};
use crate::target::{alternate, Kind, Target};
use plotters::prelude::*;
use serde::Serialize;
use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

/// The waiting broadcasts: offered to `wait-0` only, which never claims.
const SB_WAIT: &str = "60000,^wait-,won";
/// The probes beside them: offered to `probe-0` only, which claims at once.
const SB_PROBE: &str = "5000,^probe-,won";
/// The racers: offered to every connected application (all of them claim).
const SB_RACE: &str = "5000,,won";
/// A waiting broadcast times out after 60 s (the most a timeout may be):
/// older than this when a step starts, the waiting calls are replaced.
const REFRESH: Duration = Duration::from_secs(35);

/// How much of each curve to measure.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePlan {
    /// (a) connected applications, calls per point and rounds.
    pub apps: Vec<usize>,
    pub apps_calls: usize,
    pub apps_rounds: usize,
    /// (b) broadcasts waiting at once, probes per step, CPU window.
    pub waiting: Vec<usize>,
    pub waiting_probes: usize,
    pub waiting_cpu_secs: f64,
    /// (c) racing claimants, the rate offered, seconds per round, rounds.
    pub racers: Vec<usize>,
    pub racers_rate: f64,
    pub racers_secs: f64,
    pub racers_rounds: usize,
}

impl ScalePlan {
    pub fn full() -> ScalePlan {
        ScalePlan {
            apps: vec![1, 10, 50, 100, 250, 500],
            apps_calls: 80,
            apps_rounds: 10,
            waiting: vec![1, 10, 100, 250, 500, 1000],
            waiting_probes: 100,
            waiting_cpu_secs: 3.0,
            racers: vec![2, 8, 32],
            racers_rate: 100.0,
            racers_secs: 1.5,
            racers_rounds: 6,
        }
    }

    pub fn quick() -> ScalePlan {
        ScalePlan {
            apps: vec![1, 50],
            apps_calls: 4,
            apps_rounds: 1,
            waiting: vec![1, 50],
            waiting_probes: 5,
            waiting_cpu_secs: 1.0,
            racers: vec![2, 8],
            racers_rate: 20.0,
            racers_secs: 1.0,
            racers_rounds: 1,
        }
    }
}

/// One step of (b) on one implementation.
#[derive(Clone, Debug, Serialize)]
pub struct WaitPoint {
    /// Broadcasts (floor: calls in `Stasis()`) waiting during the step.
    pub waiting: usize,
    /// Asterisk's resident memory above the same instance with none waiting.
    pub rss_growth_kib: i64,
    pub threads: u64,
    /// Asterisk's CPU while they wait and nothing else happens, % of one core.
    pub idle_cpu_pct: f64,
    /// Claim latency of probe calls placed one at a time beside them.
    pub claim: Measured,
}

/// (b) on one implementation: resident memory with none waiting, then the steps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WaitRamp {
    pub rss_idle_kib: u64,
    pub points: Vec<WaitPoint>,
    pub errors: Vec<String>,
}

/// (c) for one number of claimants on one implementation, over its rounds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RaceResult {
    pub calls: usize,
    pub won: usize,
    /// Calls won and over per second, from the first offer to the last end, per round.
    pub completed_rates: Vec<f64>,
    /// Calls placed per second (the rate offered, if the bench kept up), per round.
    pub placed_rates: Vec<f64>,
    pub claim: Measured,
    /// Asterisk's CPU per call over the rounds, drain included (ms).
    pub cpu_ms_per_call: Option<f64>,
    cpu_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RacePoint {
    pub racers: usize,
    pub by: ByKind<RaceResult>,
}

/// A line through one curve.
#[derive(Clone, Debug, Serialize)]
pub struct Fit {
    pub curve: String,
    pub slope: f64,
    pub intercept: f64,
    pub r2: f64,
    /// Cost per unit from the first point to the middle one, and from there to the last.
    pub first_segment: f64,
    pub last_segment: f64,
    pub verdict: String,
}

/// Everything the scaling phases measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scaling {
    pub plan: Option<ScalePlan>,
    pub apps: Vec<FanPoint>,
    pub waiting: ByKind<WaitRamp>,
    pub racers: Vec<RacePoint>,
}

// ---------------------------------------------------------- (a) applications

/// Dialplan time in `StasisBroadcast(0)` with 1 … 500 connected
/// applications: the fan-out measurement (row 2) at more sizes.
pub fn apps(targets: &[Target], plan: &Plan, sp: &ScalePlan) -> Vec<FanPoint> {
    let plan = Plan {
        fan_apps: sp.apps.clone(),
        fan_calls: sp.apps_calls,
        fan_rounds: sp.apps_rounds,
        ..plan.clone()
    };
    phases::fan_out(targets, &plan)
}

// ------------------------------------------------------------- (b) waiting

/// Broadcasts nobody claims pile up, 1 … 1000 at once (floor: calls in
/// `Stasis()`); at each step, with all of them offered: resident memory,
/// threads, CPU while idle, then claim latency of probe calls beside them.
/// In instances of their own, booted for it (memory the other measurements
/// freed would absorb part of the growth, unequally between implementations),
/// one implementation at a time (waiting calls of one would load the machine
/// under another's probes).
pub fn waiting(module: &Path, sp: &ScalePlan) -> ByKind<WaitRamp> {
    let fresh = Target::boot_all(module);
    let mut out = ByKind::default();
    let all: Vec<&Target> = fresh.iter().collect();
    alternate(&all, 1, |t, _| out.set(t.kind, ramp(t, sp)));
    out
}

fn ramp(t: &Target, sp: &ScalePlan) -> WaitRamp {
    let apps = vec!["probe-0".to_owned(), "wait-0".to_owned()];
    let _pool = Pool::connect(t, &apps, 1);
    let mut out = WaitRamp::default();
    // Warm-up: the probe path once, so first-use allocations are in the idle figure.
    probes(t, sp.waiting_probes.min(10));
    out.rss_idle_kib = settled_rss(t);
    let mut held: Vec<(String, String)> = Vec::new();
    let mut since = Instant::now();
    for &n in &sp.waiting {
        if !held.is_empty() && since.elapsed() > REFRESH {
            hang_up_all(t, &mut held);
        }
        if held.is_empty() {
            since = Instant::now();
        }
        while held.len() < n {
            let call = Call::new("claim", &apps[1]).var("SB", SB_WAIT);
            match originate(t, &call) {
                Ok(ids) => held.push(ids),
                Err(e) => {
                    out.errors.push(e);
                    break;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let unoffered = held
            .iter()
            .filter(|(id, _)| {
                let left = deadline.saturating_duration_since(Instant::now());
                !t.tracker.wait_for(id, left, |r| !r.offers.is_empty())
            })
            .count();
        if unoffered > 0 {
            out.errors.push(format!(
                "{n} waiting: {unoffered} never offered within 30 s"
            ));
        }
        let rss = settled_rss(t);
        let threads = threads(t.ast.pid());
        let window = Duration::from_secs_f64(sp.waiting_cpu_secs);
        let before = cpu_ms(t.ast.pid());
        std::thread::sleep(window);
        let idle_cpu_pct = before
            .zip(cpu_ms(t.ast.pid()))
            .map_or(0.0, |(a, b)| (b - a) / ms(window) * 100.0);
        let claim = probes(t, sp.waiting_probes);
        progress(
            "waiting",
            t.kind,
            &format!(
                "{n} waiting: RSS +{} KiB, {threads} threads, idle CPU {idle_cpu_pct:.1} %, claim {}",
                rss as i64 - out.rss_idle_kib as i64,
                p50_line(&claim)
            ),
        );
        out.points.push(WaitPoint {
            waiting: held.len(),
            rss_growth_kib: rss as i64 - out.rss_idle_kib as i64,
            threads,
            idle_cpu_pct: (idle_cpu_pct * 100.0).round() / 100.0,
            claim,
        });
    }
    hang_up_all(t, &mut held);
    out
}

/// `count` probe calls, one at a time: the claim latency, as in row 1.
fn probes(t: &Target, count: usize) -> Measured {
    let mut m = Measured::default();
    for o in closed_loop(t, count, 1, CALL_DEADLINE, |_| {
        Call::new("claim", "probe-0").var("SB", SB_PROBE)
    }) {
        match o.record.claim_latency() {
            Some((0, d)) if o.error.is_none() => m.push(ms(d)),
            _ => m.fail(describe(&o)),
        }
    }
    m.end_round();
    m.finish()
}

fn settled_rss(t: &Target) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    t.ast.rss_kib().unwrap_or(0)
}

fn threads(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Hangs up every channel of the instance and forgets the held calls.
fn hang_up_all(t: &Target, held: &mut Vec<(String, String)>) {
    t.ast.cli("channel request hangup all");
    if !wait_idle(t, Duration::from_secs(60)) {
        eprintln!("[bench] {}: channels left after hanging up", t.kind.label());
    }
    for (id, _) in held.drain(..) {
        t.tracker.take(&id);
    }
}

// -------------------------------------------------------------- (c) racers

/// 2, 8, 32 applications all claiming every call, calls placed at a fixed
/// rate (the same for every size), rounds alternating between the
/// implementations. Floor: the `Stasis(app,gate)` path, one of the
/// applications per call.
pub fn racers(targets: &[Target], sp: &ScalePlan) -> Vec<RacePoint> {
    let all: Vec<&Target> = targets.iter().collect();
    let mut points = Vec::new();
    for &n in &sp.racers {
        let apps = names("race", n, 2);
        let _pools: Vec<Pool> = all.iter().map(|t| Pool::connect(t, &apps, n)).collect();
        let mut by: ByKind<RaceResult> = ByKind::default();
        alternate(&all, sp.racers_rounds, |t, _| {
            t.tracker.take_claim_counts();
            let cpu_before = cpu_ms(t.ast.pid());
            let run = at_rate(
                t,
                sp.racers_rate,
                Duration::from_secs_f64(sp.racers_secs),
                4,
                CALL_DEADLINE,
                |i| Call::new("claim", &apps[i % n]).var("SB", SB_RACE),
            );
            wait_idle(t, Duration::from_secs(15));
            let cpu = cpu_before.zip(cpu_ms(t.ast.pid())).map(|(a, b)| b - a);
            let r = by.entry(t.kind);
            let (mut first, mut last, mut won) = (None::<Instant>, None::<Instant>, 0);
            for o in &run.outcomes {
                r.calls += 1;
                match o.record.claim_latency() {
                    Some((_, d)) if o.error.is_none() && wins(&o.record) == 1 => {
                        won += 1;
                        r.claim.push(ms(d));
                        let offered = o.record.offers.iter().map(|(_, at)| *at).min();
                        if let Some(at) = offered {
                            first = Some(first.map_or(at, |f| f.min(at)));
                        }
                        last = last.max(o.record.ended);
                    }
                    _ => r.claim.fail(describe(o)),
                }
            }
            r.won += won;
            r.claim.end_round();
            if let (Some(a), Some(b)) = (first, last) {
                let secs = b.duration_since(a).as_secs_f64();
                if secs > 0.0 {
                    r.completed_rates.push(round2(won as f64 / secs));
                }
            }
            r.placed_rates.push(round2(run.achieved_rate));
            r.cpu_ms += cpu.unwrap_or(f64::NAN);
            progress(
                "racers",
                t.kind,
                &format!(
                    "{n} claimants at {} calls/s: {} won of {}, {}",
                    sp.racers_rate,
                    won,
                    run.outcomes.len(),
                    p50_line(&r.claim.clone().finish())
                ),
            );
        });
        let by = by.map(|mut r| {
            r.claim = r.claim.finish();
            r.cpu_ms_per_call =
                (r.calls > 0 && r.cpu_ms.is_finite()).then(|| round2(r.cpu_ms / r.calls as f64));
            r
        });
        points.push(RacePoint { racers: n, by });
    }
    points
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ------------------------------------------------------------- the report

/// A line through `points`, and in words whether the curve is linear.
/// `resolution`: the smallest change the measurement can see (a change of
/// the fitted line within it is "flat").
pub fn fit(curve: &str, per: &str, points: &[(f64, f64)], resolution: f64) -> Option<Fit> {
    let (slope, intercept, r2) = fit_line(points)?;
    let segment = |a: (f64, f64), b: (f64, f64)| (b.1 - a.1) / (b.0 - a.0);
    let (n, ys) = (points.len(), points.iter().map(|p| p.1));
    // Cost per unit over the lower part of the range and over the upper part,
    // split at the middle point (single steps at the low end are mostly noise).
    let mid = points[n / 2];
    let first_segment = segment(points[0], mid);
    let last_segment = segment(mid, points[n - 1]);
    let span = points[n - 1].0 - points[0].0;
    let scale = ys.fold(0.0f64, |m, y| m.max(y.abs()));
    let g = |x: f64| {
        if x == 0.0 || x.abs() >= 0.01 {
            format!("{x:.3}")
        } else {
            format!("{x:.2e}")
        }
    };
    let segments = format!(
        "{} per {per} from {} to {}, {} from {} to {}",
        g(first_segment),
        points[0].0,
        mid.0,
        g(last_segment),
        mid.0,
        points[n - 1].0
    );
    let verdict = if (slope * span).abs() <= (0.15 * scale).max(resolution) {
        format!(
            "flat: the fitted line moves by {} over the whole range, at most 15 % of the largest value or the resolution",
            g(slope * span)
        )
    } else if n >= 3 && slope < 0.0 {
        format!(
            "does not grow: the fitted line falls by {} over the whole range (R² {r2:.2})",
            g(-slope * span)
        )
    } else if n < 3 {
        format!("two points only, linearity not tested: {segments}")
    } else if r2 < 0.5 {
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
                (l.min(p.1), h.max(p.1))
            });
        format!(
            "no trend a line explains (R² {r2:.2}): the points scatter between {} and {}",
            g(lo),
            g(hi)
        )
    } else if r2 >= 0.95
        && (first_segment <= 0.0 || !(0.67..=1.5).contains(&(last_segment / first_segment)))
    {
        let bend = if first_segment > 0.0 {
            format!(" ({:.1}×)", last_segment / first_segment)
        } else {
            String::new()
        };
        format!(
            "close to a line (R² {r2:.3}, {} per {per}) but not linear: {segments}{bend}",
            g(slope)
        )
    } else if r2 >= 0.95 {
        format!("linear: {} per {per}, R² {r2:.3}; {segments}", g(slope))
    } else {
        format!(
            "not linear: best line {} per {per}, R² {r2:.3}; {segments}",
            g(slope)
        )
    };
    Some(Fit {
        curve: curve.to_owned(),
        slope,
        intercept,
        r2,
        first_segment,
        last_segment,
        verdict,
    })
}

fn p(m: Option<&Measured>, f: fn(&crate::stats::Summary) -> f64) -> Option<f64> {
    m.and_then(|m| m.summary.as_ref()).map(f)
}

/// A curve: its name, what one unit of x is, its points.
type Curve = (String, &'static str, Vec<(f64, f64)>);

/// The curves the report fits.
fn curves(s: &Scaling) -> Vec<Curve> {
    let mut out = Vec::new();
    for kind in Kind::BROADCASTERS {
        out.push((
            format!(
                "(a) {} dialplan time (ms) against applications",
                kind.label()
            ),
            "application",
            s.apps
                .iter()
                .filter_map(|pt| Some((pt.apps as f64, p(pt.start.get(kind), |s| s.p50)?)))
                .collect(),
        ));
    }
    for kind in Kind::ALL {
        let Some(r) = s.waiting.get(kind) else {
            continue;
        };
        let pts = |f: &dyn Fn(&WaitPoint) -> Option<f64>| {
            r.points
                .iter()
                .filter_map(|w| Some((w.waiting as f64, f(w)?)))
                .collect::<Vec<_>>()
        };
        out.push((
            format!(
                "(b) {} resident memory (KiB) against waiting calls",
                kind.label()
            ),
            "waiting call",
            pts(&|w| Some(w.rss_growth_kib as f64)),
        ));
        out.push((
            format!(
                "(b) {} idle CPU (% of a core) against waiting calls",
                kind.label()
            ),
            "waiting call",
            pts(&|w| Some(w.idle_cpu_pct)),
        ));
        out.push((
            format!(
                "(b) {} claim latency p50 (ms) against waiting calls",
                kind.label()
            ),
            "waiting call",
            pts(&|w| p(Some(&w.claim), |s| s.p50)),
        ));
    }
    for kind in Kind::ALL {
        out.push((
            format!("(c) {} CPU per call (ms) against claimants", kind.label()),
            "claimant",
            s.racers
                .iter()
                .filter_map(|pt| Some((pt.racers as f64, pt.by.get(kind)?.cpu_ms_per_call?)))
                .collect(),
        ));
        out.push((
            format!(
                "(c) {} claim latency p99 (ms) against claimants",
                kind.label()
            ),
            "claimant",
            s.racers
                .iter()
                .filter_map(|pt| {
                    Some((
                        pt.racers as f64,
                        p(pt.by.get(kind).map(|r| &r.claim), |s| s.p99)?,
                    ))
                })
                .collect(),
        ));
    }
    out.retain(|c| c.2.len() >= 2);
    out
}

/// The smallest change a curve's measurement can see: CPU time comes in
/// 10 ms ticks, resident memory in 4 KiB pages.
fn resolution(s: &Scaling, curve: &str) -> f64 {
    let sp = s.plan.clone().unwrap_or_else(ScalePlan::full);
    if curve.contains("idle CPU") {
        1.0 / sp.waiting_cpu_secs
    } else if curve.contains("CPU per call") {
        10.0 / (sp.racers_rate * sp.racers_secs * sp.racers_rounds as f64).max(1.0)
    } else if curve.contains("resident memory") {
        4.0
    } else {
        0.0
    }
}

pub fn fits(s: &Scaling) -> Vec<Fit> {
    curves(s)
        .iter()
        .filter_map(|(name, per, pts)| fit(name, per, pts, resolution(s, name)))
        .collect()
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// "a / b / c" over the implementations that have a value.
fn three(f: impl Fn(Kind) -> Option<f64>, kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|&k| num(f(k)))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// ours / reference of percentile `q`, and its interval over the rounds.
fn ratio_cell(by: &ByKind<Measured>, q: f64) -> String {
    let (Some(a), Some(b)) = (by.ours.as_ref(), by.reference.as_ref()) else {
        return "–".into();
    };
    if a.samples.is_empty() || b.samples.is_empty() {
        return "–".into();
    }
    let (o, r) = (
        pct(q)(&mut a.samples.clone()),
        pct(q)(&mut b.samples.clone()),
    );
    match bootstrap(&a.by_round(), Some(&b.by_round()), &pct(q)) {
        Some((lo, hi)) => format!("{:.3}× [{lo:.2}, {hi:.2}]", o / r),
        None => format!("{:.3}×", o / r),
    }
}

/// The scaling report.
pub fn markdown(meta: &Meta, s: &Scaling) -> String {
    let mut md = String::new();
    let sp = s.plan.clone().unwrap_or_else(ScalePlan::full);
    if !s.apps.is_empty() {
        md.push_str(&format!(
            "**(a) Connected applications.** Dialplan time in `StasisBroadcast(0)` (p50, ms; floor: `NoOp()`, what the time stamps cost) and first→last `CallBroadcast` (p50, ms), {} calls per size in {} rounds.\n\n",
            sp.apps_calls, sp.apps_rounds
        ));
        md.push_str("| applications | ours | reference | ours/ref [95 %] | floor | first→last offer, ours / ref |\n|---:|---:|---:|---|---:|---|\n");
        for pt in &s.apps {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                pt.apps,
                num(p(pt.start.ours.as_ref(), |s| s.p50)),
                num(p(pt.start.reference.as_ref(), |s| s.p50)),
                ratio_cell(&pt.start, 50.0),
                num(p(pt.start.floor.as_ref(), |s| s.p50)),
                three(|k| p(pt.spread.get(k), |s| s.p50), &Kind::BROADCASTERS),
            ));
        }
        md.push('\n');
    }
    if Kind::ALL.iter().any(|&k| s.waiting.get(k).is_some()) {
        md.push_str(&format!(
            "**(b) Broadcasts waiting at once** (floor: calls waiting in `Stasis()`), one implementation at a time. Resident memory above the same instance with none waiting, Asterisk's CPU over {} s while they wait, then claim latency of {} probe calls placed one at a time beside them. Cells: ours / reference / floor.\n\n",
            sp.waiting_cpu_secs, sp.waiting_probes
        ));
        md.push_str("| waiting | RSS growth, KiB | KiB per waiting call | threads | idle CPU, % of a core | claim p50, ms | claim p99, ms |\n|---:|---|---|---|---|---|---|\n");
        let steps: Vec<usize> = Kind::ALL
            .iter()
            .filter_map(|&k| s.waiting.get(k))
            .flat_map(|r| r.points.iter().map(|w| w.waiting))
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        for n in steps {
            let at = |k: Kind| {
                s.waiting
                    .get(k)
                    .and_then(|r| r.points.iter().find(|w| w.waiting == n))
            };
            md.push_str(&format!(
                "| {n} | {} | {} | {} | {} | {} | {} |\n",
                three(|k| at(k).map(|w| w.rss_growth_kib as f64), &Kind::ALL),
                three(
                    |k| at(k).map(|w| w.rss_growth_kib as f64 / n as f64),
                    &Kind::ALL
                ),
                three(|k| at(k).map(|w| w.threads as f64), &Kind::ALL),
                three(|k| at(k).map(|w| w.idle_cpu_pct), &Kind::ALL),
                three(|k| p(at(k).map(|w| &w.claim), |s| s.p50), &Kind::ALL),
                three(|k| p(at(k).map(|w| &w.claim), |s| s.p99), &Kind::ALL),
            ));
        }
        for k in Kind::ALL {
            if let Some(r) = s.waiting.get(k) {
                md.push_str(&format!(
                    "{}- {}: RSS with none waiting {} KiB{}.\n",
                    if k == Kind::Ours { "\n" } else { "" },
                    k.label(),
                    r.rss_idle_kib,
                    if r.errors.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", r.errors.join("; "))
                    }
                ));
            }
        }
        md.push('\n');
    }
    if !s.racers.is_empty() {
        md.push_str(&format!(
            "**(c) Racing claimants**, every one claiming every call; calls offered at a fixed {} calls/s for {} s, {} rounds (floor: one application per call). Throughput is calls won and over per second, from the first offer to the last end. Cells: ours / reference / floor.\n\n",
            sp.racers_rate, sp.racers_secs, sp.racers_rounds
        ));
        md.push_str("| claimants | calls won / placed | throughput, calls/s | claim p50, ms | claim p99, ms | p99 ours/ref [95 %] | Asterisk CPU per call, ms |\n|---:|---|---|---|---|---|---|\n");
        for pt in &s.racers {
            let r = |k: Kind| pt.by.get(k);
            let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
            let claims: ByKind<Measured> = ByKind {
                ours: r(Kind::Ours).map(|r| r.claim.clone()),
                reference: r(Kind::Reference).map(|r| r.claim.clone()),
                floor: None,
            };
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                pt.racers,
                Kind::ALL
                    .iter()
                    .map(|&k| r(k).map_or("–".into(), |r| format!("{} / {}", r.won, r.calls)))
                    .collect::<Vec<_>>()
                    .join(", "),
                three(|k| r(k).and_then(|r| mean(&r.completed_rates)), &Kind::ALL),
                three(|k| p(r(k).map(|r| &r.claim), |s| s.p50), &Kind::ALL),
                three(|k| p(r(k).map(|r| &r.claim), |s| s.p99), &Kind::ALL),
                ratio_cell(&claims, 99.0),
                three(|k| r(k).and_then(|r| r.cpu_ms_per_call), &Kind::ALL),
            ));
        }
        md.push('\n');
    }
    let fits = fits(s);
    if !fits.is_empty() {
        md.push_str("Is each curve linear? A least-squares line through its points (slope per unit, R²), and the cost per unit over the lower and the upper part of the range (split at the middle point): \"linear\" when R² ≥ 0.95 and the two differ by less than 1.5×; \"flat\" when the line moves by at most 15 % of the largest value or the measurement's resolution (a 10 ms CPU tick, a 4 KiB page); \"does not grow\" when it falls.\n\n");
        for f in &fits {
            md.push_str(&format!("- {}: {}.\n", f.curve, f.verdict));
        }
        md.push('\n');
    }
    md.push_str(&format!(
        "Measured {} ({} mode) on {} ({} cores), {}, commit {}.\n",
        meta.date, meta.mode, meta.cpu, meta.cores, meta.asterisk, meta.commit
    ));
    md
}

/// The numbers a run of these phases must have (what the CI smoke checks).
pub fn missing(s: &Scaling) -> Vec<String> {
    let mut missing = Vec::new();
    for pt in &s.apps {
        for k in Kind::ALL {
            if p(pt.start.get(k), |s| s.p50).is_none() {
                missing.push(format!(
                    "scaling (a) {} apps: no time for {}",
                    pt.apps,
                    k.label()
                ));
            }
        }
    }
    for k in Kind::ALL {
        match s.waiting.get(k) {
            None => missing.push(format!("scaling (b): nothing for {}", k.label())),
            Some(r) => {
                if r.rss_idle_kib == 0 || r.points.is_empty() {
                    missing.push(format!("scaling (b): no steps for {}", k.label()));
                }
                for w in &r.points {
                    if w.claim.summary.is_none() {
                        missing.push(format!(
                            "scaling (b) {} waiting: no claim latency for {}",
                            w.waiting,
                            k.label()
                        ));
                    }
                }
            }
        }
    }
    for pt in &s.racers {
        for k in Kind::ALL {
            if pt.by.get(k).is_none_or(|r| r.claim.summary.is_none()) {
                missing.push(format!(
                    "scaling (c) {} claimants: no claims for {}",
                    pt.racers,
                    k.label()
                ));
            }
        }
    }
    missing
}

// -------------------------------------------------------------- the chart

type Series = (String, RGBColor, Vec<(f64, f64)>);

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: Vec<Series>,
) -> Result<(), Box<dyn Error>> {
    let pts = series.iter().flat_map(|s| s.2.iter().copied());
    let (x_max, y_max) = pts.fold((1.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let y_min = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.0f64, f64::min);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (crate::style::FONT, 19))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max * 1.05, y_min * 1.1..(y_max * 1.15).max(0.1))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((crate::style::FONT, 14))
        .draw()?;
    let any = series.iter().any(|s| !s.2.is_empty());
    for (label, c, points) in series {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], c.stroke_width(3)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
    }
    if !any {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .label_font((crate::style::FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}

/// One line per implementation of `f` over `kinds`.
fn lines(kinds: &[Kind], f: impl Fn(Kind) -> Vec<(f64, f64)>) -> Vec<Series> {
    kinds
        .iter()
        .map(|&k| (k.label().to_owned(), crate::style::color(k), f(k)))
        .collect()
}

/// Renders the scaling chart (PNG): six panels.
pub fn render(path: &Path, meta: &Meta, s: &Scaling) -> Result<(), Box<dyn Error>> {
    crate::style::register_font()?;
    let root = BitMapBackend::new(path, (1500, 950)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "StasisBroadcast scaling: ours vs the C reference vs plain Stasis() — {} ({} mode)",
            meta.date, meta.mode
        ),
        (crate::style::FONT, 24),
    )?;
    let panels = root.split_evenly((2, 3));
    let wait = |k: Kind, f: &dyn Fn(&WaitPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        s.waiting
            .get(k)
            .map(|r| {
                r.points
                    .iter()
                    .filter_map(|w| Some((w.waiting as f64, f(w)?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let race = |k: Kind, f: &dyn Fn(&RaceResult) -> Option<f64>| -> Vec<(f64, f64)> {
        s.racers
            .iter()
            .filter_map(|pt| Some((pt.racers as f64, f(pt.by.get(k)?)?)))
            .collect()
    };
    panel(
        &panels[0],
        "(a) Dialplan time in StasisBroadcast(0), p50",
        "connected applications",
        "ms",
        lines(&Kind::ALL, |k| {
            s.apps
                .iter()
                .filter_map(|pt| Some((pt.apps as f64, p(pt.start.get(k), |s| s.p50)?)))
                .collect()
        }),
    )?;
    panel(
        &panels[1],
        "(b) Resident memory above idle",
        "calls waiting at once",
        "MiB",
        lines(&Kind::ALL, |k| {
            wait(k, &|w| Some(w.rss_growth_kib as f64 / 1024.0))
        }),
    )?;
    panel(
        &panels[2],
        "(b) Asterisk CPU while they wait",
        "calls waiting at once",
        "% of one core",
        lines(&Kind::ALL, |k| wait(k, &|w| Some(w.idle_cpu_pct))),
    )?;
    panel(
        &panels[3],
        "(b) Claim latency p50 beside them",
        "calls waiting at once",
        "ms",
        lines(&Kind::ALL, |k| wait(k, &|w| p(Some(&w.claim), |s| s.p50))),
    )?;
    panel(
        &panels[4],
        "(c) Asterisk CPU per call",
        "racing claimants",
        "ms",
        lines(&Kind::ALL, |k| race(k, &|r| r.cpu_ms_per_call)),
    )?;
    panel(
        &panels[5],
        "(c) Claim latency p99",
        "racing claimants",
        "ms",
        lines(&Kind::ALL, |k| race(k, &|r| p(Some(&r.claim), |s| s.p99))),
    )?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_linear_flat_and_not() {
        let linear = fit(
            "c",
            "app",
            &[(1.0, 0.2), (10.0, 0.65), (100.0, 5.1), (500.0, 25.0)],
            0.0,
        )
        .expect("fit");
        assert!(linear.verdict.starts_with("linear"), "{}", linear.verdict);
        // Fan-out as measured: per-application cost twice as high above 100 applications.
        let bent = fit(
            "c",
            "app",
            &[
                (1.0, 0.30),
                (10.0, 0.90),
                (50.0, 3.07),
                (100.0, 5.93),
                (250.0, 19.59),
                (500.0, 48.53),
            ],
            0.0,
        )
        .expect("fit");
        assert!(
            bent.verdict.starts_with("close to a line"),
            "{}",
            bent.verdict
        );
        let flat = fit(
            "c",
            "call",
            &[(1.0, 1.0), (10.0, 1.05), (1000.0, 0.98)],
            0.0,
        )
        .expect("fit");
        assert!(flat.verdict.starts_with("flat"), "{}", flat.verdict);
        let quadratic: Vec<(f64, f64)> = [1.0, 10.0, 50.0, 100.0, 250.0, 500.0]
            .iter()
            .map(|&x| (x, x * x / 100.0))
            .collect();
        let q = fit("c", "app", &quadratic, 0.0).expect("fit");
        assert!(q.last_segment > 5.0 * q.first_segment, "{q:?}");
        let step = fit(
            "c",
            "call",
            &[
                (1.0, 1.0),
                (10.0, 1.0),
                (100.0, 1.0),
                (500.0, 40.0),
                (1000.0, 40.0),
            ],
            0.0,
        )
        .expect("fit");
        assert!(step.verdict.starts_with("not linear"), "{}", step.verdict);
        let falling = fit(
            "c",
            "call",
            &[
                (1.0, 0.91),
                (10.0, 0.86),
                (100.0, 0.62),
                (250.0, 0.67),
                (500.0, 0.62),
                (1000.0, 0.54),
            ],
            0.0,
        )
        .expect("fit");
        assert!(
            falling.verdict.starts_with("does not grow"),
            "{}",
            falling.verdict
        );
        let ticks = fit(
            "c",
            "call",
            &[
                (1.0, 0.0),
                (10.0, 0.0),
                (100.0, 0.0),
                (250.0, 0.0),
                (500.0, 0.0),
                (1000.0, 0.33),
            ],
            0.34,
        )
        .expect("fit");
        assert!(ticks.verdict.starts_with("flat"), "{}", ticks.verdict);
        let scattered = fit(
            "c",
            "call",
            &[
                (1.0, 7.6),
                (10.0, 3.0),
                (100.0, 6.2),
                (250.0, 4.4),
                (500.0, 3.7),
                (1000.0, 8.0),
            ],
            0.0,
        )
        .expect("fit");
        assert!(
            scattered.verdict.starts_with("no trend"),
            "{}",
            scattered.verdict
        );
    }
}
