//! The ETL loop: read what is new in the replica's log, refold every incident it touches
//! from its whole log, quarantine bad input, and commit the facts with the progress.
//!
//! Out-of-order commits: ids come from a sequence at insert, so an entry can become visible
//! after entries with higher ids. Each read notes the ids it skipped below its new
//! high-water mark (gaps) and asks for them again on every later read until they appear or
//! are older than `gap_ttl` (rolled back, or a sequence jump). Gaps are part of the
//! committed progress, so a restart keeps looking for them.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use mttx_replica::Source;
use mttx_state::{RunCounts, State};

use crate::backfill;
use crate::sink::delta::{FactsTable, Gap, Progress};
use crate::sink::quarantine;
use crate::transform::fold::fold_all;
use crate::{Error, Result};

mod options;

pub use options::{RunOptions, Summary};

/// At most this many gap ranges are kept; beyond it the oldest are given up (and counted).
pub const MAX_GAP_RANGES: usize = 10_000;

/// Works out the progress after reading `seen` (ids above `old.high_water` or inside its
/// gaps): seen ids leave their gap (splitting it), expired gaps are given up, and every hole
/// in the newly read ids becomes a gap, however large (a transaction holding many ids).
pub fn advance(old: &Progress, seen: &BTreeSet<i64>, now_s: i64, gap_ttl_s: i64) -> Progress {
    let high_water = seen
        .last()
        .copied()
        .unwrap_or(old.high_water)
        .max(old.high_water);
    let mut gaps: Vec<Gap> = Vec::new();
    for g in old.gaps.iter().filter(|g| now_s - g.since <= gap_ttl_s) {
        let mut lo = g.lo;
        for &id in seen.range(g.lo..=g.hi) {
            if id > lo {
                gaps.push(Gap {
                    lo,
                    hi: id - 1,
                    since: g.since,
                });
            }
            lo = id + 1;
        }
        if lo <= g.hi {
            gaps.push(Gap {
                lo,
                hi: g.hi,
                since: g.since,
            });
        }
    }
    let mut previous = old.high_water;
    for &id in seen.range(old.high_water.saturating_add(1)..) {
        if id > previous + 1 {
            gaps.push(Gap {
                lo: previous + 1,
                hi: id - 1,
                since: now_s,
            });
        }
        previous = id;
    }
    if gaps.len() > MAX_GAP_RANGES {
        gaps.sort_unstable_by_key(|g| (std::cmp::Reverse(g.since), std::cmp::Reverse(g.lo)));
        let dropped = gaps.split_off(MAX_GAP_RANGES);
        let ids: i64 = dropped.iter().map(Gap::len).sum();
        crate::metrics::get().gap_ids_given_up.inc_by(ids as u64);
        tracing::warn!(
            ranges = dropped.len(),
            ids,
            "too many gaps in the log's ids: giving up the oldest"
        );
    }
    gaps.sort_unstable();
    Progress {
        high_water,
        gaps,
        batches: old.batches + 1,
        metrics_version: old.metrics_version,
    }
}

