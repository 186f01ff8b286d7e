//! `worker_leases`: work held by one worker at a time. A lease's `fence` grows at every
//! change of owner, so every renewal and the final release only succeed for the current
//! holder; a holder that stops renewing (crashed) loses the lease when it expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::dialect::dialect;
use crate::{Error, Result, State, err};

/// A piece of work held by one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub fence: i64,
    pub payload: Option<serde_json::Value>,
}

fn payload(lease: &str, text: Option<String>) -> Result<Option<serde_json::Value>> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|source| Error::LeasePayload {
            lease: lease.to_owned(),
            source,
        })
}

impl State {
    /// Adds the named leases that do not exist yet (free, not done).
    #[tracing::instrument(skip_all, fields(leases = items.len()), err)]
    pub async fn add_leases(&self, items: &[(String, serde_json::Value)]) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "INSERT INTO worker_leases (name, payload) VALUES ($1, CAST($2 AS {json})) ON CONFLICT (name) DO NOTHING",
        );
        let doing = "adding work to the lease table";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(err(doing))?;
            for (name, value) in items {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(name)
                    .bind(value.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(err(doing))?;
            }
            tx.commit().await.map_err(err(doing))
        })
    }

    /// The payload of a lease and whether its work is done; `None` if there is no such lease.
    #[tracing::instrument(skip_all, fields(name), err)]
    pub async fn lease_info(
        &self,
        name: &str,
    ) -> Result<Option<(Option<serde_json::Value>, bool)>> {
        let sql = dialect(
            &self.pool,
            "SELECT CAST(payload AS TEXT), done_at IS NOT NULL FROM worker_leases WHERE name = $1",
        );
        let row: Option<(Option<String>, bool)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(name)
                .fetch_optional(p)
                .await
                .map_err(err("reading a lease"))?
        });
        row.map(|(p, done)| Ok((payload(name, p)?, done)))
            .transpose()
    }

    /// Takes one lease under `prefix` that is neither done nor held (or whose holder let it
    /// expire), in name order. `None` when there is none to take.
    #[tracing::instrument(skip_all, fields(prefix, owner), err)]
    pub async fn claim(&self, prefix: &str, owner: &str, ttl_s: i64) -> Result<Option<Lease>> {
        let skip_locked = match &self.pool {
            mttx_migrations::Pool::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            mttx_migrations::Pool::Sqlite(_) => "",
        };
        let sql = dialect(
            &self.pool,
            &format!(
                "UPDATE worker_leases SET owner = $2, fence = fence + 1, acquired_at = {{now}}, expires_at = {{now+$3}} \
                 WHERE name = (SELECT name FROM worker_leases WHERE name LIKE $1 AND done_at IS NULL \
                   AND (owner IS NULL OR expires_at < {{now}}) ORDER BY name LIMIT 1 {skip_locked}) \
                 AND done_at IS NULL AND (owner IS NULL OR expires_at < {{now}}) \
                 RETURNING name, fence, CAST(payload AS TEXT)"
            ),
        );
        self.take(&sql, &format!("{prefix}%"), owner, ttl_s).await
    }

    /// Runs a claiming UPDATE (parameters: key, owner, ttl) that returns the lease taken.
    async fn take(&self, sql: &str, key: &str, owner: &str, ttl_s: i64) -> Result<Option<Lease>> {
        let row: Option<(String, i64, Option<String>)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(key)
                .bind(owner)
                .bind(ttl_s)
                .fetch_optional(p)
                .await
                .map_err(err("claiming work"))?
        });
        row.map(|(name, fence, p)| {
            let payload = payload(&name, p)?;
            Ok(Lease {
                name,
                fence,
                payload,
            })
        })
        .transpose()
    }

    /// Takes the named lease if it is free, expired or already ours (creating it if needed).
    #[tracing::instrument(skip_all, fields(name, owner), err)]
    pub async fn claim_named(&self, name: &str, owner: &str, ttl_s: i64) -> Result<Option<Lease>> {
        self.add_leases(&[(name.to_owned(), serde_json::Value::Null)])
            .await?;
        let sql = dialect(
            &self.pool,
            "UPDATE worker_leases SET fence = CASE WHEN owner = $2 THEN fence ELSE fence + 1 END, \
               owner = $2, acquired_at = {now}, expires_at = {now+$3}, done_at = NULL \
             WHERE name = $1 AND (owner IS NULL OR owner = $2 OR expires_at < {now}) \
             RETURNING name, fence, CAST(payload AS TEXT)",
        );
        self.take(&sql, name, owner, ttl_s).await
    }

    /// Extends a held lease; false if it has been taken over (the holder must stop).
    #[tracing::instrument(skip_all, fields(lease = lease.name, owner), err)]
    pub async fn renew(&self, lease: &Lease, owner: &str, ttl_s: i64) -> Result<bool> {
        let sql = dialect(
            &self.pool,
            "UPDATE worker_leases SET expires_at = {now+$4} WHERE name = $1 AND owner = $2 AND fence = $3",
        );
        let done = on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&lease.name)
                .bind(owner)
                .bind(lease.fence)
                .bind(ttl_s)
                .execute(p)
                .await
                .map_err(err("renewing a lease"))?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Marks a held lease's work done (or, with `done = false`, gives it back); false if it
    /// was no longer ours.
    #[tracing::instrument(skip_all, fields(lease = lease.name, owner, done), err)]
    pub async fn release(&self, lease: &Lease, owner: &str, done: bool) -> Result<bool> {
        let sql = dialect(
            &self.pool,
            "UPDATE worker_leases SET owner = NULL, expires_at = NULL, \
               done_at = CASE WHEN $4 THEN {now} ELSE NULL END \
             WHERE name = $1 AND owner = $2 AND fence = $3",
        );
        let n = on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&lease.name)
                .bind(owner)
                .bind(lease.fence)
                .bind(done)
                .execute(p)
                .await
                .map_err(err("releasing a lease"))?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Marks leases done whoever holds them (their work was found committed).
    #[tracing::instrument(skip_all, fields(name), err)]
    pub async fn mark_done(&self, name: &str) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "UPDATE worker_leases SET owner = NULL, expires_at = NULL, done_at = {now} \
             WHERE name = $1 AND done_at IS NULL",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(name)
                .execute(p)
                .await
                .map(drop)
                .map_err(err("marking work done"))
        })
    }

    /// How many leases under `prefix` there are, and how many are done.
    #[tracing::instrument(skip_all, fields(prefix), err)]
    pub async fn lease_counts(&self, prefix: &str) -> Result<(i64, i64)> {
        let sql = dialect(
            &self.pool,
            "SELECT count(*), count(done_at) FROM worker_leases WHERE name LIKE $1",
        );
        let pattern = format!("{prefix}%");
        on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&pattern)
                .fetch_one(p)
                .await
                .map_err(err("counting work"))
        })
    }
}

/// Renews `lease` every third of its life until aborted; sets `lost` and returns when the
/// lease was taken over, or could not be renewed for two thirds of its life (another worker
/// may take it any moment): the holder checks `lost` before each step and commit.
pub async fn heartbeat(
    state: State,
    lease: Lease,
    owner: String,
    ttl_s: i64,
    lost: Arc<AtomicBool>,
) {
    let every = Duration::from_secs_f64((ttl_s as f64 / 3.0).max(0.2));
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match state.renew(&lease, &owner, ttl_s).await {
            Ok(true) => last_ok = Instant::now(),
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = lease.name, error = %e, "could not renew a lease");
                if last_ok.elapsed().as_secs_f64() >= ttl_s as f64 * 2.0 / 3.0 {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}
