//! The metric math, free of DataFusion: a [`Partial`] gathers what the aggregates of
//! docs/design.md need from a set of incidents (counts, sums, the durations themselves), partials
//! of disjoint sets merge, and a partial becomes [`Metrics`]; a [`Row`] sets a period's
//! metrics beside the previous period's as [`Compared`] values.

use std::sync::Arc;

use mttx_facts::percentile_cont;
use serde::Serialize;

use crate::uncertainty::{Statistic, Verdict, change};

/// The aggregates of docs/design.md over a set of incidents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Metrics {
    pub incident_count: i64,
    pub acknowledged_count: i64,
    pub resolved_count: i64,
    pub auto_resolved_count: i64,
    pub escalated_count: i64,
    pub escalated_rate: Option<f64>,
    pub mtta_mean: Option<f64>,
    pub mtta_p50: Option<f64>,
    pub mtta_p90: Option<f64>,
    pub mtta_p95: Option<f64>,
    pub mttr_mean: Option<f64>,
    pub mttr_p50: Option<f64>,
    pub mttr_p90: Option<f64>,
    pub mttr_p95: Option<f64>,
    pub interruptions: i64,
    pub interruptions_business: i64,
    pub interruptions_off_hours: i64,
    pub interruptions_sleep: i64,
    pub notification_count: i64,
    /// The durations behind the means and percentiles, sorted: what a change's interval
    /// is computed from.
    #[serde(skip)]
    pub samples: Samples,
}

/// The durations behind a set's means and percentiles, each sorted ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    /// Seconds to first acknowledgement (its length is `acknowledged_count`).
    pub mtta: Arc<[f64]>,
    /// Seconds to resolve (its length is `resolved_count`).
    pub mttr: Arc<[f64]>,
}

impl Metrics {
    /// The values behind the mean or percentile `metric` (mtta_… or mttr_…) and the
    /// statistic it is; None for counts and rates.
    pub fn sample_of(&self, metric: &str) -> Option<(&[f64], Statistic)> {
        let (family, stat) = metric.split_once('_')?;
        let values: &[f64] = match family {
            "mtta" => &self.samples.mtta,
            "mttr" => &self.samples.mttr,
            _ => return None,
        };
        let stat = match stat {
            "mean" => Statistic::Mean,
            "p50" => Statistic::Quantile(0.5),
            "p90" => Statistic::Quantile(0.9),
            "p95" => Statistic::Quantile(0.95),
            _ => return None,
        };
        Some((values, stat))
    }

    /// Every metric by name, as numbers (counts included).
    pub fn values(&self) -> Vec<(&'static str, Option<f64>)> {
        let n = |v: i64| Some(v as f64);
        vec![
            ("incident_count", n(self.incident_count)),
            ("acknowledged_count", n(self.acknowledged_count)),
            ("resolved_count", n(self.resolved_count)),
            ("auto_resolved_count", n(self.auto_resolved_count)),
            ("escalated_count", n(self.escalated_count)),
            ("escalated_rate", self.escalated_rate),
            ("mtta_mean", self.mtta_mean),
            ("mtta_p50", self.mtta_p50),
            ("mtta_p90", self.mtta_p90),
            ("mtta_p95", self.mtta_p95),
            ("mttr_mean", self.mttr_mean),
            ("mttr_p50", self.mttr_p50),
            ("mttr_p90", self.mttr_p90),
            ("mttr_p95", self.mttr_p95),
            ("interruptions", n(self.interruptions)),
            ("interruptions_business", n(self.interruptions_business)),
            ("interruptions_off_hours", n(self.interruptions_off_hours)),
            ("interruptions_sleep", n(self.interruptions_sleep)),
            ("notification_count", n(self.notification_count)),
        ]
    }
}

