//! The query engine: DataFusion over the Delta facts table that the ETL writes.
//!
//! A question comes in as an account, a [`Period`] of local dates in an IANA time zone and
//! [`Filters`]; the [`Engine`] reads that account's incidents created in the period (and,
//! for a report, in the previous period of equal length) and answers with:
//! - a [`Report`]: the aggregates of docs/design.md ([`Metrics`]) beside the previous period's,
//!   with absolute and relative deltas ([`Compared`]), account-wide and per [`GroupBy`]
//!   group with the account-wide norm;
//! - a trend: the metrics of each day, week or month ([`Unit`]) of the period;
//! - a drilldown: the incidents behind a number, a [`Page`] at a time ([`Incidents`]), or
//!   one incident's facts row;
//! - the noisy-alerts view ([`Noisy`]);
//! - the rows of PagerDuty's Analytics API ([`analytics`]): an instant range and lists of
//!   teams, services, policies in, [`Tally`] rows per group and local bucket out.
//!
//! DataFusion reads the facts (partitions pruned, filters pushed into the Parquet scan);
//! reports and trends fold the rows into counts, sums and the durations themselves per
//! period or bucket and group in one pass (`aggregate`), and the metric math (exact
//! percentiles as PostgreSQL's `percentile_cont`, means, rates, deltas) is done here in
//! plain Rust.

mod aggregate;
pub mod analytics;
mod drilldown;
mod engine;
mod files;
mod filters;
mod metrics;
pub mod noisy;
mod period;
mod report;
pub mod uncertainty;

pub use analytics::{Buckets, Dimension, Selection, Tally};
pub use drilldown::Incidents;
pub use engine::Engine;
pub use filters::{Filters, Page, Sort};
pub use metrics::{Compared, Metrics, Row, Samples};
pub use mttx_facts::percentile_cont;
pub use noisy::{Burst, Noise, Noisy, NoisyIncidents, NoisyOptions, Repeats};
pub use period::{Period, Unit, YEARS, local_instant, local_midnight, supported_date};
pub use report::{GroupBy, Report, Trend};
pub use uncertainty::{DEFAULT_MIN_SAMPLE, Verdict};

/// Errors of the query engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be answered as asked; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    #[error("facts table error while {doing}")]
    Facts {
        doing: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps a DataFusion or Delta error with what the engine was doing.
fn facts_err<E: std::error::Error + Send + Sync + 'static>(
    doing: &'static str,
) -> impl Fn(E) -> Error {
    move |e| Error::Facts {
        doing,
        source: Box::new(e),
    }
}
