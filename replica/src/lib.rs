//! The replica: the incident-management system's database, read-only, in the contract of
//! docs/design.md (`incident_log_entries`, `incidents`, the organisation's tables).
//!
//! [`rows`] holds the contract's rows as mttx reads them ([`Entry`], [`IncidentRow`]) and
//! what the fold needs of the organisation ([`Context`]); [`Source`] reads them in short
//! statements, retrying what fails transiently; [`Directory`] is what an account's ids
//! stand for (names, time zone, an importer's outside ids). Both the ETL (which folds them) and the
//! server (which shows an incident's timeline) read through here.

mod copy;
pub mod goalert;
pub mod names;
pub mod rows;
mod source;

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;

pub use goalert::{GoAlert, Repeats};
pub use names::{Directory, Kind};
pub use rows::{Context, Entry, IncidentRow, Logs, Ts};
pub use source::{STATEMENT_TIMEOUT, Source, SourceKind, transient, with_retries};

/// Errors of reading the replica.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the replica file {0} does not exist: name an existing SQLite file or a PostgreSQL URL in --source"
    )]
    NoReplica(String),
    #[error(transparent)]
    Open(#[from] mttx_migrations::Error),
    #[error("--source is not a GoAlert database: {0}")]
    NotGoAlert(String),
    #[error(
        "this GoAlert database is at migration {latest}; mttx reads GoAlert from migration {oldest} on \
         (missing columns: {missing}): upgrade GoAlert, or check that --source names its database"
    )]
    GoAlertVersion {
        latest: String,
        oldest: &'static str,
        missing: String,
    },
    #[error(
        "a GoAlert source must be a PostgreSQL URL (GoAlert keeps its data in PostgreSQL), not {0}"
    )]
    GoAlertNotPostgres(String),
    #[error("replica error while {doing}{}", missing_table_hint(.source))]
    Read {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to check when the replica has no table of the contract (PostgreSQL's SQLSTATE 42P01,
/// SQLite's "no such table"): `--source` names some other database, or one of another kind.
fn missing_table_hint(e: &sqlx::Error) -> &'static str {
    let missing = matches!(e, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("42P01") || db.message().starts_with("no such table"));
    if missing {
        " (a table of the replica contract is missing: check that --source names the replica's \
         database; a GoAlert database needs --source-kind goalert, and a PagerDuty account is \
         read with `mttx import pagerduty` into a replica first)"
    } else {
        ""
    }
}

/// Replica statements retried after a transient failure, since the process started (the
/// ETL exports it as `mttx_etl_replica_retries_total`).
pub static RETRIES: LazyLock<Counter> = LazyLock::new(Counter::default);
