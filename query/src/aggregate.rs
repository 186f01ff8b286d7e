//! The aggregate behind every report and trend. DataFusion reads the facts (partitions
//! pruned, filters pushed into the scan, only the columns needed); the rows are then folded
//! here into one [`Partial`] per label (period or bucket, from `created_at`) and group, in a
//! single pass over the Arrow arrays. A hash aggregate with `array_agg`, a CASE per label
//! and text keys cost more than this fold (BENCHMARKS.md). The metric math on partials is
//! in `metrics`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use deltalake::arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
use deltalake::datafusion::prelude::{DataFrame, Expr, cast, col, lit, when};

use crate::metrics::Partial;
use crate::{Engine, Error, Result, facts_err};

/// How rows are labelled by their `created_at`: label `i` holds the rows created before
/// `ends[i]` and at or after the previous end (the first: every row before `ends[0]`).
/// Rows at or after the last end are not counted.
pub(crate) struct Labels {
    pub(crate) names: Vec<String>,
    pub(crate) ends: Vec<i64>,
}

impl Labels {
    /// Labels by consecutive instants: `names[i]` ends at `ends[i]`.
    pub(crate) fn new(names: Vec<String>, ends: Vec<DateTime<Utc>>) -> Self {
        Labels {
            names,
            ends: ends.iter().map(DateTime::timestamp_micros).collect(),
        }
    }

    fn of(&self, micros: i64) -> Option<usize> {
        let i = self.ends.partition_point(|end| *end <= micros);
        (i < self.ends.len()).then_some(i)
    }
}

/// The columns the fold reads: the creation time, two durations, a flag, then integers.
const COLUMNS: [&str; 10] = [
    "created_at",
    "seconds_to_first_ack",
    "seconds_to_resolve",
    "auto_resolved",
    "escalation_count",
    "interruptions",
    "interruptions_business",
    "interruptions_off_hours",
    "interruptions_sleep",
    "notification_count",
];

/// The group of each row: the values of the group column, numbered as they appear.
#[derive(Default)]
struct Groups {
    ints: HashMap<Option<i64>, usize>,
    texts: HashMap<String, usize>,
    null_text: Option<usize>,
    keys: Vec<Option<String>>,
}

impl Groups {
    fn int(&mut self, v: Option<i64>) -> usize {
        let next = self.keys.len();
        *self.ints.entry(v).or_insert_with(|| {
            self.keys.push(v.map(|v| v.to_string()));
            next
        })
    }

    fn text(&mut self, v: Option<&str>) -> usize {
        let found = match v {
            Some(v) => self.texts.get(v).copied(),
            None => self.null_text,
        };
        if let Some(i) = found {
            return i;
        }
        let next = self.keys.len();
        self.keys.push(v.map(str::to_owned));
        match v {
            Some(v) => {
                self.texts.insert(v.to_owned(), next);
            }
            None => self.null_text = Some(next),
        }
        next
    }
}

impl Engine {
    /// The metrics of `df`'s incidents per label of `labels` and, with `group` (a column
    /// name), per value of that column: keyed by `[label]` or `[label, value]` (the value
    /// as text, None for NULL).
    pub(crate) async fn aggregate(
        &self,
        df: DataFrame,
        labels: &Labels,
        group: Option<&str>,
    ) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
        let mut columns: Vec<Expr> = COLUMNS.iter().map(|c| col(*c)).collect();
        if let Some(g) = group {
            columns.push(col(g));
        }
        let batches = df
            .select(columns)
            .map_err(facts_err("planning an aggregate"))?
            .collect()
            .await
            .map_err(facts_err("computing an aggregate"))?;
        partials(batches.iter().map(|b| (b, None)), labels, group)
    }

    /// The metrics of the incidents of `account` created in `period` that pass `predicate`,
    /// per label and group as [`Engine::aggregate`] gives them, from one [`Engine::read`].
    pub(crate) async fn aggregate_read(
        &self,
        account: i64,
        period: (DateTime<Utc>, DateTime<Utc>),
        predicate: Option<Expr>,
        labels: &Labels,
        group: Option<&str>,
    ) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
        let mut columns = COLUMNS.to_vec();
        columns.extend(group);
        let read = self.read(account, period, predicate, &columns).await?;
        partials(
            read.iter().map(|r| (&r.batch, Some(&r.rows))),
            labels,
            group,
        )
    }
}

/// The partials of the rows of `batches` (those a mask, when given, keeps) per label and,
/// with `group`, per value of that column.
fn partials<'a>(
    batches: impl Iterator<Item = (&'a RecordBatch, Option<&'a BooleanArray>)>,
    labels: &Labels,
    group: Option<&str>,
) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
    let mut groups = Groups::default();
    // partials[label][group]
    let mut partials: Vec<Vec<Partial>> = vec![Vec::new(); labels.names.len()];
    for (batch, rows) in batches {
        fold(batch, rows, labels, group, &mut groups, &mut partials)?;
    }
    let mut out = BTreeMap::new();
    for (label, row) in partials.into_iter().enumerate() {
        for (g, partial) in row.into_iter().enumerate() {
            if partial.incident_count == 0 {
                continue;
            }
            let mut key = vec![Some(labels.names[label].clone())];
            if group.is_some() {
                key.push(groups.keys[g].clone());
            }
            out.insert(key, partial);
        }
    }
    Ok(out)
}

