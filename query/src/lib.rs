//! The query engine: DataFusion over the Delta facts table. Aggregates of DESIGN.md over the
//! incidents created in a period (in any IANA time zone), the previous period of equal
//! length with absolute and relative deltas, and breakdowns with the account-wide norm.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::{Float64Type, Int64Type};
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::functions_aggregate::expr_fn::{array_agg, count, sum};
use deltalake::datafusion::prelude::{DataFrame, Expr, SessionContext, cast, col, lit, when};
use serde::Serialize;

mod filters;
mod metrics;
pub mod noisy;
mod period;

pub use filters::{Filters, Page, Sort};
pub use metrics::{Compared, Metrics, Row};
pub use mttx_facts::percentile_cont;
pub use noisy::{Burst, Noise, Noisy, NoisyOptions};
pub use period::{Period, Unit};

use filters::{Cursor, SORT_KEY};
use metrics::Partial;
use period::local_midnight;

/// Errors of the query engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be answered as asked; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    #[error("facts table error while {doing}")]
    Facts {
        doing: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn facts_err<E: std::error::Error + Send + Sync + 'static>(
    doing: &'static str,
) -> impl Fn(E) -> Error {
    move |e| Error::Facts {
        doing,
        source: Box::new(e),
    }
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Team,
    Service,
    EscalationPolicy,
    Urgency,
    Priority,
    /// Each user who acknowledged the incident (an incident counts for each of them).
    Responder,
}

impl GroupBy {
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Team,
        GroupBy::Service,
        GroupBy::EscalationPolicy,
        GroupBy::Urgency,
        GroupBy::Priority,
        GroupBy::Responder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Team => "team",
            GroupBy::Service => "service",
            GroupBy::EscalationPolicy => "escalation_policy",
            GroupBy::Urgency => "urgency",
            GroupBy::Priority => "priority",
            GroupBy::Responder => "responder",
        }
    }

    fn column(self) -> &'static str {
        match self {
            GroupBy::Team => "team_id",
            GroupBy::Service => "service_id",
            GroupBy::EscalationPolicy => "escalation_policy_id",
            GroupBy::Urgency => "urgency",
            GroupBy::Priority => "priority",
            GroupBy::Responder => "acknowledged_user_ids",
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = GroupBy::ALL.iter().map(|g| g.name()).collect();
                Error::BadRequest(format!(
                    "unknown group_by `{s}`: use one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// One page of incidents and the cursor of the next (None on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Incidents {
    pub facts: Vec<mttx_facts::Fact>,
    pub next: Option<String>,
}

/// A report: the account-wide row (the norm), and with a breakdown one row per group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub account: Row,
    pub group_by: Option<GroupBy>,
    pub groups: Vec<Row>,
}

/// The engine over one facts table (a clone answers from the same version until refreshed).
#[derive(Clone)]
pub struct Engine {
    table: DeltaTable,
    /// One session for every query: its runtime keeps Parquet metadata between queries.
    ctx: SessionContext,
    /// The facts generation the table is, and the metrics version that made it (except
    /// the accounts reprocessed on their own, by another version).
    generation: i64,
    metrics_version: i32,
    account_versions: BTreeMap<i64, i32>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("table", &self.table)
            .field("session", &self.ctx.session_id())
            .finish()
    }
}

impl Engine {
    /// Opens the facts table at `location` (a path or a URL).
    pub async fn open(location: &str) -> Result<Self> {
        let url = deltalake::ensure_table_uri(location).map_err(facts_err("naming the table"))?;
        let table = DeltaTable::try_from_url(url)
            .await
            .map_err(facts_err("opening the facts table"))?;
        if table.version().is_none() {
            return Err(Error::BadRequest(format!(
                "{location} holds no facts table yet: run `mttx etl run` first"
            )));
        }
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(facts_err("preparing queries"))?;
        Ok(Self {
            table,
            ctx,
            generation: 0,
            metrics_version: 1,
            account_versions: BTreeMap::new(),
        })
    }

    /// The table version the engine answers from.
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    /// Names the facts generation this table is and the metrics version that made it,
    /// with the accounts made by another one (an engine opened on a bare table is
    /// generation 0, version 1).
    pub fn serving(
        mut self,
        generation: i64,
        metrics_version: i32,
        account_versions: BTreeMap<i64, i32>,
    ) -> Self {
        self.generation = generation;
        self.metrics_version = metrics_version;
        self.account_versions = account_versions;
        self
    }

