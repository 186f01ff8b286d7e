//! The ETL: read incident log entries from the replica (`mttx-replica`), fold each touched
//! incident's whole log into one facts row ([`transform`]), and commit facts together with
//! the ETL's progress in one Delta transaction ([`sink`]). [`run`] is the loop (a parallel
//! [`backfill`] of all history on a fresh table, then the incremental ETL); [`follow`] keeps
//! a run on whichever generation of the facts is served; [`reprocess`] builds a new
//! generation by another metrics version and [`generations`] switches and drops them.
//! Work is shared with other processes through leases in the state database
//! (`mttx-state`); a [`Shutdown`] token stops every part at its next safe point.

pub mod backfill;
pub mod follow;
pub mod generations;
pub mod metrics;
pub mod reprocess;
pub mod run;
pub mod sink;
pub mod transform;

pub use mttx_facts::{Fact, MetricsVersion, Versions};
pub use transform::fold::{Folded, Issue, Reason, fold};
pub use transform::{Context, Entry, IncidentRow};

/// Stops a run, a backfill or a reprocess at its next safe point (a batch or range
/// boundary): cancelled by the binary's one signal handler, or by the library itself (a
/// follower's child token when another facts generation is served).
pub use tokio_util::sync::CancellationToken as Shutdown;

/// Errors of the ETL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What the ETL keeps in the facts table (its progress, the backfill plan) cannot be
    /// read or written as JSON.
    #[error("the {what} in the facts table cannot be {doing}")]
    Stored {
        what: &'static str,
        doing: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("backfill lease {0} has no range in its payload")]
    LeaseWithoutRange(String),
    #[error("cannot {doing} of the facts table at {location}")]
    Files {
        doing: &'static str,
        location: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a retention of {0:?} is out of range")]
    Retention(std::time::Duration),
    #[error(transparent)]
    Replica(#[from] mttx_replica::Error),
    #[error(transparent)]
    State(#[from] mttx_state::Error),
    #[error(transparent)]
    Location(#[from] mttx_facts::LocationError),
    #[error(transparent)]
    UnknownVersion(#[from] mttx_facts::UnknownVersion),
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
    #[error("a backfill worker failed")]
    Worker(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Generations(#[from] generations::Refusal),
    #[error(
        "generation {id} is no longer served or listed, but its table at {location} is not deleted \
         yet; fix the cause and run `mttx generations drop --id {id}` again"
    )]
    NotDeleted {
        id: i64,
        location: String,
        #[source]
        source: Box<Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use mttx_migrations::canonical_json;
