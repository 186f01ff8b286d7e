//! Periods: local dates `[from, to)` in an IANA time zone, in and out as dates; out as the
//! UTC instants a query filters on, the previous period of equal length, and the day,
//! week or month buckets of a trend.

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

use crate::{Error, Result};

/// A period `[from, to)` of local dates in a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub tz: Tz,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The instant a local date starts in `tz`: its midnight read by [`local_instant`].
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    local_instant(tz, date.and_time(NaiveTime::MIN))
}

/// The instant a local date-time names in `tz`, read as PostgreSQL reads
/// `timestamp AT TIME ZONE zone`:
/// - a time that occurs once is that instant;
/// - a time that occurs twice (clocks set back) is the later one;
/// - a time that never occurs (in the gap of clocks set forward) is read with the offset in
///   force just before the gap. When the gap begins at that time, as for a midnight that
///   clocks skip, that is the instant the gap ends: the first instant the date has.
pub fn local_instant(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.max(b).with_timezone(&Utc),
        LocalResult::None => {
            // The offset before the gap is the one of the last local minute before it (no
            // gap is longer than a day).
            let before = (1..=GAP_SEARCH_MINUTES).find_map(|m| {
                let earlier = naive.checked_sub_signed(TimeDelta::minutes(m))?;
                tz.from_local_datetime(&earlier)
                    .latest()
                    .map(|t| t.offset().fix())
            });
            match before.and_then(|offset| {
                naive.checked_sub_signed(TimeDelta::seconds(offset.local_minus_utc().into()))
            }) {
                Some(utc) => utc.and_utc(),
                None => naive.and_utc(),
            }
        }
    }
}

/// How far back [`local_instant`] looks for the offset before a gap: two days, in minutes.
const GAP_SEARCH_MINUTES: i64 = 2 * 24 * 60;

/// The years mttx takes dates in: far outside any incident log, and far inside what the
/// date arithmetic around a period (its previous period, ISO weeks, trends, local
/// midnights) can reach.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=9999;

/// `date` when its year is one of [`YEARS`]; otherwise the 400 that says so, naming the
/// parameter `what`.
pub fn supported_date(what: &str, date: NaiveDate) -> Result<NaiveDate> {
    if YEARS.contains(&date.year()) {
        Ok(date)
    } else {
        Err(Error::BadRequest(format!(
            "`{what}` = {date} is out of range: use a date from 1900-01-01 to 9999-12-31"
        )))
    }
}

impl Period {
    /// Checks a period: both dates in [`YEARS`], `from` before `to`, at most `max_days`
    /// long.
    pub fn new(tz: Tz, from: NaiveDate, to: NaiveDate, max_days: u64) -> Result<Self> {
        supported_date("from", from)?;
        supported_date("to", to)?;
        if from >= to {
            return Err(Error::BadRequest(format!(
                "`from` ({from}) must be before `to` ({to})"
            )));
        }
        let days = (to - from).num_days() as u64;
        if days > max_days {
            return Err(Error::BadRequest(format!(
                "the period is {days} days long; ask for at most {max_days}"
            )));
        }
        Ok(Self { tz, from, to })
    }

    /// The period of the same number of days just before this one.
    pub fn previous(&self) -> Self {
        let days = Days::new((self.to - self.from).num_days() as u64);
        Self {
            tz: self.tz,
            from: self.from.checked_sub_days(days).unwrap_or(self.from),
            to: self.from,
        }
    }

    /// The period's instants, `[start, end)`.
    pub fn instants(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            local_midnight(self.tz, self.from),
            local_midnight(self.tz, self.to),
        )
    }

    /// The buckets of `unit` that cover the period, each clipped to it: `[from, to)` dates.
    pub fn buckets(&self, unit: Unit) -> Vec<(NaiveDate, NaiveDate)> {
        // Checked throughout: a period made by hand at the ends of the calendar ends its
        // buckets there instead of overflowing.
        let start = match unit {
            Unit::Day => self.from,
            Unit::Week => self
                .from
                .checked_sub_days(Days::new(u64::from(
                    self.from.weekday().num_days_from_monday(),
                )))
                .unwrap_or(self.from),
            Unit::Month => self.from.with_day(1).unwrap_or(self.from),
        };
        let mut out = Vec::new();
        let mut at = start;
        while at < self.to {
            let next = match unit {
                Unit::Day => at.checked_add_days(Days::new(1)),
                Unit::Week => at.checked_add_days(Days::new(7)),
                Unit::Month => at.checked_add_months(chrono::Months::new(1)),
            }
            .unwrap_or(self.to);
            out.push((at.max(self.from), next.min(self.to)));
            at = next;
        }
        out
    }
}

