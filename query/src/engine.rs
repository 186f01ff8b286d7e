//! The engine: one Delta facts table (a version of it) and one DataFusion session, named
//! by the facts generation and metrics version it serves. Every query starts here, from the
//! facts of one account (only its files are read) or its incidents of one period with the
//! filters applied.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, new_null_array};
use deltalake::arrow::compute::prep_null_mask_filter;
use deltalake::arrow::datatypes::{FieldRef, Schema};
use deltalake::datafusion::common::{DFSchema, ScalarValue};
use deltalake::datafusion::physical_plan::collect;
use deltalake::datafusion::prelude::{DataFrame, Expr, SessionContext, cast, col, lit, nullif};
use mttx_facts::{MetricsVersion, Versions};

use crate::files::FileIndex;
use crate::{Error, Filters, Result, facts_err};

/// The engine over one facts table (a clone answers from the same version until refreshed).
#[derive(Clone)]
pub struct Engine {
    table: DeltaTable,
    /// One session for every query: its runtime keeps Parquet metadata between queries.
    ctx: SessionContext,
    /// The version's live files by account and month.
    files: Arc<FileIndex>,
    /// The facts generation the table is, and the metrics version that made it (except
    /// the accounts reprocessed on their own, by another version).
    generation: i64,
    versions: Versions,
    /// How current the facts are, as the ETL recorded it (None: not recorded).
    data_as_of: Option<DateTime<Utc>>,
    /// The fewest values on either side for a verdict on a change.
    min_sample: usize,
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
    #[tracing::instrument(skip_all, err, fields(location = %location))]
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
        let files = Arc::new(FileIndex::of(&table, &ctx).await?);
        Ok(Self {
            table,
            ctx,
            files,
            generation: 0,
            versions: MetricsVersion::V1.into(),
            data_as_of: None,
            min_sample: crate::DEFAULT_MIN_SAMPLE,
        })
    }

    /// The table version the engine answers from.
    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    /// Names the facts generation this table is and the metrics version that made it,
    /// with the accounts made by another one (an engine opened on a bare table is
    /// generation 0, version 1).
    pub fn serving(mut self, generation: i64, versions: Versions) -> Self {
        self.generation = generation;
        self.versions = versions;
        self
    }

    /// The facts generation this engine reads.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The Delta table's own id (its metadata's), which names it in the state database.
    pub fn table_id(&self) -> Option<String> {
        let snapshot = self.table.snapshot().ok()?;
        Some(snapshot.metadata().id().to_owned())
    }

    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (None: not known).
    pub fn data_as_of(&self) -> Option<DateTime<Utc>> {
        self.data_as_of
    }

    /// States how current the facts are (what the ETL recorded for this table).
    pub fn set_data_as_of(&mut self, at: Option<DateTime<Utc>>) {
        self.data_as_of = at;
    }

    /// Sets the fewest values on either side of a change of a mean or percentile for a
    /// verdict other than `insufficient_data` (default [`crate::DEFAULT_MIN_SAMPLE`]).
    pub fn with_min_sample(mut self, n: usize) -> Self {
        self.min_sample = n;
        self
    }

    /// The fewest values for a verdict on a change.
    pub fn min_sample(&self) -> usize {
        self.min_sample
    }

    /// The metrics version of `account`'s facts in this engine's table.
    pub fn metrics_version(&self, account: i64) -> MetricsVersion {
        self.versions.of(account)
    }

    /// Moves to the table's newest version.
    #[tracing::instrument(skip_all, err, fields(generation = self.generation))]
    pub async fn refresh(&mut self) -> Result<()> {
        let before = self.table.version();
        self.table
            .update_state()
            .await
            .map_err(facts_err("refreshing the facts table"))?;
        if self.table.version() != before {
            self.files = Arc::new(FileIndex::of(&self.table, &self.ctx).await?);
        }
        Ok(())
    }

    /// The facts of `account` in the UTC months `first..=last` ("YYYY-MM", as the table is
    /// cut), read from those months' files only, in the table's column order. A table made
    /// before a column of [`mttx_facts::ADDED_COLUMNS`] (until the ETL adds it) reads NULL
    /// there.
    pub(crate) fn account_facts(&self, account: i64, first: &str, last: &str) -> Result<DataFrame> {
        let files = self.files.months(account, first, last);
        let columns: Vec<Expr> = self
            .files
            .table
            .fields()
            .iter()
            .map(|f| col(f.name()))
            .collect();
        let df = self
            .ctx
            .read_table(Arc::new(files))
            .and_then(|df| df.select(columns))
            .map_err(facts_err("preparing a query"))?;
        with_added_columns(df)
    }

    /// Every fact of `account`.
    pub(crate) fn all_facts(&self, account: i64) -> Result<DataFrame> {
        self.account_facts(account, "0000-01", "9999-12")
    }

    /// The incidents of `account` created in `[from, to)` that pass `filters`.
    pub(crate) async fn incidents(
        &self,
        account: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filters: &Filters,
    ) -> Result<DataFrame> {
        let (first, last) = months(from, to);
        self.account_facts(account, &first, &last)?
            .filter(in_period(from, to))
            .and_then(|df| match filters.expr() {
                Some(f) => df.filter(f),
                None => Ok(df),
            })
            .map_err(facts_err("filtering facts"))
    }
}

/// Rows read by [`Engine::read`]: a batch of the columns asked for and those the filters
/// use, and which of its rows are in scope (true: created in the period, passing the
/// filters).
pub(crate) struct Read {
    pub(crate) batch: RecordBatch,
    pub(crate) rows: BooleanArray,
}

