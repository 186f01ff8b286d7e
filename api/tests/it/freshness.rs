//! `data_as_of`: every answer states the replica time up to which the facts are complete,
//! the created time of the last entry folded with none awaited below it. Checked against
//! SQL over the replica as the ETL folds new entries, one of them committed out of id
//! order.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mttx_api::App;
use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::{Config, generate_into};
use mttx_migrations::Location;
use mttx_replica::Source;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::{folded, oneshot, oneshot_json, scratch, test_url};

/// The created time of the last entry of the first unbroken run of ids: what the facts are
/// complete up to once the ETL has read everything visible.
async fn complete_as_of(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar(
        "SELECT created_at FROM incident_log_entries WHERE id = ( \
           SELECT min(e.id) FROM incident_log_entries e WHERE NOT EXISTS ( \
             SELECT 1 FROM incident_log_entries n WHERE n.id = e.id + 1))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Adds incident `id` (a copy of incident 1's row) with one trigger entry `entry` at `at`.
async fn add_incident(pool: &PgPool, id: i64, entry: i64, at: &str) {
    sqlx::query(
        "INSERT INTO incidents SELECT $1, account_id, $1, service_id, escalation_policy_id, \
           title, urgency, priority, 'triggered', $2::timestamptz FROM incidents WHERE id = 1",
    )
    .bind(id)
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO incident_log_entries SELECT $2, account_id, $1, type, $3::timestamptz, \
           agent_type, agent_id, channel, user_id, assignee_ids, escalation_policy_id, details \
         FROM incident_log_entries WHERE incident_id = 1 AND type = 'trigger' ORDER BY id LIMIT 1",
    )
    .bind(id)
    .bind(entry)
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
}

fn as_of(body: &Value) -> Option<DateTime<Utc>> {
    serde_json::from_value(body["data_as_of"].clone()).unwrap()
}

#[sqlx::test(migrations = false)]
async fn every_answer_states_how_current_the_facts_are(pool: PgPool) {
    let url = test_url(&pool).await;
    let replica: Location = url.parse().unwrap();
    let cfg = Config {
        seed: 3,
        accounts: 1,
        incidents: 300,
        weeks: 2,
        bad_rate: 0.0,
        ..Config::default()
    };
    generate_into(cfg, &replica, false).await.unwrap();
    let dir = scratch("freshness");
    let (facts, state) = folded(&dir, &replica).await;
    let token = state.create_token(1, "lead", None).await.unwrap();
    let app = App::open(
        &facts,
        state.clone(),
        Some(Source::open(&replica, 2).await.unwrap()),
        mttx_api::AppOptions {
            extra_metrics: Some(mttx_etl::metrics::render),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.follow(Duration::from_millis(100));
    let router = mttx_api::app(app);
    let report = "/api/v1/reports/incidents?from=2026-11-09&to=2026-11-23&tz=UTC";

    // After the backfill: the replica's last entry.
    let first = complete_as_of(&pool).await;
    for path in [
        report.to_owned(),
        format!("{report}&unit=day"),
        "/api/v1/reports/noisy?from=2026-11-09&to=2026-11-23".into(),
        "/api/v1/incidents?from=2026-11-09&to=2026-11-23&limit=1".into(),
        "/api/v1/incidents/1".into(),
    ] {
        let (status, body) = oneshot_json(&router, &path, Some(&token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(as_of(&body), Some(first), "{path}");
    }
    let (_, _, metrics) = oneshot(&router, "/metrics", None).await;
    let line = |name: &str| -> i64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
            .parse()
            .unwrap()
    };
    assert_eq!(line("mttx_api_data_as_of_unix_seconds"), first.timestamp());
    let lag = line("mttx_api_data_lag_seconds");
    let expected = (Utc::now() - first).num_seconds();
    assert!(
        (lag - expected).abs() <= 5,
        "lag {lag}, expected {expected}"
    );

    // Waits until the report states `want` (the server follows the state every 100 ms).
    let stated_soon = async |want: DateTime<Utc>| {
        let start = Instant::now();
        loop {
            let (_, body) = oneshot_json(&router, report, Some(&token)).await;
            let got = as_of(&body);
            if got == Some(want) || start.elapsed() > Duration::from_secs(10) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let etl = async || {
        let mut table = FactsTable::open(&facts).await.unwrap();
        run(
            &Source::open(&replica, 2).await.unwrap(),
            &mut table,
            &state,
            &RunOptions::default(),
        )
        .await
        .unwrap();
    };
    let max: i64 = sqlx::query_scalar("SELECT max(id) FROM incident_log_entries")
        .fetch_one(&pool)
        .await
        .unwrap();

    // Entry max + 2 commits before max + 1: it is folded, but max + 1 is awaited below it,
    // so the facts are complete only up to the old last entry.
    add_incident(&pool, 90_001, max + 2, "2026-11-22T10:00:00Z").await;
    etl().await;
    assert_eq!(complete_as_of(&pool).await, first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = oneshot_json(&router, report, Some(&token)).await;
    assert_eq!(as_of(&body), Some(first), "ran ahead of an awaited entry");
    assert!(
        body["total"]["metrics"]["incident_count"]["value"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // Entry max + 1 arrives: the facts are complete up to max + 2.
    add_incident(&pool, 90_002, max + 1, "2026-11-22T11:00:00Z").await;
    etl().await;
    let second = complete_as_of(&pool).await;
    assert_eq!(
        second,
        "2026-11-22T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(stated_soon(second).await, Some(second));
}
