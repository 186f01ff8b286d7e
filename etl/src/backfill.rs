//! Backfill: all history, by incident ranges, in parallel, exactly once.
//!
//! A fresh facts table gets a *plan*, stored as a property of the table itself (so it is
//! atomic, survives the state database and is the same for every worker of a fleet): the
//! entry high-water mark at planning time, the ids then missing just below it, and the span
//! of incident ids in the log, cut into ranges. Each range is a lease in the state database;
//! workers (tasks of this process and other processes) claim ranges, read them in short
//! statements of a few thousand incidents (the next read running while one is folded),
//! fold every incident from its whole log, and
//! append the range's facts in one commit that carries the Delta application transaction
//! `mttx-backfill:<plan>:<range>`. A range whose transaction is in the table is done,
//! whoever did it and whatever the lease table says; a crashed worker's lease expires and
//! another worker redoes the range from scratch. Memory is bounded by one range's facts and
//! two reads' entries per worker, whatever the size of history.
//!
//! When every range is committed, the incremental ETL starts from the plan's high-water mark
//! and looks again for the ids that were missing when the plan was made.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use mttx_replica::Source;
use mttx_state::leases::heartbeat;
use mttx_state::{Lease, State};

use crate::sink::append::Appender;
use crate::sink::delta::FactsTable;
use crate::sink::quarantine;
use crate::transform::fold::fold_all;
use crate::transform::{MetricsVersion, Versions};
use crate::{Error, Fact, Result, Shutdown};

/// The table property holding the plan.
pub const PLAN_PROPERTY: &str = "mttx.backfill.plan";
/// How far below the high-water mark the plan looks for ids not visible yet.
const GAP_WINDOW: i64 = 100_000;

/// Backfill workers in one process unless told otherwise. On 2 cores, three finished a
/// 10M-entry backfill sooner than two (ETL / COPY 1.49–1.50 against 1.62–1.64 at the
/// median, on two machines) and four later than three: a worker waits on the replica's
/// reads and its commits, and a third keeps the cores busy meanwhile. Each holds one range's
/// facts, 25–40 MiB at the default range size (BENCHMARKS.md).
pub const WORKERS: usize = 3;

/// How a backfill is cut and run.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Worker tasks in this process.
    pub workers: usize,
    /// Incident ids per range (one lease, one commit).
    pub range_incidents: i64,
    /// Incident ids per read statement inside a range.
    pub read_incidents: i64,
    /// How long a range's lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// Each account's metrics version.
    pub versions: Versions,
    pub worker_id: String,
    /// Cancelled to stop: workers finish the range they hold and give back the rest.
    pub shutdown: Shutdown,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            workers: WORKERS,
            range_incidents: 50_000,
            read_incidents: 5_000,
            lease_ttl: Duration::from_secs(60),
            versions: MetricsVersion::V1.into(),
            worker_id: "mttx".into(),
            shutdown: Shutdown::new(),
        }
    }
}

/// The backfill of one facts table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Tells this plan's transactions and leases from any other plan's.
    pub nonce: String,
    /// Every entry id up to here that was visible at planning time is covered.
    pub high_water: i64,
    /// Id ranges `[lo, hi]` below `high_water` not visible at planning time (the
    /// incremental ETL looks again).
    pub gaps: Vec<[i64; 2]>,
    /// Incident ids `first..=last` are covered, in ranges of `range_incidents`.
    pub first_incident: i64,
    pub last_incident: i64,
    pub range_incidents: i64,
    /// UNIX seconds of planning.
    pub planned_at: i64,
}

impl Plan {
    /// The ranges `[start, end)` of the plan.
    pub fn ranges(&self) -> Vec<(i64, i64)> {
        if self.high_water == 0 {
            return Vec::new();
        }
        let step = self.range_incidents.max(1);
        let end = self.last_incident.saturating_add(1);
        (self.first_incident..=self.last_incident)
            .step_by(step as usize)
            .map(|s| (s, s.saturating_add(step).min(end)))
            .collect()
    }

    pub fn lease_prefix(&self, table_id: &str) -> String {
        format!("backfill/{table_id}/{}/", self.nonce)
    }

    fn lease_name(&self, table_id: &str, start: i64) -> String {
        format!("{}{start:019}", self.lease_prefix(table_id))
    }

    /// The Delta application transaction that marks range `start` committed.
    pub fn app_id(&self, start: i64) -> String {
        format!("mttx-backfill:{}:{start}", self.nonce)
    }

    /// Incident ids covered.
    pub fn incidents(&self) -> u64 {
        if self.high_water == 0 {
            0
        } else {
            (self.last_incident.saturating_sub(self.first_incident))
                .saturating_add(1)
                .max(0) as u64
        }
    }
}

