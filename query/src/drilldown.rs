//! The incidents behind the numbers: a drilldown (the incidents of a report's period and
//! filters, sorted, a page at a time), one incident by id, and when an account's latest
//! incident was created.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::interleave_record_batch;
use deltalake::arrow::datatypes::Int64Type;
use deltalake::datafusion::prelude::{cast, col, lit};

use crate::engine::Read;
use crate::filters::Cursor;
use crate::{Engine, Error, Filters, Page, Period, Result, Selection, facts_err};

/// One page of incidents and the cursor of the next (None on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Incidents {
    pub facts: Vec<mttx_facts::Fact>,
    pub next: Option<String>,
}

impl Engine {
    /// The incidents behind a report's numbers: same period and filters, sorted, one page
    /// at a time (keyset paging: stable while new facts arrive).
    #[tracing::instrument(skip_all, err, fields(
        account = account,
        from = %period.from,
        to = %period.to,
        tz = %period.tz,
        sort = ?page.sort,
        descending = page.descending,
    ))]
    pub async fn drilldown(
        &self,
        account: i64,
        period: &Period,
        filters: &Filters,
        page: &Page,
    ) -> Result<Incidents> {
        let read = self
            .read(account, period.instants(), filters.expr(), &[])
            .await?;
        page_of(&read, page, false)
    }

    /// The incidents of an analytics [`Selection`], sorted, a page at a time: the raw
    /// incidents of PagerDuty's Analytics API. With `before`, the page is the one just
    /// before `page.after` in `page`'s order (given nearest first), and `next` says whether
    /// there are more before it.
    #[tracing::instrument(skip_all, err, fields(account = account, sort = ?page.sort))]
    pub async fn selected(
        &self,
        account: i64,
        selection: &Selection,
        page: &Page,
        before: bool,
    ) -> Result<Incidents> {
        let read = self
            .read(
                account,
                (selection.from, selection.to),
                selection.expr(),
                &[],
            )
            .await?;
        page_of(&read, page, before)
    }

    /// When the account's latest incident was created (None: it has none).
    #[tracing::instrument(skip_all, err, fields(account = account))]
    pub async fn latest(&self, account: i64) -> Result<Option<DateTime<Utc>>> {
        let batches = self
            .all_facts(account)?
            .aggregate(
                vec![],
                vec![
                    deltalake::datafusion::functions_aggregate::expr_fn::max(cast(
                        col("created_at"),
                        deltalake::arrow::datatypes::DataType::Int64,
                    ))
                    .alias("latest"),
                ],
            )
            .map_err(facts_err("finding the latest incident"))?
            .collect()
            .await
            .map_err(facts_err("finding the latest incident"))?;
        Ok(batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| {
                let a = b.column(0).as_primitive::<Int64Type>();
                (!a.is_null(0)).then(|| a.value(0))
            })
            .and_then(DateTime::from_timestamp_micros))
    }

    /// One incident's facts row, if it belongs to `account`.
    #[tracing::instrument(skip_all, err, fields(account = account, incident_id = incident_id))]
    pub async fn incident(
        &self,
        account: i64,
        incident_id: i64,
    ) -> Result<Option<mttx_facts::Fact>> {
        let batches = self
            .all_facts(account)?
            .filter(col("incident_id").eq(lit(incident_id)))
            .map_err(facts_err("finding an incident"))?
            .collect()
            .await
            .map_err(facts_err("finding an incident"))?;
        let mut rows = Vec::new();
        for b in &batches {
            rows.extend(mttx_facts::from_batch(b).map_err(facts_err("reading an incident"))?);
        }
        Ok(rows.into_iter().next())
    }
}

/// One page of the incidents `read` keeps, in `page`'s order, or walking back from
/// `page.after` (`reverse`: the order turned round, missing durations still last in
/// `page`'s). Ordered by the sort key (missing values last either way), then the incident
/// id: the page's rows are picked from the keys alone and only they are copied out.
fn page_of(read: &[Read], page: &Page, reverse: bool) -> Result<Incidents> {
    let descending = page.descending != reverse;
    let cursor = page.cursor()?;
    // (key, id, batch, row) of every incident in scope past the cursor.
    let mut picked: Vec<(f64, i64, usize, usize)> = Vec::new();
    for (i, r) in read.iter().enumerate() {
        let keys = page.keys(&r.batch)?;
        let ids = r
            .batch
            .column_by_name("incident_id")
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| Error::Facts {
                doing: "sorting incidents",
                source: "incident_id is not a 64-bit integer".into(),
            })?;
        for row in 0..r.batch.num_rows() {
            if !r.rows.value(row) || ids.is_null(row) {
                continue;
            }
            let (key, id) = (keys.value(row), ids.value(row));
            if cursor.is_none_or(|c| c.before(key, id, descending)) {
                picked.push((key, id, i, row));
            }
        }
    }
    let order = |a: &(f64, i64, usize, usize), b: &(f64, i64, usize, usize)| {
        let o = a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
        if descending { o.reverse() } else { o }
    };
    let want = page.limit + 1;
    if picked.len() > want {
        picked.select_nth_unstable_by(want - 1, order);
        picked.truncate(want);
    }
    picked.sort_unstable_by(order);
    let batches: Vec<&RecordBatch> = read.iter().map(|r| &r.batch).collect();
    let rows: Vec<(usize, usize)> = picked.iter().map(|p| (p.2, p.3)).collect();
    let mut facts = match batches.first() {
        Some(_) if !rows.is_empty() => {
            let batch =
                interleave_record_batch(&batches, &rows).map_err(facts_err("reading incidents"))?;
            mttx_facts::from_batch(&batch).map_err(facts_err("reading incidents"))?
        }
        _ => Vec::new(),
    };
    let next = if facts.len() > page.limit {
        facts.truncate(page.limit);
        picked
            .get(page.limit.saturating_sub(1))
            .map(|&(key, id, ..)| Cursor { key, id }.to_string())
    } else {
        None
    };
    Ok(Incidents { facts, next })
}