    /// The facts generation this engine reads.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The metrics version of `account`'s facts in this engine's table.
    pub fn metrics_version(&self, account: i64) -> i32 {
        self.account_versions
            .get(&account)
            .copied()
            .unwrap_or(self.metrics_version)
    }

    /// Moves to the table's newest version.
    pub async fn refresh(&mut self) -> Result<()> {
        self.table
            .update_state()
            .await
            .map_err(facts_err("refreshing the facts table"))
    }

    async fn frame(&self) -> Result<(SessionContext, DataFrame)> {
        let ctx = self.ctx.clone();
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(facts_err("preparing a query"))?;
        let df = ctx
            .read_table(provider)
            .map_err(facts_err("preparing a query"))?;
        Ok((ctx, df))
    }

    /// The incidents of `account` created in `[from, to)`.
    async fn incidents(
        &self,
        account: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filters: &Filters,
    ) -> Result<DataFrame> {
        // The month partitions the period touches (UTC months, as the table is cut).
        let months = (
            from.format("%Y-%m").to_string(),
            (to - chrono::Duration::microseconds(1))
                .format("%Y-%m")
                .to_string(),
        );
        let (_, df) = self.frame().await?;
        df.filter(
            col("account_id")
                .eq(lit(account))
                .and(col("month").gt_eq(lit(months.0)))
                .and(col("month").lt_eq(lit(months.1)))
                .and(col("created_at").gt_eq(ts(from)))
                .and(col("created_at").lt(ts(to))),
        )
        .and_then(|df| match filters.expr() {
            Some(f) => df.filter(f),
            None => Ok(df),
        })
        .map_err(facts_err("filtering facts"))
    }

