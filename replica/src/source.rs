//! Extraction: short read-only statements against the replica (PostgreSQL or SQLite).
//!
//! Every statement is a single short query (no long transaction, no cursor); PostgreSQL
//! sessions are read-only with a statement timeout and an `application_name`, and a
//! statement that fails because the standby cancelled it (conflict with recovery) or the
//! connection dropped is retried with backoff. Nothing here writes to the replica.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use mttx_migrations::{Location, Pool};
use sqlx::Row;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqlitePoolOptions;

use crate::copy;

use crate::{Context, Entry, Error, IncidentRow, Result};

/// How long one statement may run on the replica.
pub const STATEMENT_TIMEOUT: &str = "60s";
/// Tries of a statement that failed transiently (connection cut, server restarting).
const RETRIES: u32 = 6;
/// Tries of a statement the standby cancelled for a conflict with recovery: not a fault of
/// the replica, and the next try usually falls between two of the primary's cleanups.
const CONFLICT_RETRIES: u32 = 30;
/// The longest pause between two tries.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// The longest pause between two tries of a statement the standby cancelled.
const MAX_CONFLICT_DELAY: Duration = Duration::from_secs(1);
/// Ids read per statement when looking for ids not visible yet: a short statement each.
const IDS_PER_READ: i64 = 10_000;

/// The replica, opened read-only.
#[derive(Debug, Clone)]
pub struct Source {
    pub(crate) pool: Pool,
    location: Location,
    pub(crate) kind: SourceKind,
}

/// What the replica's tables are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SourceKind {
    /// mttx's replica contract (docs/design.md): `incident_log_entries` and the rest.
    #[default]
    Contract,
    /// GoAlert's own database, mapped onto the contract as it is read (README, "From
    /// GoAlert").
    GoAlert(crate::GoAlert),
}

/// The log's table, its incident column and the incidents' table.
struct Tables {
    log: &'static str,
    incident: &'static str,
    incidents: &'static str,
}

const CONTRACT_TABLES: Tables = Tables {
    log: "incident_log_entries",
    incident: "incident_id",
    incidents: "incidents",
};
const GOALERT_TABLES: Tables = Tables {
    log: "alert_logs",
    incident: "alert_id",
    incidents: "alerts",
};

/// Whether a failed statement is worth retrying: the standby cancelled it (conflict with
/// recovery, SQLSTATE 40001), the server is shutting down or restarting (57P01–57P03), or
/// the connection broke.
pub fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("40001" | "40P01" | "57P01" | "57P02" | "57P03" | "08006" | "08003" | "08000")
            ) || cancelled_by_standby(e)
                || db.message().contains("database is locked")
        }
        _ => false,
    }
}

/// Whether the standby cancelled a statement because replaying the primary's changes
/// conflicted with it (SQLSTATE 40001, "conflict with recovery").
fn cancelled_by_standby(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains("conflict with recovery"))
}

/// The binary COPY of the logs of `which`'s incidents: the replica's fastest way out. COPY
/// takes no parameters, so the condition is written out (integers only).
fn copy_logs_sql(which: &Which<'_>, details: Details) -> String {
    let condition = match which {
        Which::Ids(ids) => {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!("incident_id = ANY('{{{}}}'::bigint[])", list.join(","))
        }
        Which::Range(from, to) => format!("incident_id >= {from} AND incident_id < {to}"),
    };
    format!(
        "COPY (SELECT {} FROM incident_log_entries WHERE {condition}) TO STDOUT (FORMAT binary)",
        copy::columns(details == Details::All)
    )
}