impl Engine {
    /// The incidents of `account` created in `[from, to)` that pass `predicate`: `columns`
    /// of them (every column of the facts when empty). Planned here, without DataFusion's
    /// optimizer and planner (a query's shape is always the same: one scan of the months'
    /// files, row groups and pages skipped by their statistics, the predicate evaluated on
    /// what is read); planning each query afresh cost a drilldown about a third of its CPU
    /// and a breakdown about a fifth (BENCHMARKS.md).
    pub(crate) async fn read(
        &self,
        account: i64,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        predicate: Option<Expr>,
        columns: &[&str],
    ) -> Result<Vec<Read>> {
        let (first, last) = months(from, to);
        let files = self.files.months(account, &first, &last);
        let in_period = in_period(from, to);
        let scope = match predicate {
            Some(p) => in_period.clone().and(p),
            None => in_period.clone(),
        };
        // The columns to read: those asked for and those the scope uses; a column the table
        // lacks yet (one of ADDED_COLUMNS) is read as NULL.
        let scanned = files.schema().clone();
        let mut names: Vec<String> = if columns.is_empty() {
            let table = self.files.table.fields().iter().map(|f| f.name().as_str());
            let added = mttx_facts::ADDED_COLUMNS.into_iter();
            table.chain(added).map(str::to_owned).collect()
        } else {
            columns.iter().map(|c| (*c).to_owned()).collect()
        };
        for c in scope.column_refs() {
            names.push(c.name.clone());
        }
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        let facts = mttx_facts::schema();
        let mut projection = Vec::new();
        let mut absent = Vec::new();
        for name in &names {
            match scanned.index_of(name) {
                Ok(i) => projection.push(i),
                Err(_) if mttx_facts::ADDED_COLUMNS.contains(&name.as_str()) => absent.push(
                    facts
                        .field_with_name(name)
                        .map_err(facts_err("preparing a query"))?
                        .clone(),
                ),
                Err(_) => {
                    return Err(Error::Facts {
                        doing: "preparing a query",
                        source: format!("the facts have no column {name}").into(),
                    });
                }
            }
        }
        let state = self.ctx.state();
        let physical = |e: Expr, schema: &Schema| {
            let schema = DFSchema::try_from(schema.clone())?;
            state.create_physical_expr(e, &schema)
        };
        // Statistics prune by the whole scope unless it names a column the files lack.
        let prune = if absent.is_empty() {
            scope.clone()
        } else {
            in_period
        };
        let prune = physical(prune, &scanned).map_err(facts_err("preparing a query"))?;
        let plan = files
            .plan(&state, Some(&projection), Some(prune), None)
            .await
            .map_err(facts_err("preparing a query"))?;
        let mut fields: Vec<FieldRef> = plan.schema().fields().iter().cloned().collect();
        fields.extend(absent.into_iter().map(Arc::new));
        let schema = Arc::new(Schema::new(fields));
        let filter = physical(scope, &schema).map_err(facts_err("preparing a query"))?;
        let batches = collect(plan, self.ctx.task_ctx())
            .await
            .map_err(facts_err("reading facts"))?;
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let n = b.num_rows();
            let mut arrays = b.columns().to_vec();
            for f in schema.fields().iter().skip(arrays.len()) {
                arrays.push(new_null_array(f.data_type(), n));
            }
            let batch =
                RecordBatch::try_new(schema.clone(), arrays).map_err(facts_err("reading facts"))?;
            let rows = filter
                .evaluate(&batch)
                .and_then(|v| v.into_array(n))
                .map_err(facts_err("filtering facts"))?;
            let rows = rows.as_boolean_opt().ok_or_else(|| Error::Facts {
                doing: "filtering facts",
                source: "the filters are not a condition".into(),
            })?;
            let rows = if rows.null_count() > 0 {
                prep_null_mask_filter(rows)
            } else {
                rows.clone()
            };
            out.push(Read { batch, rows });
        }
        Ok(out)
    }
}

/// The incidents created in `[from, to)`.
fn in_period(from: DateTime<Utc>, to: DateTime<Utc>) -> Expr {
    col("created_at")
        .gt_eq(ts(from))
        .and(col("created_at").lt(ts(to)))
}

/// The UTC months ("YYYY-MM", as the table is cut) that `[from, to)` touches.
fn months(from: DateTime<Utc>, to: DateTime<Utc>) -> (String, String) {
    (
        from.format("%Y-%m").to_string(),
        (to - chrono::Duration::microseconds(1))
            .format("%Y-%m")
            .to_string(),
    )
}

/// `df` with the columns of [`mttx_facts::ADDED_COLUMNS`] it lacks, as NULL (a table made
/// before a column was added, until the ETL adds it).
fn with_added_columns(mut df: DataFrame) -> Result<DataFrame> {
    let schema = mttx_facts::schema();
    for name in mttx_facts::ADDED_COLUMNS {
        if df.schema().has_column_with_unqualified_name(name) {
            continue;
        }
        let field = schema
            .field_with_name(name)
            .map_err(facts_err("preparing a query"))?;
        // NULL computed from a column, not a literal: a filter on a literal-only column
        // would be pushed into the scan as a partition filter and not applied.
        let id = col("incident_id");
        let null = cast(nullif(id.clone(), id), field.data_type().clone());
        df = df
            .with_column(name, null)
            .map_err(facts_err("preparing a query"))?;
    }
    Ok(df)
}

/// An instant as a literal of the facts' `created_at` type.
pub(crate) fn ts(t: DateTime<Utc>) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(t.timestamp_micros()),
        Some(Arc::from("UTC")),
    ))
}
