//! `etl_runs`: one row per ETL run (worker, mode, metrics version), with how it ended and
//! what it did.

use crate::dialect::dialect;
use crate::{MetricsVersion, Result, State, err};

/// What one run did, for its record and summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub entries_read: i64,
    pub incidents_written: i64,
    pub quarantined: i64,
    pub facts_version: i64,
}

impl State {
    /// Records the start of a run; returns its id.
    #[tracing::instrument(skip_all, fields(worker, mode), err)]
    pub async fn start_run(
        &self,
        worker: &str,
        mode: &str,
        metrics_version: MetricsVersion,
    ) -> Result<i64> {
        let sql = dialect(
            &self.pool,
            "INSERT INTO etl_runs (worker_id, mode, metrics_version) VALUES ($1, $2, $3) RETURNING id",
        );
        on_pool!(&self.pool, p => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(worker)
                .bind(mode)
                .bind(metrics_version.number())
                .fetch_one(p)
                .await
                .map_err(err("recording the run"))
        })
    }

    /// Records how a run ended.
    #[tracing::instrument(skip_all, fields(run, status), err)]
    pub async fn finish_run(
        &self,
        run: i64,
        status: &str,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "UPDATE etl_runs SET finished_at = {now}, heartbeat_at = {now}, status = $2, entries_read = $3, \
             incidents_written = $4, quarantined = $5, facts_version = $6, error = $7 WHERE id = $1",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(run)
                .bind(status)
                .bind(counts.entries_read)
                .bind(counts.incidents_written)
                .bind(counts.quarantined)
                .bind(counts.facts_version)
                .bind(error)
                .execute(p)
                .await
                .map(drop)
                .map_err(err("recording the end of the run"))
        })
    }
}
