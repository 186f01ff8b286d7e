//! `mttx report weekly`: one team's ISO week as a file for mail or a wiki (HTML, Markdown,
//! CSV or JSON), with the same numbers the report API answers: the team beside last week
//! and the account-wide norm, by service and by responder, a 12-week trend, the escalated
//! incidents to discuss, and the team's noisy alerts.

use anyhow::{Context, bail};
use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use mttx_query::{Engine, Filters, GroupBy, Noisy, NoisyOptions, Page, Period, Sort, Unit};
use serde::Serialize;

use crate::openapi::{BucketBody, PeriodBody, RowBody};
use crate::server::{period_body, row_body};

/// What `mttx report weekly` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Md,
    Csv,
    Json,
}

/// A team's week.
#[derive(Debug, Serialize)]
pub struct Weekly {
    pub account_id: i64,
    pub team_id: i64,
    /// ISO week, e.g. 2026-W44.
    pub week: String,
    pub period: PeriodBody,
    pub previous_period: PeriodBody,
    pub facts_version: i64,
    /// The team's metrics beside last week's and the account-wide norm.
    pub team: RowBody,
    pub services: Vec<RowBody>,
    pub responders: Vec<RowBody>,
    /// The 12 weeks up to and including this one.
    pub trend: Vec<BucketBody>,
    /// The team's escalated incidents of the week, slowest resolve first (at most 20).
    pub escalated: Vec<mttx_facts::Fact>,
    pub noisy: Noisy,
}

/// Parses `2026-W44` (or `2026-w44`) into its Monday.
pub fn parse_week(text: &str) -> anyhow::Result<NaiveDate> {
    let bad = || anyhow::anyhow!("--week `{text}`: write an ISO week like 2026-W44");
    let (year, week) = text
        .split_once(['W', 'w'])
        .map(|(y, w)| (y.trim_end_matches('-'), w))
        .ok_or_else(bad)?;
    let year: i32 = year.parse().map_err(|_| bad())?;
    let week: u32 = week.parse().map_err(|_| bad())?;
    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
        .ok_or_else(|| anyhow::anyhow!("--week `{text}`: {year} has no ISO week {week}"))
}

/// The Monday of the last complete ISO week in `tz`.
pub fn last_week(tz: Tz) -> NaiveDate {
    let today = Utc::now().with_timezone(&tz).date_naive();
    today - Days::new(u64::from(today.weekday().num_days_from_monday()) + 7)
}

