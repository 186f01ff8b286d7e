//! How sure a change is. A delta of a mean or a percentile between two periods gets a 95%
//! interval and a verdict:
//!
//! - **Percentiles** (p50, p90, p95): the distribution-free method of Price and Bonett
//!   (2002, for the median), taken to any quantile. In each period the order statistics
//!   `x(l) ≤ x(u)` that bracket the quantile one standard error either side (about 68%)
//!   are found from the binomial distribution of the ranks; their exact coverage `c`
//!   (binomial, not the normal approximation) gives the standard error
//!   `(x(u) − x(l)) / (2·z((1 + c) / 2))`. The two
//!   periods are independent, so the delta's interval is `d ± 1.96·√(se₁² + se₂²)`. No
//!   assumption about the shape of the durations, which are very skewed.
//! - **Means**: Welch's interval, `d ± t(ν)·√(s₁²/n₁ + s₂²/n₂)` with the
//!   Welch–Satterthwaite degrees of freedom ν.
//!
//! Both are closed forms: the same request always gives the same interval, and the cost is
//! one pass over the values already gathered for the percentiles.

use serde::Serialize;
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal, StudentsT};

/// The fewest values on either side for a verdict other than `insufficient_data`.
pub const DEFAULT_MIN_SAMPLE: usize = 10;

/// How wide the order statistics that measure a percentile's spread are, in standard
/// errors either side: about a 68% bracket. A narrower bracket than the interval's own
/// keeps the skew of the durations' tail from inflating the spread.
const BRACKET_Z: f64 = 1.0;

/// The two-sided 95% normal quantile.
const Z95: f64 = 1.959_963_984_540_054;

/// What a change says, read from its 95% interval. For durations, lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is a decrease.
    Better,
    /// The whole interval is an increase.
    Worse,
    /// The interval holds no change: within noise.
    NoClearChange,
    /// A side has fewer values than the threshold, or too few to bound the percentile.
    InsufficientData,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoClearChange => "no_clear_change",
            Verdict::InsufficientData => "insufficient_data",
        }
    }
}

/// The statistic whose change is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    Mean,
    /// A percentile as a fraction (0.9 for p90).
    Quantile(f64),
}

/// A change's 95% interval (of current − previous) and its verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub interval: Option<[f64; 2]>,
    pub verdict: Verdict,
}

impl Change {
    const INSUFFICIENT: Change = Change {
        interval: None,
        verdict: Verdict::InsufficientData,
    };
}

/// The change of `stat` from `previous` to `current` (both sorted ascending), judged when
/// each side has at least `min_sample` values.
pub fn change(stat: Statistic, current: &[f64], previous: &[f64], min_sample: usize) -> Change {
    let least = min_sample.max(2);
    if current.len() < least || previous.len() < least {
        return Change::INSUFFICIENT;
    }
    let interval = match stat {
        Statistic::Mean => welch(current, previous),
        Statistic::Quantile(q) => {
            let (Some(a), Some(b)) = (quantile_se(current, q), quantile_se(previous, q)) else {
                return Change::INSUFFICIENT;
            };
            let (Some(va), Some(vb)) = (
                mttx_facts::percentile_cont(current, q),
                mttx_facts::percentile_cont(previous, q),
            ) else {
                return Change::INSUFFICIENT;
            };
            let d = va - vb;
            let half = Z95 * a.hypot(b);
            Some([d - half, d + half])
        }
    };
    let Some([lo, hi]) = interval else {
        return Change::INSUFFICIENT;
    };
    let verdict = if hi < 0.0 {
        Verdict::Better
    } else if lo > 0.0 {
        Verdict::Worse
    } else {
        Verdict::NoClearChange
    };
    Change {
        interval: Some([lo, hi]),
        verdict,
    }
}

