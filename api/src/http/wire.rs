//! The JSON bodies the API answers with, and what they are made of: the report shapes
//! shared with the dashboard and the weekly report ([`crate::body`]), the facts and the
//! noisy view with names beside their ids ([`crate::named`]), and the replica's log
//! entries. The OpenAPI document's schemas are derived from these types.

use mttx_query::{GroupBy, Unit};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::body::{BucketBody, ComparedBody, PeriodBody, RowBody, period_body, row_body};
pub use crate::named::{NamedBurst, NamedFact, NamedNoise, NamedNoisy};
/// A log entry of an incident's timeline, as the replica holds it.
pub use mttx_replica::Entry;

/// An error: the status again and a message that says what to fix.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub status: u16,
    pub message: String,
}

/// A period report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportBody {
    pub account_id: i64,
    /// The account's name as the replica holds it now ("Account 1" where it holds none).
    pub account_name: String,
    pub period: PeriodBody,
    pub previous_period: PeriodBody,
    /// The facts table version the numbers come from.
    pub facts_version: i64,
    /// The facts generation the answer comes from (a reprocess builds a new one).
    pub generation: i64,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded it).
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// The metrics version of this account's facts in that generation: 1 attributes incidents to the escalation
    /// policy (and team) at trigger, 2 to the one they ended on.
    pub metrics_version: i32,
    pub total: RowBody,
    pub group_by: Option<GroupBy>,
    pub groups: Vec<RowBody>,
    pub unit: Option<Unit>,
    pub buckets: Option<Vec<BucketBody>>,
}

/// A page of incidents.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IncidentsBody {
    pub account_id: i64,
    pub facts_version: i64,
    /// The facts generation the answer comes from (a reprocess builds a new one).
    pub generation: i64,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded it).
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// The metrics version of this account's facts in that generation: 1 attributes incidents to the escalation
    /// policy (and team) at trigger, 2 to the one they ended on.
    pub metrics_version: i32,
    /// Each incident's facts with the names of its service, team, escalation policy and
    /// users beside their ids.
    pub incidents: Vec<NamedFact>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// One incident: its facts and its log entries in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetailBody {
    /// The facts with the names of its service, team, escalation policy and users.
    pub facts: NamedFact,
    /// The incident's log entries from the replica, ordered by (created_at, id); null when
    /// the server has no replica to read.
    #[schema(value_type = Option<Vec<Object>>)]
    pub timeline: Option<Vec<Entry>>,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded it).
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// The noisy-alerts view of a period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoisyBody {
    pub account_id: i64,
    pub period: PeriodBody,
    pub facts_version: i64,
    /// The facts generation the answer comes from (a reprocess builds a new one).
    pub generation: i64,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded it).
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// The metrics version of this account's facts in that generation: 1 attributes incidents to the escalation
    /// policy (and team) at trigger, 2 to the one they ended on.
    pub metrics_version: i32,
    /// The view, each service id with its name beside it.
    #[serde(flatten)]
    pub view: NamedNoisy,
}