    /// The metrics of `df`'s incidents per `period` (a column), and per group when given.
    async fn metrics(
        &self,
        df: DataFrame,
        group: Option<GroupBy>,
    ) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
        let (df, keys) = match group {
            Some(GroupBy::Responder) => (
                df.unnest_columns(&["acknowledged_user_ids"])
                    .map_err(facts_err("listing responders"))?,
                vec![col("period"), col("acknowledged_user_ids")],
            ),
            Some(g) => (df, vec![col("period"), col(g.column())]),
            None => (df, vec![col("period")]),
        };
        self.aggregate(df, keys).await
    }

    /// The metrics of `df`'s incidents per combination of `keys` (text values; none: one
    /// row for all).
    async fn aggregate(
        &self,
        df: DataFrame,
        keys: Vec<Expr>,
    ) -> Result<BTreeMap<Vec<Option<String>>, Partial>> {
        let key_count = keys.len();
        let keys: Vec<Expr> = keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| {
                cast(k, deltalake::arrow::datatypes::DataType::Utf8).alias(format!("key{i}"))
            })
            .collect();
        let one = |c: Expr| {
            cast(
                when(c, lit(1_i64))
                    .otherwise(lit(0_i64))
                    .unwrap_or(lit(0_i64)),
                deltalake::arrow::datatypes::DataType::Int64,
            )
        };
        let aggregates = vec![
            count(lit(1_i64)).alias("incident_count"),
            count(col("seconds_to_first_ack")).alias("acknowledged_count"),
            count(col("seconds_to_resolve")).alias("resolved_count"),
            sum(one(col("auto_resolved"))).alias("auto_resolved_count"),
            sum(one(col("escalation_count").gt(lit(0_i64)))).alias("escalated_count"),
            // Percentiles are interpolated here, exactly as PostgreSQL's percentile_cont
            // (DataFusion's quantizes the interpolation weight to 1e-6).
            array_agg(col("seconds_to_first_ack")).alias("mtta_values"),
            array_agg(col("seconds_to_resolve")).alias("mttr_values"),
            sum(col("interruptions")).alias("interruptions"),
            sum(col("interruptions_business")).alias("interruptions_business"),
            sum(col("interruptions_off_hours")).alias("interruptions_off_hours"),
            sum(col("interruptions_sleep")).alias("interruptions_sleep"),
            sum(col("notification_count")).alias("notification_count"),
        ];
        let batches = df
            .aggregate(keys, aggregates)
            .map_err(facts_err("planning an aggregate"))?
            .collect()
            .await
            .map_err(facts_err("computing an aggregate"))?;
        let mut out = BTreeMap::new();
        for b in &batches {
            let int = |name: &str, row: usize| -> i64 {
                b.column_by_name(name)
                    .and_then(|c| {
                        let c = deltalake::arrow::compute::cast(
                            c,
                            &deltalake::arrow::datatypes::DataType::Int64,
                        )
                        .ok()?;
                        let a = c.as_primitive_opt::<Int64Type>()?;
                        (!a.is_null(row)).then(|| a.value(row))
                    })
                    .unwrap_or(0)
            };
            // The durations as gathered; Partial::metrics sorts them.
            let values = |name: &str, row: usize| -> Vec<f64> {
                b.column_by_name(name)
                    .and_then(|c| c.as_list_opt::<i32>())
                    .filter(|l| !l.is_null(row))
                    .map(|l| {
                        let values = l.value(row);
                        values
                            .as_primitive_opt::<Float64Type>()
                            .map(|a| a.iter().flatten().collect())
                            .unwrap_or_default()
                    })
                    .unwrap_or_default()
            };
            let keys: Vec<_> = (0..key_count)
                .map(|i| {
                    b.column_by_name(&format!("key{i}"))
                        .and_then(|k| k.as_string_opt::<i32>().cloned())
                })
                .collect();
            for row in 0..b.num_rows() {
                let key: Vec<Option<String>> = keys
                    .iter()
                    .map(|k| {
                        k.as_ref()
                            .and_then(|k| (!k.is_null(row)).then(|| k.value(row).to_owned()))
                    })
                    .collect();
                out.insert(
                    key,
                    Partial {
                        incident_count: int("incident_count", row),
                        acknowledged_count: int("acknowledged_count", row),
                        resolved_count: int("resolved_count", row),
                        auto_resolved_count: int("auto_resolved_count", row),
                        escalated_count: int("escalated_count", row),
                        mtta: values("mtta_values", row),
                        mttr: values("mttr_values", row),
                        interruptions: int("interruptions", row),
                        interruptions_business: int("interruptions_business", row),
                        interruptions_off_hours: int("interruptions_off_hours", row),
                        interruptions_sleep: int("interruptions_sleep", row),
                        notification_count: int("notification_count", row),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The report of `account` for `period` against the previous period, with a breakdown
    /// when `group_by` is given (each group beside the account-wide norm).
    pub async fn report(
        &self,
        account: i64,
        period: &Period,
        group_by: Option<GroupBy>,
        filters: &Filters,
    ) -> Result<Report> {
        // One read of both periods (the previous one ends where this one starts), each
        // incident labelled with its period.
        let (from, to) = period.instants();
        let (pfrom, _) = period.previous().instants();
        let df = self
            .incidents(account, pfrom, to, filters)
            .await?
            .with_column(
                "period",
                when(col("created_at").lt(ts(from)), lit("previous"))
                    .otherwise(lit("current"))
                    .map_err(facts_err("labelling periods"))?,
            )
            .map_err(facts_err("labelling periods"))?;
        let key = |p: &str, k: Option<String>| vec![Some(p.to_owned()), k];
        let mut by = match group_by {
            Some(g) => self.metrics(df.clone(), Some(g)).await?,
            None => BTreeMap::new(),
        };
        // Each incident is in exactly one group, except by responder (one per acknowledger,
        // none without): there the account total needs its own pass.
        let mut totals = match group_by {
            Some(g) if g != GroupBy::Responder => {
                let mut t: BTreeMap<Vec<Option<String>>, Partial> = BTreeMap::new();
                for (k, p) in &by {
                    t.entry(vec![k[0].clone()]).or_default().merge(p);
                }
                t
            }
            _ => self.metrics(df, None).await?,
        };
        let mut total = |p: &str| {
            totals
                .remove(&vec![Some(p.to_owned())])
                .unwrap_or_default()
                .metrics()
        };
        let account_row = Row {
            key: None,
            current: total("current"),
            previous: total("previous"),
        };
        let mut groups = Vec::new();
        if group_by.is_some() {
            let mut keys: Vec<Option<String>> = by.keys().map(|k| k[1].clone()).collect();
            keys.sort_by_key(natural);
            keys.dedup();
            for k in keys {
                let mut take =
                    |p: &str| by.remove(&key(p, k.clone())).unwrap_or_default().metrics();
                groups.push(Row {
                    current: take("current"),
                    previous: take("previous"),
                    key: k,
                });
            }
        }
        Ok(Report {
            account: account_row,
            group_by,
            groups,
        })
    }
}

impl Engine {
    /// The metrics of each `unit` bucket of the period (a trend), in one pass over the facts.
    pub async fn trend(
        &self,
        account: i64,
        period: &Period,
        unit: Unit,
        filters: &Filters,
    ) -> Result<Vec<(NaiveDate, Metrics)>> {
        let (from, to) = period.instants();
        let df = self.incidents(account, from, to, filters).await?;
        let buckets = period.buckets(unit);
        let at = |d: NaiveDate| ts(local_midnight(period.tz, d));
        // The bucket of each incident: the first whose end is after its creation.
        let mut chain: Option<
            deltalake::datafusion::logical_expr::conditional_expressions::CaseBuilder,
        > = None;
        for (start, end) in &buckets {
            let cond = col("created_at").lt(at(*end));
            let value = lit(start.to_string());
            chain = Some(match chain {
                None => when(cond, value),
                Some(mut c) => c.when(cond, value),
            });
        }
        let label: Option<Expr> = chain.and_then(|c| c.end().ok());
        let keys = label.map(|l| vec![l]).unwrap_or_default();
        let mut by = self.aggregate(df, keys).await?;
        Ok(buckets
            .iter()
            .map(|(start, _)| {
                (
                    *start,
                    by.remove(&vec![Some(start.to_string())])
                        .unwrap_or_default()
                        .metrics(),
                )
            })
            .collect())
    }

    /// The incidents behind a report's numbers: same period and filters, sorted, one page
    /// at a time (keyset paging: stable while new facts arrive).
    pub async fn drilldown(
        &self,
        account: i64,
        period: &Period,
        filters: &Filters,
        page: &Page,
    ) -> Result<Incidents> {
        let (from, to) = period.instants();
        let df = self.incidents(account, from, to, filters).await?;
        // Keys: the sort value (missing values sort last either way) and the incident id.
        let missing = page.missing_key();
        let mut df = df
            .with_column(SORT_KEY, page.sort_key())
            .map_err(facts_err("sorting incidents"))?;
        if let Some(cursor) = page.cursor()? {
            df = df
                .filter(cursor.beyond(page.descending))
                .map_err(facts_err("paging incidents"))?;
        }
        let asc = !page.descending;
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
            facts.last().zip(keys.get(page.limit - 1)).map(|(f, &key)| {
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

    /// One incident's facts row, if it belongs to `account`.
    /// When the account's latest incident was created (None: it has none).
    pub async fn latest(&self, account: i64) -> Result<Option<DateTime<Utc>>> {
        let (_, df) = self.frame().await?;
        let batches = df
            .filter(col("account_id").eq(lit(account)))
            .and_then(|df| {
                df.aggregate(
                    vec![],
                    vec![
                        deltalake::datafusion::functions_aggregate::expr_fn::max(cast(
                            col("created_at"),
                            deltalake::arrow::datatypes::DataType::Int64,
                        ))
                        .alias("latest"),
                    ],
                )
            })
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

    pub async fn incident(
        &self,
        account: i64,
        incident_id: i64,
    ) -> Result<Option<mttx_facts::Fact>> {
        let (_, df) = self.frame().await?;
        let batches = df
            .filter(
                col("account_id")
                    .eq(lit(account))
                    .and(col("incident_id").eq(lit(incident_id))),
            )
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

/// An instant as a literal of the facts' `created_at` type.
fn ts(t: DateTime<Utc>) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(t.timestamp_micros()),
        Some(Arc::from("UTC")),
    ))
}

/// Orders numeric keys as numbers, others as text, missing keys last.
fn natural(k: &Option<String>) -> (u8, i64, String) {
    match k {
        None => (2, 0, String::new()),
        Some(s) => match s.parse::<i64>() {
            Ok(n) => (0, n, String::new()),
            Err(_) => (1, 0, s.clone()),
        },
    }
}
