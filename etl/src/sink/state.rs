//! mttx's own state database: run records and quarantined input. Quarantine rows are
//! upserted by (incident, entry, reason), so writing the same batch twice (a retry after a
//! crash) keeps one row per problem.

use mttx_migrations::{Location, Pool, Schema};

use crate::transform::fold::Issue;
use crate::{Error, Result};

/// The state database.
#[derive(Debug, Clone)]
pub struct State {
    pool: Pool,
}

fn err(doing: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::State { doing, source }
}

/// What one run did, for its record and summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub entries_read: i64,
    pub incidents_written: i64,
    pub quarantined: i64,
    pub facts_version: i64,
}

impl State {
    /// Opens (creating and migrating where needed) the state database.
    pub async fn open(location: &Location) -> Result<Self> {
        let options = mttx_migrations::ConnectOptions {
            application_name: "mttx-state".into(),
            max_connections: 2,
            create_sqlite: true,
        };
        let pool = mttx_migrations::connect(location, &options).await?;
        mttx_migrations::migrate(&pool, Schema::State, location).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Records the start of a run; returns its id.
    pub async fn start_run(&self, worker: &str, mode: &str, metrics_version: i32) -> Result<i64> {
        const SQL_PG: &str = "INSERT INTO etl_runs (worker_id, mode, metrics_version) VALUES ($1, $2, $3) RETURNING id";
        const SQL_LITE: &str =
            "INSERT INTO etl_runs (worker_id, mode, metrics_version) VALUES (?, ?, ?) RETURNING id";
        match &self.pool {
            Pool::Postgres(pg) => {
                sqlx::query_scalar(SQL_PG)
                    .bind(worker)
                    .bind(mode)
                    .bind(metrics_version)
                    .fetch_one(pg)
                    .await
            }
            Pool::Sqlite(lite) => {
                sqlx::query_scalar(SQL_LITE)
                    .bind(worker)
                    .bind(mode)
                    .bind(metrics_version)
                    .fetch_one(lite)
                    .await
            }
        }
        .map_err(err("recording the run"))
    }

    /// Records how a run ended.
    pub async fn finish_run(
        &self,
        run: i64,
        status: &str,
        counts: &RunCounts,
        error: Option<&str>,
    ) -> Result<()> {
        const SQL_PG: &str = "UPDATE etl_runs SET finished_at = now(), heartbeat_at = now(), status = $2, entries_read = $3, \
             incidents_written = $4, quarantined = $5, facts_version = $6, error = $7 WHERE id = $1";
        const SQL_LITE: &str = "UPDATE etl_runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \
             heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), status = ?2, entries_read = ?3, \
             incidents_written = ?4, quarantined = ?5, facts_version = ?6, error = ?7 WHERE id = ?1";
        match &self.pool {
            Pool::Postgres(pg) => sqlx::query(SQL_PG)
                .bind(run)
                .bind(status)
                .bind(counts.entries_read)
                .bind(counts.incidents_written)
                .bind(counts.quarantined)
                .bind(counts.facts_version)
                .bind(error)
                .execute(pg)
                .await
                .map(drop),
            Pool::Sqlite(lite) => sqlx::query(SQL_LITE)
                .bind(run)
                .bind(status)
                .bind(counts.entries_read)
                .bind(counts.incidents_written)
                .bind(counts.quarantined)
                .bind(counts.facts_version)
                .bind(error)
                .execute(lite)
                .await
                .map(drop),
        }
        .map_err(err("recording the end of the run"))
    }

    /// Upserts quarantine rows (one per incident, entry and reason).
    pub async fn quarantine(
        &self,
        run: i64,
        account_of: impl Fn(i64) -> i64,
        issues: &[Issue],
    ) -> Result<()> {
        const SQL_PG: &str = "INSERT INTO quarantine (account_id, incident_id, entry_id, reason, detail, run_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id, entry_id, reason) \
             DO UPDATE SET detail = EXCLUDED.detail, last_seen_at = now(), run_id = EXCLUDED.run_id";
        const SQL_LITE: &str = "INSERT INTO quarantine (account_id, incident_id, entry_id, reason, detail, run_id) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (incident_id, entry_id, reason) \
             DO UPDATE SET detail = excluded.detail, last_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), run_id = excluded.run_id";
        let doing = "writing quarantine records";
        match &self.pool {
            Pool::Postgres(pg) => {
                let mut tx = pg.begin().await.map_err(err(doing))?;
                for i in issues {
                    sqlx::query(SQL_PG)
                        .bind(account_of(i.incident_id))
                        .bind(i.incident_id)
                        .bind(i.entry_id)
                        .bind(i.reason.as_str())
                        .bind(&i.detail)
                        .bind(run)
                        .execute(&mut *tx)
                        .await
                        .map_err(err(doing))?;
                }
                tx.commit().await.map_err(err(doing))
            }
            Pool::Sqlite(lite) => {
                let mut tx = lite.begin().await.map_err(err(doing))?;
                for i in issues {
                    sqlx::query(SQL_LITE)
                        .bind(account_of(i.incident_id))
                        .bind(i.incident_id)
                        .bind(i.entry_id)
                        .bind(i.reason.as_str())
                        .bind(&i.detail)
                        .bind(run)
                        .execute(&mut *tx)
                        .await
                        .map_err(err(doing))?;
                }
                tx.commit().await.map_err(err(doing))
            }
        }
    }

    /// Quarantine counts by reason.
    pub async fn quarantine_counts(&self) -> Result<Vec<(String, i64)>> {
        const SQL: &str = "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason";
        match &self.pool {
            Pool::Postgres(pg) => sqlx::query_as(SQL).fetch_all(pg).await,
            Pool::Sqlite(lite) => sqlx::query_as(SQL).fetch_all(lite).await,
        }
        .map_err(err("counting quarantine records"))
    }
}
