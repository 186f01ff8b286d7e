//! The replica an import builds: the contract's tables (`migrations/source`) and what the
//! importer keeps beside them (`migrations/import`): stable ids for the outside system's
//! ids, progress, and quarantined input. Every write goes through a [`Tx`], so what one step
//! imports commits together with its progress.

use mttx_migrations::{Location, Pool, Schema};

use crate::{Error, Result};

/// The outside system, in the import tables.
const SOURCE: &str = "pagerduty";

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(Some(v.to_owned()))
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(Some(v))
    }
}
impl From<Option<String>> for Param {
    fn from(v: Option<String>) -> Self {
        Param::Text(v)
    }
}

/// The replica being built.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

/// One transaction on either backend, with the ids it has looked up or given (a window
/// names the same people and incidents many times).
#[derive(Debug)]
pub struct Tx {
    db: Db,
    ids: std::collections::HashMap<(String, String), i64>,
    next: std::collections::HashMap<String, i64>,
}

#[derive(Debug)]
enum Db {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

fn err(doing: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Replica { doing, source }
}

/// `sql` for one backend: `{ts $n}` a timestamp, `{arr $n}` an id array, `{json $n}` JSON,
/// each bound as text; SQLite numbers its parameters `?n`.
fn dialect(postgres: bool, sql: &str) -> String {
    let mut out = sql.to_owned();
    for (marker, pg_type) in [
        ("{ts ", "TIMESTAMPTZ"),
        ("{arr ", "BIGINT[]"),
        ("{json ", "JSONB"),
    ] {
        while let Some(at) = out.find(marker) {
            let end = out[at..].find('}').map_or(out.len() - 1, |e| at + e);
            let param = out[at + marker.len()..end].to_owned();
            let with = if postgres {
                format!("CAST({param} AS {pg_type})")
            } else {
                param
            };
            out.replace_range(at..=end, &with);
        }
    }
    if postgres { out } else { out.replace('$', "?") }
}

macro_rules! bind_all {
    ($q:expr, $params:expr) => {{
        let mut q = $q;
        for p in $params {
            q = match p {
                Param::Int(v) => q.bind(*v),
                Param::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

impl Store {
    /// Opens the replica at `location`, creating it (its folder, the contract's and the
    /// import's tables) where needed.
    #[tracing::instrument(skip_all, fields(%location), err)]
    pub async fn open(location: &Location) -> Result<Self> {
        let options = mttx_migrations::ConnectOptions {
            application_name: "mttx-import".into(),
            max_connections: 2,
            create_sqlite: true,
        };
        let pool = mttx_migrations::connect(location, &options).await?;
        mttx_migrations::migrate(&pool, Schema::Source, location).await?;
        mttx_migrations::migrate(&pool, Schema::Import, location).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx> {
        let db = match &self.pool {
            Pool::Postgres(p) => Db::Postgres(p.begin().await.map_err(err("starting a write"))?),
            Pool::Sqlite(p) => Db::Sqlite(p.begin().await.map_err(err("starting a write"))?),
        };
        Ok(Tx {
            db,
            ids: Default::default(),
            next: Default::default(),
        })
    }

    /// A progress value (`None` before the first import).
    pub async fn progress(&self, name: &str) -> Result<Option<String>> {
        let mut tx = self.begin().await?;
        let v = tx.progress(name).await?;
        tx.commit().await?;
        Ok(v)
    }
}

impl Tx {
    /// Whether this is PostgreSQL (arrays are written `{1,2}` there, `[1,2]` in SQLite).
    pub fn postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Runs a statement.
    pub async fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        let sql = dialect(self.postgres(), sql);
        let done = match &mut self.db {
            Db::Postgres(tx) => bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), params)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
            Db::Sqlite(tx) => bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), params)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
        };
        done.map_err(err("writing the replica"))
    }

    /// The first column of the first row (`None` without a row, or where it is NULL).
    async fn scalar<T>(&mut self, sql: &str, params: &[Param]) -> Result<Option<T>>
    where
        T: Send
            + Unpin
            + sqlx::Type<sqlx::Postgres>
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Sqlite>
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>,
    {
        let sql = dialect(self.postgres(), sql);
        let row: Option<(Option<T>,)> = match &mut self.db {
            Db::Postgres(tx) => {
                bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), params)
                    .fetch_optional(&mut **tx)
                    .await
            }
            Db::Sqlite(tx) => {
                bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), params)
                    .fetch_optional(&mut **tx)
                    .await
            }
        }
        .map_err(err("reading the replica"))?;
        Ok(row.and_then(|r| r.0))
    }

    /// The first column of the first row, as a whole number.
    pub async fn int(&mut self, sql: &str, params: &[Param]) -> Result<Option<i64>> {
        self.scalar(sql, params).await
    }

    /// The first column of the first row, as text.
    pub async fn text(&mut self, sql: &str, params: &[Param]) -> Result<Option<String>> {
        self.scalar(sql, params).await
    }

    pub async fn commit(self) -> Result<()> {
        match self.db {
            Db::Postgres(tx) => tx.commit().await,
            Db::Sqlite(tx) => tx.commit().await,
        }
        .map_err(err("committing to the replica"))
    }

    /// The contract id of an outside id of `kind`, if it has one.
    pub async fn id_of(&mut self, kind: &str, external: &str) -> Result<Option<i64>> {
        let key = (kind.to_owned(), external.to_owned());
        if let Some(id) = self.ids.get(&key) {
            return Ok(Some(*id));
        }
        let id = self
            .int(
                "SELECT id FROM import_ids WHERE source = $1 AND kind = $2 AND external_id = $3",
                &[SOURCE.into(), kind.into(), external.into()],
            )
            .await?;
        if let Some(id) = id {
            self.ids.insert(key, id);
        }
        Ok(id)
    }

    /// The contract id of an outside id of `kind`, given one (above every id of `kind` and
    /// of `table`) if it has none yet; and whether it is new.
    pub async fn id_for(&mut self, kind: &str, table: &str, external: &str) -> Result<(i64, bool)> {
        if let Some(id) = self.id_of(kind, external).await? {
            return Ok((id, false));
        }
        let next = match self.next.get(kind) {
            Some(n) => *n,
            None => self
                .int(
                    &format!(
                    "SELECT MAX(m) + 1 FROM (SELECT COALESCE(MAX(id), 0) AS m FROM {table} \
                     UNION ALL SELECT COALESCE(MAX(id), 0) FROM import_ids WHERE source = $1 AND kind = $2) x"
                ),
                    &[SOURCE.into(), kind.into()],
                )
                .await?
                .unwrap_or(1),
        };
        self.next.insert(kind.to_owned(), next + 1);
        self.ids
            .insert((kind.to_owned(), external.to_owned()), next);
        self.exec(
            "INSERT INTO import_ids (source, kind, external_id, id) VALUES ($1, $2, $3, $4)",
            &[SOURCE.into(), kind.into(), external.into(), next.into()],
        )
        .await?;
        Ok((next, true))
    }

    /// Records input that could not be imported (once per object and reason).
    pub async fn quarantine(
        &mut self,
        kind: &str,
        external: &str,
        reason: &str,
        detail: &str,
        raw: Option<String>,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO import_quarantine (source, kind, external_id, reason, detail, raw) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, kind, external_id, reason) \
             DO UPDATE SET detail = excluded.detail, raw = excluded.raw",
            &[
                SOURCE.into(),
                kind.into(),
                external.into(),
                reason.into(),
                detail.into(),
                raw.into(),
            ],
        )
        .await
        .map(drop)
    }

    /// A progress value, in this transaction.
    pub async fn progress(&mut self, name: &str) -> Result<Option<String>> {
        self.text(
            "SELECT value FROM import_progress WHERE source = $1 AND name = $2",
            &[SOURCE.into(), name.into()],
        )
        .await
    }

    /// Sets a progress value, in this transaction.
    pub async fn set_progress(&mut self, name: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO import_progress (source, name, value) VALUES ($1, $2, $3) \
             ON CONFLICT (source, name) DO UPDATE SET value = excluded.value",
            &[SOURCE.into(), name.into(), value.into()],
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_parameters_become_each_backends_sql() {
        let sql = "INSERT INTO t VALUES ($1, {ts $2}, {arr $3}, {json $10}, 'TEXT')";
        assert_eq!(
            dialect(true, sql),
            "INSERT INTO t VALUES ($1, CAST($2 AS TIMESTAMPTZ), CAST($3 AS BIGINT[]), CAST($10 AS JSONB), 'TEXT')"
        );
        assert_eq!(
            dialect(false, sql),
            "INSERT INTO t VALUES (?1, ?2, ?3, ?10, 'TEXT')"
        );
    }
}
