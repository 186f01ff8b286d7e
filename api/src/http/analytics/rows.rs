//! The answers of PagerDuty's Analytics API in PagerDuty's field names and meanings
//! (`AnalyticsIncidentMetrics`, `AnalyticsIncidentMetricsEscalationPolicy`,
//! `AnalyticsResponderMetrics`, `AnalyticsRawIncident`), made from the engine's rows and
//! facts, with names and outside ids from the account's [`Directory`]. Seconds are whole
//! numbers, as PagerDuty's are. Beyond PagerDuty: `p50/p75/p90/p95_seconds_to_*` on every
//! row. Values the facts do not hold (engaged seconds, snoozed seconds, assignment counts,
//! up time) are left out, never made up; the README lists them.

use chrono::SecondsFormat;
use chrono_tz::Tz;
use mttx_facts::{Fact, percentile_cont};
use mttx_query::{Dimension, Tally};
use mttx_replica::{Directory, Kind};
use serde::Serialize;
use utoipa::ToSchema;

use super::request::Order;

/// The fields `order_by` may name: every field of a row.
pub static ORDERABLE: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    let some = || Some(String::new());
    let full = MetricsRow {
        service_id: some(),
        service_name: some(),
        escalation_policy_id: some(),
        escalation_policy_name: some(),
        team_id: some(),
        team_name: some(),
        range_start: some(),
        distinct_responder_count: Some(0),
        ..MetricsRow::default()
    };
    serde_json::to_value(full)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
});

/// Orders rows: by `order_by` (missing values last) then by name and bucket; without it by
/// name and bucket. `order` defaults to ascending.
pub fn sort(rows: &mut [MetricsRow], order_by: Option<&str>, order: Option<Order>) {
    use std::cmp::Ordering;
    let name = |r: &MetricsRow| {
        (
            r.service_name
                .clone()
                .or(r.escalation_policy_name.clone())
                .or(r.team_name.clone()),
            r.service_id
                .clone()
                .or(r.escalation_policy_id.clone())
                .or(r.team_id.clone()),
            r.range_start.clone(),
        )
    };
    let value = |r: &MetricsRow, f: &str| -> Option<serde_json::Value> {
        serde_json::to_value(r)
            .ok()?
            .get(f)
            .filter(|v| !v.is_null())
            .cloned()
    };
    let compare = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.as_str().cmp(&b.as_str()),
    };
    let desc = order == Some(Order::Desc);
    rows.sort_by(|a, b| {
        let by_field = match order_by {
            Some(f) => match (value(a, f), value(b, f)) {
                (Some(x), Some(y)) => {
                    let o = compare(&x, &y);
                    if desc { o.reverse() } else { o }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            None => Ordering::Equal,
        };
        by_field.then_with(|| {
            let o = name(a).cmp(&name(b));
            if desc && order_by.is_none() {
                o.reverse()
            } else {
                o
            }
        })
    });
}

/// One row of incident metrics.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct MetricsRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_policy_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_policy_name: Option<String>,
    /// The row's team: its own on team rows, the service's or policy's team on theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_name: Option<String>,
    /// Local start of the row's day, week or month (`YYYY-MM-DDTHH:MM:SS` in `time_zone`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_start: Option<String>,
    pub total_incident_count: i64,
    /// Incidents acknowledged at least once.
    pub total_incidents_acknowledged: i64,
    pub total_incidents_auto_resolved: i64,
    pub total_incidents_manual_escalated: i64,
    pub total_incidents_timeout_escalated: i64,
    pub total_incidents_reassigned: i64,
    pub total_escalation_count: i64,
    pub total_notifications: i64,
    pub total_interruptions: i64,
    /// 8am–6pm Mon–Fri in the user's zone.
    pub total_business_hour_interruptions: i64,
    /// 6pm–10pm Mon–Fri and all of Sat–Sun.
    pub total_off_hour_interruptions: i64,
    /// 10pm–8am every day.
    pub total_sleep_hour_interruptions: i64,
    /// Escalation-policy rows: distinct users who acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_responder_count: Option<i64>,
    pub mean_engaged_user_count: Option<i64>,
    pub mean_seconds_to_first_ack: Option<i64>,
    pub mean_seconds_to_resolve: Option<i64>,
    /// To the last acknowledging user's first acknowledgement; incidents with two or more.
    pub mean_seconds_to_mobilize: Option<i64>,
    /// From the first to the last engaging user; incidents with two or more.
    pub mean_seconds_to_engage: Option<i64>,
    pub p50_seconds_to_first_ack: Option<i64>,
    pub p75_seconds_to_first_ack: Option<i64>,
    pub p90_seconds_to_first_ack: Option<i64>,
    pub p95_seconds_to_first_ack: Option<i64>,
    pub p50_seconds_to_resolve: Option<i64>,
    pub p75_seconds_to_resolve: Option<i64>,
    pub p90_seconds_to_resolve: Option<i64>,
    pub p95_seconds_to_resolve: Option<i64>,
    pub p50_seconds_to_mobilize: Option<i64>,
    pub p75_seconds_to_mobilize: Option<i64>,
    pub p90_seconds_to_mobilize: Option<i64>,
    pub p95_seconds_to_mobilize: Option<i64>,
    pub p50_seconds_to_engage: Option<i64>,
    pub p75_seconds_to_engage: Option<i64>,
    pub p90_seconds_to_engage: Option<i64>,
    pub p95_seconds_to_engage: Option<i64>,
}

