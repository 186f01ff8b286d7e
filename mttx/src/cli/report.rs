//! `mttx report weekly`: one team's ISO week, written to a file or stdout.

use anyhow::Context as _;
use clap::Subcommand;
use mttx_api::weekly::Format;

use super::Places;

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
        format: FormatArg,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
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
    let ReportCommand::Weekly {
        account,
        team,
        week,
        tz,
        format,
        output,
    } = command;
    let tz: chrono_tz::Tz = tz.parse().map_err(|_| {
        anyhow::anyhow!("--tz `{tz}` is not an IANA time zone such as Europe/Berlin")
    })?;
    let monday = match week {
        Some(w) => mttx_api::weekly::parse_week(&w).context("--week")?,
        None => mttx_api::weekly::last_week(tz),
    };
    let state = places.open_state().await?;
    let engine = mttx_api::open_served(&state, &places.facts).await?;
    let report = mttx_api::weekly::weekly(&engine, account, Some(team), monday, tz).await?;
    let text = mttx_api::weekly::render(&report, format.into())?;
    match output {
        Some(path) => {
            std::fs::write(&path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {} ({} of team {team})", path.display(), report.week);
        }
        None => print!("{text}"),
    }
    Ok(())
}
