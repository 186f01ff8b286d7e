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

use mttx_replica::Source;
use mttx_state::{Generation, GenerationStatus, State};

use crate::generations::Refusal;
use crate::run::{RunOptions, Summary, run};
use crate::sink::delta::{Attribution, FactsTable};
use crate::transform::fold::fold_all;
use crate::transform::{MetricsVersion, Versions};
use crate::{Error, Result};

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

/// The metrics versions a reprocess to `version` builds the new generation with: `version`
/// for every account, or (with `account`) the served generation's versions with that one
/// account's changed.
pub fn target_versions(
    served: &Generation,
    version: MetricsVersion,
    account: Option<i64>,
) -> Versions {
    match account {
        None => version.into(),
        Some(a) => served.versions().with_account(a, version),
    }
}

/// What a reprocess to `target` has to do: `None` when the served generation already has
/// those versions (unless `rebuild`, or a reprocess to them was stopped and can resume).
pub async fn plan(
    state: &State,
    base: &str,
    served: &Generation,
    target: Versions,
    rebuild: bool,
) -> Result<Option<Versions>> {
    let resuming = state.resumable(base, &target).await?.is_some();
    let same = served.versions() == target;
    Ok((!same || rebuild || resuming).then_some(target))
}

/// The served incidents' teams and durations (one account's with `account`, which must
/// have some): what a dry run folds again.
#[tracing::instrument(skip_all, fields(generation = served.id, account), err)]
pub async fn served_attributions(
    served: &Generation,
    account: Option<i64>,
) -> Result<Vec<Attribution>> {
    let all = FactsTable::open(&served.location)
        .await?
        .read_attributions(account)
        .await?;
    if let Some(account) = account
        && all.is_empty()
    {
        return Err(Refusal::UnknownAccount {
            account,
            generation: served.id,
        }
        .into());
    }
    Ok(all)
}

/// Builds (or resumes building) the generation of `opts.versions()` beside `base`, catches
/// it up with the log, marks it ready and, if `switch`, serves it.
#[tracing::instrument(skip_all, fields(base, versions = opts.versions().describe(), switch), err)]
pub async fn reprocess(
    source: &Source,
    state: &State,
    base: &str,
    opts: &RunOptions,
    switch: bool,
) -> Result<Reprocessed> {
    let from = state.serving(base).await?;
    let to = state.building(base, &opts.versions()).await?;
    tracing::info!(
        generation = to.id,
        location = to.location,
        metrics_version = to.describe_versions(),
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
        state.switch_generation(base, to.id, from.id).await?;
        tracing::info!(
            generation = to.id,
            "reprocess: now serving the new generation"
        );
    }
    let to = Generation {
        status: GenerationStatus::Ready,
        ..to
    };
    Ok(Reprocessed {
        from,
        to,
        switched: switch,
        summary,
    })
}

/// One team's numbers over all its history: what the reports' headline metrics are made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Numbers {
    pub incidents: i64,
    pub mtta_p50: Option<f64>,
    pub mtta_p90: Option<f64>,
    pub mttr_p50: Option<f64>,
    pub mttr_p90: Option<f64>,
}

/// How one team's numbers would move.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Movement {
    pub before: Numbers,
    pub after: Numbers,
    /// Incidents that would move to this team from another one (or from none).
    pub moved_in: i64,
    /// Incidents that would move from this team to another one (or to none).
    pub moved_out: i64,
}

/// The durations one side of a team gathers, for exact percentiles.
#[derive(Default)]
struct Durations {
    incidents: i64,
    mtta: Vec<f64>,
    mttr: Vec<f64>,
}

impl Durations {
    fn add(&mut self, f: &Attribution) {
        self.incidents += 1;
        self.mtta.extend(f.seconds_to_first_ack);
        self.mttr.extend(f.seconds_to_resolve);
    }

    fn numbers(mut self) -> Numbers {
        self.mtta.sort_by(f64::total_cmp);
        self.mttr.sort_by(f64::total_cmp);
        let p = mttx_facts::percentile_cont;
        Numbers {
            incidents: self.incidents,
            mtta_p50: p(&self.mtta, 0.5),
            mtta_p90: p(&self.mtta, 0.9),
            mttr_p50: p(&self.mttr, 0.5),
            mttr_p90: p(&self.mttr, 0.9),
        }
    }
}

/// What a reprocess to `version` would change, per account and team (`None`: no team),
/// from the served facts: each served incident is folded again by `version` from the
/// replica (the reprocess's own fold, so either direction is exact) and counted under the
/// team it would have. An incident's durations do not depend on the version, so each
/// team's MTTA and MTTR percentiles after are those of the incidents it would have.
pub async fn dry_run(
    source: &Source,
    served: &[Attribution],
    version: MetricsVersion,
) -> Result<BTreeMap<(i64, Option<i64>), Movement>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let ctx = source.context().await?;
    let ctx = &ctx;
    // Reads of the replica overlap with folding: a few chunks at a time.
    let folded: Vec<Vec<(i64, Option<i64>)>> = futures::stream::iter(served.chunks(5_000))
        .map(|chunk| async move {
            let ids: Vec<i64> = chunk.iter().map(|f| f.incident_id).collect();
            let incidents = source.incidents(&ids).await?;
            let logs = source.logs_to_fold(&ids).await?;
            let folded = fold_all(&version.into(), ids.iter().copied(), &incidents, &logs, ctx);
            Ok::<_, Error>(
                folded
                    .facts
                    .iter()
                    .map(|f| (f.incident_id, f.team_id))
                    .collect(),
            )
        })
        .buffer_unordered(3)
        .try_collect()
        .await?;
    let team_after: HashMap<i64, Option<i64>> = folded.into_iter().flatten().collect();
    type Team = (i64, Option<i64>);
    let mut sides: BTreeMap<Team, (Durations, Durations, i64, i64)> = BTreeMap::new();
    for f in served {
        // An incident the replica no longer folds (gone, or now bad input) keeps its team.
        let after = team_after.get(&f.incident_id).copied().unwrap_or(f.team_id);
        sides.entry((f.account_id, f.team_id)).or_default().0.add(f);
        sides.entry((f.account_id, after)).or_default().1.add(f);
        if after != f.team_id {
            sides.entry((f.account_id, f.team_id)).or_default().3 += 1;
            sides.entry((f.account_id, after)).or_default().2 += 1;
        }
    }
    Ok(sides
        .into_iter()
        .map(|(team, (before, after, moved_in, moved_out))| {
            let movement = Movement {
                before: before.numbers(),
                after: after.numbers(),
                moved_in,
                moved_out,
            };
            (team, movement)
        })
        .collect())
}
