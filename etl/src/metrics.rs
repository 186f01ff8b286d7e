//! Prometheus counters of the ETL (one set per process, like Prometheus' default registry);
//! `mttx etl run --metrics-addr` serves them as text.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The label of quarantine counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Everything the ETL counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub entries_read: Counter,
    pub incidents_written: Counter,
    pub batches: Counter,
    pub commits: Counter,
    pub commit_conflicts: Counter,
    pub replica_retries: Counter,
    pub quarantined: Family<ReasonLabel, Counter>,
    pub upkeeps: Counter,
    pub gap_ids_given_up: Counter,
    pub high_water: Gauge,
    pub replica_max_id: Gauge,
    pub backfill_ranges: Gauge,
    pub backfill_ranges_done: Gauge,
    pub facts_version: Gauge,
    pub last_commit_unix: Gauge,
    pub data_as_of_unix: Gauge,
}

struct Global {
    metrics: Metrics,
    registry: Registry,
}

static GLOBAL: LazyLock<Global> = LazyLock::new(|| {
    // The replica reader counts its own retries; the ETL exports that counter.
    let metrics = Metrics {
        replica_retries: mttx_replica::RETRIES.clone(),
        ..Metrics::default()
    };
    let mut registry = Registry::with_prefix("mttx_etl");
    let r = &mut registry;
    r.register(
        "entries_read",
        "Log entries read from the replica",
        metrics.entries_read.clone(),
    );
    r.register(
        "incidents_written",
        "Incident facts rows written",
        metrics.incidents_written.clone(),
    );
    r.register(
        "batches",
        "Batches (incremental reads and backfill ranges) completed",
        metrics.batches.clone(),
    );
    r.register(
        "commits",
        "Commits to the facts table",
        metrics.commits.clone(),
    );
    r.register(
        "commit_conflicts",
        "Facts table commits that lost a race with another writer and were redone",
        metrics.commit_conflicts.clone(),
    );
    r.register(
        "replica_retries",
        "Replica statements retried after a transient failure",
        metrics.replica_retries.clone(),
    );
    r.register(
        "quarantined",
        "Bad input quarantined, by reason",
        metrics.quarantined.clone(),
    );
    r.register(
        "upkeeps",
        "Rounds of table upkeep (compaction, checkpoint, vacuum)",
        metrics.upkeeps.clone(),
    );
    r.register(
        "gap_ids_given_up",
        "Log ids awaited below the high-water mark and given up (expired, or too many gaps)",
        metrics.gap_ids_given_up.clone(),
    );
    r.register(
        "high_water",
        "Every log entry id up to this one is in the facts (but awaited gaps)",
        metrics.high_water.clone(),
    );
    r.register(
        "replica_max_id",
        "The largest log entry id seen in the replica",
        metrics.replica_max_id.clone(),
    );
    r.register(
        "backfill_ranges",
        "Incident ranges of the backfill",
        metrics.backfill_ranges.clone(),
    );
    r.register(
        "backfill_ranges_done",
        "Incident ranges of the backfill committed",
        metrics.backfill_ranges_done.clone(),
    );
    r.register(
        "facts_version",
        "The facts table version after this process's last commit",
        metrics.facts_version.clone(),
    );
    r.register(
        "last_commit_unix_seconds",
        "When this process last committed facts",
        metrics.last_commit_unix.clone(),
    );
    r.register(
        "data_as_of_unix_seconds",
        "The replica's created time of the last entry folded with none awaited below it: the facts are complete up to it (the lag is the time since)",
        metrics.data_as_of_unix.clone(),
    );
    Global { metrics, registry }
});

/// The process's counters.
pub fn get() -> &'static Metrics {
    &GLOBAL.metrics
}

/// The counters in Prometheus' text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &GLOBAL.registry);
    out
}

/// Counts quarantined input by reason.
pub fn quarantined(reason: &str, n: u64) {
    get()
        .quarantined
        .get_or_create(&ReasonLabel {
            reason: reason.to_owned(),
        })
        .inc_by(n);
}
