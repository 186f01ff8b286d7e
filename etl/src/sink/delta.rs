//! The facts table: a Delta Lake table at any location deltalake can open (a local path now;
//! object-store URIs need only the matching deltalake feature), partitioned by account and
//! month. Every batch is one MERGE keyed by incident, committed together with the ETL's
//! progress: the progress rides in the same commit (commit metadata, plus the high-water
//! mark as a Delta application transaction), so facts and progress can never disagree.

use deltalake::datafusion::prelude::{SessionContext, col};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use mttx_facts::{Fact, PARTITION_COLUMNS};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The application id of the ETL's Delta transactions.
pub const APP_ID: &str = "mttx-etl";
const PROGRESS_KEY: &str = "mttx.progress";

/// How far the ETL has read the replica's log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Every entry id up to here has been folded, except the gaps.
    pub high_water: i64,
    /// Ids below `high_water` not seen yet (transactions still in flight when the range was
    /// read, or rolled back), with the UNIX second they were first missed.
    pub gaps: Vec<(i64, i64)>,
    /// Batches committed so far.
    pub batches: i64,
    pub metrics_version: i32,
}

/// The facts table.
#[derive(Debug)]
pub struct FactsTable {
    table: DeltaTable,
    uri: String,
}

fn delta_err(doing: &'static str) -> impl Fn(DeltaTableError) -> Error {
    move |source| Error::Facts {
        doing,
        source: Box::new(source),
    }
}

/// A location as deltalake wants it: a URL; plain paths become file URLs (the folder is
/// created).
pub fn table_url(location: &str) -> Result<url::Url> {
    if !location.contains("://") {
        std::fs::create_dir_all(location).map_err(|e| {
            Error::Config(format!("cannot create the facts folder {location}: {e}"))
        })?;
    }
    deltalake::ensure_table_uri(location)
        .map_err(|e| Error::Config(format!("--facts `{location}` is not a table location: {e}")))
}

impl FactsTable {
    /// Opens the table at `location`, creating it (empty, with the facts schema) if needed.
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
            table
                .create()
                .with_columns(schema.fields().cloned())
                .with_partition_columns(PARTITION_COLUMNS)
                .with_table_name("incident_facts")
                .with_comment("mttx: one row per incident with its metrics")
                .await
                .map_err(delta_err("creating the facts table"))?
        };
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
                let p: Progress = serde_json::from_value(v.clone()).map_err(|e| {
                    Error::Config(format!("unreadable ETL progress in the facts table: {e}"))
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
        let progress_json = serde_json::to_value(progress)
            .map_err(|e| Error::Config(format!("cannot encode the ETL progress: {e}")))?;
        let commit = CommitProperties::default()
            .with_metadata([(PROGRESS_KEY.to_owned(), progress_json)])
            .with_application_transaction(Transaction::new(APP_ID, progress.high_water))
            .with_max_retries(20);
        let set_all = names.clone();
        let insert_all = names;
        let (table, _metrics) = self
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
            .await
            .map_err(delta_err("merging facts"))?;
        self.table = table;
        Ok(())
    }

    /// Every facts row (tests and small tables).
    pub async fn read_all(&self) -> Result<Vec<Fact>> {
        let ctx = SessionContext::new();
        self.table
            .update_datafusion_session(&ctx.state())
            .map_err(delta_err("preparing a facts read"))?;
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(|e| Error::Arrow(Box::new(e)))?;
        let df = ctx
            .read_table(provider)
            .map_err(|e| Error::Arrow(Box::new(e)))?;
        let batches = df.collect().await.map_err(|e| Error::Arrow(Box::new(e)))?;
        let mut out = Vec::new();
        for b in &batches {
            out.extend(mttx_facts::from_batch(b).map_err(|e| Error::Arrow(Box::new(e)))?);
        }
        out.sort_by_key(|f| (f.account_id, f.incident_id));
        Ok(out)
    }
}
