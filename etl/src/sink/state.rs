//! mttx's own state database: run records and quarantined input. Quarantine rows are
//! upserted by (incident, entry, reason), so writing the same batch twice (a retry after a
//! crash) keeps one row per problem.

use mttx_migrations::{Location, Pool, Schema};

use crate::transform::fold::Issue;
use crate::{Error, Result};

/// Runs the same query-building expression against either backend.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Postgres($p) => $body,
            Pool::Sqlite($p) => $body,
        }
    };
}

/// The state database.
#[derive(Debug, Clone)]
pub struct State {
    pool: Pool,
}

/// Whether opening the state failed because another process was creating it at the time.
fn racing(e: &Error) -> bool {
    let text = format!("{e:?}");
    ["database is locked", "already exists", "UNIQUE constraint"]
        .iter()
        .any(|needle| text.contains(needle))
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
        // Several processes opening a new SQLite state file at once race to create and
        // migrate it (PostgreSQL's migrations take an advisory lock instead): the losers
        // wait and try again.
        let mut attempt = 0;
        loop {
            let opened = async {
                let pool = mttx_migrations::connect(location, &options).await?;
                mttx_migrations::migrate(&pool, Schema::State, location).await?;
                Ok::<_, Error>(pool)
            }
            .await;
            match opened {
                Ok(pool) => return Ok(Self { pool }),
                Err(e) if attempt < 20 && matches!(location, Location::Sqlite(_)) && racing(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Records the start of a run; returns its id.
    pub async fn start_run(&self, worker: &str, mode: &str, metrics_version: i32) -> Result<i64> {
        let sql = dialect(
            &self.pool,
            "INSERT INTO etl_runs (worker_id, mode, metrics_version) VALUES ($1, $2, $3) RETURNING id",
        );
        on_pool!(&self.pool, p => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(worker)
                .bind(mode)
                .bind(metrics_version)
                .fetch_one(p)
                .await
                .map_err(err("recording the run"))
        })
    }

    /// Records how a run ended.
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

    /// Upserts quarantine rows (one per incident, entry and reason).
    pub async fn quarantine(
        &self,
        run: i64,
        account_of: impl Fn(i64) -> i64,
        issues: &[Issue],
    ) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "INSERT INTO quarantine (account_id, incident_id, entry_id, reason, detail, run_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (incident_id, entry_id, reason) \
             DO UPDATE SET detail = excluded.detail, last_seen_at = {now}, run_id = excluded.run_id",
        );
        let doing = "writing quarantine records";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(err(doing))?;
            for i in issues {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
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
        })
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

/// One SQL text for both backends: `$N` parameters, `{now}` for the current time,
/// `{now+$N}` for the current time plus `$N` seconds, `{json}` for the JSON column type.
fn dialect(pool: &Pool, sql: &str) -> String {
    match pool {
        Pool::Postgres(_) => {
            let mut out = sql.replace("{now}", "now()").replace("{json}", "JSONB");
            while let Some(at) = out.find("{now+$") {
                let end = out[at..].find('}').map_or(out.len(), |e| at + e);
                let param = out[at + 5..end].to_owned();
                out.replace_range(
                    at..=end,
                    &format!("(now() + make_interval(secs => {param}))"),
                );
            }
            out
        }
        Pool::Sqlite(_) => {
            const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
            let mut out = sql.replace("{now}", NOW).replace("{json}", "TEXT");
            while let Some(at) = out.find("{now+$") {
                let end = out[at..].find('}').map_or(out.len(), |e| at + e);
                let param = out[at + 5..end].replace('$', "?");
                out.replace_range(
                    at..=end,
                    &format!(
                        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || CAST({param} AS TEXT) || ' seconds')"
                    ),
                );
            }
            // `?N` is SQLite's numbered parameter.
            let mut lite = String::with_capacity(out.len());
            let mut chars = out.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                    lite.push('?');
                } else {
                    lite.push(c);
                }
            }
            lite
        }
    }
}

/// A piece of work held by one worker: the lease's `fence` grows at every change of owner,
/// so every renewal and the final `finish` only succeed for the current holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub fence: i64,
    pub payload: Option<serde_json::Value>,
}

fn payload(text: Option<String>) -> Result<Option<serde_json::Value>> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| {
            Error::Config(format!(
                "unreadable lease payload in the state database: {e}"
            ))
        })
}

impl State {
    /// Adds the named leases that do not exist yet (free, not done).
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
        row.map(|(p, done)| Ok((payload(p)?, done))).transpose()
    }

    /// Takes one lease under `prefix` that is neither done nor held (or whose holder let it
    /// expire), in name order. `None` when there is none to take.
    pub async fn claim(&self, prefix: &str, owner: &str, ttl_s: i64) -> Result<Option<Lease>> {
        let skip_locked = match &self.pool {
            Pool::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Pool::Sqlite(_) => "",
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
            Ok(Lease {
                name,
                fence,
                payload: payload(p)?,
            })
        })
        .transpose()
    }

    /// Takes the named lease if it is free, expired or already ours (creating it if needed).
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