/// Runs `op` again after a short, growing pause while it fails transiently.
pub async fn with_retries<T, F, Fut>(what: &'static str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut delay = Duration::from_millis(100);
    for attempt in 1.. {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) => {
                let (tries, longest) = if cancelled_by_standby(&e) {
                    (CONFLICT_RETRIES, MAX_CONFLICT_DELAY)
                } else {
                    (RETRIES, MAX_DELAY)
                };
                if attempt >= tries {
                    return Err(Error::Read {
                        doing: what,
                        source: e,
                    });
                }
                delay = delay.min(longest);
                crate::RETRIES.inc();
                tracing::warn!(what, attempt, error = %e, delay_ms = delay.as_millis() as u64, "replica statement failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 3;
            }
            Err(source) => {
                return Err(Error::Read {
                    doing: what,
                    source,
                });
            }
        }
    }
    unreachable!("the loop returns")
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(format!("timestamp `{s}`: {e}").into()))
}

fn lite_entry(r: &sqlx::sqlite::SqliteRow) -> Result<Entry, sqlx::Error> {
    let created: String = r.try_get(3)?;
    let ids: Option<String> = r.try_get(8)?;
    let details: Option<String> = r.try_get(10)?;
    Ok(Entry {
        id: r.try_get(0)?,
        incident_id: r.try_get(1)?,
        entry_type: r.try_get(2)?,
        created_at: parse_ts(&created)?,
        agent_type: r.try_get(4)?,
        agent_id: r.try_get(5)?,
        channel: r.try_get(6)?,
        user_id: r.try_get(7)?,
        assignee_ids: ids
            .map(|s| serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e))))
            .transpose()?,
        escalation_policy_id: r.try_get(9)?,
        details: details
            .map(|s| {
                serde_json::from_str::<serde_json::Value>(&s)
                    .map(|v| mttx_migrations::canonical_json(&v))
            })
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// An incident row from a result row of `incidents_where`'s columns (the time decoded by the
/// caller: PostgreSQL sends a timestamp, SQLite text).
macro_rules! incident_row {
    ($r:expr, $created_at:expr) => {
        Ok(IncidentRow {
            id: $r.try_get(0)?,
            account_id: $r.try_get(1)?,
            incident_number: $r.try_get(2)?,
            service_id: $r.try_get(3)?,
            escalation_policy_id: $r.try_get(4)?,
            title: $r.try_get(5)?,
            urgency: $r.try_get(6)?,
            priority: $r.try_get(7)?,
            status: $r.try_get(8)?,
            created_at: $created_at,
        })
    };
}

/// How a read of the log is planned, for its own transaction only (`SET LOCAL`).
///
/// - No plain index scan. A read's entries sit a few to a heap page, between other
///   incidents' entries (an incident's log is written over its life), and an index scan
///   visits a page again for each of its entries, each time looking the page up, pinning
///   and locking it. A bitmap scan visits each page once and reads all of its entries
///   there. The planner picks the index scan for the reads a backfill makes, because the
///   log's incident ids rise with its physical order on the whole. Measured on 10M entries
///   (BENCHMARKS.md): a 5,000-incident read touched 19,937 buffers against 1,237, and the
///   backfill's reads took PostgreSQL 10.4–11.1 s of CPU against 8.9–9.5 s.
/// - No JIT compilation. On 10M entries a bitmap plan's estimated cost crosses the default
///   `jit_above_cost` (100,000) at about 6,500 incidents (`--read-incidents`), and
///   compiling costs a read of a few thousand incidents more than it saves: the reads of
///   10,000 incidents took PostgreSQL 9.8–10.1 s of CPU with JIT against 9.4–9.8 s without.
const READ_PLAN: &str = "SET LOCAL enable_indexscan = off; SET LOCAL jit = off";

/// Runs a `COPY … TO STDOUT` of [`copy_logs_sql`] and gathers its output, planned as
/// [`READ_PLAN`] says.
async fn copy_out(
    pg: &sqlx::PgPool,
    sql: &str,
    details: Details,
) -> Result<copy::Decoder, sqlx::Error> {
    use futures::TryStreamExt;
    let mut decoder = match details {
        Details::All => copy::Decoder::default(),
        Details::Twins => copy::Decoder::without_details(),
    };
    // The settings last until the transaction ends: the pool's connection goes back as
    // it came, whether the read finishes or fails (a failed one is rolled back).
    let mut tx = pg.begin().await?;
    sqlx::raw_sql(READ_PLAN).execute(&mut *tx).await?;
    {
        let mut stream = tx.copy_out_raw(sql).await?;
        while let Some(chunk) = stream.try_next().await? {
            decoder.feed(&chunk);
        }
    }
    tx.commit().await?;
    Ok(decoder)
}

