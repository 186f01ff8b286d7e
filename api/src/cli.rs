//! The `mttx` command line. Every command takes `--source`, `--facts` and `--state` (also
//! from `MTTX_SOURCE`, `MTTX_FACTS`, `MTTX_STATE`), defaulting to the embedded demo files
//! under `./.mttx/`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};
use mttx_fixtures::{Config, golden};
use mttx_migrations::Location;

#[derive(Debug, Parser)]
#[command(
    name = "mttx",
    version,
    about = "Incident analytics: MTTA, MTTR and friends from an incident log"
)]
pub struct Cli {
    #[command(flatten)]
    pub places: Places,
    #[command(subcommand)]
    pub command: Command,
}

/// Where mttx reads and writes.
#[derive(Debug, Args)]
pub struct Places {
    /// The replica: a PostgreSQL URL or an SQLite file.
    #[arg(
        long,
        global = true,
        env = "MTTX_SOURCE",
        default_value = ".mttx/replica.sqlite"
    )]
    pub source: String,
    /// The facts table (a Delta Lake location).
    #[arg(long, global = true, env = "MTTX_FACTS", default_value = ".mttx/facts")]
    pub facts: String,
    /// mttx's own state database: a PostgreSQL URL or an SQLite file.
    #[arg(
        long,
        global = true,
        env = "MTTX_STATE",
        default_value = ".mttx/state.sqlite"
    )]
    pub state: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make replica data for tests, benchmarks and demos.
    Fixtures {
        #[command(subcommand)]
        command: FixturesCommand,
    },
    /// Fold the replica's incident log into the facts table.
    Etl {
        #[command(subcommand)]
        command: EtlCommand,
    },
    /// Fold all history again by another metrics version into a new generation of the
    /// facts, while reports are served from the current one; then serve the new one.
    /// Resumes where it stopped if interrupted; `etl run` may keep following meanwhile.
    Reprocess(ReprocessArgs),
    /// The generations of the facts: list them, or switch which one reports are served from.
    Generations {
        #[command(subcommand)]
        command: GenerationsCommand,
    },
    /// API tokens (each scoped to one account).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Reports written to a file or stdout.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Serve the report API over the facts table.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "MTTX_LISTEN")]
        listen: std::net::SocketAddr,
        /// Memory for cached answers, in MiB (0: compute every answer). Answers are keyed
        /// by account, parameters and facts table version, so none is ever stale.
        #[arg(long, default_value_t = 256, env = "MTTX_CACHE_MIB")]
        cache_mib: u64,
    },
    /// The embedded demo: a sample replica in SQLite (made if absent), the ETL, a token for
    /// account 1, and the API on --listen. No PostgreSQL needed.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Incidents in the sample replica (when it is made).
        #[arg(long, default_value_t = 20_000)]
        incidents: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for one account; the token is printed last (and only once).
    Create {
        /// The account the token may read.
        #[arg(long)]
        account: i64,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_days: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One team's ISO week: the team beside last week and the company-wide norm, by service
    /// and responder, a 12-week trend, escalated incidents and noisy alerts.
    Weekly {
        /// The account the team belongs to.
        #[arg(long)]
        account: i64,
        /// The team id.
        #[arg(long)]
        team: i64,
        /// ISO week such as 2026-W44 (default: the last complete week in --tz).
        #[arg(long)]
        week: Option<String>,
        /// IANA time zone of the week.
        #[arg(long, default_value = "UTC")]
        tz: String,
        #[arg(long, value_enum, default_value = "html")]
        format: crate::weekly::Format,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

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
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Log entries per incremental batch (one facts commit each).
    #[arg(long, default_value_t = 50_000)]
    pub batch_entries: i64,
    /// Incident ids per backfill range (one lease and one commit each).
    #[arg(long, default_value_t = 50_000)]
    pub range_incidents: i64,
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

#[derive(Debug, Args)]
pub struct ReprocessArgs {
    /// The metrics version to fold with: 1 attributes incidents to the escalation policy
    /// (and team) at trigger, 2 to the one they ended on.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=2))]
    pub metrics_version: i32,
    /// Backfill workers in this process (other processes running the same command share
    /// the work).
    #[arg(long, default_value_t = 2)]
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

#[derive(Debug, Subcommand)]
pub enum FixturesCommand {
    /// Generate a realistic replica into --source (same arguments, same rows).
    Generate(GenerateArgs),
    /// Load the hand-worked golden data set into --source.
    Golden {
        /// Empty the replica first if it holds data.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Seed of every random draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of accounts (tenants).
    #[arg(long, default_value_t = 3)]
    pub accounts: u32,
    /// Number of incidents over all accounts (about 10 log entries each).
    #[arg(long, default_value_t = 5_000)]
    pub incidents: u64,
    /// Weeks of history.
    #[arg(long, default_value_t = 12)]
    pub weeks: u32,
    /// End of the history, exclusive (a date, UTC midnight, or an RFC 3339 time). Later
    /// events have not happened yet, so some incidents are still open.
    #[arg(long, default_value = "2026-11-23")]
    pub until: String,
    /// Share of incidents carrying one kind of bad input (0 to 0.5).
    #[arg(long, default_value_t = 0.01)]
    pub bad_rate: f64,
    /// Empty the replica first if it holds data.
    #[arg(long)]
    pub replace: bool,
}

fn parse_until(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").with_context(|| {
        format!("--until `{s}` is neither a date (2026-11-23) nor an RFC 3339 time (2026-11-23T00:00:00Z)")
    })?;
    Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

fn location(flag: &str, value: &str) -> anyhow::Result<Location> {
    value.parse().with_context(|| format!("--{flag}"))
}

/// Makes sure the folder of an SQLite file exists, so the defaults work in a fresh checkout.
fn ensure_parent(location: &Location) -> anyhow::Result<()> {
    if let Location::Sqlite(path) = location
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Etl { command } => etl(&cli.places, command).await?,
        Command::Reprocess(args) => reprocess(&cli.places, args).await?,
        Command::Generations { command } => generations(&cli.places, command).await?,
        Command::Report {
            command:
                ReportCommand::Weekly {
                    account,
                    team,
                    week,
                    tz,
                    format,
                    output,
                },
        } => {
            let tz: chrono_tz::Tz = tz.parse().map_err(|_| {
                anyhow::anyhow!("--tz `{tz}` is not an IANA time zone such as Europe/Berlin")
            })?;
            let monday = match week {
                Some(w) => crate::weekly::parse_week(&w)?,
                None => crate::weekly::last_week(tz),
            };
            let state = location("state", &cli.places.state)?;
            ensure_parent(&state)?;
            let state = mttx_etl::sink::state::State::open(&state).await?;
            let engine = crate::open_served(&state, &cli.places.facts).await?;
            let report = crate::weekly::weekly(&engine, account, Some(team), monday, tz).await?;
            let text = crate::weekly::render(&report, format)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!("wrote {} ({} of team {team})", path.display(), report.week);
                }
                None => print!("{text}"),
            }
        }
        Command::Token { command } => {
            let TokenCommand::Create {
                account,
                name,
                expires_days,
            } = command;
            anyhow::ensure!(account > 0, "--account must be an account id (1 or more)");
            let ttl = expires_days
                .map(|d| {
                    anyhow::ensure!(
                        d > 0.0 && d <= 3650.0,
                        "--expires-days must be between 0 and 3650"
                    );
                    Ok((d * 86_400.0) as i64)
                })
                .transpose()?;
            let state = location("state", &cli.places.state)?;
            ensure_parent(&state)?;
            let state = mttx_etl::sink::state::State::open(&state).await?;
            let token = state.create_token(account, &name, ttl).await?;
            eprintln!("token `{name}` for account {account}; it is shown only now:");
            println!("{token}");
        }
        Command::Serve { listen, cache_mib } => {
            let state = location("state", &cli.places.state)?;
            ensure_parent(&state)?;
            let state = mttx_etl::sink::state::State::open(&state).await?;
            let source =
                mttx_etl::source::Source::open(&location("source", &cli.places.source)?, 4).await?;
            serve(&cli.places.facts, state, source, listen, cache_mib << 20).await?;
        }
        Command::Demo { listen, incidents } => demo(&cli.places, listen, incidents).await?,
        Command::Fixtures { command } => {
            let source = location("source", &cli.places.source)?;
            ensure_parent(&source)?;
            match command {
                FixturesCommand::Generate(args) => {
                    let cfg = Config {
                        seed: args.seed,
                        accounts: args.accounts,
                        incidents: args.incidents,
                        weeks: args.weeks,
                        until: parse_until(&args.until)?,
                        bad_rate: args.bad_rate,
                        ..Config::default()
                    };
                    let summary = mttx_fixtures::generate_into(cfg, &source, args.replace).await?;
                    println!("generated into {source}\n{summary}");
                }
                FixturesCommand::Golden { replace } => {
                    let data = golden::dataset()?;
                    mttx_fixtures::load_dataset(&data, &source, replace).await?;
                    println!(
                        "loaded the golden set into {source}: {} accounts, {} incidents, {} log entries",
                        data.org.accounts.len(),
                        data.incidents.len(),
                        data.entries.len()
                    );
                }
            }
        }
    }
    Ok(())
}

