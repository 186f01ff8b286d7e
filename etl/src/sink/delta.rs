//! The facts table: a Delta Lake table at any location deltalake can open (a local path now;
//! object-store URIs need only the matching deltalake feature), partitioned by account and
//! month. Every batch is one MERGE keyed by incident, committed together with the ETL's
//! progress: the progress rides in the same commit (commit metadata, plus the high-water
//! mark as a Delta application transaction), so facts and progress can never disagree.

use deltalake::datafusion::prelude::{SessionContext, col};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitProperties, TransactionError};
use deltalake::kernel::{StructType, Transaction};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use mttx_facts::{Fact, PARTITION_COLUMNS};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The application id of the ETL's Delta transactions.
pub const APP_ID: &str = "mttx-etl";
const PROGRESS_KEY: &str = "mttx.progress";
/// The rows of a data page of a compacted file (the writer checks it between batches, so a
/// page may hold part of a batch more): about a day of a busy account's incidents, so a
/// query of a period skips the pages outside it by their statistics.
const PAGE_ROWS: usize = 2048;

/// Whether a failed commit lost a race with another writer (worth redoing).
pub fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_),
        } | DeltaTableError::VersionAlreadyExists(_)
    )
}

/// Ids `lo..=hi` of the log not seen yet, first missed at UNIX second `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gap {
    pub lo: i64,
    pub hi: i64,
    pub since: i64,
}

impl Gap {
    /// How many ids the gap holds.
    pub fn len(&self) -> i64 {
        self.hi.saturating_sub(self.lo).saturating_add(1).max(0)
    }

    pub fn is_empty(&self) -> bool {
        self.hi < self.lo
    }
}

/// How far the ETL has read the replica's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Every entry id up to here has been folded, except the gaps.
    pub high_water: i64,
    /// Ids below `high_water` not seen yet (transactions still in flight when the range was
    /// read, or rolled back), as ranges with the UNIX second they were first missed.
    pub gaps: Vec<Gap>,
    /// Batches committed so far.
    pub batches: i64,
    pub metrics_version: i32,
}

impl Progress {
    /// The largest id with every id up to it folded: below the first awaited gap.
    pub fn complete_id(&self) -> i64 {
        self.gaps
            .iter()
            .map(|g| g.lo.saturating_sub(1))
            .min()
            .unwrap_or(self.high_water)
            .min(self.high_water)
    }
}

/// What one round of table upkeep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpkeepReport {
    pub files_compacted: u64,
    pub files_written: u64,
    pub compaction_skipped: bool,
    pub checkpoint_version: i64,
    pub log_files_removed: usize,
    pub files_vacuumed: usize,
    pub version: i64,
}

impl std::fmt::Display for UpkeepReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "compacted {} files into {}{}; checkpoint at version {}; {} expired log files and {} unreferenced data files removed; table version {}",
            self.files_compacted,
            self.files_written,
            if self.compaction_skipped {
                " (skipped: a writer committed first)"
            } else {
                ""
            },
            self.checkpoint_version,
            self.log_files_removed,
            self.files_vacuumed,
            self.version
        )
    }
}

/// The facts table.
#[derive(Debug)]
pub struct FactsTable {
    table: DeltaTable,
    uri: String,
}

pub(crate) fn delta_err(doing: &'static str) -> impl Fn(DeltaTableError) -> Error {
    move |source| Error::Facts {
        doing,
        source: Box::new(source),
    }
}

pub use mttx_facts::table_url;

/// One incident's team and durations, as the facts hold them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attribution {
    pub account_id: i64,
    pub incident_id: i64,
    pub team_id: Option<i64>,
    pub seconds_to_first_ack: Option<f64>,
    pub seconds_to_resolve: Option<f64>,
}

