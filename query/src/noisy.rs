//! Noisy alerts: which services and alerts make the most incidents, which resolve
//! themselves, which flap, and which come in bursts.
//!
//! Incidents are "similar" when their titles match once every word holding a digit is
//! masked (hosts like `payments-07`, regions like `eu-west-1`, counts): see [`fingerprint`].
//! The facts of the period are read once (six columns) and grouped here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, AsArray, StringArray};
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use deltalake::datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use deltalake::datafusion::prelude::{Expr, cast, col};
use serde::Serialize;

use crate::{Engine, Error, Filters, Period, Result, facts_err};

/// How the noisy-alerts view is cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoisyOptions {
    /// Rows per list.
    pub limit: usize,
    /// An auto-resolved incident this short (seconds from trigger to resolve) is a flap.
    pub flap_seconds: f64,
    /// Similar incidents each within this many seconds of the previous form a burst...
    pub burst_gap_seconds: i64,
    /// ...of at least this many incidents.
    pub burst_min: usize,
    /// A service needs this many incidents to be ranked by its auto-resolve share.
    pub share_min: i64,
}

impl Default for NoisyOptions {
    fn default() -> Self {
        Self {
            limit: 10,
            flap_seconds: 300.0,
            burst_gap_seconds: 300,
            burst_min: 3,
            share_min: 5,
        }
    }
}

/// A service's or an alert's noise.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Noise {
    /// The service id, or the title's fingerprint.
    pub key: String,
    /// The most recent title among its incidents.
    pub example_title: String,
    pub incident_count: i64,
    pub auto_resolved_count: i64,
    pub auto_resolved_share: f64,
    /// Auto-resolved within `flap_seconds` of the trigger.
    pub flapping_count: i64,
    /// The same alert raised again while open and suppressed by the source (GoAlert's
    /// `duplicate_suppressed`); 0 where the source has no such record.
    pub repeat_count: i64,
    /// Incidents plus repeats: how often the alert fired. Alerts are ranked by it.
    pub alert_count: i64,
    pub service_ids: Vec<i64>,
}

/// Similar incidents in quick succession.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Burst {
    pub fingerprint: String,
    pub example_title: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub incident_count: i64,
    pub first_incident_id: i64,
    pub service_ids: Vec<i64>,
}

/// The noisy-alerts view of a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Noisy {
    /// Services with the most incidents.
    pub services: Vec<Noise>,
    /// Alerts (title fingerprints) with the most incidents.
    pub titles: Vec<Noise>,
    /// Services with the highest auto-resolve share (at least `share_min` incidents).
    pub auto_resolving: Vec<Noise>,
    /// Services with the most flaps (at least two).
    pub flapping: Vec<Noise>,
    /// The largest bursts.
    pub bursts: Vec<Burst>,
}

