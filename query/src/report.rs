//! Reports and trends: an account's metrics in a period beside the previous period's,
//! account-wide and broken down by a [`GroupBy`] (each group beside the account-wide
//! norm), and the metrics of each day, week or month bucket of a period.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::aggregate::Labels;
use crate::metrics::Partial;
use crate::period::local_midnight;
use crate::{Engine, Error, Filters, Metrics, Period, Result, Row, Unit, facts_err};

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Team,
    Service,
    EscalationPolicy,
    Urgency,
    Priority,
    /// Each user who acknowledged the incident (an incident counts for each of them).
    Responder,
}

impl GroupBy {
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Team,
        GroupBy::Service,
        GroupBy::EscalationPolicy,
        GroupBy::Urgency,
        GroupBy::Priority,
        GroupBy::Responder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Team => "team",
            GroupBy::Service => "service",
            GroupBy::EscalationPolicy => "escalation_policy",
            GroupBy::Urgency => "urgency",
            GroupBy::Priority => "priority",
            GroupBy::Responder => "responder",
        }
    }

    fn column(self) -> &'static str {
        match self {
            GroupBy::Team => "team_id",
            GroupBy::Service => "service_id",
            GroupBy::EscalationPolicy => "escalation_policy_id",
            GroupBy::Urgency => "urgency",
            GroupBy::Priority => "priority",
            GroupBy::Responder => "acknowledged_user_ids",
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = GroupBy::ALL.iter().map(|g| g.name()).collect();
                Error::BadRequest(format!(
                    "unknown group_by `{s}`: use one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A trend: each bucket's first day and its metrics, in order.
pub type Trend = Vec<(NaiveDate, Metrics)>;

/// A report: the account-wide row (the norm), and with a breakdown one row per group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub account: Row,
    pub group_by: Option<GroupBy>,
    pub groups: Vec<Row>,
}

impl Engine {
    /// The metrics of the incidents of `account` created in `period` that pass `filters`,
    /// per label of `labels`, and per group when given.
    async fn metrics(
        &self,
        account: i64,
        period: (DateTime<Utc>, DateTime<Utc>),
        filters: &Filters,
        labels: &Labels,
        group: Option<GroupBy>,
    ) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
        match group {
            // An incident counts once per acknowledger: one row per element of the list.
            Some(GroupBy::Responder) => {
                let df = self
                    .incidents(account, period.0, period.1, filters)
                    .await?
                    .unnest_columns(&["acknowledged_user_ids"])
                    .map_err(facts_err("listing responders"))?;
                self.aggregate(df, labels, Some("acknowledged_user_ids"))
                    .await
            }
            g => {
                let column = g.map(GroupBy::column);
                self.aggregate_read(account, period, filters.expr(), labels, column)
                    .await
            }
        }
    }

    /// The report of `account` for `period` against the previous period, with a breakdown
    /// when `group_by` is given (each group beside the account-wide norm).
    pub async fn report(
        &self,
        account: i64,
        period: &Period,
        group_by: Option<GroupBy>,
        filters: &Filters,
    ) -> Result<Report> {
        Ok(self
            .report_and_trend(account, period, group_by, None, filters)
            .await?
            .0)
    }

    /// The report of [`Engine::report`] and, with `unit`, the trend of [`Engine::trend`]
    /// too, from one read of both periods: the current period's rows are labelled by
    /// bucket, and its totals are the buckets' merged.
    #[tracing::instrument(skip_all, err, fields(
        account = account,
        from = %period.from,
        to = %period.to,
        tz = %period.tz,
        group_by = ?group_by,
        unit = ?unit,
    ))]
    pub async fn report_and_trend(
        &self,
        account: i64,
        period: &Period,
        group_by: Option<GroupBy>,
        unit: Option<Unit>,
        filters: &Filters,
    ) -> Result<(Report, Option<Trend>)> {
        // One read of both periods (the previous one ends where this one starts), each
        // incident labelled with the previous period, or the current one or its bucket.
        let (from, to) = period.instants();
        let (pfrom, _) = period.previous().instants();
        let read = (pfrom, to);
        let buckets = unit.map(|u| period.buckets(u));
        let mut names = vec![PREVIOUS.to_owned()];
        let mut ends = vec![from];
        match &buckets {
            None => {
                names.push("current".to_owned());
                ends.push(to);
            }
            Some(buckets) => {
                for (start, end) in buckets {
                    names.push(start.to_string());
                    ends.push(local_midnight(period.tz, *end));
                }
            }
        }
        let labels = Labels::new(names, ends);
        // Keyed [label, group]: each group's previous and current partials.
        let mut by = match group_by {
            Some(g) => {
                self.metrics(account, read, filters, &labels, Some(g))
                    .await?
            }
            None => BTreeMap::new(),
        };
        // Each part sorted once: the totals and the groups' periods then merge sorted runs.
        by.values_mut().for_each(Partial::sort);
        // Each incident is in exactly one group, except by responder (one per acknowledger,
        // none without): there the account totals need their own pass.
        let mut totals: BTreeMap<String, Partial> = BTreeMap::new();
        match group_by {
            Some(g) if g != GroupBy::Responder => {
                for (k, p) in &by {
                    totals.entry(label_of(k)).or_default().merge(p);
                }
            }
            _ => {
                for (k, p) in self.metrics(account, read, filters, &labels, None).await? {
                    totals.insert(label_of(&k), p);
                }
            }
        }
        // The current period's totals are its buckets' merged (or its one label's).
        let previous = totals.remove(PREVIOUS).unwrap_or_default();
        let mut current = Partial::default();
        let mut trend = None;
        if let Some(buckets) = buckets {
            let mut each = Vec::with_capacity(buckets.len());
            for (start, _) in buckets {
                let p = totals.remove(&start.to_string()).unwrap_or_default();
                current.merge(&p);
                each.push((start, p.metrics()));
            }
            trend = Some(each);
        }
        for p in totals.into_values() {
            current.merge(&p);
        }
        let account_row = Row {
            min_sample: self.min_sample(),
            key: None,
            current: current.metrics(),
            previous: previous.metrics(),
        };
        let mut rows: BTreeMap<Option<String>, BTreeMap<String, Partial>> = BTreeMap::new();
        for (k, p) in by {
            let group = k.get(1).cloned().flatten();
            rows.entry(group).or_default().insert(label_of(&k), p);
        }
        let mut rows: Vec<(Option<String>, BTreeMap<String, Partial>)> = rows.into_iter().collect();
        rows.sort_by_key(|(k, _)| natural(k));
        let groups = rows
            .into_iter()
            .map(|(key, labelled)| {
                let [previous, current] = split(labelled);
                Row {
                    min_sample: self.min_sample(),
                    current: current.metrics(),
                    previous: previous.metrics(),
                    key,
                }
            })
            .collect();
        let report = Report {
            account: account_row,
            group_by,
            groups,
        };
        Ok((report, trend))
    }

    /// The metrics of each `unit` bucket of the period (a trend), in one pass over the facts.
    #[tracing::instrument(skip_all, err, fields(
        account = account,
        from = %period.from,
        to = %period.to,
        tz = %period.tz,
        unit = ?unit,
    ))]
    pub async fn trend(
        &self,
        account: i64,
        period: &Period,
        unit: Unit,
        filters: &Filters,
    ) -> Result<Trend> {
        let buckets = period.buckets(unit);
        let labels = Labels::new(
            buckets.iter().map(|(start, _)| start.to_string()).collect(),
            buckets
                .iter()
                .map(|(_, end)| local_midnight(period.tz, *end))
                .collect(),
        );
        let mut by = self
            .aggregate_read(account, period.instants(), filters.expr(), &labels, None)
            .await?;
        Ok(buckets
            .iter()
            .map(|(start, _)| {
                (
                    *start,
                    by.remove(&vec![Some(start.to_string())])
                        .unwrap_or_default()
                        .metrics(),
                )
            })
            .collect())
    }
}

/// The label that names the previous period (the current one's are "current" or its
/// buckets' first days).
const PREVIOUS: &str = "previous";

/// The label of an aggregate's key.
fn label_of(key: &[Option<String>]) -> String {
    key.first().cloned().flatten().unwrap_or_default()
}

/// The previous period's partial and the current period's (its labels merged).
fn split(labelled: BTreeMap<String, Partial>) -> [Partial; 2] {
    let mut out: [Partial; 2] = Default::default();
    for (label, p) in labelled {
        let side = &mut out[usize::from(label != PREVIOUS)];
        if side.incident_count == 0 {
            *side = p;
        } else {
            side.merge(&p);
        }
    }
    out
}

/// Orders numeric keys as numbers, others as text, missing keys last.
fn natural(k: &Option<String>) -> (u8, i64, String) {
    match k {
        None => (2, 0, String::new()),
        Some(s) => match s.parse::<i64>() {
            Ok(n) => (0, n, String::new()),
            Err(_) => (1, 0, s.clone()),
        },
    }
}
