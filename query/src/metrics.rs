//! The metric math, free of DataFusion: a [`Partial`] gathers what the aggregates of
//! DESIGN.md need from a set of incidents (counts, sums, the durations themselves), partials
//! of disjoint sets merge, and a partial becomes [`Metrics`]; a [`Row`] sets a period's
//! metrics beside the previous period's as [`Compared`] values.

use mttx_facts::percentile_cont;
use serde::Serialize;

/// The aggregates of DESIGN.md over a set of incidents.
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
}

impl Metrics {
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
}

impl Partial {
    /// Adds the incidents of `o`, a set disjoint from this one.
    pub(crate) fn merge(&mut self, o: &Partial) {
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
        self.mtta.sort_by(f64::total_cmp);
        self.mttr.sort_by(f64::total_cmp);
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
        }
    }
}

/// A value beside its previous period's: delta = value − previous, ratio = delta / previous
/// (None where the previous value is None or 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Compared {
    pub value: Option<f64>,
    pub previous: Option<f64>,
    pub delta: Option<f64>,
    pub delta_ratio: Option<f64>,
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
}

impl Row {
    /// Each metric with its previous value and deltas.
    pub fn compared(&self) -> Vec<(&'static str, Compared)> {
        self.current
            .values()
            .into_iter()
            .zip(self.previous.values())
            .map(|((name, v), (_, p))| (name, Compared::new(v, p)))
            .collect()
    }
}
