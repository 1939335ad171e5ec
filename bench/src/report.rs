//! The table (markdown), the JSON beside it, and the targets.

use crate::phases::{
    passed_by_all, ByKind, ClaimParts, Fairness, FanPoint, Ladder, Measured, Memory, Plan,
};
use crate::stats::{bootstrap, pct, Stat, Summary};
use crate::meta::Meta;
use crate::target::Kind;
use serde::Serialize;

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub claim_latency: ByKind<Measured>,
    /// The claim latency's parts, to see where a difference comes from.
    pub claim_parts: ByKind<ClaimParts>,
    pub fan_out: Vec<FanPoint>,
    pub hangup_release: ByKind<Measured>,
    pub timeout_error: ByKind<Measured>,
    pub throughput: ByKind<Ladder>,
    pub fairness: ByKind<Fairness>,
    pub memory: ByKind<Memory>,
    /// Written to scaling.json of its own.
    #[serde(skip)]
    pub scaling: crate::scaling::Scaling,
    pub callgrind: Option<crate::callgrind::Callgrind>,
}

impl Results {
    /// Nothing measured yet.
    pub fn empty() -> Results {
        Results {
            claim_latency: ByKind::default(),
            claim_parts: ByKind::default(),
            fan_out: Vec::new(),
            hangup_release: ByKind::default(),
            timeout_error: ByKind::default(),
            throughput: ByKind::default(),
            fairness: ByKind::default(),
            memory: ByKind::default(),
            scaling: Default::default(),
            callgrind: None,
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub measurement: String,
    pub unit: &'static str,
    pub ours: Option<f64>,
    pub reference: Option<f64>,
    /// ours / reference, where a ratio means something.
    pub ratio: Option<f64>,
    /// 95 % interval of the ratio (bootstrap over the interleaved rounds;
    /// for the highest sustained throughput, the bracket the ladder leaves).
    pub ratio_interval: Option<[f64; 2]>,
    /// 95 % interval of ours, for a target on ours' own value.
    pub ours_interval: Option<[f64; 2]>,
    pub floor: Option<f64>,
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Clone, Copy)]
enum Goal {
    /// ours / reference at most this.
    RatioAtMost(f64),
    /// ours / reference at least this.
    RatioAtLeast(f64),
    /// ours at most this.
    OursAtMost(f64),
    /// ours above this.
    OursAbove(f64),
    /// ours no more than the reference.
    NotAboveReference,
}

struct RowSpec {
    measurement: String,
    unit: &'static str,
    values: [Option<f64>; 3],
    ratio: bool,
    goal: Option<Goal>,
    ratio_ci: Option<(f64, f64)>,
    ours_ci: Option<(f64, f64)>,
}

impl RowSpec {
    fn new(
        measurement: impl Into<String>,
        unit: &'static str,
        values: [Option<f64>; 3],
    ) -> RowSpec {
        RowSpec {
            measurement: measurement.into(),
            unit,
            values,
            ratio: true,
            goal: None,
            ratio_ci: None,
            ours_ci: None,
        }
    }

    /// The ratio's interval (shown, and what a ratio target is judged on).
    fn ratio_ci(mut self, ci: Option<(f64, f64)>) -> RowSpec {
        self.ratio_ci = ci;
        self
    }

    /// Ours' interval (shown, and what a target on ours is judged on).
    fn ours_ci(mut self, ci: Option<(f64, f64)>) -> RowSpec {
        self.ours_ci = ci;
        self
    }

    fn no_ratio(mut self) -> RowSpec {
        self.ratio = false;
        self
    }

    fn goal(mut self, goal: Goal) -> RowSpec {
        self.goal = Some(goal);
        self
    }

