//! `--every "mon 08:00"`: a weekly slot in the account's time zone, the slots before and
//! after an instant, and the clock the schedule runs on.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// A weekday and a local time: once a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub weekday: Weekday,
    pub time: NaiveTime,
}

/// `--every`: a weekday and a 24-hour time, such as `mon 08:00` or `Friday 16:30`.
pub fn parse_every(s: &str) -> Result<Every, String> {
    let bad = || {
        format!(
            "`{s}` is not a weekly time: give a weekday and a 24-hour time, such as \"mon 08:00\""
        )
    };
    let mut parts = s.split_whitespace();
    let (Some(day), Some(time), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let weekday: Weekday = day.parse().map_err(|_| bad())?;
    let time = NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| bad())?;
    Ok(Every { weekday, time })
}

impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.weekday, self.time.format("%H:%M"))
    }
}

impl Every {
    /// The slot on `day` (which is this weekday) in `tz`: the earlier instant where the
    /// local time happens twice, the first instant after the gap where it never happens.
    fn on(&self, day: NaiveDate, tz: Tz) -> DateTime<Utc> {
        let local = day.and_time(self.time);
        let mut probe = local;
        loop {
            if let Some(at) = tz.from_local_datetime(&probe).earliest() {
                return at.with_timezone(&Utc);
            }
            // In a daylight-saving gap: the first minute after it.
            probe += chrono::Duration::minutes(1);
            if probe - local > chrono::Duration::hours(3) {
                return Utc.from_utc_datetime(&local);
            }
        }
    }

    /// The latest slot at or before `now`.
    pub fn last(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let today = now.with_timezone(&tz).date_naive();
        let back =
            (7 + today.weekday().num_days_from_monday() - self.weekday.num_days_from_monday()) % 7;
        let day = today - Days::new(u64::from(back));
        let slot = self.on(day, tz);
        if slot <= now {
            slot
        } else {
            self.on(day - Days::new(7), tz)
        }
    }

    /// The first slot after `now`.
    pub fn next(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let last = self.last(now, tz);
        self.on(last.with_timezone(&tz).date_naive() + Days::new(7), tz)
    }
}

/// The Monday of the week a slot at `slot` reports: the last complete ISO week before the
/// slot's day, in `tz`.
pub fn week_of_slot(slot: DateTime<Utc>, tz: Tz) -> NaiveDate {
    mttx_api::weekly::monday_of(slot.with_timezone(&tz).date_naive()) - Days::new(7)
}

/// The schedule's clock: the system's, or shifted to start at `--now`.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: chrono::Duration,
}

impl Clock {
    /// The system clock, or one that reads `start` now and runs on from there.
    pub fn starting_at(start: Option<DateTime<Utc>>) -> Self {
        Self {
            offset: start.map_or(chrono::Duration::zero(), |s| s - Utc::now()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_parses_a_weekday_and_a_time() {
        let e = parse_every("mon 08:00").unwrap();
        assert_eq!(
            (e.weekday, e.time.to_string()),
            (Weekday::Mon, "08:00:00".into())
        );
        assert_eq!(parse_every("Friday 16:30").unwrap().weekday, Weekday::Fri);
        for bad in [
            "mon",
            "08:00",
            "mon 25:00",
            "someday 08:00",
            "mon 08:00 extra",
        ] {
            assert!(parse_every(bad).unwrap_err().contains("mon 08:00"), "{bad}");
        }
    }

    #[test]
    fn slots_are_in_the_zone_and_the_week_is_the_one_before() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let every = parse_every("mon 08:00").unwrap();
        // Tuesday 2026-11-03 noon in Berlin (UTC+1): the last slot was Monday 07:00 UTC.
        let now = utc("2026-11-03T11:00:00Z");
        assert_eq!(every.last(now, berlin), utc("2026-11-02T07:00:00Z"));
        assert_eq!(every.next(now, berlin), utc("2026-11-09T07:00:00Z"));
        assert_eq!(
            week_of_slot(every.last(now, berlin), berlin),
            NaiveDate::from_ymd_opt(2026, 10, 26).unwrap()
        );
        // At the slot itself it is the last one; a minute before, the week before's.
        assert_eq!(
            every.last(utc("2026-11-02T07:00:00Z"), berlin),
            utc("2026-11-02T07:00:00Z")
        );
        assert_eq!(
            every.last(utc("2026-11-02T06:59:00Z"), berlin),
            utc("2026-10-26T07:00:00Z")
        );
        // Across the change to winter time (2026-10-25): 08:00 was 06:00 UTC the Monday before.
        assert_eq!(
            every.last(utc("2026-10-20T00:00:00Z"), berlin),
            utc("2026-10-19T06:00:00Z")
        );
    }

    #[test]
    fn a_slot_in_an_hour_that_happens_twice_is_its_first_time() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-10-25 02:30 happens twice in Berlin (00:30 and 01:30 UTC): one slot, the first.
        let every = parse_every("sun 02:30").unwrap();
        assert_eq!(
            every.last(utc("2026-10-25T12:00:00Z"), berlin),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            every.next(utc("2026-10-25T00:30:00Z"), berlin),
            utc("2026-11-01T01:30:00Z")
        );
    }

    #[test]
    fn a_slot_in_a_daylight_saving_gap_is_the_first_minute_after_it() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2027-03-28 02:30 does not exist in Berlin: clocks go from 02:00 to 03:00 (01:00 UTC).
        let every = parse_every("sun 02:30").unwrap();
        assert_eq!(
            every.last(utc("2027-03-28T12:00:00Z"), berlin),
            utc("2027-03-28T01:00:00Z")
        );
    }
}
