//! `make bench`: res_stasis_broadcast_rs side by side with Asterisk's C
//! implementation and with plain `Stasis()` (the floor), on the same
//! Asterisk 22.10.1, in one run, rounds alternating between them.
//!
//! Environment:
//! - `STASIS_BROADCAST_MODULE`: the module to measure (default: the `make` output).
//! - `BENCH_QUICK=1`: a short run (CI smoke test): fewer calls, results in
//!   `target/bench-quick/`, the README left alone.
//! - `BENCH_ONLY=1,5`: only those measurements (numbered as in the table;
//!   8 is the instruction counts under callgrind; `apps`, `waiting`,
//!   `racers` for the scaling curves, `scaling` for all three), results in
//!   `target/bench-only/`, nothing checked: for profiling.
//! - `BENCH_OUT=DIR`: where the results go (default `bench/results/`, or
//!   `target/bench-quick/` in quick mode).
//!
//! Writes `latest.md`, `latest.json` and `latest.png`, and the scaling curves
//! to `scaling.{md,json,png}`; a full run into the default place also copies
//! the table and chart into README.md between `<!-- bench:begin -->` and
//! `<!-- bench:end -->` (the scaling report between `<!-- scaling:begin -->`
//! and `<!-- scaling:end -->`). Exits non-zero if any
//! number the table needs is missing (timings are reported, never asserted).

mod callgrind;
mod chart;
mod engine;
mod meta;
mod phases;
mod record;
mod report;
mod scaling;
mod stats;
mod style;
mod target;

use phases::Plan;
use meta::Meta;
use report::Results;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use target::Target;

