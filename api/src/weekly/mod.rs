//! The weekly report: one team's (or the whole account's) ISO week gathered from the
//! engine, with the same numbers the report API answers: the team beside last week and the
//! account-wide norm, by service and by responder, a 12-week trend, the escalated incidents
//! to discuss, and the team's noisy alerts, every id with its name from the account's
//! [`Directory`] beside it. The dashboard's overview shows it as a page;
//! `mttx report weekly` writes it as a file for mail or a wiki ([`render`]: HTML, Markdown,
//! CSV or JSON).

pub mod message;
pub(crate) mod render;

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use mttx_query::{Engine, Filters, GroupBy, NoisyOptions, Page, Period, Sort, Unit};
use mttx_replica::{Directory, Kind};
use serde::Serialize;

pub use self::render::{Format, render};
pub(crate) use self::render::{duration, filters};
use crate::body::{BucketBody, PeriodBody, RowBody, period_body, row_body};
use crate::named::{NamedFact, NamedNoisy, account_label, label, name_rows};

/// A team's week, or the whole account's (no team).
#[derive(Debug, Serialize)]
pub struct Weekly {
    pub account_id: i64,
    /// The account's name as the replica holds it ("Account 1" where it holds none).
    pub account_name: String,
    pub team_id: Option<i64>,
    /// The team's name ("Team 7" where the replica holds none); null for the account.
    pub team_name: Option<String>,
    /// ISO week, e.g. 2026-W44.
    pub week: String,
    pub period: PeriodBody,
    pub previous_period: PeriodBody,
    pub facts_version: i64,
    pub generation: i64,
    /// The replica time up to which the facts are complete: the created time of the last
    /// log entry folded with none awaited below it (null: no ETL has recorded it).
    pub data_as_of: Option<chrono::DateTime<chrono::Utc>>,
    pub metrics_version: i32,
    /// The team's metrics beside last week's and the account-wide norm (for the whole
    /// account: its metrics beside last week's, no norm).
    pub team: RowBody,
    /// Every team of the week, each beside the account-wide norm.
    pub teams: Vec<RowBody>,
    pub services: Vec<RowBody>,
    pub responders: Vec<RowBody>,
    /// The 12 weeks up to and including this one.
    pub trend: Vec<BucketBody>,
    /// The team's escalated incidents of the week, slowest resolve first (at most 20).
    pub escalated: Vec<NamedFact>,
    pub noisy: NamedNoisy,
}

/// Parses `2026-W44` (or `2026-w44`) into its Monday.
pub fn parse_week(text: &str) -> crate::Result<NaiveDate> {
    let bad = || crate::Error::BadWeek(text.to_owned());
    let (year, week) = text
        .split_once(['W', 'w'])
        .map(|(y, w)| (y.trim_end_matches('-'), w))
        .ok_or_else(bad)?;
    let year: i32 = year.parse().map_err(|_| bad())?;
    let week: u32 = week.parse().map_err(|_| bad())?;
    if !mttx_query::YEARS.contains(&year) {
        return Err(crate::Error::WeekOutOfRange(text.to_owned()));
    }
    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(|| crate::Error::NoSuchWeek {
        text: text.to_owned(),
        year,
        week,
    })
}

