//! Following the served generation: `etl run` always writes into the generation of the
//! facts that reports are served from. When a reprocess (or `generations switch`) serves
//! another one, the running ETL finishes its batch and goes on in the new one.

use std::time::Duration;

use mttx_replica::Source;
use mttx_state::{Generation, State};

use crate::Result;
use crate::run::{RunOptions, Summary, run};
use crate::sink::delta::FactsTable;

/// How often the follower asks which generation is served.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Runs the ETL on the generation served at `base`, moving to another when it starts
/// being served, until `opts.shutdown` is cancelled (or, with `opts.once`, until caught
/// up). `on_run` hears of each run as it ends: the generation, its table and what it did.
#[tracing::instrument(skip_all, fields(base, once = opts.once), err)]
pub async fn follow_served(
    source: &Source,
    state: &State,
    base: &str,
    opts: &RunOptions,
    mut on_run: impl FnMut(&Generation, &str, &Summary),
) -> Result<()> {
    loop {
        let served = state.serving(base).await?;
        let mut facts = FactsTable::open(&served.location).await?;
        // Cancelled when another generation is served (or when the whole run stops).
        let moved = opts.shutdown.child_token();
        let watch = (!opts.once).then(|| {
            let (state, base, moved, id) =
                (state.clone(), base.to_owned(), moved.clone(), served.id);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(WATCH_EVERY).await;
                    if let Ok(g) = state.serving(&base).await
                        && g.id != id
                    {
                        moved.cancel();
                        return;
                    }
                }
            })
        });
        let run_opts = RunOptions {
            metrics_version: served.metrics_version,
            account_versions: served.account_versions.clone(),
            shutdown: moved.clone(),
            ..opts.clone()
        };
        tracing::info!(source = %source.location(), facts = facts.uri(), generation = served.id,
            metrics_version = served.describe_versions(), once = opts.once, workers = opts.workers,
            "etl starting");
        let summary = run(source, &mut facts, state, &run_opts).await;
        if let Some(w) = watch {
            w.abort();
        }
        on_run(&served, facts.uri(), &summary?);
        if opts.once || opts.shutdown.is_cancelled() || !moved.is_cancelled() {
            return Ok(());
        }
        tracing::info!("another facts generation is served now: following it");
    }
}