fn bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} entry {pos}/{len} {per_sec} [{elapsed_precise}, ETA {eta}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Runs the ETL until caught up (`once`) or forever: a backfill of all history if the
/// facts table has never been loaded, then incremental batches led by one worker at a time.
#[tracing::instrument(skip_all, fields(facts = facts.uri(), once = opts.once, worker = opts.worker_id), err)]
pub async fn run(
    source: &Source,
    facts: &mut FactsTable,
    state: &State,
    opts: &RunOptions,
) -> Result<Summary> {
    let started = Instant::now();
    let mode = if opts.once { "once" } else { "follow" };
    let run_id = state
        .start_run(&opts.worker_id, mode, opts.metrics_version)
        .await?;
    let result = run_inner(source, facts, state, opts, run_id, started).await;
    let (status, error) = match &result {
        Ok(_) => ("succeeded", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    let counts = result.as_ref().map_or_else(
        |_| RunCounts::default(),
        |s| RunCounts {
            entries_read: s.entries_read,
            incidents_written: s.incidents_written,
            quarantined: s.quarantined.values().sum(),
            facts_version: s.facts_version,
        },
    );
    state
        .finish_run(run_id, status, &counts, error.as_deref())
        .await?;
    result
}

async fn run_inner(
    source: &Source,
    facts: &mut FactsTable,
    state: &State,
    opts: &RunOptions,
    run_id: i64,
    started: Instant,
) -> Result<Summary> {
    let m = crate::metrics::get();
    let (max_id, _) = source.extent().await?;
    m.replica_max_id.set(max_id);
    let mut summary = Summary::default();
    if facts.progress().await?.is_none() {
        let bf_opts = opts.backfill();
        let plan = backfill::ensure_plan(source, facts, &bf_opts).await?;
        let done = backfill::run(source, state, facts, &plan, &bf_opts, run_id).await?;
        summary.entries_read += done.entries_read;
        summary.incidents_written += done.incidents_written;
        summary.batches += (done.ranges_committed) as i64;
        for (k, v) in &done.quarantined {
            *summary.quarantined.entry(k).or_default() += v;
        }
        summary.backfill = Some(done);
        m.high_water.set(plan.high_water);
        facts.refresh().await?;
    }
    let lease_name = format!("follow/{}", facts.table_id()?);
    let ttl = opts.lease_ttl.as_secs().max(1) as i64;
    let mut standing_by = false;
    let mut standing_since: Option<Instant> = None;
    loop {
        let Some(lease) = state.claim_named(&lease_name, &opts.worker_id, ttl).await? else {
            if opts.stopping() {
                break;
            }
            // --once: a dead leader's lease expires within its TTL; a live one keeps the
            // facts current itself, so there is nothing left for this run to do.
            let waited = standing_since.get_or_insert_with(Instant::now).elapsed();
            if opts.once && waited > opts.lease_ttl * 2 {
                tracing::info!(
                    lease = lease_name,
                    "another worker leads the incremental ETL and keeps the facts current; exiting"
                );
                break;
            }
            if !standing_by {
                tracing::info!(
                    lease = lease_name,
                    "another worker leads the incremental ETL; standing by"
                );
                standing_by = true;
            }
            tokio::time::sleep(opts.poll.max(Duration::from_millis(500))).await;
            continue;
        };
        standing_by = false;
        standing_since = None;
        facts.refresh().await?;
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(mttx_state::leases::heartbeat(
            state.clone(),
            lease.clone(),
            opts.worker_id.clone(),
            ttl,
            lost.clone(),
        ));
        let led = lead(source, facts, state, opts, run_id, &lost, &mut summary).await;
        heartbeat.abort();
        match led {
            Ok(()) => {
                state.release(&lease, &opts.worker_id, false).await?;
                break;
            }
            Err(Error::LeaseLost(what)) => {
                tracing::warn!(
                    lease = what,
                    "lost the lead of the incremental ETL; standing by"
                );
            }
            Err(e) => {
                let _ = state.release(&lease, &opts.worker_id, false).await;
                return Err(e);
            }
        }
    }
    summary.facts_version = facts.version();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Where the incremental ETL starts: its last committed progress, else the end of the
/// backfill plan.
async fn start_progress(facts: &FactsTable, opts: &RunOptions) -> Result<Progress> {
    if let Some(p) = facts.progress().await? {
        return Ok(p);
    }
    let mut progress = Progress {
        metrics_version: opts.metrics_version.number(),
        ..Progress::default()
    };
    if let Some(text) = facts.property(backfill::PLAN_PROPERTY) {
        let plan: backfill::Plan = serde_json::from_str(&text).map_err(|source| Error::Stored {
            what: "backfill plan",
            doing: "read",
            source,
        })?;
        progress.high_water = plan.high_water;
        // Awaited from now: the backfill itself may have taken longer than the gaps' TTL.
        let now = chrono::Utc::now().timestamp();
        progress.gaps = plan
            .gaps
            .iter()
            .map(|&[lo, hi]| Gap { lo, hi, since: now })
            .collect();
    }
    Ok(progress)
}

/// Records in the state how current the facts are after `progress` is committed: the
/// created time of the entry at its complete id (`data_as_of`). Only when that id moved
/// (`recorded` remembers the last one). A failure is logged and tried again after the next
/// commit: the facts stay right, only their stated freshness lags.
async fn record_freshness(
    source: &Source,
    facts: &FactsTable,
    state: &State,
    progress: &Progress,
    recorded: &mut Option<i64>,
) {
    let complete_id = progress.complete_id();
    if *recorded == Some(complete_id) {
        return;
    }
    let done = async {
        let data_as_of = source.entry_time(complete_id).await?;
        let table_id = facts.table_id()?;
        state
            .set_freshness(
                &table_id,
                mttx_state::Freshness {
                    complete_id,
                    data_as_of,
                },
            )
            .await?;
        Ok::<_, Error>(data_as_of)
    }
    .await;
    match done {
        Ok(data_as_of) => {
            *recorded = Some(complete_id);
            if let Some(t) = data_as_of {
                crate::metrics::get().data_as_of_unix.set(t.timestamp());
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not record how current the facts are"),
    }
}

/// Incidents whose entries were quarantined as orphans and whose row has since appeared:
/// folds them now (no new entry would touch them otherwise) and clears their orphan records.
/// Commits with the current progress unchanged.
#[allow(
    clippy::too_many_arguments,
    reason = "the lead loop's working set, passed as it is"
)]
async fn refold_adopted_orphans(
    source: &Source,
    facts: &mut FactsTable,
    state: &State,
    opts: &RunOptions,
    ctx: &mttx_replica::Context,
    progress: &Progress,
    run_id: i64,
    cursor: &mut i64,
) -> Result<Option<usize>> {
    const PAGE: i64 = 10_000;
    let orphans = state.orphan_incidents(*cursor, PAGE).await?;
    // Next time the next page, wrapping around at the end.
    *cursor = if (orphans.len() as i64) < PAGE {
        0
    } else {
        orphans.last().copied().unwrap_or(0)
    };
    if orphans.is_empty() {
        return Ok(Some(0));
    }
    let incidents = source.incidents(&orphans).await?;
    if incidents.is_empty() {
        return Ok(Some(0));
    }
    let adopted: Vec<i64> = orphans
        .into_iter()
        .filter(|id| incidents.contains_key(id))
        .collect();
    let logs = source.logs_to_fold(&adopted).await?;
    let folded = fold_all(
        &opts.versions(),
        adopted.iter().copied(),
        &incidents,
        &logs,
        ctx,
    );
    quarantine(state, run_id, &folded).await?;
    if !folded.facts.is_empty() {
        match facts.commit(&folded.facts, progress).await {
            Ok(()) => {}
            // Another writer got in first; the caller re-reads the progress.
            Err(Error::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    state.clear_orphans(&adopted).await?;
    tracing::info!(
        incidents = folded.facts.len(),
        "folded incidents whose row appeared after their entries"
    );
    Ok(Some(folded.facts.len()))
}

/// The incremental ETL, while this worker holds the lead.
async fn lead(
    source: &Source,
    facts: &mut FactsTable,
    state: &State,
    opts: &RunOptions,
    run_id: i64,
    lost: &AtomicBool,
    summary: &mut Summary,
) -> Result<()> {
    let m = crate::metrics::get();
    let mut progress = start_progress(facts, opts).await?;
    let mut ctx = source.context().await?;
    let mut ctx_read = Instant::now();
    let (max_id, _) = source.extent().await?;
    m.replica_max_id.set(max_id);
    m.high_water.set(progress.high_water);
    let bar = bar(max_id.max(0) as u64);
    let mut recorded = None;
    record_freshness(source, facts, state, &progress, &mut recorded).await;
    let mut last_log = Instant::now();
    let mut last_upkeep = Instant::now();
    let check_lead = || {
        if lost.load(Ordering::SeqCst) {
            Err(Error::LeaseLost("the incremental ETL".into()))
        } else {
            Ok(())
        }
    };
    let mut orphans_checked: Option<Instant> = None;
    let mut orphan_cursor = 0_i64;
    loop {
        check_lead()?;
        if opts.stopping() {
            tracing::info!("stopping as asked");
            break;
        }
        if orphans_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            orphans_checked = Some(Instant::now());
            match refold_adopted_orphans(
                source,
                facts,
                state,
                opts,
                &ctx,
                &progress,
                run_id,
                &mut orphan_cursor,
            )
            .await?
            {
                Some(n) => {
                    summary.incidents_written += n as i64;
                    m.incidents_written.inc_by(n as u64);
                }
                None => progress = start_progress(facts, opts).await?,
            }
        }
        let gaps: Vec<[i64; 2]> = progress.gaps.iter().map(|g| [g.lo, g.hi]).collect();
        let rows = source
            .new_entries(progress.high_water, &gaps, opts.batch_entries)
            .await?;
        if rows.is_empty() {
            if opts.once {
                break;
            }
            if let Some(every) = opts.upkeep_every
                && last_upkeep.elapsed() >= every
            {
                last_upkeep = Instant::now();
                check_lead()?;
                match facts.upkeep(opts.retain).await {
                    Ok(report) => {
                        summary.upkeeps += 1;
                        tracing::info!(%report, "facts table upkeep");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "facts table upkeep failed; will try again")
                    }
                }
            }
            tokio::time::sleep(opts.poll).await;
            continue;
        }
        if ctx_read.elapsed() >= Duration::from_secs(60) {
            ctx = source.context().await?;
            ctx_read = Instant::now();
        }
        let seen: BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
        let touched: Vec<i64> = rows
            .iter()
            .map(|r| r.1)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let incidents = source.incidents(&touched).await?;
        let logs = source.logs_to_fold(&touched).await?;

        let folded = fold_all(
            &opts.versions(),
            touched.iter().copied(),
            &incidents,
            &logs,
            &ctx,
        );
        // Quarantine first: it is idempotent, so a crash before the facts commit only
        // repeats it; the facts commit then moves the progress past this batch.
        quarantine(state, run_id, &folded).await?;
        let now_s = chrono::Utc::now().timestamp();
        let next = advance(&progress, &seen, now_s, opts.gap_ttl.as_secs() as i64);
        check_lead()?;
        match facts.commit(&folded.facts, &next).await {
            Ok(()) => {
                progress = next;
                record_freshness(source, facts, state, &progress, &mut recorded).await;
            }
            Err(Error::Conflict(why)) => {
                // Someone else committed first (compaction, or a worker that led before us):
                // redo the batch from what the table now says.
                tracing::info!(why, "facts commit conflicted; redoing the batch");
                progress = start_progress(facts, opts).await?;
                continue;
            }
            Err(e) => return Err(e),
        }

        summary.batches += 1;
        summary.entries_read += rows.len() as i64;
        summary.incidents_written += folded.facts.len() as i64;
        m.batches.inc();
        m.entries_read.inc_by(rows.len() as u64);
        m.incidents_written.inc_by(folded.facts.len() as u64);
        for i in &folded.issues {
            *summary.quarantined.entry(i.reason.as_str()).or_default() += 1;
            crate::metrics::quarantined(i.reason.as_str(), 1);
        }
        summary.high_water = progress.high_water;
        summary.open_gaps = progress.gaps.iter().map(Gap::len).sum::<i64>() as usize;
        summary.facts_version = facts.version();
        m.high_water.set(progress.high_water);
        m.replica_max_id
            .set(m.replica_max_id.get().max(progress.high_water));
        m.facts_version.set(facts.version());
        m.last_commit_unix.set(now_s);
        if let Some(bar) = &bar {
            bar.set_position(progress.high_water.max(0) as u64);
        } else if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            tracing::info!(
                high_water = progress.high_water,
                of = max_id,
                entries = summary.entries_read,
                "etl progress"
            );
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    summary.high_water = progress.high_water;
    summary.open_gaps = progress.gaps.iter().map(Gap::len).sum::<i64>() as usize;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(lo: i64, hi: i64, since: i64) -> Gap {
        Gap { lo, hi, since }
    }

    #[test]
    fn skipped_ids_become_gaps_until_seen_or_expired() {
        let p0 = Progress::default();
        let p1 = advance(&p0, &BTreeSet::from([1, 2, 5]), 100, 600);
        assert_eq!(p1.high_water, 5);
        assert_eq!(p1.gaps, vec![g(3, 4, 100)]);
        // 4 commits late; 3 never does.
        let p2 = advance(&p1, &BTreeSet::from([4, 6]), 200, 600);
        assert_eq!((p2.high_water, p2.gaps.clone()), (6, vec![g(3, 3, 100)]));
        let p3 = advance(&p2, &BTreeSet::from([7]), 800, 600);
        assert_eq!((p3.high_water, p3.gaps), (7, vec![]));
        assert_eq!(p3.batches, 3);
    }

    #[test]
    fn a_large_hole_is_one_gap_and_splits_as_ids_arrive() {
        // A transaction holding 50,000 ids commits after id 50,002 was read.
        let p1 = advance(&Progress::default(), &BTreeSet::from([1, 50_002]), 10, 600);
        assert_eq!(p1.gaps, vec![g(2, 50_001, 10)]);
        let p2 = advance(&p1, &BTreeSet::from([2, 100, 50_001]), 20, 600);
        assert_eq!(p2.gaps, vec![g(3, 99, 10), g(101, 50_000, 10)]);
        assert_eq!(p2.high_water, 50_002);
    }
}
