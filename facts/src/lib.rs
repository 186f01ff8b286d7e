//! The facts table: one row per incident with its metrics precomputed. [`Fact`] is the row
//! the ETL's fold makes; [`schema`] is its Arrow (and Delta) schema; [`to_batch`] and
//! [`from_batch`] convert between the two. The table is partitioned by `account_id` and
//! `month` (UTC `YYYY-MM` of `created_at`). [`MetricsVersion`] says which definitions made a
//! row, and [`table_url`] where a table lives.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int32Array,
    Int32Builder, Int64Array, Int64Builder, ListArray, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};

mod location;
mod version;

pub use location::{LocationError, OBJECT_STORES, table_url};
pub use version::{MetricsVersion, UnknownVersion, Versions};

pub type Ts = DateTime<Utc>;

/// One incident's facts (one row of the facts table). The definitions are documented on the
/// fold (`mttx_etl::transform::fold`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Fact {
    pub account_id: i64,
    pub incident_id: i64,
    pub incident_number: i64,
    pub service_id: i64,
    pub title: String,
    pub urgency: String,
    pub priority: Option<String>,
    pub major: bool,
    pub status: String,
    pub escalation_policy_id: Option<i64>,
    pub team_id: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Ts,
    pub created_at_from_incident_row: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Ts>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Ts>,
    pub seconds_to_first_ack: Option<f64>,
    pub seconds_to_resolve: Option<f64>,
    pub auto_resolved: bool,
    pub escalation_count: i64,
    pub timeout_escalations: i64,
    pub manual_escalations: i64,
    pub reassignment_count: i64,
    pub ack_count: i64,
    pub notification_count: i64,
    pub interruptions: i64,
    pub interruptions_business: i64,
    pub interruptions_off_hours: i64,
    pub interruptions_sleep: i64,
    pub seconds_to_mobilize: Option<f64>,
    pub acknowledged_user_ids: Vec<i64>,
    pub assigned_user_ids: Vec<i64>,
    pub unknown_entry_count: i64,
    pub metrics_version: i32,
    pub last_entry_id: i64,
    /// Times the incident was reopened: resolved, then moved on by a trigger,
    /// acknowledge, unacknowledge, assign, delegate, escalate or snooze (each open span after
    /// a resolve counts once). None: folded before reopenings were counted (a table made
    /// before them, until `mttx reprocess` folds its history again).
    pub reopen_count: Option<i64>,
    /// When the incident was resolved for the last time: the resolve that closed its last
    /// open span (None while open, including reopened and not resolved again).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub final_resolved_at: Option<Ts>,
}

impl Fact {
    /// The partition month: `YYYY-MM` of `created_at` in UTC.
    pub fn month(&self) -> String {
        self.created_at.format("%Y-%m").to_string()
    }
}

/// The partition columns, in order.
pub const PARTITION_COLUMNS: [&str; 2] = ["account_id", "month"];

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn id_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
}

/// The Arrow schema of the facts table.
pub fn schema() -> SchemaRef {
    use DataType::{Boolean, Float64, Int32, Int64, Utf8};
    let f = |name: &str, ty: DataType, nullable: bool| Field::new(name, ty, nullable);
    Arc::new(Schema::new(vec![
        f("account_id", Int64, false),
        f("month", Utf8, false),
        f("incident_id", Int64, false),
        f("incident_number", Int64, false),
        f("service_id", Int64, false),
        f("title", Utf8, false),
        f("urgency", Utf8, false),
        f("priority", Utf8, true),
        f("major", Boolean, false),
        f("status", Utf8, false),
        f("escalation_policy_id", Int64, true),
        f("team_id", Int64, true),
        f("created_at", ts_type(), false),
        f("created_at_from_incident_row", Boolean, false),
        f("acknowledged_at", ts_type(), true),
        f("resolved_at", ts_type(), true),
        f("seconds_to_first_ack", Float64, true),
        f("seconds_to_resolve", Float64, true),
        f("auto_resolved", Boolean, false),
        f("escalation_count", Int64, false),
        f("timeout_escalations", Int64, false),
        f("manual_escalations", Int64, false),
        f("reassignment_count", Int64, false),
        f("ack_count", Int64, false),
        f("notification_count", Int64, false),
        f("interruptions", Int64, false),
        f("interruptions_business", Int64, false),
        f("interruptions_off_hours", Int64, false),
        f("interruptions_sleep", Int64, false),
        f("seconds_to_mobilize", Float64, true),
        f("acknowledged_user_ids", id_list(), false),
        f("assigned_user_ids", id_list(), false),
        f("unknown_entry_count", Int64, false),
        f("metrics_version", Int32, false),
        f("last_entry_id", Int64, false),
        // Added after the first tables were made: nullable, and filled with NULL where an
        // older table lacks them (see ADDED_COLUMNS).
        f("reopen_count", Int64, true),
        f("final_resolved_at", ts_type(), true),
    ]))
}