/// Reads the `details` of the entries of `logs` that [`crate::rows::twins`] finds, the only
/// ones the fold compares, into a read made without details.
async fn twin_details(pg: &sqlx::PgPool, logs: &mut crate::Logs) -> Result<()> {
    let twins = crate::rows::twins(logs);
    if twins.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = twins
        .iter()
        .map(|&(incident, i)| logs[&incident].1[i].id)
        .collect();
    let rows: Vec<(i64, Option<String>)> = with_retries("reading the details of entries", || {
        sqlx::query_as(
            "SELECT id, CAST(details AS TEXT) FROM incident_log_entries WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(pg)
    })
    .await?;
    let mut details: crate::rows::IdMap<Option<String>> = rows.into_iter().collect();
    for (incident, i) in twins {
        if let Some((_, log)) = logs.get_mut(&incident) {
            let entry = &mut log[i];
            entry.details = details.remove(&entry.id).flatten();
        }
    }
    Ok(())
}

/// Runs the same expression against either backend.
macro_rules! on_source {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Postgres($p) => $body,
            Pool::Sqlite($p) => $body,
        }
    };
}
pub(crate) use on_source;

/// Which entries' `details` a read of the log brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Details {
    /// Every entry's, as the replica has it.
    All,
    /// Only those of entries that another of their incident equals in everything else
    /// ([`crate::rows::twins`]): the fold compares details only to tell a duplicate, so the
    /// others are left None, and PostgreSQL is spared printing each jsonb value.
    Twins,
}

/// Which incidents a read is about.
#[derive(Debug, Clone, Copy)]
enum Which<'a> {
    Ids(&'a [i64]),
    /// `[from, to)`
    Range(i64, i64),
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;
type LiteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

impl<'a> Which<'a> {
    /// The same incidents in two smaller parts (None: one incident, not to be split).
    fn halves(&self) -> Option<(Which<'a>, Which<'a>)> {
        match *self {
            Which::Ids(ids) if ids.len() > 1 => {
                let (a, b) = ids.split_at(ids.len() / 2);
                Some((Which::Ids(a), Which::Ids(b)))
            }
            Which::Range(from, to) if to - from > 1 => {
                let mid = from + (to - from) / 2;
                Some((Which::Range(from, mid), Which::Range(mid, to)))
            }
            _ => None,
        }
    }
    fn pg(&self, column: &str) -> String {
        match self {
            Which::Ids(_) => format!("{column} = ANY($1)"),
            Which::Range(..) => format!("{column} >= $1 AND {column} < $2"),
        }
    }
    fn lite(&self, column: &str) -> String {
        match self {
            Which::Ids(_) => format!("{column} IN (SELECT value FROM json_each(?))"),
            Which::Range(..) => format!("{column} >= ? AND {column} < ?"),
        }
    }
    fn json(&self) -> String {
        match self {
            Which::Ids(ids) => json_ids(ids),
            Which::Range(..) => String::new(),
        }
    }
    fn bind_pg<'q>(&self, q: PgQuery<'q>) -> PgQuery<'q>
    where
        'a: 'q,
    {
        match *self {
            Which::Ids(ids) => q.bind(ids),
            Which::Range(from, to) => q.bind(from).bind(to),
        }
    }
    fn bind_lite<'q>(&self, q: LiteQuery<'q>, json: &'q str) -> LiteQuery<'q> {
        match *self {
            Which::Ids(_) => q.bind(json),
            Which::Range(from, to) => q.bind(from).bind(to),
        }
    }
}

fn json_ids(ids: &[i64]) -> String {
    let parts: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", parts.join(","))
}

