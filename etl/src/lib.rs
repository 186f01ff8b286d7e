//! The ETL: extract incident log entries from the replica ([`source`]), fold each touched
//! incident's whole log into one facts row ([`transform`]), and commit facts together with
//! the ETL's progress in one Delta transaction ([`sink`]); [`run`] is the loop.

pub mod backfill;
pub mod metrics;
pub mod reprocess;
pub mod run;
pub mod sink;
pub mod source;
pub mod transform;

pub use mttx_facts::Fact;
pub use transform::fold::{Folded, Issue, Reason, fold};
pub use transform::{Context, Entry, IncidentRow, MetricsVersion};

/// Errors of the ETL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error(
        "the replica file {0} does not exist: name an existing SQLite file or a PostgreSQL URL in --source"
    )]
    NoReplica(String),
    #[error(transparent)]
    Database(#[from] mttx_migrations::Error),
    #[error("replica error while {doing}")]
    Source {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("state database error while {doing}")]
    State {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("facts table error while {doing}")]
    Facts {
        doing: &'static str,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("facts table commit conflict: {0}")]
    Conflict(String),
    #[error("lost the lease on {0}: another worker took it over")]
    LeaseLost(String),
    #[error("stopped as asked before the backfill was complete; run again to resume")]
    Stopped,
    #[error("facts data error")]
    Arrow(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use mttx_migrations::canonical_json;
