//! The backfill's commits: blind appends to the facts table that never load its file list.
//!
//! A [`FactsTable`](super::delta::FactsTable) holds the table's whole state, every file's add
//! action with its statistics, and delta-rs replays it again at every commit. A backfill
//! commits once per range into a table that keeps growing, so each commit cost more than the
//! last and the worker's memory grew with the table (BENCHMARKS.md: 260 ranges of 1M entries
//! took 13 times the time of 3). An append needs none of it: it writes its Parquet files,
//! then one log entry with their add actions, the range's application transaction (its
//! exactly-once mark) and the commit metadata. What it reads of the log is a lazy Delta
//! kernel snapshot, which lists the log and reads protocol, metadata and application
//! transactions only. Appends never conflict with each other or with compaction, so a lost
//! race for a version only moves the entry to the next one, after checking that the range
//! is still not committed.

use std::sync::Arc;

use delta_kernel::{Engine, Snapshot, SnapshotRef};
use deltalake::kernel::transaction::{CommitData, TransactionError};
use deltalake::kernel::{Action, Transaction};
use deltalake::logstore::{CommitOrBytes, LogStore as _, LogStoreRef};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
use deltalake::{DeltaTableBuilder, DeltaTableError};
use mttx_facts::{Fact, PARTITION_COLUMNS};

use super::delta::delta_err;
use crate::{Error, Result};

/// Commit metadata of a backfill range's append.
const BACKFILL_KEY: &str = "mttx.backfill";
/// How many times an append moves to the next version when other writers took its own.
const MAX_VERSION_RACES: usize = 50;
/// Delta's default checkpoint interval, for a table that does not set `delta.checkpointInterval`.
const DEFAULT_CHECKPOINT_INTERVAL: u64 = 100;

fn kernel_err(doing: &'static str) -> impl Fn(delta_kernel::Error) -> Error {
    move |e| delta_err(doing)(DeltaTableError::from(e))
}

/// Runs a blocking kernel call (it reads the log through the engine) off the async workers.
async fn blocking<T: Send + 'static>(
    doing: &'static str,
    f: impl FnOnce() -> delta_kernel::DeltaResult<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::Worker)?
        .map_err(kernel_err(doing))
}

/// Columns whose values repeat from incident to incident within an account and month:
/// dictionary-encoded.
const DICTIONARY_COLUMNS: [&str; 7] = [
    "service_id",
    "escalation_policy_id",
    "team_id",
    "title",
    "urgency",
    "priority",
    "status",
];

/// The Parquet settings of an append's files: delta-rs's own (Snappy), but dictionaries only
/// for [`DICTIONARY_COLUMNS`]. A range's append writes a file per account and month it
/// touches, all open until the flush, and every dictionary-encoded column of each allocates
/// its dictionary's hash table (4,096 slots, about 70 KiB) up front: over 30 columns in 30 or
/// more files, about 200 MB of a two-worker backfill's peak heap (heaptrack, BENCHMARKS.md).
/// Incident ids, times, counts and durations gain little from a dictionary in files of one
/// account and month; `mttx etl upkeep` rewrites the files with its own settings anyway.
fn writer_properties() -> deltalake::parquet::file::properties::WriterProperties {
    use deltalake::parquet::{basic::Compression, schema::types::ColumnPath};
    DICTIONARY_COLUMNS
        .iter()
        .fold(
            deltalake::parquet::file::properties::WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_dictionary_enabled(false),
            |b, column| b.set_column_dictionary_enabled(ColumnPath::from(*column), true),
        )
        .build()
}

/// A writer of blind appends to the facts table at one location.
pub struct Appender {
    uri: String,
    url: url::Url,
    /// The table's root, ending with a slash (the kernel joins paths onto it).
    root: url::Url,
    log_store: LogStoreRef,
    engine: Arc<dyn Engine>,
    snapshot: SnapshotRef,
    /// The last application transaction found not committed, and the version it was checked
    /// at: checking it again reads only the commits made since, not the whole log's.
    checked: Option<(String, u64)>,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("uri", &self.uri)
            .field("version", &self.snapshot.version())
            .finish()
    }
}

