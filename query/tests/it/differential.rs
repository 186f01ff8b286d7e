//! Every number of a report equals SQL computed directly over the source tables in
//! PostgreSQL (the per-incident oracle of etl/tests/sql/facts.sql, then `percentile_cont`),
//! for several time zones (one with a DST change inside the period) and breakdowns.

use std::collections::BTreeMap;

use mttx_fixtures::{Config, generate_into};
use mttx_query::{Engine, GroupBy, Metrics, Period, Unit};
use sqlx::PgPool;

pub const ORACLE: &str = include_str!("../../../etl/tests/sql/facts.sql");

fn aggregate_sql(key: &str, extra: &str) -> String {
    // A responder key joins each incident to its acknowledgers.
    let join = if key.starts_with("r.") {
        "CROSS JOIN LATERAL unnest(f.acknowledged_user_ids) AS r(uid)"
    } else {
        ""
    };
    format!(
        "WITH f AS ({ORACLE}) \
         SELECT {key} AS key, count(*) AS n, count(seconds_to_first_ack) AS acked, \
           count(seconds_to_resolve) AS resolved, count(*) FILTER (WHERE auto_resolved) AS auto, \
           count(*) FILTER (WHERE escalation_count > 0) AS escalated, \
           avg(seconds_to_first_ack) AS mtta_mean, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_first_ack) AS mtta_p50, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_to_first_ack) AS mtta_p90, \
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds_to_first_ack) AS mtta_p95, \
           avg(seconds_to_resolve) AS mttr_mean, \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_to_resolve) AS mttr_p50, \
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds_to_resolve) AS mttr_p90, \
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds_to_resolve) AS mttr_p95, \
           sum(interruptions)::bigint AS i, sum(interruptions_business)::bigint AS ib, \
           sum(interruptions_off_hours)::bigint AS io, sum(interruptions_sleep)::bigint AS isl, \
           sum(notification_count)::bigint AS notif \
         FROM f {join} WHERE account_id = $1 \
           AND created_at >= ($2::date)::timestamp AT TIME ZONE $4 \
           AND created_at < ($3::date)::timestamp AT TIME ZONE $4 {extra} \
         GROUP BY 1"
    )
}

type SqlRow = (
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    (i64, i64, i64, i64, i64),
);

/// The key of each ISO week in local time: its Monday, or the period's first day for a
/// period that starts mid-week.
const WEEK: &str =
    "greatest((date_trunc('week', created_at AT TIME ZONE $4))::date, $2::date)::text";

async fn oracle(
    pool: &PgPool,
    key: &str,
    account: i64,
    period: &Period,
    extra: &str,
) -> BTreeMap<Option<String>, Metrics> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(aggregate_sql(key, extra)))
        .bind(account)
        .bind(period.from)
        .bind(period.to)
        .bind(period.tz.name())
        .fetch_all(pool)
        .await
        .unwrap();
    use sqlx::Row;
    rows.iter()
        .map(|r| {
            let n: i64 = r.get("n");
            let escalated: i64 = r.get("escalated");
            let row: SqlRow = (
                r.get("key"),
                n,
                r.get("acked"),
                r.get("resolved"),
                r.get("auto"),
                escalated,
                r.get("mtta_mean"),
                r.get("mtta_p50"),
                r.get("mtta_p90"),
                r.get("mtta_p95"),
                r.get("mttr_mean"),
                r.get("mttr_p50"),
                r.get("mttr_p90"),
                r.get("mttr_p95"),
                (
                    r.get("i"),
                    r.get("ib"),
                    r.get("io"),
                    r.get("isl"),
                    r.get("notif"),
                ),
            );
            (
                row.0,
                Metrics {
                    incident_count: row.1,
                    acknowledged_count: row.2,
                    resolved_count: row.3,
                    auto_resolved_count: row.4,
                    escalated_count: row.5,
                    escalated_rate: (n > 0).then(|| escalated as f64 / n as f64),
                    mtta_mean: row.6,
                    mtta_p50: row.7,
                    mtta_p90: row.8,
                    mtta_p95: row.9,
                    mttr_mean: row.10,
                    mttr_p50: row.11,
                    mttr_p90: row.12,
                    mttr_p95: row.13,
                    interruptions: row.14.0,
                    interruptions_business: row.14.1,
                    interruptions_off_hours: row.14.2,
                    interruptions_sleep: row.14.3,
                    notification_count: row.14.4,
                    samples: Default::default(),
                },
            )
        })
        .collect()
}

