//! CSV from the API: `format=csv` (or `Accept: text/csv`) on a report gives one row per
//! group and metric with the JSON answer's numbers, and on a drilldown every incident of the
//! selection, streamed past one chunk, as many as SQL counts in the replica.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, header};
use mttx_fixtures::{Config, generate_into};
use mttx_migrations::Location;
use mttx_replica::Source;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::{folded, oneshot, oneshot_json, scratch, send, test_url};

fn records(text: &str) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let head: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    reader
        .records()
        .map(|r| {
            head.iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn number(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

#[sqlx::test(migrations = false)]
async fn reports_and_drilldowns_answer_csv(pool: PgPool) {
    let url = test_url(&pool).await;
    let cfg = Config {
        seed: 46,
        accounts: 1,
        incidents: 3000,
        weeks: 8,
        bad_rate: 0.0,
        ..Config::default()
    };
    generate_into(cfg, &url.parse().unwrap(), false)
        .await
        .unwrap();
    let dir = scratch("csv");
    let replica: Location = url.parse().unwrap();
    let (facts, state) = folded(&dir, &replica).await;
    let token = state.create_token(1, "test", None).await.unwrap();
    let source = Source::open(&replica, 2).await.unwrap();
    let app = mttx_api::App::open(&facts, state, Some(source), Default::default())
        .await
        .unwrap();
    let router = mttx_api::app(app);

    // A report: the JSON answer's numbers, one row per group (the total first) and metric,
    // then one per trend bucket and metric.
    let report = "/api/v1/reports/incidents?from=2026-10-05&to=2026-11-23&tz=Europe/Berlin&group_by=team&unit=week";
    let (status, json) = oneshot_json(&router, report, Some(&token)).await;
    assert_eq!(status, 200, "{json}");
    let (status, headers, text) =
        oneshot(&router, &format!("{report}&format=csv"), Some(&token)).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/csv")),
        "{headers:?}"
    );
    let rows = records(&text);
    let groups = json["groups"].as_array().unwrap();
    let metrics = json["total"]["metrics"].as_object().unwrap();
    let buckets = json["buckets"].as_array().unwrap();
    assert!(groups.len() >= 2 && buckets.len() == 7, "{json}");
    let bucket_metrics = buckets[0]["metrics"].as_object().unwrap().len();
    assert_eq!(
        rows.len(),
        (1 + groups.len()) * metrics.len() + buckets.len() * bucket_metrics
    );
    let mut compared = 0;
    for r in &rows {
        let want = match r["row"].as_str() {
            "total" => &json["total"]["metrics"][&r["metric"]],
            "group" => {
                let g = groups
                    .iter()
                    .find(|g| g["key"].as_str().unwrap_or_default() == r["key"])
                    .unwrap();
                assert_eq!(g["name"].as_str().unwrap_or_default(), r["name"]);
                &g["metrics"][&r["metric"]]
            }
            "bucket" => {
                let b = buckets
                    .iter()
                    .find(|b| b["start"].as_str() == Some(r["bucket_start"].as_str()))
                    .unwrap();
                assert_eq!(r["value"], number(&b["metrics"][&r["metric"]]), "{r:?}");
                compared += 1;
                continue;
            }
            other => panic!("row kind {other}"),
        };
        assert_eq!(r["value"], number(&want["value"]), "{r:?}");
        assert_eq!(r["previous"], number(&want["previous"]), "{r:?}");
        assert_eq!(
            r["verdict"],
            want["verdict"].as_str().unwrap_or_default(),
            "{r:?}"
        );
        assert_eq!(r["group_by"], "team");
        compared += 1;
    }
    assert_eq!(compared, rows.len());
    // Accept: text/csv says the same.
    let request = Request::get(report)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "text/csv")
        .body(Body::empty())
        .unwrap();
    let (status, _, same) = send(&router, request).await;
    assert_eq!((status, same), (200, text));
    let (status, body) = oneshot_json(&router, &format!("{report}&format=xml"), Some(&token)).await;
    assert_eq!(status, 400, "{body}");

    // A drilldown: every incident of the seven weeks (more than one streamed chunk), in the
    // asked order, as many as the replica holds.
    let want: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM incidents WHERE account_id = 1 \
         AND created_at >= ('2026-10-05'::timestamp AT TIME ZONE 'Europe/Berlin') \
         AND created_at < ('2026-11-23'::timestamp AT TIME ZONE 'Europe/Berlin')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(want > 1000, "{want}");
    let drill = "/api/v1/incidents?from=2026-10-05&to=2026-11-23&tz=Europe/Berlin&sort=-time_to_resolve&limit=10&format=csv";
    let (status, _, text) = oneshot(&router, drill, Some(&token)).await;
    assert_eq!(status, 200, "{text}");
    let rows = records(&text);
    assert_eq!(rows.len() as i64, want);
    let mut ids: Vec<&str> = rows.iter().map(|r| r["incident_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as i64, want, "an incident twice");
    // Longest time to resolve first, the unresolved last.
    let resolve: Vec<Option<f64>> = rows
        .iter()
        .map(|r| r["seconds_to_resolve"].parse().ok())
        .collect();
    let first_none = resolve
        .iter()
        .position(Option::is_none)
        .unwrap_or(resolve.len());
    assert!(resolve[first_none..].iter().all(Option::is_none));
    assert!(resolve[..first_none].windows(2).all(|w| w[0] >= w[1]));
    assert!(rows.iter().all(|r| !r["service_name"].is_empty()));
}
