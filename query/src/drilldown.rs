//! The incidents behind the numbers: a drilldown (the incidents of a report's period and
//! filters, sorted, a page at a time), one incident by id, and when an account's latest
//! incident was created.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::{Float64Type, Int64Type};
use deltalake::datafusion::prelude::{DataFrame, cast, col, lit};

use crate::filters::{Cursor, SORT_KEY};
use crate::{Engine, Filters, Page, Period, Result, Selection, facts_err};

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
        let (from, to) = period.instants();
        let df = self.incidents(account, from, to, filters).await?;
        self.page_of(df, page, false).await
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
        let mut df = self
            .incidents(account, selection.from, selection.to, &Filters::default())
            .await?;
        if let Some(f) = selection.expr() {
            df = df.filter(f).map_err(facts_err("filtering facts"))?;
        }
        self.page_of(df, page, before).await
    }

    /// One page of `df`'s incidents in `page`'s order, or walking back from `page.after`
    /// (`reverse`: the order turned round, missing durations still last in `page`'s).
    async fn page_of(&self, df: DataFrame, page: &Page, reverse: bool) -> Result<Incidents> {
        let descending = page.descending != reverse;
        // Keys: the sort value (missing values sort last either way) and the incident id.
        let missing = page.missing_key();
        let mut df = df
            .with_column(SORT_KEY, page.sort_key())
            .map_err(facts_err("sorting incidents"))?;
        if let Some(cursor) = page.cursor()? {
            df = df
                .filter(cursor.beyond(descending))
                .map_err(facts_err("paging incidents"))?;
        }
        let asc = !descending;
        let batches = df
            .sort(vec![
                col(SORT_KEY).sort(asc, false),
                col("incident_id").sort(asc, false),
            ])
            .and_then(|d| d.limit(0, Some(page.limit + 1)))
            .map_err(facts_err("sorting incidents"))?
            .collect()
            .await
            .map_err(facts_err("reading incidents"))?;
        let mut facts = Vec::new();
        let mut keys = Vec::new();
        for b in &batches {
            facts.extend(mttx_facts::from_batch(b).map_err(facts_err("reading incidents"))?);
            if let Some(k) = b
                .column_by_name(SORT_KEY)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
            {
                keys.extend(k.iter().map(|v| v.unwrap_or(missing)));
            }
        }
        let next = if facts.len() > page.limit {
            facts.truncate(page.limit);
            facts
                .last()
                .zip(keys.get(page.limit.saturating_sub(1)))
                .map(|(f, &key)| {
                    Cursor {
                        key,
                        id: f.incident_id,
                    }
                    .to_string()
                })
        } else {
            None
        };
        Ok(Incidents { facts, next })
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
