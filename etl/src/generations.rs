//! Switching and dropping generations of the facts table: the orchestration behind
//! `mttx generations`, with the state's records (`mttx-state`) and the tables' files.
//!
//! A switch first catches the target up with the log (it stopped following it when it
//! stopped being served), then serves it with one UPDATE. A drop is recorded in the state
//! before any file is deleted, so a drop killed partway is listed as `dropping` and the
//! next drop finishes it.

use mttx_replica::Source;
use mttx_state::{Generation, GenerationStatus, State};

use crate::run::{RunOptions, Summary, run};
use crate::sink::delta::delete_table;
use crate::{Error, Result, Shutdown};

/// What a generations command will not do, and what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("there is no generation {0}; `mttx generations list` shows them")]
    NoSuchGeneration(i64),
    #[error("no generation was served before this one")]
    NoPrevious,
    #[error("generation {0} is already served")]
    AlreadyServed(i64),
    #[error(
        "generation {id} (metrics version {versions}) is still being built; run the `mttx reprocess` that started it again to finish it"
    )]
    StillBuilding { id: i64, versions: String },
    #[error("generation {0} is the one served; serve another first (`mttx generations switch`)")]
    DropServed(i64),
    #[error(
        "generation {id} (metrics version {versions}) is being built, or a reprocess building it \
         was stopped: if no `mttx reprocess` is running, drop it with --force"
    )]
    DropBuilding { id: i64, versions: String },
    #[error(
        "there is no table at {location} (seen from {cwd}): run this where the ETL runs, as \
         locations are kept as given; --force forgets the generation anyway"
    )]
    NoTable { location: String, cwd: String },
    #[error("generation {0} changed meanwhile: it is served now, and kept")]
    ServedMeanwhile(i64),
    #[error("generation {0} changed meanwhile: another command dropped it")]
    DroppedMeanwhile(i64),
    #[error(
        "account {account} has no incidents in the served facts (generation {generation}): check the id"
    )]
    UnknownAccount { account: i64, generation: i64 },
}

/// The generation served and every generation of the facts at `base` (those being dropped
/// included), oldest first.
pub async fn list(state: &State, base: &str) -> Result<(Generation, Vec<Generation>)> {
    let served = state.serving(base).await?;
    let mut all = state.generations(base).await?;
    all.extend(state.drops(base).await?);
    all.sort_by_key(|g| g.id);
    Ok((served, all))
}

/// Which generation to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Id(i64),
    /// The one served before the last switch.
    Previous,
}

/// What a switch did.
#[derive(Debug)]
pub struct Switched {
    pub from: Generation,
    pub to: Generation,
    /// The catch-up with the log before the switch.
    pub caught_up: Summary,
}

/// Generation `id`, or a refusal that says where to look.
async fn generation(state: &State, base: &str, id: i64) -> Result<Generation> {
    state
        .generation(base, id)
        .await?
        .ok_or(Error::Generations(Refusal::NoSuchGeneration(id)))
}

/// Serves another ready generation of the facts at `base`, after catching it up with the
/// log from `source` (it stopped following the log when it stopped being served).
#[tracing::instrument(skip_all, fields(base, ?target), err)]
pub async fn switch(
    source: &Source,
    state: &State,
    base: &str,
    target: Target,
    shutdown: Shutdown,
) -> Result<Switched> {
    let served = state.serving(base).await?;
    let to = match target {
        Target::Id(id) => generation(state, base, id).await?,
        Target::Previous => state
            .previous_generation(base)
            .await?
            .ok_or(Refusal::NoPrevious)?,
    };
    if to.id == served.id {
        return Err(Refusal::AlreadyServed(to.id).into());
    }
    if to.status != GenerationStatus::Ready {
        return Err(Refusal::StillBuilding {
            id: to.id,
            versions: to.describe_versions(),
        }
        .into());
    }
    let mut facts = crate::sink::delta::FactsTable::open(&to.location).await?;
    let opts = RunOptions {
        once: true,
        upkeep_every: None,
        metrics_version: to.metrics_version,
        account_versions: to.account_versions.clone(),
        shutdown,
        ..Default::default()
    };
    let caught_up = run(source, &mut facts, state, &opts).await?;
    state.switch_generation(base, to.id, served.id).await?;
    Ok(Switched {
        from: served,
        to,
        caught_up,
    })
}

/// What a drop did.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Drops earlier commands started and did not finish, finished now (with the number of
    /// files deleted).
    pub finished: Vec<(Generation, u64)>,
    /// The generation asked for, if it was not among those (with the files deleted).
    pub dropped: Option<(Generation, u64)>,
    /// It was the one `switch --previous` would go back to.
    pub was_previous: bool,
}

/// Deletes a dropping generation's table, saying how to finish if that fails.
async fn delete(g: &Generation) -> Result<u64> {
    delete_table(&g.location)
        .await
        .map_err(|source| Error::NotDeleted {
            id: g.id,
            location: g.location.clone(),
            source: Box::new(source),
        })
}

/// Drops generation `id` of the facts at `base`: its whole table and its entry. Never the
/// served one; one being built or whose local table is not found only with `force`. Drops
/// that earlier commands left unfinished are finished first.
#[tracing::instrument(skip_all, fields(base, id, force), err)]
pub async fn drop(state: &State, base: &str, id: i64, force: bool) -> Result<Dropped> {
    let mut out = Dropped::default();
    for g in state.drops(base).await? {
        let files = delete(&g).await?;
        state.dropped(g.id).await?;
        let done = g.id == id;
        out.finished.push((g, files));
        if done {
            return Ok(out);
        }
    }
    let served = state.serving(base).await?;
    let target = generation(state, base, id).await?;
    if target.id == served.id {
        return Err(Refusal::DropServed(id).into());
    }
    if target.status != GenerationStatus::Ready && !force {
        return Err(Refusal::DropBuilding {
            id,
            versions: target.describe_versions(),
        }
        .into());
    }
    if !target.location.contains("://")
        && !std::path::Path::new(&target.location).exists()
        && !force
    {
        return Err(Refusal::NoTable {
            location: target.location.clone(),
            cwd: std::env::current_dir().map_or("?".into(), |d| d.display().to_string()),
        }
        .into());
    }
    let previous = state.previous_generation(base).await?;
    // Recorded as dropping, in one transaction that checks it is not served (and no longer
    // `ready`, so nothing switches to it), before any file is deleted.
    if !state.start_drop(base, id).await? {
        return Err(match state.generation(base, id).await? {
            Some(_) => Refusal::ServedMeanwhile(id),
            None => Refusal::DroppedMeanwhile(id),
        }
        .into());
    }
    let files = delete(&target).await?;
    state.dropped(id).await?;
    out.was_previous = previous.is_some_and(|p| p.id == id);
    out.dropped = Some((target, files));
    Ok(out)
}