fn assert_close(got: &Metrics, want: &Metrics, what: &str) {
    for ((name, g), (_, w)) in got.values().into_iter().zip(want.values()) {
        let ok = match (g, w) {
            (None, None) => true,
            (Some(g), Some(w)) => (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            _ => false,
        };
        assert!(ok, "{what} {name}: got {g:?}, SQL says {w:?}");
    }
}

#[sqlx::test(migrations = false)]
async fn reports_equal_sql_over_the_source(pool: PgPool) {
    let url = mttx_fixtures::testing::database_url(&pool).await.unwrap();
    let cfg = Config {
        seed: 44,
        accounts: 2,
        incidents: 3_000,
        weeks: 6,
        bad_rate: 0.02,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    let dir = crate::scratch("diff");
    let facts = crate::etl_into(&url.parse().unwrap(), &dir).await;
    let engine = Engine::open(&facts).await.unwrap();

    let d = |s: &str| s.parse().unwrap();
    let periods = [
        // Three weeks across New York's change to winter time (1 Nov 2026).
        Period::new(
            "America/New_York".parse().unwrap(),
            d("2026-10-19"),
            d("2026-11-09"),
            400,
        )
        .unwrap(),
        Period::new(
            "Asia/Kolkata".parse().unwrap(),
            d("2026-11-02"),
            d("2026-11-09"),
            400,
        )
        .unwrap(),
        Period::new(
            "UTC".parse().unwrap(),
            d("2026-10-01"),
            d("2026-11-01"),
            400,
        )
        .unwrap(),
    ];
    let mut compared = 0;
    for account in [1_i64, 2] {
        for period in &periods {
            // Each week of the period in local time (the first and last cut at its ends).
            let by_week = oracle(&pool, WEEK, account, period, "").await;
            for (group, key) in [
                (None, "NULL::text"),
                (Some(GroupBy::Team), "team_id_v1::text"),
                (Some(GroupBy::Service), "service_id::text"),
                (
                    Some(GroupBy::EscalationPolicy),
                    "escalation_policy_id_v1::text",
                ),
                (Some(GroupBy::Urgency), "urgency"),
                (Some(GroupBy::Priority), "priority"),
                (Some(GroupBy::Responder), "r.uid::text"),
            ] {
                let plain = engine
                    .report(account, period, group, &Default::default())
                    .await
                    .unwrap();
                // The API's call: the same report with a weekly trend, from one read.
                let (report, trend) = engine
                    .report_and_trend(
                        account,
                        period,
                        group,
                        Some(Unit::Week),
                        &Default::default(),
                    )
                    .await
                    .unwrap();
                let trend = trend.unwrap();
                let what = format!("account {account} {period:?} {group:?}");
                for week in by_week.keys() {
                    let found = trend.iter().any(|(s, _)| Some(s.to_string()) == *week);
                    assert!(found, "{what}: week {week:?} has incidents but no bucket");
                }
                for (start, metrics) in &trend {
                    let empty = Metrics::default();
                    let want = by_week.get(&Some(start.to_string())).unwrap_or(&empty);
                    assert_close(metrics, want, &format!("{what} week {start}"));
                    compared += 1;
                }
                for report in [plain, report] {
                    let now = oracle(&pool, key, account, period, "").await;
                    let before = oracle(&pool, key, account, &period.previous(), "").await;
                    if group.is_none() {
                        let empty = Metrics::default();
                        assert_close(
                            &report.account.current,
                            now.get(&None).unwrap_or(&empty),
                            &what,
                        );
                        assert_close(
                            &report.account.previous,
                            before.get(&None).unwrap_or(&empty),
                            &what,
                        );
                        assert!(
                            report.account.current.incident_count > 0,
                            "{what}: no incidents"
                        );
                        compared += 2;
                        continue;
                    }
                    // The account row of a breakdown (merged from its groups but by responder).
                    let totals_now = oracle(&pool, "NULL::text", account, period, "").await;
                    let totals_before =
                        oracle(&pool, "NULL::text", account, &period.previous(), "").await;
                    let empty = Metrics::default();
                    assert_close(
                        &report.account.current,
                        totals_now.get(&None).unwrap_or(&empty),
                        &format!("{what} account row"),
                    );
                    assert_close(
                        &report.account.previous,
                        totals_before.get(&None).unwrap_or(&empty),
                        &format!("{what} account row, previous"),
                    );
                    let mut keys: Vec<&Option<String>> = now.keys().chain(before.keys()).collect();
                    keys.sort();
                    keys.dedup();
                    assert_eq!(report.groups.len(), keys.len(), "{what}");
                    for row in &report.groups {
                        let empty = Metrics::default();
                        let w = format!("{what} key {:?}", row.key);
                        assert_close(&row.current, now.get(&row.key).unwrap_or(&empty), &w);
                        assert_close(&row.previous, before.get(&row.key).unwrap_or(&empty), &w);
                        compared += 2;
                    }
                }
            }
        }
    }
    assert!(compared > 100, "{compared}");

    // The noisy-alerts view, in the New York weeks and in the UTC month.
    let mut bursts = 0;
    for account in [1_i64, 2] {
        bursts += crate::noisy::check(&pool, &engine, account, &periods[0]).await;
        bursts += crate::noisy::check(&pool, &engine, account, &periods[2]).await;
    }
    assert!(bursts >= 8, "only {bursts} bursts compared");

    // Weekly trend across New York's DST change: each ISO week in local time.
    let weeks = engine
        .trend(1, &periods[0], mttx_query::Unit::Week, &Default::default())
        .await
        .unwrap();
    assert_eq!(weeks.len(), 3);
    let by_week = oracle(&pool, WEEK, 1, &periods[0], "").await;
    for (start, metrics) in &weeks {
        let empty = Metrics::default();
        assert_close(
            metrics,
            by_week.get(&Some(start.to_string())).unwrap_or(&empty),
            &format!("week {start}"),
        );
        assert!(metrics.incident_count > 0, "week {start}");
    }

    // Filters, against the same SQL with the same condition.
    let week = &periods[0];
    for (filters, condition) in [
        (
            mttx_query::Filters {
                urgency: Some("high".into()),
                ..Default::default()
            },
            "AND urgency = 'high'",
        ),
        (
            mttx_query::Filters {
                major: Some(true),
                ..Default::default()
            },
            "AND major",
        ),
        (
            mttx_query::Filters {
                escalated: Some(true),
                ..Default::default()
            },
            "AND escalation_count > 0",
        ),
        (
            mttx_query::Filters {
                interrupted_sleep: Some(true),
                ..Default::default()
            },
            "AND interruptions_sleep > 0",
        ),
        (
            mttx_query::Filters {
                team: Some(1),
                ..Default::default()
            },
            "AND team_id_v1 = 1",
        ),
        (
            mttx_query::Filters {
                responder: Some(3),
                ..Default::default()
            },
            "AND 3 = ANY(acknowledged_user_ids)",
        ),
    ] {
        let report = engine
            .report(1, week, Some(GroupBy::Service), &filters)
            .await
            .unwrap();
        let now = oracle(&pool, "NULL::text", 1, week, condition).await;
        let by_service = oracle(&pool, "service_id::text", 1, week, condition).await;
        let empty = Metrics::default();
        assert_close(
            &report.account.current,
            now.get(&None).unwrap_or(&empty),
            condition,
        );
        assert!(
            report.account.current.incident_count > 0,
            "{condition}: nothing to compare"
        );
        for row in &report.groups {
            if row.current.incident_count > 0 {
                assert_close(
                    &row.current,
                    by_service.get(&row.key).unwrap_or(&empty),
                    condition,
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Santiago skips from 00:00 to 01:00 on Sunday 2026-09-06: that day starts at 04:00 UTC,
/// the end of the gap. Reports either side of it, a daily trend across it and the noisy
/// view equal SQL over the source with PostgreSQL's own midnights.
#[sqlx::test(migrations = false)]
async fn reports_and_trends_across_a_midnight_that_clocks_skip_equal_sql(pool: PgPool) {
    let url = mttx_fixtures::testing::database_url(&pool).await.unwrap();
    let until = "2026-09-14T00:00:00Z".parse().unwrap();
    let cfg = Config {
        seed: 7,
        accounts: 2,
        incidents: 2_000,
        weeks: 3,
        until,
        bad_rate: 0.0,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    let dir = crate::scratch("diff-gap");
    let facts = crate::etl_into(&url.parse().unwrap(), &dir).await;
    let engine = Engine::open(&facts).await.unwrap();

    let santiago: chrono_tz::Tz = "America/Santiago".parse().unwrap();
    let d = |s: &str| s.parse().unwrap();
    assert_eq!(
        mttx_query::local_midnight(santiago, d("2026-09-06")).to_rfc3339(),
        "2026-09-06T04:00:00+00:00"
    );
    let week = Period::new(santiago, d("2026-09-06"), d("2026-09-13"), 400).unwrap();
    let days = Period::new(santiago, d("2026-09-03"), d("2026-09-09"), 400).unwrap();
    let mut compared = 0;
    for account in [1_i64, 2] {
        let report = engine
            .report(account, &week, None, &Default::default())
            .await
            .unwrap();
        let empty = Metrics::default();
        let now = oracle(&pool, "NULL::text", account, &week, "").await;
        let before = oracle(&pool, "NULL::text", account, &week.previous(), "").await;
        let what = format!("account {account}, the week from the skipped midnight");
        assert_close(
            &report.account.current,
            now.get(&None).unwrap_or(&empty),
            &what,
        );
        assert_close(
            &report.account.previous,
            before.get(&None).unwrap_or(&empty),
            &format!("{what}, previous"),
        );
        let trend = engine
            .trend(account, &days, mttx_query::Unit::Day, &Default::default())
            .await
            .unwrap();
        assert_eq!(trend.len(), 6);
        let by_day = oracle(
            &pool,
            "(date_trunc('day', created_at AT TIME ZONE $4))::date::text",
            account,
            &days,
            "",
        )
        .await;
        for (start, metrics) in &trend {
            assert_close(
                metrics,
                by_day.get(&Some(start.to_string())).unwrap_or(&empty),
                &format!("account {account} day {start}"),
            );
            assert!(metrics.incident_count > 0, "account {account} day {start}");
            compared += 1;
        }
        crate::noisy::check(&pool, &engine, account, &week).await;
    }
    assert_eq!(compared, 12);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A query reads the files of the table version it serves, not what lies on disk: after a
/// compaction whose rewritten files stay until vacuum, each incident still counts once, in
/// an engine opened before the compaction and refreshed, and in one opened after it.
#[sqlx::test(migrations = false)]
async fn files_a_compaction_rewrote_are_not_read_again(pool: PgPool) {
    let url = mttx_fixtures::testing::database_url(&pool).await.unwrap();
    let cfg = Config {
        seed: 45,
        accounts: 1,
        incidents: 600,
        weeks: 6,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    let dir = crate::scratch("rewritten");
    let facts = dir.join("facts").display().to_string();
    let source = mttx_replica::Source::open(&url.parse().unwrap(), 2)
        .await
        .unwrap();
    let state =
        mttx_state::State::open(&mttx_migrations::Location::Sqlite(dir.join("state.sqlite")))
            .await
            .unwrap();
    let mut table = mttx_etl::sink::delta::FactsTable::open(&facts)
        .await
        .unwrap();
    // Small ranges: many files in each month, for the compaction to rewrite.
    let options = mttx_etl::run::RunOptions {
        range_incidents: 100,
        ..Default::default()
    };
    mttx_etl::run::run(&source, &mut table, &state, &options)
        .await
        .unwrap();
    let mut before = Engine::open(&facts).await.unwrap();
    let report = table
        .upkeep(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(report.files_compacted >= 4, "{report}");
    assert_eq!(report.files_vacuumed, 0, "{report}");
    before.refresh().await.unwrap();
    let after = Engine::open(&facts).await.unwrap();

    let period = Period::new(
        "UTC".parse().unwrap(),
        "2026-10-01".parse().unwrap(),
        "2026-11-01".parse().unwrap(),
        400,
    )
    .unwrap();
    let want = oracle(&pool, "NULL::text", 1, &period, "").await;
    let want = want.get(&None).unwrap();
    assert!(want.incident_count > 50, "{}", want.incident_count);
    for (engine, which) in [(&before, "refreshed"), (&after, "opened after")] {
        let got = engine
            .report(1, &period, None, &Default::default())
            .await
            .unwrap();
        assert_close(&got.account.current, want, which);
        let latest = engine.latest(1).await.unwrap();
        assert!(latest.is_some(), "{which}: no latest incident");
    }
}
