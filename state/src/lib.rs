//! mttx's own database (the `state/` migrations of mttx-migrations), on PostgreSQL or
//! SQLite: what the ETL and the server keep for themselves, one file per table family.
//!
//! - [`runs`]: a record of every ETL run.
//! - [`quarantine`]: bad input, one row per incident, entry and reason.
//! - [`leases`]: work held by one worker at a time (backfill ranges, the lead of the
//!   incremental ETL), with fences and a [`leases::heartbeat`].
//! - [`tokens`]: API tokens, stored as hashes.
//! - [`sessions`]: dashboard sign-ins, stored as hashes, each tied to its token.
//! - [`generations`]: the generations of the facts table and which one is served.
//! - [`freshness`]: how current each facts table is (`data_as_of`).
//! - [`deliveries`]: the weekly reports sent by mail and webhook.
//!
//! [`dialect`] writes one SQL text for both backends.

use mttx_migrations::{Location, Pool, Schema};

#[macro_use]
mod dialect;
pub mod deliveries;
pub mod freshness;
pub mod generations;
pub mod leases;
pub mod quarantine;
pub mod runs;
pub mod sessions;
pub mod tokens;

pub use deliveries::{Claim, Delivery, Ended, Unsent};
pub use freshness::Freshness;
pub use generations::{Generation, GenerationStatus};
pub use leases::Lease;
pub use quarantine::Quarantined;
pub use runs::RunCounts;
pub use tokens::{Scope, TokenCheck, TokenInfo};

pub use mttx_facts::{MetricsVersion, Versions};

/// Errors of the state database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Open(#[from] mttx_migrations::Error),
    #[error("state database error while {doing}")]
    Sql {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("the payload of lease {lease} in the state database is not JSON")]
    LeasePayload {
        lease: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot draw a random token from the operating system: {0}")]
    Random(getrandom::Error),
    #[error("the state database holds a generation with an unknown metrics version")]
    UnknownVersion(#[from] mttx_facts::UnknownVersion),
    #[error(
        "the state database holds generation status `{0}`, which this mttx does not know (a newer mttx wrote it?)"
    )]
    UnknownStatus(String),
    #[error("no facts generation is served at {0}")]
    NothingServed(String),
    #[error("there is no generation {id} of the facts at {base}")]
    NoSuchGeneration { base: String, id: i64 },
    #[error(
        "facts generation {id} (metrics version {versions}) is still being built; run the `mttx reprocess` that started it again to finish it"
    )]
    StillBuilding { id: i64, versions: String },
    #[error(
        "facts generation {0} is gone (dropped while it was being built?): run the reprocess again"
    )]
    GenerationGone(i64),
    #[error(
        "generation {from} is no longer the one served (another switch or reprocess came first): \
         generation {id} is ready but not served; `mttx generations list` shows what is, \
         `mttx generations switch --to {id}` serves it anyway"
    )]
    NoLongerServed { from: i64, id: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Maps a driver error to [`Error::Sql`], naming what was being done.
pub(crate) fn err(doing: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |source| Error::Sql { doing, source }
}

/// The state database.
#[derive(Debug, Clone)]
pub struct State {
    pool: Pool,
}

/// Whether opening the state failed because another process was creating or migrating it
/// at the time (its CREATE TABLE or ALTER TABLE … ADD COLUMN landed first).
fn racing(e: &mttx_migrations::Error) -> bool {
    let text = format!("{e:?}");
    [
        "database is locked",
        "already exists",
        "UNIQUE constraint",
        "duplicate column name",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

impl State {
    /// Opens (creating and migrating where needed, an SQLite file's folder included) the
    /// state database.
    #[tracing::instrument(skip_all, fields(%location), err)]
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
                Ok::<_, mttx_migrations::Error>(pool)
            }
            .await;
            match opened {
                Ok(pool) => return Ok(Self { pool }),
                Err(e) if attempt < 20 && matches!(location, Location::Sqlite(_)) && racing(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether the database answers a `SELECT 1` (a readiness check).
    pub async fn ping(&self) -> Result<()> {
        let done = match &self.pool {
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        };
        done.map_err(|source| Error::Sql {
            doing: "checking that the state database answers",
            source,
        })
    }
}