/// The bucket of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Day,
    /// ISO weeks (Monday to Monday) in the time zone.
    Week,
    Month,
}

impl std::str::FromStr for Unit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "day" => Ok(Unit::Day),
            "week" => Ok(Unit::Week),
            "month" => Ok(Unit::Month),
            _ => Err(Error::BadRequest(format!(
                "unknown unit `{s}`: use day, week or month"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn berlin(from: &str, to: &str) -> Period {
        Period {
            tz: chrono_tz::Europe::Berlin,
            from: d(from),
            to: d(to),
        }
    }

    #[test]
    fn the_previous_period_has_the_same_days_and_ends_where_this_starts() {
        let p = berlin("2026-10-26", "2026-11-02").previous();
        assert_eq!((p.from, p.to), (d("2026-10-19"), d("2026-10-26")));
        let p = berlin("2026-03-01", "2026-03-31").previous();
        assert_eq!((p.from, p.to), (d("2026-01-30"), d("2026-03-01")));
    }

    /// Berlin leaves summer time on 2026-10-25: that week starts at 22:00 UTC (UTC+2) and
    /// ends at 23:00 UTC (UTC+1), 169 hours later.
    #[test]
    fn instants_are_local_midnights_across_a_dst_change() {
        let (start, end) = berlin("2026-10-19", "2026-10-26").instants();
        assert_eq!(start.to_rfc3339(), "2026-10-18T22:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-10-25T23:00:00+00:00");
        assert_eq!((end - start).num_hours(), 169);
    }

    fn at(tz: &str, date: &str) -> String {
        local_midnight(tz.parse().unwrap(), d(date)).to_rfc3339()
    }

    /// Cases read off PostgreSQL 15 (`'D 00:00'::timestamp AT TIME ZONE Z`).
    #[test]
    fn a_midnight_that_clocks_skip_or_repeat_is_read_as_postgresql_reads_it() {
        // Santiago skips from 00:00 (UTC-4) to 01:00 (UTC-3) on 2022-09-11: the day starts
        // at the end of the gap, 04:00 UTC.
        assert_eq!(
            at("America/Santiago", "2022-09-11"),
            "2022-09-11T04:00:00+00:00"
        );
        // Havana skips 00:00 (UTC-5) to 01:00 (UTC-4) on 2020-03-08.
        assert_eq!(
            at("America/Havana", "2020-03-08"),
            "2020-03-08T05:00:00+00:00"
        );
        // Havana sets 01:00 (UTC-4) back to 00:00 (UTC-5) on 2020-11-01: midnight happens
        // twice and the later one, 05:00 UTC, is the day's start.
        assert_eq!(
            at("America/Havana", "2020-11-01"),
            "2020-11-01T05:00:00+00:00"
        );
        // Santiago sets 24:00 (UTC-3) back to 23:00 (UTC-4) on 2022-04-02: one midnight.
        assert_eq!(
            at("America/Santiago", "2022-04-03"),
            "2022-04-03T04:00:00+00:00"
        );
        // Samoa skipped all of 2011-12-30: the day is empty, starting where the next does.
        assert_eq!(
            at("Pacific/Apia", "2011-12-30"),
            "2011-12-30T10:00:00+00:00"
        );
        assert_eq!(
            at("Pacific/Apia", "2011-12-31"),
            "2011-12-30T10:00:00+00:00"
        );
    }

    #[test]
    fn a_local_time_in_a_gap_is_read_with_the_offset_before_it() {
        // New York skips 02:00-03:00 on 2026-03-08: 02:30 is read at UTC-5, 07:30 UTC.
        let naive = d("2026-03-08").and_hms_opt(2, 30, 0).unwrap();
        let t = local_instant(chrono_tz::America::New_York, naive);
        assert_eq!(t.to_rfc3339(), "2026-03-08T07:30:00+00:00");
        // 01:30 on 2026-11-01 happens twice: the later, at UTC-5.
        let naive = d("2026-11-01").and_hms_opt(1, 30, 0).unwrap();
        let t = local_instant(chrono_tz::America::New_York, naive);
        assert_eq!(t.to_rfc3339(), "2026-11-01T06:30:00+00:00");
    }

    #[test]
    fn buckets_are_clipped_to_the_period() {
        // Wednesday to Thursday: ISO weeks start on Monday 2026-10-26.
        let p = berlin("2026-10-28", "2026-11-12");
        assert_eq!(
            p.buckets(Unit::Week),
            [
                (d("2026-10-28"), d("2026-11-02")),
                (d("2026-11-02"), d("2026-11-09")),
                (d("2026-11-09"), d("2026-11-12")),
            ]
        );
        let p = berlin("2026-01-15", "2026-03-10");
        assert_eq!(
            p.buckets(Unit::Month),
            [
                (d("2026-01-15"), d("2026-02-01")),
                (d("2026-02-01"), d("2026-03-01")),
                (d("2026-03-01"), d("2026-03-10")),
            ]
        );
        let p = berlin("2026-10-24", "2026-10-27");
        assert_eq!(
            p.buckets(Unit::Day),
            [
                (d("2026-10-24"), d("2026-10-25")),
                (d("2026-10-25"), d("2026-10-26")),
                (d("2026-10-26"), d("2026-10-27")),
            ]
        );
    }

    #[test]
    fn a_period_is_at_most_max_days_long() {
        let tz = chrono_tz::UTC;
        assert!(Period::new(tz, d("2026-01-01"), d("2026-01-08"), 7).is_ok());
        assert!(Period::new(tz, d("2026-01-01"), d("2026-01-09"), 7).is_err());
        assert!(Period::new(tz, d("2026-01-01"), d("2026-01-01"), 7).is_err());
        assert_eq!(
            "fortnight".parse::<Unit>().err().map(|e| e.to_string()),
            Some("unknown unit `fortnight`: use day, week or month".to_owned())
        );
    }

    mod no_panic {
        use super::*;
        use proptest::prelude::*;

        /// Any date chrono can hold, from -262143-01-01 to +262142-12-31.
        fn any_date() -> impl Strategy<Value = NaiveDate> {
            (NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce())
                .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap_or(NaiveDate::MIN))
        }

        fn any_zone() -> impl Strategy<Value = Tz> {
            (0..chrono_tz::TZ_VARIANTS.len()).prop_map(|i| chrono_tz::TZ_VARIANTS[i])
        }

        /// Every method of a period answers, however it was made.
        fn answers(p: &Period) {
            let _ = (p.previous(), p.instants());
            for unit in [Unit::Day, Unit::Week, Unit::Month] {
                let buckets = p.buckets(unit);
                assert!(buckets.iter().all(|(a, b)| a < b || p.from >= p.to));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

            /// Over the whole calendar and every zone: local instants never panic, a checked
            /// period is in range or refused with a message, and a period made by hand (even
            /// at the calendar's ends) still answers.
            #[test]
            fn no_date_panics(a in any_date(), days in -500_i64..=500, tz in any_zone()) {
                let b = a.checked_add_signed(TimeDelta::days(days)).unwrap_or(a);
                let _ = local_midnight(tz, a);
                let _ = local_instant(tz, a.and_time(NaiveTime::MIN));
                let valid = YEARS.contains(&a.year()) && YEARS.contains(&b.year()) && a < b && days <= 400;
                match Period::new(tz, a, b, 400) {
                    Ok(p) => {
                        prop_assert!(valid);
                        answers(&p);
                    }
                    Err(e) => prop_assert!(!valid, "{a} to {b} refused: {e}"),
                }
                answers(&Period { tz, from: a.min(b), to: a.max(b) });
            }
        }

        #[test]
        fn the_ends_of_the_calendar_are_refused_or_answered() {
            let near = |d: NaiveDate, n: i64| d.checked_add_signed(TimeDelta::days(n)).unwrap();
            for tz in [
                chrono_tz::UTC,
                chrono_tz::Pacific::Kiritimati,
                chrono_tz::Etc::GMTPlus12,
            ] {
                for (from, to) in [
                    (NaiveDate::MIN, near(NaiveDate::MIN, 8)),
                    (near(NaiveDate::MAX, -8), NaiveDate::MAX),
                ] {
                    let err = Period::new(tz, from, to, 400).unwrap_err().to_string();
                    assert!(err.contains("out of range"), "{err}");
                    answers(&Period { tz, from, to });
                    let _ = (local_midnight(tz, from), local_midnight(tz, to));
                }
            }
            let last = Period::new(chrono_tz::UTC, d("9999-12-01"), d("9999-12-31"), 400).unwrap();
            answers(&last);
        }
    }
}
