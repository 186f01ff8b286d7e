//! The questions of PagerDuty's Analytics API, over the facts: incidents created in an
//! instant range `[from, to)` that pass a [`Selection`] (lists of teams, services, policies
//! and priorities, minimum counts), gathered into [`Tally`] rows for the whole selection
//! or per team, service, escalation policy or responder ([`Dimension`]), and per local
//! day, week or month of a time zone ([`Buckets`]). The HTTP layer (`mttx_api`) names the
//! rows and writes them in PagerDuty's field names.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::datafusion::functions_aggregate::expr_fn::{array_agg, count, sum};
use deltalake::datafusion::functions_nested::expr_fn::{array_has, cardinality};
use deltalake::datafusion::prelude::{DataFrame, Expr, cast, col, lit, when};

use crate::aggregate::{int, one, values};
use crate::engine::ts;
use crate::period::local_midnight;
use crate::{Engine, Filters, Result, Unit, facts_err};

/// Which incidents an analytics question is about, in mttx's own ids. A list given
/// (even empty) must hold; None selects all.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub urgency: Option<String>,
    pub major: Option<bool>,
    pub teams: Option<Vec<i64>>,
    pub services: Option<Vec<i64>>,
    pub escalation_policies: Option<Vec<i64>>,
    pub priorities: Option<Vec<String>>,
    /// Incidents some of these users acknowledged or were assigned.
    pub responders: Option<Vec<i64>>,
    pub min_acknowledgements: Option<i64>,
    pub min_timeout_escalations: Option<i64>,
    pub min_manual_escalations: Option<i64>,
}

impl Selection {
    /// Everything created in `[from, to)`.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Self {
            from,
            to,
            urgency: None,
            major: None,
            teams: None,
            services: None,
            escalation_policies: None,
            priorities: None,
            responders: None,
            min_acknowledgements: None,
            min_timeout_escalations: None,
            min_manual_escalations: None,
        }
    }

    /// The selection as one predicate (None: only the range).
    pub(crate) fn expr(&self) -> Option<Expr> {
        let mut parts: Vec<Expr> = Vec::new();
        let ids = |c: &str, v: &[i64]| -> Expr {
            if v.is_empty() {
                lit(false)
            } else {
                col(c).in_list(v.iter().map(|i| lit(*i)).collect(), false)
            }
        };
        if let Some(v) = &self.teams {
            parts.push(ids("team_id", v));
        }
        if let Some(v) = &self.services {
            parts.push(ids("service_id", v));
        }
        if let Some(v) = &self.escalation_policies {
            parts.push(ids("escalation_policy_id", v));
        }
        if let Some(v) = &self.priorities {
            parts.push(if v.is_empty() {
                lit(false)
            } else {
                col("priority").in_list(v.iter().map(|p| lit(p.clone())).collect(), false)
            });
        }
        if let Some(v) = &self.responders {
            let any = v
                .iter()
                .map(|u| {
                    array_has(col("acknowledged_user_ids"), lit(*u))
                        .or(array_has(col("assigned_user_ids"), lit(*u)))
                })
                .reduce(Expr::or)
                .unwrap_or(lit(false));
            parts.push(any);
        }
        if let Some(u) = &self.urgency {
            parts.push(col("urgency").eq(lit(u.clone())));
        }
        if let Some(m) = self.major {
            parts.push(col("major").eq(lit(m)));
        }
        if let Some(n) = self.min_acknowledgements {
            parts.push(col("ack_count").gt_eq(lit(n)));
        }
        if let Some(n) = self.min_timeout_escalations {
            parts.push(col("timeout_escalations").gt_eq(lit(n)));
        }
        if let Some(n) = self.min_manual_escalations {
            parts.push(col("manual_escalations").gt_eq(lit(n)));
        }
        parts.into_iter().reduce(Expr::and)
    }
}

/// What rows are per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Team,
    Service,
    EscalationPolicy,
    /// Each user who acknowledged the incident or was assigned it (an incident counts for
    /// each of them).
    Responder,
}

/// Rows per local calendar day, ISO week or month of `tz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub unit: Unit,
    pub tz: Tz,
}

impl Buckets {
    /// The local start of the bucket that holds local date `d`.
    fn start_of(self, d: NaiveDate) -> NaiveDate {
        match self.unit {
            Unit::Day => d,
            Unit::Week => d
                .checked_sub_days(Days::new(u64::from(d.weekday().num_days_from_monday())))
                .unwrap_or(d),
            Unit::Month => d.with_day(1).unwrap_or(d),
        }
    }