impl State {
    /// Incidents quarantined as orphans (entries without an incident row) with ids above
    /// `after`, in id order (page through all of them by passing the last id seen).
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

/// What a presented API token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Valid, for this account.
    Account(i64),
    Unknown,
    Expired,
    Revoked,
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl State {
    /// Creates an API token for `account` (valid for `ttl_s` seconds, or until revoked when
    /// None) and returns it; only its SHA-256 hash and first characters are stored.
    pub async fn create_token(
        &self,
        account: i64,
        name: &str,
        ttl_s: Option<i64>,
    ) -> Result<String> {
        let mut bytes = [0_u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .map_err(|e| Error::Config(format!("cannot draw a random token: {e}")))?;
        let token: String = std::iter::once("mttx_".to_owned())
            .chain(bytes.iter().map(|b| format!("{b:02x}")))
            .collect();
        let sql = dialect(
            &self.pool,
            "INSERT INTO api_tokens (account_id, name, token_prefix, token_hash, expires_at) \
             VALUES ($1, $2, $3, $4, CASE WHEN $5 < 0 THEN NULL ELSE {now+$5} END)",
        );
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(name)
                .bind(&token[..13])
                .bind(sha256_hex(&token))
                .bind(ttl_s.unwrap_or(-1))
                .execute(p)
                .await
                .map(drop)
                .map_err(err("creating a token"))?
        });
        Ok(token)
    }

    /// Checks a presented token (and notes its use).
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let sql = dialect(
            &self.pool,
            "SELECT account_id, expires_at IS NOT NULL AND expires_at < {now}, revoked_at IS NOT NULL \
             FROM api_tokens WHERE token_hash = $1",
        );
        let hash = sha256_hex(token);
        let row: Option<(i64, bool, bool)> = on_pool!(&self.pool, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&hash)
                .fetch_optional(p)
                .await
                .map_err(err("checking a token"))?
        });
        Ok(match row {
            None => TokenCheck::Unknown,
            Some((_, _, true)) => TokenCheck::Revoked,
            Some((_, true, _)) => TokenCheck::Expired,
            Some((account, false, false)) => TokenCheck::Account(account),
        })
    }

    /// Revokes every token of `account` whose text starts with `prefix`; returns how many.
    pub async fn revoke_tokens(&self, account: i64, prefix: &str) -> Result<u64> {
        let sql = dialect(
            &self.pool,
            "UPDATE api_tokens SET revoked_at = {now} WHERE account_id = $1 AND token_prefix = $2 AND revoked_at IS NULL",
        );
        on_pool!(&self.pool, p => {
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(account)
                .bind(prefix)
                .execute(p)
                .await
                .map_err(err("revoking tokens"))?
                .rows_affected())
        })
    }
}

/// A generation of the facts table: one whole Delta table made by one metrics version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Generation {
    pub id: i64,
    pub location: String,
    pub metrics_version: i32,
    /// Accounts whose facts are made by another metrics version (`reprocess --account`).
    pub account_versions: std::collections::BTreeMap<i64, i32>,
    /// `building` until a reprocess has caught it up with the log, then `ready`; `dropping`
    /// (from [`State::drops`]) while its table is being deleted.
    pub status: String,
}

type GenerationRow = (i64, String, i32, String);

fn generation((id, location, metrics_version, status): GenerationRow) -> Generation {
    Generation {
        id,
        location,
        metrics_version,
        account_versions: Default::default(),
        status,
    }
}

impl Generation {
    /// Each account's metrics version in this generation.
    pub fn versions(&self) -> Result<crate::transform::Versions> {
        let mut accounts = std::collections::BTreeMap::new();
        for (&account, &v) in &self.account_versions {
            accounts.insert(account, v.try_into()?);
        }
        Ok(crate::transform::Versions {
            default: self.metrics_version.try_into()?,
            accounts,
        })
    }

    /// The metrics version of `account`'s facts.
    pub fn version_of(&self, account: i64) -> i32 {
        self.account_versions
            .get(&account)
            .copied()
            .unwrap_or(self.metrics_version)
    }

    /// "2", or "1 (account 7: 2)" when accounts differ.
    pub fn describe_versions(&self) -> String {
        let mut out = self.metrics_version.to_string();
        if !self.account_versions.is_empty() {
            let accounts: Vec<String> = self
                .account_versions
                .iter()
                .map(|(a, v)| format!("account {a}: {v}"))
                .collect();
            out.push_str(&format!(" ({})", accounts.join(", ")));
        }
        out
    }
}

