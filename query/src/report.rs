//! Reports and trends: an account's metrics in a period beside the previous period's,
//! account-wide and broken down by a [`GroupBy`] (each group beside the account-wide
//! norm), and the metrics of each day, week or month bucket of a period.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use deltalake::datafusion::prelude::DataFrame;
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

/// A report: the account-wide row (the norm), and with a breakdown one row per group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub account: Row,
    pub group_by: Option<GroupBy>,
    pub groups: Vec<Row>,
}

impl Engine {
    /// The metrics of `df`'s incidents per period of `periods`, and per group when given.
    async fn metrics(
        &self,
        df: DataFrame,
        periods: &Labels,
        group: Option<GroupBy>,
    ) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
        match group {
            Some(GroupBy::Responder) => {
                let df = df
                    .unnest_columns(&["acknowledged_user_ids"])
                    .map_err(facts_err("listing responders"))?;
                self.aggregate(df, periods, Some("acknowledged_user_ids"))
                    .await
            }
            Some(g) => self.aggregate(df, periods, Some(g.column())).await,
            None => self.aggregate(df, periods, None).await,
        }
    }

    /// The report of `account` for `period` against the previous period, with a breakdown
    /// when `group_by` is given (each group beside the account-wide norm).
    #[tracing::instrument(skip_all, err, fields(
        account = account,
        from = %period.from,
        to = %period.to,
        tz = %period.tz,
        group_by = ?group_by,
    ))]
    pub async fn report(
        &self,
        account: i64,
        period: &Period,
        group_by: Option<GroupBy>,
        filters: &Filters,
    ) -> Result<Report> {
        // One read of both periods (the previous one ends where this one starts), each
        // incident labelled with its period.
        let (from, to) = period.instants();
        let (pfrom, _) = period.previous().instants();
        let df = self.incidents(account, pfrom, to, filters).await?;
        let periods = Labels::new(vec!["previous".into(), "current".into()], vec![from, to]);
        let key = |p: &str, k: Option<String>| vec![Some(p.to_owned()), k];
        let mut by = match group_by {
            Some(g) => self.metrics(df.clone(), &periods, Some(g)).await?,
            None => BTreeMap::new(),
        };
        // Each incident is in exactly one group, except by responder (one per acknowledger,
        // none without): there the account total needs its own pass.
        let mut totals = match group_by {
            Some(g) if g != GroupBy::Responder => {
                let mut t: BTreeMap<Vec<Option<String>>, Partial> = BTreeMap::new();
                for (k, p) in &by {
                    t.entry(vec![k[0].clone()]).or_default().merge(p);
                }
                t
            }
            _ => self.metrics(df, &periods, None).await?,
        };
        let mut total = |p: &str| {
            totals
                .remove(&vec![Some(p.to_owned())])
                .unwrap_or_default()
                .metrics()
        };
        let account_row = Row {
            min_sample: self.min_sample(),
            key: None,
            current: total("current"),
            previous: total("previous"),
        };
        let mut groups = Vec::new();
        if group_by.is_some() {
            let mut keys: Vec<Option<String>> = by.keys().map(|k| k[1].clone()).collect();
            keys.sort_by_key(natural);
            keys.dedup();
            for k in keys {
                let mut take =
                    |p: &str| by.remove(&key(p, k.clone())).unwrap_or_default().metrics();
                groups.push(Row {
                    min_sample: self.min_sample(),
                    current: take("current"),
                    previous: take("previous"),
                    key: k,
                });
            }
        }
        Ok(Report {
            account: account_row,
            group_by,
            groups,
        })
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
    ) -> Result<Vec<(NaiveDate, Metrics)>> {
        let (from, to) = period.instants();
        let df = self.incidents(account, from, to, filters).await?;
        let buckets = period.buckets(unit);
        let labels = Labels::new(
            buckets.iter().map(|(start, _)| start.to_string()).collect(),
            buckets
                .iter()
                .map(|(_, end)| local_midnight(period.tz, *end))
                .collect(),
        );
        let mut by = self.aggregate(df, &labels, None).await?;
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