/// Why a week cannot be reported; the message says what to pick instead.
#[derive(Debug)]
pub enum Refusal {
    /// The week has not begun in the time zone.
    Future {
        week: String,
        tz: Tz,
        latest: String,
    },
    /// The team has no incidents in the week or the week before.
    UnknownTeam {
        team: i64,
        week: String,
        /// Teams with incidents in the 12 weeks up to the week, with their names.
        known: Vec<(i64, String)>,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Future { week, tz, latest } => write!(
                f,
                "week {week} has not begun yet in {tz}; pick a week up to {latest}"
            ),
            Refusal::UnknownTeam { team, week, known } => {
                let known: Vec<String> = known
                    .iter()
                    .map(|(id, name)| format!("{name} ({id})"))
                    .collect();
                write!(
                    f,
                    "team {team} has no incidents in {week} or the week before; teams with incidents in the 12 weeks up to it: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// The Monday of the ISO week holding `day` (the calendar's first day for a week it
/// begins in the middle of).
pub fn monday_of(day: NaiveDate) -> NaiveDate {
    day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
        .unwrap_or(NaiveDate::MIN)
}

/// The Monday of the last complete ISO week in `tz`.
pub fn last_week(tz: Tz) -> NaiveDate {
    monday_of(Utc::now().with_timezone(&tz).date_naive()) - Days::new(7)
}

/// `2026-W44` for the week starting on `monday`.
pub fn iso(monday: NaiveDate) -> String {
    let w = monday.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// The ISO week starting on `monday` in `tz`; a week not begun there is a [`Refusal`].
fn week_period(monday: NaiveDate, tz: Tz) -> crate::Result<Period> {
    let today = Utc::now().with_timezone(&tz).date_naive();
    if monday > today {
        return Err(Refusal::Future {
            week: iso(monday),
            tz,
            latest: iso(last_week(tz) + Days::new(7)),
        }
        .into());
    }
    // Checked, so a week at the ends of the calendar is refused by Period, not overflowed.
    let next = monday.checked_add_days(Days::new(7)).unwrap_or(monday);
    Ok(Period::new(tz, monday, next, 400)?)
}

/// The teams of the account's week starting on `monday` in `tz`: those with incidents in
/// it or the week before, the teams [`weekly`] reports on (and lists in [`Weekly::teams`]).
pub async fn teams_of_week(
    engine: &Engine,
    account: i64,
    monday: NaiveDate,
    tz: Tz,
) -> crate::Result<Vec<i64>> {
    let period = week_period(monday, tz)?;
    let by_team = engine
        .report(account, &period, Some(GroupBy::Team), &Filters::default())
        .await?;
    Ok(by_team
        .groups
        .iter()
        .filter_map(|g| g.key.as_deref()?.parse().ok())
        .collect())
}

/// Gathers the team's week (or, with no team, the account's) from the engine, with the
/// repeats the replica at `source` knows of for its noisy alerts. A week not
/// begun or a team without incidents is a [`Refusal`].
#[tracing::instrument(skip(engine, names, source), err(level = "info"))]
pub async fn weekly(
    engine: &Engine,
    names: &Directory,
    source: Option<&mttx_replica::Source>,
    account: i64,
    team: Option<i64>,
    monday: NaiveDate,
    tz: Tz,
) -> crate::Result<Weekly> {
    let period = week_period(monday, tz)?;
    let next = period.to;
    let first = monday.checked_sub_days(Days::new(77)).unwrap_or(monday);
    let twelve = Period::new(tz, first, next, 400)?;
    let by_team = engine
        .report(account, &period, Some(GroupBy::Team), &Filters::default())
        .await?;
    let row = match team {
        None => &by_team.account,
        Some(team) => {
            let key = Some(team.to_string());
            let Some(row) = by_team.groups.iter().find(|g| g.key == key) else {
                // Name the teams that do have incidents, so the fix is obvious.
                let known = engine
                    .report(account, &twelve, Some(GroupBy::Team), &Filters::default())
                    .await?;
                return Err(Refusal::UnknownTeam {
                    team,
                    week: iso(monday),
                    known: known
                        .groups
                        .iter()
                        .filter_map(|g| g.key.as_deref()?.parse().ok())
                        .map(|t| (t, label(names, Kind::Team, t)))
                        .collect(),
                }
                .into());
            };
            row
        }
    };
    let mine = Filters {
        team,
        ..Filters::default()
    };
    let breakdown = async |g: GroupBy| -> crate::Result<Vec<RowBody>> {
        let r = engine.report(account, &period, Some(g), &mine).await?;
        let mut rows: Vec<RowBody> = r
            .groups
            .iter()
            .map(|row| row_body(row, Some(&r.account)))
            .collect();
        name_rows(names, g, &mut rows);
        Ok(rows)
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
    let escalated = NamedFact::all(names, escalated);
    let noisy = crate::named::noisy(
        engine,
        source,
        account,
        &period,
        &mine,
        &NoisyOptions::default(),
    )
    .await?;
    let mut teams: Vec<RowBody> = by_team
        .groups
        .iter()
        .map(|g| row_body(g, Some(&by_team.account)))
        .collect();
    name_rows(names, GroupBy::Team, &mut teams);
    let mut this = row_body(row, team.map(|_| &by_team.account));
    this.name = Some(match team {
        Some(t) => label(names, Kind::Team, t),
        None => account_label(names),
    });
    Ok(Weekly {
        account_id: account,
        account_name: account_label(names),
        team_id: team,
        team_name: team.map(|t| label(names, Kind::Team, t)),
        week: iso(monday),
        period: period_body(&period),
        previous_period: period_body(&period.previous()),
        facts_version: engine.version(),
        generation: engine.generation(),
        data_as_of: engine.data_as_of(),
        metrics_version: engine.metrics_version(account).number(),
        team: this,
        teams,
        services,
        responders,
        trend,
        escalated,
        noisy: NamedNoisy::new(names, noisy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// Any year and week number parse to a Monday of the years mttx takes, or to an
        /// error that says what to write; any date has its Monday and ISO name.
        #[test]
        fn weeks_and_mondays_never_panic(year in any::<i32>(), week in 0_u32..=60, days in any::<i32>()) {
            let text = format!("{year}-W{week:02}");
            match parse_week(&text) {
                Ok(monday) => {
                    prop_assert!(mttx_query::YEARS.contains(&monday.iso_week().year()));
                    prop_assert_eq!(monday.weekday(), Weekday::Mon);
                    prop_assert_eq!(iso(monday), text);
                }
                Err(e) => prop_assert!(e.to_string().contains(&text)),
            }
            let day = NaiveDate::from_num_days_from_ce_opt(days).unwrap_or(NaiveDate::MIN);
            let monday = monday_of(day);
            prop_assert!(monday <= day);
            let _ = iso(monday);
        }
    }

    #[test]
    fn the_weeks_that_panicked_are_refused() {
        for text in ["-262143-W10", "262142-W52", "1899-W52", "10000-W01"] {
            let e = parse_week(text).unwrap_err().to_string();
            assert!(e.contains("out of range"), "{text}: {e}");
        }
        assert_eq!(parse_week("2026-W44").unwrap().to_string(), "2026-10-26");
        assert_eq!(monday_of(NaiveDate::MIN), NaiveDate::MIN);
    }
}