/// Whole seconds, rounded half away from zero.
fn whole(v: Option<f64>) -> Option<i64> {
    v.map(|v| v.round() as i64)
}

/// The four percentiles of sorted values.
fn quartet(v: &[f64]) -> [Option<i64>; 4] {
    [0.5, 0.75, 0.9, 0.95].map(|p| whole(percentile_cont(v, p)))
}

impl MetricsRow {
    /// A row from the engine's, named for its dimension.
    pub fn new(t: &Tally, by: Option<Dimension>, d: &Directory) -> Self {
        let [a50, a75, a90, a95] = quartet(&t.to_first_ack);
        let [r50, r75, r90, r95] = quartet(&t.to_resolve);
        let [m50, m75, m90, m95] = quartet(&t.to_mobilize);
        let [e50, e75, e90, e95] = quartet(&t.to_engage);
        let mut row = Self {
            range_start: t
                .range_start
                .map(|s| s.format("%Y-%m-%dT%H:%M:%S").to_string()),
            total_incident_count: t.incident_count,
            total_incidents_acknowledged: t.acknowledged_count,
            total_incidents_auto_resolved: t.auto_resolved_count,
            total_incidents_manual_escalated: t.manual_escalated_count,
            total_incidents_timeout_escalated: t.timeout_escalated_count,
            total_incidents_reassigned: t.reassigned_count,
            total_escalation_count: t.escalations,
            total_notifications: t.notifications,
            total_interruptions: t.interruptions,
            total_business_hour_interruptions: t.interruptions_business,
            total_off_hour_interruptions: t.interruptions_off_hours,
            total_sleep_hour_interruptions: t.interruptions_sleep,
            distinct_responder_count: None,
            mean_engaged_user_count: whole(
                (t.incident_count > 0).then(|| t.engaged_users as f64 / t.incident_count as f64),
            ),
            mean_seconds_to_first_ack: whole(Tally::mean(&t.to_first_ack)),
            mean_seconds_to_resolve: whole(Tally::mean(&t.to_resolve)),
            mean_seconds_to_mobilize: whole(Tally::mean(&t.to_mobilize)),
            mean_seconds_to_engage: whole(Tally::mean(&t.to_engage)),
            p50_seconds_to_first_ack: a50,
            p75_seconds_to_first_ack: a75,
            p90_seconds_to_first_ack: a90,
            p95_seconds_to_first_ack: a95,
            p50_seconds_to_resolve: r50,
            p75_seconds_to_resolve: r75,
            p90_seconds_to_resolve: r90,
            p95_seconds_to_resolve: r95,
            p50_seconds_to_mobilize: m50,
            p75_seconds_to_mobilize: m75,
            p90_seconds_to_mobilize: m90,
            p95_seconds_to_mobilize: m95,
            p50_seconds_to_engage: e50,
            p75_seconds_to_engage: e75,
            p90_seconds_to_engage: e90,
            p95_seconds_to_engage: e95,
            ..Self::default()
        };
        let team = |row: &mut Self, team: Option<i64>| {
            if let Some(team) = team {
                row.team_id = Some(d.outside_id(Kind::Team, team));
                row.team_name = d.name(Kind::Team, team).map(str::to_owned);
            }
        };
        match (by, t.key) {
            (Some(Dimension::Team), key) => team(&mut row, key),
            (Some(Dimension::Service), Some(id)) => {
                row.service_id = Some(d.outside_id(Kind::Service, id));
                row.service_name = d.name(Kind::Service, id).map(str::to_owned);
                team(&mut row, d.team_of(Kind::Service, id));
            }
            (Some(Dimension::EscalationPolicy), Some(id)) => {
                row.escalation_policy_id = Some(d.outside_id(Kind::EscalationPolicy, id));
                row.escalation_policy_name = d.name(Kind::EscalationPolicy, id).map(str::to_owned);
                team(&mut row, d.team_of(Kind::EscalationPolicy, id));
            }
            _ => {}
        }
        if matches!(by, Some(Dimension::EscalationPolicy)) {
            row.distinct_responder_count = Some(t.distinct_responders);
        }
        row
    }
}