impl State {
    async fn generation_rows(
        &self,
        sql: &str,
        base: &str,
        bind: Option<i64>,
    ) -> Result<Vec<Generation>> {
        let sql = dialect(&self.pool, sql);
        let rows: Vec<GenerationRow> = on_pool!(&self.pool, p => {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(base);
            let q = match bind {
                Some(b) => q.bind(b),
                None => q,
            };
            q.fetch_all(p).await.map_err(err("reading the facts generations"))?
        });
        let accounts: Vec<(i64, i64, i32)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT a.generation_id, a.account_id, a.metrics_version \
                 FROM facts_generation_accounts a JOIN facts_generations g ON g.id = a.generation_id \
                 WHERE g.base = $1",
            )
            .bind(base)
            .fetch_all(p)
            .await
            .map_err(err("reading the facts generations' accounts"))?
        });
        let mut out: Vec<Generation> = rows.into_iter().map(generation).collect();
        for g in &mut out {
            g.account_versions = accounts
                .iter()
                .filter(|(id, _, _)| *id == g.id)
                .map(|(_, account, v)| (*account, *v))
                .collect();
        }
        Ok(out)
    }

    /// The generation of the facts at `base` (the `--facts` location) that reports are
    /// served from. The first time any is asked for, `base` itself becomes generation 1,
    /// made by `version`.
    pub async fn serving(&self, base: &str, version: i32) -> Result<Generation> {
        const SERVED: &str = "SELECT g.id, g.location, g.metrics_version, g.status \
             FROM facts_serving s JOIN facts_generations g ON g.id = s.generation_id WHERE s.base = $1";
        if let Some(g) = self.generation_rows(SERVED, base, None).await?.pop() {
            return Ok(g);
        }
        let register = dialect(
            &self.pool,
            "INSERT INTO facts_generations (base, location, metrics_version, status, ready_at) \
             VALUES ($1, $1, $2, 'ready', {now}) ON CONFLICT (location) DO NOTHING",
        );
        let serve = "INSERT INTO facts_serving (base, generation_id) \
             SELECT $1, id FROM facts_generations WHERE location = $1 ON CONFLICT (base) DO NOTHING";
        on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(register.as_str()))
                .bind(base)
                .bind(version)
                .execute(p)
                .await
                .map_err(err("registering the first facts generation"))?;
            sqlx::query(serve)
                .bind(base)
                .execute(p)
                .await
                .map_err(err("serving the first facts generation"))?;
        });
        self.generation_rows(SERVED, base, None)
            .await?
            .pop()
            .ok_or_else(|| Error::Config("no facts generation is served".into()))
    }

    /// Every generation of the facts at `base`, oldest first.
    pub async fn generations(&self, base: &str) -> Result<Vec<Generation>> {
        self.generation_rows(
            "SELECT id, location, metrics_version, status FROM facts_generations \
             WHERE base = $1 ORDER BY id",
            base,
            None,
        )
        .await
    }

    /// Generation `id` of the facts at `base`, if there is one.
    pub async fn generation(&self, base: &str, id: i64) -> Result<Option<Generation>> {
        Ok(self
            .generations(base)
            .await?
            .into_iter()
            .find(|g| g.id == id))
    }

    /// The generation served before the last switch, if any.
    pub async fn previous_generation(&self, base: &str) -> Result<Option<Generation>> {
        Ok(self
            .generation_rows(
                "SELECT g.id, g.location, g.metrics_version, g.status \
                 FROM facts_serving s JOIN facts_generations g ON g.id = s.previous_id WHERE s.base = $1",
                base,
                None,
            )
            .await?
            .pop())
    }

    /// The generation a reprocess to `version` (and `accounts`' versions) builds: the one an
    /// interrupted reprocess left half-built (to resume it), else a new one beside `base`.
    pub async fn building(
        &self,
        base: &str,
        version: i32,
        accounts: &std::collections::BTreeMap<i64, i32>,
    ) -> Result<Generation> {
        let find = "SELECT id, location, metrics_version, status FROM facts_generations \
             WHERE base = $1 AND status = 'building' AND metrics_version = $2 ORDER BY id DESC";
        let same = |gs: Vec<Generation>| gs.into_iter().find(|g| &g.account_versions == accounts);
        if let Some(g) = same(
            self.generation_rows(find, base, Some(i64::from(version)))
                .await?,
        ) {
            return Ok(g);
        }
        let location = format!(
            "{}.v{version}-{}",
            base.trim_end_matches('/'),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")
        );
        const DOING: &str = "creating a facts generation";
        let id = on_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(err(DOING))?;
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO facts_generations (base, location, metrics_version) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(base)
            .bind(&location)
            .bind(version)
            .fetch_one(&mut *tx)
            .await
            .map_err(err(DOING))?;
            for (account, v) in accounts {
                sqlx::query(
                    "INSERT INTO facts_generation_accounts (generation_id, account_id, metrics_version) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(account)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(err(DOING))?;
            }
            tx.commit().await.map_err(err(DOING))?;
            id
        });
        self.generation(base, id)
            .await?
            .ok_or_else(|| Error::Config("the new facts generation vanished".into()))
    }

    /// Marks a generation complete: it may be served.
    pub async fn generation_ready(&self, id: i64) -> Result<()> {
        let sql = dialect(
            &self.pool,
            "UPDATE facts_generations SET status = 'ready', ready_at = {now} WHERE id = $1",
        );
        let marked = on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .execute(p)
                .await
                .map_err(err("marking a facts generation ready"))?
                .rows_affected()
        });
        if marked == 0 {
            return Err(Error::Config(format!(
                "facts generation {id} is gone (dropped while it was being built?): run the reprocess again"
            )));
        }
        Ok(())
    }

    /// Serves generation `id` of the facts at `base` from now on, in place of `from` (one
    /// UPDATE: every reader sees the old or the new generation, never a mix); the one served
    /// until now becomes the previous one. If another generation than `from` is served by
    /// then (a concurrent switch or reprocess), nothing changes and the error says so: the
    /// new generation was made from what `from` served.
    pub async fn switch_generation(&self, base: &str, id: i64, from: i64) -> Result<()> {
        match self.generation(base, id).await? {
            None => {
                return Err(Error::Config(format!(
                    "there is no generation {id} of the facts at {base}"
                )));
            }
            Some(g) if g.status != "ready" => {
                return Err(Error::Config(format!(
                    "facts generation {id} (metrics version {}) is still being built; run the `mttx reprocess` that started it again to finish it",
                    g.describe_versions()
                )));
            }
            Some(_) => {}
        }
        if id == from {
            return Ok(());
        }
        let sql = dialect(
            &self.pool,
            "UPDATE facts_serving SET previous_id = generation_id, generation_id = $2, switched_at = {now} \
             WHERE base = $1 AND generation_id = $3",
        );
        let switched = on_pool!(&self.pool, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(base)
                .bind(id)
                .bind(from)
                .execute(p)
                .await
                .map_err(err("switching the facts generation"))?
                .rows_affected()
        });
        if switched == 0 {
            return Err(Error::Config(format!(
                "generation {from} is no longer the one served (another switch or reprocess came first): \
                 generation {id} is ready but not served; `mttx generations list` shows what is, \
                 `mttx generations switch --to {id}` serves it anyway"
            )));
        }
        Ok(())
    }

    /// Starts dropping generation `id` of the facts at `base`, unless it is the served one:
    /// in one transaction it is no longer listed, no longer the previous one, and recorded
    /// as being dropped (see [`State::drops`]). The caller deletes its table, then calls
    /// [`State::dropped`]. Returns false (changing nothing) if it is served or gone.
    pub async fn start_drop(&self, base: &str, id: i64) -> Result<bool> {
        const DOING: &str = "starting to drop a facts generation";
        let started = on_pool!(&self.pool, p => {
            let mut tx = p.begin().await.map_err(err(DOING))?;
            let recorded = sqlx::query(
                "INSERT INTO facts_drops (generation_id, base, location, metrics_version) \
                 SELECT id, base, location, metrics_version FROM facts_generations \
                 WHERE base = $1 AND id = $2 \
                 AND id NOT IN (SELECT generation_id FROM facts_serving)",
            )
            .bind(base)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(err(DOING))?
            .rows_affected();
            if recorded == 1 {
                sqlx::query(
                    "UPDATE facts_serving SET previous_id = NULL WHERE base = $1 AND previous_id = $2",
                )
                .bind(base)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(err(DOING))?;
                sqlx::query("DELETE FROM facts_generations WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err(DOING))?;
                tx.commit().await.map_err(err(DOING))?;
            } else {
                tx.rollback().await.map_err(err(DOING))?;
            }
            recorded == 1
        });
        Ok(started)
    }

    /// Generations of the facts at `base` whose drop was started and not finished (their
    /// tables may still hold files), oldest first.
    pub async fn drops(&self, base: &str) -> Result<Vec<Generation>> {
        self.generation_rows(
            "SELECT generation_id, location, metrics_version, CAST('dropping' AS TEXT) FROM facts_drops \
             WHERE base = $1 ORDER BY generation_id",
            base,
            None,
        )
        .await
    }

    /// Records that generation `id`'s table is deleted: its drop is finished.
    pub async fn dropped(&self, id: i64) -> Result<()> {
        on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM facts_drops WHERE generation_id = $1")
                .bind(id)
                .execute(p)
                .await
                .map_err(err("finishing the drop of a facts generation"))?;
        });
        Ok(())
    }
}