impl Appender {
    /// Opens the table at `location`, which must exist (the backfill's planner makes it).
    #[tracing::instrument(skip_all, fields(location), err)]
    pub async fn open(location: &str) -> Result<Self> {
        let url = mttx_facts::table_url(location)?;
        let log_store = DeltaTableBuilder::from_url(url.clone())
            .and_then(|b| b.build_storage())
            .map_err(delta_err("opening the facts table"))?;
        let engine = log_store.engine(None);
        // The kernel joins paths onto the root: it must end with a slash.
        let mut root = log_store.root_url().clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let snapshot = {
            let (engine, root) = (engine.clone(), root.clone());
            blocking("reading the facts table's log", move || {
                Snapshot::builder_for(root).build(engine.as_ref())
            })
            .await?
        };
        Ok(Self {
            uri: location.to_owned(),
            url,
            root,
            log_store,
            engine,
            snapshot,
            checked: None,
        })
    }

    /// The table version this appender has read up to.
    pub fn version(&self) -> i64 {
        i64::try_from(self.snapshot.version()).unwrap_or(i64::MAX)
    }

    /// Reads the commits made since (by other workers and processes).
    pub async fn refresh(&mut self) -> Result<()> {
        let (engine, previous) = (self.engine.clone(), self.snapshot.clone());
        self.snapshot = blocking("reading the facts table's new commits", move || {
            Snapshot::builder_from(previous).build(engine.as_ref())
        })
        .await?;
        Ok(())
    }

    /// The version recorded by the application transaction `app_id`, if committed (in the
    /// log as last read: [`refresh`](Self::refresh) first).
    pub async fn txn_version(&mut self, app_id: &str) -> Result<Option<i64>> {
        let now = self.snapshot.version();
        let found = match &self.checked {
            // Not committed at `since`: only the commits made after it can hold it.
            Some((id, since)) if id == app_id && *since <= now => {
                match self.txn_in_commits(app_id, since + 1..=now).await? {
                    Some(found) => found,
                    None => self.replay_txn(app_id).await?,
                }
            }
            _ => self.replay_txn(app_id).await?,
        };
        self.checked = found.is_none().then(|| (app_id.to_owned(), now));
        Ok(found)
    }

    /// `app_id`'s application transaction, by the kernel's replay of the log since its last
    /// checkpoint.
    async fn replay_txn(&self, app_id: &str) -> Result<Option<i64>> {
        let (engine, snapshot, id) = (
            self.engine.clone(),
            self.snapshot.clone(),
            app_id.to_owned(),
        );
        blocking("reading an application transaction", move || {
            snapshot.get_app_id_version(&id, engine.as_ref())
        })
        .await
    }

