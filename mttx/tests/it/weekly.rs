//! `mttx report weekly` as a user runs it: its numbers are the report API's.

use std::net::SocketAddr;

use mttx_api::{App, AppOptions, app, serve};
use mttx_fixtures::{golden, load_dataset};
use mttx_migrations::Location;
use serde_json::Value;

use crate::common::{folded, get, scratch};

const WEEK: &str = "/api/v1/reports/incidents?from=2026-10-26&to=2026-11-02&tz=Europe/Berlin";

/// A server over the golden set with a token of account 1.
pub(crate) struct Served {
    pub addr: SocketAddr,
    pub one: String,
    pub dir: std::path::PathBuf,
    pub facts: String,
}

pub(crate) async fn golden_server(name: &str) -> Served {
    let dir = scratch(name);
    let replica = Location::Sqlite(dir.join("replica.sqlite"));
    load_dataset(&golden::dataset().unwrap(), &replica, false)
        .await
        .unwrap();
    let (facts, state) = folded(&dir, &replica).await;
    let one = state.create_token(1, "test", None).await.unwrap();
    let options = AppOptions {
        cache_bytes: 0,
        ..AppOptions::default()
    };
    let served = App::open(&facts, state, None, options).await.unwrap();
    let (addr, _task) = serve("127.0.0.1:0".parse().unwrap(), app(served))
        .await
        .unwrap();
    Served {
        addr,
        one,
        dir,
        facts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_holds_the_api_numbers() {
    let served = golden_server("api-weekly").await;
    let (addr, one) = (served.addr, served.one.clone());
    let api = |path: String| {
        let one = one.clone();
        tokio::task::spawn_blocking(move || get(addr, &path, Some(&one)))
    };
    let weekly_of = |team: &str, format: &str, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["report", "weekly", "--account", "1", "--team", team])
            .args([
                "--tz",
                "Europe/Berlin",
                "--format",
                format,
                "--facts",
                &served.facts,
                "--state",
                served.dir.join("state.sqlite").to_str().unwrap(),
            ])
            .args(extra)
            .current_dir(&served.dir)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let weekly = |format: &str, extra: &[&str]| weekly_of("1", format, extra);
    let (ok, csv, err) = weekly("csv", &["--week", "2026-W44"]);
    assert!(ok, "{err}");
    let mut rows: std::collections::HashMap<(String, String, String), Vec<String>> =
        std::collections::HashMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<String> = line.split(',').map(str::to_owned).collect();
        rows.insert((f[0].clone(), f[1].clone(), f[2].clone()), f[3..].to_vec());
    }
    let num = |s: &str| -> Value {
        if s.is_empty() {
            Value::Null
        } else {
            Value::from(s.parse::<f64>().unwrap())
        }
    };
    let (status, by_team) = api(format!("{WEEK}&group_by=team")).await.unwrap();
    assert_eq!(status, 200);
    let team1 = by_team["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "1")
        .unwrap()
        .clone();
    let mut compared = 0;
    for (metric, c) in team1["metrics"].as_object().unwrap() {
        let got = &rows[&("team".into(), "1".into(), metric.clone())];
        for (i, field) in ["value", "previous", "delta", "delta_ratio", "norm"]
            .iter()
            .enumerate()
        {
            let want = &c[*field];
            let g = num(&got[i]);
            assert!(
                g == *want
                    || (g.as_f64().unwrap_or(f64::NAN) - want.as_f64().unwrap_or(f64::NAN)).abs()
                        < 1e-9,
                "team {metric} {field}: CSV {g}, API {want}"
            );
            compared += 1;
        }
    }
    let (_, by_service) = api(format!("{WEEK}&group_by=service&team=1"))
        .await
        .unwrap();
    for g in by_service["groups"].as_array().unwrap() {
        let key = g["key"].as_str().unwrap().to_owned();
        for (metric, c) in g["metrics"].as_object().unwrap() {
            let got = &rows[&("service".into(), key.clone(), metric.clone())];
            assert_eq!(num(&got[0]), c["value"], "service {key} {metric}");
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared}");
    assert_eq!(
        num(&rows[&("team".into(), "1".into(), "incident_count".into())][0]),
        Value::from(5.0)
    );

    // The other formats carry the same week; HTML escapes and labels its tables.
    let (ok, json, err) = weekly("json", &["--week", "2026-W44"]);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["team"]["metrics"], team1["metrics"]);
    assert_eq!(json["trend"].as_array().unwrap().len(), 12);
    let (ok, md, _) = weekly("md", &["--week", "2026-W44"]);
    assert!(
        ok && md.contains("# Team 1 — week 2026-W44") && md.contains("| Incidents | 5 | "),
        "{md}"
    );
    let out = served.dir.join("weekly.html");
    let (ok, _, err) = weekly(
        "html",
        &["--week", "2026-W44", "--output", out.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("<th scope=\"row\">Incidents</th><td>5</td><td>"),
        "{html}"
    );

    // Errors that say what to fix: an unknown team, a future week, a bad week.
    let (ok, _, err) = weekly_of("99", "csv", &["--week", "2026-W44"]);
    assert!(
        !ok && err.contains("team 99 has no incidents") && err.contains("teams with incidents"),
        "{err}"
    );
    let (ok, _, err) = weekly("csv", &["--week", "2099-W01"]);
    assert!(!ok && err.contains("has not begun yet"), "{err}");
    let (ok, _, err) = weekly("csv", &["--week", "44"]);
    assert!(!ok && err.contains("2026-W44"), "{err}");
    let _ = std::fs::remove_dir_all(&served.dir);
}

/// The replica's name for `id` in `table` (`teams`, `services` or `users`).
async fn name_in(db: &sqlx::SqlitePool, table: &str, id: i64) -> String {
    let sql = match table {
        "teams" => "SELECT name FROM teams WHERE id = ?",
        "services" => "SELECT name FROM services WHERE id = ?",
        "users" => "SELECT name FROM users WHERE id = ?",
        _ => unreachable!("{table}"),
    };
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_names_things_in_the_accounts_zone() {
    let served = golden_server("weekly-names").await;
    let replica = served.dir.join("replica.sqlite");
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", replica.display()))
        .await
        .unwrap();
    let weekly = |format: &str, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["report", "weekly", "--account", "1", "--team", "1"])
            .args(["--week", "2026-W44", "--format", format])
            .args(["--facts", &served.facts])
            .args(["--state", served.dir.join("state.sqlite").to_str().unwrap()])
            .args(extra)
            .current_dir(&served.dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), err)
    };
    let source = ["--source", replica.to_str().unwrap()];
    let zone: String = sqlx::query_scalar("SELECT time_zone FROM accounts WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_ne!(zone, "UTC", "the test needs an account outside UTC");
    let team = name_in(&db, "teams", 1).await;

    // JSON: the week is in the account's zone; the team, its services, responders and
    // escalated incidents carry the replica's names.
    let (json, _) = weekly("json", &source);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["period"]["tz"], zone);
    assert_eq!(json["team_name"], team);
    assert_eq!(json["team"]["name"], team);
    // The team by its name, in any case, is the same report; a name the account does not
    // have is refused with the names it does (exit status 2).
    let by_name = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mttx"))
            .args(["report", "weekly", "--account", "1", "--team", name])
            .args(["--week", "2026-W44", "--format", "json"])
            .args(["--facts", &served.facts])
            .args(["--state", served.dir.join("state.sqlite").to_str().unwrap()])
            .args(source)
            .current_dir(&served.dir)
            .output()
            .unwrap()
    };
    let out = by_name(&team.to_uppercase());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let named: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(named["team"], json["team"]);
    assert_eq!(named["services"], json["services"]);
    let out = by_name("No Such Team");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no team named `No Such Team`") && err.contains(&team),
        "{err}"
    );
    // An account the replica does not hold is refused with the accounts it does, by name.
    let account_name: String = sqlx::query_scalar("SELECT name FROM accounts WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mttx"))
        .args(["report", "weekly", "--account", "999", "--format", "json"])
        .args(["--facts", &served.facts])
        .args(["--state", served.dir.join("state.sqlite").to_str().unwrap()])
        .args(source)
        .current_dir(&served.dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("has no account 999") && err.contains(&format!("{account_name} (1)")),
        "{err}"
    );
    let mut services = Vec::new();
    for r in json["services"].as_array().unwrap() {
        let id: i64 = r["key"].as_str().unwrap().parse().unwrap();
        let name = name_in(&db, "services", id).await;
        assert_eq!(r["name"], name);
        services.push(name);
    }
    assert!(!services.is_empty());
    let mut responders = Vec::new();
    for r in json["responders"].as_array().unwrap() {
        let id: i64 = r["key"].as_str().unwrap().parse().unwrap();
        let name = name_in(&db, "users", id).await;
        assert_eq!(r["name"], name);
        responders.push(name);
    }
    assert!(!responders.is_empty());
    for f in json["escalated"].as_array().unwrap() {
        let id = f["service_id"].as_i64().unwrap();
        assert_eq!(f["service_name"], name_in(&db, "services", id).await);
    }
    // The same numbers as with the zone given.
    let (given, _) = weekly("json", &[source[0], source[1], "--tz", &zone]);
    let given: Value = serde_json::from_str(&given).unwrap();
    assert_eq!(given["team"], json["team"]);

    // Markdown and HTML: titled with the team's name, services and responders by name.
    let (md, _) = weekly("md", &source);
    assert!(md.starts_with(&format!("# {team} — week 2026-W44")), "{md}");
    assert!(md.contains(&format!(", {zone}; against")), "{md}");
    for name in services.iter().chain(&responders) {
        assert!(md.contains(&format!("| {name} | ")), "{name}: {md}");
    }
    let (html, _) = weekly("html", &source);
    assert!(
        html.contains(&format!("<h1>{team} — week 2026-W44</h1>")),
        "{html}"
    );
    for name in services.iter().chain(&responders) {
        assert!(html.contains(&format!("<td>{name}</td>")), "{name}: {html}");
    }
    // CSV: the name of each row's key in the last column.
    let (csv, _) = weekly("csv", &source);
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(r.headers().unwrap().iter().next_back(), Some("name"));
    let mut named = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let table = match &rec[0] {
            "team" => "teams",
            "service" => "services",
            "responder" => "users",
            _ => continue,
        };
        assert_eq!(
            rec[rec.len() - 1],
            name_in(&db, table, rec[1].parse().unwrap()).await
        );
        named += 1;
    }
    assert!(named > 30, "{named}");

    // A chosen zone wins; without a replica, UTC and ids, as stderr says.
    let (json, _) = weekly("json", &[source[0], source[1], "--tz", "UTC"]);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["period"]["tz"], "UTC");
    assert_eq!(json["team_name"], team);
    let (json, err) = weekly("json", &[]);
    assert!(err.contains("no replica") && err.contains("UTC"), "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["period"]["tz"], "UTC");
    assert_eq!(json["team_name"], "Team 1");
    let _ = std::fs::remove_dir_all(&served.dir);
}
