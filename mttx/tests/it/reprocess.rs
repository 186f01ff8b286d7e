//! Reports keep being served, whole, through a reprocess and its switch: a load generator
//! calls the report API throughout; no call fails, and every answer is exactly version 1's
//! or exactly version 2's numbers (computed apart, from each generation's table).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mttx_api::{App, serve};
use mttx_etl::MetricsVersion;
use mttx_etl::reprocess::reprocess;
use mttx_etl::run::RunOptions;
use mttx_fixtures::{Config, generate_into};
use mttx_migrations::Location;
use mttx_query::{Engine, Filters, GroupBy, Period};
use mttx_replica::Source;
use serde_json::Value;

use crate::common::{folded, get, scratch};

/// Team → (incidents, MTTA p90, MTTR p50): what a by-team report must show.
type Numbers = BTreeMap<Option<String>, (f64, Option<f64>, Option<f64>)>;

async fn expected(location: &str, account: i64, period: &Period) -> Numbers {
    let report = Engine::open(location)
        .await
        .unwrap()
        .report(account, period, Some(GroupBy::Team), &Filters::default())
        .await
        .unwrap();
    report
        .groups
        .iter()
        .map(|g| {
            (
                g.key.clone(),
                (
                    g.current.incident_count as f64,
                    as_served(g.current.mtta_p90),
                    as_served(g.current.mttr_p50),
                ),
            )
        })
        .collect()
}

/// A number as a client reads it from the API's JSON: written and parsed back by
/// serde_json, whose default parser can land one ulp away from the exact value.
fn as_served(v: Option<f64>) -> Option<f64> {
    serde_json::from_str::<Value>(&serde_json::to_string(&v).unwrap())
        .unwrap()
        .as_f64()
}

fn answered(body: &Value) -> Numbers {
    body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let m = &g["metrics"];
            (
                g["key"].as_str().map(str::to_owned),
                (
                    m["incident_count"]["value"].as_f64().unwrap(),
                    m["mtta_p90"]["value"].as_f64(),
                    m["mttr_p50"]["value"].as_f64(),
                ),
            )
        })
        .collect()
}

// A multi-threaded runtime: the server answers the load while the reprocess runs (on
// sqlx::test's single thread the busy server starves the test's own future). The replica
// is SQLite for that reason; the PostgreSQL path of the same reprocess is
// etl/tests/it/reprocess.rs and crash.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stay_whole_through_a_reprocess_and_its_switch() {
    let dir = scratch("reprocess-load");
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    let cfg = Config {
        seed: 63,
        accounts: 2,
        incidents: 4_000,
        weeks: 4,
        ..Config::default()
    };
    generate_into(cfg, &replica, false).await.unwrap();
    let (base, state) = folded(&dir, &replica).await;
    let source = Source::open(&replica, 4).await.unwrap();
    let token = state.create_token(1, "load", None).await.unwrap();
    // No answer cache: every call computes from the generation it is served.
    let options = mttx_api::AppOptions {
        cache_bytes: 0,
        ..Default::default()
    };
    let app = App::open(&base, state.clone(), None, options)
        .await
        .unwrap();
    app.follow(Duration::from_millis(100));
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), mttx_api::app(app))
        .await
        .unwrap();

    // The last week of the generated history, by team.
    let (from, to) = ("2026-11-16", "2026-11-23");
    let period = Period::new(
        chrono_tz::UTC,
        from.parse().unwrap(),
        to.parse().unwrap(),
        400,
    )
    .unwrap();
    let path = format!("/api/v1/reports/incidents?from={from}&to={to}&group_by=team");

    // Two clients call the API back to back until told to stop.
    let running = Arc::new(AtomicBool::new(true));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (running, token, path) = (running.clone(), token.clone(), path.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while running.load(Ordering::SeqCst) {
                    seen.push(get(addr, &path, Some(&token)));
                }
                seen
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let opts = RunOptions {
        metrics_version: MetricsVersion::V2,
        range_incidents: 400,
        ..RunOptions::default()
    };
    let done = reprocess(&source, &state, &base, &opts, true)
        .await
        .unwrap();
    assert!(done.switched);
    // The server moves to the new generation within its follow period; keep calling a
    // little beyond it.
    let switched = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    running.store(false, Ordering::SeqCst);
    let seen: Vec<Vec<(u16, Value)>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let after_switch = switched.elapsed();

    let want = BTreeMap::from([
        (1, expected(&base, 1, &period).await),
        (2, expected(&done.to.location, 1, &period).await),
    ]);
    assert_ne!(
        want[&1], want[&2],
        "the versions must differ for the test to mean anything"
    );
    let mut by_version = BTreeMap::<i64, usize>::new();
    for calls in &seen {
        let mut last_version = 1;
        for (status, body) in calls {
            assert_eq!(*status, 200, "a call failed: {body}");
            let v = body["metrics_version"].as_i64().unwrap();
            assert!(v >= last_version, "version {v} served after {last_version}");
            last_version = v;
            assert_eq!(
                answered(body),
                want[&v],
                "an answer that is not exactly version {v}'s numbers"
            );
            let generation = body["generation"].as_i64().unwrap();
            assert_eq!(generation, if v == 1 { done.from.id } else { done.to.id });
            *by_version.entry(v).or_default() += 1;
        }
    }
    assert!(
        by_version.get(&1).copied().unwrap_or(0) >= 5
            && by_version.get(&2).copied().unwrap_or(0) >= 5,
        "calls by version: {by_version:?} ({after_switch:?} after the switch)"
    );
    eprintln!("calls by metrics version: {by_version:?}, none failed");

    // Account 2 alone back to version 1: each account's answers name its own version, and
    // account 1's numbers are still version 2's.
    let opts = RunOptions {
        metrics_version: MetricsVersion::V2,
        account_versions: [(2, MetricsVersion::V1)].into(),
        range_incidents: 400,
        ..RunOptions::default()
    };
    let mixed = reprocess(&source, &state, &base, &opts, true)
        .await
        .unwrap();
    let other = state.create_token(2, "other", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = get(addr, &path, Some(&token));
        if body["generation"].as_i64() == Some(mixed.to.id) || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["generation"].as_i64(), Some(mixed.to.id), "{body}");
    assert_eq!(body["metrics_version"], 2, "{body}");
    assert_eq!(answered(&body), want[&2]);
    let (status, body) = get(addr, &path, Some(&other));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["generation"].as_i64(),
            body["metrics_version"].as_i64()
        ),
        (Some(mixed.to.id), Some(1)),
        "{body}"
    );
    // Account 2's numbers are version 1's (the first generation's), and differ from the
    // version 2 generation's: the label is not all that changed.
    let v1 = expected(&base, 2, &period).await;
    assert_eq!(answered(&body), v1);
    assert_ne!(v1, expected(&done.to.location, 2, &period).await);
    let _ = std::fs::remove_dir_all(&dir);
}
