//! The aggregate behind every report and trend: a DataFusion aggregate of the facts per
//! key (period, group, bucket), each row read back into a [`Partial`]. The metric math on
//! partials is in `metrics`.

use std::collections::BTreeMap;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Float64Type, Int64Type};
use deltalake::datafusion::functions_aggregate::expr_fn::{array_agg, count, sum};
use deltalake::datafusion::prelude::{DataFrame, Expr, cast, col, lit, when};

use crate::metrics::Partial;
use crate::{Engine, Result, facts_err};

impl Engine {
    /// The metrics of `df`'s incidents per combination of `keys` (text values; none: one
    /// row for all).
    pub(crate) async fn aggregate(
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
            let int = |name: &str, row: usize| int(b, name, row).unwrap_or(0);
            // The durations as gathered; Partial::metrics sorts them.
            let values = |name: &str, row: usize| values(b, name, row);
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
