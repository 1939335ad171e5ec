//! Uniform random order for delivering CallBroadcast events, so that no
//! application is systematically offered a call first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Shuffles each call's applications with a generator of its own:
/// `fastrand`'s wyrand, whose state is its seed (one add and one widening
/// multiply per draw, no seeding work; it passes BigCrush and PractRand),
/// seeded from a counter that starts at a secret drawn from the OS when the
/// module loads: a call costs an atomic add, not a system call nor a lock.
/// `rand`'s `SmallRng` and shuffle cost some 17 more instructions per
/// application (callgrind, row 8 of the bench: 1.18x the C module's own
/// code at 500 applications). Never a thread-local generator
/// (`rand::rng()`, fastrand's global functions: its `std` feature is off):
/// a thread-local registers a thread-exit destructor, which keeps Asterisk
/// from unloading the .so.
pub struct Shuffler {
    next_seed: AtomicU64,
}

/// Odd, so the seeds of 2^64 calls in a row are all different, and spread
/// over the whole word (the golden ratio), so that calls in a row start far
/// apart in wyrand's sequence.
const SEED_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

impl Shuffler {
    pub fn new() -> Shuffler {
        let secret = SmallRng::try_from_os_rng().unwrap_or_else(|_| fallback_rng()).random();
        Shuffler { next_seed: AtomicU64::new(secret) }
    }

    /// Puts `items` in a uniformly random order.
    pub fn shuffle<T>(&self, items: &mut [T]) {
        if items.len() > 1 {
            let seed = self.next_seed.fetch_add(SEED_STEP, Ordering::Relaxed);
            fastrand::Rng::with_seed(seed).shuffle(items);
        }
    }
}

impl Default for Shuffler {
    fn default() -> Self {
        Shuffler::new()
    }
}

