//! The schemas mttx creates and the one way it opens a database.
//!
//! A database is named by a [`Location`]: a PostgreSQL URL or an SQLite file. The replica
//! contract (`source/`), the service's own state (`state/`) and what an importer keeps in a
//! replica it builds (`import/`) each have a migration set per backend; they may share one
//! database because each keeps its own migrations table.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Errors of opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` is not a database location: give a PostgreSQL URL (postgres://user@host/db) \
         or an SQLite file path (./mttx.sqlite or sqlite://./mttx.sqlite)"
    )]
    BadLocation(String),
    #[error("cannot create {}, the folder of {location}", path.display())]
    Folder {
        location: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {location}")]
    Connect {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply the {schema} migrations to {location}")]
    Migrate {
        schema: &'static str,
        location: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a database is: a PostgreSQL server or an SQLite file.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Location {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

impl FromStr for Location {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::BadLocation(s.to_owned()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Location::Postgres(s.to_owned()));
        }
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(Error::BadLocation(s.to_owned()));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if s.contains("://") {
            return Err(Error::BadLocation(s.to_owned()));
        }
        Ok(Location::Sqlite(PathBuf::from(s)))
    }
}

/// Shows the location with any password replaced, so it can go into logs and errors.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Postgres(url) => f.write_str(&redact(url)),
            Location::Sqlite(path) => write!(f, "sqlite file {}", path.display()),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_owned(),
    }
}

/// An open connection pool on either backend.
#[derive(Debug, Clone)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Pool {
    /// Closes every connection and waits until they are closed. Dropping a pool closes them
    /// later, in the background: an SQLite file may still be held open after its writer
    /// returns, and another process changing its journal mode then finds it locked.
    pub async fn close(&self) {
        match self {
            Pool::Postgres(pg) => pg.close().await,
            Pool::Sqlite(lite) => lite.close().await,
        }
    }
}

/// How to open a database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Shown in `pg_stat_activity`, so a replica's operators can tell who is reading.
    pub application_name: String,
    pub max_connections: u32,
    /// Create the SQLite file, and its folder, if they do not exist (never for a replica
    /// that should exist).
    pub create_sqlite: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            application_name: "mttx".into(),
            max_connections: 4,
            create_sqlite: true,
        }
    }
}

/// A pool of up to `max_connections` to the PostgreSQL server `opts` names, after one
/// direct attempt: a server that is down or refuses us is reported at once with its reason
/// (connection refused, no such database, authentication), instead of as the pool's acquire
/// timeout 30 s later.
pub async fn pg_pool(opts: PgConnectOptions, max_connections: u32) -> sqlx::Result<PgPool> {
    sqlx::Connection::close(opts.connect().await?).await?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
}

/// Opens the database at `location`.
pub async fn connect(location: &Location, options: &ConnectOptions) -> Result<Pool> {
    let err = |source| Error::Connect {
        location: location.to_string(),
        source,
    };
    match location {
        Location::Postgres(url) => {
            let opts = PgConnectOptions::from_str(url)
                .map_err(err)?
                .application_name(&options.application_name);
            let pool = pg_pool(opts, options.max_connections).await.map_err(err)?;
            Ok(Pool::Postgres(pool))
        }
        Location::Sqlite(path) => {
            // So the defaults (`.mttx/…`) work in a fresh checkout.
            if options.create_sqlite
                && let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|source| Error::Folder {
                    location: location.to_string(),
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .connect_with(sqlite_options(path, options.create_sqlite))
                .await
                .map_err(err)?;
            Ok(Pool::Sqlite(pool))
        }
    }
}

/// The options every SQLite file of mttx is opened with: WAL so readers do not block the
/// writer, foreign keys on, and a busy timeout instead of immediate `SQLITE_BUSY` errors.
pub fn sqlite_options(path: &Path, create: bool) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
}

/// Which schema a migration set creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The replica contract: for tests, fixtures, the demo and a replica an importer builds
    /// (mttx never migrates a replica it only reads).
    Source,
    /// The service's own tables.
    State,
    /// What an importer keeps beside the contract in a replica it builds (id mapping,
    /// progress, quarantine).
    Import,
}

impl Schema {
    fn name(self) -> &'static str {
        match self {
            Schema::Source => "source",
            Schema::State => "state",
            Schema::Import => "import",
        }
    }

    /// The migration set of this schema for a backend, with its own migrations table so the
    /// two sets can share a database.
    pub fn migrator(self, postgres: bool) -> Migrator {
        let mut migrator = match (self, postgres) {
            (Schema::Source, true) => sqlx::migrate!("source/postgres"),
            (Schema::Source, false) => sqlx::migrate!("source/sqlite"),
            (Schema::State, true) => sqlx::migrate!("state/postgres"),
            (Schema::State, false) => sqlx::migrate!("state/sqlite"),
            (Schema::Import, true) => sqlx::migrate!("import/postgres"),
            (Schema::Import, false) => sqlx::migrate!("import/sqlite"),
        };
        migrator.dangerous_set_table_name(match self {
            Schema::Source => "_mttx_source_migrations",
            Schema::State => "_mttx_state_migrations",
            Schema::Import => "_mttx_import_migrations",
        });
        migrator
    }
}

/// Applies the migrations of `schema` that the database does not have yet.
pub async fn migrate(pool: &Pool, schema: Schema, location: &Location) -> Result<()> {
    let err = |source| Error::Migrate {
        schema: schema.name(),
        location: location.to_string(),
        source,
    };
    match pool {
        Pool::Postgres(pg) => schema.migrator(true).run(pg).await.map_err(err),
        Pool::Sqlite(lite) => schema.migrator(false).run(lite).await.map_err(err),
    }
}

/// The log entry types of the replica contract (docs/design.md); readers keep, count and
/// quarantine any other type.
pub const KNOWN_TYPES: [&str; 15] = [
    "trigger",
    "acknowledge",
    "unacknowledge",
    "assign",
    "delegate",
    "escalate",
    "notify",
    "resolve",
    "annotate",
    "snooze",
    "urgency_change",
    "priority_change",
    "reach_trigger_limit",
    "repeat_escalation_path",
    "exhaust_escalation_path",
];

/// JSON text with object keys sorted at every level, so the same JSON read from PostgreSQL
/// (JSONB reorders keys) and from SQLite compares equal.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_by_scheme_or_as_files() {
        assert!(matches!(
            "postgres://u@h/db".parse(),
            Ok(Location::Postgres(_))
        ));
        assert!(matches!(
            "postgresql://u@h/db".parse(),
            Ok(Location::Postgres(_))
        ));
        assert_eq!(
            "sqlite://./a.sqlite".parse::<Location>().ok(),
            Some(Location::Sqlite("./a.sqlite".into()))
        );
        assert_eq!(
            "a.db".parse::<Location>().ok(),
            Some(Location::Sqlite("a.db".into()))
        );
        assert!("mysql://h/db".parse::<Location>().is_err());
        assert!("".parse::<Location>().is_err());
    }

    #[test]
    fn display_hides_passwords() {
        let loc: Location = "postgres://mttx:s3cret@db:5432/replica".parse().unwrap();
        assert_eq!(loc.to_string(), "postgres://mttx:***@db:5432/replica");
        let loc: Location = "postgres://mttx@db/replica".parse().unwrap();
        assert_eq!(loc.to_string(), "postgres://mttx@db/replica");
    }
}