fn hours(flag: &str, h: f64) -> anyhow::Result<std::time::Duration> {
    anyhow::ensure!(
        h.is_finite() && (0.0..=24.0 * 3650.0).contains(&h),
        "--{flag} must be between 0 and 87600 hours"
    );
    Ok(std::time::Duration::from_secs_f64(h * 3600.0))
}

async fn etl(places: &Places, command: EtlCommand) -> anyhow::Result<()> {
    let args = match command {
        EtlCommand::Run(args) => args,
        EtlCommand::Upkeep { retain_hours } => {
            let retain = hours("retain-hours", retain_hours)?;
            let state = location("state", &places.state)?;
            ensure_parent(&state)?;
            let served = mttx_etl::sink::state::State::open(&state)
                .await?
                .serving(&places.facts, 1)
                .await?;
            let mut facts = mttx_etl::sink::delta::FactsTable::open(&served.location).await?;
            let report = facts.upkeep(retain).await?;
            println!("upkeep of {}: {report}", facts.uri());
            return Ok(());
        }
    };
    let source = location("source", &places.source)?;
    let state = location("state", &places.state)?;
    ensure_parent(&state)?;
    anyhow::ensure!(args.batch_entries > 0, "--batch-entries must be at least 1");
    anyhow::ensure!(
        args.range_incidents > 0,
        "--range-incidents must be at least 1"
    );
    anyhow::ensure!(
        (1..=64).contains(&args.workers),
        "--workers must be between 1 and 64"
    );
    anyhow::ensure!(
        args.poll_seconds > 0.0 && args.poll_seconds <= 3600.0,
        "--poll-seconds must be between 0 and 3600"
    );
    anyhow::ensure!(
        (1..=3600).contains(&args.lease_seconds),
        "--lease-seconds must be between 1 and 3600"
    );
    anyhow::ensure!(
        args.upkeep_minutes.is_finite() && args.upkeep_minutes >= 0.0,
        "--upkeep-minutes must be 0 (never) or more"
    );
    let retain = hours("retain-hours", args.retain_hours)?;
    if let Some(addr) = args.metrics_addr {
        let bound = crate::metrics_server::serve(addr, mttx_etl::metrics::render).await?;
        tracing::info!("metrics at http://{bound}/metrics");
    }
    let replica =
        mttx_etl::source::Source::open(&source, (args.workers as u32 + 2).min(16)).await?;
    let state = mttx_etl::sink::state::State::open(&state).await?;
    let opts = mttx_etl::run::RunOptions {
        once: args.once,
        batch_entries: args.batch_entries,
        poll: std::time::Duration::from_secs_f64(args.poll_seconds),
        workers: args.workers,
        range_incidents: args.range_incidents,
        lease_ttl: std::time::Duration::from_secs(args.lease_seconds),
        upkeep_every: (args.upkeep_minutes > 0.0)
            .then(|| std::time::Duration::from_secs_f64(args.upkeep_minutes * 60.0)),
        retain,
        ..Default::default()
    };
    tokio::spawn(async {
        stop_signal().await;
        tracing::info!("stop requested: finishing the current batch (again to quit at once)");
        mttx_etl::run::request_stop();
        stop_signal().await;
        std::process::exit(130);
    });
    // Always into the served generation; when a reprocess switches to another one, the
    // follower finishes its batch and goes on in the new one.
    loop {
        let served = state.serving(&places.facts, 1).await?;
        let mut facts = mttx_etl::sink::delta::FactsTable::open(&served.location).await?;
        let moved = Arc::new(AtomicBool::new(false));
        let watch = (!opts.once).then(|| {
            let (state, base, moved) = (state.clone(), places.facts.clone(), moved.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if let Ok(g) = state.serving(&base, 1).await
                        && g.id != served.id
                    {
                        moved.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })
        });
        let opts = mttx_etl::run::RunOptions {
            metrics_version: served.metrics_version.try_into()?,
            account_versions: served.versions()?.accounts,
            stop: Some(moved.clone()),
            ..opts.clone()
        };
        tracing::info!(source = %replica.location(), facts = facts.uri(), generation = served.id, metrics_version = served.describe_versions(), once = opts.once, workers = opts.workers, "etl starting");
        let summary = mttx_etl::run::run(&replica, &mut facts, &state, &opts).await;
        if let Some(w) = watch {
            w.abort();
        }
        let summary = summary?;
        println!("etl into {}\n{summary}", facts.uri());
        if opts.once || mttx_etl::run::stop_requested() || !moved.load(Ordering::SeqCst) {
            return Ok(());
        }
        tracing::info!("another facts generation is served now: following it");
    }
}