/// What an aggregate gathers for a set of incidents: counts and sums, and the durations
/// themselves for exact percentiles. Partials of disjoint sets merge exactly.
#[derive(Debug, Clone, Default)]
pub(crate) struct Partial {
    pub(crate) incident_count: i64,
    pub(crate) acknowledged_count: i64,
    pub(crate) resolved_count: i64,
    pub(crate) auto_resolved_count: i64,
    pub(crate) escalated_count: i64,
    pub(crate) mtta: Vec<f64>,
    pub(crate) mttr: Vec<f64>,
    pub(crate) interruptions: i64,
    pub(crate) interruptions_business: i64,
    pub(crate) interruptions_off_hours: i64,
    pub(crate) interruptions_sleep: i64,
    pub(crate) notification_count: i64,
    /// The durations are each a concatenation of ascending runs (sorted partials merged):
    /// sorting them then merges the runs instead of sorting every value again.
    pub(crate) runs: bool,
}

impl Partial {
    /// Sorts the durations (merging partials sorted first keeps their runs).
    pub(crate) fn sort(&mut self) {
        self.mtta.sort_unstable_by(f64::total_cmp);
        self.mttr.sort_unstable_by(f64::total_cmp);
        self.runs = true;
    }

    /// Adds the incidents of `o`, a set disjoint from this one.
    pub(crate) fn merge(&mut self, o: &Partial) {
        let empty = self.mtta.is_empty() && self.mttr.is_empty();
        self.runs = (empty || self.runs) && o.runs;
        self.incident_count += o.incident_count;
        self.acknowledged_count += o.acknowledged_count;
        self.resolved_count += o.resolved_count;
        self.auto_resolved_count += o.auto_resolved_count;
        self.escalated_count += o.escalated_count;
        self.mtta.extend_from_slice(&o.mtta);
        self.mttr.extend_from_slice(&o.mttr);
        self.interruptions += o.interruptions;
        self.interruptions_business += o.interruptions_business;
        self.interruptions_off_hours += o.interruptions_off_hours;
        self.interruptions_sleep += o.interruptions_sleep;
        self.notification_count += o.notification_count;
    }

    /// The aggregates of the gathered incidents (their durations sorted here, once).
    pub(crate) fn metrics(mut self) -> Metrics {
        if self.runs {
            // A stable sort finds the runs and merges them. Values equal by total_cmp
            // are the same bits, so either sort gives the same order.
            self.mtta.sort_by(f64::total_cmp);
            self.mttr.sort_by(f64::total_cmp);
        } else {
            self.mtta.sort_unstable_by(f64::total_cmp);
            self.mttr.sort_unstable_by(f64::total_cmp);
        }
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let n = self.incident_count;
        Metrics {
            incident_count: n,
            acknowledged_count: self.acknowledged_count,
            resolved_count: self.resolved_count,
            auto_resolved_count: self.auto_resolved_count,
            escalated_count: self.escalated_count,
            escalated_rate: (n > 0).then(|| self.escalated_count as f64 / n as f64),
            mtta_mean: mean(&self.mtta),
            mtta_p50: percentile_cont(&self.mtta, 0.5),
            mtta_p90: percentile_cont(&self.mtta, 0.9),
            mtta_p95: percentile_cont(&self.mtta, 0.95),
            mttr_mean: mean(&self.mttr),
            mttr_p50: percentile_cont(&self.mttr, 0.5),
            mttr_p90: percentile_cont(&self.mttr, 0.9),
            mttr_p95: percentile_cont(&self.mttr, 0.95),
            interruptions: self.interruptions,
            interruptions_business: self.interruptions_business,
            interruptions_off_hours: self.interruptions_off_hours,
            interruptions_sleep: self.interruptions_sleep,
            notification_count: self.notification_count,
            samples: Samples {
                mtta: self.mtta.into(),
                mttr: self.mttr.into(),
            },
        }
    }
}