    fn next(self, d: NaiveDate) -> Option<NaiveDate> {
        match self.unit {
            Unit::Day => d.checked_add_days(Days::new(1)),
            Unit::Week => d.checked_add_days(Days::new(7)),
            Unit::Month => d.checked_add_months(Months::new(1)),
        }
    }

    /// The local starts of the buckets that `[from, to)` touches.
    fn starts(self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
        let first = self.start_of(from.with_timezone(&self.tz).date_naive());
        let mut out = Vec::new();
        let mut at = Some(first);
        while let Some(d) = at {
            if local_midnight(self.tz, d) >= to {
                break;
            }
            out.push(d);
            at = self.next(d);
        }
        out
    }
}

/// What a row gathers from its incidents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// The row's team, service, policy or user (None: the whole selection, or incidents
    /// without a team).
    pub key: Option<i64>,
    /// The local start of the row's bucket.
    pub range_start: Option<NaiveDateTime>,
    pub incident_count: i64,
    /// Incidents acknowledged at least once.
    pub acknowledged_count: i64,
    pub auto_resolved_count: i64,
    pub manual_escalated_count: i64,
    pub timeout_escalated_count: i64,
    pub reassigned_count: i64,
    pub escalations: i64,
    pub notifications: i64,
    pub interruptions: i64,
    pub interruptions_business: i64,
    pub interruptions_off_hours: i64,
    pub interruptions_sleep: i64,
    /// Users who acknowledged, summed over the incidents.
    pub engaged_users: i64,
    /// Distinct users who acknowledged any of the incidents.
    pub distinct_responders: i64,
    /// Per responder: the incidents the row's user acknowledged.
    pub acknowledged_by_key: i64,
    /// The durations, sorted: to first acknowledgement, to resolve, to mobilize (the last
    /// acknowledging user's first acknowledgement), to engage (first to last engaging
    /// user).
    pub to_first_ack: Vec<f64>,
    pub to_resolve: Vec<f64>,
    pub to_mobilize: Vec<f64>,
    pub to_engage: Vec<f64>,
}

impl Tally {
    /// The mean of sorted values.
    pub fn mean(values: &[f64]) -> Option<f64> {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }
}