/// Welch's 95% interval for mean(a) − mean(b).
fn welch(a: &[f64], b: &[f64]) -> Option<[f64; 2]> {
    let moments = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (n, mean, var / n)
    };
    let (na, ma, wa) = moments(a);
    let (nb, mb, wb) = moments(b);
    let d = ma - mb;
    let w = wa + wb;
    if w == 0.0 {
        return Some([d, d]);
    }
    let df = w * w / (wa * wa / (na - 1.0) + wb * wb / (nb - 1.0));
    let t = StudentsT::new(0.0, 1.0, df).ok()?.inverse_cdf(0.975);
    let half = t * w.sqrt();
    half.is_finite().then_some([d - half, d + half])
}

/// The standard error of the `q` quantile of the sorted `x` from the order statistics that
/// bracket it with about 95% confidence (None: too few values to bracket it).
fn quantile_se(x: &[f64], q: f64) -> Option<f64> {
    let n = x.len();
    let nf = n as f64;
    let centre = nf * q;
    let half = BRACKET_Z * (nf * q * (1.0 - q)).sqrt();
    // 1-based ranks: P(x(l) ≤ ξ ≤ x(u)) = P(l ≤ B ≤ u − 1) for B ~ Binomial(n, q).
    let l = (centre - half).floor() as i64;
    let u = (centre + half).ceil() as i64 + 1;
    if l < 1 || u > n as i64 {
        return None;
    }
    let ranks = Binomial::new(q, n as u64).ok()?;
    let coverage = ranks.cdf((u - 1) as u64) - ranks.cdf((l - 1) as u64);
    let z = Normal::standard().inverse_cdf((1.0 + coverage.min(1.0 - 1e-12)) / 2.0);
    let (lo, hi) = (x[(l - 1) as usize], x[(u - 1) as usize]);
    (z > 0.0).then(|| (hi - lo) / (2.0 * z))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    #[test]
    fn fewer_values_than_the_threshold_are_insufficient() {
        let a: Vec<f64> = (1..=9).map(f64::from).collect();
        let b: Vec<f64> = (1..=50).map(f64::from).collect();
        for stat in [Statistic::Mean, Statistic::Quantile(0.5)] {
            assert_eq!(change(stat, &a, &b, 10), Change::INSUFFICIENT);
            assert_eq!(change(stat, &b, &a, 10), Change::INSUFFICIENT);
            assert_ne!(change(stat, &a, &b, 5).verdict, Verdict::InsufficientData);
        }
    }

    /// Twelve values cannot bracket their 95th percentile: no interval.
    #[test]
    fn a_percentile_the_sample_cannot_bracket_is_insufficient() {
        let a: Vec<f64> = (1..=12).map(f64::from).collect();
        assert_eq!(
            change(Statistic::Quantile(0.95), &a, &a, 10),
            Change::INSUFFICIENT
        );
        assert_eq!(
            change(Statistic::Quantile(0.5), &a, &a, 10).verdict,
            Verdict::NoClearChange
        );
    }

    /// Welch by hand: a = 1..=10 (mean 5.5, variance 110/12), b = a + 10; both have
    /// s²/n = 0.91667, so se = 1.35401 and ν = 18; t(18, 0.975) = 2.10092.
    #[test]
    fn welch_by_hand() {
        let a: Vec<f64> = (1..=10).map(f64::from).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 10.0).collect();
        let c = change(Statistic::Mean, &b, &a, 10);
        let [lo, hi] = c.interval.unwrap();
        let half = 2.100_922 * (2.0 * 110.0 / 12.0 / 10.0_f64).sqrt();
        assert!((lo - (10.0 - half)).abs() < 1e-4, "{lo}");
        assert!((hi - (10.0 + half)).abs() < 1e-4, "{hi}");
        assert_eq!(c.verdict, Verdict::Worse);
        assert_eq!(change(Statistic::Mean, &a, &b, 10).verdict, Verdict::Better);
    }

    /// The median of 1..=100 by hand: centre 50, half-width 1·5 = 5, so ranks 45 and 56
    /// (values 45 and 56), whose coverage is P(45 ≤ B ≤ 55) for B ~ Bin(100, ½).
    #[test]
    fn the_median_is_bracketed_by_binomial_ranks() {
        let x: Vec<f64> = (1..=100).map(f64::from).collect();
        let se = quantile_se(&x, 0.5).unwrap();
        let b = Binomial::new(0.5, 100).unwrap();
        let coverage = b.cdf(55) - b.cdf(44);
        let z = Normal::standard().inverse_cdf((1.0 + coverage) / 2.0);
        assert!((se - 11.0 / (2.0 * z)).abs() < 1e-12, "{se}");
        assert!(coverage > 0.70 && coverage < 0.75, "{coverage}");
    }

    #[test]
    fn the_same_values_give_the_same_interval_and_no_shift_is_no_clear_change() {
        let x = sorted((0..200).map(|i| f64::from((i * 7919) % 1000)).collect());
        let one = change(Statistic::Quantile(0.9), &x, &x, 10);
        let two = change(Statistic::Quantile(0.9), &x, &x, 10);
        assert_eq!(one, two);
        assert_eq!(one.verdict, Verdict::NoClearChange);
        let [lo, hi] = one.interval.unwrap();
        assert!(lo < 0.0 && hi > 0.0 && (lo + hi).abs() < 1e-9);
    }

    /// Log-normal durations (median 25 min, σ = 1), the current period 30% slower at every
    /// quantile: the true change of a quantile is 0.3 of the old one, of the mean 0.3 of
    /// the old mean.
    fn periods(seed: u64, n: usize, shift: f64) -> (Vec<f64>, Vec<f64>) {
        use rand::SeedableRng;
        use rand_distr::{Distribution, LogNormal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let d = LogNormal::new(1500.0_f64.ln(), 1.0).unwrap();
        let previous = sorted((0..n).map(|_| d.sample(&mut rng)).collect());
        let current = sorted((0..n).map(|_| d.sample(&mut rng) * (1.0 + shift)).collect());
        (current, previous)
    }

    /// Coverage by simulation: in 2,000 seeded trials of 300 incidents a side, each
    /// interval holds the true change in 93–97% of them.
    #[test]
    fn the_intervals_cover_the_true_change_95_percent_of_the_time() {
        let z = |q: f64| Normal::standard().inverse_cdf(q);
        let truth = |stat: Statistic| match stat {
            Statistic::Mean => 0.3 * (1500.0_f64.ln() + 0.5).exp(),
            Statistic::Quantile(q) => 0.3 * (1500.0_f64.ln() + z(q)).exp(),
        };
        let stats = [
            Statistic::Mean,
            Statistic::Quantile(0.5),
            Statistic::Quantile(0.9),
            Statistic::Quantile(0.95),
        ];
        let trials = 2_000;
        let mut covered = [0; 4];
        for seed in 0..trials {
            let (current, previous) = periods(seed, 300, 0.3);
            for (i, stat) in stats.iter().enumerate() {
                let [lo, hi] = change(*stat, &current, &previous, 10).interval.unwrap();
                let t = truth(*stat);
                covered[i] += usize::from(lo <= t && t <= hi);
            }
        }
        for (stat, c) in stats.iter().zip(covered) {
            let share = c as f64 / trials as f64;
            assert!((0.93..=0.97).contains(&share), "{stat:?}: {share}");
        }
    }

    #[test]
    fn five_values_are_insufficient_and_500_with_a_30_percent_shift_are_worse() {
        let (current, previous) = periods(1, 5, 0.3);
        for q in [0.5, 0.9] {
            assert_eq!(
                change(Statistic::Quantile(q), &current, &previous, 10).verdict,
                Verdict::InsufficientData
            );
        }
        let (current, previous) = periods(1, 500, 0.3);
        for stat in [
            Statistic::Mean,
            Statistic::Quantile(0.5),
            Statistic::Quantile(0.9),
        ] {
            assert_eq!(
                change(stat, &current, &previous, 10).verdict,
                Verdict::Worse,
                "{stat:?}"
            );
        }
        // No shift: within noise.
        let (current, previous) = periods(2, 500, 0.0);
        assert_eq!(
            change(Statistic::Quantile(0.5), &current, &previous, 10).verdict,
            Verdict::NoClearChange
        );
    }
}