/// The table's plan, made now (from the replica) if it has none. Concurrent callers agree:
/// the first plan committed to the table wins.
pub async fn ensure_plan(
    source: &Source,
    facts: &mut FactsTable,
    opts: &BackfillOptions,
) -> Result<Plan> {
    let parse = |text: &str| {
        serde_json::from_str::<Plan>(text).map_err(|source| Error::Stored {
            what: "backfill plan",
            doing: "read",
            source,
        })
    };
    if let Some(text) = facts.property(PLAN_PROPERTY) {
        return parse(&text);
    }
    let (high_water, first, last) = source.bounds().await?;
    let gaps = if high_water > 0 {
        source
            .missing_ids((high_water - GAP_WINDOW).max(0), high_water)
            .await?
    } else {
        Vec::new()
    };
    let now = chrono::Utc::now();
    let plan = Plan {
        nonce: format!("{:x}{:x}", now.timestamp_millis(), std::process::id()),
        high_water,
        gaps,
        first_incident: first,
        last_incident: last,
        range_incidents: opts.range_incidents.max(1),
        planned_at: now.timestamp(),
    };
    let text = serde_json::to_string(&plan).map_err(|source| Error::Stored {
        what: "backfill plan",
        doing: "written",
        source,
    })?;
    let stored = facts.set_property_once(PLAN_PROPERTY, &text).await?;
    let plan = parse(&stored)?;
    tracing::info!(
        high_water = plan.high_water,
        incidents = plan.incidents(),
        ranges = plan.ranges().len(),
        awaited_id_ranges = plan.gaps.len(),
        "backfill planned"
    );
    Ok(plan)
}

/// What this process's workers did.
#[derive(Debug, Clone, Default)]
pub struct BackfillSummary {
    pub ranges: usize,
    pub ranges_committed: usize,
    pub ranges_found_done: usize,
    pub entries_read: i64,
    pub incidents_written: i64,
    pub quarantined: BTreeMap<&'static str, i64>,
}

impl BackfillSummary {
    fn add(&mut self, other: BackfillSummary) {
        self.ranges_committed += other.ranges_committed;
        self.ranges_found_done += other.ranges_found_done;
        self.entries_read += other.entries_read;
        self.incidents_written += other.incidents_written;
        for (k, v) in other.quarantined {
            *self.quarantined.entry(k).or_default() += v;
        }
    }
}

struct Shared {
    source: Source,
    state: State,
    facts_uri: String,
    plan: Plan,
    prefix: String,
    opts: BackfillOptions,
    run_id: i64,
    bar: Option<ProgressBar>,
}

fn bar(plan: &Plan) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(plan.incidents());
    bar.set_style(
        ProgressStyle::with_template(
            "backfill {bar:40} {human_pos}/{human_len} incident ids {per_sec} [{elapsed_precise}, ETA {eta}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Runs `workers` tasks over the plan's ranges until every range is committed (by this
/// process or another).
pub async fn run(
    source: &Source,
    state: &State,
    facts: &FactsTable,
    plan: &Plan,
    opts: &BackfillOptions,
    run_id: i64,
) -> Result<BackfillSummary> {
    let table_id = facts.table_id()?;
    let ranges = plan.ranges();
    let items: Vec<(String, serde_json::Value)> = ranges
        .iter()
        .map(|&(s, e)| {
            (
                plan.lease_name(&table_id, s),
                serde_json::json!({ "start": s, "end": e }),
            )
        })
        .collect();
    state.add_leases(&items).await?;
    let prefix = plan.lease_prefix(&table_id);
    let (total, done) = state.lease_counts(&prefix).await?;
    let m = crate::metrics::get();
    m.backfill_ranges.set(total);
    m.backfill_ranges_done.set(done);
    let mut summary = BackfillSummary {
        ranges: ranges.len(),
        ..BackfillSummary::default()
    };
    if done >= total {
        return Ok(summary);
    }
    tracing::info!(
        ranges = total,
        done,
        workers = opts.workers,
        "backfill starting"
    );
    let shared = Arc::new(Shared {
        source: source.clone(),
        state: state.clone(),
        facts_uri: facts.uri().to_owned(),
        plan: plan.clone(),
        prefix,
        opts: opts.clone(),
        run_id,
        bar: bar(plan),
    });
    if let Some(bar) = &shared.bar {
        bar.set_position((done as u64).saturating_mul(plan.range_incidents as u64));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..opts.workers.max(1) {
        let shared = shared.clone();
        tasks.spawn(async move { worker(&shared, n).await });
    }
    let started = Instant::now();
    let mut first_error = None;
    let mut report = tokio::time::interval(Duration::from_secs(5));
    report.tick().await;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(part))) => summary.add(part),
                // A stop: the other workers finish their ranges and stop too.
                Some(Ok(Err(Error::Stopped))) => {
                    first_error.get_or_insert(Error::Stopped);
                }
                Some(Ok(Err(e))) => {
                    // One failed worker stops the others: the error is what needs fixing.
                    tasks.abort_all();
                    first_error.get_or_insert(e);
                }
                Some(Err(join)) if join.is_cancelled() => {}
                Some(Err(join)) => {
                    tasks.abort_all();
                    first_error.get_or_insert(Error::Worker(join));
                }
            },
            _ = report.tick(), if shared.bar.is_none() => {
                let (total, done) = state.lease_counts(&shared.prefix).await?;
                let rate = m.entries_read.get() as f64 / started.elapsed().as_secs_f64().max(1e-9);
                // The ranges this run has left, at the pace of the ranges it has done.
                let eta_s = (done > 0).then(|| {
                    started.elapsed().as_secs_f64() / done as f64 * total.saturating_sub(done) as f64
                });
                tracing::info!(ranges_done = done, of = total, entries_per_s = rate as u64, eta_s = eta_s.map(|s| s.round() as u64), "backfill progress");
            }
        }
    }
    if let Some(bar) = &shared.bar {
        bar.finish_and_clear();
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(summary)
}