/// `mttx reprocess`: a new generation of the facts by another metrics version.
async fn reprocess(places: &Places, args: ReprocessArgs) -> anyhow::Result<()> {
    let source = location("source", &places.source)?;
    let state = location("state", &places.state)?;
    ensure_parent(&state)?;
    anyhow::ensure!(
        (1..=64).contains(&args.workers),
        "--workers must be between 1 and 64"
    );
    anyhow::ensure!(
        args.range_incidents > 0,
        "--range-incidents must be at least 1"
    );
    let version: mttx_etl::MetricsVersion = args.metrics_version.try_into()?;
    let replica =
        mttx_etl::source::Source::open(&source, (args.workers as u32 + 2).min(16)).await?;
    let state = mttx_etl::sink::state::State::open(&state).await?;
    let served = state.serving(&places.facts, 1).await?;
    // The served incidents' attributions, read once where needed: a dry run folds them
    // again, and an account named must have some.
    let all = if args.dry_run || args.account.is_some() {
        mttx_etl::sink::delta::FactsTable::open(&served.location)
            .await?
            .read_attributions(args.account)
            .await?
    } else {
        Vec::new()
    };
    if let Some(a) = args.account {
        anyhow::ensure!(
            !all.is_empty(),
            "account {a} has no incidents in the served facts (generation {}): check the id",
            served.id
        );
    }
    if args.dry_run {
        let moves = mttx_etl::reprocess::dry_run(&replica, &all, version).await?;
        println!(
            "dry run: metrics version {} (generation {}) -> {}, {} incidents; nothing is changed",
            args.account.map_or_else(
                || served.describe_versions(),
                |a| served.version_of(a).to_string()
            ),
            served.id,
            args.metrics_version,
            all.len()
        );
        println!(
            "account\tteam\tincidents_now\tincidents_after\tchange\tmoved_in\tmoved_out\t\
             mtta_p50_now_s\tmtta_p50_after_s\tmtta_p90_now_s\tmtta_p90_after_s\t\
             mttr_p50_now_s\tmttr_p50_after_s\tmttr_p90_now_s\tmttr_p90_after_s"
        );
        let s = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let mut moved = 0;
        for ((account, team), m) in &moves {
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
        return Ok(());
    }
    // What the new generation is made by: version N for every account, or (--account) the
    // served generation's versions with that one account's changed.
    let (default, mut accounts) = match args.account {
        None => (args.metrics_version, Default::default()),
        Some(_) => (served.metrics_version, served.account_versions.clone()),
    };
    if let Some(a) = args.account {
        if args.metrics_version == default {
            accounts.remove(&a);
        } else {
            accounts.insert(a, args.metrics_version);
        }
    }
    let resuming = state.generations(&places.facts).await?.iter().any(|g| {
        g.status == "building" && g.metrics_version == default && g.account_versions == accounts
    });
    if served.metrics_version == default
        && served.account_versions == accounts
        && !args.rebuild
        && !resuming
    {
        println!(
            "generation {} already serves metrics version {}: nothing to do (--rebuild builds it again)",
            served.id,
            served.describe_versions()
        );
        return Ok(());
    }
    let opts = mttx_etl::run::RunOptions {
        once: true,
        workers: args.workers,
        range_incidents: args.range_incidents,
        lease_ttl: std::time::Duration::from_secs(args.lease_seconds),
        metrics_version: default.try_into()?,
        account_versions: accounts
            .iter()
            .map(|(a, v)| Ok((*a, (*v).try_into()?)))
            .collect::<mttx_etl::Result<_>>()?,
        ..Default::default()
    };
    tokio::spawn(async {
        stop_signal().await;
        tracing::info!(
            "stop requested: finishing the current ranges; run the same command again to resume"
        );
        mttx_etl::run::request_stop();
        stop_signal().await;
        std::process::exit(130);
    });
    let started = std::time::Instant::now();
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

/// Generation `id`, or an error that says where to look.
async fn generation(
    state: &mttx_etl::sink::state::State,
    base: &str,
    id: i64,
) -> anyhow::Result<mttx_etl::sink::state::Generation> {
    state.generation(base, id).await?.ok_or_else(|| {
        anyhow::anyhow!("there is no generation {id}; `mttx generations list` shows them")
    })
}

/// Deletes a dropping generation's table; on failure, says how to finish.
async fn delete_generation_table(g: &mttx_etl::sink::state::Generation) -> anyhow::Result<u64> {
    mttx_etl::sink::delta::delete_table(&g.location)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "generation {} is no longer served or listed, but its table at {} is not deleted yet: {e}; \
                 fix that and run `mttx generations drop --id {}` again",
                g.id,
                g.location,
                g.id
            )
        })
}

