//! Counters since load and the claim-to-wake latency distribution, for the
//! CLI (`stasis broadcast show stats`) and Prometheus.
//!
//! Counters are atomics, so a call or a claim counts without taking a lock;
//! the latency distribution is under a `Mutex`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// How a started broadcast ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Claimed, and the winner's Stasis session ran.
    Claimed,
    TimedOut,
    /// The caller hung up while waiting for a claim.
    HungUp,
    /// Claimed, but Stasis failed for the winner.
    StasisFailed,
}

/// What a claim request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimAnswer {
    Won,
    /// 409: somebody else won first.
    Conflict,
    /// 404: no broadcast waiting for that channel.
    NotFound,
    /// 404: refused by `claim_policy` (not registered / not offered).
    Policy,
}

/// Upper bounds of the Prometheus histogram buckets, in microseconds.
pub const LATENCY_BOUNDS_US: [u64; 14] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000];
/// How many recent latencies the percentiles are computed over.
const RECENT_SAMPLES: usize = 10_000;

/// A consistent copy of every counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// StasisBroadcast() calls that offered the call.
    pub started: u64,
    pub claimed: u64,
    pub timed_out: u64,
    pub hung_up: u64,
    pub stasis_failed: u64,
    /// StasisBroadcast() calls that could not start (bad filter, no snapshot).
    pub not_started: u64,
    pub claims_won: u64,
    pub rejected_conflict: u64,
    pub rejected_not_found: u64,
    pub rejected_policy: u64,
    /// Samples per bucket of [`LATENCY_BOUNDS_US`] (not cumulative), plus one
    /// last bucket for anything larger.
    pub latency_buckets: Vec<u64>,
    pub latency_count: u64,
    pub latency_sum_us: u64,
}

/// Percentiles of the recent claim-to-wake latencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub samples: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The latency distribution and the counters' start, under one lock.
struct Latency {
    buckets: Vec<u64>,
    count: u64,
    sum_us: u64,
    recent: VecDeque<u64>,
    since: Instant,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency { buckets: Vec::new(), count: 0, sum_us: 0, recent: VecDeque::new(), since: Instant::now() }
    }
}

/// Event counters are atomics (a call or a claim adds one without a lock);
/// the latencies, a few values updated together, are under a `Mutex`.
#[derive(Default)]
pub struct Stats {
    started: AtomicU64,
    not_started: AtomicU64,
    claimed: AtomicU64,
    timed_out: AtomicU64,
    hung_up: AtomicU64,
    stasis_failed: AtomicU64,
    claims_won: AtomicU64,
    rejected_conflict: AtomicU64,
    rejected_not_found: AtomicU64,
    rejected_policy: AtomicU64,
    latency: Mutex<Latency>,
}

