//! 8. Instructions per call, counted by valgrind's callgrind: ours and the C
//! implementation, each in an Asterisk of its own started under callgrind
//! with instrumentation off (boot is not counted), switched on once booted.
//!
//! For each scenario, each run on each instance (the instances take turns):
//! a few warm-up calls, `zero`, the measured calls one at a time, the
//! channels gone, `dump`; the dump's total over the calls is the whole
//! process's cost per call, and the implementation's own cost is the self
//! cost of its shared objects plus what their direct calls into the C
//! library, the dynamic linker and the allocator cost, Asterisk's memory
//! wrappers (`ast_malloc`, `ast_free`, ...) included: they are the allocator
//! a C module calls. Other calls into Asterisk are Asterisk's. Instruction counts hardly move from run to run (the
//! machine's noise is in time, not in instructions); the spread between
//! runs is reported all the same. `BENCH_CALLGRIND_DUMPS=DIR` keeps the
//! dumps there, for `callgrind_annotate`.

use crate::engine::{closed_loop, names, wait_idle, Call, Pool};
use crate::target::{config, Kind, Target};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A call under callgrind runs some 50 times slower than natively.
const CALL_DEADLINE: Duration = Duration::from_secs(120);
/// Claimed calls, as in the throughput and fairness measurements.
const SB_CLAIM: &str = "5000,,won";
/// Shared objects of each implementation (file names).
const OURS_OBJECTS: &[&str] = &["res_stasis_broadcast_rs.so"];
const REFERENCE_OBJECTS: &[&str] = &["app_stasis_broadcast.so", "res_stasis_broadcast.so"];
/// Objects whose cost counts as the caller's when the implementation calls
/// into them directly: the C library (allocator included), the dynamic
/// linker, libm, libgcc's unwinder, the vDSO.
const SYSTEM_OBJECTS: &[&str] = &[
    "libc.so",
    "ld-linux",
    "libm.so",
    "libgcc_s.so",
    "linux-vdso",
    "libpthread.so",
];
/// Asterisk's memory wrappers (main/astmm.c; `ast_malloc`, `ast_free`,
/// `ast_strdup`, ... expand to them): a direct call into one of them is an
/// allocator call, the caller's own, like a direct `malloc`.
const ASTERISK_ALLOCATOR: &[&str] = &[
    "__ast_malloc",
    "__ast_calloc",
    "__ast_calloc_cache",
    "__ast_realloc",
    "__ast_strdup",
    "__ast_strndup",
    "__ast_asprintf",
    "__ast_vasprintf",
    "__ast_free",
    "ast_free_ptr",
    "__ast_repl_malloc",
    "__ast_repl_calloc",
    "__ast_repl_realloc",
    "__ast_repl_strdup",
    "__ast_repl_strndup",
    "__ast_repl_asprintf",
    "__ast_repl_vasprintf",
    "ast_std_malloc",
    "ast_std_calloc",
    "ast_std_realloc",
    "ast_std_free",
];

/// One scenario: how many applications, who claims, how many calls.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    pub key: String,
    pub label: String,
    pub apps: usize,
    /// Applications that claim every call (the race), or none (fan-out).
    pub claimants: usize,
    pub warmup: usize,
    pub calls: usize,
}

impl Scenario {
    fn race(warmup: usize, calls: usize) -> Scenario {
        Scenario {
            key: "race".into(),
            label: "8 apps racing (1×204, 7×409)".into(),
            apps: 8,
            claimants: 8,
            warmup,
            calls,
        }
    }

    fn fan(apps: usize, warmup: usize, calls: usize) -> Scenario {
        Scenario {
            key: format!("fan-{apps}"),
            label: format!("fan-out, StasisBroadcast(0), {apps} app(s)"),
            apps,
            claimants: 0,
            warmup,
            calls,
        }
    }

    fn call(&self, apps: &[String], i: usize) -> Call {
        if self.claimants > 0 {
            Call::new("claim", &apps[i % apps.len()]).var("SB", SB_CLAIM)
        } else {
            Call::new("fan", &apps[0])
        }
    }
}

/// What this measurement does.
#[derive(Clone, Debug, Serialize)]
pub struct CallgrindPlan {
    pub runs: usize,
    pub scenarios: Vec<Scenario>,
}

