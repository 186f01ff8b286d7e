//! `mttx generations`: list the generations of the facts, switch which one is served,
//! drop one that is not.

use clap::Subcommand;
use mttx_etl::generations::Target;

use super::{Places, shutdown_on_signal};

#[derive(Debug, Subcommand)]
pub enum GenerationsCommand {
    /// Every generation, with its metrics version and which one is served.
    List,
    /// Serve another (ready) generation: `--previous` for the one served before the last
    /// switch. It is first caught up with the log.
    Switch {
        /// The generation to serve.
        #[arg(
            long,
            conflicts_with = "previous",
            required_unless_present = "previous"
        )]
        to: Option<i64>,
        /// The generation served before the last switch.
        #[arg(long)]
        previous: bool,
    },
    /// Delete a generation that is not served: its whole table, and its entry (switching
    /// back to it is no longer possible). An interrupted drop is finished by the next one.
    Drop {
        /// The generation to delete.
        #[arg(long)]
        id: i64,
        /// Also drop a generation still marked as being built (no reprocess of it may be
        /// running), or one whose local table is not found.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(places: &Places, command: GenerationsCommand) -> anyhow::Result<()> {
    let state = places.open_state().await?;
    let base = &places.facts;
    match command {
        GenerationsCommand::List => {
            let (served, all) = mttx_etl::generations::list(&state, base).await?;
            println!("id\tmetrics_version\tstatus\tserved\tlocation");
            for g in all {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    g.id,
                    g.describe_versions(),
                    g.status,
                    if g.id == served.id { "yes" } else { "" },
                    g.location
                );
            }
        }
        GenerationsCommand::Switch { to, previous: _ } => {
            let target = to.map_or(Target::Previous, Target::Id);
            let replica = places.replica(4).await?;
            let shutdown = shutdown_on_signal("finishing the current batch of the catch-up");
            let done =
                mttx_etl::generations::switch(&replica, &state, base, target, shutdown).await?;
            println!(
                "now serving generation {} (metrics version {}; {} entries caught up), was {}",
                done.to.id,
                done.to.describe_versions(),
                done.caught_up.entries_read,
                done.from.id
            );
        }
        GenerationsCommand::Drop { id, force } => {
            let done = mttx_etl::generations::drop(&state, base, id, force).await?;
            for (g, files) in &done.finished {
                println!(
                    "finished dropping generation {} ({}): {files} files deleted",
                    g.id, g.location
                );
            }
            if let Some((g, files)) = &done.dropped {
                println!(
                    "dropped generation {id} (metrics version {}, {}): {files} files deleted",
                    g.describe_versions(),
                    g.location
                );
            }
            if done.was_previous {
                println!(
                    "`mttx generations switch --previous` has no generation to go back to now"
                );
            }
        }
    }
    Ok(())
}