fn add_one(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn new() -> Stats {
        Stats::default()
    }

    fn lock(&self) -> MutexGuard<'_, Latency> {
        // Counters stay meaningful after a panic elsewhere: keep counting.
        self.latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn counters(&self) -> [&AtomicU64; 10] {
        [
            &self.started,
            &self.not_started,
            &self.claimed,
            &self.timed_out,
            &self.hung_up,
            &self.stasis_failed,
            &self.claims_won,
            &self.rejected_conflict,
            &self.rejected_not_found,
            &self.rejected_policy,
        ]
    }

    /// Time since the counters started (load).
    pub fn since(&self) -> Duration {
        self.lock().since.elapsed()
    }

    /// Back to zero (at load).
    pub fn reset(&self) {
        let mut latency = self.lock();
        *latency = Latency::default();
        for counter in self.counters() {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub fn started(&self) {
        add_one(&self.started);
    }

    pub fn not_started(&self) {
        add_one(&self.not_started);
    }

    pub fn ended(&self, ending: Ending) {
        add_one(match ending {
            Ending::Claimed => &self.claimed,
            Ending::TimedOut => &self.timed_out,
            Ending::HungUp => &self.hung_up,
            Ending::StasisFailed => &self.stasis_failed,
        });
    }

    pub fn claim(&self, answer: ClaimAnswer) {
        add_one(match answer {
            ClaimAnswer::Won => &self.claims_won,
            ClaimAnswer::Conflict => &self.rejected_conflict,
            ClaimAnswer::NotFound => &self.rejected_not_found,
            ClaimAnswer::Policy => &self.rejected_policy,
        });
    }

    /// Time from a winning claim to the dialplan thread acting on it.
    pub fn claim_to_wake(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // The first bound at or above it (the bounds ascend); past the last, the overflow bucket.
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < micros);
        let mut latency = self.lock();
        if latency.buckets.is_empty() {
            latency.buckets = vec![0; LATENCY_BOUNDS_US.len() + 1];
        }
        latency.buckets[bucket] += 1;
        latency.count += 1;
        latency.sum_us = latency.sum_us.saturating_add(micros);
        if latency.recent.len() == RECENT_SAMPLES {
            latency.recent.pop_front();
        } else if latency.recent.capacity() == 0 {
            // All of it at the first claim rather than a reallocation every
            // doubling on the way.
            latency.recent.reserve_exact(RECENT_SAMPLES);
        }
        latency.recent.push_back(micros);
    }

    /// Every counter now (each read once: calls still running may be
    /// counted as started and not yet as ended).
    pub fn snapshot(&self) -> Snapshot {
        let (latency_buckets, latency_count, latency_sum_us) = {
            let latency = self.lock();
            let buckets =
                if latency.buckets.is_empty() { vec![0; LATENCY_BOUNDS_US.len() + 1] } else { latency.buckets.clone() };
            (buckets, latency.count, latency.sum_us)
        };
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            started: read(&self.started),
            claimed: read(&self.claimed),
            timed_out: read(&self.timed_out),
            hung_up: read(&self.hung_up),
            stasis_failed: read(&self.stasis_failed),
            not_started: read(&self.not_started),
            claims_won: read(&self.claims_won),
            rejected_conflict: read(&self.rejected_conflict),
            rejected_not_found: read(&self.rejected_not_found),
            rejected_policy: read(&self.rejected_policy),
            latency_buckets,
            latency_count,
            latency_sum_us,
        }
    }

    /// Percentiles over the last 10,000 claims (None before the first).
    pub fn percentiles(&self) -> Option<Percentiles> {
        let mut samples: Vec<u64> = self.lock().recent.iter().copied().collect();
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        // Nearest rank: the smallest sample with at least q of all at or below it.
        let rank = |q: f64| {
            let index = (q * samples.len() as f64).ceil() as usize;
            Duration::from_micros(samples[index.clamp(1, samples.len()) - 1])
        };
        Some(Percentiles {
            samples: samples.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: Duration::from_micros(samples[samples.len() - 1]),
        })
    }
}

