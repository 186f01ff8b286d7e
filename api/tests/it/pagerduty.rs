//! PagerDuty's Analytics API as PagerDuty's own Python client (`pagerduty` from PyPI) calls
//! it, against a real mttx server on a socket: every number equals SQL computed straight
//! over the replica (the per-incident oracle of etl/tests/sql/facts.sql, then SQL
//! aggregates and `percentile_cont`), for several filters, a time zone with a DST change
//! and each `aggregate_unit`; raw incidents paged to the end (and back) give every incident
//! once; ids are PagerDuty's where an import mapped them; another account's token sees
//! nothing; bad bodies get PagerDuty's error shape with what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use mttx_api::{App, AppOptions, app, serve};
use mttx_fixtures::{Config, generate_into};
use mttx_migrations::{Location, Schema};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use crate::common::{folded, scratch, test_url};

const ORACLE: &str = include_str!("../../../etl/tests/sql/facts.sql");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/pd_client.py");
const TZ: &str = "America/New_York";
/// Four local weeks across New York's end of daylight time (1 Nov 2026); the start is a
/// local time (no offset), read in the request's zone.
const START: &str = "2026-10-19T00:00:00";
const END: &str = "2026-11-16T00:00:00-05:00";

/// The Python that has PagerDuty's client (scripts/ensure-python.sh installs it).
fn python() -> String {
    std::env::var("MTTX_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/mttx-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// Runs the calls through PagerDuty's client; the answers by name.
fn through_client(port: u16, token: &str, calls: Value) -> Value {
    let python = python();
    let mut child = Command::new(&python)
        .arg(CLIENT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): run `bash scripts/ensure-python.sh`, or set MTTX_PYTHON to a Python with `pip install pagerduty`")
        });
    let input = json!({"port": port, "token": token, "calls": calls}).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The SQL of one metrics question: per `key` (an oracle column or NULL) and `bucket` (a
/// date_trunc unit or none), over account $1, created in [$2, $3), buckets in zone $4.
fn metrics_sql(key: &str, unit: Option<&str>, extra: &str) -> String {
    let bucket = unit.map_or("NULL::text".to_owned(), |u| {
        format!(
            "to_char(date_trunc('{u}', created_at AT TIME ZONE $4), 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        )
    });
    let p = |c: &str, name: &str| {
        [50, 75, 90, 95]
            .map(|q| {
                format!(
                    "percentile_cont({}) WITHIN GROUP (ORDER BY {c}) AS p{q}_{name}",
                    f64::from(q) / 100.0
                )
            })
            .join(", ")
    };
    format!(
        "WITH f AS ({ORACLE}), g AS (SELECT *, seconds_to_mobilize - seconds_to_first_ack AS engage FROM f) \
         SELECT {key} AS key, {bucket} AS bucket, count(*) AS total_incident_count, \
           count(seconds_to_first_ack) AS total_incidents_acknowledged, \
           count(*) FILTER (WHERE auto_resolved) AS total_incidents_auto_resolved, \
           count(*) FILTER (WHERE manual_escalations > 0) AS total_incidents_manual_escalated, \
           count(*) FILTER (WHERE timeout_escalations > 0) AS total_incidents_timeout_escalated, \
           count(*) FILTER (WHERE reassignment_count > 0) AS total_incidents_reassigned, \
           sum(escalation_count)::float8 AS total_escalation_count, \
           sum(notification_count)::float8 AS total_notifications, \
           sum(interruptions)::float8 AS total_interruptions, \
           sum(interruptions_business)::float8 AS total_business_hour_interruptions, \
           sum(interruptions_off_hours)::float8 AS total_off_hour_interruptions, \
           sum(interruptions_sleep)::float8 AS total_sleep_hour_interruptions, \
           avg(cardinality(acknowledged_user_ids))::float8 AS mean_engaged_user_count, \
           avg(seconds_to_first_ack) AS mean_seconds_to_first_ack, {}, \
           avg(seconds_to_resolve) AS mean_seconds_to_resolve, {}, \
           avg(seconds_to_mobilize) AS mean_seconds_to_mobilize, {}, \
           avg(engage) AS mean_seconds_to_engage, {} \
         FROM g WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 {extra} \
         GROUP BY 1, 2",
        p("seconds_to_first_ack", "seconds_to_first_ack"),
        p("seconds_to_resolve", "seconds_to_resolve"),
        p("seconds_to_mobilize", "seconds_to_mobilize"),
        p("engage", "seconds_to_engage"),
    )
}

/// The numeric fields of a metrics row, as SQL names them.
const FIELDS: [&str; 30] = [
    "total_incident_count",
    "total_incidents_acknowledged",
    "total_incidents_auto_resolved",
    "total_incidents_manual_escalated",
    "total_incidents_timeout_escalated",
    "total_incidents_reassigned",
    "total_escalation_count",
    "total_notifications",
    "total_interruptions",
    "total_business_hour_interruptions",
    "total_off_hour_interruptions",
    "total_sleep_hour_interruptions",
    "mean_engaged_user_count",
    "mean_seconds_to_first_ack",
    "p50_seconds_to_first_ack",
    "p75_seconds_to_first_ack",
    "p90_seconds_to_first_ack",
    "p95_seconds_to_first_ack",
    "mean_seconds_to_resolve",
    "p50_seconds_to_resolve",
    "p75_seconds_to_resolve",
    "p90_seconds_to_resolve",
    "p95_seconds_to_resolve",
    "mean_seconds_to_mobilize",
    "p50_seconds_to_mobilize",
    "p90_seconds_to_mobilize",
    "mean_seconds_to_engage",
    "p50_seconds_to_engage",
    "p95_seconds_to_engage",
    "p75_seconds_to_engage",
];

/// Expected rows by (key, bucket): each field as SQL computes it (None: NULL).
type Expected = BTreeMap<(Option<String>, Option<String>), BTreeMap<&'static str, Option<f64>>>;

async fn expected(
    pool: &PgPool,
    account: i64,
    key: &str,
    unit: Option<&str>,
    extra: &str,
) -> Expected {
    let (from, to) = range();
    let rows = sqlx::query(sqlx::AssertSqlSafe(metrics_sql(key, unit, extra)))
        .bind(account)
        .bind(from)
        .bind(to)
        .bind(TZ)
        .fetch_all(pool)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let fields = FIELDS
                .iter()
                .map(|f| {
                    let v: Option<f64> = r
                        .try_get::<Option<f64>, _>(*f)
                        .or_else(|_| r.try_get::<i64, _>(*f).map(|n| Some(n as f64)))
                        .unwrap();
                    (*f, v)
                })
                .collect();
            ((r.get("key"), r.get("bucket")), fields)
        })
        .collect()
}

/// The range of [`START`, `END`) as instants.
fn range() -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    use chrono::TimeZone;
    let tz: chrono_tz::Tz = TZ.parse().unwrap();
    let start = tz
        .from_local_datetime(&START.parse().unwrap())
        .single()
        .unwrap()
        .to_utc();
    (start, END.parse().unwrap())
}

