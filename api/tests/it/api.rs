//! The report API, called in the process through its router (one smoke test over a real
//! socket): tokens, tenant isolation, the golden numbers, and a 400 with what to fix for
//! every bad parameter.

use axum::Router;
use mttx_api::{App, serve};
use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_fixtures::golden;
use mttx_migrations::Location;
use mttx_replica::Source;
use mttx_state::State;
use serde_json::Value;

use crate::common::{get, golden_folded, oneshot, oneshot_json};

fn assert_near(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or(f64::NAN);
    assert!(
        (got - want).abs() < 1e-9 * want.abs().max(1.0),
        "{v} is not {want}"
    );
}

const WEEK: &str = "/api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin";

/// The router over the golden set, with tokens of accounts 1 and 2 and a revoked one.
struct Served {
    router: Router,
    one: String,
    two: String,
    revoked: String,
    dir: std::path::PathBuf,
    replica: Location,
    facts: String,
    app: std::sync::Arc<App>,
}

async fn golden_server(name: &str) -> Served {
    let (dir, replica, facts, state) = golden_folded(name).await;
    let one = state.create_token(1, "test", None).await.unwrap();
    let two = state.create_token(2, "test", None).await.unwrap();
    let revoked = state.create_token(1, "old", None).await.unwrap();
    assert_eq!(state.revoke_tokens(1, &revoked[..13]).await.unwrap(), 1);
    let app = App::open(
        &facts,
        state,
        Some(Source::open(&replica, 2).await.unwrap()),
        mttx_api::AppOptions {
            extra_metrics: Some(mttx_etl::metrics::render),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Served {
        router: mttx_api::app(app.clone()),
        one,
        two,
        revoked,
        dir,
        replica,
        facts,
        app,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_api_serves_each_account_its_own_numbers() {
    let Served {
        router,
        one,
        two,
        revoked,
        dir,
        ..
    } = golden_server("api").await;

    let (status, body) = oneshot_json(&router, "/healthz", None).await;
    assert_eq!(status, 200, "{body}");

    let call = |path: String, token: Option<String>| {
        let router = router.clone();
        async move { oneshot_json(&router, &path, token.as_deref()).await }
    };
    // Account 1, week 44 against week 43, by team: the golden README's numbers.
    let (status, body) = call(format!("{WEEK}&group_by=team"), Some(one.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], 1);
    let m = &body["total"]["metrics"];
    assert_near(&m["incident_count"]["value"], 6.0);
    assert_near(&m["incident_count"]["previous"], 4.0);
    assert_near(&m["incident_count"]["delta_ratio"], 0.5);
    assert_near(&m["mtta_p90"]["value"], 972.0);
    assert_near(&m["mttr_p95"]["previous"], 6930.0);
    assert_eq!(body["previous_period"]["from"], "2026-10-19");
    let team1 = body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "1")
        .unwrap();
    assert_near(&team1["metrics"]["incident_count"]["value"], 5.0);
    assert_near(&team1["metrics"]["incident_count"]["norm"], 6.0);
    assert_near(&team1["metrics"]["escalated_rate"]["value"], 0.2);

    // Account 2's token sees account 2 only: its incidents of that week, counted from the
    // hand-worked facts.
    let want = golden::expected_facts()
        .unwrap()
        .iter()
        .filter(|f| {
            f.account_id == 2
                && f.created_at
                    >= "2026-10-25T23:00:00Z"
                        .parse::<chrono::DateTime<chrono::Utc>>()
                        .unwrap()
                && f.created_at
                    < "2026-11-01T23:00:00Z"
                        .parse::<chrono::DateTime<chrono::Utc>>()
                        .unwrap()
        })
        .count();
    let (status, body) = call(WEEK.into(), Some(two.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], 2);
    assert_eq!(
        body["total"]["metrics"]["incident_count"]["value"],
        want as f64
    );

    // Without a usable token: 401 with what to do.
    for (token, needle) in [
        (None, "Authorization: Bearer"),
        (Some("mttx_nope".to_owned()), "not known"),
        (Some(revoked.clone()), "revoked"),
    ] {
        let (status, body) = call(WEEK.into(), token).await;
        assert_eq!(status, 401, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
    // Every bad parameter: 400 and the fix.
    let base = "/api/v1/reports/incidents?";
    for (query, needle) in [
        (
            "from=2026-10-26&to=2026-11-02&tz=Mars/Olympus",
            "unknown time zone",
        ),
        ("from=2026-11-02&to=2026-10-26", "must be before"),
        (
            "from=2026-10-26&to=2026-11-02&group_by=colour",
            "unknown group_by",
        ),
        ("from=26.10.2026&to=2026-11-02", "not a date"),
        ("to=2026-11-02", "`from` is required"),
        ("from=2020-01-01&to=2026-11-02", "at most 400"),
        (
            "from=2026-10-26&to=2026-11-02&unit=fortnight",
            "unknown unit",
        ),
        (
            "from=2026-10-26&to=2026-11-02&bucket=week",
            "unknown parameter `bucket`",
        ),
        // The calendar's ends: refused with the range, never a closed connection.
        (
            "from=-262143-01-01&to=-262143-01-09&unit=week",
            "out of range",
        ),
        ("from=%2B262142-12-01&to=%2B262142-12-31", "out of range"),
        ("from=1899-12-25&to=1900-01-08&unit=month", "out of range"),
    ] {
        let (status, body) = call(format!("{base}{query}"), Some(one.clone())).await;
        assert_eq!(status, 400, "{query}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    // A daily trend of week 44: seven buckets that add up to the week.
    let (status, body) = call(format!("{WEEK}&unit=day"), Some(one.clone())).await;
    assert_eq!(status, 200, "{body}");
    let days = body["buckets"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let total: f64 = days
        .iter()
        .map(|d| d["metrics"]["incident_count"].as_f64().unwrap())
        .sum();
    assert_near(&Value::from(total), 6.0);
    let (status, _) = call(format!("{WEEK}&unit=fortnight"), Some(one.clone())).await;
    assert_eq!(status, 400);

    // Filters: team 2's week 44 is incident 6 alone.
    let (status, body) = call(format!("{WEEK}&team=2"), Some(one.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_near(&body["total"]["metrics"]["incident_count"]["value"], 1.0);

    // Drilldown: week 44 holds incidents 5-10; pages of 4 by creation time.
    let week = "/api/v1/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin&limit=4";
    let list = format!("{week}&sort=created_at");
    let (status, body) = call(list.clone(), Some(one.clone())).await;
    assert_eq!(status, 200, "{body}");
    let ids = |b: &Value| -> Vec<i64> {
        b["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["incident_id"].as_i64().unwrap())
            .collect()
    };
    let mut all = ids(&body);
    let next = body["next"].as_str().unwrap().to_owned();
    let (_, body) = call(format!("{list}&after={next}"), Some(one.clone())).await;
    all.extend(ids(&body));
    assert!(body["next"].is_null(), "{body}");
    let mut by_time: Vec<(String, i64)> = golden::expected_facts()
        .unwrap()
        .iter()
        .filter(|f| f.account_id == 1 && (5..=10).contains(&f.incident_id))
        .map(|f| (f.created_at.to_rfc3339(), f.incident_id))
        .collect();
    by_time.sort();
    assert_eq!(all, by_time.iter().map(|p| p.1).collect::<Vec<_>>());
    let (status, body) = call(format!("{week}&sort=-time_to_resolve"), Some(one.clone())).await;
    assert_eq!(status, 200, "{body}");
    // Slowest resolve first: incident 5 (3600 s).
    assert_eq!(ids(&body)[0], 5);

    // Extreme weeks and dates on the drilldown and the dashboard: a 400 that says why.
    for path in [
        "/api/v1/incidents?from=-262143-01-01&to=-262143-01-09",
        "/dashboard?week=-262143-W10",
        "/dashboard/table.csv?week=-262143-W10&table=trend",
        "/dashboard/incidents?from=%2B262142-12-01&to=%2B262142-12-31",
    ] {
        let (status, _, body) = oneshot(&router, path, Some(&one)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("out of range"), "{path}: {body}");
    }

    // Reopened incidents (account 2, worked in the golden README): filter and sort by them;
    // the answer carries the count and the final resolve, and the dashboard marks them.
    let nyc = "from=2026-10-26&to=2026-11-02&tz=America/New_York";
    let (status, body) = call(
        format!("/api/v1/incidents?{nyc}&reopened=true&sort=-reopen_count"),
        Some(two.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![13, 12]);
    let got: Vec<(Value, Value, Value)> = body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["reopen_count"].clone(),
                f["final_resolved_at"].clone(),
                f["seconds_to_resolve"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2.into(), Value::Null, 600.0.into()),
            (1.into(), "2026-10-27T10:40:00Z".into(), 1200.0.into()),
        ]
    );
    let (status, body) = call(
        format!("/api/v1/incidents?{nyc}&reopened=false&sort=final_resolved_at"),
        Some(two.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), vec![11, 14]);
    let (status, _, page) = oneshot(
        &router,
        &format!("/dashboard/incidents?{nyc}&sort=-reopen_count"),
        Some(&two),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<tr data-incident=").count(), 4, "{page}");
    assert_eq!(page.matches(r#"class="reopened""#).count(), 2, "{page}");
    for (id, count) in [(13, "2×"), (12, "1×")] {
        let row = &page[page.find(&format!(r#"<tr data-incident="{id}""#)).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains(r#"class="reopened""#) && row.contains(count),
            "{row}"
        );
    }
    let (status, _, page) = oneshot(&router, "/dashboard/incidents/13", Some(&two)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"id="reopened" data-count="2""#), "{page}");
    assert!(page.contains("open again"), "{page}");

    // Detail: facts and the timeline from the replica; another account's id is a 404.
    let (status, body) = call("/api/v1/incidents/5".into(), Some(one.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["facts"]["incident_id"], 5);
    let entries = golden::dataset()
        .unwrap()
        .entries
        .iter()
        .filter(|e| e.incident_id == 5)
        .count();
    assert_eq!(body["timeline"].as_array().unwrap().len(), entries);
    for (path, token) in [
        ("/api/v1/incidents/5", two.clone()),
        ("/api/v1/incidents/abc", one.clone()),
        ("/api/v1/incidents/99999", one.clone()),
    ] {
        let (status, body) = call(path.into(), Some(token)).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    for (query, needle) in [
        ("sort=fastest", "`sort`"),
        ("limit=0", "`limit`"),
        ("after=garbage", "not a cursor"),
        ("team=abc", "not an id"),
        ("urgency=urgent", "high or low"),
        ("major=yes", "true or false"),
        ("reopened=maybe", "`reopened`"),
        ("sort=-reopened", "reopen_count"),
    ] {
        let path = format!("/api/v1/incidents?from=2026-10-26&to=2026-11-02&{query}");
        let (status, body) = call(path, Some(one.clone())).await;
        assert_eq!(status, 400, "{query}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{query}: {msg}");
    }

    let (status, body) = call("/api/v2/nothing".into(), Some(one.clone())).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/openapi.json")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The OpenAPI document names every endpoint and parameter the server takes; answers are
/// cached per account and table version and new facts are served within seconds; the
/// noisy-alerts view keeps to the account; no input makes a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_cache_freshness_noise_and_no_500() {
    let served = golden_server("api-more").await;
    let (one, two) = (served.one.clone(), served.two.clone());
    let call = |path: String, token: Option<String>| {
        let router = served.router.clone();
        async move { oneshot(&router, &path, token.as_deref()).await }
    };

    // The document: every endpoint of DESIGN.md, bearer security, and each parameter it
    // declares is one the server accepts (an undeclared one is refused).
    let (status, _, doc) = call("/openapi.json".into(), None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/reports/incidents",
        "/api/v1/reports/noisy",
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let params = |path: &str| -> Vec<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let report_params = params("/api/v1/reports/incidents");
    for want in [
        "from",
        "to",
        "tz",
        "unit",
        "group_by",
        "team",
        "service",
        "escalation_policy",
        "responder",
        "urgency",
        "priority",
        "major",
    ] {
        assert!(
            report_params.iter().any(|p| p == want),
            "report lacks {want}"
        );
    }
    for (path, params) in [
        ("/api/v1/reports/incidents", report_params.clone()),
        ("/api/v1/incidents", params("/api/v1/incidents")),
        ("/api/v1/reports/noisy", params("/api/v1/reports/noisy")),
    ] {
        for p in params {
            let (_, _, body) = call(format!("{path}?{p}=1"), Some(one.clone())).await;
            assert!(
                !body.contains("unknown parameter"),
                "{path} refuses {p}: {body}"
            );
        }
        let (status, _, body) = call(format!("{path}?colour=1"), Some(one.clone())).await;
        assert_eq!(status, 400);
        assert!(body.contains("unknown parameter `colour`"), "{body}");
    }
    assert!(doc["components"]["schemas"]["ReportBody"].is_object());

    // Cache: the same question again is a hit with the same bytes; another account's is not.
    let week = format!("{WEEK}&group_by=service");
    let (s1, h1, b1) = call(week.clone(), Some(one.clone())).await;
    let (s2, h2, b2) = call(week.clone(), Some(one.clone())).await;
    let header = |h: &Vec<(String, String)>| {
        h.iter()
            .find(|(k, _)| k == "x-mttx-cache")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        (header(&h1).as_str(), header(&h2).as_str()),
        ("miss", "hit")
    );
    assert_eq!(b1, b2);
    let (_, h3, b3) = call(week.clone(), Some(two.clone())).await;
    assert_eq!(header(&h3), "miss");
    assert_ne!(b1, b3);

    // Freshness: a new incident of account 1 in week 44 (a copy of incident 5) reaches the
    // report within seconds of the ETL's commit, as a new version (a miss), then cached.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        served.dir.join("replica.sqlite").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO incidents SELECT 1000, account_id, 1000, service_id, escalation_policy_id, \
           title, urgency, priority, status, created_at FROM incidents WHERE id = 5",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO incident_log_entries SELECT id + 100000, account_id, 1000, type, created_at, \
           agent_type, agent_id, channel, user_id, assignee_ids, escalation_policy_id, details \
         FROM incident_log_entries WHERE incident_id = 5",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    served.app.follow(std::time::Duration::from_millis(200));
    let state = State::open(&Location::Sqlite(served.dir.join("state.sqlite")))
        .await
        .unwrap();
    let mut table = FactsTable::open(&served.facts).await.unwrap();
    run(
        &Source::open(&served.replica, 2).await.unwrap(),
        &mut table,
        &state,
        &RunOptions::default(),
    )
    .await
    .unwrap();
    let committed = std::time::Instant::now();
    let count = |b: &str| {
        serde_json::from_str::<Value>(b).unwrap()["total"]["metrics"]["incident_count"]["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(count(&b1), 6.0);
    let mut seen = None;
    while committed.elapsed() < std::time::Duration::from_secs(10) {
        let (_, h, b) = call(week.clone(), Some(one.clone())).await;
        if count(&b) == 7.0 {
            seen = Some(header(&h));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.as_deref(),
        Some("miss"),
        "the new incident never showed"
    );
    let (_, h, b) = call(week.clone(), Some(one.clone())).await;
    assert_eq!((header(&h).as_str(), count(&b)), ("hit", 7.0));

    // Noisy alerts keep to the account: account 1's services are account 1's.
    let noisy = "/api/v1/reports/noisy?from=2026-10-19&to=2026-11-02&tz=Europe/Berlin";
    let services_of = |account: i64| -> Vec<String> {
        let mut v: Vec<String> = golden::expected_facts()
            .unwrap()
            .iter()
            .filter(|f| f.account_id == account)
            .map(|f| f.service_id.to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for (token, account) in [(one.clone(), 1), (two.clone(), 2)] {
        let (status, _, body) = call(noisy.into(), Some(token)).await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let mine = services_of(account);
        let listed = body["services"].as_array().unwrap();
        assert!(!listed.is_empty());
        for s in listed {
            assert!(mine.contains(&s["key"].as_str().unwrap().to_owned()), "{s}");
        }
    }
    for (query, needle) in [
        ("&limit=0", "`limit`"),
        ("&burst_minutes=99999", "`burst_minutes`"),
        ("&flap_seconds=NaN", "`flap_seconds`"),
        ("&burst_min=1", "`burst_min`"),
        ("&team=1&team=2", "given twice"),
    ] {
        let (status, _, body) = call(format!("{noisy}{query}"), Some(one.clone())).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(needle), "{query}: {body}");
    }

    // No 500, whatever the input: every parameter of every endpoint with hostile values;
    // each answer is JSON, and errors carry a message.
    let nasty = [
        "",
        "%20",
        "-1",
        "0",
        "9223372036854775808",
        "-9223372036854775809",
        "1e309",
        "NaN",
        "inf",
        "2026-02-30",
        "0000-01-01",
        "9999-12-31",
        "%FF%FE",
        "%00",
        "..%2F..%2Fetc",
        "%27%3B%20DROP%20TABLE%20incidents%3B--",
        "%C3%BC",
        "P1%2CP2",
        "true%00",
        &"9".repeat(5000),
    ];
    let mut checked = 0;
    for (path, params) in [
        ("/api/v1/reports/incidents", report_params.clone()),
        ("/api/v1/incidents", params("/api/v1/incidents")),
        ("/api/v1/reports/noisy", params("/api/v1/reports/noisy")),
    ] {
        for p in &params {
            for v in nasty {
                let q = if p == "from" || p == "to" {
                    format!(
                        "{path}?{p}={v}&{}",
                        if p == "from" {
                            "to=2026-11-02"
                        } else {
                            "from=2026-10-26"
                        }
                    )
                } else {
                    format!("{path}?from=2026-10-26&to=2026-11-02&{p}={v}")
                };
                let (status, _, body) = call(q.clone(), Some(one.clone())).await;
                assert!([200, 400].contains(&status), "{q}: {status} {body}");
                let body: Value =
                    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{q}: not JSON: {body}"));
                if status != 200 {
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .is_some_and(|m| !m.is_empty()),
                        "{q}"
                    );
                }
                checked += 1;
            }
        }
    }
    for id in [
        "0",
        "-1",
        "%FF",
        "1e3",
        "9223372036854775808",
        "5%00",
        &"1".repeat(3000),
    ] {
        let (status, _, body) = call(format!("/api/v1/incidents/{id}"), Some(one.clone())).await;
        assert_eq!(status, 404, "{id}: {body}");
        assert!(serde_json::from_str::<Value>(&body).is_ok(), "{id}: {body}");
    }
    assert!(checked > 500, "{checked}");

    // The server's own counters: requests by route and status, cache hits.
    let (_, _, metrics) = call("/metrics".into(), None).await;
    assert!(
        metrics.contains(
            "mttx_api_requests_total{route=\"/api/v1/reports/incidents\",status=\"4xx\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("mttx_api_cache_hits_total"), "{metrics}");
    assert!(metrics.contains("mttx_etl_entries_read_total"), "{metrics}");
    assert_eq!(metrics.matches("# EOF").count(), 1);
    let _ = std::fs::remove_dir_all(&served.dir);
}

/// The one test over a real socket: the same router, bound by `serve`, answers liveness, the
/// token's account's report and a JSON 404 to raw HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_over_a_real_socket() {
    let served = golden_server("api-socket").await;
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), served.router.clone())
        .await
        .unwrap();
    let one = served.one.clone();
    let (health, report, nothing) = tokio::task::spawn_blocking(move || {
        (
            get(addr, "/healthz", None),
            get(addr, WEEK, Some(&one)),
            get(addr, "/api/v2/nothing", Some(&one)),
        )
    })
    .await
    .unwrap();
    assert_eq!(health, (200, Value::String("ok\n".into())));
    let (status, body) = report;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_id"], 1);
    assert_near(&body["total"]["metrics"]["incident_count"]["value"], 6.0);
    let (status, body) = nothing;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["status"], 404);
    let _ = std::fs::remove_dir_all(&served.dir);
}

/// `/readyz`: ready while the facts are open and the state answers; 503 once draining for
/// a stop, while `/healthz` still says the process is alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_to_draining_on_a_stop() {
    let Served { router, app, .. } = golden_server("ready").await;
    let (status, _, body) = oneshot(&router, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready (facts version"), "{body}");
    app.drain();
    let (status, body) = oneshot_json(&router, "/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("draining"),
        "{body}"
    );
    let (status, _) = oneshot_json(&router, "/healthz", None).await;
    assert_eq!(status, 200);
}

/// Tokens: each use is recorded, a revoked one is refused within the token check period
/// (10 s), and a dashboard-scoped one signs in to the dashboard but reads no JSON API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_recorded_revoked_and_scoped() {
    let (dir, _, facts, state) = golden_folded("tokens").await;
    let token = state.create_token(1, "ci", None).await.unwrap();
    let screen = state
        .create_scoped_token(1, "wall screen", None, mttx_state::Scope::Dashboard)
        .await
        .unwrap();
    let listed = state.list_tokens(1).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|t| t.last_used_at.is_none()));
    let id = listed.iter().find(|t| t.name == "ci").unwrap().id;
    let app = App::open(&facts, state.clone(), None, Default::default())
        .await
        .unwrap();
    let router = mttx_api::app(app);

    let (status, body) = oneshot_json(&router, WEEK, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let used = state.list_tokens(1).await.unwrap();
    let ci = used.iter().find(|t| t.id == id).unwrap();
    assert!(ci.last_used_at.is_some(), "{ci:?}");
    assert!(
        !format!("{used:?}").contains(&token[13..]),
        "a listing shows the token"
    );

    // The dashboard-scoped token: pages yes, JSON no (403 with the fix).
    let (status, body) = oneshot_json(&router, WEEK, Some(&screen)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dashboard"),
        "{body}"
    );
    let (status, _, page) = oneshot(&router, "/dashboard?week=2026-W44", Some(&screen)).await;
    assert_eq!(status, 200, "{page}");

    // Revoked while the server holds a fresh check of it: refused within 10 s.
    let revoked = state.revoke_token(id).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some());
    let since = std::time::Instant::now();
    loop {
        let (status, body) = oneshot_json(&router, WEEK, Some(&token)).await;
        if status == 401 {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("revoked"),
                "{body}"
            );
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            since.elapsed() <= mttx_api::http::auth::TOKEN_TTL + std::time::Duration::from_secs(1),
            "a revoked token still works after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(state.revoke_token(999_999).await.unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

/// One error shape over a real socket: a wrong method (405), a body too large (413), a URL
/// too long (414) and too many or too large headers (431) all answer the JSON error, with
/// a message that says what to send instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_json_error() {
    use std::io::{Read, Write};
    let served = golden_server("api-refusals").await;
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), served.router.clone())
        .await
        .unwrap();
    let one = served.one.clone();
    let raw = move |head: String, body: Vec<u8>| -> (u16, String, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer before reading a body it refuses.
        let _ = s.write_all(&body);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out).into_owned();
        let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        (status, head.to_ascii_lowercase(), body.to_owned())
    };
    let cases = tokio::task::spawn_blocking(move || {
        let auth = format!("Authorization: Bearer {one}\r\n");
        let big = vec![b'{'; 100 * 1024];
        let many: String = (0..150).map(|i| format!("X-Extra-{i}: {i}\r\n")).collect();
        let large = format!("X-Large: {}\r\n", "a".repeat(40 * 1024));
        vec![
            (
                405,
                "allow",
                raw(
                    format!("DELETE {WEEK} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
                    vec![],
                ),
            ),
            (
                413,
                "64 kib",
                raw(
                    format!(
                        "POST /analytics/raw/incidents HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        big.len()
                    ),
                    big,
                ),
            ),
            (
                414,
                "at most 8192",
                raw(
                    format!(
                        "GET {WEEK}&x={} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n",
                        "a".repeat(9000)
                    ),
                    vec![],
                ),
            ),
            (
                431,
                "at most 100 headers",
                raw(
                    format!("GET {WEEK} HTTP/1.1\r\nHost: x\r\n{auth}{many}Connection: close\r\n\r\n"),
                    vec![],
                ),
            ),
            (
                431,
                "bytes",
                raw(
                    format!("GET {WEEK} HTTP/1.1\r\nHost: x\r\n{auth}{large}Connection: close\r\n\r\n"),
                    vec![],
                ),
            ),
        ]
    })
    .await
    .unwrap();
    for (want, needle, (status, head, body)) in cases {
        assert_eq!(status, want, "{head}\n{body}");
        assert!(
            head.contains("content-type: application/json"),
            "{want}: {head}"
        );
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(json["error"]["status"], want, "{body}");
        let message = json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            message.contains(needle) || head.contains(needle),
            "{want}: `{needle}` in {head}\n{body}"
        );
    }
    let _ = std::fs::remove_dir_all(&served.dir);
}