/// One worker: claim a range, fold it, commit it, until no range is left.
async fn worker(shared: &Shared, n: usize) -> Result<BackfillSummary> {
    let owner = format!("{}#{n}", shared.opts.worker_id);
    let ttl = shared.opts.lease_ttl.as_secs().max(1) as i64;
    let mut facts = Appender::open(&shared.facts_uri).await?;
    let mut summary = BackfillSummary::default();
    let m = crate::metrics::get();
    loop {
        if shared.opts.shutdown.is_cancelled() {
            return Err(Error::Stopped);
        }
        let Some(lease) = shared.state.claim(&shared.prefix, &owner, ttl).await? else {
            let (total, done) = shared.state.lease_counts(&shared.prefix).await?;
            m.backfill_ranges_done.set(done);
            if done >= total {
                return Ok(summary);
            }
            // The rest is held by other workers; their leases may yet expire.
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let (start, end) = range_of(&lease)?;
        let app_id = shared.plan.app_id(start);
        facts.refresh().await?;
        if facts.txn_version(&app_id).await?.is_some() {
            shared.state.release(&lease, &owner, true).await?;
            summary.ranges_found_done += 1;
            bump_bar(shared, end - start);
            count_done(shared).await;
            continue;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(
            shared.state.clone(),
            lease.clone(),
            owner.clone(),
            ttl,
            lost.clone(),
        ));
        let folded = fold_range(shared, start, end, &lost).await;
        let (rows, part) = match folded {
            Ok(v) => v,
            Err(Error::LeaseLost(name)) => {
                heartbeat.abort();
                tracing::warn!(lease = name, "lost a backfill range to another worker");
                continue;
            }
            Err(e) => {
                heartbeat.abort();
                // Give the range back at once rather than after the lease expires.
                let _ = shared.state.release(&lease, &owner, false).await;
                return Err(e);
            }
        };
        if lost.load(Ordering::SeqCst) || !shared.state.renew(&lease, &owner, ttl).await? {
            heartbeat.abort();
            tracing::warn!(
                lease = lease.name,
                "lost a backfill range before committing it"
            );
            continue;
        }
        let wrote = if rows.is_empty() {
            false
        } else {
            let meta = serde_json::json!({
                "plan": shared.plan.nonce, "start": start, "end": end,
                "worker": owner, "fence": lease.fence,
            });
            facts.append_once(&rows, &app_id, meta).await?
        };
        let released = shared.state.release(&lease, &owner, true).await;
        heartbeat.abort();
        if !released? {
            // Committed (exactly once, by its transaction id), but the lease had been taken
            // over meanwhile: the new holder will find the range committed.
            tracing::warn!(
                lease = lease.name,
                "a backfill range's lease expired while committing it"
            );
        }
        if wrote {
            summary.ranges_committed += 1;
            summary.incidents_written += rows.len() as i64;
            m.incidents_written.inc_by(rows.len() as u64);
            m.facts_version.set(facts.version());
            m.last_commit_unix.set(chrono::Utc::now().timestamp());
        } else if !rows.is_empty() {
            summary.ranges_found_done += 1;
        }
        m.batches.inc();
        count_done(shared).await;
        summary.entries_read += part.entries_read;
        for (k, v) in part.quarantined {
            *summary.quarantined.entry(k).or_default() += v;
        }
    }
}

/// Sets the ranges-done gauge to the plan's count, whichever process did them, after each
/// range (a dashboard follows the backfill's progress). A failed count only leaves the
/// gauge behind until the next range.
async fn count_done(shared: &Shared) {
    match shared.state.lease_counts(&shared.prefix).await {
        Ok((_, done)) => {
            crate::metrics::get().backfill_ranges_done.set(done);
        }
        Err(e) => tracing::debug!(error = %e, "counting the backfill's done ranges failed"),
    }
}

fn range_of(lease: &Lease) -> Result<(i64, i64)> {
    let get = |k: &str| {
        lease
            .payload
            .as_ref()
            .and_then(|p| p.get(k))
            .and_then(serde_json::Value::as_i64)
    };
    match (get("start"), get("end")) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(Error::LeaseWithoutRange(lease.name.clone())),
    }
}