/// The title with every whitespace-separated word that holds a digit replaced by `#`,
/// lower-cased: "Disk full on db-03 (eu-west-1)" → "disk full on # #".
pub fn fingerprint(title: &str) -> String {
    title
        .split_whitespace()
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "#".to_owned()
            } else {
                w.to_lowercase()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`fingerprint`] as a DataFusion expression over a string column (for the `alert`
/// filter: the incidents behind one noisy alert).
pub(crate) fn fingerprint_expr(title: Expr) -> Expr {
    let udf = create_udf(
        "mttx_fingerprint",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let titles = arrays[0].as_string::<i32>();
            let out: StringArray = titles.iter().map(|t| t.map(fingerprint)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    udf.call(vec![cast(title, DataType::Utf8)])
}

#[derive(Debug)]
struct Incident {
    id: i64,
    service: i64,
    title: String,
    created: i64,
    auto: bool,
    resolve: Option<f64>,
    repeats: i64,
}

/// What the source knows of some incidents beyond their facts: the dedup key each holds
/// and how often it was raised again while open (GoAlert's `duplicate_suppressed`).
pub type Repeats = HashMap<i64, (Option<String>, i64)>;

/// The incidents behind a noisy-alerts view, read from the facts; [`NoisyIncidents::view`]
/// groups them, with what the source adds ([`Repeats`]).
#[derive(Debug)]
pub struct NoisyIncidents(Vec<Incident>);

impl NoisyIncidents {
    /// The incidents' ids (to ask the source about).
    pub fn ids(&self) -> Vec<i64> {
        self.0.iter().map(|i| i.id).collect()
    }

    /// The view. Incidents that share a dedup key are one alert (under the fingerprint of
    /// the earliest), and their repeats count with them.
    pub fn view(mut self, repeats: &Repeats, options: &NoisyOptions) -> Noisy {
        for i in &mut self.0 {
            i.repeats = repeats.get(&i.id).map_or(0, |r| r.1);
        }
        noisy(self.0, repeats, options)
    }
}

#[derive(Default)]
struct Tally {
    count: i64,
    repeats: i64,
    auto: i64,
    flaps: i64,
    services: BTreeSet<i64>,
    /// (created, id, title) of the latest incident.
    latest: (i64, i64, String),
}

impl Tally {
    fn add(&mut self, i: &Incident, flap: bool) {
        self.count += 1;
        self.repeats += i.repeats;
        self.auto += i64::from(i.auto);
        self.flaps += i64::from(flap);
        self.services.insert(i.service);
        if (i.created, i.id) > (self.latest.0, self.latest.1) {
            self.latest = (i.created, i.id, i.title.clone());
        }
    }

    fn noise(&self, key: String) -> Noise {
        Noise {
            key,
            example_title: self.latest.2.clone(),
            incident_count: self.count,
            auto_resolved_count: self.auto,
            auto_resolved_share: self.auto as f64 / self.count.max(1) as f64,
            flapping_count: self.flaps,
            repeat_count: self.repeats,
            alert_count: self.count + self.repeats,
            service_ids: self.services.iter().copied().collect(),
        }
    }
}

fn micros(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t).unwrap_or_default()
}

impl Engine {
    /// The noisy-alerts view of `account`'s incidents created in `period`.
    #[tracing::instrument(skip_all, err, fields(
        account = account,
        from = %period.from,
        to = %period.to,
        tz = %period.tz,
    ))]
    pub async fn noisy(
        &self,
        account: i64,
        period: &Period,
        filters: &Filters,
        options: &NoisyOptions,
    ) -> Result<Noisy> {
        Ok(self
            .noisy_incidents(account, period, filters)
            .await?
            .view(&Repeats::new(), options))
    }

    /// The incidents of a noisy-alerts view, to group with what the source adds.
    pub async fn noisy_incidents(
        &self,
        account: i64,
        period: &Period,
        filters: &Filters,
    ) -> Result<NoisyIncidents> {
        let (from, to) = period.instants();
        let batches = self
            .incidents(account, from, to, filters)
            .await?
            .select(vec![
                col("incident_id"),
                col("service_id"),
                cast(col("title"), DataType::Utf8),
                col("created_at"),
                col("auto_resolved"),
                col("seconds_to_resolve"),
            ])
            .map_err(facts_err("listing noisy alerts"))?
            .collect()
            .await
            .map_err(facts_err("listing noisy alerts"))?;
        let mut incidents = Vec::new();
        for b in &batches {
            let column = |i: usize| b.column(i);
            let (Some(ids), Some(services), Some(titles), Some(created), Some(auto), Some(res)) = (
                column(0).as_primitive_opt::<Int64Type>(),
                column(1).as_primitive_opt::<Int64Type>(),
                column(2).as_string_opt::<i32>(),
                column(3).as_primitive_opt::<TimestampMicrosecondType>(),
                column(4).as_boolean_opt(),
                column(5).as_primitive_opt::<Float64Type>(),
            ) else {
                return Err(Error::Facts {
                    doing: "listing noisy alerts",
                    source: Box::new(std::io::Error::other(format!(
                        "unexpected column types {:?}",
                        b.schema()
                    ))),
                });
            };
            for r in 0..b.num_rows() {
                incidents.push(Incident {
                    id: ids.value(r),
                    service: services.value(r),
                    title: titles.value(r).to_owned(),
                    created: created.value(r),
                    auto: !auto.is_null(r) && auto.value(r),
                    resolve: (!res.is_null(r)).then(|| res.value(r)),
                    repeats: 0,
                });
            }
        }
        Ok(NoisyIncidents(incidents))
    }
}

