//! `mttx reprocess`: a new generation of the facts by another metrics version (or a dry
//! run saying how each team's numbers would move).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use mttx_etl::MetricsVersion;
use mttx_etl::reprocess::Movement;
use mttx_etl::run::RunOptions;

use super::etl::{check_lease, check_range, check_workers};
use super::{Places, shutdown_on_signal};

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The metrics version to fold with: 1 attributes incidents to the escalation policy
    /// (and team) at trigger, 2 to the one they ended on.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=2))]
    pub metrics_version: i32,
    /// Backfill workers in this process (other processes running the same command share
    /// the work).
    #[arg(long, default_value_t = mttx_etl::backfill::WORKERS)]
    pub workers: usize,
    /// Incident ids per backfill range (one lease and one commit each).
    #[arg(long, default_value_t = 50_000)]
    pub range_incidents: i64,
    /// Seconds a worker's lease lasts without a heartbeat.
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u64,
    /// Build and catch up, but leave the switch to `mttx generations switch`.
    #[arg(long)]
    pub no_switch: bool,
    /// Change nothing: say how each team's incident count and MTTA/MTTR percentiles (over
    /// all history) would move.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this account's facts change version (the new generation is built whole, the
    /// other accounts' facts by the versions they have now); with --dry-run, only its teams.
    #[arg(long)]
    pub account: Option<i64>,
    /// Rebuild even if the served generation already has this metrics version (after a
    /// fix to the fold, say).
    #[arg(long)]
    pub rebuild: bool,
}

pub async fn run(places: &Places, args: ReprocessArgs) -> anyhow::Result<()> {
    check_workers(args.workers)?;
    check_range(args.range_incidents)?;
    check_lease(args.lease_seconds)?;
    let version = MetricsVersion::try_from(args.metrics_version)?;
    let replica = places.replica((args.workers as u32 + 2).min(16)).await?;
    let state = places.open_state().await?;
    let served = state.serving(&places.facts).await?;
    if args.dry_run {
        let all = mttx_etl::reprocess::served_attributions(&served, args.account).await?;
        let moves = mttx_etl::reprocess::dry_run(&replica, &all, version).await?;
        println!(
            "dry run: metrics version {} (generation {}) -> {version}, {} incidents; nothing is changed",
            args.account.map_or_else(
                || served.describe_versions(),
                |a| served.version_of(a).to_string()
            ),
            served.id,
            all.len()
        );
        print_moves(&moves);
        return Ok(());
    }
    if args.account.is_some() {
        // Refuses an account without incidents before anything is built.
        mttx_etl::reprocess::served_attributions(&served, args.account).await?;
    }
    let target = mttx_etl::reprocess::target_versions(&served, version, args.account);
    let Some(target) =
        mttx_etl::reprocess::plan(&state, &places.facts, &served, target, args.rebuild).await?
    else {
        println!(
            "generation {} already serves metrics version {}: nothing to do (--rebuild builds it again)",
            served.id,
            served.describe_versions()
        );
        return Ok(());
    };
    let opts = RunOptions {
        once: true,
        workers: args.workers,
        range_incidents: args.range_incidents,
        lease_ttl: Duration::from_secs(args.lease_seconds),
        metrics_version: target.default,
        account_versions: target.accounts,
        shutdown: shutdown_on_signal(
            "finishing the current ranges; run the same command again to resume",
        ),
        ..Default::default()
    };
    let started = Instant::now();
    let done =
        mttx_etl::reprocess::reprocess(&replica, &state, &places.facts, &opts, !args.no_switch)
            .await?;
    let s = &done.summary;
    println!(
        "reprocessed into generation {} ({}), metrics version {}\n{s}\n{:.0} entries/s over {:.1} s",
        done.to.id,
        done.to.location,
        done.to.describe_versions(),
        s.entries_read as f64 / started.elapsed().as_secs_f64().max(1e-9),
        started.elapsed().as_secs_f64()
    );
    if done.switched {
        println!(
            "now serving generation {} (was {}); switch back with `mttx generations switch --previous`",
            done.to.id, done.from.id
        );
    } else {
        println!(
            "still serving generation {}; serve the new one with `mttx generations switch --to {}`",
            done.from.id, done.to.id
        );
    }
    Ok(())
}

/// The dry run's table: one row per account and team, 15 tab-separated columns.
fn print_moves(moves: &BTreeMap<(i64, Option<i64>), Movement>) {
    println!(
        "account\tteam\tincidents_now\tincidents_after\tchange\tmoved_in\tmoved_out\t\
         mtta_p50_now_s\tmtta_p50_after_s\tmtta_p90_now_s\tmtta_p90_after_s\t\
         mttr_p50_now_s\tmttr_p50_after_s\tmttr_p90_now_s\tmttr_p90_after_s"
    );
    let s = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    let mut moved = 0;
    for ((account, team), m) in moves {
        moved += m.moved_out;
        let (b, a) = (&m.before, &m.after);
        println!(
            "{account}\t{}\t{}\t{}\t{:+}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            team.map_or("none".to_owned(), |t| t.to_string()),
            b.incidents,
            a.incidents,
            a.incidents - b.incidents,
            m.moved_in,
            m.moved_out,
            s(b.mtta_p50),
            s(a.mtta_p50),
            s(b.mtta_p90),
            s(a.mtta_p90),
            s(b.mttr_p50),
            s(a.mttr_p50),
            s(b.mttr_p90),
            s(a.mttr_p90),
        );
    }
    println!("{moved} incidents would change team");
}
