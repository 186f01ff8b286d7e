//! The ETL: extract incident log entries from the replica, fold each incident's entries
//! into one facts row, and commit facts with the ETL's progress in one Delta transaction.
//!
//! So far this crate holds the fold ([`transform`]): the metric definitions as one pure
//! function. Extraction and the facts writer follow (issue 3).

pub mod transform;

pub use transform::fold::{Fact, Folded, Issue, Reason, fold};
pub use transform::{Context, Entry, IncidentRow, MetricsVersion};
