//! Distributions and the chi-square test, with no dependency.

use serde::Serialize;

/// A distribution of samples (milliseconds unless said otherwise).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        })
    }
}

/// Nearest-rank percentile of sorted samples (`q` in 0..=100).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Pearson's chi-square statistic of `counts` against a uniform
/// distribution, and its p-value (`counts.len() - 1` degrees of freedom).
pub fn chi_square_uniform(counts: &[u64]) -> (f64, f64) {
    let total: u64 = counts.iter().sum();
    if counts.len() < 2 || total == 0 {
        return (0.0, 1.0);
    }
    let expected = total as f64 / counts.len() as f64;
    let chi2: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    let dof = (counts.len() - 1) as f64;
    (chi2, gamma_q(dof / 2.0, chi2 / 2.0))
}

/// Regularised upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a):
/// the chi-square survival function is Q(k/2, x/2). A power series below
/// x = a + 1, a continued fraction (modified Lentz) above.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let prefactor = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * prefactor).clamp(0.0, 1.0)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (prefactor * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = C[1..]
        .iter()
        .enumerate()
        .fold(C[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// Resamples of a bootstrap interval.
const RESAMPLES: usize = 2000;
/// Fewer rounds than this and the interval resamples single samples instead.
const MIN_ROUNDS: usize = 5;

/// SplitMix64: the bootstrap's random numbers, seeded, so a run's intervals
/// are reproducible from its JSON.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// A statistic of a set of samples (free to reorder them), e.g. [`pct`].
pub type Stat = dyn Fn(&mut [f64]) -> f64;

/// The nearest-rank percentile `q` of unsorted samples.
pub fn pct(q: f64) -> impl Fn(&mut [f64]) -> f64 {
    move |v: &mut [f64]| {
        v.sort_by(f64::total_cmp);
        percentile(v, q)
    }
}

/// 95 % percentile-bootstrap interval of `stat(a) / stat(b)` (of `stat(a)`
/// when `b` is `None`), the samples given round by round. Whole rounds are
/// resampled, the same round numbers for both sides: the rounds were
/// interleaved, so round r of each implementation met the same machine, and
/// a slow spell stays inside the rounds it hit. With fewer than five rounds
/// on a side, single samples are resampled instead, each side on its own.
pub fn bootstrap(a: &[&[f64]], b: Option<&[&[f64]]>, stat: &Stat) -> Option<(f64, f64)> {
    let singles = |g: &[&[f64]]| -> Vec<Vec<f64>> {
        g.iter().flat_map(|r| r.iter().map(|&x| vec![x])).collect()
    };
    let rounds = |g: &[&[f64]]| -> Vec<Vec<f64>> { g.iter().map(|r| r.to_vec()).collect() };
    let paired = a.len() >= MIN_ROUNDS && b.is_none_or(|b| b.len() == a.len());
    let (ga, gb) = if paired {
        (rounds(a), b.map(rounds))
    } else {
        (singles(a), b.map(singles))
    };
    if ga.iter().all(|g| g.is_empty())
        || gb.as_ref().is_some_and(|g| g.iter().all(|g| g.is_empty()))
    {
        return None;
    }
    let mut rng = SplitMix(0x5eed_b007);
    let draw = |groups: &[Vec<f64>], picks: &[usize]| -> Option<f64> {
        let mut v: Vec<f64> = picks
            .iter()
            .flat_map(|&i| groups[i].iter().copied())
            .collect();
        (!v.is_empty()).then(|| stat(&mut v))
    };
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        let picks_a: Vec<usize> = (0..ga.len()).map(|_| rng.below(ga.len())).collect();
        let Some(sa) = draw(&ga, &picks_a) else {
            continue;
        };
        let value = match &gb {
            None => sa,
            Some(gb) => {
                let picks_b: Vec<usize> = if paired {
                    picks_a
                } else {
                    (0..gb.len()).map(|_| rng.below(gb.len())).collect()
                };
                match draw(gb, &picks_b) {
                    Some(sb) if sb != 0.0 => sa / sb,
                    _ => continue,
                }
            }
        };
        if value.is_finite() {
            ratios.push(value);
        }
    }
    if ratios.len() < RESAMPLES / 2 {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some((percentile(&ratios, 2.5), percentile(&ratios, 97.5)))
}

/// Least-squares line through `points`: (slope, intercept, R²); `None` for
/// fewer than two distinct x.
pub fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if points.len() < 2 || sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy == 0.0 {
        1.0
    } else {
        sxy * sxy / (sxx * syy)
    };
    Some((slope, my - slope * mx, r2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn ln_gamma_of_known_values() {
        assert!(close(ln_gamma(1.0), 0.0, 1e-12));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-12));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-12
        ));
        assert!(close(
            ln_gamma(3.5),
            (3.323_350_970_447_842_6f64).ln(),
            1e-12
        ));
    }

    #[test]
    fn chi_square_critical_values_with_seven_degrees_of_freedom() {
        // Table values: P(X > 14.067) = 0.05, P(X > 18.475) = 0.01, P(X > 2.167) = 0.95.
        assert!(close(gamma_q(3.5, 14.067 / 2.0), 0.05, 1e-4));
        assert!(close(gamma_q(3.5, 18.475 / 2.0), 0.01, 1e-4));
        assert!(close(gamma_q(3.5, 2.167 / 2.0), 0.95, 1e-3));
        assert_eq!(gamma_q(3.5, 0.0), 1.0);
    }

    #[test]
    fn chi_square_two_degrees_has_a_closed_form() {
        // With 2 degrees of freedom the survival function is exp(-x/2).
        for x in [0.1, 1.0, 3.0, 10.0, 40.0] {
            assert!(
                close(gamma_q(1.0, x / 2.0), (-x / 2.0f64).exp(), 1e-12),
                "x = {x}"
            );
        }
    }

    #[test]
    fn uniform_counts_have_p_one_and_skewed_counts_p_near_zero() {
        let (chi2, p) = chi_square_uniform(&[250; 8]);
        assert_eq!(chi2, 0.0);
        assert!(close(p, 1.0, 1e-12));
        let (_, p) = chi_square_uniform(&[400, 200, 200, 200, 200, 200, 200, 400]);
        assert!(p < 1e-10, "{p}");
    }

    #[test]
    fn summary_uses_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&samples).expect("samples");
        assert_eq!(
            (s.min, s.p50, s.p90, s.p99, s.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert!(close(s.mean, 50.5, 1e-12));
        assert!(Summary::of(&[]).is_none());
        assert_eq!(Summary::of(&[7.0]).map(|s| s.p99), Some(7.0));
    }

    #[test]
    fn bootstrap_brackets_the_ratio_and_narrows_with_agreement() {
        let a: Vec<Vec<f64>> = (0..10)
            .map(|r| (0..20).map(|i| 10.0 + ((r * 7 + i) % 5) as f64).collect())
            .collect();
        let b: Vec<Vec<f64>> = a
            .iter()
            .map(|r| r.iter().map(|x| x / 2.0).collect())
            .collect();
        let ra: Vec<&[f64]> = a.iter().map(|r| r.as_slice()).collect();
        let rb: Vec<&[f64]> = b.iter().map(|r| r.as_slice()).collect();
        // Every round exactly twice as slow: the interval is the point.
        assert_eq!(bootstrap(&ra, Some(&rb), &pct(50.0)), Some((2.0, 2.0)));
        // One side alone: the p50's own interval lies within the samples.
        let (lo, hi) = bootstrap(&ra, None, &pct(50.0)).expect("interval");
        assert!(
            (10.0..=14.0).contains(&lo) && lo <= hi && hi <= 14.0,
            "{lo} {hi}"
        );
        // Noisy, unrelated sides: a real width around a ratio near 1.
        let c: Vec<Vec<f64>> = (0..10)
            .map(|r| {
                (0..20)
                    .map(|i| 10.0 + ((r * 3 + i * 11) % 5) as f64)
                    .collect()
            })
            .collect();
        let rc: Vec<&[f64]> = c.iter().map(|r| r.as_slice()).collect();
        let (lo, hi) = bootstrap(&ra, Some(&rc), &pct(90.0)).expect("interval");
        assert!(
            lo <= 1.0 && hi >= 1.0 && lo >= 0.7 && hi <= 1.43,
            "{lo} {hi}"
        );
        assert_eq!(bootstrap(&[], None, &pct(50.0)), None);
    }

    #[test]
    fn line_fit_slope_and_r2() {
        let (slope, intercept, r2) = fit_line(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]).expect("fit");
        assert!(close(slope, 2.0, 1e-12) && close(intercept, 1.0, 1e-12) && close(r2, 1.0, 1e-12));
        let (_, _, r2) = fit_line(&[(1.0, 1.0), (2.0, 3.0), (3.0, 1.0), (4.0, 3.0)]).expect("fit");
        assert!(r2 < 0.3, "{r2}");
        assert!(fit_line(&[(1.0, 1.0)]).is_none());
    }
}
