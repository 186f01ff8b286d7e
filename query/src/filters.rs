//! What a request selects and how a drilldown pages: [`Filters`] in, one DataFusion
//! predicate over the facts out; a [`Page`] in, the drilldown's sort key of each row and
//! the keyset position of its `after` [`Cursor`] out, and the cursor of the next page given
//! back.

use deltalake::arrow::array::{AsArray, Float64Array, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Float64Type};
use deltalake::datafusion::prelude::{Expr, col, lit};

use crate::{Error, Result};

/// Which incidents count: every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub team: Option<i64>,
    pub service: Option<i64>,
    pub escalation_policy: Option<i64>,
    /// A user among the incident's acknowledgers.
    pub responder: Option<i64>,
    pub urgency: Option<String>,
    pub priority: Option<String>,
    pub major: Option<bool>,
    /// Escalated at least once (true), or never (false).
    pub escalated: Option<bool>,
    /// One alert of the noisy-alerts view: titles with this [`crate::noisy::fingerprint`].
    pub alert: Option<String>,
    /// Woke someone up (an interruption in sleep hours) at least once, or never.
    pub interrupted_sleep: Option<bool>,
    /// Reopened at least once, or never (incidents folded before reopenings were counted
    /// match neither).
    pub reopened: Option<bool>,
}

impl Filters {
    /// The filters as one predicate over the facts (None: no filter given).
    pub(crate) fn expr(&self) -> Option<Expr> {
        let mut parts: Vec<Expr> = Vec::new();
        let mut id = |c: &str, v: Option<i64>| {
            if let Some(v) = v {
                parts.push(col(c).eq(lit(v)));
            }
        };
        id("team_id", self.team);
        id("service_id", self.service);
        id("escalation_policy_id", self.escalation_policy);
        if let Some(u) = &self.urgency {
            parts.push(col("urgency").eq(lit(u.clone())));
        }
        if let Some(p) = &self.priority {
            parts.push(col("priority").eq(lit(p.clone())));
        }
        if let Some(m) = self.major {
            parts.push(col("major").eq(lit(m)));
        }
        if let Some(e) = self.escalated {
            parts.push(col("escalation_count").gt(lit(0_i64)).eq(lit(e)));
        }
        if let Some(i) = self.interrupted_sleep {
            parts.push(col("interruptions_sleep").gt(lit(0_i64)).eq(lit(i)));
        }
        // Rows without a count (folded before reopenings were counted) match neither.
        match self.reopened {
            Some(true) => parts.push(col("reopen_count").gt(lit(0_i64))),
            Some(false) => parts.push(col("reopen_count").eq(lit(0_i64))),
            None => {}
        }
        if let Some(a) = &self.alert {
            parts.push(crate::noisy::fingerprint_expr(col("title")).eq(lit(a.clone())));
        }
        if let Some(r) = self.responder {
            parts.push(deltalake::datafusion::functions_nested::expr_fn::array_has(
                col("acknowledged_user_ids"),
                lit(r),
            ));
        }
        parts.into_iter().reduce(Expr::and)
    }
}

/// How the drilldown is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    CreatedAt,
    TimeToAck,
    TimeToResolve,
    /// The number of reopenings.
    Reopenings,
    /// The final resolve time.
    FinalResolve,
}

impl Sort {
    fn column(self) -> &'static str {
        match self {
            Sort::CreatedAt => "created_at",
            Sort::TimeToAck => "seconds_to_first_ack",
            Sort::TimeToResolve => "seconds_to_resolve",
            Sort::Reopenings => "reopen_count",
            Sort::FinalResolve => "final_resolved_at",
        }
    }
}

/// A drilldown request: `sort` (with `descending`) and keyset paging by `after`, the
/// `next` cursor of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub sort: Sort,
    pub descending: bool,
    pub limit: usize,
    pub after: Option<String>,
}

impl Page {
    /// The sort key of an incident without the sorted duration: last in either direction.
    pub(crate) fn missing_key(&self) -> f64 {
        if self.descending { f64::MIN } else { f64::MAX }
    }

    /// The sort value of each row of `batch` as a number (instants by their microseconds),
    /// [`Page::missing_key`] where it is missing; with the incident id it orders incidents
    /// totally, which keyset paging needs.
    pub(crate) fn keys(&self, batch: &RecordBatch) -> Result<Float64Array> {
        let name = self.sort.column();
        let bad = |e: String| Error::Facts {
            doing: "sorting incidents",
            source: format!("the sort column {name}: {e}").into(),
        };
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| bad("not read".to_owned()))?;
        let column = match self.sort {
            Sort::CreatedAt | Sort::FinalResolve => {
                cast(column, &DataType::Int64).map_err(|e| bad(e.to_string()))?
            }
            _ => column.clone(),
        };
        let values = cast(&column, &DataType::Float64).map_err(|e| bad(e.to_string()))?;
        let values = values.as_primitive::<Float64Type>();
        let missing = self.missing_key();
        Ok(values.iter().map(|v| Some(v.unwrap_or(missing))).collect())
    }

    /// The cursor of `fact`'s position in this order: `after` it, a page starts just past
    /// the incident.
    pub fn cursor_of(&self, fact: &mttx_facts::Fact) -> String {
        let key = match self.sort {
            Sort::CreatedAt => fact.created_at.timestamp_micros() as f64,
            Sort::TimeToAck => fact.seconds_to_first_ack.unwrap_or(self.missing_key()),
            Sort::TimeToResolve => fact.seconds_to_resolve.unwrap_or(self.missing_key()),
            Sort::Reopenings => fact.reopen_count.map_or(self.missing_key(), |n| n as f64),
            Sort::FinalResolve => fact
                .final_resolved_at
                .map_or(self.missing_key(), |t| t.timestamp_micros() as f64),
        };
        Cursor {
            key,
            id: fact.incident_id,
        }
        .to_string()
    }

    /// The position `after` names (None: the first page).
    pub(crate) fn cursor(&self) -> Result<Option<Cursor>> {
        self.after.as_deref().map(Cursor::parse).transpose()
    }
}