impl CallgrindPlan {
    pub fn full() -> CallgrindPlan {
        CallgrindPlan {
            runs: 3,
            // Counts repeat to a few parts in ten thousand: tens of calls
            // per run suffice, fewer where each call is long.
            scenarios: vec![
                Scenario::race(5, 30),
                Scenario::fan(1, 5, 30),
                Scenario::fan(10, 5, 30),
                Scenario::fan(100, 3, 15),
                Scenario::fan(500, 1, 2),
            ],
        }
    }

    pub fn quick() -> CallgrindPlan {
        CallgrindPlan {
            runs: 1,
            scenarios: vec![Scenario::race(3, 10), Scenario::fan(1, 3, 10), Scenario::fan(100, 2, 4)],
        }
    }
}

/// Per-call instruction counts of one run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Counts {
    /// Everything the Asterisk process executed.
    pub whole: f64,
    /// The implementation's own objects, self cost.
    pub own_self: f64,
    /// Plus its direct calls into the system objects and into Asterisk's
    /// memory wrappers.
    pub own: f64,
}

/// One scenario's runs, per implementation.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub scenario: Scenario,
    pub ours: Vec<Counts>,
    pub reference: Vec<Counts>,
    pub errors: Vec<String>,
}

/// Everything the measurement found.
#[derive(Clone, Debug, Serialize)]
pub struct Callgrind {
    pub plan: CallgrindPlan,
    pub points: Vec<Point>,
    /// Why nothing could be measured (boot or vgdb failed).
    pub error: Option<String>,
}

/// Boots ours and the C implementation under callgrind, runs `plan`.
pub fn measure(module: &Path, plan: CallgrindPlan) -> Callgrind {
    let targets: Vec<Target> = std::thread::scope(|s| {
        let handles: Vec<_> = Kind::BROADCASTERS
            .iter()
            .map(|&kind| {
                s.spawn(move || Target::start(kind, config(kind, module).under_callgrind()))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("boot thread"))
            .collect()
    });
    let mut out = Callgrind {
        plan: plan.clone(),
        points: Vec::new(),
        error: None,
    };
    let mut seen: Vec<HashSet<PathBuf>> = targets.iter().map(|_| HashSet::new()).collect();
    for scenario in &plan.scenarios {
        let apps = names(&format!("cg{}", scenario.apps), scenario.apps, 3);
        // Connected at near-native speed (hundreds of WebSocket handshakes
        // under instrumentation outlast the client's patience), then counted.
        let instrument = |on: &str| {
            targets
                .iter()
                .try_for_each(|t| t.ast.callgrind(&format!("instrumentation {on}")).map(drop))
        };
        if let Err(e) = instrument("off") {
            out.error = Some(e);
            return out;
        }
        let _pools: Vec<Pool> = targets
            .iter()
            .map(|t| Pool::connect(t, &apps, scenario.claimants))
            .collect();
        if let Err(e) = instrument("on") {
            out.error = Some(e);
            return out;
        }
        let mut point = Point {
            scenario: scenario.clone(),
            ours: Vec::new(),
            reference: Vec::new(),
            errors: Vec::new(),
        };
        for run in 0..plan.runs {
            for k in 0..targets.len() {
                let i = (run + k) % targets.len();
                let t = &targets[i];
                match segment(t, scenario, &apps, &mut seen[i]) {
                    Ok(counts) => {
                        eprintln!(
                            "[bench] callgrind      {:<9} {} run {}/{}: {:.0} instructions per call, own {:.0} (self {:.0})",
                            t.kind.label(),
                            scenario.key,
                            run + 1,
                            plan.runs,
                            counts.whole,
                            counts.own,
                            counts.own_self
                        );
                        match t.kind {
                            Kind::Ours => point.ours.push(counts),
                            _ => point.reference.push(counts),
                        }
                    }
                    Err(e) => {
                        eprintln!(
                            "[bench] callgrind      {:<9} {}: {e}",
                            t.kind.label(),
                            scenario.key
                        );
                        point.errors.push(format!("{}: {e}", t.kind.label()));
                    }
                }
            }
        }
        out.points.push(point);
    }
    out
}

/// Warm-up, zero, the measured calls, dump; the counts per call.
fn segment(
    t: &Target,
    scenario: &Scenario,
    apps: &[String],
    seen: &mut HashSet<PathBuf>,
) -> Result<Counts, String> {
    let place = |calls: usize| -> Result<(), String> {
        for o in closed_loop(t, calls, 1, CALL_DEADLINE, |i| scenario.call(apps, i)) {
            if let Some(e) = o.error {
                return Err(e);
            }
            // Others' CallBroadcast may still be on their way when the call
            // ends (the feature tests check delivery); one must have arrived.
            if o.record.offers.is_empty() {
                return Err(format!(
                    "call {}: offered to none of {} applications",
                    o.id, scenario.apps
                ));
            }
            if scenario.claimants > 0 && o.record.claim_latency().is_none() {
                return Err(format!("call {}: not won", o.id));
            }
        }
        settle(t)
    };
    place(scenario.warmup)?;
    t.ast.callgrind("zero")?;
    place(scenario.calls)?;
    t.ast.callgrind("dump")?;
    let file = newest_dump(t.ast.dir(), seen).ok_or("no new callgrind dump")?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    // For callgrind_annotate: BENCH_CALLGRIND_DUMPS=DIR keeps every dump there.
    if let Some(keep) = std::env::var_os("BENCH_CALLGRIND_DUMPS") {
        let keep = PathBuf::from(keep);
        let name = format!(
            "callgrind.{}.{}.{}",
            t.kind.label(),
            scenario.key,
            seen.len()
        );
        let _ = std::fs::create_dir_all(&keep).and_then(|()| std::fs::copy(&file, keep.join(name)));
    }
    let own_objects = if t.kind == Kind::Ours {
        OURS_OBJECTS
    } else {
        REFERENCE_OBJECTS
    };
    let cost = parse(&text, own_objects);
    let n = scenario.calls as f64;
    Ok(Counts {
        whole: cost.total as f64 / n,
        own_self: cost.own_self as f64 / n,
        own: (cost.own_self + cost.own_system + cost.own_allocator) as f64 / n,
    })
}

/// Until the instance has no channel left (each call's teardown is in its count).
fn settle(t: &Target) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(300));
    if wait_idle(t, Duration::from_secs(60)) {
        Ok(())
    } else {
        Err("channels left 60 s after the last call".into())
    }
}

