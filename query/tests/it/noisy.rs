//! The noisy-alerts view against SQL over the source: fingerprints by regexp, tallies by
//! GROUP BY, bursts by window functions (a gap longer than the limit starts a new burst).

use mttx_query::{Engine, NoisyOptions, Period};
use sqlx::PgPool;
use sqlx::Row;

use crate::differential::ORACLE;

/// The period's incidents of the account with their fingerprint, as SQL.
fn incidents_sql() -> String {
    format!(
        "WITH f AS ({ORACLE}), p AS ( \
           SELECT f.incident_id, f.service_id, i.title, f.created_at, f.auto_resolved, \
             (f.auto_resolved AND f.seconds_to_resolve <= $5) AS flap, \
             array_to_string(ARRAY( \
               SELECT CASE WHEN w ~ '[0-9]' THEN '#' ELSE lower(w) END \
               FROM unnest(regexp_split_to_array(btrim(i.title), '\\s+')) WITH ORDINALITY AS t(w, n) \
               ORDER BY n), ' ') AS fp \
           FROM f JOIN incidents i ON i.id = f.incident_id \
           WHERE f.account_id = $1 \
             AND f.created_at >= ($2::date)::timestamp AT TIME ZONE $4 \
             AND f.created_at < ($3::date)::timestamp AT TIME ZONE $4)"
    )
}

/// key, count, auto, flaps, example title, services: per `key`, ordered and limited by
/// `order`, kept where `having`.
fn tally_sql(key: &str, having: &str, order: &str) -> String {
    format!(
        "{} SELECT {key} AS key, count(*) AS n, count(*) FILTER (WHERE auto_resolved) AS auto, \
           count(*) FILTER (WHERE flap) AS flaps, \
           (array_agg(title ORDER BY created_at DESC, incident_id DESC))[1] AS example, \
           array_agg(DISTINCT service_id ORDER BY service_id) AS services \
         FROM p GROUP BY 1 HAVING {having} ORDER BY {order}, {key} COLLATE \"C\" LIMIT $6",
        incidents_sql()
    )
}

fn bursts_sql() -> String {
    format!(
        "{}, q AS ( \
           SELECT *, CASE WHEN created_at - lag(created_at) OVER w <= make_interval(secs => $7) \
             THEN 0 ELSE 1 END AS starts \
           FROM p WINDOW w AS (PARTITION BY fp ORDER BY created_at, incident_id)), \
         r AS (SELECT *, sum(starts) OVER (PARTITION BY fp ORDER BY created_at, incident_id) AS burst FROM q) \
         SELECT fp, min(created_at) AS started, max(created_at) AS ended, count(*) AS n, \
           (array_agg(incident_id ORDER BY created_at, incident_id))[1] AS first, \
           (array_agg(title ORDER BY created_at, incident_id))[1] AS example, \
           array_agg(DISTINCT service_id ORDER BY service_id) AS services \
         FROM r GROUP BY fp, burst HAVING count(*) >= $8 \
         ORDER BY n DESC, started, first LIMIT $6",
        incidents_sql()
    )
}

type Tally = (String, i64, i64, i64, String, Vec<i64>);
type Time = chrono::DateTime<chrono::Utc>;
/// fingerprint, started, ended, incidents, first id, example title, services.
type BurstRow = (String, Time, Time, i64, i64, String, Vec<i64>);

async fn tallies(
    pool: &PgPool,
    sql: String,
    account: i64,
    period: &Period,
    o: &NoisyOptions,
) -> Vec<Tally> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .bind(period.from)
        .bind(period.to)
        .bind(period.tz.name())
        .bind(o.flap_seconds)
        .bind(o.limit as i64)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("key"),
                r.get("n"),
                r.get("auto"),
                r.get("flaps"),
                r.get("example"),
                r.get("services"),
            )
        })
        .collect()
}