/// A value beside its previous period's: delta = value − previous, ratio = delta / previous
/// (None where the previous value is None or 0). A mean or percentile also carries the
/// number of values behind it on each side, and its delta a 95% interval and a verdict
/// ([`crate::uncertainty`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Compared {
    pub value: Option<f64>,
    pub previous: Option<f64>,
    pub delta: Option<f64>,
    pub delta_ratio: Option<f64>,
    /// Means and percentiles: the number of values behind `value`.
    pub n: Option<i64>,
    /// Means and percentiles: the number of values behind `previous`.
    pub previous_n: Option<i64>,
    /// Means and percentiles: the 95% interval of `delta`, when both sides allow one.
    #[schema(value_type = Option<Vec<f64>>)]
    pub interval: Option<[f64; 2]>,
    /// Means and percentiles: what the change says (lower durations are better).
    pub verdict: Option<Verdict>,
}

impl Compared {
    pub fn new(value: Option<f64>, previous: Option<f64>) -> Self {
        let delta = match (value, previous) {
            (Some(v), Some(p)) => Some(v - p),
            _ => None,
        };
        let delta_ratio = match (delta, previous) {
            (Some(d), Some(p)) if p != 0.0 => Some(d / p),
            _ => None,
        };
        Self {
            value,
            previous,
            delta,
            delta_ratio,
            n: None,
            previous_n: None,
            interval: None,
            verdict: None,
        }
    }

    /// A mean or percentile of `current` against `previous` (sorted values), judged when
    /// each side has at least `min_sample` values.
    pub fn of_samples(
        value: Option<f64>,
        previous: Option<f64>,
        (current_values, previous_values, stat): (&[f64], &[f64], Statistic),
        min_sample: usize,
    ) -> Self {
        let c = change(stat, current_values, previous_values, min_sample);
        Self {
            n: Some(current_values.len() as i64),
            previous_n: Some(previous_values.len() as i64),
            interval: c.interval,
            verdict: Some(c.verdict),
            ..Self::new(value, previous)
        }
    }
}

/// One row of a report: a group (or the whole account) in the period and the one before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The group's key (team id, service id, urgency, …); None for the whole account, or for
    /// incidents without a value (no team, no priority).
    pub key: Option<String>,
    pub current: Metrics,
    pub previous: Metrics,
    /// The fewest values on either side for a verdict on a mean's or percentile's change.
    pub min_sample: usize,
}