/// Deletes the whole table at `location`: every file under it (a local folder is removed).
/// Returns how many files were deleted; a location that holds nothing is not an error.
#[tracing::instrument(skip_all, fields(location), err)]
pub async fn delete_table(location: &str) -> Result<u64> {
    if !location.contains("://") {
        let path = std::path::Path::new(location);
        if !path.exists() {
            return Ok(0);
        }
        let files = walkdir_count(path);
        std::fs::remove_dir_all(path).map_err(|e| Error::Files {
            doing: "remove the folder",
            location: location.to_owned(),
            source: Box::new(e),
        })?;
        return Ok(files);
    }
    use deltalake::logstore::object_store::{ObjectStore as _, ObjectStoreExt as _};
    let table = DeltaTable::try_from_url(table_url(location)?)
        .await
        .map_err(delta_err("opening the facts table to delete it"))?;
    let store = table.object_store();
    let mut paths: Vec<_> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| Error::Files {
            doing: "list the files",
            location: location.to_owned(),
            source: Box::new(e),
        })?;
    // Data files first, the log last: an interrupted deletion leaves a table whose log
    // still says what it held (and the next drop finishes it).
    paths.sort_by_key(|p| p.as_ref().contains("_delta_log"));
    for p in &paths {
        store.delete(p).await.map_err(|e| Error::Files {
            doing: "delete a file",
            location: location.to_owned(),
            source: Box::new(e),
        })?;
    }
    Ok(paths.len() as u64)
}

/// Files under a folder, recursively (for the report of a deletion).
fn walkdir_count(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walkdir_count(&e.path()),
            _ => 1,
        })
        .sum()
}

/// The facts schema's columns `table` lacks (those added to the schema after it was made).
fn missing_columns(table: &DeltaTable) -> Result<Vec<deltalake::kernel::StructField>> {
    let schema: StructType = mttx_facts::schema()
        .as_ref()
        .try_into_kernel()
        .map_err(|e| Error::Arrow(Box::new(e)))?;
    let snapshot = table
        .snapshot()
        .map_err(delta_err("reading the facts table's schema"))?;
    let have = snapshot.schema();
    Ok(schema
        .fields()
        .filter(|f| have.field(f.name()).is_none())
        .cloned()
        .collect())
}

/// Adds to a table made before them the columns added to the facts schema since
/// ([`mttx_facts::ADDED_COLUMNS`]); its older rows read NULL there until `mttx reprocess`
/// folds them again. Another worker adding them at the same time is fine.
async fn add_missing_columns(mut table: DeltaTable, location: &str) -> Result<DeltaTable> {
    for _attempt in 0..5 {
        let missing = missing_columns(&table)?;
        if missing.is_empty() {
            return Ok(table);
        }
        let names: Vec<String> = missing.iter().map(|f| f.name().clone()).collect();
        match table.clone().add_columns().with_fields(missing).await {
            Ok(t) => {
                tracing::info!(
                    columns = names.join(", "),
                    "added the facts columns this table predates; its older rows read NULL there until `mttx reprocess` folds them again"
                );
                return Ok(t);
            }
            Err(e) => {
                tracing::info!(error = %e, "adding the facts columns conflicted; reading the table again");
                table = DeltaTable::try_from_url(table_url(location)?)
                    .await
                    .map_err(delta_err("opening the facts table"))?;
            }
        }
    }
    Err(Error::Conflict(format!(
        "could not add the new facts columns to {location}: other writers kept committing first"
    )))
}

