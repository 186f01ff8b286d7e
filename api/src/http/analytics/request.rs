//! The request bodies of PagerDuty's Analytics API as PagerDuty's OpenAPI description
//! declares them (`AnalyticsModel`, `AnalyticsResponderFilter`, the raw-incidents body),
//! read strictly: an unknown field or a value of the wrong type is a 400 that names it.
//! [`Asked::selection`] turns one into the query engine's [`Selection`], translating
//! PagerDuty's ids (an import's) or ours into mttx's.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use mttx_query::{Selection, Unit};
use mttx_replica::{Directory, Kind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::error::bad;

/// The longest range one question may cover, as PagerDuty allows: one year (a leap year's).
pub const MAX_RANGE_DAYS: i64 = 366;
/// The range when a request names neither end: the 30 days up to now.
pub const DEFAULT_RANGE_DAYS: i64 = 30;

/// `high` or `low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    High,
    Low,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Urgency::High => "high",
            Urgency::Low => "low",
        }
    }
}

/// `asc` or `desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    Desc,
}

/// The time unit rows are split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateUnit {
    Day,
    Week,
    Month,
}

impl From<AggregateUnit> for Unit {
    fn from(u: AggregateUnit) -> Self {
        match u {
            AggregateUnit::Day => Unit::Day,
            AggregateUnit::Week => Unit::Week,
            AggregateUnit::Month => Unit::Month,
        }
    }
}

/// The incidents to aggregate (`AnalyticsModel.filters`). Ids are PagerDuty's for data
/// imported from PagerDuty, mttx's (as strings) otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentFilters {
    /// ISO 8601; incidents created before it are left out. Without an offset it is read in
    /// `time_zone`. Default: `created_at_end` − 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_start: Option<String>,
    /// ISO 8601; incidents created at or after it are left out. Default: now. At most one
    /// year after the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// Only major incidents (true) or none of them (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy_ids: Option<Vec<String>>,
    /// Not supported: mttx knows priorities by name; use `priority_names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_names: Option<Vec<String>>,
    /// At least this many acknowledgements (PagerDuty's spelling; `min_acknowledgements`
    /// is read too).
    #[serde(
        default,
        alias = "min_acknowledgements",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0)]
    pub min_ackowledgements: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub min_timeout_escalations: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub min_manual_escalations: Option<i64>,
}

/// The body of `POST /analytics/metrics/incidents/*` (`AnalyticsModel`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsRequest {
    #[serde(default)]
    pub filters: IncidentFilters,
    /// IANA (tzdata) zone of the buckets and of naive times. Default `Etc/UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Rows per day, week (ISO, from Monday) or month of `time_zone`; none: one row per
    /// group for the whole range.
    #[serde(default)]
    pub aggregate_unit: Option<AggregateUnit>,
    /// Default `asc`.
    #[serde(default)]
    pub order: Option<Order>,
    /// A numeric field of the rows (`total_incident_count`, `mean_seconds_to_resolve`, …);
    /// default: by name, then `range_start`.
    #[serde(default)]
    pub order_by: Option<String>,
}

/// The responders to aggregate (`AnalyticsResponderFilter.filters`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponderFilters {
    /// As `created_at_start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_range_start: Option<String>,
    /// As `created_at_end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_range_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// The incidents' teams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_ids: Option<Vec<String>>,
    /// The users counted (default: every user who acknowledged or was assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_ids: Option<Vec<String>>,
    /// Not supported: use `priority_names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_names: Option<Vec<String>>,
}

/// The body of `POST /analytics/metrics/responders/all` (`AnalyticsResponderFilter`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondersRequest {
    #[serde(default)]
    pub filters: ResponderFilters,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub order: Option<Order>,
    #[serde(default)]
    pub order_by: Option<String>,
}

/// The order of raw incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawOrderBy {
    CreatedAt,
    SecondsToResolve,
}

/// The body of `POST /analytics/raw/incidents`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    #[serde(default)]
    pub filters: IncidentFilters,
    /// A cursor of an earlier answer (its `last`): the page after it.
    #[serde(default)]
    pub starting_after: Option<String>,
    /// A cursor of an earlier answer (its `first`): the page before it.
    #[serde(default)]
    pub ending_before: Option<String>,
    /// 1 to 1000. Default 100.
    #[serde(default)]
    pub limit: Option<i64>,
    /// Default `desc`.
    #[serde(default)]
    pub order: Option<Order>,
    /// Default `created_at`.
    #[serde(default)]
    pub order_by: Option<RawOrderBy>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// A body read from JSON, with a 400 that says what is wrong. The body and its `filters`