    fn build(self) -> Row {
        let [ours, reference, floor] = self.values;
        let ratio = match (self.ratio, ours, reference) {
            (true, Some(o), Some(r)) if r > 0.0 => Some(o / r),
            _ => None,
        };
        // Judged on the whole interval where there is one: the upper bound
        // for "at most", the lower bound for "at least".
        let ratio_ci = self.ratio_ci.filter(|_| ratio.is_some());
        let ours_ci = self.ours_ci.filter(|_| ours.is_some());
        let ratio_hi = ratio_ci.map(|c| c.1).or(ratio);
        let ratio_lo = ratio_ci.map(|c| c.0).or(ratio);
        let ours_hi = ours_ci.map(|c| c.1).or(ours);
        let (target, met) = match self.goal {
            None => (None, None),
            Some(goal) => {
                let (text, met) = match goal {
                    Goal::RatioAtMost(x) => (format!("≤ {x:.1}×"), ratio_hi.map(|r| r <= x)),
                    Goal::RatioAtLeast(x) => (format!("≥ {x:.1}×"), ratio_lo.map(|r| r >= x)),
                    Goal::OursAtMost(x) => {
                        (format!("≤ {x} {}", self.unit), ours_hi.map(|o| o <= x))
                    }
                    Goal::OursAbove(x) => (format!("> {x}"), ours.map(|o| o > x)),
                    Goal::NotAboveReference => (
                        "≤ reference".to_owned(),
                        ours.zip(reference).map(|(o, r)| o <= r),
                    ),
                };
                (Some(text), Some(met.unwrap_or(false)))
            }
        };
        Row {
            measurement: self.measurement,
            unit: self.unit,
            ours,
            reference,
            ratio,
            ratio_interval: ratio_ci.map(|(lo, hi)| [lo, hi]),
            ours_interval: ours_ci.map(|(lo, hi)| [lo, hi]),
            floor,
            target,
            met,
        }
    }
}

fn each<T>(by: &ByKind<T>, f: impl Fn(&T) -> Option<f64>) -> [Option<f64>; 3] {
    Kind::ALL.map(|k| by.get(k).and_then(&f))
}

fn stat(by: &ByKind<Measured>, f: fn(&Summary) -> f64) -> [Option<f64>; 3] {
    each(by, |m| m.summary.as_ref().map(f))
}

/// p99 of |sample|: how far off the worst 1 % is, either way.
fn abs_p99(m: &Measured) -> Option<f64> {
    let mut abs: Vec<f64> = m.samples.to_vec();
    (!abs.is_empty()).then(|| abs_p99_of(&mut abs))
}

fn abs_p99_of(v: &mut [f64]) -> f64 {
    v.iter_mut().for_each(|x| *x = x.abs());
    pct(99.0)(v)
}

/// 95 % interval of ours / reference for `stat`, over the interleaved rounds.
fn ratio_ci(by: &ByKind<Measured>, stat: &Stat) -> Option<(f64, f64)> {
    let (o, r) = (by.ours.as_ref()?, by.reference.as_ref()?);
    bootstrap(&o.by_round(), Some(&r.by_round()), stat)
}

/// 95 % interval of ours' own `stat`, over its rounds.
fn ours_ci(by: &ByKind<Measured>, stat: &Stat) -> Option<(f64, f64)> {
    bootstrap(&by.ours.as_ref()?.by_round(), None, stat)
}

/// The highest sustained rate lies between the last rate passed and the
/// first failed: ours' lowest over the reference's highest, and the reverse.
fn sustained_bracket(t: &ByKind<Ladder>) -> Option<(f64, f64)> {
    let (o, r) = (t.ours.as_ref()?, t.reference.as_ref()?);
    let top = |l: &Ladder| l.first_failed.unwrap_or(f64::INFINITY);
    (o.sustained > 0.0 && r.sustained > 0.0).then(|| (o.sustained / top(r), top(o) / r.sustained))
}

/// 95 % interval of the CPU-per-call ratio, resampling the rates every
/// implementation passed (each weighted by its calls, as the row is).
fn cpu_ci(t: &ByKind<Ladder>) -> Option<(f64, f64)> {
    let per_step = |l: &Ladder| -> Vec<Vec<f64>> {
        l.steps
            .iter()
            .filter(|st| st.pass && passed_by_all(t, st.rate))
            .filter_map(|st| Some(vec![st.cpu_ms_per_call?; st.calls]))
            .collect()
    };
    let (o, r) = (per_step(t.ours.as_ref()?), per_step(t.reference.as_ref()?));
    let o: Vec<&[f64]> = o.iter().map(Vec::as_slice).collect();
    let r: Vec<&[f64]> = r.iter().map(Vec::as_slice).collect();
    let mean = |v: &mut [f64]| v.iter().sum::<f64>() / v.len() as f64;
    bootstrap(&o, Some(&r), &mean)
}

/// The table, in order.
pub fn rows(r: &Results) -> Vec<Row> {
    let mut rows = vec![
        RowSpec::new(
            "1. Claim latency p50",
            "ms",
            stat(&r.claim_latency, |s| s.p50),
        )
        .ratio_ci(ratio_ci(&r.claim_latency, &pct(50.0)))
        .goal(Goal::RatioAtMost(1.0)),
        RowSpec::new(
            "1. Claim latency p90",
            "ms",
            stat(&r.claim_latency, |s| s.p90),
        )
        .ratio_ci(ratio_ci(&r.claim_latency, &pct(90.0))),
        RowSpec::new(
            "1. Claim latency p99",
            "ms",
            stat(&r.claim_latency, |s| s.p99),
        )
        .ratio_ci(ratio_ci(&r.claim_latency, &pct(99.0)))
        .goal(Goal::RatioAtMost(1.0)),
        RowSpec::new(
            "1. Claim latency max",
            "ms",
            stat(&r.claim_latency, |s| s.max),
        ),
    ];
    for p in &r.fan_out {
        let last = r.fan_out.last().is_some_and(|l| l.apps == p.apps);
        let start = RowSpec::new(
            format!(
                "2. Dialplan time in StasisBroadcast(0), {} app(s), p50",
                p.apps
            ),
            "ms",
            stat(&p.start, |s| s.p50),
        )
        .ratio_ci(ratio_ci(&p.start, &pct(50.0)));
        rows.push(if last {
            start.goal(Goal::RatioAtMost(1.0))
        } else {
            start
        });
        if p.apps > 1 {
            let spread = RowSpec::new(
                format!("2. First→last CallBroadcast, {} apps, p50", p.apps),
                "ms",
                stat(&p.spread, |s| s.p50),
            )
            .ratio_ci(ratio_ci(&p.spread, &pct(50.0)));
            rows.push(if last {
                spread.goal(Goal::RatioAtMost(1.0))
            } else {
                spread
            });
        }
    }
    rows.extend([
        RowSpec::new(
            "3. Hang-up release p50",
            "ms",
            stat(&r.hangup_release, |s| s.p50),
        )
        .ratio_ci(ratio_ci(&r.hangup_release, &pct(50.0))),
        RowSpec::new(
            "3. Hang-up release p99",
            "ms",
            stat(&r.hangup_release, |s| s.p99),
        )
        .ratio_ci(ratio_ci(&r.hangup_release, &pct(99.0)))
        .ours_ci(ours_ci(&r.hangup_release, &pct(99.0)))
        .goal(Goal::OursAtMost(20.0)),
        RowSpec::new(
            "4. Timeout error (actual − 100 ms) p50",
            "ms",
            stat(&r.timeout_error, |s| s.p50),
        )
        .ratio_ci(ratio_ci(&r.timeout_error, &pct(50.0))),
        RowSpec::new(
            "4. Timeout error, p99 of its absolute value",
            "ms",
            each(&r.timeout_error, abs_p99),
        )
        .ratio_ci(ratio_ci(&r.timeout_error, &abs_p99_of))
        .ours_ci(ours_ci(&r.timeout_error, &abs_p99_of))
        .goal(Goal::OursAtMost(5.0)),
        RowSpec::new(
            "5. Throughput, highest sustained",
            "calls/s",
            each(&r.throughput, |l| Some(l.sustained)),
        )
        .ratio_ci(sustained_bracket(&r.throughput))
        .goal(Goal::RatioAtLeast(1.0)),
        RowSpec::new(
            "5. Asterisk CPU per call, at rates all passed",
            "ms",
            each(&r.throughput, |l| l.cpu_ms_per_call),
        )
        .ratio_ci(cpu_ci(&r.throughput)),
        RowSpec::new(
            "6. Fairness, chi-square p-value (8 apps)",
            "",
            each(&r.fairness, |f| Some(f.p_value)),
        )
        .no_ratio()
        .goal(Goal::OursAbove(0.01)),
        RowSpec::new(
            "7. Memory growth over the calls",
            "KiB",
            each(&r.memory, |m| Some(m.growth_kib as f64)),
        )
        .no_ratio()
        .goal(Goal::NotAboveReference),
    ]);
    rows.into_iter().map(RowSpec::build).collect()
}

fn cell(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 0.01 || v == 0.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.1e}"),
    }
}