/// The counters in Prometheus' text exposition format, under
/// `asterisk_stasis_broadcast_` names. `in_progress` is the live broadcast count.
pub fn prometheus_text(stats: &Snapshot, in_progress: usize) -> String {
    const PREFIX: &str = "asterisk_stasis_broadcast";
    let mut out = String::new();
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {PREFIX}_{name} {help}\n# TYPE {PREFIX}_{name} {kind}");
    };
    header(&mut out, "started_total", "counter", "StasisBroadcast() calls that offered the call, since load.");
    let _ = writeln!(out, "{PREFIX}_started_total {}", stats.started);
    header(&mut out, "ended_total", "counter", "Broadcasts ended since load, by outcome.");
    for (outcome, count) in [
        ("claimed", stats.claimed),
        ("timed_out", stats.timed_out),
        ("hung_up", stats.hung_up),
        ("stasis_failed", stats.stasis_failed),
    ] {
        let _ = writeln!(out, "{PREFIX}_ended_total{{outcome=\"{outcome}\"}} {count}");
    }
    header(&mut out, "not_started_total", "counter", "StasisBroadcast() calls that could not start, since load.");
    let _ = writeln!(out, "{PREFIX}_not_started_total {}", stats.not_started);
    header(&mut out, "claims_total", "counter", "Claim requests since load, by answer.");
    for (result, count) in [
        ("won", stats.claims_won),
        ("conflict", stats.rejected_conflict),
        ("not_found", stats.rejected_not_found),
        ("policy", stats.rejected_policy),
    ] {
        let _ = writeln!(out, "{PREFIX}_claims_total{{result=\"{result}\"}} {count}");
    }
    header(&mut out, "active", "gauge", "Broadcasts in progress (waiting, or held by a winner's Stasis session).");
    let _ = writeln!(out, "{PREFIX}_active {in_progress}");
    header(
        &mut out,
        "claim_wake_seconds",
        "histogram",
        "Time from a winning claim to the dialplan thread taking the call.",
    );
    let mut cumulative = 0;
    for (bound, count) in LATENCY_BOUNDS_US.iter().zip(&stats.latency_buckets) {
        cumulative += count;
        let _ = writeln!(out, "{PREFIX}_claim_wake_seconds_bucket{{le=\"{}\"}} {cumulative}", *bound as f64 / 1e6);
    }
    let _ = writeln!(out, "{PREFIX}_claim_wake_seconds_bucket{{le=\"+Inf\"}} {}", stats.latency_count);
    let _ = writeln!(out, "{PREFIX}_claim_wake_seconds_sum {}", stats.latency_sum_us as f64 / 1e6);
    let _ = writeln!(out, "{PREFIX}_claim_wake_seconds_count {}", stats.latency_count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_what_they_are_told() {
        let stats = Stats::new();
        for _ in 0..3 {
            stats.started();
        }
        stats.ended(Ending::Claimed);
        stats.ended(Ending::TimedOut);
        stats.ended(Ending::HungUp);
        stats.ended(Ending::StasisFailed);
        stats.not_started();
        stats.claim(ClaimAnswer::Won);
        stats.claim(ClaimAnswer::Conflict);
        stats.claim(ClaimAnswer::Conflict);
        stats.claim(ClaimAnswer::NotFound);
        stats.claim(ClaimAnswer::Policy);
        let s = stats.snapshot();
        assert_eq!(
            (s.started, s.claimed, s.timed_out, s.hung_up, s.stasis_failed, s.not_started),
            (3, 1, 1, 1, 1, 1)
        );
        assert_eq!((s.claims_won, s.rejected_conflict, s.rejected_not_found, s.rejected_policy), (1, 2, 1, 1));
        stats.reset();
        assert_eq!(stats.snapshot(), Snapshot { latency_buckets: vec![0; 15], ..Snapshot::default() });
    }

    #[test]
    fn latencies_fill_buckets_and_percentiles() {
        let stats = Stats::new();
        assert_eq!(stats.percentiles(), None);
        for micros in 1..=100u64 {
            stats.claim_to_wake(Duration::from_micros(micros * 10));
        }
        stats.claim_to_wake(Duration::from_secs(3));
        let s = stats.snapshot();
        assert_eq!(s.latency_count, 101);
        assert_eq!(s.latency_sum_us, (1..=100u64).map(|m| m * 10).sum::<u64>() + 3_000_000);
        // 10..=50 µs → first bucket (≤50), 60..=100 → ≤100, 110..=250 → ≤250, …
        assert_eq!(&s.latency_buckets[..4], &[5, 5, 15, 25]);
        assert_eq!(s.latency_buckets[4], 50);
        assert_eq!(s.latency_buckets[14], 1, "3 s lands above the last bound");
        let p = stats.percentiles().unwrap();
        assert_eq!(p.samples, 101);
        assert_eq!(p.p50, Duration::from_micros(510));
        assert_eq!(p.p90, Duration::from_micros(910));
        assert_eq!(p.p99, Duration::from_micros(1000));
        assert_eq!(p.max, Duration::from_secs(3));
    }

    #[test]
    fn prometheus_text_is_cumulative_and_complete() {
        let stats = Stats::new();
        stats.started();
        stats.started();
        stats.ended(Ending::Claimed);
        stats.claim(ClaimAnswer::Won);
        stats.claim(ClaimAnswer::Conflict);
        stats.claim_to_wake(Duration::from_micros(40));
        stats.claim_to_wake(Duration::from_micros(700));
        let text = prometheus_text(&stats.snapshot(), 1);
        for line in [
            "asterisk_stasis_broadcast_started_total 2",
            "asterisk_stasis_broadcast_ended_total{outcome=\"claimed\"} 1",
            "asterisk_stasis_broadcast_ended_total{outcome=\"timed_out\"} 0",
            "asterisk_stasis_broadcast_claims_total{result=\"won\"} 1",
            "asterisk_stasis_broadcast_claims_total{result=\"conflict\"} 1",
            "asterisk_stasis_broadcast_active 1",
            "asterisk_stasis_broadcast_claim_wake_seconds_bucket{le=\"0.00005\"} 1",
            "asterisk_stasis_broadcast_claim_wake_seconds_bucket{le=\"0.0005\"} 1",
            "asterisk_stasis_broadcast_claim_wake_seconds_bucket{le=\"0.001\"} 2",
            "asterisk_stasis_broadcast_claim_wake_seconds_bucket{le=\"+Inf\"} 2",
            "asterisk_stasis_broadcast_claim_wake_seconds_sum 0.00074",
            "asterisk_stasis_broadcast_claim_wake_seconds_count 2",
            "# TYPE asterisk_stasis_broadcast_claim_wake_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap();
            let family = family.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        }
    }

    #[test]
    fn percentiles_cover_only_the_recent_window() {
        let stats = Stats::new();
        stats.claim_to_wake(Duration::from_secs(10));
        for _ in 0..RECENT_SAMPLES {
            stats.claim_to_wake(Duration::from_micros(7));
        }
        let p = stats.percentiles().unwrap();
        assert_eq!(p.samples, RECENT_SAMPLES);
        assert_eq!(p.max, Duration::from_micros(7));
        assert_eq!(stats.snapshot().latency_count, RECENT_SAMPLES as u64 + 1);
    }
}