/// Asserts the API's rows equal SQL's: the same (key, bucket) set, each whole-second value
/// a rounding of SQL's exact one.
fn assert_rows(got: &Value, key_field: Option<&str>, want: &Expected, what: &str) {
    let rows = got["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {got}"));
    let mut seen = BTreeSet::new();
    for row in rows {
        let key = key_field.map(|k| row[k].as_str().unwrap().to_owned());
        let bucket = row["range_start"].as_str().map(str::to_owned);
        let fields = want
            .get(&(key.clone(), bucket.clone()))
            .unwrap_or_else(|| panic!("{what}: row {key:?} {bucket:?} is not in SQL's answer"));
        for (f, w) in fields {
            let g = row[*f].as_f64();
            let ok = match (g, w) {
                (None, None) => true,
                (Some(g), Some(w)) => (g - w).abs() <= 0.5 + 1e-6,
                _ => false,
            };
            assert!(
                ok,
                "{what} {key:?} {bucket:?} {f}: got {g:?}, SQL says {w:?}"
            );
        }
        seen.insert((key, bucket));
    }
    let missing: Vec<_> = want.keys().filter(|k| !seen.contains(k)).collect();
    assert!(missing.is_empty(), "{what}: rows missing {missing:?}");
}

/// The metrics body of one question.
fn body(filters: Value, unit: Option<&str>) -> Value {
    let mut f = json!({"created_at_start": START, "created_at_end": END});
    f.as_object_mut()
        .unwrap()
        .extend(filters.as_object().unwrap().clone());
    json!({"filters": f, "time_zone": TZ, "aggregate_unit": unit})
}