/// `mttx generations`: list, switch the served one (after catching it up), or drop one.
async fn generations(places: &Places, command: GenerationsCommand) -> anyhow::Result<()> {
    let state = location("state", &places.state)?;
    ensure_parent(&state)?;
    let state = mttx_etl::sink::state::State::open(&state).await?;
    let served = state.serving(&places.facts, 1).await?;
    match command {
        GenerationsCommand::List => {
            println!("id\tmetrics_version\tstatus\tserved\tlocation");
            let mut all = state.generations(&places.facts).await?;
            all.extend(state.drops(&places.facts).await?);
            all.sort_by_key(|g| g.id);
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
        GenerationsCommand::Switch { to, previous } => {
            let target = match (to, previous) {
                (Some(id), _) => generation(&state, &places.facts, id).await?,
                (None, _) => state
                    .previous_generation(&places.facts)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no generation was served before this one"))?,
            };
            anyhow::ensure!(
                target.id != served.id,
                "generation {} is already served",
                target.id
            );
            anyhow::ensure!(
                target.status == "ready",
                "generation {} (metrics version {}) is still being built; run the `mttx reprocess` that started it again to finish it",
                target.id,
                target.describe_versions()
            );
            // It stopped following the log when it stopped being served: catch it up first.
            let replica =
                mttx_etl::source::Source::open(&location("source", &places.source)?, 4).await?;
            let mut facts = mttx_etl::sink::delta::FactsTable::open(&target.location).await?;
            let opts = mttx_etl::run::RunOptions {
                once: true,
                upkeep_every: None,
                metrics_version: target.metrics_version.try_into()?,
                account_versions: target.versions()?.accounts,
                ..Default::default()
            };
            let caught = mttx_etl::run::run(&replica, &mut facts, &state, &opts).await?;
            state
                .switch_generation(&places.facts, target.id, served.id)
                .await?;
            println!(
                "now serving generation {} (metrics version {}; {} entries caught up), was {}",
                target.id,
                target.describe_versions(),
                caught.entries_read,
                served.id
            );
        }
        GenerationsCommand::Drop { id, force } => {
            // Drops an earlier command started and did not finish are finished first.
            for g in state.drops(&places.facts).await? {
                let files = delete_generation_table(&g).await?;
                state.dropped(g.id).await?;
                println!(
                    "finished dropping generation {} ({}): {files} files deleted",
                    g.id, g.location
                );
                if g.id == id {
                    return Ok(());
                }
            }
            let target = generation(&state, &places.facts, id).await?;
            anyhow::ensure!(
                target.id != served.id,
                "generation {id} is the one served; serve another first (`mttx generations switch`)"
            );
            anyhow::ensure!(
                target.status == "ready" || force,
                "generation {id} (metrics version {}) is being built, or a reprocess building it \
                 was stopped: if no `mttx reprocess` is running, drop it with --force",
                target.describe_versions()
            );
            anyhow::ensure!(
                target.location.contains("://")
                    || std::path::Path::new(&target.location).exists()
                    || force,
                "there is no table at {} (seen from {}): run this where the ETL runs, as \
                 locations are kept as given; --force forgets the generation anyway",
                target.location,
                std::env::current_dir().map_or("?".into(), |d| d.display().to_string())
            );
            let previous = state.previous_generation(&places.facts).await?;
            // Recorded as dropping, in one transaction that checks it is not served (and
            // no longer `ready`, so nothing switches to it), before any file is deleted.
            if !state.start_drop(&places.facts, id).await? {
                anyhow::bail!(
                    "generation {id} changed meanwhile: {}",
                    match state.generation(&places.facts, id).await? {
                        Some(_) => "it is served now, and kept",
                        None => "another command dropped it",
                    }
                );
            }
            let files = delete_generation_table(&target).await?;
            state.dropped(id).await?;
            println!(
                "dropped generation {id} (metrics version {}, {}): {files} files deleted",
                target.describe_versions(),
                target.location
            );
            if previous.is_some_and(|p| p.id == id) {
                println!(
                    "`mttx generations switch --previous` has no generation to go back to now"
                );
            }
        }
    }
    Ok(())
}

async fn serve(
    facts: &str,
    state: mttx_etl::sink::state::State,
    source: mttx_etl::source::Source,
    listen: std::net::SocketAddr,
    cache_bytes: u64,
) -> anyhow::Result<()> {
    let options = crate::AppOptions {
        cache_bytes,
        extra_metrics: Some(mttx_etl::metrics::render),
    };
    let app = crate::App::open(facts, state, Some(source), options).await?;
    app.follow(std::time::Duration::from_secs(1));
    let (bound, task) = crate::serve(listen, crate::app(app)).await?;
    tracing::info!(
        "serving the report API at http://{bound}/api/v1/reports/incidents (document: /openapi.json)"
    );
    eprintln!("listening on http://{bound}");
    tokio::select! {
        _ = stop_signal() => {}
        _ = task => {}
    }
    Ok(())
}

/// The embedded demo, end to end.
async fn demo(places: &Places, listen: std::net::SocketAddr, incidents: u64) -> anyhow::Result<()> {
    let source = location("source", &places.source)?;
    ensure_parent(&source)?;
    let fresh = match &source {
        Location::Sqlite(path) => !path.exists(),
        Location::Postgres(_) => false,
    };
    if fresh {
        let today = Utc::now().date_naive();
        let cfg = Config {
            seed: 42,
            accounts: 3,
            incidents,
            weeks: 12,
            until: today.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            ..Config::default()
        };
        eprintln!(
            "making a sample replica ({incidents} incidents, 3 accounts, 12 weeks up to {today}) in {source}"
        );
        let summary = mttx_fixtures::generate_into(cfg, &source, false).await?;
        eprintln!("{summary}");
    }
    let state_loc = location("state", &places.state)?;
    ensure_parent(&state_loc)?;
    let replica = mttx_etl::source::Source::open(&source, 4).await?;
    let state = mttx_etl::sink::state::State::open(&state_loc).await?;
    let mut facts = mttx_etl::sink::delta::FactsTable::open(&places.facts).await?;
    let summary = mttx_etl::run::run(
        &replica,
        &mut facts,
        &state,
        &mttx_etl::run::RunOptions::default(),
    )
    .await?;
    eprintln!("etl into {}\n{summary}", facts.uri());
    let token = state.create_token(1, "demo", Some(30 * 86_400)).await?;
    let options = crate::AppOptions {
        extra_metrics: Some(mttx_etl::metrics::render),
        ..Default::default()
    };
    let app = crate::App::open(&places.facts, state, Some(replica), options).await?;
    app.follow(std::time::Duration::from_secs(1));
    let (bound, task) = crate::serve(listen, crate::app(app)).await?;
    let monday = crate::weekly::monday_of(Utc::now().date_naive());
    let last_monday = monday - chrono::Days::new(7);
    println!(
        "\nmttx demo is serving at http://{bound}\n\n\
         token for account 1 (valid 30 days):\n  {token}\n\n\
         the dashboard: open http://{bound}/dashboard and sign in with the token\n\n\
         last week's report by team, in Berlin time:\n  \
         curl -H 'Authorization: Bearer {token}' \\\n    \
         'http://{bound}/api/v1/reports/incidents?from={last_monday}&to={monday}&tz=Europe/Berlin&group_by=team'\n\n\
         noisy alerts of that week: /api/v1/reports/noisy?from={last_monday}&to={monday}&tz=Europe/Berlin\n\
         every endpoint and parameter: http://{bound}/openapi.json\n\n\
         Ctrl-C stops it."
    );
    tokio::select! {
        _ = stop_signal() => {}
        _ = task => {}
    }
    Ok(())
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,buoyant_kernel=warn,deltalake=warn,deltalake_core=warn,datafusion=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the command line; errors print their whole chain and exit with status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn until_takes_dates_and_times() {
        assert_eq!(
            parse_until("2026-11-23").unwrap().to_rfc3339(),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            parse_until("2026-11-23T06:00:00+01:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-23T05:00:00+00:00"
        );
        assert!(parse_until("next monday").is_err());
    }
}
