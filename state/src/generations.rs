//! `facts_generations`, `facts_generation_accounts`, `facts_serving`, `facts_drops`: the
//! generations of a facts table (each a whole Delta table made by one set of metrics
//! versions) and which one reports are served from. A switch is one UPDATE, so every
//! reader sees the old generation or the new one, never a mix. A drop is recorded before
//! its table is deleted, so an interrupted drop is finished by the next one.

use std::collections::BTreeMap;
use std::fmt;

use crate::dialect::dialect;
use crate::{Error, MetricsVersion, Result, State, Versions, err};

/// Where a generation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GenerationStatus {
    /// A reprocess is building it (or was stopped while building it).
    Building,
    /// Caught up with the log: it may be served.
    Ready,
    /// Its drop was started and not finished: its table may still hold files.
    Dropping,
}

impl GenerationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Dropping => "dropping",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        match text {
            "building" => Ok(Self::Building),
            "ready" => Ok(Self::Ready),
            "dropping" => Ok(Self::Dropping),
            other => Err(Error::UnknownStatus(other.to_owned())),
        }
    }
}

impl fmt::Display for GenerationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A generation of the facts table: one whole Delta table made by one metrics version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Generation {
    pub id: i64,
    pub location: String,
    pub metrics_version: MetricsVersion,
    /// Accounts whose facts are made by another metrics version (`reprocess --account`).
    pub account_versions: BTreeMap<i64, MetricsVersion>,
    pub status: GenerationStatus,
}

impl Generation {
    /// Each account's metrics version in this generation.
    pub fn versions(&self) -> Versions {
        Versions {
            default: self.metrics_version,
            accounts: self.account_versions.clone(),
        }
    }

    /// The metrics version of `account`'s facts.
    pub fn version_of(&self, account: i64) -> MetricsVersion {
        self.versions().of(account)
    }

    /// "2", or "1 (account 7: 2)" when accounts differ.
    pub fn describe_versions(&self) -> String {
        self.versions().describe()
    }
}

type GenerationRow = (i64, String, i32, String);

/// The accounts whose version differs from the default: an account at the generation's own
/// version is no exception to record.
fn exceptions(versions: &Versions) -> BTreeMap<i64, MetricsVersion> {
    versions
        .accounts
        .iter()
        .filter(|(_, v)| **v != versions.default)
        .map(|(a, v)| (*a, *v))
        .collect()
}

impl State {
    /// The generations `sql` selects (id, location, metrics version, status; parameters:
    /// the base, then `bind`), with their accounts' versions.
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
        let mut out = Vec::with_capacity(rows.len());
        for (id, location, version, status) in rows {
            let mut account_versions = BTreeMap::new();
            for (_, account, v) in accounts.iter().filter(|(g, _, _)| *g == id) {
                account_versions.insert(*account, MetricsVersion::try_from(*v)?);
            }
            out.push(Generation {
                id,
                location,
                metrics_version: version.try_into()?,
                account_versions,
                status: GenerationStatus::parse(&status)?,
            });
        }
        Ok(out)
    }

    /// The generation of the facts at `base` (the `--facts` location) that reports are
    /// served from. The first time any is asked for, `base` itself becomes generation 1,
    /// made by metrics version 1.
    #[tracing::instrument(skip_all, fields(base), err)]
    pub async fn serving(&self, base: &str) -> Result<Generation> {
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
                .bind(MetricsVersion::V1.number())
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
            .ok_or_else(|| Error::NothingServed(base.to_owned()))
    }

    /// Every generation of the facts at `base`, oldest first.
    #[tracing::instrument(skip_all, fields(base), err)]
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
    #[tracing::instrument(skip_all, fields(base), err)]
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

    /// The generation a reprocess to `versions` builds: the one an interrupted reprocess
    /// left half-built (to resume it), else a new one beside `base`.
    #[tracing::instrument(skip_all, fields(base, versions = versions.describe()), err)]
    pub async fn building(&self, base: &str, versions: &Versions) -> Result<Generation> {
        if let Some(g) = self.resumable(base, versions).await? {
            return Ok(g);
        }
        let location = format!(
            "{}.v{}-{}",
            base.trim_end_matches('/'),
            versions.default,
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
            .bind(versions.default.number())
            .fetch_one(&mut *tx)
            .await
            .map_err(err(DOING))?;
            for (account, v) in &exceptions(versions) {
                sqlx::query(
                    "INSERT INTO facts_generation_accounts (generation_id, account_id, metrics_version) VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(account)
                .bind(v.number())
                .execute(&mut *tx)
                .await
                .map_err(err(DOING))?;
            }
            tx.commit().await.map_err(err(DOING))?;
            id
        });
        self.generation(base, id)
            .await?
            .ok_or(Error::GenerationGone(id))
    }

    /// A generation of exactly `versions` that a reprocess started and did not finish.
    pub async fn resumable(&self, base: &str, versions: &Versions) -> Result<Option<Generation>> {
        let find = "SELECT id, location, metrics_version, status FROM facts_generations \
             WHERE base = $1 AND status = 'building' AND metrics_version = $2 ORDER BY id DESC";
        Ok(self
            .generation_rows(find, base, Some(i64::from(versions.default.number())))
            .await?
            .into_iter()
            .find(|g| g.versions().accounts == exceptions(versions)))
    }

    /// Marks a generation complete: it may be served.
    #[tracing::instrument(skip_all, fields(id), err)]
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
            return Err(Error::GenerationGone(id));
        }
        Ok(())
    }

    /// Serves generation `id` of the facts at `base` from now on, in place of `from` (one
    /// UPDATE: every reader sees the old or the new generation, never a mix); the one served
    /// until now becomes the previous one. If another generation than `from` is served by
    /// then (a concurrent switch or reprocess), nothing changes and the error says so: the
    /// new generation was made from what `from` served.
    #[tracing::instrument(skip_all, fields(base, id, from), err)]
    pub async fn switch_generation(&self, base: &str, id: i64, from: i64) -> Result<()> {
        match self.generation(base, id).await? {
            None => {
                return Err(Error::NoSuchGeneration {
                    base: base.to_owned(),
                    id,
                });
            }
            Some(g) if g.status != GenerationStatus::Ready => {
                return Err(Error::StillBuilding {
                    id,
                    versions: g.describe_versions(),
                });
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
            return Err(Error::NoLongerServed { from, id });
        }
        Ok(())
    }

    /// Starts dropping generation `id` of the facts at `base`, unless it is the served one:
    /// in one transaction it is no longer listed, no longer the previous one, and recorded
    /// as being dropped (see [`State::drops`]). The caller deletes its table, then calls
    /// [`State::dropped`]. Returns false (changing nothing) if it is served or gone.
    #[tracing::instrument(skip_all, fields(base, id), err)]
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
    #[tracing::instrument(skip_all, fields(base), err)]
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
    #[tracing::instrument(skip_all, fields(id), err)]
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
