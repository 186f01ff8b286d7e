//! A generated account rendered as PagerDuty JSON (thousands of incidents, with the bad
//! input a real log has, and a share written PagerDuty's way: one entry per assignee and
//! so on), imported through the local PagerDuty (which throttles and fails now and then)
//! and folded: every incident's facts equal those of the same replica written directly,
//! once ids are translated through the import's id table.

use std::collections::HashMap;

use mttx_fixtures::Config;
use mttx_fixtures::generate::generate_all;
use mttx_migrations::Location;
use mttx_pagerduty::{Options, import};
use sqlx::Row as _;

use crate::devlake::folded;
use crate::server::{TOKEN, Trouble, render, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_account_imports_to_the_same_facts() {
    let cfg = Config {
        seed: 5,
        accounts: 1,
        incidents: 2_500,
        weeks: 4,
        bad_rate: 0.03,
        pagerduty_share: 0.3,
        ..Config::default()
    };
    let (data, _) = generate_all(cfg.clone()).unwrap();
    let dir = mttx_fixtures::testing::scratch("pagerduty-generated").unwrap();
    let plain = Location::Sqlite(dir.join("plain.sqlite"));
    mttx_fixtures::generate_into(cfg.clone(), &plain, false)
        .await
        .unwrap();
    let trouble = Trouble {
        throttle_every: Some(97),
        fail_every: Some(89),
        ..Trouble::default()
    };
    let (addr, _server) = serve(render(&data), trouble).await;
    let imported = Location::Sqlite(dir.join("imported.sqlite"));
    let opts = Options::new(
        &format!("http://{addr}"),
        TOKEN.to_owned().into(),
        cfg.start() - chrono::Duration::days(1),
    );
    let summary = import(&opts, &imported, |_| {}).await.unwrap();
    assert!(
        summary.entries as usize > data.entries.len() * 9 / 10,
        "{summary}"
    );

    // The import's ids for the dataset's.
    let Location::Sqlite(path) = &imported else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let ids: HashMap<String, i64> = sqlx::query("SELECT external_id, id FROM import_ids")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
        .collect();
    let id = |prefix: &str, v: i64| ids[&format!("{prefix}{v}")];

    let plain_dir = dir.join("plain");
    let imported_dir = dir.join("imported");
    std::fs::create_dir_all(&plain_dir).unwrap();
    std::fs::create_dir_all(&imported_dir).unwrap();
    let want = folded(&plain_dir, &plain).await;
    let got = folded(&imported_dir, &imported).await;
    assert_eq!(
        want.keys().collect::<std::collections::BTreeSet<_>>(),
        got.keys().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(want.len() > 2_000);
    for (number, w) in &want {
        let g = &got[number];
        let users = |list: &[i64]| {
            let mut out: Vec<i64> = list.iter().map(|u| id("PU", *u)).collect();
            out.sort_unstable();
            out
        };
        let translated = mttx_etl::Fact {
            incident_id: id("PI", w.incident_id),
            service_id: id("PS", w.service_id),
            escalation_policy_id: w.escalation_policy_id.map(|p| id("PE", p)),
            team_id: w.team_id.map(|t| id("PT", t)),
            acknowledged_user_ids: users(&w.acknowledged_user_ids),
            assigned_user_ids: users(&w.assigned_user_ids),
            last_entry_id: g.last_entry_id,
            ..w.clone()
        };
        assert_eq!(g, &translated, "incident #{number}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