fn got(list: &[mttx_query::Noise]) -> Vec<Tally> {
    list.iter()
        .map(|n| {
            (
                n.key.clone(),
                n.incident_count,
                n.auto_resolved_count,
                n.flapping_count,
                n.example_title.clone(),
                n.service_ids.clone(),
            )
        })
        .collect()
}

/// Checks every list of the view for `account` in `period`; returns how many bursts it saw.
pub async fn check(pool: &PgPool, engine: &Engine, account: i64, period: &Period) -> usize {
    // Every row of every list (the lists' order and cut are the same at any limit).
    let o = NoisyOptions {
        limit: 10_000,
        ..NoisyOptions::default()
    };
    let view = engine
        .noisy(account, period, &Default::default(), &o)
        .await
        .unwrap();
    let what = format!("account {account} {period:?}");
    let services = tallies(
        pool,
        tally_sql("service_id::text", "true", "count(*) DESC"),
        account,
        period,
        &o,
    )
    .await;
    assert_eq!(got(&view.services), services, "{what}: services");
    assert!(services.len() >= 5, "{what}: too few services to rank");
    let titles = tallies(
        pool,
        tally_sql("fp", "true", "count(*) DESC"),
        account,
        period,
        &o,
    )
    .await;
    assert_eq!(got(&view.titles), titles, "{what}: titles");
    // The `alert` filter finds exactly the incidents SQL fingerprints as each alert.
    for (key, n, ..) in titles.iter().take(5) {
        let found = engine
            .drilldown(
                account,
                period,
                &mttx_query::Filters {
                    alert: Some(key.clone()),
                    ..Default::default()
                },
                &mttx_query::Page {
                    sort: mttx_query::Sort::CreatedAt,
                    descending: false,
                    limit: 10_000,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(found.facts.len() as i64, *n, "{what}: alert `{key}`");
        assert!(
            found
                .facts
                .iter()
                .all(|f| mttx_query::noisy::fingerprint(&f.title) == *key)
        );
    }
    let share = tallies(
        pool,
        tally_sql(
            "service_id::text",
            &format!(
                "count(*) >= {} AND count(*) FILTER (WHERE auto_resolved) > 0",
                o.share_min
            ),
            "(count(*) FILTER (WHERE auto_resolved))::float8 / count(*) DESC, count(*) DESC",
        ),
        account,
        period,
        &o,
    )
    .await;
    assert_eq!(
        got(&view.auto_resolving),
        share,
        "{what}: auto-resolve share"
    );
    assert!(!share.is_empty(), "{what}: nothing auto-resolves");
    let flapping = tallies(
        pool,
        tally_sql(
            "service_id::text",
            "count(*) FILTER (WHERE flap) >= 2",
            "count(*) FILTER (WHERE flap) DESC",
        ),
        account,
        period,
        &o,
    )
    .await;
    assert_eq!(got(&view.flapping), flapping, "{what}: flapping");
    assert!(!flapping.is_empty(), "{what}: nothing flaps");

    let bursts: Vec<BurstRow> = sqlx::query(sqlx::AssertSqlSafe(bursts_sql()))
        .bind(account)
        .bind(period.from)
        .bind(period.to)
        .bind(period.tz.name())
        .bind(o.flap_seconds)
        .bind(o.limit as i64)
        .bind(o.burst_gap_seconds as f64)
        .bind(o.burst_min as i64)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("fp"),
                r.get("started"),
                r.get("ended"),
                r.get("n"),
                r.get("first"),
                r.get("example"),
                r.get("services"),
            )
        })
        .collect();
    let mine: Vec<_> = view
        .bursts
        .iter()
        .map(|b| {
            (
                b.fingerprint.clone(),
                b.started_at,
                b.ended_at,
                b.incident_count,
                b.first_incident_id,
                b.example_title.clone(),
                b.service_ids.clone(),
            )
        })
        .collect();
    assert_eq!(mine, bursts, "{what}: bursts");
    bursts.len()
}
