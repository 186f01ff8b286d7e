//! The `mttx` command line. Every command takes `--source`, `--facts` and `--state` (also
//! from `MTTX_SOURCE`, `MTTX_FACTS`, `MTTX_STATE`), defaulting to the embedded demo files
//! under `./.mttx/`. One module per command: each parses, calls a library function and
//! prints; here are what they share (the places, opening the state, the one shutdown
//! signal handler, tracing).

use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use mttx_etl::Shutdown;
use mttx_migrations::Location;
use mttx_state::State;

/// `anyhow::ensure!` for a bad argument: fails with a [`Usage`] error, so `mttx` exits with
/// status 2 and the message, as for the arguments clap itself refuses.
macro_rules! ensure_arg {
    ($ok:expr, $($message:tt)+) => {
        if !$ok {
            return Err($crate::cli::usage(format!($($message)+)));
        }
    };
}

mod config;
mod demo;
mod etl;
mod fixtures;
mod generations;
mod import;
mod report;
mod reprocess;
mod send;
mod serve;
mod token;

#[derive(Debug, Parser)]
#[command(
    name = "mttx",
    version,
    about = "Incident analytics: MTTA, MTTR and friends from an incident log"
)]
pub struct Cli {
    /// A configuration file (TOML) of every command's settings; a setting's environment
    /// variable overrides it, and its flag overrides both. `mttx config show COMMAND…`
    /// prints what a command would run with.
    #[arg(long, global = true, env = config::ENV, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub places: Places,
    /// Log lines on stderr as text (colours only on a terminal) or as JSON, one object a
    /// line, for a log collector.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "MTTX_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// What --source holds: `contract` (mttx's replica contract) or `goalert` (GoAlert's own
    /// database, read as it is).
    #[arg(
        long,
        global = true,
        env = "MTTX_SOURCE_KIND",
        value_enum,
        default_value = "contract"
    )]
    pub source_kind: SourceKindArg,
    /// The account's name: a GoAlert instance's (default "GoAlert"), or a PagerDuty
    /// import's (default "PagerDuty").
    #[arg(long, global = true, env = "MTTX_ACCOUNT_NAME")]
    pub account_name: Option<String>,
    /// With --source-kind goalert: the time zone interruptions are placed in (GoAlert keeps
    /// none per user), also the account's time zone for reports.
    #[arg(
        long,
        global = true,
        env = "MTTX_GOALERT_TIME_ZONE",
        default_value = "UTC",
        value_parser = parse_zone
    )]
    pub goalert_time_zone: chrono_tz::Tz,
    /// The fewest values on either side of a change of a mean or percentile for a verdict
    /// (better, worse, within noise) rather than "not enough data". Used by `serve`, `demo`
    /// and `report weekly`.
    #[arg(
        long,
        global = true,
        env = "MTTX_MIN_SAMPLE",
        default_value_t = mttx_query::DEFAULT_MIN_SAMPLE,
        value_parser = parse_min_sample
    )]
    pub min_sample: usize,
}

/// `--source-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKindArg {
    Contract,
    #[value(name = "goalert")]
    GoAlert,
}

/// `--min-sample`: a whole number of at least 2 (a change needs two values a side).
fn parse_min_sample(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 2 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 2")),
    }
}

/// An IANA time zone name, or a message that says what one looks like.
pub(crate) fn parse_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.parse().map_err(|_| {
        format!("`{s}` is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)")
    })
}

impl Places {
    /// The replica's location.
    fn source(&self) -> anyhow::Result<Location> {
        location("source", &self.source)
    }

    /// Opens the replica for reading, with `connections` at most.
    async fn replica(&self, connections: u32) -> anyhow::Result<mttx_replica::Source> {
        Ok(mttx_replica::Source::open_as(&self.source()?, self.source_kind(), connections).await?)
    }

    /// What --source holds, with the GoAlert instance's name and zone.
    fn source_kind(&self) -> mttx_replica::SourceKind {
        match self.source_kind {
            SourceKindArg::Contract => mttx_replica::SourceKind::Contract,
            SourceKindArg::GoAlert => mttx_replica::SourceKind::GoAlert(mttx_replica::GoAlert {
                account_name: self
                    .account_name
                    .clone()
                    .unwrap_or_else(|| mttx_replica::GoAlert::default().account_name),
                time_zone: self.goalert_time_zone,
            }),
        }
    }

