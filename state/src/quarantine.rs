//! `quarantine`: bad input, one row per (incident, entry, reason), so writing the same batch
//! twice (a retry after a crash) keeps one row per problem. Orphans (entries whose incident
//! row is missing) are cleared once their incident appears and is folded.

use crate::dialect::dialect;
use crate::{Result, State, err};

/// One problem found in the input, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantined<'a> {
    pub account_id: i64,
    pub incident_id: i64,
    /// 0 when the problem is the incident's, not one entry's.
    pub entry_id: i64,
    pub reason: &'a str,
    pub detail: &'a str,
}

impl State {
    /// Upserts quarantine rows (one per incident, entry and reason), in one transaction.
    #[tracing::instrument(skip_all, fields(run, records = records.len()), err)]
    pub async fn quarantine(&self, run: i64, records: &[Quarantined<'_>]) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "INSERT INTO quarantine (account_id, incident_id, entry_id, reason, detail, run_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id, entry_id, reason) \
             DO UPDATE SET detail = excluded.detail, last_seen_at = {now}, run_id = excluded.run_id",
        );
        let doing = "writing quarantine records";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(err(doing))?;
            for r in records {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(r.account_id)
                    .bind(r.incident_id)
                    .bind(r.entry_id)
                    .bind(r.reason)
                    .bind(r.detail)
                    .bind(run)
                    .execute(&mut *tx)
                    .await
                    .map_err(err(doing))?;
            }
            tx.commit().await.map_err(err(doing))
        })
    }

    /// Quarantine counts by reason.
    #[tracing::instrument(skip_all, err)]
    pub async fn quarantine_counts(&self) -> Result<Vec<(String, i64)>> {
        const SQL: &str = "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason";
        on_pool!(&self.pool, p => sqlx::query_as(SQL).fetch_all(p).await)
            .map_err(err("counting quarantine records"))
    }

    /// Incidents quarantined as orphans (entries without an incident row) with ids above
    /// `after`, in id order (page through all of them by passing the last id seen).
    #[tracing::instrument(skip_all, fields(after, limit), err)]
    pub async fn orphan_incidents(&self, after: i64, limit: i64) -> Result<Vec<i64>> {
        let sql = dialect(
            &self.pool,
            "SELECT DISTINCT incident_id FROM quarantine WHERE reason = 'orphan' AND incident_id > $1 \
             ORDER BY incident_id LIMIT $2",
        );
        on_pool!(&self.pool, p => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(limit)
                .fetch_all(p)
                .await
                .map_err(err("reading orphan incidents"))
        })
    }

    /// Drops the orphan records of incidents whose row has appeared (they are folded now).
    #[tracing::instrument(skip_all, fields(incidents = incident_ids.len()), err)]
    pub async fn clear_orphans(&self, incident_ids: &[i64]) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "DELETE FROM quarantine WHERE reason = 'orphan' AND incident_id = $1",
        );
        let doing = "clearing orphan records";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(err(doing))?;
            for id in incident_ids {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err(doing))?;
            }
            tx.commit().await.map_err(err(doing))
        })
    }
}
