//! Local time against PostgreSQL, zone by zone: for every tzdata zone and every offset
//! change between 2020 and 2030, the day, ISO week and month an instant falls in start
//! where PostgreSQL's `date_trunc(unit, t AT TIME ZONE zone) AT TIME ZONE zone` says, and
//! the interruption band of a page (the fold's, in the responder's zone) is the one SQL
//! reads from `t AT TIME ZONE zone`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Days, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use mttx_etl::transform::fold::{Band, band};
use mttx_query::local_midnight;
use sqlx::PgPool;

/// The instants of a zone worth checking: around every offset change in 2020–2030 (the
/// change itself, a second, a minute, an hour and a day either side), and the first of
/// each year.
fn instants(tz: Tz) -> Vec<DateTime<Utc>> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut out = Vec::new();
    let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap();
    let mut at = start;
    while at < end {
        let next = at + TimeDelta::hours(6);
        if offset(at) != offset(next) {
            // The change, to the second, by bisection.
            let (mut lo, mut hi) = (at, next);
            while hi - lo > TimeDelta::seconds(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == offset(lo) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            for s in [0, 1, 60, 1800, 3600, 7200, 86_400] {
                out.push(hi + TimeDelta::seconds(s));
                out.push(hi - TimeDelta::seconds(s));
            }
        }
        at = next;
    }
    for year in 2020..=2030 {
        out.push(Utc.with_ymd_and_hms(year, 1, 1, 12, 0, 0).unwrap());
    }
    out
}

/// The starts of the local day, ISO week and month of `t`, by the query crate.
fn starts(tz: Tz, t: DateTime<Utc>) -> [DateTime<Utc>; 3] {
    let day = t.with_timezone(&tz).date_naive();
    let monday = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
    let first = day.with_day(1).unwrap();
    [
        local_midnight(tz, day),
        local_midnight(tz, monday),
        local_midnight(tz, first),
    ]
}

/// What PostgreSQL says of an instant in a zone: the zone, the instant, its UTC offset in
/// seconds, the starts of its local day, ISO week and month, and its interruption band.
type SqlRow = (
    String,
    DateTime<Utc>,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
);

fn band_name(b: Band) -> &'static str {
    match b {
        Band::Business => "business",
        Band::OffHours => "off_hours",
        Band::Sleep => "sleep",
    }
}

#[sqlx::test(migrations = false)]
async fn day_week_and_month_starts_and_bands_equal_postgresql_in_every_zone(pool: PgPool) {
    let known: BTreeSet<String> = sqlx::query_scalar("SELECT name FROM pg_timezone_names")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let zones: Vec<Tz> = chrono_tz::TZ_VARIANTS
        .iter()
        .copied()
        .filter(|z| known.contains(z.name()))
        .collect();
    assert!(
        zones.len() * 10 > chrono_tz::TZ_VARIANTS.len() * 9,
        "PostgreSQL knows only {} of {} zones",
        zones.len(),
        chrono_tz::TZ_VARIANTS.len()
    );

    let (mut names, mut times) = (Vec::new(), Vec::new());
    for tz in &zones {
        for t in instants(*tz) {
            names.push(tz.name().to_owned());
            times.push(t);
        }
    }
    // The session zone is UTC, so `t AT TIME ZONE 'UTC'` is t's UTC wall time.
    let rows: Vec<SqlRow> = sqlx::query_as(
        "SELECT z, t, \
               extract(epoch FROM (t AT TIME ZONE z) - (t AT TIME ZONE 'UTC'))::bigint, \
               date_trunc('day', t AT TIME ZONE z) AT TIME ZONE z, \
               date_trunc('week', t AT TIME ZONE z) AT TIME ZONE z, \
               date_trunc('month', t AT TIME ZONE z) AT TIME ZONE z, \
               CASE WHEN (t AT TIME ZONE z)::time >= '22:00' OR (t AT TIME ZONE z)::time < '08:00' \
                      THEN 'sleep' \
                    WHEN extract(isodow FROM t AT TIME ZONE z) <= 5 \
                      AND (t AT TIME ZONE z)::time < '18:00' THEN 'business' \
                    ELSE 'off_hours' END \
             FROM unnest($1::text[], $2::timestamptz[]) AS x(z, t)",
    )
    .bind(&names)
    .bind(&times)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), names.len());

    // A zone whose offsets PostgreSQL's tzdata gives otherwise is a data difference, not
    // ours: it is left out, and there must be few.
    let mut other_data: BTreeSet<&str> = BTreeSet::new();
    for (z, t, offset, ..) in &rows {
        let tz: Tz = z.parse().unwrap();
        let ours = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        if i64::from(ours.local_minus_utc()) != *offset {
            other_data.insert(tz.name());
        }
    }
    assert!(
        other_data.len() * 50 < zones.len(),
        "tzdata differs from PostgreSQL's in {} zones: {other_data:?}",
        other_data.len()
    );

    let mut wrong: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut compared = 0;
    let mut changes = 0;
    for (z, t, _, day, week, month, sql_band) in &rows {
        if other_data.contains(z.as_str()) {
            continue;
        }
        let tz: Tz = z.parse().unwrap();
        let ours = starts(tz, *t);
        for (unit, ours, theirs) in [
            ("day", ours[0], *day),
            ("week", ours[1], *week),
            ("month", ours[2], *month),
        ] {
            if ours != theirs {
                wrong
                    .entry(tz.name())
                    .or_default()
                    .push(format!("{t}: {unit} starts at {ours}, PostgreSQL {theirs}"));
            }
        }
        let b = band_name(band(*t, tz));
        if b != sql_band {
            wrong
                .entry(tz.name())
                .or_default()
                .push(format!("{t}: band {b}, SQL {sql_band}"));
        }
        compared += 1;
        changes += usize::from(
            tz.offset_from_utc_datetime(&t.naive_utc()).fix()
                != tz
                    .offset_from_utc_datetime(&(*t - TimeDelta::seconds(1)).naive_utc())
                    .fix(),
        );
    }
    assert!(wrong.is_empty(), "{} zones differ: {wrong:#?}", wrong.len());
    // Enough offset changes were met to mean something: about two a year in the zones
    // with summer time.
    assert!(compared > 50_000, "{compared} instants");
    assert!(changes > 2_000, "{changes} offset changes");
}
