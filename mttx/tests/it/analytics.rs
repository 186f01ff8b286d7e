//! An account imported from PagerDuty (`mttx import pagerduty` against the local PagerDuty),
//! folded and served: PagerDuty's Analytics API answers with PagerDuty's own ids and names,
//! taken with PagerDuty's `Token token=` header, and filters by PagerDuty's ids.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;

use mttx_fixtures::Config;
use mttx_fixtures::generate::generate_all;
use mttx_migrations::Location;
use serde_json::{Value, json};

use crate::common::{exchange, folded, scratch};
use crate::pd_server::{TOKEN, Trouble, render, serve};

/// One POST with PagerDuty's header form: status and JSON body.
fn post(addr: SocketAddr, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Token token={token}\r\n\
             Accept: application/vnd.pagerduty+json;version=2\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_account_answers_with_pagerdutys_ids() {
    let cfg = Config {
        seed: 21,
        accounts: 1,
        incidents: 400,
        weeks: 3,
        bad_rate: 0.0,
        pagerduty_share: 0.5,
        ..Config::default()
    };
    let (data, _) = generate_all(cfg.clone()).unwrap();
    let account = render(&data);
    let teams: Vec<(String, String)> = account
        .teams
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().into(),
                t["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let incidents: BTreeSet<String> = account
        .incidents
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let (api, _server) = serve(account, Trouble::default()).await;
    let dir = scratch("pd-analytics");
    let replica = dir.join("replica.sqlite");
    let since = (cfg.start() - chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args([
            "import",
            "pagerduty",
            "--api-url",
            &format!("http://{api}"),
            "--since",
            &since,
        ])
        .arg("--source")
        .arg(&replica)
        .env("PAGERDUTY_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let location = Location::Sqlite(replica.clone());
    let (facts, state) = folded(&dir, &location).await;
    let token = state.create_token(1, "pd", None).await.unwrap();
    let source = mttx_replica::Source::open(&location, 2).await.unwrap();
    let app = mttx_api::App::open(&facts, state, Some(source), Default::default())
        .await
        .unwrap();
    let (addr, _task) = mttx_api::serve("127.0.0.1:0".parse().unwrap(), mttx_api::app(app))
        .await
        .unwrap();
    let range = json!({"created_at_start": cfg.start().to_rfc3339(), "created_at_end": cfg.until.to_rfc3339()});

    let (pd_team, pd_name) = teams[0].clone();
    let (status, rows, raw, one) = tokio::task::spawn_blocking({
        let (token, range, pd_team) = (token.clone(), range.clone(), pd_team.clone());
        move || {
            let (status, rows) = post(
                addr,
                "/analytics/metrics/incidents/teams",
                &token,
                &json!({"filters": range}),
            );
            let mut filters = range.clone();
            filters["team_ids"] = json!([pd_team]);
            let mut ids = Vec::new();
            let mut body = json!({"filters": range, "limit": 1000});
            loop {
                let (s, page) = post(addr, "/analytics/raw/incidents", &token, &body);
                assert_eq!(s, 200, "{page}");
                ids.extend(
                    page["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["id"].as_str().unwrap().to_owned()),
                );
                if !page["more"].as_bool().unwrap() {
                    break;
                }
                body["starting_after"] = page["last"].clone();
            }
            let (_, of_team) = post(
                addr,
                "/analytics/metrics/incidents/all",
                &token,
                &json!({"filters": filters}),
            );
            (status, rows, ids, of_team)
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{rows}");
    // Every team row carries PagerDuty's id and the team's name in PagerDuty.
    let data = rows["data"].as_array().unwrap();
    assert!(!data.is_empty());
    for row in data {
        let id = row["team_id"].as_str().unwrap();
        let (_, name) = teams
            .iter()
            .find(|(t, _)| t == id)
            .unwrap_or_else(|| panic!("{id} is not one of PagerDuty's team ids"));
        assert_eq!(row["team_name"], name.as_str());
    }
    // Raw incidents: PagerDuty's ids, each once, all of the range.
    let unique: BTreeSet<String> = raw.iter().cloned().collect();
    assert_eq!(unique.len(), raw.len());
    assert!(
        unique.is_subset(&incidents),
        "ids that are not PagerDuty's: {:?}",
        unique.difference(&incidents).collect::<Vec<_>>()
    );
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", replica.display()))
        .await
        .unwrap();
    let imported: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM incidents WHERE created_at >= ? AND created_at < ?",
    )
    .bind(
        cfg.start()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
    .bind(
        cfg.until
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(imported > 100);
    assert_eq!(raw.len() as i64, imported);
    // Filtering by PagerDuty's team id selects that team's incidents.
    let row = data
        .iter()
        .find(|r| r["team_id"] == pd_team.as_str())
        .unwrap();
    assert_eq!(
        one["data"][0]["total_incident_count"], row["total_incident_count"],
        "{pd_name}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