/// The one row of `POST /analytics/metrics/responders/all`: every selected responder's
/// incidents, summed.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ResponderRow {
    /// Incidents each responder acknowledged or was assigned, summed over the responders.
    pub total_incident_count: i64,
    /// Incidents each responder acknowledged, summed over the responders.
    pub total_incidents_acknowledged: i64,
}

/// One incident (`AnalyticsRawIncident`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RawIncident {
    pub id: String,
    pub incident_number: i64,
    /// The incident's title.
    pub description: String,
    pub status: String,
    pub urgency: String,
    pub major: bool,
    /// ISO 8601 in the request's `time_zone`.
    pub created_at: String,
    pub resolved_at: Option<String>,
    pub service_id: String,
    pub service_name: Option<String>,
    pub team_id: Option<String>,
    pub team_name: Option<String>,
    pub escalation_policy_id: Option<String>,
    pub escalation_policy_name: Option<String>,
    /// mttx keeps priorities by name only: always null.
    pub priority_id: Option<String>,
    pub priority_name: Option<String>,
    pub auto_resolved: bool,
    pub seconds_to_first_ack: Option<i64>,
    pub seconds_to_resolve: Option<i64>,
    pub seconds_to_mobilize: Option<i64>,
    pub seconds_to_engage: Option<i64>,
    pub engaged_user_count: i64,
    pub escalation_count: i64,
    pub manual_escalation_count: i64,
    pub timeout_escalation_count: i64,
    pub reassignment_count: i64,
    pub acknowledgement_count: i64,
    pub business_hour_interruptions: i64,
    pub off_hour_interruptions: i64,
    pub sleep_hour_interruptions: i64,
    pub total_interruptions: i64,
    pub total_notifications: i64,
    pub acknowledged_user_ids: Vec<String>,
    pub acknowledged_user_names: Vec<Option<String>>,
    pub assigned_user_ids: Vec<String>,
    pub assigned_user_names: Vec<Option<String>>,
}

impl RawIncident {
    /// An incident from its facts; `id` is PagerDuty's where an import gave one.
    pub fn new(f: &Fact, id: String, d: &Directory, tz: Tz) -> Self {
        let at = |t: chrono::DateTime<chrono::Utc>| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        };
        let users = |ids: &[i64]| -> (Vec<String>, Vec<Option<String>>) {
            ids.iter()
                .map(|u| {
                    (
                        d.outside_id(Kind::User, *u),
                        d.name(Kind::User, *u).map(str::to_owned),
                    )
                })
                .unzip()
        };
        let (acknowledged_user_ids, acknowledged_user_names) = users(&f.acknowledged_user_ids);
        let (assigned_user_ids, assigned_user_names) = users(&f.assigned_user_ids);
        Self {
            id,
            incident_number: f.incident_number,
            description: f.title.clone(),
            status: f.status.clone(),
            urgency: f.urgency.clone(),
            major: f.major,
            created_at: at(f.created_at),
            resolved_at: f.resolved_at.map(at),
            service_id: d.outside_id(Kind::Service, f.service_id),
            service_name: d.name(Kind::Service, f.service_id).map(str::to_owned),
            team_id: f.team_id.map(|t| d.outside_id(Kind::Team, t)),
            team_name: f
                .team_id
                .and_then(|t| d.name(Kind::Team, t))
                .map(str::to_owned),
            escalation_policy_id: f
                .escalation_policy_id
                .map(|p| d.outside_id(Kind::EscalationPolicy, p)),
            escalation_policy_name: f
                .escalation_policy_id
                .and_then(|p| d.name(Kind::EscalationPolicy, p))
                .map(str::to_owned),
            priority_id: None,
            priority_name: f.priority.clone(),
            auto_resolved: f.auto_resolved,
            seconds_to_first_ack: whole(f.seconds_to_first_ack),
            seconds_to_resolve: whole(f.seconds_to_resolve),
            seconds_to_mobilize: whole(f.seconds_to_mobilize),
            seconds_to_engage: whole(
                f.seconds_to_mobilize
                    .zip(f.seconds_to_first_ack)
                    .map(|(m, a)| m - a),
            ),
            engaged_user_count: f.acknowledged_user_ids.len() as i64,
            escalation_count: f.escalation_count,
            manual_escalation_count: f.manual_escalations,
            timeout_escalation_count: f.timeout_escalations,
            reassignment_count: f.reassignment_count,
            acknowledgement_count: f.ack_count,
            business_hour_interruptions: f.interruptions_business,
            off_hour_interruptions: f.interruptions_off_hours,
            sleep_hour_interruptions: f.interruptions_sleep,
            total_interruptions: f.interruptions,
            total_notifications: f.notification_count,
            acknowledged_user_ids,
            acknowledged_user_names,
            assigned_user_ids,
            assigned_user_names,
        }
    }
}