/// Columns added to the schema after tables were made with it, in the order they were
/// added: the ETL adds them to an older table when it opens it, and readers of a table that
/// still lacks them read NULL.
pub const ADDED_COLUMNS: [&str; 2] = ["reopen_count", "final_resolved_at"];

fn micros(t: &Ts) -> i64 {
    t.timestamp_micros()
}

/// Facts rows as one Arrow batch in [`schema`] order.
pub fn to_batch(facts: &[Fact]) -> Result<RecordBatch, ArrowError> {
    let n = facts.len();
    let i64s = |get: &dyn Fn(&Fact) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(facts.iter().map(get)))
    };
    let opt_i64s = |get: &dyn Fn(&Fact) -> Option<i64>| -> ArrayRef {
        let mut b = Int64Builder::with_capacity(n);
        facts.iter().for_each(|f| b.append_option(get(f)));
        Arc::new(b.finish())
    };
    let strs = |get: &dyn Fn(&Fact) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        facts.iter().for_each(|f| b.append_option(get(f)));
        Arc::new(b.finish())
    };
    let bools = |get: &dyn Fn(&Fact) -> bool| -> ArrayRef {
        let mut b = BooleanBuilder::with_capacity(n);
        facts.iter().for_each(|f| b.append_value(get(f)));
        Arc::new(b.finish())
    };
    let floats = |get: &dyn Fn(&Fact) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::with_capacity(n);
        facts.iter().for_each(|f| b.append_option(get(f)));
        Arc::new(b.finish())
    };
    let times = |get: &dyn Fn(&Fact) -> Option<Ts>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        facts
            .iter()
            .for_each(|f| b.append_option(get(f).as_ref().map(micros)));
        Arc::new(b.finish())
    };
    let lists = |get: &dyn Fn(&Fact) -> &[i64]| -> ArrayRef {
        let mut b = ListBuilder::new(Int64Builder::new());
        for f in facts {
            b.values().append_slice(get(f));
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let months: Vec<String> = facts.iter().map(Fact::month).collect();
    let mut version = Int32Builder::with_capacity(n);
    facts
        .iter()
        .for_each(|f| version.append_value(f.metrics_version));
    let columns: Vec<ArrayRef> = vec![
        i64s(&|f| f.account_id),
        Arc::new(StringArray::from_iter_values(months.iter())),
        i64s(&|f| f.incident_id),
        i64s(&|f| f.incident_number),
        i64s(&|f| f.service_id),
        strs(&|f| Some(&f.title)),
        strs(&|f| Some(&f.urgency)),
        strs(&|f| f.priority.as_deref()),
        bools(&|f| f.major),
        strs(&|f| Some(&f.status)),
        opt_i64s(&|f| f.escalation_policy_id),
        opt_i64s(&|f| f.team_id),
        times(&|f| Some(f.created_at)),
        bools(&|f| f.created_at_from_incident_row),
        times(&|f| f.acknowledged_at),
        times(&|f| f.resolved_at),
        floats(&|f| f.seconds_to_first_ack),
        floats(&|f| f.seconds_to_resolve),
        bools(&|f| f.auto_resolved),
        i64s(&|f| f.escalation_count),
        i64s(&|f| f.timeout_escalations),
        i64s(&|f| f.manual_escalations),
        i64s(&|f| f.reassignment_count),
        i64s(&|f| f.ack_count),
        i64s(&|f| f.notification_count),
        i64s(&|f| f.interruptions),
        i64s(&|f| f.interruptions_business),
        i64s(&|f| f.interruptions_off_hours),
        i64s(&|f| f.interruptions_sleep),
        floats(&|f| f.seconds_to_mobilize),
        lists(&|f| &f.acknowledged_user_ids),
        lists(&|f| &f.assigned_user_ids),
        i64s(&|f| f.unknown_entry_count),
        Arc::new(version.finish()),
        i64s(&|f| f.last_entry_id),
        opt_i64s(&|f| f.reopen_count),
        times(&|f| f.final_resolved_at),
    ];
    RecordBatch::try_new(schema(), columns)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("facts column `{name}` is missing")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| ArrowError::SchemaError(format!("facts column `{name}` has another type")))
}