const README_BEGIN: &str = "<!-- bench:begin -->";
const README_END: &str = "<!-- bench:end -->";
const SCALING_BEGIN: &str = "<!-- scaling:begin -->";
const SCALING_END: &str = "<!-- scaling:end -->";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let root = repo_root();
    let only = Only::from_env();
    let default_out = if !only.all() {
        root.join("target/bench-only")
    } else if quick {
        root.join("target/bench-quick")
    } else {
        root.join("bench/results")
    };
    let out_dir = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| default_out.clone());
    let module = std::env::var_os("STASIS_BROADCAST_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("res_stasis_broadcast_rs.so"));
    if !module.is_file() {
        eprintln!(
            "bench: module not found at {} (run `make bench`, or `make` first)",
            module.display()
        );
        std::process::exit(2);
    }
    // Nothing may hang unattended: past this, exit (the harness's exit hook kills every Asterisk).
    let limit = Duration::from_secs(if quick { 6 * 60 } else { 25 * 60 });
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("bench: still running after {limit:?}; giving up");
        std::process::exit(3);
    });

    let started = Instant::now();
    eprintln!(
        "[bench] {} run; module {}; results to {}",
        if quick { "quick" } else { "full" },
        module.display(),
        out_dir.display()
    );
    let targets = Target::boot_all(&module);
    let asterisk = targets[0].ast.runtime().asterisk_version();
    eprintln!(
        "[bench] booted {asterisk} three times in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut results = run(&targets, &plan, &only, &module);
    drop(targets);
    if only.wants("8") {
        let t = Instant::now();
        let cg_plan = if quick {
            callgrind::CallgrindPlan::quick()
        } else {
            callgrind::CallgrindPlan::full()
        };
        results.callgrind = Some(callgrind::measure(&module, cg_plan));
        eprintln!(
            "[bench] 8. callgrind done in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let meta = meta(quick, started.elapsed().as_secs_f64(), asterisk, &root);
    let rows = report::rows(&results);
    let md = report::markdown(&meta, &plan, &results, &rows);
    println!("\n{md}");

    fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("create {}: {e}", out_dir.display()));
    let json = serde_json::json!({ "meta": meta, "plan": plan, "table": rows, "results": results });
    let chart_ok = write_set(&out_dir, &root, "latest", &md, &json, |png| {
        chart::render(png, &meta, &results)
    });
    let scaled = write_scaling(&out_dir, &root, &meta, &results.scaling);
    if !quick && only.all() && out_dir == default_out {
        update_readme(
            &root.join("README.md"),
            README_BEGIN,
            README_END,
            &format!("{md}\n![Benchmark chart](bench/results/latest.png)"),
        );
        if let Some((scaling_md, _)) = &scaled {
            update_readme(
                &root.join("README.md"),
                SCALING_BEGIN,
                SCALING_END,
                &format!("{scaling_md}\n![Scaling chart](bench/results/scaling.png)"),
            );
        }
    }
    eprintln!(
        "[bench] wrote {}/latest.{{md,json,png}} in {:.0} s",
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );

    let mut missing = if only.all() {
        let mut m = report::missing(&results, &rows);
        m.extend(scaling::missing(&results.scaling));
        m
    } else {
        Vec::new()
    };
    if !chart_ok {
        missing.push("chart".into());
    }
    if scaled.is_some_and(|(_, drawn)| !drawn) {
        missing.push("scaling chart".into());
    }
    if !missing.is_empty() {
        eprintln!("bench: numbers missing:\n  {}", missing.join("\n  "));
        std::process::exit(1);
    }
}

/// Runs the selected measurements (all of them unless `BENCH_ONLY` says).
/// Throughput goes last: its top steps overload Asterisk, which leaves its
/// memory high and would blur the memory measurement.
fn run(targets: &[Target], plan: &Plan, only: &Only, module: &Path) -> Results {
    let mut r = Results::empty();
    let mut phase = |key: &str, name: &str, f: &mut dyn FnMut(&mut Results)| {
        if only.wants(key) {
            let t = Instant::now();
            f(&mut r);
            eprintln!(
                "[bench] {key}. {name} done in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
    };
    phase("1", "claim latency", &mut |r| {
        (r.claim_latency, r.claim_parts) = phases::claim_latency(targets, plan)
    });
    phase("2", "fan-out", &mut |r| {
        r.fan_out = phases::fan_out(targets, plan)
    });
    phase("3", "hang-up release", &mut |r| {
        r.hangup_release = phases::hangup_release(targets, plan)
    });
    phase("4", "timeout accuracy", &mut |r| {
        r.timeout_error = phases::timeout_accuracy(targets, plan)
    });
    phase("6", "fairness", &mut |r| {
        r.fairness = phases::fairness(targets, plan)
    });
    phase("7", "memory", &mut |r| {
        r.memory = phases::memory(targets, plan)
    });
    let sp = if plan.quick {
        scaling::ScalePlan::quick()
    } else {
        scaling::ScalePlan::full()
    };
    // The scaling curves after the memory row (they leave many threads and
    // a larger heap behind) and before throughput (its overload would hide
    // how memory grows with waiting calls).
    phase("apps", "scaling (a), connected applications", &mut |r| {
        r.scaling.plan = Some(sp.clone());
        r.scaling.apps = scaling::apps(targets, plan, &sp)
    });
    phase("waiting", "scaling (b), broadcasts waiting", &mut |r| {
        r.scaling.plan = Some(sp.clone());
        r.scaling.waiting = scaling::waiting(module, &sp)
    });
    phase("racers", "scaling (c), racing claimants", &mut |r| {
        r.scaling.plan = Some(sp.clone());
        r.scaling.racers = scaling::racers(targets, &sp)
    });
    phase("5", "throughput", &mut |r| {
        r.throughput = phases::throughput(targets, plan)
    });
    r
}

/// `BENCH_ONLY=1,5`: only those measurements (for profiling one of them);
/// `scaling` stands for the three scaling curves.
struct Only(Option<Vec<String>>);

impl Only {
    fn from_env() -> Only {
        Only(
            std::env::var("BENCH_ONLY")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.split(',').map(|k| k.trim().to_owned()).collect()),
        )
    }

    fn wants(&self, key: &str) -> bool {
        let scaling = ["apps", "waiting", "racers"].contains(&key);
        self.0
            .as_ref()
            .is_none_or(|list| list.iter().any(|k| k == key || (scaling && k == "scaling")))
    }

    fn all(&self) -> bool {
        self.0.is_none()
    }
}

fn command(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn meta(quick: bool, wall_seconds: f64, asterisk: String, root: &Path) -> Meta {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Meta {
        date: command("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root).unwrap_or_default(),
        mode: if quick { "quick" } else { "full" }.into(),
        wall_seconds: wall_seconds.round(),
        cpu: cpu.unwrap_or_else(|| "unknown CPU".into()),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        asterisk,
        commit: command("git", &["rev-parse", "--short", "HEAD"], root)
            .unwrap_or_else(|| "unknown".into()),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
}

/// Writes `<stem>.md`, `<stem>.json` and `<stem>.png`; whether the chart was drawn.
fn write_set(
    out_dir: &Path,
    root: &Path,
    stem: &str,
    md: &str,
    json: &serde_json::Value,
    draw: impl FnOnce(&Path) -> Result<(), Box<dyn std::error::Error>>,
) -> bool {
    write_atomic(&out_dir.join(format!("{stem}.md")), md.as_bytes());
    write_atomic(
        &out_dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(json).expect("JSON").as_bytes(),
    );
    // Drawn beside the build (the encoder wants a .png name), then moved into place.
    let png = out_dir.join(format!("{stem}.png"));
    let tmp = root.join(format!("target/bench-{stem}.png"));
    match draw(&tmp) {
        Ok(()) => fs::rename(&tmp, &png)
            .or_else(|_| fs::copy(&tmp, &png).map(|_| ()))
            .is_ok(),
        Err(e) => {
            eprintln!("bench: {stem} chart: {e}");
            false
        }
    }
}

/// Writes `scaling.{md,json,png}` when any scaling curve was measured; the
/// markdown, and whether the chart was drawn.
fn write_scaling(
    out_dir: &Path,
    root: &Path,
    meta: &Meta,
    s: &scaling::Scaling,
) -> Option<(String, bool)> {
    s.plan.as_ref()?;
    let md = scaling::markdown(meta, s);
    println!("\n{md}");
    let json = serde_json::json!({ "meta": meta, "scaling": s, "fits": scaling::fits(s) });
    let drawn = write_set(out_dir, root, "scaling", &md, &json, |png| {
        scaling::render(png, meta, s)
    });
    Some((md, drawn))
}

/// Puts `section` between the README's markers `begin` and `end`.
fn update_readme(readme: &Path, begin_marker: &str, end_marker: &str, section: &str) {
    let Ok(text) = fs::read_to_string(readme) else {
        return;
    };
    let (Some(begin), Some(end)) = (text.find(begin_marker), text.find(end_marker)) else {
        eprintln!("bench: README.md has no {begin_marker} … {end_marker} markers; not updated");
        return;
    };
    if end < begin {
        return;
    }
    let section = format!("{begin_marker}\n{section}\n{end_marker}");
    let updated = format!(
        "{}{section}{}",
        &text[..begin],
        &text[end + end_marker.len()..]
    );
    write_atomic(readme, updated.as_bytes());
}
