//! The facts table's live files by account and month, listed once per table version. A
//! query of one account's months scans only those files: the Delta provider would replay
//! the whole table's file list through the Delta kernel for every query (each file's JSON
//! statistics parsed again), a cost that grows with the table, not with the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use deltalake::datafusion::catalog::Session;
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::datasource::TableProvider;
use deltalake::datafusion::datasource::file_format::FileFormat;
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfigBuilder, ParquetSource,
};
use deltalake::datafusion::datasource::table_schema::TableSchemaBuilder;
use deltalake::datafusion::execution::object_store::ObjectStoreUrl;
use deltalake::datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use deltalake::datafusion::physical_plan::empty::EmptyExec;
use deltalake::datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::logstore::LogStore as _;

use crate::{Error, Result, facts_err};

/// The partition columns of the facts table, in the order files are keyed by.
const PARTITIONS: [&str; 2] = ["account_id", "month"];

/// The live files of one table version, by account and month.
#[derive(Debug)]
pub(crate) struct FileIndex {
    /// The columns a query sees, in the table's order.
    pub(crate) table: SchemaRef,
    /// The columns stored in the files (the table's but the partition columns), then the
    /// partition columns: the order of a scan's output.
    scanned: SchemaRef,
    file_schema: SchemaRef,
    partitions: Vec<FieldRef>,
    /// The table's object store, as registered in the engine's session.
    store: ObjectStoreUrl,
    /// (account, month) → each file with its partition values.
    files: BTreeMap<(i64, String), Vec<PartitionedFile>>,
}

impl FileIndex {
    /// Lists `table`'s live files (its loaded version's) and registers its object store in
    /// `ctx`, where the scans will find it.
    pub(crate) async fn of(table: &DeltaTable, ctx: &SessionContext) -> Result<Self> {
        let provider = table
            .table_provider()
            .await
            .map_err(facts_err("listing the facts files"))?;
        let table_schema = provider.schema();
        let partitions: Vec<FieldRef> = PARTITIONS
            .iter()
            .map(|name| {
                table_schema
                    .field_with_name(name)
                    .map(|f| Arc::new(f.clone()))
                    .map_err(facts_err("listing the facts files"))
            })
            .collect::<Result<_>>()?;
        let file_schema = Arc::new(Schema::new(
            table_schema
                .fields()
                .iter()
                .filter(|f| !PARTITIONS.contains(&f.name().as_str()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        let mut scanned: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        scanned.extend(partitions.iter().cloned());

        let log_store = table.log_store();
        let store = log_store.object_store_url();
        let runtime = ctx.runtime_env();
        if runtime.object_store(&store).is_err() {
            runtime.register_object_store(store.as_ref(), log_store.object_store(None));
        }

        let state = table
            .snapshot()
            .map_err(facts_err("listing the facts files"))?;
        let mut files: BTreeMap<(i64, String), Vec<PartitionedFile>> = BTreeMap::new();
        for view in state.log_data().iter() {
            let values = view.partition_values_map();
            let value = |i: usize| {
                values.get(PARTITIONS[i]).cloned().flatten().ok_or_else(|| {
                    bad_file(
                        &view.path(),
                        &format!("no {} partition value", PARTITIONS[i]),
                    )
                })
            };
            let (account, month) = (value(0)?, value(1)?);
            let key = (
                account
                    .parse::<i64>()
                    .map_err(|e| bad_file(&view.path(), &format!("account_id {account}: {e}")))?,
                month.clone(),
            );
            let mut file = PartitionedFile::new(String::new(), view.size().max(0) as u64);
            file.object_meta.location = view.object_store_path();
            file.partition_values = [account, month]
                .into_iter()
                .zip(&partitions)
                .map(|(v, field)| ScalarValue::try_from_string(v, field.data_type()))
                .collect::<std::result::Result<_, _>>()
                .map_err(facts_err("listing the facts files"))?;
            files.entry(key).or_default().push(file);
        }
        Ok(Self {
            table: table_schema,
            scanned: Arc::new(Schema::new(scanned)),
            file_schema,
            partitions,
            store,
            files,
        })
    }

    /// A table of `account`'s files of the months `first..=last` ("YYYY-MM").
    pub(crate) fn months(self: &Arc<Self>, account: i64, first: &str, last: &str) -> Files {
        let from = (account, first.to_owned());
        let to = (account, last.to_owned());
        let files = if from <= to {
            self.files
                .range(from..=to)
                .flat_map(|(_, f)| f.iter().cloned())
                .collect()
        } else {
            Vec::new()
        };
        Files {
            index: self.clone(),
            files,
        }
    }
}

fn bad_file(path: &str, what: &str) -> Error {
    Error::Facts {
        doing: "listing the facts files",
        source: format!("the facts file {path} has {what}").into(),
    }
}

/// Some files of the facts table, scanned as one table (its columns in scan order:
/// [`FileIndex`]'s `scanned`).
#[derive(Debug)]
pub(crate) struct Files {
    index: Arc<FileIndex>,
    files: Vec<PartitionedFile>,
}

#[async_trait]
impl TableProvider for Files {
    fn schema(&self) -> SchemaRef {
        self.index.scanned.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters are applied above the scan; the Parquet reader also uses them to skip row
    /// groups and pages by their statistics.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> deltalake::datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> deltalake::datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        self.plan(state, projection, None, limit).await
    }
}

impl Files {
    /// The scan of these files' `projection` (indices of the scanned schema), the Parquet
    /// reader skipping row groups and pages whose statistics rule `predicate` out (a
    /// predicate over the scanned schema; it is not applied to the rows).
    pub(crate) async fn plan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        limit: Option<usize>,
    ) -> deltalake::datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.index.scanned.project(p)?),
                None => self.index.scanned.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let options = state.table_options().parquet.clone();
        let mut source = ParquetSource::new(
            TableSchemaBuilder::new(self.index.file_schema.clone())
                .with_table_partition_cols(self.index.partitions.clone())
                .build(),
        )
        .with_table_parquet_options(options.clone());
        if let Some(p) = predicate {
            source = source.with_predicate(p);
        }
        // The files dealt round-robin into one group per target partition.
        let n = state
            .config()
            .target_partitions()
            .clamp(1, self.files.len());
        let mut groups = vec![Vec::new(); n];
        for (i, f) in self.files.iter().enumerate() {
            groups[i % n].push(f.clone());
        }
        let config = FileScanConfigBuilder::new(self.index.store.clone(), Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        ParquetFormat::default()
            .with_options(options)
            .create_physical_plan(state, config)
            .await
    }

    /// The columns a scan of these files gives (without a projection).
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.index.scanned
    }
}