/// The dump file written since the last look.
fn newest_dump(dir: &Path, seen: &mut HashSet<PathBuf>) -> Option<PathBuf> {
    let fresh: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("callgrind.out"))
        })
        .filter(|p| !seen.contains(p))
        .collect();
    let newest = fresh
        .iter()
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())?
        .clone();
    seen.extend(fresh);
    Some(newest)
}

/// Instruction totals of one dump.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub total: u64,
    pub own_self: u64,
    pub own_system: u64,
    /// Direct calls from own objects into [`ASTERISK_ALLOCATOR`], inclusive.
    pub own_allocator: u64,
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `ob=(3) /path` defines id 3, `ob=(3)` refers to it; objects and
/// functions number their names separately.
fn resolve(names: &mut std::collections::HashMap<String, String>, spec: &str) -> String {
    let spec = spec.trim();
    if let Some(rest) = spec.strip_prefix('(') {
        if let Some((id, name)) = rest.split_once(')') {
            let name = name.trim();
            if name.is_empty() {
                return names.get(id).cloned().unwrap_or_default();
            }
            names.insert(id.to_owned(), name.to_owned());
            return name.to_owned();
        }
    }
    spec.to_owned()
}

/// Reads a callgrind dump (one event, `Ir`, name compression allowed):
/// the total, the self cost of functions in `own_objects`, and the
/// inclusive cost of their calls into [`SYSTEM_OBJECTS`] and into
/// [`ASTERISK_ALLOCATOR`].
pub fn parse(text: &str, own_objects: &[&str]) -> Cost {
    let mut objects = std::collections::HashMap::new();
    let mut functions = std::collections::HashMap::new();
    let is_own = |object: &str| own_objects.contains(&base_name(object));
    let is_system = |object: &str| {
        SYSTEM_OBJECTS
            .iter()
            .any(|s| base_name(object).starts_with(s))
    };
    // `'2` marks a recursion level (--separate-recs).
    let is_allocator =
        |function: &str| ASTERISK_ALLOCATOR.contains(&function.split('\'').next().unwrap_or(""));
    let mut cost = Cost::default();
    let mut object = String::new();
    let mut call_object: Option<String> = None;
    let mut call_function = String::new();
    let mut in_call = false;
    let mut summed = 0u64;
    for line in text.lines() {
        let Some(first) = line.chars().next() else {
            continue;
        };
        if first.is_ascii_digit() || first == '+' || first == '-' || first == '*' {
            let ir: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if in_call {
                in_call = false;
                let callee = call_object.take().unwrap_or_else(|| object.clone());
                let call_function = std::mem::take(&mut call_function);
                if is_own(&object) && is_system(&callee) {
                    cost.own_system += ir;
                } else if is_own(&object) && !is_own(&callee) && is_allocator(&call_function) {
                    cost.own_allocator += ir;
                }
            } else {
                summed += ir;
                if is_own(&object) {
                    cost.own_self += ir;
                }
            }
            continue;
        }
        if let Some(spec) = line.strip_prefix("ob=") {
            object = resolve(&mut objects, spec);
        } else if let Some(spec) = line.strip_prefix("cob=") {
            call_object = Some(resolve(&mut objects, spec));
        } else if let Some(spec) = line.strip_prefix("fn=") {
            // May define a name a later `cfn=` refers to.
            resolve(&mut functions, spec);
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            call_function = resolve(&mut functions, spec);
        } else if line.starts_with("calls=") {
            in_call = true;
        } else if let Some(total) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            cost.total = cost.total.max(
                total
                    .trim()
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            );
        }
    }
    if cost.total == 0 {
        cost.total = summed;
    }
    cost
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (!sorted.is_empty()).then(|| sorted[(sorted.len() - 1) / 2])
}