fn iso(monday: NaiveDate) -> String {
    let w = monday.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Gathers the team's week from the engine.
pub async fn weekly(
    engine: &Engine,
    account: i64,
    team: i64,
    monday: NaiveDate,
    tz: Tz,
) -> anyhow::Result<Weekly> {
    let today = Utc::now().with_timezone(&tz).date_naive();
    if monday > today {
        bail!(
            "week {} has not begun yet in {tz}; pick a week up to {}",
            iso(monday),
            iso(last_week(tz) + Days::new(7))
        );
    }
    let period = Period::new(tz, monday, monday + Days::new(7), 400)?;
    let twelve = Period::new(tz, monday - Days::new(77), monday + Days::new(7), 400)?;
    let by_team = engine
        .report(account, &period, Some(GroupBy::Team), &Filters::default())
        .await?;
    let key = Some(team.to_string());
    let Some(row) = by_team.groups.iter().find(|g| g.key == key) else {
        // Name the teams that do have incidents, so the fix is obvious.
        let known = engine
            .report(account, &twelve, Some(GroupBy::Team), &Filters::default())
            .await?;
        let teams: Vec<String> = known.groups.iter().filter_map(|g| g.key.clone()).collect();
        bail!(
            "team {team} has no incidents in account {account} in {} or the week before; teams with incidents in the 12 weeks up to it: {}",
            iso(monday),
            if teams.is_empty() {
                "none".to_owned()
            } else {
                teams.join(", ")
            }
        );
    };
    let mine = Filters {
        team: Some(team),
        ..Filters::default()
    };
    let breakdown = async |g: GroupBy| -> anyhow::Result<Vec<RowBody>> {
        let r = engine.report(account, &period, Some(g), &mine).await?;
        Ok(r.groups
            .iter()
            .map(|row| row_body(row, Some(&r.account)))
            .collect())
    };
    let services = breakdown(GroupBy::Service).await?;
    let responders = breakdown(GroupBy::Responder).await?;
    let trend = engine
        .trend(account, &twelve, Unit::Week, &mine)
        .await?
        .iter()
        .map(|(start, m)| BucketBody::new(*start, m))
        .collect();
    let escalated = engine
        .drilldown(
            account,
            &period,
            &Filters {
                escalated: Some(true),
                ..mine.clone()
            },
            &Page {
                sort: Sort::TimeToResolve,
                descending: true,
                limit: 20,
                after: None,
            },
        )
        .await?
        .facts;
    let noisy = engine
        .noisy(account, &period, &mine, &NoisyOptions::default())
        .await?;
    Ok(Weekly {
        account_id: account,
        team_id: team,
        week: iso(monday),
        period: period_body(&period),
        previous_period: period_body(&period.previous()),
        facts_version: engine.version(),
        team: row_body(row, Some(&by_team.account)),
        services,
        responders,
        trend,
        escalated,
        noisy,
    })
}

/// The report in `format`.
pub fn render(report: &Weekly, format: Format) -> anyhow::Result<String> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(report)? + "\n"),
        Format::Csv => csv(report),
        Format::Md => template("weekly.md", include_str!("weekly.md.j2"), report),
        Format::Html => template("weekly.html", include_str!("weekly.html.j2"), report),
    }
}

/// One row per number: section, key, metric, value, previous, delta, delta_ratio, norm.
fn csv(report: &Weekly) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "section",
        "key",
        "metric",
        "value",
        "previous",
        "delta",
        "delta_ratio",
        "norm",
    ])?;
    let num = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut rows = |section: &str, row: &RowBody| -> anyhow::Result<()> {
        for (metric, c) in &row.metrics {
            w.write_record([
                section,
                row.key.as_deref().unwrap_or(""),
                metric,
                &num(c.value),
                &num(c.previous),
                &num(c.delta),
                &num(c.delta_ratio),
                &num(c.norm.flatten()),
            ])?;
        }
        Ok(())
    };
    rows("team", &report.team)?;
    for r in &report.services {
        rows("service", r)?;
    }
    for r in &report.responders {
        rows("responder", r)?;
    }
    for b in &report.trend {
        for (metric, v) in &b.metrics {
            w.write_record([
                "trend",
                &b.start.to_string(),
                metric,
                &num(*v),
                "",
                "",
                "",
                "",
            ])?;
        }
    }
    for f in &report.escalated {
        for (metric, v) in [
            ("seconds_to_first_ack", f.seconds_to_first_ack),
            ("seconds_to_resolve", f.seconds_to_resolve),
            ("escalation_count", Some(f.escalation_count as f64)),
        ] {
            w.write_record([
                "escalated_incident",
                &f.incident_id.to_string(),
                metric,
                &num(v),
                "",
                "",
                "",
                "",
            ])?;
        }
    }
    Ok(String::from_utf8(w.into_inner().context("writing CSV")?)?)
}

/// Seconds as a short duration: 45s, 12m 05s, 3h 20m, 2d 4h.
fn duration(v: Option<f64>) -> String {
    let Some(s) = v else { return "–".into() };
    let s = s.round() as i64;
    match s {
        ..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn template(name: &str, source: &str, report: &Weekly) -> anyhow::Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_filter("duration", duration);
    env.add_filter("pct", |v: Option<f64>| {
        v.map_or("–".to_owned(), |v| format!("{:+.0}%", v * 100.0))
    });
    env.add_filter("num", |v: Option<f64>| {
        v.map_or("–".to_owned(), |v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
    });
    env.add_template(name, source)?;
    Ok(env.get_template(name)?.render(report)?)
}
