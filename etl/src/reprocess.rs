//! Reprocessing: all history folded again by another metrics version into a new generation
//! of the facts table, while reports keep being served from the current one.
//!
//! The new generation is a Delta table of its own beside the served one, built the way
//! any fresh table is (a parallel backfill whose ranges commit exactly once, then the
//! incremental ETL from the backfill's high-water mark), so a reprocess killed at any point
//! resumes where it stopped, and entries that arrive during the rebuild are read from the
//! log like any others. When the new generation has caught up, one UPDATE in the state
//! database makes it the served one: the API and the following ETL pick it up within a
//! second. The previous generation is kept, so switching back is the same UPDATE.

use std::collections::{BTreeMap, HashMap};

use crate::Result;
use crate::run::{RunOptions, Summary, run};
use crate::sink::delta::FactsTable;
use crate::sink::state::{Generation, State};
use crate::source::Source;
use crate::transform::MetricsVersion;

/// What a reprocess did.
#[derive(Debug)]
pub struct Reprocessed {
    /// The generation served before.
    pub from: Generation,
    /// The generation built (served now, unless the switch was left to later).
    pub to: Generation,
    pub switched: bool,
    pub summary: Summary,
}

/// Builds (or resumes building) the generation of `opts.metrics_version` beside `base`,
/// catches it up with the log, marks it ready and, if `switch`, serves it.
pub async fn reprocess(
    source: &Source,
    state: &State,
    base: &str,
    opts: &RunOptions,
    switch: bool,
) -> Result<Reprocessed> {
    let from = state.serving(base, MetricsVersion::V1 as i32).await?;
    let to = state.building(base, opts.metrics_version as i32).await?;
    tracing::info!(
        generation = to.id,
        location = to.location,
        metrics_version = to.metrics_version,
        serving = from.id,
        "reprocess: building a new generation of the facts"
    );
    let mut table = FactsTable::open(&to.location).await?;
    let once = RunOptions {
        once: true,
        upkeep_every: None,
        ..opts.clone()
    };
    let summary = run(source, &mut table, state, &once).await?;
    // What arrived while the backfill ran is read now; the follower of the served
    // generation moves over after the switch and goes on from this table's progress.
    let tail = run(source, &mut table, state, &once).await?;
    tracing::info!(
        entries = tail.entries_read,
        "reprocess: caught up with the log"
    );
    state.generation_ready(to.id).await?;
    if switch {
        state.switch_generation(base, to.id).await?;
        tracing::info!(
            generation = to.id,
            "reprocess: now serving the new generation"
        );
    }
    let to = Generation {
        status: "ready".into(),
        ..to
    };
    Ok(Reprocessed {
        from,
        to,
        switched: switch,
        summary,
    })
}

/// How one team's numbers would move.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Movement {
    pub incidents_before: i64,
    pub incidents_after: i64,
    /// Incidents that would move to this team from another one (or from none).
    pub moved_in: i64,
    /// Incidents that would move from this team to another one (or to none).
    pub moved_out: i64,
}

/// What a reprocess to version 2 would change, per account and team (`None`: no team),
/// from the served facts and the replica's incidents: version 2 attributes an incident to
/// the escalation policy it ended on (the incident row's) and that policy's team.
pub async fn dry_run(
    source: &Source,
    served: &[mttx_facts::Fact],
    version: MetricsVersion,
) -> Result<BTreeMap<(i64, Option<i64>), Movement>> {
    let ids: Vec<i64> = served.iter().map(|f| f.incident_id).collect();
    let mut rows: HashMap<i64, crate::IncidentRow> = HashMap::new();
    for chunk in ids.chunks(10_000) {
        rows.extend(source.incidents(chunk).await?);
    }
    let ctx = source.context().await?;
    let mut out: BTreeMap<(i64, Option<i64>), Movement> = BTreeMap::new();
    for f in served {
        let after = match version {
            MetricsVersion::V1 => f.team_id,
            MetricsVersion::V2 => match rows.get(&f.incident_id) {
                Some(r) => ctx.team_of(Some(r.escalation_policy_id), r.service_id),
                None => f.team_id,
            },
        };
        out.entry((f.account_id, f.team_id))
            .or_default()
            .incidents_before += 1;
        out.entry((f.account_id, after))
            .or_default()
            .incidents_after += 1;
        if after != f.team_id {
            out.entry((f.account_id, f.team_id)).or_default().moved_out += 1;
            out.entry((f.account_id, after)).or_default().moved_in += 1;
        }
    }
    Ok(out)
}