impl Source {
    /// Opens a replica in the contract read-only. An SQLite file must exist.
    pub async fn open(location: &Location, max_connections: u32) -> Result<Self> {
        Self::open_as(location, SourceKind::Contract, max_connections).await
    }

    /// Opens the replica read-only as `kind` says its tables are. An SQLite file must
    /// exist; a GoAlert database is checked first (its migration level and every column
    /// read), and the error says what is missing.
    #[tracing::instrument(skip_all, fields(%location), err)]
    pub async fn open_as(
        location: &Location,
        kind: SourceKind,
        max_connections: u32,
    ) -> Result<Self> {
        if matches!(kind, SourceKind::GoAlert(_)) && !matches!(location, Location::Postgres(_)) {
            return Err(Error::GoAlertNotPostgres(location.to_string()));
        }
        let err = |source| Error::Read {
            doing: "opening the replica",
            source,
        };
        let pool = match location {
            Location::Postgres(url) => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(err)?
                    .application_name("mttx-etl")
                    .options([
                        ("default_transaction_read_only", "on"),
                        ("statement_timeout", STATEMENT_TIMEOUT),
                    ]);
                Pool::Postgres(
                    mttx_migrations::pg_pool(opts, max_connections)
                        .await
                        .map_err(err)?,
                )
            }
            Location::Sqlite(path) => {
                if !path.exists() {
                    return Err(Error::NoReplica(path.display().to_string()));
                }
                // Read only, in whatever journal mode the file's writer chose: setting one
                // (mttx's own files use WAL) is a write, refused on a read-only connection.
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true)
                    .busy_timeout(std::time::Duration::from_secs(10));
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(max_connections)
                        .connect_with(opts)
                        .await
                        .map_err(err)?,
                )
            }
        };
        let source = Self {
            pool,
            location: location.clone(),
            kind,
        };
        if source.is_goalert() {
            crate::goalert::check(source.pg()?).await?;
        }
        Ok(source)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// What the replica's tables are.
    pub fn kind(&self) -> &SourceKind {
        &self.kind
    }

    pub(crate) fn is_goalert(&self) -> bool {
        matches!(self.kind, SourceKind::GoAlert(_))
    }

    /// The PostgreSQL pool of a source that can only be PostgreSQL (GoAlert).
    pub(crate) fn pg(&self) -> Result<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pg) => Ok(pg),
            Pool::Sqlite(_) => Err(Error::GoAlertNotPostgres(self.location.to_string())),
        }
    }

    fn tables(&self) -> &'static Tables {
        match self.kind {
            SourceKind::Contract => &CONTRACT_TABLES,
            SourceKind::GoAlert(_) => &GOALERT_TABLES,
        }
    }

    /// The dedup key and suppressed duplicates of these incidents, where the source knows
    /// them (GoAlert); empty for the contract, which has neither.
    #[tracing::instrument(skip_all, fields(incidents = ids.len()), err)]
    pub async fn repeats(&self, ids: &[i64]) -> Result<HashMap<i64, crate::Repeats>> {
        if !self.is_goalert() || ids.is_empty() {
            return Ok(HashMap::new());
        }
        crate::goalert::repeats(self.pg()?, ids).await
    }

    /// The organisation: time zones of people and accounts, teams of policies and services.
    #[tracing::instrument(skip_all, err)]
    pub async fn context(&self) -> Result<Context> {
        if let SourceKind::GoAlert(options) = &self.kind {
            return Ok(crate::goalert::context(options));
        }
        let mut ctx = Context::default();
        let tz = |name: String| Tz::from_str(&name).unwrap_or(chrono_tz::UTC);
        macro_rules! load {
            ($pool:expr) => {{
                let p = $pool;
                let rows: Vec<(i64, String)> = with_retries("reading accounts", || {
                    sqlx::query_as("SELECT id, time_zone FROM accounts").fetch_all(p)
                })
                .await?;
                ctx.account_time_zones = rows.into_iter().map(|(id, z)| (id, tz(z))).collect();
                let rows: Vec<(i64, String)> = with_retries("reading users", || {
                    sqlx::query_as("SELECT id, time_zone FROM users").fetch_all(p)
                })
                .await?;
                ctx.user_time_zones = rows.into_iter().map(|(id, z)| (id, tz(z))).collect();
                let rows: Vec<(i64, Option<i64>)> =
                    with_retries("reading escalation policies", || {
                        sqlx::query_as("SELECT id, team_id FROM escalation_policies").fetch_all(p)
                    })
                    .await?;
                ctx.policy_teams = rows.into_iter().collect();
                let rows: Vec<(i64, Option<i64>)> = with_retries("reading services", || {
                    sqlx::query_as("SELECT id, team_id FROM services").fetch_all(p)
                })
                .await?;
                ctx.service_teams = rows.into_iter().collect();
            }};
        }
        match &self.pool {
            Pool::Postgres(pg) => load!(pg),
            Pool::Sqlite(lite) => load!(lite),
        }
        Ok(ctx)
    }

    /// Ids and incidents of the entries after `after` (at most `limit`, in id order), and of
    /// the listed earlier ids that have become visible since.
    #[tracing::instrument(skip_all, fields(after, gaps = gaps.len(), limit), err)]
    pub async fn new_entries(
        &self,
        after: i64,
        gaps: &[[i64; 2]],
        limit: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let Tables { log, incident, .. } = self.tables();
        let mut rows: Vec<(i64, i64)> = match &self.pool {
            Pool::Postgres(pg) => {
                let sql = format!(
                    "SELECT id, {incident} FROM {log} WHERE id > $1 ORDER BY id LIMIT $2"
                );
                with_retries("reading new log entries", || {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(after)
                        .bind(limit)
                        .fetch_all(pg)
                })
                .await?
            }
            Pool::Sqlite(lite) => {
                with_retries("reading new log entries", || {
                    sqlx::query_as(
                        "SELECT id, incident_id FROM incident_log_entries WHERE id > ? ORDER BY id LIMIT ?",
                    )
                    .bind(after)
                    .bind(limit)
                    .fetch_all(lite)
                })
                .await?
            }
        };
        if !gaps.is_empty() {
            // Each gap range is an index range scan on the primary key.
            let los: Vec<i64> = gaps.iter().map(|g| g[0]).collect();
            let his: Vec<i64> = gaps.iter().map(|g| g[1]).collect();
            let late: Vec<(i64, i64)> = match &self.pool {
                Pool::Postgres(pg) => {
                    let sql = format!(
                        "SELECT l.id, l.{incident} FROM unnest($1::bigint[], $2::bigint[]) AS g(lo, hi) \
                         JOIN {log} l ON l.id BETWEEN g.lo AND g.hi LIMIT $3"
                    );
                    with_retries("reading late log entries", || {
                        sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                            .bind(&los)
                            .bind(&his)
                            .bind(limit)
                            .fetch_all(pg)
                    })
                    .await?
                }
                Pool::Sqlite(lite) => {
                    let pairs: &[[i64; 2]] = gaps;
                    let list = serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into());
                    with_retries("reading late log entries", || {
                        sqlx::query_as(
                            "SELECT l.id, l.incident_id FROM json_each(?) AS g JOIN incident_log_entries l \
                             ON l.id BETWEEN json_extract(g.value, '$[0]') AND json_extract(g.value, '$[1]') LIMIT ?",
                        )
                        .bind(&list)
                        .bind(limit)
                        .fetch_all(lite)
                    })
                    .await?
                }
            };
            rows.extend(late);
        }
        Ok(rows)
    }

    /// The rows of these incidents (those that exist).
    // The spans of the reads a backfill makes by the thousand are at debug level: an enabled
    // span is entered and left at every poll of a read's stream, which cost about 5 % of a
    // backfill's CPU (perf, 2026-12-02). Their errors are still logged.
    #[tracing::instrument(level = "debug", skip_all, fields(incidents = ids.len()), err)]
    pub async fn incidents(&self, ids: &[i64]) -> Result<HashMap<i64, IncidentRow>> {
        self.incidents_where(Which::Ids(ids)).await
    }

    /// The rows of the incidents with ids in `[from, to)`.
    #[tracing::instrument(level = "debug", skip_all, fields(from, to), err)]
    pub async fn incidents_between(&self, from: i64, to: i64) -> Result<HashMap<i64, IncidentRow>> {
        self.incidents_where(Which::Range(from, to)).await
    }

    async fn incidents_where(&self, which: Which<'_>) -> Result<HashMap<i64, IncidentRow>> {
        if self.is_goalert() {
            return match which {
                Which::Ids(ids) => crate::goalert::incidents(self.pg()?, Some(ids), (0, 0)).await,
                Which::Range(from, to) => {
                    crate::goalert::incidents(self.pg()?, None, (from, to)).await
                }
            };
        }
        const COLS: &str = "id, account_id, incident_number, service_id, escalation_policy_id, title, urgency, priority, status, created_at";
        let list = which.json();
        let rows: Vec<IncidentRow> = match &self.pool {
            Pool::Postgres(pg) => {
                let sql = format!("SELECT {COLS} FROM incidents WHERE {}", which.pg("id"));
                let rows = with_retries("reading incidents", || {
                    which
                        .bind_pg(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())))
                        .fetch_all(pg)
                })
                .await?;
                rows.iter()
                    .map(|r| incident_row!(r, r.try_get(9)?))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|source| Error::Read {
                        doing: "decoding incidents",
                        source,
                    })?
            }
            Pool::Sqlite(lite) => {
                let sql = format!("SELECT {COLS} FROM incidents WHERE {}", which.lite("id"));
                let rows = with_retries("reading incidents", || {
                    which
                        .bind_lite(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &list)
                        .fetch_all(lite)
                })
                .await?;
                rows.iter()
                    .map(|r| {
                        let created: String = r.try_get(9)?;
                        incident_row!(r, parse_ts(&created)?)
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|source| Error::Read {
                        doing: "decoding incidents",
                        source,
                    })?
            }
        };
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }

    /// Every entry of these incidents (their whole logs), with the account of each entry.
    #[tracing::instrument(level = "debug", skip_all, fields(incidents = ids.len()), err)]
    pub async fn logs(&self, ids: &[i64]) -> Result<crate::Logs> {
        self.logs_where(Which::Ids(ids), Details::All).await
    }

    /// Every entry of these incidents, to fold: an entry's `details` may be None where no
    /// other entry of its incident equals it in everything else, since the fold compares
    /// details only to tell a duplicate ([`Entry::same_event`]).
    #[tracing::instrument(level = "debug", skip_all, fields(incidents = ids.len()), err)]
    pub async fn logs_to_fold(&self, ids: &[i64]) -> Result<crate::Logs> {
        self.logs_where(Which::Ids(ids), Details::Twins).await
    }

    /// Every entry of the incidents with ids in `[from, to)`, to fold: details as in
    /// [`Source::logs_to_fold`].
    #[tracing::instrument(level = "debug", skip_all, fields(from, to), err)]
    pub async fn logs_between(&self, from: i64, to: i64) -> Result<crate::Logs> {
        self.logs_where(Which::Range(from, to), Details::Twins)
            .await
    }

    async fn logs_where(&self, which: Which<'_>, details: Details) -> Result<crate::Logs> {
        if self.is_goalert() {
            return match which {
                Which::Ids(ids) => crate::goalert::logs(self.pg()?, Some(ids), (0, 0)).await,
                Which::Range(from, to) => crate::goalert::logs(self.pg()?, None, (from, to)).await,
            };
        }
        let mut out = crate::Logs::default();
        let decode_err = |source| Error::Read {
            doing: "decoding log entries",
            source,
        };
        let list = which.json();
        match &self.pool {
            Pool::Postgres(pg) => {
                // A read the standby cancelled (its replay had to remove rows the read still
                // saw) is read again in two halves: shorter statements finish between the
                // primary's cleanups, where the same long one could be cancelled every time.
                let mut parts = vec![which];
                while let Some(part) = parts.pop() {
                    let sql = copy_logs_sql(&part, details);
                    let decoded = match copy_out(pg, &sql, details).await {
                        Ok(decoded) => decoded,
                        Err(source) if !transient(&source) => {
                            return Err(Error::Read {
                                doing: "reading incident logs",
                                source,
                            });
                        }
                        Err(e) => {
                            crate::RETRIES.inc();
                            if let Some((a, b)) = part.halves().filter(|_| cancelled_by_standby(&e))
                            {
                                tracing::warn!(error = %e, "replica statement failed; retrying its incidents in two halves");
                                parts.extend([b, a]);
                                continue;
                            }
                            tracing::warn!(error = %e, "replica statement failed; retrying");
                            with_retries("reading incident logs", || copy_out(pg, &sql, details))
                                .await?
                        }
                    };
                    let logs = decoded.finish().map_err(|e| Error::Read {
                        doing: "decoding log entries",
                        source: sqlx::Error::Decode(e.into()),
                    })?;
                    if out.is_empty() {
                        out = logs;
                    } else {
                        for (incident, (account, log)) in logs {
                            out.entry(incident)
                                .or_insert((account, Vec::new()))
                                .1
                                .extend(log);
                        }
                    }
                }
                if details == Details::Twins {
                    twin_details(pg, &mut out).await?;
                }
            }
            Pool::Sqlite(lite) => {
                let sql = format!(
                    "SELECT {} FROM incident_log_entries WHERE {}",
                    copy::columns(true),
                    which.lite("incident_id")
                );
                let rows = with_retries("reading incident logs", || {
                    which
                        .bind_lite(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &list)
                        .fetch_all(lite)
                })
                .await?;
                let mut add = |e: Entry, account: i64| {
                    out.entry(e.incident_id)
                        .or_insert((account, Vec::new()))
                        .1
                        .push(e);
                };
                for r in &rows {
                    add(
                        lite_entry(r).map_err(decode_err)?,
                        r.try_get(11).map_err(decode_err)?,
                    );
                }
            }
        }
        Ok(out)
    }

    /// The created time of the last entry with an id at most `id` (None: there is none),
    /// which is how current facts complete up to `id` are.
    #[tracing::instrument(skip_all, fields(id), err)]
    pub async fn entry_time(&self, id: i64) -> Result<Option<DateTime<Utc>>> {
        let sql = match self.kind {
            SourceKind::Contract => {
                "SELECT created_at FROM incident_log_entries WHERE id <= $1 ORDER BY id DESC LIMIT 1"
            }
            // A log row without a timestamp takes its alert's creation, as the mapping does.
            SourceKind::GoAlert(_) => {
                "SELECT COALESCE(l.timestamp, a.created_at) FROM alert_logs l \
                 JOIN alerts a ON a.id = l.alert_id WHERE l.id <= $1 ORDER BY l.id DESC LIMIT 1"
            }
        };
        let lite = sql.replace("$1", "?");
        let at: Option<Option<DateTime<Utc>>> = match &self.pool {
            Pool::Postgres(pg) => {
                with_retries("reading an entry's time", || {
                    sqlx::query_scalar(sql).bind(id).fetch_optional(pg)
                })
                .await?
            }
            Pool::Sqlite(lite_pool) => {
                with_retries("reading an entry's time", || {
                    sqlx::query_scalar(sqlx::AssertSqlSafe(lite.as_str()))
                        .bind(id)
                        .fetch_optional(lite_pool)
                })
                .await?
            }
        };
        Ok(at.flatten())
    }

    /// The backfill's starting point, read in this order so that every entry visible up to
    /// the high-water mark belongs to an incident inside the bounds: the largest entry id,
    /// then the smallest and largest incident id in the log (0, 0 for an empty log).
    #[tracing::instrument(skip_all, err)]
    pub async fn bounds(&self) -> Result<(i64, i64, i64)> {
        let Tables { log, incident, .. } = self.tables();
        let max_id = format!("SELECT COALESCE(MAX(id), 0) FROM {log}");
        let incidents =
            format!("SELECT COALESCE(MIN({incident}), 0), COALESCE(MAX({incident}), 0) FROM {log}");
        let (high, (lo, hi)): (i64, (i64, i64)) = on_source!(&self.pool, p => {
            let high = with_retries("measuring the replica", || {
                sqlx::query_scalar(sqlx::AssertSqlSafe(max_id.as_str())).fetch_one(p)
            })
            .await?;
            let bounds = with_retries("measuring the replica", || {
                sqlx::query_as(sqlx::AssertSqlSafe(incidents.as_str())).fetch_one(p)
            })
            .await?;
            (high, bounds)
        });
        Ok((high, lo, hi))
    }

    /// The ranges `[lo, hi]` of ids in `(from, to]` that are not visible (yet).
    #[tracing::instrument(skip_all, fields(from, to), err)]
    pub async fn missing_ids(&self, from: i64, to: i64) -> Result<Vec<[i64; 2]>> {
        const SQL_LITE: &str =
            "SELECT id FROM incident_log_entries WHERE id > ? AND id <= ? ORDER BY id";
        let sql_pg = format!(
            "SELECT id FROM {} WHERE id > $1 AND id <= $2 ORDER BY id",
            self.tables().log
        );
        let mut present: Vec<i64> = Vec::new();
        let mut start = from;
        while start < to {
            let end = to.min(start.saturating_add(IDS_PER_READ));
            present.extend(match &self.pool {
                Pool::Postgres(p) => {
                    with_retries("reading recent entry ids", || {
                        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql_pg.as_str()))
                            .bind(start)
                            .bind(end)
                            .fetch_all(p)
                    })
                    .await?
                }
                Pool::Sqlite(p) => {
                    with_retries("reading recent entry ids", || {
                        sqlx::query_scalar::<_, i64>(SQL_LITE)
                            .bind(start)
                            .bind(end)
                            .fetch_all(p)
                    })
                    .await?
                }
            });
            start = end;
        }
        let mut missing = Vec::new();
        let mut next = from + 1;
        for id in present.into_iter().chain(std::iter::once(to + 1)) {
            if id > next {
                missing.push([next, id - 1]);
            }
            next = id + 1;
        }
        Ok(missing)
    }

    /// The largest entry id and the number of incidents, for progress reporting.
    #[tracing::instrument(skip_all, err)]
    pub async fn extent(&self) -> Result<(i64, i64)> {
        let Tables { log, incidents, .. } = self.tables();
        let sql =
            format!("SELECT COALESCE(MAX(id), 0), (SELECT count(*) FROM {incidents}) FROM {log}");
        on_source!(&self.pool, p => {
            with_retries("measuring the replica", || {
                sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_one(p)
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(w: Which<'_>) -> (i64, i64) {
        match w {
            Which::Range(a, b) => (a, b),
            Which::Ids(ids) => (ids[0], ids[ids.len() - 1]),
        }
    }

    #[test]
    fn a_cancelled_read_splits_into_halves_down_to_one_incident() {
        let (a, b) = Which::Range(10, 15).halves().unwrap();
        assert_eq!((bounds(a), bounds(b)), ((10, 12), (12, 15)));
        assert!(Which::Range(7, 8).halves().is_none());
        let ids = [3, 5, 8];
        let (a, b) = Which::Ids(&ids).halves().unwrap();
        assert_eq!((bounds(a), bounds(b)), ((3, 3), (5, 8)));
        assert!(Which::Ids(&ids[..1]).halves().is_none());
        let sql = copy_logs_sql(&Which::Range(1, 9), Details::Twins);
        assert!(sql.contains("incident_id >= 1 AND incident_id < 9"));
        assert!(!sql.contains("details"), "{sql}");
        assert!(copy_logs_sql(&Which::Range(1, 9), Details::All).contains("details"));
    }
}