fn bump_bar(shared: &Shared, n: i64) {
    if let Some(bar) = &shared.bar {
        bar.inc(n.max(0) as u64);
    }
}

/// One read of a range: the logs and rows of incidents `[from, to)`.
type Read = (mttx_replica::Logs, HashMap<i64, crate::IncidentRow>);

/// A read running on its own task, cancelled when dropped (a range given up, an error).
struct Prefetch(tokio::task::JoinHandle<Result<Read>>);

impl Prefetch {
    fn start(source: &Source, from: i64, to: i64) -> Self {
        let source = source.clone();
        Self(tokio::spawn(async move {
            let logs = source.logs_between(from, to).await?;
            let incidents = source.incidents_between(from, to).await?;
            Ok((logs, incidents))
        }))
    }

    async fn get(mut self) -> Result<Read> {
        (&mut self.0).await.map_err(Error::Worker)?
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads and folds incidents `[start, end)` in reads of `read_incidents`; quarantines what
/// is bad. Returns the facts rows in incident order. The next read runs while a read is
/// folded, so the replica's work and the fold's overlap.
async fn fold_range(
    shared: &Shared,
    start: i64,
    end: i64,
    lost: &AtomicBool,
) -> Result<(Vec<Fact>, BackfillSummary)> {
    let ctx = shared.source.context().await?;
    let m = crate::metrics::get();
    // Room for a fact per incident id: no copies of a growing list of thousands of rows.
    let mut rows = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0).min(1 << 20));
    let mut part = BackfillSummary::default();
    let step = shared.opts.read_incidents.max(1);
    let next_to = |from: i64| from.saturating_add(step).min(end);
    let mut from = start;
    let mut next = (start < end).then(|| Prefetch::start(&shared.source, start, next_to(start)));
    while let Some(read) = next.take() {
        if lost.load(Ordering::SeqCst) {
            return Err(Error::LeaseLost(format!("incidents {start}..{end}")));
        }
        let to = next_to(from);
        let (logs, incidents) = read.get().await?;
        if to < end {
            next = Some(Prefetch::start(&shared.source, to, next_to(to)));
        }
        let mut ids: Vec<i64> = logs.keys().copied().collect();
        ids.sort_unstable();
        let folded = fold_all(&shared.opts.versions, ids, &incidents, &logs, &ctx);
        quarantine(&shared.state, shared.run_id, &folded).await?;
        rows.extend(folded.facts);
        let entries = folded.entries;
        for i in &folded.issues {
            *part.quarantined.entry(i.reason.as_str()).or_default() += 1;
            crate::metrics::quarantined(i.reason.as_str(), 1);
        }
        part.entries_read += entries as i64;
        m.entries_read.inc_by(entries);
        bump_bar(shared, to - from);
        from = to;
    }
    Ok((rows, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(first: i64, last: i64, step: i64) -> Plan {
        Plan {
            nonce: "n".into(),
            high_water: 10,
            gaps: vec![],
            first_incident: first,
            last_incident: last,
            range_incidents: step,
            planned_at: 0,
        }
    }

    #[test]
    fn ranges_cover_every_incident_once() {
        assert_eq!(plan(1, 10, 4).ranges(), vec![(1, 5), (5, 9), (9, 11)]);
        assert_eq!(plan(7, 7, 100).ranges(), vec![(7, 8)]);
        let p = plan(3, 1000, 7);
        let covered: i64 = p.ranges().iter().map(|(s, e)| e - s).sum();
        assert_eq!(covered, 998);
        assert_eq!(p.incidents(), 998);
        let empty = Plan {
            high_water: 0,
            ..plan(0, 0, 10)
        };
        assert!(empty.ranges().is_empty());
    }

    #[test]
    fn names_sort_in_range_order() {
        let p = plan(1, 100, 10);
        let names: Vec<String> = p.ranges().iter().map(|r| p.lease_name("t", r.0)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names[0].starts_with(&p.lease_prefix("t")));
    }
}