/// Used only if the OS cannot supply a seed: fairness, not secrecy, is at
/// stake, so the clock plus a per-call counter is seed enough.
fn fallback_rng() -> SmallRng {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    SmallRng::seed_from_u64(nanos ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PERMUTATIONS_OF_3: [[u8; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];

    /// Counts of each ordering of [0, 1, 2] over `rounds` shuffles.
    fn permutation_counts(
        rounds: usize,
        mut shuffle: impl FnMut(Vec<u8>) -> Vec<u8>,
    ) -> HashMap<Vec<u8>, usize> {
        let mut counts = HashMap::new();
        for _ in 0..rounds {
            *counts.entry(shuffle(vec![0, 1, 2])).or_insert(0) += 1;
        }
        counts
    }

    /// Pearson's chi-square statistic against a uniform spread over the six
    /// orderings.
    fn chi_square(counts: &HashMap<Vec<u8>, usize>, rounds: usize) -> f64 {
        let expected = rounds as f64 / 6.0;
        PERMUTATIONS_OF_3
            .iter()
            .map(|p| {
                let seen = counts.get(&p.to_vec()).copied().unwrap_or(0) as f64;
                (seen - expected).powi(2) / expected
            })
            .sum()
    }

    fn assert_uniform(counts: &HashMap<Vec<u8>, usize>, rounds: usize) {
        assert_eq!(counts.len(), 6, "{counts:?}");
        for p in PERMUTATIONS_OF_3 {
            let seen = counts.get(&p.to_vec()).copied().unwrap_or(0);
            // Expected 1000, standard deviation ~29: this band is ~7 sigma.
            assert!(
                (800..=1200).contains(&seen),
                "{p:?} seen {seen} times: {counts:?}"
            );
        }
        // 5 degrees of freedom: P(chi2 > 50) is about 1e-9; a biased shuffle
        // (e.g. picking from the whole slice each step) scores in the hundreds.
        let statistic = chi_square(counts, rounds);
        assert!(statistic < 50.0, "chi-square {statistic}: {counts:?}");
    }

    #[test]
    fn every_ordering_of_three_is_equally_likely() {
        let rounds = 6000;
        let shuffler = Shuffler::new();
        let counts = permutation_counts(rounds, |mut items| {
            shuffler.shuffle(&mut items);
            items
        });
        assert_uniform(&counts, rounds);
    }

    #[test]
    fn each_position_is_uniform_over_many_items_and_calls_in_a_row() {
        // Calls in a row get seeds one step apart: no position may favour
        // any item. 16 items, 16,000 shuffles: each (position, item) cell
        // expects 1000 (sd ~31); 225 df, P(chi2 > 400) is below 1e-10.
        let shuffler = Shuffler::new();
        let mut counts = [[0u32; 16]; 16];
        for _ in 0..16_000 {
            let mut items: Vec<usize> = (0..16).collect();
            shuffler.shuffle(&mut items);
            for (position, item) in items.into_iter().enumerate() {
                counts[position][item] += 1;
            }
        }
        let statistic: f64 =
            counts.iter().flatten().map(|&seen| (f64::from(seen) - 1000.0).powi(2) / 1000.0).sum();
        assert!(statistic < 400.0, "chi-square {statistic}");
    }

    #[test]
    fn the_per_call_generators_are_uniform_bit_by_bit_and_seed_by_seed() {
        // Seeds one step apart (as calls in a row get them): the first draw
        // of each must look independent. Each of the 64 bits is set in about
        // half of 20,000 first draws (sd ~71, bound ~7 sd).
        let mut ones = [0u32; 64];
        let start = 0xdead_beef_u64;
        for call in 0..20_000u64 {
            let value = fastrand::Rng::with_seed(start.wrapping_add(call.wrapping_mul(SEED_STEP))).u64(..);
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += u32::from(value >> bit & 1 == 1);
            }
        }
        assert!(ones.iter().all(|&count| (9_500..=10_500).contains(&count)), "{ones:?}");
    }

    #[test]
    fn the_order_follows_from_the_load_secret_and_the_call_count() {
        let orders = |secret| {
            let shuffler = Shuffler { next_seed: AtomicU64::new(secret) };
            (0..3)
                .map(|_| {
                    let mut items: Vec<u32> = (0..20).collect();
                    shuffler.shuffle(&mut items);
                    items
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(orders(42), orders(42));
        assert_ne!(orders(42), orders(43), "another load orders otherwise");
        let calls = orders(42);
        assert_ne!(calls[0], calls[1], "each call its own order");
        assert_eq!(calls[1], orders(42 + SEED_STEP)[0], "the seed is the secret plus a step per call");
    }

    #[test]
    fn the_biased_naive_shuffle_fails_the_check() {
        // Guards the test itself: swapping with any index, not 0..=i, is the
        // classic biased shuffle and must not pass the chi-square bound
        // (at this many rounds it scores around 740).
        let rounds = 60_000;
        let mut rng = SmallRng::seed_from_u64(1);
        let counts = permutation_counts(rounds, |mut items| {
            let len = items.len();
            for i in 0..len {
                let j = rng.random_range(0..len);
                items.swap(i, j);
            }
            items
        });
        assert!(chi_square(&counts, rounds) > 50.0, "{counts:?}");
    }

    #[test]
    fn nothing_is_lost_or_duplicated() {
        let items: Vec<String> = (0..257).map(|i| format!("app-{i}")).collect();
        let mut out = items.clone();
        Shuffler::new().shuffle(&mut out);
        assert_eq!(out.len(), items.len());
        out.sort();
        let mut sorted = items;
        sorted.sort();
        assert_eq!(out, sorted);
    }

    #[test]
    fn short_inputs_are_returned_as_is() {
        let shuffler = Shuffler::new();
        let mut only = ["only"];
        shuffler.shuffle(&mut only);
        assert_eq!(only, ["only"]);
        shuffler.shuffle(&mut Vec::<u8>::new());
    }

    #[test]
    fn fallback_rng_differs_between_calls() {
        let draw = |mut rng: SmallRng| rng.random::<u64>();
        assert_ne!(draw(fallback_rng()), draw(fallback_rng()));
    }
}