/// A position in a drilldown's order: the sort key and incident id of a page's last row,
/// given out as `{key}_{id}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cursor {
    pub(crate) key: f64,
    pub(crate) id: i64,
}

impl Cursor {
    fn parse(cursor: &str) -> Result<Self> {
        let bad = || {
            Error::BadRequest(format!(
                "`after` = `{cursor}` is not a cursor this API gave out"
            ))
        };
        let (key, id) = cursor.split_once('_').ok_or_else(bad)?;
        Ok(Self {
            key: key.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }

    /// Whether the incident of sort key `key` and id `id` comes after this position, in
    /// ascending or descending order.
    pub(crate) fn before(self, key: f64, id: i64, descending: bool) -> bool {
        let o = self.key.total_cmp(&key).then(self.id.cmp(&id));
        if descending { o.is_gt() } else { o.is_lt() }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.key, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(after: &str) -> Page {
        Page {
            sort: Sort::TimeToAck,
            descending: false,
            limit: 10,
            after: Some(after.to_owned()),
        }
    }

    #[test]
    fn cursors_read_back_what_they_wrote() {
        let c = Cursor { key: 12.5, id: 7 };
        assert_eq!(c.to_string(), "12.5_7");
        assert_eq!(page("12.5_7").cursor().ok().flatten(), Some(c));
        // A created_at key (microseconds) is written out in full, no exponent.
        let c = Cursor {
            key: 1_790_000_000_000_000.0,
            id: 42,
        };
        assert_eq!(c.to_string(), "1790000000000000_42");
        // The keys of missing durations survive the trip exactly.
        for key in [f64::MAX, f64::MIN] {
            let c = Cursor { key, id: -3 };
            assert_eq!(page(&c.to_string()).cursor().ok().flatten(), Some(c));
        }
        let first = Page {
            after: None,
            ..page("")
        };
        assert_eq!(first.cursor().ok(), Some(None));
    }

    #[test]
    fn foreign_cursors_say_what_is_wrong() {
        for bad in ["", "12", "x_7", "12_y", "12_7.5", "12_7_1"] {
            let e = page(bad).cursor().err().map(|e| e.to_string());
            let want = format!("`after` = `{bad}` is not a cursor this API gave out");
            assert_eq!(e, Some(want), "{bad}");
        }
    }

    #[test]
    fn a_page_goes_on_past_its_cursor_in_either_order() {
        let c = Cursor { key: 10.0, id: 5 };
        // Ascending: a larger key, or the same key and a larger id.
        assert!(c.before(11.0, 1, false));
        assert!(c.before(10.0, 6, false));
        assert!(!c.before(10.0, 5, false));
        assert!(!c.before(10.0, 4, false));
        assert!(!c.before(9.0, 9, false));
        // Descending: a smaller key, or the same key and a smaller id.
        assert!(c.before(9.0, 9, true));
        assert!(c.before(10.0, 4, true));
        assert!(!c.before(10.0, 5, true));
        assert!(!c.before(11.0, 1, true));
        // Missing durations come after every value either way.
        let last = Cursor { key: 1e9, id: 1 };
        assert!(last.before(f64::MAX, 0, false));
        assert!(Cursor { key: -1e9, id: 1 }.before(f64::MIN, 0, true));
    }

    #[test]
    fn sort_keys_are_numbers_with_missing_ones_last() {
        use deltalake::arrow::array::{Int64Array, TimestampMicrosecondArray};
        use deltalake::arrow::datatypes::{Field, Schema, TimeUnit};
        use std::sync::Arc;
        let schema = Schema::new(vec![
            Field::new("seconds_to_first_ack", DataType::Float64, true),
            Field::new("reopen_count", DataType::Int64, true),
            Field::new(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(vec![Some(2.5), None])),
                Arc::new(Int64Array::from(vec![None, Some(3)])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_790_000_000_000_001, 7])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let keys = |sort, descending| {
            let p = Page {
                sort,
                descending,
                ..page("")
            };
            p.keys(&batch).unwrap().values().to_vec()
        };
        assert_eq!(keys(Sort::TimeToAck, false), vec![2.5, f64::MAX]);
        assert_eq!(keys(Sort::TimeToAck, true), vec![2.5, f64::MIN]);
        assert_eq!(keys(Sort::Reopenings, false), vec![f64::MAX, 3.0]);
        assert_eq!(
            keys(Sort::CreatedAt, false),
            vec![1_790_000_000_000_001_f64, 7.0]
        );
        let e = Page {
            sort: Sort::FinalResolve,
            ..page("")
        }
        .keys(&batch);
        assert!(
            matches!(&e, Err(Error::Facts { source, .. }) if source.to_string().contains("final_resolved_at")),
            "{e:?}"
        );
    }

    #[test]
    fn missing_durations_sort_last_either_way() {
        let asc = page("");
        let desc = Page {
            descending: true,
            ..page("")
        };
        assert_eq!(asc.missing_key(), f64::MAX);
        assert_eq!(desc.missing_key(), f64::MIN);
    }
}