/// must be JSON objects: serde would otherwise read an array as a struct, field by position.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let declared = |e: &dyn std::fmt::Display| {
        bad(format!(
            "the request body is not as PagerDuty's Analytics API declares it: {e}"
        ))
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(|e| bad(e.to_string()));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| declared(&e))?;
    let Some(fields) = value.as_object() else {
        return Err(declared(&"the body must be a JSON object"));
    };
    if fields.get("filters").is_some_and(|f| !f.is_object()) {
        return Err(declared(&"`filters` must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| declared(&e))
}

/// The zone of a request (default `Etc/UTC`).
pub fn zone(name: Option<&str>) -> Result<Tz, ApiError> {
    let name = name.unwrap_or("Etc/UTC");
    name.parse().map_err(|_| {
        bad(format!(
            "time_zone `{name}` is not a tzdata zone; use a name such as Etc/UTC or America/New_York"
        ))
    })
}

/// An instant as a request gives it: ISO 8601 with an offset, or a local date-time or date
/// read in `tz`.
fn instant(field: &str, text: &str, tz: Tz) -> Result<DateTime<Utc>, ApiError> {
    let at = read_instant(field, text, tz)?;
    if !mttx_query::YEARS.contains(&chrono::Datelike::year(&at)) {
        return Err(bad(format!(
            "filters.{field} `{text}` is out of range: ask for times in the years 1900 to 9999"
        )));
    }
    Ok(at)
}

fn read_instant(field: &str, text: &str, tz: Tz) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| {
            bad(format!(
                "filters.{field} `{text}` is not an ISO 8601 time; write it like 2026-01-01T00:00:00Z or 2026-01-01T00:00:00-05:00"
            ))
        })?;
    // A local time that clocks skip or repeat is read as PostgreSQL reads it.
    Ok(mttx_query::local_instant(tz, naive))
}

/// `[start, end)` from the two ends a request gives (either may be missing).
pub fn range(
    names: (&str, &str),
    start: Option<&str>,
    end: Option<&str>,
    tz: Tz,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let end = match end {
        Some(e) => instant(names.1, e, tz)?,
        None => Utc::now(),
    };
    let start = match start {
        Some(s) => instant(names.0, s, tz)?,
        None => end
            .checked_sub_signed(chrono::Duration::days(DEFAULT_RANGE_DAYS))
            .unwrap_or(end),
    };
    if end <= start {
        return Err(bad(format!(
            "filters.{} must be after filters.{} ({} is not after {})",
            names.1,
            names.0,
            end.to_rfc3339(),
            start.to_rfc3339()
        )));
    }
    if end - start > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(bad(format!(
            "filters.{} to filters.{} spans {} days; ask for at most one year ({MAX_RANGE_DAYS} days)",
            names.0,
            names.1,
            (end - start).num_days()
        )));
    }
    Ok((start, end))
}

/// Ids of one kind as ours: PagerDuty's (an import's) or ours as strings. An id this
/// account does not have selects nothing.
fn ids(d: &Directory, kind: Kind, outside: &Option<Vec<String>>) -> Option<Vec<i64>> {
    outside
        .as_ref()
        .map(|v| v.iter().filter_map(|o| d.inside_id(kind, o)).collect())
}

fn no_priority_ids(ids: &Option<Vec<String>>) -> Result<(), ApiError> {
    match ids {
        Some(v) if !v.is_empty() => Err(bad(
            "filters.priority_ids is not supported: mttx knows priorities by name; filter with priority_names (e.g. [\"P1\", \"P2\"])",
        )),
        _ => Ok(()),
    }
}

fn at_least(field: &str, n: Option<i64>) -> Result<Option<i64>, ApiError> {
    match n {
        Some(n) if n < 0 => Err(bad(format!("filters.{field} must be 0 or more, not {n}"))),
        n => Ok(n),
    }
}

