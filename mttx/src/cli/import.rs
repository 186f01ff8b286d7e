//! `mttx import pagerduty`: a PagerDuty account into a replica in mttx's contract.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};
use mttx_pagerduty::Options;

use super::etl::check_poll;
use super::{Places, shutdown_on_signal};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Build (or bring up to date) the replica at --source from a PagerDuty account's REST
    /// API: users, teams, escalation policies, services, incidents and log entries. The
    /// token comes from PAGERDUTY_TOKEN or --token-file.
    Pagerduty(PagerdutyArgs),
}

#[derive(Debug, Args)]
pub struct PagerdutyArgs {
    /// PagerDuty's REST API.
    #[arg(long, default_value = "https://api.pagerduty.com")]
    api_url: String,
    /// Where the first import starts (a date, UTC); later imports go on from where the
    /// last one stopped. Default: 90 days ago.
    #[arg(long)]
    since: Option<NaiveDate>,
    /// Keep polling for new log entries after catching up.
    #[arg(long)]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 30.0)]
    poll_seconds: f64,
    /// A file holding the API token (instead of PAGERDUTY_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The longest span of history asked for (and committed) at once, in hours: smaller
    /// windows lose less work to a crash; PagerDuty lists incidents over 6 months at most.
    #[arg(long, default_value_t = 720)]
    window_hours: u32,
}

/// The token: from `--token-file`, else `PAGERDUTY_TOKEN`; never printed.
fn token(file: Option<&PathBuf>) -> anyhow::Result<secrecy::SecretString> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}: cannot read it", path.display()))?,
        None => std::env::var("PAGERDUTY_TOKEN").map_err(|_| {
            anyhow::anyhow!(
                "no PagerDuty token: set PAGERDUTY_TOKEN or give --token-file (a read-only REST API key)"
            )
        })?,
    };
    let text = text.trim().to_owned();
    anyhow::ensure!(!text.is_empty(), "the PagerDuty token is empty");
    Ok(text.into())
}

pub async fn run(places: &Places, command: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Pagerduty(args) = command;
    let poll = check_poll(args.poll_seconds)?;
    ensure_arg!(
        (1..=4320).contains(&args.window_hours),
        "--window-hours must be between 1 and 4320 (6 months)"
    );
    let source = places.source()?;
    let since = match args.since {
        Some(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        None => Utc::now() - chrono::Duration::days(90),
    };
    let opts = Options {
        follow: args.follow,
        poll,
        account_name: places
            .account_name
            .clone()
            .unwrap_or_else(|| "PagerDuty".into()),
        window: chrono::Duration::hours(i64::from(args.window_hours)),
        shutdown: shutdown_on_signal(
            "finishing the current window (at once if a request waits to be tried again)",
        ),
        ..Options::new(&args.api_url, token(args.token_file.as_ref())?, since)
    };
    let summary = mttx_pagerduty::import(&opts, &source, |s| {
        if opts.follow {
            tracing::info!(
                entries = s.entries,
                incidents = s.incidents,
                calls = s.calls,
                "imported"
            );
        }
    })
    .await?;
    println!("imported into {source}\n{summary}");
    Ok(())
}