/// A column of `b` cast to `to` (a table made before a column was added reads it as NULL of
/// another type).
fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| Error::Facts {
            doing: "reading an aggregate's column",
            source: format!("the facts have no column {name}").into(),
        })?
        .clone();
    if c.data_type() == to {
        return Ok(c);
    }
    deltalake::arrow::compute::cast(&c, to).map_err(facts_err("reading an aggregate's column"))
}

/// Adds the rows of `b` (those `rows` keeps, when given) to `partials`.
fn fold(
    b: &RecordBatch,
    rows: Option<&BooleanArray>,
    labels: &Labels,
    group: Option<&str>,
    groups: &mut Groups,
    partials: &mut [Vec<Partial>],
) -> Result<()> {
    let created = b
        .column_by_name("created_at")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| Error::Facts {
            doing: "reading an aggregate's column",
            source: "created_at is not a timestamp in microseconds".into(),
        })?;
    let float = |name| column(b, name, &DataType::Float64);
    let (ack, resolve) = (float("seconds_to_first_ack")?, float("seconds_to_resolve")?);
    let (ack, resolve): (&Float64Array, &Float64Array) = (
        ack.as_primitive::<Float64Type>(),
        resolve.as_primitive::<Float64Type>(),
    );
    let auto = column(b, "auto_resolved", &DataType::Boolean)?;
    let auto: &BooleanArray = auto.as_boolean();
    let ints: Vec<ArrayRef> = COLUMNS[4..]
        .iter()
        .map(|name| column(b, name, &DataType::Int64))
        .collect::<Result<_>>()?;
    let ints: Vec<&Int64Array> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
    let int = |i: usize, row: usize| (!ints[i].is_null(row)).then(|| ints[i].value(row));
    // The group of each row.
    let grouped = group.is_some();
    let int_key = |g: &str| {
        b.column_by_name(g)
            .is_some_and(|k| k.data_type() == &DataType::Int64)
    };
    let group: Vec<usize> = match group {
        None => vec![0; b.num_rows()],
        Some(g) if int_key(g) => {
            let k = column(b, g, &DataType::Int64)?;
            let k = k.as_primitive::<Int64Type>();
            (0..b.num_rows())
                .map(|r| groups.int((!k.is_null(r)).then(|| k.value(r))))
                .collect()
        }
        Some(g) => {
            let k = column(b, g, &DataType::Utf8)?;
            let k = k.as_string::<i32>();
            (0..b.num_rows())
                .map(|r| groups.text((!k.is_null(r)).then(|| k.value(r))))
                .collect()
        }
    };
    if !grouped && groups.keys.is_empty() {
        groups.keys.push(None);
    }
    for row in 0..b.num_rows() {
        if created.is_null(row) || rows.is_some_and(|r| !r.value(row)) {
            continue;
        }
        let Some(label) = labels.of(created.value(row)) else {
            continue;
        };
        let at = &mut partials[label];
        if at.len() <= group[row] {
            at.resize_with(groups.keys.len().max(group[row] + 1), Partial::default);
        }
        let p = &mut at[group[row]];
        p.incident_count += 1;
        if !ack.is_null(row) {
            p.acknowledged_count += 1;
            p.mtta.push(ack.value(row));
        }
        if !resolve.is_null(row) {
            p.resolved_count += 1;
            p.mttr.push(resolve.value(row));
        }
        if !auto.is_null(row) && auto.value(row) {
            p.auto_resolved_count += 1;
        }
        if int(0, row).is_some_and(|e| e > 0) {
            p.escalated_count += 1;
        }
        p.interruptions += int(1, row).unwrap_or(0);
        p.interruptions_business += int(2, row).unwrap_or(0);
        p.interruptions_off_hours += int(3, row).unwrap_or(0);
        p.interruptions_sleep += int(4, row).unwrap_or(0);
        p.notification_count += int(5, row).unwrap_or(0);
    }
    Ok(())
}

/// 1 where `c` holds, else 0 (NULL counts as 0): a condition to sum.
pub(crate) fn one(c: Expr) -> Expr {
    cast(
        when(c, lit(1_i64))
            .otherwise(lit(0_i64))
            .unwrap_or(lit(0_i64)),
        DataType::Int64,
    )
}

/// The integer in column `name` of `b` at `row` (None: no such column, or NULL).
pub(crate) fn int(b: &RecordBatch, name: &str, row: usize) -> Option<i64> {
    let c = b.column_by_name(name)?;
    let c = deltalake::arrow::compute::cast(c, &DataType::Int64).ok()?;
    let a = c.as_primitive_opt::<Int64Type>()?;
    (!a.is_null(row)).then(|| a.value(row))
}

/// The non-NULL numbers of list column `name` of `b` at `row`, as gathered.
pub(crate) fn values(b: &RecordBatch, name: &str, row: usize) -> Vec<f64> {
    b.column_by_name(name)
        .and_then(|c| c.as_list_opt::<i32>())
        .filter(|l| !l.is_null(row))
        .and_then(|l| {
            let values = l.value(row);
            values
                .as_primitive_opt::<Float64Type>()
                .map(|a| a.iter().flatten().collect())
        })
        .unwrap_or_default()
}
