//! What a run is asked to do ([`RunOptions`]) and what it did ([`Summary`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Shutdown;
use crate::backfill::{BackfillOptions, BackfillSummary};
use crate::transform::{MetricsVersion, Versions};

/// The largest read of a backfill range unless asked otherwise, in incident ids.
pub const READ_INCIDENTS: i64 = 5_000;

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Catch up and exit (true) or keep following the log.
    pub once: bool,
    /// Log entries read per incremental batch (one facts commit each).
    pub batch_entries: i64,
    /// Pause between polls when following and nothing is new.
    pub poll: Duration,
    /// How long a skipped id is looked for before it is taken as rolled back.
    pub gap_ttl: Duration,
    /// The metrics version facts are folded with…
    pub metrics_version: MetricsVersion,
    /// …except these accounts' (a generation made by `mttx reprocess --account`).
    pub account_versions: std::collections::BTreeMap<i64, MetricsVersion>,
    pub worker_id: String,
    /// Backfill worker tasks in this process (following needs one; the rest stand by).
    pub workers: usize,
    /// Incident ids per backfill range.
    pub range_incidents: i64,
    /// Incident ids per read statement inside a range (None: a tenth of the range, at most
    /// [`READ_INCIDENTS`]); never more than the range.
    pub read_incidents: Option<i64>,
    /// How long a lease (a backfill range, or the lead of the incremental ETL) lasts
    /// without a heartbeat; a crashed worker's work is taken over after this.
    pub lease_ttl: Duration,
    /// Table upkeep while following: how often (None: never).
    pub upkeep_every: Option<Duration>,
    /// Table upkeep keeps unreferenced data files this long (readers of older versions).
    pub retain: Duration,
    /// Cancelled to stop this run at the next batch boundary (the binary cancels it on
    /// SIGINT/SIGTERM; a follower's child token when another facts generation is served).
    pub shutdown: Shutdown,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            once: true,
            batch_entries: 50_000,
            poll: Duration::from_secs(1),
            gap_ttl: Duration::from_secs(600),
            metrics_version: MetricsVersion::V1,
            account_versions: Default::default(),
            worker_id: worker_id(),
            workers: crate::backfill::WORKERS,
            range_incidents: 50_000,
            read_incidents: None,
            lease_ttl: Duration::from_secs(30),
            upkeep_every: Some(Duration::from_secs(3600)),
            retain: Duration::from_secs(7 * 24 * 3600),
            shutdown: Shutdown::new(),
        }
    }
}

impl RunOptions {
    /// Whether this run was asked to stop.
    pub(super) fn stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Each account's metrics version.
    pub fn versions(&self) -> Versions {
        Versions {
            default: self.metrics_version,
            accounts: self.account_versions.clone(),
        }
    }

    pub(super) fn backfill(&self) -> BackfillOptions {
        BackfillOptions {
            workers: self.workers.max(1),
            range_incidents: self.range_incidents.max(1),
            read_incidents: self
                .read_incidents
                .unwrap_or((self.range_incidents / 10).min(READ_INCIDENTS))
                .min(self.range_incidents)
                .max(1),
            lease_ttl: self.lease_ttl,
            versions: self.versions(),
            worker_id: self.worker_id.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// This process's name in leases: host, pid and start time (pids repeat across
/// containers and restarts; the time tells them apart).
fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "mttx".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{host}-{}-{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub backfill: Option<BackfillSummary>,
    pub batches: i64,
    pub entries_read: i64,
    pub incidents_written: i64,
    pub quarantined: BTreeMap<&'static str, i64>,
    pub facts_version: i64,
    pub high_water: i64,
    pub open_gaps: usize,
    pub upkeeps: i64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(b) = &self.backfill {
            writeln!(
                f,
                "backfill: {} ranges in the plan; this process committed {} ({} found already committed)",
                b.ranges, b.ranges_committed, b.ranges_found_done
            )?;
        }
        writeln!(
            f,
            "{} batches: {} log entries read, {} incidents written, facts table version {}",
            self.batches, self.entries_read, self.incidents_written, self.facts_version
        )?;
        writeln!(
            f,
            "read up to entry {} ({} ids still awaited)",
            self.high_water, self.open_gaps
        )?;
        let bad: i64 = self.quarantined.values().sum();
        writeln!(f, "quarantined: {bad}")?;
        for (reason, n) in &self.quarantined {
            writeln!(f, "  {reason:<24} {n}")?;
        }
        if self.upkeeps > 0 {
            writeln!(f, "table upkeep rounds: {}", self.upkeeps)?;
        }
        write!(
            f,
            "took {:.1} s: {:.0} entries/s",
            self.elapsed.as_secs_f64(),
            self.entries_read as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_a_tenth_of_a_range_at_most_5000_unless_asked() {
        let read = |range_incidents, read_incidents| {
            RunOptions {
                range_incidents,
                read_incidents,
                ..Default::default()
            }
            .backfill()
            .read_incidents
        };
        assert_eq!(read(50_000, None), 5_000);
        assert_eq!(read(1_000_000, None), 5_000);
        assert_eq!(read(300, None), 30);
        assert_eq!(read(5, None), 1);
        assert_eq!(read(50_000, Some(25_000)), 25_000);
        // Never more than the range, never less than one.
        assert_eq!(read(10_000, Some(25_000)), 10_000);
        assert_eq!(read(10_000, Some(0)), 1);
    }
}
