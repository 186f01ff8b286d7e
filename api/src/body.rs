//! The report numbers as every output writes them: a period, a row of metrics each beside
//! the previous period (and, in a breakdown, the account-wide norm), a trend bucket. The
//! JSON API, the dashboard and the weekly report all answer in these shapes, made from the
//! engine's rows by the conversions here, so one question gives the same numbers everywhere.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use mttx_query::{Compared, Period, Row};
use serde::Serialize;
use utoipa::ToSchema;

/// A period as answered: local dates `[from, to)` in `tz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeriodBody {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: String,
}

/// One metric beside its previous period's value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComparedBody {
    pub value: Option<f64>,
    pub previous: Option<f64>,
    /// value − previous.
    pub delta: Option<f64>,
    /// delta / previous; null where previous is null or 0.
    pub delta_ratio: Option<f64>,
    /// In breakdown rows: the account-wide value of the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub norm: Option<Option<f64>>,
    /// Means and percentiles: the number of values behind `value` (acknowledged incidents
    /// for MTTA, resolved ones for MTTR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Means and percentiles: the number of values behind `previous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_n: Option<i64>,
    /// Means and percentiles: the 95% interval `[low, high]` of `delta`, null when a side
    /// has too few values. README "How sure is a change" says how it is computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<f64>>)]
    pub interval: Option<Option<[f64; 2]>>,
    /// Means and percentiles: `better` or `worse` only when the interval excludes no
    /// change; `no_clear_change` when it holds it; `insufficient_data` when a side has
    /// fewer values than the server's threshold (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<mttx_query::Verdict>,
}

/// A report row: the account or one group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowBody {
    /// The group's key (team id, service id, urgency, …); null for the account, or for
    /// incidents without a value.
    pub key: Option<String>,
    /// In a team, service, escalation policy or responder breakdown: the name of the key
    /// as the replica holds it now ("Team 7" where it holds none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Each metric of DESIGN.md by name (incident_count, mtta_p50, …).
    pub metrics: BTreeMap<String, ComparedBody>,
}

/// One trend bucket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BucketBody {
    /// First local date of the bucket (clipped to the period).
    pub start: NaiveDate,
    /// Each metric by name, with `mtta_n` and `mttr_n`: the number of values behind the
    /// MTTA and MTTR means and percentiles.
    pub metrics: BTreeMap<String, Option<f64>>,
}

impl BucketBody {
    /// A trend bucket from the engine's.
    pub fn new(start: NaiveDate, metrics: &mttx_query::Metrics) -> Self {
        // The n of the MTTA and MTTR means and percentiles beside them.
        let n = [
            ("mtta_n", metrics.samples.mtta.len()),
            ("mttr_n", metrics.samples.mttr.len()),
        ];
        Self {
            start,
            metrics: metrics
                .values()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .chain(n.map(|(k, v)| (k.to_owned(), Some(v as f64))))
                .collect(),
        }
    }
}

/// The period as answered.
pub fn period_body(p: &Period) -> PeriodBody {
    PeriodBody {
        from: p.from,
        to: p.to,
        tz: p.tz.name().to_owned(),
    }
}

/// An engine row as answered; with `norm` (the account's row), each metric carries the
/// account-wide value beside it.
pub fn row_body(row: &Row, norm: Option<&Row>) -> RowBody {
    let norms: HashMap<&str, Option<f64>> = norm
        .map(|n| n.current.values().into_iter().collect())
        .unwrap_or_default();
    let metrics = row
        .compared()
        .into_iter()
        .map(|(name, c)| {
            let n = norm.map(|_| norms.get(name).copied().flatten());
            (name.to_owned(), compared_body(&c, n))
        })
        .collect();
    RowBody {
        key: row.key.clone(),
        name: None,
        metrics,
    }
}

fn compared_body(c: &Compared, norm: Option<Option<f64>>) -> ComparedBody {
    ComparedBody {
        value: c.value,
        previous: c.previous,
        delta: c.delta,
        delta_ratio: c.delta_ratio,
        norm,
        n: c.n,
        previous_n: c.previous_n,
        interval: c.verdict.map(|_| c.interval),
        verdict: c.verdict,
    }
}