    /// Opens (creating and migrating where needed) mttx's own state database: the one
    /// place the command line does.
    async fn open_state(&self) -> anyhow::Result<State> {
        Ok(State::open(&location("state", &self.state)?).await?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make replica data for tests, benchmarks and demos.
    Fixtures {
        #[command(subcommand)]
        command: fixtures::FixturesCommand,
    },
    /// Bring incident data from another system into a replica at --source.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// Fold the replica's incident log into the facts table.
    Etl {
        #[command(subcommand)]
        command: etl::EtlCommand,
    },
    /// Fold all history again by another metrics version into a new generation of the
    /// facts, while reports are served from the current one; then serve the new one.
    /// Resumes where it stopped if interrupted; `etl run` may keep following meanwhile.
    Reprocess(reprocess::ReprocessArgs),
    /// The generations of the facts: list them, or switch which one reports are served from.
    Generations {
        #[command(subcommand)]
        command: generations::GenerationsCommand,
    },
    /// API tokens (each scoped to one account).
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Reports written to a file or stdout.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Serve the report API over the facts table.
    Serve(serve::ServeArgs),
    /// The embedded demo: a sample replica in SQLite (made if absent), the ETL, a token for
    /// account 1, and the API on --listen. No PostgreSQL needed.
    Demo(demo::DemoArgs),
    /// The configuration file: what a command's settings resolve to.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the shell's completion script for mttx, to source or install: bash
    /// (`source <(mttx completions bash)`), zsh (a file `_mttx` on `$fpath`) or fish
    /// (`~/.config/fish/completions/mttx.fish`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings a command would run with, each with where it comes from (flag,
    /// environment, file or default), without running it: `mttx config show serve`.
    Show {
        /// The command and its flags, as you would run it.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn location(flag: &str, value: &str) -> anyhow::Result<Location> {
    value
        .parse::<Location>()
        .map_err(|e| usage(format!("--{flag}: {e}")))
}

/// A bad argument found after parsing (a location, a date, a setting out of range): the
/// message says what to write instead, and `mttx` exits with status 2, as for the
/// arguments clap itself refuses.
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `message` as a [`Usage`] error.
pub(crate) fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    Usage(message.to_string()).into()
}

/// The one handler of SIGINT and SIGTERM: the first cancels the returned token (every
/// run, backfill and reprocess stops at its next safe point, saying `what` happens), the
/// second quits at once.
fn shutdown_on_signal(what: &'static str) -> Shutdown {
    let shutdown = Shutdown::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("stop requested: {what} (again to quit at once)");
        token.cancel();
        stop_signal().await;
        std::process::exit(130);
    });
    shutdown
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

async fn run(cli: Cli, file: &config::Config) -> anyhow::Result<()> {
    let places = &cli.places;
    match cli.command {
        Command::Fixtures { command } => fixtures::run(places, command).await,
        Command::Import { command } => import::run(places, command).await,
        Command::Etl { command } => etl::run(places, command).await,
        Command::Reprocess(args) => reprocess::run(places, args).await,
        Command::Generations { command } => generations::run(places, command).await,
        Command::Token { command } => token::run(places, command).await,
        Command::Report { command } => report::run(places, command).await,
        Command::Serve(args) => serve::run(places, args).await,
        Command::Demo(args) => demo::run(places, args).await,
        Command::Config {
            command: ConfigCommand::Show { command },
        } => {
            let with_file = file.apply(Cli::command());
            let mut args = vec!["mttx".to_owned()];
            if command.is_empty() {
                args.extend(["config".to_owned(), "show".to_owned()]);
            }
            args.extend(command);
            let matches = with_file
                .clone()
                .try_get_matches_from(args)
                .map_err(|e| usage(e.to_string().trim_start_matches("error: ").trim_end()))?;
            print!("{}", config::describe(&with_file, &matches, file));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mttx", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// What is logged unless `RUST_LOG` says otherwise: mttx's own info, the libraries'
/// warnings, and not what they log for normal states — the delta kernel's ERROR on opening
/// a table that does not exist yet (a fresh one; the error comes back to mttx anyway), and
/// delta-rs's WARN on every MERGE about a scan metric it derives.
pub const DEFAULT_LOG_FILTER: &str = "info,buoyant_kernel=warn,buoyant_kernel::snapshot::builder=off,\
     deltalake=warn,deltalake_core=warn,deltalake_core::operations::merge=error,datafusion=warn";

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => lines
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// The blocking-thread cap of a backfill's runtime (`etl run`, `reprocess`), from its workers.
///
/// Writing facts to a local folder runs every file operation on tokio's blocking pool, and a
/// range's flush writes a file per account and month at once: uncapped, the pool grew to the
/// most writes ever seen at once (88 threads by the end of a 100M backfill), each thread
/// keeping its allocator's freed pages, so the process's memory rose with the run
/// (BENCHMARKS.md, "Threads and memory"). A Delta kernel call holds one of these threads
/// while it waits for object-store reads that need another; a worker has one kernel call
/// under way at a time, so four threads per worker and eight more leave most of the pool to
/// the reads those calls wait on. `serve` answers any number of requests at once and other
/// commands are short: they keep tokio's default.
fn blocking_threads(command: &Command) -> Option<usize> {
    let workers = match command {
        Command::Etl {
            command: etl::EtlCommand::Run(args),
        } => args.workers,
        Command::Reprocess(args) => args.workers,
        _ => return None,
    };
    Some(8 + 4 * workers)
}

/// A bad argument: a [`Usage`] error, or a `--facts` that names no table location this
/// mttx can use (a file, a store not built in, not a location at all), wherever in the
/// chain. A facts folder that cannot be made (permissions, a full disk) is not.
fn bad_argument(e: &anyhow::Error) -> bool {
    use mttx_facts::LocationError;
    e.chain().any(|c| {
        c.is::<Usage>()
            || matches!(
                location_error(c),
                Some(
                    LocationError::NotAFolder { .. }
                        | LocationError::StoreNotCompiled { .. }
                        | LocationError::NotATable { .. }
                )
            )
    })
}

/// A facts location's error, also where the crates above facts wrap it transparently (which
/// hides it from the chain).
fn location_error<'a>(
    c: &'a (dyn std::error::Error + 'static),
) -> Option<&'a mttx_facts::LocationError> {
    c.downcast_ref::<mttx_facts::LocationError>()
        .or(match c.downcast_ref::<mttx_etl::Error>() {
            Some(mttx_etl::Error::Location(l)) => Some(l),
            _ => None,
        })
        .or(match c.downcast_ref::<mttx_api::Error>() {
            Some(mttx_api::Error::Location(l)) => Some(l),
            _ => None,
        })
}

/// Runs the command line; errors print their whole chain and exit with status 1, or 2 for
/// a bad argument ([`bad_argument`]).
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let file = match config::Config::load(&Cli::command(), &args) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = file.apply(Cli::command()).get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_tracing(cli.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = blocking_threads(&cli.command) {
        runtime.max_blocking_threads(threads);
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &file)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if bad_argument(&e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, joined by ": ", each said once: many errors of the crates below
/// (sqlx's, object_store's through deltalake's) print their cause in their own text and
/// return it as their source too.
fn message(e: &anyhow::Error) -> String {
    said(e.as_ref())
}

/// [`message`] of any error (a send round's failures are the API's errors, not anyhow's).
fn said(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut said_by_parent = false;
    for cause in std::iter::successors(Some(e), |e| e.source()) {
        if std::mem::take(&mut said_by_parent) {
            continue;
        }
        let (text, says_its_source) = cause_text(cause);
        said_by_parent = says_its_source;
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    if let Some(hint) = hint(&out) {
        out.push_str("; ");
        out.push_str(hint);
    }
    out
}

/// What to do, where the words of the crates below do not say it.
fn hint(message: &str) -> Option<&'static str> {
    // object_store found no credentials (in the environment, a profile or a role): "an
    // error occurred while loading credentials", "the credential provider was not enabled".
    (message.contains("object store") && message.contains("credential")).then_some(
        "no credentials for the object store were found: for S3 set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for an S3-compatible \
         server; for Azure AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (README, \
         \"Facts on object storage\")",
    )
}

/// One cause's own text, and whether it says its source's too. A PostgreSQL error is said
/// by its message, detail and hint: sqlx adds " at line N", the line of PostgreSQL's own
/// source code that raised it, which reads as if it were a line of the user's input.
fn cause_text(cause: &(dyn std::error::Error + 'static)) -> (String, bool) {
    use sqlx::postgres::PgDatabaseError;
    if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>()
        && let Some(db) = db.try_downcast_ref::<PgDatabaseError>()
    {
        let mut text = format!("error returned from database: {}", db.message());
        for extra in [db.detail(), db.hint()].into_iter().flatten() {
            text.push_str(" (");
            text.push_str(extra);
            text.push(')');
        }
        return (text, true);
    }
    (cause.to_string(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_cause_its_parent_already_says_is_said_once() {
        // Says its cause in its own text and returns it as its source.
        #[derive(Debug)]
        struct Inner(std::io::Error);
        impl std::fmt::Display for Inner {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "loading credentials: {}", self.0)
            }
        }
        impl std::error::Error for Inner {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::other("no profile");
        let e = anyhow::Error::new(Inner(io)).context("opening the facts table");
        assert_eq!(
            message(&e),
            "opening the facts table: loading credentials: no profile"
        );
        let plain = anyhow::anyhow!("disk full").context("writing");
        assert_eq!(message(&plain), "writing: disk full");
        // The same for an error that never went through anyhow (a send round's).
        let bare = Inner(std::io::Error::other("no profile"));
        assert_eq!(said(&bare), "loading credentials: no profile");
    }

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
