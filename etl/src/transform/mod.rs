//! The transform step: what the fold reads and the fold itself.
//!
//! The fold sees one incident at a time — its row from `incidents` (current state) and
//! every log entry of it — plus a read-only [`Context`] with what it needs of the
//! organisation (people's time zones, policies' teams). It does no I/O.

pub mod fold;

pub use mttx_facts::{MetricsVersion, Versions};
pub use mttx_replica::{Context, Entry, IncidentRow, Ts};
