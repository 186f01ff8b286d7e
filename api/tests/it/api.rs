//! The report API over a real HTTP server: tokens, tenant isolation, the golden numbers, and
//! a 400 with what to fix for every bad parameter.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use mttx_api::server::{App, router, serve};
use mttx_etl::run::{RunOptions, run};
use mttx_etl::sink::delta::FactsTable;
use mttx_etl::sink::state::State;
use mttx_etl::source::Source;
use mttx_fixtures::{golden, load_dataset};
use mttx_migrations::Location;
use serde_json::Value;

use crate::common::scratch;

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |b| b.1);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

fn assert_near(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or(f64::NAN);
    assert!(
        (got - want).abs() < 1e-9 * want.abs().max(1.0),
        "{v} is not {want}"
    );
}

const WEEK: &str = "/api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_api_serves_each_account_its_own_numbers() {
    let dir = scratch("api");
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    load_dataset(&golden::dataset().unwrap(), &replica, false)
        .await
        .unwrap();
    let facts = dir.join("facts").display().to_string();
    let state = State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let mut table = FactsTable::open(&facts).await.unwrap();
    run(
        &Source::open(&replica, 2).await.unwrap(),
        &mut table,
        &state,
        &RunOptions::default(),
    )
    .await
    .unwrap();
    let one = state.create_token(1, "test", None).await.unwrap();
    let two = state.create_token(2, "test", None).await.unwrap();
    let revoked = state.create_token(1, "old", None).await.unwrap();
    assert_eq!(state.revoke_tokens(1, &revoked[..13]).await.unwrap(), 1);
    let app = App::open(
        &facts,
        state,
        Some(Source::open(&replica, 2).await.unwrap()),
    )
    .await
    .unwrap();
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), router(app))
        .await
        .unwrap();

    let (status, body) = tokio::task::spawn_blocking(move || get(addr, "/healthz", None))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    let call = move |path: String, token: Option<String>| {
        tokio::task::spawn_blocking(move || get(addr, &path, token.as_deref()))
    };
    // Account 1, week 44 against week 43, by team: the golden README's numbers.
    let (status, body) = call(format!("{WEEK}&group_by=team"), Some(one.clone()))
        .await
        .unwrap();
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
    let (status, body) = call(WEEK.into(), Some(two.clone())).await.unwrap();
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
        let (status, body) = call(WEEK.into(), token).await.unwrap();
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
    ] {
        let (status, body) = call(format!("{base}{query}"), Some(one.clone()))
            .await
            .unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{query}: {msg}");
    }
    // A daily trend of week 44: seven buckets that add up to the week.
    let (status, body) = call(format!("{WEEK}&unit=day"), Some(one.clone()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let days = body["buckets"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let total: f64 = days
        .iter()
        .map(|d| d["metrics"]["incident_count"].as_f64().unwrap())
        .sum();
    assert_near(&Value::from(total), 6.0);
    let (status, _) = call(format!("{WEEK}&unit=fortnight"), Some(one.clone()))
        .await
        .unwrap();
    assert_eq!(status, 400);

    // Filters: team 2's week 44 is incident 6 alone.
    let (status, body) = call(format!("{WEEK}&team=2"), Some(one.clone()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_near(&body["total"]["metrics"]["incident_count"]["value"], 1.0);

    // Drilldown: week 44 holds incidents 5-10; pages of 4 by creation time.
    let list =
        "/api/v1/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin&sort=created_at&limit=4";
    let (status, body) = call(list.into(), Some(one.clone())).await.unwrap();
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
    let (_, body) = call(format!("{list}&after={next}"), Some(one.clone()))
        .await
        .unwrap();
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
    let (status, body) = call(format!("{list}&sort=-time_to_resolve"), Some(one.clone()))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Slowest resolve first: incident 5 (3600 s).
    assert_eq!(ids(&body)[0], 5);

    // Detail: facts and the timeline from the replica; another account's id is a 404.
    let (status, body) = call("/api/v1/incidents/5".into(), Some(one.clone()))
        .await
        .unwrap();
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
        let (status, body) = call(path.into(), Some(token)).await.unwrap();
        assert_eq!(status, 404, "{path}: {body}");
    }
    for (query, needle) in [
        ("sort=fastest", "`sort`"),
        ("limit=0", "`limit`"),
        ("after=garbage", "not a cursor"),
        ("team=abc", "not an id"),
        ("urgency=urgent", "high or low"),
        ("major=yes", "true or false"),
    ] {
        let path = format!("/api/v1/incidents?from=2026-10-26&to=2026-11-02&{query}");
        let (status, body) = call(path, Some(one.clone())).await.unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{query}: {msg}");
    }

    let (status, body) = call("/api/v2/nothing".into(), Some(one.clone()))
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/reports/incidents")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
