//! `mttx report weekly`: one team's ISO week, written to a file or stdout, with names from
//! the replica at `--source` and, unless `--tz` says otherwise, in the account's own time
//! zone; `mttx report send` ([`super::send`]) delivers it by email and chat.

use clap::Subcommand;
use mttx_api::named::account_zone;
use mttx_api::weekly::Format;
use mttx_migrations::Location;
use mttx_replica::{Directory, Kind};

use super::{Places, usage};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One team's ISO week: the team beside last week and the company-wide norm, by service
    /// and responder, a 12-week trend, escalated incidents and noisy alerts.
    Weekly {
        /// The account the team belongs to.
        #[arg(long)]
        account: i64,
        /// The team, by id or by name in any case (default: the whole account, as for a
        /// GoAlert instance, which has no teams).
        #[arg(long, value_name = "TEAM")]
        team: Option<String>,
        /// ISO week such as 2026-W44 (default: the last complete week in the time zone).
        #[arg(long, value_parser = parse_week)]
        week: Option<chrono::NaiveDate>,
        /// IANA time zone of the week (default: the account's own, from the replica at
        /// --source; UTC without a replica).
        #[arg(long, value_parser = super::parse_zone)]
        tz: Option<chrono_tz::Tz>,
        #[arg(long, value_enum, default_value = "html")]
        format: FormatArg,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Send each team's weekly report by email and/or to a chat webhook, now or on a
    /// schedule (`--every "mon 08:00"`); what was sent is never sent twice.
    Send(Box<super::send::SendArgs>),
}

/// `--week`: an ISO week such as 2026-W44, as its Monday (a bad one is a usage error).
fn parse_week(s: &str) -> Result<chrono::NaiveDate, String> {
    mttx_api::weekly::parse_week(s).map_err(|e| e.to_string())
}

/// The formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Html,
    Md,
    Csv,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Html => Format::Html,
            FormatArg::Md => Format::Md,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
        }
    }
}

pub async fn run(places: &Places, command: ReportCommand) -> anyhow::Result<()> {
    let (account, team, week, tz, format, output) = match command {
        ReportCommand::Weekly {
            account,
            team,
            week,
            tz,
            format,
            output,
        } => (account, team, week, tz, format, output),
        ReportCommand::Send(args) => return super::send::run(places, *args).await,
    };
    let (names, source) = directory(places, account).await?;
    let team = team.map(|key| team_id(&names, &key)).transpose()?;
    let tz = zone(tz, &names);
    let monday = week.unwrap_or_else(|| mttx_api::weekly::last_week(tz));
    let state = places.open_state().await?;
    let engine = mttx_api::open_served(&state, &places.facts)
        .await?
        .with_min_sample(places.min_sample);
    let report =
        mttx_api::weekly::weekly(&engine, &names, source.as_ref(), account, team, monday, tz)
            .await?;
    let text = mttx_api::weekly::render(&report, format.into())?;
    match output {
        Some(path) => {
            std::fs::write(&path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            let whose = match (team, &report.team_name) {
                (Some(t), Some(name)) => format!("{name}, team {t}"),
                (Some(t), None) => format!("team {t}"),
                (None, _) => format!("{}, account {account}", report.account_name),
            };
            eprintln!(
                "wrote {} ({} of {whose}, in {tz})",
                path.display(),
                report.week
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `--tz`, else the account's own time zone, else UTC (saying so when the replica holds a
/// zone that is not an IANA name).
pub(super) fn zone(tz: Option<chrono_tz::Tz>, names: &Directory) -> chrono_tz::Tz {
    match tz {
        Some(tz) => tz,
        None => match (account_zone(names), &names.time_zone) {
            (Some(tz), _) => tz,
            (None, Some(zone)) => {
                eprintln!(
                    "the account's time zone `{zone}` is not an IANA name; using UTC (give --tz)"
                );
                chrono_tz::UTC
            }
            (None, None) => chrono_tz::UTC,
        },
    }
}

/// The account's names and time zone from the replica at `--source`, and the replica;
/// without one (no such SQLite file), ids alone and UTC, as stderr says. An account the
/// replica does not hold is refused, with the accounts it does.
pub(super) async fn directory(
    places: &Places,
    account: i64,
) -> anyhow::Result<(Directory, Option<mttx_replica::Source>)> {
    if let Location::Sqlite(path) = places.source()?
        && !path.exists()
    {
        eprintln!(
            "no replica at {} (--source): teams, services and people show by id and the week is in UTC unless --tz says otherwise",
            path.display()
        );
        return Ok((Directory::empty(account), None));
    }
    let source = places.replica(1).await?;
    let names = source.directory(account).await?;
    if names.account_name.is_none() {
        let accounts = source.accounts().await?;
        let known = listing(accounts.iter().map(|(id, name)| (*id, name.as_str())));
        return Err(usage(format!(
            "the replica at --source has no account {account}; its accounts: {known}"
        )));
    }
    Ok((names, Some(source)))
}

/// Named things for an error message, "Acme (1), Globex (2)": at most 20, then how many
/// more; "none" when there are none.
fn listing<'a>(items: impl ExactSizeIterator<Item = (i64, &'a str)>) -> String {
    const SHOWN: usize = 20;
    let total = items.len();
    let mut shown: Vec<String> = items
        .take(SHOWN)
        .map(|(id, name)| format!("{name} ({id})"))
        .collect();
    if total > SHOWN {
        shown.push(format!("and {} more", total - SHOWN));
    }
    if shown.is_empty() {
        "none".to_owned()
    } else {
        shown.join(", ")
    }
}

/// A team of the account, by id or by name (any case); an id the replica does not know is
/// refused too, where it knows the account's teams.
pub(super) fn team_id(names: &Directory, key: &str) -> anyhow::Result<i64> {
    let teams = names.named(Kind::Team);
    // By name (`named` sorts them).
    let known = || listing(teams.iter().copied());
    if let Ok(id) = key.parse::<i64>() {
        if teams.is_empty() || teams.iter().any(|(t, _)| *t == id) {
            return Ok(id);
        }
        return Err(usage(format!(
            "account {} has no team {id}; its teams: {}",
            names.account_id,
            known()
        )));
    }
    teams
        .iter()
        .find(|(_, name)| name.eq_ignore_ascii_case(key))
        .map(|(id, _)| *id)
        .ok_or_else(|| {
            usage(format!(
                "no team named `{key}` in account {}; its teams: {}",
                names.account_id,
                known()
            ))
        })
}