/// The markdown report: the table, then the details a reader needs to trust it.
pub fn markdown(meta: &Meta, plan: &Plan, r: &Results, rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| Measurement | unit | ours | reference | ours/ref | floor | target | met |\n");
    s.push_str("|---|---|---:|---:|---:|---:|---|---|\n");
    let bounds = |ci: Option<[f64; 2]>| match ci {
        Some([lo, hi]) if hi.is_finite() => format!(" [{lo:.2}, {hi:.2}]"),
        Some([lo, _]) => format!(" [{lo:.2}, ∞)"),
        None => String::new(),
    };
    for row in rows {
        s.push_str(&format!(
            "| {} | {} | {}{} | {} | {} | {} | {} | {} |\n",
            row.measurement,
            row.unit,
            cell(row.ours),
            bounds(row.ours_interval),
            cell(row.reference),
            row.ratio
                .map(|x| format!("{x:.3}×{}", bounds(row.ratio_interval)))
                .unwrap_or_else(|| "–".into()),
            cell(row.floor),
            row.target.as_deref().unwrap_or(""),
            match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        ));
    }
    s.push('\n');
    s.push_str(
        "In brackets, 95 % intervals: a bootstrap over the interleaved rounds (the same rounds drawn for both \
         implementations; single samples when a phase has fewer than five rounds), for the highest sustained \
         throughput the bracket its ladder leaves (last rate passed, first failed), for the CPU per call a \
         bootstrap over the rates all passed. A target is met only when the whole interval is inside it.\n\n",
    );
    s.push_str(&format!(
        "Measured {} ({} mode, {:.0} s wall) on {} ({} cores, {:.0} GiB), Linux {}, {}, commit {}.\n\n",
        meta.date, meta.mode, meta.wall_seconds, meta.cpu, meta.cores, meta.memory_gib, meta.kernel, meta.asterisk, meta.commit
    ));
    let counts = |m: &ByKind<Measured>| {
        Kind::ALL
            .iter()
            .filter_map(|&k| {
                m.get(k).map(|m| {
                    format!(
                        "{} {} ({} failed)",
                        k.label(),
                        m.summary.as_ref().map_or(0, |s| s.n),
                        m.failures
                    )
                })
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.push_str(&format!(
        "- Claim latency samples: {}.\n",
        counts(&r.claim_latency)
    ));
    for k in Kind::ALL {
        if let Some(p) = r.claim_parts.get(k) {
            let p50 = |m: &Measured| {
                m.summary
                    .as_ref()
                    .map_or("–".to_owned(), |s| format!("{:.3}", s.p50))
            };
            s.push_str(&format!(
                "- Claim latency parts (p50 ms), {}: CallBroadcast read → claim sent {}, claim sent → answer read {}, answer read → StasisStart read {}.\n",
                k.label(),
                p50(&p.offer_to_request),
                p50(&p.request_to_answer),
                p50(&p.answer_to_stasis_start)
            ));
        }
    }
    s.push_str(&format!(
        "- Hang-up release samples: {}.\n",
        counts(&r.hangup_release)
    ));
    s.push_str(&format!(
        "- Timeout samples: {}.\n",
        counts(&r.timeout_error)
    ));
    for k in Kind::ALL {
        if let Some(l) = r.throughput.get(k) {
            let steps: Vec<String> = l
                .steps
                .iter()
                .map(|st| format!("{}{}", st.rate, if st.pass { "✓" } else { "✗" }))
                .collect();
            let why = l
                .steps
                .iter()
                .find(|st| !st.pass)
                .map(|st| format!("; first failure: {}", st.why))
                .unwrap_or_default();
            s.push_str(&format!(
                "- Throughput steps, {} (calls/s): {}{}.\n",
                k.label(),
                steps.join(" "),
                why
            ));
        }
    }
    for k in Kind::BROADCASTERS {
        if let Some(f) = r.fairness.get(k) {
            s.push_str(&format!(
                "- Fairness, {}: wins {:?} over {} calls, chi-square {:.2}, p = {:.3} ({} failed).\n",
                k.label(),
                f.wins,
                f.calls,
                f.chi2,
                f.p_value,
                f.failures
            ));
        }
    }
    for k in Kind::ALL {
        if let Some(m) = r.memory.get(k) {
            s.push_str(&format!(
                "- Memory, {}: RSS {} → {} KiB over {} calls ({} failed).\n",
                k.label(),
                m.rss_before_kib,
                m.rss_after_kib,
                m.calls,
                m.failures
            ));
        }
    }
    s.push_str(&format!(
        "- Plan: {} claim-latency calls, fan-out {:?} apps × {} calls, {} hang-ups, {} timeouts, throughput steps of {} s from {} calls/s, {} fairness calls, {} memory calls per implementation.\n",
        plan.latency_calls,
        plan.fan_apps,
        plan.fan_calls,
        plan.hangup_calls,
        plan.timeout_calls,
        plan.rate_step_secs,
        plan.rate_start,
        plan.fairness_calls,
        plan.memory_calls
    ));
    if let Some(cg) = &r.callgrind {
        s.push_str(&cg.markdown());
    }
    s
}

/// Whether every number the table needs is there (what the CI smoke checks).
pub fn missing(r: &Results, rows: &[Row]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for row in rows {
        if row.ours.is_none() || row.reference.is_none() {
            missing.push(row.measurement.clone());
        }
    }
    let sampled = |name: &str, m: &ByKind<Measured>, kinds: &[Kind], missing: &mut Vec<String>| {
        for &k in kinds {
            if m.get(k).and_then(|m| m.summary.as_ref()).is_none() {
                missing.push(format!("{name}: no samples for {}", k.label()));
            }
        }
    };
    sampled("claim latency", &r.claim_latency, &Kind::ALL, &mut missing);
    sampled(
        "hang-up release",
        &r.hangup_release,
        &Kind::ALL,
        &mut missing,
    );
    sampled("timeout error", &r.timeout_error, &Kind::ALL, &mut missing);
    for p in &r.fan_out {
        sampled(
            &format!("fan-out {} start", p.apps),
            &p.start,
            &Kind::ALL,
            &mut missing,
        );
    }
    for k in Kind::BROADCASTERS {
        if r.fairness.get(k).is_none_or(|f| f.calls == 0) {
            missing.push(format!("fairness: no wins for {}", k.label()));
        }
        if r.memory
            .get(k)
            .is_none_or(|m| m.rss_before_kib == 0 || m.rss_after_kib == 0)
        {
            missing.push(format!("memory: no RSS for {}", k.label()));
        }
    }
    missing.extend(r.callgrind.iter().flat_map(|cg| cg.missing()));
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_without_numbers_is_reported_missing() {
        let r = Results::empty();
        let missing = missing(&r, &rows(&r));
        assert!(
            missing.iter().any(|m| m.contains("Claim latency p50")),
            "{missing:?}"
        );
        assert!(missing.iter().any(|m| m.contains("memory")), "{missing:?}");
    }

    #[test]
    fn ratio_and_targets() {
        let mut r = Results::empty();
        let measured = |ms: f64| Measured {
            summary: Summary::of(&[ms]),
            samples: vec![ms],
            ..Measured::default()
        };
        for (kind, ms) in [
            (Kind::Ours, 1.0),
            (Kind::Reference, 2.0),
            (Kind::Floor, 0.5),
        ] {
            r.claim_latency.set(kind, measured(ms));
        }
        let rows = rows(&r);
        let p50 = rows
            .iter()
            .find(|row| row.measurement == "1. Claim latency p50")
            .expect("row");
        assert_eq!(
            (p50.ours, p50.reference, p50.floor, p50.ratio),
            (Some(1.0), Some(2.0), Some(0.5), Some(0.5))
        );
        assert_eq!(p50.met, Some(true));
        let throughput = rows
            .iter()
            .find(|row| row.measurement.starts_with("5."))
            .expect("row");
        assert_eq!(throughput.met, Some(false), "no numbers, target not met");
    }

    #[test]
    fn a_ratio_target_is_met_only_when_its_whole_interval_is() {
        let mut r = Results::empty();
        // Same values overall (ratio 1.000), but round by round they differ.
        let rounds = |value: &dyn Fn(usize) -> f64| {
            let mut m = Measured::default();
            for round in 0..10 {
                for _ in 0..5 {
                    m.push(value(round));
                }
                m.end_round();
            }
            m.finish()
        };
        r.claim_latency.set(Kind::Ours, rounds(&|i| 1.0 + i as f64));
        r.claim_latency
            .set(Kind::Reference, rounds(&|i| 10.0 - i as f64));
        let rows = rows(&r);
        let p50 = rows
            .iter()
            .find(|row| row.measurement == "1. Claim latency p50")
            .expect("row");
        assert_eq!(p50.ratio, Some(1.0));
        let [lo, hi] = p50.ratio_interval.expect("interval");
        assert!(lo < 1.0 && hi > 1.0, "{lo} {hi}");
        assert_eq!(p50.met, Some(false), "the interval reaches past 1.0×");
    }
}