impl IncidentFilters {
    /// The engine's selection for these filters.
    pub fn selection(&self, d: &Directory, tz: Tz) -> Result<Selection, ApiError> {
        no_priority_ids(&self.priority_ids)?;
        let (from, to) = range(
            ("created_at_start", "created_at_end"),
            self.created_at_start.as_deref(),
            self.created_at_end.as_deref(),
            tz,
        )?;
        let mut s = Selection::between(from, to);
        s.urgency = self.urgency.map(|u| u.as_str().to_owned());
        s.major = self.major;
        s.teams = ids(d, Kind::Team, &self.team_ids);
        s.services = ids(d, Kind::Service, &self.service_ids);
        s.escalation_policies = ids(d, Kind::EscalationPolicy, &self.escalation_policy_ids);
        s.priorities = self.priority_names.clone();
        s.min_acknowledgements = at_least("min_ackowledgements", self.min_ackowledgements)?;
        s.min_timeout_escalations =
            at_least("min_timeout_escalations", self.min_timeout_escalations)?;
        s.min_manual_escalations = at_least("min_manual_escalations", self.min_manual_escalations)?;
        Ok(s)
    }
}

impl ResponderFilters {
    /// The engine's selection for these filters.
    pub fn selection(&self, d: &Directory, tz: Tz) -> Result<Selection, ApiError> {
        no_priority_ids(&self.priority_ids)?;
        let (from, to) = range(
            ("date_range_start", "date_range_end"),
            self.date_range_start.as_deref(),
            self.date_range_end.as_deref(),
            tz,
        )?;
        let mut s = Selection::between(from, to);
        s.urgency = self.urgency.map(|u| u.as_str().to_owned());
        s.teams = ids(d, Kind::Team, &self.team_ids);
        s.responders = ids(d, Kind::User, &self.responder_ids);
        s.priorities = self.priority_names.clone();
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_wrong_types_are_named() {
        let e = parse::<MetricsRequest>(br#"{"filters": {"team": ["1"]}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `team`"), "{e}");
        let e = parse::<MetricsRequest>(br#"{"filters": {"major": "yes"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid type: string \"yes\", expected a boolean"),
            "{e}"
        );
        let e = parse::<MetricsRequest>(br#"{"aggregate_unit": "year"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `year`"), "{e}");
        assert!(parse::<MetricsRequest>(b"").is_ok());
        // serde alone reads arrays as structs, field by position.
        for body in [
            &br#"{"filters": [null, null]}"#[..],
            br#"{"filters": ["2026-01-01"]}"#,
            br#"[{}, null]"#,
            br#""filters""#,
        ] {
            let e = parse::<MetricsRequest>(body).unwrap_err().to_string();
            assert!(e.contains("must be a JSON object"), "{e}");
            let e = parse::<RawRequest>(body).unwrap_err().to_string();
            assert!(e.contains("must be a JSON object"), "{e}");
        }
        let r: MetricsRequest =
            parse(br#"{"filters": {"min_acknowledgements": 2}, "aggregate_unit": null}"#).unwrap();
        assert_eq!(r.filters.min_ackowledgements, Some(2));
    }

    #[test]
    fn ranges_read_offsets_and_local_times_and_refuse_backwards_or_long_ones() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let (s, e) = range(
            ("created_at_start", "created_at_end"),
            Some("2026-03-01T00:00:00"),
            Some("2026-03-09T00:00:00Z"),
            ny,
        )
        .unwrap();
        assert_eq!(s.to_rfc3339(), "2026-03-01T05:00:00+00:00");
        assert_eq!(e.to_rfc3339(), "2026-03-09T00:00:00+00:00");
        // 02:30 on 2026-03-08 does not exist in New York: read after the gap.
        let (s, _) = range(("a", "b"), Some("2026-03-08T02:30:00"), None, ny).unwrap();
        assert_eq!(s.to_rfc3339(), "2026-03-08T07:30:00+00:00");
        let e = range(("a", "b"), Some("2026-03-02"), Some("2026-03-01"), ny)
            .unwrap_err()
            .to_string();
        assert!(e.contains("filters.b must be after filters.a"), "{e}");
        let e = range(("a", "b"), Some("2025-01-01"), Some("2026-03-01"), ny)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ask for at most one year"), "{e}");
        let e = range(("a", "b"), Some("last week"), None, ny)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("filters.a `last week` is not an ISO 8601 time"),
            "{e}"
        );
    }
}
