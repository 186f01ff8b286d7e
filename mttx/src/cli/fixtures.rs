//! `mttx fixtures`: replica data for tests, benchmarks and demos.

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand};
use mttx_fixtures::{Config, golden};

use super::Places;

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
    /// Make a GoAlert database at --source (an empty PostgreSQL database): GoAlert's schema
    /// and alerts written the way GoAlert writes them, for trying `--source-kind goalert`.
    Goalert(GoalertArgs),
}

#[derive(Debug, Args)]
pub struct GoalertArgs {
    /// Seed of every random draw.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of alerts (about 9 log rows each).
    #[arg(long, default_value_t = 20_000)]
    pub alerts: usize,
    /// Days of history, ending now.
    #[arg(long, default_value_t = 28)]
    pub days: u32,
    /// The 12 hand-worked alerts of fixtures/goalert/golden.md instead.
    #[arg(long)]
    pub golden: bool,
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
    /// Share of incidents whose log is written the way PagerDuty writes it (one entry per
    /// assignee, a delegation's assigns in the same second, the service assigning whoever
    /// acknowledges unassigned), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub pagerduty_share: f64,
    /// Empty the replica first if it holds data.
    #[arg(long)]
    pub replace: bool,
}

fn parse_until(s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        super::usage(format!("--until `{s}` is neither a date (2026-11-23) nor an RFC 3339 time (2026-11-23T00:00:00Z)"))
    })?;
    Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

pub async fn run(places: &Places, command: FixturesCommand) -> anyhow::Result<()> {
    let source = places.source()?;
    match command {
        FixturesCommand::Generate(args) => {
            let cfg = Config {
                seed: args.seed,
                accounts: args.accounts,
                incidents: args.incidents,
                weeks: args.weeks,
                until: parse_until(&args.until)?,
                bad_rate: args.bad_rate,
                pagerduty_share: args.pagerduty_share,
                ..Config::default()
            };
            cfg.validate().map_err(super::usage)?;
            let summary = mttx_fixtures::generate_into(cfg, &source, args.replace).await?;
            println!("generated into {source}\n{summary}");
        }
        FixturesCommand::Goalert(args) => {
            let mttx_migrations::Pool::Postgres(pg) =
                mttx_migrations::connect(&source, &Default::default()).await?
            else {
                return Err(super::usage(
                    "GoAlert keeps its data in PostgreSQL: give --source a PostgreSQL URL of an empty database",
                ));
            };
            let hint = || format!("making a GoAlert database at {source} (it must be empty)");
            if args.golden {
                mttx_fixtures::goalert::load_golden(&pg)
                    .await
                    .with_context(hint)?;
                println!("loaded GoAlert's golden set (12 alerts) into {source}");
            } else {
                let days = args.days.max(1);
                let cfg = mttx_fixtures::goalert::GoalertConfig {
                    seed: args.seed,
                    alerts: args.alerts,
                    start: Utc::now() - chrono::Duration::days(i64::from(days)),
                    days,
                    ..Default::default()
                };
                let s = mttx_fixtures::goalert::generate(&pg, &cfg)
                    .await
                    .with_context(hint)?;
                println!(
                    "generated a GoAlert database at {source}: {} alerts, {} log rows",
                    s.alerts, s.log_rows
                );
            }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
