//! `facts_freshness`: how current each facts table is. The ETL records, after each commit,
//! the last log entry folded with no entry awaited below it: its id and the replica's
//! created time. The server states that time as `data_as_of` in its answers.

use chrono::{DateTime, Utc};

use crate::dialect::dialect;
use crate::{Result, State, err};

/// How current a facts table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Every log entry up to this id is folded (or was given up as never committed).
    pub complete_id: i64,
    /// The replica's created time of that entry (None: the log was empty).
    pub data_as_of: Option<DateTime<Utc>>,
}

impl State {
    /// Records how current the facts table `table_id` is. Never moves back: a slower worker
    /// that folded less does not undo a later record.
    #[tracing::instrument(skip_all, fields(table_id, complete_id = f.complete_id), err)]
    pub async fn set_freshness(&self, table_id: &str, f: Freshness) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "INSERT INTO facts_freshness (table_id, complete_id, data_as_of_us, updated_at) \
             VALUES ($1, $2, $3, {now}) ON CONFLICT (table_id) DO UPDATE SET \
             complete_id = excluded.complete_id, data_as_of_us = excluded.data_as_of_us, \
             updated_at = excluded.updated_at \
             WHERE facts_freshness.complete_id <= excluded.complete_id",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(table_id)
                .bind(f.complete_id)
                .bind(f.data_as_of.map(|t| t.timestamp_micros()))
                .execute(p)
                .await
                .map(|_| ())
                .map_err(err("recording how current the facts are"))
        })?;
        Ok(())
    }

    /// How current the facts table `table_id` is (None: no ETL has recorded it yet).
    pub async fn freshness(&self, table_id: &str) -> Result<Option<Freshness>> {
        let sql = dialect(
            &self.pool,
            "SELECT complete_id, data_as_of_us FROM facts_freshness WHERE table_id = $1",
        );
        let row: Option<(i64, Option<i64>)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(table_id)
                .fetch_optional(p)
                .await
                .map_err(err("reading how current the facts are"))
        })?;
        Ok(row.map(|(complete_id, us)| Freshness {
            complete_id,
            data_as_of: us.and_then(DateTime::from_timestamp_micros),
        }))
    }
}