impl Row {
    /// Each metric with its previous value and deltas; means and percentiles with their
    /// sample sizes, interval and verdict.
    pub fn compared(&self) -> Vec<(&'static str, Compared)> {
        self.current
            .values()
            .into_iter()
            .zip(self.previous.values())
            .map(|((name, v), (_, p))| {
                let c = match (self.current.sample_of(name), self.previous.sample_of(name)) {
                    (Some((cur, stat)), Some((prev, _))) => {
                        Compared::of_samples(v, p, (cur, prev, stat), self.min_sample)
                    }
                    _ => Compared::new(v, p),
                };
                (name, c)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal up to float rounding (interpolation is not exact in binary).
    fn near(got: Option<f64>, want: f64) -> bool {
        got.is_some_and(|g| (g - want).abs() < 1e-9)
    }

    /// Three incidents: two acknowledged (40 s, 10 s), two resolved (100 s, 300 s), one
    /// auto-resolved, one escalated.
    fn a() -> Partial {
        Partial {
            incident_count: 3,
            acknowledged_count: 2,
            resolved_count: 2,
            auto_resolved_count: 1,
            escalated_count: 1,
            mtta: vec![40.0, 10.0],
            mttr: vec![100.0, 300.0],
            interruptions: 2,
            interruptions_business: 1,
            interruptions_off_hours: 1,
            interruptions_sleep: 0,
            notification_count: 5,
            runs: false,
        }
    }

    /// Two incidents: both acknowledged (30 s, 20 s), one resolved (200 s), one escalated.
    fn b() -> Partial {
        Partial {
            incident_count: 2,
            acknowledged_count: 2,
            resolved_count: 1,
            auto_resolved_count: 0,
            escalated_count: 1,
            mtta: vec![30.0, 20.0],
            mttr: vec![200.0],
            interruptions: 3,
            interruptions_business: 2,
            interruptions_off_hours: 0,
            interruptions_sleep: 1,
            notification_count: 4,
            runs: false,
        }
    }

    #[test]
    fn percentile_cont_interpolates_between_ranks() {
        // r = p·(n−1): 0.9·3 = 2.7 → 30 + 0.7·(40 − 30) = 37.
        assert!(near(percentile_cont(&[10.0, 20.0, 30.0, 40.0], 0.9), 37.0));
        // r = 1.5 → 20 + 0.5·10 = 25; r = 2.85 → 30 + 0.85·10 = 38.5.
        assert!(near(percentile_cont(&[10.0, 20.0, 30.0, 40.0], 0.5), 25.0));
        assert!(near(percentile_cont(&[10.0, 20.0, 30.0, 40.0], 0.95), 38.5));
        assert!(near(percentile_cont(&[7.0], 0.9), 7.0));
        assert_eq!(percentile_cont(&[], 0.5), None);
    }

    /// The five incidents of `a` and `b` together, worked out by hand.
    #[test]
    fn merged_partials_give_the_hand_worked_metrics() {
        let mut p = a();
        p.merge(&b());
        let m = p.metrics();
        assert_eq!(
            (
                m.incident_count,
                m.acknowledged_count,
                m.resolved_count,
                m.auto_resolved_count,
                m.escalated_count
            ),
            (5, 4, 3, 1, 2)
        );
        assert_eq!(m.escalated_rate, Some(0.4));
        // MTTA over 10, 20, 30, 40 s: mean 25; p50 r = 1.5 → 25; p90 r = 2.7 → 37;
        // p95 r = 2.85 → 38.5.
        assert!(near(m.mtta_mean, 25.0));
        assert!(near(m.mtta_p50, 25.0));
        assert!(near(m.mtta_p90, 37.0));
        assert!(near(m.mtta_p95, 38.5));
        // MTTR over 100, 200, 300 s: mean 200; p50 r = 1 → 200; p90 r = 1.8 → 280;
        // p95 r = 1.9 → 290.
        assert!(near(m.mttr_mean, 200.0));
        assert!(near(m.mttr_p50, 200.0));
        assert!(near(m.mttr_p90, 280.0));
        assert!(near(m.mttr_p95, 290.0));
        assert_eq!(
            (
                m.interruptions,
                m.interruptions_business,
                m.interruptions_off_hours,
                m.interruptions_sleep,
                m.notification_count
            ),
            (5, 3, 1, 1, 9)
        );
    }

    /// Merging is exact: the same metrics as one aggregate over all the incidents, in
    /// either order.
    #[test]
    fn merging_equals_one_aggregate() {
        let whole = Partial {
            incident_count: 5,
            acknowledged_count: 4,
            resolved_count: 3,
            auto_resolved_count: 1,
            escalated_count: 2,
            mtta: vec![20.0, 40.0, 10.0, 30.0],
            mttr: vec![300.0, 200.0, 100.0],
            interruptions: 5,
            interruptions_business: 3,
            interruptions_off_hours: 1,
            interruptions_sleep: 1,
            notification_count: 9,
            runs: false,
        }
        .metrics();
        let mut ab = a();
        ab.merge(&b());
        let mut ba = b();
        ba.merge(&a());
        assert_eq!(ab.metrics(), whole);
        assert_eq!(ba.metrics(), whole);
        let mut with_empty = a();
        with_empty.merge(&Partial::default());
        assert_eq!(with_empty.metrics(), a().metrics());
        // Sorted first, merged as runs: the same again, in either order and into an empty
        // partial; one unsorted part makes the whole unsorted.
        let (mut sa, mut sb) = (a(), b());
        sa.sort();
        sb.sort();
        for (x, y) in [(&sa, &sb), (&sb, &sa)] {
            let mut m = Partial::default();
            m.merge(x);
            m.merge(y);
            assert!(m.runs);
            assert_eq!(m.metrics(), whole);
        }
        let mut mixed = sa.clone();
        mixed.merge(&b());
        assert!(!mixed.runs);
        assert_eq!(mixed.metrics(), whole);
    }

    #[test]
    fn no_incidents_have_no_rates_means_or_percentiles() {
        let m = Partial::default().metrics();
        assert_eq!((m.incident_count, m.notification_count), (0, 0));
        // None, not 0: there is nothing to divide by or to rank.
        assert_eq!(m.escalated_rate, None);
        assert_eq!((m.mtta_mean, m.mtta_p50, m.mtta_p95), (None, None, None));
        assert_eq!((m.mttr_mean, m.mttr_p50, m.mttr_p95), (None, None, None));
    }

    #[test]
    fn one_acknowledged_incident_is_its_own_mean_and_percentiles() {
        let m = Partial {
            incident_count: 2,
            acknowledged_count: 1,
            mtta: vec![90.0],
            ..Partial::default()
        }
        .metrics();
        for v in [m.mtta_mean, m.mtta_p50, m.mtta_p90, m.mtta_p95] {
            assert_eq!(v, Some(90.0));
        }
        // Never resolved: no MTTR at all, not 0.
        assert_eq!((m.mttr_mean, m.mttr_p50), (None, None));
        assert_eq!(m.escalated_rate, Some(0.0));
    }

    #[test]
    fn deltas_and_ratios() {
        let c = Compared::new(Some(12.0), Some(8.0));
        assert_eq!((c.delta, c.delta_ratio), (Some(4.0), Some(0.5)));
        let c = Compared::new(Some(6.0), Some(8.0));
        assert_eq!((c.delta, c.delta_ratio), (Some(-2.0), Some(-0.25)));
        // From 0 the change has no ratio, though it has a delta.
        let c = Compared::new(Some(5.0), Some(0.0));
        assert_eq!((c.delta, c.delta_ratio), (Some(5.0), None));
        let c = Compared::new(Some(0.0), Some(0.0));
        assert_eq!((c.delta, c.delta_ratio), (Some(0.0), None));
        // A side without a value: neither.
        let c = Compared::new(Some(5.0), None);
        assert_eq!((c.delta, c.delta_ratio), (None, None));
        let c = Compared::new(None, Some(3.0));
        assert_eq!(
            (c.value, c.previous, c.delta, c.delta_ratio),
            (None, Some(3.0), None, None)
        );
    }

    #[test]
    fn a_row_compares_every_metric_with_the_previous_period() {
        let mut current = a();
        current.merge(&b());
        let row = Row {
            min_sample: crate::uncertainty::DEFAULT_MIN_SAMPLE,
            key: Some("7".into()),
            current: current.metrics(),
            previous: Partial {
                incident_count: 4,
                escalated_count: 1,
                ..Partial::default()
            }
            .metrics(),
        };
        let compared = row.compared();
        assert_eq!(compared.len(), 19);
        let get = |name: &str| {
            compared
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| *c)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        // 5 incidents against 4: +1, +25 %.
        assert_eq!(
            get("incident_count"),
            Compared {
                value: Some(5.0),
                previous: Some(4.0),
                delta: Some(1.0),
                delta_ratio: Some(0.25),
                n: None,
                previous_n: None,
                interval: None,
                verdict: None,
            }
        );
        // Escalated 2 of 5 (0.4) against 1 of 4 (0.25): +0.15, +60 %.
        let e = get("escalated_rate");
        assert_eq!((e.value, e.previous), (Some(0.4), Some(0.25)));
        assert!(near(e.delta, 0.15));
        assert!(near(e.delta_ratio, 0.6));
        // Nothing acknowledged before: a value, but no delta.
        let p90 = get("mtta_p90");
        assert!(near(p90.value, 37.0));
        assert_eq!(
            (p90.previous, p90.delta, p90.delta_ratio),
            (None, None, None)
        );
        // 0 sleep interruptions before, 1 now: +1 with no ratio.
        let s = get("interruptions_sleep");
        assert_eq!((s.delta, s.delta_ratio), (Some(1.0), None));
    }
}