fn noisy(mut incidents: Vec<Incident>, repeats: &Repeats, o: &NoisyOptions) -> Noisy {
    // Earliest first, so an alert raised again under the same dedup key joins the group of
    // its first appearance.
    incidents.sort_by_key(|i| (i.created, i.id));
    let mut by_key: HashMap<&str, String> = HashMap::new();
    let flap = |i: &Incident| i.auto && i.resolve.is_some_and(|s| s <= o.flap_seconds);
    let mut by_service: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut by_print: HashMap<String, Tally> = HashMap::new();
    let mut prints = Vec::with_capacity(incidents.len());
    for i in &incidents {
        let f = flap(i);
        by_service.entry(i.service).or_default().add(i, f);
        let mut p = fingerprint(&i.title);
        if let Some((Some(key), _)) = repeats.get(&i.id) {
            p = by_key.entry(key.as_str()).or_insert(p).clone();
        }
        by_print.entry(p.clone()).or_default().add(i, f);
        prints.push(p);
    }
    let top = |mut v: Vec<Noise>, rank: &dyn Fn(&Noise, &Noise) -> std::cmp::Ordering| {
        v.sort_by(|a, b| rank(a, b).then_with(|| a.key.cmp(&b.key)));
        v.truncate(o.limit);
        v
    };
    let services: Vec<Noise> = by_service
        .iter()
        .map(|(s, t)| t.noise(s.to_string()))
        .collect();
    let by_count = |a: &Noise, b: &Noise| b.incident_count.cmp(&a.incident_count);
    let titles = top(
        by_print.iter().map(|(p, t)| t.noise(p.clone())).collect(),
        &|a, b| {
            b.alert_count
                .cmp(&a.alert_count)
                .then(b.incident_count.cmp(&a.incident_count))
        },
    );
    let auto_resolving = top(
        services
            .iter()
            .filter(|n| n.incident_count >= o.share_min && n.auto_resolved_count > 0)
            .cloned()
            .collect(),
        &|a, b| {
            b.auto_resolved_share
                .total_cmp(&a.auto_resolved_share)
                .then(b.incident_count.cmp(&a.incident_count))
        },
    );
    let flapping = top(
        services
            .iter()
            .filter(|n| n.flapping_count >= 2)
            .cloned()
            .collect(),
        &|a, b| b.flapping_count.cmp(&a.flapping_count),
    );
    let services = top(services, &by_count);

    // Bursts: per fingerprint in time order, a new burst starts after a gap longer than
    // `burst_gap_seconds`.
    let mut order: Vec<usize> = (0..incidents.len()).collect();
    order.sort_by(|&a, &b| {
        (&prints[a], incidents[a].created, incidents[a].id).cmp(&(
            &prints[b],
            incidents[b].created,
            incidents[b].id,
        ))
    });
    let gap = o.burst_gap_seconds.saturating_mul(1_000_000);
    let mut bursts = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    let close = |run: &mut Vec<usize>, bursts: &mut Vec<Burst>| {
        if run.len() >= o.burst_min.max(1)
            && let (Some(&first), Some(&last)) = (run.first(), run.last())
        {
            let services: BTreeSet<i64> = run.iter().map(|&i| incidents[i].service).collect();
            bursts.push(Burst {
                fingerprint: prints[first].clone(),
                example_title: incidents[first].title.clone(),
                started_at: micros(incidents[first].created),
                ended_at: micros(incidents[last].created),
                incident_count: run.len() as i64,
                first_incident_id: incidents[first].id,
                service_ids: services.into_iter().collect(),
            });
        }
        run.clear();
    };
    for &i in &order {
        if let Some(&prev) = run.last()
            && (prints[prev] != prints[i] || incidents[i].created - incidents[prev].created > gap)
        {
            close(&mut run, &mut bursts);
        }
        run.push(i);
    }
    close(&mut run, &mut bursts);
    bursts.sort_by(|a, b| {
        b.incident_count
            .cmp(&a.incident_count)
            .then(a.started_at.cmp(&b.started_at))
            .then(a.first_incident_id.cmp(&b.first_incident_id))
    });
    bursts.truncate(o.limit);
    Noisy {
        services,
        titles,
        auto_resolving,
        flapping,
        bursts,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn at(minute: i64) -> i64 {
        1_790_000_000_000_000 + minute * 60_000_000
    }

    fn incident(id: i64, service: i64, title: &str, minute: i64, resolve: Option<f64>) -> Incident {
        Incident {
            id,
            service,
            title: title.into(),
            created: at(minute),
            auto: resolve.is_some(),
            resolve,
            repeats: 0,
        }
    }

    #[test]
    fn a_dedup_key_joins_alerts_and_suppressed_duplicates_count_as_repeats() {
        let v = vec![
            incident(1, 1, "Queue backlog on worker-3", 0, None),
            incident(2, 1, "Consumer lag high", 10, None),
            incident(3, 2, "Queue backlog on worker-4", 20, None),
            incident(4, 2, "Disk full", 30, None),
        ];
        let repeats = Repeats::from([
            (1, (Some("user:1:lag".to_owned()), 2)),
            (2, (Some("user:1:lag".to_owned()), 3)),
            (4, (None, 9)),
        ]);
        let n = NoisyIncidents(v).view(&repeats, &NoisyOptions::default());
        let by_key: Vec<(&str, i64, i64, i64)> = n
            .titles
            .iter()
            .map(|t| {
                (
                    t.key.as_str(),
                    t.incident_count,
                    t.repeat_count,
                    t.alert_count,
                )
            })
            .collect();
        // 1, 2 and 3 are one alert (2 by its key, 3 by its title); "disk full" fired 10
        // times in one incident, so it ranks first.
        assert_eq!(
            by_key,
            [("disk full", 1, 9, 10), ("queue backlog on #", 3, 5, 8)]
        );
    }

    #[test]
    fn fingerprints_mask_words_with_digits() {
        assert_eq!(
            fingerprint("Disk  full on db-03 (eu-west-1)"),
            "disk full on # #"
        );
        assert_eq!(fingerprint("Checkout API down"), "checkout api down");
        assert_eq!(fingerprint(""), "");
    }

    /// A hand-worked case: a burst of 4 across two services (gaps 1, 4, 5 min), then a
    /// similar incident 6 minutes later (too late), a pair (too small), flaps on service 7.
    #[test]
    fn hand_worked() {
        let o = NoisyOptions::default();
        let v = vec![
            incident(1, 7, "Disk full on db-01", 0, Some(60.0)),
            incident(2, 8, "Disk full on db-02", 1, Some(120.0)),
            incident(3, 7, "Disk full on db-03", 5, Some(400.0)),
            incident(4, 7, "disk full on db-04", 10, None),
            incident(5, 7, "Disk full on db-05", 16, Some(30.0)),
            incident(6, 9, "Checkout down", 100, None),
            incident(7, 9, "Checkout down", 101, None),
        ];
        let n = noisy(v, &Repeats::new(), &o);
        assert_eq!(n.bursts.len(), 1);
        let b = &n.bursts[0];
        assert_eq!(
            (b.incident_count, b.first_incident_id, b.service_ids.clone()),
            (4, 1, vec![7, 8])
        );
        assert_eq!(b.fingerprint, "disk full on #");
        assert_eq!((b.ended_at - b.started_at).num_minutes(), 10);
        // Service 7: 4 incidents, 3 auto-resolved (60 s, 400 s, 30 s), 2 flaps (≤ 300 s).
        assert_eq!(n.services[0].key, "7");
        assert_eq!(
            (
                n.services[0].incident_count,
                n.services[0].auto_resolved_count,
                n.services[0].flapping_count
            ),
            (4, 3, 2)
        );
        assert_eq!(n.services[0].example_title, "Disk full on db-05");
        assert_eq!(
            n.services.iter().map(|s| &s.key[..]).collect::<Vec<_>>(),
            ["7", "9", "8"]
        );
        assert_eq!(n.titles[0].key, "disk full on #");
        assert_eq!(n.titles[0].incident_count, 5);
        // Share ranking needs 5 incidents: no service has them.
        assert!(n.auto_resolving.is_empty());
        assert_eq!(n.flapping.len(), 1);
        assert_eq!(n.flapping[0].key, "7");
    }
}