impl FactsTable {
    /// Opens the table at `location`, creating it (empty, with the facts schema) if needed,
    /// and adding the columns an older table lacks.
    #[tracing::instrument(skip_all, fields(location), err)]
    pub async fn open(location: &str) -> Result<Self> {
        let url = table_url(location)?;
        let table = DeltaTable::try_from_url(url)
            .await
            .map_err(delta_err("opening the facts table"))?;
        let table = if table.version().is_some() {
            table
        } else {
            let schema: StructType = mttx_facts::schema()
                .as_ref()
                .try_into_kernel()
                .map_err(|e| Error::Arrow(Box::new(e)))?;
            let created = table
                .create()
                .with_columns(schema.fields().cloned())
                .with_partition_columns(PARTITION_COLUMNS)
                .with_table_name("incident_facts")
                .with_comment("mttx: one row per incident with its metrics")
                .await;
            match created {
                Ok(t) => t,
                // Another worker may have created it first: use theirs if so.
                Err(e) => {
                    let theirs = DeltaTable::try_from_url(table_url(location)?)
                        .await
                        .map_err(delta_err("opening the facts table"))?;
                    if theirs.version().is_none() {
                        return Err(delta_err("creating the facts table")(e));
                    }
                    tracing::debug!(error = %e, "the facts table was created concurrently");
                    theirs
                }
            }
        };
        let table = add_missing_columns(table, location).await?;
        Ok(Self {
            table,
            uri: location.to_owned(),
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn version(&self) -> i64 {
        self.table.version().map_or(-1, |v| v as i64)
    }

    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// Re-reads the table's log (another process may have committed).
    pub async fn refresh(&mut self) -> Result<()> {
        self.table
            .update_state()
            .await
            .map_err(delta_err("refreshing the facts table"))
    }

    /// The progress committed with the latest ETL batch; `None` for a fresh table. Falls back
    /// to the high-water mark of the application transaction (which survives log cleanup)
    /// with no gaps if the commit carrying the full progress has aged out of the log.
    pub async fn progress(&self) -> Result<Option<Progress>> {
        let infos: Vec<_> = self
            .table
            .history(Some(200))
            .try_collect()
            .await
            .map_err(delta_err("reading the facts table's history"))?;
        for info in infos {
            if let Some(v) = info.info.get(PROGRESS_KEY) {
                let p: Progress =
                    serde_json::from_value(v.clone()).map_err(|source| Error::Stored {
                        what: "ETL progress",
                        doing: "read",
                        source,
                    })?;
                return Ok(Some(p));
            }
        }
        let Some(state) = self.table.state.as_ref() else {
            return Ok(None);
        };
        let high_water = state
            .transaction_version(self.table.log_store().as_ref(), APP_ID)
            .await
            .map_err(delta_err("reading the ETL's transaction"))?;
        Ok(high_water.map(|h| Progress {
            high_water: h,
            ..Progress::default()
        }))
    }

    /// Upserts `facts` (keyed by account and incident) and records `progress`, in one commit.
    /// A commit conflict (another writer, or compaction, committed first) comes back as
    /// [`Error::Conflict`]: the caller re-reads the progress and redoes its batch.
    #[tracing::instrument(skip_all, fields(table = self.uri, facts = facts.len(), high_water = progress.high_water), err)]
    pub async fn commit(&mut self, facts: &[Fact], progress: &Progress) -> Result<()> {
        let batch = mttx_facts::to_batch(facts).map_err(|e| Error::Arrow(Box::new(e)))?;
        let ctx = SessionContext::new();
        let source = ctx
            .read_batch(batch)
            .map_err(|e| Error::Arrow(Box::new(e)))?;
        let names: Vec<String> = mttx_facts::schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let progress_json = serde_json::to_value(progress).map_err(|source| Error::Stored {
            what: "ETL progress",
            doing: "written",
            source,
        })?;
        let commit = CommitProperties::default()
            .with_metadata([(PROGRESS_KEY.to_owned(), progress_json)])
            .with_application_transaction(Transaction::new(APP_ID, progress.high_water))
            .with_max_retries(20);
        let set_all = names.clone();
        let insert_all = names;
        let merged = self
            .table
            .clone()
            .merge(
                source,
                col("t.account_id")
                    .eq(col("s.account_id"))
                    .and(col("t.incident_id").eq(col("s.incident_id"))),
            )
            .with_source_alias("s")
            .with_target_alias("t")
            .with_commit_properties(commit)
            .when_matched_update(|u| {
                set_all
                    .iter()
                    .fold(u, |u, c| u.update(c.as_str(), col(format!("s.{c}"))))
            })
            .map_err(delta_err("planning the facts merge"))?
            .when_not_matched_insert(|i| {
                insert_all
                    .iter()
                    .fold(i, |i, c| i.set(c.as_str(), col(format!("s.{c}"))))
            })
            .map_err(delta_err("planning the facts merge"))?
            .await;
        match merged {
            Ok((table, _metrics)) => {
                self.table = table;
                crate::metrics::get().commits.inc();
                Ok(())
            }
            Err(e) if is_conflict(&e) => {
                crate::metrics::get().commit_conflicts.inc();
                self.refresh().await?;
                Err(Error::Conflict(e.to_string()))
            }
            Err(e) => Err(delta_err("merging facts")(e)),
        }
    }

    /// The table's unique id (from its metadata); names its work in the lease table.
    pub fn table_id(&self) -> Result<String> {
        let snapshot = self
            .table
            .snapshot()
            .map_err(delta_err("reading the facts table's metadata"))?;
        Ok(snapshot.metadata().id().to_owned())
    }

    /// A table property (table metadata configuration).
    pub fn property(&self, key: &str) -> Option<String> {
        let snapshot = self.table.snapshot().ok()?;
        snapshot.metadata().configuration().get(key).cloned()
    }

    /// Sets a table property unless a concurrent writer set one first; returns the value the
    /// table holds afterwards (ours, or the winner's).
    #[tracing::instrument(skip_all, fields(table = self.uri, key), err)]
    pub async fn set_property_once(&mut self, key: &str, value: &str) -> Result<String> {
        for _attempt in 0..10 {
            if let Some(v) = self.property(key) {
                return Ok(v);
            }
            let set = self
                .table
                .clone()
                .set_tbl_properties()
                .with_properties([(key.to_owned(), value.to_owned())].into())
                // Our own keys are not Delta's: keep them without validation.
                .with_raise_if_not_exists(false)
                .await;
            match set {
                Ok(table) => self.table = table,
                Err(e) if is_conflict(&e) => {
                    tracing::debug!(error = %e, "setting a table property raced another writer");
                    self.reopen().await?;
                }
                Err(e) => return Err(delta_err("recording the backfill plan")(e)),
            }
        }
        Err(Error::Conflict(format!(
            "could not record the table property {key}: other writers kept committing first"
        )))
    }

    /// Loads the table afresh from its location.
    async fn reopen(&mut self) -> Result<()> {
        self.table = DeltaTable::try_from_url(table_url(&self.uri)?)
            .await
            .map_err(delta_err("opening the facts table"))?;
        Ok(())
    }

    /// Table upkeep: compacts small files (bin-packing to 128 MiB), writes a checkpoint of
    /// the log, removes expired log files, and deletes data files no longer referenced by any
    /// version younger than `retain` (and, when `retain` is an hour or more, files no commit
    /// ever referenced, such as those of a writer killed mid-write). A compaction that loses a race with a
    /// writer is skipped this time (the writer's commit matters more).
    #[tracing::instrument(skip_all, fields(table = self.uri), err)]
    pub async fn upkeep(&mut self, retain: std::time::Duration) -> Result<UpkeepReport> {
        let mut report = UpkeepReport::default();
        self.refresh().await?;
        let optimized = self
            .table
            .clone()
            .optimize()
            .with_target_size(std::num::NonZeroU64::MIN.saturating_add(128 * 1024 * 1024 - 1))
            // LZ4 (Parquet's LZ4_RAW) rather than compaction's default zstd or the ETL's
            // Snappy: a query opens a codec per column chunk it reads, and zstd's (a
            // compression and a decompression context each time) and its decoding cost
            // every report about a tenth of its CPU; Snappy's decompression was still the
            // largest part of an uncached answer's profile, and LZ4 takes about 11 % off
            // the answer's CPU for files of the same size (BENCHMARKS.md). DuckDB,
            // pyarrow, polars and Spark 3.4+ read it. Pages of about PAGE_ROWS rows, each
            // with its statistics in the page index: a compacted file holds a month, its
            // rows in blocks of creation time (the files it merged), and a query of a week
            // decodes only the pages whose times it asks for.
            .with_writer_properties(
                deltalake::parquet::file::properties::WriterProperties::builder()
                    .set_compression(deltalake::parquet::basic::Compression::LZ4_RAW)
                    .set_data_page_row_count_limit(PAGE_ROWS)
                    .build(),
            )
            .await;
        match optimized {
            Ok((table, metrics)) => {
                self.table = table;
                report.files_compacted = metrics.num_files_removed;
                report.files_written = metrics.num_files_added;
            }
            Err(e) if is_conflict(&e) => {
                crate::metrics::get().commit_conflicts.inc();
                report.compaction_skipped = true;
                self.refresh().await?;
            }
            Err(e) => return Err(delta_err("compacting the facts table")(e)),
        }
        deltalake::checkpoints::create_checkpoint(&self.table, None)
            .await
            .map_err(delta_err("writing a checkpoint"))?;
        report.checkpoint_version = self.version();
        report.log_files_removed = deltalake::checkpoints::cleanup_metadata(&self.table, None)
            .await
            .map_err(delta_err("removing expired log files"))?;
        // Files no commit mentions (left by a writer killed mid-write) are only removed with a
        // retention of an hour or more: younger ones may belong to a commit in progress.
        let mode = if retain >= std::time::Duration::from_secs(3600) {
            deltalake::operations::vacuum::VacuumMode::Full
        } else {
            deltalake::operations::vacuum::VacuumMode::Lite
        };
        let retention = chrono::Duration::from_std(retain).map_err(|_| Error::Retention(retain))?;
        let (table, metrics) = self
            .table
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(mode)
            .await
            .map_err(delta_err("removing unreferenced files"))?;
        self.table = table;
        report.files_vacuumed = metrics.files_deleted.len();
        report.version = self.version();
        crate::metrics::get().upkeeps.inc();
        Ok(report)
    }

    /// Each incident's attribution and durations (of one account, or all): what the dry run
    /// of a reprocess needs, read column by column and batch by batch (a few dozen bytes
    /// per incident instead of whole facts).
    #[tracing::instrument(skip_all, fields(table = self.uri, account), err)]
    pub async fn read_attributions(&self, account: Option<i64>) -> Result<Vec<Attribution>> {
        use deltalake::arrow::array::{Array as _, AsArray as _};
        use deltalake::arrow::datatypes::{Float64Type, Int64Type};
        use deltalake::datafusion::prelude::lit;
        let arrow = |e: deltalake::datafusion::error::DataFusionError| Error::Arrow(Box::new(e));
        let mut df = self.frame().await?;
        if let Some(a) = account {
            df = df.filter(col("account_id").eq(lit(a))).map_err(arrow)?;
        }
        let mut batches = df
            .select_columns(&[
                "account_id",
                "incident_id",
                "team_id",
                "seconds_to_first_ack",
                "seconds_to_resolve",
            ])
            .map_err(arrow)?
            .execute_stream()
            .await
            .map_err(arrow)?;
        let mut out = Vec::new();
        while let Some(b) = batches.try_next().await.map_err(arrow)? {
            let i64s = |i: usize| b.column(i).as_primitive::<Int64Type>();
            let f64s = |i: usize| b.column(i).as_primitive::<Float64Type>();
            let (account, incident, team) = (i64s(0), i64s(1), i64s(2));
            let (ack, resolve) = (f64s(3), f64s(4));
            let at = |a: &deltalake::arrow::array::PrimitiveArray<Float64Type>, r: usize| {
                a.is_valid(r).then(|| a.value(r))
            };
            for r in 0..b.num_rows() {
                out.push(Attribution {
                    account_id: account.value(r),
                    incident_id: incident.value(r),
                    team_id: team.is_valid(r).then(|| team.value(r)),
                    seconds_to_first_ack: at(ack, r),
                    seconds_to_resolve: at(resolve, r),
                });
            }
        }
        out.sort_by_key(|a| (a.account_id, a.incident_id));
        Ok(out)
    }

    /// The whole table as a DataFusion frame, to read from.
    async fn frame(&self) -> Result<deltalake::datafusion::prelude::DataFrame> {
        let ctx = SessionContext::new();
        self.table
            .update_datafusion_session(&ctx.state())
            .map_err(delta_err("preparing a facts read"))?;
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(|e| Error::Arrow(Box::new(e)))?;
        ctx.read_table(provider)
            .map_err(|e| Error::Arrow(Box::new(e)))
    }

    /// Every facts row (tests and small tables).
    pub async fn read_all(&self) -> Result<Vec<Fact>> {
        let df = self.frame().await?;
        let batches = df.collect().await.map_err(|e| Error::Arrow(Box::new(e)))?;
        let mut out = Vec::new();
        for b in &batches {
            out.extend(mttx_facts::from_batch(b).map_err(|e| Error::Arrow(Box::new(e)))?);
        }
        out.sort_by_key(|f| (f.account_id, f.incident_id));
        Ok(out)
    }
}
