//! `mttx etl`: fold the replica into the facts table (`run`), and table upkeep.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use mttx_etl::run::RunOptions;

use super::{Places, shutdown_on_signal};

#[derive(Debug, Subcommand)]
pub enum EtlCommand {
    /// Fold the replica into the facts table: a parallel backfill of all history on a fresh
    /// table, then follow new entries (or, with --once, exit when caught up). Several of
    /// these processes on the same --source, --facts and --state share the work.
    Run(EtlRunArgs),
    /// Compact the facts table's small files, checkpoint its log and delete files no
    /// version younger than --retain-hours needs. `etl run` also does this on a schedule.
    Upkeep {
        /// Keep unreferenced data files this long (readers of older versions need them).
        #[arg(long, default_value_t = 168.0)]
        retain_hours: f64,
    },
}

#[derive(Debug, Args)]
pub struct EtlRunArgs {
    /// Catch up and exit instead of following the log.
    #[arg(long)]
    pub once: bool,
    /// Backfill workers in this process (following new entries needs only one).
    #[arg(long, default_value_t = mttx_etl::backfill::WORKERS)]
    pub workers: usize,
    /// Log entries per incremental batch (one facts commit each).
    #[arg(long, default_value_t = 50_000)]
    pub batch_entries: i64,
    /// Incident ids per backfill range (one lease and one commit each).
    #[arg(long, default_value_t = 50_000)]
    pub range_incidents: i64,
    /// Incident ids per read statement inside a backfill range (default: a tenth of the
    /// range, at most 5,000). Larger reads cost the replica less per entry; each worker
    /// holds two reads' entries in memory, and a long statement on a standby is likelier to
    /// be cancelled by its replay (it is then read again in halves).
    #[arg(long)]
    pub read_incidents: Option<i64>,
    /// Seconds between polls when following and nothing is new.
    #[arg(long, default_value_t = 1.0)]
    pub poll_seconds: f64,
    /// Seconds a worker's lease lasts without a heartbeat: a crashed worker's work is taken
    /// over after this long.
    #[arg(long, default_value_t = 30)]
    pub lease_seconds: u64,
    /// Minutes between rounds of table upkeep while following (0: never).
    #[arg(long, default_value_t = 60.0)]
    pub upkeep_minutes: f64,
    /// Table upkeep keeps unreferenced data files this long.
    #[arg(long, default_value_t = 168.0)]
    pub retain_hours: f64,
    /// Serve Prometheus metrics at this address (for example 127.0.0.1:9187).
    #[arg(long, env = "MTTX_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

fn hours(flag: &str, h: f64) -> anyhow::Result<Duration> {
    ensure_arg!(
        h.is_finite() && (0.0..=24.0 * 3650.0).contains(&h),
        "--{flag} must be between 0 and 87600 hours"
    );
    Ok(Duration::from_secs_f64(h * 3600.0))
}

/// `--workers`: 1 to 64.
pub fn check_workers(workers: usize) -> anyhow::Result<()> {
    ensure_arg!(
        (1..=64).contains(&workers),
        "--workers must be between 1 and 64"
    );
    Ok(())
}

/// `--poll-seconds`: more than 0, at most an hour.
pub fn check_poll(seconds: f64) -> anyhow::Result<Duration> {
    ensure_arg!(
        seconds > 0.0 && seconds <= 3600.0,
        "--poll-seconds must be more than 0 and at most 3600"
    );
    Ok(Duration::from_secs_f64(seconds))
}

/// `--range-incidents`: 1 or more.
pub fn check_range(range_incidents: i64) -> anyhow::Result<()> {
    ensure_arg!(range_incidents > 0, "--range-incidents must be at least 1");
    Ok(())
}

/// `--lease-seconds`: 1 to 3600.
pub fn check_lease(seconds: u64) -> anyhow::Result<()> {
    ensure_arg!(
        (1..=3600).contains(&seconds),
        "--lease-seconds must be between 1 and 3600"
    );
    Ok(())
}

impl EtlRunArgs {
    /// The run's options, checked.
    fn options(&self) -> anyhow::Result<RunOptions> {
        ensure_arg!(self.batch_entries > 0, "--batch-entries must be at least 1");
        check_range(self.range_incidents)?;
        ensure_arg!(
            self.read_incidents.is_none_or(|n| n > 0),
            "--read-incidents must be at least 1"
        );
        check_workers(self.workers)?;
        let poll = check_poll(self.poll_seconds)?;
        check_lease(self.lease_seconds)?;
        ensure_arg!(
            self.upkeep_minutes.is_finite() && self.upkeep_minutes >= 0.0,
            "--upkeep-minutes must be 0 (never) or more"
        );
        Ok(RunOptions {
            once: self.once,
            batch_entries: self.batch_entries,
            poll,
            workers: self.workers,
            range_incidents: self.range_incidents,
            read_incidents: self.read_incidents,
            lease_ttl: Duration::from_secs(self.lease_seconds),
            upkeep_every: (self.upkeep_minutes > 0.0)
                .then(|| Duration::from_secs_f64(self.upkeep_minutes * 60.0)),
            retain: hours("retain-hours", self.retain_hours)?,
            ..Default::default()
        })
    }
}

pub async fn run(places: &Places, command: EtlCommand) -> anyhow::Result<()> {
    let args = match command {
        EtlCommand::Run(args) => args,
        EtlCommand::Upkeep { retain_hours } => {
            let retain = hours("retain-hours", retain_hours)?;
            let served = places.open_state().await?.serving(&places.facts).await?;
            let mut facts = mttx_etl::sink::delta::FactsTable::open(&served.location).await?;
            let report = facts.upkeep(retain).await?;
            println!("upkeep of {}: {report}", facts.uri());
            return Ok(());
        }
    };
    let mut opts = args.options()?;
    if let Some(addr) = args.metrics_addr {
        let bound = mttx_api::metrics_server::serve(addr, mttx_etl::metrics::render)
            .await
            .context("--metrics-addr")?;
        tracing::info!("metrics at http://{bound}/metrics");
    }
    let replica = places.replica((args.workers as u32 + 2).min(16)).await?;
    let state = places.open_state().await?;
    opts.shutdown = shutdown_on_signal("finishing the current batch");
    mttx_etl::follow::follow_served(&replica, &state, &places.facts, &opts, |_, uri, summary| {
        println!("etl into {uri}\n{summary}");
    })
    .await?;
    Ok(())
}