/// (max - min) / median, in %.
fn spread(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    (m > 0.0).then(|| (max - min) / m * 100.0)
}

/// One line of the table: a quantity of one scenario.
struct Line {
    what: String,
    ours: Vec<f64>,
    reference: Vec<f64>,
    target: Bound,
}

/// What ours must do against the C module's count.
#[derive(Clone, Copy)]
enum Bound {
    /// Strictly below (the whole process).
    Below,
    /// At most this multiple (the module's own code: 1.05×, the margin
    /// left when generic machinery came from crates rather than by hand).
    AtMost(f64),
}

/// The bound on the module's own code.
const OWN_CODE_BOUND: f64 = 1.05;

impl Line {
    /// Met when the worst run of ours against the best run of C meets the target.
    fn met(&self) -> Option<bool> {
        let worst = self.ours.iter().copied().reduce(f64::max)?;
        let best = self.reference.iter().copied().reduce(f64::min)?;
        Some(match self.target {
            Bound::Below => worst < best,
            Bound::AtMost(factor) => worst <= best * factor,
        })
    }
}

impl Callgrind {
    fn lines(&self) -> Vec<Line> {
        let mut lines = Vec::new();
        for p in &self.points {
            let pick = |f: fn(&Counts) -> f64| -> (Vec<f64>, Vec<f64>) {
                (
                    p.ours.iter().map(f).collect(),
                    p.reference.iter().map(f).collect(),
                )
            };
            let (ours, reference) = pick(|c| c.own);
            lines.push(Line {
                what: format!(
                    "8. Own code + its direct libc and allocator calls, {}",
                    p.scenario.label
                ),
                ours,
                reference,
                target: Bound::AtMost(OWN_CODE_BOUND),
            });
            let (ours, reference) = pick(|c| c.whole);
            lines.push(Line {
                what: format!("8. Whole process, {}", p.scenario.label),
                ours,
                reference,
                target: Bound::Below,
            });
        }
        lines
    }