#[sqlx::test(migrations = false)]
async fn pagerdutys_client_gets_sqls_numbers(pool: PgPool) {
    let url = test_url(&pool).await;
    let replica: Location = url.parse().unwrap();
    let cfg = Config {
        seed: 15,
        accounts: 2,
        incidents: 2_500,
        weeks: 6,
        bad_rate: 0.01,
        ..Config::default()
    };
    generate_into(cfg, &replica, false).await.unwrap();
    // Account 1 was imported from PagerDuty: the importer's id table maps its teams,
    // services, policies and incidents to PagerDuty's ids. Account 2's stay ours.
    Schema::Import.migrator(true).run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO import_ids (source, kind, external_id, id) \
         SELECT 'pagerduty', 'team', 'PT' || id, id FROM teams WHERE account_id = 1 \
         UNION ALL SELECT 'pagerduty', 'service', 'PS' || id, id FROM services WHERE account_id = 1 \
         UNION ALL SELECT 'pagerduty', 'escalation_policy', 'PE' || id, id FROM escalation_policies WHERE account_id = 1 \
         UNION ALL SELECT 'pagerduty', 'user', 'PU' || id, id FROM users WHERE account_id = 1 \
         UNION ALL SELECT 'pagerduty', 'incident', 'Q' || id || 'X', id FROM incidents WHERE account_id = 1",
    )
    .execute(&pool)
    .await
    .unwrap();

    let dir = scratch("pd-client");
    let (facts, state) = folded(&dir, &replica).await;
    let one = state.create_token(1, "pd", None).await.unwrap();
    let two = state.create_token(2, "pd", None).await.unwrap();
    let source = mttx_replica::Source::open(&replica, 2).await.unwrap();
    let served = App::open(&facts, state, Some(source), AppOptions::default())
        .await
        .unwrap();
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), app(served))
        .await
        .unwrap();

    // Two teams and two services of account 1, by PagerDuty's ids.
    let ids = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    let teams = ids("SELECT id FROM teams WHERE account_id = 1 ORDER BY id LIMIT 2").await;
    let services = ids("SELECT id FROM services WHERE account_id = 1 ORDER BY id LIMIT 2").await;
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let pd = |prefix: &str, v: &[i64]| v.iter().map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();

    let calls = json!([
        {"name": "all", "method": "rpost", "path": "/analytics/metrics/incidents/all", "body": body(json!({}), None)},
        {"name": "all_day", "method": "rpost", "path": "/analytics/metrics/incidents/all", "body": body(json!({}), Some("day"))},
        {"name": "all_week", "method": "rpost", "path": "/analytics/metrics/incidents/all", "body": body(json!({}), Some("week"))},
        {"name": "all_month", "method": "rpost", "path": "/analytics/metrics/incidents/all", "body": body(json!({}), Some("month"))},
        {"name": "teams_week", "method": "rpost", "path": "/analytics/metrics/incidents/teams", "body": body(json!({}), Some("week"))},
        {"name": "services", "method": "rpost", "path": "/analytics/metrics/incidents/services", "body": body(json!({"urgency": "high"}), None)},
        {"name": "policies", "method": "rpost", "path": "/analytics/metrics/incidents/escalation_policies", "body": body(json!({"major": false, "min_ackowledgements": 1}), Some("month"))},
        {"name": "teams_all", "method": "rpost", "path": "/analytics/metrics/incidents/teams/all", "body": body(json!({"team_ids": pd("PT", &teams)}), None)},
        {"name": "services_all", "method": "rpost", "path": "/analytics/metrics/incidents/services/all", "body": body(json!({"service_ids": pd("PS", &services), "priority_names": ["P1", "P2", "P3"]}), Some("week"))},
        {"name": "policies_all", "method": "rpost", "path": "/analytics/metrics/incidents/escalation_policies/all", "body": body(json!({"min_timeout_escalations": 1, "min_manual_escalations": 0}), None)},
        {"name": "responders", "method": "rpost", "path": "/analytics/metrics/responders/all", "body": {"filters": {"date_range_start": START, "date_range_end": END}, "time_zone": TZ}},
        {"name": "raw", "method": "iter", "filters": {"created_at_start": START, "created_at_end": END}, "limit": 97, "time_zone": TZ},
        {"name": "raw_high", "method": "iter", "filters": {"created_at_start": START, "created_at_end": END, "urgency": "high", "team_ids": pd("PT", &teams)}, "order": "asc", "order_by": "seconds_to_resolve", "limit": 1000, "time_zone": TZ},
        {"name": "back", "method": "back", "body": {"filters": {"created_at_start": START, "created_at_end": END, "service_ids": pd("PS", &services)}, "limit": 40, "order": "asc", "order_by": "seconds_to_resolve", "time_zone": TZ}},
        {"name": "unknown_filter", "method": "fail", "path": "/analytics/metrics/incidents/all", "body": {"filters": {"created_at_start": START, "created_at_end": END, "teams": ["PT1"]}}},
        {"name": "wrong_type", "method": "fail", "path": "/analytics/metrics/incidents/teams", "body": {"filters": {"created_at_start": START, "created_at_end": END, "major": "yes"}}},
        {"name": "backwards", "method": "fail", "path": "/analytics/metrics/incidents/all", "body": {"filters": {"created_at_start": END, "created_at_end": START}, "time_zone": TZ}},
        {"name": "over_a_year", "method": "fail", "path": "/analytics/raw/incidents", "body": {"filters": {"created_at_start": "2025-01-01T00:00:00Z", "created_at_end": "2026-03-01T00:00:00Z"}}},
        {"name": "bad_limit", "method": "fail", "path": "/analytics/raw/incidents", "body": {"limit": 1001}},
        {"name": "bad_zone", "method": "fail", "path": "/analytics/metrics/incidents/all", "body": {"time_zone": "Mars/Olympus"}},
    ]);
    let port = addr.port();
    let token = one.clone();
    let got = tokio::task::spawn_blocking(move || through_client(port, &token, calls))
        .await
        .unwrap();

    // The metrics, question by question, against SQL.
    let team_in = format!("AND team_id_v1 IN ({})", list(&teams));
    let service_in = format!("AND service_id IN ({})", list(&services));
    let pt = "'PT' || team_id_v1";
    let ps = "'PS' || service_id";
    let pe = "'PE' || escalation_policy_id_v1";
    for (name, key_field, key, unit, extra) in [
        ("all", None, "NULL::text", None, String::new()),
        ("all_day", None, "NULL::text", Some("day"), String::new()),
        ("all_week", None, "NULL::text", Some("week"), String::new()),
        (
            "all_month",
            None,
            "NULL::text",
            Some("month"),
            String::new(),
        ),
        (
            "teams_week",
            Some("team_id"),
            pt,
            Some("week"),
            "AND team_id_v1 IS NOT NULL".to_owned(),
        ),
        (
            "services",
            Some("service_id"),
            ps,
            None,
            "AND urgency = 'high'".to_owned(),
        ),
        (
            "policies",
            Some("escalation_policy_id"),
            pe,
            Some("month"),
            "AND NOT major AND ack_count >= 1".to_owned(),
        ),
        ("teams_all", None, "NULL::text", None, team_in.clone()),
        (
            "services_all",
            None,
            "NULL::text",
            Some("week"),
            format!("{service_in} AND priority IN ('P1', 'P2', 'P3')"),
        ),
        (
            "policies_all",
            None,
            "NULL::text",
            None,
            "AND timeout_escalations >= 1".to_owned(),
        ),
    ] {
        let want = expected(&pool, 1, key, unit, &extra).await;
        assert!(
            !want.is_empty(),
            "{name}: the question selects no incidents"
        );
        assert_rows(&got[name], key_field, &want, name);
        assert_eq!(got[name]["time_zone"], TZ, "{name}");
    }
    // Names beside PagerDuty's ids, as the replica holds them.
    let row = &got["teams_week"]["data"][0];
    let team: i64 = row["team_id"].as_str().unwrap()[2..].parse().unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM teams WHERE id = $1")
        .bind(team)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row["team_name"], name.as_str());
    let row = &got["services"]["data"][0];
    let service: i64 = row["service_id"].as_str().unwrap()[2..].parse().unwrap();
    let (name, team): (String, Option<i64>) =
        sqlx::query_as("SELECT name, team_id FROM services WHERE id = $1")
            .bind(service)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row["service_name"], name.as_str());
    assert_eq!(
        row["team_id"],
        team.map_or(Value::Null, |t| format!("PT{t}").into())
    );
    // Distinct responders per policy and month.
    let (from, to) = range();
    let distinct: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH f AS ({ORACLE}) SELECT 'PE' || escalation_policy_id_v1, \
           to_char(date_trunc('month', created_at AT TIME ZONE $4), 'YYYY-MM-DD\"T\"HH24:MI:SS'), \
           count(DISTINCT u) FROM f LEFT JOIN LATERAL unnest(acknowledged_user_ids) u ON true \
         WHERE account_id = $1 AND created_at >= $2 AND created_at < $3 AND NOT major AND ack_count >= 1 \
         GROUP BY 1, 2"
    )))
    .bind(1_i64)
    .bind(from)
    .bind(to)
    .bind(TZ)
    .fetch_all(&pool)
    .await
    .unwrap();
    for (policy, month, n) in distinct {
        let row = got["policies"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["escalation_policy_id"] == policy.as_str() && r["range_start"] == month.as_str()
            })
            .unwrap();
        assert_eq!(row["distinct_responder_count"], n, "{policy} {month}");
    }
    // Responders: each acknowledger's and assignee's incidents, summed.
    let (involved, acked): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH f AS ({ORACLE}) SELECT \
           (SELECT count(*) FROM f, LATERAL (SELECT DISTINCT u FROM unnest(acknowledged_user_ids || assigned_user_ids) u) x \
              WHERE account_id = $1 AND created_at >= $2 AND created_at < $3)::int8, \
           (SELECT count(*) FROM f, unnest(acknowledged_user_ids) u \
              WHERE account_id = $1 AND created_at >= $2 AND created_at < $3)::int8"
    )))
    .bind(1_i64)
    .bind(from)
    .bind(to)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        got["responders"]["data"][0]["total_incident_count"],
        involved
    );
    assert_eq!(
        got["responders"]["data"][0]["total_incidents_acknowledged"],
        acked
    );

    // Raw incidents: every incident of the range exactly once, by PagerDuty's id.
    let all: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH f AS ({ORACLE}) SELECT 'Q' || incident_id || 'X' FROM f \
         WHERE account_id = 1 AND created_at >= $1 AND created_at < $2 ORDER BY created_at DESC, incident_id DESC"
    )))
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await
    .unwrap();
    let raw: Vec<String> = got["raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(raw, all, "newest first, each once");
    let high: Vec<(String, Option<f64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH f AS ({ORACLE}) SELECT 'Q' || incident_id || 'X', seconds_to_resolve FROM f \
         WHERE account_id = 1 AND created_at >= $1 AND created_at < $2 AND urgency = 'high' {team_in} \
         ORDER BY seconds_to_resolve ASC NULLS LAST, incident_id"
    )))
    .bind(from)
    .bind(to)
    .fetch_all(&pool)
    .await
    .unwrap();
    let got_high: Vec<(String, Option<f64>)> = got["raw_high"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["seconds_to_resolve"].as_f64(),
            )
        })
        .collect();
    {
        let g: BTreeSet<&String> = got_high.iter().map(|x| &x.0).collect();
        let w: BTreeSet<&String> = high.iter().map(|x| &x.0).collect();
        let mut dup = got_high.iter().map(|x| &x.0).collect::<Vec<_>>();
        dup.sort();
        dup.dedup();
        assert_eq!(
            g,
            w,
            "ids differ: {:?} {:?}",
            g.difference(&w).collect::<Vec<_>>(),
            w.difference(&g).collect::<Vec<_>>()
        );
    }
    assert_eq!(got_high.len(), high.len());
    for ((gi, gs), (wi, ws)) in got_high.iter().zip(&high) {
        assert_eq!(gi, wi);
        assert_eq!(gs.is_some(), ws.is_some(), "{gi}");
        if let (Some(g), Some(w)) = (gs, ws) {
            assert!((g - w).abs() <= 0.5 + 1e-6, "{gi}: {g} vs {w}");
        }
    }
    // Paged forward to the end and back to the start: the same incidents, each once.
    let back = &got["back"];
    let forward: Vec<&str> = back["forward"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = forward.iter().copied().collect();
    assert_eq!(unique.len(), forward.len(), "no incident twice");
    assert!(back["pages"].as_i64().unwrap() >= 3, "{back}");
    assert_eq!(back["forward"], back["backward"]);
    let by_services: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "WITH f AS ({ORACLE}) SELECT count(*) FROM f WHERE account_id = 1 \
         AND created_at >= $1 AND created_at < $2 {service_in}"
    )))
    .bind(from)
    .bind(to)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(forward.len() as i64, by_services);

    // Errors: PagerDuty's shape, a 400 that says what to fix.
    for (name, says) in [
        ("unknown_filter", "unknown field `teams`"),
        ("wrong_type", "expected a boolean"),
        (
            "backwards",
            "filters.created_at_end must be after filters.created_at_start",
        ),
        ("over_a_year", "ask for at most one year"),
        ("bad_limit", "limit must be between 1 and 1000"),
        ("bad_zone", "time_zone `Mars/Olympus` is not a tzdata zone"),
    ] {
        let e = &got[name];
        assert_eq!(e["status"], 400, "{name}: {e}");
        assert_eq!(e["body"]["error"]["code"], 2001, "{name}: {e}");
        let message = e["body"]["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
    }

    // One incident by PagerDuty's id; account 2's token sees none of account 1.
    let first = all[0].clone();
    let mine = json!([
        {"name": "one", "method": "rget", "path": format!("/analytics/raw/incidents/{first}")},
    ]);
    let calls = json!([
        {"name": "one", "method": "fail", "get": true, "path": format!("/analytics/raw/incidents/{first}")},
        {"name": "foreign", "method": "rpost", "path": "/analytics/metrics/incidents/teams", "body": body(json!({"team_ids": pd("PT", &teams)}), None)},
        {"name": "foreign_raw", "method": "iter", "filters": {"created_at_start": START, "created_at_end": END, "service_ids": pd("PS", &services)}, "time_zone": TZ},
        {"name": "own", "method": "rpost", "path": "/analytics/metrics/incidents/teams", "body": body(json!({}), None)},
    ]);
    let (one_got, two_got) = tokio::task::spawn_blocking({
        let (one, two) = (one.clone(), two.clone());
        move || {
            (
                through_client(port, &one, mine),
                through_client(port, &two, calls),
            )
        }
    })
    .await
    .unwrap();
    let incident = &one_got["one"]["data"];
    assert_eq!(incident["id"], first.as_str());
    let number: i64 = sqlx::query_scalar("SELECT incident_number FROM incidents WHERE id = $1")
        .bind(first[1..first.len() - 1].parse::<i64>().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(incident["incident_number"], number);
    assert_eq!(two_got["one"]["status"], 404, "{}", two_got["one"]);
    assert_eq!(two_got["one"]["body"]["error"]["code"], 2100);
    // Account 2 asking for account 1's teams: no rows.
    assert_eq!(two_got["foreign"]["data"], json!([]));
    assert_eq!(two_got["foreign_raw"], json!([]));
    // Account 2's own ids are mttx's, as strings.
    let want = expected(
        &pool,
        2,
        "team_id_v1::text",
        None,
        "AND team_id_v1 IS NOT NULL",
    )
    .await;
    assert_rows(&two_got["own"], Some("team_id"), &want, "account 2 teams");
    let _ = std::fs::remove_dir_all(&dir);
}