impl Engine {
    /// The analytics rows of `account`'s incidents in `selection`: one for all of them,
    /// or one per `by` value, each split by `buckets` when given. Rows come ordered by key
    /// then bucket; groups and buckets without incidents are left out.
    #[tracing::instrument(skip_all, err, fields(account, by = ?by))]
    pub async fn analytics(
        &self,
        account: i64,
        selection: &Selection,
        by: Option<Dimension>,
        buckets: Option<Buckets>,
    ) -> Result<Vec<Tally>> {
        let mut df = self
            .incidents(account, selection.from, selection.to, &Filters::default())
            .await?;
        if let Some(f) = selection.expr() {
            df = df.filter(f).map_err(facts_err("filtering facts"))?;
        }
        let mut keys: Vec<Expr> = Vec::new();
        let key_column = match by {
            None => None,
            Some(Dimension::Team) => Some("team_id"),
            Some(Dimension::Service) => Some("service_id"),
            Some(Dimension::EscalationPolicy) => Some("escalation_policy_id"),
            Some(Dimension::Responder) => {
                // Each involved user once: the acknowledgers and the assignees.
                df = df
                    .with_column(
                        "responder",
                        deltalake::datafusion::functions_nested::expr_fn::array_distinct(
                            deltalake::datafusion::functions_nested::expr_fn::array_concat(vec![
                                col("acknowledged_user_ids"),
                                col("assigned_user_ids"),
                            ]),
                        ),
                    )
                    .and_then(|d| d.unnest_columns(&["responder"]))
                    .map_err(facts_err("listing responders"))?;
                Some("responder")
            }
        };
        if let Some(c) = key_column {
            keys.push(cast(col(c), DataType::Int64).alias("key"));
        }
        let starts = buckets.map(|b| b.starts(selection.from, selection.to));
        if let (Some(b), Some(starts)) = (buckets, &starts) {
            let bounds: Vec<(i64, Expr)> = starts
                .iter()
                .enumerate()
                .map(|(i, d)| (i as i64, ts(local_midnight(b.tz, *d))))
                .collect();
            keys.push(bucket_of(&bounds).alias("bucket"));
        }
        let rows = self
            .tally(df.clone(), keys.clone(), by == Some(Dimension::Responder))
            .await?;
        let mut out: BTreeMap<(Option<i64>, Option<i64>), Tally> = rows;
        if by == Some(Dimension::EscalationPolicy) {
            for (k, n) in self.distinct_responders(df, keys).await? {
                if let Some(t) = out.get_mut(&k) {
                    t.distinct_responders = n;
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|((key, bucket), mut t)| {
                t.key = key;
                t.range_start = bucket
                    .and_then(|i| starts.as_ref()?.get(usize::try_from(i).ok()?).copied())
                    .map(|d| d.and_time(chrono::NaiveTime::MIN));
                t
            })
            .collect())
    }

    async fn tally(
        &self,
        df: DataFrame,
        keys: Vec<Expr>,
        per_responder: bool,
    ) -> Result<BTreeMap<(Option<i64>, Option<i64>), Tally>> {
        let mut aggregates = vec![
            count(lit(1_i64)).alias("incident_count"),
            count(col("seconds_to_first_ack")).alias("acknowledged_count"),
            sum(one(col("auto_resolved"))).alias("auto_resolved_count"),
            sum(one(col("manual_escalations").gt(lit(0_i64)))).alias("manual_escalated_count"),
            sum(one(col("timeout_escalations").gt(lit(0_i64)))).alias("timeout_escalated_count"),
            sum(one(col("reassignment_count").gt(lit(0_i64)))).alias("reassigned_count"),
            sum(col("escalation_count")).alias("escalations"),
            sum(col("notification_count")).alias("notifications"),
            sum(col("interruptions")).alias("interruptions"),
            sum(col("interruptions_business")).alias("interruptions_business"),
            sum(col("interruptions_off_hours")).alias("interruptions_off_hours"),
            sum(col("interruptions_sleep")).alias("interruptions_sleep"),
            sum(cast(
                cardinality(col("acknowledged_user_ids")),
                DataType::Int64,
            ))
            .alias("engaged_users"),
            array_agg(col("seconds_to_first_ack")).alias("to_first_ack"),
            array_agg(col("seconds_to_resolve")).alias("to_resolve"),
            array_agg(col("seconds_to_mobilize")).alias("to_mobilize"),
            array_agg(col("seconds_to_mobilize") - col("seconds_to_first_ack")).alias("to_engage"),
        ];
        if per_responder {
            aggregates.push(
                sum(one(array_has(
                    col("acknowledged_user_ids"),
                    col("responder"),
                )))
                .alias("acknowledged_by_key"),
            );
        }
        let batches = df
            .aggregate(keys, aggregates)
            .map_err(facts_err("planning an analytics aggregate"))?
            .collect()
            .await
            .map_err(facts_err("computing an analytics aggregate"))?;
        let mut out = BTreeMap::new();
        for b in &batches {
            for row in 0..b.num_rows() {
                let n = |name: &str| int(b, name, row).unwrap_or(0);
                let t = Tally {
                    incident_count: n("incident_count"),
                    acknowledged_count: n("acknowledged_count"),
                    auto_resolved_count: n("auto_resolved_count"),
                    manual_escalated_count: n("manual_escalated_count"),
                    timeout_escalated_count: n("timeout_escalated_count"),
                    reassigned_count: n("reassigned_count"),
                    escalations: n("escalations"),
                    notifications: n("notifications"),
                    interruptions: n("interruptions"),
                    interruptions_business: n("interruptions_business"),
                    interruptions_off_hours: n("interruptions_off_hours"),
                    interruptions_sleep: n("interruptions_sleep"),
                    engaged_users: n("engaged_users"),
                    acknowledged_by_key: n("acknowledged_by_key"),
                    to_first_ack: sorted(b, "to_first_ack", row),
                    to_resolve: sorted(b, "to_resolve", row),
                    to_mobilize: sorted(b, "to_mobilize", row),
                    to_engage: sorted(b, "to_engage", row),
                    ..Tally::default()
                };
                out.insert((int(b, "key", row), int(b, "bucket", row)), t);
            }
        }
        Ok(out)
    }

    /// The distinct acknowledging users per key.
    async fn distinct_responders(
        &self,
        df: DataFrame,
        keys: Vec<Expr>,
    ) -> Result<Vec<((Option<i64>, Option<i64>), i64)>> {
        let batches = df
            .select(
                keys.iter()
                    .cloned()
                    .chain([col("acknowledged_user_ids")])
                    .collect::<Vec<_>>(),
            )
            .and_then(|d| d.unnest_columns(&["acknowledged_user_ids"]))
            .and_then(|d| {
                let keys: Vec<Expr> = keys
                    .iter()
                    .map(|k| col(k.schema_name().to_string()))
                    .collect();
                d.filter(col("acknowledged_user_ids").is_not_null())?
                    .aggregate(
                        keys,
                        vec![array_agg(col("acknowledged_user_ids")).alias("users")],
                    )
            })
            .map_err(facts_err("planning a responder count"))?
            .collect()
            .await
            .map_err(facts_err("counting responders"))?;
        let mut out = Vec::new();
        for b in &batches {
            for row in 0..b.num_rows() {
                let users: BTreeSet<i64> = b
                    .column_by_name("users")
                    .and_then(|c| c.as_list_opt::<i32>())
                    .filter(|l| !l.is_null(row))
                    .and_then(|l| {
                        let v = deltalake::arrow::compute::cast(&l.value(row), &DataType::Int64)
                            .ok()?;
                        Some(v.as_primitive::<Int64Type>().iter().flatten().collect())
                    })
                    .unwrap_or_default();
                out.push((
                    (int(b, "key", row), int(b, "bucket", row)),
                    users.len() as i64,
                ));
            }
        }
        Ok(out)
    }
}

/// The bucket index of `created_at` among buckets starting at `bounds` (ascending): a
/// balanced tree of comparisons, so a year of days costs nine per incident.
fn bucket_of(bounds: &[(i64, Expr)]) -> Expr {
    match bounds {
        [] => lit(deltalake::datafusion::common::ScalarValue::Int64(None)),
        [(i, _)] => lit(*i),
        _ => {
            let mid = bounds.len() / 2;
            let (lower, upper) = bounds.split_at(mid);
            when(col("created_at").lt(upper[0].1.clone()), bucket_of(lower))
                .otherwise(bucket_of(upper))
                .unwrap_or(lit(0_i64))
        }
    }
}

/// The numbers of list column `name` at `row`, sorted.
fn sorted(b: &RecordBatch, name: &str, row: usize) -> Vec<f64> {
    let mut v = values(b, name, row);
    v.sort_unstable_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn buckets_are_local_calendar_units_that_touch_the_range() {
        let b = Buckets {
            unit: Unit::Week,
            tz: chrono_tz::America::New_York,
        };
        // Thursday 2026-10-29 05:00 UTC is 01:00 local; the range ends Monday 2026-11-09
        // 04:59 local, across the end of daylight time (2026-11-01).
        let starts = b.starts(utc("2026-10-29T05:00:00Z"), utc("2026-11-09T09:59:00Z"));
        assert_eq!(
            starts,
            vec![d("2026-10-26"), d("2026-11-02"), d("2026-11-09")]
        );
        let b = Buckets {
            unit: Unit::Month,
            tz: chrono_tz::Europe::Berlin,
        };
        // 2026-02-28T23:30Z is already March in Berlin; April starts there at 22:00Z
        // (summer time), so 2026-04-01T00:00Z is in April.
        let starts = b.starts(utc("2026-02-28T23:30:00Z"), utc("2026-03-31T22:00:00Z"));
        assert_eq!(starts, vec![d("2026-03-01")]);
        let starts = b.starts(utc("2026-02-28T23:30:00Z"), utc("2026-04-01T00:00:00Z"));
        assert_eq!(starts, vec![d("2026-03-01"), d("2026-04-01")]);
        let b = Buckets {
            unit: Unit::Day,
            tz: chrono_tz::UTC,
        };
        let starts = b.starts(utc("2026-01-01T00:00:00Z"), utc("2026-01-03T00:00:00Z"));
        assert_eq!(starts, vec![d("2026-01-01"), d("2026-01-02")]);
    }

    #[test]
    fn an_empty_list_selects_nothing_and_none_everything() {
        let mut s = Selection::between(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:00Z"));
        assert_eq!(s.expr(), None);
        s.teams = Some(vec![]);
        assert_eq!(s.expr(), Some(lit(false)));
    }
}