    /// The instruction-count table.
    pub fn markdown(&self) -> String {
        let mut s = String::from("\n### Instructions per call (callgrind)\n\n");
        if let Some(e) = &self.error {
            s.push_str(&format!("Not measured: {e}\n"));
            return s;
        }
        s.push_str(
            "| Measurement | ours | reference | ours/ref | spread ours / ref | target | met |\n",
        );
        s.push_str("|---|---:|---:|---:|---:|---|---|\n");
        let count = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2} %"));
        for line in self.lines() {
            let (o, r) = (median(&line.ours), median(&line.reference));
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} / {} | {} | {} |\n",
                line.what,
                count(o),
                count(r),
                o.zip(r)
                    .filter(|(_, r)| *r > 0.0)
                    .map_or("–".to_owned(), |(o, r)| format!("{:.3}×", o / r)),
                pct(spread(&line.ours)),
                pct(spread(&line.reference)),
                match line.target {
                    Bound::Below => "< 1.0×".to_owned(),
                    Bound::AtMost(factor) => format!("≤ {factor:.2}×"),
                },
                match line.met() {
                    Some(true) => "yes",
                    _ => "**no**",
                }
            ));
        }
        s.push_str(&format!(
            "\n- Instructions per call (median of {} interleaved run(s) per implementation; spread = (max − min) / median), counted by callgrind on the same Asterisk with boot excluded: per run, {} after warm-up calls. \"Own code\" is the self cost of the implementation's shared objects ({} for the C implementation) plus the inclusive cost of their direct calls into libc, the dynamic linker and the allocator (Asterisk's memory wrappers, `__ast_malloc`, `__ast_free`, ..., included); \"met\" compares ours' worst run with the reference's best.\n",
            self.plan.runs,
            self.plan
                .scenarios
                .iter()
                .map(|sc| format!("{} {} calls", sc.key, sc.calls))
                .collect::<Vec<_>>()
                .join(", "),
            REFERENCE_OBJECTS.join(" + ")
        ));
        for p in &self.points {
            for e in &p.errors {
                s.push_str(&format!("- {}: {e}\n", p.scenario.key));
            }
        }
        s
    }

    /// What the table lacks.
    pub fn missing(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .error
            .iter()
            .map(|e| format!("callgrind: {e}"))
            .collect();
        for p in &self.points {
            if p.ours.is_empty() || p.reference.is_empty() {
                missing.push(format!("callgrind {}: no counts", p.scenario.key));
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
version: 1
creator: callgrind-3.24.0
events: Ir
ob=(1) /usr/lib/asterisk/modules/res_stasis_broadcast_rs.so
fl=(1) src/app.rs
fn=(1) execute
10 100
cob=(2) /usr/lib/x86_64-linux-gnu/libc.so.6
cfi=(2) malloc.c
cfn=(2) malloc
calls=2 0
11 60
cob=(3) /usr/sbin/asterisk
cfn=(3) ao2_ref
calls=1 0
12 500
cob=(3)
cfn=(4) __ast_strdup
calls=1 0
13 40
+1 5
ob=(4) /usr/lib/asterisk/modules/app_stasis_broadcast.so
fl=(3) app_stasis_broadcast.c
fn=(5) broadcast_exec
20 70
cob=(3)
cfn=(4)
calls=1 0
21 40
cob=(3)
cfn=(6) __ast_free'2
calls=1 0
22 25
cob=(3)
cfn=(7) __ao2_alloc
calls=1 0
23 300
ob=(2)
fl=(2)
fn=(2)
0 60
ob=(3)
fn=(3)
0 500
fn=(4)
0 80
fn=(6)
0 25
fn=(7)
0 300
totals: 1140
";

    #[test]
    fn own_cost_counts_direct_libc_and_asterisk_allocator_calls_only() {
        // Ours: its self cost, malloc, ast_strdup; not ao2_ref.
        assert_eq!(
            parse(DUMP, OURS_OBJECTS),
            Cost {
                total: 1140,
                own_self: 105,
                own_system: 60,
                own_allocator: 40,
            }
        );
        // The C module: ast_strdup (named by id only) and ast_free; not
        // ao2_alloc, not ours.
        assert_eq!(
            parse(DUMP, REFERENCE_OBJECTS),
            Cost {
                total: 1140,
                own_self: 70,
                own_system: 0,
                own_allocator: 65,
            }
        );
    }

    #[test]
    fn met_takes_the_worst_run_against_the_best() {
        let line = |ours: &[f64], reference: &[f64], target| Line {
            what: String::new(),
            ours: ours.to_vec(),
            reference: reference.to_vec(),
            target,
        };
        assert_eq!(line(&[90.0, 99.0], &[100.0, 120.0], Bound::Below).met(), Some(true));
        assert_eq!(
            line(&[90.0, 101.0], &[100.0, 120.0], Bound::Below).met(),
            Some(false)
        );
        assert_eq!(line(&[100.0], &[100.0], Bound::Below).met(), Some(false));
        assert_eq!(line(&[100.0], &[100.0], Bound::AtMost(1.0)).met(), Some(true));
        assert_eq!(line(&[104.0], &[100.0], Bound::AtMost(1.05)).met(), Some(true));
        assert_eq!(line(&[106.0], &[100.0], Bound::AtMost(1.05)).met(), Some(false));
        assert_eq!(line(&[], &[100.0], Bound::AtMost(1.05)).met(), None);
    }
}
