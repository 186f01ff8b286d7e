//! A server over a GoAlert database (`--source-kind goalert`): the report API, the noisy
//! view with GoAlert's suppressed duplicates, an alert's timeline from GoAlert's log, and one
//! dashboard page in headless Chromium, all on the hand-worked GoAlert golden set
//! (fixtures/goalert/golden.md).

use mttx_api::{App, serve};
use mttx_migrations::Location;
use mttx_replica::{GoAlert, Source, SourceKind};
use sqlx::PgPool;

use crate::browser::{browser, chromedriver, sign_in, text_of, wait_for};
use crate::common::{get, scratch, test_url};

fn acme() -> SourceKind {
    SourceKind::GoAlert(GoAlert {
        account_name: "Acme on-call".into(),
        time_zone: chrono_tz::UTC,
    })
}

#[sqlx::test(migrations = false)]
async fn a_goalert_replica_is_served_and_shown_in_chromium(pool: PgPool) {
    mttx_fixtures::goalert::load_golden(&pool).await.unwrap();
    let replica: Location = test_url(&pool).await.parse().unwrap();
    let dir = scratch("goalert-served");
    let facts = dir.join("facts").display().to_string();
    let state = mttx_state::State::open(&Location::Sqlite(dir.join("state.sqlite")))
        .await
        .unwrap();
    let mut table = mttx_etl::sink::delta::FactsTable::open(&facts)
        .await
        .unwrap();
    let source = Source::open_as(&replica, acme(), 2).await.unwrap();
    mttx_etl::run::run(&source, &mut table, &state, &Default::default())
        .await
        .unwrap();
    let token = state.create_token(1, "lead", None).await.unwrap();
    let app = App::open(&facts, state, Some(source), Default::default())
        .await
        .unwrap();
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), mttx_api::app(app))
        .await
        .unwrap();
    let api = |path: &'static str| {
        let token = token.clone();
        async move {
            let (status, body) = tokio::task::spawn_blocking(move || get(addr, path, Some(&token)))
                .await
                .unwrap();
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };

    // The week's report by service: 12 alerts, 9 acknowledged (MTTA p50 360 s), 10 closed
    // (golden.md), with the instance's and the services' names.
    let report =
        api("/api/v1/reports/incidents?from=2026-11-02&to=2026-11-09&group_by=service").await;
    assert_eq!(report["account_name"], "Acme on-call");
    let m = &report["total"]["metrics"];
    assert_eq!(m["incident_count"]["value"], 12.0, "{report}");
    assert_eq!(m["acknowledged_count"]["value"], 9.0, "{report}");
    assert_eq!(m["resolved_count"]["value"], 10.0, "{report}");
    assert_eq!(m["mtta_p50"]["value"], 360.0, "{report}");
    let names: Vec<&str> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(names.contains(&"checkout-api"), "{names:?}");

    // The noisy view counts the suppressed duplicates: alert 3's two and alert 11's two.
    let noisy = api("/api/v1/reports/noisy?from=2026-11-02&to=2026-11-09").await;
    let repeats: i64 = noisy["titles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["repeat_count"].as_i64().unwrap())
        .sum();
    assert_eq!(repeats, 4, "{noisy}");

    // An alert's timeline is GoAlert's log, mapped.
    let detail = api("/api/v1/incidents/3").await;
    let text = detail.to_string();
    assert!(text.contains("duplicate_suppressed"), "{text}");

    // One dashboard page: the instance's week, by name.
    let driver = chromedriver();
    let c = browser(&driver).await;
    let base = format!("http://{addr}");
    sign_in(&c, &base, &token).await;
    c.goto(&format!("{base}/dashboard?week=2026-W45"))
        .await
        .unwrap();
    wait_for(&c, "#services").await;
    assert_eq!(text_of(&c, "header.top .note").await, "Acme on-call");
    let services = text_of(&c, "#services").await;
    assert!(services.contains("checkout-api"), "{services}");
    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