/// The batch with exactly the facts columns, each cast to its schema type (readers may
/// return other column orders, `Utf8View` strings or other list field names). A column of
/// [`ADDED_COLUMNS`] that the batch lacks is read as NULL.
pub fn normalize(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None if ADDED_COLUMNS.contains(&f.name().as_str()) => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
            None => Err(ArrowError::SchemaError(format!(
                "facts column `{}` is missing",
                f.name()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

/// Reads facts rows back from a batch (any column order; extra columns are ignored).
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<Fact>, ArrowError> {
    let batch = &normalize(batch)?;
    let i = |name| column::<Int64Array>(batch, name);
    let s = |name| column::<StringArray>(batch, name);
    let b = |name| column::<BooleanArray>(batch, name);
    let fl = |name| column::<Float64Array>(batch, name);
    let t = |name| column::<TimestampMicrosecondArray>(batch, name);
    let l = |name| column::<ListArray>(batch, name);
    let (account, incident, number, service) = (
        i("account_id")?,
        i("incident_id")?,
        i("incident_number")?,
        i("service_id")?,
    );
    let (title, urgency, priority, status) =
        (s("title")?, s("urgency")?, s("priority")?, s("status")?);
    let (policy, team) = (i("escalation_policy_id")?, i("team_id")?);
    let (created, acked, resolved) = (t("created_at")?, t("acknowledged_at")?, t("resolved_at")?);
    let final_resolved = t("final_resolved_at")?;
    let (tta, ttr, ttm) = (
        fl("seconds_to_first_ack")?,
        fl("seconds_to_resolve")?,
        fl("seconds_to_mobilize")?,
    );
    let (major, from_row, auto) = (
        b("major")?,
        b("created_at_from_incident_row")?,
        b("auto_resolved")?,
    );
    let counts = [
        i("escalation_count")?,
        i("timeout_escalations")?,
        i("manual_escalations")?,
        i("reassignment_count")?,
        i("ack_count")?,
        i("notification_count")?,
        i("interruptions")?,
        i("interruptions_business")?,
        i("interruptions_off_hours")?,
        i("interruptions_sleep")?,
        i("unknown_entry_count")?,
        i("last_entry_id")?,
        i("reopen_count")?,
    ];
    let (ackers, assignees) = (l("acknowledged_user_ids")?, l("assigned_user_ids")?);
    let version = column::<Int32Array>(batch, "metrics_version")?;
    let opt_i = |a: &Int64Array, r: usize| a.is_valid(r).then(|| a.value(r));
    let opt_f = |a: &Float64Array, r: usize| a.is_valid(r).then(|| a.value(r));
    let opt_t = |a: &TimestampMicrosecondArray, r: usize| {
        a.is_valid(r)
            .then(|| DateTime::from_timestamp_micros(a.value(r)))
            .flatten()
    };
    let ids = |a: &ListArray, r: usize| -> Vec<i64> {
        let v = a.value(r);
        v.as_any()
            .downcast_ref::<Int64Array>()
            .map(|x| x.values().to_vec())
            .unwrap_or_default()
    };
    (0..batch.num_rows())
        .map(|r| {
            Ok(Fact {
                account_id: account.value(r),
                incident_id: incident.value(r),
                incident_number: number.value(r),
                service_id: service.value(r),
                title: title.value(r).to_owned(),
                urgency: urgency.value(r).to_owned(),
                priority: priority.is_valid(r).then(|| priority.value(r).to_owned()),
                major: major.value(r),
                status: status.value(r).to_owned(),
                escalation_policy_id: opt_i(policy, r),
                team_id: opt_i(team, r),
                created_at: opt_t(created, r).ok_or_else(|| {
                    ArrowError::InvalidArgumentError("facts row without created_at".into())
                })?,
                created_at_from_incident_row: from_row.value(r),
                acknowledged_at: opt_t(acked, r),
                resolved_at: opt_t(resolved, r),
                seconds_to_first_ack: opt_f(tta, r),
                seconds_to_resolve: opt_f(ttr, r),
                auto_resolved: auto.value(r),
                escalation_count: counts[0].value(r),
                timeout_escalations: counts[1].value(r),
                manual_escalations: counts[2].value(r),
                reassignment_count: counts[3].value(r),
                ack_count: counts[4].value(r),
                notification_count: counts[5].value(r),
                interruptions: counts[6].value(r),
                interruptions_business: counts[7].value(r),
                interruptions_off_hours: counts[8].value(r),
                interruptions_sleep: counts[9].value(r),
                seconds_to_mobilize: opt_f(ttm, r),
                acknowledged_user_ids: ids(ackers, r),
                assigned_user_ids: ids(assignees, r),
                unknown_entry_count: counts[10].value(r),
                metrics_version: version.value(r),
                last_entry_id: counts[11].value(r),
                reopen_count: opt_i(counts[12], r),
                final_resolved_at: opt_t(final_resolved, r),
            })
        })
        .collect()
}

/// The `p` percentile of sorted values by linear interpolation between the closest ranks,
/// as PostgreSQL's `percentile_cont`: r = p·(n−1), x⌊r⌋ + (r−⌊r⌋)·(x⌈r⌉ − x⌊r⌋).
pub fn percentile_cont(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let r = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    let (a, b) = (sorted.get(lo)?, sorted.get(hi)?);
    Some(if lo == hi {
        *a
    } else {
        a + (r - r.floor()) * (b - a)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: i64) -> Fact {
        Fact {
            account_id: 1,
            incident_id: id,
            incident_number: id,
            service_id: 3,
            title: "t".into(),
            urgency: "high".into(),
            priority: (id % 2 == 0).then(|| "P1".into()),
            major: id % 2 == 0,
            status: "resolved".into(),
            escalation_policy_id: Some(4),
            team_id: None,
            created_at: DateTime::from_timestamp(1_761_300_000 + id, 123_000).unwrap_or_default(),
            created_at_from_incident_row: false,
            acknowledged_at: None,
            resolved_at: DateTime::from_timestamp(1_761_400_000, 0),
            seconds_to_first_ack: None,
            seconds_to_resolve: Some(12.5),
            auto_resolved: true,
            escalation_count: 2,
            timeout_escalations: 1,
            manual_escalations: 1,
            reassignment_count: 0,
            ack_count: 0,
            notification_count: 5,
            interruptions: 3,
            interruptions_business: 1,
            interruptions_off_hours: 1,
            interruptions_sleep: 1,
            seconds_to_mobilize: None,
            acknowledged_user_ids: vec![],
            assigned_user_ids: vec![1, 2],
            unknown_entry_count: 0,
            metrics_version: 1,
            last_entry_id: 99,
            reopen_count: (id % 2 == 0).then_some(id),
            final_resolved_at: DateTime::from_timestamp(1_761_500_000 + id, 0),
        }
    }

    #[test]
    fn facts_survive_a_round_trip_through_arrow() {
        let facts = vec![sample(1), sample(2)];
        let batch = to_batch(&facts).unwrap();
        assert_eq!(batch.schema(), schema());
        assert_eq!(from_batch(&batch).unwrap(), facts);
        assert_eq!(facts[0].month(), "2025-10");
    }

    #[test]
    fn a_batch_from_before_the_added_columns_reads_them_as_null() {
        let facts = vec![sample(1), sample(2)];
        let batch = to_batch(&facts).unwrap();
        let mut old = batch.clone();
        for name in ADDED_COLUMNS {
            let i = old.schema().index_of(name).unwrap();
            old.remove_column(i);
        }
        let read = from_batch(&old).unwrap();
        assert_eq!(read[1].reopen_count, None);
        assert_eq!(read[1].final_resolved_at, None);
        assert_eq!(read[1].last_entry_id, 99);
        old.remove_column(old.schema().index_of("title").unwrap());
        let err = from_batch(&old).unwrap_err().to_string();
        assert!(err.contains("`title` is missing"), "{err}");
    }
}