    /// The version of `app_id`'s application transaction in the log entries `versions`;
    /// `None` if one of them is gone (cleaned up), so that only a replay can tell.
    async fn txn_in_commits(
        &self,
        app_id: &str,
        versions: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<Option<i64>>> {
        #[derive(serde::Deserialize)]
        struct Line {
            txn: Option<Txn>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Txn {
            app_id: String,
            version: i64,
        }
        let mut found = None;
        for v in versions {
            let Some(bytes) = self
                .log_store
                .read_commit_entry(v)
                .await
                .map_err(delta_err("reading the facts table's new commits"))?
            else {
                return Ok(None);
            };
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let line: Line = serde_json::from_slice(line).map_err(|source| Error::Stored {
                    what: "log entry",
                    doing: "read",
                    source,
                })?;
                if let Some(t) = line.txn.filter(|t| t.app_id == app_id) {
                    found = Some(t.version);
                }
            }
        }
        Ok(Some(found))
    }

    /// Appends `facts` as the one commit of the application transaction `app_id`. Returns
    /// false, writing nothing to the log, if that transaction is already committed (by this
    /// process before a crash, or by another worker): the work is done exactly once. Files
    /// written for an append that then finds its range committed are referenced by no
    /// commit; `mttx etl upkeep` removes them.
    #[tracing::instrument(skip_all, fields(table = self.uri, app_id, facts = facts.len()), err)]
    pub async fn append_once(
        &mut self,
        facts: &[Fact],
        app_id: &str,
        metadata: serde_json::Value,
    ) -> Result<bool> {
        self.refresh().await?;
        if self.txn_version(app_id).await?.is_some() {
            return Ok(false);
        }
        let adds = self.write_files(facts).await?;
        let data = CommitData::new(
            adds.into_iter().map(Action::Add).collect(),
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: Some(PARTITION_COLUMNS.iter().map(|c| (*c).to_owned()).collect()),
                predicate: None,
            },
            [(BACKFILL_KEY.to_owned(), metadata)].into(),
            vec![Transaction::new(app_id, 1)],
        );
        let bytes = data
            .get_bytes()
            .map_err(|e| delta_err("writing the append's log entry")(e.into()))?;
        for _race in 0..MAX_VERSION_RACES {
            let version = self.snapshot.version() + 1;
            let written = self
                .log_store
                .write_commit_entry(
                    version,
                    CommitOrBytes::LogBytes(bytes.clone()),
                    uuid::Uuid::new_v4(),
                )
                .await;
            match written {
                Ok(()) => {
                    crate::metrics::get().commits.inc();
                    // Committed whatever follows: a failure here only delays the checkpoint
                    // (the next one covers it) or the reading of the log (the next append's).
                    if let Err(e) = self.after_commit(version).await {
                        tracing::warn!(version, error = %e, "appended, but reading the log afterwards or writing its checkpoint failed");
                    }
                    return Ok(true);
                }
                Err(TransactionError::VersionAlreadyExists(_)) => {
                    crate::metrics::get().commit_conflicts.inc();
                    tracing::debug!(
                        app_id,
                        version,
                        "another writer took the version; appending after it"
                    );
                    self.refresh().await?;
                    if self.txn_version(app_id).await?.is_some() {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(delta_err("committing facts")(e.into())),
            }
        }
        Err(Error::Conflict(format!(
            "the facts append {app_id} lost the race for a log version {MAX_VERSION_RACES} times"
        )))
    }

    async fn after_commit(&mut self, version: u64) -> Result<()> {
        self.refresh().await?;
        self.checkpoint_if_due(version).await
    }

    /// Writes `facts` as Parquet files, one per account and month, with their statistics.
    async fn write_files(&self, facts: &[Fact]) -> Result<Vec<deltalake::kernel::Add>> {
        let batch = mttx_facts::to_batch(facts).map_err(|e| Error::Arrow(Box::new(e)))?;
        let mut writer = RecordBatchWriter::try_new(
            self.url.as_str(),
            mttx_facts::schema(),
            Some(PARTITION_COLUMNS.iter().map(|c| (*c).to_owned()).collect()),
            None,
        )
        .map_err(delta_err("preparing the facts files"))?
        .with_writer_properties(writer_properties());
        writer
            .write(batch)
            .await
            .map_err(delta_err("writing the facts files"))?;
        writer
            .flush()
            .await
            .map_err(delta_err("writing the facts files"))
    }

    /// Writes a checkpoint of `version` when it is the table's checkpoint interval's turn, as
    /// delta-rs does after its own commits: readers then replay at most that many commits.
    async fn checkpoint_if_due(&self, version: u64) -> Result<()> {
        let interval = self
            .snapshot
            .table_properties()
            .checkpoint_interval
            .map_or(DEFAULT_CHECKPOINT_INTERVAL, |n| n.get());
        if !(version + 1).is_multiple_of(interval) {
            return Ok(());
        }
        let (engine, snapshot, root) = (
            self.engine.clone(),
            self.snapshot.clone(),
            self.root.clone(),
        );
        let at = blocking("writing a checkpoint", move || {
            // Of our own version: another writer may have committed after it.
            let snapshot = if snapshot.version() == version {
                snapshot
            } else {
                Snapshot::builder_for(root)
                    .at_version(version)
                    .build(engine.as_ref())?
            };
            snapshot.checkpoint(engine.as_ref(), None)?;
            Ok(version)
        })
        .await?;
        tracing::debug!(version = at, "checkpoint written");
        Ok(())
    }
}
